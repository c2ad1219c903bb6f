// TDH.MEM.PAGE.ADD, TDH.MEM.PAGE.AUG and TDH.MEM.PAGE.REMOVE after the prologue
// (tdx-module.md §2.3, §2.4, §2.8, §3): each leaf-specific check with its exact status and
// details, its order against its neighbours, the TLB-tracked predicate as REMOVE sees it, and
// the effects of success on the entry, CHLDCNT and the PAMT.
#include <cstdio>
#include <string>

#include "tests/tdx_encodings.h"
#include "tests/tdx_fixture.h"

namespace tdx::testing {
namespace {

constexpr uint64_t kGpa = 0x40000000;       // 1G-aligned
constexpr uint64_t kOtherGpa = 0x80000000;  // another 1G region
constexpr uint64_t kPoolEnd = (kHostBasePfn + kHostPages) << 12;

class PageTest : public TdxTest {
 protected:
  Regs CallAdd(uint64_t gpa, uint64_t r8, uint64_t r9) {
    return call(Leaf::MEM_PAGE_ADD, gl(gpa, kLevel4K), tdr, r8, r9);
  }
  Regs Aug(uint64_t gpa, int level, uint64_t r8) {
    return call(Leaf::MEM_PAGE_AUG, gl(gpa, level), tdr, r8);
  }
  Regs Remove(uint64_t gpa, int level) { return call(Leaf::MEM_PAGE_REMOVE, gl(gpa, level), tdr); }

