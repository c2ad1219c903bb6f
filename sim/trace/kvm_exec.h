// Running KVM traces.
#pragma once

#include "sim/kvm/kvm.h"
#include "sim/trace/exec.h"

namespace trace {

struct KvmRunConfig {
  kvm::BugSet bugs = 0;  // bug-zoo entries from TDXSIM_BUGS, added to the trace's own
};

RunResult run_kvm(const Trace& t, const RunOptions& o, const KvmRunConfig& cfg);

}  // namespace trace
