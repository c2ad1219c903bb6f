// TDH.VP.ENTER (epoch and lock aspects), the TD exit, and TDH.VP.FLUSH (tdx-module.md §2.14).
//
// Modelling choice: our VP.ENTER returns when the vCPU is in guest mode (RAX = TDX_SUCCESS);
// the TD exit is a separate step (td_exit). A zero-step synthetic exit returns from VP.ENTER
// at once with RAX = EPT-violation exit reason and R8 = the GPA.
#include "sim/tdx/call.h"

namespace tdx {

void Module::note_ept_violation(Vcpu& v, uint64_t gpa) {
  // Consecutive EPT-violation exits at one GPA stand for "at the same guest RIP".
  if (gpa == v.last_fault_gpa)
    v.fault_streak++;
  else
    v.last_fault_gpa = gpa, v.fault_streak = 1;
  if (opts_.zero_step_mitigation && v.fault_streak >= opts_.zero_step_threshold) {
    for (uint64_t g : v.epf_gpas)
      if (g == gpa) return;
    v.epf_gpas.push_back(gpa);
  }
}

bool Module::ept_violation_exit(uint64_t tdvpr, uint64_t gpa) {
  Td* td = nullptr;
  Vcpu* v = vcpu_of(tdvpr, &td);
  if (!v || !v->in_td) return false;
  note_ept_violation(*v, gpa & ~0xfffull);
  return td_exit(tdvpr);
}

// is_epf_expected (§2.14 step 4): the walk fails, and not with a violation the CPU converts to
// #VE (§2.15, last paragraph). A PENDING
// leaf converts only without SEPT_VE_DISABLE; with it (the default, as Linux guests set it)
// a listed GPA the host has AUGed still counts as faulting until the guest ACCEPTs it.
bool Module::would_fault(Td& td, uint64_t gpa) {
  WalkResult w = walk(td, gpa, kLevel4K);
  const SeptState s = sept_read(*w.slot).state();
  if (s == SeptState::MAPPED) return false;
  return !(s == SeptState::PENDING && !td.sept_ve_disable);
}

Regs Module::tdh_vp_enter(const Regs& in) {
  Call c(*this, Leaf::VP_ENTER, in);
  [&]() -> bool {
    const uint64_t pa = in.rcx;
    if ((pa & 0xfff) || (pa & kHkidMask) || (pa >> kMaxPaBits))
      return c.fail(raw(Status::OPERAND_INVALID, Operand::RCX));
    if (!in_tdmr(pa, host::kPageSize))
      return c.fail(raw(Status::OPERAND_ADDR_RANGE_ERROR, Operand::RCX));
    int lvl;
    PamtEntry& vp = pamt_leaf(pa >> host::kPageShift, &lvl);
    // The TDVPR and TDR locks stay held while the vCPU is in guest mode, so they are not
    // released by the Call on success; `keep` tracks them until then.
    if (!vp.lock.try_shared()) return c.fail(raw(Status::OPERAND_BUSY, Operand::RCX));
    c.yield("tdvpr-locked");
    int held = 1;
    PamtEntry* tdr_pamt = nullptr;
    auto drop = [&] {
      if (held >= 2) tdr_pamt->lock.release_shared();
      vp.lock.release_shared();
      held = 0;
    };
    if (vp.type != PageType::TDVPR || lvl != 0)
      return drop(), c.fail(raw(Status::PAGE_METADATA_INCORRECT, Operand::RCX));
    Td* td = nullptr;
    Vcpu* v = vcpu_of(pa, &td);
    tdr_pamt = &pamt_4k(td->tdr >> host::kPageShift);
    if (!tdr_pamt->lock.try_shared())
      return drop(), c.fail(raw(Status::OPERAND_BUSY, Operand::TDR));
    held = 2;
    c.yield("tdr-locked");
    if (td->fatal) return drop(), c.fail(raw(Status::TD_FATAL));
    if (td->lifecycle != Lifecycle::KEYS_CONFIGURED)
      return drop(), c.fail(raw(Status::TD_KEYS_NOT_CONFIGURED));
    if (!td->tdcs_allocated) return drop(), c.fail(raw(Status::TDCS_NOT_ALLOCATED));
    if (!td->op_state_lock.try_shared())
      return drop(), c.fail(raw(Status::OPERAND_BUSY, Operand::OP_STATE));
    c.hold(td->op_state_lock, LockMode::kShared);  // released before entering the guest
    c.yield("op-state-locked");
    if (td->op_state != OpState::RUNNABLE) return drop(), c.fail(raw(Status::OP_STATE_INCORRECT));
    // Our choice: entering a vCPU that is already in guest mode (or not initialised) fails
    // the vCPU state check.
    if (!v->initialized || v->in_td) return drop(), c.fail(raw(Status::VCPU_STATE_INCORRECT));
    // Step 2: the vCPU is associated with this LP before the epoch and zero-step steps, and
    // stays associated if they fail (§2.14 step 2), so it still needs TDH.VP.FLUSH.
    v->associated = true;
    // adjust_tlb_tracking_state (step 3).
    if (!td->epoch_lock.try_shared())
      return drop(), c.fail(raw(Status::OPERAND_BUSY, Operand::TD_EPOCH));
    c.yield("epoch-locked");
    const uint64_t e = td->td_epoch.load(std::memory_order_acquire);
    td->refcount[e & 1].fetch_add(1, std::memory_order_acq_rel);
    td->epoch_lock.release_shared();
    auto undo_refcount = [&] { td->refcount[e & 1].fetch_sub(1, std::memory_order_acq_rel); };
    // Still step 3: a new epoch is adopted (and this vCPU's TD translations flushed) before the
    // zero-step filter, so it stays adopted when the filter fails (§2.14 steps 3-4, §8.11).
    if (v->epoch != e) {
      v->epoch = e;
      v->tlb_flushes++;
      hooks_->on_tlb_flush(*td, static_cast<int>(v - td->vcpus.data()));
    }
    // Step 4: the zero-step filter.
    if (!v->epf_gpas.empty()) {
      if (!td->sept_lock.try_exclusive())
        return undo_refcount(), drop(), c.fail(raw(Status::OPERAND_BUSY, Operand::SEPT_TREE));
      c.yield("zero-step-tree-locked");
      for (uint64_t gpa : v->epf_gpas) {
        if (!would_fault(*td, gpa)) continue;
        td->sept_lock.release_exclusive();
        undo_refcount();
        drop();
        c.out.rax = kExitReasonEptViolation;
        c.out.r8 = gpa & ~0xfffull;
        return false;
      }
      v->epf_gpas.clear();
      v->fault_streak = 0;
      td->sept_lock.release_exclusive();
    }
    v->in_td = true;
    c.out.rax = raw(Status::SUCCESS);
    return true;
  }();
  return c.out;
}

bool Module::td_exit(uint64_t tdvpr) {
  Td* td = nullptr;
  Vcpu* v = vcpu_of(tdvpr, &td);
  Regs in, out;
  in.rcx = tdvpr;
  if (!v || !v->in_td) return false;
  td->refcount[v->epoch & 1].fetch_sub(1, std::memory_order_acq_rel);
  v->in_td = false;
  pamt_4k(td->tdr >> host::kPageShift).lock.release_shared();
  pamt_4k(tdvpr >> host::kPageShift).lock.release_shared();
  if (hooks_->calls_observed()) hooks_->on_call("TD.EXIT", in, out);
  return true;
}

Regs Module::tdh_vp_flush(const Regs& in) {
  Call c(*this, Leaf::VP_FLUSH, in);
  [&]() -> bool {
    const uint64_t pa = in.rcx;
    if ((pa & 0xfff) || (pa & kHkidMask) || (pa >> kMaxPaBits))
      return c.fail(raw(Status::OPERAND_INVALID, Operand::RCX));
    if (!in_tdmr(pa, host::kPageSize))
      return c.fail(raw(Status::OPERAND_ADDR_RANGE_ERROR, Operand::RCX));
    int lvl;
    PamtEntry& vp = pamt_leaf(pa >> host::kPageShift, &lvl);
    // Exclusive: a vCPU in guest mode holds its TDVPR shared, so it cannot be flushed.
    if (!vp.lock.try_exclusive()) return c.fail(raw(Status::OPERAND_BUSY, Operand::RCX));
    c.hold(vp.lock, LockMode::kExclusive);
    if (vp.type != PageType::TDVPR || lvl != 0)
      return c.fail(raw(Status::PAGE_METADATA_INCORRECT, Operand::RCX));
    Td* td = nullptr;
    Vcpu* v = vcpu_of(pa, &td);
    if (!v->associated) return c.fail(raw(Status::VCPU_NOT_ASSOCIATED));
    v->associated = false;
    return true;
  }();
  return c.out;
}

}  // namespace tdx
