// The text trace format: parsing, error positions, canonical printing (print then parse is
// the identity), and the executor's verdicts.
#include <gtest/gtest.h>

#include <sstream>

#include "sim/trace/exec.h"
#include "sim/trace/trace.h"

namespace trace {
namespace {

Trace parse_ok(std::string_view text) {
  ParseError err;
  auto t = parse(text, &err);
  EXPECT_TRUE(t.has_value()) << err.line << ":" << err.column << ": " << err.message;
  return t.value_or(Trace{});
}

ParseError parse_err(std::string_view text) {
  ParseError err;
  auto t = parse(text, &err);
  EXPECT_FALSE(t.has_value()) << "parsed, expected an error:\n" << text;
  return err;
}

constexpr std::string_view kSample =
    "# comment\n"
    "target module\n"
    "vcpus 3\n"
    "memory 1024\n"
    "option enhanced_demote_interruptibility=off\n"
    "\n"
    "tdh.mem.sept.add 0x0 512G   -> SUCCESS   # trailing comment\n"
    "tdh.mem.sept.add 0 1G->TDX_SUCCESS\n"
    "tdh.mem.page.aug 0x200000 2M -> TDX_OPERAND_BUSY|SEPT_TREE\n"
    "@vcpu2 tdg.mem.page.accept 2 0x200000 2M -> EPT_VIOLATION\n"
    "tdh.mem.range.block 0x200000 2M -> 0x00000b0700000001\n"
    "tdg.mem.page.accept 1 0x3ff000 4K -> TDX_PAGE_ALREADY_ACCEPTED|0x1\n"
    "irq\n"
    "irq 7\n"
    "@host1 tdh.mem.track -> PREVIOUS_TLB_EPOCH_BUSY\n";

TEST(TraceParse, HeaderAndStatements) {
  Trace t = parse_ok(kSample);
  EXPECT_EQ(t.target, Target::kModule);
  EXPECT_EQ(t.vcpus, 3);
  EXPECT_EQ(t.memory, 1024u);
  ASSERT_EQ(t.options.size(), 1u);
  EXPECT_EQ(t.options[0].first, "enhanced_demote_interruptibility");
  EXPECT_EQ(t.options[0].second, "off");
  ASSERT_EQ(t.stmts.size(), 9u);
  EXPECT_EQ(t.stmts[0].op, Op::SEPT_ADD);
  EXPECT_EQ(t.stmts[0].args, (std::vector<uint64_t>{0, 3}));
  EXPECT_EQ(t.stmts[0].line, 7);
  EXPECT_EQ(t.stmts[1].expect.kind, Expect::kStatusClass);  // `->` glued to its neighbours
  EXPECT_EQ(t.stmts[2].expect.kind, Expect::kStatusExact);
  EXPECT_EQ(t.stmts[2].expect.value, 0x8000020000000092ull);
  EXPECT_EQ(t.stmts[3].actor, "vcpu2");
  EXPECT_EQ(t.stmts[3].expect.kind, Expect::kPseudo);
  EXPECT_EQ(t.stmts[4].expect.value, 0x00000B0700000001ull);
  EXPECT_EQ(t.stmts[5].expect.value, 0x00000B0A00000001ull);
  EXPECT_EQ(t.stmts[6].args, (std::vector<uint64_t>{0}));  // optional count defaults to 0
  EXPECT_EQ(t.stmts[7].args, (std::vector<uint64_t>{7}));
  EXPECT_EQ(t.stmts[8].actor, "host1");
  EXPECT_EQ(t.stmts[8].expect.value, 0x8000020100000000ull);
}

TEST(TraceParse, PrintThenParseIsIdentity) {
  Trace t = parse_ok(kSample);
  std::string printed = print(t);
  Trace again = parse_ok(printed);
  EXPECT_EQ(t, again) << printed;
  EXPECT_EQ(printed, print(again));  // and printing is canonical
}

TEST(TraceParse, ErrorPositions) {
  struct Case {
    const char* text;
    int line, column;
    const char* contains;
  } cases[] = {
      {"target module\ntdh.mem.page.aug 0x0 3M\n", 2, 22, "bad level"},
      {"target module\ntdh.mem.page.aug zz 4K\n", 2, 18, "bad GPA"},
      {"target module\ntdh.mem.page.aug 0x0\n", 2, 21, "missing LEVEL"},
      {"target module\ntdh.mem.page.aug 0x0 4K 5\n", 2, 25, "unexpected argument"},
      {"target module\ntdh.mem.pag.aug 0x0 4K\n", 2, 1, "did you mean `tdh.mem.page.aug`"},
      {"tdh.mem.track\n", 1, 1, "module operation"},
      {"target module\ntdh.mem.track\ntarget kvm\n", 3, 1, "header line"},
      {"target module\ntdh.vp.enter 2\n", 2, 14, "out of range"},
      {"target module\nvcpus 9\n", 2, 7, "1..8"},
      {"target module\nmemory 1000\n", 2, 8, "multiple of 512"},
      {"target module\noption nonsense=1\n", 2, 8, "unknown option"},
      {"target module\noption zero_step_mitigation=maybe\n", 2, 29, "bad option value"},
      {"target module\ntdh.mem.track -> WHAT\n", 2, 18, "unknown result"},
      {"target module\ntdh.mem.track -> OPERAND_BUSY|XYZ\n", 2, 31, "unknown operand"},
      {"target module\ntdh.mem.track ->\n", 2, 17, "needs a result"},
      {"target module\n@cpu0 tdh.mem.track\n", 2, 1, "unknown actor"},
      {"target module\n@vcpu1 tdg.mem.page.accept 0 0x0 4K\n", 2, 1, "belongs to @vcpu0"},
      {"target module\nschedule random 1\n", 2, 1, "applies to KVM traces"},
      {"schedule vcpu0:no-such-point -> host0\n", 1, 16, "unknown yield point"},
      {"schedule vcpu9:kick -> host0\n", 1, 10, "unknown actor"},
      {"schedule vcpu0:kick host0\n", 1, 21, "expected `-> ACTOR`"},
      {"schedule random 1\nschedule pct 2\n", 2, 1, "only one"},
      {"schedule setup\n", 1, 15, "number of leading operations"},
      {"schedule setup x\n", 1, 16, "number of leading operations"},
      {"schedule setup 1 2\n", 1, 18, "unexpected `2`"},
      {"schedule random 1\nschedule setup 1\nschedule setup 1\nfinalize\n", 3, 1, "only one"},
      {"finalize\nschedule setup 1\n", 2, 1, "needs a schedule to go with"},
      {"schedule random 1\nschedule setup 3\nfinalize\nmap 0x0 4K\n", 2, 16, "only 2 operations"},
      {"target bogus\n", 1, 8, "unknown target"},
  };
  for (const auto& c : cases) {
    ParseError e = parse_err(c.text);
    EXPECT_EQ(e.line, c.line) << c.text;
    EXPECT_EQ(e.column, c.column) << c.text << " -> " << e.message;
    EXPECT_NE(e.message.find(c.contains), std::string::npos) << e.message;
  }
}

TEST(TraceRun, ExpectationMismatchNamesTheStep) {
  Trace t = parse_ok(
      "target module\n"
      "tdh.mem.sept.add 0x0 512G -> SUCCESS\n"
      "tdh.mem.page.aug 0x200000 2M -> SUCCESS\n");
  RunResult r = run(t);
  ASSERT_EQ(r.failure.kind, Failure::kExpectation);
  EXPECT_EQ(r.failure.step, 1u);
  EXPECT_EQ(r.failure.line, 3);
  EXPECT_EQ(r.failure.expected, "TDX_SUCCESS");
  EXPECT_EQ(r.failure.actual.rfind("TDX_EPT_WALK_FAILED|RCX", 0), 0u) << r.failure.actual;
  std::string report = format_failure(t, r, "x.tdx");
  EXPECT_NE(report.find("x.tdx:3: expectation failed"), std::string::npos) << report;
}

TEST(TraceRun, ClassExpectationIgnoresOperandButExactDoesNot) {
  Trace t = parse_ok(
      "target module\n"
      "tdh.mem.page.aug 0x200000 2M -> EPT_WALK_FAILED\n"
      "tdh.mem.page.aug 0x200000 2M -> EPT_WALK_FAILED|RCX\n");
  EXPECT_TRUE(run(t).ok());
  Trace u = parse_ok("target module\ntdh.mem.page.aug 0x200000 2M -> EPT_WALK_FAILED|RDX\n");
  EXPECT_EQ(run(u).failure.kind, Failure::kExpectation);
}

TEST(TraceRun, ImplicitTeardownReclaimsEverything) {
  Trace t = parse_ok(
      "target module\n"
      "tdh.mem.sept.add 0x0 512G -> SUCCESS\n"
      "tdh.mem.sept.add 0x0 1G -> SUCCESS\n"
      "tdh.mem.sept.add 0x0 2M -> SUCCESS\n"
      "tdh.mem.page.add 0x1000 -> SUCCESS\n"
      "tdh.mem.page.aug 0x200000 2M -> SUCCESS\n"
      "tdh.mr.finalize -> SUCCESS\n"
      "tdh.vp.enter 1 -> SUCCESS\n");
  RunResult r = run(t);
  EXPECT_TRUE(r.ok()) << format_failure(t, r, "t");
  EXPECT_EQ(r.steps, t.stmts.size());
}

TEST(TraceRun, VerboseLogNamesEverySeamcall) {
  Trace t = parse_ok("target module\ntdh.mem.sept.add 0x0 512G\ntdh.mem.track\n");
  std::ostringstream log;
  RunOptions o;
  o.log = &log;
  EXPECT_TRUE(run(t, o).ok());
  EXPECT_NE(log.str().find("TDH.MEM.SEPT.ADD rcx=0x3"), std::string::npos);
  EXPECT_NE(log.str().find("TDH.MEM.TRACK"), std::string::npos);
  EXPECT_NE(log.str().find("TDH.MNG.KEY.FREEID"), std::string::npos);
}

}  // namespace
}  // namespace trace

