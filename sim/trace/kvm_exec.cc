// Executor for KVM traces (TRACE_FORMAT.md, "KVM traces"): userspace ioctls, vCPUs and the
// guest driven against the KVM model over the TDX module model, every property checked after
// every step, `guest-data` at every read.
#include <algorithm>
#include <cstdio>
#include "sim/host/hex.h"
#include "sim/host/rmw.h"

#include "sim/check/guest_data.h"
#include "sim/check/kvm_check.h"
#include "sim/guest/guest.h"
#include "sim/kvm/kvm.h"
#include "sim/sched/threads.h"
#include "sim/trace/call_log.h"
#include "sim/trace/exec.h"
#include "sim/trace/kvm_exec.h"
#include "sim/trace/stack_pool.h"

namespace trace {
namespace {

using host::hex;

struct Outcome {
  std::string word;  // "ok", "EIO", "killed", ... or the value read
  bool has_value = false;
  uint64_t value = 0;
};

class KvmExec : public tdx::Hooks, public guest::Guest::Listener {
 public:
  KvmExec(const Trace& t, const RunOptions& o, const KvmRunConfig& cfg)
      : t_(t),
        opts_(o),
        stack_(kBasePfn, (t.memory + 2048 + 511) / 512 * 512, module_options(t), nullptr),
        host_(stack_.host()),
        module_(stack_.module()),
        kvm_(host_, module_, kvm_options(t, cfg), t.vcpus, t.memory),
        guest_(kvm_),
        model_(t.memory),
        log_(o.log) {
    set_calls_observed(o.log != nullptr);  // on_call only writes the -v log
    kvm_.set_observer(this);
    apply_injections(t, module_);
    guest_.set_listener(this);
  }

  RunResult run() {
    RunResult r;
    // A deterministic run drives every actor from this thread: no locked instructions needed.
    host::SingleThreadScope single(!opts_.free_running);
    // Sequential steps with full checks were each checked quiescent; everything else gets the
    // quiescent checks once, here, when every actor is done.
    bool checked = false;
    if (opts_.free_running) {
      if (!run_threads(&r)) return r;
    } else if (t_.schedule.kind != sched::Schedule::kNone) {
      if (!run_interleaved(&r)) return r;
    } else {
      for (size_t i = 0; i < t_.stmts.size(); i++)
        if (!run_stmt(i, /*quiescent=*/opts_.full_checks_every_step, &r)) return r;
      checked = opts_.full_checks_every_step;
    }
    if (!checked) {
      check::Violations v;
      check::check_kvm(kvm_, guest_, true, &cursor_, &v);
      if (!v.empty()) return fail(r, t_.stmts.size(), 0, v.front());
    }
    if (!torn_down_) {
      if (opts_.log) *opts_.log << "[end] implicit teardown\n";
      check::Violations v;
      teardown(&v);
      log_.flush();
      check::check_kvm(kvm_, guest_, true, &cursor_, &v);
      if (!v.empty()) return fail(r, t_.stmts.size(), 0, v.front());
    }
    return r;
  }

  // One statement with its checks; false when it failed (r holds the failure).
  bool run_stmt(size_t i, bool quiescent, RunResult* r) {
    const Stmt& s = t_.stmts[i];
    if (opts_.log)
      *opts_.log << "[" << i << "] line " << s.line << " " << sched::actor_name(stmt_actor(s))
                 << ": " << print_stmt(s) << "\n";
    Outcome out = step(s);
    r->steps++;
    log_.flush();
    if (opts_.log) *opts_.log << "    => " << out.word << "\n";
    check::Violations v;
    if (s.op == Op::GUEST_READ) check_read(s, out, &v);
    // A property violation is the deeper finding: it wins over a mismatched expectation.
    check::check_kvm(kvm_, guest_, quiescent, &cursor_, &v);
    if (!v.empty()) {
      fail(*r, i, s.line, v.front());
      return false;
    }
    if (!matches(s, out)) {
      r->failure = {Failure::kExpectation,
                    i,
                    s.line,
                    s.expect.kind == Expect::kNone ? "ok" : print_expect(s.expect),
                    out.word,
                    {}};
      return false;
    }
    return true;
  }

