// Executor for module traces (TRACE_FORMAT.md, "Module traces"). The harness plays the host:
// it supplies pages from the host pool, writes back and frees the pages the module returns
// (as KVM does), and tears the TD down at the end so that leak checks always run.
#include <cstdio>
#include <sstream>
#include "sim/host/hex.h"

#include "sim/check/module_check.h"
#include "sim/host/pages.h"
#include "sim/host/rmw.h"
#include "sim/tdx/module.h"
#include "sim/trace/call_log.h"
#include "sim/trace/exec.h"
#include "sim/trace/kvm_exec.h"
#include "sim/trace/stack_pool.h"

namespace trace {
namespace {

using tdx::Leaf;
using tdx::Regs;
using tdx::Status;

using host::hex;

// Outcome of one statement, in the terms an expectation uses.
struct Outcome {
  bool pseudo = false;
  uint64_t status = 0;
  std::string name;  // pseudo result, or the decoded status
  std::string detail;
};

class ModuleExec : public tdx::Hooks {
 public:
  ModuleExec(const Trace& t, const RunOptions& o)
      : t_(t),
        opts_(o),
        stack_(kBasePfn, pool_pages(t.memory), module_options(t), this),
        host_(stack_.host()),
        m_(stack_.module()) {
    set_calls_observed(o.log != nullptr);  // on_call only writes the -v log
    tdr_ = m_.create_td(t.vcpus);
    apply_injections(t, m_);
  }

  RunResult run() {
    RunResult r;
    for (size_t i = 0; i < t_.stmts.size(); i++) {
      const Stmt& s = t_.stmts[i];
      if (opts_.log) *opts_.log << "[" << i << "] line " << s.line << ": " << print_stmt(s) << "\n";
      Outcome out = step(s);
      r.steps++;
      log_.flush();
      if (opts_.log) *opts_.log << "    => " << out.name << out.detail << "\n";
      // A property violation is the deeper finding: it wins over a mismatched expectation.
      if (check(i, s.line, &r)) return r;
      if (!matches(s.expect, out)) {
        r.failure = {Failure::kExpectation, i, s.line, print_expect(s.expect),
                     out.name + out.detail, {}};
        return r;
      }
    }
    if (!torn_down_) {
      if (opts_.log) *opts_.log << "[end] implicit teardown\n";
      teardown();
      log_.flush();
      if (check(t_.stmts.size(), 0, &r)) return r;
    }
    return r;
  }

  // Hooks.
  void on_call(const char* name, const Regs& in, const Regs& out) override {
    log_.call(name, in, out);
  }
  bool interrupt_pending(const char* where) override {
    if (!irq_) return false;
    if (std::string_view(where) == "accept" && irq_skip_ > 0) {
      irq_skip_--;
      return false;
    }
    irq_ = false;
    return true;
  }
  void on_tlb_flush(const tdx::Td&, int vcpu) override {
    log_.note("(vCPU " + std::to_string(vcpu) + " TLB flushed: new epoch)");
  }

 private:
  static constexpr uint64_t kBasePfn = 0x100000;  // host memory at 4 GiB
  static uint64_t pool_pages(uint64_t memory) {
    // Guest memory, plus room for tables and control pages, in whole 2M blocks.
    return (memory + 1024 + 511) / 512 * 512;
  }
  static tdx::Options module_options(const Trace& t) {
    tdx::Options o;
    for (auto& [name, value] : t.options) {
      uint64_t n;
      if (option_number(value, &n)) o.set(name, n);
    }
    return o;
  }

  bool check(size_t step, int line, RunResult* r) {
    check::Violations v;
    check::check_module(m_, true, &ledger_seen_, &v);
    if (v.empty()) return false;
    r->failure.kind = Failure::kProperty;
    r->failure.step = step;
    r->failure.line = line;
    r->failure.violation = v.front();
    return true;
  }

  static bool matches(const Expect& e, const Outcome& o) {
    switch (e.kind) {
      case Expect::kNone:
        return true;
      case Expect::kPseudo:
        return o.pseudo && o.name == e.pseudo;
      case Expect::kStatusClass:
        return !o.pseudo && (o.status & tdx::kStatusMask) == e.value;
      case Expect::kStatusExact:
        return !o.pseudo && o.status == e.value;
      case Expect::kValue:
        return false;  // KVM traces only
    }
    return false;
  }

