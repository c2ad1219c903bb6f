// TDH.MEM.SEPT.ADD and TDH.MEM.SEPT.REMOVE (tdx-module.md §2.1, §2.2).
#include "sim/tdx/call.h"

namespace tdx {
namespace {
// TD handle reserved bits checked by SEPT.ADD and DEMOTE: 11:1 and 63:52 (§0).
constexpr uint64_t kTdHandleReserved = 0xffeull | 0xfff0000000000000ull;
}  // namespace

Regs Module::tdh_mem_sept_add(const Regs& in) {
  Call c(*this, Leaf::MEM_SEPT_ADD, in);
  [&]() -> bool {
    const unsigned version = (in.rax >> 16) & 0xff;
    // §2.0 step 1: RDX reserved bits, then the version.
    if (in.rdx & kTdHandleReserved) return c.fail(raw(Status::OPERAND_INVALID, Operand::RDX));
    if (version > 1) return c.fail(raw(Status::OPERAND_INVALID, Operand::RAX));
    const bool allow_existing = in.rdx & 1;
    Prologue p;
    p.tdr_pa = in.rdx & ~1ull;
    p.min_level = kLevel2M;
    p.max_level = kPwl;
    p.tree_mode = LockMode::kShared;
    Target t;
    if (!prologue(c, p, &t)) return false;
    const SeptState s = t.e.state();
    if (s != SeptState::FREE && s != SeptState::NL_MAPPED)
      return c.fail_entry(raw(Status::EPT_ENTRY_STATE_INCORRECT, Operand::RCX), t.e, t.level);
    if (in.r8 == kNullPa) {
      // Version 0 needs a page; version 1 may name none for an existing table.
      if (version == 0) return c.fail(raw(Status::OPERAND_INVALID, Operand::R8));
      if (s != SeptState::NL_MAPPED)
        return c.fail_entry(raw(Status::EPT_ENTRY_STATE_INCORRECT, Operand::RCX), t.e, t.level);
      c.out.r8 = in.r8;
      return true;
    }
    const uint64_t page = in.r8 & ~(1ull << 63);  // bit 63 is ignored for a real page
    if (s == SeptState::NL_MAPPED) {
      if (!allow_existing)
        return c.fail_entry(raw(Status::EPT_ENTRY_STATE_INCORRECT, Operand::RCX), t.e, t.level);
      if (version == 1) c.out.r8 = page | (1ull << 63);  // "not used"
      return true;
    }
    PamtEntry* pp;
    if (!check_new_page(c, page, kLevel4K, Operand::R8, &pp)) return false;
    // Commit: a zeroed table of FREE entries under a new NL_MAPPED entry.
    new_sept_page(page);
    set_pamt(*pp, PageType::EPT, t.td->tdr);
    pp->bepoch = 0;
    t.td->chldcnt.fetch_add(1);
    sept_write_locked(*t.slot, SeptEntry::make(SeptState::NL_MAPPED, page));
    return true;
  }();
  return c.out;
}

Regs Module::tdh_mem_sept_remove(const Regs& in) {
  Call c(*this, Leaf::MEM_SEPT_REMOVE, in);
  [&]() -> bool {
    if (((in.rax >> 16) & 0xff) > 1) return c.fail(raw(Status::OPERAND_INVALID, Operand::RAX));
    Prologue p;
    p.tdr_pa = in.rdx;
    p.min_level = kLevel2M;
    p.max_level = kPwl;
    p.tree_mode = LockMode::kExclusive;
    Target t;
    if (!prologue(c, p, &t)) return false;
    if (!is_non_leaf(t.e.state()))
      return c.fail_entry(raw(Status::EPT_ENTRY_STATE_INCORRECT, Operand::RCX), t.e, t.level);
    const uint64_t child = t.e.hpa_bits();
    PamtEntry& cp = pamt_4k(child >> host::kPageShift);
    if (!cp.lock.try_exclusive()) return c.fail(raw(Status::OPERAND_BUSY, Operand::RCX));
    c.hold(cp.lock, LockMode::kExclusive);
    c.yield("child-pamt-locked");
    if (op_state_requires_tracking(t.td->op_state)) {
      if (t.e.state() != SeptState::NL_BLOCKED)
        return c.fail_entry(raw(Status::GPA_RANGE_NOT_BLOCKED, Operand::RCX), t.e, t.level);
      if (!is_tlb_tracked(*t.td, cp.bepoch))
        return c.fail(raw(Status::TLB_TRACKING_NOT_DONE, Operand::RCX));
    }
    SeptPage* sp = sept_page(child);
    for (auto& e : sp->e)
      if (SeptEntry{e.load()}.state() != SeptState::FREE)
        return c.fail_entry(raw(Status::EPT_PAGE_NOT_FREE, Operand::RCX), t.e, t.level);
    sept_write_locked(*t.slot, SeptEntry::make(SeptState::FREE, 0));
    t.td->chldcnt.fetch_sub(1);
    set_pamt(cp, PageType::NDA, 0);
    cp.bepoch = 0;
    free_sept_page(child);
    c.out.rcx = child;
    return true;
  }();
  return c.out;
}

}  // namespace tdx
