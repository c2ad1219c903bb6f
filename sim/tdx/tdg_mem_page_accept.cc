// The guest's TDG.MEM.PAGE.ACCEPT (tdx-module.md §2.15). It takes no TDR, OP_STATE or tree
// lock: it walks unlocked and then takes the guest side of the entry lock, which it holds
// across its work, so a host SEAMCALL on the same entry meanwhile sees TDX_OPERAND_BUSY.
#include "sim/tdx/call.h"

namespace tdx {

AcceptResult Module::tdg_mem_page_accept(uint64_t tdvpr, uint64_t rcx) {
  AcceptResult r;
  Td* td = nullptr;
  Vcpu* v = vcpu_of(tdvpr, &td);
  Regs in, out;
  in.rcx = rcx;
  auto status = [&](uint64_t s) {
    r.kind = AcceptResult::kStatus;
    r.status = s;
    out.rax = s;
    if (hooks_->wants_calls) hooks_->on_call("TDG.MEM.PAGE.ACCEPT", in, out);
    return r;
  };
  auto ept_exit = [&](uint64_t gpa, int found_level, SeptEntry e) {
    r.kind = AcceptResult::kEptViolation;
    r.exit = {
        gpa, static_cast<int>(rcx & 7), found_level, public_state(e.state()), is_leaf(e.state()),
        true};
    out.rax = kExitReasonEptViolation;
    out.r8 = gpa;
    if (hooks_->wants_calls) hooks_->on_call("TDG.MEM.PAGE.ACCEPT", in, out);
    td_exit(tdvpr);  // not counted by the zero-step filter (see ept_violation_exit)
    return r;
  };
  if (!v || !v->in_td) {
    r.kind = AcceptResult::kNotInTd;
    return r;
  }
  // Step 1.
  const int level = static_cast<int>(rcx & 7);
  const uint64_t gpa = gpa_of(rcx);
  if ((rcx & 0xff8) || (rcx >> 52) || level > kLevel2M || (gpa & (level_size(level) - 1)))
    return status(raw(Status::OPERAND_INVALID, Operand::RCX));
  if ((gpa & kSharedBit) || (gpa >> kGpaw))
    return status(raw(Status::OPERAND_INVALID, Operand::RCX));
  // Step 2: unlocked walk.
  WalkResult w = walk(*td, gpa, level);
  if (!w.reached) {
    const SeptEntry e = sept_read(*w.slot);
    if (e.state() == SeptState::MAPPED)
      return status(raw(Status::PAGE_ALREADY_ACCEPTED, static_cast<uint32_t>(w.level)));
    return ept_exit(gpa, w.level, e);
  }
  // Step 3: guest entry lock; host priority makes the guest back off (reported as BUSY).
  SeptEntry seen;
  switch (sept_lock_acquire_guest(*w.slot, &seen)) {
    case GuestLock::kOk:
      break;
    case GuestLock::kBusy:
    case GuestLock::kBusyHostPriority:
      return status(raw(Status::OPERAND_BUSY, Operand::RCX));
  }
  hooks_->yield("accept-entry-locked");
  const SeptEntry e = sept_read(*w.slot).without_locks();
  // Steps 4-6.
  if (is_non_leaf(e.state())) {
    sept_lock_release(*w.slot);
    return status(raw(Status::PAGE_SIZE_MISMATCH, static_cast<uint32_t>(level)));
  }
  if (e.state() == SeptState::MAPPED) {
    sept_lock_release(*w.slot);
    return status(raw(Status::PAGE_ALREADY_ACCEPTED, static_cast<uint32_t>(level)));
  }
  if (e.state() != SeptState::PENDING) {
    sept_lock_release(*w.slot);
    return ept_exit(gpa, level, e);
  }
  // Step 7: zero the page chunk by chunk; a 2M ACCEPT saves its progress in ACCEPT_COUNTER
  // when an interrupt is pending and the TDCALL re-executes later.
  const uint64_t pfn = e.hpa(level) >> host::kPageShift;
  const unsigned chunks = static_cast<unsigned>(level_pages(level));
  for (unsigned i = level == kLevel4K ? 0 : e.accept_counter(); i < chunks; i++) {
    host_.store_content(pfn + i, 0);
    if (i + 1 < chunks && (i + 1) % 128 == 0) hooks_->yield("accept-chunk");
    if (i + 1 < chunks && hooks_->interrupt_pending("accept")) {
      sept_write_locked(*w.slot, e.with_accept_counter(i + 1));
      sept_lock_release(*w.slot);
      r.kind = AcceptResult::kResumed;
      out.rax = ~0ull;
      if (hooks_->wants_calls) hooks_->on_call("TDG.MEM.PAGE.ACCEPT", in, out);
      return r;
    }
  }
  // Step 8. Only a 2M leaf has an ACCEPT_COUNTER; in a 4K leaf bits 20:12 are HPA bits, which
  // clearing them would corrupt (§1.1).
  const SeptEntry done = level == kLevel4K ? e : e.with_accept_counter(0);
  sept_write_locked(*w.slot, done.with_state(SeptState::MAPPED));
  sept_lock_release(*w.slot);
  return status(raw(Status::SUCCESS));
}

}  // namespace tdx
