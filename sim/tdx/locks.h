// The module's locks (tdx_locks.h semantics): every acquisition is a try; a failure is
// reported to the caller at once as TDX_OPERAND_BUSY, never waited on. Locks are plain
// atomics so that they can stay held across a yield point in deterministic mode and are
// real in free-running mode.
#pragma once

#include <atomic>
#include <cstdint>

#include "sim/host/rmw.h"

namespace tdx {

// Shared/exclusive lock: bit 31 = exclusive, bits 30:0 = number of shared holders.
class SharexLock {
 public:
  // `single`: host::t_single_thread, which a caller that takes several locks reads once.
  bool try_shared(bool single = host::t_single_thread) {
    uint32_t v = v_.load(std::memory_order_relaxed);
    if (single) {  // rmw_cas's plain path, without its second load
      if (v & kExcl) return false;
      v_.store(v + 1, std::memory_order_relaxed);
      return true;
    }
    do {
      if (v & kExcl) return false;
    } while (!v_.compare_exchange_strong(v, v + 1, std::memory_order_acquire));
    return true;
  }
  bool try_exclusive(bool single = host::t_single_thread) {
    uint32_t expected = 0;
    return host::rmw_cas(v_, expected, kExcl, std::memory_order_acquire, single);
  }
  void release_shared(bool single = host::t_single_thread) {
    host::rmw_sub(v_, 1u, std::memory_order_release, single);
  }
  void release_exclusive() { v_.store(0, std::memory_order_release); }
  bool held() const { return v_.load(std::memory_order_relaxed) != 0; }
  bool held_exclusive() const { return v_.load(std::memory_order_relaxed) & kExcl; }
  uint32_t shared_count() const { return v_.load(std::memory_order_relaxed) & ~kExcl; }

 private:
  static constexpr uint32_t kExcl = 1u << 31;
  std::atomic<uint32_t> v_{0};
};

enum class LockMode : uint8_t { kShared, kExclusive };

}  // namespace tdx
