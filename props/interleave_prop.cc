// RapidCheck properties of interleaved KVM traces (issue #6: the interleaving property and the
// sequential-equals-interleaved law).
//
//   InterleaveProps.PropertiesHoldUnderSchedules
//       A generated multi-actor KVM trace (host ioctls on host0..host2, guest operations on
//       their vCPUs, all aimed at a few GFNs of two 2M units, half the time at one focus GFN,
//       so that they collide; some traces `init-mem` first and race `finalize` against the
//       rest, some make the zap walk yield every few leaves) runs under a generated schedule:
//       seeded random, PCT (seed, depth) or switch rules (1..3 rules, mostly at a point one of
//       the trace's operations passes, switching to another actor; else any yield point of
//       sim/sched/points.def), or sequential. Every property is checked.
//       Both the statements and the schedule shrink: statements drop out and their arguments
//       move toward the first GFN/actor/level; the schedule moves toward sequential (kind 0),
//       then PCT, then random, then rules; PCT depth toward 1, seeds toward 0, rules drop out.
//
//   InterleaveLaws.NoSwitchScheduleEqualsSequential
//       The law "sequential execution equals interleaved execution under a schedule that never
//       switches inside an operation". The construction: a generated multi-actor trace T in
//       which every vCPU actor's last line is `exit V` (so that no vCPU is in guest mode when
//       another actor runs, and no kick ever waits), run interleaved under a switch-rule
//       schedule whose only rule switches an actor to itself (`host0:mmu_lock-write -> host0`,
//       i.e. never), so that each actor runs all of its lines and the next actor (in order of
//       first appearance) takes over only when it is done; and S, the same statements
//       stably sorted by that actor order, run sequentially. Both execute the same operations
//       in the same global order, so the per-statement results (including every guest read
//       value), every SEAMCALL with its inputs and outputs (which includes the teardown's
//       reclaim of every mirror/S-EPT page, i.e. the final state), and the verdict (property,
//       site, step) must be equal. The interleaved run's log must contain no `[switch]` line:
//       that is the "never switches inside an operation" premise, checked, not assumed.
//       The full-state checks run at the end in both (full_checks_every_step = false), since
//       an interleaved run can only do them once every actor is done.
//
// A failure prints the shrunk trace as TRACE_FORMAT text between marker lines (props/report.h),
// ready for corpus/regressions/, and RapidCheck prints the RC_PARAMS reproduce string at exit.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "props/report.h"
#include "props/scaled.h"
#include "props/stats.h"
#include "sim/sched/env.h"
#include "sim/sched/scheduler.h"
#include "sim/trace/exec.h"
#include "sim/trace/trace.h"

