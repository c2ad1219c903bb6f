// Read-modify-write on the simulator's shared words (lock words, counters) for runs that drive
// every actor from one thread. A deterministic run (sequential, or fibers interleaved by the
// scheduler) has no second thread to race with, and a locked instruction costs more than the
// work around it on the per-page paths (RECLAIM of each 4K page at teardown makes five). Such
// runs set SingleThreadScope and these helpers use a plain load and store; everything else
// (free-running threads, unit tests) takes the atomic instruction. On one thread both give the
// same values in the same order. Each helper takes the flag as its last argument, defaulting
// to t_single_thread: a hot caller reads the thread-local once and passes it on.
#pragma once

#include <atomic>

namespace host {

inline thread_local bool t_single_thread = false;

// While alive, this thread's simulator objects are used by this thread only.
class SingleThreadScope {
 public:
  explicit SingleThreadScope(bool on) : saved_(t_single_thread) { t_single_thread = on; }
  ~SingleThreadScope() { t_single_thread = saved_; }
  SingleThreadScope(const SingleThreadScope&) = delete;
  SingleThreadScope& operator=(const SingleThreadScope&) = delete;

 private:
  bool saved_;
};

template <typename T>
T rmw_add(std::atomic<T>& a, T v, std::memory_order o = std::memory_order_seq_cst,
          bool single = t_single_thread) {
  if (!single) return a.fetch_add(v, o);
  const T old = a.load(std::memory_order_relaxed);
  a.store(static_cast<T>(old + v), std::memory_order_relaxed);
  return old;
}

template <typename T>
T rmw_sub(std::atomic<T>& a, T v, std::memory_order o = std::memory_order_seq_cst,
          bool single = t_single_thread) {
  if (!single) return a.fetch_sub(v, o);
  const T old = a.load(std::memory_order_relaxed);
  a.store(static_cast<T>(old - v), std::memory_order_relaxed);
  return old;
}

template <typename T>
T rmw_and(std::atomic<T>& a, T v, std::memory_order o = std::memory_order_seq_cst,
          bool single = t_single_thread) {
  if (!single) return a.fetch_and(v, o);
  const T old = a.load(std::memory_order_relaxed);
  a.store(static_cast<T>(old & v), std::memory_order_relaxed);
  return old;
}

template <typename T>
T rmw_or(std::atomic<T>& a, T v, std::memory_order o = std::memory_order_seq_cst,
         bool single = t_single_thread) {
  if (!single) return a.fetch_or(v, o);
  const T old = a.load(std::memory_order_relaxed);
  a.store(static_cast<T>(old | v), std::memory_order_relaxed);
  return old;
}

template <typename T>
T rmw_exchange(std::atomic<T>& a, T v, std::memory_order o = std::memory_order_seq_cst,
               bool single = t_single_thread) {
  if (!single) return a.exchange(v, o);
  const T old = a.load(std::memory_order_relaxed);
  a.store(v, std::memory_order_relaxed);
  return old;
}

// compare_exchange_strong: on failure `expected` receives the current value.
template <typename T>
bool rmw_cas(std::atomic<T>& a, T& expected, T desired,
             std::memory_order o = std::memory_order_seq_cst, bool single = t_single_thread) {
  if (!single) return a.compare_exchange_strong(expected, desired, o);
  const T cur = a.load(std::memory_order_relaxed);
  if (cur != expected) return expected = cur, false;
  a.store(desired, std::memory_order_relaxed);
  return true;
}

}  // namespace host
