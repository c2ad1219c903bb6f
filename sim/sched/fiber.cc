#include "sim/sched/fiber.h"

#include <cstdint>
#include <vector>

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
extern "C" void __asan_unpoison_memory_region(const volatile void* addr, size_t size);
#endif
#ifdef TDX_TSAN
extern "C" void* __tsan_get_current_fiber(void);
extern "C" void* __tsan_create_fiber(unsigned flags);
extern "C" void __tsan_destroy_fiber(void* fiber);
extern "C" void __tsan_switch_to_fiber(void* fiber, unsigned flags);
#endif

#ifdef TDXSIM_ASM_FIBERS
// Saves the callee-saved registers, MXCSR and the x87 control word (the SysV ABI's preserved
// state) on the current stack, stores the stack pointer in *save_sp and resumes the fiber
// whose stack pointer is new_sp. A new fiber's stack is laid out so that it "returns" into
// tdxsim_fiber_start, which calls Fiber::entry(r12) through r13.
extern "C" void tdxsim_fiber_switch(void** save_sp, void* new_sp);
extern "C" void tdxsim_fiber_start();
asm(R"(
  .pushsection .text
  .globl tdxsim_fiber_switch
  .hidden tdxsim_fiber_switch
  .type tdxsim_fiber_switch, @function
  .p2align 4
tdxsim_fiber_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size tdxsim_fiber_switch, .-tdxsim_fiber_switch

  .globl tdxsim_fiber_start
  .hidden tdxsim_fiber_start
  .type tdxsim_fiber_start, @function
tdxsim_fiber_start:
  movq %r12, %rdi
  callq *%r13
  ud2
  .size tdxsim_fiber_start, .-tdxsim_fiber_start
  .popsection
)");
#endif

namespace sched {

namespace {
// The fiber that made the switch the current one is finishing (ASan learns the thread's
// stack from the switch that leaves it).
thread_local Fiber* switching_from = nullptr;
// Idle fibers of this thread: a run takes its actors' fibers here and gives them back.
thread_local std::vector<std::unique_ptr<Fiber>> pool;
}  // namespace

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

std::unique_ptr<Fiber> Fiber::take() {
  if (pool.empty()) return std::make_unique<Fiber>();
  std::unique_ptr<Fiber> f = std::move(pool.back());
  pool.pop_back();
  return f;
}

void Fiber::give_back(std::unique_ptr<Fiber> f) {
  f->body_ = nullptr;
  pool.push_back(std::move(f));
}

void Fiber::reset(std::function<void()> body) {
  body_ = std::move(body);
#ifdef TDX_ASAN
  // A previous run left its frames (and their poisoned redzones) on this stack for good.
  __asan_unpoison_memory_region(stack_.get(), stack_size_);
#endif
#ifdef TDXSIM_ASM_FIBERS
  auto top = reinterpret_cast<uintptr_t>(stack_.get() + stack_size_) & ~uintptr_t{15};
  // Popped by tdxsim_fiber_switch: MXCSR and x87 CW (defaults), r15, r14, r13, r12, rbx, rbp,
  // then the return address; tdxsim_fiber_start then runs with a 16-byte aligned stack.
  auto* sp = reinterpret_cast<uint64_t*>(top - 80);
  sp[0] = 0x1f80 | (uint64_t{0x037f} << 32);
  sp[1] = sp[2] = sp[5] = sp[6] = 0;
  sp[3] = reinterpret_cast<uint64_t>(&Fiber::entry);
  sp[4] = reinterpret_cast<uint64_t>(this);
  sp[7] = reinterpret_cast<uint64_t>(&tdxsim_fiber_start);
  sp_ = sp;
#else
  getcontext(&ctx_);
  ctx_.uc_stack.ss_sp = stack_.get();
  ctx_.uc_stack.ss_size = stack_size_;
  ctx_.uc_link = nullptr;
  const auto p = reinterpret_cast<uintptr_t>(this);
  makecontext(&ctx_, reinterpret_cast<void (*)()>(&Fiber::entry_ucontext), 2,
              static_cast<unsigned>(p), static_cast<unsigned>(p >> 32));
#endif
}

#ifndef TDXSIM_ASM_FIBERS
void Fiber::entry_ucontext(unsigned lo, unsigned hi) {
  entry(reinterpret_cast<Fiber*>(static_cast<uintptr_t>(lo) | (static_cast<uintptr_t>(hi) << 32)));
}
#endif

void Fiber::entry(Fiber* self) {
#ifdef TDX_ASAN
  const void* bottom;
  size_t size;
  __sanitizer_finish_switch_fiber(nullptr, &bottom, &size);
  if (!switching_from->stack_) {
    switching_from->stack_bottom_ = bottom;
    switching_from->thread_stack_size_ = size;
  }
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
  if (!switching_from->stack_) {
    switching_from->stack_bottom_ = bottom;
    switching_from->thread_stack_size_ = size;
  }
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
  switching_from = from;
#ifdef TDXSIM_ASM_FIBERS
  tdxsim_fiber_switch(&from->sp_, to->sp_);
#else
  swapcontext(&from->ctx_, &to->ctx_);
#endif
  from->finish_switch_in();
}

}  // namespace sched
