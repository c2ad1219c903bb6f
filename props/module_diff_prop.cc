// Differential property: sim/tdx's Module against the independent S-EPT model of
// props/sept_model.h, on random sequential command sequences (RapidCheck stateful testing).
//
// After every command the status class (bits 63:32) must match, and the operand id (bits
// 31:0) where the spec fixes it; then every modelled GPA/level must show the same S-EPT state
// (or be unreachable by the walk in both), and TD_EPOCH, REFCOUNT, op state and each vCPU's
// in-TD flag must agree. A failing case prints the shrunk sequence in the module-trace syntax
// of TRACE_FORMAT.md (`tdh.mem.page.aug 0x200000 2M`), after the fixed prologue
// `tdh.mem.sept.add 0x0 512G`, `tdh.mem.sept.add 0x0 1G`; its log also holds the whole module
// trace (header, prologue, every command with the model's result as `-> RESULT`) between the
// markers of props/report.h, ready for corpus/regressions/: replaying it fails at the line
// where the sim disagrees with the model. (SEPT.ADD's RDX ALLOW_EXISTING bit has no trace
// syntax; such a line carries a comment.) RapidCheck prints the reproduce string at exit.
//
// Runs:
//   ./props                                   default: 1000 sequences (size ramps 0..100)
//   RC_PARAMS="max_success=100000" ./props    the long run (use a release build)
//   RC_PARAMS="seed=N" / "reproduce=..."      replay a reported failure
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <rapidcheck/state.h>

#include <malloc.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "props/report.h"
#include "props/sept_model.h"
#include "props/stats.h"
#include "sim/host/pages.h"
#include "sim/tdx/module.h"

namespace props {

namespace {

using tdx::Leaf;
using tdx::Regs;

constexpr uint64_t kBasePfn = 0x100000;  // HPA 4 GiB, 1G-aligned
constexpr uint64_t kPoolPages = 2048;    // 8 MiB: TD pages, 2 x 2M guest pages, <= 1017 S-EPT pages

// The system under test: a module with one finalizable TD of two vCPUs. Guest page of
// region r: the 2M run data[r]; its 4K entry i maps data[r] + i*4K. Each entry of the model
// so has its own frame, and the module's page checks (R8) always pass.
struct Sut {
  host::HostPages host{kBasePfn, kPoolPages};
  tdx::Module m;
  uint64_t tdr = 0;
  int64_t chldcnt_base = 0;  // TDCS, root, vCPU pages: outside the model
  std::array<uint64_t, kRegions> data{};
  std::vector<std::string> lines;  // the commands so far as module-trace lines, with results

