// The KVM model: struct kvm / kvm_tdx, the TDP-MMU mirror tables with the TDX hooks, the vCPU
// run loop and the EPT-violation handler (spec: kvm-tdx.md; baseline: the TDX huge-page RFC v2
// series on 6.16). Function names follow the kernel's so that a report points at the real code.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sim/check/violation.h"
#include "sim/host/pages.h"
#include "sim/kvm/spte.h"
#include "sim/sched/env.h"
#include "sim/tdx/module.h"

namespace kvm {

// ---- bug zoo -------------------------------------------------------------------------------
enum class Bug : uint8_t {
#define BUG(name, property, interleaving, help) name,
#include "sim/kvm/bugs.def"
#undef BUG
  kCount
};
struct BugInfo {
  std::string_view name, property;
  bool needs_interleaving;
  std::string_view help;
};
const BugInfo& bug_info(Bug b);
std::optional<Bug> find_bug(std::string_view name);
using BugSet = uint32_t;
inline constexpr BugSet bug_bit(Bug b) {
  return 1u << static_cast<unsigned>(b);
}
// Parses "a,b,c"; on an unknown name returns false and names it in *bad.
bool parse_bugs(std::string_view list, BugSet* out, std::string* bad);
// TDXSIM_BUGS from the environment (empty when unset). Unknown names are fatal for the caller.
bool bugs_from_env(BugSet* out, std::string* bad);

// ---- options -------------------------------------------------------------------------------
struct Options {
#define OPTION(name, def, help) uint64_t name = def;
#include "sim/kvm/options.def"
#undef OPTION
  BugSet bugs = 0;
  bool has(Bug b) const {
    return bugs & bug_bit(b);
  }
  bool set(std::string_view name, uint64_t value);
  static std::string help();
};

// ---- errno and fault results ---------------------------------------------------------------
inline constexpr int kEINTR = 4, kEIO = 5, kEAGAIN = 11, kENOMEM = 12, kEFAULT = 14, kEBUSY = 16,
                     kEINVAL = 22, kEOPNOTSUPP = 95;
const char* errno_name(int e);  // "EIO" for 5 or -5; "ok" for 0
enum RetPf : int {
  RET_PF_CONTINUE = 0,
  RET_PF_RETRY = 1,
  RET_PF_EMULATE = 2,
  RET_PF_WRITE_PROTECTED = 3,
  RET_PF_INVALID = 4,
  RET_PF_FIXED = 5,
  RET_PF_SPURIOUS = 6,
};

enum class TdState : uint8_t { UNINITIALIZED, INITIALIZED, RUNNABLE };

// kvm->mmu_lock (rwlock) and slots_lock, with lockdep-style assertions.
// Atomic fields: taken and released by actors on different threads in free-running mode.
struct RwLock {
  std::atomic<int> readers{0};
  std::atomic<int> waiters{0};  // actors blocked in lock (rwlock_needbreak)
  std::atomic<bool> writer{false};
  std::atomic<int> writer_actor{-1};
  std::array<std::atomic<int>, 24>
      reader_actor{};  // readers per actor (index actor + 1), for lockdep
};
enum class LockNeed : uint8_t { kRead, kWrite, kAny };

// struct kvm_mmu_page: one mirror page table.
struct KvmMmuPage {
  int level = 0;              // level of the SPTEs in this table (1 = 4K PTEs)
  uint64_t gfn = 0;           // first GFN covered
  uint64_t external_spt = 0;  // HPA of the page given to the TDX module (0: root, or consumed)
  bool external_spt_leaked = false;
  std::array<std::atomic<uint64_t>, 512> spt;
  KvmMmuPage() { clear(); }
  // As new: tdp_mmu_alloc_sp reuses freed pages (see Kvm::new_sp).
  void clear() {
    level = 0, gfn = 0, external_spt = 0, external_spt_leaked = false;
    for (auto& s : spt) s.store(kShadowNonpresent, std::memory_order_relaxed);
  }
};

// lpage_info flags for one 2M range (kvm-tdx.md §1.9).
inline constexpr uint32_t kLpageMixed = 1u << 31;
inline constexpr uint32_t kLpageGuestInhibit = 1u << 30;

struct VcpuState {
  std::atomic<uint64_t> kicks{0};  // KVM_REQ_OUTSIDE_GUEST_MODE IPIs sent to this vCPU
};

// Everything KVM_BUG_ON recorded: the first one is the report; all feed `kvm-bug-on`.
struct BugOn {
  std::string function, condition, status;  // status: decoded SEAMCALL status, when one caused it
};

class Kvm final : public tdx::Hooks {
 public:
  Kvm(host::HostPages& host, tdx::Module& module, const Options& opts, int nvcpus,
      uint64_t memory_gfns);
  ~Kvm() override;

