// TDH.MEM.PAGE.DEMOTE and TDH.MEM.PAGE.PROMOTE (tdx-module.md §2.0, §2.9, §2.10, §4, §5, §8).
// Order tests set up two failing conditions at once and assert that the earlier check wins.
#include <cstdio>
#include <functional>
#include <memory>
#include <string>

#include "tests/tdx_encodings.h"
#include "tests/tdx_fixture.h"

namespace tdx::testing {
namespace {

// Exact RAX (as a status name) and RCX/RDX (as hex) of a SEAMCALL.
constexpr uint64_t k4K = 0x1000;
constexpr uint64_t kGpa = 0x600000;  // a 2M-aligned private GPA
constexpr uint64_t kOk = raw(Status::SUCCESS);

// §2.13 encodings.
uint64_t leaf_arch(uint64_t hpa, bool mapped) {
  return kSve | hpa | 0xf0 | (mapped ? 0x7 : 0);
}
uint64_t lvl_state(int level, SeptState s) {
  return static_cast<uint64_t>(level) | static_cast<uint64_t>(public_state(s)) << 8;
}

class ResizeTest : public TdxTest {
 protected:
  explicit ResizeTest(Options o = {}) : TdxTest(o) {}

  Regs demote_r(uint64_t gpa, uint64_t r8, int level = kLevel2M) {
    return call(Leaf::MEM_PAGE_DEMOTE, gl(gpa, level), tdr, r8);
  }
  Regs promote_r(uint64_t gpa, int level = kLevel2M, unsigned version = 0) {
    return call(Leaf::MEM_PAGE_PROMOTE, gl(gpa, level), tdr, 0, 0, version);
  }

  // Runs fn once, the first time any actor reaches yield point `where`.
  void on_yield_once(std::string where, std::function<void()> fn) {
    auto done = std::make_shared<bool>(false);
    hooks.on_yield = [=](const char* w) {
      if (*done || where != w) return;
      *done = true;
      fn();
    };
  }

