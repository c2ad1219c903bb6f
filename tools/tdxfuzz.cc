// The tdxfuzz command: replay text traces against the simulated stack.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "sim/kvm/kvm.h"
#include "sim/sched/scheduler.h"
#include "sim/tdx/module.h"
#include "sim/trace/decode.h"
#include "sim/trace/exec.h"
#include "sim/trace/trace.h"

namespace {

constexpr const char* kUsage =
    "usage: tdxfuzz <command> [options] [args]\n"
    "\n"
    "tdxfuzz simulates KVM's TDX private-memory stack (TDP-MMU mirror tables over a model of\n"
    "the TDX module's Secure-EPT) and replays or fuzzes operation traces against it.\n"
    "\n"
    "commands:\n"
    "  replay [-v] FILE...   run text traces; check every `-> RESULT` and every property\n"
    "                        after every step. Exit 0: all hold; 1: an expectation or a\n"
    "                        property failed (the report names the line); 2: a file could\n"
    "                        not be read or parsed (FILE:LINE:COLUMN; nothing is run).\n"
    "                        -v prints every step and every SEAMCALL with decoded status.\n"
    "  decode [--target kvm|module] FILE...\n"
    "                        print the text trace that fuzzer input bytes decode to (every\n"
    "                        byte string is a trace; the fuzz targets kvm_ops and module_ops\n"
    "                        run exactly this). Default target: kvm.\n"
    "  encode [-o OUT] TRACE write bytes that decode to the text TRACE (seed corpora); what\n"
    "                        the byte format cannot hold (expectations, `expect` lines, bug\n"
    "                        and inject options) is listed on stderr and left out. Without\n"
    "                        -o the bytes go to stdout.\n"
    "  minimize [-o OUT] FILE\n"
    "                        shrink a failing text trace to a short one with the same\n"
    "                        failure (property and site): statements, schedule rules,\n"
    "                        the setup phase, options and expectations are dropped while\n"
    "                        it still fails.\n"
    "                        Prints the result (or writes OUT); exit 1 if FILE passes.\n"
    "  ops                   list the trace operations\n"
    "  options               list the sim options (`option NAME=VALUE` in a trace)\n"
    "  points                list the yield points `schedule WHO:POINT -> ACTOR` can name\n"
    "  help, --help, -h      this text\n"
    "\n"
    "trace format: see TRACE_FORMAT.md in the repository.\n";

bool read_file(const std::string& path, std::string* out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::ostringstream s;
  s << f.rdbuf();
  *out = s.str();
  return true;
}

int replay(int argc, char** argv) {
  bool verbose = false;
  std::vector<std::string> files;
  for (int i = 0; i < argc; i++) {
    if (!std::strcmp(argv[i], "-v") || !std::strcmp(argv[i], "--verbose"))
      verbose = true;
    else if (argv[i][0] == '-' && argv[i][1]) {
      std::fprintf(stderr, "tdxfuzz replay: unknown option %s\n%s", argv[i], kUsage);
      return 2;
    } else
      files.push_back(argv[i]);
  }
  if (files.empty()) {
    std::fprintf(stderr, "tdxfuzz replay: no trace files given\n");
    return 2;
  }
  kvm::BugSet env_bugs;
  std::string bad_bug;
  if (!kvm::bugs_from_env(&env_bugs, &bad_bug)) {
    std::fprintf(
        stderr,
        "tdxfuzz: TDXSIM_BUGS names an unknown bug-zoo entry `%s`; `tdxfuzz options` lists them\n",
        bad_bug.c_str());
    return 2;
  }
  // Parse everything first: unreadable input runs nothing.
  std::vector<trace::Trace> traces;
  bool bad = false;
  for (auto& f : files) {
    std::string text;
    if (!read_file(f, &text)) {
      std::fprintf(stderr, "%s: cannot read: %s\n", f.c_str(), std::strerror(errno));
      bad = true;
      continue;
    }
    trace::ParseError err;
    auto t = trace::parse(text, &err);
    if (!t) {
      std::fprintf(stderr, "%s:%d:%d: %s\n", f.c_str(), err.line, err.column, err.message.c_str());
      bad = true;
      continue;
    }
    traces.push_back(std::move(*t));
  }
  if (bad) return 2;
  int failed = 0;
  for (size_t i = 0; i < traces.size(); i++) {
    trace::RunOptions o;
    if (verbose) {
      o.log = &std::cout;
      std::cout << "== " << files[i] << "\n";
    }
    trace::RunResult r = trace::run(traces[i], o);
    if (r.ok()) {
      std::cout << "PASS " << files[i] << " (" << r.steps << " steps)\n";
    } else {
      failed++;
      std::cout << "FAIL " << files[i] << "\n";
      std::cout << trace::format_failure(traces[i], r, files[i]);
    }
  }
  std::cout << traces.size() - failed << " passed, " << failed << " failed\n";
  return failed ? 1 : 0;
}

int decode(int argc, char** argv) {
  trace::Target target = trace::Target::kKvm;
  std::vector<std::string> files;
  for (int i = 0; i < argc; i++) {
    const std::string a = argv[i];
    if (a == "--target" || a == "-t") {
      const std::string v = i + 1 < argc ? argv[++i] : "";
      if (v == "kvm" || v == "kvm_ops")
        target = trace::Target::kKvm;
      else if (v == "module" || v == "module_ops")
        target = trace::Target::kModule;
      else {
        std::fprintf(stderr, "tdxfuzz decode: --target takes kvm or module, not `%s`\n", v.c_str());
        return 2;
      }
    } else if (a.size() > 1 && a[0] == '-') {
      std::fprintf(stderr, "tdxfuzz decode: unknown option %s\n%s", a.c_str(), kUsage);
      return 2;
    } else {
      files.push_back(a);
    }
  }
  if (files.empty()) {
    std::fprintf(stderr, "tdxfuzz decode: no input files given\n");
    return 2;
  }
  int status = 0;
  for (auto& f : files) {
    std::string bytes;
    if (!read_file(f, &bytes)) {
      std::fprintf(stderr, "%s: cannot read: %s\n", f.c_str(), std::strerror(errno));
      status = 2;
      continue;
    }
    const trace::Trace t =
        trace::decode(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), target);
    if (files.size() > 1) std::cout << "# " << f << "\n";
    std::cout << "# decoded from " << bytes.size() << " bytes (byte format "
              << trace::kByteFormatVersion << ")\n"
              << trace::print(t);
  }
  return status;
}

