// TDH.PHYMEM.PAGE.WBINVD, TDH.PHYMEM.PAGE.RECLAIM and the teardown sequence KVM uses:
// VP.FLUSH each vCPU -> MNG.VPFLUSHDONE -> PHYMEM.CACHE.WB -> MNG.KEY.FREEID -> RECLAIM
// (tdx-module.md §2.11, §2.12, §7, §8.19, §8.22, §8.23).
#include <cstdio>
#include <string>

#include "tests/tdx_encodings.h"
#include "tests/tdx_fixture.h"

namespace tdx::testing {
namespace {

constexpr uint64_t k4K = 0x1000;
constexpr uint64_t kGpa = 0x600000;
constexpr uint64_t kGpa2M = kGpa + 0x200000;
constexpr uint64_t kOk = raw(Status::SUCCESS);

class PhymemTest : public TdxTest {
 protected:
  Regs wbinvd(uint64_t pa) { return call(Leaf::PHYMEM_PAGE_WBINVD, pa); }
  Regs reclaim(uint64_t pa) { return call(Leaf::PHYMEM_PAGE_RECLAIM, pa); }
  uint64_t hkid_bits() { return static_cast<uint64_t>(td().hkid) << kPhysBits; }

  // A 4K MAPPED page added before finalize.
  uint64_t add4k(uint64_t gpa) {
    map_tables(gpa, kLevel4K);
    const uint64_t hpa = page4k();
    EXPECT_STATUS(kOk, call(Leaf::MEM_PAGE_ADD, gl(gpa, 0), tdr, hpa, 0).rax);
    return hpa;
  }
  uint64_t aug2m(uint64_t gpa) {
    map_tables(gpa, kLevel2M);
    const uint64_t hpa = page2m();
    EXPECT_STATUS(kOk, call(Leaf::MEM_PAGE_AUG, gl(gpa, 1), tdr, hpa).rax);
    return hpa;
  }
  // Finalizes, runs vCPU 0 once (so that it is associated) and flushes both vCPUs' state
  // from the LP, then VPFLUSHDONE.
  void run_and_flush() {
    ASSERT_STATUS(kOk, finalize());
    ASSERT_STATUS(kOk, enter(0));
    ASSERT_TRUE(exit(0));
    ASSERT_STATUS(kOk, call(Leaf::VP_FLUSH, tdvpr(0)).rax);
    ASSERT_STATUS(kOk, call(Leaf::MNG_VPFLUSHDONE, tdr).rax);
  }
  void teardown() {
    run_and_flush();
    ASSERT_STATUS(kOk, call(Leaf::PHYMEM_CACHE_WB).rax);
    ASSERT_STATUS(kOk, call(Leaf::MNG_KEY_FREEID, tdr).rax);
    ASSERT_EQ(Lifecycle::TEARDOWN, td().lifecycle);
  }
};

#define EXPECT_RECLAIM(regs, status, type, owner, size)  \
  do {                                                   \
    const ::tdx::Regs o_ = (regs);                       \
    EXPECT_STATUS(status, o_.rax);                       \
    EXPECT_EQ(Hex(type), Hex(o_.rcx)) << "RCX (type)";   \
    EXPECT_EQ(Hex(owner), Hex(o_.rdx)) << "RDX (owner)"; \
    EXPECT_EQ(Hex(size), Hex(o_.r8)) << "R8 (size)";     \
  } while (0)

// ---------------------------------------------------------------------------------------------
// WBINVD (§2.11, §8.19).

TEST_F(PhymemTest, WbinvdAfterRemoveTakesThePaWithHkidBits) {
  const uint64_t hpa = add4k(kGpa);
  ASSERT_NE(0u, hkid_bits());
  // Still owned by the TD: its PAMT entry is REG, not NDA.
  EXPECT_STATUS(raw(Status::PAGE_METADATA_INCORRECT, Operand::RCX), wbinvd(hpa | hkid_bits()).rax);
  const Regs rm = call(Leaf::MEM_PAGE_REMOVE, gl(kGpa, 0), tdr);  // no BLOCK before finalize
  ASSERT_STATUS(kOk, rm.rax);
  ASSERT_EQ(hpa, rm.rcx);
  host.set_needs_wbinvd(hpa >> 12, true);  // what the host ledger records for a returned page
  EXPECT_STATUS(kOk, wbinvd(hpa | hkid_bits()).rax);
  EXPECT_FALSE(host.needs_wbinvd(hpa >> 12));
}

TEST_F(PhymemTest, WbinvdRejectsPagesTheModuleStillOwns) {
  const uint64_t hpa2m = aug2m(kGpa2M);
  const uint64_t pt = entry(kGpa2M, 2).hpa_bits();  // the PD page
  const uint64_t cases[] = {tdr, td().tdcs, tdvpr(0), pt, hpa2m, hpa2m + 17 * k4K};
  for (uint64_t pa : cases) {
    SCOPED_TRACE(Hex(pa));
    host.set_needs_wbinvd(pa >> 12, true);
    EXPECT_STATUS(raw(Status::PAGE_METADATA_INCORRECT, Operand::RCX), wbinvd(pa | hkid_bits()).rax);
    EXPECT_TRUE(host.needs_wbinvd(pa >> 12));
  }
}

TEST_F(PhymemTest, WbinvdOperandChecksInOrder) {
  const uint64_t free_page = page4k();  // PAMT NDA
  const uint64_t tdmr_end = (kHostBasePfn + kHostPages) << 12;
  EXPECT_STATUS(raw(Status::OPERAND_INVALID, Operand::RCX), wbinvd(free_page + 8).rax);
  EXPECT_STATUS(raw(Status::OPERAND_INVALID, Operand::RCX), wbinvd(free_page | (1ull << 52)).rax);
  EXPECT_STATUS(raw(Status::OPERAND_INVALID, Operand::RCX), wbinvd(tdmr_end + 8).rax);
  EXPECT_STATUS(raw(Status::OPERAND_ADDR_RANGE_ERROR, Operand::RCX), wbinvd(tdmr_end).rax);
  EXPECT_STATUS(raw(Status::OPERAND_ADDR_RANGE_ERROR, Operand::RCX),
                wbinvd(0x1000 | hkid_bits()).rax);
  // PAMT lock before the page-type check: a busy owned page is BUSY.
  PamtEntry& p = m.pamt_4k(tdr >> 12);
  ASSERT_TRUE(p.lock.try_exclusive());
  EXPECT_STATUS(raw(Status::OPERAND_BUSY, Operand::RCX), wbinvd(tdr).rax);
  p.lock.release_exclusive();
  PamtEntry& f = m.pamt_4k(free_page >> 12);
  ASSERT_TRUE(f.lock.try_exclusive());
  EXPECT_STATUS(raw(Status::OPERAND_BUSY, Operand::RCX), wbinvd(free_page).rax);
  f.lock.release_exclusive();
  EXPECT_STATUS(kOk, wbinvd(free_page).rax);
}

TEST_F(PhymemTest, WbinvdOfARemoved2MPageWorksPer4KPage) {
  const uint64_t hpa = aug2m(kGpa2M);
  const Regs rm = call(Leaf::MEM_PAGE_REMOVE, gl(kGpa2M, 1), tdr);
  ASSERT_STATUS(kOk, rm.rax);
  ASSERT_EQ(hpa, rm.rcx);
  for (uint64_t i = 0; i < 512; i++)
    ASSERT_STATUS(kOk, wbinvd((hpa + i * k4K) | hkid_bits()).rax) << i;
}

TEST_F(PhymemTest, WbinvdOfAFreedSeptPage) {
  map_tables(kGpa, kLevel4K);
  const uint64_t table = entry(kGpa, 1).hpa_bits();
  EXPECT_STATUS(raw(Status::PAGE_METADATA_INCORRECT, Operand::RCX), wbinvd(table).rax);
  const Regs sr = call(Leaf::MEM_SEPT_REMOVE, gl(kGpa, 1), tdr);
  ASSERT_STATUS(kOk, sr.rax);
  ASSERT_EQ(table, sr.rcx);
  EXPECT_STATUS(kOk, wbinvd(table | hkid_bits()).rax);
}

// ---------------------------------------------------------------------------------------------
// Teardown ordering.

TEST_F(PhymemTest, VpflushdoneNeedsEveryAssociatedVcpuFlushed) {
  ASSERT_STATUS(kOk, finalize());
  for (int v = 0; v < 2; v++) {
    ASSERT_STATUS(kOk, enter(v));
    ASSERT_TRUE(exit(v));
  }
  const Regs r = call(Leaf::MNG_VPFLUSHDONE, tdr);
  EXPECT_STATUS(raw(Status::FLUSHVP_NOT_DONE), r.rax);
  EXPECT_EQ(Hex(0x8000082400000000ull), Hex(r.rax));
  EXPECT_EQ(Lifecycle::KEYS_CONFIGURED, td().lifecycle);
  EXPECT_STATUS(kOk, track());  // the TD is still fully usable
  ASSERT_STATUS(kOk, call(Leaf::VP_FLUSH, tdvpr(0)).rax);
  EXPECT_STATUS(raw(Status::FLUSHVP_NOT_DONE), call(Leaf::MNG_VPFLUSHDONE, tdr).rax);
  ASSERT_STATUS(kOk, call(Leaf::VP_FLUSH, tdvpr(1)).rax);
  EXPECT_STATUS(kOk, call(Leaf::MNG_VPFLUSHDONE, tdr).rax);
  EXPECT_EQ(Lifecycle::BLOCKED, td().lifecycle);
  EXPECT_STATUS(raw(Status::LIFECYCLE_STATE_INCORRECT), call(Leaf::MNG_VPFLUSHDONE, tdr).rax);
}

TEST_F(PhymemTest, KeyFreeidRequiresVpflushdone) {
  EXPECT_STATUS(raw(Status::LIFECYCLE_STATE_INCORRECT), call(Leaf::MNG_KEY_FREEID, tdr).rax);
  EXPECT_EQ(Lifecycle::KEYS_CONFIGURED, td().lifecycle);
  teardown();
  EXPECT_EQ(0u, td().hkid);
  EXPECT_STATUS(raw(Status::LIFECYCLE_STATE_INCORRECT), call(Leaf::MNG_KEY_FREEID, tdr).rax);
}

TEST_F(PhymemTest, SeptLeavesReturnKeysNotConfiguredOnceTeardownStarted) {
  const uint64_t hpa4 = add4k(kGpa);
  aug2m(kGpa2M);
  (void)hpa4;
  run_and_flush();
  const uint64_t keys = raw(Status::TD_KEYS_NOT_CONFIGURED);
  ASSERT_EQ(Hex(0x8000081000000000ull), Hex(keys));
  auto check_all = [&] {
    const uint64_t bad = gl(kGpa, 7);  // an invalid level: the TD state check comes first
    EXPECT_STATUS(keys, call(Leaf::MEM_SEPT_ADD, gl(level_size(2), 2), tdr, page4k()).rax);
    EXPECT_STATUS(keys, call(Leaf::MEM_SEPT_REMOVE, gl(kGpa, 1), tdr).rax);
    EXPECT_STATUS(keys, call(Leaf::MEM_PAGE_ADD, gl(kGpa + k4K, 0), tdr, page4k(), 0).rax);
    EXPECT_STATUS(keys, call(Leaf::MEM_PAGE_AUG, gl(kGpa + k4K, 0), tdr, page4k()).rax);
    EXPECT_STATUS(keys, call(Leaf::MEM_PAGE_AUG, bad, tdr, page4k()).rax);
    EXPECT_STATUS(keys, call(Leaf::MEM_RANGE_BLOCK, gl(kGpa, 0), tdr).rax);
    EXPECT_STATUS(keys, call(Leaf::MEM_RANGE_UNBLOCK, gl(kGpa, 0), tdr).rax);
    EXPECT_STATUS(keys, call(Leaf::MEM_TRACK, tdr).rax);
    EXPECT_STATUS(keys, call(Leaf::MEM_PAGE_REMOVE, gl(kGpa, 0), tdr).rax);
    EXPECT_STATUS(keys, call(Leaf::MEM_PAGE_REMOVE, bad, tdr).rax);
    EXPECT_STATUS(keys, call(Leaf::MEM_PAGE_DEMOTE, gl(kGpa2M, 1), tdr, page4k()).rax);
    EXPECT_STATUS(keys, call(Leaf::MEM_PAGE_PROMOTE, gl(kGpa, 1), tdr).rax);
    EXPECT_STATUS(keys, call(Leaf::MR_FINALIZE, tdr).rax);
    EXPECT_STATUS(keys, call(Leaf::VP_ENTER, tdvpr(0)).rax);
  };
  {
    SCOPED_TRACE("after VPFLUSHDONE");
    check_all();
  }
  ASSERT_STATUS(kOk, call(Leaf::PHYMEM_CACHE_WB).rax);
  ASSERT_STATUS(kOk, call(Leaf::MNG_KEY_FREEID, tdr).rax);
  {
    SCOPED_TRACE("after KEY.FREEID");
    check_all();
  }
  // Nothing changed in the S-EPT.
  EXPECT_EQ(SeptState::MAPPED, entry(kGpa, 0).state());
  EXPECT_EQ(SeptState::PENDING, entry(kGpa2M, 1).state());
}

// ---------------------------------------------------------------------------------------------
// RECLAIM (§2.12).

TEST_F(PhymemTest, ReclaimRequiresTheTeardownLifecycle) {
  const uint64_t hpa = add4k(kGpa);
  EXPECT_RECLAIM(reclaim(hpa), raw(Status::LIFECYCLE_STATE_INCORRECT), 0, 0, 0);
  run_and_flush();  // lifecycle BLOCKED: still not TEARDOWN
  EXPECT_RECLAIM(reclaim(hpa), raw(Status::LIFECYCLE_STATE_INCORRECT), 0, 0, 0);
  ASSERT_STATUS(kOk, call(Leaf::MNG_KEY_FREEID, tdr).rax);
  EXPECT_RECLAIM(reclaim(hpa), kOk, static_cast<uint64_t>(PageType::REG), tdr, 0);
}

TEST_F(PhymemTest, ReclaimEveryPageAndTheTdrLast) {
  const uint64_t hpa4 = add4k(kGpa);
  const uint64_t hpa2m = aug2m(kGpa2M);
  const uint64_t pdpt = entry(kGpa, 3).hpa_bits(), pd = entry(kGpa, 2).hpa_bits(),
                 pt = entry(kGpa, 1).hpa_bits();
  const uint64_t tdcs = td().tdcs, root = td().root;
  const Vcpu v0 = td().vcpus[0], v1 = td().vcpus[1];
  // TDCS + root, 2 pages per vCPU, 3 S-EPT pages, a 4K and a 2M guest page (§8.22).
  ASSERT_EQ(2 + 4 + 3 + 1 + 512, td().chldcnt);
  teardown();
  Td* t = m.td_of(tdr);

  EXPECT_RECLAIM(reclaim(tdr), raw(Status::TD_ASSOCIATED_PAGES_EXIST), 0, 0, 0);
  EXPECT_RECLAIM(reclaim(hpa4), kOk, static_cast<uint64_t>(PageType::REG), tdr, 0);
  EXPECT_EQ(521, t->chldcnt);
  // A 2M PAMT leaf is reclaimed at its base, size 1.
  EXPECT_RECLAIM(reclaim(hpa2m + 9 * k4K), raw(Status::OPERAND_INVALID, Operand::RCX), 0, 0, 0);
  EXPECT_RECLAIM(reclaim(hpa2m), kOk, static_cast<uint64_t>(PageType::REG), tdr, 1);
  EXPECT_EQ(9, t->chldcnt);
  for (uint64_t s : {pt, pd, pdpt})
    EXPECT_RECLAIM(reclaim(s), kOk, static_cast<uint64_t>(PageType::EPT), tdr, 0);
  for (uint64_t s : {tdcs, root, v0.tdvpx, v1.tdvpx})
    EXPECT_RECLAIM(reclaim(s), kOk, static_cast<uint64_t>(PageType::TDCX), tdr, 0);
  EXPECT_RECLAIM(reclaim(v0.tdvpr), kOk, static_cast<uint64_t>(PageType::TDVPR), tdr, 0);
  EXPECT_RECLAIM(reclaim(tdr), raw(Status::TD_ASSOCIATED_PAGES_EXIST), 0, 0, 0);
  EXPECT_RECLAIM(reclaim(v1.tdvpr), kOk, static_cast<uint64_t>(PageType::TDVPR), tdr, 0);
  EXPECT_EQ(0, t->chldcnt);
  EXPECT_RECLAIM(reclaim(tdr), kOk, static_cast<uint64_t>(PageType::TDR), tdr, 0);
  EXPECT_EQ(nullptr, m.td_of(tdr));
  // Every page is PAMT-free now: a second RECLAIM fails, WBINVD succeeds.
  for (uint64_t pa : {hpa4, hpa2m, pt, root, v0.tdvpr, tdr}) {
    SCOPED_TRACE(Hex(pa));
    EXPECT_RECLAIM(reclaim(pa), raw(Status::PAGE_METADATA_INCORRECT, Operand::RCX), 0, 0, 0);
    EXPECT_STATUS(kOk, wbinvd(pa).rax);
    EXPECT_EQ(PageType::NDA, m.pamt_4k(pa >> 12).type);
  }
  EXPECT_EQ(PageType::NDA, m.pamt_2m(hpa2m >> 12).type);
}

TEST_F(PhymemTest, ReclaimOperandChecksComeBeforeTheLifecycle) {
  const uint64_t hpa4 = add4k(kGpa);
  const uint64_t hpa2m = aug2m(kGpa2M);
  const uint64_t tdmr_end = (kHostBasePfn + kHostPages) << 12;
  // The TD is alive (KEYS_CONFIGURED): each of these would also fail the lifecycle check.
  EXPECT_RECLAIM(reclaim(hpa4 + 8), raw(Status::OPERAND_INVALID, Operand::RCX), 0, 0, 0);
  EXPECT_RECLAIM(reclaim(hpa4 | hkid_bits()), raw(Status::OPERAND_INVALID, Operand::RCX), 0, 0, 0);
  EXPECT_RECLAIM(reclaim(tdmr_end), raw(Status::OPERAND_ADDR_RANGE_ERROR, Operand::RCX), 0, 0, 0);
  EXPECT_RECLAIM(reclaim(page4k()), raw(Status::PAGE_METADATA_INCORRECT, Operand::RCX), 0, 0, 0);
  EXPECT_RECLAIM(reclaim(hpa2m + k4K), raw(Status::OPERAND_INVALID, Operand::RCX), 0, 0, 0);
  PamtEntry& p = m.pamt_4k(hpa4 >> 12);
  ASSERT_TRUE(p.lock.try_shared());  // e.g. a concurrent WBINVD: RECLAIM needs it exclusive
  EXPECT_RECLAIM(reclaim(hpa4), raw(Status::OPERAND_BUSY, Operand::RCX), 0, 0, 0);
  p.lock.release_shared();
  // The TDR with children while the TD is alive: the lifecycle is checked first.
  EXPECT_RECLAIM(reclaim(tdr), raw(Status::LIFECYCLE_STATE_INCORRECT), 0, 0, 0);
}

TEST_F(PhymemTest, ReclaimTakesTheOwnersTdrSharedAsImplicitOperand) {
  const uint64_t hpa4 = add4k(kGpa);
  teardown();
  PamtEntry& tp = m.pamt_4k(tdr >> 12);
  ASSERT_TRUE(tp.lock.try_exclusive());
  EXPECT_RECLAIM(reclaim(hpa4), raw(Status::OPERAND_BUSY, Operand::TDR), 0, 0, 0);
  tp.lock.release_exclusive();
  EXPECT_RECLAIM(reclaim(hpa4), kOk, static_cast<uint64_t>(PageType::REG), tdr, 0);
}

// Module::seamcall<L>, KVM's entry for a fixed leaf, is the dispatcher: a pending injection
// still answers first (fails if the compile-time path skips the injection list), and without
// one the leaf runs with every check, as seamcall(in) runs it.
TEST_F(PhymemTest, FixedLeafSeamcallIsTheDispatchersCall) {
  const uint64_t hpa4 = add4k(kGpa), hpa4b = add4k(kGpa + k4K);
  teardown();
  auto fixed = [&](uint64_t pa) {
    Regs in;
    in.rax = leaf_rax(Leaf::PHYMEM_PAGE_RECLAIM);
    in.rcx = pa;
    return m.seamcall<Leaf::PHYMEM_PAGE_RECLAIM>(in);
  };
  const uint64_t injected = raw(Status::OPERAND_BUSY, Operand::RCX);
  m.inject(Leaf::PHYMEM_PAGE_RECLAIM, injected, 2);
  m.inject(Leaf::MEM_TRACK, raw(Status::TD_FATAL), 1);  // another leaf's: left pending
  EXPECT_RECLAIM(fixed(hpa4 + 8), raw(Status::OPERAND_INVALID, Operand::RCX), 0, 0, 0);
  EXPECT_RECLAIM(fixed(hpa4), injected, 0, 0, 0);  // the 2nd RECLAIM, without running
  EXPECT_EQ(PageType::REG, m.pamt_4k(hpa4 >> 12).type);
  EXPECT_RECLAIM(fixed(hpa4), kOk, static_cast<uint64_t>(PageType::REG), tdr, 0);
  EXPECT_RECLAIM(fixed(hpa4), raw(Status::PAGE_METADATA_INCORRECT, Operand::RCX), 0, 0, 0);
  EXPECT_RECLAIM(reclaim(hpa4b), kOk, static_cast<uint64_t>(PageType::REG), tdr, 0);
  EXPECT_STATUS(raw(Status::TD_FATAL), call(Leaf::MEM_TRACK, tdr).rax);
}

TEST_F(PhymemTest, ReclaimFollowsTheOwningTdsLifecycleOnly) {
  const uint64_t other = m.create_td(1);
  ASSERT_NE(0u, other);
  const uint64_t other_vp = m.td_of(other)->vcpus[0].tdvpr;
  teardown();
  EXPECT_RECLAIM(reclaim(other_vp), raw(Status::LIFECYCLE_STATE_INCORRECT), 0, 0, 0);
  EXPECT_RECLAIM(reclaim(tdvpr(1)), kOk, static_cast<uint64_t>(PageType::TDVPR), tdr, 0);
}

}  // namespace
}  // namespace tdx::testing
