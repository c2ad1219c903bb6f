// The TDX module model: S-EPT, PAMT, TD epochs and locks, the S-EPT SEAMCALL leaves,
// TDH.VP.ENTER / TD exit and the guest's TDG.MEM.PAGE.ACCEPT (spec: tdx-module.md).
//
// Every leaf is written as the module runs it: a sequence of checks in the module's order,
// each lock a try-lock held in a Call until the leaf returns, and a yield point after each
// acquisition (Hooks::yield) where a scheduler may run another actor. Sequentially the yield
// points do nothing; the interleaving scheduler switches actors there, with the locks held.
#pragma once

#include <array>
#include <atomic>
#include <cassert>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "sim/host/pages.h"
#include "sim/tdx/locks.h"
#include "sim/tdx/sept_entry.h"
#include "sim/tdx/status.h"
#include "sim/tdx/types.h"

namespace tdx {

struct Regs {
  uint64_t rax = 0, rcx = 0, rdx = 0, r8 = 0, r9 = 0, r10 = 0, r11 = 0;
};

enum class Leaf : uint16_t {
#define LEAF(e, name, num, ver) e = num,
#include "sim/tdx/leaf.def"
#undef LEAF
};
const char* leaf_name(Leaf l);
bool find_leaf(std::string_view name, Leaf* leaf);  // by ABI name, "TDH.MEM.PAGE.DEMOTE"
int leaf_max_version(Leaf l);
inline uint64_t leaf_rax(Leaf l, unsigned version = 0) {
  return static_cast<uint64_t>(l) | (static_cast<uint64_t>(version) << 16);
}

struct Options {
#define OPTION(name, def, help) uint64_t name = def;
#include "sim/tdx/options.def"
#undef OPTION
  // Sets an option by name; false when the name is unknown.
  bool set(std::string_view name, uint64_t value);
  static std::string help();
};

// Fields are atomic because the module reads them while walking the PAMT before it takes
// an entry's lock (pamt_leaf), as the real module does; writers hold the lock. Type and owner
// change only through Module::set_pamt. Hot writers (DEMOTE's 512 children, RECLAIM) store
// with release order: the lock they hold orders the rest, and a default seq_cst store is a
// locked exchange on x86.
struct PamtEntry {
  SharexLock lock;
  std::atomic<PageType> type{PageType::NDA};
  std::atomic<uint64_t> owner{0};   // TDR HPA
  std::atomic<uint64_t> bepoch{0};  // TD epoch recorded by RANGE.BLOCK
};

// VMX basic exit reason of an EPT violation, as VP.ENTER reports a TD exit in RAX bits 31:0.
inline constexpr uint32_t kExitReasonEptViolation = 48;

// What the guest (or the host) learns from an EPT-violation TD exit (§2.15).
struct EptExit {
  uint64_t gpa = 0;
  int requested_level = 0;  // EEQ info bits 2:0 for an ACCEPT exit
  int found_level = 0;      // bits 5:3
  uint8_t state = 0;        // bits 13:6: public state of the entry found
  bool leaf = false;        // bit 14
  bool accept = false;      // EEQ type 1 (ACCEPT) rather than a zero-step synthetic exit
};

struct Vcpu {
  uint64_t tdvpr = 0, tdvpx = 0;
  bool initialized = false;
  bool in_td = false;       // between a successful VP.ENTER and the TD exit
  bool associated = false;  // entered since the last TDH.VP.FLUSH
  uint64_t epoch = 0;       // VCPU_EPOCH
  uint64_t tlb_flushes = 0;
  // Zero-step mitigation (§2.14 step 4): consecutive EPT-violation exits at one GPA.
  uint64_t last_fault_gpa = ~0ull;
  uint64_t fault_streak = 0;
  std::vector<uint64_t> epf_gpas;  // LAST_EPF_GPA_LIST
};

struct Td {
  uint64_t tdr = 0;
  uint32_t hkid = 0;
  std::atomic<Lifecycle> lifecycle{Lifecycle::NOT_CONFIGURED};
  std::atomic<bool> fatal{false};
  std::atomic<bool> tdcs_allocated{false};
  std::atomic<OpState> op_state{OpState::UNINITIALIZED};
  uint64_t tdcs = 0, root = 0;  // control pages (TDCX); root = the PML4 S-EPT page
  SharexLock op_state_lock, sept_lock, epoch_lock;
  std::atomic<uint64_t> td_epoch{1};
  std::array<std::atomic<uint32_t>, 2> refcount{};
  std::atomic<int64_t> chldcnt{0};  // pages of all kinds associated with the TD, in 4K units
  // TD attribute SEPT_VE_DISABLE: PENDING leaves have suppress-#VE set, so a guest access to
  // one exits to the host instead of raising #VE (tdx-module.md §2.15). Set by KVM at TD init.
  bool sept_ve_disable = true;
  uint64_t mrtd = 0;  // a stand-in for the measurement: hash of PAGE.ADD GPAs
  std::vector<Vcpu> vcpus;
};

// Result of TDG.MEM.PAGE.ACCEPT as the guest (or the host) observes it.
struct AcceptResult {
  enum Kind : uint8_t {
    kStatus,        // returned to the guest; `status` is RAX
    kEptViolation,  // TD exit to the host; the vCPU is no longer in the TD
    kResumed,       // interrupted 2M ACCEPT: progress saved, TDCALL re-executes (§2.15 step 7)
    kNotInTd,       // the vCPU is not in guest mode: the guest cannot run anything
  } kind = kStatus;
  uint64_t status = 0;
  EptExit exit;
};

class Hooks {
 public:
  virtual ~Hooks() = default;
  // A place where another actor could run; `where` names it for logs and probes.
  virtual void yield(const char* where) { (void)where; }
  // Called when a SEAMCALL, the guest's TDCALL or a TD exit returns; `name` is the ABI name.
  virtual void on_call(const char* name, const Regs& in, const Regs& out) {
    (void)name, (void)in, (void)out;
  }
  // False when on_call does nothing in this run (no log attached): the module then skips the
  // virtual call it makes for every SEAMCALL, TDCALL and TD exit. Hooks that override on_call
  // leave it true unless they know better.
  bool calls_observed() const { return calls_observed_; }
  void set_calls_observed(bool v) { calls_observed_ = v; }
  // The module checks for a pending host interrupt here (DEMOTE/PROMOTE, between the chunks
  // of a 2M ACCEPT); returning true consumes it.
  virtual bool interrupt_pending(const char* where) {
    (void)where;
    return false;
  }
  // VP.ENTER flushed this vCPU's TD translations (new epoch).
  virtual void on_tlb_flush(const Td& td, int vcpu) { (void)td, (void)vcpu; }

