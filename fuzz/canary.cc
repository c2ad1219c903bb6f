// The canary: kvm_ops with the bug-zoo entry skip_track_before_demote always on, so any input
// that splits an accepted 2M page trips `kvm-bug-on`. It must fail within seconds; if it stops
// failing, the pipeline (decoder, coverage, property reporting, crash saving) is broken.
#include "fuzz/run_trace.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return fuzz::run_bytes(data, size, trace::Target::kKvm,
                         kvm::bug_bit(kvm::Bug::skip_track_before_demote));
}