namespace trace {
namespace {

TEST(TraceParse, KvmTraceWithActorsAndScheduleRoundTrips) {
  for (const char* sched :
       {"schedule vcpu0:accept-entry-locked -> host0\nschedule host0:mmu_lock-write:2 -> vcpu1\n",
        "schedule random 42\n", "schedule pct 7 5\n", "schedule pct 7 5\nschedule setup 2\n",
        "schedule setup 12\nschedule vcpu0:kick -> host0\n"}) {
    std::string text = std::string(
                           "vcpus 2\n"
                           "memory 1024\n"
                           "option bug=whole_2m_zap\n"
                           "option sept_ve_disable=off\n"
                           "finalize\n"
                           "map 0x200 2M -> ok\n"
                           "@vcpu0 accept 0 0x200 2M -> ok\n"
                           "@host0 split 0x200 -> EIO\n"
                           "@vcpu1 read 1 0x3ff -> 0xfeed\n"
                           "convert 0x300 2 shared -> ok\n"
                           "@vcpu1 expect mapped 0x3ff 4K accepted\n"
                           "irq\n"
                           "irq 3\n"
                           "nomem\n"
                           "@host1 nomem 2 -> ok\n"
                           "expect vm alive\n") +
                       sched;
    Trace t = parse_ok(text);
    EXPECT_NE(t.schedule.kind, sched::Schedule::kNone);
    const std::string printed = print(t);
    EXPECT_EQ(parse_ok(printed), t) << printed;
    EXPECT_EQ(print(parse_ok(printed)), printed);
  }
}

}  // namespace
}  // namespace trace

