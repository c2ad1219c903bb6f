// KVM model behaviours that traces cannot reach directly: the v2 quirks behind their options
// (kvm-tdx.md §7.4, §7.5), build-time premap accounting, and host memory exhaustion.
#include <gtest/gtest.h>

#include <string_view>

#include "sim/guest/guest.h"
#include "sim/kvm/kvm.h"

namespace {

struct Stack {
  explicit Stack(kvm::Options o = {}, uint64_t host_pages = 8192)
      : host(0x100000, host_pages), module(host), k(host, module, o, 2, 4096), g(k) {
    fwd.g = &g;
    k.set_observer(&fwd);
  }
  struct Forward : tdx::Hooks {
    guest::Guest* g = nullptr;
    void on_tlb_flush(const tdx::Td&, int v) override { g->tlb_flush(v); }
  };
  // Takes every free host frame, so the next allocation fails.
  void exhaust_host() {
    uint64_t pfn;
    while (host.alloc(0, host::Use::kHost, &pfn)) hogged.push_back(pfn);
  }
  host::HostPages host;
  tdx::Module module;
  kvm::Kvm k;
  guest::Guest g;
  Forward fwd;
  std::vector<uint64_t> hogged;
};

TEST(KvmQuirks, SplitBoolReturnHidesEnomem) {
  for (bool quirk : {true, false}) {
    kvm::Options o;
    o.bugs = quirk ? kvm::bug_bit(kvm::Bug::v2_split_bool_return) : 0;  // bug zoo, §7.4
    Stack s(o);
    ASSERT_EQ(s.k.tdx_td_finalize(), 0);
    ASSERT_EQ(s.k.kvm_pre_fault_memory(0x200, kvm::kPg2M), 0);
    s.exhaust_host();  // the split's page-table allocation fails
    const int r = s.k.split_huge_page(0x200);
    uint64_t spte;
    int level;
    ASSERT_TRUE(s.k.mirror_leaf(0x200, &spte, &level));
    EXPECT_EQ(level, kvm::kPg2M) << "nothing was split";
    if (quirk) {
      EXPECT_EQ(r, 0) << "§7.4: -ENOMEM stored in a bool reads as 1 (flush needed), not an error";
    } else {
      EXPECT_EQ(r, -kvm::kENOMEM);
    }
  }
}

TEST(KvmQuirks, AcceptSplitEarlyReturnLeavesGuestInhibitUnset) {
  for (uint64_t quirk : {1, 0}) {
    kvm::Options o;
    o.v2_accept_split_early_return = quirk;
    Stack s(o);
    ASSERT_EQ(s.k.tdx_td_finalize(), 0);
    ASSERT_EQ(s.k.kvm_pre_fault_memory(0x200, kvm::kPg2M), 0);
    // A 4K ACCEPT inside the 2M mapping: T1 splits, and the guest's retry then succeeds.
    ASSERT_EQ(s.g.accept(0, 0x201, kvm::kPg4K).kind, guest::Result::kOk);
    uint64_t spte;
    int level;
    ASSERT_TRUE(s.k.mirror_leaf(0x201, &spte, &level));
    EXPECT_EQ(level, kvm::kPg4K);
    const bool inhibited = s.k.lpage_flags(0x201) & kvm::kLpageGuestInhibit;
    EXPECT_EQ(inhibited, !quirk)
        << "§7.5: v2 returns after the split without setting GUEST_INHIBIT";
  }
}

TEST(KvmBuild, PremappedPageBlocksFinalizeUntilZapped) {
  Stack s;
  ASSERT_EQ(s.k.tdx_init_mem_region(0x10), 0);
  EXPECT_EQ(s.k.nr_premapped(), 0);
  EXPECT_EQ(s.k.tdx_init_mem_region(0x10), -kvm::kEIO) << "a second PAGE.ADD of the same GFN fails";
  EXPECT_EQ(s.k.nr_premapped(), 0) << "a GFN already mapped is not counted again";
  // 0x11 faults in (premapped, no SEAMCALL) but its source page cannot be allocated.
  s.exhaust_host();
  EXPECT_EQ(s.k.tdx_init_mem_region(0x11), -kvm::kENOMEM);
  EXPECT_EQ(s.k.nr_premapped(), 1);
  EXPECT_EQ(s.k.tdx_td_finalize(), -kvm::kEINVAL) << "nr_premapped != 0";
  // Zapping it takes the premap branch of tdx_sept_zap_private_spte: BLOCK finds the S-EPT
  // slot FREE, and the count drops without TRACK or REMOVE.
  for (uint64_t pfn : s.hogged) s.host.free(pfn, 0);
  ASSERT_EQ(s.k.kvm_gmem_punch_hole(0x11, 1), 0);
  EXPECT_EQ(s.k.nr_premapped(), 0);
  EXPECT_FALSE(s.k.vm_bugged());
  EXPECT_EQ(s.k.kvm_pre_fault_memory(0x12, kvm::kPg4K), -kvm::kEOPNOTSUPP)
      << "no pre-fault before finalize";
  ASSERT_EQ(s.k.tdx_td_finalize(), 0);
  EXPECT_EQ(s.k.tdx_init_mem_region(0x12), -kvm::kEINVAL) << "no INIT_MEM_REGION after finalize";
  EXPECT_EQ(s.k.tdx_td_finalize(), -kvm::kEINVAL);
  EXPECT_EQ(s.k.td_state(), kvm::TdState::RUNNABLE);
}

TEST(KvmBuild, BuildTimeMappingsAre4K) {
  Stack s;
  ASSERT_EQ(s.k.tdx_init_mem_region(0x200), 0);
  uint64_t spte;
  int level;
  ASSERT_TRUE(s.k.mirror_leaf(0x200, &spte, &level));
  EXPECT_EQ(level, kvm::kPg4K);
}

TEST(KvmMemory, FaultWithoutHostMemoryIsEnomemNotABug) {
  Stack s;
  ASSERT_EQ(s.k.tdx_td_finalize(), 0);
  s.exhaust_host();
  EXPECT_EQ(s.k.kvm_pre_fault_memory(0x0, kvm::kPg2M), -kvm::kENOMEM);
  EXPECT_FALSE(s.k.vm_bugged());
}

TEST(KvmRun, VcpuCannotRunBeforeFinalize) {
  Stack s;
  EXPECT_EQ(s.k.kvm_arch_vcpu_ioctl_run(0), -kvm::kEINVAL);
  ASSERT_EQ(s.k.tdx_td_finalize(), 0);
  EXPECT_EQ(s.k.kvm_arch_vcpu_ioctl_run(0), 0);
  EXPECT_TRUE(s.k.vcpu_in_guest(0));
  s.k.vcpu_async_exit(0);
  EXPECT_FALSE(s.k.vcpu_in_guest(0));
}

// The module skips on_call when the hooks say it does nothing (Hooks::calls_observed): Kvm
// forwards calls exactly when its observer observes them, here RECLAIM at teardown and the
// other SEAMCALLs of the run.
TEST(KvmHooks, ObserverSeesCallsUnlessItSaysItDoesNot) {
  struct Counting : tdx::Hooks {
    int calls = 0, reclaims = 0;
    void on_call(const char* name, const tdx::Regs&, const tdx::Regs&) override {
      calls++;
      if (std::string_view(name) == "TDH.PHYMEM.PAGE.RECLAIM") reclaims++;
    }
  };
  for (bool observed : {true, false}) {
    host::HostPages host(0x100000, 8192);
    tdx::Module module(host);
    kvm::Kvm k(host, module, {}, 2, 4096);
    EXPECT_FALSE(k.calls_observed());  // no observer yet
    Counting c;
    c.set_calls_observed(observed);
    k.set_observer(&c);
    EXPECT_EQ(k.calls_observed(), observed);
    ASSERT_EQ(k.tdx_td_finalize(), 0);
    ASSERT_EQ(k.kvm_pre_fault_memory(0x200, kvm::kPg4K), 0);
    k.kvm_destroy_vm();
    EXPECT_EQ(host.in_use(), 0u);  // the teardown ran all the same
    if (observed) {
      EXPECT_GT(c.calls, 0);
      EXPECT_GT(c.reclaims, 1);  // the guest page, its tables, the control pages
    } else {
      EXPECT_EQ(c.calls, 0);
    }
  }
}

}  // namespace

