#include "sim/sched/scheduler.h"

#include <algorithm>

namespace sched {

Env& sequential_env() {
  static Env env;
  return env;
}

namespace {
struct Point {
  std::string_view name, help;
};
constexpr Point kPoints[] = {
#define POINT(name, help) {name, help},
#include "sim/sched/points.def"
#undef POINT
};
}  // namespace

bool is_yield_point(std::string_view name) {
  for (const auto& p : kPoints)
    if (p.name == name) return true;
  return false;
}

std::string yield_points_help() {
  std::string s;
  for (const auto& p : kPoints)
    s += "  " + std::string(p.name) + "\n      " + std::string(p.help) + "\n";
  return s;
}

std::string actor_name(int id) {
  return is_vcpu_actor(id) ? "vcpu" + std::to_string(id) : "host" + std::to_string(id - kHostBase);
}

int parse_actor(const std::string& name) {
  // "vcpu" or "host" and one or two decimal digits; no allocation (stmt_actor calls this for
  // every statement of every run).
  if (name.size() < 5 || name.size() > 6) return -1;
  int v = 0;
  for (size_t i = 4; i < name.size(); i++) {
    if (name[i] < '0' || name[i] > '9') return -1;
    v = v * 10 + (name[i] - '0');
  }
  // The prefix by its bytes: std::string::compare is a call into the library per statement.
  const char* p = name.data();
  if (p[0] == 'v' && p[1] == 'c' && p[2] == 'p' && p[3] == 'u') return v < 8 ? v : -1;
  if (p[0] == 'h' && p[1] == 'o' && p[2] == 's' && p[3] == 't') return v < 4 ? kHostBase + v : -1;
  return -1;
}

Scheduler::Scheduler(const Schedule& s, uint64_t step_limit)
    : s_(s),
      step_limit_(step_limit),
      rng_(s.seed * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull) {}

Scheduler::~Scheduler() {
  for (auto& a : actors_) Fiber::give_back(std::move(a->fiber));
}

void Scheduler::add_actor(int id, std::function<void()> body) {
  auto a = std::make_unique<Actor>();
  a->id = id;
  a->body = std::move(body);
  a->fiber = Fiber::take();
  if (n_live_ < kMaxActors) live_[n_live_++] = a.get();
  actors_.push_back(std::move(a));
}

bool Scheduler::run() {
  if (actors_.empty()) return true;
  for (auto& a : actors_) {
    Actor* self = a.get();
    a->fiber->reset([this, self] {
      try {
        if (!cancelling_) self->body();
      } catch (const Cancelled&) {
        // unwound: every object on this actor's stack is destroyed
      }
      self->done = true;
      Actor** end = std::remove(live_, live_ + n_live_, self);
      n_live_ = static_cast<size_t>(end - live_);
      go_home(cancelling_ ? nullptr : pick_other(self));
    });
  }
  if (s_.kind == Schedule::kPct) {
    // Distinct random priorities; depth-1 change points spread over the expected run length.
    for (auto& a : actors_) a->priority = 1000 + static_cast<int64_t>(rand() % 1000000);
    const uint64_t k = 64 * actors_.size() + 64;
    for (uint32_t i = 1; i < s_.depth; i++) change_points_.push_back(1 + rand() % k);
    std::sort(change_points_.begin(), change_points_.end());
  }
  next_ = s_.kind == Schedule::kRandom ? actors_[rand() % actors_.size()].get()
          : s_.kind == Schedule::kPct
              ? std::max_element(actors_.begin(), actors_.end(),
                                 [](auto& x, auto& y) { return x->priority < y->priority; })
                    ->get()
              : actors_.front().get();
  Fiber* home = Fiber::thread_fiber();
  while (!stop_) {
    if (!next_) {
      bool all_done = std::all_of(actors_.begin(), actors_.end(), [](auto& a) { return a->done; });
      if (all_done) break;
      std::string w = "deadlock:";
      for (auto& a : actors_)
        if (!a->done) w += " " + actor_name(a->id) + " waits for " + a->what + ";";
      why_ = w;
      stop_ = true;
      break;
    }
    cur_ = next_;
    next_ = nullptr;
    cur_->last_run = ++turns_;
    Fiber::switch_to(home, cur_->fiber.get());
    cur_ = nullptr;
  }
  // A stopped run leaves actors in the middle of their work: unwind each of them.
  cancelling_ = true;
  for (auto& a : actors_) {
    if (a->done) continue;
    cur_ = a.get();
    Fiber::switch_to(home, cur_->fiber.get());
    cur_ = nullptr;
  }
  return why_.empty();
}

void Scheduler::go_home(Actor* next) {
  Actor* self = cur_;
  if (next && !cancelling_) {
    // Straight to the next actor: one switch instead of two through the scheduler's context.
    cur_ = next;
    next->last_run = ++turns_;
    Fiber::switch_to(self->fiber.get(), next->fiber.get());
  } else {
    next_ = next;
    Fiber::switch_to(self->fiber.get(), Fiber::thread_fiber());
  }
  // Whoever switched back here made this actor current again.
  if (cancelling_ && !cur_->done) throw Cancelled{};
}

void Scheduler::stop() {
  stop_ = true;
  Fiber::switch_to(cur_->fiber.get(), Fiber::thread_fiber());
  throw Cancelled{};  // resumed only to unwind
}

void Scheduler::abort_run(std::string why) {
  why_ = std::move(why);
  stop_ = true;
  Fiber::switch_to(cur_->fiber.get(), Fiber::thread_fiber());
  throw Cancelled{};  // resumed only to unwind
}

// The runnable actor that has waited longest for a turn.
Scheduler::Actor* Scheduler::round_robin(Actor* from) {
  Actor* best = nullptr;
  for (auto& a : actors_)
    if (a.get() != from && runnable(a.get()) && (!best || a->last_run < best->last_run))
      best = a.get();
  return best;
}

Scheduler::Actor* Scheduler::pick_other(Actor* from) {
  Actor* ready_buf[kMaxActors];
  size_t n_ready = 0;
  for (auto& a : actors_)
    if (a.get() != from && runnable(a.get())) ready_buf[n_ready++] = a.get();
  if (!n_ready) return nullptr;
  switch (s_.kind) {
    case Schedule::kRandom:
      return ready_buf[rand() % n_ready];
    case Schedule::kPct:
      return *std::max_element(ready_buf, ready_buf + n_ready,
                               [](Actor* x, Actor* y) { return x->priority < y->priority; });
    default: {
      // Round robin in declaration order, starting after `from`.
      size_t i = 0;
      while (i < actors_.size() && actors_[i].get() != from) i++;
      for (size_t k = 1; k <= actors_.size(); k++) {
        Actor* a = actors_[(i + k) % actors_.size()].get();
        if (a != from && runnable(a)) return a;
      }
      return nullptr;
    }
  }
}

Scheduler::Actor* Scheduler::pick_at_yield(const char* where, uint32_t nth) {
  switch (s_.kind) {
    case Schedule::kRules:
      for (const auto& r : s_.rules)
        if (r.who == cur_->id && r.nth == nth && r.where == where) {
          for (auto& a : actors_)
            if (a->id == r.to && runnable(a.get())) return a.get();
        }
      return cur_;
    case Schedule::kRandom:
      return pick_random();
    case Schedule::kPct: {
      while (!change_points_.empty() && change_points_.front() <= decisions_) {
        change_points_.erase(change_points_.begin());
        cur_->priority = --low_priority_;  // the running actor drops below everyone
      }
      Actor* best = cur_;
      for (auto& a : actors_)
        if (runnable(a.get()) && a->priority > best->priority) best = a.get();
      return best;
    }
    default:
      return cur_;
  }
}

[[gnu::noinline, gnu::cold]] void Scheduler::no_progress() {
  abort_run("no progress: " + std::to_string(step_limit_) +
            " scheduling decisions without finishing");
  __builtin_unreachable();  // abort_run throws once the run has stopped
}

[[gnu::noinline, gnu::cold]] void Scheduler::report_switch(const char* how, const char* where,
                                                           uint32_t nth, const Actor* next) {
  on_switch(actor_name(cur_->id) + how + where + (nth ? ":" + std::to_string(nth) : std::string()) +
            " -> " + actor_name(next->id));
}

void Scheduler::yield(const char* where) {
  if (!cur_) return;  // outside any actor (setup, teardown)
  if (++decisions_ > step_limit_) [[unlikely]]
    no_progress();
  Actor* next;
  uint32_t nth = 0;  // occurrence counts matter only to switch rules
  if (s_.kind == Schedule::kRandom) {
    next = pick_random();
  } else {
    if (s_.kind == Schedule::kRules) nth = ++cur_->counts[where];
    next = pick_at_yield(where, nth);
  }
  if (next == cur_) return;
  if (on_switch) [[unlikely]]
    report_switch(" @ ", where, nth, next);
  go_home(next);
}

void Scheduler::spin(const char* where) {
  if (!cur_) return;
  if (++decisions_ > step_limit_) [[unlikely]]
    no_progress();
  // Occurrence counts matter only to switch rules.
  const uint32_t nth = s_.kind == Schedule::kRules ? ++cur_->counts[where] : 0;
  // Fairness: the next runnable actor in declaration order, whatever the strategy (PCT would
  // otherwise starve the low-priority actor the spinner waits for). Rules still apply.
  Actor* next = s_.kind == Schedule::kRules ? pick_at_yield(where, nth) : nullptr;
  if (!next || next == cur_) next = round_robin(cur_);
  if (!next || next == cur_) return;
  if (on_switch) [[unlikely]]
    report_switch(" spins @ ", where, nth, next);
  go_home(next);
}

bool Scheduler::block_until(const char* what, const std::function<bool()>& ready,
                            const std::function<void()>& take) {
  if (!cur_) return Env::block_until(what, ready, take);
  while (!ready()) {
    if (++decisions_ > step_limit_) [[unlikely]]
      no_progress();
    cur_->waiting = &ready;
    n_waiting_++;
    cur_->what = what;
    Actor* next = pick_other(cur_);
    if (!next) {
      std::string w = "deadlock:";
      for (auto& a : actors_)
        if (!a->done)
          w +=
              " " + actor_name(a->id) + " waits for " + (a->waiting ? a->what : "(runnable)") + ";";
      abort_run(w);
    }
    if (on_switch)
      on_switch(actor_name(cur_->id) + " waits for " + what + " -> " + actor_name(next->id));
    go_home(next);
    cur_->waiting = nullptr;
    n_waiting_--;
  }
  if (take) take();
  return true;
}

}  // namespace sched