  // A MAPPED 4K page made by PAGE.ADD (TD not yet finalized); returns its HPA.
  uint64_t AddPage(uint64_t gpa) {
    map_tables(gpa, kLevel4K);
    const uint64_t p = page4k();
    EXPECT_STATUS(raw(Status::SUCCESS), CallAdd(gpa, p, page4k()).rax);
    return p;
  }
  // A PENDING page made by AUG; returns its HPA.
  uint64_t AugPage(uint64_t gpa, int level) {
    map_tables(gpa, level);
    const uint64_t p = level == kLevel2M ? page2m() : page4k();
    EXPECT_STATUS(raw(Status::SUCCESS), Aug(gpa, level, p).rax);
    return p;
  }
  std::atomic<uint64_t>* slot(uint64_t gpa, int level) { return m.walk(td(), gpa, level).slot; }
};

// ---- TDH.MEM.PAGE.ADD (§2.3)

class PageAdd : public PageTest {
 protected:
  void SetUp() override {
    map_tables(kGpa, kLevel4K);
    src = page4k();
    host.content(src >> 12) = 0x5eed5eed;
  }
  // A failed PAGE.ADD left no trace.
  void ExpectUntouched(int64_t chld, uint64_t mrtd) {
    EXPECT_EQ(SeptState::FREE, entry(kGpa, 0).state());
    EXPECT_EQ(chld, td().chldcnt.load());
    EXPECT_EQ(mrtd, td().mrtd);
    EXPECT_FALSE(m.pamt_4k(tdr >> 12).lock.held());
  }
  uint64_t src = 0;
};

TEST_F(PageAdd, SuccessMapsCopiesMeasuresAndAccounts) {
  const int64_t chld = td().chldcnt;
  const uint64_t mrtd = td().mrtd;
  const uint64_t p = page4k();
  ExpectDetails(CallAdd(kGpa, p, src), raw(Status::SUCCESS), 0, 0);
  const SeptEntry e = entry(kGpa, 0);
  EXPECT_EQ(SeptState::MAPPED, e.state());
  EXPECT_EQ(Hex(p), Hex(e.hpa_bits()));
  EXPECT_FALSE(e.locked());
  EXPECT_EQ(Hex(0x5eed5eed), Hex(host.content(p >> 12)));
  EXPECT_NE(mrtd, td().mrtd);
  EXPECT_EQ(chld + 1, td().chldcnt.load());
  const PamtEntry& pe = m.pamt_4k(p >> 12);
  EXPECT_EQ(PageType::REG, pe.type);
  EXPECT_EQ(Hex(tdr), Hex(pe.owner));
  EXPECT_EQ(0u, pe.bepoch);
  EXPECT_FALSE(pe.lock.held());
  EXPECT_FALSE(m.pamt_4k(tdr >> 12).lock.held());
}

// §7: PAGE.ADD is for the build phase only.
TEST_F(PageAdd, AfterFinalizeIsOpStateIncorrect) {
  ASSERT_STATUS(raw(Status::SUCCESS), finalize());
  const int64_t chld = td().chldcnt;
  ExpectDetails(CallAdd(kGpa, page4k(), src), 0xC000060800000000ull, 0, 0);
  ExpectUntouched(chld, td().mrtd);
}

TEST_F(PageAdd, OpStateIncorrectBeatsBadPageInfo) {
  ASSERT_STATUS(raw(Status::SUCCESS), finalize());
  EXPECT_STATUS(raw(Status::OP_STATE_INCORRECT),
                call(Leaf::MEM_PAGE_ADD, gl(kGpa, kLevel2M), tdr, page4k(), src).rax);
}

// §2.3 note, §8.20: a vCPU in guest mode holds the TDR shared, and the TDR lock precedes the
// op-state check, so PAGE.ADD then reports the TDR busy rather than the op state.
TEST_F(PageAdd, TdrBusyFromRunningVcpuBeatsOpStateIncorrect) {
  ASSERT_STATUS(raw(Status::SUCCESS), finalize());
  ASSERT_STATUS(raw(Status::SUCCESS), enter(0));
  ExpectDetails(CallAdd(kGpa, page4k(), src), 0x8000020000000002ull, 0, 0);
  ASSERT_TRUE(exit(0));
  EXPECT_STATUS(raw(Status::OP_STATE_INCORRECT), CallAdd(kGpa, page4k(), src).rax);
}

TEST_F(PageAdd, MappedEntryIsStateIncorrect) {
  const uint64_t first = page4k();
  ASSERT_STATUS(raw(Status::SUCCESS), CallAdd(kGpa, first, src).rax);
  const int64_t chld = td().chldcnt;
  const uint64_t mrtd = td().mrtd;
  const uint64_t p = page4k();
  ExpectDetails(CallAdd(kGpa, p, src), 0xC0000B0D00000001ull, MappedEntry(first),
                LevelState(0, kPubMapped));
  EXPECT_EQ(chld, td().chldcnt.load());
  EXPECT_EQ(mrtd, td().mrtd);
  EXPECT_EQ(PageType::NDA, m.pamt_4k(p >> 12).type);
  EXPECT_FALSE(m.pamt_4k(p >> 12).lock.held());
  EXPECT_EQ(Hex(first), Hex(entry(kGpa, 0).hpa_bits()));
}

TEST_F(PageAdd, PendingEntryIsStateIncorrect) {
  const uint64_t p = AugPage(kGpa, kLevel4K);
  ExpectDetails(CallAdd(kGpa, page4k(), src), raw(Status::EPT_ENTRY_STATE_INCORRECT, Operand::RCX),
                UnmappedLeafEntry(p), LevelState(0, kPubPending));
}

TEST_F(PageAdd, WalkStopsAt2MLeaf) {
  const uint64_t big = AugPage(kOtherGpa, kLevel2M);
  ExpectDetails(CallAdd(kOtherGpa + 0x1000, page4k(), src), 0xC0000B0000000001ull,
                UnmappedLeafEntry(big), LevelState(1, kPubPending));
}

TEST_F(PageAdd, StateIncorrectBeatsBadSource) {
  ASSERT_STATUS(raw(Status::SUCCESS), CallAdd(kGpa, page4k(), src).rax);
  EXPECT_STATUS(raw(Status::EPT_ENTRY_STATE_INCORRECT, Operand::RCX),
                CallAdd(kGpa, page4k(), src | 0x10).rax);
}

TEST_F(PageAdd, BadSourceIsInvalidR9) {
  const int64_t chld = td().chldcnt;
  const uint64_t mrtd = td().mrtd;
  const uint64_t p = page4k();
  for (uint64_t r9 : {src | 0x10ull, src | (1ull << 46), src | (1ull << 52)}) {
    ExpectDetails(CallAdd(kGpa, p, r9), 0xC000010000000009ull, 0, 0);
  }
  ExpectUntouched(chld, mrtd);
  EXPECT_EQ(PageType::NDA, m.pamt_4k(p >> 12).type);
}

TEST_F(PageAdd, BadSourceBeatsBadTarget) {
  EXPECT_STATUS(raw(Status::OPERAND_INVALID, Operand::R9), CallAdd(kGpa, 0x1800, src | 0x10).rax);
  EXPECT_STATUS(raw(Status::OPERAND_INVALID, Operand::R9),
                CallAdd(kGpa, td().tdcs, src | 0x10).rax);
}

// Target page (R8): address, TDMR, PAMT lock, PAMT type (4K NDA).
TEST_F(PageAdd, BadTargetAddressIsInvalidR8) {
  const int64_t chld = td().chldcnt;
  const uint64_t p = page4k();
  for (uint64_t r8 : {p | 0x800ull, p | (1ull << 46), p | (1ull << 52)}) {
    ExpectDetails(CallAdd(kGpa, r8, src), raw(Status::OPERAND_INVALID, Operand::R8), 0, 0);
  }
  ExpectUntouched(chld, td().mrtd);
}

TEST_F(PageAdd, TargetOutsideTdmrIsAddrRangeR8) {
  ExpectDetails(CallAdd(kGpa, 0x1000, src), raw(Status::OPERAND_ADDR_RANGE_ERROR, Operand::R8), 0,
                0);
  ExpectDetails(CallAdd(kGpa, kPoolEnd, src), raw(Status::OPERAND_ADDR_RANGE_ERROR, Operand::R8), 0,
                0);
  EXPECT_STATUS(raw(Status::OPERAND_INVALID, Operand::R8), CallAdd(kGpa, 0x1800, src).rax);
}

TEST_F(PageAdd, TargetPamtLockedIsBusyR8) {
  const uint64_t p = page4k();
  PamtEntry& pe = m.pamt_4k(p >> 12);
  ASSERT_TRUE(pe.lock.try_shared());
  ExpectDetails(CallAdd(kGpa, p, src), raw(Status::OPERAND_BUSY, Operand::R8), 0, 0);
  pe.lock.release_shared();
  EXPECT_EQ(SeptState::FREE, entry(kGpa, 0).state());
  EXPECT_STATUS(raw(Status::SUCCESS), CallAdd(kGpa, p, src).rax);
}

TEST_F(PageAdd, TargetInUseIsMetadataIncorrectR8) {
  const uint64_t big = AugPage(kOtherGpa, kLevel2M);
  const int64_t chld = td().chldcnt;
  const uint64_t mrtd = td().mrtd;
  ExpectDetails(CallAdd(kGpa, td().tdcs, src), raw(Status::PAGE_METADATA_INCORRECT, Operand::R8), 0,
                0);
  ExpectDetails(CallAdd(kGpa, tdvpr(1), src), raw(Status::PAGE_METADATA_INCORRECT, Operand::R8), 0,
                0);
  // Inside a 2M guest page: the PAMT leaf is the 2M entry, not a free 4K one.
  ExpectDetails(CallAdd(kGpa, big + 0x2000, src), raw(Status::PAGE_METADATA_INCORRECT, Operand::R8),
                0, 0);
  ExpectUntouched(chld, mrtd);
  EXPECT_FALSE(m.pamt_2m(big >> 12).lock.held());
}

TEST_F(PageAdd, TargetPamtBusyBeatsInUse) {
  PamtEntry& pe = m.pamt_4k(td().tdcs >> 12);
  ASSERT_TRUE(pe.lock.try_exclusive());
  EXPECT_STATUS(raw(Status::OPERAND_BUSY, Operand::R8), CallAdd(kGpa, td().tdcs, src).rax);
  pe.lock.release_exclusive();
}

// ---- TDH.MEM.PAGE.AUG (§2.4)

class PageAug : public PageTest {};

TEST_F(PageAug, Success4KMakesPendingLeaf) {
  map_tables(kGpa, kLevel4K);
  const int64_t chld = td().chldcnt;
  const uint64_t p = page4k();
  ExpectDetails(Aug(kGpa, 0, p), raw(Status::SUCCESS), 0, 0);
  const SeptEntry e = entry(kGpa, 0);
  EXPECT_EQ(SeptState::PENDING, e.state());
  EXPECT_EQ(Hex(p), Hex(e.hpa_bits()));
  EXPECT_FALSE(e.locked());
  EXPECT_EQ(chld + 1, td().chldcnt.load());
  const PamtEntry& pe = m.pamt_4k(p >> 12);
  EXPECT_EQ(PageType::REG, pe.type);
  EXPECT_EQ(Hex(tdr), Hex(pe.owner));
  EXPECT_EQ(0u, pe.bepoch);
  EXPECT_FALSE(pe.lock.held());
}

TEST_F(PageAug, Success2MAccountsAllPagesAt2MPamtLevel) {
  map_tables(kGpa, kLevel2M);
  const int64_t chld = td().chldcnt;
  const uint64_t big = page2m();
  ExpectDetails(Aug(kGpa, 1, big), raw(Status::SUCCESS), 0, 0);
  EXPECT_EQ(SeptState::PENDING, entry(kGpa, 1).state());
  EXPECT_EQ(Hex(big), Hex(entry(kGpa, 1).hpa_bits()));
  EXPECT_EQ(chld + 512, td().chldcnt.load());
  EXPECT_EQ(PageType::REG, m.pamt_2m(big >> 12).type);
  EXPECT_EQ(Hex(tdr), Hex(m.pamt_2m(big >> 12).owner));
  EXPECT_FALSE(m.pamt_2m(big >> 12).lock.held());
  EXPECT_EQ(PageType::NDA, m.pamt_4k(big >> 12).type);
  EXPECT_EQ(PageType::NDA, m.pamt_4k((big >> 12) + 511).type);
}

// AUG is legal both before and after TDH.MR.FINALIZE in 1.5 (§2.4).
TEST_F(PageAug, AllowedWhenRunnable) {
  map_tables(kGpa, kLevel4K);
  ASSERT_STATUS(raw(Status::SUCCESS), finalize());
  EXPECT_STATUS(raw(Status::SUCCESS), Aug(kGpa, 0, page4k()).rax);
}

TEST_F(PageAug, WalkStopsAtMissingPageTable) {
  map_tables(kGpa, kLevel2M);
  ExpectDetails(Aug(kGpa, 0, page4k()), raw(Status::EPT_WALK_FAILED, Operand::RCX), kFreeEntry,
                LevelState(1, kPubFree));
}

TEST_F(PageAug, WalkStopsAt2MLeaf) {
  const uint64_t big = AugPage(kGpa, kLevel2M);
  ExpectDetails(Aug(kGpa + 0x1000, 0, page4k()), raw(Status::EPT_WALK_FAILED, Operand::RCX),
                UnmappedLeafEntry(big), LevelState(1, kPubPending));
}

TEST_F(PageAug, On2MTableIsStateIncorrect) {
  map_tables(kGpa, kLevel4K);
  const int64_t chld = td().chldcnt;
  const uint64_t big = page2m();
  ExpectDetails(Aug(kGpa, 1, big), raw(Status::EPT_ENTRY_STATE_INCORRECT, Operand::RCX),
                kNlMappedEntry, LevelState(1, kPubNlMapped));
  EXPECT_EQ(chld, td().chldcnt.load());
  EXPECT_EQ(PageType::NDA, m.pamt_2m(big >> 12).type);
  EXPECT_FALSE(entry(kGpa, 1).locked());
}

TEST_F(PageAug, OnLeafIsStateIncorrect) {
  const uint64_t p = AugPage(kGpa, kLevel4K);
  ExpectDetails(Aug(kGpa, 0, page4k()), raw(Status::EPT_ENTRY_STATE_INCORRECT, Operand::RCX),
                UnmappedLeafEntry(p), LevelState(0, kPubPending));
  const uint64_t q = AddPage(kGpa + 0x1000);
  ExpectDetails(Aug(kGpa + 0x1000, 0, page4k()),
                raw(Status::EPT_ENTRY_STATE_INCORRECT, Operand::RCX), MappedEntry(q),
                LevelState(0, kPubMapped));
  ASSERT_STATUS(raw(Status::SUCCESS), block(kGpa + 0x1000, 0));
  ExpectDetails(Aug(kGpa + 0x1000, 0, page4k()),
                raw(Status::EPT_ENTRY_STATE_INCORRECT, Operand::RCX), UnmappedLeafEntry(q),
                LevelState(0, kPubBlocked));
}

TEST_F(PageAug, StateIncorrectBeatsBadPage) {
  AugPage(kGpa, kLevel4K);
  EXPECT_STATUS(raw(Status::EPT_ENTRY_STATE_INCORRECT, Operand::RCX), Aug(kGpa, 0, 0x1800).rax);
}

TEST_F(PageAug, PageMisalignedForItsSizeIsInvalidR8) {
  map_tables(kGpa, kLevel4K);
  map_tables(kOtherGpa, kLevel2M);
  const int64_t chld = td().chldcnt;
  const uint64_t p = page4k();
  ExpectDetails(Aug(kGpa, 0, p | 0x800), raw(Status::OPERAND_INVALID, Operand::R8), 0, 0);
  ExpectDetails(Aug(kGpa, 0, p | (1ull << 46)), raw(Status::OPERAND_INVALID, Operand::R8), 0, 0);
  const uint64_t big = page2m();
  ExpectDetails(Aug(kOtherGpa, 1, big + 0x1000), raw(Status::OPERAND_INVALID, Operand::R8), 0, 0);
  EXPECT_EQ(chld, td().chldcnt.load());
  EXPECT_EQ(SeptState::FREE, entry(kGpa, 0).state());
  EXPECT_EQ(SeptState::FREE, entry(kOtherGpa, 1).state());
  EXPECT_FALSE(entry(kGpa, 0).locked());
}

TEST_F(PageAug, PageOutsideTdmrIsAddrRangeR8) {
  map_tables(kGpa, kLevel4K);
  map_tables(kOtherGpa, kLevel2M);
  ExpectDetails(Aug(kGpa, 0, 0x1000), raw(Status::OPERAND_ADDR_RANGE_ERROR, Operand::R8), 0, 0);
  ExpectDetails(Aug(kOtherGpa, 1, kPoolEnd), raw(Status::OPERAND_ADDR_RANGE_ERROR, Operand::R8), 0,
                0);
  EXPECT_STATUS(raw(Status::OPERAND_INVALID, Operand::R8), Aug(kGpa, 0, 0x1800).rax);
}

TEST_F(PageAug, PagePamtLockedIsBusyR8) {
  map_tables(kGpa, kLevel4K);
  map_tables(kOtherGpa, kLevel2M);
  const uint64_t p = page4k();
  ASSERT_TRUE(m.pamt_4k(p >> 12).lock.try_shared());
  ExpectDetails(Aug(kGpa, 0, p), raw(Status::OPERAND_BUSY, Operand::R8), 0, 0);
  m.pamt_4k(p >> 12).lock.release_shared();
  const uint64_t big = page2m();
  ASSERT_TRUE(m.pamt_2m(big >> 12).lock.try_exclusive());  // 2M: the 2M entry is locked
  ExpectDetails(Aug(kOtherGpa, 1, big), raw(Status::OPERAND_BUSY, Operand::R8), 0, 0);
  m.pamt_2m(big >> 12).lock.release_exclusive();
  EXPECT_STATUS(raw(Status::SUCCESS), Aug(kGpa, 0, p).rax);
  EXPECT_STATUS(raw(Status::SUCCESS), Aug(kOtherGpa, 1, big).rax);
}

TEST_F(PageAug, PageInUseIsMetadataIncorrectR8) {
  map_tables(kGpa, kLevel4K);
  ExpectDetails(Aug(kGpa, 0, td().tdcs), raw(Status::PAGE_METADATA_INCORRECT, Operand::R8), 0, 0);
  ExpectDetails(Aug(kGpa, 0, entry(kGpa, 1).hpa_bits()),
                raw(Status::PAGE_METADATA_INCORRECT, Operand::R8), 0, 0);
  EXPECT_EQ(SeptState::FREE, entry(kGpa, 0).state());
}

// §8.18: a 4K page inside a 2M guest page is not free.
TEST_F(PageAug, FourKPageInside2MGuestPageIsMetadataIncorrectR8) {
  const uint64_t big = AugPage(kOtherGpa, kLevel2M);
  map_tables(kGpa, kLevel4K);
  ExpectDetails(Aug(kGpa, 0, big + 0x7000), raw(Status::PAGE_METADATA_INCORRECT, Operand::R8), 0,
                0);
  EXPECT_FALSE(m.pamt_2m(big >> 12).lock.held());
}

// §8.18: a 2M AUG needs the whole 2M range free, down to every 4K PAMT entry.
TEST_F(PageAug, TwoMRangeWithA4KPageInUseIsMetadataIncorrectR8) {
  map_tables(kGpa, kLevel4K);
  map_tables(kOtherGpa, kLevel2M);
  const uint64_t big = page2m();
  // One 4K frame of the range becomes an S-EPT page.
  ASSERT_STATUS(raw(Status::SUCCESS),
                call(Leaf::MEM_SEPT_ADD, gl(kOtherGpa + (2ull << 20), 1), tdr, big + 0x5000).rax);
  const int64_t chld = td().chldcnt;
  ExpectDetails(Aug(kOtherGpa, 1, big), raw(Status::PAGE_METADATA_INCORRECT, Operand::R8), 0, 0);
  EXPECT_EQ(chld, td().chldcnt.load());
  EXPECT_EQ(PageType::NDA, m.pamt_2m(big >> 12).type);
  EXPECT_FALSE(m.pamt_2m(big >> 12).lock.held());
}

TEST_F(PageAug, TwoMRangeAlreadyAGuestPageIsMetadataIncorrectR8) {
  const uint64_t big = AugPage(kOtherGpa, kLevel2M);
  map_tables(kGpa, kLevel2M);
  ExpectDetails(Aug(kGpa, 1, big), raw(Status::PAGE_METADATA_INCORRECT, Operand::R8), 0, 0);
}

TEST_F(PageAug, PagePamtBusyBeatsInUse) {
  map_tables(kGpa, kLevel4K);
  ASSERT_TRUE(m.pamt_4k(td().tdcs >> 12).lock.try_exclusive());
  EXPECT_STATUS(raw(Status::OPERAND_BUSY, Operand::R8), Aug(kGpa, 0, td().tdcs).rax);
  m.pamt_4k(td().tdcs >> 12).lock.release_exclusive();
}

TEST_F(PageAug, EntryLockBeatsStateCheck) {
  const uint64_t p = AugPage(kGpa, kLevel4K);
  slot(kGpa, 0)->fetch_or(kTdel);
  ExpectDetails(Aug(kGpa, 0, page4k()), raw(Status::OPERAND_BUSY, Operand::RCX),
                UnmappedLeafEntry(p), LevelState(0, kPubPending));
  slot(kGpa, 0)->fetch_and(~(kTdel | kTdhp));
}

// ---- TDH.MEM.PAGE.REMOVE (§2.8, §3)

class PageRemove : public PageTest {
 protected:
  void ExpectRemoved(const Regs& r, uint64_t gpa, int level, uint64_t hpa, int64_t chld) {
    ExpectDetails(r, raw(Status::SUCCESS), hpa, 0);  // RCX = the removed page (§2.8)
    EXPECT_EQ(SeptState::FREE, entry(gpa, level).state());
    EXPECT_FALSE(entry(gpa, level).locked());
    EXPECT_EQ(chld - static_cast<int64_t>(level_pages(level)), td().chldcnt.load());
    PamtEntry& pe = level == kLevel2M ? m.pamt_2m(hpa >> 12) : m.pamt_4k(hpa >> 12);
    EXPECT_EQ(PageType::NDA, pe.type);
    EXPECT_EQ(0u, pe.owner);
    EXPECT_FALSE(pe.lock.held());
  }
  void ExpectKept(uint64_t gpa, int level, SeptState s, uint64_t hpa) {
    EXPECT_EQ(s, entry(gpa, level).state());
    EXPECT_FALSE(entry(gpa, level).locked());
    PamtEntry& pe = level == kLevel2M ? m.pamt_2m(hpa >> 12) : m.pamt_4k(hpa >> 12);
    EXPECT_EQ(PageType::REG, pe.type);
    EXPECT_FALSE(pe.lock.held());
  }
};

// §2.8: before finalize no BLOCK/TRACK is needed.
TEST_F(PageRemove, InitializedRemovesMappedPageWithoutBlock) {
  const uint64_t p = AddPage(kGpa);
  const int64_t chld = td().chldcnt;
  ExpectRemoved(Remove(kGpa, 0), kGpa, 0, p, chld);
}

TEST_F(PageRemove, InitializedRemovesPendingPage) {
  const uint64_t p = AugPage(kGpa, kLevel4K);
  const int64_t chld = td().chldcnt;
  ExpectRemoved(Remove(kGpa, 0), kGpa, 0, p, chld);
}

TEST_F(PageRemove, InitializedRemovesBlockedAndPendingBlockedPages) {
  const uint64_t p = AddPage(kGpa);
  const uint64_t q = AugPage(kGpa + 0x1000, kLevel4K);
  ASSERT_STATUS(raw(Status::SUCCESS), block(kGpa, 0));
  ASSERT_STATUS(raw(Status::SUCCESS), block(kGpa + 0x1000, 0));
  int64_t chld = td().chldcnt;
  ExpectRemoved(Remove(kGpa, 0), kGpa, 0, p, chld);
  chld = td().chldcnt;
  ExpectRemoved(Remove(kGpa + 0x1000, 0), kGpa + 0x1000, 0, q, chld);
}

TEST_F(PageRemove, Removes2MPageAndReturnsItsBase) {
  const uint64_t big = AugPage(kGpa, kLevel2M);
  const int64_t chld = td().chldcnt;
  ExpectRemoved(Remove(kGpa, 1), kGpa, 1, big, chld);
}

// §8.15: ACCEPT_COUNTER shares bits 20:12 with the HPA of a 2M leaf; REMOVE masks it. (Injected:
// before finalize no ACCEPT can run.)
TEST_F(PageRemove, Removes2MPageIgnoringAcceptCounter) {
  const uint64_t big = AugPage(kGpa, kLevel2M);
  std::atomic<uint64_t>* s = slot(kGpa, 1);
  s->store(SeptEntry{s->load()}.with_accept_counter(77).raw);
  const int64_t chld = td().chldcnt;
  ExpectRemoved(Remove(kGpa, 1), kGpa, 1, big, chld);
}

TEST_F(PageRemove, FreeEntryIsStateIncorrect) {
  AddPage(kGpa);
  ExpectDetails(Remove(kGpa + 0x1000, 0), raw(Status::EPT_ENTRY_STATE_INCORRECT, Operand::RCX),
                kFreeEntry, LevelState(0, kPubFree));
}

TEST_F(PageRemove, TableEntryIsStateIncorrect) {
  AddPage(kGpa);
  ExpectDetails(Remove(kGpa, 1), raw(Status::EPT_ENTRY_STATE_INCORRECT, Operand::RCX),
                kNlMappedEntry, LevelState(1, kPubNlMapped));
  ASSERT_STATUS(raw(Status::SUCCESS), block(kGpa, 1));
  ExpectDetails(Remove(kGpa, 1), raw(Status::EPT_ENTRY_STATE_INCORRECT, Operand::RCX),
                kNlBlockedEntry, LevelState(1, kPubNlBlocked));
}

TEST_F(PageRemove, FourKUnder2MLeafIsWalkFailed) {
  const uint64_t big = AugPage(kGpa, kLevel2M);
  ExpectDetails(Remove(kGpa + 0x3000, 0), raw(Status::EPT_WALK_FAILED, Operand::RCX),
                UnmappedLeafEntry(big), LevelState(1, kPubPending));
}

TEST_F(PageRemove, PagePamtLockedIsBusyRcx) {
  const uint64_t p = AddPage(kGpa);
  ASSERT_TRUE(m.pamt_4k(p >> 12).lock.try_shared());
  ExpectDetails(Remove(kGpa, 0), 0x8000020000000001ull, 0, 0);
  m.pamt_4k(p >> 12).lock.release_shared();
  EXPECT_EQ(SeptState::MAPPED, entry(kGpa, 0).state());
  EXPECT_FALSE(entry(kGpa, 0).locked());
  const uint64_t big = AugPage(kOtherGpa, kLevel2M);
  ASSERT_TRUE(m.pamt_2m(big >> 12).lock.try_exclusive());  // locked at the leaf's size
  ExpectDetails(Remove(kOtherGpa, 1), raw(Status::OPERAND_BUSY, Operand::RCX), 0, 0);
  m.pamt_2m(big >> 12).lock.release_exclusive();
}

TEST_F(PageRemove, PagePamtBusyBeatsNotBlocked) {
  const uint64_t p = AddPage(kGpa);
  ASSERT_STATUS(raw(Status::SUCCESS), finalize());
  ASSERT_TRUE(m.pamt_4k(p >> 12).lock.try_exclusive());
  ExpectDetails(Remove(kGpa, 0), raw(Status::OPERAND_BUSY, Operand::RCX), 0, 0);
  m.pamt_4k(p >> 12).lock.release_exclusive();
}

TEST_F(PageRemove, RunnableMappedPageIsNotBlocked) {
  const uint64_t p = AddPage(kGpa);
  ASSERT_STATUS(raw(Status::SUCCESS), finalize());
  ExpectDetails(Remove(kGpa, 0), 0xC0000B0600000001ull, MappedEntry(p), LevelState(0, kPubMapped));
  ExpectKept(kGpa, 0, SeptState::MAPPED, p);
}

// §8.7: PENDING pages need BLOCK + TRACK too once the TD runs.
TEST_F(PageRemove, RunnablePendingPageIsNotBlocked) {
  const uint64_t p = AugPage(kGpa, kLevel4K);
  ASSERT_STATUS(raw(Status::SUCCESS), finalize());
  ExpectDetails(Remove(kGpa, 0), raw(Status::GPA_RANGE_NOT_BLOCKED, Operand::RCX),
                UnmappedLeafEntry(p), LevelState(0, kPubPending));
  ExpectKept(kGpa, 0, SeptState::PENDING, p);
}

// §8.8: an unblocked page whose BEPOCH is not tracked still reports "not blocked".
TEST_F(PageRemove, NotBlockedBeforeTrackingCheck) {
  const uint64_t p = AddPage(kGpa);
  ASSERT_STATUS(raw(Status::SUCCESS), block(kGpa, 0));  // BEPOCH := 1
  ASSERT_STATUS(raw(Status::SUCCESS), unblock(kGpa, 0));
  ASSERT_STATUS(raw(Status::SUCCESS), finalize());
  ASSERT_FALSE(Module::is_tlb_tracked(td(), m.pamt_4k(p >> 12).bepoch));
  ExpectDetails(Remove(kGpa, 0), raw(Status::GPA_RANGE_NOT_BLOCKED, Operand::RCX), MappedEntry(p),
                LevelState(0, kPubMapped));
}

// §8.9: BLOCK immediately followed by REMOVE always fails, even with no vCPU in the TD.
TEST_F(PageRemove, BlockThenRemoveWithoutTrackIsTrackingNotDone) {
  const uint64_t p = AddPage(kGpa);
  ASSERT_STATUS(raw(Status::SUCCESS), finalize());
  ASSERT_STATUS(raw(Status::SUCCESS), block(kGpa, 0));
  ExpectDetails(Remove(kGpa, 0), 0xC0000B0800000001ull, 0, 0);
  ExpectKept(kGpa, 0, SeptState::BLOCKED, p);
  ASSERT_STATUS(raw(Status::SUCCESS), enter(0));  // entering and leaving changes nothing
  ASSERT_TRUE(exit(0));
  EXPECT_STATUS(raw(Status::TLB_TRACKING_NOT_DONE, Operand::RCX), Remove(kGpa, 0).rax);
}

TEST_F(PageRemove, OneTrackSufficesWithNoVcpuInGuest) {
  const uint64_t p = AddPage(kGpa);
  ASSERT_STATUS(raw(Status::SUCCESS), finalize());
  ASSERT_STATUS(raw(Status::SUCCESS), block(kGpa, 0));
  ASSERT_STATUS(raw(Status::SUCCESS), track());
  const int64_t chld = td().chldcnt;
  ExpectRemoved(Remove(kGpa, 0), kGpa, 0, p, chld);
}

// One TRACK suffices only once every vCPU in guest mode at TRACK time has exited.
TEST_F(PageRemove, OneTrackWaitsForAllVcpusInGuestAtTrackTime) {
  const uint64_t p = AddPage(kGpa);
  ASSERT_STATUS(raw(Status::SUCCESS), finalize());
  ASSERT_STATUS(raw(Status::SUCCESS), enter(0));
  ASSERT_STATUS(raw(Status::SUCCESS), enter(1));
  ASSERT_STATUS(raw(Status::SUCCESS), block(kGpa, 0));
  ASSERT_STATUS(raw(Status::SUCCESS), track());
  EXPECT_STATUS(raw(Status::TLB_TRACKING_NOT_DONE, Operand::RCX), Remove(kGpa, 0).rax);
  ASSERT_TRUE(exit(0));
  EXPECT_STATUS(raw(Status::TLB_TRACKING_NOT_DONE, Operand::RCX), Remove(kGpa, 0).rax);
  ASSERT_TRUE(exit(1));
  const int64_t chld = td().chldcnt;
  ExpectRemoved(Remove(kGpa, 0), kGpa, 0, p, chld);
}

// A vCPU that enters after the TRACK adopts the new epoch (flushing its TLB): no wait for it.
TEST_F(PageRemove, VcpuEnteringAfterTrackDoesNotDelay) {
  const uint64_t p = AddPage(kGpa);
  ASSERT_STATUS(raw(Status::SUCCESS), finalize());
  ASSERT_STATUS(raw(Status::SUCCESS), block(kGpa, 0));
  ASSERT_STATUS(raw(Status::SUCCESS), track());
  ASSERT_STATUS(raw(Status::SUCCESS), enter(0));
  const int64_t chld = td().chldcnt;
  ExpectRemoved(Remove(kGpa, 0), kGpa, 0, p, chld);
}

// Two TRACKs always suffice: BEPOCH < TD_EPOCH - 1 is tracked whatever REFCOUNT says. Here a
// vCPU is in guest mode in an epoch of BEPOCH's parity when REMOVE runs.
TEST_F(PageRemove, TwoTracksAlwaysSuffice) {
  const uint64_t p = AddPage(kGpa);
  ASSERT_STATUS(raw(Status::SUCCESS), finalize());
  ASSERT_STATUS(raw(Status::SUCCESS), block(kGpa, 0));  // BEPOCH = 1
  ASSERT_STATUS(raw(Status::SUCCESS), enter(0));        // epoch 1
  ASSERT_STATUS(raw(Status::SUCCESS), track());         // epoch 2
  ASSERT_STATUS(raw(Status::SUCCESS), enter(1));        // epoch 2
  ASSERT_TRUE(exit(0));
  ASSERT_STATUS(raw(Status::SUCCESS), track());   // epoch 3
  ASSERT_STATUS(raw(Status::SUCCESS), enter(0));  // epoch 3: REFCOUNT[1] != 0 again
  ASSERT_EQ(3u, td().td_epoch.load());
  ASSERT_NE(0u, td().refcount[1].load());
  const int64_t chld = td().chldcnt;
  ExpectRemoved(Remove(kGpa, 0), kGpa, 0, p, chld);
}

// For a 2M leaf the BEPOCH lives in the 2M PAMT entry.
TEST_F(PageRemove, Runnable2MPageNeedsBlockAndTrack) {
  const uint64_t big = AugPage(kGpa, kLevel2M);
  ASSERT_STATUS(raw(Status::SUCCESS), finalize());
  ExpectDetails(Remove(kGpa, 1), raw(Status::GPA_RANGE_NOT_BLOCKED, Operand::RCX),
                UnmappedLeafEntry(big), LevelState(1, kPubPending));
  ASSERT_STATUS(raw(Status::SUCCESS), track());
  ASSERT_STATUS(raw(Status::SUCCESS), block(kGpa, 1));
  EXPECT_EQ(2u, m.pamt_2m(big >> 12).bepoch);
  EXPECT_STATUS(raw(Status::TLB_TRACKING_NOT_DONE, Operand::RCX), Remove(kGpa, 1).rax);
  ASSERT_STATUS(raw(Status::SUCCESS), track());
  const int64_t chld = td().chldcnt;
  ExpectRemoved(Remove(kGpa, 1), kGpa, 1, big, chld);
}

TEST_F(PageRemove, EntryLockBeatsStateCheck) {
  AddPage(kGpa);
  slot(kGpa + 0x1000, 0)->fetch_or(kTdel);
  ExpectDetails(Remove(kGpa + 0x1000, 0), raw(Status::OPERAND_BUSY, Operand::RCX), kFreeEntry,
                LevelState(0, kPubFree));
  slot(kGpa + 0x1000, 0)->fetch_and(~(kTdel | kTdhp));
}

}  // namespace
}  // namespace tdx::testing
