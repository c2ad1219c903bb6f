// Fibers for the deterministic scheduler, with the AddressSanitizer and ThreadSanitizer fiber
// annotations (DESIGN.md, sim/sched). On x86-64 a switch saves the callee-saved registers and
// swaps stack pointers (no signal-mask system call, unlike swapcontext); elsewhere it uses
// ucontext. Fibers and their stacks are pooled per thread and reused by every run.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>

// TDXSIM_UCONTEXT_FIBERS forces the portable ucontext switch (to test it on x86-64).
#if defined(__x86_64__) && !defined(TDXSIM_UCONTEXT_FIBERS)
#define TDXSIM_ASM_FIBERS 1
#else
#include <ucontext.h>
#endif

namespace sched {

class Fiber {
 public:
  explicit Fiber(size_t stack_size = 512 * 1024);
  ~Fiber();
  Fiber(const Fiber&) = delete;
  Fiber& operator=(const Fiber&) = delete;

  // A fiber from the calling thread's pool (a new one when the pool is empty); give it back
  // when the run is over, however its body ended.
  static std::unique_ptr<Fiber> take();
  static void give_back(std::unique_ptr<Fiber> f);

  // Makes the fiber run `body` from the start at the next switch to it.
  void reset(std::function<void()> body);
  // Switches from the running fiber `from` to `to`: any two fibers of this thread, the
  // thread's own context included.
  static void switch_to(Fiber* from, Fiber* to);
  // The calling thread's own context as a fiber (the scheduler's home).
  static Fiber* thread_fiber();

 private:
  Fiber(bool);  // the thread's own context
  static void entry(Fiber* self);
  void finish_switch_in();

#ifdef TDXSIM_ASM_FIBERS
  void* sp_ = nullptr;  // saved stack pointer while switched out
#else
  static void entry_ucontext(unsigned lo, unsigned hi);
  ucontext_t ctx_{};
#endif
  std::unique_ptr<char[]> stack_;
  size_t stack_size_ = 0;
  std::function<void()> body_;
  [[maybe_unused]] void* tsan_fiber_ = nullptr;
  [[maybe_unused]] bool own_tsan_fiber_ = false;
  [[maybe_unused]] void* asan_fake_stack_ = nullptr;
  // The thread's own stack (thread fiber only), learned when the thread first switches out.
  [[maybe_unused]] const void* stack_bottom_ = nullptr;
  [[maybe_unused]] size_t thread_stack_size_ = 0;
};

}  // namespace sched
