// The TD guest: a Linux guest by default (accepts memory before use, falls back from a 2M to
// 4K ACCEPT on TDX_PAGE_SIZE_MISMATCH, retries on BUSY), an adversarial one on request
// (touches memory it never accepted). Reads and writes go through a per-vCPU TLB model:
// translations are cached while in guest mode and dropped when the module flushes them at
// TDH.VP.ENTER in a new epoch (tdx-module.md §3, §8.11).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "sim/check/violation.h"
#include "sim/kvm/kvm.h"

namespace guest {

struct Result {
  enum Kind : uint8_t {
    kOk,      // done (a read carries `value`)
    kVe,      // a #VE was delivered to the guest (access to a PENDING page without SEPT_VE_DISABLE)
    kKilled,  // KVM killed the VM (access before accept with SEPT_VE_DISABLE)
    kErrno,   // KVM_RUN failed: `err` is the negative errno userspace sees
    kStuck,   // the instruction never completed within the retry bound (a `liveness` violation)
  } kind = kOk;
  int err = 0;
  uint64_t value = 0;
  std::string text() const;  // "ok", "ve", "killed", "EIO", ...
};

struct TlbEntry {
  uint64_t gfn = 0;  // first GFN of the translation
  int level = 0;     // KVM level: 1 = 4K, 2 = 2M
  uint64_t pfn = 0;  // first frame
};

class Guest {
 public:
  // Told of each effect at the instant it happens, so that a reference model stays exact when
  // vCPUs and the host interleave.
  struct Listener {
    virtual ~Listener() = default;
    virtual void accepted(uint64_t gfn, uint64_t count) { (void)gfn, (void)count; }  // zeroed
    virtual void stored(uint64_t gfn, uint64_t value) { (void)gfn, (void)value; }
    virtual void loaded(int v, uint64_t gfn, uint64_t value) { (void)v, (void)gfn, (void)value; }
  };

  explicit Guest(kvm::Kvm& kvm);
  void set_listener(Listener* l) { listener_ = l ? l : &null_listener_; }

  Result accept(int v, uint64_t gfn, int pg_level);
  Result write(int v, uint64_t gfn, uint64_t value);
  Result read(int v, uint64_t gfn);

  // The module flushed vCPU v's TD translations (VP.ENTER in a new epoch).
  void tlb_flush(int v) { tlb_[v].clear(); }
  // The guest itself converted these GFNs (MapGPA): it forgets they were accepted, and a page
  // that became shared starts at zero in the shared alias.
  void forget(uint64_t gfn, uint64_t count);
  bool believes_accepted(uint64_t gfn) const { return accepted_[gfn]; }
  // Build-time memory (KVM_TDX_INIT_MEM_REGION) is accepted from the guest's first instruction.
  void mark_accepted(uint64_t gfn) { accepted_[gfn] = 1; }

  // `stale-tlb`: every cached translation of a vCPU in guest mode is still what the S-EPT maps.
  void check_tlbs(check::Violations* out) const;
  const check::Violations& violations() const { return violations_; }
  const std::vector<std::unordered_map<uint64_t, TlbEntry>>& tlbs() const { return tlb_; }

 private:
  int enter(int v);  // 0 when in guest mode, else the errno
  // The module's vCPU v and its TD when KVM_RUN's fast path holds (the vCPU is in guest mode)
  // and the TD is the module's only one, so vcpu_of(its TDVPR) finds exactly it; else null.
  tdx::Vcpu* running_vcpu(int v, tdx::Td** td) const;
  Result fail_run(int err) const;
  Result access(int v, uint64_t gfn, bool is_write, uint64_t value);
  Result accept_once(int v, uint64_t gfn, int pg_level, bool* size_mismatch);
  [[gnu::cold, gnu::noinline]] Result stuck_accept(int v, uint64_t gfn, uint64_t limit);
  bool tlb_valid(const TlbEntry& t, std::string* why) const;
  const TlbEntry* tlb_lookup(int v, uint64_t gfn) const;
  void ensure_accepted(int v, uint64_t gfn, Result* r);

  kvm::Kvm& kvm_;
  std::vector<std::unordered_map<uint64_t, TlbEntry>> tlb_;  // key: gfn | level << 56
  // What the guest believes, shared by its vCPUs (threads in free-running mode).
  std::unique_ptr<std::atomic<uint8_t>[]> accepted_;
  uint64_t gfns_;
  std::unordered_map<uint64_t, uint64_t> shared_;  // shared pages, through the shared GPA alias
  check::Violations violations_;
  std::mutex mu_;  // shared_ and violations_
  void report(check::Violation v) {
    std::lock_guard<std::mutex> l(mu_);
    violations_.push_back(std::move(v));
  }
  Listener null_listener_;
  Listener* listener_ = &null_listener_;
};

}  // namespace guest
