// Free-running mode: every actor on its own std::thread, real atomics and locks, for
// ThreadSanitizer (DESIGN.md, sim/sched). Yield points only yield the CPU; blocking waits on
// a condition variable; a wait that lasts longer than `deadlock_after` is reported as a
// deadlock and unwinds the waiting actor.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "sim/sched/env.h"

namespace sched {

class ThreadEnv : public Env {
 public:
  explicit ThreadEnv(std::chrono::milliseconds deadlock_after = std::chrono::milliseconds(5000))
      : deadlock_after_(deadlock_after) {}

  void add_actor(int id, std::function<void()> body) { actors_.push_back({id, std::move(body)}); }
  // Runs every actor on its own thread and joins them: true, or false with why().
  bool run();
  const std::string& why() const { return why_; }

  void yield(const char* where) override;
  void spin(const char* where) override;
  bool block_until(const char* what, const std::function<bool()>& ready,
                   const std::function<void()>& take) override;
  void notify() override;
  bool interleaved() const override { return true; }
  int actor() const override;

 private:
  struct Cancelled {};
  struct Actor {
    int id;
    std::function<void()> body;
  };
  std::chrono::milliseconds deadlock_after_;
  std::vector<Actor> actors_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::string why_;
  bool failed_ = false;
};

}  // namespace sched
