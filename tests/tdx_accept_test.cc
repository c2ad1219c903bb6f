// TDG.MEM.PAGE.ACCEPT (tdx-module.md §2.15) and host priority on the S-EPT entry lock (§2.16,
// §8.3, §8.4). Every outcome: success (4K, 2M, interrupted 2M), the non-error statuses, the
// errors, the EPT-violation TD exit, and a vCPU not in guest mode.
#include <cstdio>
#include <functional>
#include <memory>
#include <string>

#include "tests/tdx_encodings.h"
#include "tests/tdx_fixture.h"

namespace tdx::testing {
namespace {

constexpr uint64_t k4K = 0x1000;
constexpr uint64_t kGpa = 0x600000;  // 2M-aligned
constexpr uint64_t kOk = raw(Status::SUCCESS);
constexpr uint64_t kGuestBusy = raw(Status::OPERAND_BUSY, Operand::RCX);  // 0x8000020000000001

uint64_t leaf_arch(uint64_t hpa, bool mapped) {
  return kSve | hpa | 0xf0 | (mapped ? 0x7 : 0);
}
uint64_t lvl_state(int level, SeptState s) {
  return static_cast<uint64_t>(level) | static_cast<uint64_t>(public_state(s)) << 8;
}

// A RUNNABLE TD with vCPU 0 in guest mode (entered in epoch 1).
class AcceptTest : public TdxTest {
 protected:
  void SetUp() override {
    ASSERT_STATUS(kOk, finalize());
    ASSERT_STATUS(kOk, enter(0));
  }

  uint64_t aug4k(uint64_t gpa) {
    map_tables(gpa, kLevel4K);
    const uint64_t hpa = page4k();
    EXPECT_STATUS(kOk, call(Leaf::MEM_PAGE_AUG, gl(gpa, 0), tdr, hpa).rax);
    return hpa;
  }
  uint64_t aug2m(uint64_t gpa) {
    map_tables(gpa, kLevel2M);
    const uint64_t hpa = page2m();
    EXPECT_STATUS(kOk, call(Leaf::MEM_PAGE_AUG, gl(gpa, 1), tdr, hpa).rax);
    return hpa;
  }
  void on_yield_once(std::string where, std::function<void()> fn) {
    auto done = std::make_shared<bool>(false);
    hooks.on_yield = [=](const char* w) {
      if (*done || where != w) return;
      *done = true;
      fn();
    };
  }
  bool in_td(int v) { return td().vcpus[v].in_td; }
  uint32_t refcount(int parity) { return td().refcount[parity].load(); }

