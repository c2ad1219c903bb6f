// TDH.MEM.RANGE.BLOCK, TDH.MEM.RANGE.UNBLOCK and TDH.MEM.TRACK (tdx-module.md §2.5-§2.7, §3).
#include "sim/tdx/call.h"

namespace tdx {

Regs Module::tdh_mem_range_block(const Regs& in) {
  Call c(*this, Leaf::MEM_RANGE_BLOCK, in);
  [&]() -> bool {
    Prologue p;
    p.tdr_pa = in.rdx;
    p.min_level = kLevel4K;
    p.max_level = kPwl;
    p.tree_mode = LockMode::kExclusive;
    Target t;
    if (!prologue(c, p, &t)) return false;
    SeptState next;
    switch (t.e.state()) {
      case SeptState::NL_MAPPED:
        next = SeptState::NL_BLOCKED;
        break;
      case SeptState::MAPPED:
        next = SeptState::BLOCKED;
        break;
      case SeptState::PENDING:
        next = SeptState::PENDING_BLOCKED;
        break;
      default:
        // Already blocked is a warning status (bit 63 clear), anything else an error (§8.6).
        if (is_any_blocked(t.e.state()))
          return c.fail_entry(raw(Status::GPA_RANGE_ALREADY_BLOCKED, Operand::RCX), t.e, t.level);
        return c.fail_entry(raw(Status::EPT_ENTRY_STATE_INCORRECT, Operand::RCX), t.e, t.level);
    }
    SeptEntry n = t.e.with_state(next);
    if (next == SeptState::PENDING_BLOCKED && t.level > kLevel4K) n = n.with_accept_counter(0);
    sept_write_locked(*t.slot, n);
    // BEPOCH is sampled after the entry write (§2.5).
    set_pamt_bepoch(n, t.level, t.td->td_epoch.load(std::memory_order_acquire));
    return true;
  }();
  return c.out;
}

Regs Module::tdh_mem_range_unblock(const Regs& in) {
  Call c(*this, Leaf::MEM_RANGE_UNBLOCK, in);
  [&]() -> bool {
    Prologue p;
    p.tdr_pa = in.rdx;
    p.min_level = kLevel4K;
    p.max_level = kPwl;
    p.tree_mode = LockMode::kExclusive;
    Target t;
    if (!prologue(c, p, &t)) return false;
    SeptState next;
    switch (t.e.state()) {
      case SeptState::NL_BLOCKED:
        next = SeptState::NL_MAPPED;
        break;
      case SeptState::BLOCKED:
        next = SeptState::MAPPED;
        break;
      case SeptState::PENDING_BLOCKED:
        next = SeptState::PENDING;
        break;
      default:  // there is no separate "not blocked" code here (§2.6)
        return c.fail_entry(raw(Status::EPT_ENTRY_STATE_INCORRECT, Operand::RCX), t.e, t.level);
    }
    // UNBLOCK reports missing tracking against the tree, not RCX (§8.5).
    if (op_state_requires_tracking(t.td->op_state) &&
        !is_tlb_tracked(*t.td, pamt_bepoch_of(*t.td, t.e, t.level)))
      return c.fail(raw(Status::TLB_TRACKING_NOT_DONE, Operand::SEPT_TREE));
    sept_write_locked(*t.slot, t.e.with_state(next));
    return true;
  }();
  return c.out;
}

Regs Module::tdh_mem_track(const Regs& in) {
  Call c(*this, Leaf::MEM_TRACK, in);
  [&]() -> bool {
    Prologue p;
    p.tdr_pa = in.rcx;  // TRACK takes the TDR in RCX (§2.0 step 2)
    p.tdr_op = Operand::RCX;
    p.max_level = -1;
    p.tree = false;
    p.entry_lock = false;
    Target t;
    if (!prologue(c, p, &t)) return false;
    Td& td = *t.td;
    if (!td.epoch_lock.try_exclusive()) return c.fail(raw(Status::OPERAND_BUSY, Operand::TD_EPOCH));
    c.hold(td.epoch_lock, LockMode::kExclusive);
    c.yield("epoch-locked");
    const uint64_t e = td.td_epoch.load(std::memory_order_acquire);
    // Nobody may still run from the previous epoch (§2.7, §8.10).
    if (td.refcount[(e - 1) & 1].load(std::memory_order_acquire) != 0)
      return c.fail(raw(Status::PREVIOUS_TLB_EPOCH_BUSY));
    td.td_epoch.store(e + 1, std::memory_order_release);
    return true;
  }();
  return c.out;
}

}  // namespace tdx
