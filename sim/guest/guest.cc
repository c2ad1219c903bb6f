#include "sim/guest/guest.h"
#include "sim/host/hex.h"

#include <cstdio>

#include "sim/sched/probe.h"

namespace guest {

using kvm::kPg2M;
using kvm::kPg4K;

namespace {
using host::hex;
uint64_t key(uint64_t gfn, int level) {
  return gfn | (static_cast<uint64_t>(level) << 56);
}
}  // namespace

std::string Result::text() const {
  switch (kind) {
    case kOk:
      return "ok";
    case kVe:
      return "ve";
    case kKilled:
      return "killed";
    case kErrno:
      return kvm::errno_name(err);
    case kStuck:
      return "stuck";
  }
  return "?";
}

Guest::Guest(kvm::Kvm& kvm)
    : kvm_(kvm),
      tlb_(kvm.nr_vcpus()),
      accepted_(new std::atomic<uint8_t>[kvm.memory_gfns()]()),  // value-initialized: zero
      gfns_(kvm.memory_gfns()) {}

void Guest::forget(uint64_t gfn, uint64_t count) {
  std::lock_guard<std::mutex> l(mu_);
  for (uint64_t g = gfn; g < gfn + count && g < gfns_; g++) {
    accepted_[g] = 0;
    shared_.erase(g);
  }
}

int Guest::enter(int v) {
  return kvm_.kvm_arch_vcpu_ioctl_run(v);
}

// KVM_RUN failed: a VM that KVM killed on purpose reads as `killed`, anything else as errno.
Result Guest::fail_run(int err) const {
  Result r;
  if (kvm_.vm_dead() && !kvm_.vm_bugged()) {
    r.kind = Result::kKilled;
  } else {
    r.kind = Result::kErrno;
    r.err = err;
  }
  return r;
}

tdx::Vcpu* Guest::running_vcpu(int v, tdx::Td** td) const {
  kvm::Kvm& kvm = kvm_;
  if (kvm.vm_dead() || kvm.td_state() != kvm::TdState::RUNNABLE) return nullptr;
  const auto& tds = kvm.module().tds();
  if (tds.size() != 1 || tds[0]->tdr != kvm.tdr()) return nullptr;
  tdx::Td& t = *tds[0];
  // v < size without the division by sizeof(Vcpu) that size() costs.
  const auto bytes = reinterpret_cast<uintptr_t>(t.vcpus.data() + t.vcpus.size()) -
                     reinterpret_cast<uintptr_t>(t.vcpus.data());
  if (static_cast<uint64_t>(v) * sizeof(tdx::Vcpu) >= bytes || !t.vcpus[v].in_td) return nullptr;
  return *td = &t, &t.vcpus[v];
}

// Inlined into accept(): its 4K fallback makes up to 512 of these in a row.
[[gnu::always_inline]] inline Result Guest::accept_once(int v, uint64_t gfn, int pg_level,
                                                        bool* size_mismatch) {
  const uint64_t limit = kvm_.options().local_retry_limit;
  const uint64_t gpa = gfn << 12;
  const uint64_t rcx = gpa | kvm::tdx_level(pg_level);
  tdx::Module& module = kvm_.module();
  // BUSY while the host makes progress (e.g. the host SEAMCALL that set the entry's
  // host-priority bit waits for a long punch hole before it retries) restarts the budget:
  // `liveness` means `limit` attempts in a row with no host SEAMCALL succeeding (and the total
  // stays bounded, so that a livelock of busy hosts ends as `liveness` too). kvm_ops found it.
  uint64_t progress = module.host_progress(), waited = 0;
  for (uint64_t tries = 0; tries <= limit; tries++) {
    kvm_.vcpu_ack_kick(v);  // an instruction boundary: a pending IPI is taken here
    // Already in guest mode (KVM_RUN's fast path): the TDCALL of the vCPU found once.
    tdx::Td* td = nullptr;
    tdx::Vcpu* vc = running_vcpu(v, &td);
    if (!vc) [[unlikely]] {
      if (int e = enter(v)) return fail_run(e);
    }
    const tdx::AcceptResult a = vc ? module.tdg_mem_page_accept(*td, *vc, rcx)
                                   : module.tdg_mem_page_accept(kvm_.tdvpr(v), rcx);
    const tdx::Status s = tdx::status_class(a.status);
    if (a.kind == tdx::AcceptResult::kStatus &&
        (s == tdx::Status::SUCCESS || s == tdx::Status::PAGE_ALREADY_ACCEPTED)) [[likely]] {
      std::atomic<uint8_t>* acc = accepted_.get();
      if (pg_level == kPg4K) {
        acc[gfn].store(1, std::memory_order_relaxed);
        if (s == tdx::Status::SUCCESS) listener_->accepted(gfn, 1);
        return {};
      }
      const uint64_t n = kvm::pages_per(pg_level);
      for (uint64_t g = gfn; g < gfn + n; g++) acc[g].store(1, std::memory_order_relaxed);
      if (s == tdx::Status::SUCCESS) listener_->accepted(gfn, n);
      return {};
    }
    switch (a.kind) {
      case tdx::AcceptResult::kStatus: {
        if (s == tdx::Status::PAGE_SIZE_MISMATCH) {
          *size_mismatch = true;
          return {};
        }
        if (tdx::is_busy(a.status)) {  // the host holds the entry: try again
          sched::hit(sched::Probe::accept_busy);
          kvm_.env().spin("guest-accept-busy");
          const uint64_t now = module.host_progress();
          if (now != progress && waited++ < limit * 1024) tries = 0;
          progress = now;
          continue;
        }
        Result r;  // e.g. TDX_OPERAND_INVALID: a Linux guest would panic
        r.kind = Result::kErrno;
        r.err = -kvm::kEINVAL;
        return r;
      }
      case tdx::AcceptResult::kEptViolation: {
        kvm_.vcpu_async_exit(v);  // the module already left the TD; KVM is back in control
        int h = kvm_.tdx_handle_ept_violation(v, gpa, 1, a.exit);
        if (h < 0) return fail_run(h);
        continue;
      }
      case tdx::AcceptResult::kResumed:  // interrupted 2M ACCEPT: the TDCALL re-executes
      case tdx::AcceptResult::kNotInTd:
        continue;
    }
  }
  return stuck_accept(v, gfn, limit);
}

Result Guest::stuck_accept(int v, uint64_t gfn, uint64_t limit) {
  report({"liveness", "guest-accept",
          "vCPU " + std::to_string(v) + ": ACCEPT of GFN " + hex(gfn) + " did not complete in " +
              std::to_string(limit) + " attempts"});
  Result r;
  r.kind = Result::kStuck;
  return r;
}

Result Guest::accept(int v, uint64_t gfn, int pg_level) {
  gfn &= ~(kvm::pages_per(pg_level) - 1);
  bool mismatch = false;
  Result r = accept_once(v, gfn, pg_level, &mismatch);
  if (r.kind != Result::kOk || !mismatch) return r;
  // Linux falls back to 4K when the host mapped smaller than 2M.
  for (uint64_t g = gfn; g < gfn + 512; g++) {
    bool m = false;
    r = accept_once(v, g, kPg4K, &m);
    if (r.kind != Result::kOk) return r;
  }
  return r;
}

// A Linux guest accepts memory before first use, in 2M units when it can (its unaccepted-
// memory bitmap), at 4K when the unit holds pages it made shared.
void Guest::ensure_accepted(int v, uint64_t gfn, Result* r) {
  if (accepted_[gfn] || kvm_.options().adversarial_guest) return;
  const uint64_t unit = gfn & ~511ull;
  bool whole = unit + 512 <= gfns_;
  for (uint64_t g = unit; whole && g < unit + 512; g++) whole = kvm_.is_private(g);
  *r = whole ? accept(v, unit, kPg2M) : accept(v, gfn, kPg4K);
}

const TlbEntry* Guest::tlb_lookup(int v, uint64_t gfn) const {
  for (int level = kPg4K; level <= kPg2M; level++) {
    auto it = tlb_[v].find(key(gfn & ~(kvm::pages_per(level) - 1), level));
    if (it != tlb_[v].end()) return &it->second;
  }
  return nullptr;
}

bool Guest::tlb_valid(const TlbEntry& t, std::string* why) const {
  tdx::Td* td = kvm_.module().td_of(kvm_.tdr());
  if (!td) return *why = "the TD is gone", false;
  auto w = kvm_.module().walk(*td, t.gfn << 12, kvm::tdx_level(t.level));
  const tdx::SeptEntry e{w.slot->load()};
  // BLOCKED is still the same page: blocked but not yet removed or demoted, which is exactly
  // the window TRACK + kick exists for (tdx-module.md §3).
  const bool same_page =
      e.state() == tdx::SeptState::MAPPED || e.state() == tdx::SeptState::BLOCKED;
  if (w.reached && same_page && e.hpa(kvm::tdx_level(t.level)) == t.pfn << 12) return true;
  *why = std::string("cached ") + (t.level == kPg2M ? "2M" : "4K") + " translation GFN " +
         hex(t.gfn) + " -> PFN " + hex(t.pfn) + ", but the S-EPT has " +
         tdx::state_name(e.state()) + " at " + tdx::level_name(w.level) +
         (w.reached ? "" : " (walk stopped above)");
  return false;
}

void Guest::check_tlbs(check::Violations* out) const {
  for (int v = 0; v < kvm_.nr_vcpus(); v++) {
    if (!kvm_.vcpu_in_guest(v)) continue;  // translations of a vCPU outside are never used
    for (const auto& [k, t] : tlb_[v]) {
      std::string why;
      if (!tlb_valid(t, &why))
        out->push_back({"stale-tlb", "vcpu-in-guest", "vCPU " + std::to_string(v) + ": " + why});
    }
  }
}

Result Guest::access(int v, uint64_t gfn, bool is_write, uint64_t value) {
  Result r;
  if (!kvm_.is_private(gfn)) {  // the guest made it shared: it goes through the shared alias
    {
      std::lock_guard<std::mutex> l(mu_);
      if (is_write) shared_[gfn] = value;
      auto it = shared_.find(gfn);
      r.value = it == shared_.end() ? 0 : it->second;
    }
    if (is_write)
      listener_->stored(gfn, value);
    else
      listener_->loaded(v, gfn, r.value);
    return r;
  }
  ensure_accepted(v, gfn, &r);
  if (r.kind != Result::kOk) return r;
  const uint64_t limit = kvm_.options().local_retry_limit;
  for (uint64_t tries = 0; tries <= limit; tries++) {
    kvm_.vcpu_ack_kick(v);
    if (int e = enter(v)) return fail_run(e);
    kvm_.env().yield("guest-access");
    const TlbEntry* t = tlb_lookup(v, gfn);
    TlbEntry fresh;
    if (!t) {
      // A hardware walk of the S-EPT.
      tdx::Td* td = kvm_.module().td_of(kvm_.tdr());
      auto w = kvm_.module().walk(*td, gfn << 12, 0);
      const tdx::SeptEntry e{w.slot->load()};
      const tdx::SeptState s = e.state();
      if (s == tdx::SeptState::MAPPED) {
        fresh = {gfn & ~(kvm::pages_per(w.level + 1) - 1), w.level + 1, e.hpa(w.level) >> 12};
        tlb_[v][key(fresh.gfn, fresh.level)] = fresh;
        t = &fresh;
      } else if (s == tdx::SeptState::PENDING) {
        if (!kvm_.options().sept_ve_disable) {
          r.kind = Result::kVe;
          return r;
        }
        kvm_.vcpu_async_exit(v);  // TD exit: PENDING_EPT_VIOLATION
        int h = kvm_.tdx_handle_ept_violation(v, gfn << 12, 6, {});
        return fail_run(h < 0 ? h : -kvm::kEIO);
      } else {
        // TD exit: EPT violation, logged by the zero-step filter; KVM faults the page in.
        kvm_.module().ept_violation_exit(kvm_.tdvpr(v), gfn << 12);
        kvm_.vcpu_async_exit(v);
        int h = kvm_.tdx_handle_ept_violation(v, gfn << 12, 0, {});
        if (h < 0) return fail_run(h);
        continue;
      }
    } else {
      std::string why;
      if (!tlb_valid(*t, &why))
        report({"stale-tlb", "guest-access",
                "vCPU " + std::to_string(v) + " accessed GFN " + hex(gfn) +
                    " through a stale translation: " + why});
    }
    const uint64_t pfn = t->pfn + (gfn - t->gfn);
    if (is_write) {
      kvm_.host().store_content(pfn, value);
      listener_->stored(gfn, value);
    }
    r.value = kvm_.host().content(pfn);
    if (!is_write) listener_->loaded(v, gfn, r.value);
    return r;
  }
  report({"liveness", "guest-access",
          "vCPU " + std::to_string(v) + ": access to GFN " + hex(gfn) + " did not complete in " +
              std::to_string(limit) + " attempts"});
  r.kind = Result::kStuck;
  return r;
}

Result Guest::write(int v, uint64_t gfn, uint64_t value) {
  return access(v, gfn, true, value);
}
Result Guest::read(int v, uint64_t gfn) {
  return access(v, gfn, false, 0);
}

}  // namespace guest
