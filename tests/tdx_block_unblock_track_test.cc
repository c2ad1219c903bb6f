// TDH.MEM.RANGE.BLOCK, TDH.MEM.RANGE.UNBLOCK and TDH.MEM.TRACK after the prologue
// (tdx-module.md §2.5-§2.7, §3, §8.5, §8.6, §8.10): each leaf-specific check with its exact
// status and details, its order against its neighbours, BEPOCH recording and TD epoch tracking.
#include <cstdio>
#include <string>

#include "tests/tdx_encodings.h"
#include "tests/tdx_fixture.h"

namespace tdx::testing {
namespace {

constexpr uint64_t kGpa = 0x40000000;       // 1G-aligned
constexpr uint64_t kOtherGpa = 0x80000000;  // another 1G region

class EpochTest : public TdxTest {
 protected:
  Regs Block(uint64_t gpa, int level) { return call(Leaf::MEM_RANGE_BLOCK, gl(gpa, level), tdr); }
  Regs Unblock(uint64_t gpa, int level) {
    return call(Leaf::MEM_RANGE_UNBLOCK, gl(gpa, level), tdr);
  }
  Regs Track() { return call(Leaf::MEM_TRACK, tdr); }

  // A MAPPED 4K page made by PAGE.ADD (TD not yet finalized); returns its HPA.
  uint64_t AddPage(uint64_t gpa) {
    map_tables(gpa, kLevel4K);
    const uint64_t p = page4k();
    EXPECT_STATUS(raw(Status::SUCCESS), call(Leaf::MEM_PAGE_ADD, gl(gpa, 0), tdr, p, page4k()).rax);
    return p;
  }
  // A PENDING page made by AUG; returns its HPA.
  uint64_t AugPage(uint64_t gpa, int level) {
    map_tables(gpa, level);
    const uint64_t p = level == kLevel2M ? page2m() : page4k();
    EXPECT_STATUS(raw(Status::SUCCESS), call(Leaf::MEM_PAGE_AUG, gl(gpa, level), tdr, p).rax);
    return p;
  }
  std::atomic<uint64_t>* slot(uint64_t gpa, int level) { return m.walk(td(), gpa, level).slot; }
  uint64_t epoch() { return td().td_epoch.load(); }
  // Advances TD_EPOCH with no vCPU in guest mode.
  void AdvanceEpochTo(uint64_t e) {
    while (epoch() < e) ASSERT_STATUS(raw(Status::SUCCESS), track());
  }
};

// ---- TDH.MEM.RANGE.BLOCK (§2.5)

class RangeBlock : public EpochTest {};

TEST_F(RangeBlock, MappedBecomesBlockedAndRecordsEpoch) {
  const uint64_t p = AddPage(kGpa);
  AdvanceEpochTo(3);
  ExpectDetails(Block(kGpa, 0), raw(Status::SUCCESS), 0, 0);
  const SeptEntry e = entry(kGpa, 0);
  EXPECT_EQ(SeptState::BLOCKED, e.state());
  EXPECT_EQ(Hex(p), Hex(e.hpa_bits()));
  EXPECT_FALSE(e.locked());
  EXPECT_EQ(3u, m.pamt_4k(p >> 12).bepoch);
  EXPECT_EQ(PageType::REG, m.pamt_4k(p >> 12).type);
  EXPECT_FALSE(td().sept_lock.held());
}

TEST_F(RangeBlock, PendingBecomesPendingBlocked) {
  const uint64_t p = AugPage(kGpa, kLevel4K);
  AdvanceEpochTo(2);
  ExpectDetails(Block(kGpa, 0), raw(Status::SUCCESS), 0, 0);
  EXPECT_EQ(SeptState::PENDING_BLOCKED, entry(kGpa, 0).state());
  EXPECT_EQ(Hex(p), Hex(entry(kGpa, 0).hpa_bits()));
  EXPECT_EQ(2u, m.pamt_4k(p >> 12).bepoch);
}

// A blocked table records BEPOCH in the child S-EPT page's 4K PAMT entry.
TEST_F(RangeBlock, TableBecomesNlBlockedAndRecordsEpochOfChildPage) {
  map_tables(kGpa, kLevel4K);
  const uint64_t table = entry(kGpa, 1).hpa_bits();
  AdvanceEpochTo(4);
  ExpectDetails(Block(kGpa, 1), raw(Status::SUCCESS), 0, 0);
  EXPECT_EQ(SeptState::NL_BLOCKED, entry(kGpa, 1).state());
  EXPECT_EQ(Hex(table), Hex(entry(kGpa, 1).hpa_bits()));
  EXPECT_EQ(4u, m.pamt_4k(table >> 12).bepoch);
}

TEST_F(RangeBlock, TwoMLeafRecordsEpochAt2MPamtLevel) {
  const uint64_t big = AugPage(kGpa, kLevel2M);
  AdvanceEpochTo(2);
  ExpectDetails(Block(kGpa, 1), raw(Status::SUCCESS), 0, 0);
  EXPECT_EQ(SeptState::PENDING_BLOCKED, entry(kGpa, 1).state());
  EXPECT_EQ(2u, m.pamt_2m(big >> 12).bepoch);
  EXPECT_EQ(0u, m.pamt_4k(big >> 12).bepoch);
}

// §2.5, §8.15: BLOCK discards the progress of an interrupted 2M ACCEPT.
TEST_F(RangeBlock, ResetsAcceptCounterOf2MPendingLeaf) {
  const uint64_t big = AugPage(kGpa, kLevel2M);
  ASSERT_STATUS(raw(Status::SUCCESS), finalize());
  ASSERT_STATUS(raw(Status::SUCCESS), enter(0));
  hooks.irq_pending = 1;
  ASSERT_EQ(AcceptResult::kResumed, accept(0, kGpa, kLevel2M).kind);
  ASSERT_NE(0u, entry(kGpa, 1).accept_counter());
  ExpectDetails(Block(kGpa, 1), raw(Status::SUCCESS), 0, 0);
  EXPECT_EQ(SeptState::PENDING_BLOCKED, entry(kGpa, 1).state());
  EXPECT_EQ(0u, entry(kGpa, 1).accept_counter());
  EXPECT_EQ(Hex(big), Hex(entry(kGpa, 1).hpa_bits()));
}

// §8.6: already blocked is a warning (bit 63 clear) with the entry's details.
TEST_F(RangeBlock, AlreadyBlockedIsNonErrorWarning) {
  const uint64_t p = AddPage(kGpa);
  ASSERT_STATUS(raw(Status::SUCCESS), Block(kGpa, 0).rax);
  const Regs r = Block(kGpa, 0);
  ExpectDetails(r, 0x00000B0700000001ull, UnmappedLeafEntry(p), LevelState(0, kPubBlocked));
  EXPECT_FALSE(is_error(r.rax));
  EXPECT_EQ(SeptState::BLOCKED, entry(kGpa, 0).state());
  EXPECT_FALSE(entry(kGpa, 0).locked());
}

TEST_F(RangeBlock, AlreadyBlockedPendingAndTable) {
  const uint64_t p = AugPage(kGpa, kLevel4K);
  ASSERT_STATUS(raw(Status::SUCCESS), Block(kGpa, 0).rax);
  ExpectDetails(Block(kGpa, 0), raw(Status::GPA_RANGE_ALREADY_BLOCKED, Operand::RCX),
                UnmappedLeafEntry(p), LevelState(0, kPubPendingBlocked));
  ASSERT_STATUS(raw(Status::SUCCESS), Block(kGpa, 1).rax);
  ExpectDetails(Block(kGpa, 1), raw(Status::GPA_RANGE_ALREADY_BLOCKED, Operand::RCX),
                kNlBlockedEntry, LevelState(1, kPubNlBlocked));
}

// Re-blocking does not refresh BEPOCH: the original BLOCK's epoch is what is tracked.
TEST_F(RangeBlock, AlreadyBlockedKeepsOriginalEpoch) {
  const uint64_t p = AddPage(kGpa);
  ASSERT_STATUS(raw(Status::SUCCESS), Block(kGpa, 0).rax);
  ASSERT_STATUS(raw(Status::SUCCESS), track());
  EXPECT_STATUS(raw(Status::GPA_RANGE_ALREADY_BLOCKED, Operand::RCX), Block(kGpa, 0).rax);
  EXPECT_EQ(1u, m.pamt_4k(p >> 12).bepoch);
}

TEST_F(RangeBlock, FreeEntryIsStateIncorrect) {
  map_tables(kGpa, kLevel4K);
  ExpectDetails(Block(kGpa, 0), 0xC0000B0D00000001ull, kFreeEntry, LevelState(0, kPubFree));
  map_tables(kOtherGpa, kLevel2M);
  ExpectDetails(Block(kOtherGpa, 1), raw(Status::EPT_ENTRY_STATE_INCORRECT, Operand::RCX),
                kFreeEntry, LevelState(1, kPubFree));
  EXPECT_FALSE(entry(kGpa, 0).locked());
}

TEST_F(RangeBlock, AllowedWhenRunnableWithoutTracking) {
  const uint64_t p = AddPage(kGpa);
  ASSERT_STATUS(raw(Status::SUCCESS), finalize());
  ASSERT_STATUS(raw(Status::SUCCESS), enter(0));
  EXPECT_STATUS(raw(Status::SUCCESS), Block(kGpa, 0).rax);
  EXPECT_EQ(1u, m.pamt_4k(p >> 12).bepoch);
}

// §8.2: BLOCK takes the tree lock exclusively, and before it looks at the entry.
TEST_F(RangeBlock, TreeBusyBeatsStateCheck) {
  map_tables(kGpa, kLevel4K);
  ASSERT_TRUE(td().sept_lock.try_shared());
  ExpectDetails(Block(kGpa, 0), 0x8000020000000092ull, 0, 0);
  td().sept_lock.release_shared();
}

TEST_F(RangeBlock, EntryLockBeatsAlreadyBlocked) {
  const uint64_t p = AddPage(kGpa);
  ASSERT_STATUS(raw(Status::SUCCESS), Block(kGpa, 0).rax);
  slot(kGpa, 0)->fetch_or(kTdel);
  ExpectDetails(Block(kGpa, 0), raw(Status::OPERAND_BUSY, Operand::RCX), UnmappedLeafEntry(p),
                LevelState(0, kPubBlocked));
  slot(kGpa, 0)->fetch_and(~(kTdel | kTdhp));
}

// §2.0 step 10: a successful host lock clears TDHP even if the leaf then fails.
TEST_F(RangeBlock, HostLockClearsHostPriorityEvenWhenLeafFails) {
  map_tables(kGpa, kLevel4K);
  std::atomic<uint64_t>* s = slot(kGpa, 0);
  s->fetch_or(kTdel);
  ASSERT_STATUS(raw(Status::OPERAND_BUSY, Operand::RCX), Block(kGpa, 0).rax);
  ASSERT_TRUE(SeptEntry{s->load()}.host_priority());
  s->fetch_and(~kTdel);
  EXPECT_STATUS(raw(Status::EPT_ENTRY_STATE_INCORRECT, Operand::RCX), Block(kGpa, 0).rax);
  EXPECT_FALSE(SeptEntry{s->load()}.host_priority());
  EXPECT_FALSE(SeptEntry{s->load()}.locked());
}

// §8.1: a blocked table cuts off everything below it.
TEST_F(RangeBlock, BlockedTableStopsWalksBelowIt) {
  AddPage(kGpa);
  ASSERT_STATUS(raw(Status::SUCCESS), Block(kGpa, 1).rax);
  ExpectDetails(Block(kGpa, 0), raw(Status::EPT_WALK_FAILED, Operand::RCX), kNlBlockedEntry,
                LevelState(1, kPubNlBlocked));
}

// ---- TDH.MEM.RANGE.UNBLOCK (§2.6)

class RangeUnblock : public EpochTest {};

// Before finalize no TRACK is needed.
TEST_F(RangeUnblock, InitializedRestoresEachBlockedState) {
  const uint64_t p = AddPage(kGpa);
  const uint64_t q = AugPage(kGpa + 0x1000, kLevel4K);
  const uint64_t table = entry(kGpa, 1).hpa_bits();
  ASSERT_STATUS(raw(Status::SUCCESS), Block(kGpa, 0).rax);
  ASSERT_STATUS(raw(Status::SUCCESS), Block(kGpa + 0x1000, 0).rax);
  ExpectDetails(Unblock(kGpa, 0), raw(Status::SUCCESS), 0, 0);
  EXPECT_EQ(SeptState::MAPPED, entry(kGpa, 0).state());
  EXPECT_EQ(Hex(p), Hex(entry(kGpa, 0).hpa_bits()));
  ExpectDetails(Unblock(kGpa + 0x1000, 0), raw(Status::SUCCESS), 0, 0);
  EXPECT_EQ(SeptState::PENDING, entry(kGpa + 0x1000, 0).state());
  EXPECT_EQ(Hex(q), Hex(entry(kGpa + 0x1000, 0).hpa_bits()));
  ASSERT_STATUS(raw(Status::SUCCESS), Block(kGpa, 1).rax);
  ExpectDetails(Unblock(kGpa, 1), raw(Status::SUCCESS), 0, 0);
  EXPECT_EQ(SeptState::NL_MAPPED, entry(kGpa, 1).state());
  EXPECT_EQ(Hex(table), Hex(entry(kGpa, 1).hpa_bits()));
  EXPECT_FALSE(entry(kGpa, 1).locked());
}

// §8.5: there is no "not blocked" code for UNBLOCK.
TEST_F(RangeUnblock, NotBlockedIsStateIncorrect) {
  const uint64_t p = AddPage(kGpa);
  const uint64_t q = AugPage(kGpa + 0x1000, kLevel4K);
  ExpectDetails(Unblock(kGpa, 0), 0xC0000B0D00000001ull, MappedEntry(p), LevelState(0, kPubMapped));
  ExpectDetails(Unblock(kGpa + 0x1000, 0), raw(Status::EPT_ENTRY_STATE_INCORRECT, Operand::RCX),
                UnmappedLeafEntry(q), LevelState(0, kPubPending));
  ExpectDetails(Unblock(kGpa, 1), raw(Status::EPT_ENTRY_STATE_INCORRECT, Operand::RCX),
                kNlMappedEntry, LevelState(1, kPubNlMapped));
  ExpectDetails(Unblock(kGpa + 0x2000, 0), raw(Status::EPT_ENTRY_STATE_INCORRECT, Operand::RCX),
                kFreeEntry, LevelState(0, kPubFree));
  EXPECT_FALSE(entry(kGpa, 0).locked());
}

// §8.5: in a running TD UNBLOCK needs the block tracked, reported against SEPT_TREE.
TEST_F(RangeUnblock, RunnableWithoutTrackIsTrackingNotDoneSeptTree) {
  const uint64_t p = AddPage(kGpa);
  ASSERT_STATUS(raw(Status::SUCCESS), finalize());
  ASSERT_STATUS(raw(Status::SUCCESS), Block(kGpa, 0).rax);
  ExpectDetails(Unblock(kGpa, 0), 0xC0000B0800000092ull, 0, 0);
  EXPECT_EQ(SeptState::BLOCKED, entry(kGpa, 0).state());
  EXPECT_FALSE(entry(kGpa, 0).locked());
  EXPECT_FALSE(td().sept_lock.held());
  ASSERT_STATUS(raw(Status::SUCCESS), track());
  ExpectDetails(Unblock(kGpa, 0), raw(Status::SUCCESS), 0, 0);
  EXPECT_EQ(SeptState::MAPPED, entry(kGpa, 0).state());
  EXPECT_EQ(Hex(p), Hex(entry(kGpa, 0).hpa_bits()));
}

TEST_F(RangeUnblock, OneTrackWaitsForVcpuInGuestAtTrackTime) {
  AddPage(kGpa);
  ASSERT_STATUS(raw(Status::SUCCESS), finalize());
  ASSERT_STATUS(raw(Status::SUCCESS), enter(0));
  ASSERT_STATUS(raw(Status::SUCCESS), Block(kGpa, 0).rax);
  ASSERT_STATUS(raw(Status::SUCCESS), track());
  EXPECT_STATUS(raw(Status::TLB_TRACKING_NOT_DONE, Operand::SEPT_TREE), Unblock(kGpa, 0).rax);
  ASSERT_TRUE(exit(0));
  EXPECT_STATUS(raw(Status::SUCCESS), Unblock(kGpa, 0).rax);
}

// A blocked table's tracking uses the child S-EPT page's BEPOCH.
TEST_F(RangeUnblock, RunnableTableNeedsTracking) {
  map_tables(kGpa, kLevel4K);
  ASSERT_STATUS(raw(Status::SUCCESS), finalize());
  ASSERT_STATUS(raw(Status::SUCCESS), Block(kGpa, 1).rax);
  EXPECT_STATUS(raw(Status::TLB_TRACKING_NOT_DONE, Operand::SEPT_TREE), Unblock(kGpa, 1).rax);
  ASSERT_STATUS(raw(Status::SUCCESS), track());
  EXPECT_STATUS(raw(Status::SUCCESS), Unblock(kGpa, 1).rax);
  EXPECT_EQ(SeptState::NL_MAPPED, entry(kGpa, 1).state());
}

// A blocked 2M leaf's tracking uses the 2M PAMT entry's BEPOCH.
TEST_F(RangeUnblock, Runnable2MLeafNeedsTracking) {
  AugPage(kGpa, kLevel2M);
  ASSERT_STATUS(raw(Status::SUCCESS), finalize());
  ASSERT_STATUS(raw(Status::SUCCESS), Block(kGpa, 1).rax);
  EXPECT_STATUS(raw(Status::TLB_TRACKING_NOT_DONE, Operand::SEPT_TREE), Unblock(kGpa, 1).rax);
  ASSERT_STATUS(raw(Status::SUCCESS), track());
  EXPECT_STATUS(raw(Status::SUCCESS), Unblock(kGpa, 1).rax);
  EXPECT_EQ(SeptState::PENDING, entry(kGpa, 1).state());
}

// An unblocked entry with an untracked BEPOCH: the state check reports first.
TEST_F(RangeUnblock, StateCheckBeatsTracking) {
  const uint64_t p = AddPage(kGpa);
  ASSERT_STATUS(raw(Status::SUCCESS), Block(kGpa, 0).rax);  // BEPOCH := 1
  ASSERT_STATUS(raw(Status::SUCCESS), Unblock(kGpa, 0).rax);
  ASSERT_STATUS(raw(Status::SUCCESS), finalize());
  ASSERT_FALSE(Module::is_tlb_tracked(td(), m.pamt_4k(p >> 12).bepoch));
  ExpectDetails(Unblock(kGpa, 0), raw(Status::EPT_ENTRY_STATE_INCORRECT, Operand::RCX),
                MappedEntry(p), LevelState(0, kPubMapped));
}

TEST_F(RangeUnblock, TreeBusyBeatsTracking) {
  AddPage(kGpa);
  ASSERT_STATUS(raw(Status::SUCCESS), finalize());
  ASSERT_STATUS(raw(Status::SUCCESS), Block(kGpa, 0).rax);
  ASSERT_TRUE(td().sept_lock.try_shared());
  ExpectDetails(Unblock(kGpa, 0), raw(Status::OPERAND_BUSY, Operand::SEPT_TREE), 0, 0);
  td().sept_lock.release_shared();
}

TEST_F(RangeUnblock, EntryLockBeatsStateCheck) {
  const uint64_t p = AddPage(kGpa);
  slot(kGpa, 0)->fetch_or(kTdel);
  ExpectDetails(Unblock(kGpa, 0), raw(Status::OPERAND_BUSY, Operand::RCX), MappedEntry(p),
                LevelState(0, kPubMapped));
  slot(kGpa, 0)->fetch_and(~(kTdel | kTdhp));
}

TEST_F(RangeUnblock, EntryLockBeatsTracking) {
  const uint64_t p = AddPage(kGpa);
  ASSERT_STATUS(raw(Status::SUCCESS), finalize());
  ASSERT_STATUS(raw(Status::SUCCESS), Block(kGpa, 0).rax);
  slot(kGpa, 0)->fetch_or(kTdel);
  ExpectDetails(Unblock(kGpa, 0), raw(Status::OPERAND_BUSY, Operand::RCX), UnmappedLeafEntry(p),
                LevelState(0, kPubBlocked));
  slot(kGpa, 0)->fetch_and(~(kTdel | kTdhp));
}

// ---- TDH.MEM.TRACK (§2.7)

class MemTrack : public EpochTest {};

TEST_F(MemTrack, AdvancesEpoch) {
  ASSERT_EQ(1u, epoch());  // TD_EPOCH starts at 1
  EXPECT_STATUS(raw(Status::SUCCESS), Track().rax);
  EXPECT_EQ(2u, epoch());
  EXPECT_FALSE(td().epoch_lock.held());
  EXPECT_FALSE(td().op_state_lock.held());
  ASSERT_STATUS(raw(Status::SUCCESS), finalize());
  EXPECT_STATUS(raw(Status::SUCCESS), Track().rax);
  EXPECT_EQ(3u, epoch());
}

// TRACK takes the TDR in RCX; RDX is not an operand.
TEST_F(MemTrack, TdrOperandIsRcx) {
  EXPECT_STATUS(0xC000010000000001ull, call(Leaf::MEM_TRACK, tdr + 0x800, tdr).rax);
  EXPECT_STATUS(raw(Status::SUCCESS), call(Leaf::MEM_TRACK, tdr, 0x1234).rax);
}

TEST_F(MemTrack, EpochLockHeldIsBusyTdEpoch) {
  ASSERT_TRUE(td().epoch_lock.try_exclusive());
  EXPECT_STATUS(0x80000200000000A9ull, Track().rax);
  td().epoch_lock.release_exclusive();
  // VP.ENTER holds it shared for a moment; that excludes TRACK too.
  ASSERT_TRUE(td().epoch_lock.try_shared());
  EXPECT_STATUS(raw(Status::OPERAND_BUSY, Operand::TD_EPOCH), Track().rax);
  td().epoch_lock.release_shared();
  EXPECT_EQ(1u, epoch());
}

TEST_F(MemTrack, VcpuInCurrentEpochDoesNotBlock) {
  ASSERT_STATUS(raw(Status::SUCCESS), finalize());
  ASSERT_STATUS(raw(Status::SUCCESS), enter(0));
  EXPECT_STATUS(raw(Status::SUCCESS), Track().rax);
  EXPECT_EQ(2u, epoch());
}

// §8.10: a vCPU still running from the previous epoch makes TRACK fail (not OPERAND_BUSY).
TEST_F(MemTrack, VcpuFromPreviousEpochIsPreviousTlbEpochBusy) {
  ASSERT_STATUS(raw(Status::SUCCESS), finalize());
  ASSERT_STATUS(raw(Status::SUCCESS), enter(0));
  ASSERT_STATUS(raw(Status::SUCCESS), Track().rax);
  EXPECT_STATUS(0x8000020100000000ull, Track().rax);
  EXPECT_EQ(2u, epoch());
  EXPECT_FALSE(td().epoch_lock.held());
  ASSERT_TRUE(exit(0));
  EXPECT_STATUS(raw(Status::SUCCESS), Track().rax);
  EXPECT_EQ(3u, epoch());
}

// A vCPU that re-entered after the TRACK counts in the new epoch, not the previous one.
TEST_F(MemTrack, ReenteredVcpuDoesNotBlockNextTrack) {
  ASSERT_STATUS(raw(Status::SUCCESS), finalize());
  ASSERT_STATUS(raw(Status::SUCCESS), enter(0));
  ASSERT_STATUS(raw(Status::SUCCESS), Track().rax);
  ASSERT_TRUE(exit(0));
  ASSERT_STATUS(raw(Status::SUCCESS), enter(0));
  EXPECT_STATUS(raw(Status::SUCCESS), Track().rax);
  EXPECT_STATUS(raw(Status::PREVIOUS_TLB_EPOCH_BUSY), Track().rax);
}

TEST_F(MemTrack, EpochLockBusyBeatsPreviousEpochBusy) {
  ASSERT_STATUS(raw(Status::SUCCESS), finalize());
  ASSERT_STATUS(raw(Status::SUCCESS), enter(0));
  ASSERT_STATUS(raw(Status::SUCCESS), Track().rax);
  ASSERT_TRUE(td().epoch_lock.try_exclusive());
  EXPECT_STATUS(raw(Status::OPERAND_BUSY, Operand::TD_EPOCH), Track().rax);
  td().epoch_lock.release_exclusive();
}

TEST_F(MemTrack, OpStateLockBusyBeatsEpochLockBusy) {
  ASSERT_TRUE(td().epoch_lock.try_exclusive());
  ASSERT_TRUE(td().op_state_lock.try_exclusive());
  EXPECT_STATUS(raw(Status::OPERAND_BUSY, Operand::OP_STATE), Track().rax);
  td().op_state_lock.release_exclusive();
  td().epoch_lock.release_exclusive();
}

TEST_F(MemTrack, OpStateIncorrectBeatsEpochLockBusy) {
  const uint64_t other = m.create_td(1, BuildStage::kTdcsAdded);
  Td& o = *m.td_of(other);
  ASSERT_TRUE(o.epoch_lock.try_exclusive());
  EXPECT_STATUS(raw(Status::OP_STATE_INCORRECT), call(Leaf::MEM_TRACK, other).rax);
  o.epoch_lock.release_exclusive();
}

}  // namespace
}  // namespace tdx::testing
