// The reference model of guest-visible memory behind `guest-data`: what a guest read must
// return, per GFN, independent of how the stack below maps it. It is told of each effect at
// the instant it happens (guest::Guest::Listener), so it stays exact under interleaving.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace check {

class GuestDataModel {
 public:
  explicit GuestDataModel(uint64_t gfns)
      : accepted_(gfns, 0), value_(gfns, 0), shared_(gfns, 0), gen_(gfns, 0), flux_(gfns, 0) {}

  // The guest accepted these pages: the ones it had not accepted read zero from now on.
  void accepted(uint64_t gfn, uint64_t count) {
    for (uint64_t g = gfn; g < gfn + count; g++)
      if (!accepted_[g] && !shared_[g] && !flux_[g]) accepted_[g] = 1, value_[g] = 0;
  }
  // KVM_TDX_INIT_MEM_REGION loaded this page at build time: the guest starts with it accepted
  // (TDH.MEM.PAGE.ADD leaves it MAPPED), holding the measured content.
  void loaded(uint64_t gfn, uint64_t v) { accepted_[gfn] = 1, value_[gfn] = v; }
  // The host starts taking these pages away (punch hole), or the guest's conversion starts:
  // until it is settled, an access may see the old data or none, and the model claims nothing.
  void unsettled(uint64_t gfn, uint64_t count) {
    for (uint64_t g = gfn; g < gfn + count; g++)
      flux_[g]++, accepted_[g] = 0, shared_[g] = 0, gen_[g]++;
  }
  // Settled: the private data is gone (the page must be accepted again), or the page is now
  // shared and starts at zero.
  void settled(uint64_t gfn, uint64_t count, bool shared) {
    for (uint64_t g = gfn; g < gfn + count; g++)
      flux_[g]--, accepted_[g] = 0, shared_[g] = shared, value_[g] = 0, gen_[g]++;
  }
  void wrote(uint64_t gfn, uint64_t v) {
    if ((accepted_[gfn] || shared_[gfn]) && !flux_[gfn]) value_[gfn] = v;
  }
  // What a read must return, when the model knows.
  std::optional<uint64_t> expected(uint64_t gfn) const {
    if ((accepted_[gfn] || shared_[gfn]) && !flux_[gfn]) return value_[gfn];
    return std::nullopt;
  }
  // Changes whenever a page is unsettled or settled: a read spanning that may fail.
  uint32_t generation(uint64_t gfn) const { return gen_[gfn]; }

 private:
  std::vector<uint8_t> accepted_;
  std::vector<uint64_t> value_;
  std::vector<uint8_t> shared_;
  std::vector<uint32_t> gen_;
  std::vector<uint16_t> flux_;
};

}  // namespace check
