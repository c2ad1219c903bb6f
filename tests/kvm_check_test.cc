// The KVM-level properties bite: each test builds a clean state through the public API, breaks
// one invariant behind the stack's back, and expects the check to name the property.
#include <gtest/gtest.h>

#include "sim/check/kvm_check.h"
#include "sim/guest/guest.h"
#include "sim/host/hex.h"
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
  // The mirror SPTE at `gfn` and KVM level `level` (its tables must exist).
  std::atomic<uint64_t>& mirror_spte(uint64_t gfn, int level) {
    kvm::KvmMmuPage* p = k.sp(k.mirror_root());
    auto index = [&](int l) { return (gfn >> (9 * (l - 1))) & 511; };
    while (p->level > level) p = k.sp(kvm::spte_pfn(p->spt[index(p->level)].load()));
    return p->spt[index(level)];
  }
  std::atomic<uint64_t>& sept_slot(uint64_t gfn, int tdx_level) {
    return *module.walk(*module.td_of(k.tdr()), gfn << 12, tdx_level).slot;
  }
  // check_mirror_sept, which must agree with the entry-by-entry reference.
  check::Violations mirror_sept() {
    check::Violations v, ref;
    check::check_mirror_sept(k, &v);
    check::check_mirror_sept_reference(k, &ref);
    EXPECT_EQ(dump(v), dump(ref));
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

// check_mirror_sept walks the mirror and the S-EPT side by side; each test below breaks one
// thing and expects the exact findings of the entry-by-entry reference, in its order.
TEST_F(KvmCheck, MirrorSeptNamesWhereTheModuleWalkStops) {
  // The S-EPT 1G entry over GFN 0 vanishes: the mirror's table there has no twin, and the
  // module's walk to the 2M leaf below stops at that FREE entry.
  const uint64_t ext = k.sp(kvm::spte_pfn(mirror_spte(0, kvm::kPg1G).load()))->external_spt;
  sept_slot(0, tdx::kLevel1G).store(0);
  auto v = mirror_sept();
  ASSERT_EQ(v.size(), 2u) << dump(v);
  EXPECT_EQ(v[0].signature(), "mirror-sept table");
  EXPECT_EQ(v[0].detail,
            "GFN 0x0 1G: mirror table with external_spt " + host::hex(ext) + ", S-EPT FREE -> 0x0");
  EXPECT_EQ(v[1].signature(), "mirror-sept missing");
  EXPECT_EQ(v[1].detail, "GFN 0x200 2M: mirror has a leaf, the S-EPT walk stops at 1G (FREE)");
}

TEST_F(KvmCheck, MirrorSeptFollowsABlockedTableOnlyInReverse) {
  // NL_BLOCKED: the module's walk stops there, walk_sept goes on below (and finds the 2M leaf
  // the mirror has).
  auto& slot = sept_slot(0, tdx::kLevel1G);
  const tdx::SeptEntry e{slot.load()};
  slot.store(e.with_state(tdx::SeptState::NL_BLOCKED).raw);
  auto v = mirror_sept();
  ASSERT_EQ(v.size(), 2u) << dump(v);
  EXPECT_EQ(v[0].detail, "GFN 0x0 1G: mirror table with external_spt " + host::hex(e.hpa_bits()) +
                             ", S-EPT NL_BLOCKED -> " + host::hex(e.hpa_bits()));
  EXPECT_EQ(v[1].detail,
            "GFN 0x200 2M: mirror has a leaf, the S-EPT walk stops at 1G (NL_BLOCKED)");
}

TEST_F(KvmCheck, MirrorSeptComparesEvery4KEntry) {
  ASSERT_EQ(k.split_huge_page(0x3ff), 0);
  auto v0 = mirror_sept();
  ASSERT_TRUE(v0.empty()) << dump(v0);
  const uint64_t pfn1 = kvm::spte_pfn(mirror_spte(0x201, kvm::kPg4K).load());
  sept_slot(0x201, tdx::kLevel4K).store(0);    // lost by the module
  auto& s2 = sept_slot(0x202, tdx::kLevel4K);  // a non-leaf state at 4K
  const tdx::SeptEntry e2{s2.load()};
  s2.store(e2.with_state(tdx::SeptState::NL_MAPPED).raw);
  mirror_spte(0x203, kvm::kPg4K).store(kvm::kShadowNonpresent);  // lost by KVM
  auto v = mirror_sept();
  ASSERT_EQ(v.size(), 5u) << dump(v);
  EXPECT_EQ(v[0].detail,
            "GFN 0x201 4K: mirror leaf PFN " + host::hex(pfn1) + ", S-EPT FREE HPA 0x0");
  EXPECT_EQ(v[1].detail, "GFN 0x202 4K: mirror leaf PFN " + host::hex(e2.hpa_bits() >> 12) +
                             ", S-EPT NL_MAPPED HPA " + host::hex(e2.hpa_bits()));
  EXPECT_EQ(v[2].detail, "pages_4K is 512, the mirror has 511 leaves");
  EXPECT_EQ(v[3].detail, "GFN 0x202 4K: S-EPT has NL_MAPPED, the mirror a different kind of entry");
  EXPECT_EQ(v[4].detail, "GFN 0x203 4K: S-EPT has MAPPED, the mirror nothing");
}

// After a split the 4K entries map consecutive frames: MirrorWalk::run8 takes them eight at a
// time. Each test breaks a whole run of eight, the same way, so that only the run's own tests
// can tell; the findings are those of the entry-by-entry path.
TEST_F(KvmCheck, MirrorSeptRunWithTheWrongFrames) {
  ASSERT_EQ(k.split_huge_page(0x3ff), 0);
  for (int j = 0; j < 8; j++) {
    auto& slot = sept_slot(0x208 + j, tdx::kLevel4K);
    slot.store(slot.load() + (8 << 12));  // the frames of the next run
  }
  auto v = mirror_sept();
  ASSERT_EQ(v.size(), 8u) << dump(v);
  for (int j = 0; j < 8; j++) EXPECT_EQ(v[j].signature(), "mirror-sept leaf") << dump(v);
}

TEST_F(KvmCheck, MirrorSeptRunWithTheWrongState) {
  ASSERT_EQ(k.split_huge_page(0x3ff), 0);
  for (int j = 0; j < 8; j++) {
    auto& slot = sept_slot(0x208 + j, tdx::kLevel4K);
    slot.store(tdx::SeptEntry{slot.load()}.with_state(tdx::SeptState::BLOCKED).raw);
  }
  auto v = mirror_sept();
  ASSERT_EQ(v.size(), 8u) << dump(v);
  EXPECT_EQ(
      v[0].detail,
      "GFN 0x208 4K: mirror leaf PFN " +
          host::hex(kvm::spte_pfn(mirror_spte(0x208, kvm::kPg4K).load())) + ", S-EPT BLOCKED HPA " +
          host::hex(tdx::SeptEntry{sept_slot(0x208, tdx::kLevel4K).load()}.hpa(tdx::kLevel4K)));
}

TEST_F(KvmCheck, MirrorSeptRunNotPresentInTheMirror) {
  ASSERT_EQ(k.split_huge_page(0x3ff), 0);
  for (int j = 0; j < 8; j++) {
    auto& spte = mirror_spte(0x208 + j, kvm::kPg4K);
    spte.store(spte.load() & ~kvm::kSptePresent);
  }
  auto v = mirror_sept();
  ASSERT_EQ(v.size(), 9u) << dump(v);
  EXPECT_EQ(v[0].detail, "pages_4K is 512, the mirror has 504 leaves");
  for (int j = 0; j < 8; j++)
    EXPECT_EQ(v[1 + j].detail,
              "GFN " + host::hex(0x208 + j) + " 4K: S-EPT has MAPPED, the mirror nothing");
}

TEST_F(KvmCheck, MirrorSeptOneEntryOfARunDiffers) {
  // Entry 5 of a run points at its neighbour's frame: in the S-EPT, then in the mirror.
  ASSERT_EQ(k.split_huge_page(0x3ff), 0);
  auto& slot = sept_slot(0x20d, tdx::kLevel4K);
  const uint64_t raw = slot.load();
  slot.store(raw + (1 << 12));
  auto v = mirror_sept();
  ASSERT_EQ(v.size(), 1u) << dump(v);
  EXPECT_EQ(v[0].signature(), "mirror-sept leaf");
  slot.store(raw);
  auto& spte = mirror_spte(0x20d, kvm::kPg4K);
  spte.store(spte.load() + (1 << 12));
  v = mirror_sept();
  ASSERT_EQ(v.size(), 1u) << dump(v);
  EXPECT_EQ(v[0].signature(), "mirror-sept leaf");
}

TEST_F(KvmCheck, PageOwnerRunOfFramesMappedTwice) {
  // GFNs 0x210.. map the frames of GFNs 0x200.., in the mirror and the S-EPT alike.
  ASSERT_EQ(k.split_huge_page(0x3ff), 0);
  for (int j = 0; j < 8; j++) {
    mirror_spte(0x210 + j, kvm::kPg4K).store(mirror_spte(0x200 + j, kvm::kPg4K).load());
    sept_slot(0x210 + j, tdx::kLevel4K).store(sept_slot(0x200 + j, tdx::kLevel4K).load());
  }
  check::Violations owner;
  for (auto& x : run())
    if (x.property == "page-owner") owner.push_back(x);
  ASSERT_EQ(owner.size(), 8u) << dump(owner);
  for (int j = 0; j < 8; j++) {
    const uint64_t pfn = kvm::spte_pfn(mirror_spte(0x200 + j, kvm::kPg4K).load());
    EXPECT_EQ(owner[j].detail, "PFN " + host::hex(pfn) + " is mapped at GFN " +
                                   host::hex(0x200 + j) + " and GFN " + host::hex(0x210 + j));
  }
}

TEST_F(KvmCheck, PageOwnerFreedFrameInsideARun) {
  ASSERT_EQ(k.split_huge_page(0x3ff), 0);
  const uint64_t pfn = kvm::spte_pfn(mirror_spte(0x213, kvm::kPg4K).load());
  host.transfer(pfn, 0, host::Use::kModule, host::Use::kHost, "test");
  host.free(pfn, 0);
  check::Violations owner;
  for (auto& x : run())
    if (x.property == "page-owner" && x.site == "mapped-free") owner.push_back(x);
  ASSERT_EQ(owner.size(), 1u) << dump(owner);
  EXPECT_EQ(owner[0].detail, "GFN 0x213 maps PFN " + host::hex(pfn) + ", which is free");
}

TEST_F(KvmCheck, MirrorSeptFallsBackWhenAMirrorTableIsOffItsPath) {
  // A 2M-level table whose GFN disagrees with where it hangs: the side-by-side walk cannot
  // pair it, and the reference's findings are the answer.
  k.sp(kvm::spte_pfn(mirror_spte(0, kvm::kPg1G).load()))->gfn = 0x40000;
  auto v = mirror_sept();
  EXPECT_TRUE(has(v, "mirror-sept")) << dump(v);
}

TEST(KvmCheckBuild, MirrorSeptCountsPremappedLeaves) {
  // Before finalize: a mirror leaf over a FREE S-EPT slot is premapped, and must be counted in
  // nr_premapped (kvm-tdx.md §5.1).
  host::HostPages host(0x100000, 8192);
  tdx::Module m(host);
  kvm::Kvm k(host, m, kvm::Options{}, 1, 4096);
  ASSERT_EQ(k.tdx_init_mem_region(0x10), 0);
  m.walk(*m.td_of(k.tdr()), 0x10000, tdx::kLevel4K).slot->store(0);
  check::Violations v, ref;
  check::check_mirror_sept(k, &v);
  check::check_mirror_sept_reference(k, &ref);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].signature(), "mirror-sept premap");
  EXPECT_EQ(v[0].detail, "1 mirror leaves have no S-EPT page, but nr_premapped is 0");
  ASSERT_EQ(ref.size(), 1u);
  EXPECT_EQ(ref[0].detail, v[0].detail);
}

TEST_F(KvmCheck, PageOwnerNamesBothGfnsOfAFrameMappedTwice) {
  ASSERT_EQ(k.split_huge_page(0x3ff), 0);
  const uint64_t spte4 = mirror_spte(0x204, kvm::kPg4K).load();
  mirror_spte(0x205, kvm::kPg4K).store(spte4);
  // Twice: each check starts with no frame marked (FrameMarks generations).
  for (int i = 0; i < 2; i++) {
    check::Violations owner;
    for (auto& x : run())
      if (x.property == "page-owner") owner.push_back(x);
    ASSERT_EQ(owner.size(), 1u) << dump(owner);
    EXPECT_EQ(owner[0].detail,
              "PFN " + host::hex(kvm::spte_pfn(spte4)) + " is mapped at GFN 0x204 and GFN 0x205");
  }
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
