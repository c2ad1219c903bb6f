// struct kvm state: construction, KVM_BUG_ON, mmu_lock with lockdep-style assertions, memory
// attributes, lpage_info and guest_memfd.
#include "sim/kvm/kvm.h"

#include "sim/sched/probe.h"

#include <algorithm>
#include <cstdlib>
#include <sstream>

namespace kvm {
namespace {
constexpr BugInfo kBugs[] = {
#define BUG(name, property, interleaving, help) {#name, property, interleaving != 0, help},
#include "sim/kvm/bugs.def"
#undef BUG
};
}  // namespace

const BugInfo& bug_info(Bug b) {
  return kBugs[static_cast<size_t>(b)];
}

std::optional<Bug> find_bug(std::string_view name) {
  for (size_t i = 0; i < static_cast<size_t>(Bug::kCount); i++)
    if (kBugs[i].name == name) return static_cast<Bug>(i);
  return std::nullopt;
}

bool parse_bugs(std::string_view list, BugSet* out, std::string* bad) {
  BugSet set = 0;
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view name = list.substr(0, comma);
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    if (name.empty()) continue;
    auto b = find_bug(name);
    if (!b) {
      *bad = std::string(name);
      return false;
    }
    set |= bug_bit(*b);
  }
  *out = set;
  return true;
}

bool bugs_from_env(BugSet* out, std::string* bad) {
  const char* env = std::getenv("TDXSIM_BUGS");
  *out = 0;
  return env ? parse_bugs(env, out, bad) : true;
}

bool Options::set(std::string_view name, uint64_t value) {
#define OPTION(n, def, help) \
  if (name == #n) {          \
    n = value;               \
    return true;             \
  }
#include "sim/kvm/options.def"
#undef OPTION
  return false;
}

std::string Options::help() {
  std::ostringstream o;
#define OPTION(n, def, help) o << "  " << #n << " (default " << def << ")\n      " << help << "\n";
#include "sim/kvm/options.def"
#undef OPTION
  o << "  bug=NAME  enable a bug-zoo entry (also TDXSIM_BUGS=NAME[,NAME]):\n";
  for (const auto& b : kBugs)
    o << "      " << b.name << " (caught by `" << b.property << "`"
      << (b.needs_interleaving ? ", needs interleaving" : "") << ")\n          " << b.help << "\n";
  return o.str();
}

const char* errno_name(int e) {
  switch (e < 0 ? -e : e) {
    case 0:
      return "ok";
    case kEINTR:
      return "EINTR";
    case kEIO:
      return "EIO";
    case kEAGAIN:
      return "EAGAIN";
    case kENOMEM:
      return "ENOMEM";
    case kEFAULT:
      return "EFAULT";
    case kEBUSY:
      return "EBUSY";
    case kEINVAL:
      return "EINVAL";
    case kEOPNOTSUPP:
      return "EOPNOTSUPP";
  }
  return "E?";
}

Kvm::Kvm(host::HostPages& host, tdx::Module& module, const Options& opts, int nvcpus,
         uint64_t memory_gfns)
    : host_(host),
      module_(module),
      opts_(opts),
      nr_gfns_(memory_gfns),
      attr_shared_(new std::atomic<uint8_t>[memory_gfns]()),  // value-initialized: all private
      lpage_(new std::atomic<uint32_t>[(memory_gfns + 511) / 512]()),
      gmem_((memory_gfns + 511) / 512),
      vcpus_(nvcpus),
      kick_pending_(new std::atomic<bool>[nvcpus]),
      mode_(new std::atomic<bool>[nvcpus]),
      exits_(new std::atomic<uint64_t>[nvcpus]) {
  for (int v = 0; v < nvcpus; v++) kick_pending_[v] = false, mode_[v] = false, exits_[v] = 0;
  // Page tables: at most one per host frame (each non-root table has its external page). The
  // registry is mostly empty slots: the previous VM's on this thread is reused (see ~Kvm).
  sps_.swap(thread_cache().registry);
  if (sps_.size() != host.npages() + 2) {
    sps_.clear();
    sps_.resize(host.npages() + 2);
  }
  set_calls_observed(false);  // no observer yet
  module_.set_hooks(this);
  // KVM_CREATE_VM + KVM_TDX_INIT_VM + vCPU creation: the TD in op state INITIALIZED.
  tdr_ = module_.create_td(nvcpus);
  if (tdr_) module_.td_of(tdr_)->sept_ve_disable = opts_.sept_ve_disable;
  root_ = tdp_mmu_alloc_sp(kRootLevel, 0, false);
}

