// Host page ledger (sim/host/pages.h): allocation shape, exhaustion, and the ownership
// violations it records instead of aborting.
#include "sim/host/pages.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "sim/host/hex.h"

namespace host {
namespace {

constexpr uint64_t kBase = 0x100000;  // 1G-aligned, like the module fixture

bool has_violation(const HostPages& h, const std::string& needle) {
  for (const auto& v : h.violations())
    if (v.find(needle) != std::string::npos) return true;
  return false;
}

TEST(HostPages, TwoMegAllocationIsAlignedAndContiguousFromTheBottom) {
  HostPages h(kBase, 4 * kPagesPer2M);
  uint64_t a, b;
  ASSERT_TRUE(h.alloc(9, Use::kModule, &a));
  ASSERT_TRUE(h.alloc(9, Use::kModule, &b));
  EXPECT_EQ(0u, a % kPagesPer2M);
  EXPECT_EQ(0u, b % kPagesPer2M);
  EXPECT_EQ(kBase, a);  // the lowest 2M blocks serve 2M requests
  EXPECT_EQ(kBase + kPagesPer2M, b);
  for (uint64_t i = 0; i < kPagesPer2M; i++) EXPECT_EQ(Use::kModule, h.use(a + i));
  EXPECT_EQ(2 * kPagesPer2M, h.in_use());
  EXPECT_TRUE(h.violations().empty());
}

TEST(HostPages, FourKAllocationComesFromTheTopWithJunkContent) {
  HostPages h(kBase, 2 * kPagesPer2M);
  uint64_t p;
  ASSERT_TRUE(h.alloc(0, Use::kHost, &p));
  EXPECT_EQ(kBase + 2 * kPagesPer2M - 1, p);
  EXPECT_EQ(Use::kHost, h.use(p));
  EXPECT_EQ(HostPages::junk(p), h.content(p));
  EXPECT_EQ(1u, h.in_use());
}

TEST(HostPages, ReallocatedFrameGetsFreshJunk) {
  HostPages h(kBase, kPagesPer2M);
  uint64_t p, q;
  ASSERT_TRUE(h.alloc(0, Use::kHost, &p));
  h.content(p) = 0;
  h.free(p, 0);
  ASSERT_TRUE(h.alloc(0, Use::kHost, &q));
  EXPECT_EQ(p, q);
  EXPECT_EQ(HostPages::junk(q), h.content(q));  // a missing zeroing must stay visible
}

TEST(HostPages, TwoMegAllocationSkipsBlocksHolding4KPages) {
  HostPages h(kBase, 2 * kPagesPer2M);
  uint64_t p, q, big;
  ASSERT_TRUE(h.alloc(0, Use::kHost, &p));      // top block
  ASSERT_TRUE(h.alloc(9, Use::kModule, &big));  // bottom block
  EXPECT_EQ(kBase, big);
  EXPECT_FALSE(h.alloc(9, Use::kModule, &q));  // the top block is partly used
  EXPECT_TRUE(h.alloc(0, Use::kHost, &q));     // but 4K still fits there
  EXPECT_TRUE(h.violations().empty());
}

TEST(HostPages, AllocationExhaustion) {
  HostPages h(kBase, kPagesPer2M);
  uint64_t p;
  for (uint64_t i = 0; i < kPagesPer2M; i++) ASSERT_TRUE(h.alloc(0, Use::kHost, &p)) << i;
  EXPECT_EQ(kPagesPer2M, h.in_use());
  EXPECT_FALSE(h.alloc(0, Use::kHost, &p));
  EXPECT_FALSE(h.alloc(9, Use::kHost, &p));
  h.free(kBase + 7, 0);
  ASSERT_TRUE(h.alloc(0, Use::kHost, &p));
  EXPECT_EQ(kBase + 7, p);
  EXPECT_TRUE(h.violations().empty());
}

TEST(HostPages, TwoMegExhaustionAndReuseAfterFree) {
  HostPages h(kBase, 2 * kPagesPer2M);
  uint64_t a, b, c;
  ASSERT_TRUE(h.alloc(9, Use::kHost, &a));
  ASSERT_TRUE(h.alloc(9, Use::kHost, &b));
  EXPECT_FALSE(h.alloc(9, Use::kHost, &c));
  EXPECT_FALSE(h.alloc(0, Use::kHost, &c));
  h.free(a, 9);
  ASSERT_TRUE(h.alloc(9, Use::kHost, &c));
  EXPECT_EQ(a, c);
  EXPECT_TRUE(h.violations().empty());
}

TEST(HostPages, DoubleFreeIsAViolation) {
  HostPages h(kBase, kPagesPer2M);
  uint64_t p;
  ASSERT_TRUE(h.alloc(0, Use::kHost, &p));
  h.free(p, 0);
  EXPECT_TRUE(h.violations().empty());
  h.free(p, 0);
  ASSERT_EQ(1u, h.violations().size());
  EXPECT_TRUE(has_violation(h, "double free")) << h.violations()[0];
  EXPECT_EQ(0u, h.in_use());  // the ledger is not corrupted by the second free
}

TEST(HostPages, FreeWhileModuleOwnsIsAViolationAndKeepsThePage) {
  HostPages h(kBase, kPagesPer2M);
  uint64_t p;
  ASSERT_TRUE(h.alloc(0, Use::kModule, &p));
  h.free(p, 0);
  ASSERT_EQ(1u, h.violations().size());
  EXPECT_TRUE(has_violation(h, "while the TDX module owns it")) << h.violations()[0];
  EXPECT_EQ(Use::kModule, h.use(p));
  EXPECT_EQ(1u, h.in_use());
}

TEST(HostPages, FreeWithoutWbinvdIsAViolationButFreesThePage) {
  HostPages h(kBase, kPagesPer2M);
  uint64_t p;
  ASSERT_TRUE(h.alloc(0, Use::kModule, &p));
  h.transfer(p, 0, Use::kModule, Use::kReturned, "remove");
  h.set_needs_wbinvd(p, true);
  h.free(p, 0);
  ASSERT_EQ(1u, h.violations().size());
  EXPECT_TRUE(has_violation(h, "without TDH.PHYMEM.PAGE.WBINVD")) << h.violations()[0];
  EXPECT_EQ(Use::kFree, h.use(p));
  EXPECT_FALSE(h.needs_wbinvd(p));
}

TEST(HostPages, FreeAfterWbinvdIsClean) {
  HostPages h(kBase, kPagesPer2M);
  uint64_t p;
  ASSERT_TRUE(h.alloc(0, Use::kModule, &p));
  h.transfer(p, 0, Use::kModule, Use::kReturned, "remove");
  h.set_needs_wbinvd(p, true);
  h.set_needs_wbinvd(p, false);  // what TDH.PHYMEM.PAGE.WBINVD does
  h.free(p, 0);
  EXPECT_TRUE(h.violations().empty());
  EXPECT_EQ(Use::kFree, h.use(p));
}

TEST(HostPages, TwoMegFreeReportsEachBadFrame) {
  HostPages h(kBase, kPagesPer2M);
  uint64_t p;
  ASSERT_TRUE(h.alloc(9, Use::kHost, &p));
  h.set_needs_wbinvd(p + 3, true);
  h.set_needs_wbinvd(p + 100, true);
  h.free(p, 9);
  EXPECT_EQ(2u, h.violations().size());
  EXPECT_EQ(0u, h.in_use());
}

TEST(HostPages, TransferFromTheWrongOwnerIsAViolationAndChangesNothing) {
  HostPages h(kBase, kPagesPer2M);
  uint64_t p;
  ASSERT_TRUE(h.alloc(0, Use::kHost, &p));
  h.transfer(p, 0, Use::kModule, Use::kReturned, "page.remove");
  ASSERT_EQ(1u, h.violations().size());
  EXPECT_TRUE(has_violation(h, "page.remove")) << h.violations()[0];
  EXPECT_TRUE(has_violation(h, "is host, expected module")) << h.violations()[0];
  EXPECT_EQ(Use::kHost, h.use(p));
}

TEST(HostPages, TransferFromTheRightOwnerMovesThePage) {
  HostPages h(kBase, kPagesPer2M);
  uint64_t p;
  ASSERT_TRUE(h.alloc(9, Use::kHost, &p));
  h.transfer(p, 9, Use::kHost, Use::kModule, "aug");
  EXPECT_TRUE(h.violations().empty());
  for (uint64_t i = 0; i < kPagesPer2M; i++) EXPECT_EQ(Use::kModule, h.use(p + i));
}

TEST(HostPages, FreeAndTransferOutsideHostMemoryAreViolations) {
  HostPages h(kBase, kPagesPer2M);
  h.free(kBase + kPagesPer2M, 0);
  h.transfer(kBase - 1, 0, Use::kHost, Use::kModule, "aug");
  ASSERT_EQ(2u, h.violations().size());
  EXPECT_TRUE(has_violation(h, "outside host memory"));
  EXPECT_EQ(0u, h.in_use());
}

// The one-lookup paths give what the frame-at-a-time ones give: transfer_and_zero as
// transfer + store_content, free_frames as free of each frame, violations included.
TEST(HostPages, FastPathsMatchTheFrameAtATimeOnes) {
  auto setup = [](HostPages& h, std::vector<uint64_t>* pfns) {
    for (int i = 0; i < 6; i++) {
      uint64_t p;
      ASSERT_TRUE(h.alloc(0, Use::kHost, &p));
      pfns->push_back(p);
    }
    h.transfer((*pfns)[0], 0, Use::kHost, Use::kModule, "to module");
    h.transfer((*pfns)[1], 0, Use::kHost, Use::kModule, "to module");
    h.set_needs_wbinvd((*pfns)[2], true);
    h.store_content((*pfns)[0], 7);
    h.store_content((*pfns)[3], 9);
  };
  HostPages a(kBase, 2048), b(kBase, 2048);
  std::vector<uint64_t> pa, pb;
  setup(a, &pa);
  setup(b, &pb);
  ASSERT_EQ(pa, pb);
  // Frame 0 is the module's (fine); frame 3 is the host's (a violation, still zeroed).
  for (int f : {0, 3}) {
    a.transfer(pa[f], 0, Use::kModule, Use::kHost, "reclaimed");
    a.store_content(pa[f], 0);
    b.transfer_and_zero(pb[f], Use::kModule, Use::kHost, "reclaimed");
  }
  // Frees: a module-owned frame, a dirty one, a double free, one outside the pool, fine ones.
  const std::vector<uint64_t> frees = {pa[1], pa[2], pa[4], pa[4], kBase + 4096, pa[5], pa[0]};
  for (uint64_t p : frees) a.free(p, 0);
  b.free_frames(frees.data(), frees.size());
  EXPECT_EQ(a.violations(), b.violations());
  EXPECT_EQ(a.violations().size(), 5u);
  EXPECT_EQ(a.in_use(), b.in_use());
  for (uint64_t p : pa) {
    EXPECT_EQ(a.use(p), b.use(p));
    EXPECT_EQ(a.needs_wbinvd(p), b.needs_wbinvd(p));
    EXPECT_EQ(std::as_const(a).content(p), std::as_const(b).content(p));
  }
}

}  // namespace
}  // namespace host

// host::hex is hand-rolled for speed; it must print exactly what printf's "0x%llx" does.
TEST(Hex, MatchesPrintf) {
  std::vector<uint64_t> values = {0, 1, 0xf, 0x10, 0x1f, 0xabcdef, 0x8000000000000000ull, ~0ull};
  for (uint64_t v = 1; v; v <<= 3) values.push_back(v * 0x9e3779b97f4a7c15ull), values.push_back(v);
  for (uint64_t v : values) {
    char want[24];
    std::snprintf(want, sizeof want, "0x%llx", static_cast<unsigned long long>(v));
    EXPECT_EQ(host::hex(v), want);
  }
}