  void expect_status(const AcceptResult& r, uint64_t status) {
    EXPECT_EQ(AcceptResult::kStatus, r.kind);
    EXPECT_STATUS(status, r.status);
  }
  // EPT-violation TD exit from ACCEPT (§2.15): EEQ info fields, and the vCPU left the TD.
  void expect_exit(const AcceptResult& r, uint64_t gpa, int requested, int found, SeptState s,
                   int v = 0) {
    ASSERT_EQ(AcceptResult::kEptViolation, r.kind) << status_name(r.status);
    EXPECT_EQ(Hex(gpa), Hex(r.exit.gpa));
    EXPECT_EQ(requested, r.exit.requested_level);
    EXPECT_EQ(found, r.exit.found_level);
    EXPECT_EQ(public_state(s), r.exit.state);
    EXPECT_EQ(is_leaf(s), r.exit.leaf);
    EXPECT_TRUE(r.exit.accept);
    EXPECT_FALSE(in_td(v));
  }
};

// ---------------------------------------------------------------------------------------------
// Success.

TEST_F(AcceptTest, Accept4KZeroesThePageAndMapsIt) {
  const uint64_t hpa = aug4k(kGpa);
  const uint64_t pfn = hpa >> 12;
  ASSERT_EQ(host::HostPages::junk(pfn), host.content(pfn));
  expect_status(accept(0, kGpa, 0), kOk);
  EXPECT_EQ(0u, host.content(pfn));
  const SeptEntry e = entry(kGpa, 0);
  EXPECT_EQ(SeptState::MAPPED, e.state());
  EXPECT_EQ(hpa, e.hpa_bits());
  EXPECT_FALSE(e.locked());
  EXPECT_TRUE(in_td(0));
}

TEST_F(AcceptTest, Accept2MZeroesAll512PagesAndMapsIt) {
  const uint64_t hpa = aug2m(kGpa);
  const uint64_t pfn = hpa >> 12;
  expect_status(accept(0, kGpa, 1), kOk);
  for (uint64_t i = 0; i < 512; i++) ASSERT_EQ(0u, host.content(pfn + i)) << i;
  const SeptEntry e = entry(kGpa, 1);
  EXPECT_EQ(SeptState::MAPPED, e.state());
  EXPECT_EQ(hpa, e.hpa_bits());  // ACCEPT_COUNTER is 0 again
  EXPECT_FALSE(e.locked());
  EXPECT_TRUE(in_td(0));
}

// ---------------------------------------------------------------------------------------------
// PAGE_ALREADY_ACCEPTED (non-error) and PAGE_SIZE_MISMATCH.

TEST_F(AcceptTest, AlreadyAcceptedOperandIsTheLevelOfTheLeafWhereTheWalkStopped) {
  aug2m(kGpa);
  expect_status(accept(0, kGpa, 1), kOk);
  const AcceptResult r = accept(0, kGpa + 7 * k4K, 0);
  expect_status(r, raw(Status::PAGE_ALREADY_ACCEPTED, 1u));
  EXPECT_EQ(Hex(0x00000B0A00000001ull), Hex(r.status));
  EXPECT_FALSE(is_error(r.status));
  EXPECT_TRUE(in_td(0));
}

TEST_F(AcceptTest, AlreadyAcceptedOperandIsTheRequestedLevelForTheEntryItself) {
  aug4k(kGpa);
  expect_status(accept(0, kGpa, 0), kOk);
  AcceptResult r = accept(0, kGpa, 0);
  EXPECT_EQ(Hex(0x00000B0A00000000ull), Hex(r.status));
  const uint64_t gpa2 = kGpa + level_size(1);
  aug2m(gpa2);
  expect_status(accept(0, gpa2, 1), kOk);
  r = accept(0, gpa2, 1);
  expect_status(r, raw(Status::PAGE_ALREADY_ACCEPTED, 1u));
  EXPECT_EQ(Hex(0x00000B0A00000001ull), Hex(r.status));
  EXPECT_FALSE(entry(gpa2, 1).locked());
}

TEST_F(AcceptTest, SizeMismatchOn2MAcceptOfAnNlMappedEntry) {
  map_tables(kGpa, kLevel4K);  // the 2M entry points to a page table
  const AcceptResult r = accept(0, kGpa, 1);
  expect_status(r, raw(Status::PAGE_SIZE_MISMATCH, 1u));
  EXPECT_EQ(Hex(0xC0000B0B00000001ull), Hex(r.status));
  EXPECT_TRUE(in_td(0));  // a status, not a TD exit
  EXPECT_FALSE(entry(kGpa, 1).locked());
}

TEST_F(AcceptTest, SizeMismatchOn2MAcceptOfAnNlBlockedEntry) {
  map_tables(kGpa, kLevel4K);
  ASSERT_STATUS(kOk, block(kGpa, 1));
  expect_status(accept(0, kGpa, 1), raw(Status::PAGE_SIZE_MISMATCH, 1u));
  EXPECT_TRUE(in_td(0));
}

TEST_F(AcceptTest, SizeMismatchAfterTheHostDemotedThePendingPage) {
  aug2m(kGpa);
  ASSERT_TRUE(exit(0));
  ASSERT_STATUS(kOk, block(kGpa, 1));
  ASSERT_STATUS(kOk, track());
  ASSERT_STATUS(kOk, demote(kGpa, 1));
  ASSERT_STATUS(kOk, enter(0));
  expect_status(accept(0, kGpa, 1), raw(Status::PAGE_SIZE_MISMATCH, 1u));
  expect_status(accept(0, kGpa + k4K, 0), kOk);
}

// ---------------------------------------------------------------------------------------------
// EPT-violation TD exits.

TEST_F(AcceptTest, ExitFor4KUnderA2MPendingLeafDropsTheRefcountAndLocks) {
  aug2m(kGpa);
  ASSERT_EQ(1u, refcount(1));
  PamtEntry& tdr_pamt = m.pamt_4k(tdr >> 12);
  PamtEntry& vp_pamt = m.pamt_4k(tdvpr(0) >> 12);
  ASSERT_EQ(1u, tdr_pamt.lock.shared_count());
  ASSERT_EQ(1u, vp_pamt.lock.shared_count());
  const AcceptResult r = accept(0, kGpa + 5 * k4K, 0);
  expect_exit(r, kGpa + 5 * k4K, 0, 1, SeptState::PENDING);
  EXPECT_EQ(0u, refcount(1));
  EXPECT_EQ(0u, refcount(0));
  EXPECT_FALSE(tdr_pamt.lock.held());
  EXPECT_FALSE(vp_pamt.lock.held());
  EXPECT_EQ(SeptState::PENDING, entry(kGpa, 1).state());
  EXPECT_FALSE(entry(kGpa, 1).locked());  // no lock was taken (§2.15 step 2)
}

TEST_F(AcceptTest, ExitForAFree4KEntry) {
  map_tables(kGpa, kLevel4K);
  expect_exit(accept(0, kGpa, 0), kGpa, 0, 0, SeptState::FREE);
  EXPECT_EQ(0u, refcount(1));
  EXPECT_FALSE(entry(kGpa, 0).locked());
}

TEST_F(AcceptTest, ExitForAFreeEntryAboveTheRequestedLevel) {
  map_tables(kGpa, kLevel2M);  // no page table under the 2M entry
  expect_exit(accept(0, kGpa + k4K, 0), kGpa + k4K, 0, 1, SeptState::FREE);
  ASSERT_STATUS(kOk, enter(0));
  // Nothing at all under another PDPT entry: the walk stops at level 2.
  const uint64_t far = kGpa + level_size(2);
  expect_exit(accept(0, far, 1), far, 1, 2, SeptState::FREE);
}

TEST_F(AcceptTest, ExitForABlocked4KEntry) {
  aug4k(kGpa);
  expect_status(accept(0, kGpa, 0), kOk);
  ASSERT_STATUS(kOk, block(kGpa, 0));
  expect_exit(accept(0, kGpa, 0), kGpa, 0, 0, SeptState::BLOCKED);
  EXPECT_FALSE(entry(kGpa, 0).locked());
}

TEST_F(AcceptTest, ExitForABlocked2MEntry) {
  aug2m(kGpa);
  expect_status(accept(0, kGpa, 1), kOk);
  ASSERT_STATUS(kOk, block(kGpa, 1));
  expect_exit(accept(0, kGpa, 1), kGpa, 1, 1, SeptState::BLOCKED);
}

TEST_F(AcceptTest, ExitForPendingBlockedEntries) {
  aug4k(kGpa);
  ASSERT_STATUS(kOk, block(kGpa, 0));
  expect_exit(accept(0, kGpa, 0), kGpa, 0, 0, SeptState::PENDING_BLOCKED);
  const uint64_t gpa2 = kGpa + level_size(1);
  aug2m(gpa2);
  ASSERT_STATUS(kOk, block(gpa2, 1));
  ASSERT_STATUS(kOk, enter(0));
  expect_exit(accept(0, gpa2, 1), gpa2, 1, 1, SeptState::PENDING_BLOCKED);
  ASSERT_STATUS(kOk, enter(0));
  expect_exit(accept(0, gpa2 + k4K, 0), gpa2 + k4K, 0, 1, SeptState::PENDING_BLOCKED);
}

TEST_F(AcceptTest, ExitFor4KUnderAnNlBlockedEntry) {
  aug4k(kGpa);
  ASSERT_STATUS(kOk, block(kGpa, 1));
  expect_exit(accept(0, kGpa, 0), kGpa, 0, 1, SeptState::NL_BLOCKED);
}

// ---------------------------------------------------------------------------------------------
// Operand errors (§2.15 step 1): before the walk, so the vCPU stays in the TD.

TEST_F(AcceptTest, OperandInvalidRcxComesBeforeTheWalk) {
  map_tables(kGpa, kLevel4K);  // kGpa is FREE: a valid ACCEPT would exit
  const uint64_t bad[] = {
      gl(kGpa, 2),                    // 1G: not acceptable
      gl(kGpa, 3),                    //
      gl(kGpa, 7),                    //
      gl(kGpa + k4K, 1),              // 2M request, GPA not 2M-aligned
      gl(kGpa, 0) | 0x8,              // reserved bits 11:3
      gl(kGpa, 0) | (1ull << 52),     // reserved bits 63:52
      gl(kGpa | kSharedBit, 0),       // shared GPA
      gl(kGpa | (1ull << kGpaw), 0),  // beyond the GPA width
      // The edges of each field (the module tests them all at once).
      gl(kGpa + (1ull << 20), 1),  // 2M request, bit 20 set
      gl(kGpa, 0) | 0x800,         // reserved bit 11
      gl(kGpa, 0) | (1ull << 63),  // reserved bit 63
      gl(kGpa | (1ull << 51), 0),  // GPA bit 51
  };
  for (uint64_t rcx : bad) {
    SCOPED_TRACE(Hex(rcx));
    const AcceptResult r = m.tdg_mem_page_accept(tdvpr(0), rcx);
    expect_status(r, raw(Status::OPERAND_INVALID, Operand::RCX));
    EXPECT_EQ(Hex(0xC000010000000001ull), Hex(r.status));
    EXPECT_TRUE(in_td(0));
  }
}

// ---------------------------------------------------------------------------------------------
// Entry lock and host priority.

TEST_F(AcceptTest, BusyWhileAHostCallHoldsTheEntryLock) {
  map_tables(kGpa, kLevel4K);
  AcceptResult inner;
  on_yield_once("sept-entry-locked", [&] { inner = accept(0, kGpa, 0); });
  ASSERT_STATUS(kOk, call(Leaf::MEM_PAGE_AUG, gl(kGpa, 0), tdr, page4k()).rax);
  expect_status(inner, kGuestBusy);
  EXPECT_TRUE(in_td(0));
  EXPECT_FALSE(entry(kGpa, 0).host_priority());  // a guest never sets TDHP
  expect_status(accept(0, kGpa, 0), kOk);
}

TEST_F(AcceptTest, AcceptHoldsTheEntryLockEvenWhenItWillExit) {
  // §8.4: the ACCEPT locks the BLOCKED entry before it decides to exit.
  const uint64_t hpa = aug4k(kGpa);
  expect_status(accept(0, kGpa, 0), kOk);
  ASSERT_STATUS(kOk, block(kGpa, 0));
  Regs host_out;
  on_yield_once("accept-entry-locked",
                [&] { host_out = call(Leaf::MEM_RANGE_UNBLOCK, gl(kGpa, 0), tdr); });
  expect_exit(accept(0, kGpa, 0), kGpa, 0, 0, SeptState::BLOCKED);
  EXPECT_OUT(host_out, raw(Status::OPERAND_BUSY, Operand::RCX), leaf_arch(hpa, false),
             lvl_state(0, SeptState::BLOCKED));
  EXPECT_TRUE(entry(kGpa, 0).host_priority());
  EXPECT_FALSE(entry(kGpa, 0).locked());
}

TEST_F(AcceptTest, HostPriorityMakesTheGuestBusyUntilAHostCallLocksTheEntry) {
  const uint64_t hpa = aug4k(kGpa);
  ASSERT_STATUS(kOk, enter(1));
  Regs host_out;
  AcceptResult other;
  on_yield_once("accept-entry-locked", [&] {
    host_out = call(Leaf::MEM_PAGE_REMOVE, gl(kGpa, 0), tdr);
    other = accept(1, kGpa, 0);  // the lock is held by vCPU 0: plain BUSY
  });
  expect_status(accept(0, kGpa, 0), kOk);
  // The host failed on the guest-held lock (before its not-blocked check) and set TDHP.
  EXPECT_OUT(host_out, raw(Status::OPERAND_BUSY, Operand::RCX), leaf_arch(hpa, false),
             lvl_state(0, SeptState::PENDING));
  expect_status(other, kGuestBusy);
  ASSERT_TRUE(entry(kGpa, 0).host_priority());
  EXPECT_EQ(SeptState::MAPPED, entry(kGpa, 0).state());
  // The host is gone, but the guest keeps backing off (lock before the state check).
  expect_status(accept(1, kGpa, 0), kGuestBusy);
  expect_status(accept(0, kGpa, 0), kGuestBusy);
  EXPECT_TRUE(in_td(1));
  EXPECT_FALSE(entry(kGpa, 0).locked());
  // A host call that locks the entry clears TDHP, even though it then fails.
  EXPECT_OUT(call(Leaf::MEM_RANGE_UNBLOCK, gl(kGpa, 0), tdr),
             raw(Status::EPT_ENTRY_STATE_INCORRECT, Operand::RCX), leaf_arch(hpa, true),
             lvl_state(0, SeptState::MAPPED));
  EXPECT_FALSE(entry(kGpa, 0).host_priority());
  expect_status(accept(1, kGpa, 0), raw(Status::PAGE_ALREADY_ACCEPTED, 0u));
}

TEST_F(AcceptTest, HostPriorityStopsAnInterrupted2MAcceptUntilTheHostLocks) {
  const uint64_t hpa = aug2m(kGpa);
  hooks.irq_pending = 1;
  uint64_t host_rax = 0;
  on_yield_once("accept-entry-locked", [&] { host_rax = demote(kGpa, 1); });
  EXPECT_EQ(AcceptResult::kResumed, accept(0, kGpa, 1).kind);
  EXPECT_STATUS(raw(Status::OPERAND_BUSY, Operand::RCX), host_rax);
  ASSERT_TRUE(entry(kGpa, 1).host_priority());
  ASSERT_EQ(1u, entry(kGpa, 1).accept_counter());
  expect_status(accept(0, kGpa, 1), kGuestBusy);
  EXPECT_EQ(1u, entry(kGpa, 1).accept_counter());  // no progress while backing off
  // DEMOTE locks the entry (clearing TDHP), then fails: the page is not blocked.
  EXPECT_STATUS(raw(Status::GPA_RANGE_NOT_BLOCKED, Operand::RCX), demote(kGpa, 1));
  EXPECT_FALSE(entry(kGpa, 1).host_priority());
  expect_status(accept(0, kGpa, 1), kOk);
  for (uint64_t i = 0; i < 512; i++) ASSERT_EQ(0u, host.content((hpa >> 12) + i)) << i;
}

TEST_F(AcceptTest, HostPriorityIsCheckedBeforeTheSizeMismatch) {
  map_tables(kGpa, kLevel4K);
  uint64_t host_rax = 0;
  on_yield_once("accept-entry-locked", [&] { host_rax = block(kGpa, 1); });
  expect_status(accept(0, kGpa, 1), raw(Status::PAGE_SIZE_MISMATCH, 1u));
  EXPECT_STATUS(raw(Status::OPERAND_BUSY, Operand::RCX), host_rax);
  ASSERT_TRUE(entry(kGpa, 1).host_priority());
  expect_status(accept(0, kGpa, 1), kGuestBusy);
  ASSERT_STATUS(kOk, block(kGpa, 1));
  expect_status(accept(0, kGpa, 1), raw(Status::PAGE_SIZE_MISMATCH, 1u));
}

// ---------------------------------------------------------------------------------------------
// Interrupted 2M ACCEPT (§2.15 step 7, §8.15).

TEST_F(AcceptTest, Interrupted2MAcceptSavesProgressAndResumesWhereItStopped) {
  const uint64_t hpa = aug2m(kGpa);
  const uint64_t pfn = hpa >> 12;
  hooks.irq_pending = 1;
  const AcceptResult r = accept(0, kGpa, 1);
  EXPECT_EQ(AcceptResult::kResumed, r.kind);
  EXPECT_TRUE(in_td(0));  // the TDCALL re-executes; no TD exit
  const SeptEntry e = entry(kGpa, 1);
  EXPECT_EQ(SeptState::PENDING, e.state());
  EXPECT_EQ(1u, e.accept_counter());
  EXPECT_EQ(hpa, e.hpa(1));
  EXPECT_FALSE(e.locked());
  EXPECT_EQ(0u, host.content(pfn));
  EXPECT_EQ(host::HostPages::junk(pfn + 1), host.content(pfn + 1));
  // A marker in the finished chunk survives: the retry continues at chunk 1.
  host.content(pfn) = 0xabcd;
  expect_status(accept(0, kGpa, 1), kOk);
  EXPECT_EQ(0xabcdu, host.content(pfn));
  for (uint64_t i = 1; i < 512; i++) ASSERT_EQ(0u, host.content(pfn + i)) << i;
  EXPECT_EQ(SeptState::MAPPED, entry(kGpa, 1).state());
  EXPECT_EQ(0u, entry(kGpa, 1).accept_counter());
}

TEST_F(AcceptTest, RepeatedlyInterrupted2MAcceptAccumulatesProgress) {
  aug2m(kGpa);
  hooks.irq_pending = 3;
  for (unsigned i = 1; i <= 3; i++) {
    EXPECT_EQ(AcceptResult::kResumed, accept(0, kGpa, 1).kind);
    EXPECT_EQ(i, entry(kGpa, 1).accept_counter());
  }
  expect_status(accept(0, kGpa, 1), kOk);
}

TEST_F(AcceptTest, A4KAcceptIsNotInterruptible) {
  aug4k(kGpa);
  hooks.irq_pending = 1;
  expect_status(accept(0, kGpa, 0), kOk);
  EXPECT_EQ(1, hooks.irq_pending);
}

TEST_F(AcceptTest, BlockDiscardsPartialAcceptProgress) {
  const uint64_t hpa = aug2m(kGpa);
  const uint64_t pfn = hpa >> 12;
  hooks.irq_pending = 1;
  ASSERT_EQ(AcceptResult::kResumed, accept(0, kGpa, 1).kind);
  ASSERT_EQ(1u, entry(kGpa, 1).accept_counter());
  ASSERT_STATUS(kOk, block(kGpa, 1));
  EXPECT_EQ(SeptState::PENDING_BLOCKED, entry(kGpa, 1).state());
  EXPECT_EQ(0u, entry(kGpa, 1).accept_counter());
  ASSERT_STATUS(kOk, track());
  ASSERT_TRUE(exit(0));
  ASSERT_STATUS(kOk, unblock(kGpa, 1));
  EXPECT_EQ(SeptState::PENDING, entry(kGpa, 1).state());
  EXPECT_EQ(0u, entry(kGpa, 1).accept_counter());
  // The ACCEPT starts over: chunk 0 is zeroed again.
  host.content(pfn) = 0xabcd;
  ASSERT_STATUS(kOk, enter(0));
  expect_status(accept(0, kGpa, 1), kOk);
  EXPECT_EQ(0u, host.content(pfn));
}

TEST_F(AcceptTest, DemoteDiscardsPartialAcceptProgress) {
  // In a RUNNABLE TD the BLOCK before a DEMOTE already resets the counter; the children are
  // PENDING at exact 4K strides, and each one is zeroed by its own ACCEPT.
  const uint64_t hpa = aug2m(kGpa);
  const uint64_t pfn = hpa >> 12;
  hooks.irq_pending = 1;
  ASSERT_EQ(AcceptResult::kResumed, accept(0, kGpa, 1).kind);
  ASSERT_STATUS(kOk, block(kGpa, 1));
  ASSERT_STATUS(kOk, track());
  ASSERT_TRUE(exit(0));
  ASSERT_STATUS(kOk, demote(kGpa, 1));
  for (uint64_t i = 0; i < 512; i++) {
    const SeptEntry c = entry(kGpa + i * k4K, 0);
    ASSERT_EQ(SeptState::PENDING, c.state()) << i;
    ASSERT_EQ(hpa + i * k4K, c.hpa_bits()) << i;
  }
  host.content(pfn) = 0xabcd;
  ASSERT_STATUS(kOk, enter(0));
  expect_status(accept(0, kGpa, 0), kOk);
  EXPECT_EQ(0u, host.content(pfn));
}

// ---------------------------------------------------------------------------------------------
// Not in guest mode.

TEST_F(AcceptTest, NotInTdBeforeEnterAndAfterAnExit) {
  aug4k(kGpa);
  EXPECT_EQ(AcceptResult::kNotInTd, accept(1, kGpa, 0).kind);  // vCPU 1 never entered
  ASSERT_TRUE(exit(0));
  EXPECT_EQ(AcceptResult::kNotInTd, accept(0, kGpa, 0).kind);
  EXPECT_EQ(SeptState::PENDING, entry(kGpa, 0).state());
  EXPECT_EQ(AcceptResult::kNotInTd, m.tdg_mem_page_accept(tdr, gl(kGpa, 0)).kind);  // no vCPU
}

// The running guest's entry point (it passes the vCPU that its TDVPR names) gives what the
// TDVPR one gives, outcome by outcome.
TEST_F(AcceptTest, TheVcpuEntryPointMatchesTheTdvprOne) {
  const uint64_t hpa = aug4k(kGpa);
  EXPECT_EQ(AcceptResult::kNotInTd, m.tdg_mem_page_accept(td(), td().vcpus[1], gl(kGpa, 0)).kind);
  expect_status(m.tdg_mem_page_accept(td(), td().vcpus[0], gl(kGpa, 0)), kOk);
  EXPECT_EQ(0u, host.content(hpa >> 12));
  EXPECT_EQ(SeptState::MAPPED, entry(kGpa, 0).state());
  const AcceptResult by_vcpu = m.tdg_mem_page_accept(td(), td().vcpus[0], gl(kGpa, 0));
  const AcceptResult by_tdvpr = accept(0, kGpa, 0);
  expect_status(by_vcpu, by_tdvpr.status);
  EXPECT_STATUS(raw(Status::PAGE_ALREADY_ACCEPTED, 0), by_vcpu.status);
  expect_status(m.tdg_mem_page_accept(td(), td().vcpus[0], gl(kGpa | kSharedBit, 0)),
                raw(Status::OPERAND_INVALID, Operand::RCX));
  // A FREE entry: the EPT-violation exit, and the vCPU leaves the TD.
  map_tables(kGpa + k4K, kLevel4K);
  const AcceptResult r = m.tdg_mem_page_accept(td(), td().vcpus[0], gl(kGpa + k4K, 0));
  EXPECT_EQ(AcceptResult::kEptViolation, r.kind);
  EXPECT_EQ(kGpa + k4K, r.exit.gpa);
  EXPECT_FALSE(in_td(0));
}

}  // namespace
}  // namespace tdx::testing