Kvm::~Kvm() {
  module_.set_hooks(nullptr);
  // Only slots below sp_next_ were ever used: clear those and keep the registry for the next
  // VM on this thread, instead of destroying and zeroing thousands of empty slots per run.
  for (uint64_t i = 1; i < sp_next_ && i < sps_.size(); i++)
    if (sps_[i]) recycle_sp(std::move(sps_[i]));
  auto& spare = thread_cache().registry;
  if (spare.empty()) spare.swap(sps_);
}

Kvm::ThreadCache& Kvm::thread_cache() {
  thread_local ThreadCache cache;
  return cache;
}

void Kvm::kvm_bug_on_fired(const char* function, const char* condition, uint64_t status,
                           bool has_status) {
  {
    std::lock_guard<std::mutex> l(report_mu_);
    bug_ons_.push_back(
        {function, condition, has_status ? tdx::status_name(status) : std::string()});
  }
  if (!vm_bugged_.exchange(true)) kvm_vm_dead_();
}

// kvm_vm_dead: KVM_REQ_VM_DEAD to every vCPU (WAIT): each leaves guest mode and KVM_RUN fails.
// KVM_REQ_VM_DEAD's IPI (kvm-tdx.md §3) takes a vCPU out of the TD at once. A vCPU that is
// IN_GUEST_MODE but not yet in the TD (before or inside TDH.VP.ENTER, where it may hold the
// TD's epoch lock) stays IN_GUEST_MODE until it gets there and sees vm_dead itself
// (tdx_vcpu_run): marking it outside early let a zap's kick skip it while it still held the
// epoch, so TRACK failed twice (kvm_ops found it: regressions/vm_dead_during_vp_enter_epoch).
void Kvm::kvm_vm_dead_() {
  vm_dead_ = true;
  const int me = env_->actor();
  for (int v = 0; v < nr_vcpus(); v++)
    if (vcpu_in_guest(v) || !mode_[v] || v == me) vcpu_async_exit(v);
}

void Kvm::lockdep_assert_slow(LockNeed need, const char* function) {
  // lockdep asks whether *this* thread holds the lock.
  const int me = env_->actor() + 1;
  const bool w = mmu_lock_.writer && mmu_lock_.writer_actor == me;
  const bool r = mmu_lock_.reader_actor[me] > 0;
  const bool ok = need == LockNeed::kWrite ? w : need == LockNeed::kRead ? r : (w || r);
  if (!ok)
    add_violation({"lock-discipline", function,
                   std::string(function) + " runs without kvm->mmu_lock held for " +
                       (need == LockNeed::kWrite  ? "write"
                        : need == LockNeed::kRead ? "read"
                                                  : "read or write")});
}

