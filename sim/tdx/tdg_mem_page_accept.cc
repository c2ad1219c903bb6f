// The guest's TDG.MEM.PAGE.ACCEPT (tdx-module.md §2.15). It takes no TDR, OP_STATE or tree
// lock: it walks unlocked and then takes the guest side of the entry lock, which it holds
// across its work, so a host SEAMCALL on the same entry meanwhile sees TDX_OPERAND_BUSY.
//
// The 4K ACCEPT is the hot case (a Linux guest falls back to 512 of them when the host mapped
// smaller than 2M): it runs straight through, and the exits build their registers only when
// they report.
#include "sim/tdx/call.h"

namespace tdx {

// The registers are built only for an observer: most runs log nothing.
[[gnu::cold, gnu::noinline]] void Module::log_accept(uint64_t rcx, uint64_t rax, uint64_t r8) {
  Regs in, out;
  in.rcx = rcx;
  out.rax = rax;
  out.r8 = r8;
  hooks_->on_call("TDG.MEM.PAGE.ACCEPT", in, out);
}

AcceptResult Module::accept_status(uint64_t rcx, uint64_t status) {
  AcceptResult r;
  r.kind = AcceptResult::kStatus;
  r.status = status;
  if (hooks_->calls_observed()) [[unlikely]]
    log_accept(rcx, status, 0);
  return r;
}

[[gnu::cold]] AcceptResult Module::accept_ept_exit(uint64_t tdvpr, uint64_t rcx, uint64_t gpa,
                                                   int found_level, SeptEntry e) {
  AcceptResult r;
  r.kind = AcceptResult::kEptViolation;
  r.exit = {
      gpa, static_cast<int>(rcx & 7), found_level, public_state(e.state()), is_leaf(e.state()),
      true};
  if (hooks_->calls_observed()) log_accept(rcx, kExitReasonEptViolation, gpa);
  td_exit(tdvpr);  // not counted by the zero-step filter (see ept_violation_exit)
  return r;
}

AcceptResult Module::tdg_mem_page_accept(uint64_t tdvpr, uint64_t rcx) {
  Td* td = nullptr;
  Vcpu* v = vcpu_of(tdvpr, &td);
  if (!v) [[unlikely]] {
    AcceptResult r;
    r.kind = AcceptResult::kNotInTd;
    return r;
  }
  return tdg_mem_page_accept(*td, *v, rcx);
}

AcceptResult Module::tdg_mem_page_accept(Td& td, Vcpu& vcpu, uint64_t rcx) {
  if (!vcpu.in_td) [[unlikely]] {
    AcceptResult r;
    r.kind = AcceptResult::kNotInTd;
    return r;
  }
  // Step 1, one test per level: reserved bits 11:3 and 63:52, the shared bit, GPA bits at or
  // above GPAW and GPA bits below the level's alignment all make RCX invalid.
  const int level = static_cast<int>(rcx & 7);
  const uint64_t gpa = gpa_of(rcx);
  constexpr uint64_t kInvalid = 0xff8 | ~0x000fffffffffffffull | kSharedBit |
                                (0x000ffffffffff000ull & ~((1ull << kGpaw) - 1));
  if (level > kLevel2M || (rcx & (kInvalid | ((level_size(level) - 1) & ~0xfffull)))) [[unlikely]]
    return accept_status(rcx, raw(Status::OPERAND_INVALID, Operand::RCX));
  // Step 2: unlocked walk.
  const WalkResult w = walk(td, gpa, level);
  std::atomic<uint64_t>& slot = *w.slot;
  if (!w.reached) [[unlikely]] {
    const SeptEntry e = sept_read(slot);
    if (e.state() == SeptState::MAPPED)
      return accept_status(rcx, raw(Status::PAGE_ALREADY_ACCEPTED, static_cast<uint32_t>(w.level)));
    return accept_ept_exit(vcpu.tdvpr, rcx, gpa, w.level, e);
  }
  // Step 3: guest entry lock; host priority makes the guest back off (reported as BUSY).
  SeptEntry seen;
  if (sept_lock_acquire_guest(slot, &seen) != GuestLock::kOk)
    return accept_status(rcx, raw(Status::OPERAND_BUSY, Operand::RCX));
  hooks_->yield("accept-entry-locked");
  const SeptEntry e = sept_read(slot).without_locks();
  // Steps 4-6.
  const SeptState s = e.state();
  if (s != SeptState::PENDING) {
    sept_lock_release(slot);
    if (s == SeptState::MAPPED)
      return accept_status(rcx, raw(Status::PAGE_ALREADY_ACCEPTED, static_cast<uint32_t>(level)));
    if (is_non_leaf(s))
      return accept_status(rcx, raw(Status::PAGE_SIZE_MISMATCH, static_cast<uint32_t>(level)));
    return accept_ept_exit(vcpu.tdvpr, rcx, gpa, level, e);
  }
  // Step 7: zero the page chunk by chunk; a 2M ACCEPT saves its progress in ACCEPT_COUNTER
  // when an interrupt is pending and the TDCALL re-executes later. Between chunks (never
  // after the last one) it offers a yield every 128 chunks and checks for an interrupt.
  const uint64_t pfn = e.hpa(level) >> host::kPageShift;
  if (level == kLevel4K) {
    host_.store_content(pfn, 0);
    // Step 8. In a 4K leaf bits 20:12 are HPA bits, which clearing an ACCEPT_COUNTER there
    // would corrupt (§1.1).
    sept_write_unlock(slot, e.with_state(SeptState::MAPPED));
    return accept_status(rcx, raw(Status::SUCCESS));
  }
  const unsigned chunks = static_cast<unsigned>(level_pages(level));
  unsigned i = e.accept_counter();
  if (i < chunks) {
    // The chunks share one 2M block of the pool (its base is 2M-aligned): touched once here,
    // then plain stores as store_content makes them.
    std::atomic<uint64_t>* chunk = &host_.content(pfn);
    for (; i + 1 < chunks; i++) {
      chunk[i].store(0, std::memory_order_relaxed);
      if ((i + 1) % 128 == 0) hooks_->yield("accept-chunk");
      if (hooks_->interrupt_pending("accept")) {
        sept_write_unlock(slot, e.with_accept_counter(i + 1));
        AcceptResult r;
        r.kind = AcceptResult::kResumed;
        if (hooks_->calls_observed()) log_accept(rcx, ~0ull, 0);
        return r;
      }
    }
    chunk[i].store(0, std::memory_order_relaxed);
  }
  // Step 8: only a 2M leaf has an ACCEPT_COUNTER.
  sept_write_unlock(slot, e.with_accept_counter(0).with_state(SeptState::MAPPED));
  return accept_status(rcx, raw(Status::SUCCESS));
}

}  // namespace tdx
