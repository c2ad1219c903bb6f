// libFuzzer target: bytes decode to a raw module trace (SEAMCALLs, guest ACCEPTs, interrupts).
// Any status is legal; the module's own invariants and the host page ledger must hold.
#include "fuzz/run_trace.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return fuzz::run_bytes(data, size, trace::Target::kModule);
}