  // Each actor's lines in trace order, actors in order of their first line.
  void group_by_actor(std::vector<int>* order, std::vector<std::vector<size_t>>* lines,
                      size_t first = 0) const {
    // Counted first, so that each actor's list is allocated once.
    std::vector<int> actor(t_.stmts.size() - std::min(first, t_.stmts.size()));
    size_t count[sched::kHostBase + 4] = {};
    for (size_t i = 0; i < actor.size(); i++) count[actor[i] = stmt_actor(t_.stmts[first + i])]++;
    lines->assign(sched::kHostBase + 4, {});
    for (size_t i = 0; i < actor.size(); i++) {
      std::vector<size_t>& l = (*lines)[actor[i]];
      if (l.empty()) order->push_back(actor[i]), l.reserve(count[actor[i]]);
      l.push_back(first + i);
    }
  }

  std::string vcpu_states() {
    std::string s;
    for (int v = 0; v < kvm_.nr_vcpus(); v++)
      s += " vcpu" + std::to_string(v) +
           (kvm_.vcpu_mode_in_guest(v) ? " IN_GUEST_MODE" : " outside") +
           (kvm_.vcpu_in_guest(v) ? " in-TD" : "") + (kvm_.kick_pending(v) ? " kick-pending" : "") +
           ";";
    s += kvm_.wait_for_sept_zap() ? " wait_for_sept_zap set;" : "";
    s += " mmu_lock " + std::string(kvm_.mmu_lock().writer ? "write-held, " : "") +
         std::to_string(kvm_.mmu_lock().readers.load()) + " readers; active actors " +
         std::to_string(active_.load());
    return s;
  }

  // Each actor on its own thread; the properties are checked once all have joined.
  bool run_threads(RunResult* r) {
    sched::ThreadEnv env;
    free_running_ = true;
    std::atomic<uint64_t> steps{0};
    // `schedule setup N` holds here too: the VMM's own thread builds the TD first.
    const size_t setup = std::min(t_.setup, t_.stmts.size());
    for (size_t i = 0; i < setup; i++, steps++) step(t_.stmts[i]);
    std::vector<int> order;
    std::vector<std::vector<size_t>> lines;
    group_by_actor(&order, &lines, setup);
    active_ = static_cast<int>(order.size());
    // Retry bounds count attempts, and real threads spin fast: only a wait that outlasts the
    // deadlock timeout is a liveness failure here.
    kvm_.set_retry_limit(1000000);
    for (int a : order) {
      env.add_actor(a, [&, a] {
        for (size_t i : lines[a]) {
          step(t_.stmts[i]);
          steps++;
        }
        active_--;
        env.notify();
        while (sched::is_vcpu_actor(a) && kvm_.vcpu_mode_in_guest(a)) {
          env.block_until("a kick or the end of the trace",
                          [&] { return kvm_.kick_pending(a) || active_ == 0; }, {});
          if (!kvm_.vcpu_ack_kick(a)) break;
        }
      });
    }
    kvm_.set_env(&env);
    const bool ok = env.run();
    kvm_.set_env(nullptr);
    r->steps = steps;
    if (!ok) {
      fail(*r, t_.stmts.size(), 0, {"liveness", "threads", env.why() + " state:" + vcpu_states()});
      return false;
    }
    return true;  // run() makes the quiescent checks
  }

  // Each actor runs its own lines in order; the schedule interleaves them at yield points.
  // Checks that need a quiescent system run when every actor is done.
  bool run_interleaved(RunResult* r) {
    sched::Scheduler sch(t_.schedule);
    if (opts_.log) {
      *opts_.log << "schedule: "
                 << (t_.schedule.kind == sched::Schedule::kRules ? "switch rules" : "seeded")
                 << "\n"
                 << print_schedule(t_.schedule, t_.setup);
      sch.on_switch = [&](const std::string& what) { log_.note("[switch] " + what); };
    }
    // `schedule setup N`: the leading lines run to completion before the actors start, each
    // checked as in a sequential run.
    const size_t setup = std::min(t_.setup, t_.stmts.size());
    for (size_t i = 0; i < setup; i++)
      if (!run_stmt(i, /*quiescent=*/opts_.full_checks_every_step, r)) return false;
    std::vector<int> order;
    std::vector<std::vector<size_t>> lines;
    group_by_actor(&order, &lines, setup);
    active_ = static_cast<int>(order.size());
    bool failed = false;
    for (int a : order) {
      sch.add_actor(a, [&, a] {
        for (size_t i : lines[a]) {
          if (!run_stmt(i, /*quiescent=*/false, r)) {
            failed = true;
            sch.stop();
          }
        }
        active_--;
        // A vCPU left in guest mode keeps taking kicks until every other actor is done.
        while (sched::is_vcpu_actor(a) && kvm_.vcpu_mode_in_guest(a)) {
          sch.block_until("a kick or the end of the trace",
                          [&] { return kvm_.kick_pending(a) || active_ == 0; }, {});
          if (!kvm_.vcpu_ack_kick(a)) break;
        }
      });
    }
    kvm_.set_env(&sch);
    const bool ok = sch.run();
    kvm_.set_env(nullptr);
    log_.flush();
    if (failed) return false;
    if (!ok) {
      fail(*r, t_.stmts.size(), 0, {"liveness", "schedule", sch.why() + " state:" + vcpu_states()});
      return false;
    }
    return true;  // run() makes the quiescent checks
  }

