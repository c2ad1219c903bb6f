// The TDX glue: the S-EPT hooks KVM's MMU calls and the SEAMCALL retry rules
// (arch/x86/kvm/vmx/tdx.c in the v2 series; kvm-tdx.md §2.A-§2.C, §2.F, §4).
#include "sim/kvm/kvm.h"

#include "sim/sched/probe.h"

namespace kvm {

using tdx::Leaf;
using tdx::Status;

// One attempt; on TDX_OPERAND_BUSY set wait_for_sept_zap, kick every vCPU out of guest mode,
// retry once, clear the flag. The second result is final (§2, "no-vcpus retry").
tdx::Regs Kvm::seamcall_retry(Leaf leaf, uint64_t rcx, uint64_t rdx, uint64_t r8) {
  tdx::Regs r = seamcall(leaf, rcx, rdx, r8);
  if (!tdx::is_busy(r.rax) || opts_.has(Bug::no_vcpus_retry_off)) return r;
  sched::hit(leaf == Leaf::MEM_RANGE_BLOCK   ? sched::Probe::no_vcpus_retry_block
             : leaf == Leaf::MEM_TRACK       ? sched::Probe::no_vcpus_retry_track
             : leaf == Leaf::MEM_PAGE_REMOVE ? sched::Probe::no_vcpus_retry_remove
                                             : sched::Probe::no_vcpus_retry_demote);
  tdx_no_vcpus_enter_start();
  r = seamcall(leaf, rcx, rdx, r8);
  if (r.rax == 0) sched::hit(sched::Probe::no_vcpus_retry_succeeded);
  if (opts_.has(Bug::leave_wait_for_sept_zap)) return r;  // bug zoo: the flag stays set
  tdx_no_vcpus_enter_stop();
  return r;
}

void Kvm::tdx_no_vcpus_enter_start() {
  lockdep_assert(LockNeed::kWrite, "tdx_no_vcpus_enter_start");
  wait_for_sept_zap_.store(true);
  kvm_make_all_cpus_request_outside_guest_mode();
}

void Kvm::tdx_no_vcpus_enter_stop() {
  lockdep_assert(LockNeed::kWrite, "tdx_no_vcpus_enter_stop");
  wait_for_sept_zap_.store(false);
}

// KVM_REQ_OUTSIDE_GUEST_MODE (NO_ACTION | WAIT): returns once every vCPU is out of guest mode.
// Sequentially a vCPU is always at an instruction boundary and takes the IPI at once; when
// actors interleave, each vCPU acknowledges at its next boundary (a vCPU inside a TDCALL or
// TDH.VP.ENTER finishes it first) and the requester waits.
void Kvm::kvm_make_all_cpus_request_outside_guest_mode() {
  // vCPU, its exit count when kicked: on the stack for up to 8 vCPUs (what traces allow).
  std::pair<int, uint64_t> fixed[8];
  std::vector<std::pair<int, uint64_t>> more;
  struct Targets {
    std::pair<int, uint64_t>* at;
    size_t n;
    const std::pair<int, uint64_t>* begin() const { return at; }
    const std::pair<int, uint64_t>* end() const { return at + n; }
  } targets{fixed, 0};
  if (nr_vcpus() > 8) {
    more.resize(static_cast<size_t>(nr_vcpus()));
    targets.at = more.data();
  }
  for (int v = 0; v < nr_vcpus(); v++) {
    if (!mode_[v]) continue;
    targets.at[targets.n++] = {v, exits_[v].load()};
    vcpus_[v].kicks++;
    if (!host::rmw_exchange(kick_pending_[v], true)) host::rmw_add(kicks_pending_, 1);
  }
  if (targets.n == 0) return;
  yield("kick");
  if (!env_->interleaved()) {
    for (auto [v, gen] : targets) vcpu_ack_kick(v);
    return;
  }
  env_->notify();
  // The IPI is acknowledged once the vCPU has been back in KVM since the request (it may
  // enter again: in a new epoch after TRACK, or not at all while wait_for_sept_zap is set).
  // Two pointers: std::function keeps them inline, without a malloc.
  auto all_out = [this, t = &targets] {
    for (auto [v, gen] : *t)
      if (mode_[v] && exits_[v] == gen) return false;
    return true;
  };
  if (!all_out()) sched::hit(sched::Probe::kick_waited_for_vcpu);
  env_->block_until("vCPUs to leave guest mode (kick)", all_out);
}

// link_external_spt: TDH.MEM.SEPT.ADD under the read lock.
int Kvm::tdx_sept_link_private_spt(uint64_t gfn, int level, uint64_t external_spt) {
  host_.transfer(external_spt >> 12, 0, host::Use::kHost, host::Use::kModule,
                 "TDH.MEM.SEPT.ADD page");
  tdx::Regs r = seamcall(Leaf::MEM_SEPT_ADD, gpa_rcx(gfn, level), tdr_, external_spt);
  if (r.rax == 0) return 0;
  host_.transfer(external_spt >> 12, 0, host::Use::kModule, host::Use::kHost,
                 "TDH.MEM.SEPT.ADD failed");
  if (tdx::is_busy(r.rax) && !opts_.has(Bug::fault_busy_is_fatal)) {
    sched::hit(sched::Probe::fault_seamcall_busy);
    return -kEBUSY;
  }
  KVM_BUG_ON(true, "tdx_sept_link_private_spt", "TDH.MEM.SEPT.ADD failed", r.rax, true);
  return -kEIO;
}

// set_external_spte: AUG in a RUNNABLE TD, else count a premapped page for INIT_MEM_REGION.
int Kvm::tdx_sept_set_private_spte(uint64_t gfn, int level, uint64_t pfn) {
  if (state_ != TdState::RUNNABLE) {
    // tdx_mem_page_record_premap_cnt
    if (KVM_BUG_ON(pre_fault_allowed_ || level != kPg4K, "tdx_mem_page_record_premap_cnt",
                   "pre_fault_allowed || level != PG_LEVEL_4K"))
      return -kEINVAL;
    nr_premapped_++;
    return 0;
  }
  const unsigned order = level == kPg2M ? 9 : 0;
  host_.transfer(pfn, order, host::Use::kHost, host::Use::kModule, "TDH.MEM.PAGE.AUG page");
  tdx::Regs r = seamcall(Leaf::MEM_PAGE_AUG, gpa_rcx(gfn, level), tdr_, pfn << 12);
  if (r.rax == 0) return 0;
  host_.transfer(pfn, order, host::Use::kModule, host::Use::kHost, "TDH.MEM.PAGE.AUG failed");
  if (tdx::is_busy(r.rax) && !opts_.has(Bug::fault_busy_is_fatal)) {
    sched::hit(sched::Probe::fault_seamcall_busy);
    return -kEBUSY;
  }
  KVM_BUG_ON(true, "tdx_mem_page_aug", "TDH.MEM.PAGE.AUG failed", r.rax, true);
  return -kEIO;
}

[[gnu::noinline]] int Kvm::tdx_sept_zap_track_drop(uint64_t gfn, int level, uint64_t pfn) {
  int r = tdx_sept_zap_private_spte(gfn, level);
  if (r <= 0) return r;
  tdx_track();
  return tdx_sept_drop_private_spte(gfn, level, pfn);
}

// tdx_reclaim_page's page larger than 4K: every frame of it at once (transfer() walks them in
// order, as one call a frame did), then each one cleared.
[[gnu::noinline]] void Kvm::reclaimed_huge_page(int level, uint64_t pfn) {
  host_.transfer(pfn, 9 * static_cast<unsigned>(level - kPg4K), host::Use::kModule,
                 host::Use::kHost, "reclaimed guest page");
  for (uint64_t i = 0; i < pages_per(level); i++) host_.store_content(pfn + i, 0);
}

[[gnu::cold, gnu::noinline]] void Kvm::warn_reclaim_failed(uint64_t status) {
  add_violation({"kvm-bug-on", "__tdx_reclaim_page",
                 "WARN: TDH.PHYMEM.PAGE.RECLAIM -> " + tdx::status_name(status) + "; page leaked"});
}

// BLOCK (tdx_sept_zap_private_spte). Returns 1 when blocked, 0 for a premapped page that
// never reached the S-EPT, < 0 on error.
int Kvm::tdx_sept_zap_private_spte(uint64_t gfn, int level) {
  if (state_ != TdState::RUNNABLE && level != kPg4K)
    add_violation(
        {"kvm-bug-on", "tdx_sept_zap_private_spte", "WARN: level != PG_LEVEL_4K before RUNNABLE"});
  tdx::Regs r = opts_.has(Bug::ignore_block_busy)
                    ? seamcall(Leaf::MEM_RANGE_BLOCK, gpa_rcx(gfn, level), tdr_)
                    : seamcall_retry(Leaf::MEM_RANGE_BLOCK, gpa_rcx(gfn, level), tdr_);
  if (opts_.has(Bug::ignore_block_busy) && tdx::is_busy(r.rax)) return 1;  // bug zoo: go on
  // The premap case: the page was faulted in at build time but never PAGE.ADDed.
  if (state_ != TdState::RUNNABLE && level == kPg4K &&
      r.rax == tdx::raw(Status::EPT_ENTRY_STATE_INCORRECT, tdx::Operand::RCX) &&
      (r.rcx & 0x7) != 0x7) {
    if (!KVM_BUG_ON(nr_premapped_ == 0, "tdx_sept_zap_private_spte",
                    "premapped page but nr_premapped == 0")) {
      nr_premapped_--;
      return 0;
    }
    return -kEIO;
  }
  if (KVM_BUG_ON(r.rax != 0, "tdx_sept_zap_private_spte", "TDH.MEM.RANGE.BLOCK failed", r.rax,
                 true))
    return -kEIO;
  return 1;
}

// TRACK + kick; a no-op unless the TD is RUNNABLE.
void Kvm::tdx_track() {
  if (state_ != TdState::RUNNABLE) return;
  lockdep_assert(LockNeed::kWrite, "tdx_track");
  tdx::Regs r = seamcall_retry(Leaf::MEM_TRACK, tdr_);
  KVM_BUG_ON(r.rax != 0, "tdx_track", "TDH.MEM.TRACK failed", r.rax, true);
  if (!opts_.has(Bug::skip_kick_after_track)) kvm_make_all_cpus_request_outside_guest_mode();
}

// REMOVE + WBINVD + clear (tdx_sept_drop_private_spte).
int Kvm::tdx_sept_drop_private_spte(uint64_t gfn, int level, uint64_t pfn) {
  if (KVM_BUG_ON(state_ != TdState::RUNNABLE && level != kPg4K, "tdx_sept_drop_private_spte",
                 "level != PG_LEVEL_4K before RUNNABLE"))
    return -kEINVAL;
  if (KVM_BUG_ON(!hkid_assigned_, "tdx_sept_drop_private_spte", "!is_hkid_assigned(kvm_tdx)"))
    return -kEINVAL;
  tdx::Regs r = seamcall_retry(Leaf::MEM_PAGE_REMOVE, gpa_rcx(gfn, level), tdr_);
  if (KVM_BUG_ON(r.rax != 0, "tdx_sept_drop_private_spte", "TDH.MEM.PAGE.REMOVE failed", r.rax,
                 true))
    return -kEIO;
  const uint64_t hkid = module_.td_of(tdr_)->hkid;
  for (uint64_t i = 0; i < pages_per(level); i++) {
    host_.transfer(pfn + i, 0, host::Use::kModule, host::Use::kHost, "removed guest page");
    host_.set_needs_wbinvd(pfn + i, true);
  }
  for (uint64_t i = 0; i < pages_per(level); i++) {
    tdx::Regs w = seamcall(Leaf::PHYMEM_PAGE_WBINVD, ((pfn + i) << 12) | (hkid << tdx::kPhysBits));
    if (KVM_BUG_ON(w.rax != 0, "tdx_sept_drop_private_spte", "TDH.PHYMEM.PAGE.WBINVD failed", w.rax,
                   true))
      return -kEIO;
  }
  for (uint64_t i = 0; i < pages_per(level); i++) host_.content(pfn + i) = 0;  // tdx_clear_folio
  return 0;
}

// free_external_spt: only after HKID release (KVM zaps only leaves at runtime).
int Kvm::tdx_sept_free_private_spt(uint64_t gfn, int level, uint64_t external_spt) {
  (void)gfn, (void)level;
  if (KVM_BUG_ON(hkid_assigned_, "tdx_sept_free_private_spt", "is_hkid_assigned(kvm_tdx)"))
    return -kEINVAL;
  tdx::Regs r = seamcall<Leaf::PHYMEM_PAGE_RECLAIM>(external_spt);
  if (r.rax) return -kEIO;  // the caller WARNs and leaks the page
  host_.transfer(external_spt >> 12, 0, host::Use::kModule, host::Use::kHost,
                 "reclaimed S-EPT page");
  host_.content(external_spt >> 12) = 0;
  return 0;
}

// split_external_spt (v2 patches 10, 11): BLOCK → TRACK + kick → DEMOTE, write lock only.
int Kvm::tdx_sept_split_private_spt(uint64_t gfn, int level, uint64_t external_spt, bool shared) {
  if (KVM_BUG_ON(state_ != TdState::RUNNABLE || level != kPg2M, "tdx_sept_split_private_spt",
                 "kvm_tdx->state != TD_STATE_RUNNABLE || level != PG_LEVEL_2M"))
    return -kEINVAL;
  if (shared && !opts_.has(Bug::demote_under_read_lock)) {
    // T4: a split under the read lock cannot kick vCPUs; rejected (v2 patch 11, kvm-tdx.md
    // §2.C step 3.2). The bug zoo's demote_under_read_lock goes on to BLOCK, TRACK, DEMOTE.
    add_violation({"kvm-bug-on", "tdx_sept_split_private_spt",
                   "WARN_ON_ONCE: split of a private huge page under the shared mmu_lock"});
    return -kEOPNOTSUPP;
  }
  int r = tdx_sept_zap_private_spte(gfn, level);
  if (r <= 0) return r;
  if (!opts_.has(Bug::skip_track_before_demote)) tdx_track();
  return tdx_spte_demote_private_spte(gfn, level, external_spt);
}

int Kvm::tdx_spte_demote_private_spte(uint64_t gfn, int level, uint64_t external_spt) {
  host_.transfer(external_spt >> 12, 0, host::Use::kHost, host::Use::kModule,
                 "TDH.MEM.PAGE.DEMOTE page");
  tdx::Regs r = seamcall_retry(Leaf::MEM_PAGE_DEMOTE, gpa_rcx(gfn, level), tdr_, external_spt);
  if (r.rax == 0) return 0;
  host_.transfer(external_spt >> 12, 0, host::Use::kModule, host::Use::kHost,
                 "TDH.MEM.PAGE.DEMOTE failed");
  // INTERRUPTED_RESTARTABLE is deliberately not handled (kvm-tdx.md §2.C, "Open 3"): KVM maps
  // private memory at 2M only with a module that never returns it from DEMOTE
  // (ENHANCED_DEMOTE_INTERRUPTIBILITY, §7.6; tdx_max_private_level), so only an injected
  // status gets here — unless bug zoo `demote_interrupt_fatal` restores v2's 2M-anyway.
  KVM_BUG_ON(true, "tdx_spte_demote_private_spte", "TDH.MEM.PAGE.DEMOTE failed", r.rax, true);
  return -kEIO;
}

}  // namespace kvm