void Kvm::slots_lock() {
  auto free = [&] { return !slots_locked_.load(std::memory_order_relaxed); };
  if (!env_->block_until("kvm->slots_lock", free,
                         [&] { slots_locked_.store(true, std::memory_order_relaxed); })) {
    add_violation(
        {"liveness", "slots_lock", "mutex_lock(&kvm->slots_lock) while it is held: deadlock"});
    slots_locked_ = true;
  }
}
void Kvm::slots_unlock() {
  slots_locked_ = false;
  env_->notify();
}
void Kvm::mmu_write_lock() {
  yield("mmu_lock-write");
  const int me = env_->actor() + 1;
  auto free = [&] { return !mmu_lock_.writer && !mmu_lock_.readers; };
  if (!free()) sched::hit(sched::Probe::mmu_lock_contended);
  mmu_lock_.waiters++;
  if (!env_->block_until("kvm->mmu_lock (write)", free, [&] {
        mmu_lock_.waiters--;
        mmu_lock_.writer = true;
        mmu_lock_.writer_actor = me;
      })) {
    mmu_lock_.waiters--;
    add_violation(
        {"liveness", "mmu_lock", "write_lock(&kvm->mmu_lock) while it is held: deadlock"});
    mmu_lock_.writer = true;  // go on as the kernel would not: the report ends the run
    mmu_lock_.writer_actor = me;
  }
}
void Kvm::mmu_write_unlock() {
  mmu_lock_.writer = false;
  mmu_lock_.writer_actor = -1;
  env_->notify();
  yield("mmu_unlock-write");
}
void Kvm::mmu_read_lock() {
  yield("mmu_lock-read");
  const int me = env_->actor() + 1;
  auto free = [&] { return !mmu_lock_.writer; };
  if (!free()) sched::hit(sched::Probe::mmu_lock_contended);
  mmu_lock_.waiters++;
  if (!env_->block_until("kvm->mmu_lock (read)", free, [&] {
        mmu_lock_.waiters--;
        mmu_lock_.readers++;
        mmu_lock_.reader_actor[me]++;
      })) {
    mmu_lock_.waiters--;
    add_violation(
        {"liveness", "mmu_lock", "read_lock(&kvm->mmu_lock) while held for write: deadlock"});
    mmu_lock_.readers++;
    mmu_lock_.reader_actor[me]++;
  }
}
void Kvm::mmu_read_unlock() {
  mmu_lock_.readers--;
  mmu_lock_.reader_actor[env_->actor() + 1]--;
  env_->notify();
  yield("mmu_unlock-read");
}

// tdx_gmem_private_max_mapping_level, v2 patch 23: 4K until the TD is RUNNABLE, then 2M.
// Our choice for a module without ENHANCED_DEMOTE_INTERRUPTIBILITY (kvm-tdx.md §7.6, §1.9): v3
// gates huge pages on the feature, so KVM never maps private memory at 2M there and never
// needs a DEMOTE, which such a module may refuse with TDX_INTERRUPTED_RESTARTABLE whenever a
// host interrupt is pending. (Retrying DEMOTE instead was only in v2's dev tree, for testing.)
// v2 maps 2M anyway: bug zoo `demote_interrupt_fatal`.
int Kvm::tdx_max_private_level() const {
  if (state_ != TdState::RUNNABLE) return kPg4K;
  if (!module_.options().enhanced_demote_interruptibility &&
      !opts_.has(Bug::demote_interrupt_fatal))
    return kPg4K;
  return kPg2M;
}

// KVM_LPAGE_MIXED_FLAG: the attributes of a 2M range are not uniform.
void Kvm::recompute_lpage_mixed(uint64_t start, uint64_t end) {
  for (uint64_t r = start >> 9; r <= (end - 1) >> 9 && r < (nr_gfns_ + 511) / 512; r++) {
    bool mixed = false;
    const uint64_t lo = r << 9, hi = std::min<uint64_t>(lo + 512, nr_gfns_);
    for (uint64_t g = lo + 1; g < hi && !mixed; g++) mixed = attr_shared_[g] != attr_shared_[lo];
    if (mixed)
      lpage_[r] |= kLpageMixed;
    else
      lpage_[r] &= ~kLpageMixed;
  }
}

// kvm_gmem_get_pfn: the folio backing `gfn`, allocated on first use (a 2M folio when nothing
// of its 2M range is allocated yet, else 4K). *level is the largest mapping the folio allows.
bool Kvm::gmem_get_pfn(uint64_t gfn, uint64_t* pfn, int* level) {
  std::lock_guard<std::mutex> l(gmem_mu_);
  GmemRange& r = gmem_[gfn >> 9];
  if (r.huge_pfn != ~0ull) {
    *pfn = r.huge_pfn + (gfn & 511);
    *level = kPg2M;
    return true;
  }
  if (r.small.empty()) {
    uint64_t head;
    if (host_.alloc(9, host::Use::kHost, &head)) {
      r.huge_pfn = head;
      *pfn = head + (gfn & 511);
      *level = kPg2M;
      return true;
    }
    r.small.assign(512, ~0ull);
  }
  uint64_t& p = r.small[gfn & 511];
  if (p == ~0ull && !host_.alloc(0, host::Use::kHost, &p)) {
    p = ~0ull;
    return false;
  }
  *pfn = p;
  *level = kPg4K;
  return true;
}