  // ---- VM and vCPU ioctls. Return 0 or a negative errno. -------------------------------------
  int tdx_init_mem_region(uint64_t gfn);                  // KVM_TDX_INIT_MEM_REGION, one 4K page
  int tdx_td_finalize();                                  // KVM_TDX_FINALIZE_VM
  int kvm_pre_fault_memory(uint64_t gfn, int max_level);  // KVM_PRE_FAULT_MEMORY (max level: ours)
  int split_huge_page(uint64_t gfn);                      // a write-lock split trigger at GFN
  int kvm_gmem_punch_hole(uint64_t gfn, uint64_t count);  // guest_memfd FALLOC_FL_PUNCH_HOLE (T3)
  int kvm_vm_set_mem_attributes(uint64_t gfn, uint64_t count, bool to_private);  // T2
  void kvm_destroy_vm();  // teardown: HKID release, reclaim
  // The next n (at least one) page-table allocations (tdp_mmu_alloc_sp) fail: the memory
  // cache top-up fails, and the caller takes its -ENOMEM path (the trace op `nomem`).
  void fail_next_allocs(uint64_t n) { fail_allocs_ = n ? n : 1; }

  // ---- vCPU run loop -----------------------------------------------------------------------
  // KVM_RUN until the vCPU is in guest mode. 0 when in guest; -EIO when the VM is dead.
  // The common case (already in guest mode) inline: a guest op calls this before every step.
  int kvm_arch_vcpu_ioctl_run(int v) {
    if (!vm_dead_ && state_ == TdState::RUNNABLE && vcpu_in_guest(v)) return 0;
    return vcpu_run(v);
  }
  // An asynchronous exit (host interrupt, kick acknowledgement): the vCPU leaves guest mode.
  void vcpu_async_exit(int v);
  // A TD exit for an EPT violation at `gpa` (type 1 ACCEPT with its info, 6 PENDING, 0 other)
  // reached KVM: tdx_handle_exit → tdx_handle_ept_violation. Returns > 0 to resume the guest,
  // < 0 for an error to userspace (the VM may be dead).
  int tdx_handle_ept_violation(int v, uint64_t gpa, unsigned eeq_type, const tdx::EptExit& info);

  // ---- state, for the guest, the checks and the tools -----------------------------------------
  const Options& options() const { return opts_; }
  void set_retry_limit(uint64_t n) { opts_.local_retry_limit = n; }
  tdx::Module& module() { return module_; }
  host::HostPages& host() { return host_; }
  uint64_t tdr() const { return tdr_; }
  // The module's vCPU v of this VM's TD; null once the TD is gone or for a v it lacks.
  const tdx::Vcpu* module_vcpu(int v) const {
    const tdx::Td* td = module_.td_of(tdr_);
    return td && v < static_cast<int>(td->vcpus.size()) ? &td->vcpus[v] : nullptr;
  }
  uint64_t tdvpr(int v) const {
    const tdx::Vcpu* vc = module_vcpu(v);
    return vc ? vc->tdvpr : 0;
  }
  int nr_vcpus() const { return static_cast<int>(vcpus_.size()); }
  // In guest mode = inside the TD between TDH.VP.ENTER and the TD exit (the module's view).
  bool vcpu_in_guest(int v) const {
    const tdx::Vcpu* vc = module_vcpu(v);
    return vc && vc->in_td;
  }
  uint64_t vcpu_kicks(int v) const { return vcpus_[v].kicks; }
  uint64_t memory_gfns() const { return nr_gfns_; }
  TdState td_state() const { return state_; }
  bool vm_bugged() const { return vm_bugged_; }
  bool vm_dead() const { return vm_dead_; }
  bool hkid_assigned() const { return hkid_assigned_; }
  bool wait_for_sept_zap() const { return wait_for_sept_zap_.load(); }
  int64_t nr_premapped() const { return nr_premapped_; }
  bool is_private(uint64_t gfn) const { return !attr_shared_[gfn].load(std::memory_order_relaxed); }
  uint32_t lpage_flags(uint64_t gfn) const {
    return lpage_[gfn >> 9].load(std::memory_order_relaxed);
  }
  const std::vector<BugOn>& bug_ons() const { return bug_ons_; }
  const check::Violations& violations() const { return violations_; }  // lockdep, liveness
  void add_violation(check::Violation v) {
    std::lock_guard<std::mutex> l(report_mu_);
    violations_.push_back(std::move(v));
  }
  const RwLock& mmu_lock() const { return mmu_lock_; }
  // kvm->stat.pages_{4k,2m,1g}: present mirror leaves per level (index = KVM level).
  int64_t page_stats(int level) const { return stats_[level]; }
  bool slots_locked() const { return slots_locked_; }

