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
  // The private page is going away (punched out of guest_memfd, or converted): its data is
  // lost, as the guest's next access will find out.
  void dropped(uint64_t gfn, uint64_t count) {
    for (uint64_t g = gfn; g < gfn + count; g++) accepted_[g] = 0, gen_[g]++;
  }
  // A conversion the guest asked for is in progress: until it ends, the guest touching those
  // pages races its own request, and the model claims nothing about them.
  void converting(uint64_t gfn, uint64_t count) {
    for (uint64_t g = gfn; g < gfn + count; g++)
      flux_[g]++, accepted_[g] = 0, shared_[g] = 0, gen_[g]++;
  }
  // The conversion ended: shared pages start at zero, private ones need accepting.
  void converted(uint64_t gfn, uint64_t count, bool to_private, bool ok) {
    for (uint64_t g = gfn; g < gfn + count; g++) {
      flux_[g]--;
      accepted_[g] = 0, shared_[g] = ok && !to_private, value_[g] = 0, gen_[g]++;
    }
  }
  void wrote(uint64_t gfn, uint64_t v) {
    if ((accepted_[gfn] || shared_[gfn]) && !flux_[gfn]) value_[gfn] = v;
  }
  // What a read must return, when the model knows.
  std::optional<uint64_t> expected(uint64_t gfn) const {
    if (accepted_[gfn] || shared_[gfn]) return value_[gfn];
    return std::nullopt;
  }
  // Bumped whenever a page is dropped or converted: a read spanning that may fail.
  uint32_t generation(uint64_t gfn) const { return gen_[gfn]; }

 private:
  std::vector<uint8_t> accepted_;
  std::vector<uint64_t> value_;
  std::vector<uint8_t> shared_;
  std::vector<uint32_t> gen_;
  std::vector<uint16_t> flux_;
};

}  // namespace check
