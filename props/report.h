// How a failing property reports its shrunk counterexample: the whole trace in TRACE_FORMAT
// text (header, options, statements, schedule), between two marker lines, ready to save as
// corpus/regressions/NAME.tdx and replay with `tdxfuzz replay`. RapidCheck prints it (as part
// of the RC_LOG of the shrunk case) above its "Falsifiable after ..." message, and the
// RC_PARAMS="reproduce=..." string at exit. scripts/bugzoo-table reads the markers.
#pragma once

#include <rapidcheck.h>

#include <string>

#include "sim/trace/exec.h"
#include "sim/trace/trace.h"

namespace props {

inline constexpr const char* kTraceBegin = "---- counterexample trace (save as corpus/regressions/";
inline constexpr const char* kTraceEnd = "---- end of counterexample trace ----";

// The text of `t` between the markers, with `why` as comment lines at its top.
inline std::string saveable_trace(const trace::Trace& t, const std::string& why) {
  std::string out = std::string(kTraceBegin) + "NAME.tdx) ----\n";
  size_t pos = 0;
  while (pos < why.size()) {
    size_t nl = why.find('\n', pos);
    if (nl == std::string::npos) nl = why.size();
    out += "# " + why.substr(pos, nl - pos) + "\n";
    pos = nl + 1;
  }
  out += trace::print(t);
  out += std::string(kTraceEnd) + "\n";
  return out;
}

// The failure report (property, site, detail; the statements with the failing one marked)
// followed by the saveable trace.
inline std::string report(const trace::Trace& t, const trace::RunResult& r,
                          const std::string& origin) {
  const std::string f = trace::format_failure(t, r, origin);
  std::string why = f.substr(0, f.find("\ntrace:\n"));
  return f + saveable_trace(t, why);
}

// Runs a trace; a failure logs the report and fails the property.
inline void run_ok(const trace::Trace& t, const std::string& origin,
                   const trace::RunOptions& opts = {}) {
  const trace::RunResult r = trace::run(t, opts);
  if (!r.ok()) {
    RC_LOG() << report(t, r, origin);
    RC_FAIL("the trace failed");
  }
}

}  // namespace props