  // The present mirror SPTE at `gfn` and exactly `level`, or false.
  bool mirror_spte_at(uint64_t gfn, int level, uint64_t* spte) const;
  // The mirror leaf covering `gfn`: its SPTE and level, or false.
  bool mirror_leaf(uint64_t gfn, uint64_t* spte, int* level) const;
  // Visits every present mirror SPTE: (gfn, level, spte, is_leaf, external_spt of the child).
  template <typename F>
  void for_each_mirror_spte(F&& f) const {
    walk_visit(root_, f);
  }
  KvmMmuPage* sp(uint64_t index) const { return sps_[index].get(); }
  uint64_t mirror_root() const { return root_; }  // sp() index of the mirror root
  // The folio frame backing `gfn` in guest_memfd, or ~0 when none is allocated.
  uint64_t gmem_pfn(uint64_t gfn) const;

  // Hooks from the module (TLB flushes are forwarded to whoever models the guest TLB).
  void on_tlb_flush(const tdx::Td& td, int vcpu) override;
  void on_call(const char* name, const tdx::Regs& in, const tdx::Regs& out) override;
  bool interrupt_pending(const char* where) override;
  void yield(const char* where) override { env_->yield(where); }
  // Kvm::on_call only forwards: calls are observed when the observer observes them.
  void set_observer(tdx::Hooks* h) {
    observer_ = h;
    set_calls_observed(h && h->calls_observed());
  }
  // Where yields and blocking go: sequential by default, the scheduler when interleaved.
  void set_env(sched::Env* env) { env_ = env ? env : &sched::sequential_env(); }
  sched::Env& env() { return *env_; }
  // A vCPU at an instruction boundary takes a pending kick (KVM_REQ_OUTSIDE_GUEST_MODE IPI):
  // it leaves guest mode. True if it did.
  bool vcpu_ack_kick(int v) {
    if (!kick_pending_[v].load()) return false;
    vcpu_async_exit(v);  // the IPI: out of guest mode
    return true;
  }
  bool kick_pending(int v) const { return kick_pending_[v].load(); }
  // vcpu->mode == IN_GUEST_MODE: set before TDH.VP.ENTER (so a kick waits for a vCPU that is
  // entering), cleared when the vCPU is back in KVM (kvm-tdx.md §7.9).
  bool vcpu_mode_in_guest(int v) const { return mode_[v].load(); }

  // lockdep_assert_held{,_read,_write}: records a `lock-discipline` violation naming `function`
  // when kvm->mmu_lock is not held in the needed mode.
  // Inline when the lock is held for write, the common case (every zapped page at teardown).
  void lockdep_assert(LockNeed need, const char* function) {
    if (need == LockNeed::kWrite && mmu_lock_.writer && mmu_lock_.writer_actor == env_->actor() + 1)
      return;
    lockdep_assert_slow(need, function);
  }
  // The same test for a caller that knows its actor: `me` is env_->actor() + 1, which stays
  // the same while one actor's code runs (handle_removed_pt asks once a table, not once a page).
  void lockdep_assert(LockNeed need, const char* function, int me) {
    if (need == LockNeed::kWrite && mmu_lock_.writer && mmu_lock_.writer_actor == me) return;
    lockdep_assert_slow(need, function);
  }

  // KVM_BUG_ON(cond): marks the VM bugged and dead, records the site, returns cond.
  bool KVM_BUG_ON(bool cond, const char* function, const char* condition, uint64_t status = 0,
                  bool has_status = false) {
    if (!cond) [[likely]]
      return false;
    kvm_bug_on_fired(function, condition, status, has_status);
    return true;
  }