  static tdx::Options options() {
    tdx::Options o;
    o.zero_step_mitigation = 0;  // not modelled (§2.14 step 4)
    return o;
  }
  Sut() : m(host, options()) {
    tdr = m.create_td(2);
    chldcnt_base = td().chldcnt.load();
    for (auto& d : data) {
      uint64_t pfn = 0;
      if (!host.alloc(9, host::Use::kModule, &pfn)) std::abort();
      d = pfn << 12;
    }
  }
  tdx::Td& td() { return *m.td_of(tdr); }
  uint64_t page4k() {
    uint64_t pfn = 0;
    if (!host.alloc(0, host::Use::kModule, &pfn)) std::abort();  // pool sized for 100s of calls
    return pfn << 12;
  }
  uint64_t call(Leaf leaf, uint64_t rcx, uint64_t rdx = 0, uint64_t r8 = 0) {
    Regs in;
    in.rax = tdx::leaf_rax(leaf);
    in.rcx = rcx;
    in.rdx = rdx;
    in.r8 = r8;
    return m.seamcall(in).rax;
  }
  static uint64_t gl(Tgt t) { return t.gpa() | static_cast<uint64_t>(t.level); }
  uint64_t guest_page(Tgt t) {
    if (t.level >= 1) return data[t.level == 1 ? t.idx : 0];  // levels > 1 fail page_info first
    return data[t.idx / 512] + static_cast<uint64_t>(t.idx % 512) * 4096;
  }
};

// The modelled entries the comparison reads after each command. The 4K entries addressed by
// commands are i in {0, 1, 2, 511} of each region; 256 stands for the other 507 children,
// which only DEMOTE (uniformly) and SEPT.ADD (FREE) change.
const std::vector<Tgt>& observed() {
  static const std::vector<Tgt> v = [] {
    std::vector<Tgt> r{{3, 0}, {2, 0}};
    for (int g = 0; g < kRegions; g++) {
      r.push_back({1, g});
      for (int i : {0, 1, 2, 256, 511}) r.push_back({0, g * 512 + i});
    }
    return r;
  }();
  return v;
}

Model initial_model() {
  Model m;
  m.sept_add({3, 0});
  m.sept_add({2, 0});
  return m;
}

const char* level_str(int l) {
  static const char* n[] = {"4K", "2M", "1G", "512G"};
  return n[l];
}

rc::Gen<Tgt> gen_tgt(std::vector<int> levels) {
  return rc::gen::mapcat(rc::gen::elementOf(levels), [](int l) -> rc::Gen<Tgt> {
    if (l >= 2) return rc::gen::just(Tgt{l, 0});
    if (l == 1) return rc::gen::map(rc::gen::inRange(0, kRegions), [](int r) { return Tgt{1, r}; });
    return rc::gen::map(rc::gen::pair(rc::gen::inRange(0, kRegions),
                                      rc::gen::elementOf(std::vector<int>{0, 1, 2, 511})),
                        [](std::pair<int, int> p) {
                          return Tgt{0, p.first * 512 + p.second};
                        });
  });
}

// Compares one result and then the observable state.
void compare(const char* what, const Res& want, const Res& got, const Model& model, Sut& sut) {
  if (stats().on) stats().n[std::string(what) + " -> " + want.str()]++;
  bool same = want.kind == got.kind;
  if (same && want.kind == Res::kStatus) {
    same = (want.status & tdx::kStatusMask) == (got.status & tdx::kStatusMask) &&
           (!want.check_operand || want.status == got.status);
  }
  if (!same) {
    RC_LOG() << what << ": model " << want.str() << ", sim " << got.str() << "\n";
    RC_FAIL("status differs");
  }
  tdx::Td& td = sut.td();
  for (const Tgt& t : observed()) {
    auto w = sut.m.walk(td, t.gpa(), t.level);
    const int s_sim = w.reached ? static_cast<int>(tdx::SeptEntry{w.slot->load()}.state()) : -1;
    // The two enums list the seven states in the same order (checked below).
    const int s_model = model.observable(t);
    if (s_sim != s_model) {
      auto name = [](int s) { return s < 0 ? "unreachable" : st_name(static_cast<St>(s)); };
      RC_LOG() << what << ": entry 0x" << std::hex << t.gpa() << std::dec << " "
               << level_str(t.level) << ": model " << name(s_model) << ", sim "
               << (s_sim >= 0 ? tdx::state_name(static_cast<tdx::SeptState>(s_sim)) : "unreachable")
               << "\n";
      RC_FAIL("S-EPT state differs");
    }
  }
  // PAMT of the guest frames (REG while a leaf maps them, at the leaf's size) and the BEPOCH
  // that RANGE.BLOCK left for a blocked entry (§2.5, §3).
  for (const Tgt& t : observed()) {
    if (t.level > 1) continue;
    const Ent& e = model.at(t);
    const uint64_t pfn = sut.guest_page(t) >> 12;
    tdx::PamtEntry& p = t.level == 1 ? sut.m.pamt_2m(pfn) : sut.m.pamt_4k(pfn);
    const bool reg = p.type.load() == tdx::PageType::REG;
    if (reg != Model::is_leaf(e.s)) {
      RC_LOG() << what << ": PAMT of the page for 0x" << std::hex << t.gpa() << std::dec << " "
               << level_str(t.level) << " is " << tdx::page_type_name(p.type.load()) << ", entry "
               << st_name(e.s) << " in the model\n";
      RC_FAIL("PAMT differs");
    }
  }
  for (const Tgt& t : observed()) {
    const Ent& e = model.at(t);
    if (!Model::is_blocked(e.s) || model.observable(t) < 0) continue;
    auto w = sut.m.walk(td, t.gpa(), t.level);
    const tdx::SeptEntry se{w.slot->load()};
    const uint64_t pfn = Model::is_leaf(e.s) ? sut.guest_page(t) >> 12 : se.hpa_bits() >> 12;
    tdx::PamtEntry& p =
        t.level == 1 && Model::is_leaf(e.s) ? sut.m.pamt_2m(pfn) : sut.m.pamt_4k(pfn);
    if (p.bepoch.load() != e.bepoch) {
      RC_LOG() << what << ": BEPOCH for 0x" << std::hex << t.gpa() << std::dec << " "
               << level_str(t.level) << ": model " << e.bepoch << ", sim " << p.bepoch.load()
               << "\n";
      RC_FAIL("BEPOCH differs");
    }
  }
  RC_ASSERT(td.chldcnt.load() - sut.chldcnt_base == model.chldcnt);
  RC_ASSERT(td.td_epoch.load() == model.epoch);
  RC_ASSERT(td.refcount[0].load() == model.refcount[0]);
  RC_ASSERT(td.refcount[1].load() == model.refcount[1]);
  RC_ASSERT((td.op_state.load() == tdx::OpState::RUNNABLE) == model.runnable);
  for (int v = 0; v < 2; v++) {
    RC_ASSERT(td.vcpus[v].in_td == model.vcpu[v].in_td);
    RC_ASSERT(td.vcpus[v].epoch == model.vcpu[v].epoch);  // VCPU_EPOCH (§2.14 step 3)
  }
}

// The commands so far as a module trace (TRACE_FORMAT.md), each with the model's result as its
// `->` expectation, so that `tdxfuzz replay` of the saved text fails where the sim disagrees.
std::string module_trace(const Sut& sut) {
  std::string t = std::string(kTraceBegin) + "NAME.tdx) ----\n";
  t += "# ModuleDiff: the sim disagrees with props/sept_model at the last line\n";
  t += "target module\nvcpus 2\noption zero_step_mitigation=0\n";
  t += "tdh.mem.sept.add 0x0 512G -> TDX_SUCCESS\ntdh.mem.sept.add 0x0 1G -> TDX_SUCCESS\n";
  for (const auto& l : sut.lines) t += l + "\n";
  return t + kTraceEnd + "\n";
}

// Records the command's line, then compares; a failure logs the whole trace.
void compare_logged(const rc::state::Command<Model, Sut>& cmd, const char* what, const Res& want,
                    const Res& got, const Model& model, Sut& sut) {
  std::ostringstream os;
  cmd.show(os);
  std::string line = os.str(), comment;
  if (const size_t h = line.find("  #"); h != std::string::npos) {
    comment = line.substr(h);  // ALLOW_EXISTING: not expressible in a module trace
    line.resize(h);
  }
  std::string res = want.str();
  if (res.size() > 2 && res.compare(res.size() - 2, 2, "|*") == 0) res.resize(res.size() - 2);
  sut.lines.push_back(line + " -> " + res + comment);
  try {
    compare(what, want, got, model, sut);
  } catch (...) {
    RC_LOG() << module_trace(sut);
    throw;
  }
}

static_assert(static_cast<int>(tdx::SeptState::PENDING_BLOCKED) ==
                  static_cast<int>(St::PENDING_BLOCKED) &&
              static_cast<int>(tdx::SeptState::NL_BLOCKED) == static_cast<int>(St::NL_BLOCKED) &&
              static_cast<int>(tdx::SeptState::BLOCKED) == static_cast<int>(St::BLOCKED));

using Cmd = rc::state::Command<Model, Sut>;

// A host SEAMCALL on one GPA/level. Kind selects the leaf and the levels generated.
enum class K { SeptAdd, SeptRemove, Aug, Block, Unblock, Remove, Demote, Promote };

// Mostly valid page_info operands; one in 16 has any level, one in 16 (levels >= 1) a GPA
// misaligned by 4K.
Tgt gen_operand(std::vector<int> levels) {
  if (*rc::gen::inRange(0, 16) == 0) levels = {0, 1, 2, 3};
  Tgt t = *gen_tgt(levels);
  if (t.level >= 1 && *rc::gen::inRange(0, 16) == 0) t.skew = 4096;
  return t;
}

template <K kind>
struct EntryCmd : Cmd {
  Tgt t;
  bool allow_existing = false;  // SEPT.ADD only: RDX bit 0
  EntryCmd() : t(gen_operand(levels())) {
    if (kind == K::SeptAdd) allow_existing = *rc::gen::inRange(0, 4) == 0;
  }

