// host/rmw.h: the plain load-and-store path of a single-thread run must give exactly what the
// atomic instructions give (returned old value, CAS failure reporting the current value).
#include "sim/host/rmw.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace host {
namespace {

class Rmw : public ::testing::TestWithParam<bool> {};

TEST_P(Rmw, SameResultsOnBothPaths) {
  SingleThreadScope scope(GetParam());
  ASSERT_EQ(GetParam(), t_single_thread);
  std::atomic<uint64_t> a{5};
  EXPECT_EQ(5u, rmw_add(a, uint64_t{3}));
  EXPECT_EQ(8u, rmw_sub(a, uint64_t{10}));
  EXPECT_EQ(~uint64_t{1}, a.load());  // wraps as fetch_sub does
  EXPECT_EQ(~uint64_t{1}, rmw_and(a, uint64_t{0xf0}));
  EXPECT_EQ(0xf0u, rmw_or(a, uint64_t{0x0f}));
  EXPECT_EQ(0xffu, rmw_exchange(a, uint64_t{7}));
  uint64_t expected = 6;
  EXPECT_FALSE(rmw_cas(a, expected, uint64_t{9}));
  EXPECT_EQ(7u, expected);  // the current value
  EXPECT_EQ(7u, a.load());
  EXPECT_TRUE(rmw_cas(a, expected, uint64_t{9}));
  EXPECT_EQ(9u, a.load());
  std::atomic<int64_t> s{0};
  rmw_add(s, int64_t{-1});
  EXPECT_EQ(-1, s.load());
}

TEST(RmwScope, RestoresTheOuterSetting) {
  ASSERT_FALSE(t_single_thread);  // tests, like free-running mode, default to atomics
  {
    SingleThreadScope outer(true);
    {
      SingleThreadScope inner(false);
      EXPECT_FALSE(t_single_thread);
    }
    EXPECT_TRUE(t_single_thread);
  }
  EXPECT_FALSE(t_single_thread);
}

INSTANTIATE_TEST_SUITE_P(Paths, Rmw, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "SingleThread" : "Atomic"; });

}  // namespace
}  // namespace host
