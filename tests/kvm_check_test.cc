// The KVM-level properties bite: each test builds a clean state through the public API, breaks
// one invariant behind the stack's back, and expects the check to name the property.
#include <gtest/gtest.h>

#include "sim/check/kvm_check.h"
#include "sim/guest/guest.h"
#include "sim/kvm/kvm.h"
#include "sim/trace/exec.h"
#include "sim/trace/trace.h"

namespace {

class Forward : public tdx::Hooks {
 public:
  guest::Guest* g = nullptr;
  void on_tlb_flush(const tdx::Td&, int vcpu) override { g->tlb_flush(vcpu); }
};

class KvmCheck : public ::testing::Test {
 protected:
  KvmCheck() : host(0x100000, 8192), module(host), k(host, module, kvm::Options{}, 2, 4096), g(k) {
    fwd.g = &g;
    k.set_observer(&fwd);
  }
  void SetUp() override {
    ASSERT_EQ(k.tdx_td_finalize(), 0);
    ASSERT_EQ(k.kvm_pre_fault_memory(0x200, kvm::kPg2M), 0);
    ASSERT_EQ(g.accept(0, 0x200, kvm::kPg2M).kind, guest::Result::kOk);
    ASSERT_EQ(g.write(0, 0x210, 7).kind, guest::Result::kOk);  // vCPU 0 caches the 2M translation
  }
  check::Violations run() {
    check::Violations v;
    check::check_kvm(k, g, true, &cursor, &v);
    return v;
  }
  static bool has(const check::Violations& v, const std::string& property) {
    for (auto& x : v)
      if (x.property == property) return true;
    return false;
  }
  static std::string dump(const check::Violations& v) {
    std::string s;
    for (auto& x : v) s += x.signature() + ": " + x.detail + "\n";
    return s;
  }

  host::HostPages host;
  tdx::Module module;
  kvm::Kvm k;
  guest::Guest g;
  Forward fwd;
  check::KvmCheckCursor cursor;
};

TEST_F(KvmCheck, CleanStateHasNoViolations) {
  auto v = run();
  EXPECT_TRUE(v.empty()) << dump(v);
}

TEST_F(KvmCheck, MirrorSeptCatchesALeafTheModuleLost) {
  // The S-EPT 2M leaf vanishes; the mirror still maps it.
  auto w = module.walk(*module.td_of(k.tdr()), 0x200000, tdx::kLevel2M);
  w.slot->store(0);
  auto v = run();
  EXPECT_TRUE(has(v, "mirror-sept")) << dump(v);
}

TEST_F(KvmCheck, MirrorSeptCatchesAnExtraSeptEntry) {
  // A raw AUG that KVM knows nothing about: the S-EPT has a leaf the mirror lacks.
  uint64_t pfn;
  ASSERT_TRUE(host.alloc(9, host::Use::kModule, &pfn));
  tdx::Regs in;
  in.rax = tdx::leaf_rax(tdx::Leaf::MEM_PAGE_AUG);
  in.rcx = 0x400000 | tdx::kLevel2M;
  in.rdx = k.tdr();
  in.r8 = pfn << 12;
  ASSERT_EQ(module.seamcall(in).rax, 0u);
  auto v = run();
  EXPECT_TRUE(has(v, "mirror-sept")) << dump(v);
}

TEST_F(KvmCheck, PageOwnerCatchesAMappedFrameFreedByTheHost) {
  uint64_t spte;
  int level;
  ASSERT_TRUE(k.mirror_leaf(0x210, &spte, &level));
  const uint64_t pfn = kvm::spte_pfn(spte) + 5;
  host.transfer(pfn, 0, host::Use::kModule, host::Use::kHost, "test");
  host.free(pfn, 0);
  auto v = run();
  EXPECT_TRUE(has(v, "page-owner")) << dump(v);
}

TEST_F(KvmCheck, StaleTlbCatchesATranslationThatOutlivedItsEntry) {
  // vCPU 0 is in guest mode with the 2M translation cached; the entry is replaced without
  // TRACK or a kick (as only a broken module or KVM could). A BLOCKED entry would still be
  // the same page, legitimately cached until the kick.
  ASSERT_TRUE(k.vcpu_in_guest(0));
  auto w = module.walk(*module.td_of(k.tdr()), 0x200000, tdx::kLevel2M);
  w.slot->store(
      tdx::SeptEntry::make(tdx::SeptState::PENDING, tdx::SeptEntry{w.slot->load()}.hpa_bits()).raw);
  check::Violations v;
  g.check_tlbs(&v);
  EXPECT_TRUE(has(v, "stale-tlb")) << dump(v);
}

TEST_F(KvmCheck, StaleTlbIsCheckedAtEveryAccessToo) {
  auto w = module.walk(*module.td_of(k.tdr()), 0x200000, tdx::kLevel2M);
  w.slot->store(
      tdx::SeptEntry::make(tdx::SeptState::PENDING, tdx::SeptEntry{w.slot->load()}.hpa_bits()).raw);
  g.read(0, 0x211);  // served from the cached translation
  EXPECT_TRUE(has(g.violations(), "stale-tlb")) << dump(g.violations());
}

TEST_F(KvmCheck, LockDisciplineRecordsAnAssertionWithoutTheLock) {
  k.lockdep_assert(kvm::LockNeed::kWrite, "tdx_track");
  auto v = run();
  ASSERT_TRUE(has(v, "lock-discipline")) << dump(v);
  EXPECT_EQ(v.front().site, "tdx_track");
}

TEST_F(KvmCheck, KvmBugOnMarksTheVmBuggedAndDeadAndIsReported) {
  EXPECT_TRUE(k.KVM_BUG_ON(true, "tdx_sept_zap_private_spte", "test"));
  EXPECT_FALSE(k.KVM_BUG_ON(false, "x", "not taken"));
  EXPECT_TRUE(k.vm_bugged());
  EXPECT_TRUE(k.vm_dead());
  EXPECT_FALSE(k.vcpu_in_guest(0));  // KVM_REQ_VM_DEAD took every vCPU out
  EXPECT_EQ(k.kvm_arch_vcpu_ioctl_run(0), -kvm::kEIO);
  auto v = run();
  ASSERT_FALSE(v.empty());
  EXPECT_EQ(v.front().signature(), "kvm-bug-on tdx_sept_zap_private_spte");
}

TEST(KvmLiveness, RetryBoundIsReported) {
  // With no retries allowed, a write that must fault its page in first cannot complete.
  trace::ParseError err;
  auto t = trace::parse(
      "option local_retry_limit=0\n"
      "option adversarial_guest=1\n"
      "finalize\n"
      "write 0 0x10 0x1\n",
      &err);
  ASSERT_TRUE(t) << err.message;
  trace::RunResult r = trace::run(*t);
  ASSERT_EQ(r.failure.kind, trace::Failure::kProperty);
  EXPECT_EQ(r.failure.violation.property, "liveness") << r.failure.violation.detail;
}

}  // namespace
