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

// What every RECLAIM exit does after its locks are released: the call hook.
inline Regs Module::reclaim_done(const Regs& in, const Regs& out) {
  if (hooks_->calls_observed())
    hooks_->on_call(kLeafInfo[static_cast<int>(Leaf::PHYMEM_PAGE_RECLAIM)].name, in, out);
  return out;
}

// Run once a page at teardown (every guest page, then each S-EPT page): written without the
// Call object's lock stack, with the two locks in locals and each PAMT field read once (under
// the entry's exclusive lock they cannot change). It does what a Call does on return: the
// locks released in reverse order, host progress counted, the call hook. The checks after the
// PAMT lookup are specialised per PAMT level and single-thread mode (reclaim_leaf), so a 4K
// page's sizes are constants and the thread-local is read once.
Regs Module::tdh_phymem_page_reclaim(const Regs& in) {
  const uint64_t pa = in.rcx;
  Regs out;
  if ((pa & 0xfff) || (pa & kHkidMask) || (pa >> kMaxPaBits)) {
    out.rax = raw(Status::OPERAND_INVALID, Operand::RCX);
    return reclaim_done(in, out);
  }
  // in_tdmr(pa, 4K) for an aligned PA: the frame lies within the TDMR.
  const uint64_t pfn = pa >> host::kPageShift, off = pfn - base_;
  if (off >= n_) {
    out.rax = raw(Status::OPERAND_ADDR_RANGE_ERROR, Operand::RCX);
    return reclaim_done(in, out);
  }
  int lvl;
  PamtEntry& p = pamt_leaf(pfn, &lvl);
  const bool single = host::t_single_thread;
  switch (lvl) {
    case kLevel4K:
      return single ? reclaim_leaf<kLevel4K, true>(in, pfn, off, p)
                    : reclaim_leaf<kLevel4K, false>(in, pfn, off, p);
    case kLevel2M:
      return single ? reclaim_leaf<kLevel2M, true>(in, pfn, off, p)
                    : reclaim_leaf<kLevel2M, false>(in, pfn, off, p);
    default:
      return single ? reclaim_leaf<kLevel1G, true>(in, pfn, off, p)
                    : reclaim_leaf<kLevel1G, false>(in, pfn, off, p);
  }
}

// tdx-module.md §2.12, in its check order, for a page that is not a TDR.
template <int kLevel, bool kSingle>
Regs Module::reclaim_leaf(const Regs& in, uint64_t pfn, uint64_t off, PamtEntry& p) {
  Regs out;
  if (!p.lock.try_exclusive(kSingle)) {
    out.rax = raw(Status::OPERAND_BUSY, Operand::RCX);
    return reclaim_done(in, out);
  }
  const PageType type = p.type.load();
  const uint64_t owner = p.owner.load();
  if (type == PageType::TDR) return reclaim_tdr(in, pfn, off, p, kLevel);
  auto fail = [&](uint64_t status, SharexLock* tdr_lock) {
    out.rax = status;
    if (tdr_lock) tdr_lock->release_shared(kSingle);
    p.lock.release_exclusive();
    return reclaim_done(in, out);
  };
  if (type == PageType::NDA || type == PageType::RSVD)
    return fail(raw(Status::PAGE_METADATA_INCORRECT, Operand::RCX), nullptr);
  if (in.rcx & (level_size(kLevel) - 1))
    return fail(raw(Status::OPERAND_INVALID, Operand::RCX), nullptr);
  Td* td = td_of(owner);
  SharexLock& tl = pamt_4k(owner >> host::kPageShift).lock;  // the owner's TDR, shared, implicit
  if (!tl.try_shared(kSingle)) return fail(raw(Status::OPERAND_BUSY, Operand::TDR), nullptr);
  if (!td || td->lifecycle != Lifecycle::TEARDOWN)
    return fail(raw(Status::LIFECYCLE_STATE_INCORRECT), &tl);
  out.rcx = static_cast<uint64_t>(type);
  out.rdx = owner;
  out.r8 = static_cast<uint64_t>(kLevel);
  host::rmw_sub(td->chldcnt, static_cast<int64_t>(level_pages(kLevel)), std::memory_order_seq_cst,
                kSingle);
  // S-EPT pages, including the root (the frame is in the TDMR: checked by the caller).
  if (sept_pages_[off]) [[unlikely]]
    free_sept_page(pfn << host::kPageShift);  // reused by new_sept_page
  set_pamt(p, kLevel, pfn, PageType::NDA, 0);
  p.bepoch.store(0, std::memory_order_release);
  tl.release_shared(kSingle);
  p.lock.release_exclusive();
  host::rmw_add(host_progress_, uint64_t{1}, std::memory_order_relaxed, kSingle);
  return reclaim_done(in, out);
}

// The TD's own TDR, reclaimed last (tdx-module.md §2.12): its lock is the page lock (no implicit
// TDR lock), and the TD goes away with it.
[[gnu::noinline]] Regs Module::reclaim_tdr(const Regs& in, uint64_t pfn, uint64_t off, PamtEntry& p,
                                           int level) {
  Regs out;
  const uint64_t owner = p.owner.load();
  Td* td = td_of(owner);
  auto fail = [&](uint64_t status) {
    out.rax = status;
    p.lock.release_exclusive();
    return reclaim_done(in, out);
  };
  if (in.rcx & (level_size(level) - 1)) return fail(raw(Status::OPERAND_INVALID, Operand::RCX));
  if (!td || td->lifecycle != Lifecycle::TEARDOWN)
    return fail(raw(Status::LIFECYCLE_STATE_INCORRECT));
  if (td->chldcnt.load() != 0) return fail(raw(Status::TD_ASSOCIATED_PAGES_EXIST));
  out.rcx = static_cast<uint64_t>(PageType::TDR);
  out.rdx = owner;
  out.r8 = static_cast<uint64_t>(level);
  if (sept_pages_[off]) free_sept_page(pfn << host::kPageShift);
  set_pamt(p, level, pfn, PageType::NDA, 0);
  p.bepoch.store(0, std::memory_order_release);
  p.lock.release_exclusive();
  tds_.erase(std::find_if(tds_.begin(), tds_.end(), [&](auto& t) { return t.get() == td; }));
  host::rmw_add(host_progress_, uint64_t{1}, std::memory_order_relaxed);
  return reclaim_done(in, out);
}

}  // namespace tdx