  void on_call(const char* name, const tdx::Regs& in, const tdx::Regs& out) override {
    log_.call(name, in, out);
  }
  // `irq [N]`, as in module traces: the module sees the pending interrupt at its next check
  // (DEMOTE with enhanced_demote_interruptibility=0, PROMOTE, a 2M ACCEPT after N more chunks),
  // where it is consumed. Kvm::interrupt_pending asks here after its own kick check.
  // Asked between every two chunks of a 2M ACCEPT: the pending case is out of line.
  bool interrupt_pending(const char* where) override {
    if (!irq_) return false;
    return take_interrupt(where);
  }
  [[gnu::cold, gnu::noinline]] bool take_interrupt(const char* where) {
    if (std::string_view(where) == "accept" && irq_skip_ > 0) {
      irq_skip_--;
      return false;
    }
    irq_ = false;
    log_.note(std::string("(host interrupt seen by ") + where + ")");
    return true;
  }
  void on_tlb_flush(const tdx::Td&, int vcpu) override {
    guest_.tlb_flush(vcpu);
    if (opts_.log) log_.note("(vCPU " + std::to_string(vcpu) + " TLB flushed: new epoch)");
  }

 private:
  static constexpr uint64_t kBasePfn = 0x100000;

  static tdx::Options module_options(const Trace& t) {
    tdx::Options o;
    for (auto& [name, value] : t.options) {
      uint64_t n;
      if (name != "bug" && name != "inject" && option_number(value, &n)) o.set(name, n);
    }
    return o;
  }
  static kvm::Options kvm_options(const Trace& t, const KvmRunConfig& cfg) {
    kvm::Options o;
    o.bugs = cfg.bugs;
    for (auto& [name, value] : t.options) {
      uint64_t n;
      kvm::BugSet b;
      std::string bad;
      if (name == "bug" && kvm::parse_bugs(value, &b, &bad))
        o.bugs |= b;
      else if (option_number(value, &n))
        o.set(name, n);
    }
    return o;
  }

  RunResult& fail(RunResult& r, size_t step, int line, const check::Violation& v) {
    r.failure.kind = Failure::kProperty;
    r.failure.step = step;
    r.failure.line = line;
    r.failure.violation = v;
    return r;
  }

  static bool matches(const Stmt& s, const Outcome& o) {
    switch (s.expect.kind) {
      case Expect::kNone:
        // An `expect` line is its own expectation (TRACE_FORMAT.md: it fails as one).
        if (s.op == Op::EXPECT_MAPPED || s.op == Op::EXPECT_UNMAPPED || s.op == Op::EXPECT_VM)
          return o.word == "ok";
        return true;
      case Expect::kPseudo:
        return o.word == s.expect.pseudo;
      case Expect::kValue:
        return o.has_value && o.value == s.expect.value;
      default:
        return false;
    }
  }

  // guest-data, at the instant of each effect (Guest::Listener).
  void accepted(uint64_t gfn, uint64_t count) override {
    if (!free_running_) model_.accepted(gfn, count);
  }
  void stored(uint64_t gfn, uint64_t value) override {
    if (!free_running_) model_.wrote(gfn, value);
  }
  void loaded(int v, uint64_t gfn, uint64_t value) override {
    if (free_running_) return;
    auto want = model_.expected(gfn);
    if (want && *want != value && !kvm_.vm_bugged())
      load_violations_.push_back({"guest-data", "wrong-value",
                                  "vCPU " + std::to_string(v) + " reads " + hex(value) +
                                      " at GFN " + hex(gfn) + ", the guest wrote " + hex(*want)});
  }

