// Internals shared by the leaf implementations: the per-call lock stack, the common prologue
// (tdx-module.md §2.0) and the entry-lock primitives (§2.16). Not part of the public API.
#pragma once

#include <array>

#include "sim/tdx/module.h"

namespace tdx {

inline constexpr uint8_t op_bit(OpState s) {
  return static_cast<uint8_t>(1u << static_cast<int>(s));
}
inline constexpr uint8_t kAnyButUninit = op_bit(OpState::INITIALIZED) | op_bit(OpState::RUNNABLE);
inline constexpr uint8_t kOnlyInitialized = op_bit(OpState::INITIALIZED);
inline constexpr uint8_t kOnlyRunnable = op_bit(OpState::RUNNABLE);
// UNBLOCK/DEMOTE/PROMOTE/REMOVE/SEPT.REMOVE enforce blocking and TLB tracking only in RUNNABLE
// (and LIVE_*, not modelled) — §7.
inline bool op_state_requires_tracking(OpState s) {
  return s == OpState::RUNNABLE;
}

// The ABI name and highest version of each leaf number, or nullptr for an unknown leaf: the
// dispatcher and every call's hook read them without a switch.
struct LeafInfo {
  const char* name = nullptr;
  int max_version = 0;
};
inline constexpr int kLeafNumbers = 64;
inline constexpr std::array<LeafInfo, kLeafNumbers> kLeafInfo = [] {
  std::array<LeafInfo, kLeafNumbers> t{};
#define LEAF(e, name, num, ver)      \
  static_assert(num < kLeafNumbers); \
  t[num] = {name, ver};
#include "sim/tdx/leaf.def"
#undef LEAF
  return t;
}();

// Releases an entry lock (clears TDEL).
inline void sept_lock_release(std::atomic<uint64_t>& slot) {
  host::rmw_and(slot, ~kTdel, std::memory_order_release);
}

// A host SEAMCALL in progress: inputs, outputs, and the locks it holds, released in reverse
// order when the call returns (as the module does at its exit path).
class Module::Call {
 public:
  // `in` is the leaf's own argument, which outlives the Call.
  Call(Module& m, Leaf leaf, const Regs& in) : in(in), m_(m), leaf_(leaf) {}
  ~Call() {
    release_all();
    if (out.rax == 0 && leaf_ != Leaf::VP_ENTER)
      host::rmw_add(m_.host_progress_, uint64_t{1}, std::memory_order_relaxed);
    if (m_.hooks_->calls_observed())
      m_.hooks_->on_call(kLeafInfo[static_cast<int>(leaf_)].name, in, out);
  }
  Call(const Call&) = delete;
  Call& operator=(const Call&) = delete;

  const Regs& in;
  Regs out;  // RCX/RDX are zero unless a step sets them (§2.0)

  // Error exits. They return false so that checks read `if (...) return c.fail(...)`.
  bool fail(uint64_t status) {
    out.rax = status;
    return false;
  }
  bool fail_entry(uint64_t status, SeptEntry e, int level) {
    out.rax = status;
    out.rcx = arch_entry(e);
    out.rdx = level_state(e, level);
    return false;
  }
  void hold(SharexLock& l, LockMode mode) {
    push({mode == LockMode::kShared ? kShared : kExcl, &l});
  }
  void hold_entry(std::atomic<uint64_t>* slot) { push({kEntry, slot}); }
  void yield(const char* where) { m_.hooks_->yield(where); }
  bool interrupt_pending(const char* where) { return m_.hooks_->interrupt_pending(where); }
  void release_all() {
    while (n_ > 0) {
      const Held h = held_[--n_];
      switch (h.kind) {
        case kShared:
          static_cast<SharexLock*>(h.p)->release_shared();
          break;
        case kExcl:
          static_cast<SharexLock*>(h.p)->release_exclusive();
          break;
        case kEntry:
          sept_lock_release(*static_cast<std::atomic<uint64_t>*>(h.p));
          break;
      }
    }
  }

 private:
  enum Kind : uint8_t { kShared, kExcl, kEntry };
  struct Held {
    Kind kind;
    void* p;
  };
  void push(Held h) {
    if (n_ < kMax) held_[n_++] = h;
  }
  static constexpr int kMax = 10;
  Held held_[kMax];
  int n_ = 0;
  Module& m_;
  Leaf leaf_;
};

// What the common prologue of a TD-scoped S-EPT leaf does (§2.0 steps 2-10).
struct Module::Prologue {
  uint64_t tdr_pa = 0;
  Operand tdr_op = Operand::RDX;
  LockMode tdr_mode = LockMode::kShared;
  bool op_state_lock = true;
  uint8_t allowed = kAnyButUninit;
  int min_level = 0, max_level = 0;
  bool tree = true;
  LockMode tree_mode = LockMode::kShared;
  bool entry_lock = true;
};

struct Module::Target {
  Td* td = nullptr;
  uint64_t gpa = 0;
  int level = 0;
  std::atomic<uint64_t>* slot = nullptr;
  SeptEntry e;  // re-read after the entry lock was taken (lock bits cleared)
};

// sept_lock_acquire_host: test-and-set TDEL; if it was set, set TDHP and fail; a successful
// host acquisition clears TDHP (§2.0 step 10, §2.16).
bool sept_lock_acquire_host(std::atomic<uint64_t>& slot, SeptEntry* seen);
enum class GuestLock : uint8_t { kOk, kBusy, kBusyHostPriority };
// Inline, like the writers below: every guest ACCEPT takes and releases an entry lock.
inline GuestLock sept_lock_acquire_guest(std::atomic<uint64_t>& slot, SeptEntry* seen) {
  uint64_t v = slot.load(std::memory_order_relaxed);
  for (;;) {
    if (v & kTdel) {
      *seen = {v};
      return GuestLock::kBusy;
    }
    if (host::rmw_cas(slot, v, v | kTdel, std::memory_order_acquire)) break;
  }
  *seen = {v};
  if (v & kTdhp) {  // the host asked for priority: back off (§2.16)
    sept_lock_release(slot);
    return GuestLock::kBusyHostPriority;
  }
  return GuestLock::kOk;
}
// Writes a new entry value while holding its lock, keeping TDEL and TDHP as they are now.
inline void sept_write_locked(std::atomic<uint64_t>& slot, SeptEntry v) {
  uint64_t cur = slot.load(std::memory_order_relaxed);
  while (!host::rmw_cas(slot, cur, (v.raw & ~(kTdel | kTdhp)) | (cur & (kTdel | kTdhp)),
                        std::memory_order_release)) {
  }
}
// sept_write_locked then sept_lock_release in one step: TDHP kept, TDEL cleared.
inline void sept_write_unlock(std::atomic<uint64_t>& slot, SeptEntry v) {
  uint64_t cur = slot.load(std::memory_order_relaxed);
  while (!host::rmw_cas(slot, cur, (v.raw & ~(kTdel | kTdhp)) | (cur & kTdhp),
                        std::memory_order_release)) {
  }
}
inline SeptEntry sept_read(const std::atomic<uint64_t>& slot) {
  return {slot.load(std::memory_order_acquire)};
}

inline uint64_t gpa_of(uint64_t page_info) {
  return page_info & 0x000ffffffffff000ull;
}

}  // namespace tdx
