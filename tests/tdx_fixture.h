// Shared fixture for sim/tdx unit tests: a host pool, a module and one TD, with raw SEAMCALL
// helpers (return the full Regs, as KVM selftests' _vcpu_run) and asserting ones.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>

#include "sim/host/pages.h"
#include "sim/tdx/module.h"

namespace tdx::testing {

inline constexpr uint64_t kHostBasePfn = 0x100000;  // HPA 4 GiB, 1G-aligned
inline constexpr uint64_t kHostPages = 16384;       // 64 MiB

// Hooks a test can steer: pending interrupts and a callback at a named yield point.
class TestHooks : public Hooks {
 public:
  int irq_pending = 0;  // consumed one per interruptible point that checks
  std::function<void(const char*)> on_yield;
  void yield(const char* where) override {
    if (on_yield) on_yield(where);
  }
  bool interrupt_pending(const char*) override {
    if (irq_pending <= 0) return false;
    irq_pending--;
    return true;
  }
};

class TdxTest : public ::testing::Test {
 protected:
  explicit TdxTest(Options opts = {}, BuildStage stage = BuildStage::kInitialized, int nvcpus = 2)
      : host(kHostBasePfn, kHostPages), m(host, opts, &hooks) {
    tdr = m.create_td(nvcpus, stage);
  }

  Td& td() { return *m.td_of(tdr); }
  uint64_t tdvpr(int v) { return td().vcpus[v].tdvpr; }

  // Host pages for the module.
  uint64_t page4k() {
    uint64_t pfn;
    EXPECT_TRUE(host.alloc(0, host::Use::kModule, &pfn));
    return pfn << 12;
  }
  uint64_t page2m() {
    uint64_t pfn;
    EXPECT_TRUE(host.alloc(9, host::Use::kModule, &pfn));
    return pfn << 12;
  }

  static uint64_t gl(uint64_t gpa, int level) { return gpa | static_cast<uint64_t>(level); }

  // Raw calls: every register in, every register out.
  Regs call(Leaf leaf, uint64_t rcx = 0, uint64_t rdx = 0, uint64_t r8 = 0, uint64_t r9 = 0,
            unsigned version = 0) {
    Regs in;
    in.rax = leaf_rax(leaf, version);
    in.rcx = rcx;
    in.rdx = rdx;
    in.r8 = r8;
    in.r9 = r9;
    return m.seamcall(in);
  }
  // Convenience forms with this TD's TDR and harness-supplied pages; return RAX.
  uint64_t sept_add(uint64_t gpa, int level) {
    return call(Leaf::MEM_SEPT_ADD, gl(gpa, level), tdr, page4k()).rax;
  }
  uint64_t aug(uint64_t gpa, int level) {
    return call(Leaf::MEM_PAGE_AUG, gl(gpa, level), tdr, level == kLevel2M ? page2m() : page4k())
        .rax;
  }
  uint64_t block(uint64_t gpa, int level) {
    return call(Leaf::MEM_RANGE_BLOCK, gl(gpa, level), tdr).rax;
  }
  uint64_t unblock(uint64_t gpa, int level) {
    return call(Leaf::MEM_RANGE_UNBLOCK, gl(gpa, level), tdr).rax;
  }
  uint64_t track() { return call(Leaf::MEM_TRACK, tdr).rax; }
  uint64_t remove(uint64_t gpa, int level) {
    return call(Leaf::MEM_PAGE_REMOVE, gl(gpa, level), tdr).rax;
  }
  uint64_t demote(uint64_t gpa, int level) {
    return call(Leaf::MEM_PAGE_DEMOTE, gl(gpa, level), tdr, page4k()).rax;
  }
  uint64_t promote(uint64_t gpa, int level) {
    return call(Leaf::MEM_PAGE_PROMOTE, gl(gpa, level), tdr).rax;
  }
  uint64_t finalize() { return call(Leaf::MR_FINALIZE, tdr).rax; }
  uint64_t enter(int v) { return call(Leaf::VP_ENTER, tdvpr(v)).rax; }
  bool exit(int v) { return m.td_exit(tdvpr(v)); }
  AcceptResult accept(int v, uint64_t gpa, int level) {
    return m.tdg_mem_page_accept(tdvpr(v), gl(gpa, level));
  }

  // Builds the page tables down to `level` + 1 for gpa (PDPT and PD pages as needed).
  void map_tables(uint64_t gpa, int leaf_level) {
    for (int l = kPwl; l > leaf_level; l--) {
      if (entry(gpa & ~(level_size(l) - 1), l).state() == SeptState::NL_MAPPED) continue;
      uint64_t s = sept_add(gpa & ~(level_size(l) - 1), l);
      ASSERT_EQ(s, raw(Status::SUCCESS)) << status_name(s);
    }
  }
  SeptEntry entry(uint64_t gpa, int level) {
    auto w = m.walk(td(), gpa, level);
    return w.reached ? SeptEntry{w.slot->load()} : SeptEntry{};
  }

  TestHooks hooks;
  host::HostPages host;
  Module m;
  uint64_t tdr;
};

#define EXPECT_STATUS(expected, actual) \
  EXPECT_EQ(::tdx::status_name(expected), ::tdx::status_name(actual))
#define ASSERT_STATUS(expected, actual) \
  ASSERT_EQ(::tdx::status_name(expected), ::tdx::status_name(actual))

}  // namespace tdx::testing