  // A read of a page the guest had accepted that ends without a value is data loss, unless the
  // VM was already dead or the page was dropped or converted meanwhile.
  void check_read(const Stmt& s, const Outcome& o, check::Violations* v) {
    for (auto& x : load_violations_) v->push_back(std::move(x));
    load_violations_.clear();
    const uint64_t gfn = s.args[1];
    const ReadSnapshot& snap = reads_[stmt_actor(s)];
    if (o.has_value || !snap.want || kvm_.vm_bugged() || snap.dead_before ||
        model_.generation(gfn) != snap.gen)
      return;
    // Only outcomes that mean the page itself is gone count: KVM killing the VM for touching
    // it, a #VE, or a private fault on it refused. KVM_RUN refusing to run at all (the TD not
    // yet runnable, a signal) says nothing about the data.
    if (o.word != "killed" && o.word != "ve" && o.word != "EFAULT") return;
    v->push_back({"guest-data", "read-failed",
                  "vCPU " + std::to_string(s.args[0]) + " read of GFN " + hex(gfn) + " ended `" +
                      o.word + "`; the guest wrote " + hex(*snap.want)});
  }

  static Outcome word(int err) { return {kvm::errno_name(err)}; }
  Outcome guest_outcome(const guest::Result& r, bool with_value) {
    Outcome o{r.text()};
    if (with_value && r.kind == guest::Result::kOk) o = {hex(r.value), true, r.value};
    return o;
  }

  Outcome step(const Stmt& s) {
    const auto& a = s.args;
    switch (s.op) {
      case Op::INIT_MEM: {
        int e = kvm_.tdx_init_mem_region(a[0]);
        if (e == 0) {  // build-time memory is accepted, with the measured content
          guest_.mark_accepted(a[0]);
          model_.loaded(a[0], host_.content(kvm_.gmem_pfn(a[0])));
        }
        return word(e);
      }
      case Op::FINALIZE:
        return word(kvm_.tdx_td_finalize());
      case Op::MAP:
        return word(kvm_.kvm_pre_fault_memory(a[0], static_cast<int>(a[1]) + 1));
      case Op::SPLIT:
        return word(kvm_.split_huge_page(a[0]));
      case Op::ZAP: {
        if (!free_running_) model_.unsettled(a[0], a[1]);  // from now on the data is going away
        int e = kvm_.kvm_gmem_punch_hole(a[0], a[1]);
        if (!free_running_) model_.settled(a[0], a[1], /*shared=*/false);
        return word(e);
      }
      case Op::CONVERT: {
        if (!free_running_) model_.unsettled(a[0], a[1]);
        int e = kvm_.kvm_vm_set_mem_attributes(a[0], a[1], a[2] == 1);
        if (e == 0) guest_.forget(a[0], a[1]);
        // A failed conversion may still have zapped part of the range: its data is gone too.
        if (!free_running_) model_.settled(a[0], a[1], /*shared=*/e == 0 && a[2] == 0);
        return word(e);
      }
      case Op::ENTER:
        return word(kvm_.kvm_arch_vcpu_ioctl_run(static_cast<int>(a[0])));
      case Op::EXIT:
        kvm_.vcpu_async_exit(static_cast<int>(a[0]));
        return word(0);
      case Op::GUEST_ACCEPT:
        return guest_outcome(
            guest_.accept(static_cast<int>(a[0]), a[1], static_cast<int>(a[2]) + 1), false);
      case Op::GUEST_WRITE:
        return guest_outcome(guest_.write(static_cast<int>(a[0]), a[1], a[2]), false);
      case Op::GUEST_READ: {
        const uint64_t gfn = a[1];
        if (!free_running_)
          reads_[stmt_actor(s)] = {model_.expected(gfn), model_.generation(gfn), kvm_.vm_dead()};
        return guest_outcome(guest_.read(static_cast<int>(a[0]), gfn), true);
      }
      case Op::EXPECT_MAPPED:
        return expect_mapped(a[0], static_cast<int>(a[1]), a[2] == 1);
      case Op::EXPECT_UNMAPPED:
        return expect_unmapped(a[0]);
      case Op::EXPECT_VM: {
        const bool ok = a[0] == 0 ? !kvm_.vm_dead() : a[0] == 1 ? kvm_.vm_dead() : kvm_.vm_bugged();
        return state_outcome(ok, std::string("vm is ") + (kvm_.vm_bugged() ? "bugged"
                                                          : kvm_.vm_dead() ? "dead"
                                                                           : "alive"));
      }
      case Op::IRQ:
        irq_ = true;
        irq_skip_ = a[0];
        return word(0);
      case Op::NOMEM:
        kvm_.fail_next_allocs(a[0]);
        return word(0);
      case Op::TEARDOWN: {
        // The VM is destroyed when its last user is gone: every other actor has finished.
        kvm_.env().block_until("every other actor to finish (teardown)",
                               [&] { return active_ <= 1; });
        check::Violations v;
        teardown(&v);
        for (auto& x : v) kvm_.add_violation(x);
        return word(0);
      }
      default:
        return {"?"};
    }
  }

