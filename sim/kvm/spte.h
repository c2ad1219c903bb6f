// Mirror SPTE encoding (kvm-tdx.md §1.6, §6.4). A non-leaf SPTE's PFN field holds the index of
// the child kvm_mmu_page in the MMU's page registry (the model has no kernel addresses).
#pragma once

#include <cstdint>

namespace kvm {

inline constexpr uint64_t kSptePresent = 1ull << 11;  // SPTE_MMU_PRESENT_MASK
inline constexpr uint64_t kSpteLarge = 1ull << 7;     // PT_PAGE_SIZE_MASK
inline constexpr uint64_t kShadowNonpresent = 1ull << 63;
inline constexpr uint64_t kFrozenSpte = kShadowNonpresent | 0x5a0;
inline constexpr uint64_t kSptePfnMask = ((1ull << 52) - 1) & ~0xfffull;
inline constexpr uint64_t kSpteRwx = 0x7;

// KVM levels: PG_LEVEL_4K = 1, 2M = 2, 1G = 3; the 4-level root is 4.
inline constexpr int kPg4K = 1, kPg2M = 2, kPg1G = 3, kRootLevel = 4;
inline constexpr uint64_t pages_per(int pg_level) {
  return 1ull << (9 * (pg_level - 1));
}
inline constexpr int tdx_level(int pg_level) {
  return pg_level - 1;
}

inline bool is_shadow_present(uint64_t s) {
  return s & kSptePresent;
}
inline bool is_frozen(uint64_t s) {
  return s == kFrozenSpte;
}
inline bool is_large(uint64_t s) {
  return s & kSpteLarge;
}
inline bool is_last_spte(uint64_t s, int level) {
  return level == kPg4K || is_large(s);
}
inline bool is_leaf(uint64_t s, int level) {
  return is_shadow_present(s) && is_last_spte(s, level);
}
inline uint64_t spte_pfn(uint64_t s) {
  return (s & kSptePfnMask) >> 12;
}

inline uint64_t make_leaf_spte(uint64_t pfn, int level) {
  return (pfn << 12) | kSptePresent | kSpteRwx | (level > kPg4K ? kSpteLarge : 0);
}
inline uint64_t make_nonleaf_spte(uint64_t sp_index) {
  return (sp_index << 12) | kSptePresent | kSpteRwx;
}

}  // namespace kvm
