#include "sim/sched/fiber.h"

#include <cstdint>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TDX_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define TDX_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define TDX_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define TDX_TSAN 1
#endif

#ifdef TDX_ASAN
extern "C" void __sanitizer_start_switch_fiber(void** fake_stack_save, const void* bottom,
                                               size_t size);
extern "C" void __sanitizer_finish_switch_fiber(void* fake_stack_save, const void** bottom_old,
                                                size_t* size_old);
#endif
#ifdef TDX_TSAN
extern "C" void* __tsan_get_current_fiber(void);
extern "C" void* __tsan_create_fiber(unsigned flags);
extern "C" void __tsan_destroy_fiber(void* fiber);
extern "C" void __tsan_switch_to_fiber(void* fiber, unsigned flags);
#endif

namespace sched {

Fiber::Fiber(size_t stack_size) : stack_(new char[stack_size]), stack_size_(stack_size) {
#ifdef TDX_TSAN
  tsan_fiber_ = __tsan_create_fiber(0);
  own_tsan_fiber_ = true;
#endif
}

Fiber::Fiber(bool) {
#ifdef TDX_TSAN
  tsan_fiber_ = __tsan_get_current_fiber();
#endif
}

Fiber::~Fiber() {
#ifdef TDX_TSAN
  if (own_tsan_fiber_) __tsan_destroy_fiber(tsan_fiber_);
#endif
}

Fiber* Fiber::thread_fiber() {
  thread_local Fiber self(true);
  return &self;
}

void Fiber::reset(std::function<void()> body) {
  body_ = std::move(body);
  getcontext(&ctx_);
  ctx_.uc_stack.ss_sp = stack_.get();
  ctx_.uc_stack.ss_size = stack_size_;
  ctx_.uc_link = nullptr;
  const auto p = reinterpret_cast<uintptr_t>(this);
  makecontext(&ctx_, reinterpret_cast<void (*)()>(&Fiber::entry), 2, static_cast<unsigned>(p),
              static_cast<unsigned>(p >> 32));
}

void Fiber::entry(unsigned lo, unsigned hi) {
  auto* self =
      reinterpret_cast<Fiber*>(static_cast<uintptr_t>(lo) | (static_cast<uintptr_t>(hi) << 32));
#ifdef TDX_ASAN
  Fiber* home = thread_fiber();
  __sanitizer_finish_switch_fiber(nullptr, &home->stack_bottom_, &home->thread_stack_size_);
#endif
  self->body_();
  // A body never returns: the scheduler switches away for good when the actor is done.
  __builtin_trap();
}

void Fiber::finish_switch_in() {
#ifdef TDX_ASAN
  const void* bottom;
  size_t size;
  __sanitizer_finish_switch_fiber(asan_fake_stack_, &bottom, &size);
  if (!stack_) return;
  // Back in an actor: `bottom` is the thread's stack we came from.
  thread_fiber()->stack_bottom_ = bottom;
  thread_fiber()->thread_stack_size_ = size;
#endif
}

void Fiber::switch_to(Fiber* from, Fiber* to) {
#ifdef TDX_ASAN
  if (to->stack_)
    __sanitizer_start_switch_fiber(&from->asan_fake_stack_, to->stack_.get(), to->stack_size_);
  else
    __sanitizer_start_switch_fiber(&from->asan_fake_stack_, to->stack_bottom_,
                                   to->thread_stack_size_);
#endif
#ifdef TDX_TSAN
  __tsan_switch_to_fiber(to->tsan_fiber_, 0);
#endif
  swapcontext(&from->ctx_, &to->ctx_);
  from->finish_switch_in();
}

}  // namespace sched
