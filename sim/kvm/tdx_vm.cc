// VM ioctls: build-time population, finalize, pre-fault, the split triggers, attribute
// conversion, guest_memfd punch hole and teardown (kvm-tdx.md §2.A', §2.B, §2.C C1, §2.E).
#include "sim/kvm/kvm.h"

namespace kvm {

using tdx::Leaf;
using tdx::Status;

// KVM_TDX_INIT_MEM_REGION of one 4K page (6.16 / v2 base): fault in at 4K (the leaf is counted
// in nr_premapped), then TDH.MEM.PAGE.ADD from a source page.
int Kvm::tdx_init_mem_region(uint64_t gfn) {
  if (vm_dead_) return -kEIO;
  if (gfn >= nr_gfns_) return -kEINVAL;
  slots_lock();  // the state checks hold under it (kvm->lock in the kernel)
  if (state_ == TdState::RUNNABLE || attr_shared_[gfn]) {
    slots_unlock();
    return -kEINVAL;
  }
  // kvm_gmem_populate holds the guest_memfd invalidate lock across the fault and PAGE.ADD,
  // so a punch hole never zaps a page between them (kvm-tdx.md §2.A').
  filemap_invalidate_lock(true);
  const int ret = tdx_gmem_post_populate(gfn);
  filemap_invalidate_unlock(true);
  slots_unlock();
  return ret;
}

int Kvm::tdx_gmem_post_populate(uint64_t gfn) {
  int r = RET_PF_RETRY;
  for (uint64_t tries = 0; r == RET_PF_RETRY && tries <= opts_.local_retry_limit; tries++) {
    r = kvm_mmu_do_page_fault(0, gfn, kPg4K);
    if (r == RET_PF_RETRY) env_->spin("fault-retry");
  }
  if (r < 0 || r == RET_PF_RETRY) {
    return r < 0 ? r : -kEINTR;
  }
  const uint64_t pfn = gmem_pfn(gfn);
  uint64_t src;
  if (!host_.alloc(0, host::Use::kHost, &src)) {
    return -kENOMEM;
  }
  host_.content(src) = 0x5eed000000000000ull | gfn;
  // The page goes to the module, unless it already has it (the GFN was added before: the
  // fault found it mapped, and PAGE.ADD will refuse it).
  const bool handed = host_.use(pfn) == host::Use::kHost;
  if (handed) host_.transfer(pfn, 0, host::Use::kHost, host::Use::kModule, "TDH.MEM.PAGE.ADD page");
  tdx::Regs a = seamcall(Leaf::MEM_PAGE_ADD, gfn << 12, tdr_, pfn << 12, src << 12);
  host_.free(src, 0);
  if (a.rax) {
    if (handed)
      host_.transfer(pfn, 0, host::Use::kModule, host::Use::kHost, "TDH.MEM.PAGE.ADD failed");
    return tdx::is_busy(a.rax) ? -kEBUSY : -kEIO;  // no KVM_BUG_ON: nr_premapped stays elevated
  }
  if (!KVM_BUG_ON(nr_premapped_ == 0, "tdx_gmem_post_populate", "nr_premapped == 0"))
    nr_premapped_--;
  return 0;
}

int Kvm::tdx_td_finalize() {
  if (vm_dead_) return -kEIO;
  slots_lock();
  if (!hkid_assigned_ || state_ == TdState::RUNNABLE || nr_premapped_ != 0) {
    slots_unlock();
    return -kEINVAL;
  }
  // TDH.MR.FINALIZE takes the TDR exclusively (tdx-module.md §3), so a punch hole's BLOCK
  // (TDR shared) running beside it gets TDX_OPERAND_BUSY that kicking vCPUs cannot cure, and
  // 6.16's tdx_sept_zap_private_spte then bugs the VM. Found by kvm_ops; the spec does not say
  // how the kernel excludes it. Our choice: finalize holds mmu_lock for write around the
  // SEAMCALL, in the spirit of "guard VM state transitions with all the locks" (prior-art
  // §A.4 #11). The bug-zoo entry finalize_without_mmu_lock restores 6.16 as we read it.
  const bool exclude = !opts_.has(Bug::finalize_without_mmu_lock);
  // RUNNABLE is set before mmu_lock is dropped: in between, a punch hole would BLOCK, skip
  // tdx_track (a no-op before RUNNABLE) and its REMOVE would fail TLB tracking against the
  // now-finalized TD. Found by the interleaving property and kvm_ops.
  if (exclude) mmu_write_lock();
  tdx::Regs r = seamcall(Leaf::MR_FINALIZE, tdr_);
  int ret = 0;
  if (tdx::is_busy(r.rax)) {
    ret = -kEBUSY;
  } else if (KVM_BUG_ON(r.rax != 0, "tdx_td_finalize", "TDH.MR.FINALIZE failed", r.rax, true)) {
    ret = -kEIO;
  } else {
    state_ = TdState::RUNNABLE;
    pre_fault_allowed_ = true;
  }
  if (exclude) mmu_write_unlock();
  slots_unlock();
  return ret;
}

// KVM_PRE_FAULT_MEMORY at `gfn`, mapping at most `max_level`. A GFN that a leaf already maps
// is a no-op (the ioctl has no level argument; the cap is this simulator's, and must not make
// KVM split under the read lock, which it never does for a real pre-fault).
int Kvm::kvm_pre_fault_memory(uint64_t gfn, int max_level) {
  if (vm_dead_) return -kEIO;
  if (!pre_fault_allowed_) return -kEOPNOTSUPP;
  if (gfn >= nr_gfns_) return -kEINVAL;
  // No separate "already mapped" walk: the fault path with leave_mapped treats an existing
  // leaf as done under mmu_lock. (A walk of our own raced faults' page-table allocations; the
  // free-running TSan stress caught it.)
  for (uint64_t tries = 0; tries <= opts_.local_retry_limit; tries++) {
    int r = kvm_mmu_do_page_fault(0, gfn, max_level, /*leave_mapped=*/true);
    if (r != RET_PF_RETRY) return r < 0 ? r : 0;
    if (vm_dead_) return -kEIO;
    env_->spin("fault-retry");
  }
  return -kEINTR;  // as if a signal ended kvm_tdp_map_page's retry loop
}

// A split trigger at GFN under the write lock (what T1-T3 do before they zap or inhibit).
int Kvm::split_huge_page(uint64_t gfn) {
  if (vm_dead_) return -kEIO;
  if (gfn >= nr_gfns_) return -kEINVAL;
  mmu_write_lock();
  int r = kvm_split_cross_boundary_leafs(gfn, gfn + 1, /*shared=*/false);
  mmu_write_unlock();
  return r < 0 ? r : 0;
}

// guest_memfd punch hole (T3): split the private leaves crossing the range, zap, truncate.
int Kvm::kvm_gmem_punch_hole(uint64_t gfn, uint64_t count) {
  if (gfn >= nr_gfns_ || count == 0 || count > nr_gfns_ - gfn) return -kEINVAL;
  const uint64_t end = gfn + count;
  // The invalidate lock keeps faults from getting a PFN in the range until truncation is
  // done; the invalidation makes a fault that already has one retry.
  filemap_invalidate_lock(true);
  mmu_write_lock();
  kvm_mmu_invalidate_begin(gfn, end);
  int r = 0;
  if (!opts_.has(Bug::whole_2m_zap))
    r = kvm_split_cross_boundary_leafs(gfn, end, /*shared=*/false);  // kvm_gmem_split_private
  if (r >= 0) tdp_mmu_zap_leafs(gfn, end);                           // kvm_gmem_zap
  mmu_write_unlock();
  if (r >= 0) gmem_truncate(gfn, end);
  mmu_write_lock();
  kvm_mmu_invalidate_end();
  mmu_write_unlock();
  filemap_invalidate_unlock(true);
  return r < 0 ? r : 0;
}

// KVM_SET_MEMORY_ATTRIBUTES (T2): to shared splits crossing private leaves, then zaps them.
int Kvm::kvm_vm_set_mem_attributes(uint64_t gfn, uint64_t count, bool to_private) {
  if (vm_dead_) return -kEIO;
  if (gfn >= nr_gfns_ || count == 0 || count > nr_gfns_ - gfn) return -kEINVAL;
  const uint64_t end = gfn + count;
  slots_lock();
  mmu_write_lock();  // kvm_handle_gfn_range: the range is invalidated while it changes
  kvm_mmu_invalidate_begin(gfn, end);
  int r = 0;
  if (!to_private) {
    if (!opts_.has(Bug::whole_2m_zap))
      r = kvm_split_cross_boundary_leafs(gfn, end, /*shared=*/false);
    if (r >= 0) tdp_mmu_zap_leafs(gfn, end);
  }
  // (to private: only shared mappings are zapped; the shared EPT is not modelled)
  if (r >= 0) {
    for (uint64_t g = gfn; g < end; g++) attr_shared_[g] = !to_private;
    recompute_lpage_mixed(gfn, end);
  }
  kvm_mmu_invalidate_end();
  mmu_write_unlock();
  slots_unlock();
  return r < 0 ? r : 0;
}

// Destruction (6.17+ / v2 base, our reading): the VM is marked dead (as KVM_TDX_TERMINATE_VM
// does), the HKID released, then the mirror root zapped: leaves and tables are RECLAIMed.
void Kvm::kvm_destroy_vm() {
  tdx::Td* td = module_.td_of(tdr_);
  if (!td) return;
  vm_dead_ = true;
  for (int v = 0; v < nr_vcpus(); v++) vcpu_async_exit(v);
  // tdx_mmu_release_hkid.
  bool released = true;
  for (int v = 0; v < nr_vcpus(); v++) {
    tdx::Regs r = seamcall(Leaf::VP_FLUSH, tdvpr(v));
    if (r.rax && tdx::status_class(r.rax) != Status::VCPU_NOT_ASSOCIATED)
      KVM_BUG_ON(true, "tdx_flush_vp_on_cpu", "TDH.VP.FLUSH failed", r.rax, true);
  }
  tdx::Regs r = seamcall(Leaf::MNG_VPFLUSHDONE, tdr_);
  if (r.rax) {
    if (tdx::status_class(r.rax) != Status::FLUSHVP_NOT_DONE)
      KVM_BUG_ON(true, "tdx_mmu_release_hkid", "TDH.MNG.VPFLUSHDONE failed", r.rax, true);
    released = false;
  }
  if (released) {
    seamcall(Leaf::PHYMEM_CACHE_WB, 0);
    r = seamcall(Leaf::MNG_KEY_FREEID, tdr_);
    if (KVM_BUG_ON(r.rax != 0, "tdx_mmu_release_hkid", "TDH.MNG.KEY.FREEID failed", r.rax, true))
      released = false;
  }
  hkid_assigned_ = !released;
  mmu_write_lock();
  zap_root_at_teardown();
  mmu_write_unlock();
  // The TD's own pages (tdx_reclaim_td_control_pages), the TDR last.
  if (released) {
    std::vector<uint64_t> pages{td->tdcs, td->root};
    for (auto& v : td->vcpus) pages.insert(pages.end(), {v.tdvpr, v.tdvpx});
    pages.push_back(td->tdr);
    for (uint64_t pa : pages) {
      tdx::Regs c = seamcall<Leaf::PHYMEM_PAGE_RECLAIM>(pa);
      if (c.rax) {
        add_violation(
            {"kvm-bug-on", "__tdx_reclaim_page",
             "WARN: TDH.PHYMEM.PAGE.RECLAIM of a control page -> " + tdx::status_name(c.rax)});
        continue;
      }
      host_.transfer(pa >> 12, 0, host::Use::kModule, host::Use::kHost, "reclaimed control page");
      host_.free(pa >> 12, 0);
    }
  }
  gmem_truncate(0, nr_gfns_);  // the guest_memfd file is released
}

}  // namespace kvm
