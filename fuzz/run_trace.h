// What every byte-driven fuzz target does with one input: decode it (every byte string is a
// trace, sim/trace/decode.h), run it with every property checked, and on a violation print
// the property, the site and the decoded text trace, then abort so libFuzzer keeps the input.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

#include "sim/kvm/kvm.h"
#include "sim/trace/decode.h"
#include "sim/trace/exec.h"
#include "sim/trace/kvm_exec.h"

namespace fuzz {

// Bug-zoo entries for the whole process (TDXSIM_BUGS), read once: a bad name is an error at
// start-up, not a crash the fuzzer would save.
inline kvm::BugSet bugs_from_env_or_die() {
  kvm::BugSet bugs = 0;
  std::string bad;
  if (!kvm::bugs_from_env(&bugs, &bad)) {
    std::fprintf(stderr, "TDXSIM_BUGS names an unknown bug-zoo entry `%s`\n", bad.c_str());
    std::exit(2);
  }
  return bugs;
}

inline void report_and_abort(const trace::Trace& t, const trace::RunResult& r) {
  const trace::Failure& f = r.failure;
  std::string out = "==tdxfuzz== property `" + f.violation.property + "` violated\n";
  out += "==tdxfuzz== site: " + f.violation.site + "\n";
  out += "==tdxfuzz== " + f.violation.detail + "\n";
  out += "==tdxfuzz== signature: " + f.violation.signature() + "\n";
  out += f.step < t.stmts.size()
             ? "==tdxfuzz== at statement " + std::to_string(f.step + 1) + " of " +
                   std::to_string(t.stmts.size()) + ": " + trace::print_stmt(t.stmts[f.step]) + "\n"
             : "==tdxfuzz== at the implicit teardown\n";
  out += "==tdxfuzz== decoded trace (save as FILE.tdx; `tdxfuzz replay FILE.tdx`):\n";
  out += trace::print(t);
  std::fputs(out.c_str(), stderr);
  std::fflush(stderr);
  std::abort();
}

// Full-state checks run at the end and at teardown only (the cheap ones after every step),
// for throughput; `tdxfuzz replay` of the decoded trace checks everything after every step,
// so it reports the same violation or an earlier one, never none.
inline int run_bytes(const uint8_t* data, size_t size, trace::Target target,
                     kvm::BugSet extra_bugs = 0) {
  static const kvm::BugSet env_bugs = bugs_from_env_or_die();
  const trace::Trace t = trace::decode(data, size, target);
  trace::RunOptions o;
  o.full_checks_every_step = false;
  trace::RunResult r;
  if (target == trace::Target::kKvm) {
    trace::KvmRunConfig cfg;
    cfg.bugs = env_bugs | extra_bugs;
    r = trace::run_kvm(t, o, cfg);
  } else {
    r = trace::run(t, o);
  }
  // Decoded traces carry no `->` expectations, so only properties can fail.
  if (!r.ok()) report_and_abort(t, r);
  return 0;
}

}  // namespace fuzz
