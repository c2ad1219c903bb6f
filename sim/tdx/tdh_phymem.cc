// TDH.PHYMEM.PAGE.WBINVD and TDH.PHYMEM.PAGE.RECLAIM (tdx-module.md §2.11, §2.12).
#include <algorithm>

#include "sim/tdx/call.h"

namespace tdx {

Regs Module::tdh_phymem_page_wbinvd(const Regs& in) {
  Call c(*this, Leaf::PHYMEM_PAGE_WBINVD, in);
  [&]() -> bool {
    // The PA carries the TD's HKID; it is stripped for the checks (§8.19).
    const uint64_t pa = in.rcx & ~kHkidMask;
    if ((pa & 0xfff) || (in.rcx >> kMaxPaBits))
      return c.fail(raw(Status::OPERAND_INVALID, Operand::RCX));
    if (!in_tdmr(pa, host::kPageSize))
      return c.fail(raw(Status::OPERAND_ADDR_RANGE_ERROR, Operand::RCX));
    int lvl;
    PamtEntry& p = pamt_leaf(pa >> host::kPageShift, &lvl);
    if (!p.lock.try_shared()) return c.fail(raw(Status::OPERAND_BUSY, Operand::RCX));
    c.hold(p.lock, LockMode::kShared);
    if (lvl != 0 || p.type != PageType::NDA)
      return c.fail(raw(Status::PAGE_METADATA_INCORRECT, Operand::RCX));
    host_.set_needs_wbinvd(pa >> host::kPageShift, false);
    return true;
  }();
  return c.out;
}

Regs Module::tdh_phymem_page_reclaim(const Regs& in) {
  Call c(*this, Leaf::PHYMEM_PAGE_RECLAIM, in);
  [&]() -> bool {
    const uint64_t pa = in.rcx;
    if ((pa & 0xfff) || (pa & kHkidMask) || (pa >> kMaxPaBits))
      return c.fail(raw(Status::OPERAND_INVALID, Operand::RCX));
    if (!in_tdmr(pa, host::kPageSize))
      return c.fail(raw(Status::OPERAND_ADDR_RANGE_ERROR, Operand::RCX));
    const uint64_t pfn = pa >> host::kPageShift;
    int lvl;
    PamtEntry& p = pamt_leaf(pfn, &lvl);
    if (!p.lock.try_exclusive()) return c.fail(raw(Status::OPERAND_BUSY, Operand::RCX));
    c.hold(p.lock, LockMode::kExclusive);
    if (p.type == PageType::NDA || p.type == PageType::RSVD)
      return c.fail(raw(Status::PAGE_METADATA_INCORRECT, Operand::RCX));
    if (pa & (level_size(lvl) - 1)) return c.fail(raw(Status::OPERAND_INVALID, Operand::RCX));
    Td* td = td_of(p.owner);
    const bool is_tdr = p.type == PageType::TDR;
    if (!is_tdr) {  // the owner's TDR, shared and implicit
      PamtEntry& tp = pamt_4k(p.owner >> host::kPageShift);
      if (!tp.lock.try_shared()) return c.fail(raw(Status::OPERAND_BUSY, Operand::TDR));
      c.hold(tp.lock, LockMode::kShared);
    }
    if (!td || td->lifecycle != Lifecycle::TEARDOWN)
      return c.fail(raw(Status::LIFECYCLE_STATE_INCORRECT));
    if (is_tdr && td->chldcnt.load() != 0) return c.fail(raw(Status::TD_ASSOCIATED_PAGES_EXIST));
    c.out.rcx = static_cast<uint64_t>(p.type.load());
    c.out.rdx = p.owner;
    c.out.r8 = static_cast<uint64_t>(lvl);
    if (!is_tdr) host::rmw_sub(td->chldcnt, static_cast<int64_t>(level_pages(lvl)));
    // S-EPT pages, including the root (the frame is in the TDMR: checked above).
    if (auto& sp = sept_pages_[pfn - base_]) sp.reset();
    set_pamt(p, lvl, pfn, PageType::NDA, 0);
    p.bepoch.store(0, std::memory_order_release);
    if (is_tdr) {
      c.release_all();
      tds_.erase(std::find_if(tds_.begin(), tds_.end(), [&](auto& t) { return t.get() == td; }));
    }
    return true;
  }();
  return c.out;
}

}  // namespace tdx