 private:
  bool calls_observed_ = true;
};

// How far create_td() builds a TD (tests reach the early lifecycle errors with these).
enum class BuildStage : uint8_t { kCreated, kKeysConfigured, kTdcsAdded, kInitialized };

class Module {
 public:
  // The TDMR covers exactly the host memory pool (its base must be 1G-aligned).
  explicit Module(host::HostPages& host, Options opts = {}, Hooks* hooks = nullptr);
  ~Module();
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  // Back to the state of a new module over the same (reset) host pool, in time proportional
  // to the 2M blocks touched since (pamt_touched).
  void reset(const Options& opts, Hooks* hooks);

  const Options& options() const { return opts_; }
  host::HostPages& host() { return host_; }
  void set_hooks(Hooks* h) { hooks_ = h ? h : &null_hooks_; }

  // --- Host side: SEAMCALL with RAX = leaf | version << 16. Unknown leaves fail like the
  // dispatcher does with TDX_OPERAND_INVALID|RAX.
  Regs seamcall(const Regs& in);
  // seamcall(in) for a caller whose RAX is leaf_rax(L) (version 0, a leaf the module has):
  // the dispatcher's RAX checks pass by construction and its switch is resolved at compile
  // time (module.cc checks that every leaf has a handler). With an injection pending, the
  // dispatcher itself runs (it consults the list first).
  template <Leaf L>
  Regs seamcall(const Regs& in) {
    assert(in.rax == leaf_rax(L));
    if (!injections_.empty()) [[unlikely]]
      return seamcall(in);
    return (this->*handler(L))(in);
  }

  // Fault injection, for reaching the error paths no valid input reaches: the `nth` next
  // call of `leaf` returns `status` (RCX/RDX zero) without running.
  void inject(Leaf leaf, uint64_t status, uint32_t nth = 1) {
    injections_.push_back({leaf, status, nth});
  }

