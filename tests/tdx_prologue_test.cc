// The common prologue of the TD-scoped S-EPT SEAMCALLs (tdx-module.md §2.0 steps 1-10), run for
// every leaf that has it. Each check gets its exact status and RCX/RDX outputs, and its place in
// the order is pinned by tests where two checks would fail at once: the earlier one must win.
#include <algorithm>
#include <cstdio>
#include <string>

#include "tests/tdx_encodings.h"
#include "tests/tdx_fixture.h"

namespace tdx::testing {
namespace {

constexpr uint64_t kGpa = 0x40000000;              // 1G-aligned GPA of the target entry
constexpr uint64_t kUnmappedGpa = 0x100000000000;  // another PML4 slot: no tables at all
constexpr uint64_t kOtherGpa = 0x80000000;         // a second 1G region for side pages
constexpr uint64_t kPoolEnd = (kHostBasePfn + kHostPages) << 12;

// §2.13 encodings, written from the spec rather than taken from the model.
uint64_t SpecEntry(SeptState s, uint64_t hpa) {
  switch (s) {
    case SeptState::FREE:
      return kSve;
    case SeptState::NL_MAPPED:
      return 0x7;
    case SeptState::NL_BLOCKED:
      return 0x0;
    case SeptState::MAPPED:
      return kSve | hpa | 0xF7;
    default:
      return kSve | hpa | 0xF0;  // BLOCKED, PENDING, PENDING_BLOCKED
  }
}
// Public state (§1.1) in bits 15:8, level in bits 2:0.
uint64_t SpecLevelState(int level, SeptState s) {
  const auto ls = [level](uint64_t pub) { return static_cast<uint64_t>(level) | pub << 8; };
  switch (s) {
    case SeptState::FREE:
      return ls(0);
    case SeptState::BLOCKED:
      return ls(1);
    case SeptState::PENDING:
      return ls(2);
    case SeptState::PENDING_BLOCKED:
      return ls(3);
    case SeptState::MAPPED:
      return ls(4);
    case SeptState::REMOVED:
      return ls(5);
    case SeptState::NL_MAPPED:
      return ls(0x84);
    case SeptState::NL_BLOCKED:
      return ls(0x81);
  }
  return ~0ull;
}

enum class Tree { kNone, kShared, kExclusive };

// What the prologue of one leaf does (§2.0, §2.17).
struct LeafSpec {
  const char* name;
  Leaf leaf;
  Operand tdr_op;
  LockMode tdr_mode;
  bool op_state_lock;
  Tree tree;
  bool entry_lock;
  int level;  // level of the target used here; -1: the leaf takes no page_info (TRACK)
  int min_level, max_level;
};

// gtest prints the parameter in test listings; the leaf's name reads better than its bytes.
void PrintTo(const LeafSpec& s, std::ostream* os) {
  *os << s.name;
}

constexpr auto kS = LockMode::kShared;
constexpr auto kX = LockMode::kExclusive;
const LeafSpec kLeaves[] = {
    {"SeptAdd", Leaf::MEM_SEPT_ADD, Operand::RDX, kS, true, Tree::kShared, true, 1, 1, kPwl},
    {"SeptRemove", Leaf::MEM_SEPT_REMOVE, Operand::RDX, kS, true, Tree::kExclusive, true, 1, 1,
     kPwl},
    {"PageAdd", Leaf::MEM_PAGE_ADD, Operand::RDX, kX, false, Tree::kNone, false, 0, 0, 0},
    {"PageAug", Leaf::MEM_PAGE_AUG, Operand::RDX, kS, true, Tree::kShared, true, 0, 0, 1},
    {"RangeBlock", Leaf::MEM_RANGE_BLOCK, Operand::RDX, kS, true, Tree::kExclusive, true, 0, 0,
     kPwl},
    {"RangeUnblock", Leaf::MEM_RANGE_UNBLOCK, Operand::RDX, kS, true, Tree::kExclusive, true, 0, 0,
     kPwl},
    {"Track", Leaf::MEM_TRACK, Operand::RCX, kS, true, Tree::kNone, false, -1, 0, 0},
    {"PageRemove", Leaf::MEM_PAGE_REMOVE, Operand::RDX, kS, true, Tree::kShared, true, 0, 0, 2},
};

class Prologue : public TdxTest, public ::testing::WithParamInterface<LeafSpec> {
 protected:
  const LeafSpec& spec() const { return GetParam(); }
  bool has_page_info() const { return spec().level >= 0; }
  int level() const { return spec().level; }

