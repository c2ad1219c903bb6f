// The module's output encodings as the spec gives them (tdx-module.md §2.13), written out
// independently of sim/tdx so that tests compare against the spec, not against the code.
#pragma once

#include <cstdio>
#include <string>

#include "tests/tdx_fixture.h"

namespace tdx::testing {

// Fixed-width hex: failures line up digit by digit.
inline std::string Hex(uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "0x%016llx", static_cast<unsigned long long>(v));
  return b;
}

// "entry" (RCX).
inline constexpr uint64_t kFreeEntry = kSve;
inline constexpr uint64_t kNlMappedEntry = 0x7;
inline constexpr uint64_t kNlBlockedEntry = 0x0;
inline uint64_t MappedEntry(uint64_t hpa) {
  return kSve | hpa | 0xF7;
}
inline uint64_t UnmappedLeafEntry(uint64_t hpa) {
  return kSve | hpa | 0xF0;
}  // PENDING*, BLOCKED
inline uint64_t LeafEntry(uint64_t hpa, bool mapped) {
  return mapped ? MappedEntry(hpa) : UnmappedLeafEntry(hpa);
}

// "level_state" (RDX) and the public states in it.
inline constexpr uint64_t LevelState(int level, uint64_t public_state) {
  return static_cast<uint64_t>(level) | public_state << 8;
}
inline constexpr uint64_t kPubFree = 0, kPubBlocked = 1, kPubPending = 2, kPubPendingBlocked = 3,
                          kPubMapped = 4, kPubNlMapped = 0x84, kPubNlBlocked = 0x81;

inline void ExpectDetails(const Regs& r, uint64_t status, uint64_t rcx, uint64_t rdx) {
  EXPECT_STATUS(status, r.rax);
  EXPECT_EQ(Hex(rcx), Hex(r.rcx));
  EXPECT_EQ(Hex(rdx), Hex(r.rdx));
}

// The same, as a macro that names RCX and RDX in the failure message.
#define EXPECT_OUT(regs, status, xcx, xdx)                                     \
  do {                                                                         \
    const ::tdx::Regs o_ = (regs);                                             \
    EXPECT_STATUS(status, o_.rax);                                             \
    EXPECT_EQ(::tdx::testing::Hex(xcx), ::tdx::testing::Hex(o_.rcx)) << "RCX"; \
    EXPECT_EQ(::tdx::testing::Hex(xdx), ::tdx::testing::Hex(o_.rdx)) << "RDX"; \
  } while (0)

}  // namespace tdx::testing