  // An `expect` line: a mismatch is an expectation failure naming what was found.
  Outcome state_outcome(bool ok, const std::string& found) {
    return {ok ? "ok" : "not as expected: " + found};
  }

  Outcome expect_mapped(uint64_t gfn, int tl, bool accepted) {
    uint64_t spte;
    int level;
    std::string found;
    const bool mirror = kvm_.mirror_leaf(gfn, &spte, &level);
    found = mirror ? std::string("mirror leaf ") + tdx::level_name(level - 1) : "no mirror leaf";
    tdx::Td* td = module_.td_of(kvm_.tdr());
    bool sept = false;
    if (td) {
      auto w = module_.walk(*td, gfn << 12, 0);
      const tdx::SeptEntry e{w.slot->load()};
      found +=
          std::string(", S-EPT ") + tdx::state_name(e.state()) + " at " + tdx::level_name(w.level);
      sept = w.level == tl &&
             e.state() == (accepted ? tdx::SeptState::MAPPED : tdx::SeptState::PENDING);
    }
    return state_outcome(mirror && level == tl + 1 && sept, found);
  }

  Outcome expect_unmapped(uint64_t gfn) {
    uint64_t spte;
    int level;
    const bool mirror = kvm_.mirror_leaf(gfn, &spte, &level);
    bool sept = false;
    std::string found = mirror ? "a mirror leaf" : "no mirror leaf";
    if (tdx::Td* td = module_.td_of(kvm_.tdr())) {
      auto w = module_.walk(*td, gfn << 12, 0);
      const tdx::SeptEntry e{w.slot->load()};
      sept = tdx::is_leaf(e.state());
      found +=
          std::string(", S-EPT ") + tdx::state_name(e.state()) + " at " + tdx::level_name(w.level);
    }
    return state_outcome(!mirror && !sept, found);
  }

  // KVM's teardown; afterwards every host frame must be back (unless a bug made KVM leak).
  void teardown(check::Violations* v) {
    torn_down_ = true;
    kvm_.kvm_destroy_vm();
    // A KVM_BUG_ON or a WARN on the way (a page KVM leaks on purpose) is the report itself.
    const bool warned = !kvm_.bug_ons().empty() || kvm_.violations().size() > cursor_.kvm;
    if (!warned && host_.in_use() != 0)
      v->push_back({"page-owner", "leak",
                    std::to_string(host_.in_use()) + " host frames not freed at teardown"});
  }

  const Trace& t_;
  RunOptions opts_;
  PooledStack stack_;
  host::HostPages& host_;
  tdx::Module& module_;
  kvm::Kvm kvm_;
  guest::Guest guest_;
  check::GuestDataModel model_;
  check::KvmCheckCursor cursor_;
  bool torn_down_ = false;
  std::atomic<int> active_{1};  // actors still running their lines (interleaved runs)
  bool free_running_ = false;
  std::atomic<bool> irq_{false};  // `irq`: a host interrupt is pending
  std::atomic<uint64_t> irq_skip_{0};
  // What each actor's read in progress expected when it started.
  struct ReadSnapshot {
    std::optional<uint64_t> want;
    uint32_t gen = 0;
    bool dead_before = false;
  };
  ReadSnapshot reads_[sched::kHostBase + 4];
  check::Violations load_violations_;
  CallLog log_;
};

}  // namespace

RunResult run_kvm(const Trace& t, const RunOptions& o, const KvmRunConfig& cfg) {
  return KvmExec(t, o, cfg).run();
}

}  // namespace trace