  Outcome status(const Regs& r) {
    Outcome o;
    o.status = r.rax;
    o.name = tdx::status_name(r.rax);
    if (r.rcx || r.rdx) o.detail = " (rcx=" + hex(r.rcx) + " rdx=" + hex(r.rdx) + ")";
    return o;
  }
  static Outcome pseudo(const char* name) {
    Outcome o;
    o.pseudo = true;
    o.name = name;
    return o;
  }

  Regs call(Leaf leaf, uint64_t rcx, uint64_t rdx = 0, uint64_t r8 = 0, uint64_t r9 = 0) {
    Regs in;
    in.rax = tdx::leaf_rax(leaf);
    in.rcx = rcx;
    in.rdx = rdx;
    in.r8 = r8;
    in.r9 = r9;
    return m_.seamcall(in);
  }

  // A page handed to the module for one call; taken back if the call did not keep it.
  bool give(unsigned order, uint64_t* pa) {
    uint64_t pfn;
    if (!host_.alloc(order, host::Use::kModule, &pfn)) return false;
    *pa = pfn << host::kPageShift;
    return true;
  }
  void take_back(uint64_t pa, unsigned order) {
    host_.transfer(pa >> host::kPageShift, order, host::Use::kModule, host::Use::kHost,
                   "unused page");
    host_.free(pa >> host::kPageShift, order);
  }
  // The module returned `pages` frames at `pa`: write each back with its TD key (as KVM's
  // tdx_clear_page path does) and free them.
  void reclaim_returned(uint64_t pa, uint64_t pages, uint32_t hkid) {
    const uint64_t pfn = pa >> host::kPageShift;
    for (uint64_t i = 0; i < pages; i++) {
      host_.transfer(pfn + i, 0, host::Use::kModule, host::Use::kReturned,
                     "page returned by the module");
      host_.set_needs_wbinvd(pfn + i, true);
      Regs r = call(Leaf::PHYMEM_PAGE_WBINVD,
                    ((pfn + i) << host::kPageShift) | (uint64_t{hkid} << tdx::kPhysBits));
      if (r.rax != tdx::raw(Status::SUCCESS))
        host_.add_violation("TDH.PHYMEM.PAGE.WBINVD of a returned page failed: " +
                            tdx::status_name(r.rax));
      host_.content(pfn + i) = 0;  // tdx_clear_page
      host_.free(pfn + i, 0);
    }
  }
  uint32_t hkid() {
    tdx::Td* td = m_.td_of(tdr_);
    return td ? td->hkid : 0;
  }
  uint64_t tdvpr(uint64_t v) {
    tdx::Td* td = m_.td_of(tdr_);
    return td && v < td->vcpus.size() ? td->vcpus[v].tdvpr : 0;
  }

  // A SEAMCALL whose R8 is a page the harness supplies.
  Outcome with_page(Leaf leaf, uint64_t rcx, unsigned order) {
    uint64_t pa;
    if (!give(order, &pa)) return pseudo("NOMEM");
    Regs r = call(leaf, rcx, tdr_, pa);
    if (r.rax != tdx::raw(Status::SUCCESS)) take_back(pa, order);
    return status(r);
  }

