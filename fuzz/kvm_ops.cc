// libFuzzer target: bytes decode to a KVM trace (sequential, or interleaved under a decoded
// schedule) run on the whole stack with every property checked. TDXSIM_BUGS=NAME switches a
// bug-zoo entry on for time-to-detection runs (bench/detect).
#include "fuzz/run_trace.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return fuzz::run_bytes(data, size, trace::Target::kKvm);
}
