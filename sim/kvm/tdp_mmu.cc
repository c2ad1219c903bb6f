// The TDP MMU on the mirror root (arch/x86/kvm/mmu/tdp_mmu.c as the v2 series has it):
// fault-path mapping under the read lock with the FROZEN protocol, write-lock updates,
// removal of page tables, precise zap and the cross-boundary split (kvm-tdx.md §2.A-§2.C).
#include "sim/host/recycle.h"
#include "sim/kvm/kvm.h"

#include "sim/host/rmw.h"
#include "sim/sched/probe.h"

namespace kvm {

uint64_t Kvm::tdp_mmu_alloc_sp(int level, uint64_t gfn, bool with_external_spt) {
  uint64_t ext = 0;
  if (with_external_spt) {
    // `nomem`: the memory cache top-up fails (kvm_mmu_topup_memory_cache in the fault path,
    // tdp_mmu_alloc_sp_for_split in the split walk; kvm-tdx.md §2.C C0 step 1).
    for (uint64_t n = fail_allocs_.load(); n;)
      if (fail_allocs_.compare_exchange_weak(n, n - 1)) return 0;
    uint64_t pfn;
    if (!host_.alloc(0, host::Use::kHost, &pfn)) return 0;  // -ENOMEM for the caller
    ext = pfn << 12;
  }
  uint64_t index;
  {
    std::lock_guard<std::mutex> l(sp_mu_);
    if (!free_sp_slots_.empty()) {
      index = free_sp_slots_.back();
      free_sp_slots_.pop_back();
    } else {
      if (sp_next_ >= sps_.size()) return 0;  // more tables than host frames: cannot happen
      index = sp_next_++;
    }
  }
  sps_[index] = new_sp();
  sps_[index]->level = level;
  sps_[index]->gfn = gfn;
  sps_[index]->external_spt = ext;
  return index;
}

std::unique_ptr<KvmMmuPage> Kvm::new_sp() {
  auto& spare = thread_cache().tables;
  if (spare.empty()) return std::make_unique<KvmMmuPage>();
  std::unique_ptr<KvmMmuPage> p = std::move(spare.back());
  spare.pop_back();
  return p;
}

void Kvm::recycle_sp(std::unique_ptr<KvmMmuPage> p) {
  auto& spare = thread_cache().tables;
  if (!p || spare.size() >= host::kRecycledTables) return;  // bounded: the rest is freed
  p->clear();
  spare.push_back(std::move(p));
}

// tdp_mmu_free_sp: the external_spt goes back to the host unless it was leaked on purpose.
void Kvm::tdp_mmu_free_sp(uint64_t index) {
  KvmMmuPage* p = sps_[index].get();
  if (p->external_spt && !p->external_spt_leaked) host_.free(p->external_spt >> 12, 0);
  recycle_sp(std::move(sps_[index]));
  std::lock_guard<std::mutex> l(sp_mu_);
  free_sp_slots_.push_back(index);
}

// kvm_mmu_hugepage_adjust's inputs, for a private fault (§1.9).
int Kvm::kvm_mmu_hugepage_adjust(uint64_t gfn, int max_level) {
  int level = std::min(max_level, tdx_max_private_level());
  if (level >= kPg2M && (lpage_[gfn >> 9] & (kLpageMixed | kLpageGuestInhibit))) level = kPg4K;
  if (level >= kPg2M && ((gfn & ~511ull) + 512 > nr_gfns_)) level = kPg4K;
  return level;
}

// kvm_tdp_mmu_map under the read lock (§2.A core step 3).
int Kvm::kvm_tdp_mmu_map(int v, uint64_t gfn, int goal_level, bool leave_mapped) {
  (void)v;
  lockdep_assert(LockNeed::kRead, "kvm_tdp_mmu_map");
  uint64_t index = root_;
  for (int level = kRootLevel;; level--) {
    KvmMmuPage* p = sps_[index].get();
    std::atomic<uint64_t>* sptep = &p->spt[(gfn >> (9 * (level - 1))) & 511];
    const uint64_t base = gfn & ~(pages_per(level) - 1);
    uint64_t spte = sptep->load(std::memory_order_acquire);
    if (is_frozen(spte)) {
      sched::hit(sched::Probe::fault_saw_frozen_spte);
      return RET_PF_RETRY;
    }
    // v2 patch 07 (disallowed_hugepage_adjust): never replace a mirror page table by a huge leaf.
    if (level == goal_level && is_shadow_present(spte) && !is_last_spte(spte, level)) goal_level--;
    if (level == goal_level) {
      if (is_leaf(spte, level)) return RET_PF_SPURIOUS;
      // The folio the fault got before taking mmu_lock (a truncation since then made the
      // fault stale, and the caller checked that under this lock).
      const uint64_t pfn = gmem_pfn(base);
      if (pfn == ~0ull) return RET_PF_RETRY;
      // Another CPU may read the same SPTE now: only the cmpxchg below decides who installs.
      yield("spte-read");
      return tdp_mmu_set_spte_atomic(sptep, base, spte, make_leaf_spte(pfn, level), level)
                 ? RET_PF_RETRY
                 : RET_PF_FIXED;
    }
    if (is_shadow_present(spte) && !is_large(spte)) {
      index = spte_pfn(spte);
      continue;
    }
    // A pre-fault whose level cap is the harness's: a huge leaf mapped by someone else since
    // kvm_pre_fault_memory looked is what a real pre-fault (no cap) would have found.
    if (leave_mapped && is_leaf(spte, level)) return RET_PF_SPURIOUS;
    // A missing table, or a huge leaf above the goal: a new child page table.
    const uint64_t child = tdp_mmu_alloc_sp(level - 1, base, true);
    if (!child) return -kENOMEM;
    int r;
    if (is_shadow_present(spte)) {
      r = tdp_mmu_split_huge_page(sptep, base, level, child, /*shared=*/true);  // T4
    } else {
      r = tdp_mmu_set_spte_atomic(sptep, base, spte, make_nonleaf_spte(child), level);  // link
    }
    if (r) {
      tdp_mmu_free_sp(child);
      return RET_PF_RETRY;
    }
    index = child;
  }
}

// tdp_mmu_set_spte_atomic → __tdp_mmu_set_spte_atomic (§2.A core step 4).
int Kvm::tdp_mmu_set_spte_atomic(std::atomic<uint64_t>* sptep, uint64_t gfn, uint64_t old_spte,
                                 uint64_t new_spte, int level) {
  lockdep_assert(LockNeed::kRead, "tdp_mmu_set_spte_atomic");
  if (!is_frozen(new_spte) && KVM_BUG_ON(!is_shadow_present(new_spte), "__tdp_mmu_set_spte_atomic",
                                         "atomic zapping is not allowed on mirror roots"))
    return -kEBUSY;
  int r = set_external_spte_present(sptep, gfn, old_spte, new_spte, level);
  if (r) return r;
  handle_changed_spte(gfn, old_spte, new_spte, level, /*shared=*/true);
  return 0;
}

int Kvm::set_external_spte_present(std::atomic<uint64_t>* sptep, uint64_t gfn, uint64_t old_spte,
                                   uint64_t new_spte, int level) {
  const bool was_present = is_shadow_present(old_spte);
  const bool new_leaf = is_last_spte(new_spte, level);
  // v2: !present → present (leaf or table), or present leaf → table (a split).
  KVM_BUG_ON(was_present && !(is_last_spte(old_spte, level) && !new_leaf),
             "set_external_spte_present",
             "transition is neither !present->present nor leaf->non-leaf");
  // Freeze the SPTE for the duration of the SEAMCALL (FROZEN protocol, §5.2).
  if (opts_.has(Bug::plain_spte_store_read_lock)) {
    // bug zoo: a plain store, no cmpxchg (and not even an atomic one, as ThreadSanitizer sees)
    *reinterpret_cast<volatile uint64_t*>(sptep) = kFrozenSpte;
  } else {
    uint64_t expected = old_spte;
    if (!sptep->compare_exchange_strong(expected, kFrozenSpte, std::memory_order_acq_rel)) {
      sched::hit(sched::Probe::fault_cmpxchg_lost);
      // Bug zoo: "restore" the SPTE this fault read; only the freezer may leave FROZEN (§5.2).
      if (opts_.has(Bug::frozen_cleared_by_non_owner) && is_frozen(expected))
        sptep->store(old_spte, std::memory_order_release);
      return -kEBUSY;
    }
  }
  yield("spte-frozen");
  int r;
  if (!was_present && new_leaf) {
    r = tdx_sept_set_private_spte(gfn, level, spte_pfn(new_spte));
  } else {
    const uint64_t ext = sps_[spte_pfn(new_spte)]->external_spt;
    KVM_BUG_ON(!ext, "set_external_spte_present", "non-leaf SPTE without external_spt");
    r = was_present ? tdx_sept_split_private_spt(gfn, level, ext, /*shared=*/true)
                    : tdx_sept_link_private_spt(gfn, level, ext);
  }
  sptep->store(r ? old_spte : new_spte, std::memory_order_release);
  yield("spte-unfrozen");
  return r;
}

// tdp_mmu_set_spte under the write lock (§2.B B2, v2 patch 09): mirror first, then the hook.
void Kvm::tdp_mmu_set_spte(std::atomic<uint64_t>* sptep, uint64_t gfn, uint64_t old_spte,
                           uint64_t new_spte, int level) {
  lockdep_assert(LockNeed::kWrite, "tdp_mmu_set_spte");
  KVM_BUG_ON(is_frozen(old_spte) || is_frozen(new_spte), "tdp_mmu_set_spte",
             "WARN: old or new SPTE is FROZEN");
  sptep->store(new_spte, std::memory_order_release);
  handle_changed_spte(gfn, old_spte, new_spte, level, /*shared=*/false);
  if (!is_shadow_present(new_spte)) {
    remove_external_spte(gfn, old_spte, level, env_->actor() + 1);
  } else if (is_leaf(old_spte, level) && !is_last_spte(new_spte, level)) {
    const uint64_t ext = sps_[spte_pfn(new_spte)]->external_spt;
    // split_external_spt: its return value is ignored (§7.3); TDX has bugged the VM on failure.
    if (!KVM_BUG_ON(!ext, "split_external_spt", "new SPTE has no external_spt"))
      tdx_sept_split_private_spt(gfn, level, ext, /*shared=*/false);
  } else {
    KVM_BUG_ON(true, "tdp_mmu_set_spte",
               "mirror SPTE change is neither a removal nor leaf->non-leaf");
  }
}

void Kvm::handle_changed_spte(uint64_t gfn, uint64_t old_spte, uint64_t new_spte, int level,
                              bool shared) {
  (void)gfn;
  const bool was_leaf = is_leaf(old_spte, level), is_leaf_now = is_leaf(new_spte, level);
  if (was_leaf != is_leaf_now)  // kvm_update_page_stats
    host::rmw_add(stats_[level], static_cast<int64_t>(is_leaf_now ? 1 : -1));
  if (was_leaf && is_leaf_now && spte_pfn(old_spte) != spte_pfn(new_spte))
    KVM_BUG_ON(true, "handle_changed_spte",
               "BUG: present leaf replaced by a leaf with another PFN");
  // A page table that went away (its SPTE no longer points to it): tear it down.
  if (is_shadow_present(old_spte) && !is_last_spte(old_spte, level) &&
      (!is_shadow_present(new_spte) || spte_pfn(new_spte) != spte_pfn(old_spte) ||
       is_last_spte(new_spte, level)))
    handle_removed_pt(spte_pfn(old_spte), shared);
}

// handle_removed_pt (§2.B B4): children first, then the table's external page.
void Kvm::handle_removed_pt(uint64_t index, bool shared) {
  KVM_BUG_ON(shared, "handle_removed_pt", "mirror page table removed under the shared mmu_lock");
  KvmMmuPage* p = sps_[index].get();
  const int level = p->level;  // read once: the SPTE stores would make the compiler reload it
  const uint64_t first = p->gfn, step = pages_per(level);
  const int me = env_->actor() + 1;
  for (uint64_t i = 0; i < 512; i++) {
    const uint64_t old = p->spt[i].load(std::memory_order_relaxed);
    if (!is_shadow_present(old)) continue;
    const uint64_t gfn = first + i * step;
    p->spt[i].store(kFrozenSpte, std::memory_order_relaxed);
    handle_changed_spte(gfn, old, kFrozenSpte, level, shared);
    remove_external_spte(gfn, old, level, me);
  }
  if (p->external_spt && tdx_sept_free_private_spt(p->gfn, p->level + 1, p->external_spt)) {
    // WARN: leak the page rather than hand encrypted memory back to the kernel.
    add_violation(
        {"kvm-bug-on", "handle_removed_pt", "WARN: free_external_spt failed; external_spt leaked"});
    p->external_spt_leaked = true;
  }
  tdp_mmu_free_sp(index);
}

[[gnu::always_inline]] inline void Kvm::remove_external_spte(uint64_t gfn, uint64_t old_spte,
                                                             int level, int me) {
  if (!is_leaf(old_spte, level)) return;  // tables: free_external_spt
  lockdep_assert(LockNeed::kWrite, "remove_external_spte", me);
  int r = tdx_sept_remove_private_spte(gfn, level, spte_pfn(old_spte));
  KVM_BUG_ON(r != 0, "remove_external_spte", "ret");
}

// need_resched() || rwlock_needbreak(&kvm->mmu_lock), as tdp_mmu_iter_cond_resched asks it.
// Our model of need_resched: it comes due after `zap_resched_every` zapped leaves (each costs
// BLOCK, TRACK, a kick and REMOVE, so a long zap does get preempted), which makes a yield with
// the lock dropped happen deterministically in sequential traces too; rwlock_needbreak: another
// actor waits for mmu_lock (interleaved and free-running modes).
bool Kvm::tdp_mmu_need_resched(uint64_t leaves_since_yield) const {
  if (opts_.zap_resched_every && leaves_since_yield >= opts_.zap_resched_every) return true;
  return mmu_lock_.waiters.load() > 0;
}

// tdp_mmu_zap_leafs (§2.B B1): every present leaf overlapping [start, end), at any level; a
// huge leaf only partly inside is zapped entirely (callers split first). can_yield is true for
// both callers here (kvm_unmap_gfn_range with range->may_block: punch hole, conversion).
//
// The walk is kept as the kernel's iterator keeps it: a position, next_last_level_gfn, from
// which each step walks down from the root to the SPTE covering it (the kernel's pre-order
// iterator visits the same SPTEs in the same order; only leaves matter here). Before each
// SPTE, tdp_mmu_iter_cond_resched may drop mmu_lock; the walk then restarts from the root at
// the same position, so the SPTE it stopped at is read again and visited. It yields only when
// the walk made progress since the last yield (yielded_gfn), as the kernel does.
bool Kvm::tdp_mmu_zap_leafs(uint64_t start, uint64_t end) {
  lockdep_assert(LockNeed::kWrite, "tdp_mmu_zap_leafs");
  bool flush = false;
  uint64_t next_last_level_gfn = start, yielded_gfn = ~0ull, leaves_since_yield = 0;
  while (next_last_level_gfn < end) {
    // The SPTE covering the position: the lowest present table's entry.
    const KvmMmuPage* p = sps_[root_].get();
    std::atomic<uint64_t>* sptep;
    uint64_t s;
    for (;;) {
      sptep = const_cast<std::atomic<uint64_t>*>(
          &p->spt[(next_last_level_gfn >> (9 * (p->level - 1))) & 511]);
      s = sptep->load(std::memory_order_relaxed);
      if (!is_shadow_present(s) || is_last_spte(s, p->level)) break;
      p = sps_[spte_pfn(s)].get();
    }
    const int level = p->level;
    const uint64_t gfn = next_last_level_gfn & ~(pages_per(level) - 1);
    // tdp_mmu_iter_cond_resched: flush (TDX: only the shared EPT, a no-op here), drop the lock,
    // cond_resched, retake it, restart the walk from the root.
    if (next_last_level_gfn != yielded_gfn && tdp_mmu_need_resched(leaves_since_yield)) {
      yielded_gfn = next_last_level_gfn;
      leaves_since_yield = 0;
      flush = false;
      // The lock is queued: an actor waiting for it gets it before this one retakes it (here,
      // the scheduler lets the waiter go first, as in a retry loop).
      const bool contended = mmu_lock_.waiters.load() > 0;
      mmu_write_unlock();
      if (contended) env_->spin("zap-leaf");
      mmu_write_lock();
      // Bug zoo (CVE-2021-47094): the restarted iterator is advanced, past the SPTE it stopped
      // at, which is never visited.
      if (opts_.has(Bug::zap_iter_advance_after_yield))
        next_last_level_gfn = gfn + pages_per(level);
      continue;
    }
    next_last_level_gfn = gfn + pages_per(level);
    if (!is_shadow_present(s)) continue;
    tdp_mmu_set_spte(sptep, gfn, s, kShadowNonpresent, level);
    flush = true;
    leaves_since_yield++;
    yield("zap-leaf");
  }
  return flush;
}

// tdp_mmu_split_huge_page: the child table filled from the huge SPTE, then linked.
int Kvm::tdp_mmu_split_huge_page(std::atomic<uint64_t>* sptep, uint64_t gfn, int level,
                                 uint64_t index, bool shared) {
  const uint64_t huge = sptep->load(std::memory_order_acquire);
  KvmMmuPage* child = sps_[index].get();
  for (uint64_t i = 0; i < 512; i++)
    child->spt[i].store(make_leaf_spte(spte_pfn(huge) + i * pages_per(level - 1), level - 1),
                        std::memory_order_relaxed);
  const uint64_t table = make_nonleaf_spte(index);
  if (shared) {
    int r = tdp_mmu_set_spte_atomic(sptep, gfn, huge, table, level);
    if (!r) stats_[level - 1] += 512;
    return r;
  }
  tdp_mmu_set_spte(sptep, gfn, huge, table, level);
  stats_[level - 1] += 512;  // the children were filled in without handle_changed_spte
  return 0;
}

// tdp_mmu_split_huge_pages_root (§2.C C0 step 1), levels >= 2M, pre-order.
int Kvm::tdp_mmu_split_huge_pages_root(uint64_t start, uint64_t end, bool only_cross_boundary,
                                       bool shared, bool* flush) {
  for (int level = kRootLevel - 1; level >= kPg2M; level--) {
    const uint64_t step = pages_per(level);
    for (uint64_t gfn = start & ~(step - 1); gfn < end; gfn += step) {
    restart:
      uint64_t spte;
      int leaf_level;
      if (!mirror_leaf(gfn, &spte, &leaf_level) || leaf_level != level) continue;
      if (only_cross_boundary && gfn >= start && gfn + step <= end) continue;
      // Allocation drops the lock (GFP_KERNEL_ACCOUNT), then the walk restarts here.
      shared ? mmu_read_unlock() : mmu_write_unlock();
      const uint64_t index = tdp_mmu_alloc_sp(level - 1, gfn, true);
      shared ? mmu_read_lock() : mmu_write_lock();
      if (!index) return -kENOMEM;
      uint64_t again;
      int again_level;
      if (!mirror_leaf(gfn, &again, &again_level) || again_level != level) {
        tdp_mmu_free_sp(index);
        goto restart;
      }
      // The SPTE slot of the huge leaf.
      KvmMmuPage* p = sps_[root_].get();
      std::atomic<uint64_t>* sptep = nullptr;
      for (int l = kRootLevel; l >= level; l--) {
        sptep = &p->spt[(gfn >> (9 * (l - 1))) & 511];
        if (l > level) p = sps_[spte_pfn(sptep->load())].get();
      }
      if (tdp_mmu_split_huge_page(sptep, gfn, level, index, shared)) {
        tdp_mmu_free_sp(index);
        goto restart;
      }
      *flush = true;
    }
  }
  return 0;
}

// kvm_split_cross_boundary_leafs (v2 patch 12) for the mirror root.
int Kvm::kvm_split_cross_boundary_leafs(uint64_t start, uint64_t end, bool shared) {
  bool flush = false;
  int r = tdp_mmu_split_huge_pages_root(start, end, /*only_cross_boundary=*/true, shared, &flush);
  if (opts_.has(Bug::v2_split_bool_return)) {
    // §7.4: the v2 wrapper keeps the result in a bool, so -ENOMEM reads as 1 ("flush needed").
    bool ret = r < 0 ? true : flush;
    return ret;
  }
  return r < 0 ? r : flush;
}

// Teardown: every SPTE of the root is zapped with tdp_mmu_set_spte; handle_removed_pt takes
// the tables apart bottom-up (leaves reclaimed, then each table's S-EPT page).
void Kvm::zap_root_at_teardown() {
  KvmMmuPage* root = sps_[root_].get();
  for (uint64_t i = 0; i < 512; i++) {
    const uint64_t s = root->spt[i].load(std::memory_order_relaxed);
    if (is_shadow_present(s))
      tdp_mmu_set_spte(&root->spt[i], i * pages_per(kRootLevel), s, kShadowNonpresent, kRootLevel);
  }
}

}  // namespace kvm
