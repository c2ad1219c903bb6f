// Vocabulary of the TDX module model: levels, S-EPT entry states, PAMT page types, TD states.
#pragma once

#include <cstdint>

namespace tdx {

// TDX level numbering (tdx-module.md §0): 0 = 4K, 1 = 2M, 2 = 1G, 3 = 512G (PML4E).
inline constexpr int kLevel4K = 0, kLevel2M = 1, kLevel1G = 2, kLevel512G = 3;
inline constexpr int kPwl = 3;    // 4-level S-EPT: root entries are level 3
inline constexpr int kGpaw = 48;  // GPA width
inline constexpr uint64_t kSharedBit = 1ull << (kGpaw - 1);
inline constexpr int kPhysBits = 46;   // x86_phys_bits without KeyID bits
inline constexpr int kMaxPaBits = 52;  // MAX_PA; bits 51:46 carry the HKID
inline constexpr uint64_t kHkidMask = ((1ull << kMaxPaBits) - 1) & ~((1ull << kPhysBits) - 1);
inline constexpr uint64_t kNullPa = ~0ull;  // NULL_PA is all-ones (x86_defs.h)

inline constexpr uint64_t level_shift(int level) {
  return 12 + 9 * static_cast<uint64_t>(level);
}
inline constexpr uint64_t level_size(int level) {
  return 1ull << level_shift(level);
}
inline constexpr uint64_t level_pages(int level) {
  return 1ull << (9 * level);
}
const char* level_name(int level);  // "4K", "2M", "1G", "512G"

// S-EPT entry states, non-migration subset (tdx-module.md §1.1).
enum class SeptState : uint8_t {
  FREE,
  NL_MAPPED,
  NL_BLOCKED,
  MAPPED,
  BLOCKED,
  PENDING,
  PENDING_BLOCKED,
  REMOVED,  // import only; never produced here
};
const char* state_name(SeptState s);
uint8_t public_state(SeptState s);  // level_state bits 15:8
inline bool is_leaf(SeptState s) {
  return s >= SeptState::MAPPED && s <= SeptState::PENDING_BLOCKED;
}
inline bool is_non_leaf(SeptState s) {
  return s == SeptState::NL_MAPPED || s == SeptState::NL_BLOCKED;
}
inline bool is_any_blocked(SeptState s) {
  return s == SeptState::NL_BLOCKED || s == SeptState::BLOCKED || s == SeptState::PENDING_BLOCKED;
}
// RWX != 0: the walk continues through (non-leaf) or translates (leaf) only these.
inline bool is_present(SeptState s) {
  return s == SeptState::NL_MAPPED || s == SeptState::MAPPED;
}
// tlb_tracking_required flag of the state (§1.2).
inline bool tlb_tracking_required(SeptState s) {
  return s != SeptState::FREE && s != SeptState::REMOVED;
}

// PAMT page types (pamt_manager.h).
enum class PageType : uint8_t { NDA = 0, RSVD = 1, REG = 3, TDR = 4, TDCX = 5, TDVPR = 6, EPT = 8 };
const char* page_type_name(PageType t);

enum class Lifecycle : uint8_t { NOT_CONFIGURED, KEYS_CONFIGURED, BLOCKED, TEARDOWN };
enum class OpState : uint8_t { UNINITIALIZED, INITIALIZED, RUNNABLE };
const char* op_state_name(OpState s);

}  // namespace tdx