  Outcome step(const Stmt& s) {
    const uint64_t rcx = s.args.size() >= 2 ? s.args[0] | s.args[1] : 0;
    switch (s.op) {
      case Op::SEPT_ADD:
        return with_page(Leaf::MEM_SEPT_ADD, rcx, 0);
      case Op::PAGE_AUG:
        return with_page(Leaf::MEM_PAGE_AUG, rcx, s.args[1] == tdx::kLevel2M ? 9 : 0);
      case Op::PAGE_DEMOTE:
        return with_page(Leaf::MEM_PAGE_DEMOTE, rcx, 0);
      case Op::PAGE_ADD: {
        uint64_t src_pfn, pa;
        if (!host_.alloc(0, host::Use::kHost, &src_pfn)) return pseudo("NOMEM");
        host_.content(src_pfn) = 0x5eed000000000000ull | (s.args[0] >> 12);
        if (!give(0, &pa)) {
          host_.free(src_pfn, 0);
          return pseudo("NOMEM");
        }
        Regs r = call(Leaf::MEM_PAGE_ADD, s.args[0], tdr_, pa, src_pfn << host::kPageShift);
        if (r.rax != tdx::raw(Status::SUCCESS)) take_back(pa, 0);
        host_.free(src_pfn, 0);
        return status(r);
      }
      case Op::RANGE_BLOCK:
        return status(call(Leaf::MEM_RANGE_BLOCK, rcx, tdr_));
      case Op::RANGE_UNBLOCK:
        return status(call(Leaf::MEM_RANGE_UNBLOCK, rcx, tdr_));
      case Op::TRACK:
        return status(call(Leaf::MEM_TRACK, tdr_));
      case Op::MR_FINALIZE:
        return status(call(Leaf::MR_FINALIZE, tdr_));
      case Op::PAGE_REMOVE:
      case Op::SEPT_REMOVE:
      case Op::PAGE_PROMOTE: {
        const uint32_t key = hkid();
        const Leaf leaf = s.op == Op::PAGE_REMOVE   ? Leaf::MEM_PAGE_REMOVE
                          : s.op == Op::SEPT_REMOVE ? Leaf::MEM_SEPT_REMOVE
                                                    : Leaf::MEM_PAGE_PROMOTE;
        Regs r = call(leaf, rcx, tdr_);
        if (r.rax == tdx::raw(Status::SUCCESS)) {
          // REMOVE returns the guest page (all of it); the others a freed S-EPT table.
          const uint64_t pages =
              s.op == Op::PAGE_REMOVE ? tdx::level_pages(static_cast<int>(s.args[1])) : 1;
          reclaim_returned(r.rcx, pages, key);
        }
        return status(r);
      }
      case Op::VP_ENTER: {
        Regs r = call(Leaf::VP_ENTER, tdvpr(s.args[0]));
        if (r.rax == tdx::kExitReasonEptViolation) {
          Outcome o = pseudo("EPT_VIOLATION");
          o.detail = " (zero-step filter, gpa=" + hex(r.r8) + ")";
          return o;
        }
        return status(r);
      }
      case Op::TD_EXIT:
        return m_.td_exit(tdvpr(s.args[0])) ? status(Regs{}) : pseudo("NOT_IN_TD");
      case Op::EPT_VIOLATION:
        return m_.ept_violation_exit(tdvpr(s.args[0]), s.args[1]) ? pseudo("EPT_VIOLATION")
                                                                  : pseudo("NOT_IN_TD");
      case Op::ACCEPT: {
        tdx::AcceptResult a = m_.tdg_mem_page_accept(tdvpr(s.args[0]), s.args[1] | s.args[2]);
        switch (a.kind) {
          case tdx::AcceptResult::kStatus: {
            Outcome o;
            o.status = a.status;
            o.name = tdx::status_name(a.status);
            return o;
          }
          case tdx::AcceptResult::kEptViolation: {
            Outcome o = pseudo("EPT_VIOLATION");
            o.detail = std::string(" (found ") + tdx::level_name(a.exit.found_level) +
                       " entry, state " + hex(a.exit.state) + ")";
            return o;
          }
          case tdx::AcceptResult::kResumed:
            return pseudo("INTERRUPTED");
          case tdx::AcceptResult::kNotInTd:
            return pseudo("NOT_IN_TD");
        }
        return pseudo("?");
      }
      case Op::IRQ:
        irq_ = true;
        irq_skip_ = s.args[0];
        return status(Regs{});
      case Op::TEARDOWN:
        teardown();
        return status(Regs{});
      default:
        break;  // KVM operations never reach a module trace (the parser refuses them)
    }
    return pseudo("?");
  }

