// TDH.VP.ENTER and the TD exit (tdx-module.md §2.14, §3, §8.11, §8.20): operand and state
// checks in order, epoch refcounts, TLB flushes, the TDR held shared while in guest mode, and
// the zero-step filter.
#include <cstdio>
#include <functional>
#include <memory>
#include <string>

#include "tests/tdx_encodings.h"
#include "tests/tdx_fixture.h"

namespace tdx::testing {
namespace {

constexpr uint64_t k4K = 0x1000;
constexpr uint64_t kGpa = 0x600000;
constexpr uint64_t kOk = raw(Status::SUCCESS);

class VpEnterTest : public TdxTest {
 protected:
  explicit VpEnterTest(Options o = {}) : TdxTest(o) {}

  void on_yield_once(std::string where, std::function<void()> fn) {
    auto done = std::make_shared<bool>(false);
    hooks.on_yield = [=](const char* w) {
      if (*done || where != w) return;
      *done = true;
      fn();
    };
  }
  Vcpu& vcpu(int v) { return td().vcpus[v]; }
  uint32_t refcount(int parity) { return td().refcount[parity].load(); }
  PamtEntry& tdr_pamt() { return m.pamt_4k(tdr >> 12); }
  PamtEntry& tdvpr_pamt(int v) { return m.pamt_4k(tdvpr(v) >> 12); }
  // After a failed VP.ENTER nothing it took may stay held.
  void expect_nothing_held(int v) {
    EXPECT_FALSE(vcpu(v).in_td);
    EXPECT_FALSE(tdr_pamt().lock.held());
    EXPECT_FALSE(tdvpr_pamt(v).lock.held());
    EXPECT_FALSE(td().op_state_lock.held());
    EXPECT_FALSE(td().sept_lock.held());
    EXPECT_FALSE(td().epoch_lock.held());
    EXPECT_EQ(0u, refcount(0));
    EXPECT_EQ(0u, refcount(1));
  }
};

// ---------------------------------------------------------------------------------------------
// Checks in order (§2.14 step 1).

TEST_F(VpEnterTest, OpStateIncorrectBeforeFinalize) {
  EXPECT_STATUS(raw(Status::OP_STATE_INCORRECT), enter(0));
  expect_nothing_held(0);
  ASSERT_STATUS(kOk, finalize());
  EXPECT_STATUS(kOk, enter(0));
  EXPECT_TRUE(vcpu(0).in_td);
}

TEST_F(VpEnterTest, TdvprOperandChecksComeFirst) {
  // The TD is not finalized either; the operand errors win.
  EXPECT_STATUS(raw(Status::OPERAND_INVALID, Operand::RCX), call(Leaf::VP_ENTER, tdvpr(0) + 8).rax);
  EXPECT_STATUS(raw(Status::OPERAND_INVALID, Operand::RCX),
                call(Leaf::VP_ENTER, tdvpr(0) | (1ull << 46)).rax);
  EXPECT_STATUS(raw(Status::OPERAND_ADDR_RANGE_ERROR, Operand::RCX),
                call(Leaf::VP_ENTER, 0x1000).rax);
  EXPECT_STATUS(raw(Status::PAGE_METADATA_INCORRECT, Operand::RCX), call(Leaf::VP_ENTER, tdr).rax);
  EXPECT_STATUS(raw(Status::PAGE_METADATA_INCORRECT, Operand::RCX),
                call(Leaf::VP_ENTER, vcpu(0).tdvpx).rax);  // a TDCX page
  expect_nothing_held(0);
}

TEST_F(VpEnterTest, TdvprPamtBusyIsBusyRcx) {
  ASSERT_STATUS(kOk, finalize());
  ASSERT_TRUE(tdvpr_pamt(0).lock.try_exclusive());
  EXPECT_STATUS(raw(Status::OPERAND_BUSY, Operand::RCX), enter(0));
  tdvpr_pamt(0).lock.release_exclusive();
  expect_nothing_held(0);
}

TEST_F(VpEnterTest, TdrHeldExclusivelyIsBusyTdrBeforeTheOpStateCheck) {
  // PAGE.ADD (before finalize) holds the TDR exclusively; VP.ENTER would also fail its op
  // state check, but the implicit TDR lock comes first.
  map_tables(kGpa, kLevel4K);
  uint64_t inner = 0;
  on_yield_once("tdr-locked", [&] { inner = enter(0); });
  ASSERT_STATUS(kOk, call(Leaf::MEM_PAGE_ADD, gl(kGpa, 0), tdr, page4k(), 0).rax);
  EXPECT_STATUS(raw(Status::OPERAND_BUSY, Operand::TDR), inner);
  EXPECT_EQ(Hex(0x8000020000000080ull), Hex(inner));
  expect_nothing_held(0);
}

TEST_F(VpEnterTest, TdFatalBeforeOpState) {
  m.set_fatal(tdr);
  EXPECT_STATUS(raw(Status::TD_FATAL), enter(0));
  expect_nothing_held(0);
}

TEST_F(VpEnterTest, OpStateLockBusyBeforeOpStateCheck) {
  ASSERT_TRUE(td().op_state_lock.try_exclusive());
  EXPECT_STATUS(raw(Status::OPERAND_BUSY, Operand::OP_STATE), enter(0));
  td().op_state_lock.release_exclusive();
  EXPECT_FALSE(tdr_pamt().lock.held());
  EXPECT_FALSE(tdvpr_pamt(0).lock.held());
}

TEST_F(VpEnterTest, EnteringAVcpuAlreadyInGuestModeIsVcpuStateIncorrect) {
  // The model's choice for a vCPU that is already running (§2.14 leaves it open).
  ASSERT_STATUS(kOk, finalize());
  ASSERT_STATUS(kOk, enter(0));
  EXPECT_STATUS(raw(Status::VCPU_STATE_INCORRECT), enter(0));
  EXPECT_EQ(1u, refcount(1));
  EXPECT_EQ(1u, tdr_pamt().lock.shared_count());
  EXPECT_EQ(1u, tdvpr_pamt(0).lock.shared_count());
}

TEST_F(VpEnterTest, EpochLockHeldByTrackIsBusyTdEpochAndCountsNothing) {
  ASSERT_STATUS(kOk, finalize());
  uint64_t inner = 0;
  on_yield_once("epoch-locked", [&] { inner = enter(0); });
  ASSERT_STATUS(kOk, track());
  EXPECT_STATUS(raw(Status::OPERAND_BUSY, Operand::TD_EPOCH), inner);
  EXPECT_EQ(Hex(0x80000200000000A9ull), Hex(inner));
  expect_nothing_held(0);
  EXPECT_STATUS(kOk, enter(0));
  EXPECT_EQ(2u, vcpu(0).epoch);
}

// ---------------------------------------------------------------------------------------------
// Epochs (§3).

TEST_F(VpEnterTest, RefcountCountsVcpusInGuestByEpochParity) {
  ASSERT_STATUS(kOk, finalize());
  ASSERT_EQ(1u, td().td_epoch.load());
  ASSERT_STATUS(kOk, enter(0));
  EXPECT_EQ(1u, vcpu(0).epoch);
  EXPECT_EQ(1u, refcount(1));
  EXPECT_EQ(0u, refcount(0));
  ASSERT_STATUS(kOk, track());  // epoch 2
  ASSERT_STATUS(kOk, enter(1));
  EXPECT_EQ(2u, vcpu(1).epoch);
  EXPECT_EQ(1u, refcount(0));
  EXPECT_EQ(1u, refcount(1));
  // vCPU 0 still runs from epoch 1: the next TRACK must wait for it (§8.10).
  EXPECT_STATUS(raw(Status::PREVIOUS_TLB_EPOCH_BUSY), track());
  EXPECT_EQ(2u, td().td_epoch.load());
  ASSERT_TRUE(exit(0));
  EXPECT_EQ(0u, refcount(1));
  EXPECT_STATUS(kOk, track());                                   // epoch 3
  EXPECT_STATUS(raw(Status::PREVIOUS_TLB_EPOCH_BUSY), track());  // vCPU 1 from epoch 2
  ASSERT_TRUE(exit(1));
  EXPECT_EQ(0u, refcount(0));
  EXPECT_STATUS(kOk, track());
  EXPECT_FALSE(exit(1));  // not in guest mode: nothing to drop
  EXPECT_EQ(0u, refcount(0));
}

TEST_F(VpEnterTest, TlbFlushOnlyWhenTheEpochChanged) {
  ASSERT_STATUS(kOk, finalize());
  ASSERT_STATUS(kOk, enter(0));
  ASSERT_TRUE(exit(0));
  const uint64_t base = vcpu(0).tlb_flushes;
  // Same epoch: no flush (§8.11) - even after a BLOCK, whose staleness tracking covers.
  map_tables(kGpa, kLevel4K);
  ASSERT_STATUS(kOk, block(kGpa, 1));
  ASSERT_STATUS(kOk, enter(0));
  EXPECT_EQ(base, vcpu(0).tlb_flushes);
  // A TRACK while in guest mode flushes nothing by itself.
  ASSERT_STATUS(kOk, track());
  EXPECT_EQ(base, vcpu(0).tlb_flushes);
  EXPECT_EQ(1u, vcpu(0).epoch);
  ASSERT_TRUE(exit(0));
  // Re-entry in the new epoch flushes once and adopts it.
  ASSERT_STATUS(kOk, enter(0));
  EXPECT_EQ(base + 1, vcpu(0).tlb_flushes);
  EXPECT_EQ(2u, vcpu(0).epoch);
  ASSERT_TRUE(exit(0));
  ASSERT_STATUS(kOk, enter(0));
  EXPECT_EQ(base + 1, vcpu(0).tlb_flushes);
}

// ---------------------------------------------------------------------------------------------
// The TDR (and TDVPR) stay shared-locked while the vCPU is in guest mode (§2.14 step 5, §8.20).

TEST_F(VpEnterTest, TdrSharedHeldInGuestMakesExclusiveTdrUsersBusy) {
  map_tables(kGpa, kLevel4K);
  ASSERT_STATUS(kOk, finalize());
  ASSERT_STATUS(kOk, enter(0));
  EXPECT_EQ(1u, tdr_pamt().lock.shared_count());
  EXPECT_EQ(1u, tdvpr_pamt(0).lock.shared_count());
  // Each of these would fail a later check too (op state, lifecycle); the TDR lock wins.
  EXPECT_STATUS(raw(Status::OPERAND_BUSY, Operand::RCX), finalize());
  EXPECT_STATUS(raw(Status::OPERAND_BUSY, Operand::RDX),
                call(Leaf::MEM_PAGE_ADD, gl(kGpa, 0), tdr, page4k(), 0).rax);
  EXPECT_STATUS(raw(Status::OPERAND_BUSY, Operand::RCX), call(Leaf::MNG_KEY_FREEID, tdr).rax);
  EXPECT_STATUS(raw(Status::OPERAND_BUSY, Operand::RCX), call(Leaf::MNG_VPFLUSHDONE, tdr).rax);
  // The vCPU's own TDVPR cannot be flushed either.
  EXPECT_STATUS(raw(Status::OPERAND_BUSY, Operand::RCX), call(Leaf::VP_FLUSH, tdvpr(0)).rax);
  // Shared TDR users are unaffected.
  EXPECT_STATUS(kOk, aug(kGpa, 0));
  EXPECT_STATUS(kOk, track());
  ASSERT_STATUS(kOk, enter(1));
  EXPECT_EQ(2u, tdr_pamt().lock.shared_count());
  ASSERT_TRUE(exit(0));
  ASSERT_TRUE(exit(1));
  EXPECT_FALSE(tdr_pamt().lock.held());
  EXPECT_FALSE(tdvpr_pamt(0).lock.held());
  // Now the later checks are reached.
  EXPECT_STATUS(raw(Status::OP_STATE_INCORRECT), finalize());
  EXPECT_STATUS(raw(Status::OP_STATE_INCORRECT),
                call(Leaf::MEM_PAGE_ADD, gl(kGpa + k4K, 0), tdr, page4k(), 0).rax);
  EXPECT_STATUS(raw(Status::LIFECYCLE_STATE_INCORRECT), call(Leaf::MNG_KEY_FREEID, tdr).rax);
}

// ---------------------------------------------------------------------------------------------
// Zero-step filter (§2.14 step 4).

class ZeroStepTest : public VpEnterTest {
 protected:
  static constexpr uint64_t kThreshold = 3;
  static Options opts() {
    Options o;
    o.zero_step_threshold = kThreshold;
    return o;
  }
  ZeroStepTest() : VpEnterTest(opts()) {}
  void SetUp() override {
    map_tables(kGpa, kLevel4K);  // kGpa is FREE: every ACCEPT of it exits
    ASSERT_STATUS(kOk, finalize());
  }
  // One hardware EPT-violation TD exit of vCPU v at gpa (a guest load of a FREE GPA).
  void fault(uint64_t gpa, int v = 0) {
    ASSERT_STATUS(kOk, enter(v));
    ASSERT_TRUE(m.ept_violation_exit(tdvpr(v), gpa));
  }
  void arm() {
    for (uint64_t i = 0; i < kThreshold; i++) fault(kGpa);
    ASSERT_EQ(1u, vcpu(0).epf_gpas.size());
  }
};

TEST_F(ZeroStepTest, ArmsAfterThresholdConsecutiveExitsAtOneGpa) {
  for (uint64_t i = 0; i + 1 < kThreshold; i++) fault(kGpa);
  EXPECT_TRUE(vcpu(0).epf_gpas.empty());
  fault(kGpa);
  ASSERT_EQ(1u, vcpu(0).epf_gpas.size());
  EXPECT_EQ(Hex(kGpa), Hex(vcpu(0).epf_gpas[0]));
  EXPECT_TRUE(vcpu(1).epf_gpas.empty());  // per vCPU
}

// ACCEPT's EPT-violation exits leave through async_tdexit_ept_violation, which does not log
// them: a guest retrying an ACCEPT that KVM cannot satisfy never arms the filter.
TEST_F(ZeroStepTest, AcceptExitsAreNotCounted) {
  for (uint64_t i = 0; i < 3 * kThreshold; i++) {
    ASSERT_STATUS(kOk, enter(0));
    ASSERT_EQ(AcceptResult::kEptViolation, accept(0, kGpa, 0).kind);
  }
  EXPECT_TRUE(vcpu(0).epf_gpas.empty());
  EXPECT_FALSE(m.ept_violation_exit(tdvpr(0), kGpa));  // not in guest mode
}

TEST_F(ZeroStepTest, AnExitAtAnotherGpaRestartsTheStreak) {
  fault(kGpa);
  fault(kGpa);
  fault(kGpa + k4K);
  fault(kGpa);
  fault(kGpa);
  EXPECT_TRUE(vcpu(0).epf_gpas.empty());
  fault(kGpa);
  EXPECT_EQ(1u, vcpu(0).epf_gpas.size());
}

TEST_F(ZeroStepTest, ArmedFilterReturnsASyntheticExitWhileTheGpaFaults) {
  arm();
  Regs out = call(Leaf::VP_ENTER, tdvpr(0));
  EXPECT_EQ(uint64_t{kExitReasonEptViolation}, out.rax);
  EXPECT_EQ(48u, out.rax);
  EXPECT_EQ(Hex(kGpa), Hex(out.r8));
  expect_nothing_held(0);  // the REFCOUNT increment was undone
  // AUG alone does not help: a PENDING page still faults.
  ASSERT_STATUS(kOk, aug(kGpa, 0));
  out = call(Leaf::VP_ENTER, tdvpr(0));
  EXPECT_EQ(48u, out.rax);
  EXPECT_EQ(Hex(kGpa), Hex(out.r8));
  expect_nothing_held(0);
}

TEST_F(ZeroStepTest, ArmedFilterIsBusySeptTreeWhenTheTreeIsHeld) {
  arm();
  // RANGE.BLOCK holds the tree exclusively (it then fails: the entry is FREE). The tree lock
  // is taken before the GPAs are checked, so BUSY wins over the synthetic exit.
  Regs inner;
  on_yield_once("sept-tree-locked", [&] { inner = call(Leaf::VP_ENTER, tdvpr(0)); });
  EXPECT_STATUS(raw(Status::EPT_ENTRY_STATE_INCORRECT, Operand::RCX), block(kGpa, 0));
  EXPECT_STATUS(raw(Status::OPERAND_BUSY, Operand::SEPT_TREE), inner.rax);
  EXPECT_EQ(Hex(0x8000020000000092ull), Hex(inner.rax));
  expect_nothing_held(0);
  EXPECT_EQ(1u, vcpu(0).epf_gpas.size());
}

TEST_F(ZeroStepTest, UnarmedEntryDoesNotNeedTheTreeLock) {
  fault(kGpa);
  uint64_t inner = 0;
  on_yield_once("sept-tree-locked", [&] { inner = enter(0); });
  block(kGpa, 0);
  EXPECT_STATUS(kOk, inner);
  EXPECT_TRUE(vcpu(0).in_td);
}

TEST_F(ZeroStepTest, EntersNormallyOnceTheGpaIsMapped) {
  arm();
  ASSERT_STATUS(kOk, aug(kGpa, 0));
  // Another vCPU accepts the page.
  ASSERT_STATUS(kOk, enter(1));
  ASSERT_STATUS(kOk, accept(1, kGpa, 0).status);
  ASSERT_TRUE(exit(1));
  EXPECT_STATUS(kOk, enter(0));
  EXPECT_TRUE(vcpu(0).in_td);
  EXPECT_TRUE(vcpu(0).epf_gpas.empty());
  EXPECT_EQ(1u, refcount(1));
  EXPECT_FALSE(td().sept_lock.held());  // released before the VM entry
}

TEST_F(ZeroStepTest, ANewEpochIsAdoptedBeforeTheFilterFails) {
  arm();
  ASSERT_STATUS(kOk, track());  // epoch 2
  const uint64_t flushes = vcpu(0).tlb_flushes;
  ASSERT_EQ(1u, vcpu(0).epoch);
  // §2.14: step 3 (adopt the epoch, flush) runs before step 4 (the filter).
  EXPECT_EQ(48u, call(Leaf::VP_ENTER, tdvpr(0)).rax);
  EXPECT_EQ(2u, vcpu(0).epoch);
  EXPECT_EQ(flushes + 1, vcpu(0).tlb_flushes);
  expect_nothing_held(0);
  // The entry that finally succeeds has nothing left to flush.
  ASSERT_STATUS(kOk, aug(kGpa, 0));
  ASSERT_STATUS(kOk, enter(1));
  ASSERT_STATUS(kOk, accept(1, kGpa, 0).status);
  ASSERT_TRUE(exit(1));
  EXPECT_STATUS(kOk, enter(0));
  EXPECT_EQ(flushes + 1, vcpu(0).tlb_flushes);
  EXPECT_EQ(1u, refcount(0));
}

class ZeroStepOffTest : public VpEnterTest {
 protected:
  static Options opts() {
    Options o;
    o.zero_step_mitigation = 0;
    return o;
  }
  ZeroStepOffTest() : VpEnterTest(opts()) {}
};

TEST_F(ZeroStepOffTest, NeverArms) {
  map_tables(kGpa, kLevel4K);
  ASSERT_STATUS(kOk, finalize());
  for (int i = 0; i < 10; i++) {
    ASSERT_STATUS(kOk, enter(0));
    ASSERT_EQ(AcceptResult::kEptViolation, accept(0, kGpa, 0).kind);
  }
  EXPECT_TRUE(vcpu(0).epf_gpas.empty());
  EXPECT_STATUS(kOk, enter(0));
}

// ---------------------------------------------------------------------------------------------
// Association (§2.14 step 2 comes before the epoch and zero-step steps).

TEST_F(VpEnterTest, AFailedEntryAfterTheAssociationStepStillAssociates) {
  ASSERT_STATUS(kOk, finalize());
  ASSERT_STATUS(kOk, enter(0));
  ASSERT_TRUE(exit(0));
  ASSERT_STATUS(kOk, call(Leaf::VP_FLUSH, tdvpr(0)).rax);
  ASSERT_FALSE(vcpu(0).associated);
  uint64_t inner = 0;
  on_yield_once("epoch-locked", [&] { inner = enter(0); });
  ASSERT_STATUS(kOk, track());
  ASSERT_STATUS(raw(Status::OPERAND_BUSY, Operand::TD_EPOCH), inner);
  // The vCPU was associated with this LP before the epoch step failed: it must be flushed.
  EXPECT_TRUE(vcpu(0).associated);
  EXPECT_STATUS(raw(Status::FLUSHVP_NOT_DONE), call(Leaf::MNG_VPFLUSHDONE, tdr).rax);
  EXPECT_STATUS(kOk, call(Leaf::VP_FLUSH, tdvpr(0)).rax);
  EXPECT_STATUS(kOk, call(Leaf::MNG_VPFLUSHDONE, tdr).rax);
}

}  // namespace
}  // namespace tdx::testing