namespace {
void expect_as_new(const kvm::KvmMmuPage& p) {
  EXPECT_EQ(p.level, 0);
  EXPECT_EQ(p.gfn, 0u);
  EXPECT_EQ(p.external_spt, 0u);
  EXPECT_FALSE(p.external_spt_leaked);
  for (const auto& s : p.spt) ASSERT_EQ(s.load(), kvm::kShadowNonpresent);
}
}  // namespace

// tdp_mmu_alloc_sp reuses freed page tables after clear(): a cleared one must be a new one.
TEST(KvmPageTables, ClearedPageIsAsNew) {
  kvm::KvmMmuPage fresh;
  expect_as_new(fresh);
  kvm::KvmMmuPage used;
  used.level = 2, used.gfn = 0x200, used.external_spt = 0x1234000, used.external_spt_leaked = true;
  for (auto& s : used.spt) s.store(0x5a5a);
  used.clear();
  expect_as_new(used);
}

// A VM after one that mapped and tore down (its page tables recycled on this thread) starts
// with tables as a fresh process would have them, and maps the same way.
TEST(KvmPageTables, SecondVmOnRecycledTablesMapsAlike) {
  std::vector<std::pair<uint64_t, uint64_t>> seen[2];
  for (int run = 0; run < 2; run++) {
    Stack s;
    ASSERT_EQ(s.k.tdx_td_finalize(), 0);
    const kvm::KvmMmuPage* root = s.k.sp(s.k.mirror_root());
    EXPECT_EQ(root->level, kvm::kRootLevel);
    for (size_t i = 0; i < root->spt.size(); i++)
      ASSERT_EQ(root->spt[i].load(), kvm::kShadowNonpresent);
    ASSERT_EQ(s.k.kvm_pre_fault_memory(0x0, 1), 0);
    ASSERT_EQ(s.k.kvm_pre_fault_memory(0x205, 1), 0);
    s.k.for_each_mirror_spte([&](uint64_t gfn, int level, uint64_t spte, bool leaf, uint64_t) {
      seen[run].push_back({gfn | static_cast<uint64_t>(level) << 56, leaf ? spte : 0});
    });
    s.k.kvm_destroy_vm();
    EXPECT_EQ(s.host.in_use(), 0u);
  }
  EXPECT_FALSE(seen[0].empty());
  EXPECT_EQ(seen[0], seen[1]);
}