int encode(int argc, char** argv) {
  std::string in, out;
  for (int i = 0; i < argc; i++) {
    const std::string a = argv[i];
    if (a == "-o") {
      if (i + 1 == argc) {
        std::fprintf(stderr, "tdxfuzz encode: -o needs a file name\n");
        return 2;
      }
      out = argv[++i];
    } else if (a.size() > 1 && a[0] == '-') {
      std::fprintf(stderr, "tdxfuzz encode: unknown option %s\n%s", a.c_str(), kUsage);
      return 2;
    } else if (in.empty()) {
      in = a;
    } else {
      std::fprintf(stderr, "tdxfuzz encode: one trace at a time\n");
      return 2;
    }
  }
  if (in.empty()) {
    std::fprintf(stderr, "tdxfuzz encode: no trace file given\n");
    return 2;
  }
  std::string text;
  if (!read_file(in, &text)) {
    std::fprintf(stderr, "%s: cannot read: %s\n", in.c_str(), std::strerror(errno));
    return 2;
  }
  trace::ParseError err;
  auto t = trace::parse(text, &err);
  if (!t) {
    std::fprintf(stderr, "%s:%d:%d: %s\n", in.c_str(), err.line, err.column, err.message.c_str());
    return 2;
  }
  const trace::Encoded e = trace::encode(*t);
  if (!e.ok()) {
    std::fprintf(stderr, "%s: cannot encode: %s\n", in.c_str(), e.error.c_str());
    return 2;
  }
  for (auto& d : e.dropped) std::fprintf(stderr, "%s: left out: %s\n", in.c_str(), d.c_str());
  if (out.empty()) {
    std::cout.write(reinterpret_cast<const char*>(e.bytes.data()),
                    static_cast<std::streamsize>(e.bytes.size()));
    return std::cout ? 0 : 2;
  }
  // Write whole or not at all: a half-written seed would decode to a different trace.
  const std::string tmp = out + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(e.bytes.data()),
            static_cast<std::streamsize>(e.bytes.size()));
    if (!f.flush()) {
      std::fprintf(stderr, "%s: cannot write: %s\n", tmp.c_str(), std::strerror(errno));
      std::remove(tmp.c_str());
      return 2;
    }
  }
  if (std::rename(tmp.c_str(), out.c_str()) != 0) {
    std::fprintf(stderr, "%s: cannot write: %s\n", out.c_str(), std::strerror(errno));
    std::remove(tmp.c_str());
    return 2;
  }
  return 0;
}

// The failure a minimized trace must keep: a property by its signature, else an expectation
// on the statement's text.
std::string failure_key(const trace::Trace& t, const trace::RunResult& r) {
  if (r.ok()) return "";
  if (r.failure.kind == trace::Failure::kProperty) return r.failure.violation.signature();
  return "expectation " + (r.failure.step < t.stmts.size()
                               ? std::string(trace::op_info(t.stmts[r.failure.step].op).name)
                               : std::string("teardown"));
}