  Regs tdh_mem_sept_add(const Regs& in);
  Regs tdh_mem_sept_remove(const Regs& in);
  Regs tdh_mem_page_add(const Regs& in);
  Regs tdh_mem_page_aug(const Regs& in);
  Regs tdh_mem_range_block(const Regs& in);
  Regs tdh_mem_range_unblock(const Regs& in);
  Regs tdh_mem_track(const Regs& in);
  Regs tdh_mem_page_remove(const Regs& in);
  Regs tdh_mem_page_demote(const Regs& in);
  Regs tdh_mem_page_promote(const Regs& in);
  Regs tdh_mr_finalize(const Regs& in);
  Regs tdh_vp_enter(const Regs& in);
  Regs tdh_vp_flush(const Regs& in);
  Regs tdh_mng_vpflushdone(const Regs& in);
  Regs tdh_phymem_cache_wb(const Regs& in);
  Regs tdh_mng_key_freeid(const Regs& in);
  Regs tdh_phymem_page_wbinvd(const Regs& in);
  Regs tdh_phymem_page_reclaim(const Regs& in);
  // The host-side leaf function of each leaf number the dispatcher accepts, else nullptr.
  static constexpr Regs (Module::*handler(Leaf leaf))(const Regs&) {
    switch (leaf) {
      case Leaf::MEM_SEPT_ADD:
        return &Module::tdh_mem_sept_add;
      case Leaf::MEM_SEPT_REMOVE:
        return &Module::tdh_mem_sept_remove;
      case Leaf::MEM_PAGE_ADD:
        return &Module::tdh_mem_page_add;
      case Leaf::MEM_PAGE_AUG:
        return &Module::tdh_mem_page_aug;
      case Leaf::MEM_RANGE_BLOCK:
        return &Module::tdh_mem_range_block;
      case Leaf::MEM_RANGE_UNBLOCK:
        return &Module::tdh_mem_range_unblock;
      case Leaf::MEM_TRACK:
        return &Module::tdh_mem_track;
      case Leaf::MEM_PAGE_REMOVE:
        return &Module::tdh_mem_page_remove;
      case Leaf::MEM_PAGE_DEMOTE:
        return &Module::tdh_mem_page_demote;
      case Leaf::MEM_PAGE_PROMOTE:
        return &Module::tdh_mem_page_promote;
      case Leaf::MR_FINALIZE:
        return &Module::tdh_mr_finalize;
      case Leaf::VP_ENTER:
        return &Module::tdh_vp_enter;
      case Leaf::VP_FLUSH:
        return &Module::tdh_vp_flush;
      case Leaf::MNG_VPFLUSHDONE:
        return &Module::tdh_mng_vpflushdone;
      case Leaf::PHYMEM_CACHE_WB:
        return &Module::tdh_phymem_cache_wb;
      case Leaf::MNG_KEY_FREEID:
        return &Module::tdh_mng_key_freeid;
      case Leaf::PHYMEM_PAGE_WBINVD:
        return &Module::tdh_phymem_page_wbinvd;
      case Leaf::PHYMEM_PAGE_RECLAIM:
        return &Module::tdh_phymem_page_reclaim;
    }
    return nullptr;
  }

  // --- TD exit of a vCPU in guest mode (td_exit.c): drops its epoch refcount and the TDR and
  // TDVPR locks VP.ENTER left held. Returns false if the vCPU was not in the TD.
  bool td_exit(uint64_t tdvpr);
  // --- A hardware EPT violation of a guest load or store at `gpa` (td_ept_violation_exit):
  // counted by the zero-step filter (td_exit_epf_stepping_log), then the TD exit. False when
  // the vCPU is not in guest mode. ACCEPT's own EPT-violation exits are not counted: the module
  // leaves through async_tdexit_ept_violation, which does not log (§2.14 step 4).
  bool ept_violation_exit(uint64_t tdvpr, uint64_t gpa);

  // --- Guest side.
  AcceptResult tdg_mem_page_accept(uint64_t tdvpr, uint64_t rcx);
  // The same TDCALL from a caller that already holds the vCPU the TDVPR names (vcpu_of(tdvpr)
  // gives `td` and `vcpu`): the running guest knows its own vCPU, so it skips the search.
  AcceptResult tdg_mem_page_accept(Td& td, Vcpu& vcpu, uint64_t rcx);

  // --- TD construction: TDH.MNG.CREATE, KEY.CONFIG, ADDCX, MNG.INIT, VP.CREATE/ADDCX/INIT
  // condensed into one step (their own checks are out of scope). Pages come from the host
  // pool. Returns the TDR HPA, or 0 when host memory ran out.
  uint64_t create_td(int nvcpus, BuildStage stage = BuildStage::kInitialized);
  void set_fatal(uint64_t tdr) { td_of(tdr)->fatal = true; }  // tests: a TD marked FATAL

