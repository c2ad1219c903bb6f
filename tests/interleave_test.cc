// Interleaved execution: the scenario traces in corpus/interleave reach BUSY paths by real
// overlap, each passes with its bug-zoo entry off and fails on the entry's property with it
// on, each hits its probes, and a replay gives the same step-by-step log every time.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "sim/kvm/kvm.h"
#include "sim/sched/probe.h"
#include "sim/sched/scheduler.h"
#include "sim/trace/exec.h"
#include "sim/trace/trace.h"

#ifndef TDXFUZZ_SOURCE_DIR
#error "TDXFUZZ_SOURCE_DIR must name the source tree"
#endif

namespace kvm {
void PrintTo(Bug b, std::ostream* os);
}

namespace {

using kvm::Bug;
using sched::Probe;

struct Scenario {
  std::string file;
  Bug bug;                    // the entry that breaks it
  std::vector<Probe> probes;  // what it must reach
};

const std::vector<Scenario> kScenarios = {
    {"block_busy_guest_accept_retry",
     Bug::ignore_block_busy,
     {Probe::no_vcpus_retry_block, Probe::no_vcpus_retry_succeeded,
      Probe::accept_interrupted_by_kick, Probe::kick_waited_for_vcpu}},
    {"demote_busy_guest_accept_retry",
     Bug::no_vcpus_retry_off,
     {Probe::no_vcpus_retry_demote, Probe::no_vcpus_retry_succeeded, Probe::kick_waited_for_vcpu}},
    {"demote_busy_guest_accept_retry", Bug::leave_wait_for_sept_zap, {Probe::vcpu_held_out}},
    {"track_busy_vcpu_entering",
     Bug::no_vcpus_retry_off,
     {Probe::no_vcpus_retry_track, Probe::no_vcpus_retry_succeeded, Probe::kick_waited_for_vcpu}},
    {"fault_aug_busy_local_retry",
     Bug::fault_busy_is_fatal,
     {Probe::fault_seamcall_busy, Probe::ept_violation_local_retry}},
    {"faults_race_frozen_spte", Bug::plain_spte_store_read_lock, {Probe::fault_cmpxchg_lost}},
    {"fault_retry_meets_frozen_spte",
     Bug::frozen_cleared_by_non_owner,
     {Probe::fault_cmpxchg_lost, Probe::fault_saw_frozen_spte}},
    {"finalize_excludes_punch_hole", Bug::finalize_without_mmu_lock, {Probe::mmu_lock_contended}},
};

std::string read_text(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

trace::Trace load(const std::string& name, const std::string& prefix = "") {
  const std::string path = std::string(TDXFUZZ_SOURCE_DIR) + "/corpus/interleave/" + name + ".tdx";
  trace::ParseError err;
  auto t = trace::parse(prefix + read_text(path), &err);
  EXPECT_TRUE(t.has_value()) << path << ":" << err.line << ":" << err.column << ": " << err.message;
  return t.value_or(trace::Trace{});
}

class Interleave : public ::testing::TestWithParam<Scenario> {};

TEST(ActorNames, ParseInvertsNameAndRejectsOthers) {
  for (int id : {0, 1, 7, sched::kHostBase, sched::kHostBase + 3}) {
    EXPECT_EQ(sched::parse_actor(sched::actor_name(id)), id) << sched::actor_name(id);
  }
  for (const char* bad : {"", "vcpu", "host", "vcpu8", "host4", "vcpu-1", "vcpu1x", "vcpu100",
                          "xcpu0", "Vcpu0", "hostA", "vcpu 1"})
    EXPECT_EQ(sched::parse_actor(bad), -1) << bad;
  EXPECT_EQ(sched::parse_actor("vcpu07"), 7);  // two digits, as before
}

TEST_P(Interleave, PassesAndReachesItsProbes) {
  sched::reset_probes();
  trace::Trace t = load(GetParam().file);
  trace::RunResult r = trace::run(t);
  ASSERT_TRUE(r.ok()) << trace::format_failure(t, r, GetParam().file);
  for (Probe p : GetParam().probes) {
    if (GetParam().bug == Bug::leave_wait_for_sept_zap) continue;  // the bug's probe, below
    EXPECT_GT(sched::probe_count(p), 0u)
        << GetParam().file << " never reached " << sched::probe_name(p);
  }
}

TEST_P(Interleave, FailsOnItsPropertyWithTheBugOn) {
  const kvm::BugInfo& info = kvm::bug_info(GetParam().bug);
  sched::reset_probes();
  trace::Trace t = load(GetParam().file, "option bug=" + std::string(info.name) + "\n");
  trace::RunResult r = trace::run(t);
  ASSERT_EQ(r.failure.kind, trace::Failure::kProperty) << info.name << " went unnoticed";
  EXPECT_EQ(r.failure.violation.property, info.property)
      << trace::format_failure(t, r, GetParam().file);
  if (GetParam().bug == Bug::leave_wait_for_sept_zap) {
    for (Probe p : GetParam().probes) EXPECT_GT(sched::probe_count(p), 0u) << sched::probe_name(p);
  }
}

std::string Name(const ::testing::TestParamInfo<Scenario>& p) {
  return p.param.file + "_" + std::string(kvm::bug_info(p.param.bug).name);
}

INSTANTIATE_TEST_SUITE_P(Scenarios, Interleave, ::testing::ValuesIn(kScenarios), Name);

TEST(InterleaveZoo, EveryInterleavingEntryHasAScenario) {
  std::set<Bug> covered;
  for (const auto& s : kScenarios) covered.insert(s.bug);
  for (size_t i = 0; i < static_cast<size_t>(Bug::kCount); i++) {
    const Bug b = static_cast<Bug>(i);
    if (kvm::bug_info(b).needs_interleaving) {
      EXPECT_TRUE(covered.count(b))
          << kvm::bug_info(b).name << " needs an interleaving scenario here";
    }
  }
}

// Regressions whose fix is a new path: the trace must still take it (else it no longer tests it).
TEST(RegressionProbes, EachFixedPathIsReached) {
  const std::vector<std::pair<std::string, Probe>> cases = {
      {"fault_waits_for_long_conversion", Probe::fault_waited_for_invalidation},
      {"accept_busy_while_host_progresses", Probe::accept_busy},
      {"zero_step_filter_over_pending_page", Probe::zero_step_pending_spin},
      {"vm_dead_during_vp_enter_epoch", Probe::kick_waited_for_vcpu},
  };
  for (const auto& [name, probe] : cases) {
    sched::reset_probes();
    const std::string path =
        std::string(TDXFUZZ_SOURCE_DIR) + "/corpus/regressions/" + name + ".tdx";
    trace::ParseError err;
    auto t = trace::parse(read_text(path), &err);
    ASSERT_TRUE(t.has_value()) << path << ":" << err.line << ": " << err.message;
    trace::RunResult r = trace::run(*t);
    EXPECT_TRUE(r.ok()) << trace::format_failure(*t, r, name);
    EXPECT_GT(sched::probe_count(probe), 0u)
        << name << " never reached " << sched::probe_name(probe);
  }
}

// Replaying an interleaved trace gives the same step-by-step log, for rules, random and PCT.
TEST(InterleaveReplay, SameLogEveryTime) {
  for (const char* sched_line : {"", "schedule random 7\n", "schedule pct 11 3\n"}) {
    std::string text =
        read_text(std::string(TDXFUZZ_SOURCE_DIR) + "/corpus/kvm/vcpus_kicked_around_split.tdx");
    if (*sched_line) {
      // Drop expectations: another interleaving may legitimately return other results.
      std::stringstream in(text), out;
      std::string line;
      while (std::getline(in, line)) {
        const size_t arrow = line.find("->");
        if (line.rfind("expect", 0) == 0) continue;
        out << (arrow == std::string::npos ? line : line.substr(0, arrow)) << "\n";
      }
      text = out.str() + sched_line;
    }
    trace::ParseError err;
    auto t = trace::parse(text, &err);
    ASSERT_TRUE(t) << err.message;
    std::string logs[2];
    for (auto& log : logs) {
      std::ostringstream os;
      trace::RunOptions o;
      o.log = &os;
      trace::RunResult r = trace::run(*t, o);
      EXPECT_TRUE(r.ok()) << trace::format_failure(*t, r, "x");
      log = os.str();
    }
    EXPECT_EQ(logs[0], logs[1]) << sched_line;
    EXPECT_GT(logs[0].size(), 1000u);
  }
}

// `schedule setup N` (the benchmark trace has `schedule setup 3`): the leading statements finish
// before the actors start. Without it, schedule random 1 runs the vCPUs of the benchmark trace
// before `finalize`, and their lines fail with EINVAL.
TEST(InterleavePrefix, SetupRunsBeforeTheActors) {
  trace::ParseError err;
  auto t = trace::parse(
      read_text(std::string(TDXFUZZ_SOURCE_DIR) + "/bench/traces/interleave64.tdx"), &err);
  ASSERT_TRUE(t) << err.message;
  ASSERT_EQ(sched::Schedule::kRandom, t->schedule.kind);
  ASSERT_EQ(3u, t->setup);
  auto log_of = [&](size_t setup) {
    std::ostringstream os;
    trace::RunOptions o;
    o.log = &os;
    t->setup = setup;
    trace::RunResult r = trace::run(*t, o);
    EXPECT_TRUE(r.ok()) << trace::format_failure(*t, r, "interleave64.tdx");
    return os.str();
  };
  const std::string without = log_of(0), with = log_of(3);
  EXPECT_NE(std::string::npos, without.find("=> EINVAL"));
  EXPECT_EQ(std::string::npos, with.find("=> EINVAL")) << with;
  // The setup lines come first, then the actors' lines.
  EXPECT_LT(with.find("host0: finalize"), with.find("vcpu0: @vcpu0 accept"));
  EXPECT_NE(std::string::npos, with.find("TDG.MEM.PAGE.ACCEPT"));
}

}  // namespace

namespace {

// No false positives: every KVM corpus trace, its expectations dropped (another interleaving
// may legitimately return other results), runs clean under seeded random and PCT schedules.
// TDXFUZZ_SCHEDULE_SEEDS raises the number of seeds (ctest label `long`).
TEST(InterleaveSweep, CorpusUnderRandomSchedulesHasNoViolations) {
  const char* env = std::getenv("TDXFUZZ_SCHEDULE_SEEDS");
  const int seeds = env ? std::atoi(env) : 2;
  const std::string dir = std::string(TDXFUZZ_SOURCE_DIR) + "/corpus/kvm/";
  int runs = 0;
  for (const char* name :
       {"split_keeps_data", "vcpus_kicked_around_split", "punch_hole_accepted_2m_killed",
        "punch_hole_accepted_2m_ve", "convert_partial_keeps_neighbours",
        "guest_4k_accept_splits_2m", "zap_precise_across_2m_boundary",
        "read_across_split_of_other_page", "two_vcpus_accept_different_pages",
        "adversarial_write_before_accept_ve", "fault_2m_after_finalize", "teardown_mixed_sizes",
        "convert_mixed_range_caps_4k", "demote_interrupt_no_huge_pages",
        "accept_2m_interrupted_reexecutes", "nomem_split_fails_punch_hole_enomem",
        "zap_yields_mmu_lock_mid_walk", "guest_4k_accept_in_2m_splits_under_write_lock"}) {
    std::stringstream in(read_text(dir + name + ".tdx")), body;
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("expect", 0) == 0) continue;
      const size_t arrow = line.find("->");
      body << (arrow == std::string::npos ? line : line.substr(0, arrow)) << "\n";
    }
    ASSERT_GT(body.str().size(), 50u) << name << ": trace not found";
    for (int seed = 1; seed <= seeds; seed++) {
      for (const char* kind : {"random", "pct"}) {
        std::string text = body.str() + "schedule " + kind + " " + std::to_string(seed) + "\n";
        trace::ParseError err;
        auto t = trace::parse(text, &err);
        ASSERT_TRUE(t) << name << ": " << err.message;
        trace::RunResult r = trace::run(*t);
        EXPECT_TRUE(r.ok()) << name << " schedule " << kind << " " << seed << "\n"
                            << trace::format_failure(*t, r, name);
        runs++;
      }
    }
  }
  EXPECT_EQ(runs, 18 * seeds * 2);
}

}  // namespace

namespace {

// tdp_mmu_zap_leafs yields kvm->mmu_lock to an actor waiting for it (rwlock_needbreak) and
// restarts its walk where it stopped; with bug zoo zap_iter_advance_after_yield the SPTE it
// stopped at (0x201) is skipped and stays mapped.
TEST(InterleaveZapYield, WaitingFaultGetsTheLockAndNoLeafIsSkipped) {
  for (bool bug : {false, true}) {
    trace::Trace t = load("zap_yields_lock_to_waiting_fault",
                          bug ? "option bug=zap_iter_advance_after_yield\n" : "");
    std::ostringstream log;
    trace::RunOptions o;
    o.log = &log;
    trace::RunResult r = trace::run(t, o);
    EXPECT_NE(log.str().find("host0 spins @ zap-leaf:2 -> vcpu0"), std::string::npos) << log.str();
    if (!bug) {
      EXPECT_TRUE(r.ok()) << trace::format_failure(t, r, "zap_yields_lock_to_waiting_fault");
    } else {
      ASSERT_EQ(r.failure.kind, trace::Failure::kExpectation);
      EXPECT_EQ(r.failure.line, 15) << "expect unmapped 0x201 (line 14 of the file)";
    }
  }
}

}  // namespace