namespace props {
namespace {

using trace::Expect;
using trace::Op;
using trace::Stmt;
using trace::Trace;

constexpr int kVcpus = 2;
constexpr uint64_t kMem = 1024;  // two 2M units

const std::vector<std::string>& yield_points() {
  static const std::vector<std::string> v = {
#define POINT(name, help) name,
#include "sim/sched/points.def"
#undef POINT
  };
  return v;
}

// Yield points an operation passes where it can meet another actor's operation on the same
// GFN, S-EPT entry or TD (the module's locks, a guest ACCEPT holding its entry, the fault
// path's SPTE read and freeze, mmu_lock, the zap walk, kicks).
const std::vector<std::string>& points_of(Op op) {
  static const std::vector<std::string> accept = {
      "accept-entry-locked", "accept-chunk", "guest-accept-busy", "sept-tree-locked", "vcpu-enter"};
  static const std::vector<std::string> access = {"guest-access",
                                                  "spte-read",
                                                  "spte-frozen",
                                                  "sept-tree-locked",
                                                  "sept-entry-locked",
                                                  "mmu_lock-read",
                                                  "ept-violation-local-retry"};
  static const std::vector<std::string> fault = {"spte-read",        "spte-frozen",
                                                 "sept-tree-locked", "sept-entry-locked",
                                                 "mmu_lock-read",    "fault-retry"};
  static const std::vector<std::string> zap = {
      "mmu_lock-write", "sept-entry-locked", "tdr-locked",      "epoch-locked",
      "kick",           "zap-leaf",          "sept-tree-locked"};
  static const std::vector<std::string> finalize = {"tdr-locked", "mmu_lock-write"};
  static const std::vector<std::string> enter = {"vcpu-enter", "epoch-locked", "tdvpr-locked"};
  switch (op) {
    case Op::GUEST_ACCEPT:
      return accept;
    case Op::GUEST_WRITE:
    case Op::GUEST_READ:
      return access;
    case Op::MAP:
    case Op::INIT_MEM:
      return fault;
    case Op::FINALIZE:
      return finalize;
    case Op::ENTER:
    case Op::EXIT:
      return enter;
    default:
      return zap;
  }
}

// RapidCheck scales integer ranges by its size (0..100); choices of kind, actor, vCPU and GFN
// are made at full size, uniformly, whatever the size (which only sets the trace's length).
template <typename T>
rc::Gen<T> full_size(rc::Gen<T> g) {
  return rc::gen::resize(100, std::move(g));
}

Stmt stmt(Op op, std::vector<uint64_t> args, std::string actor = "") {
  Stmt s;
  s.op = op;
  s.args = std::move(args);
  s.actor = std::move(actor);
  return s;
}

// A GFN of one of the two 2M units at an offset where operations collide. Shrinks to 0x0.
uint64_t gen_gfn() {
  const uint64_t unit = *rc::gen::inRange<uint64_t>(0, kMem / 512);
  return unit * 512 + *rc::gen::elementOf(std::vector<uint64_t>{0, 1, 0x10, 0x1ff});
}

uint64_t gen_count(uint64_t g) {
  const uint64_t c = *rc::gen::elementOf(std::vector<uint64_t>{1, 16, 512});
  return std::min(c, kMem - g);
}

// vCPU index: shrinks to 0; clamped, never out of range whatever RapidCheck replays.
uint64_t gen_vcpu() {
  return *rc::gen::inRange<uint64_t>(0, kVcpus) % kVcpus;
}

// The trace's focus GFN half of the time (shrinking toward it), else any of gen_gfn's: two
// statements meet on one GFN about a third of the time, not an eighth.
uint64_t gen_gfn_near(uint64_t focus) {
  return *rc::gen::inRange(0, 2) == 0 ? focus : gen_gfn();
}

// One statement without expectation (results depend on the interleaving). Host operations run
// on host0..host2 (shrinking toward host0, which is also the unprefixed default). GFNs are
// drawn by gen_gfn_near(focus).
Stmt gen_stmt(uint64_t focus) {
  const auto gen_gfn = [focus] { return gen_gfn_near(focus); };
  const int kind = *rc::gen::weightedElement<int>(
      {{3, 0}, {2, 1}, {1, 2}, {1, 3}, {1, 4}, {1, 5}, {3, 6}, {2, 7}, {2, 8}});
  const auto host = [] {
    const int h = *rc::gen::inRange(0, 3);
    return h == 0 ? std::string() : "host" + std::to_string(h);
  };
  switch (kind) {
    case 0: {
      const uint64_t g = gen_gfn();
      return stmt(Op::MAP, {g, *rc::gen::elementOf(std::vector<uint64_t>{1, 0})}, host());
    }
    case 1:
      return stmt(Op::SPLIT, {gen_gfn()}, host());
    case 2: {
      const uint64_t g = gen_gfn();
      return stmt(Op::ZAP, {g, gen_count(g)}, host());
    }
    case 3: {
      const uint64_t g = gen_gfn();
      const uint64_t c = gen_count(g);
      return stmt(Op::CONVERT, {g, c, *rc::gen::inRange<uint64_t>(0, 2)}, host());
    }
    case 4:
      return stmt(Op::ENTER, {gen_vcpu()});
    case 5:
      return stmt(Op::EXIT, {gen_vcpu()});
    case 6: {
      const uint64_t v = gen_vcpu();
      const uint64_t g = gen_gfn();
      return stmt(Op::GUEST_ACCEPT, {v, g, *rc::gen::elementOf(std::vector<uint64_t>{1, 0})});
    }
    case 7: {
      const uint64_t v = gen_vcpu();
      const uint64_t g = gen_gfn();
      return stmt(Op::GUEST_WRITE, {v, g, *rc::gen::inRange<uint64_t>(1, 256)});
    }
    default: {
      const uint64_t v = gen_vcpu();
      return stmt(Op::GUEST_READ, {v, gen_gfn()});
    }
  }
}

// A multi-actor KVM trace: `finalize`, then up to `max` generated statements. One in two
// traces has an adversarial guest with #VE delivery (SEPT_VE_DISABLE off): that guest touches
// pages before accepting them, which makes two vCPUs fault on one GFN at once. One in four
// starts with KVM_TDX_INIT_MEM_REGION of one or two of the GFNs (on host0, sequentially) and
// runs `finalize` among the generated statements, on any host actor, so that punch holes and
// faults race it. One in four makes the zap walk yield mmu_lock every 1..4 zapped leaves
// (`option zap_resched_every`).
Trace gen_trace(int max) {
  Trace t;
  t.vcpus = kVcpus;
  t.memory = kMem;
  if (*full_size(rc::gen::inRange(0, 2)) == 1) {
    t.options.push_back({"adversarial_guest", "1"});
    t.options.push_back({"sept_ve_disable", "0"});
  }
  if (*full_size(rc::gen::inRange(0, 4)) == 3)
    t.options.push_back({"zap_resched_every", std::to_string(*rc::gen::inRange(1, 5))});
  const uint64_t focus = gen_gfn();
  const bool init_mem = *full_size(rc::gen::inRange(0, 4)) == 3;
  if (init_mem) {
    const int n = *rc::gen::inRange(1, 3);
    for (int i = 0; i < n; i++) t.stmts.push_back(stmt(Op::INIT_MEM, {gen_gfn_near(focus)}));
  } else {
    t.stmts.push_back(stmt(Op::FINALIZE, {}));
  }
  // A container, so that shrinking drops any statement, not only the last ones; its length
  // grows with RapidCheck's size (0..100) up to `max`.
  auto body = *rc::gen::scale(max / 100.0,
                              rc::gen::container<std::vector<Stmt>>(
                                  full_size(rc::gen::exec([focus] { return gen_stmt(focus); }))));
  if (init_mem) {
    // Where finalize goes (shrinks toward the front) and on which host actor (toward host0).
    const size_t at = *rc::gen::inRange<size_t>(0, body.size() + 1) % (body.size() + 1);
    const int h = *rc::gen::inRange(0, 3);
    body.insert(body.begin() + static_cast<std::ptrdiff_t>(at),
                stmt(Op::FINALIZE, {}, h == 0 ? std::string() : "host" + std::to_string(h)));
  }
  t.stmts.insert(t.stmts.end(), body.begin(), body.end());
  return t;
}

// The trace's actors (as in the trace), for switch rules.
std::vector<int> actors_of(const Trace& t) {
  std::vector<int> a;
  for (const Stmt& s : t.stmts) {
    const int id = trace::stmt_actor(s);
    if (std::find(a.begin(), a.end(), id) == a.end()) a.push_back(id);
  }
  return a;
}

// A schedule: 0 sequential (the simplest, where shrinking ends when no overlap is needed),
// 1-3 PCT, 4-5 random, 6-9 switch rules. Seeds are 32-bit and shrink toward 0; PCT depth
// (1..6) toward 1 (no priority change: the highest-priority runnable actor runs); rules drop
// out down to one.
sched::Schedule gen_schedule(const Trace& t) {
  sched::Schedule s;
  const int kind = *rc::gen::inRange(0, 10);
  if (kind == 0) return s;
  if (kind <= 3) {
    s.kind = sched::Schedule::kPct;
    s.seed = *rc::gen::arbitrary<uint32_t>();
    s.depth = *rc::gen::inRange<uint32_t>(1, 7);
  } else if (kind <= 5) {
    s.kind = sched::Schedule::kRandom;
    s.seed = *rc::gen::arbitrary<uint32_t>();
  } else {
    s.kind = sched::Schedule::kRules;
    const std::vector<int> actors = actors_of(t);
    const int n = *rc::gen::inRange(1, 4);
    for (int i = 0; i < n; i++) {
      sched::SwitchRule r;
      if (*rc::gen::inRange(0, 3) != 0) {
        // Two-thirds of the rules start from a statement: its actor, at a point its operation
        // passes (where the races of kvm-tdx.md §4/§5 happen).
        const Stmt& from = *rc::gen::elementOf(t.stmts);
        r.who = trace::stmt_actor(from);
        r.where = *rc::gen::elementOf(points_of(from.op));
      } else {
        r.who = *rc::gen::elementOf(actors);
        r.where = *rc::gen::elementOf(yield_points());
      }
      r.nth = *rc::gen::inRange<uint32_t>(1, 4);
      // Another actor (a switch to itself is no switch), when there is one.
      std::vector<int> others;
      for (int a : actors)
        if (a != r.who) others.push_back(a);
      r.to = others.empty() ? r.who : *rc::gen::elementOf(others);
      s.rules.push_back(r);
    }
  }
  return s;
}

void count(const Trace& t) {
  if (!stats().on) return;
  static const char* kinds[] = {"sequential", "rules", "random", "pct"};
  stats().n[std::string("interleave schedule ") + kinds[t.schedule.kind]]++;
  stats().n["interleave actors " + std::to_string(actors_of(t).size())]++;
}

// ---------------------------------------------------------------------------------------------
// The law's helpers.

// Order of first appearance, as the executor declares actors.
std::vector<size_t> actor_order_permutation(const Trace& t) {
  const std::vector<int> actors = actors_of(t);
  std::vector<size_t> perm;
  for (int a : actors)
    for (size_t i = 0; i < t.stmts.size(); i++)
      if (trace::stmt_actor(t.stmts[i]) == a) perm.push_back(i);
  return perm;
}

// The log of a run without the statement indices and source lines (`[3] line 0 host1: ...`
// becomes `host1: ...`), and without the schedule header of an interleaved run.
std::string normalized(const std::string& log) {
  std::istringstream in(log);
  std::string line, out;
  while (std::getline(in, line)) {
    if (line.rfind("schedule", 0) == 0) continue;
    if (!line.empty() && line[0] == '[' && line.rfind("[end]", 0) != 0) {
      const size_t p = line.find(' ', line.find(" line ") + 6);
      if (line.find(" line ") != std::string::npos && p != std::string::npos)
        line = line.substr(p + 1);
    }
    out += line + "\n";
  }
  return out;
}

// The first line where two logs differ, for the report.
std::string first_difference(const std::string& a, const std::string& b) {
  std::istringstream x(a), y(b);
  std::string l1, l2;
  int n = 1;
  while (true) {
    const bool g1 = static_cast<bool>(std::getline(x, l1));
    const bool g2 = static_cast<bool>(std::getline(y, l2));
    if (!g1 && !g2) return "(none)";
    if (!g1 || !g2 || l1 != l2)
      return "log line " + std::to_string(n) + ":\n  sequential:  " + (g1 ? l1 : "<end>") +
             "\n  interleaved: " + (g2 ? l2 : "<end>");
    n++;
  }
}

std::string verdict(const trace::RunResult& r, size_t step) {
  if (r.ok()) return "ok";
  const trace::Failure& f = r.failure;
  if (f.kind == trace::Failure::kExpectation) return "expectation at step " + std::to_string(step);
  return f.violation.property + " (" + f.violation.site + ") at step " + std::to_string(step);
}

}  // namespace
}  // namespace props