  // --- Introspection (checks, tests, tools). None of these take locks.
  Td* td_of(uint64_t tdr);
  const std::vector<std::unique_ptr<Td>>& tds() const { return tds_; }
  PamtEntry& pamt_4k(uint64_t pfn) { return pamt4k_[pfn - base_]; }
  PamtEntry& pamt_2m(uint64_t pfn) { return pamt2m_[(pfn - base_) >> 9]; }
  PamtEntry& pamt_1g(uint64_t pfn) { return pamt1g_[(pfn - base_) >> 18]; }
  // The PAMT leaf covering a frame: the 1G or 2M entry when it is not NDA, else the 4K one.
  PamtEntry& pamt_leaf(uint64_t pfn, int* level);
  // Sets an entry's type and owner and records the 2M blocks it covers as touched (S-EPT pages
  // are created in touched blocks too).
  void set_pamt(PamtEntry& p, PageType type, uint64_t owner);
  // The same for the entry of frame `pfn` at `level` (pamt_4k/2m/1g(pfn)), when the caller
  // knows them: the touched blocks follow without finding the table.
  void set_pamt(PamtEntry& p, int level, uint64_t pfn, PageType type, uint64_t owner);
  // Whether any PAMT entry covering 2M block `block` (from the TDMR base) ever had its type or
  // owner set: in the other blocks every level is NDA with no owner, so whole-PAMT checks
  // skip them.
  bool pamt_touched(uint64_t block) const {
    return touched_[block].load(std::memory_order_relaxed);
  }
  bool in_tdmr(uint64_t pa, uint64_t size) const;
  SeptPage* sept_page(uint64_t hpa);
  // Walks like the module (stops at a leaf or a non-present entry above `level`).
  struct WalkResult {
    std::atomic<uint64_t>* slot = nullptr;
    int level = 0;  // level of `slot`
    bool reached = false;
  };
  WalkResult walk(const Td& td, uint64_t gpa, int level);
  Vcpu* vcpu_of(uint64_t tdvpr, Td** td);
  static bool is_tlb_tracked(const Td& td, uint64_t bepoch);
  // Host SEAMCALLs other than VP.ENTER that succeeded so far: a retry loop that sees this
  // move is waiting for a host that makes progress, not stuck (liveness budgets).
  uint64_t host_progress() const { return host_progress_.load(std::memory_order_relaxed); }

 private:
  class Call;
  struct Prologue;
  struct Target;
  bool prologue(Call& c, const Prologue& p, Target* t);
  bool check_tdr(Call& c, uint64_t pa, Operand op, LockMode mode, Td** td);
  bool check_new_page(Call& c, uint64_t pa, int level, Operand op, PamtEntry** locked);
  uint64_t pamt_bepoch_of(const Td& td, SeptEntry e, int level);
  void set_pamt_bepoch(SeptEntry e, int level, uint64_t epoch);
  SeptPage* new_sept_page(uint64_t hpa);
  void free_sept_page(uint64_t hpa);
  void note_ept_violation(Vcpu& v, uint64_t gpa);
  // TDG.MEM.PAGE.ACCEPT's exits (tdg_mem_page_accept.cc): a status to the guest, and the rare
  // EPT-violation TD exit, out of line.
  AcceptResult accept_status(uint64_t rcx, uint64_t status);
  AcceptResult accept_ept_exit(uint64_t tdvpr, uint64_t rcx, uint64_t gpa, int found_level,
                               SeptEntry e);
  void log_accept(uint64_t rcx, uint64_t rax, uint64_t r8);
  // TDH.PHYMEM.PAGE.RECLAIM after its PAMT lookup (tdh_phymem.cc).
  template <int kLevel, bool kSingle>
  Regs reclaim_leaf(const Regs& in, uint64_t pfn, uint64_t off, PamtEntry& p);
  Regs reclaim_tdr(const Regs& in, uint64_t pfn, uint64_t off, PamtEntry& p, int level);
  Regs reclaim_done(const Regs& in, const Regs& out);  // on_call, when calls are observed
  bool would_fault(Td& td, uint64_t gpa);

