// The byte decoder (sim/trace/decode.h): total, valid, invertible on its image, and pinned to
// byte format version 1 by a golden input.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "sim/kvm/kvm.h"
#include "sim/trace/decode.h"
#include "sim/trace/exec.h"
#include "sim/trace/kvm_exec.h"
#include "sim/trace/trace.h"

namespace {

using trace::Target;

std::vector<uint8_t> random_bytes(std::mt19937_64& rng, size_t max_len) {
  std::vector<uint8_t> b(rng() % (max_len + 1));
  for (auto& x : b) x = static_cast<uint8_t>(rng());
  return b;
}

trace::Trace decode(const std::vector<uint8_t>& b, Target t) {
  return trace::decode(b.data(), b.size(), t);
}

// Every byte string decodes to a trace the parser accepts and that prints back to itself, and
// encoding it gives bytes that decode to the same trace.
TEST(Decode, TotalValidAndInvertibleOnItsImage) {
  for (Target target : {Target::kKvm, Target::kModule}) {
    std::mt19937_64 rng(target == Target::kKvm ? 1 : 2);
    for (int i = 0; i < 4000; i++) {
      const auto bytes = random_bytes(rng, 300);
      const trace::Trace t = decode(bytes, target);
      const std::string text = trace::print(t);
      trace::ParseError err;
      const auto parsed = trace::parse(text, &err);
      ASSERT_TRUE(parsed) << err.line << ":" << err.column << ": " << err.message << "\n" << text;
      ASSERT_EQ(*parsed, t) << text;
      const trace::Encoded e = trace::encode(t);
      ASSERT_TRUE(e.ok()) << e.error << "\n" << text;
      ASSERT_TRUE(e.dropped.empty()) << e.dropped[0] << "\n" << text;
      ASSERT_EQ(decode(e.bytes, target), t) << text;
      ASSERT_LE(e.bytes.size(), bytes.size() + 64) << text;  // no blow-up either
    }
  }
}

TEST(Decode, ShortInputsGiveShortTraces) {
  EXPECT_TRUE(decode({}, Target::kKvm).stmts.empty());
  EXPECT_TRUE(decode({}, Target::kModule).stmts.empty());
  std::mt19937_64 rng(3);
  for (int i = 0; i < 1000; i++) {
    const auto bytes = random_bytes(rng, 40);
    // Every statement takes at least its selector byte.
    EXPECT_LE(decode(bytes, Target::kKvm).stmts.size(), bytes.size());
  }
}

// Swarm testing: a kind whose weight byte is 0 never appears; the rest all can.
TEST(Decode, SwarmWeightsSwitchKindsOff) {
  const auto& ops = trace::decodable_ops(Target::kKvm);
  std::mt19937_64 rng(4);
  for (size_t off = 0; off < ops.size(); off++) {
    std::vector<uint8_t> b = {0x01, 0x00};  // 2 vCPUs, 512 GFNs, sequential, no options
    for (size_t k = 0; k < ops.size(); k++) b.push_back(k == off ? 0 : 1);
    for (int i = 0; i < 2000; i++) b.push_back(static_cast<uint8_t>(rng()));
    std::set<trace::Op> seen;
    for (auto& s : decode(b, Target::kKvm).stmts) seen.insert(s.op);
    EXPECT_FALSE(seen.count(ops[off])) << trace::op_info(ops[off]).name;
    EXPECT_EQ(seen.size(), ops.size() - 1) << "switched off " << trace::op_info(ops[off]).name;
  }
}

// Byte format version 1, pinned: if this changes, bump kByteFormatVersion (saved crash inputs
// would silently mean something else).
TEST(Decode, GoldenVersion1) {
  ASSERT_EQ(trace::kByteFormatVersion, 1);
  const auto& ops = trace::decodable_ops(Target::kKvm);
  auto sel = [&](trace::Op op) {  // the selector of `op` when every weight is 1
    return static_cast<uint8_t>(std::find(ops.begin(), ops.end(), op) - ops.begin());
  };
  std::vector<uint8_t> b = {
      0x49,        // 2 vCPUs, 1024 GFNs, schedule random
      0x02,        // adversarial_guest=1
      0x2a, 0x01,  // seed 0x12a
  };
  for (size_t k = 0; k < ops.size(); k++) b.push_back(1);
  const std::vector<uint8_t> stmts = {
      sel(trace::Op::FINALIZE),     0x00,                    // actor: none
      sel(trace::Op::MAP),          0x40, 0x01, 0x04, 0x02,  // 0x200 2M @host1
      sel(trace::Op::GUEST_ACCEPT), 0x01, 0x00, 0x05, 0x01,  // 1 0x200 2M @vcpu1
      sel(trace::Op::GUEST_WRITE),  0x00, 0x20, 0x07, 0x00,  // 0 0x3ff 0x107
      sel(trace::Op::ZAP),          0x09, 0x81,  // recent[1] + 1, COUNT 2; actor past the end
  };
  b.insert(b.end(), stmts.begin(), stmts.end());
  EXPECT_EQ(trace::print(decode(b, Target::kKvm)),
            "target kvm\n"
            "vcpus 2\n"
            "memory 1024\n"
            "option adversarial_guest=1\n"
            "schedule random 298\n"
            "finalize\n"
            "@host1 map 0x200 2M\n"
            "@vcpu1 accept 1 0x200 2M\n"
            "write 0 0x3ff 0x107\n"
            "zap 0x201 2\n");
}

std::string read(const std::filesystem::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// Every readable trace in corpus/ encodes (that is how seeds are made), and the bytes decode to
// the trace without what the byte format leaves out.
TEST(Decode, CorpusTracesEncode) {
  int n = 0;
  for (auto& dir : std::filesystem::directory_iterator(TDXFUZZ_SOURCE_DIR "/corpus")) {
    for (auto& f : std::filesystem::directory_iterator(dir)) {
      if (f.path().extension() != ".tdx") continue;
      trace::ParseError err;
      const auto t = trace::parse(read(f.path()), &err);
      ASSERT_TRUE(t) << f.path() << ": " << err.message;
      const trace::Encoded e = trace::encode(*t);
      ASSERT_TRUE(e.ok()) << f.path() << ": " << e.error;
      trace::Trace want = *t;
      std::erase_if(want.stmts, [&](const trace::Stmt& s) {
        const auto& ops = trace::decodable_ops(t->target);
        return std::find(ops.begin(), ops.end(), s.op) == ops.end();
      });
      for (auto& s : want.stmts) {
        s.expect = {};
        if (want.schedule.kind == sched::Schedule::kNone) s.actor.clear();
      }
      std::erase_if(want.options, [](auto& o) { return o.first == "bug" || o.first == "inject"; });
      trace::Trace got = decode(e.bytes, t->target);
      std::sort(want.options.begin(), want.options.end());  // the bytes keep flags, not order
      std::sort(got.options.begin(), got.options.end());
      EXPECT_EQ(trace::print(got), trace::print(want)) << f.path();
      n++;
    }
  }
  EXPECT_GT(n, 30);
}

// Replaying the decoded text behaves exactly like running the bytes: same statements run, the
// same first violation (with a bug-zoo entry on, so that there is one to compare).
TEST(Decode, ReplayOfDecodedTextEqualsRunningTheBytes) {
  std::mt19937_64 rng(5);
  int failures = 0;
  for (int i = 0; i < 300; i++) {
    auto bytes = random_bytes(rng, 120);
    if (bytes.size() > 1) bytes[1] &= 0xfe;  // keep sept_ve_disable on
    const trace::Trace t = decode(bytes, Target::kKvm);
    trace::ParseError err;
    const auto text = trace::parse(trace::print(t), &err);
    ASSERT_TRUE(text);
    trace::RunOptions o;
    o.full_checks_every_step = true;
    trace::KvmRunConfig cfg;
    cfg.bugs =
        kvm::bug_bit(kvm::Bug::whole_2m_zap) | kvm::bug_bit(kvm::Bug::skip_track_before_demote);
    const trace::RunResult a = trace::run_kvm(t, o, cfg), b = trace::run_kvm(*text, o, cfg);
    ASSERT_EQ(a.ok(), b.ok());
    ASSERT_EQ(a.steps, b.steps);
    ASSERT_EQ(a.failure.step, b.failure.step);
    ASSERT_EQ(a.failure.violation.signature(), b.failure.violation.signature());
    failures += !a.ok();
  }
  EXPECT_GT(failures, 0);  // the comparison covered failing runs too
}

}  // namespace