  // Puts the target entry in the state from which the leaf succeeds.
  void SetUp() override {
    if (!has_page_info()) return;
    map_tables(kGpa, spec().leaf == Leaf::MEM_SEPT_ADD ? kLevel2M : kLevel4K);
    switch (spec().leaf) {
      case Leaf::MEM_RANGE_BLOCK:
      case Leaf::MEM_PAGE_REMOVE:
        ASSERT_STATUS(raw(Status::SUCCESS), aug(kGpa, kLevel4K));
        break;
      case Leaf::MEM_RANGE_UNBLOCK:
        ASSERT_STATUS(raw(Status::SUCCESS), aug(kGpa, kLevel4K));
        ASSERT_STATUS(raw(Status::SUCCESS), block(kGpa, kLevel4K));
        break;
      default:
        break;
    }
  }

  uint64_t target() const { return has_page_info() ? gl(kGpa, level()) : 0; }

  Regs Invoke(uint64_t tdr_pa, uint64_t page_info, unsigned version = 0) {
    Regs in;
    in.rax = leaf_rax(spec().leaf, version);
    if (spec().leaf == Leaf::MEM_TRACK) {
      in.rcx = tdr_pa;
    } else {
      in.rcx = page_info;
      in.rdx = tdr_pa;
    }
    switch (spec().leaf) {
      case Leaf::MEM_SEPT_ADD:
      case Leaf::MEM_PAGE_AUG:
        in.r8 = page4k();
        break;
      case Leaf::MEM_PAGE_ADD:
        in.r8 = page4k();
        in.r9 = page4k();
        break;
      default:
        break;
    }
    return m.seamcall(in);
  }
  Regs Invoke() { return Invoke(tdr, target()); }
  Regs InvokeTdr(uint64_t tdr_pa) { return Invoke(tdr_pa, target()); }
  Regs InvokeRcx(uint64_t page_info) { return Invoke(tdr, page_info); }

  uint64_t tdr_err(Status s) const { return raw(s, spec().tdr_op); }

  // An early failure (§2.0 steps 1-8) returns RCX = RDX = 0. TRACK's RCX is its TDR input and
  // §2.7 defines no outputs, so only RAX is checked there.
  void ExpectEarly(uint64_t status, const Regs& r) {
    EXPECT_STATUS(status, r.rax);
    if (spec().leaf == Leaf::MEM_TRACK) return;
    EXPECT_EQ(Hex(0), Hex(r.rcx));
    EXPECT_EQ(Hex(0), Hex(r.rdx));
  }
  void ExpectSuccess(const Regs& r) { EXPECT_STATUS(raw(Status::SUCCESS), r.rax); }

  // Every lock a failed call took was released at its exit.
  void ExpectNothingHeld() {
    EXPECT_FALSE(m.pamt_4k(tdr >> 12).lock.held());
    EXPECT_FALSE(td().op_state_lock.held());
    EXPECT_FALSE(td().sept_lock.held());
    EXPECT_FALSE(td().epoch_lock.held());
    if (has_page_info()) {
      auto w = m.walk(td(), kGpa, level());
      EXPECT_FALSE(SeptEntry{w.slot->load()}.locked());
    }
  }