  host::HostPages& host_;
  Options opts_;
  Hooks null_hooks_;
  std::atomic<uint64_t> host_progress_{0};
  Hooks* hooks_;
  uint64_t base_;
  uint64_t n_;
  std::vector<PamtEntry> pamt4k_, pamt2m_, pamt1g_;
  std::unique_ptr<std::atomic<uint8_t>[]> touched_;       // by 2M block (set_pamt)
  std::unique_ptr<std::atomic<uint8_t>[]> sept_touched_;  // by 2M block: had an S-EPT page
  std::vector<std::unique_ptr<SeptPage>> sept_pages_;     // by frame
  std::vector<std::unique_ptr<Td>> tds_;
  uint32_t next_hkid_ = 1;
  struct Injection {
    Leaf leaf;
    uint64_t status;
    uint32_t countdown;
  };
  std::vector<Injection> injections_;
};

// The lookups every SEAMCALL makes, inline: RECLAIM at teardown runs them once a page.
inline bool Module::in_tdmr(uint64_t pa, uint64_t size) const {
  const uint64_t lo = base_ << host::kPageShift, hi = (base_ + n_) << host::kPageShift;
  return pa >= lo && pa < hi && size <= hi - pa;
}

inline PamtEntry& Module::pamt_leaf(uint64_t pfn, int* level) {
  const uint64_t off = pfn - base_;  // once: the atomic loads would make base_ be read again
  PamtEntry& g = pamt1g_[off >> 18];
  if (g.type != PageType::NDA) return *level = 2, g;
  PamtEntry& m = pamt2m_[off >> 9];
  if (m.type != PageType::NDA) return *level = 1, m;
  return *level = 0, pamt4k_[off];
}

inline void Module::set_pamt(PamtEntry& p, PageType type, uint64_t owner) {
  p.type.store(type, std::memory_order_release);
  p.owner.store(owner, std::memory_order_release);
  // The table holding p, by unsigned address difference (a wrapped one is out of range).
  const auto at = reinterpret_cast<uintptr_t>(&p);
  auto index = [at](const std::vector<PamtEntry>& v) -> uint64_t {
    return (at - reinterpret_cast<uintptr_t>(v.data())) / sizeof(PamtEntry);
  };
  uint64_t first, count = 1;
  if (const uint64_t i = index(pamt4k_); i < pamt4k_.size())
    first = i >> 9;
  else if (const uint64_t j = index(pamt2m_); j < pamt2m_.size())
    first = j;
  else if (const uint64_t k = index(pamt1g_); k < pamt1g_.size())
    first = k << 9, count = 512;
  else
    return;
  for (uint64_t b = first; b < first + count && b < pamt2m_.size(); b++)
    touched_[b].store(1, std::memory_order_relaxed);
}

inline void Module::set_pamt(PamtEntry& p, int level, uint64_t pfn, PageType type, uint64_t owner) {
  assert(&p == (level == kLevel4K   ? &pamt_4k(pfn)
                : level == kLevel2M ? &pamt_2m(pfn)
                                    : &pamt_1g(pfn)));
  p.type.store(type, std::memory_order_release);
  p.owner.store(owner, std::memory_order_release);
  const uint64_t off = pfn - base_;
  if (level == kLevel4K) {  // RECLAIM's and ACCEPT's case: one block, inside the TDMR
    touched_[off >> 9].store(1, std::memory_order_relaxed);
    return;
  }
  uint64_t first = off >> 9, count = 1;
  if (level == kLevel1G) first = (off >> 18) << 9, count = 512;
  for (uint64_t b = first; b < first + count && b < pamt2m_.size(); b++)
    touched_[b].store(1, std::memory_order_relaxed);
}

// The S-EPT walk and the vCPU lookup, inline: every ACCEPT (and most SEAMCALLs) makes them.
inline SeptPage* Module::sept_page(uint64_t hpa) {
  const uint64_t i = (hpa >> host::kPageShift) - base_;  // below base_ wraps out of range
  return i < n_ ? sept_pages_[i].get() : nullptr;
}

inline Module::WalkResult Module::walk(const Td& td, uint64_t gpa, int level) {
  int l = kPwl;
  std::atomic<uint64_t>* slot = &sept_page(td.root)->e[(gpa >> level_shift(l)) & 511];
  for (; l != level; l--) {
    const SeptEntry e{slot->load(std::memory_order_acquire)};
    // secure_ept_walk stops at a leaf or at an entry with RWX=0 (§1.3, §8.1).
    if (e.state() != SeptState::NL_MAPPED) return {slot, l, false};
    SeptPage* page = sept_page(e.hpa_bits());
    if (!page) return {slot, l, false};  // cannot happen while `module` invariants hold
    slot = &page->e[(gpa >> level_shift(l - 1)) & 511];
  }
  return {slot, l, true};
}

inline Vcpu* Module::vcpu_of(uint64_t tdvpr, Td** td) {
  for (auto& t : tds_)
    for (auto& v : t->vcpus)
      if (v.tdvpr == tdvpr) return *td = t.get(), &v;
  return nullptr;
}

inline Td* Module::td_of(uint64_t tdr) {
  for (auto& t : tds_)
    if (t->tdr == tdr) return t.get();
  return nullptr;
}

}  // namespace tdx
