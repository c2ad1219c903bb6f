// TDH.MEM.SEPT.ADD and TDH.MEM.SEPT.REMOVE after the prologue (tdx-module.md §2.1, §2.2): each
// leaf-specific check with its exact status and details, its order against the neighbouring
// checks, and the effects of success on the entry, CHLDCNT and the PAMT.
#include <cstdio>
#include <string>

#include "tests/tdx_encodings.h"
#include "tests/tdx_fixture.h"

namespace tdx::testing {
namespace {

constexpr uint64_t kGpa = 0x40000000;  // 1G-aligned
constexpr uint64_t kPoolEnd = (kHostBasePfn + kHostPages) << 12;

class SeptAdd : public TdxTest {
 protected:
  Regs Add(uint64_t page_info, uint64_t rdx, uint64_t r8, unsigned version = 0) {
    return call(Leaf::MEM_SEPT_ADD, page_info, rdx, r8, 0, version);
  }
  // The PML4E and PDPTE for kGpa exist; the 2M entry (level 1) is FREE.
  void SetUp() override { map_tables(kGpa, kLevel2M); }

  // A failed SEPT.ADD changed nothing and released the entry.
  void ExpectUntouched(int64_t chld) {
    EXPECT_EQ(SeptState::FREE, entry(kGpa, 1).state());
    EXPECT_FALSE(entry(kGpa, 1).locked());
    EXPECT_EQ(chld, td().chldcnt.load());
  }
  uint64_t Aug2M() {
    const uint64_t big = page2m();
    EXPECT_STATUS(raw(Status::SUCCESS), call(Leaf::MEM_PAGE_AUG, gl(kGpa, 1), tdr, big).rax);
    return big;
  }
};

TEST_F(SeptAdd, SuccessLinksZeroedTableAndAccountsPage) {
  const int64_t chld = td().chldcnt;
  const uint64_t p = page4k();
  ExpectDetails(Add(gl(kGpa, 1), tdr, p), raw(Status::SUCCESS), 0, 0);
  const SeptEntry e = entry(kGpa, 1);
  EXPECT_EQ(SeptState::NL_MAPPED, e.state());
  EXPECT_EQ(Hex(p), Hex(e.hpa_bits()));
  EXPECT_FALSE(e.locked());
  SeptPage* t = m.sept_page(p);
  ASSERT_NE(nullptr, t);
  for (auto& x : t->e) EXPECT_EQ(SeptState::FREE, SeptEntry{x.load()}.state());
  EXPECT_EQ(chld + 1, td().chldcnt.load());
  const PamtEntry& pe = m.pamt_4k(p >> 12);
  EXPECT_EQ(PageType::EPT, pe.type);
  EXPECT_EQ(Hex(tdr), Hex(pe.owner));
  EXPECT_EQ(0u, pe.bepoch);
  EXPECT_FALSE(pe.lock.held());
  EXPECT_TRUE(m.walk(td(), kGpa, kLevel4K).reached);
}

TEST_F(SeptAdd, AllowedWhenRunnableWithoutTracking) {
  ASSERT_STATUS(raw(Status::SUCCESS), finalize());
  EXPECT_STATUS(raw(Status::SUCCESS), Add(gl(kGpa, 1), tdr, page4k()).rax);
}

TEST_F(SeptAdd, Version1AddsTable) {
  const uint64_t p = page4k();
  EXPECT_STATUS(raw(Status::SUCCESS), Add(gl(kGpa, 1), tdr, p, 1).rax);
  EXPECT_EQ(Hex(p), Hex(entry(kGpa, 1).hpa_bits()));
}

// §0 / §2.0 step 1: TD handle bits 11:1 and 63:52 are reserved; bit 0 is ALLOW_EXISTING.
TEST_F(SeptAdd, TdHandleReservedBitsAreInvalidRdx) {
  const int64_t chld = td().chldcnt;
  for (uint64_t bit : {1, 5, 11, 52, 60, 63}) {
    SCOPED_TRACE(bit);
    ExpectDetails(Add(gl(kGpa, 1), tdr | (1ull << bit), page4k()), 0xC000010000000002ull, 0, 0);
  }
  ExpectUntouched(chld);
}

TEST_F(SeptAdd, AllowExistingBitIsNotReserved) {
  const uint64_t p = page4k();
  EXPECT_STATUS(raw(Status::SUCCESS), Add(gl(kGpa, 1), tdr | 1, p).rax);
  EXPECT_EQ(Hex(p), Hex(entry(kGpa, 1).hpa_bits()));  // a FREE entry takes the page
}

TEST_F(SeptAdd, TdHandleReservedBitsBeatVersion) {
  EXPECT_STATUS(raw(Status::OPERAND_INVALID, Operand::RDX),
                Add(gl(kGpa, 1), tdr | 2, page4k(), 2).rax);
}

TEST_F(SeptAdd, VersionAboveOneIsInvalidRaxBeforeTdrChecks) {
  EXPECT_STATUS(raw(Status::OPERAND_INVALID, Operand::RAX), Add(gl(kGpa, 1), tdr, page4k(), 2).rax);
  EXPECT_STATUS(raw(Status::OPERAND_INVALID, Operand::RAX),
                Add(gl(kGpa, 1), 0x1000, page4k(), 2).rax);
}

// §2.1: only FREE and NL_MAPPED entries can take a table.
TEST_F(SeptAdd, LeafEntryIsStateIncorrect) {
  const uint64_t big = Aug2M();
  const int64_t chld = td().chldcnt;
  const uint64_t p = page4k();
  ExpectDetails(Add(gl(kGpa, 1), tdr, p), 0xC0000B0D00000001ull, LeafEntry(big, false),
                LevelState(1, kPubPending));
  ExpectDetails(Add(gl(kGpa, 1), tdr | 1, p), raw(Status::EPT_ENTRY_STATE_INCORRECT, Operand::RCX),
                LeafEntry(big, false), LevelState(1, kPubPending));
  ASSERT_STATUS(raw(Status::SUCCESS), block(kGpa, 1));
  ExpectDetails(Add(gl(kGpa, 1), tdr, p), raw(Status::EPT_ENTRY_STATE_INCORRECT, Operand::RCX),
                LeafEntry(big, false), LevelState(1, kPubPendingBlocked));
  EXPECT_EQ(chld, td().chldcnt.load());
  EXPECT_EQ(PageType::NDA, m.pamt_4k(p >> 12).type);
  EXPECT_FALSE(m.pamt_4k(p >> 12).lock.held());
  EXPECT_FALSE(entry(kGpa, 1).locked());
}

TEST_F(SeptAdd, BlockedTableIsStateIncorrectEvenWithAllowExisting) {
  ASSERT_STATUS(raw(Status::SUCCESS), sept_add(kGpa, 1));
  ASSERT_STATUS(raw(Status::SUCCESS), block(kGpa, 1));
  for (uint64_t rdx : {tdr, tdr | 1}) {
    ExpectDetails(Add(gl(kGpa, 1), rdx, page4k()),
                  raw(Status::EPT_ENTRY_STATE_INCORRECT, Operand::RCX), kNlBlockedEntry,
                  LevelState(1, kPubNlBlocked));
  }
}

TEST_F(SeptAdd, ExistingTableWithoutAllowExistingIsStateIncorrect) {
  ASSERT_STATUS(raw(Status::SUCCESS), sept_add(kGpa, 1));
  const int64_t chld = td().chldcnt;
  const uint64_t p = page4k();
  ExpectDetails(Add(gl(kGpa, 1), tdr, p), raw(Status::EPT_ENTRY_STATE_INCORRECT, Operand::RCX),
                kNlMappedEntry, LevelState(1, kPubNlMapped));
  EXPECT_EQ(chld, td().chldcnt.load());
  EXPECT_EQ(PageType::NDA, m.pamt_4k(p >> 12).type);
}

// The state check precedes the new-page checks.
TEST_F(SeptAdd, StateIncorrectBeatsBadNewPage) {
  ASSERT_STATUS(raw(Status::SUCCESS), sept_add(kGpa, 1));
  ExpectDetails(Add(gl(kGpa, 1), tdr, 0x1800), raw(Status::EPT_ENTRY_STATE_INCORRECT, Operand::RCX),
                kNlMappedEntry, LevelState(1, kPubNlMapped));
}

TEST_F(SeptAdd, ExistingTableWithAllowExistingSucceedsWithoutUsingPage) {
  ASSERT_STATUS(raw(Status::SUCCESS), sept_add(kGpa, 1));
  const uint64_t table = entry(kGpa, 1).hpa_bits();
  const int64_t chld = td().chldcnt;
  const uint64_t p = page4k();
  ExpectDetails(Add(gl(kGpa, 1), tdr | 1, p), raw(Status::SUCCESS), 0, 0);
  EXPECT_EQ(Hex(table), Hex(entry(kGpa, 1).hpa_bits()));
  EXPECT_EQ(chld, td().chldcnt.load());
  EXPECT_EQ(PageType::NDA, m.pamt_4k(p >> 12).type);
  // Version 1 reports the unused page with bit 63 set.
  const Regs r = Add(gl(kGpa, 1), tdr | 1, p, 1);
  EXPECT_STATUS(raw(Status::SUCCESS), r.rax);
  EXPECT_EQ(Hex(p | (1ull << 63)), Hex(r.r8));
}

// An existing table with ALLOW_EXISTING never looks at R8 (§2.1).
TEST_F(SeptAdd, AllowExistingIgnoresBadNewPage) {
  ASSERT_STATUS(raw(Status::SUCCESS), sept_add(kGpa, 1));
  EXPECT_STATUS(raw(Status::SUCCESS), Add(gl(kGpa, 1), tdr | 1, 0x1800).rax);
}

// NULL_PA is all-ones: version 0 needs a page, version 1 accepts none for an existing table.
TEST_F(SeptAdd, NullPageVersion0IsInvalidR8) {
  const int64_t chld = td().chldcnt;
  ExpectDetails(Add(gl(kGpa, 1), tdr, kNullPa), 0xC000010000000008ull, 0, 0);
  ExpectDetails(Add(gl(kGpa, 1), tdr | 1, kNullPa), raw(Status::OPERAND_INVALID, Operand::R8), 0,
                0);
  ExpectUntouched(chld);
}

TEST_F(SeptAdd, StateIncorrectBeatsNullPage) {
  const uint64_t big = Aug2M();
  ExpectDetails(Add(gl(kGpa, 1), tdr, kNullPa),
                raw(Status::EPT_ENTRY_STATE_INCORRECT, Operand::RCX), LeafEntry(big, false),
                LevelState(1, kPubPending));
}

TEST_F(SeptAdd, NullPageVersion1RequiresExistingTable) {
  ExpectDetails(Add(gl(kGpa, 1), tdr, kNullPa, 1),
                raw(Status::EPT_ENTRY_STATE_INCORRECT, Operand::RCX), kFreeEntry,
                LevelState(1, kPubFree));
  ASSERT_STATUS(raw(Status::SUCCESS), sept_add(kGpa, 1));
  const int64_t chld = td().chldcnt;
  EXPECT_STATUS(raw(Status::SUCCESS), Add(gl(kGpa, 1), tdr, kNullPa, 1).rax);
  EXPECT_EQ(chld, td().chldcnt.load());
}

TEST_F(SeptAdd, NewPageBit63IsIgnored) {
  const uint64_t p = page4k();
  EXPECT_STATUS(raw(Status::SUCCESS), Add(gl(kGpa, 1), tdr, p | (1ull << 63)).rax);
  EXPECT_EQ(Hex(p), Hex(entry(kGpa, 1).hpa_bits()));
  EXPECT_EQ(PageType::EPT, m.pamt_4k(p >> 12).type);
}

// §2.1 new page checks, in order: address, TDMR, PAMT lock, PAMT type/size.
TEST_F(SeptAdd, NewPageBadAddressIsInvalidR8) {
  const int64_t chld = td().chldcnt;
  const uint64_t p = page4k();
  for (uint64_t r8 : {p | 0x800ull, p | (1ull << 46), p | (1ull << 52)}) {
    ExpectDetails(Add(gl(kGpa, 1), tdr, r8), raw(Status::OPERAND_INVALID, Operand::R8), 0, 0);
  }
  ExpectUntouched(chld);
  EXPECT_EQ(PageType::NDA, m.pamt_4k(p >> 12).type);
  EXPECT_FALSE(m.pamt_4k(p >> 12).lock.held());
}

TEST_F(SeptAdd, NewPageOutsideTdmrIsAddrRangeR8) {
  const int64_t chld = td().chldcnt;
  ExpectDetails(Add(gl(kGpa, 1), tdr, 0x1000), 0xC000010100000008ull, 0, 0);
  ExpectDetails(Add(gl(kGpa, 1), tdr, kPoolEnd), raw(Status::OPERAND_ADDR_RANGE_ERROR, Operand::R8),
                0, 0);
  ExpectUntouched(chld);
}

TEST_F(SeptAdd, NewPageBadAddressBeatsOutsideTdmr) {
  EXPECT_STATUS(raw(Status::OPERAND_INVALID, Operand::R8), Add(gl(kGpa, 1), tdr, 0x1800).rax);
}

TEST_F(SeptAdd, NewPagePamtLockedIsBusyR8) {
  const int64_t chld = td().chldcnt;
  const uint64_t p = page4k();
  PamtEntry& pe = m.pamt_4k(p >> 12);
  ASSERT_TRUE(pe.lock.try_shared());  // the page's PAMT entry is taken exclusively
  ExpectDetails(Add(gl(kGpa, 1), tdr, p), 0x8000020000000008ull, 0, 0);
  pe.lock.release_shared();
  ExpectUntouched(chld);
  EXPECT_STATUS(raw(Status::SUCCESS), Add(gl(kGpa, 1), tdr, p).rax);
}

TEST_F(SeptAdd, NewPageInUseIsMetadataIncorrectR8) {
  const int64_t chld = td().chldcnt;
  ExpectDetails(Add(gl(kGpa, 1), tdr, td().tdcs), 0xC000030000000008ull, 0, 0);
  ExpectDetails(Add(gl(kGpa, 1), tdr, td().root), raw(Status::PAGE_METADATA_INCORRECT, Operand::R8),
                0, 0);
  ExpectDetails(Add(gl(kGpa, 1), tdr, entry(kGpa, 2).hpa_bits()),  // an existing S-EPT page
                raw(Status::PAGE_METADATA_INCORRECT, Operand::R8), 0, 0);
  ExpectUntouched(chld);
  EXPECT_FALSE(m.pamt_4k(td().tdcs >> 12).lock.held());
}

// A 4K page inside a 2M guest page is tracked by the 2M PAMT entry: not a free 4K page.
TEST_F(SeptAdd, NewPageInside2MGuestPageIsMetadataIncorrectR8) {
  map_tables(kGpa + (1ull << 30), kLevel2M);
  const uint64_t big = page2m();
  ASSERT_STATUS(raw(Status::SUCCESS),
                call(Leaf::MEM_PAGE_AUG, gl(kGpa + (1ull << 30), 1), tdr, big).rax);
  EXPECT_STATUS(raw(Status::PAGE_METADATA_INCORRECT, Operand::R8),
                Add(gl(kGpa, 1), tdr, big + 0x3000).rax);
  EXPECT_FALSE(m.pamt_2m(big >> 12).lock.held());
}

TEST_F(SeptAdd, NewPagePamtBusyBeatsInUse) {
  PamtEntry& pe = m.pamt_4k(td().tdcs >> 12);
  ASSERT_TRUE(pe.lock.try_exclusive());
  EXPECT_STATUS(raw(Status::OPERAND_BUSY, Operand::R8), Add(gl(kGpa, 1), tdr, td().tdcs).rax);
  pe.lock.release_exclusive();
}

// The entry lock (§2.0 step 10) precedes the leaf's state check.
TEST_F(SeptAdd, EntryLockBeatsStateCheck) {
  const uint64_t big = Aug2M();
  std::atomic<uint64_t>* s = m.walk(td(), kGpa, 1).slot;
  s->fetch_or(kTdel);
  ExpectDetails(Add(gl(kGpa, 1), tdr, page4k()), raw(Status::OPERAND_BUSY, Operand::RCX),
                LeafEntry(big, false), LevelState(1, kPubPending));
  s->fetch_and(~kTdel);
}

// Shared holders of the tree lock do not exclude each other (§8.2).
TEST_F(SeptAdd, RunsUnderSharedTreeLock) {
  ASSERT_TRUE(td().sept_lock.try_shared());
  EXPECT_STATUS(raw(Status::SUCCESS), Add(gl(kGpa, 1), tdr, page4k()).rax);
  td().sept_lock.release_shared();
}

class SeptRemove : public TdxTest {
 protected:
  // kGpa's 2M entry (level 1) is NL_MAPPED with an empty page table under it.
  void SetUp() override {
    map_tables(kGpa, kLevel4K);
    table = entry(kGpa, 1).hpa_bits();
    ASSERT_EQ(PageType::EPT, m.pamt_4k(table >> 12).type);
  }
  Regs Remove(uint64_t page_info, unsigned version = 0) {
    return call(Leaf::MEM_SEPT_REMOVE, page_info, tdr, 0, 0, version);
  }
  void ExpectRemoved(const Regs& r, int64_t chld) {
    ExpectDetails(r, raw(Status::SUCCESS), table, 0);  // RCX = the freed S-EPT page (§2.2)
    EXPECT_EQ(SeptState::FREE, entry(kGpa, 1).state());
    EXPECT_FALSE(entry(kGpa, 1).locked());
    EXPECT_EQ(chld - 1, td().chldcnt.load());
    const PamtEntry& pe = m.pamt_4k(table >> 12);
    EXPECT_EQ(PageType::NDA, pe.type);
    EXPECT_EQ(0u, pe.owner);
    EXPECT_FALSE(pe.lock.held());
    EXPECT_EQ(nullptr, m.sept_page(table));
    EXPECT_FALSE(m.walk(td(), kGpa, kLevel4K).reached);
  }
  void ExpectKept(SeptState s) {
    EXPECT_EQ(s, entry(kGpa, 1).state());
    EXPECT_FALSE(entry(kGpa, 1).locked());
    EXPECT_EQ(PageType::EPT, m.pamt_4k(table >> 12).type);
    EXPECT_FALSE(m.pamt_4k(table >> 12).lock.held());
  }
  uint64_t table = 0;
};

TEST_F(SeptRemove, InitializedRemovesEmptyTableWithoutBlock) {
  const int64_t chld = td().chldcnt;
  ExpectRemoved(Remove(gl(kGpa, 1)), chld);
}

TEST_F(SeptRemove, Version1Accepted) {
  const int64_t chld = td().chldcnt;
  ExpectRemoved(Remove(gl(kGpa, 1), 1), chld);
}

TEST_F(SeptRemove, VersionAboveOneIsInvalidRaxBeforeTdrChecks) {
  ExpectDetails(Remove(gl(kGpa, 1), 2), raw(Status::OPERAND_INVALID, Operand::RAX), 0, 0);
  EXPECT_STATUS(raw(Status::OPERAND_INVALID, Operand::RAX),
                call(Leaf::MEM_SEPT_REMOVE, gl(kGpa, 1), 0x1000, 0, 0, 2).rax);
  ExpectKept(SeptState::NL_MAPPED);
}

TEST_F(SeptRemove, InitializedRemovesBlockedTable) {
  ASSERT_STATUS(raw(Status::SUCCESS), block(kGpa, 1));
  const int64_t chld = td().chldcnt;
  ExpectRemoved(Remove(gl(kGpa, 1)), chld);
}

TEST_F(SeptRemove, FreeEntryIsStateIncorrect) {
  ExpectDetails(Remove(gl(kGpa + (2ull << 20), 1)),
                raw(Status::EPT_ENTRY_STATE_INCORRECT, Operand::RCX), kFreeEntry,
                LevelState(1, kPubFree));
}

TEST_F(SeptRemove, LeafEntryIsStateIncorrect) {
  const uint64_t gpa = kGpa + (2ull << 20);
  const uint64_t big = page2m();
  ASSERT_STATUS(raw(Status::SUCCESS), call(Leaf::MEM_PAGE_AUG, gl(gpa, 1), tdr, big).rax);
  ExpectDetails(Remove(gl(gpa, 1)), raw(Status::EPT_ENTRY_STATE_INCORRECT, Operand::RCX),
                LeafEntry(big, false), LevelState(1, kPubPending));
  EXPECT_EQ(PageType::REG, m.pamt_2m(big >> 12).type);
}

// The state check comes before the PAMT lock of the (would-be) child page.
TEST_F(SeptRemove, StateIncorrectBeatsChildPamtBusy) {
  const uint64_t gpa = kGpa + (2ull << 20);
  const uint64_t big = page2m();
  ASSERT_STATUS(raw(Status::SUCCESS), call(Leaf::MEM_PAGE_AUG, gl(gpa, 1), tdr, big).rax);
  PamtEntry& pe = m.pamt_4k(big >> 12);
  ASSERT_TRUE(pe.lock.try_exclusive());
  EXPECT_STATUS(raw(Status::EPT_ENTRY_STATE_INCORRECT, Operand::RCX), Remove(gl(gpa, 1)).rax);
  pe.lock.release_exclusive();
}

TEST_F(SeptRemove, ChildPamtLockedIsBusyRcx) {
  PamtEntry& pe = m.pamt_4k(table >> 12);
  ASSERT_TRUE(pe.lock.try_shared());
  ExpectDetails(Remove(gl(kGpa, 1)), 0x8000020000000001ull, 0, 0);
  pe.lock.release_shared();
  ExpectKept(SeptState::NL_MAPPED);
}

TEST_F(SeptRemove, ChildPamtBusyBeatsNotBlocked) {
  ASSERT_STATUS(raw(Status::SUCCESS), finalize());
  PamtEntry& pe = m.pamt_4k(table >> 12);
  ASSERT_TRUE(pe.lock.try_exclusive());
  ExpectDetails(Remove(gl(kGpa, 1)), raw(Status::OPERAND_BUSY, Operand::RCX), 0, 0);
  pe.lock.release_exclusive();
}

// §7: once RUNNABLE, the table must be blocked and the block TLB-tracked.
TEST_F(SeptRemove, RunnableUnblockedTableIsNotBlocked) {
  ASSERT_STATUS(raw(Status::SUCCESS), finalize());
  ExpectDetails(Remove(gl(kGpa, 1)), 0xC0000B0600000001ull, kNlMappedEntry,
                LevelState(1, kPubNlMapped));
  ExpectKept(SeptState::NL_MAPPED);
}

// Not blocked, not tracked and not empty at once: "not blocked" is reported (§8.8).
TEST_F(SeptRemove, NotBlockedBeatsTrackingAndNotFree) {
  ASSERT_STATUS(raw(Status::SUCCESS), aug(kGpa, kLevel4K));
  ASSERT_STATUS(raw(Status::SUCCESS), block(kGpa, 1));  // BEPOCH := 1
  ASSERT_STATUS(raw(Status::SUCCESS), unblock(kGpa, 1));
  ASSERT_STATUS(raw(Status::SUCCESS), finalize());
  ASSERT_FALSE(Module::is_tlb_tracked(td(), m.pamt_4k(table >> 12).bepoch));
  ExpectDetails(Remove(gl(kGpa, 1)), raw(Status::GPA_RANGE_NOT_BLOCKED, Operand::RCX),
                kNlMappedEntry, LevelState(1, kPubNlMapped));
}

TEST_F(SeptRemove, RunnableBlockWithoutTrackIsTrackingNotDone) {
  ASSERT_STATUS(raw(Status::SUCCESS), finalize());
  ASSERT_STATUS(raw(Status::SUCCESS), block(kGpa, 1));
  ExpectDetails(Remove(gl(kGpa, 1)), 0xC0000B0800000001ull, 0, 0);
  ExpectKept(SeptState::NL_BLOCKED);
}

TEST_F(SeptRemove, TrackingNotDoneBeatsNotFree) {
  ASSERT_STATUS(raw(Status::SUCCESS), aug(kGpa, kLevel4K));
  ASSERT_STATUS(raw(Status::SUCCESS), finalize());
  ASSERT_STATUS(raw(Status::SUCCESS), block(kGpa, 1));
  ExpectDetails(Remove(gl(kGpa, 1)), raw(Status::TLB_TRACKING_NOT_DONE, Operand::RCX), 0, 0);
}

TEST_F(SeptRemove, RunnableNonEmptyTableIsPageNotFreeWithParentDetails) {
  ASSERT_STATUS(raw(Status::SUCCESS), aug(kGpa + 0x5000, kLevel4K));
  ASSERT_STATUS(raw(Status::SUCCESS), finalize());
  ASSERT_STATUS(raw(Status::SUCCESS), block(kGpa, 1));
  ASSERT_STATUS(raw(Status::SUCCESS), track());
  ExpectDetails(Remove(gl(kGpa, 1)), 0xC0000B0E00000001ull, kNlBlockedEntry,
                LevelState(1, kPubNlBlocked));
  ExpectKept(SeptState::NL_BLOCKED);
}

TEST_F(SeptRemove, InitializedNonEmptyTableIsPageNotFree) {
  ASSERT_STATUS(raw(Status::SUCCESS), aug(kGpa + 0x1ff000, kLevel4K));  // the last entry
  ExpectDetails(Remove(gl(kGpa, 1)), raw(Status::EPT_PAGE_NOT_FREE, Operand::RCX), kNlMappedEntry,
                LevelState(1, kPubNlMapped));
  ExpectKept(SeptState::NL_MAPPED);
}

TEST_F(SeptRemove, RunnableSucceedsAfterBlockAndTrack) {
  ASSERT_STATUS(raw(Status::SUCCESS), finalize());
  ASSERT_STATUS(raw(Status::SUCCESS), block(kGpa, 1));
  ASSERT_STATUS(raw(Status::SUCCESS), track());
  const int64_t chld = td().chldcnt;
  ExpectRemoved(Remove(gl(kGpa, 1)), chld);
}

// §3: the child table's BEPOCH is tracked only once vCPUs in guest mode at TRACK time exit.
TEST_F(SeptRemove, OneTrackWaitsForVcpuThatWasInGuest) {
  ASSERT_STATUS(raw(Status::SUCCESS), finalize());
  ASSERT_STATUS(raw(Status::SUCCESS), enter(0));
  ASSERT_STATUS(raw(Status::SUCCESS), block(kGpa, 1));
  ASSERT_STATUS(raw(Status::SUCCESS), track());
  EXPECT_STATUS(raw(Status::TLB_TRACKING_NOT_DONE, Operand::RCX), Remove(gl(kGpa, 1)).rax);
  ASSERT_TRUE(exit(0));
  const int64_t chld = td().chldcnt;
  ExpectRemoved(Remove(gl(kGpa, 1)), chld);
}

// A table is removable only when empty: a 1G table holding a 2M table is not.
TEST_F(SeptRemove, UpperTableRemovableOnlyAfterLowerOne) {
  ExpectDetails(Remove(gl(kGpa, 2)), raw(Status::EPT_PAGE_NOT_FREE, Operand::RCX), kNlMappedEntry,
                LevelState(2, kPubNlMapped));
  ASSERT_STATUS(raw(Status::SUCCESS), Remove(gl(kGpa, 1)).rax);
  const uint64_t pd = entry(kGpa, 2).hpa_bits();
  const Regs r = Remove(gl(kGpa, 2));
  ExpectDetails(r, raw(Status::SUCCESS), pd, 0);
}

TEST_F(SeptRemove, EntryLockBeatsStateCheck) {
  std::atomic<uint64_t>* s = m.walk(td(), kGpa + (2ull << 20), 1).slot;
  s->fetch_or(kTdel);
  ExpectDetails(Remove(gl(kGpa + (2ull << 20), 1)), raw(Status::OPERAND_BUSY, Operand::RCX),
                kFreeEntry, LevelState(1, kPubFree));
  EXPECT_TRUE(SeptEntry{s->load()}.host_priority());
  s->fetch_and(~(kTdel | kTdhp));
}

}  // namespace
}  // namespace tdx::testing
