// The deterministic scheduler: one actor (a fiber) runs at a time; at every yield point the
// schedule decides which runnable actor continues. Blocking (a lock held, a kick waiting for
// its acknowledgement, wait_for_sept_zap) makes an actor not runnable until its condition
// holds, so the scheduler never deadlocks itself; a real deadlock or an endless run ends the
// run with a reason. The same schedule replays exactly.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "sim/sched/env.h"
#include "sim/sched/fiber.h"

namespace sched {

// "When actor `who` reaches its `nth` yield point named `where`, switch to actor `to`":
// `schedule who:where[:nth] -> to` in a trace.
struct SwitchRule {
  int who = 0;
  std::string where;
  uint32_t nth = 1;
  int to = 0;
  bool operator==(const SwitchRule&) const = default;
};

struct Schedule {
  enum Kind : uint8_t {
    kNone,    // sequential: each statement to completion, in file order
    kRules,   // run in order; switch only where a rule says
    kRandom,  // at every yield point a seeded random runnable actor continues
    kPct,     // PCT: random priorities, depth-1 priority change points
  } kind = kNone;
  std::vector<SwitchRule> rules;
  uint64_t seed = 0;
  uint32_t depth = 3;
  bool operator==(const Schedule&) const = default;
};

// Yield point names (points.def).
bool is_yield_point(std::string_view name);
std::string yield_points_help();

std::string actor_name(int id);            // "vcpu0", "host1"
int parse_actor(const std::string& name);  // -1 when not an actor name

class Scheduler final : public Env {
 public:
  explicit Scheduler(const Schedule& s, uint64_t step_limit = 200000);
  ~Scheduler() override;

  // Actors in declaration order (the order of their first line in the trace).
  void add_actor(int id, std::function<void()> body);
  // Runs until every actor is done: true, or false with why().
  bool run();
  const std::string& why() const { return why_; }
  // Ends the run now from inside an actor (a failure was found); run() then returns true.
  void stop();
  uint64_t decisions() const { return decisions_; }
  // Called at every switch with "vcpu0 @ accept-entry-locked#1 -> host0".
  std::function<void(const std::string&)> on_switch;

  void yield(const char* where) override;
  void spin(const char* where) override;
  bool block_until(const char* what, const std::function<bool()>& ready,
                   const std::function<void()>& take) override;
  bool interleaved() const override { return true; }
  int actor() const override { return cur_ ? cur_->id : -1; }

 private:
  struct Actor {
    int id = 0;
    std::function<void()> body;
    std::unique_ptr<Fiber> fiber;
    bool done = false;
    const std::function<bool()>* waiting = nullptr;
    const char* what = "";
    // Occurrences per yield point, for switch rules (keys are the points' string literals).
    std::unordered_map<std::string_view, uint32_t> counts;
    int64_t priority = 0;
    uint64_t last_run = 0;
  };
  bool runnable(const Actor* a) const { return !a->done && (!a->waiting || (*a->waiting)()); }
  // `schedule random`: a runnable actor chosen by the next random number, inline in yield()
  // (most yield points of a random schedule go through here).
  [[gnu::always_inline]] Actor* pick_random() {
    // No actor blocked: every live actor is runnable, no predicate to evaluate.
    if (n_waiting_ == 0) return live_[pick_index(rand(), n_live_)];
    Actor* ready[kMaxActors];
    size_t n = 0;
    for (size_t i = 0; i < n_live_; i++)
      if (runnable(live_[i])) ready[n++] = live_[i];
    return ready[pick_index(rand(), n)];
  }
  // r % n, with constant divisors for the usual actor counts (a multiply, not a divide).
  static size_t pick_index(uint64_t r, size_t n) {
    switch (n) {
      case 1:
        return 0;
      case 2:
        return r % 2;
      case 3:
        return r % 3;
      case 4:
        return r % 4;
      default:
        return r % n;
    }
  }
  Actor* pick_other(Actor* from);  // the next runnable actor when `from` cannot go on
  Actor* round_robin(Actor* from);
  Actor* pick_at_yield(const char* where, uint32_t nth);
  // Leaves the current actor: `next` runs next, switched to directly; null (or a run being
  // cancelled) returns to the scheduler's context.
  void go_home(Actor* next);
  void abort_run(std::string why);
  [[noreturn]] void no_progress();
  void report_switch(const char* how, const char* where, uint32_t nth, const Actor* next);
  uint64_t rand() {  // splitmix64: every choice comes from the one seed
    uint64_t z = (rng_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }

  static constexpr size_t kMaxActors = 12;  // 8 vCPUs and 4 host threads
  struct Cancelled {};  // thrown inside an actor to unwind it when a run stops early
  bool cancelling_ = false;
  Schedule s_;
  uint64_t step_limit_;
  std::vector<std::unique_ptr<Actor>> actors_;
  // The actors not done, in declaration order, without the indirection of actors_: the set a
  // random pick chooses from once the blocked ones are left out.
  Actor* live_[kMaxActors] = {};
  size_t n_live_ = 0;
  // Actors waiting in block_until (never fewer than really are: exactly so outside the
  // unwinding of a cancelled run, where it may be more); 0 lets pick_random skip the scan.
  size_t n_waiting_ = 0;
  Actor* cur_ = nullptr;
  Actor* next_ = nullptr;
  bool stop_ = false;
  std::string why_;
  uint64_t decisions_ = 0;
  uint64_t turns_ = 0;
  uint64_t rng_;
  std::vector<uint64_t> change_points_;
  int64_t low_priority_ = 0;
};

}  // namespace sched
