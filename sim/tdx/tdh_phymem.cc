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

// Run once a page at teardown (every guest page, then each S-EPT page): written without the
// Call object's lock stack, with the two locks in locals and each PAMT field read once (under
// the entry's exclusive lock they cannot change). It does what a Call does on return: the
// locks released in reverse order, host progress counted, the call hook.
Regs Module::tdh_phymem_page_reclaim(const Regs& in) {
  Regs out;
  SharexLock* page_lock = nullptr;  // exclusive
  SharexLock* tdr_lock = nullptr;   // shared
  [&]() -> bool {
    auto fail = [&](uint64_t status) {
      out.rax = status;
      return false;
    };
    const uint64_t pa = in.rcx;
    if ((pa & 0xfff) || (pa & kHkidMask) || (pa >> kMaxPaBits))
      return fail(raw(Status::OPERAND_INVALID, Operand::RCX));
    // in_tdmr(pa, 4K) for an aligned PA: the frame lies within the TDMR.
    const uint64_t pfn = pa >> host::kPageShift, off = pfn - base_;
    if (off >= n_) return fail(raw(Status::OPERAND_ADDR_RANGE_ERROR, Operand::RCX));
    int lvl;
    PamtEntry& p = pamt_leaf(pfn, &lvl);
    if (!p.lock.try_exclusive()) return fail(raw(Status::OPERAND_BUSY, Operand::RCX));
    page_lock = &p.lock;
    const PageType type = p.type.load();
    if (type == PageType::NDA || type == PageType::RSVD)
      return fail(raw(Status::PAGE_METADATA_INCORRECT, Operand::RCX));
    if (pa & (level_size(lvl) - 1)) return fail(raw(Status::OPERAND_INVALID, Operand::RCX));
    const uint64_t owner = p.owner.load();
    Td* td = td_of(owner);
    const bool is_tdr = type == PageType::TDR;
    if (!is_tdr) {  // the owner's TDR, shared and implicit
      SharexLock& tl = pamt_4k(owner >> host::kPageShift).lock;
      if (!tl.try_shared()) return fail(raw(Status::OPERAND_BUSY, Operand::TDR));
      tdr_lock = &tl;
    }
    if (!td || td->lifecycle != Lifecycle::TEARDOWN)
      return fail(raw(Status::LIFECYCLE_STATE_INCORRECT));
    if (is_tdr && td->chldcnt.load() != 0) return fail(raw(Status::TD_ASSOCIATED_PAGES_EXIST));
    out.rcx = static_cast<uint64_t>(type);
    out.rdx = owner;
    out.r8 = static_cast<uint64_t>(lvl);
    if (!is_tdr) host::rmw_sub(td->chldcnt, static_cast<int64_t>(level_pages(lvl)));
    // S-EPT pages, including the root (the frame is in the TDMR: checked above).
    if (sept_pages_[off]) free_sept_page(pfn << host::kPageShift);  // reused by new_sept_page
    set_pamt(p, lvl, pfn, PageType::NDA, 0);
    p.bepoch.store(0, std::memory_order_release);
    if (is_tdr) {
      p.lock.release_exclusive();
      page_lock = nullptr;
      tds_.erase(std::find_if(tds_.begin(), tds_.end(), [&](auto& t) { return t.get() == td; }));
    }
    return true;
  }();
  if (tdr_lock) tdr_lock->release_shared();
  if (page_lock) page_lock->release_exclusive();
  if (out.rax == 0) host::rmw_add(host_progress_, uint64_t{1}, std::memory_order_relaxed);
  if (hooks_->calls_observed())
    hooks_->on_call(kLeafInfo[static_cast<int>(Leaf::PHYMEM_PAGE_RECLAIM)].name, in, out);
  return out;
}

}  // namespace tdx
