// Host physical memory: a pool of 4 KiB frames with contents and an ownership ledger.
//
// The ledger is the host's (KVM's) view of who owns each frame. It catches a frame handed out
// twice, freed twice, freed while the TDX module still owns it, or returned to the allocator
// with TD-keyed cache lines that were never written back (TDH.PHYMEM.PAGE.WBINVD), and it
// reports leaks at teardown. It never aborts: problems are recorded for sim/check to report.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "sim/host/rmw.h"

namespace host {

enum class Use : uint8_t {
  kFree,      // in the allocator
  kHost,      // held by host code (a PAGE.ADD source page, a page on its way to the module)
  kModule,    // handed to the TDX module: guest page, S-EPT page, TDR/TDCS/TDVPR page
  kReturned,  // given back by the module (REMOVE, SEPT.REMOVE, PROMOTE), not yet freed
};
const char* use_name(Use u);

inline constexpr uint64_t kPageShift = 12;
inline constexpr uint64_t kPageSize = 1ull << kPageShift;
inline constexpr uint64_t kPagesPer2M = 512;

// The ledger's lock: a test-and-test-and-set spinlock. Its critical sections are a few loads
// and stores (strings are built only for a violation), taken once a page on the RECLAIM and
// guest_memfd paths, where std::mutex cost more than the work it guarded. A waiter yields its
// CPU (free-running mode has more threads than cores). No yield point is ever reached while it
// is held, so fibers never wait on it. Plain atomics: ThreadSanitizer sees its ordering.
class LedgerLock {
 public:
  void lock() {
    while (rmw_exchange(held_, true, std::memory_order_acquire))
      while (held_.load(std::memory_order_relaxed)) std::this_thread::yield();
  }
  void unlock() { held_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> held_{false};
};

class HostPages {
 public:
  // `npages` frames starting at `base_pfn` (both multiples of 512).
  HostPages(uint64_t base_pfn, uint64_t npages);
  // Back to the state of a new pool, in time proportional to the blocks touched since.
  void reset();

  uint64_t base_pfn() const { return base_; }
  uint64_t npages() const { return n_; }
  bool contains(uint64_t pfn) const { return pfn >= base_ && pfn - base_ < n_; }

  // Allocates 1 << order contiguous frames aligned to their size (order 0 or 9). The lowest
  // 2M blocks serve 2M requests and 4K requests come from the top, so the two rarely collide.
  // Returns false when nothing fits. Allocation is deterministic.
  bool alloc(unsigned order, Use use, uint64_t* pfn);
  // Returns frames to the allocator; records a violation for a frame that is not held by the
  // host or that still needs a cache write-back.
  void free(uint64_t pfn, unsigned order);
  // free(pfn, 0) of each frame in turn, under one acquisition of the ledger lock.
  void free_frames(const uint64_t* pfns, size_t n);
  // Moves frames between owners, recording a violation when `from` is not the current owner.
  void transfer(uint64_t pfn, unsigned order, Use from, Use to, const char* why);
  // transfer(pfn, 0, ...) and then store_content(pfn, 0): one frame handed over and zeroed,
  // with one lookup (KVM's reclaim of each 4K guest page at teardown).
  void transfer_and_zero(uint64_t pfn, Use from, Use to, const char* why);

  Use use(uint64_t pfn) const { return use_[pfn - base_]; }
  // The ledger by frame offset from base_pfn(), for whole-pool scans.
  const Use* uses() const { return use_.data(); }
  // Whether any frame of 2M block `block` (from the base) was allocated, transferred, written
  // or marked for write-back since the pool was new: the other blocks are as new (every frame
  // free), so whole-pool checks and reset() skip them.
  bool block_touched(uint64_t block) const {
    return touched_[block].load(std::memory_order_relaxed);
  }
  // TD-keyed cache lines may exist for this frame (set when the module returns it).
  bool needs_wbinvd(uint64_t pfn) const { return dirty_[pfn - base_]; }
  void set_needs_wbinvd(uint64_t pfn, bool v) {
    std::lock_guard<LedgerLock> l(mu_);
    touch(pfn);
    dirty_[pfn - base_] = v;
  }

  // A frame's contents (one 64-bit word stands for the page). Atomic: vCPUs, KVM and the
  // module touch pages from different threads in free-running mode, as real CPUs do.
  std::atomic<uint64_t>& content(uint64_t pfn) {
    touch(pfn);
    return content_[pfn - base_];
  }
  uint64_t content(uint64_t pfn) const {
    return content_[pfn - base_].load(std::memory_order_relaxed);
  }
  // A plain store to the page, as the CPU's (x86 stores are ordered anyway). Zeroing loops use
  // it: a default (seq_cst) store to an atomic is a locked exchange on x86.
  void store_content(uint64_t pfn, uint64_t v) {
    touch(pfn);
    content_[pfn - base_].store(v, std::memory_order_relaxed);
  }

  uint64_t in_use() const { return used_; }
  const std::vector<std::string>& violations() const { return violations_; }
  void add_violation(std::string v) {
    std::lock_guard<LedgerLock> l(mu_);
    violations_.push_back(std::move(v));
  }

  // Content a frame has when the allocator hands it out: recognisable garbage, so that a
  // missing zeroing (ACCEPT) or copy (PAGE.ADD) shows up as a wrong value.
  static uint64_t junk(uint64_t pfn) { return 0x6a756e6b00000000ull | (pfn & 0xffffffffull); }

 private:
  void free_locked(uint64_t pfn);
  void free_violation(uint64_t pfn);
  void transfer_violation(uint64_t pfn, Use from, const char* why);
  void touch(uint64_t pfn) {
    std::atomic<uint8_t>& t = touched_[(pfn - base_) / kPagesPer2M];
    if (!t.load(std::memory_order_relaxed)) t.store(1, std::memory_order_relaxed);
  }

  uint64_t base_, n_;
  uint64_t used_ = 0;
  std::vector<Use> use_;
  std::vector<uint8_t> dirty_;
  std::unique_ptr<std::atomic<uint64_t>[]> content_;
  LedgerLock mu_;  // the ledger: the kernel's page allocator has its own locks too
  std::vector<uint16_t> free_in_block_;              // free frames per 2M block
  std::unique_ptr<std::atomic<uint8_t>[]> touched_;  // per 2M block, see block_touched()
  std::vector<std::string> violations_;
};

// Inline: a frame at a time on the teardown and fault paths, where the call cost more than
// the ledger update.
inline void HostPages::transfer(uint64_t pfn, unsigned order, Use from, Use to, const char* why) {
  const uint64_t end = pfn + (1ull << order);
  std::lock_guard<LedgerLock> l(mu_);
  for (uint64_t p = pfn; p < end; p++) {
    if (!contains(p)) [[unlikely]] {
      transfer_violation(p, from, why);
      continue;
    }
    Use& u = use_[p - base_];
    touch(p);
    if (u != from) [[unlikely]]
      transfer_violation(p, from, why);
    else
      u = to;
  }
}

[[gnu::always_inline]] inline void HostPages::transfer_and_zero(uint64_t pfn, Use from, Use to,
                                                                const char* why) {
  std::lock_guard<LedgerLock> l(mu_);
  if (!contains(pfn)) [[unlikely]]
    return transfer_violation(pfn, from, why);  // and no frame to zero
  const uint64_t i = pfn - base_;
  touch(pfn);
  if (use_[i] != from) [[unlikely]]
    transfer_violation(pfn, from, why);
  else
    use_[i] = to;
  content_[i].store(0, std::memory_order_relaxed);
}

}  // namespace host
