// The reference model of guest-visible memory behind `guest-data`: what a guest read must
// return, per GFN, independent of how the stack below maps it. It is told of each effect at
// the instant it happens (guest::Guest::Listener), so it stays exact under interleaving.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>

namespace check {

class GuestDataModel {
 public:
  // One executor builds one per run: a single zeroed array for the flags, and values left
  // unset (a value is read only where accepted or shared is set, and both setters write it).
  explicit GuestDataModel(uint64_t gfns) : page_(new Page[gfns]()), value_(new uint64_t[gfns]) {}

  // The guest accepted these pages: the ones it had not accepted read zero from now on.
  void accepted(uint64_t gfn, uint64_t count) {
    for (uint64_t g = gfn; g < gfn + count; g++) {
      Page& p = page_[g];
      if (untouched(p)) p.accepted = 1, value_[g] = 0;
    }
  }
  // KVM_TDX_INIT_MEM_REGION loaded this page at build time: the guest starts with it accepted
  // (TDH.MEM.PAGE.ADD leaves it MAPPED), holding the measured content.
  void loaded(uint64_t gfn, uint64_t v) { page_[gfn].accepted = 1, value_[gfn] = v; }
  // The host starts taking these pages away (punch hole), or the guest's conversion starts:
  // until it is settled, an access may see the old data or none, and the model claims nothing.
  void unsettled(uint64_t gfn, uint64_t count) {
    for (uint64_t g = gfn; g < gfn + count; g++) {
      Page& p = page_[g];
      p.flux++, p.accepted = 0, p.shared = 0, p.gen++;
    }
  }
  // Settled: the private data is gone (the page must be accepted again), or the page is now
  // shared and starts at zero.
  void settled(uint64_t gfn, uint64_t count, bool shared) {
    for (uint64_t g = gfn; g < gfn + count; g++) {
      Page& p = page_[g];
      p.flux--, p.accepted = 0, p.shared = shared, value_[g] = 0, p.gen++;
    }
  }
  void wrote(uint64_t gfn, uint64_t v) {
    const Page& p = page_[gfn];
    if ((p.accepted || p.shared) && !p.flux) value_[gfn] = v;
  }
  // What a read must return, when the model knows.
  std::optional<uint64_t> expected(uint64_t gfn) const {
    const Page& p = page_[gfn];
    if ((p.accepted || p.shared) && !p.flux) return value_[gfn];
    return std::nullopt;
  }
  // Changes whenever a page is unsettled or settled: a read spanning that may fail.
  uint32_t generation(uint64_t gfn) const { return page_[gfn].gen; }

 private:
  struct Page {
    uint32_t gen;
    uint16_t flux;
    uint8_t accepted, shared;
  };
  // !accepted && !shared && !flux, as one load: the three are the four bytes after gen.
  static bool untouched(const Page& p) {
    static_assert(offsetof(Page, flux) == 4 && offsetof(Page, accepted) == 6 &&
                  offsetof(Page, shared) == 7 && sizeof(Page) == 8);
    uint32_t v;
    std::memcpy(&v, reinterpret_cast<const char*>(&p) + offsetof(Page, flux), 4);
    return !v;
  }
  std::unique_ptr<Page[]> page_;
  std::unique_ptr<uint64_t[]> value_;
};

}  // namespace check
