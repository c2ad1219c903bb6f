// TDH.MEM.PAGE.DEMOTE and TDH.MEM.PAGE.PROMOTE (tdx-module.md §2.9, §2.10, §4, §5).
#include <vector>

#include "sim/tdx/call.h"

namespace tdx {
namespace {
constexpr uint64_t kTdHandleReserved = 0xffeull | 0xfff0000000000000ull;

SeptState unblocked(SeptState s) {
  if (s == SeptState::BLOCKED) return SeptState::MAPPED;
  if (s == SeptState::PENDING_BLOCKED) return SeptState::PENDING;
  return s;
}
}  // namespace

Regs Module::tdh_mem_page_demote(const Regs& in) {
  Call c(*this, Leaf::MEM_PAGE_DEMOTE, in);
  [&]() -> bool {
    if (in.rdx & kTdHandleReserved) return c.fail(raw(Status::OPERAND_INVALID, Operand::RDX));
    Prologue p;
    p.tdr_pa = in.rdx & ~1ull;  // bit 0: L2_SEPT_ADD_MODE, irrelevant without L2 VMs
    p.min_level = kLevel2M;
    p.max_level = kLevel1G;
    Target t;
    // §4 step 1: the entry lock is taken in the prologue and held for the whole call.
    if (!prologue(c, p, &t)) return false;
    // Step 2.
    if (!is_leaf(t.e.state()))
      return c.fail_entry(raw(Status::EPT_ENTRY_STATE_INCORRECT, Operand::RCX), t.e, t.level);
    // Step 3: a partial 2M ACCEPT's counter is discarded. Our choice: only in the copy that
    // becomes the children; a DEMOTE that fails later leaves the entry as it was.
    const SeptEntry big = t.e.with_accept_counter(0);
    const int child_level = t.level - 1;
    const uint64_t hpa = big.hpa(t.level), pfn = hpa >> host::kPageShift;
    // Step 4: in a RUNNABLE TD the leaf must be blocked and TLB-tracked.
    PamtEntry& big_pamt = t.level == kLevel2M ? pamt_2m(pfn) : pamt_1g(pfn);
    if (op_state_requires_tracking(t.td->op_state)) {
      if (!is_any_blocked(t.e.state()))
        return c.fail_entry(raw(Status::GPA_RANGE_NOT_BLOCKED, Operand::RCX), t.e, t.level);
      if (!is_tlb_tracked(*t.td, big_pamt.bepoch))
        return c.fail(raw(Status::TLB_TRACKING_NOT_DONE, Operand::RCX));
    }
    // Step 5: the new S-EPT page, after the TLB checks (§8.8).
    PamtEntry* np;
    if (!check_new_page(c, in.r8, kLevel4K, Operand::R8, &np)) return false;
    // Step 7: a pending host interrupt, unless ENHANCED_DEMOTE_INTERRUPTIBILITY (§8.21).
    if (!opts_.enhanced_demote_interruptibility && c.interrupt_pending("demote")) {
      c.out.rcx = in.rcx;
      c.out.rdx = in.rdx;
      return c.fail(raw(Status::INTERRUPTED_RESTARTABLE));
    }
    // Step 8: pamt_demote.
    if (!big_pamt.lock.try_exclusive()) return c.fail(raw(Status::OPERAND_BUSY, Operand::RCX));
    c.hold(big_pamt.lock, LockMode::kExclusive);
    c.yield("demote-pamt-locked");
    // The parent's type and owner, read once: its PAMT lock is held exclusively.
    const PageType type = big_pamt.type.load();
    const uint64_t owner = big_pamt.owner.load();
    const uint64_t stride = level_pages(child_level);
    for (uint64_t i = 0; i < 512; i++) {
      const uint64_t cpfn = pfn + i * stride;
      PamtEntry& ch = child_level == kLevel4K ? pamt_4k(cpfn) : pamt_2m(cpfn);
      set_pamt(ch, child_level, cpfn, type, owner);
      ch.bepoch.store(0, std::memory_order_release);
    }
    set_pamt(big_pamt, t.level, pfn, PageType::NDA, 0);
    big_pamt.bepoch = 0;
    // Commit (cannot fail): children are the parent unblocked, HPA striding.
    SeptPage* sp = new_sept_page(in.r8);
    const SeptState cs = unblocked(big.state());
    for (uint64_t i = 0; i < 512; i++)
      sp->e[i].store(SeptEntry::make(cs, hpa + i * level_size(child_level)).raw,
                     std::memory_order_relaxed);
    set_pamt(*np, PageType::EPT, t.td->tdr);
    np->bepoch = 0;
    t.td->chldcnt.fetch_add(1);
    sept_write_locked(*t.slot, SeptEntry::make(SeptState::NL_MAPPED, in.r8));
    return true;
  }();
  return c.out;
}

Regs Module::tdh_mem_page_promote(const Regs& in) {
  Call c(*this, Leaf::MEM_PAGE_PROMOTE, in);
  std::vector<std::atomic<uint64_t>*> locked_children;
  auto release_children = [&] {
    for (auto* s : locked_children) sept_lock_release(*s);
    locked_children.clear();
  };
  [&]() -> bool {
    if (((in.rax >> 16) & 0xff) > 1) return c.fail(raw(Status::OPERAND_INVALID, Operand::RAX));
    Prologue p;
    p.tdr_pa = in.rdx;
    p.min_level = kLevel2M;
    p.max_level = kLevel1G;
    Target t;
    if (!prologue(c, p, &t)) return false;  // §5 step 1: parent entry lock
    if (!is_non_leaf(t.e.state()))          // step 2
      return c.fail_entry(raw(Status::EPT_ENTRY_STATE_INCORRECT, Operand::RCX), t.e, t.level);
    const uint64_t child_table = t.e.hpa_bits();
    PamtEntry& tp = pamt_4k(child_table >> host::kPageShift);  // step 3
    if (!tp.lock.try_exclusive()) return c.fail(raw(Status::OPERAND_BUSY, Operand::RCX));
    c.hold(tp.lock, LockMode::kExclusive);
    c.yield("child-table-pamt-locked");
    if (op_state_requires_tracking(t.td->op_state)) {  // step 4
      if (t.e.state() != SeptState::NL_BLOCKED)
        return c.fail_entry(raw(Status::GPA_RANGE_NOT_BLOCKED, Operand::RCX), t.e, t.level);
      if (!is_tlb_tracked(*t.td, tp.bepoch))
        return c.fail(raw(Status::TLB_TRACKING_NOT_DONE, Operand::RCX));
    }
    // Step 5: host-lock every child; a busy child fails the call and keeps its TDHP.
    SeptPage* sp = sept_page(child_table);
    for (auto& slot : sp->e) {
      SeptEntry seen;
      if (!sept_lock_acquire_host(slot, &seen)) {
        release_children();
        return c.fail_entry(raw(Status::OPERAND_BUSY, Operand::RCX), t.e, t.level);
      }
      locked_children.push_back(&slot);
    }
    c.yield("children-locked");
    const int child_level = t.level - 1;
    const SeptEntry c0 = sept_read(sp->e[0]).without_locks();
    bool ok = (c0.state() == SeptState::MAPPED || c0.state() == SeptState::PENDING) &&
              (c0.hpa_bits() & (level_size(t.level) - 1)) == 0;
    for (uint64_t i = 1; ok && i < 512; i++) {
      const SeptEntry ci = sept_read(sp->e[i]).without_locks();
      ok = (ci.raw & ~kHpaMask) == (c0.raw & ~kHpaMask) &&
           ci.hpa_bits() == c0.hpa_bits() + i * level_size(child_level);
    }
    if (!ok) {
      release_children();
      return c.fail_entry(raw(Status::EPT_INVALID_PROMOTE_CONDITIONS, Operand::RCX), t.e, t.level);
    }
    if (c.interrupt_pending("promote")) {  // step 6
      release_children();
      c.out.rcx = in.rcx;
      c.out.rdx = in.rdx;
      return c.fail(raw(Status::INTERRUPTED_RESTARTABLE));
    }
    // Step 7: pamt_promote.
    const uint64_t pfn = c0.hpa_bits() >> host::kPageShift;
    PamtEntry& big = t.level == kLevel2M ? pamt_2m(pfn) : pamt_1g(pfn);
    if (!big.lock.try_exclusive()) {
      release_children();
      return c.fail(raw(Status::OPERAND_BUSY, Operand::RCX));
    }
    c.hold(big.lock, LockMode::kExclusive);
    c.yield("promote-pamt-locked");
    PamtEntry& first = child_level == kLevel4K ? pamt_4k(pfn) : pamt_2m(pfn);
    set_pamt(big, first.type.load(), first.owner.load());  // BEPOCH is not reset (§5 step 7)
    for (uint64_t i = 0; i < 512; i++) {
      PamtEntry& ch = child_level == kLevel4K ? pamt_4k(pfn + i) : pamt_2m(pfn + i * 512);
      set_pamt(ch, PageType::NDA, 0);
      ch.bepoch = 0;
    }
    locked_children.clear();  // the table goes away with its locks
    sept_write_locked(*t.slot, c0);
    t.td->chldcnt.fetch_sub(1);
    set_pamt(tp, PageType::NDA, 0);
    tp.bepoch = 0;
    free_sept_page(child_table);
    c.out.rcx = child_table;
    return true;
  }();
  return c.out;
}

}  // namespace tdx
