// The total byte decoder: every byte string is a valid trace (TRACE_FORMAT.md, "Fuzzer
// bytes"). libFuzzer's inputs go through it; `tdxfuzz decode` prints what an input means and
// `tdxfuzz encode` turns a text trace into bytes that decode to it (seed corpora).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "sim/trace/trace.h"

namespace trace {

// Version of the byte format; bump it when the meaning of existing bytes changes (saved crash
// inputs and generated seeds then need `tdxfuzz encode` again).
inline constexpr int kByteFormatVersion = 1;

// Never fails and never rejects: short inputs give short traces. At most kMaxDecodedOps
// statements are decoded (the fuzzer's max_len keeps inputs well below that anyway).
inline constexpr size_t kMaxDecodedOps = 256;
Trace decode(const uint8_t* data, size_t size, Target target);

struct Encoded {
  std::vector<uint8_t> bytes;
  // What the byte format cannot hold and was left out or normalised (`-> RESULT`
  // expectations, `expect` lines, bug-zoo and injection options, ...). decode(bytes) equals
  // the trace without these.
  std::vector<std::string> dropped;
  std::string error;  // non-empty: the trace cannot be encoded at all (why)
  bool ok() const { return error.empty(); }
};
Encoded encode(const Trace& t);

// The operations a decoder of `target` can produce (swarm table order).
const std::vector<Op>& decodable_ops(Target target);

}  // namespace trace
