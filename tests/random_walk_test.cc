// A seeded random walk over the whole KVM vocabulary, run sequentially with every property
// checked after every step. The walk behaves like a Linux guest's host: it punches holes only
// in memory the guest has been told about (a conversion round trip follows), so the VM stays
// alive and every later operation still exercises the stack.
#include <gtest/gtest.h>

#include <cstdlib>
#include <random>
#include <string>

#include "sim/trace/exec.h"
#include "sim/trace/trace.h"

namespace {

std::string random_walk(uint64_t seed, int ops, uint64_t memory) {
  std::mt19937_64 rng(seed);
  auto pick = [&](uint64_t n) { return rng() % n; };
  auto gfn = [&] {
    // Near 2M boundaries half of the time: that is where splits happen.
    const uint64_t base = pick(memory / 512) * 512;
    return pick(2) ? base + pick(512)
                   : std::min(memory - 1, base + (pick(2) ? 511 - pick(4) : pick(4)));
  };
  std::string t = "vcpus 3\nmemory " + std::to_string(memory) + "\n";
  for (int i = 0; i < 8; i++) t += "init-mem " + std::to_string(pick(memory)) + "\n";
  t += "finalize\n";
  char line[160];
  for (int i = 0; i < ops; i++) {
    const int v = static_cast<int>(pick(3));
    const uint64_t g = gfn();
    const char* level = pick(3) ? "2M" : "4K";
    switch (pick(14)) {
      case 0:
        std::snprintf(line, sizeof line, "map 0x%llx %s\n", (unsigned long long)g, level);
        break;
      case 1:
        std::snprintf(line, sizeof line, "split 0x%llx\n", (unsigned long long)g);
        break;
      case 2: {
        // A hole the guest asked for: punch, then a conversion round trip tells the guest.
        const uint64_t n = 1 + pick(std::min<uint64_t>(64, memory - g));
        std::snprintf(line, sizeof line,
                      "zap 0x%llx %llu\nconvert 0x%llx %llu shared\nconvert 0x%llx %llu private\n",
                      (unsigned long long)g, (unsigned long long)n, (unsigned long long)g,
                      (unsigned long long)n, (unsigned long long)g, (unsigned long long)n);
        break;
      }
      case 3: {
        const uint64_t n = 1 + pick(std::min<uint64_t>(600, memory - g));
        std::snprintf(line, sizeof line, "convert 0x%llx %llu %s\n", (unsigned long long)g,
                      (unsigned long long)n, pick(2) ? "shared" : "private");
        break;
      }
      case 4:
        std::snprintf(line, sizeof line, "enter %d\n", v);
        break;
      case 5:
        std::snprintf(line, sizeof line, "exit %d\n", v);
        break;
      case 6:
        std::snprintf(line, sizeof line, "accept %d 0x%llx %s\n", v, (unsigned long long)g, level);
        break;
      case 7:
      case 8:
        std::snprintf(line, sizeof line, "write %d 0x%llx 0x%llx\n", v, (unsigned long long)g,
                      (unsigned long long)rng());
        break;
      case 12:  // the next one or two page-table allocations fail: -ENOMEM, nothing else
        std::snprintf(line, sizeof line, "nomem %d\n", static_cast<int>(1 + pick(2)));
        break;
      case 13:  // a host interrupt: the next 2M ACCEPT stops after a few chunks
        std::snprintf(line, sizeof line, "irq %d\n", static_cast<int>(pick(8)));
        break;
      default:
        std::snprintf(line, sizeof line, "read %d 0x%llx\n", v, (unsigned long long)g);
        break;
    }
    t += line;
  }
  return t + "expect vm alive\n";  // nothing on the way killed or bugged the VM
}

TEST(RandomWalk, TenThousandOperationsHoldEveryProperty) {
  const char* env = std::getenv("TDXFUZZ_WALK_SEED");
  const uint64_t seed = env ? std::strtoull(env, nullptr, 0) : 20261124;
  trace::ParseError err;
  auto t = trace::parse(random_walk(seed, 10000, 2048), &err);
  ASSERT_TRUE(t) << err.line << ":" << err.column << ": " << err.message;
  ASSERT_GE(t->stmts.size(), 10000u);
  trace::RunResult r = trace::run(*t);
  EXPECT_TRUE(r.ok()) << "seed " << seed << "\n" << trace::format_failure(*t, r, "walk");
  EXPECT_EQ(r.steps, t->stmts.size());
}

}  // namespace

namespace {

// The same kind of walk, its operations split between host0 and the vCPUs' actors and
// interleaved by seeded random and PCT schedules: every property still holds.
TEST(RandomWalk, InterleavedWalksHoldEveryProperty) {
  int runs = 0;
  for (uint64_t seed = 1; seed <= 6; seed++) {
    for (const char* kind : {"random", "pct"}) {
      std::string text = random_walk(seed, 300, 2048);
      text = text.substr(
          0, text.rfind("expect vm alive"));  // an interleaving may kill it legitimately
      text += std::string("schedule ") + kind + " " + std::to_string(seed) + "\n";
      trace::ParseError err;
      auto t = trace::parse(text, &err);
      ASSERT_TRUE(t) << err.message;
      trace::RunResult r = trace::run(*t);
      EXPECT_TRUE(r.ok()) << "seed " << seed << " " << kind << "\n"
                          << trace::format_failure(*t, r, "walk");
      runs++;
    }
  }
  EXPECT_EQ(runs, 12);
}

}  // namespace
