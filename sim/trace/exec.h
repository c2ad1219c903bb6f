// The executor: applies a trace to a fresh stack, checks every `->` expectation and every
// property after every step, and reports the first failure.
#pragma once

#include <ostream>
#include <string>

#include "sim/check/violation.h"
#include "sim/tdx/module.h"
#include "sim/trace/trace.h"

namespace trace {

struct RunOptions {
  std::ostream* log = nullptr;  // -v: every step and every SEAMCALL with decoded outputs
  // Full-state checks (mirror-sept, page-owner, the module's tree walk, ...) after every
  // statement (replay, tests), or only at the end and at teardown (fuzzing throughput). The
  // cheap checks (KVM_BUG_ON, lockdep, liveness, guest data at each load, stale TLB at each
  // use) always run at every step.
  bool full_checks_every_step = true;
  // Free-running: every actor on its own thread (for ThreadSanitizer), schedule lines ignored
  // except `schedule setup N` (those lines run first, on this thread). Statements are not checked
  // against expectations or the guest-data model (loads and stores on real threads cannot be
  // linearized); every other property is checked when all threads have finished.
  bool free_running = false;
};

struct Failure {
  enum Kind : uint8_t { kNone, kExpectation, kProperty } kind = kNone;
  size_t step = 0;               // index into Trace::stmts; stmts.size() for the implicit teardown
  int line = 0;                  // 0 for the implicit teardown
  std::string expected, actual;  // kExpectation
  check::Violation violation;    // kProperty
};

struct RunResult {
  bool ok() const { return failure.kind == Failure::kNone; }
  Failure failure;
  size_t steps = 0;  // statements executed
};

RunResult run(const Trace& t, const RunOptions& opts = {});

// `option inject=...` lines: the module returns the given status at the given call.
inline void apply_injections(const Trace& t, tdx::Module& m) {
  for (auto& [name, value] : t.options) {
    uint32_t leaf, nth;
    uint64_t status;
    if (name == "inject" && parse_injection(value, &leaf, &status, &nth).empty())
      m.inject(static_cast<tdx::Leaf>(leaf), status, nth);
  }
}

// A report for a person: what failed, where, and the trace with the failing line marked.
std::string format_failure(const Trace& t, const RunResult& r, const std::string& file);

}  // namespace trace