int minimize(int argc, char** argv) {
  std::string in, out;
  for (int i = 0; i < argc; i++) {
    const std::string a = argv[i];
    if (a == "-o" && i + 1 < argc)
      out = argv[++i];
    else if (a.size() > 1 && a[0] == '-') {
      std::fprintf(stderr, "tdxfuzz minimize: unknown option %s\n%s", a.c_str(), kUsage);
      return 2;
    } else
      in = a;
  }
  std::string text;
  if (in.empty() || !read_file(in, &text)) {
    std::fprintf(stderr, "tdxfuzz minimize: cannot read `%s`\n", in.c_str());
    return 2;
  }
  trace::ParseError err;
  auto parsed = trace::parse(text, &err);
  if (!parsed) {
    std::fprintf(stderr, "%s:%d:%d: %s\n", in.c_str(), err.line, err.column, err.message.c_str());
    return 2;
  }
  trace::Trace best = *parsed;
  const std::string key = failure_key(best, trace::run(best));
  if (key.empty()) {
    std::fprintf(stderr, "%s passes: nothing to minimize\n", in.c_str());
    return 1;
  }
  std::fprintf(stderr, "minimizing %s: keeps failing with `%s`\n", in.c_str(), key.c_str());
  // A candidate must also print as itself (what is printed is what must fail).
  auto still_fails = [&](const trace::Trace& t) {
    trace::ParseError e;
    const auto reparsed = trace::parse(trace::print(t), &e);
    return reparsed && *reparsed == t && failure_key(t, trace::run(t)) == key;
  };
  // Delta debugging over a list: drop chunks, halving the chunk size when nothing can go.
  auto shrink = [&](auto get, auto set) {
    for (size_t chunk = std::max<size_t>(get(best).size() / 2, 1); chunk >= 1; chunk /= 2) {
      for (size_t at = 0; at < get(best).size();) {
        trace::Trace cand = best;
        auto v = get(cand);
        const size_t end = std::min(v.size(), at + chunk);
        v.erase(v.begin() + at, v.begin() + end);
        set(cand, v, at, end);
        if (still_fails(cand))
          best = cand;
        else
          at += chunk;
      }
      if (chunk == 1) break;
    }
  };
  for (int round = 0; round < 3; round++) {
    const size_t before = best.stmts.size() + best.schedule.rules.size() + best.options.size();
    // Dropping statements [from, to) keeps `schedule setup N` on the same leading lines.
    shrink([](const trace::Trace& t) { return t.stmts; },
           [](trace::Trace& t, const std::vector<trace::Stmt>& v, size_t from, size_t to) {
             t.stmts = v;
             t.setup -= std::min(t.setup, to) - std::min(t.setup, from);
           });
    shrink([](const trace::Trace& t) { return t.schedule.rules; },
           [](trace::Trace& t, const std::vector<sched::SwitchRule>& v, size_t, size_t) {
             t.schedule.rules = v;
             if (v.empty()) t.schedule = {}, t.setup = 0;  // no rule left: a sequential trace
           });
    shrink([](const trace::Trace& t) { return t.options; },
           [](trace::Trace& t, const auto& v, size_t, size_t) { t.options = v; });
    if (best.stmts.size() + best.schedule.rules.size() + best.options.size() == before) break;
  }
  // Simplify what is left: no expectations, no setup phase.
  for (size_t i = 0; i < best.stmts.size(); i++) {
    trace::Trace cand = best;
    cand.stmts[i].expect = {};
    if (failure_key(cand, trace::run(cand)) == key) best = cand;
  }
  if (best.setup > 0) {
    trace::Trace cand = best;
    cand.setup = 0;
    if (still_fails(cand)) best = cand;
  }
  const std::string result =
      "# minimized by tdxfuzz from " + in + ": fails with `" + key + "`\n" + trace::print(best);
  if (out.empty()) {
    std::cout << result;
  } else {
    std::ofstream f(out);
    f << result;
    if (!f.flush()) {
      std::fprintf(stderr, "%s: cannot write\n", out.c_str());
      return 2;
    }
  }
  std::fprintf(stderr, "minimized to %zu statements\n", best.stmts.size());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  std::string cmd = argv[1];
  if (cmd == "help" || cmd == "--help" || cmd == "-h") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (cmd == "replay") return replay(argc - 2, argv + 2);
  if (cmd == "decode") return decode(argc - 2, argv + 2);
  if (cmd == "minimize") return minimize(argc - 2, argv + 2);
  if (cmd == "encode") return encode(argc - 2, argv + 2);
  if (cmd == "ops") {
    std::cout << trace::ops_help();
    return 0;
  }
  if (cmd == "points") {
    std::cout << sched::yield_points_help();
    return 0;
  }
  if (cmd == "options") {
    std::cout << "module options:\n"
              << tdx::Options::help() << "KVM options (KVM traces):\n"
              << kvm::Options::help();
    return 0;
  }
  std::fprintf(stderr, "tdxfuzz: unknown command `%s`\n\n%s", cmd.c_str(), kUsage);
  return 2;
}
