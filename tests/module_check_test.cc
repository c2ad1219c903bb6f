// The `module` property bites: each test breaks one invariant on purpose and expects the
// check to name it; a clean state (with a vCPU in guest mode) reports nothing.
#include <gtest/gtest.h>

#include "sim/check/module_check.h"
#include "sim/host/hex.h"
#include "tests/tdx_fixture.h"

namespace tdx::testing {
namespace {

class ModuleCheck : public TdxTest {
 protected:
  void SetUp() override {
    map_tables(0x200000, kLevel2M);
    map_tables(0x400000, kLevel4K);
    ASSERT_STATUS(raw(Status::SUCCESS), aug(0x200000, kLevel2M));
    ASSERT_STATUS(raw(Status::SUCCESS), aug(0x400000, kLevel4K));
    ASSERT_STATUS(raw(Status::SUCCESS), finalize());
    ASSERT_STATUS(raw(Status::SUCCESS), enter(0));
  }
  check::Violations run_check(bool quiescent = true) {
    check::Violations v;
    check::check_module(m, quiescent, &ledger_seen, &v);
    return v;
  }
  bool has(const check::Violations& v, const std::string& site) {
    for (auto& x : v)
      if (x.site == site) return true;
    return false;
  }
  std::string dump(const check::Violations& v) {
    std::string s;
    for (auto& x : v) s += x.signature() + ": " + x.detail + "\n";
    return s;
  }
  size_t ledger_seen = 0;
};

TEST_F(ModuleCheck, CleanStateHasNoViolations) {
  auto v = run_check();
  EXPECT_TRUE(v.empty()) << dump(v);
}

TEST_F(ModuleCheck, ChildCountDrift) {
  td().chldcnt += 1;
  auto v = run_check();
  EXPECT_TRUE(has(v, "chldcnt")) << dump(v);
}

TEST_F(ModuleCheck, TreeLockLeftHeld) {
  ASSERT_TRUE(td().sept_lock.try_shared());
  EXPECT_TRUE(has(run_check(), "lock-held"));
  EXPECT_FALSE(has(run_check(/*quiescent=*/false), "lock-held"));  // fine mid-call
  td().sept_lock.release_shared();
}

TEST_F(ModuleCheck, EntryLockLeftHeld) {
  m.walk(td(), 0x200000, kLevel2M).slot->fetch_or(kTdel);
  EXPECT_TRUE(has(run_check(), "entry-lock-held"));
}

TEST_F(ModuleCheck, HostPriorityBitAloneIsNotAViolation) {
  // TDHP is sticky by design (tdx-module.md §8.3).
  m.walk(td(), 0x200000, kLevel2M).slot->fetch_or(kTdhp);
  auto v = run_check();
  EXPECT_TRUE(v.empty()) << dump(v);
}

TEST_F(ModuleCheck, PamtDisagreesWithLeaf) {
  const uint64_t hpa = entry(0x200000, kLevel2M).hpa(kLevel2M);
  m.pamt_2m(hpa >> 12).type = PageType::NDA;
  m.pamt_4k(hpa >> 12).type = PageType::REG;  // as if the PAMT were still split
  m.pamt_4k(hpa >> 12).owner = tdr;
  auto v = run_check();
  EXPECT_TRUE(has(v, "pamt-vs-sept")) << dump(v);
}

TEST_F(ModuleCheck, PageLostFromTree) {
  // Clear the 4K leaf behind the module's back: its PAMT still says REG for the TD.
  m.walk(td(), 0x400000, kLevel4K).slot->store(0);
  auto v = run_check();
  EXPECT_TRUE(has(v, "pamt-vs-sept")) << dump(v);
}

TEST_F(ModuleCheck, RefcountDrift) {
  td().refcount[0] += 1;
  EXPECT_TRUE(has(run_check(), "epoch"));
}

TEST_F(ModuleCheck, VcpuFromAncientEpochStillInGuest) {
  td().td_epoch += 2;
  EXPECT_TRUE(has(run_check(), "epoch"));
}

// The epoch findings run mid-run too (check_epochs, texts built out of line): their texts.
TEST_F(ModuleCheck, EpochFindingsText) {
  const uint64_t e = td().td_epoch;
  const uint64_t v = td().vcpus[0].epoch;
  const uint32_t r = td().refcount[v & 1];
  td().refcount[v & 1] += 1;
  td().td_epoch += 2;
  td().vcpus[1].epoch = e + 5;
  auto v1 = run_check(/*quiescent=*/false);
  ASSERT_EQ(v1.size(), 3u) << dump(v1);
  EXPECT_EQ(v1[0].detail, "a vCPU in guest mode entered in epoch " + std::to_string(v) +
                              ", TD_EPOCH is " + std::to_string(e + 2));
  EXPECT_EQ(v1[1].detail,
            "VCPU_EPOCH " + std::to_string(e + 5) + " > TD_EPOCH " + std::to_string(e + 2));
  EXPECT_EQ(v1[2].detail, "REFCOUNT[" + std::to_string(v & 1) + "] = " + std::to_string(r + 1) +
                              ", " + std::to_string(r) + " vCPUs in guest mode");
}

TEST_F(ModuleCheck, HostFreesAPageTheModuleOwns) {
  const uint64_t hpa = entry(0x400000, kLevel4K).hpa(kLevel4K);
  host.free(hpa >> 12, 0);  // refused by the ledger, and reported
  auto v = run_check();
  EXPECT_TRUE(has(v, "host-ledger")) << dump(v);
}

TEST_F(ModuleCheck, ModuleOwnsAPageTheHostThinksFree) {
  const uint64_t hpa = entry(0x400000, kLevel4K).hpa(kLevel4K);
  host.transfer(hpa >> 12, 0, host::Use::kModule, host::Use::kReturned, "test");
  host.free(hpa >> 12, 0);
  auto v = run_check();
  EXPECT_TRUE(has(v, "pamt-vs-host")) << dump(v);
}

TEST_F(ModuleCheck, PageHandedOverButNeverUsedIsLost) {
  page4k();  // given to the module, never passed to a SEAMCALL
  auto v = run_check();
  EXPECT_TRUE(has(v, "pamt-vs-host")) << dump(v);
}

// The tree's reach marks (TdChecker::reach) belong to one check: a second check of the same
// state neither sees the first one's marks (no false "mapped twice") nor loses its own.
TEST_F(ModuleCheck, EachCheckStartsWithNoFrameReached) {
  for (int i = 0; i < 3; i++) {
    auto v = run_check();
    EXPECT_TRUE(v.empty()) << dump(v);
  }
  const uint64_t hpa = entry(0x400000, kLevel4K).hpa(kLevel4K);
  m.walk(td(), 0x400000, kLevel4K).slot->store(0);
  for (int i = 0; i < 2; i++) {
    auto v = run_check();
    ASSERT_EQ(v.size(), 1u) << dump(v);
    EXPECT_EQ(v[0].site, "pamt-vs-sept");
    EXPECT_EQ(v[0].detail,
              "page " + host::hex(hpa) + " (REG) owned by the TD but not in its S-EPT");
  }
}

TEST_F(ModuleCheck, PageMappedTwice) {
  // A second 4K leaf pointing at the first one's page.
  map_tables(0x600000, kLevel4K);
  ASSERT_STATUS(raw(Status::SUCCESS), aug(0x600000, kLevel4K));
  const SeptEntry first = entry(0x400000, kLevel4K);
  const uint64_t lost = entry(0x600000, kLevel4K).hpa(kLevel4K);
  m.walk(td(), 0x600000, kLevel4K).slot->store(first.raw);
  auto v = run_check();
  ASSERT_EQ(v.size(), 2u) << dump(v);
  EXPECT_EQ(v[0].site, "pamt-vs-sept");
  EXPECT_EQ(v[0].detail,
            "GPA 0x600000 4K: page " + host::hex(first.hpa(kLevel4K)) + " mapped twice");
  EXPECT_EQ(v[1].detail, "page " + host::hex(lost) + " (REG) owned by the TD but not in its S-EPT");
}

// 4K tables have a fast path for the common leaf (TdChecker::fast_4k); a leaf it cannot clear,
// after one it did in the same 2M block, gets the full check: the findings are the same.
TEST_F(ModuleCheck, FourKLeafWithAForeignOwnerAfterAGoodOne) {
  ASSERT_STATUS(raw(Status::SUCCESS), aug(0x401000, kLevel4K));
  const uint64_t first = entry(0x400000, kLevel4K).hpa(kLevel4K);
  const uint64_t hpa = entry(0x401000, kLevel4K).hpa(kLevel4K);
  ASSERT_EQ(first >> 21, hpa >> 21);  // one 2M block
  m.pamt_4k(hpa >> 12).owner = tdr + 0x1000;
  auto v = run_check();
  ASSERT_FALSE(v.empty());
  EXPECT_EQ(v[0].site, "pamt-vs-sept");
  EXPECT_EQ(v[0].detail, "GPA 0x401000 4K: page " + host::hex(hpa) + " has PAMT REG at 4K");
  EXPECT_TRUE(has(v, "chldcnt")) << dump(v);
}

TEST_F(ModuleCheck, FourKLeafLockedAfterAGoodOne) {
  ASSERT_STATUS(raw(Status::SUCCESS), aug(0x401000, kLevel4K));
  m.walk(td(), 0x401000, kLevel4K).slot->fetch_or(kTdel);
  auto v = run_check();
  ASSERT_EQ(v.size(), 1u) << dump(v);
  EXPECT_EQ(v[0].site, "entry-lock-held");
  EXPECT_EQ(v[0].detail, "GPA 0x401000 4K: TDEL set while quiescent");
}

// A demoted 2M leaf: 512 4K leaves over consecutive frames, the runs the 4K walk
// (TdChecker::run8) and the PAMT pass (pamt_pass's group) take eight at a time. A fault
// inside a run sends those eight to the entry-by-entry path: the findings are the same.
class ModuleCheckSplit : public ModuleCheck {
 protected:
  static constexpr uint64_t kGpa = 0x200000;
  void SetUp() override {
    ModuleCheck::SetUp();
    ASSERT_TRUE(exit(0));
    ASSERT_STATUS(raw(Status::SUCCESS), block(kGpa, kLevel2M));
    ASSERT_STATUS(raw(Status::SUCCESS), track());
    ASSERT_STATUS(raw(Status::SUCCESS), demote(kGpa, kLevel2M));
    hpa = entry(kGpa, kLevel4K).hpa(kLevel4K);
    ASSERT_EQ(entry(kGpa + 13 * 0x1000, kLevel4K).hpa(kLevel4K), hpa + 13 * 0x1000);
  }
  std::atomic<uint64_t>& slot(int i) { return *m.walk(td(), kGpa + i * 0x1000, kLevel4K).slot; }
  uint64_t hpa = 0;  // of the first 4K leaf
};

TEST_F(ModuleCheckSplit, CleanStateHasNoViolations) {
  auto v = run_check();
  EXPECT_TRUE(v.empty()) << dump(v);
}

TEST_F(ModuleCheckSplit, PageLostInsideARun) {
  slot(13).store(0);
  auto v = run_check();
  ASSERT_EQ(v.size(), 1u) << dump(v);
  EXPECT_EQ(v[0].detail,
            "page " + host::hex(hpa + 13 * 0x1000) + " (REG) owned by the TD but not in its S-EPT");
}

TEST_F(ModuleCheckSplit, PageMappedTwiceInsideARun) {
  slot(14).store(slot(13).load());
  auto v = run_check();
  ASSERT_EQ(v.size(), 2u) << dump(v);
  EXPECT_EQ(v[0].detail, "GPA 0x20e000 4K: page " + host::hex(hpa + 13 * 0x1000) + " mapped twice");
  EXPECT_EQ(v[1].detail,
            "page " + host::hex(hpa + 14 * 0x1000) + " (REG) owned by the TD but not in its S-EPT");
}

TEST_F(ModuleCheckSplit, ForeignOwnerInsideARun) {
  m.pamt_4k((hpa >> 12) + 13).owner = tdr + 0x1000;
  auto v = run_check();
  ASSERT_EQ(v.size(), 2u) << dump(v);
  EXPECT_EQ(v[0].detail,
            "GPA 0x20d000 4K: page " + host::hex(hpa + 13 * 0x1000) + " has PAMT REG at 4K");
  EXPECT_EQ(v[1].site, "chldcnt");
}

TEST_F(ModuleCheckSplit, LockedEntryInsideARun) {
  slot(13).fetch_or(kTdel);
  auto v = run_check();
  ASSERT_EQ(v.size(), 1u) << dump(v);
  EXPECT_EQ(v[0].detail, "GPA 0x20d000 4K: TDEL set while quiescent");
}

TEST_F(ModuleCheckSplit, RunOfFramesAlreadyReached) {
  // Entries 16..23 map the eight frames entries 0..7 map: a run of its own, reached twice.
  for (int j = 0; j < 8; j++) slot(16 + j).store(slot(j).load());
  auto v = run_check();
  ASSERT_EQ(v.size(), 16u) << dump(v);
  for (int j = 0; j < 8; j++) {
    EXPECT_EQ(v[j].detail, "GPA " + host::hex(kGpa + (16 + j) * 0x1000) + " 4K: page " +
                               host::hex(hpa + j * 0x1000) + " mapped twice");
    EXPECT_EQ(v[8 + j].detail, "page " + host::hex(hpa + (16 + j) * 0x1000) +
                                   " (REG) owned by the TD but not in its S-EPT");
  }
}

TEST_F(ModuleCheckSplit, WholeRunLocked) {
  for (int j = 8; j < 16; j++) slot(j).fetch_or(kTdel);
  auto v = run_check();
  ASSERT_EQ(v.size(), 8u) << dump(v);
  for (int j = 0; j < 8; j++)
    EXPECT_EQ(v[j].detail,
              "GPA " + host::hex(kGpa + (8 + j) * 0x1000) + " 4K: TDEL set while quiescent");
}

TEST_F(ModuleCheckSplit, LedgerDisagreesInsideARun) {
  host.transfer((hpa >> 12) + 13, 0, host::Use::kModule, host::Use::kReturned, "test");
  auto v = run_check();
  ASSERT_EQ(v.size(), 1u) << dump(v);
  EXPECT_EQ(v[0].detail, "frame " + host::hex(hpa + 13 * 0x1000) +
                             " is PAMT REG but host ledger says " +
                             host::use_name(host::Use::kReturned));
}

TEST_F(ModuleCheckSplit, FrameHandedOverBesideTheRun) {
  // An NDA frame the ledger gives the module, among NDA frames (scan_frames' quiet8).
  const uint64_t pfn = hpa >> 12;
  ASSERT_EQ(m.pamt_4k(pfn + 512 + 3).type, PageType::NDA);
  host.transfer(pfn + 512 + 3, 0, host.use(pfn + 512 + 3), host::Use::kModule, "test");
  auto v = run_check();
  ASSERT_EQ(v.size(), 1u) << dump(v);
  EXPECT_EQ(v[0].detail, "frame " + host::hex(hpa + (512 + 3) * 0x1000) +
                             " handed to the module but not in its PAMT (lost)");
}

TEST_F(ModuleCheck, TableLinkedTwice) {
  // The 1G entry over 0x40000000 points at the 2M-level table that 0x0 already links.
  const SeptEntry table = entry(0x0, kLevel1G);
  ASSERT_EQ(table.state(), SeptState::NL_MAPPED);
  m.walk(td(), 0x40000000, kLevel1G).slot->store(table.raw);
  auto v = run_check();
  ASSERT_EQ(v.size(), 1u) << dump(v);
  EXPECT_EQ(v[0].site, "pamt-vs-sept");
  EXPECT_EQ(v[0].detail,
            "GPA 0x40000000 1G: table " + host::hex(table.hpa_bits()) + " linked twice");
}

}  // namespace
}  // namespace tdx::testing
