// Fibers for the deterministic scheduler: ucontext with the AddressSanitizer and
// ThreadSanitizer fiber annotations (DESIGN.md, sim/sched). A fiber's stack is allocated once
// and reused for every run.
#pragma once

#include <ucontext.h>

#include <cstddef>
#include <functional>
#include <memory>

namespace sched {

class Fiber {
 public:
  explicit Fiber(size_t stack_size = 512 * 1024);
  ~Fiber();
  Fiber(const Fiber&) = delete;
  Fiber& operator=(const Fiber&) = delete;

  // Makes the fiber run `body` from the start at the next switch to it.
  void reset(std::function<void()> body);
  // Switches from the running fiber `from` to `to`. One side is always the thread's own
  // context (the scheduler): actors never switch to each other directly, so a new fiber always
  // starts from the thread's stack, which lets the ASan annotation learn that stack.
  static void switch_to(Fiber* from, Fiber* to);
  // The calling thread's own context as a fiber (the scheduler's home).
  static Fiber* thread_fiber();

 private:
  Fiber(bool);  // the thread's own context
  static void entry(unsigned lo, unsigned hi);
  void finish_switch_in();

  ucontext_t ctx_{};
  std::unique_ptr<char[]> stack_;
  size_t stack_size_ = 0;
  std::function<void()> body_;
  [[maybe_unused]] void* tsan_fiber_ = nullptr;
  [[maybe_unused]] bool own_tsan_fiber_ = false;
  [[maybe_unused]] void* asan_fake_stack_ = nullptr;
  [[maybe_unused]] const void* stack_bottom_ =
      nullptr;  // the thread's own stack, for the thread fiber
  [[maybe_unused]] size_t thread_stack_size_ = 0;
};

}  // namespace sched