  static std::vector<int> levels() {
    switch (kind) {
      case K::SeptAdd:
      case K::SeptRemove:
        return {1, 1, 1, 2, 3};
      case K::Aug:
      case K::Remove:
        return {0, 1};
      case K::Block:
      case K::Unblock:
        return {0, 0, 1, 1, 2, 3};
      case K::Demote:
      case K::Promote:
        return {1};
    }
    return {};
  }
  static const char* name() {
    switch (kind) {
      case K::SeptAdd:
        return "tdh.mem.sept.add";
      case K::SeptRemove:
        return "tdh.mem.sept.remove";
      case K::Aug:
        return "tdh.mem.page.aug";
      case K::Block:
        return "tdh.mem.range.block";
      case K::Unblock:
        return "tdh.mem.range.unblock";
      case K::Remove:
        return "tdh.mem.page.remove";
      case K::Demote:
        return "tdh.mem.page.demote";
      case K::Promote:
        return "tdh.mem.page.promote";
    }
    return "?";
  }
  Res model_step(Model& m) const {
    switch (kind) {
      case K::SeptAdd:
        return m.sept_add(t, allow_existing);
      case K::SeptRemove:
        return m.sept_remove(t);
      case K::Aug:
        return m.aug(t);
      case K::Block:
        return m.block(t);
      case K::Unblock:
        return m.unblock(t);
      case K::Remove:
        return m.remove(t);
      case K::Demote:
        return m.demote(t);
      case K::Promote:
        return m.promote(t);
    }
    return {};
  }
  uint64_t sut_step(Sut& s) const {
    const uint64_t rcx = Sut::gl(t);
    switch (kind) {
      case K::SeptAdd:
        return s.call(Leaf::MEM_SEPT_ADD, rcx, s.tdr | allow_existing, s.page4k());
      case K::SeptRemove:
        return s.call(Leaf::MEM_SEPT_REMOVE, rcx, s.tdr);
      case K::Aug:
        return s.call(Leaf::MEM_PAGE_AUG, rcx, s.tdr, s.guest_page(t));
      case K::Block:
        return s.call(Leaf::MEM_RANGE_BLOCK, rcx, s.tdr);
      case K::Unblock:
        return s.call(Leaf::MEM_RANGE_UNBLOCK, rcx, s.tdr);
      case K::Remove:
        return s.call(Leaf::MEM_PAGE_REMOVE, rcx, s.tdr);
      case K::Demote:
        return s.call(Leaf::MEM_PAGE_DEMOTE, rcx, s.tdr, s.page4k());
      case K::Promote:
        return s.call(Leaf::MEM_PAGE_PROMOTE, rcx, s.tdr);
    }
    return 0;
  }

