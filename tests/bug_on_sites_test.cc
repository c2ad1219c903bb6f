// Every KVM_BUG_ON / WARN site of kvm-tdx.md §3 that valid input can reach only through a
// TDX module error is reached here, by injecting that error (`option inject=`), and is
// reported under the kernel's function name. (The sites that guard KVM's own consistency —
// mirror transitions, FROZEN writes, shared-lock removals — cannot be reached from any input of
// this model; sim/kvm/BUG_ON_SITES.md says which.)
#include <gtest/gtest.h>

#include <string>

#include "sim/guest/guest.h"
#include "sim/kvm/kvm.h"
#include "sim/trace/exec.h"
#include "sim/trace/trace.h"

namespace {

struct Site {
  const char* function;  // the site's kernel function name
  const char* trace;
};

// A 2M page mapped, accepted, then split and punched: every SEAMCALL of the stack once.
constexpr const char* kBody =
    "vcpus 1\n"
    "finalize\n"
    "map 0x200 2M\n"
    "accept 0 0x200 2M\n"
    "split 0x300\n"
    "zap 0x300 1\n";

const Site kSites[] = {
    {"tdx_sept_link_private_spt", "option inject=TDH.MEM.SEPT.ADD:TDX_OPERAND_INVALID|R8\n"},
    {"tdx_mem_page_aug", "option inject=TDH.MEM.PAGE.AUG:TDX_PAGE_METADATA_INCORRECT|R8\n"},
    {"tdx_sept_zap_private_spte", "option inject=TDH.MEM.RANGE.BLOCK:TDX_EPT_WALK_FAILED|RCX\n"},
    {"tdx_track", "option inject=TDH.MEM.TRACK:TDX_PREVIOUS_TLB_EPOCH_BUSY\n"},
    {"tdx_spte_demote_private_spte",
     "option inject=TDH.MEM.PAGE.DEMOTE:TDX_INTERRUPTED_RESTARTABLE\n"},
    {"tdx_sept_drop_private_spte",
     "option inject=TDH.MEM.PAGE.REMOVE:TDX_TLB_TRACKING_NOT_DONE|RCX\n"},
    {"tdx_sept_drop_private_spte",
     "option inject=TDH.PHYMEM.PAGE.WBINVD:TDX_PAGE_METADATA_INCORRECT|RCX\n"},
    {"tdx_td_finalize", "option inject=TDH.MR.FINALIZE:TDX_OP_STATE_INCORRECT\n"},
    {"tdx_flush_vp_on_cpu", "option inject=TDH.VP.FLUSH:TDX_VCPU_STATE_INCORRECT\n"},
    {"tdx_mmu_release_hkid", "option inject=TDH.MNG.VPFLUSHDONE:TDX_LIFECYCLE_STATE_INCORRECT\n"},
    {"tdx_mmu_release_hkid", "option inject=TDH.MNG.KEY.FREEID:TDX_LIFECYCLE_STATE_INCORRECT\n"},
    // HKID release gives up silently on FLUSHVP_NOT_DONE; freeing a table then finds it held.
    {"tdx_sept_free_private_spt", "option inject=TDH.MNG.VPFLUSHDONE:TDX_FLUSHVP_NOT_DONE\n"},
    // WARNs: a RECLAIM that fails leaks the page on purpose.
    {"__tdx_reclaim_page",
     "option inject=TDH.PHYMEM.PAGE.RECLAIM:TDX_PAGE_METADATA_INCORRECT|RCX\n"},
    // Teardown reclaims the split page's 511 remaining leaves, then its table: the 512th.
    {"handle_removed_pt", "option inject=TDH.PHYMEM.PAGE.RECLAIM:TDX_OPERAND_BUSY|RCX:512\n"},
};

TEST(BugOnSites, EachSiteIsReachedAndNamed) {
  for (const Site& s : kSites) {
    trace::ParseError err;
    auto t = trace::parse(std::string(s.trace) + kBody, &err);
    ASSERT_TRUE(t) << s.function << ": " << err.line << ":" << err.column << " " << err.message;
    trace::RunResult r = trace::run(*t);
    ASSERT_EQ(r.failure.kind, trace::Failure::kProperty) << s.function << " not reached\n"
                                                         << s.trace;
    EXPECT_EQ(r.failure.violation.property, "kvm-bug-on") << s.function;
    EXPECT_EQ(r.failure.violation.site, s.function) << s.trace << r.failure.violation.detail;
  }
}

// Without injection the same body runs clean: the errors above are the module's, not KVM's.
TEST(BugOnSites, BodyIsCleanWithoutInjection) {
  trace::ParseError err;
  auto t = trace::parse(kBody, &err);
  ASSERT_TRUE(t);
  trace::RunResult r = trace::run(*t);
  EXPECT_TRUE(r.ok()) << trace::format_failure(*t, r, "body");
}

// Sites that fire as a consequence of an earlier one, and the build-time counters: checked on
// the full list of what KVM_BUG_ON recorded.
TEST(BugOnSites, ConsequencesAndBuildTimeCounters) {
  auto has = [](const kvm::Kvm& k, const std::string& f) {
    for (auto& b : k.bug_ons())
      if (b.function == f) return true;
    return false;
  };
  {  // REMOVE fails: the hook returns an error and remove_external_spte bugs the VM too.
    host::HostPages host(0x100000, 8192);
    tdx::Module m(host);
    kvm::Kvm k(host, m, kvm::Options{}, 1, 4096);
    ASSERT_EQ(k.tdx_td_finalize(), 0);
    ASSERT_EQ(k.kvm_pre_fault_memory(0x10, kvm::kPg4K), 0);
    m.inject(tdx::Leaf::MEM_PAGE_REMOVE, tdx::raw(tdx::Status::OPERAND_BUSY, tdx::Operand::RCX), 1);
    m.inject(tdx::Leaf::MEM_PAGE_REMOVE, tdx::raw(tdx::Status::OPERAND_BUSY, tdx::Operand::RCX), 1);
    k.kvm_gmem_punch_hole(0x10, 1);
    EXPECT_TRUE(has(k, "tdx_sept_drop_private_spte"));
    EXPECT_TRUE(has(k, "remove_external_spte"));
  }
  {  // A module that claims PAGE.ADD succeeded for a page KVM never premapped.
    host::HostPages host(0x100000, 8192);
    tdx::Module m(host);
    kvm::Kvm k(host, m, kvm::Options{}, 1, 4096);
    ASSERT_EQ(k.tdx_init_mem_region(0x10), 0);
    m.inject(tdx::Leaf::MEM_PAGE_ADD, tdx::raw(tdx::Status::SUCCESS), 1);
    k.tdx_init_mem_region(0x10);  // already mapped: nothing premapped this time
    EXPECT_TRUE(has(k, "tdx_gmem_post_populate"));
  }
  {  // BLOCK before finalize finds the slot FREE (a premapped page) with nothing premapped.
    host::HostPages host(0x100000, 8192);
    tdx::Module m(host);
    kvm::Kvm k(host, m, kvm::Options{}, 1, 4096);
    ASSERT_EQ(k.tdx_init_mem_region(0x10), 0);
    m.inject(tdx::Leaf::MEM_RANGE_BLOCK,
             tdx::raw(tdx::Status::EPT_ENTRY_STATE_INCORRECT, tdx::Operand::RCX), 1);
    k.kvm_gmem_punch_hole(0x10, 1);
    EXPECT_TRUE(has(k, "tdx_sept_zap_private_spte"));
  }
}

}  // namespace