using namespace props;

// Generated multi-actor traces under generated schedules: every property holds.
RC_GTEST_SCALED_PROP(InterleaveProps, PropertiesHoldUnderSchedules, 1) {
  Trace t = gen_trace(12);
  t.schedule = *full_size(rc::gen::exec([t] { return gen_schedule(t); }));
  count(t);
  trace::RunOptions opts;
  opts.full_checks_every_step = false;  // what fuzzing does; the end and teardown check all
  const trace::RunResult r = trace::run(t, opts);
  if (r.ok()) return;
  RC_LOG() << report(t, r, "<interleave_prop>");
  RC_FAIL("the trace failed");
}

// Sequential execution equals interleaved execution under a schedule that never switches
// inside an operation (see the top of the file for the construction).
RC_GTEST_SCALED_PROP(InterleaveLaws, NoSwitchScheduleEqualsSequential, 4) {
  Trace il = gen_trace(12);
  std::vector<bool> has(kVcpus, false);
  for (const Stmt& s : il.stmts)
    if (sched::is_vcpu_actor(trace::stmt_actor(s))) has[trace::stmt_actor(s)] = true;
  for (int v = 0; v < kVcpus; v++)
    if (has[v]) il.stmts.push_back(stmt(Op::EXIT, {static_cast<uint64_t>(v)}));
  il.schedule.kind = sched::Schedule::kRules;
  il.schedule.rules.push_back({sched::kHostBase, "mmu_lock-write", 1, sched::kHostBase});

  const std::vector<size_t> perm = actor_order_permutation(il);
  Trace seq = il;
  seq.schedule = {};
  seq.stmts.clear();
  for (size_t i : perm) seq.stmts.push_back(il.stmts[i]);

  trace::RunOptions opts;
  opts.full_checks_every_step = false;
  std::ostringstream log_seq, log_il;
  opts.log = &log_seq;
  const trace::RunResult r_seq = trace::run(seq, opts);
  opts.log = &log_il;
  const trace::RunResult r_il = trace::run(il, opts);

  // Steps: the interleaved run's failure step indexes `il`; map it into `seq`'s order.
  size_t il_step = r_il.failure.step;
  for (size_t k = 0; k < perm.size(); k++)
    if (perm[k] == r_il.failure.step) il_step = k;
  const std::string a = normalized(log_seq.str()), b = normalized(log_il.str());
  const bool switched = b.find("[switch]") != std::string::npos;
  const std::string v_seq = verdict(r_seq, r_seq.failure.step), v_il = verdict(r_il, il_step);
  if (switched || a != b || v_seq != v_il) {
    RC_LOG() << "sequential: " << v_seq << "\ninterleaved: " << v_il << "\n"
             << (switched ? "the interleaved run switched inside an operation\n" : "")
             << "first difference: " << first_difference(a, b) << "\n"
             << "sequential trace:\n"
             << saveable_trace(seq, "the sequential order of the trace below") << "interleaved "
             << saveable_trace(il,
                               "sequential and interleaved runs differ: " + v_seq + " vs " + v_il);
    RC_FAIL("sequential and no-switch interleaved runs differ");
  }
  if (stats().on) stats().n["law " + v_seq.substr(0, v_seq.find(" at step"))]++;
}
