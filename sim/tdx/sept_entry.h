// Our encoding of one S-EPT entry in a 64-bit word (not the architectural one; that is
// produced by arch_entry() for RCX outputs, tdx-module.md §2.13).
//   bits 3:0   SeptState
//   bit 11     TDEL  entry lock (host or guest)
//   bits 51:12 HPA; for a 2M PENDING leaf bits 20:12 hold ACCEPT_COUNTER (§1.1)
//   bit 52     TDHP  host-priority flag
#pragma once

#include <atomic>
#include <cstdint>

#include "sim/tdx/types.h"

namespace tdx {

inline constexpr uint64_t kTdel = 1ull << 11;
inline constexpr uint64_t kTdhp = 1ull << 52;
inline constexpr uint64_t kHpaMask = ((1ull << 52) - 1) & ~0xfffull;
inline constexpr uint64_t kSve = 1ull << 63;
inline constexpr uint64_t kAcceptCounterMask = 0x1ffull << 12;

struct SeptEntry {
  uint64_t raw = 0;

  SeptState state() const { return static_cast<SeptState>(raw & 0xf); }
  bool locked() const { return raw & kTdel; }
  bool host_priority() const { return raw & kTdhp; }
  uint64_t hpa_bits() const { return raw & kHpaMask; }
  // The page (or table) address with ACCEPT_COUNTER bits ignored (§2.8).
  uint64_t hpa(int level) const { return raw & kHpaMask & ~(level_size(level) - 1); }
  unsigned accept_counter() const { return (raw & kAcceptCounterMask) >> 12; }

  static SeptEntry make(SeptState s, uint64_t hpa) {
    return {(hpa & kHpaMask) | static_cast<uint64_t>(s)};
  }
  SeptEntry with_state(SeptState s) const { return {(raw & ~0xfull) | static_cast<uint64_t>(s)}; }
  SeptEntry with_accept_counter(unsigned c) const {
    return {(raw & ~kAcceptCounterMask) | (static_cast<uint64_t>(c & 0x1ff) << 12)};
  }
  SeptEntry without_locks() const { return {raw & ~(kTdel | kTdhp)}; }
};

// "entry" output (RCX): FREE reads as SVE only; leaves as HPA|RWX|MT|IPAT|PS|SVE; non-leaves
// expose only RWX (and PS, which is 0), never the child table's HPA.
uint64_t arch_entry(SeptEntry e);
// "level_state" output (RDX): level in bits 2:0, public state in bits 15:8.
uint64_t level_state(SeptEntry e, int level);

// One 4K S-EPT table page.
struct SeptPage {
  std::atomic<uint64_t> e[512];
  SeptPage() {
    for (auto& x : e) x.store(0, std::memory_order_relaxed);
  }
};

}  // namespace tdx
