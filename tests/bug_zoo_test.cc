// The bug zoo bites: each entry that shows itself in a sequential trace has a trace here (or a
// corpus/kvm trace named here) that passes with the entry off and fails on the entry's named
// property with it on. Entries that need two actors to overlap are paired with their
// corpus/interleave scenario in tests/interleave_test.cc; the list test keeps this honest.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "sim/kvm/kvm.h"
#include "sim/trace/exec.h"
#include "sim/trace/trace.h"

#ifndef TDXFUZZ_SOURCE_DIR
#error "TDXFUZZ_SOURCE_DIR must name the source tree"
#endif

namespace kvm {
// gtest finds this by ADL to print a parameter by name.
void PrintTo(Bug b, std::ostream* os) {
  *os << bug_info(b).name;
}
}  // namespace kvm

namespace {

using kvm::Bug;

// A trace that a correct KVM runs cleanly and that the bug breaks.
const std::map<Bug, std::string> kCatching = {
    // BLOCK then DEMOTE with no TRACK: TDX_TLB_TRACKING_NOT_DONE, a KVM_BUG_ON.
    {Bug::skip_track_before_demote,
     "vcpus 1\n"
     "finalize\n"
     "map 0x200 2M -> ok\n"
     "accept 0 0x200 2M -> ok\n"
     "split 0x200 -> ok\n"
     "expect mapped 0x200 4K accepted\n"},
    // vCPU 0 stays in guest mode from the old epoch: the split's DEMOTE is never tracked.
    {Bug::skip_kick_after_track,
     "vcpus 2\n"
     "finalize\n"
     "map 0x200 2M -> ok\n"
     "accept 0 0x200 2M -> ok\n"
     "write 0 0x210 0x5\n"
     "split 0x210 -> ok\n"
     "read 0 0x210 -> 0x5\n"},
    // Converting one page of an accepted 2M page: the other 511 must keep their data.
    {Bug::whole_2m_zap,
     "vcpus 1\n"
     "finalize\n"
     "map 0x200 2M -> ok\n"
     "accept 0 0x200 2M -> ok\n"
     "write 0 0x201 0x1234\n"
     "convert 0x200 1 shared -> ok\n"
     "read 0 0x201 -> 0x1234\n"},
};

// Entries whose catching trace is a corpus/kvm file (replayed there as a test on its own).
const std::map<Bug, std::string> kCatchingCorpus = {
    // DEMOTE meets a pending host interrupt on a module without ENHANCED_DEMOTE_INTERRUPTIBILITY.
    {Bug::demote_interrupt_fatal, "demote_interrupt_no_huge_pages"},
    // A punch hole whose split cannot allocate (`nomem`) zaps the whole 2M leaf.
    {Bug::v2_split_bool_return, "nomem_split_fails_punch_hole_enomem"},
    // The zap walk yields after 64 leaves and skips the 65th.
    {Bug::zap_iter_advance_after_yield, "zap_yields_mmu_lock_mid_walk"},
    // A 4K ACCEPT in a 2M mapping: the fault splits under the read lock.
    {Bug::demote_under_read_lock, "guest_4k_accept_in_2m_splits_under_write_lock"},
};

std::string catching_text(Bug b) {
  auto it = kCatching.find(b);
  if (it != kCatching.end()) return it->second;
  const std::string path =
      std::string(TDXFUZZ_SOURCE_DIR) + "/corpus/kvm/" + kCatchingCorpus.at(b) + ".tdx";
  std::ifstream f(path);
  EXPECT_TRUE(f.good()) << path;
  std::stringstream text;
  text << f.rdbuf();
  return text.str();
}

trace::Trace parse(const std::string& text) {
  trace::ParseError err;
  auto t = trace::parse(text, &err);
  EXPECT_TRUE(t.has_value()) << err.line << ":" << err.column << " " << err.message;
  return t.value_or(trace::Trace{});
}

class BugZoo : public ::testing::TestWithParam<Bug> {};

TEST_P(BugZoo, PassesWithTheEntryOff) {
  trace::Trace t = parse(catching_text(GetParam()));
  trace::RunResult r = trace::run(t);
  EXPECT_TRUE(r.ok()) << trace::format_failure(t, r, "zoo");
}

TEST_P(BugZoo, FailsOnItsPropertyWithTheEntryOn) {
  const kvm::BugInfo& info = kvm::bug_info(GetParam());
  trace::Trace t = parse("option bug=" + std::string(info.name) + "\n" + catching_text(GetParam()));
  trace::RunResult r = trace::run(t);
  ASSERT_FALSE(r.ok()) << info.name << " went unnoticed";
  ASSERT_EQ(r.failure.kind, trace::Failure::kProperty) << trace::format_failure(t, r, "zoo");
  EXPECT_EQ(r.failure.violation.property, info.property) << trace::format_failure(t, r, "zoo");
}

std::string Name(const ::testing::TestParamInfo<Bug>& p) {
  return std::string(kvm::bug_info(p.param).name);
}

INSTANTIATE_TEST_SUITE_P(Sequential, BugZoo,
                         ::testing::Values(Bug::skip_track_before_demote,
                                           Bug::skip_kick_after_track, Bug::whole_2m_zap,
                                           Bug::demote_interrupt_fatal, Bug::v2_split_bool_return,
                                           Bug::zap_iter_advance_after_yield,
                                           Bug::demote_under_read_lock),
                         Name);

TEST(BugZooList, EveryEntryIsCaughtHereOrWaitsForInterleaving) {
  for (size_t i = 0; i < static_cast<size_t>(Bug::kCount); i++) {
    const Bug b = static_cast<Bug>(i);
    const kvm::BugInfo& info = kvm::bug_info(b);
    EXPECT_NE(kCatching.count(b) + kCatchingCorpus.count(b) == 1, info.needs_interleaving)
        << info.name
        << ": a sequential entry needs a catching trace here; an interleaving one is marked so";
    EXPECT_FALSE(info.property.empty()) << info.name;
  }
}

TEST(BugZooList, EnvironmentNamesAreChecked) {
  kvm::BugSet s;
  std::string bad;
  EXPECT_TRUE(kvm::parse_bugs("whole_2m_zap,skip_kick_after_track", &s, &bad));
  EXPECT_EQ(s, kvm::bug_bit(Bug::whole_2m_zap) | kvm::bug_bit(Bug::skip_kick_after_track));
  EXPECT_FALSE(kvm::parse_bugs("whole_2m_zap,nonsense", &s, &bad));
  EXPECT_EQ(bad, "nonsense");
}

}  // namespace
