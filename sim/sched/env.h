// How the simulation blocks and yields. The sim code (sim/kvm, sim/guest; sim/tdx through its
// Hooks) calls these at every place where the kernel could be preempted or race; the
// environment decides what that means: nothing (sequential replay), a scheduling decision
// between fibers (deterministic interleaving), or real threads (free-running).
#pragma once

#include <functional>

namespace sched {

// Actor ids: vCPU V is V; host thread K is kHostBase + K.
inline constexpr int kHostBase = 16;
inline bool is_vcpu_actor(int id) {
  return id >= 0 && id < kHostBase;
}

class Env {
 public:
  virtual ~Env() = default;
  // A yield point: another actor may run here.
  virtual void yield(const char* where) { (void)where; }
  // A yield point inside a retry loop (the actor waits for someone else to make progress): the
  // scheduler lets another runnable actor go first, whatever its strategy, so that spinning
  // cannot starve the actor it waits for.
  virtual void spin(const char* where) { yield(where); }
  // Blocks the calling actor until `ready()` holds, then runs `take()` atomically with it
  // (nothing else runs in between). Returns false when that can never happen in this
  // environment (sequential replay: `ready()` is false now); the interleaving scheduler never
  // returns false: a deadlock ends the whole run with a `liveness` report.
  virtual bool block_until(const char* what, const std::function<bool()>& ready,
                           const std::function<void()>& take = {}) {
    (void)what;
    if (!ready()) return false;
    if (take) take();
    return true;
  }
  // Shared state that a blocked actor may wait for has changed.
  virtual void notify() {}
  // More than one actor runs (kicks are then requests that the vCPU acknowledges).
  virtual bool interleaved() const { return false; }
  // The running actor, or -1 outside any actor.
  virtual int actor() const { return -1; }
};

// The environment of a sequential replay: yields do nothing and nothing can block.
Env& sequential_env();

}  // namespace sched
