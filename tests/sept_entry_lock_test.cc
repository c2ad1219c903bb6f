// The S-EPT entry-lock helpers (sim/tdx/call.h): sept_write_unlock, which ACCEPT uses to finish,
// must leave exactly what sept_write_locked followed by sept_lock_release leaves (TDHP kept,
// TDEL cleared, the new value's own lock bits ignored), on the plain and the atomic path.
#include "sim/tdx/call.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace tdx {
namespace {

class SeptEntryLock : public ::testing::TestWithParam<bool> {};

TEST_P(SeptEntryLock, WriteUnlockIsWriteThenRelease) {
  host::SingleThreadScope scope(GetParam());
  const uint64_t olds[] = {0x123456000ull | 5, 0x123456000ull | 5 | kTdel,
                           0x123456000ull | 5 | kTdel | kTdhp, 0x200000ull | 3 | kTdhp};
  const uint64_t news[] = {0x777000ull | 3, 0x777000ull | 3 | kTdel | kTdhp,
                           0x1ff000ull | 5 | kTdhp, 0};
  for (uint64_t o : olds) {
    for (uint64_t n : news) {
      std::atomic<uint64_t> a{o}, b{o};
      sept_write_locked(a, SeptEntry{n});
      sept_lock_release(a);
      sept_write_unlock(b, SeptEntry{n});
      EXPECT_EQ(a.load(), b.load()) << std::hex << o << " " << n;
    }
  }
}

TEST_P(SeptEntryLock, GuestAcquireBacksOffForHostPriority) {
  host::SingleThreadScope scope(GetParam());
  SeptEntry seen;
  std::atomic<uint64_t> free_entry{0x5000ull | 5};
  EXPECT_EQ(GuestLock::kOk, sept_lock_acquire_guest(free_entry, &seen));
  EXPECT_EQ(0x5000ull | 5 | kTdel, free_entry.load());
  EXPECT_EQ(GuestLock::kBusy, sept_lock_acquire_guest(free_entry, &seen));
  std::atomic<uint64_t> prio{0x5000ull | 5 | kTdhp};
  EXPECT_EQ(GuestLock::kBusyHostPriority, sept_lock_acquire_guest(prio, &seen));
  EXPECT_EQ(0x5000ull | 5 | kTdhp, prio.load());  // released again, priority still asked for
}

INSTANTIATE_TEST_SUITE_P(PlainAndAtomic, SeptEntryLock, ::testing::Bool());

}  // namespace
}  // namespace tdx
