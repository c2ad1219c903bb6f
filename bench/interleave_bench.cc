// Executions per second of a 64-operation, 3-actor trace: interleaved (fibers, its seeded
// schedule, a new seed each run) and sequential (the schedule dropped), in the same run.
// The trace's `schedule setup N` lines (build and finalize the TD) run before the actors start
// in interleaved runs, as a VMM starts vCPU threads only then; without it most schedules would
// run the vCPUs first and their lines would fail at once with EINVAL, measuring nothing. Any
// one execution replays with `tdxfuzz replay` after setting the schedule's seed.
// Every property is checked as in any replay. Usage: interleave_bench TRACE [SECONDS] [-j N]
// -j N runs N independent executors at once, one per thread (as N fuzzing jobs would), and
// reports their summed executions per second beside the single-thread figures.
// For profilers: interleave_bench TRACE -n N inter|seq runs N executions with end-only checks.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "sim/sched/env.h"
#include "sim/trace/exec.h"
#include "sim/trace/trace.h"

namespace {

// The first failing execution, for the report: its seed (0: a sequential run).
std::atomic<bool> g_any_failed{false};
std::atomic<uint64_t> g_failed_seed{0};
void note_failure(uint64_t seed) {
  if (!g_any_failed.exchange(true)) g_failed_seed = seed;
}

// How to see a failing execution for oneself.
void report_failure(const char* path, uint64_t count) {
  std::fprintf(stderr, "interleave_bench: %llu executions failed; ",
               static_cast<unsigned long long>(count));
  if (g_failed_seed == 0)
    std::fprintf(stderr, "a sequential one: tdxfuzz replay -v %s without its schedule lines\n",
                 path);
  else
    std::fprintf(stderr, "the first with seed %llu: tdxfuzz replay -v %s with that seed\n",
                 static_cast<unsigned long long>(g_failed_seed.load()), path);
}

double run_for(trace::Trace t, bool vary_seed, bool full_every_step, double seconds,
               uint64_t* execs, uint64_t* failures) {
  trace::RunOptions o;
  o.full_checks_every_step = full_every_step;
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  *execs = *failures = 0;
  for (;;) {
    if (vary_seed) t.schedule.seed = *execs + 1;
    if (!trace::run(t, o).ok()) {
      ++*failures;
      note_failure(vary_seed ? t.schedule.seed : 0);
    }
    ++*execs;
    const double s = std::chrono::duration<double>(clock::now() - start).count();
    if (s >= seconds) return *execs / s;
  }
}

// run_for on `jobs` threads at once; the sum of their rates.
double run_jobs(int jobs, const trace::Trace& t, bool vary_seed, bool full_every_step,
                double seconds, uint64_t* failures) {
  if (jobs == 1) {
    uint64_t n;
    return run_for(t, vary_seed, full_every_step, seconds, &n, failures);
  }
  std::vector<double> rate(jobs);
  std::vector<uint64_t> execs(jobs), failed(jobs);
  std::vector<std::thread> threads;
  for (int j = 0; j < jobs; j++)
    threads.emplace_back([&, j] {
      rate[j] = run_for(t, vary_seed, full_every_step, seconds, &execs[j], &failed[j]);
    });
  double sum = 0;
  *failures = 0;
  for (int j = 0; j < jobs; j++) threads[j].join(), sum += rate[j], *failures += failed[j];
  return sum;
}

constexpr const char* kUsage =
    "usage: interleave_bench TRACE [SECONDS] [-j N]   (SECONDS per configuration, default 5)\n"
    "       interleave_bench TRACE -n N inter|seq     (N executions, end-only checks)\n";

int usage_error(const char* what, const char* arg) {
  std::fprintf(stderr, "interleave_bench: %s%s%s\n%s", what, arg ? ": " : "", arg ? arg : "",
               kUsage);
  return 2;
}

// A whole-string number, or false.
bool parse_number(const char* s, double* out) {
  char* end = nullptr;
  *out = std::strtod(s, &end);
  return end != s && *end == '\0';
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage_error("missing TRACE", nullptr);
  const std::string first = argv[1];
  if (first == "-h" || first == "--help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  std::ifstream f(argv[1]);
  if (!f) {
    std::fprintf(stderr, "interleave_bench: cannot read %s\n", argv[1]);
    return 2;
  }
  std::stringstream text;
  text << f.rdbuf();
  trace::ParseError err;
  auto t = trace::parse(text.str(), &err);
  if (!t) {
    std::fprintf(stderr, "%s:%d:%d: %s\n", argv[1], err.line, err.column, err.message.c_str());
    return 2;
  }
  // The interleaved runs vary the seed of a seeded schedule; anything else would measure
  // one fixed schedule (or none) under the "interleaved" heading.
  if (t->schedule.kind != sched::Schedule::kRandom && t->schedule.kind != sched::Schedule::kPct)
    return usage_error("TRACE needs a `schedule random SEED` or `schedule pct SEED` line", argv[1]);
  trace::Trace seq = *t;
  seq.schedule = {};
  seq.setup = 0;
  if (argc > 2 && std::string(argv[2]) == "-n") {
    double n = 0;
    const std::string mode = argc > 4 ? argv[4] : "";
    if (argc != 5 || !parse_number(argv[3], &n) || n < 1 || (mode != "inter" && mode != "seq"))
      return usage_error("-n takes a count and `inter` or `seq`", nullptr);
    trace::Trace x = mode == "inter" ? *t : seq;
    trace::RunOptions o;
    o.full_checks_every_step = false;
    long failed = 0;
    for (long i = 0; i < static_cast<long>(n); i++) {
      x.schedule.seed = static_cast<uint64_t>(i) + 1;
      if (!trace::run(x, o).ok()) failed++, note_failure(mode == "inter" ? x.schedule.seed : 0);
    }
    if (failed) report_failure(argv[1], static_cast<uint64_t>(failed));
    return failed ? 1 : 0;
  }
  double seconds = 5.0;
  int jobs = 1;
  for (int i = 2; i < argc; i++) {
    const std::string a = argv[i];
    double v = 0;
    if (a == "-j") {
      if (i + 1 >= argc || !parse_number(argv[i + 1], &v) || v < 1 || v > 64 ||
          v != static_cast<int>(v))
        return usage_error("-j takes a thread count from 1 to 64",
                           i + 1 < argc ? argv[i + 1] : nullptr);
      jobs = static_cast<int>(v);
      i++;
    } else if (parse_number(argv[i], &v) && v > 0) {
      seconds = v;
    } else {
      return usage_error("not a positive number of seconds or an option", argv[i]);
    }
  }
  auto median = [](double* v) {
    double a = v[0], b = v[1], c = v[2];
    return std::max(std::min(a, b), std::min(std::max(a, b), c));
  };
  std::printf(
      "statements: %zu (%zu of setup before the actors start), actors: 3, %.1f s per "
      "configuration\n",
      t->stmts.size(), t->setup, seconds);
  uint64_t failed = 0;
  std::vector<int> widths = {1};
  if (jobs > 1) widths.push_back(jobs);
  for (bool full : {false, true}) {
    std::printf("full-state checks %s:\n", full ? "after every statement" : "at the end only");
    for (int w : widths) {
      // Alternate three rounds each so that machine noise hits both alike; report the median.
      double inter[3], sequential[3];
      for (int round = 0; round < 3; round++) {
        uint64_t f_i, f_s;
        inter[round] = run_jobs(w, *t, true, full, seconds / 3, &f_i);
        sequential[round] = run_jobs(w, seq, false, full, seconds / 3, &f_s);
        failed += f_i + f_s;
      }
      std::printf("  %d thread%s:\n", w, w == 1 ? "" : "s");
      std::printf("    interleaved: %8.0f exec/s (median of 3)\n", median(inter));
      std::printf("    sequential:  %8.0f exec/s (median of 3)\n", median(sequential));
      std::printf("    ratio interleaved/sequential: %.2f\n", median(inter) / median(sequential));
    }
  }
  if (failed) report_failure(argv[1], failed);
  return failed ? 1 : 0;
}
