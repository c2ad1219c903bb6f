// TDH.MEM.PAGE.ADD, TDH.MEM.PAGE.AUG and TDH.MEM.PAGE.REMOVE (tdx-module.md §2.3, §2.4, §2.8).
#include "sim/tdx/call.h"

namespace tdx {

Regs Module::tdh_mem_page_add(const Regs& in) {
  Call c(*this, Leaf::MEM_PAGE_ADD, in);
  [&]() -> bool {
    // TDR exclusive serialises PAGE.ADD; no OP_STATE, tree or entry lock (§2.3, §8.20).
    Prologue p;
    p.tdr_pa = in.rdx;
    p.tdr_mode = LockMode::kExclusive;
    p.op_state_lock = false;
    p.allowed = kOnlyInitialized;
    p.min_level = p.max_level = kLevel4K;
    p.tree = false;
    p.entry_lock = false;
    Target t;
    if (!prologue(c, p, &t)) return false;
    if (t.e.state() != SeptState::FREE)
      return c.fail_entry(raw(Status::EPT_ENTRY_STATE_INCORRECT, Operand::RCX), t.e, t.level);
    // The source is an ordinary shared page: aligned, no KeyID bits, below MAX_PA.
    if ((in.r9 & 0xfff) || (in.r9 & kHkidMask) || (in.r9 >> kMaxPaBits))
      return c.fail(raw(Status::OPERAND_INVALID, Operand::R9));
    PamtEntry* pp;
    if (!check_new_page(c, in.r8, kLevel4K, Operand::R8, &pp)) return false;
    const uint64_t dst = in.r8 >> host::kPageShift, src = in.r9 >> host::kPageShift;
    host_.content(dst) = host_.contains(src) ? host_.content(src).load() : 0;
    set_pamt(*pp, PageType::REG, t.td->tdr);
    pp->bepoch = 0;
    t.td->chldcnt.fetch_add(1);
    t.td->mrtd = (t.td->mrtd ^ t.gpa) * 0x100000001b3ull;  // TDH.MR.EXTEND stand-in
    sept_write_locked(*t.slot, SeptEntry::make(SeptState::MAPPED, in.r8));
    return true;
  }();
  return c.out;
}

Regs Module::tdh_mem_page_aug(const Regs& in) {
  Call c(*this, Leaf::MEM_PAGE_AUG, in);
  [&]() -> bool {
    Prologue p;
    p.tdr_pa = in.rdx;
    p.min_level = kLevel4K;
    p.max_level = kLevel2M;
    Target t;
    if (!prologue(c, p, &t)) return false;
    const SeptState s = t.e.state();
    if (s != SeptState::FREE && s != SeptState::REMOVED)
      return c.fail_entry(raw(Status::EPT_ENTRY_STATE_INCORRECT, Operand::RCX), t.e, t.level);
    PamtEntry* pp;
    if (!check_new_page(c, in.r8, t.level, Operand::R8, &pp)) return false;
    set_pamt(*pp, PageType::REG, t.td->tdr);
    pp->bepoch = 0;
    t.td->chldcnt.fetch_add(static_cast<int64_t>(level_pages(t.level)));
    sept_write_locked(*t.slot, SeptEntry::make(SeptState::PENDING, in.r8));
    return true;
  }();
  return c.out;
}

Regs Module::tdh_mem_page_remove(const Regs& in) {
  Call c(*this, Leaf::MEM_PAGE_REMOVE, in);
  [&]() -> bool {
    Prologue p;
    p.tdr_pa = in.rdx;
    p.min_level = kLevel4K;
    p.max_level = kLevel1G;
    Target t;
    if (!prologue(c, p, &t)) return false;
    if (!is_leaf(t.e.state()))
      return c.fail_entry(raw(Status::EPT_ENTRY_STATE_INCORRECT, Operand::RCX), t.e, t.level);
    const uint64_t hpa = t.e.hpa(t.level);  // ACCEPT_COUNTER bits ignored
    const uint64_t pfn = hpa >> host::kPageShift;
    PamtEntry& pp = t.level == kLevel4K   ? pamt_4k(pfn)
                    : t.level == kLevel2M ? pamt_2m(pfn)
                                          : pamt_1g(pfn);
    if (!pp.lock.try_exclusive()) return c.fail(raw(Status::OPERAND_BUSY, Operand::RCX));
    c.hold(pp.lock, LockMode::kExclusive);
    c.yield("page-pamt-locked");
    if (op_state_requires_tracking(t.td->op_state)) {
      if (!is_any_blocked(t.e.state()))
        return c.fail_entry(raw(Status::GPA_RANGE_NOT_BLOCKED, Operand::RCX), t.e, t.level);
      if (!is_tlb_tracked(*t.td, pp.bepoch))
        return c.fail(raw(Status::TLB_TRACKING_NOT_DONE, Operand::RCX));
    }
    sept_write_locked(*t.slot, SeptEntry::make(SeptState::FREE, 0));
    t.td->chldcnt.fetch_sub(static_cast<int64_t>(level_pages(t.level)));
    set_pamt(pp, PageType::NDA, 0);
    pp.bepoch = 0;
    c.out.rcx = hpa;
    return true;
  }();
  return c.out;
}

}  // namespace tdx