 private:
  int vcpu_run(int v);  // kvm_arch_vcpu_ioctl_run's slow path
  // One private fault at gfn: the PFN from guest_memfd (before mmu_lock, under its
  // invalidate lock), then kvm_tdp_mmu_map under the read lock unless an invalidation made
  // the fault stale. Returns RET_PF_* or a negative errno.
  // leave_mapped: the harness's level cap of `map` (KVM_PRE_FAULT_MEMORY has none): a huge
  // leaf above the goal found under the lock counts as mapped instead of being split.
  int kvm_mmu_do_page_fault(int v, uint64_t gfn, int max_level, bool leave_mapped = false);
  bool is_page_fault_stale(uint64_t gfn, int max_level, uint64_t mmu_seq) const;
  bool invalidation_covers(uint64_t gfn, int max_level) const;
  bool zero_step_waits_for_guest(uint64_t gpa);
  void kvm_mmu_invalidate_begin(uint64_t start, uint64_t end);
  void kvm_mmu_invalidate_end();
  void filemap_invalidate_lock(bool exclusive);
  void filemap_invalidate_unlock(bool exclusive);

  // tdp_mmu.cc
  int kvm_tdp_mmu_map(int v, uint64_t gfn, int max_level, bool leave_mapped = false);
  int kvm_mmu_hugepage_adjust(uint64_t gfn, int max_level);
  int tdp_mmu_set_spte_atomic(std::atomic<uint64_t>* sptep, uint64_t gfn, uint64_t old_spte,
                              uint64_t new_spte, int level);
  int set_external_spte_present(std::atomic<uint64_t>* sptep, uint64_t gfn, uint64_t old_spte,
                                uint64_t new_spte, int level);
  void tdp_mmu_set_spte(std::atomic<uint64_t>* sptep, uint64_t gfn, uint64_t old_spte,
                        uint64_t new_spte, int level);
  void handle_changed_spte(uint64_t gfn, uint64_t old_spte, uint64_t new_spte, int level,
                           bool shared);
  void handle_removed_pt(uint64_t sp_index, bool shared);
  // me: the caller's env_->actor() + 1, for lockdep.
  void remove_external_spte(uint64_t gfn, uint64_t old_spte, int level, int me);
  bool tdp_mmu_zap_leafs(uint64_t start, uint64_t end);
  bool tdp_mmu_need_resched(uint64_t leaves_since_yield) const;
  int tdp_mmu_split_huge_pages_root(uint64_t start, uint64_t end, bool only_cross_boundary,
                                    bool shared, bool* flush);
  int tdp_mmu_split_huge_page(std::atomic<uint64_t>* sptep, uint64_t gfn, int level,
                              uint64_t sp_index, bool shared);
  int kvm_split_cross_boundary_leafs(uint64_t start, uint64_t end, bool shared);
  uint64_t tdp_mmu_alloc_sp(int level, uint64_t gfn, bool with_external_spt);
  // A cleared page table, from this thread's freed ones when it has any (no malloc of 4K);
  // recycle_sp gives one back.
  static std::unique_ptr<KvmMmuPage> new_sp();
  static void recycle_sp(std::unique_ptr<KvmMmuPage> p);
  void tdp_mmu_free_sp(uint64_t index);
  void zap_root_at_teardown();
  template <typename F>
  void walk_visit(uint64_t sp_index, F& f) const;

