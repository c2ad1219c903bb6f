// The -v log of SEAMCALLs: one line per call with decoded status and outputs, runs of the same
// call with the same status (RECLAIM of 512 frames, WBINVD of a 2M page) folded into a count.
#pragma once

#include <cstdio>
#include <ostream>
#include <string>

#include "sim/host/hex.h"
#include "sim/tdx/module.h"

namespace trace {

class CallLog {
 public:
  explicit CallLog(std::ostream* os) : os_(os) {}
  ~CallLog() { flush(); }

  // Inline: every SEAMCALL and TDCALL reaches here, and most runs have no log.
  void call(const char* name, const tdx::Regs& in, const tdx::Regs& out) {
    if (os_) log_call(name, in, out);
  }
  void note(const std::string& text) {
    if (!os_) return;
    flush();
    *os_ << "    " << text << "\n";
  }
  void flush() {
    if (os_ && repeats_) *os_ << "    ... and " << repeats_ << " more like it\n";
    repeats_ = 0;
    last_.clear();
  }

 private:
  [[gnu::noinline]] void log_call(const char* name, const tdx::Regs& in, const tdx::Regs& out) {
    std::string key = std::string(name) + " " + tdx::status_name(out.rax);
    if (key == last_) {
      repeats_++;
      return;
    }
    flush();
    last_ = key;
    if (out.rax == ~0ull) {  // a guest TDCALL that was interrupted and will re-execute
      *os_ << "    " << name << " rcx=" << hex(in.rcx)
           << " -> interrupted (progress saved; re-executes)\n";
      return;
    }
    *os_ << "    " << name << " rcx=" << hex(in.rcx) << " rdx=" << hex(in.rdx)
         << " r8=" << hex(in.r8) << " -> " << tdx::status_name(out.rax) << " rcx=" << hex(out.rcx)
         << " rdx=" << hex(out.rdx) << " r8=" << hex(out.r8) << "\n";
  }
  static std::string hex(uint64_t v) { return host::hex(v); }
  std::ostream* os_;
  std::string last_;
  uint64_t repeats_ = 0;
};

}  // namespace trace
