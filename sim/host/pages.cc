#include "sim/host/pages.h"

#include <algorithm>
#include <cstdio>

namespace host {

const char* use_name(Use u) {
  switch (u) {
    case Use::kFree:
      return "free";
    case Use::kHost:
      return "host";
    case Use::kModule:
      return "module";
    case Use::kReturned:
      return "returned";
  }
  return "?";
}

namespace {
std::string pfn_str(uint64_t pfn) {
  char b[32];
  std::snprintf(b, sizeof b, "pfn 0x%llx", static_cast<unsigned long long>(pfn));
  return b;
}
}  // namespace

HostPages::HostPages(uint64_t base_pfn, uint64_t npages)
    : base_(base_pfn),
      n_(npages),
      use_(npages, Use::kFree),
      dirty_(npages, 0),
      content_(new std::atomic<uint64_t>[npages]),
      free_in_block_(npages / kPagesPer2M, kPagesPer2M),
      touched_(new std::atomic<uint8_t>[npages / kPagesPer2M]()) {
  for (uint64_t i = 0; i < n_; i++) content_[i].store(junk(base_ + i), std::memory_order_relaxed);
}

void HostPages::reset() {
  for (uint64_t b = 0; b < n_ / kPagesPer2M; b++) {
    if (!touched_[b]) continue;
    // Separate loops: the byte arrays become two small memsets, the junk one a plain store loop.
    const uint64_t first = b * kPagesPer2M;
    std::fill_n(use_.data() + first, kPagesPer2M, Use::kFree);
    std::fill_n(dirty_.data() + first, kPagesPer2M, 0);
    std::atomic<uint64_t>* const c = content_.get() + first;
    const uint64_t pfn = base_ + first;
    for (uint64_t i = 0; i < kPagesPer2M; i++) c[i].store(junk(pfn + i), std::memory_order_relaxed);
    free_in_block_[b] = kPagesPer2M;
    touched_[b] = 0;
  }
  used_ = 0;
  violations_.clear();
}

bool HostPages::alloc(unsigned order, Use use, uint64_t* pfn) {
  std::lock_guard<LedgerLock> l(mu_);
  const uint64_t blocks = free_in_block_.size();
  if (order == 9) {
    for (uint64_t b = 0; b < blocks; b++) {
      if (free_in_block_[b] != kPagesPer2M) continue;
      const uint64_t first = b * kPagesPer2M;  // as in reset(): a memset and a plain loop
      std::fill_n(use_.data() + first, kPagesPer2M, use);
      std::atomic<uint64_t>* const c = content_.get() + first;
      const uint64_t head = base_ + first;
      for (uint64_t i = 0; i < kPagesPer2M; i++)
        c[i].store(junk(head + i), std::memory_order_relaxed);
      free_in_block_[b] = 0;
      touched_[b].store(1, std::memory_order_relaxed);
      used_ += kPagesPer2M;
      *pfn = base_ + b * kPagesPer2M;
      return true;
    }
    return false;
  }
  for (uint64_t b = blocks; b-- > 0;) {
    if (free_in_block_[b] == 0) continue;
    for (uint64_t i = kPagesPer2M; i-- > 0;) {
      uint64_t idx = b * kPagesPer2M + i;
      if (use_[idx] != Use::kFree) continue;
      use_[idx] = use;
      content_[idx].store(junk(base_ + idx), std::memory_order_relaxed);
      free_in_block_[b]--;
      touch(base_ + idx);
      used_++;
      *pfn = base_ + idx;
      return true;
    }
  }
  return false;
}

// Violations are rare: their strings are built out of line, away from the per-frame loops.
[[gnu::noinline, gnu::cold]] void HostPages::free_violation(uint64_t p) {
  if (!contains(p))
    violations_.push_back("free of " + pfn_str(p) + " outside host memory");
  else if (use_[p - base_] == Use::kFree)
    violations_.push_back("double free of " + pfn_str(p));
  else if (use_[p - base_] == Use::kModule)
    violations_.push_back("free of " + pfn_str(p) + " while the TDX module owns it");
  else
    violations_.push_back("free of " + pfn_str(p) + " without TDH.PHYMEM.PAGE.WBINVD");
}

inline void HostPages::free_locked(uint64_t p) {
  if (!contains(p)) [[unlikely]]
    return free_violation(p);
  const uint64_t i = p - base_;
  if (use_[i] == Use::kFree || use_[i] == Use::kModule) [[unlikely]]
    return free_violation(p);
  if (dirty_[i]) [[unlikely]]
    free_violation(p);  // recorded, and the frame is freed all the same
  dirty_[i] = 0;
  use_[i] = Use::kFree;
  free_in_block_[i / kPagesPer2M]++;
  used_--;
}

void HostPages::free(uint64_t pfn, unsigned order) {
  std::lock_guard<LedgerLock> l(mu_);
  for (uint64_t i = 0; i < (1ull << order); i++) free_locked(pfn + i);
}

// guest_memfd's release frees every 4K folio here. The ledger's arrays are read through locals
// (byte stores would make the compiler reload them each frame); a frame that is not a plain
// free takes free_locked, which records the violation.
void HostPages::free_frames(const uint64_t* pfns, size_t n) {
  std::lock_guard<LedgerLock> l(mu_);
  Use* const use = use_.data();
  uint8_t* const dirty = dirty_.data();
  uint16_t* const free_in_block = free_in_block_.data();
  const uint64_t base = base_, npages = n_;
  uint64_t freed = 0;
  for (size_t k = 0; k < n; k++) {
    const uint64_t i = pfns[k] - base;  // wraps above npages below the base
    if (i >= npages || use[i] == Use::kFree || use[i] == Use::kModule || dirty[i]) [[unlikely]] {
      free_locked(pfns[k]);
      continue;
    }
    use[i] = Use::kFree;
    free_in_block[i / kPagesPer2M]++;
    freed++;
  }
  used_ -= freed;
}

[[gnu::noinline, gnu::cold]] void HostPages::transfer_violation(uint64_t p, Use from,
                                                                const char* why) {
  if (!contains(p))
    violations_.push_back(std::string(why) + ": " + pfn_str(p) + " outside host memory");
  else
    violations_.push_back(std::string(why) + ": " + pfn_str(p) + " is " +
                          use_name(use_[p - base_]) + ", expected " + use_name(from));
}

}  // namespace host