  // tdx.cc — the TDX hooks and their helpers.
  int tdx_sept_link_private_spt(uint64_t gfn, int level, uint64_t external_spt);
  int tdx_sept_set_private_spte(uint64_t gfn, int level, uint64_t pfn);
  int tdx_sept_remove_private_spte(uint64_t gfn, int level, uint64_t pfn);
  int tdx_sept_zap_track_drop(uint64_t gfn, int level, uint64_t pfn);
  int tdx_reclaim_page(int level, uint64_t pfn);
  void reclaimed_huge_page(int level, uint64_t pfn);
  void warn_reclaim_failed(uint64_t status);
  int tdx_sept_zap_private_spte(uint64_t gfn, int level);
  void tdx_track();
  int tdx_sept_drop_private_spte(uint64_t gfn, int level, uint64_t pfn);
  int tdx_sept_free_private_spt(uint64_t gfn, int level, uint64_t external_spt);
  int tdx_sept_split_private_spt(uint64_t gfn, int level, uint64_t external_spt, bool shared);
  int tdx_spte_demote_private_spte(uint64_t gfn, int level, uint64_t external_spt);
  void tdx_no_vcpus_enter_start();
  void tdx_no_vcpus_enter_stop();
  void kvm_make_all_cpus_request_outside_guest_mode();
  void leave_guest_mode(int v);
  int tdx_check_accept_level(int v, uint64_t gfn, const tdx::EptExit& info);
  static tdx::Regs seamcall_regs(tdx::Leaf leaf, uint64_t rcx, uint64_t rdx, uint64_t r8,
                                 uint64_t r9) {
    tdx::Regs in;
    in.rax = tdx::leaf_rax(leaf);
    in.rcx = rcx;
    in.rdx = rdx;
    in.r8 = r8;
    in.r9 = r9;
    return in;
  }
  tdx::Regs seamcall(tdx::Leaf leaf, uint64_t rcx, uint64_t rdx = 0, uint64_t r8 = 0,
                     uint64_t r9 = 0) {
    return module_.seamcall(seamcall_regs(leaf, rcx, rdx, r8, r9));
  }
  // The same for a leaf fixed at the call site: the module's dispatch is resolved at compile
  // time (RECLAIM, once a page at teardown).
  template <tdx::Leaf L>
  tdx::Regs seamcall(uint64_t rcx, uint64_t rdx = 0, uint64_t r8 = 0, uint64_t r9 = 0) {
    return module_.seamcall<L>(seamcall_regs(L, rcx, rdx, r8, r9));
  }
  // A SEAMCALL with KVM's retry rule: on BUSY, no-vCPUs-enter retry once (kvm-tdx.md §4).
  tdx::Regs seamcall_retry(tdx::Leaf leaf, uint64_t rcx, uint64_t rdx = 0, uint64_t r8 = 0);
  uint64_t gpa_rcx(uint64_t gfn, int level) const {
    return ((gfn << 12) & ~(pages_per(level) * 4096 - 1)) | static_cast<uint64_t>(tdx_level(level));
  }

  void lockdep_assert_slow(LockNeed need, const char* function);
  void kvm_bug_on_fired(const char* function, const char* condition, uint64_t status,
                        bool has_status);

  // kvm.cc — locks, attributes, lpage_info, guest_memfd.
  // mutex_lock(&kvm->slots_lock), which also stands for kvm->lock: KVM_TDX_INIT_MEM_REGION,
  // KVM_TDX_FINALIZE_VM and KVM_SET_MEMORY_ATTRIBUTES hold both, so they never overlap
  // (kvm-tdx.md §1 locks). Interleaved actors wait for it like for mmu_lock.
  int tdx_gmem_post_populate(uint64_t gfn);  // fault-in at 4K and PAGE.ADD, locks held
  void slots_lock();
  void slots_unlock();
  void mmu_write_lock();
  void mmu_write_unlock();
  void mmu_read_lock();
  void mmu_read_unlock();
  int tdx_max_private_level() const;
  void recompute_lpage_mixed(uint64_t start, uint64_t end);
  bool gmem_get_pfn(uint64_t gfn, uint64_t* pfn, int* max_order_level);
  void gmem_truncate(uint64_t start, uint64_t end);
  void kvm_vm_dead_();

