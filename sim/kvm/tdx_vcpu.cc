// The vCPU side: the run loop (tdx_vcpu_run), exits, and the EPT-violation handler with its
// local retry and the v2 accept-level split (kvm-tdx.md §2.A A1, §2.C T1, §2.F F1).
#include "sim/kvm/kvm.h"

#include "sim/sched/probe.h"

namespace kvm {

using tdx::Leaf;

// kvm_arch_vcpu_ioctl_run past its inline fast path.
int Kvm::vcpu_run(int v) {
  if (vm_dead_) return -kEIO;
  if (state_ != TdState::RUNNABLE) return -kEINVAL;  // tdx_vcpu_pre_run
  if (vcpu_in_guest(v)) return 0;
  uint64_t filtered_gpa = ~0ull;  // the last zero-step synthetic exit's GPA
  for (uint64_t tries = 0;; tries++) {
    if (tries > opts_.local_retry_limit && zero_step_waits_for_guest(filtered_gpa)) {
      // The guest touched a page before accepting it, enough times (ENOMEM-failed faults) to
      // arm the zero-step filter; KVM has since AUGed it, but under SEPT_VE_DISABLE the filter
      // keeps counting the PENDING page as faulting, and only the guest's ACCEPT could clear
      // it (tdx-module.md §2.14 step 4). The kernel re-enters until a signal (kvm-tdx.md §2.F):
      // the guest's own denial of service, not a host liveness failure. Our choice: end
      // KVM_RUN as a signal would. Found by kvm_ops.
      sched::hit(sched::Probe::zero_step_pending_spin);
      return -kEINTR;
    }
    if (tries > opts_.local_retry_limit) {
      add_violation({"liveness", "tdx_vcpu_run",
                     "vCPU " + std::to_string(v) + " could not enter the guest after " +
                         std::to_string(tries) + " attempts" +
                         (wait_for_sept_zap_.load() ? " (wait_for_sept_zap is set)" : "")});
      return -kEINTR;
    }
    if (vm_dead_) return -kEIO;
    // vcpu->mode = IN_GUEST_MODE before the checks, so that a kick sent from here on waits
    // for this vCPU (kvm-tdx.md §7.9).
    mode_[v] = true;
    // The no-vCPUs-enter flag: back to the run loop without TDH.VP.ENTER (the kernel spins
    // through the run loop; here the actor waits for the flag to clear).
    if (wait_for_sept_zap_.load()) {
      leave_guest_mode(v);
      sched::hit(sched::Probe::vcpu_held_out);
      if (!env_->block_until("wait_for_sept_zap to clear",
                             [&] { return !wait_for_sept_zap_.load(); })) {
        yield("vcpu-run-fastpath");
        continue;
      }
      continue;
    }
    yield("vcpu-enter");
    // vcpu_enter_guest checks pending requests after setting IN_GUEST_MODE: a VM that died
    // meanwhile (KVM_REQ_VM_DEAD, kvm-tdx.md §3) is not entered.
    if (vm_dead_) {
      leave_guest_mode(v);
      return -kEIO;
    }
    tdx::Regs r = seamcall(Leaf::VP_ENTER, tdvpr(v));
    if (r.rax == 0) {
      // The VM died while VP.ENTER ran: kvm_vm_dead()'s KVM_REQ_VM_DEAD IPI (§3), sent while the
      // vCPU was IN_GUEST_MODE, takes it straight out again (kvm_ops found a vCPU left inside
      // a dead VM holding its epoch, failing a later zap's REMOVE).
      if (vm_dead_) {
        vcpu_async_exit(v);
        return -kEIO;
      }
      // An IPI that arrived meanwhile takes the vCPU straight out again.
      // It did enter: a kick that takes it out again is the host's progress, not a failed
      // attempt (a long zap kicks once per leaf).
      if (vcpu_ack_kick(v)) {
        tries--;
        continue;
      }
      return 0;
    }
    leave_guest_mode(v);
    // BUSY (a TRACK holds the epoch lock, or the zero-step filter met the tree lock): fastpath
    // EXIT_HANDLED, so a pending kick can be acknowledged; try again.
    if (tdx::is_busy(r.rax)) {
      sched::hit(sched::Probe::vcpu_enter_busy);
      env_->spin("vcpu-enter-busy");
      continue;
    }
    if (r.rax == tdx::kExitReasonEptViolation) {  // the zero-step filter's synthetic exit
      filtered_gpa = r.r8;
      int h = tdx_handle_ept_violation(v, r.r8, 0, {});
      if (h < 0) return h;
      continue;
    }
    return -kEIO;  // TDX_ERROR: an internal-error exit to userspace
  }
}

// Simulator oracle (no SEAMCALL): the S-EPT leaf at `gpa` is PENDING and the TD has
// SEPT_VE_DISABLE, so the zero-step filter waits for a guest ACCEPT.
bool Kvm::zero_step_waits_for_guest(uint64_t gpa) {
  tdx::Td* td = gpa == ~0ull ? nullptr : module_.td_of(tdr_);
  if (!td || !td->sept_ve_disable) return false;
  auto w = module_.walk(*td, gpa, 0);
  return tdx::SeptEntry{w.slot->load()}.state() == tdx::SeptState::PENDING;
}

// Back in KVM: vcpu->mode = OUTSIDE_GUEST_MODE; a pending IPI is acknowledged by the exit.
void Kvm::leave_guest_mode(int v) {
  mode_[v] = false;
  if (host::rmw_exchange(kick_pending_[v], false)) host::rmw_sub(kicks_pending_, 1);
  exits_[v]++;
  env_->notify();
}

void Kvm::vcpu_async_exit(int v) {
  module_.td_exit(tdvpr(v));  // no-op when not in guest mode
  leave_guest_mode(v);
}

// tdx_check_accept_level (v2 patch 14, T1): the guest accepted at a smaller size than KVM
// mapped. Split under the write lock, then inhibit huge mappings above the accept level.
int Kvm::tdx_check_accept_level(int v, uint64_t gfn, const tdx::EptExit& info) {
  (void)v;
  if (!info.accept || gfn >= nr_gfns_) return 0;
  const int accept_level = info.requested_level + 1;
  // Mappings never exceed 2M here, so only a 4K accept needs a split (and the 1G inhibit a
  // 2M accept would set has no effect on this model).
  if (accept_level != kPg4K) return 0;
  if (lpage_[gfn >> 9] & kLpageGuestInhibit) return 0;  // checked without mmu_lock: one-way bit
  mmu_write_lock();
  int r = kvm_split_cross_boundary_leafs(gfn, gfn + 1, /*shared=*/false);
  if (r && (r < 0 || opts_.v2_accept_split_early_return)) {
    // §7.5: v2 returns here even for "flush needed" (1); the guest re-executes ACCEPT and the
    // inhibit bit is set on the next exit.
    mmu_write_unlock();
    return r;
  }
  lpage_[gfn >> 9] |= kLpageGuestInhibit;
  mmu_write_unlock();
  return 0;
}

int Kvm::kvm_mmu_do_page_fault(int v, uint64_t gfn, int max_level, bool leave_mapped) {
  const uint64_t mmu_seq = mmu_invalidate_seq_;
  if (attr_shared_[gfn]) return -kEFAULT;  // private fault on a shared GFN: KVM_EXIT_MEMORY_FAULT
  uint64_t pfn;
  int folio_level;
  // kvm_gmem_populate (INIT_MEM_REGION) faults with the invalidate lock already held.
  const bool held =
      gmem_invalidate_lock_.writer && gmem_invalidate_lock_.writer_actor == env_->actor() + 1;
  if (!held) filemap_invalidate_lock(false);
  const bool got = gmem_get_pfn(gfn, &pfn, &folio_level);
  if (!held) filemap_invalidate_unlock(false);
  if (!got) return -kENOMEM;
  // fault->max_level: the private max-level hook and the folio, before mmu_lock.
  const int max = std::min({max_level, tdx_max_private_level(), folio_level});
  mmu_read_lock();
  // lpage_info (MIXED, GUEST_INHIBIT) is read under mmu_lock in kvm_mmu_hugepage_adjust, so a
  // GUEST_INHIBIT set by T1 under the write lock is always seen.
  int r = is_page_fault_stale(gfn, max, mmu_seq)
              ? RET_PF_RETRY
              : kvm_tdp_mmu_map(v, gfn, kvm_mmu_hugepage_adjust(gfn, max), leave_mapped);
  mmu_read_unlock();
  return r;
}

// An invalidation (conversion, punch hole) in progress over the range the fault may map, or
// one that completed since the fault sampled the sequence count: the fault must retry
// (mmu_invalidate_retry_gfn). The kernel checks fault->gfn only; with 2M guest_memfd folios
// (which mainline does not have) that lets a fault holding a 2M folio's PFN map it at 2M
// while a punch hole of another page of that folio sits between its zap and its truncation
// (kvm_ops found it). Our choice: the check covers the whole max_level range.
bool Kvm::is_page_fault_stale(uint64_t gfn, int max_level, uint64_t mmu_seq) const {
  return invalidation_covers(gfn, max_level) || mmu_invalidate_seq_ != mmu_seq;
}

bool Kvm::invalidation_covers(uint64_t gfn, int max_level) const {
  const uint64_t base = gfn & ~(pages_per(max_level) - 1), end = base + pages_per(max_level);
  return mmu_invalidate_in_progress_ && base < mmu_invalidate_end_ && mmu_invalidate_start_ < end;
}

void Kvm::kvm_mmu_invalidate_begin(uint64_t start, uint64_t end) {
  lockdep_assert(LockNeed::kWrite, "kvm_mmu_invalidate_begin");
  if (!mmu_invalidate_in_progress_++) {
    mmu_invalidate_start_ = start;
    mmu_invalidate_end_ = end;
  } else {
    mmu_invalidate_start_ = std::min(mmu_invalidate_start_.load(), start);
    mmu_invalidate_end_ = std::max(mmu_invalidate_end_.load(), end);
  }
}

void Kvm::kvm_mmu_invalidate_end() {
  lockdep_assert(LockNeed::kWrite, "kvm_mmu_invalidate_end");
  mmu_invalidate_seq_++;
  mmu_invalidate_in_progress_--;
  env_->notify();
}

void Kvm::filemap_invalidate_lock(bool exclusive) {
  RwLock& l = gmem_invalidate_lock_;
  auto ready = [&] { return !l.writer && (!exclusive || !l.readers); };
  const int me = env_->actor() + 1;
  // By value but for the lock: small enough for std::function's inline storage (no malloc).
  auto take = [&l, exclusive, me] {
    if (!exclusive) return void(l.readers++);
    l.writer = true;
    l.writer_actor = me;
  };
  if (!env_->block_until("the guest_memfd invalidate lock", ready, take)) {
    add_violation(
        {"liveness", "filemap_invalidate_lock", "guest_memfd invalidate lock held: deadlock"});
    take();
  }
}

void Kvm::filemap_invalidate_unlock(bool exclusive) {
  if (exclusive) gmem_invalidate_lock_.writer_actor = -1;
  exclusive ? void(gmem_invalidate_lock_.writer = false) : void(gmem_invalidate_lock_.readers--);
  env_->notify();
}

int Kvm::tdx_handle_ept_violation(int v, uint64_t gpa, unsigned eeq_type,
                                  const tdx::EptExit& info) {
  const uint64_t gfn = gpa >> 12;
  if (gpa & tdx::kSharedBit) return 1;  // shared EPT: not modelled
  if (eeq_type == 6) {
    // PENDING_EPT_VIOLATION: the guest touched a page before accepting it (SEPT_VE_DISABLE).
    kvm_vm_dead_();
    return -kEIO;
  }
  // The fault's level cap. The correct path splits under the write lock first (T1) and
  // caps later faults through GUEST_INHIBIT; bug zoo demote_under_read_lock skips T1 and caps
  // this fault at the accept level, so kvm_tdp_mmu_map meets the 2M leaf above its goal and
  // splits it under the read lock (T4, kvm-tdx.md §2.C C1).
  int max_level = kPg2M;
  if (opts_.has(Bug::demote_under_read_lock)) {
    if (info.accept) max_level = std::min<int>(kPg2M, info.requested_level + 1);
  } else if (int a = tdx_check_accept_level(v, gfn, info)) {
    // An error (-ENOMEM from the split) goes to userspace, as v3 does (kvm-tdx.md §2.C C1 T1
    // step 4): v2's RET_PF_RETRY would have the guest re-execute ACCEPT for as long as the
    // allocation keeps failing. "Flush needed" (1) is v2's early return (§7.5): retry.
    if (a < 0) return a;
    return RET_PF_RETRY;
  }
  if (gfn >= nr_gfns_) return -kEFAULT;  // no memslot: KVM_EXIT_MEMORY_FAULT
  int r = RET_PF_RETRY;
  for (uint64_t tries = 0; tries <= opts_.local_retry_limit; tries++) {
    r = kvm_mmu_do_page_fault(v, gfn, max_level);
    if (r != RET_PF_RETRY) break;
    if (vm_dead_) return -kEIO;  // KVM_REQ_VM_DEAD pending
    // An invalidation over this range is in progress (a conversion or punch hole that drops
    // mmu_lock between leaves): the kernel spins here until it ends, however long it takes
    // (kvm-tdx.md §2.A A1 step 2: the local retry stops only for events, signals, VM_DEAD).
    // Waiting for it is progress, not a failed attempt, so it does not use up the retry
    // budget (kvm_ops found a 510-page conversion exhausting it).
    if (invalidation_covers(gfn, max_level) &&
        env_->block_until("the mmu invalidation to end",
                          [&] { return !invalidation_covers(gfn, max_level); })) {
      sched::hit(sched::Probe::fault_waited_for_invalidation);
      tries--;
      continue;
    }
    sched::hit(sched::Probe::ept_violation_local_retry);
    env_->spin("ept-violation-local-retry");
  }
  return r;
}

}  // namespace kvm