  // HKID release and reclaim of every page, as KVM does at TD destruction (kvm-tdx.md §2.B5).
  void teardown() {
    torn_down_ = true;
    tdx::Td* td = m_.td_of(tdr_);
    if (!td) return;
    auto expect_ok = [&](const char* what, const Regs& r, bool allow_not_associated = false) {
      if (r.rax == tdx::raw(Status::SUCCESS)) return;
      if (allow_not_associated && tdx::status_class(r.rax) == Status::VCPU_NOT_ASSOCIATED) return;
      host_.add_violation(std::string("teardown: ") + what + " -> " + tdx::status_name(r.rax));
    };
    for (auto& v : td->vcpus) m_.td_exit(v.tdvpr);
    for (auto& v : td->vcpus) expect_ok("TDH.VP.FLUSH", call(Leaf::VP_FLUSH, v.tdvpr), true);
    expect_ok("TDH.MNG.VPFLUSHDONE", call(Leaf::MNG_VPFLUSHDONE, tdr_));
    expect_ok("TDH.PHYMEM.CACHE.WB", call(Leaf::PHYMEM_CACHE_WB, 0));
    expect_ok("TDH.MNG.KEY.FREEID", call(Leaf::MNG_KEY_FREEID, tdr_));
    // Every page handed to the module, lowest first (a large page's head comes first), then
    // the TDR once its child count is zero. -v shows a summary rather than every RECLAIM.
    for (uint64_t pfn = host_.base_pfn(); pfn < host_.base_pfn() + host_.npages(); pfn++) {
      if (!host_.block_touched((pfn - host_.base_pfn()) / host::kPagesPer2M)) {
        pfn |= host::kPagesPer2M - 1;  // a block never allocated from: every frame is free
        continue;
      }
      if (host_.use(pfn) != host::Use::kModule || (pfn << host::kPageShift) == tdr_) continue;
      Regs r = call(Leaf::PHYMEM_PAGE_RECLAIM, pfn << host::kPageShift);
      if (r.rax != tdx::raw(Status::SUCCESS)) continue;  // the ledger check reports what is left
      const uint64_t pages = tdx::level_pages(static_cast<int>(r.r8));
      host_.transfer(pfn, 0, host::Use::kModule, host::Use::kReturned, "reclaim");
      for (uint64_t i = 1; i < pages; i++)
        host_.transfer(pfn + i, 0, host::Use::kModule, host::Use::kReturned, "reclaim");
      for (uint64_t i = 0; i < pages; i++) host_.free(pfn + i, 0);
      pfn += pages - 1;
    }
    Regs r = call(Leaf::PHYMEM_PAGE_RECLAIM, tdr_);
    expect_ok("TDH.PHYMEM.PAGE.RECLAIM of the TDR", r);
    if (r.rax == tdx::raw(Status::SUCCESS)) {
      host_.transfer(tdr_ >> host::kPageShift, 0, host::Use::kModule, host::Use::kReturned,
                     "reclaim");
      host_.free(tdr_ >> host::kPageShift, 0);
    }
    if (host_.in_use() != 0)
      host_.add_violation("teardown: " + std::to_string(host_.in_use()) +
                          " host frames not reclaimed (leak)");
  }

  const Trace& t_;
  RunOptions opts_;
  PooledStack stack_;
  host::HostPages& host_;
  tdx::Module& m_;
  uint64_t tdr_ = 0;
  bool irq_ = false;
  uint64_t irq_skip_ = 0;
  bool torn_down_ = false;
  CallLog log_{opts_.log};
  size_t ledger_seen_ = 0;
};

}  // namespace

RunResult run(const Trace& t, const RunOptions& opts) {
  if (t.target == Target::kModule) {
    host::SingleThreadScope single(true);  // module traces run on this thread alone
    return ModuleExec(t, opts).run();
  }
  KvmRunConfig cfg;
  std::string bad;
  kvm::bugs_from_env(&cfg.bugs, &bad);  // tools reject a bad TDXSIM_BUGS before running
  return run_kvm(t, opts, cfg);
}

std::string format_failure(const Trace& t, const RunResult& r, const std::string& file) {
  std::ostringstream o;
  const Failure& f = r.failure;
  const std::string where = file + ":" + (f.line ? std::to_string(f.line) : std::string("end"));
  if (f.kind == Failure::kExpectation) {
    o << where << ": expectation failed: " << print_stmt(t.stmts[f.step]) << "\n";
    o << "  expected: " << f.expected << "\n";
    o << "  actual:   " << f.actual << "\n";
  } else if (f.kind == Failure::kProperty) {
    o << where << ": property `" << f.violation.property << "` violated (site: " << f.violation.site
      << ") after step " << f.step << (f.line ? "" : " (implicit teardown)") << "\n";
    o << "  " << f.violation.detail << "\n";
    o << "  signature: " << f.violation.signature() << "\n";
  }
  o << "trace:\n";
  for (size_t i = 0; i < t.stmts.size() && i <= f.step; i++)
    o << (i == f.step ? "> " : "  ") << print_stmt(t.stmts[i]) << "\n";
  if (f.step >= t.stmts.size()) o << "> teardown  # implicit\n";
  return o.str();
}

}  // namespace trace