  host::HostPages& host_;
  tdx::Module& module_;
  Options opts_;
  tdx::Hooks* observer_ = nullptr;
  uint64_t tdr_ = 0;
  uint64_t nr_gfns_;
  std::atomic<TdState> state_{TdState::INITIALIZED};
  std::atomic<bool> hkid_assigned_{true};
  std::atomic<bool> vm_bugged_{false}, vm_dead_{false};
  std::atomic<bool> pre_fault_allowed_{false};
  std::atomic<bool> wait_for_sept_zap_{false};
  std::atomic<int64_t> nr_premapped_{0};
  RwLock mmu_lock_;
  RwLock gmem_invalidate_lock_;  // guest_memfd's filemap invalidate lock
  // Sampled by faults before they take mmu_lock (READ_ONCE + smp_rmb in the kernel).
  std::atomic<uint64_t> mmu_invalidate_seq_{0};
  std::atomic<int> mmu_invalidate_in_progress_{0};
  std::atomic<uint64_t> mmu_invalidate_start_{0}, mmu_invalidate_end_{0};
  std::atomic<bool> slots_locked_{false};
  std::atomic<uint64_t> fail_allocs_{0};  // `nomem`: allocations still to fail
  // Read by faults without mmu_lock (KVM uses an xarray and lpage_info read under RCU/locks).
  std::unique_ptr<std::atomic<uint8_t>[]> attr_shared_;  // per GFN: 1 = shared (zeroed: private)
  std::unique_ptr<std::atomic<uint32_t>[]> lpage_;       // per 2M range: MIXED / GUEST_INHIBIT
  // guest_memfd: per 2M range, a 2M folio (head pfn) or per-GFN 4K folios.
  struct GmemRange {
    uint64_t huge_pfn = ~0ull;
    std::vector<uint64_t> small;  // 512 entries, ~0 = hole
  };
  std::vector<GmemRange> gmem_;
  mutable std::mutex gmem_mu_;  // guest_memfd's own locking (filemap)
  // Registry of page tables, sized once so that lookups never race with growth; slots are
  // handed out under sp_mu_ (KVM allocates from per-vCPU caches).
  std::vector<std::unique_ptr<KvmMmuPage>> sps_;  // index 0 unused
  // What a VM leaves to the next one on its thread (a fuzzer builds one VM per execution): its
  // registry with every slot empty, and cleared page tables for new_sp.
  struct ThreadCache {
    std::vector<std::unique_ptr<KvmMmuPage>> registry;
    std::vector<std::unique_ptr<KvmMmuPage>> tables;  // at most host::kRecycledTables
  };
  static ThreadCache& thread_cache();
  std::vector<uint64_t> free_sp_slots_;
  uint64_t sp_next_ = 1;
  std::mutex sp_mu_;
  uint64_t root_ = 0;
  std::vector<VcpuState> vcpus_;
  std::unique_ptr<std::atomic<bool>[]> kick_pending_;
  // How many kick_pending_ flags are set: interrupt_pending, asked between every two chunks of
  // a 2M ACCEPT, looks for the running actor only when one is. Exact on one thread; on real
  // threads it can lag a flag by an instant (a kick is then seen at the next chunk).
  std::atomic<int> kicks_pending_{0};
  std::unique_ptr<std::atomic<bool>[]> mode_;
  std::unique_ptr<std::atomic<uint64_t>[]> exits_;  // times each vCPU went back to KVM
  sched::Env* env_ = &sched::sequential_env();
  std::vector<BugOn> bug_ons_;
  std::array<std::atomic<int64_t>, 5> stats_{};
  std::mutex report_mu_;
  check::Violations violations_;
};

template <typename F>
void Kvm::walk_visit(uint64_t sp_index, F& f) const {
  const KvmMmuPage* p = sps_[sp_index].get();
  for (uint64_t i = 0; i < 512; i++) {
    const uint64_t s = p->spt[i].load(std::memory_order_relaxed);
    if (!is_shadow_present(s)) continue;
    const uint64_t gfn = p->gfn + i * pages_per(p->level);
    const bool leaf = is_last_spte(s, p->level);
    f(gfn, p->level, s, leaf, leaf ? 0 : sps_[spte_pfn(s)]->external_spt);
    if (!leaf) walk_visit(spte_pfn(s), f);
  }
}

// remove_external_spte: BLOCK, TRACK + kick, REMOVE, WBINVD, clear (§2.B B3). After HKID
// release (teardown) the page is reclaimed directly. Inline, with tdx_reclaim_page: the
// teardown runs them once a guest page from handle_removed_pt's loop.
[[gnu::always_inline]] inline int Kvm::tdx_sept_remove_private_spte(uint64_t gfn, int level,
                                                                    uint64_t pfn) {
  if (!hkid_assigned_) return tdx_reclaim_page(level, pfn);
  return tdx_sept_zap_track_drop(gfn, level, pfn);
}

// tdx_reclaim_page: RECLAIM, then the page is the host's again, cleared (tdx_clear_page).
[[gnu::always_inline]] inline int Kvm::tdx_reclaim_page(int level, uint64_t pfn) {
  KVM_BUG_ON(!vm_dead_, "tdx_sept_remove_private_spte",
             "!is_hkid_assigned(kvm_tdx) && !kvm->vm_dead");
  tdx::Regs r = seamcall<tdx::Leaf::PHYMEM_PAGE_RECLAIM>(pfn << 12);
  if (r.rax) [[unlikely]] {
    warn_reclaim_failed(r.rax);
    return 0;
  }
  if (level == kPg4K) [[likely]]
    host_.transfer_and_zero(pfn, host::Use::kModule, host::Use::kHost, "reclaimed guest page");
  else
    reclaimed_huge_page(level, pfn);
  return 0;
}

}  // namespace kvm