namespace trace {
namespace {

// An `expect` line in a KVM trace is its own expectation: a state that differs fails the run.
TEST(TraceRun, KvmExpectLineThatDoesNotHoldFails) {
  Trace t = parse_ok(
      "vcpus 1\n"
      "finalize\n"
      "map 0x200 2M -> ok\n"
      "expect mapped 0x200 2M pending\n"
      "expect mapped 0x200 4K pending\n"
      "expect vm alive\n");
  RunResult r = run(t);
  ASSERT_EQ(r.failure.kind, Failure::kExpectation);
  EXPECT_EQ(r.failure.line, 5);
  EXPECT_NE(r.failure.actual.find("mirror leaf 2M"), std::string::npos) << r.failure.actual;
}

// `nomem` fails the next page-table allocation: a pre-fault gets -ENOMEM, then succeeds.
// `irq` in a KVM trace: a 2M ACCEPT stops after N more chunks and the guest re-executes it.
TEST(TraceRun, KvmNomemAndIrq) {
  Trace t = parse_ok(
      "vcpus 1\n"
      "finalize\n"
      "map 0x400 2M -> ok\n"
      "nomem 2\n"
      "map 0x600 4K -> ENOMEM\n"
      "map 0x601 4K -> ENOMEM\n"
      "map 0x602 4K -> ok\n"
      "irq 5\n"
      "accept 0 0x400 2M -> ok\n"
      "expect mapped 0x400 2M accepted\n"
      // T1's split cannot allocate: -ENOMEM to userspace (no endless re-execution of ACCEPT).
      "map 0x800 2M -> ok\n"
      "nomem\n"
      "accept 0 0x801 4K -> ENOMEM\n"
      "accept 0 0x801 4K -> ok\n"
      "expect mapped 0x801 4K accepted\n"
      "map 0xa00 2M -> ok\n"
      "nomem 200\n"
      "accept 0 0xa01 4K -> ENOMEM\n"
      "expect vm alive\n");
  std::ostringstream log;
  RunOptions o;
  o.log = &log;
  RunResult r = run(t, o);
  EXPECT_TRUE(r.ok()) << format_failure(t, r, "t");
  EXPECT_NE(log.str().find("(host interrupt seen by accept)"), std::string::npos) << log.str();
  EXPECT_NE(log.str().find("interrupted (progress saved; re-executes)"), std::string::npos);
}

}  // namespace
}  // namespace trace