  std::atomic<uint64_t>* slot(uint64_t gpa, int l) { return m.walk(td(), gpa, l).slot; }
};

// §0: only SEPT.ADD/SEPT.REMOVE (and PROMOTE) accept version 1; anything above the maximum is
// OPERAND_INVALID|RAX, decided before the TDR is looked at.
TEST_P(Prologue, VersionAboveMaximumIsInvalidRaxBeforeTdrChecks) {
  const unsigned bad = static_cast<unsigned>(leaf_max_version(spec().leaf)) + 1;
  ExpectEarly(raw(Status::OPERAND_INVALID, Operand::RAX), Invoke(tdr, target(), bad));
  // The TDR is aligned and reserved-bit free but outside the TDMR: the version still wins.
  ExpectEarly(raw(Status::OPERAND_INVALID, Operand::RAX), Invoke(0x1000, target(), bad));
  ExpectNothingHeld();
}

// §2.0 step 2: alignment, HKID bits and MAX_PA of the TDR address.
TEST_P(Prologue, TdrBadAddressIsOperandInvalid) {
  ExpectEarly(tdr_err(Status::OPERAND_INVALID), InvokeTdr(tdr + 0x800));
  ExpectEarly(tdr_err(Status::OPERAND_INVALID), InvokeTdr(tdr | (1ull << 46)));  // HKID bit
  ExpectEarly(tdr_err(Status::OPERAND_INVALID), InvokeTdr(tdr | (1ull << 52)));  // >= MAX_PA
  ExpectNothingHeld();
}

TEST_P(Prologue, TdrOutsideTdmrIsAddrRangeError) {
  ExpectEarly(tdr_err(Status::OPERAND_ADDR_RANGE_ERROR), InvokeTdr(0x1000));
  ExpectEarly(tdr_err(Status::OPERAND_ADDR_RANGE_ERROR), InvokeTdr(kPoolEnd));
  ExpectNothingHeld();
}

TEST_P(Prologue, TdrBadAddressBeatsOutsideTdmr) {
  ExpectEarly(tdr_err(Status::OPERAND_INVALID), InvokeTdr(0x1000 | (1ull << 46)));
}

TEST_P(Prologue, TdrPamtLockedIsOperandBusy) {
  PamtEntry& p = m.pamt_4k(tdr >> 12);
  ASSERT_TRUE(p.lock.try_exclusive());
  ExpectEarly(tdr_err(Status::OPERAND_BUSY), Invoke());
  p.lock.release_exclusive();
  ExpectSuccess(Invoke());
}

TEST_P(Prologue, TdrBadAddressBeatsPamtBusy) {
  PamtEntry& p = m.pamt_4k(tdr >> 12);
  ASSERT_TRUE(p.lock.try_exclusive());
  ExpectEarly(tdr_err(Status::OPERAND_INVALID), InvokeTdr(tdr + 0x800));
  p.lock.release_exclusive();
}

// A shared TDR holder (a vCPU in guest mode) blocks only PAGE.ADD, which takes it exclusively
// (§2.3, §8.20).
TEST_P(Prologue, TdrSharedHolderBlocksOnlyExclusiveTdrLeaves) {
  PamtEntry& p = m.pamt_4k(tdr >> 12);
  ASSERT_TRUE(p.lock.try_shared());
  if (spec().tdr_mode == LockMode::kExclusive) {
    ExpectEarly(tdr_err(Status::OPERAND_BUSY), Invoke());
  } else {
    ExpectSuccess(Invoke());
  }
  EXPECT_EQ(1u, p.lock.shared_count());
  p.lock.release_shared();
}

TEST_P(Prologue, TdrWrongPageTypeIsMetadataIncorrect) {
  ExpectEarly(tdr_err(Status::PAGE_METADATA_INCORRECT), InvokeTdr(td().tdcs));
  ExpectEarly(tdr_err(Status::PAGE_METADATA_INCORRECT), InvokeTdr(tdvpr(0)));
  ExpectEarly(tdr_err(Status::PAGE_METADATA_INCORRECT), InvokeTdr(page4k()));  // NDA
  ExpectNothingHeld();
  EXPECT_FALSE(m.pamt_4k(td().tdcs >> 12).lock.held());
}

// The PAMT leaf of an address inside a 2M guest page is the 2M entry: not a 4K PT_TDR.
TEST_P(Prologue, TdrInside2MGuestPageIsMetadataIncorrect) {
  map_tables(kOtherGpa, kLevel2M);
  const uint64_t big = page2m();
  ASSERT_STATUS(raw(Status::SUCCESS), call(Leaf::MEM_PAGE_AUG, gl(kOtherGpa, 1), tdr, big).rax);
  ExpectEarly(tdr_err(Status::PAGE_METADATA_INCORRECT), InvokeTdr(big + 0x1000));
  EXPECT_FALSE(m.pamt_2m(big >> 12).lock.held());
}

TEST_P(Prologue, TdrPamtBusyBeatsWrongPageType) {
  PamtEntry& p = m.pamt_4k(td().tdcs >> 12);
  ASSERT_TRUE(p.lock.try_exclusive());
  ExpectEarly(tdr_err(Status::OPERAND_BUSY), InvokeTdr(td().tdcs));
  p.lock.release_exclusive();
}

// §2.0 step 3.
TEST_P(Prologue, FatalTdIsTdFatal) {
  m.set_fatal(tdr);
  ExpectEarly(0xE000060400000000ull, Invoke());
  ExpectNothingHeld();
}

TEST_P(Prologue, TdrPamtBusyBeatsFatal) {
  m.set_fatal(tdr);
  PamtEntry& p = m.pamt_4k(tdr >> 12);
  ASSERT_TRUE(p.lock.try_exclusive());
  ExpectEarly(tdr_err(Status::OPERAND_BUSY), Invoke());
  p.lock.release_exclusive();
}

// A TD whose key is not configured has no TDCS either: the lifecycle check comes first.
TEST_P(Prologue, KeysNotConfiguredBeatsTdcsNotAllocated) {
  const uint64_t other = m.create_td(1, BuildStage::kCreated);
  ASSERT_NE(0u, other);
  ExpectEarly(0x8000081000000000ull, InvokeTdr(other));
  EXPECT_FALSE(m.pamt_4k(other >> 12).lock.held());
}

TEST_P(Prologue, FatalBeatsKeysNotConfigured) {
  const uint64_t other = m.create_td(1, BuildStage::kCreated);
  m.set_fatal(other);
  ExpectEarly(raw(Status::TD_FATAL), InvokeTdr(other));
}

TEST_P(Prologue, TdcsNotAllocated) {
  const uint64_t other = m.create_td(1, BuildStage::kKeysConfigured);
  ExpectEarly(0xC000060600000000ull, InvokeTdr(other));
  EXPECT_FALSE(m.pamt_4k(other >> 12).lock.held());
}

// §8.23: once teardown started (VPFLUSHDONE) every S-EPT leaf reports keys not configured.
TEST_P(Prologue, AfterVpFlushDoneKeysNotConfigured) {
  ASSERT_STATUS(raw(Status::SUCCESS), call(Leaf::MNG_VPFLUSHDONE, tdr).rax);
  ExpectEarly(raw(Status::TD_KEYS_NOT_CONFIGURED), Invoke());
}

// §2.0 step 4: OP_STATE is taken shared by every leaf here except PAGE.ADD.
TEST_P(Prologue, OpStateLockHeldIsOperandBusyOpState) {
  ASSERT_TRUE(td().op_state_lock.try_exclusive());
  if (spec().op_state_lock) {
    ExpectEarly(0x80000200000000ACull, Invoke());
    EXPECT_TRUE(td().op_state_lock.held_exclusive());
    EXPECT_FALSE(m.pamt_4k(tdr >> 12).lock.held());
  } else {
    ExpectSuccess(Invoke());
  }
  td().op_state_lock.release_exclusive();
}

TEST_P(Prologue, OpStateLockSharedHolderDoesNotBlock) {
  ASSERT_TRUE(td().op_state_lock.try_shared());
  ExpectSuccess(Invoke());
  EXPECT_EQ(1u, td().op_state_lock.shared_count());
  td().op_state_lock.release_shared();
}

TEST_P(Prologue, TdcsNotAllocatedBeatsOpStateLockBusy) {
  const uint64_t other = m.create_td(1, BuildStage::kKeysConfigured);
  Td& o = *m.td_of(other);
  ASSERT_TRUE(o.op_state_lock.try_exclusive());
  ExpectEarly(raw(Status::TDCS_NOT_ALLOCATED), InvokeTdr(other));
  o.op_state_lock.release_exclusive();
}

TEST_P(Prologue, FatalBeatsOpStateLockBusy) {
  m.set_fatal(tdr);
  ASSERT_TRUE(td().op_state_lock.try_exclusive());
  ExpectEarly(raw(Status::TD_FATAL), Invoke());
  td().op_state_lock.release_exclusive();
}

// §2.0 step 5, §7: no S-EPT leaf runs before TDH.MNG.INIT.
TEST_P(Prologue, UninitializedTdIsOpStateIncorrect) {
  const uint64_t other = m.create_td(1, BuildStage::kTdcsAdded);
  ExpectEarly(0xC000060800000000ull, Invoke(other, target()));
  EXPECT_FALSE(m.td_of(other)->op_state_lock.held());
}

TEST_P(Prologue, OpStateLockBusyBeatsOpStateIncorrect) {
  const uint64_t other = m.create_td(1, BuildStage::kTdcsAdded);
  Td& o = *m.td_of(other);
  ASSERT_TRUE(o.op_state_lock.try_exclusive());
  ExpectEarly(spec().op_state_lock ? raw(Status::OPERAND_BUSY, Operand::OP_STATE)
                                   : raw(Status::OP_STATE_INCORRECT),
              Invoke(other, target()));
  o.op_state_lock.release_exclusive();
}

TEST_P(Prologue, OpStateIncorrectBeatsBadPageInfo) {
  if (!has_page_info()) GTEST_SKIP() << "no page_info";
  const uint64_t other = m.create_td(1, BuildStage::kTdcsAdded);
  ExpectEarly(raw(Status::OP_STATE_INCORRECT), Invoke(other, target() | 0x8));
}

// §2.0 step 6: verify_page_info_input.
TEST_P(Prologue, PageInfoReservedBitsAreOperandInvalidRcx) {
  if (!has_page_info()) GTEST_SKIP() << "no page_info";
  for (uint64_t bit : {3, 7, 11, 52, 56, 63}) {
    SCOPED_TRACE(bit);
    ExpectEarly(0xC000010000000001ull, InvokeRcx(target() | (1ull << bit)));
  }
  ExpectNothingHeld();
}

TEST_P(Prologue, PageInfoLevelOutOfRangeIsOperandInvalidRcx) {
  if (!has_page_info()) GTEST_SKIP() << "no page_info";
  for (int l = 0; l < 8; l++) {
    if (l >= spec().min_level && l <= spec().max_level) continue;
    SCOPED_TRACE(l);
    ExpectEarly(raw(Status::OPERAND_INVALID, Operand::RCX), InvokeRcx(gl(kGpa, l)));
  }
  ExpectNothingHeld();
}

TEST_P(Prologue, PageInfoMisalignedGpaIsOperandInvalidRcx) {
  if (!has_page_info()) GTEST_SKIP() << "no page_info";
  const int l = std::max(spec().min_level, 1);
  if (l > spec().max_level) GTEST_SKIP() << "4K only: a 4K GPA is always aligned";
  ExpectEarly(raw(Status::OPERAND_INVALID, Operand::RCX), InvokeRcx(gl(kGpa + 0x1000, l)));
}

// §2.0 step 7.
TEST_P(Prologue, SharedOrOutOfRangeGpaIsOperandInvalidRcx) {
  if (!has_page_info()) GTEST_SKIP() << "no page_info";
  ExpectEarly(raw(Status::OPERAND_INVALID, Operand::RCX), InvokeRcx(target() | kSharedBit));
  ExpectEarly(raw(Status::OPERAND_INVALID, Operand::RCX), InvokeRcx(target() | (1ull << kGpaw)));
  ExpectNothingHeld();
}

// §2.0 step 8, §8.2: the tree lock in the leaf's mode.
TEST_P(Prologue, TreeLockHeldExclusivelyIsBusySeptTree) {
  ASSERT_TRUE(td().sept_lock.try_exclusive());
  if (spec().tree == Tree::kNone) {
    ExpectSuccess(Invoke());  // PAGE.ADD and TRACK do not take it
  } else {
    ExpectEarly(0x8000020000000092ull, Invoke());
    EXPECT_FALSE(td().op_state_lock.held());
    EXPECT_FALSE(m.pamt_4k(tdr >> 12).lock.held());
  }
  td().sept_lock.release_exclusive();
  if (spec().tree != Tree::kNone) ExpectSuccess(Invoke());
}

TEST_P(Prologue, TreeLockHeldSharedBlocksOnlyExclusiveTreeLeaves) {
  ASSERT_TRUE(td().sept_lock.try_shared());
  if (spec().tree == Tree::kExclusive) {
    ExpectEarly(raw(Status::OPERAND_BUSY, Operand::SEPT_TREE), Invoke());
  } else {
    ExpectSuccess(Invoke());
  }
  EXPECT_EQ(1u, td().sept_lock.shared_count());
  td().sept_lock.release_shared();
}

TEST_P(Prologue, BadPageInfoBeatsTreeBusy) {
  if (!has_page_info()) GTEST_SKIP() << "no page_info";
  ASSERT_TRUE(td().sept_lock.try_exclusive());
  ExpectEarly(raw(Status::OPERAND_INVALID, Operand::RCX), InvokeRcx(target() | 0x8));
  ExpectEarly(raw(Status::OPERAND_INVALID, Operand::RCX), InvokeRcx(target() | kSharedBit));
  td().sept_lock.release_exclusive();
}

TEST_P(Prologue, TreeBusyBeatsWalkFailure) {
  if (!has_page_info()) GTEST_SKIP() << "no page_info";
  ASSERT_TRUE(td().sept_lock.try_exclusive());
  const Regs r = InvokeRcx(gl(kUnmappedGpa, level()));
  if (spec().tree == Tree::kNone) {
    EXPECT_STATUS(raw(Status::EPT_WALK_FAILED, Operand::RCX), r.rax);
  } else {
    ExpectEarly(raw(Status::OPERAND_BUSY, Operand::SEPT_TREE), r);
  }
  td().sept_lock.release_exclusive();
}

// §2.0 step 9, §2.13: the details are those of the entry where the walk stopped.
TEST_P(Prologue, WalkStoppedAtFreeRootEntryReportsIt) {
  if (!has_page_info()) GTEST_SKIP() << "no page_info";
  const Regs r = InvokeRcx(gl(kUnmappedGpa, level()));
  EXPECT_STATUS(0xC0000B0000000001ull, r.rax);
  EXPECT_EQ(Hex(kSve), Hex(r.rcx));
  EXPECT_EQ(Hex(SpecLevelState(kPwl, SeptState::FREE)), Hex(r.rdx));
  ExpectNothingHeld();
}

TEST_P(Prologue, WalkStoppedAtBlockedParentReportsParent) {
  if (!has_page_info()) GTEST_SKIP() << "no page_info";
  ASSERT_STATUS(raw(Status::SUCCESS), block(kGpa, level() + 1));
  const Regs r = Invoke();
  EXPECT_STATUS(raw(Status::EPT_WALK_FAILED, Operand::RCX), r.rax);
  EXPECT_EQ(Hex(0), Hex(r.rcx));  // NL_BLOCKED hides the table's HPA
  EXPECT_EQ(Hex(SpecLevelState(level() + 1, SeptState::NL_BLOCKED)), Hex(r.rdx));
}

// The walk does not lock: a locked entry where it stops is reported as a walk failure, its
// lock bits hidden and left alone (no TDHP).
TEST_P(Prologue, WalkFailureBeatsLockedStopEntry) {
  if (!has_page_info()) GTEST_SKIP() << "no page_info";
  ASSERT_STATUS(raw(Status::SUCCESS), block(kGpa, level() + 1));
  std::atomic<uint64_t>* parent = slot(kGpa, level() + 1);
  parent->fetch_or(kTdel);
  const Regs r = Invoke();
  EXPECT_STATUS(raw(Status::EPT_WALK_FAILED, Operand::RCX), r.rax);
  EXPECT_EQ(Hex(0), Hex(r.rcx));
  EXPECT_EQ(Hex(SpecLevelState(level() + 1, SeptState::NL_BLOCKED)), Hex(r.rdx));
  EXPECT_FALSE(SeptEntry{parent->load()}.host_priority());
  parent->fetch_and(~kTdel);
}

// §2.0 step 10, §8.3: a held entry lock fails with the pre-lock entry's details and sets TDHP;
// the next successful host acquisition clears it.
TEST_P(Prologue, EntryLockedIsBusyRcxAndSetsHostPriority) {
  if (!has_page_info()) GTEST_SKIP() << "no page_info";
  std::atomic<uint64_t>* s = slot(kGpa, level());
  const SeptEntry before{s->load()};
  s->fetch_or(kTdel);
  if (!spec().entry_lock) {
    ExpectSuccess(Invoke());  // PAGE.ADD takes no entry lock
    EXPECT_FALSE(SeptEntry{s->load()}.host_priority());
    s->fetch_and(~kTdel);
    return;
  }
  const Regs r = Invoke();
  EXPECT_STATUS(0x8000020000000001ull, r.rax);
  EXPECT_EQ(Hex(SpecEntry(before.state(), before.hpa_bits())), Hex(r.rcx));
  EXPECT_EQ(Hex(SpecLevelState(level(), before.state())), Hex(r.rdx));
  const SeptEntry after{s->load()};
  EXPECT_TRUE(after.host_priority());
  EXPECT_TRUE(after.locked());
  EXPECT_EQ(before.raw, after.without_locks().raw);  // nothing else changed
  EXPECT_FALSE(td().sept_lock.held());
  s->fetch_and(~kTdel);
  ExpectSuccess(Invoke());
  EXPECT_FALSE(SeptEntry{s->load()}.host_priority());
  EXPECT_FALSE(SeptEntry{s->load()}.locked());
}

INSTANTIATE_TEST_SUITE_P(AllLeaves, Prologue, ::testing::ValuesIn(kLeaves),
                         [](const ::testing::TestParamInfo<LeafSpec>& i) { return i.param.name; });

// Leaves without a version reject one at the dispatcher, whatever else is wrong.
TEST(PrologueDispatch, UnknownLeafIsInvalidRax) {
  host::HostPages host(kHostBasePfn, kHostPages);
  Module m(host);
  Regs in;
  in.rax = 99;
  EXPECT_STATUS(raw(Status::OPERAND_INVALID, Operand::RAX), m.seamcall(in).rax);
  in.rax = leaf_rax(Leaf::MEM_PAGE_AUG) | (1ull << 24);  // bits 63:24 reserved
  EXPECT_STATUS(raw(Status::OPERAND_INVALID, Operand::RAX), m.seamcall(in).rax);
}

}  // namespace
}  // namespace tdx::testing
