// A second, deliberately simple model of the TDX module's S-EPT state machine, written from
// tdx-module.md alone (§1.2, §1.3, §2, §3, §7, §8) and independent of sim/tdx/*.cc. It is the
// reference for the differential property in module_diff_prop.cc.
//
// Scope (sequential, one TD with two vCPUs, no migration states, no PAGE.ADD):
//   * the first 4 MiB of private GPA space: the PML4E and PDPTE covering GPA 0 (levels 3, 2),
//     the two 2M PDEs (level 1, index r = 0, 1) and their 4K PTEs (level 0, index r*512 + i);
//   * entry states FREE, NL_MAPPED, NL_BLOCKED, MAPPED, BLOCKED, PENDING, PENDING_BLOCKED,
//     with the BEPOCH recorded by RANGE.BLOCK kept per entry (the module keeps it in the PAMT
//     entry of the page or child table the entry maps, one page per entry here);
//   * TD op state INITIALIZED -> RUNNABLE, TD_EPOCH, REFCOUNT[2], per-vCPU in-TD and epoch.
// Host pages always pass the module's page checks (the harness picks them so), so R8 errors,
// BUSY, interrupts and the zero-step filter are outside the model.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "sim/tdx/status.h"

namespace props {

enum class St : uint8_t { FREE, NL_MAPPED, NL_BLOCKED, MAPPED, BLOCKED, PENDING, PENDING_BLOCKED };
const char* st_name(St s);

inline constexpr int kRegions = 2;            // 2M regions modelled
inline constexpr int kPtes = kRegions * 512;  // 4K entries modelled

struct Ent {
  St s = St::FREE;
  uint64_t bepoch = 0;
};

// An entry of the model: level (TDX numbering) and index within the level's modelled range.
// `skew` (0 or 4K, levels >= 1 only) makes the GPA misaligned for the level: an invalid
// page_info operand (§0), as is a level outside the leaf's range.
struct Tgt {
  int level = 0;
  int idx = 0;
  uint64_t skew = 0;
  uint64_t gpa() const {
    if (level == 0)
      return static_cast<uint64_t>(idx / 512) << 21 | static_cast<uint64_t>(idx % 512) << 12;
    if (level == 1) return static_cast<uint64_t>(idx) << 21 | skew;
    return skew;
  }
};

// What a call returned, as far as the model predicts it.
struct Res {
  enum Kind : uint8_t { kStatus, kEptViolation, kNotInTd } kind = kStatus;
  uint64_t status = 0;        // kStatus: RAX
  bool check_operand = true;  // false where the spec does not fix bits 31:0
  static Res ok() { return {}; }
  static Res st(tdx::Status s, uint32_t op = 0, bool check = true) {
    return {kStatus, tdx::raw(s, op), check};
  }
  std::string str() const;
};

struct Model {
  bool runnable = false;  // op state: INITIALIZED until MR.FINALIZE
  uint64_t epoch = 1;     // TD_EPOCH starts at 1 (§2.7)
  std::array<uint32_t, 2> refcount{};
  struct Vcpu {
    bool in_td = false;
    uint64_t epoch = 0;
  };
  std::array<Vcpu, 2> vcpu{};
  Ent l3, l2;                    // PML4E[0] (points to the PDPT), PDPTE[0] (points to the PD)
  std::array<Ent, kRegions> l1;  // PDE[r]
  std::array<Ent, kPtes> l0;     // PTE[r][i]; FREE while PDE[r] maps no table
  int64_t chldcnt = 0;           // §8.22: S-EPT pages + guest pages (4K units) added here

  Ent& at(Tgt t);
  const Ent& at(Tgt t) const { return const_cast<Model*>(this)->at(t); }

  // The module's walk (§1.3): passes only NL_MAPPED entries above the requested level.
  // Returns the level it stopped at; == t.level when it reached the entry.
  int walk(Tgt t) const;
  // What Module::walk shows for an entry: its state, or nullopt-like -1 when unreachable.
  int observable(Tgt t) const { return walk(t) == t.level ? static_cast<int>(at(t).s) : -1; }
  bool tracked(uint64_t bepoch) const;  // §3 is_tlb_tracked
  static bool is_leaf(St s);
  static bool is_blocked(St s);

  // Host SEAMCALLs and the guest's ACCEPT. Each returns the predicted result and updates the
  // model as the module would.
  Res sept_add(Tgt t, bool allow_existing = false);
  Res sept_remove(Tgt t);
  Res aug(Tgt t);
  Res block(Tgt t);
  Res unblock(Tgt t);
  Res track();
  Res remove(Tgt t);
  Res demote(Tgt t);
  Res promote(Tgt t);
  Res finalize();
  Res vp_enter(int v);
  Res td_exit(int v);
  Res accept(int v, Tgt t);

 private:
  void reset_children(Tgt t);
  bool children_free(Tgt t) const;
};

}  // namespace props
