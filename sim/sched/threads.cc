#include "sim/sched/threads.h"

#include <thread>

#include "sim/sched/scheduler.h"

namespace sched {
namespace {
thread_local int tls_actor = -1;
}  // namespace

int ThreadEnv::actor() const {
  return tls_actor;
}

bool ThreadEnv::run() {
  std::vector<std::thread> threads;
  threads.reserve(actors_.size());
  for (auto& a : actors_) {
    threads.emplace_back([this, &a] {
      tls_actor = a.id;
      try {
        a.body();
      } catch (const Cancelled&) {
        // a deadlock was reported; this actor's stack is unwound
      }
      notify();
    });
  }
  for (auto& t : threads) t.join();
  return !failed_;
}

void ThreadEnv::yield(const char*) {
  std::this_thread::yield();
}

void ThreadEnv::spin(const char*) {
  std::this_thread::yield();
}

bool ThreadEnv::block_until(const char* what, const std::function<bool()>& ready,
                            const std::function<void()>& take) {
  std::unique_lock<std::mutex> l(mu_);
  const auto deadline = std::chrono::steady_clock::now() + deadlock_after_;
  while (!ready()) {
    if (failed_) throw Cancelled{};
    if (cv_.wait_until(l, deadline) == std::cv_status::timeout && !ready()) {
      if (!failed_)
        why_ = "deadlock: " + actor_name(tls_actor) + " waited " +
               std::to_string(deadlock_after_.count()) + " ms for " + what;
      failed_ = true;
      cv_.notify_all();
      throw Cancelled{};
    }
  }
  if (take) take();
  return true;
}

void ThreadEnv::notify() {
  std::lock_guard<std::mutex> l(mu_);
  cv_.notify_all();
}

}  // namespace sched
