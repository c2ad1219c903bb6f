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
  bool try_shared() {
    uint32_t v = v_.load(std::memory_order_relaxed);
    if (host::t_single_thread) {  // rmw_cas's plain path, without its second load
      if (v & kExcl) return false;
      v_.store(v + 1, std::memory_order_relaxed);
      return true;
    }
    do {
      if (v & kExcl) return false;
    } while (!host::rmw_cas(v_, v, v + 1, std::memory_order_acquire));
    return true;
  }
  bool try_exclusive() {
    uint32_t expected = 0;
    return host::rmw_cas(v_, expected, kExcl, std::memory_order_acquire);
  }
  void release_shared() { host::rmw_sub(v_, 1u, std::memory_order_release); }
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