  // A 2M PENDING leaf at gpa; returns its HPA.
  uint64_t aug2m(uint64_t gpa) {
    map_tables(gpa, kLevel2M);
    const uint64_t hpa = page2m();
    EXPECT_STATUS(kOk, call(Leaf::MEM_PAGE_AUG, gl(gpa, kLevel2M), tdr, hpa).rax);
    return hpa;
  }
  // A 2M MAPPED leaf in a RUNNABLE TD (AUG + guest ACCEPT); no vCPU left in guest mode.
  uint64_t mapped2m_runnable(uint64_t gpa) {
    const uint64_t hpa = aug2m(gpa);
    if (td().op_state != OpState::RUNNABLE) {
      EXPECT_STATUS(kOk, finalize());
    }
    EXPECT_STATUS(kOk, enter(0));
    AcceptResult r = accept(0, gpa, kLevel2M);
    EXPECT_EQ(AcceptResult::kStatus, r.kind);
    EXPECT_STATUS(kOk, r.status);
    exit(0);
    return hpa;
  }
  // BLOCK + TRACK with no vCPU in guest mode: the range is blocked and TLB-tracked (§3).
  void block_and_track(uint64_t gpa, int level) {
    ASSERT_STATUS(kOk, block(gpa, level));
    ASSERT_STATUS(kOk, track());
  }
  // 512 4K children under a page table at gpa (before finalize): child i at hpa_of(i), MAPPED
  // through PAGE.ADD or PENDING through AUG; `skip` leaves one FREE.
  void fill_children(uint64_t gpa, const std::function<uint64_t(int)>& hpa_of, bool mapped,
                     int skip = -1) {
    map_tables(gpa, kLevel4K);
    for (int i = 0; i < 512; i++) {
      if (i == skip) continue;
      const Leaf leaf = mapped ? Leaf::MEM_PAGE_ADD : Leaf::MEM_PAGE_AUG;
      ASSERT_STATUS(kOk, call(leaf, gl(gpa + i * k4K, kLevel4K), tdr, hpa_of(i)).rax) << i;
    }
  }
  uint64_t fill_contiguous(uint64_t gpa, bool mapped) {
    const uint64_t hpa = page2m();
    fill_children(
        gpa, [&](int i) { return hpa + i * k4K; }, mapped);
    return hpa;
  }
  void expect_children_unlocked(uint64_t gpa) {
    for (int i = 0; i < 512; i++) {
      const SeptEntry e = entry(gpa + i * k4K, kLevel4K);
      EXPECT_FALSE(e.locked()) << i;
      EXPECT_FALSE(e.host_priority()) << i;
    }
  }
};

class ResizeInterruptibleTest : public ResizeTest {
 protected:
  static Options opts() {
    Options o;
    o.enhanced_demote_interruptibility = 0;
    return o;
  }
  ResizeInterruptibleTest() : ResizeTest(opts()) {}
};

// ---------------------------------------------------------------------------------------------
// DEMOTE: prologue (§2.0) in order.

TEST_F(ResizeTest, DemoteRdxReservedBitsCheckedBeforeTheTdr) {
  // Bits 11:1 and 63:52 of the TD handle are reserved; checked even before the TDR address.
  EXPECT_OUT(call(Leaf::MEM_PAGE_DEMOTE, gl(kGpa, 0), tdr | 0x2, 0x123),
             raw(Status::OPERAND_INVALID, Operand::RDX), 0, 0);
  EXPECT_OUT(call(Leaf::MEM_PAGE_DEMOTE, gl(kGpa, 1), 0x1000 | (1ull << 52), page4k()),
             raw(Status::OPERAND_INVALID, Operand::RDX), 0, 0);
}

TEST_F(ResizeTest, DemoteNonZeroVersionIsOperandInvalidRax) {
  aug2m(kGpa);
  EXPECT_STATUS(raw(Status::OPERAND_INVALID, Operand::RAX),
                call(Leaf::MEM_PAGE_DEMOTE, gl(kGpa, 1), tdr, page4k(), 0, 1).rax);
  EXPECT_EQ(SeptState::PENDING, entry(kGpa, 1).state());
}

TEST_F(ResizeTest, DemoteTdrOperandChecks) {
  aug2m(kGpa);
  const uint64_t r8 = page4k();
  // HKID bits are not reserved in the handle but fail the TDR address check.
  EXPECT_STATUS(raw(Status::OPERAND_INVALID, Operand::RDX),
                call(Leaf::MEM_PAGE_DEMOTE, gl(kGpa, 1), tdr | (1ull << 46), r8).rax);
  EXPECT_STATUS(raw(Status::OPERAND_ADDR_RANGE_ERROR, Operand::RDX),
                call(Leaf::MEM_PAGE_DEMOTE, gl(kGpa, 1), 0x1000, r8).rax);
  // A TDVPR page is not a TDR; reported before the (also bad) page_info.
  EXPECT_STATUS(raw(Status::PAGE_METADATA_INCORRECT, Operand::RDX),
                call(Leaf::MEM_PAGE_DEMOTE, gl(kGpa, 0), tdvpr(0), r8).rax);
  EXPECT_EQ(SeptState::PENDING, entry(kGpa, 1).state());
}

TEST_F(ResizeTest, DemoteTdrHeldExclusivelyByPageAddIsBusyRdx) {
  aug2m(kGpa);
  map_tables(0, kLevel4K);
  Regs inner;
  on_yield_once("tdr-locked", [&] { inner = demote_r(kGpa, page4k()); });
  ASSERT_STATUS(kOk, call(Leaf::MEM_PAGE_ADD, gl(0, 0), tdr, page4k(), 0).rax);
  EXPECT_OUT(inner, raw(Status::OPERAND_BUSY, Operand::RDX), 0, 0);
  EXPECT_EQ(SeptState::PENDING, entry(kGpa, 1).state());
}

TEST_F(ResizeTest, DemoteTdStateChecksInOrderBeforePageInfo) {
  const uint64_t bad_rcx = gl(kGpa, 0);  // level 0 is invalid for DEMOTE
  const uint64_t created = m.create_td(1, BuildStage::kCreated);
  const uint64_t keyed = m.create_td(1, BuildStage::kKeysConfigured);
  const uint64_t tdcs = m.create_td(1, BuildStage::kTdcsAdded);
  const uint64_t r8 = page4k();
  EXPECT_STATUS(raw(Status::TD_KEYS_NOT_CONFIGURED),
                call(Leaf::MEM_PAGE_DEMOTE, bad_rcx, created, r8).rax);
  EXPECT_STATUS(raw(Status::TDCS_NOT_ALLOCATED),
                call(Leaf::MEM_PAGE_DEMOTE, bad_rcx, keyed, r8).rax);
  // UNINITIALIZED: DEMOTE is not allowed in this op state (§7).
  EXPECT_STATUS(raw(Status::OP_STATE_INCORRECT),
                call(Leaf::MEM_PAGE_DEMOTE, bad_rcx, tdcs, r8).rax);
  // FATAL is checked before the lifecycle.
  m.set_fatal(created);
  EXPECT_STATUS(raw(Status::TD_FATAL), call(Leaf::MEM_PAGE_DEMOTE, bad_rcx, created, r8).rax);
}

TEST_F(ResizeTest, DemoteOpStateLockBusyBeforeOpStateCheck) {
  const uint64_t tdcs = m.create_td(1, BuildStage::kTdcsAdded);  // op state UNINITIALIZED
  Td& t = *m.td_of(tdcs);
  ASSERT_TRUE(t.op_state_lock.try_exclusive());
  EXPECT_OUT(call(Leaf::MEM_PAGE_DEMOTE, gl(kGpa, 0), tdcs, page4k()),
             raw(Status::OPERAND_BUSY, Operand::OP_STATE), 0, 0);
  t.op_state_lock.release_exclusive();
}

TEST_F(ResizeTest, DemotePageInfoCheckedBeforeTheTreeLock) {
  aug2m(kGpa);
  const uint64_t r8 = page4k();
  ASSERT_TRUE(td().sept_lock.try_exclusive());
  const uint64_t bad[] = {
      gl(kGpa, 0),                   // below min level
      gl(kGpa, 3),                   // above max level
      gl(kGpa + k4K, 1),             // GPA not 2M-aligned
      gl(kGpa, 1) | 0x8,             // reserved bits 11:3
      gl(kGpa, 1) | (1ull << 52),    // reserved bits 63:52
      gl(kGpa | kSharedBit, 1),      // shared GPA
      gl(kGpa | (1ull << kGpaw), 1)  // beyond the GPA width
  };
  for (uint64_t rcx : bad) {
    SCOPED_TRACE(Hex(rcx));
    EXPECT_OUT(call(Leaf::MEM_PAGE_DEMOTE, rcx, tdr, r8),
               raw(Status::OPERAND_INVALID, Operand::RCX), 0, 0);
  }
  td().sept_lock.release_exclusive();
}

TEST_F(ResizeTest, DemoteTreeLockBusyBeforeTheWalk) {
  map_tables(0, kLevel4K);
  // RANGE.BLOCK holds the tree exclusively; the DEMOTE's walk would fail (nothing is mapped
  // in that PML4 entry).
  Regs inner;
  on_yield_once("sept-tree-locked", [&] { inner = demote_r(1ull << 40, page4k()); });
  call(Leaf::MEM_RANGE_BLOCK, gl(0, 1), tdr);
  EXPECT_OUT(inner, raw(Status::OPERAND_BUSY, Operand::SEPT_TREE), 0, 0);
}

TEST_F(ResizeTest, DemoteWalkFailedReportsWhereTheWalkStopped) {
  const uint64_t r8 = page4k();
  // No tables at all: the walk stops at the FREE PML4 entry (level 3).
  EXPECT_OUT(demote_r(kGpa, r8), raw(Status::EPT_WALK_FAILED, Operand::RCX), kSve,
             lvl_state(3, SeptState::FREE));
  ASSERT_STATUS(kOk, sept_add(0, 3));  // the PML4 entry covering kGpa
  EXPECT_OUT(demote_r(kGpa, r8), raw(Status::EPT_WALK_FAILED, Operand::RCX), kSve,
             lvl_state(2, SeptState::FREE));
  // A 1G DEMOTE reaches the FREE PDPT entry and fails the state check instead.
  EXPECT_OUT(demote_r(0, r8, kLevel1G), raw(Status::EPT_ENTRY_STATE_INCORRECT, Operand::RCX), kSve,
             lvl_state(2, SeptState::FREE));
}

TEST_F(ResizeTest, DemoteWalkStopsAtABlockedNonLeafAbove) {
  aug2m(kGpa);
  ASSERT_STATUS(kOk, block(kGpa & ~(level_size(2) - 1), 2));  // the PDPT entry -> NL_BLOCKED
  EXPECT_OUT(demote_r(kGpa, page4k()), raw(Status::EPT_WALK_FAILED, Operand::RCX), 0,
             lvl_state(2, SeptState::NL_BLOCKED));
}

// ---------------------------------------------------------------------------------------------
// DEMOTE: leaf checks (§4 steps 1-8).

TEST_F(ResizeTest, DemoteEntryLockedByGuestAcceptIsBusyBeforeNotBlockedAndSetsTdhp) {
  const uint64_t hpa = aug2m(kGpa);
  ASSERT_STATUS(kOk, finalize());
  ASSERT_STATUS(kOk, enter(0));
  // The guest's 2M ACCEPT holds the entry lock; the entry is also not blocked, but the
  // entry lock comes first (§4 step 1).
  Regs inner;
  on_yield_once("accept-entry-locked", [&] { inner = demote_r(kGpa, page4k()); });
  AcceptResult r = accept(0, kGpa, kLevel2M);
  EXPECT_OUT(inner, raw(Status::OPERAND_BUSY, Operand::RCX), leaf_arch(hpa, false),
             lvl_state(1, SeptState::PENDING));
  EXPECT_STATUS(kOk, r.status);
  const SeptEntry e = entry(kGpa, kLevel2M);
  EXPECT_EQ(SeptState::MAPPED, e.state());
  EXPECT_TRUE(e.host_priority());  // set by the failed host lock (§8.3)
  EXPECT_FALSE(e.locked());
}

TEST_F(ResizeTest, DemoteOnBlockedEntryHeldByAcceptIsBusyThenSucceeds) {
  // The KVM split race (§4): a guest ACCEPT locks the PENDING_BLOCKED 2M entry before it
  // decides to exit; the DEMOTE sees BUSY, and succeeds when retried.
  const uint64_t hpa = aug2m(kGpa);
  ASSERT_STATUS(kOk, finalize());
  block_and_track(kGpa, kLevel2M);
  ASSERT_STATUS(kOk, enter(0));  // entered after the TRACK: does not hold tracking up
  const uint64_t r8 = page4k();
  Regs inner;
  on_yield_once("accept-entry-locked", [&] { inner = demote_r(kGpa, r8); });
  AcceptResult r = accept(0, kGpa, kLevel2M);
  EXPECT_OUT(inner, raw(Status::OPERAND_BUSY, Operand::RCX), leaf_arch(hpa, false),
             lvl_state(1, SeptState::PENDING_BLOCKED));
  EXPECT_EQ(AcceptResult::kEptViolation, r.kind);
  EXPECT_TRUE(entry(kGpa, 1).host_priority());
  EXPECT_OUT(demote_r(kGpa, r8), kOk, 0, 0);
  EXPECT_EQ(SeptState::NL_MAPPED, entry(kGpa, 1).state());
  EXPECT_FALSE(entry(kGpa, 1).host_priority());
}

TEST_F(ResizeTest, DemoteStateIncorrectBeforeNewPageChecks) {
  map_tables(kGpa, kLevel2M);
  const uint64_t bad_r8 = 0x123;
  // FREE.
  EXPECT_OUT(demote_r(kGpa, bad_r8), raw(Status::EPT_ENTRY_STATE_INCORRECT, Operand::RCX), kSve,
             lvl_state(1, SeptState::FREE));
  // NL_MAPPED: already a page table.
  ASSERT_STATUS(kOk, sept_add(kGpa, 1));
  EXPECT_OUT(demote_r(kGpa, bad_r8), raw(Status::EPT_ENTRY_STATE_INCORRECT, Operand::RCX), 0x7,
             lvl_state(1, SeptState::NL_MAPPED));
  // NL_BLOCKED.
  ASSERT_STATUS(kOk, block(kGpa, 1));
  EXPECT_OUT(demote_r(kGpa, bad_r8), raw(Status::EPT_ENTRY_STATE_INCORRECT, Operand::RCX), 0x0,
             lvl_state(1, SeptState::NL_BLOCKED));
}

TEST_F(ResizeTest, DemoteStateIncorrectBeforeNotBlockedWhenRunnable) {
  map_tables(kGpa, kLevel4K);  // kGpa's 2M entry is NL_MAPPED and not blocked
  ASSERT_STATUS(kOk, finalize());
  EXPECT_OUT(demote_r(kGpa, page4k()), raw(Status::EPT_ENTRY_STATE_INCORRECT, Operand::RCX), 0x7,
             lvl_state(1, SeptState::NL_MAPPED));
}

TEST_F(ResizeTest, DemoteRunnableNotBlockedBeforeNewPageChecks) {
  const uint64_t hpa = mapped2m_runnable(kGpa);
  EXPECT_OUT(demote_r(kGpa, 0x123), raw(Status::GPA_RANGE_NOT_BLOCKED, Operand::RCX),
             leaf_arch(hpa, true), lvl_state(1, SeptState::MAPPED));
  // PENDING needs blocking too (§8.7).
  const uint64_t gpa2 = kGpa + level_size(1);
  const uint64_t hpa2 = aug2m(gpa2);
  EXPECT_OUT(demote_r(gpa2, 0x123), raw(Status::GPA_RANGE_NOT_BLOCKED, Operand::RCX),
             leaf_arch(hpa2, false), lvl_state(1, SeptState::PENDING));
  EXPECT_FALSE(entry(kGpa, 1).locked());
}

TEST_F(ResizeTest, DemoteTrackingCheckedBeforeNewPageChecks) {
  mapped2m_runnable(kGpa);
  ASSERT_STATUS(kOk, block(kGpa, 1));
  // No TRACK since the BLOCK: never tracked (§8.9). The R8 page is also bad, and is
  // validated only after the TLB checks (§8.8). TLB_TRACKING_NOT_DONE reports RCX=RDX=0.
  EXPECT_OUT(demote_r(kGpa, 0x123), raw(Status::TLB_TRACKING_NOT_DONE, Operand::RCX), 0, 0);
  EXPECT_OUT(demote_r(kGpa, kNullPa), raw(Status::TLB_TRACKING_NOT_DONE, Operand::RCX), 0, 0);
  EXPECT_OUT(demote_r(kGpa, page4k()), raw(Status::TLB_TRACKING_NOT_DONE, Operand::RCX), 0, 0);
}

TEST_F(ResizeTest, DemoteTrackingWaitsForVcpusInGuestAtTrackTime) {
  mapped2m_runnable(kGpa);
  ASSERT_STATUS(kOk, enter(1));  // in guest mode across the BLOCK and the TRACK
  ASSERT_STATUS(kOk, block(kGpa, 1));
  ASSERT_STATUS(kOk, track());
  const uint64_t r8 = page4k();
  EXPECT_OUT(demote_r(kGpa, r8), raw(Status::TLB_TRACKING_NOT_DONE, Operand::RCX), 0, 0);
  ASSERT_TRUE(exit(1));
  EXPECT_OUT(demote_r(kGpa, r8), kOk, 0, 0);
}

TEST_F(ResizeTest, DemoteNewPageChecks) {
  const uint64_t hpa = aug2m(kGpa);  // INITIALIZED: no blocking needed
  const uint64_t tdmr_end = (kHostBasePfn + kHostPages) << 12;
  struct Case {
    uint64_t r8;
    uint64_t status;
  };
  const Case cases[] = {
      {page4k() + 0x800, raw(Status::OPERAND_INVALID, Operand::R8)},         // misaligned
      {page4k() | (1ull << 46), raw(Status::OPERAND_INVALID, Operand::R8)},  // HKID bits
      {kNullPa, raw(Status::OPERAND_INVALID, Operand::R8)},                  // NULL_PA
      {tdmr_end, raw(Status::OPERAND_ADDR_RANGE_ERROR, Operand::R8)},        // outside the TDMR
      {tdvpr(0), raw(Status::PAGE_METADATA_INCORRECT, Operand::R8)},         // a TDVPR page
      {td().root, raw(Status::PAGE_METADATA_INCORRECT, Operand::R8)},        // an S-EPT page
      // The call itself holds the TDR's PAMT entry shared, so it cannot lock it exclusively.
      {tdr, raw(Status::OPERAND_BUSY, Operand::R8)},
      {hpa + 5 * k4K, raw(Status::PAGE_METADATA_INCORRECT, Operand::R8)},  // inside the 2M page
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(Hex(c.r8));
    EXPECT_OUT(demote_r(kGpa, c.r8), c.status, 0, 0);
    const SeptEntry e = entry(kGpa, 1);
    EXPECT_EQ(SeptState::PENDING, e.state());
    EXPECT_FALSE(e.locked());
  }
  // The new page's PAMT entry is locked by someone else.
  const uint64_t r8 = page4k();
  PamtEntry& p = m.pamt_4k(r8 >> 12);
  ASSERT_TRUE(p.lock.try_exclusive());
  EXPECT_OUT(demote_r(kGpa, r8), raw(Status::OPERAND_BUSY, Operand::R8), 0, 0);
  p.lock.release_exclusive();
  EXPECT_OUT(demote_r(kGpa, r8), kOk, 0, 0);
}

TEST_F(ResizeInterruptibleTest, DemoteInterruptedRestartableRestoresInputsAndCommitsNothing) {
  const uint64_t hpa = mapped2m_runnable(kGpa);
  block_and_track(kGpa, kLevel2M);
  const int64_t chld = td().chldcnt;
  const uint64_t r8 = page4k();
  const SeptEntry before = entry(kGpa, 1);
  hooks.irq_pending = 1;
  // RDX carries the (ignored) L2_SEPT_ADD_MODE bit: restored exactly as given.
  Regs out = call(Leaf::MEM_PAGE_DEMOTE, gl(kGpa, 1), tdr | 1, r8);
  EXPECT_OUT(out, raw(Status::INTERRUPTED_RESTARTABLE), gl(kGpa, 1), tdr | 1);
  EXPECT_EQ(0, hooks.irq_pending);
  EXPECT_EQ(before.raw, entry(kGpa, 1).raw);
  EXPECT_EQ(PageType::REG, m.pamt_2m(hpa >> 12).type);
  EXPECT_EQ(PageType::NDA, m.pamt_4k(r8 >> 12).type);
  EXPECT_EQ(nullptr, m.sept_page(r8));
  EXPECT_EQ(chld, td().chldcnt);
  // Restartable: the same call succeeds.
  EXPECT_OUT(call(Leaf::MEM_PAGE_DEMOTE, gl(kGpa, 1), tdr | 1, r8), kOk, 0, 0);
  EXPECT_EQ(SeptState::NL_MAPPED, entry(kGpa, 1).state());
}

TEST_F(ResizeInterruptibleTest, DemoteNewPageCheckedBeforeTheInterrupt) {
  aug2m(kGpa);
  hooks.irq_pending = 1;
  EXPECT_OUT(demote_r(kGpa, kNullPa), raw(Status::OPERAND_INVALID, Operand::R8), 0, 0);
  EXPECT_EQ(1, hooks.irq_pending);  // not consulted
}

TEST_F(ResizeInterruptibleTest, DemoteInterruptCheckedBeforeTheLargePamtLock) {
  const uint64_t hpa = aug2m(kGpa);
  PamtEntry& big = m.pamt_2m(hpa >> 12);
  ASSERT_TRUE(big.lock.try_exclusive());
  hooks.irq_pending = 1;
  EXPECT_OUT(demote_r(kGpa, page4k()), raw(Status::INTERRUPTED_RESTARTABLE), gl(kGpa, 1), tdr);
  EXPECT_OUT(demote_r(kGpa, page4k()), raw(Status::OPERAND_BUSY, Operand::RCX), 0, 0);
  big.lock.release_exclusive();
  EXPECT_EQ(SeptState::PENDING, entry(kGpa, 1).state());
}

TEST_F(ResizeTest, DemoteWithEnhancedInterruptibilityIgnoresPendingInterrupts) {
  ASSERT_EQ(1u, m.options().enhanced_demote_interruptibility);
  aug2m(kGpa);
  hooks.irq_pending = 1;
  EXPECT_OUT(demote_r(kGpa, page4k()), kOk, 0, 0);
  EXPECT_EQ(1, hooks.irq_pending);
}

TEST_F(ResizeTest, DemoteLargePamtLockBusyIsBusyRcx) {
  const uint64_t hpa = aug2m(kGpa);
  PamtEntry& big = m.pamt_2m(hpa >> 12);
  ASSERT_TRUE(big.lock.try_exclusive());
  const uint64_t r8 = page4k();
  EXPECT_OUT(demote_r(kGpa, r8), raw(Status::OPERAND_BUSY, Operand::RCX), 0, 0);
  big.lock.release_exclusive();
  EXPECT_EQ(SeptState::PENDING, entry(kGpa, 1).state());
  EXPECT_EQ(PageType::NDA, m.pamt_4k(r8 >> 12).type);
}

TEST_F(ResizeTest, DemoteIsBusySeptTreeWhileAZeroStepVpEnterHoldsTheTree) {
  aug2m(kGpa);
  ASSERT_STATUS(kOk, finalize());
  block_and_track(kGpa, kLevel2M);
  // vCPU 0 keeps faulting on a FREE GPA until the zero-step filter arms (§2.14 step 4).
  const uint64_t fault_gpa = kGpa + level_size(1);
  map_tables(fault_gpa, kLevel4K);
  for (uint64_t i = 0; i < m.options().zero_step_threshold; i++) {
    ASSERT_STATUS(kOk, enter(0));
    ASSERT_TRUE(m.ept_violation_exit(tdvpr(0), fault_gpa));
  }
  ASSERT_FALSE(td().vcpus[0].epf_gpas.empty());
  Regs inner;
  on_yield_once("zero-step-tree-locked", [&] { inner = demote_r(kGpa, page4k()); });
  EXPECT_EQ(uint64_t{kExitReasonEptViolation}, call(Leaf::VP_ENTER, tdvpr(0)).rax);
  EXPECT_OUT(inner, raw(Status::OPERAND_BUSY, Operand::SEPT_TREE), 0, 0);
  EXPECT_EQ(SeptState::PENDING_BLOCKED, entry(kGpa, 1).state());
  EXPECT_OUT(demote_r(kGpa, page4k()), kOk, 0, 0);
}

TEST_F(ResizeTest, DemoteHoldsTheEntryLockForTheWholeCall) {
  aug2m(kGpa);
  ASSERT_STATUS(kOk, finalize());
  block_and_track(kGpa, kLevel2M);
  ASSERT_STATUS(kOk, enter(0));
  AcceptResult inner;
  on_yield_once("demote-pamt-locked", [&] { inner = accept(0, kGpa, 1); });
  EXPECT_OUT(demote_r(kGpa, page4k()), kOk, 0, 0);
  EXPECT_EQ(AcceptResult::kStatus, inner.kind);
  EXPECT_STATUS(raw(Status::OPERAND_BUSY, Operand::RCX), inner.status);
  EXPECT_TRUE(td().vcpus[0].in_td);
  const SeptEntry e = entry(kGpa, 1);
  EXPECT_EQ(SeptState::NL_MAPPED, e.state());
  EXPECT_FALSE(e.locked());
  EXPECT_FALSE(e.host_priority());  // a guest never sets TDHP
}

// ---------------------------------------------------------------------------------------------
// DEMOTE: results (§4 commit, §8.12).

TEST_F(ResizeTest, DemoteBlockedParentGivesMappedChildrenAndSplitsThePamt) {
  const uint64_t hpa = mapped2m_runnable(kGpa);
  block_and_track(kGpa, kLevel2M);
  const int64_t chld = td().chldcnt;
  const uint64_t r8 = page4k();
  EXPECT_OUT(demote_r(kGpa, r8), kOk, 0, 0);

  const SeptEntry parent = entry(kGpa, 1);
  EXPECT_EQ(SeptState::NL_MAPPED, parent.state());  // unblocked: no UNBLOCK needed
  EXPECT_EQ(r8, parent.hpa_bits());
  EXPECT_FALSE(parent.locked());
  for (uint64_t i = 0; i < 512; i++) {
    const SeptEntry c = entry(kGpa + i * k4K, kLevel4K);
    ASSERT_EQ(SeptState::MAPPED, c.state()) << i;
    ASSERT_EQ(hpa + i * k4K, c.hpa_bits()) << i;
    ASSERT_FALSE(c.locked()) << i;
    const PamtEntry& p = m.pamt_4k((hpa >> 12) + i);
    ASSERT_EQ(PageType::REG, p.type) << i;
    ASSERT_EQ(tdr, p.owner) << i;
    ASSERT_EQ(0u, p.bepoch) << i;
  }
  EXPECT_EQ(PageType::NDA, m.pamt_2m(hpa >> 12).type);
  EXPECT_EQ(PageType::EPT, m.pamt_4k(r8 >> 12).type);
  EXPECT_EQ(tdr, m.pamt_4k(r8 >> 12).owner);
  EXPECT_EQ(chld + 1, td().chldcnt);
  // The children are already accepted.
  ASSERT_STATUS(kOk, enter(0));
  EXPECT_STATUS(raw(Status::PAGE_ALREADY_ACCEPTED, 0u), accept(0, kGpa + 9 * k4K, 0).status);
  // A second 2M DEMOTE now finds a non-leaf.
  exit(0);
  EXPECT_OUT(demote_r(kGpa, page4k()), raw(Status::EPT_ENTRY_STATE_INCORRECT, Operand::RCX), 0x7,
             lvl_state(1, SeptState::NL_MAPPED));
}

TEST_F(ResizeTest, DemotedChildrenNeedTheirOwnBlockAndTrackForRemove) {
  // §8.12: DEMOTE leaves the children unblocked with BEPOCH 0.
  const uint64_t hpa = mapped2m_runnable(kGpa);
  block_and_track(kGpa, kLevel2M);
  ASSERT_STATUS(kOk, demote(kGpa, 1));
  const uint64_t child = kGpa + 3 * k4K, child_hpa = hpa + 3 * k4K;
  EXPECT_OUT(call(Leaf::MEM_PAGE_REMOVE, gl(child, 0), tdr),
             raw(Status::GPA_RANGE_NOT_BLOCKED, Operand::RCX), leaf_arch(child_hpa, true),
             lvl_state(0, SeptState::MAPPED));
  ASSERT_STATUS(kOk, block(child, 0));
  EXPECT_OUT(call(Leaf::MEM_PAGE_REMOVE, gl(child, 0), tdr),
             raw(Status::TLB_TRACKING_NOT_DONE, Operand::RCX), 0, 0);
  ASSERT_STATUS(kOk, track());
  EXPECT_OUT(call(Leaf::MEM_PAGE_REMOVE, gl(child, 0), tdr), kOk, child_hpa, 0);
}

TEST_F(ResizeTest, DemotePendingBlockedParentGivesPendingChildren) {
  const uint64_t hpa = aug2m(kGpa);
  ASSERT_STATUS(kOk, finalize());
  block_and_track(kGpa, kLevel2M);
  const uint64_t r8 = page4k();
  EXPECT_OUT(demote_r(kGpa, r8), kOk, 0, 0);
  EXPECT_EQ(SeptState::NL_MAPPED, entry(kGpa, 1).state());
  for (uint64_t i = 0; i < 512; i++) {
    const SeptEntry c = entry(kGpa + i * k4K, kLevel4K);
    ASSERT_EQ(SeptState::PENDING, c.state()) << i;
    ASSERT_EQ(hpa + i * k4K, c.hpa_bits()) << i;
  }
  // The guest accepts them one 4K page at a time; a 2M ACCEPT sees the page table.
  ASSERT_STATUS(kOk, enter(0));
  EXPECT_STATUS(raw(Status::PAGE_SIZE_MISMATCH, 1u), accept(0, kGpa, 1).status);
  EXPECT_STATUS(kOk, accept(0, kGpa + 3 * k4K, 0).status);
  EXPECT_EQ(0u, host.content((hpa >> 12) + 3));
  EXPECT_EQ(host::HostPages::junk((hpa >> 12) + 4), host.content((hpa >> 12) + 4));
}

TEST_F(ResizeTest, DemoteUnblockedPendingParentBeforeFinalizeIsCopiedAsIs) {
  const uint64_t hpa = aug2m(kGpa);
  // RDX bit 0 (L2_SEPT_ADD_MODE) is accepted and irrelevant without L2 VMs.
  EXPECT_OUT(call(Leaf::MEM_PAGE_DEMOTE, gl(kGpa, 1), tdr | 1, page4k()), kOk, 0, 0);
  for (uint64_t i = 0; i < 512; i++) {
    const SeptEntry c = entry(kGpa + i * k4K, kLevel4K);
    ASSERT_EQ(SeptState::PENDING, c.state()) << i;
    ASSERT_EQ(hpa + i * k4K, c.hpa_bits()) << i;
  }
}

TEST_F(ResizeTest, DemoteUnblockedMappedParentBeforeFinalizeIsCopiedAsIs) {
  const uint64_t hpa = fill_contiguous(kGpa, /*mapped=*/true);
  ASSERT_STATUS(kOk, promote(kGpa, 1));
  ASSERT_EQ(SeptState::MAPPED, entry(kGpa, 1).state());
  EXPECT_OUT(demote_r(kGpa, page4k()), kOk, 0, 0);
  for (uint64_t i = 0; i < 512; i++) {
    const SeptEntry c = entry(kGpa + i * k4K, kLevel4K);
    ASSERT_EQ(SeptState::MAPPED, c.state()) << i;
    ASSERT_EQ(hpa + i * k4K, c.hpa_bits()) << i;
  }
}

TEST_F(ResizeTest, DemoteBlockedParentBeforeFinalizeUnblocksChildren) {
  const uint64_t hpa = aug2m(kGpa);
  ASSERT_STATUS(kOk, block(kGpa, 1));  // PENDING_BLOCKED; no TRACK needed before finalize
  EXPECT_OUT(demote_r(kGpa, page4k()), kOk, 0, 0);
  EXPECT_EQ(SeptState::PENDING, entry(kGpa, 0).state());
  EXPECT_EQ(hpa + 511 * k4K, entry(kGpa + 511 * k4K, 0).hpa_bits());
}

// ---------------------------------------------------------------------------------------------
// PROMOTE (§5).

TEST_F(ResizeTest, PromoteVersionOneAcceptedVersionTwoRejected) {
  fill_contiguous(kGpa, /*mapped=*/true);
  EXPECT_OUT(promote_r(kGpa, 1, 2), raw(Status::OPERAND_INVALID, Operand::RAX), 0, 0);
  const uint64_t table = entry(kGpa, 1).hpa_bits();
  EXPECT_OUT(promote_r(kGpa, 1, 1), kOk, table, 0);
}

TEST_F(ResizeTest, PromotePageInfoAndWalkChecks) {
  fill_contiguous(kGpa, /*mapped=*/true);
  EXPECT_OUT(promote_r(kGpa, 0), raw(Status::OPERAND_INVALID, Operand::RCX), 0, 0);
  EXPECT_OUT(promote_r(kGpa + k4K, 1), raw(Status::OPERAND_INVALID, Operand::RCX), 0, 0);
  EXPECT_OUT(promote_r(kGpa | kSharedBit, 1), raw(Status::OPERAND_INVALID, Operand::RCX), 0, 0);
  // Nothing mapped at 1G: the walk stops at the FREE PML4 entry.
  EXPECT_OUT(promote_r(1ull << 40, 1), raw(Status::EPT_WALK_FAILED, Operand::RCX), kSve,
             lvl_state(3, SeptState::FREE));
}

TEST_F(ResizeTest, PromoteEntryLockComesBeforeTheStateCheck) {
  // A guest ACCEPT holds the 2M PENDING leaf, which PROMOTE would also reject as a leaf.
  const uint64_t hpa = aug2m(kGpa);
  ASSERT_STATUS(kOk, finalize());
  ASSERT_STATUS(kOk, enter(0));
  Regs inner;
  on_yield_once("accept-entry-locked", [&] { inner = promote_r(kGpa); });
  EXPECT_STATUS(kOk, accept(0, kGpa, 1).status);
  EXPECT_OUT(inner, raw(Status::OPERAND_BUSY, Operand::RCX), leaf_arch(hpa, false),
             lvl_state(1, SeptState::PENDING));
  EXPECT_TRUE(entry(kGpa, 1).host_priority());
}

TEST_F(ResizeTest, PromoteStateIncorrectOnLeafOrFree) {
  const uint64_t hpa = aug2m(kGpa);
  EXPECT_OUT(promote_r(kGpa), raw(Status::EPT_ENTRY_STATE_INCORRECT, Operand::RCX),
             leaf_arch(hpa, false), lvl_state(1, SeptState::PENDING));
  EXPECT_OUT(promote_r(kGpa + level_size(1)), raw(Status::EPT_ENTRY_STATE_INCORRECT, Operand::RCX),
             kSve, lvl_state(1, SeptState::FREE));
}

TEST_F(ResizeTest, PromoteChildTablePamtBusyBeforeNotBlocked) {
  fill_contiguous(kGpa, /*mapped=*/true);
  ASSERT_STATUS(kOk, finalize());
  PamtEntry& tp = m.pamt_4k(entry(kGpa, 1).hpa_bits() >> 12);
  ASSERT_TRUE(tp.lock.try_exclusive());
  EXPECT_OUT(promote_r(kGpa), raw(Status::OPERAND_BUSY, Operand::RCX), 0, 0);
  tp.lock.release_exclusive();
  EXPECT_FALSE(entry(kGpa, 1).locked());
}

TEST_F(ResizeTest, PromoteRunnableRequiresBlockedBeforeCheckingChildren) {
  // Children are mixed (invalid), but the parent is not blocked: step 4 wins.
  const uint64_t hpa = page2m();
  fill_children(
      kGpa, [&](int i) { return hpa + i * k4K; }, /*mapped=*/true, /*skip=*/10);
  ASSERT_STATUS(kOk, call(Leaf::MEM_PAGE_AUG, gl(kGpa + 10 * k4K, 0), tdr, hpa + 10 * k4K).rax);
  ASSERT_STATUS(kOk, finalize());
  EXPECT_OUT(promote_r(kGpa), raw(Status::GPA_RANGE_NOT_BLOCKED, Operand::RCX), 0x7,
             lvl_state(1, SeptState::NL_MAPPED));
  // Blocked but not tracked: still before the children are looked at.
  ASSERT_STATUS(kOk, block(kGpa, 1));
  EXPECT_OUT(promote_r(kGpa), raw(Status::TLB_TRACKING_NOT_DONE, Operand::RCX), 0, 0);
  ASSERT_STATUS(kOk, track());
  EXPECT_OUT(promote_r(kGpa), raw(Status::EPT_INVALID_PROMOTE_CONDITIONS, Operand::RCX), 0x0,
             lvl_state(1, SeptState::NL_BLOCKED));
}

TEST_F(ResizeTest, PromoteNotBlockedWinsOverAChildHeldByTheGuest) {
  const uint64_t hpa = aug2m(kGpa);
  ASSERT_STATUS(kOk, demote(kGpa, 1));  // PENDING children under an NL_MAPPED parent
  ASSERT_STATUS(kOk, finalize());
  ASSERT_STATUS(kOk, enter(0));
  Regs inner;
  on_yield_once("accept-entry-locked", [&] { inner = promote_r(kGpa); });
  EXPECT_STATUS(kOk, accept(0, kGpa + 5 * k4K, 0).status);
  EXPECT_OUT(inner, raw(Status::GPA_RANGE_NOT_BLOCKED, Operand::RCX), 0x7,
             lvl_state(1, SeptState::NL_MAPPED));
  EXPECT_FALSE(entry(kGpa + 5 * k4K, 0).host_priority());  // the children were not touched
  EXPECT_EQ(0u, host.content((hpa >> 12) + 5));
}

TEST_F(ResizeTest, PromoteBusyChildFailsKeepsItsTdhpAndReleasesTheOthers) {
  const uint64_t hpa = fill_contiguous(kGpa, /*mapped=*/true);
  // A host AUG on child 5 holds its entry lock (and then fails: the child is MAPPED).
  Regs inner;
  on_yield_once("sept-entry-locked", [&] { inner = promote_r(kGpa); });
  EXPECT_STATUS(raw(Status::EPT_ENTRY_STATE_INCORRECT, Operand::RCX),
                call(Leaf::MEM_PAGE_AUG, gl(kGpa + 5 * k4K, 0), tdr, page4k()).rax);
  EXPECT_OUT(inner, raw(Status::OPERAND_BUSY, Operand::RCX), 0x7,
             lvl_state(1, SeptState::NL_MAPPED));
  for (int i = 0; i < 512; i++) {
    const SeptEntry c = entry(kGpa + i * k4K, 0);
    ASSERT_FALSE(c.locked()) << i;
    ASSERT_EQ(i == 5, c.host_priority()) << i;
  }
  EXPECT_FALSE(entry(kGpa, 1).locked());
  EXPECT_EQ(SeptState::NL_MAPPED, entry(kGpa, 1).state());
  // The retry locks child 5 successfully, which clears its TDHP, and merges.
  EXPECT_STATUS(kOk, promote_r(kGpa).rax);
  const SeptEntry big = entry(kGpa, 1);
  EXPECT_EQ(SeptState::MAPPED, big.state());
  EXPECT_EQ(hpa, big.hpa_bits());
  EXPECT_FALSE(big.host_priority());
}

TEST_F(ResizeTest, PromoteBusyChildWinsOverInvalidConditions) {
  const uint64_t hpa = page2m();
  fill_children(
      kGpa, [&](int i) { return hpa + i * k4K; }, /*mapped=*/true, /*skip=*/100);
  Regs inner;
  on_yield_once("sept-entry-locked", [&] { inner = promote_r(kGpa); });
  // The AUG holds child 100, which is FREE (an invalid child) while PROMOTE runs.
  ASSERT_STATUS(kOk, call(Leaf::MEM_PAGE_AUG, gl(kGpa + 100 * k4K, 0), tdr, hpa + 100 * k4K).rax);
  EXPECT_OUT(inner, raw(Status::OPERAND_BUSY, Operand::RCX), 0x7,
             lvl_state(1, SeptState::NL_MAPPED));
}

class PromoteConditionsTest : public ResizeTest {
 protected:
  void expect_invalid() {
    const int64_t chld = td().chldcnt;
    const uint64_t table = entry(kGpa, 1).hpa_bits();
    hooks.irq_pending = 1;  // the children are checked before the interrupt (§5 steps 5, 6)
    EXPECT_OUT(promote_r(kGpa), raw(Status::EPT_INVALID_PROMOTE_CONDITIONS, Operand::RCX), 0x7,
               lvl_state(1, SeptState::NL_MAPPED));
    EXPECT_EQ(1, hooks.irq_pending);
    hooks.irq_pending = 0;
    EXPECT_EQ(SeptState::NL_MAPPED, entry(kGpa, 1).state());
    EXPECT_FALSE(entry(kGpa, 1).locked());
    EXPECT_EQ(PageType::EPT, m.pamt_4k(table >> 12).type);
    EXPECT_EQ(chld, td().chldcnt);
    expect_children_unlocked(kGpa);
  }
};

TEST_F(PromoteConditionsTest, MixedMappedAndPendingChildren) {
  const uint64_t hpa = page2m();
  fill_children(
      kGpa, [&](int i) { return hpa + i * k4K; }, /*mapped=*/true, /*skip=*/100);
  ASSERT_STATUS(kOk, call(Leaf::MEM_PAGE_AUG, gl(kGpa + 100 * k4K, 0), tdr, hpa + 100 * k4K).rax);
  expect_invalid();
}

TEST_F(PromoteConditionsTest, OneBlockedChild) {
  fill_contiguous(kGpa, /*mapped=*/true);
  ASSERT_STATUS(kOk, block(kGpa + 7 * k4K, 0));
  expect_invalid();
}

TEST_F(PromoteConditionsTest, AllChildrenBlocked) {
  // Identical apart from the HPA stride, but child 0 is neither MAPPED nor PENDING.
  fill_contiguous(kGpa, /*mapped=*/true);
  for (int i = 0; i < 512; i++) ASSERT_STATUS(kOk, block(kGpa + i * k4K, 0));
  expect_invalid();
}

TEST_F(PromoteConditionsTest, OneFreeChild) {
  const uint64_t hpa = page2m();
  fill_children(
      kGpa, [&](int i) { return hpa + i * k4K; }, /*mapped=*/false, /*skip=*/511);
  expect_invalid();
}

TEST_F(PromoteConditionsTest, ContiguousButMisalignedHpas) {
  const uint64_t a = page2m(), b = page2m();
  ASSERT_EQ(a + level_size(1), b);  // the allocator hands out adjacent blocks
  fill_children(
      kGpa, [&](int i) { return a + k4K + i * k4K; }, /*mapped=*/true);
  expect_invalid();
}

TEST_F(PromoteConditionsTest, NonContiguousHpas) {
  const uint64_t hpa = page2m();
  fill_children(
      kGpa, [&](int i) { return hpa + (i == 1   ? 2
                                       : i == 2 ? 1
                                                : i) *
                                          k4K; }, /*mapped=*/false);
  expect_invalid();
}

TEST_F(ResizeTest, PromoteInterruptedRestartableEvenWithEnhancedDemote) {
  ASSERT_EQ(1u, m.options().enhanced_demote_interruptibility);
  const uint64_t hpa = fill_contiguous(kGpa, /*mapped=*/true);
  const int64_t chld = td().chldcnt;
  const uint64_t table = entry(kGpa, 1).hpa_bits();
  hooks.irq_pending = 1;
  EXPECT_OUT(promote_r(kGpa, 1, 1), raw(Status::INTERRUPTED_RESTARTABLE), gl(kGpa, 1), tdr);
  EXPECT_EQ(0, hooks.irq_pending);
  EXPECT_EQ(SeptState::NL_MAPPED, entry(kGpa, 1).state());
  EXPECT_FALSE(entry(kGpa, 1).locked());
  EXPECT_EQ(PageType::EPT, m.pamt_4k(table >> 12).type);
  EXPECT_EQ(PageType::NDA, m.pamt_2m(hpa >> 12).type);
  EXPECT_EQ(PageType::REG, m.pamt_4k(hpa >> 12).type);
  EXPECT_EQ(chld, td().chldcnt);
  expect_children_unlocked(kGpa);
  EXPECT_OUT(promote_r(kGpa), kOk, table, 0);
}

TEST_F(ResizeTest, PromoteMergedPamtBusyReleasesTheChildren) {
  const uint64_t hpa = fill_contiguous(kGpa, /*mapped=*/true);
  PamtEntry& big = m.pamt_2m(hpa >> 12);
  ASSERT_TRUE(big.lock.try_exclusive());
  EXPECT_OUT(promote_r(kGpa), raw(Status::OPERAND_BUSY, Operand::RCX), 0, 0);
  big.lock.release_exclusive();
  expect_children_unlocked(kGpa);
  EXPECT_EQ(SeptState::NL_MAPPED, entry(kGpa, 1).state());
}

TEST_F(ResizeTest, PromoteMappedChildrenMergesPamtAndReturnsTheFreedTable) {
  const uint64_t hpa = fill_contiguous(kGpa, /*mapped=*/true);
  const int64_t chld = td().chldcnt;
  const uint64_t table = entry(kGpa, 1).hpa_bits();
  EXPECT_OUT(promote_r(kGpa), kOk, table, 0);
  const SeptEntry big = entry(kGpa, 1);
  EXPECT_EQ(SeptState::MAPPED, big.state());
  EXPECT_EQ(hpa, big.hpa_bits());
  EXPECT_FALSE(big.locked());
  EXPECT_EQ(chld - 1, td().chldcnt);
  EXPECT_EQ(PageType::NDA, m.pamt_4k(table >> 12).type);
  EXPECT_EQ(nullptr, m.sept_page(table));
  EXPECT_EQ(PageType::REG, m.pamt_2m(hpa >> 12).type);
  EXPECT_EQ(tdr, m.pamt_2m(hpa >> 12).owner);
  for (uint64_t i = 0; i < 512; i++) ASSERT_EQ(PageType::NDA, m.pamt_4k((hpa >> 12) + i).type) << i;
  // The freed table is host-owned again: WBINVD accepts it (PAMT NDA at 4K).
  EXPECT_STATUS(kOk, call(Leaf::PHYMEM_PAGE_WBINVD, table).rax);
}

TEST_F(ResizeTest, PromotePendingChildrenGivesAPending2MLeafTheGuestCanAccept) {
  const uint64_t hpa = fill_contiguous(kGpa, /*mapped=*/false);
  const uint64_t table = entry(kGpa, 1).hpa_bits();
  EXPECT_OUT(promote_r(kGpa), kOk, table, 0);
  EXPECT_EQ(SeptState::PENDING, entry(kGpa, 1).state());
  ASSERT_STATUS(kOk, finalize());
  ASSERT_STATUS(kOk, enter(0));
  EXPECT_STATUS(kOk, accept(0, kGpa, 1).status);
  for (uint64_t i = 0; i < 512; i++) ASSERT_EQ(0u, host.content((hpa >> 12) + i)) << i;
}

TEST_F(ResizeTest, DemotePromoteRoundTripInARunnableTd) {
  const uint64_t hpa = mapped2m_runnable(kGpa);
  block_and_track(kGpa, kLevel2M);
  const int64_t chld = td().chldcnt;
  const uint64_t r8 = page4k();
  ASSERT_STATUS(kOk, demote_r(kGpa, r8).rax);
  EXPECT_EQ(chld + 1, td().chldcnt);
  // PROMOTE needs the non-leaf blocked and tracked (BEPOCH of the child table page).
  ASSERT_STATUS(kOk, block(kGpa, 1));
  EXPECT_NE(0u, m.pamt_4k(r8 >> 12).bepoch);
  EXPECT_OUT(promote_r(kGpa), raw(Status::TLB_TRACKING_NOT_DONE, Operand::RCX), 0, 0);
  ASSERT_STATUS(kOk, track());
  EXPECT_OUT(promote_r(kGpa), kOk, r8, 0);
  EXPECT_EQ(chld, td().chldcnt);
  // The result is the children's state, unblocked.
  const SeptEntry big = entry(kGpa, 1);
  EXPECT_EQ(SeptState::MAPPED, big.state());
  EXPECT_EQ(hpa, big.hpa_bits());
  ASSERT_STATUS(kOk, enter(0));
  EXPECT_STATUS(raw(Status::PAGE_ALREADY_ACCEPTED, 1u), accept(0, kGpa, 1).status);
  EXPECT_STATUS(raw(Status::PAGE_ALREADY_ACCEPTED, 1u), accept(0, kGpa + k4K, 0).status);
}

}  // namespace
}  // namespace tdx::testing
