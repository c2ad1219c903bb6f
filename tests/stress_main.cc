// Free-running stress: the same KVM trace, its actors on real threads, many times. Built with
// the tsan preset this is the ThreadSanitizer job: it must be clean, and with
// `--bug plain_spte_store_read_lock` ThreadSanitizer must report the race.
// Usage: stress [--runs N] [--bug NAME] [--print]   (--print writes the trace and exits)
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "sim/trace/exec.h"
#include "sim/trace/trace.h"

namespace {

// Three vCPUs fault, accept, store and load in ranges of their own and in one range they
// share (their faults race on the same page-table entries and SPTEs); the host splits their
// pages, pre-faults, and punches holes in a range nobody accepted. `finalize` runs before the
// threads start (`schedule setup 1`; free-running ignores the rest of the schedule, which makes
// the printed trace replay interleaved): otherwise the vCPUs' lines would often run first and
// fail with EINVAL.
std::string stress_trace(const std::string& bug) {
  std::string t = "vcpus 3\nmemory 4096\n";
  if (!bug.empty()) t += "option bug=" + bug + "\n";
  t += "schedule random 1\nschedule setup 1\nfinalize\n";
  for (int v = 0; v < 3; v++) {
    const unsigned base = 0x200 * (v + 1);
    char line[128];
    std::snprintf(line, sizeof line, "@vcpu%d accept %d 0x%x 2M\n", v, v, base);
    t += line;
    for (unsigned i = 0; i < 6; i++) {
      std::snprintf(line, sizeof line, "@vcpu%d write %d 0x%x 0x%x\n", v, v, base + 0x40 * i + v,
                    0x1000 * v + i);
      t += line;
      // The shared range: each vCPU its own pages, all in one 2M range.
      std::snprintf(line, sizeof line, "@vcpu%d accept %d 0x%x 4K\n", v, v, 0x800 + 3 * i + v);
      t += line;
      std::snprintf(line, sizeof line, "@vcpu%d write %d 0x%x 0x%x\n", v, v, 0x800 + 3 * i + v, i);
      t += line;
      std::snprintf(line, sizeof line, "@vcpu%d read %d 0x%x\n", v, v, base + 0x40 * i + v);
      t += line;
    }
  }
  const char* host[] = {"split 0x210", "map 0xa00 2M", "split 0x430",  "zap 0xa10 8",
                        "split 0x650", "map 0xc00 4K", "zap 0xa00 16", "map 0xc01 4K"};
  for (const char* h : host) t += std::string("@host0 ") + h + "\n";
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 50;
  std::string bug;
  bool print = false;
  for (int i = 1; i < argc; i++) {
    if (!std::strcmp(argv[i], "--runs") && i + 1 < argc)
      runs = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--bug") && i + 1 < argc)
      bug = argv[++i];
    else if (!std::strcmp(argv[i], "--print"))
      print = true;
    else {
      std::fprintf(stderr, "usage: stress [--runs N] [--bug NAME]\n");
      return 2;
    }
  }
  trace::ParseError err;
  auto t = trace::parse(stress_trace(bug), &err);
  if (!t) {
    std::fprintf(stderr, "stress trace:%d:%d: %s\n", err.line, err.column, err.message.c_str());
    return 2;
  }
  if (print) {
    std::fputs(stress_trace(bug).c_str(), stdout);
    return 0;
  }
  trace::RunOptions o;
  o.free_running = true;
  int failed = 0;
  for (int i = 0; i < runs; i++) {
    trace::RunResult r = trace::run(*t, o);
    if (!r.ok()) {
      if (failed++ < 3) std::printf("%s", trace::format_failure(*t, r, "stress").c_str());
    }
  }
  std::printf("%d passed, %d failed\n", runs - failed, failed);
  return failed ? 1 : 0;
}