uint64_t Kvm::gmem_pfn(uint64_t gfn) const {
  std::lock_guard<std::mutex> l(gmem_mu_);
  const GmemRange& r = gmem_[gfn >> 9];
  if (r.huge_pfn != ~0ull) return r.huge_pfn + (gfn & 511);
  return r.small.empty() ? ~0ull : r.small[gfn & 511];
}

// Truncation frees the frames of [start, end); a 2M folio partly truncated is split first
// (guest_memfd splits folios; KVM has already split any mapping across the boundary).
void Kvm::gmem_truncate(uint64_t start, uint64_t end) {
  std::lock_guard<std::mutex> l(gmem_mu_);
  for (uint64_t g = start; g < end;) {
    GmemRange& r = gmem_[g >> 9];
    const uint64_t lo = g & ~511ull, hi = lo + 512, stop = std::min(end, hi);
    if (r.huge_pfn != ~0ull) {
      if (g == lo && end >= hi) {
        host_.free(r.huge_pfn, 9);
        r.huge_pfn = ~0ull;
        g = hi;
        continue;
      }
      r.small.resize(512);
      for (uint64_t i = 0; i < 512; i++) r.small[i] = r.huge_pfn + i;
      r.huge_pfn = ~0ull;
    }
    if (!r.small.empty()) {
      // The 4K folios of this 2M range, freed in GFN order under one ledger lock.
      uint64_t pfns[512];
      size_t n = 0;
      for (; g < stop; g++) {
        uint64_t& s = r.small[g & 511];
        if (s == ~0ull) continue;
        pfns[n++] = s;
        s = ~0ull;
      }
      host_.free_frames(pfns, n);
    }
    g = stop;
  }
}

void Kvm::on_tlb_flush(const tdx::Td& td, int vcpu) {
  if (observer_) observer_->on_tlb_flush(td, vcpu);
}
void Kvm::on_call(const char* name, const tdx::Regs& in, const tdx::Regs& out) {
  if (observer_) observer_->on_call(name, in, out);
}
bool Kvm::interrupt_pending(const char* where) {
  // A 2M ACCEPT checks for interrupts between chunks: a kick of its vCPU stops it there.
  // Asked between each 4K chunk of a 2M ACCEPT: the cheap tests first.
  if (kicks_pending_.load(std::memory_order_relaxed) != 0) {
    const int me = env_->actor();
    if (sched::is_vcpu_actor(me) && me < nr_vcpus() && kick_pending_[me] &&
        std::string_view(where) == "accept") {
      sched::hit(sched::Probe::accept_interrupted_by_kick);
      return true;
    }
  }
  return observer_ && observer_->interrupt_pending(where);
}

bool Kvm::mirror_spte_at(uint64_t gfn, int level, uint64_t* spte) const {
  const KvmMmuPage* p = sps_[root_].get();
  for (;;) {
    const uint64_t s = p->spt[(gfn >> (9 * (p->level - 1))) & 511].load(std::memory_order_relaxed);
    if (!is_shadow_present(s)) return false;
    if (p->level == level) return *spte = s, true;
    if (is_last_spte(s, p->level)) return false;
    p = sps_[spte_pfn(s)].get();
  }
}

bool Kvm::mirror_leaf(uint64_t gfn, uint64_t* spte, int* level) const {
  const KvmMmuPage* p = sps_[root_].get();
  for (;;) {
    const uint64_t s = p->spt[(gfn >> (9 * (p->level - 1))) & 511].load(std::memory_order_relaxed);
    if (!is_shadow_present(s)) return false;
    if (is_last_spte(s, p->level)) {
      *spte = s;
      *level = p->level;
      return true;
    }
    p = sps_[spte_pfn(s)].get();
  }
}

}  // namespace kvm