  void apply(Model& m) const override { model_step(m); }
  void run(const Model& m0, Sut& s) const override {
    Model m = m0;
    const Res want = model_step(m);
    Res got;
    got.status = sut_step(s);
    compare_logged(*this, name(), want, got, m, s);
  }
  void show(std::ostream& os) const override {
    os << name() << " 0x" << std::hex << t.gpa() << std::dec << " " << level_str(t.level);
    if (allow_existing) os << "  # RDX bit 0: ALLOW_EXISTING";
  }
};

struct Track : Cmd {
  void apply(Model& m) const override { m.track(); }
  void run(const Model& m0, Sut& s) const override {
    Model m = m0;
    const Res want = m.track();
    Res got;
    got.status = s.call(Leaf::MEM_TRACK, s.tdr);
    compare_logged(*this, "tdh.mem.track", want, got, m, s);
  }
  void show(std::ostream& os) const override { os << "tdh.mem.track"; }
};

struct Finalize : Cmd {
  void apply(Model& m) const override { m.finalize(); }
  void run(const Model& m0, Sut& s) const override {
    Model m = m0;
    const Res want = m.finalize();
    Res got;
    got.status = s.call(Leaf::MR_FINALIZE, s.tdr);
    compare_logged(*this, "tdh.mr.finalize", want, got, m, s);
  }
  void show(std::ostream& os) const override { os << "tdh.mr.finalize"; }
};

struct Enter : Cmd {
  int v = *rc::gen::inRange(0, 2);
  void apply(Model& m) const override { m.vp_enter(v); }
  void run(const Model& m0, Sut& s) const override {
    Model m = m0;
    const Res want = m.vp_enter(v);
    Res got;
    got.status = s.call(Leaf::VP_ENTER, s.td().vcpus[v].tdvpr);
    compare_logged(*this, "tdh.vp.enter", want, got, m, s);
  }
  void show(std::ostream& os) const override { os << "tdh.vp.enter " << v; }
};

struct Exit : Cmd {
  int v = *rc::gen::inRange(0, 2);
  void apply(Model& m) const override { m.td_exit(v); }
  void run(const Model& m0, Sut& s) const override {
    Model m = m0;
    const Res want = m.td_exit(v);
    Res got;
    if (!s.m.td_exit(s.td().vcpus[v].tdvpr)) got.kind = Res::kNotInTd;
    compare_logged(*this, "td.exit", want, got, m, s);
  }
  void show(std::ostream& os) const override { os << "td.exit " << v; }
};

struct Accept : Cmd {
  int v = *rc::gen::inRange(0, 2);
  Tgt t = gen_operand({0, 1});
  void apply(Model& m) const override { m.accept(v, t); }
  void run(const Model& m0, Sut& s) const override {
    Model m = m0;
    const Res want = m.accept(v, t);
    const tdx::AcceptResult r = s.m.tdg_mem_page_accept(s.td().vcpus[v].tdvpr, Sut::gl(t));
    Res got;
    switch (r.kind) {
      case tdx::AcceptResult::kStatus:
        got.status = r.status;
        break;
      case tdx::AcceptResult::kEptViolation:
        got.kind = Res::kEptViolation;
        break;
      case tdx::AcceptResult::kNotInTd:
        got.kind = Res::kNotInTd;
        break;
      case tdx::AcceptResult::kResumed:
        RC_FAIL("2M ACCEPT interrupted without an interrupt");
    }
    compare_logged(*this, "tdg.mem.page.accept", want, got, m, s);
  }
  void show(std::ostream& os) const override {
    os << "tdg.mem.page.accept " << v << " 0x" << std::hex << t.gpa() << std::dec << " "
       << level_str(t.level);
  }
};

// Repeating a command type in the list raises its weight.
auto gen_command = rc::state::gen::execOneOfWithArgs<
    EntryCmd<K::SeptAdd>, EntryCmd<K::SeptAdd>, EntryCmd<K::SeptRemove>, EntryCmd<K::Aug>,
    EntryCmd<K::Aug>, EntryCmd<K::Aug>, EntryCmd<K::Block>, EntryCmd<K::Block>,
    EntryCmd<K::Unblock>, EntryCmd<K::Remove>, EntryCmd<K::Demote>, EntryCmd<K::Demote>,
    EntryCmd<K::Promote>, EntryCmd<K::Promote>, Track, Track, Finalize, Enter, Enter, Exit, Exit,
    Accept, Accept, Accept>();

}  // namespace

void check_sequence() {
  Sut sut;
  {  // The prologue the model starts from: PDPT and PD for the first 1G of GPA space.
    Tgt l3{3, 0}, l2{2, 0};
    RC_ASSERT(sut.call(Leaf::MEM_SEPT_ADD, Sut::gl(l3), sut.tdr, sut.page4k()) == 0u);
    RC_ASSERT(sut.call(Leaf::MEM_SEPT_ADD, Sut::gl(l2), sut.tdr, sut.page4k()) == 0u);
  }
  rc::state::check(initial_model(), sut, gen_command);
}

}  // namespace props

// 1000 sequences (sizes 0..100) unless RC_PARAMS sets max_success: about 4 s in the ASan
// debug build. RC_PARAMS="max_success=100000" for the long run. RapidCheck reads RC_PARAMS when
// the first property runs, after static initialisation.
// Every sequence builds and drops a module (~1 MB of PAMT and page tables); keep glibc from
// returning that memory to the kernel each time (half the run time went to brk and page
// faults). No effect under ASan, which has its own allocator.
static const bool keep_heap = [] {
  return mallopt(M_TRIM_THRESHOLD, 256 << 20) == 1 && mallopt(M_MMAP_THRESHOLD, 64 << 20) == 1;
}();

static const bool default_max_success = [] {
  const char* p = std::getenv("RC_PARAMS");
  if (p && std::strstr(p, "max_success")) return false;
  const std::string v = std::string("max_success=1000 ") + (p ? p : "");
  return setenv("RC_PARAMS", v.c_str(), 1) == 0;
}();

RC_GTEST_PROP(ModuleDiff, SequentialAgreesWithModel, ()) {
  props::check_sequence();
}
