// The total byte decoder and its inverse (TRACE_FORMAT.md, "Fuzzer bytes"). The decoder reads
// a header (configuration, options, schedule, swarm weights), then one statement per selector
// byte until the input ends. Past the end every read is 0, so any byte string decodes.
// `State` holds what both directions compute alike (recently used GFNs, the write counter), so
// the encoder finds bytes by asking the same questions the decoder answers.
#include "sim/trace/decode.h"

#include <algorithm>
#include <array>
#include <span>
#include <string_view>

#include "sim/sched/env.h"

namespace trace {
namespace {

constexpr std::string_view kPointNames[] = {
#define POINT(name, help) name,
#include "sim/sched/points.def"
#undef POINT
};
constexpr size_t kNumPoints = std::size(kPointNames);

// Option flags (the header's second byte): the non-default values of options that describe a
// valid configuration. Bug-zoo entries and injections are never decoded: the fuzzer runs the
// correct stack, and TDXSIM_BUGS switches entries on for the whole run.
struct Flag {
  std::string_view name, value;
};
constexpr Flag kKvmFlags[] = {
    {"sept_ve_disable", "0"},
    {"adversarial_guest", "1"},
    {"enhanced_demote_interruptibility", "0"},
    {"zero_step_mitigation", "0"},
};
constexpr Flag kModuleFlags[] = {
    {"enhanced_demote_interruptibility", "0"},
    {"zero_step_mitigation", "0"},
};

// Offsets inside a 2M region that the "2M boundary" GFN form can name.
constexpr uint64_t kRegionOffset[8] = {0, 1, 511, 256, 2, 510, 255, 257};
// Table of range lengths (the short COUNT form).
constexpr uint64_t kCountTable[8] = {1, 512, 2, 511, 513, 16, 1024, 3};
constexpr uint64_t kSharedBit = 1ull << 47;    // GPA width 48 (TRACE_FORMAT.md)
constexpr uint64_t kBeyondWidth = 1ull << 48;  // a GPA bit the TD does not have

bool is_vcpu_op(Op op) {
  return op_info(op).args.size() && op_info(op).args[0] == 'v';
}

std::span<const Flag> flags(Target t) {
  if (t == Target::kKvm) return kKvmFlags;
  return kModuleFlags;
}

int actor_count(int vcpus) {
  return vcpus + 4;
}
int actor_id(int index, int vcpus) {
  return index < vcpus ? index : sched::kHostBase + (index - vcpus);
}
int actor_index(int id, int vcpus) {
  return sched::is_vcpu_actor(id) ? id : vcpus + (id - sched::kHostBase);
}

// What decoding and encoding share: the trace's shape and the argument history.
struct State {
  Target target = Target::kKvm;
  int vcpus = 1;
  uint64_t memory = 512;
  std::array<uint64_t, 8> recent{};  // most recent first
  uint64_t writes = 0;

  void start() {
    constexpr uint64_t kSeeds[8] = {0, 0x200, 0x1ff, 0x201, 0x3ff, 0x400, 1, 0x100};
    for (size_t i = 0; i < 8; i++) recent[i] = kSeeds[i] % memory;
  }
  void used(uint64_t gfn) {
    std::move_backward(recent.begin(), recent.end() - 1, recent.end());
    recent[0] = gfn;
  }
  // The "near a recent GFN" form: recent[b & 7] moved by delta (b >> 3) & 7.
  uint64_t near(uint8_t b) const {
    const uint64_t base = recent[b & 7];
    const uint64_t in2m = base & 511;
    uint64_t g = base;
    switch ((b >> 3) & 7) {
      case 1:
        g = base + 1;
        break;
      case 2:
        g = base + memory - 1;
        break;
      case 3:
        g = base + 2;
        break;
      case 4:
        g = base + (511 - in2m);
        break;  // the last GFN of its 2M region
      case 5:
        g = base - in2m;
        break;  // the first
      case 6:
        g = base + 512;
        break;
      case 7:
        g = base + memory - 512;
        break;
    }
    return g % memory;
  }
  uint64_t region(uint8_t form, uint8_t b1) const {
    return (b1 % (memory / 512)) * 512 + kRegionOffset[form & 7];
  }
  uint64_t value(uint8_t b) const { return ((writes + 1) << 8) | b; }
};

struct Reader {
  const uint8_t* p;
  size_t n, i = 0;
  bool more() const { return i < n; }
  uint8_t next() { return i < n ? p[i++] : 0; }
};

}  // namespace

const std::vector<Op>& decodable_ops(Target target) {
  static const auto build = [](Target t) {
    std::vector<Op> ops;
    for (int i = 0; i < static_cast<int>(Op::kCount); i++) {
      const Op op = static_cast<Op>(i);
      const char tg = op_info(op).target;
      // Expectations need known results; teardown is implicit at the end of every trace.
      if (op == Op::EXPECT_MAPPED || op == Op::EXPECT_UNMAPPED || op == Op::EXPECT_VM ||
          op == Op::TEARDOWN)
        continue;
      if (tg == 'B' || tg == (t == Target::kKvm ? 'K' : 'M')) ops.push_back(op);
    }
    return ops;
  };
  static const std::vector<Op> kvm = build(Target::kKvm), module = build(Target::kModule);
  return target == Target::kKvm ? kvm : module;
}

Trace decode(const uint8_t* data, size_t size, Target target) {
  Reader in{data, size};
  Trace t;
  t.target = target;
  State st;
  st.target = target;
  const uint8_t config = in.next();
  t.vcpus = 1 + (config & 7);
  t.memory = 512ull << ((config >> 3) & 3);
  st.vcpus = t.vcpus;
  st.memory = t.memory;
  st.start();

  const uint8_t opt = in.next();
  const auto fl = flags(target);
  for (size_t i = 0; i < fl.size(); i++)
    if (opt & (1u << i)) t.options.emplace_back(fl[i].name, fl[i].value);

  if (target == Target::kKvm) {
    sched::Schedule& s = t.schedule;
    switch ((config >> 5) & 3) {
      case 1: {
        s.kind = sched::Schedule::kRules;
        const int n = 1 + (in.next() & 7);  // at least one: no rules would print as sequential
        for (int i = 0; i < n; i++) {
          sched::SwitchRule r;
          r.who = actor_id(in.next() % actor_count(t.vcpus), t.vcpus);
          r.where = std::string(kPointNames[in.next() % kNumPoints]);
          r.nth = 1 + (in.next() & 7);
          r.to = actor_id(in.next() % actor_count(t.vcpus), t.vcpus);
          s.rules.push_back(r);
        }
        break;
      }
      case 2:
        s.kind = sched::Schedule::kRandom;
        s.seed = in.next();
        s.seed |= uint64_t{in.next()} << 8;
        break;
      case 3:
        s.kind = sched::Schedule::kPct;
        s.seed = in.next();
        s.seed |= uint64_t{in.next()} << 8;
        s.depth = 1 + (in.next() & 3);
        break;
    }
  }

  // Swarm testing: each operation kind's weight, 0 = switched off for this input.
  const auto& ops = decodable_ops(target);
  std::vector<uint32_t> weight(ops.size());
  uint32_t total = 0;
  for (auto& w : weight) total += (w = in.next() & 7);
  if (!total) {
    std::fill(weight.begin(), weight.end(), 1);
    total = static_cast<uint32_t>(weight.size());
  }

  const bool scheduled = t.schedule.kind != sched::Schedule::kNone;
  while (in.more() && t.stmts.size() < kMaxDecodedOps) {
    uint32_t pick = in.next() % total;
    size_t k = 0;
    while (pick >= weight[k]) pick -= weight[k++];
    Stmt s;
    s.op = ops[k];
    const OpInfo& info = op_info(s.op);
    for (char a : info.args) {
      uint64_t v = 0;
      switch (a) {
        case 'f':
        case 'g': {
          const uint8_t b0 = in.next();
          uint64_t extra = 0;
          if (b0 < 0x40) {
            v = st.near(b0);
          } else if (b0 < 0x80) {
            v = st.region(b0, in.next());
            // Module traces only: the 2M form's spare bits make a GPA the module must refuse.
            if (a == 'g' && ((b0 >> 3) & 7) == 5) extra = kBeyondWidth;
            if (a == 'g' && ((b0 >> 3) & 7) == 6) extra = 0x800;
            if (a == 'g' && ((b0 >> 3) & 7) == 7) extra = kSharedBit;
          } else if (a == 'f' || b0 < 0xc0) {
            v = ((uint64_t{b0 & 0x7fu} << 8) | in.next()) % st.memory;
          } else {
            // Module traces: any GPA below 16G, also beyond the memory the harness backs.
            v = uint64_t{b0 & 0x3fu} << 16;
            v |= uint64_t{in.next()} << 8;
            v |= in.next();
          }
          st.used(v);
          if (a == 'g') v = (v << 12) | extra;
          break;
        }
        case 'c': {
          const uint8_t b = in.next();
          if (b < 0x80)
            v = kCountTable[b & 7];
          else if (b < 0xc0)
            v = (b & 0x3f) + 1;
          else
            v = ((uint64_t{b & 0x3fu} << 8) | in.next()) + 1;
          v = std::min(v, st.memory - s.args.back());
          break;
        }
        case 'l': {
          const uint8_t b = in.next() & 7;
          if (target == Target::kKvm)
            v = b < 4 ? 0 : b < 7 ? 1 : 2;  // 4K, 2M, now and then 1G
          else
            v = b < 3 ? 0 : b < 6 ? 1 : b - 4;  // 4K, 2M, 1G, 512G
          break;
        }
        case 'v':
          v = in.next() % t.vcpus;
          break;
        case 'x': {
          const uint8_t b = in.next();
          if (b < 0xf0) {
            v = st.value(b);
          } else {
            for (int i = 0; i < 8; i++) v |= uint64_t{in.next()} << (8 * i);
          }
          st.writes++;
          break;
        }
        case 'a':
        case 's':
          v = in.next() & 1;
          break;
        case 'm':
          v = in.next() % 3;
          break;
        default: {  // 'n'
          const uint8_t b = in.next();
          v = b < 0x80 ? b : (uint64_t{b & 0x7fu} << 8) | in.next();
          break;
        }
      }
      s.args.push_back(v);
    }
    if (scheduled) {
      const uint8_t b = in.next();
      if (is_vcpu_op(s.op)) {
        if (b & 1) s.actor = "vcpu" + std::to_string(s.args[0]);
      } else if (b % 5) {
        s.actor = "host" + std::to_string(b % 5 - 1);
      }
    }
    t.stmts.push_back(std::move(s));
  }
  return t;
}

namespace {

struct Encoder {
  State st;
  Encoded out;
  void put(uint8_t b) { out.bytes.push_back(b); }
  bool fail(std::string why) {
    if (out.error.empty()) out.error = std::move(why);
    return false;
  }
  static std::string where(const Stmt& s) {
    return s.line ? "line " + std::to_string(s.line) + ": " : "";
  }

  bool gfn(uint64_t gfn, uint8_t spare_bits, const Stmt& s, bool module_gpa = false) {
    if (module_gpa && !spare_bits && gfn >= st.memory && gfn < (1u << 22)) {
      put(static_cast<uint8_t>(0xc0 | (gfn >> 16)));
      put(static_cast<uint8_t>(gfn >> 8));
      put(static_cast<uint8_t>(gfn));
      st.used(gfn);
      return true;
    }
    if (!spare_bits)
      for (int b = 0; b < 0x40; b++)
        if (st.near(static_cast<uint8_t>(b)) == gfn) {
          put(static_cast<uint8_t>(b));
          st.used(gfn);
          return true;
        }
    for (int k = 0; k < 8; k++)
      if (gfn % 512 == kRegionOffset[k] && gfn / 512 < 256 && gfn < st.memory) {
        put(static_cast<uint8_t>(0x40 | (spare_bits << 3) | k));
        put(static_cast<uint8_t>(gfn / 512));
        st.used(gfn);
        return true;
      }
    if (spare_bits) return fail(where(s) + "this GPA's extra bits need a 2M-region offset");
    if (gfn >= st.memory || gfn >= (module_gpa ? 0x4000u : 0x8000u))
      return fail(where(s) + "GFN " + std::to_string(gfn) + " does not fit the byte format");
    put(static_cast<uint8_t>(0x80 | (gfn >> 8)));
    put(static_cast<uint8_t>(gfn & 0xff));
    st.used(gfn);
    return true;
  }

  bool count(uint64_t c, uint64_t gfn, const Stmt& s) {
    const uint64_t limit = st.memory - gfn;
    for (int k = 0; k < 8; k++)
      if (std::min(kCountTable[k], limit) == c) return put(static_cast<uint8_t>(k)), true;
    if (c >= 1 && c <= 64) return put(static_cast<uint8_t>(0x80 | (c - 1))), true;
    if (c >= 1 && c <= 0x4000) {
      put(static_cast<uint8_t>(0xc0 | ((c - 1) >> 8)));
      put(static_cast<uint8_t>((c - 1) & 0xff));
      return true;
    }
    return fail(where(s) + "COUNT " + std::to_string(c) + " does not fit the byte format");
  }

  bool stmt(const Stmt& s, Target target, bool scheduled) {
    const OpInfo& info = op_info(s.op);
    for (size_t i = 0; i < info.args.size(); i++) {
      const uint64_t v = s.args[i];
      switch (info.args[i]) {
        case 'f':
          if (!gfn(v, 0, s)) return false;
          break;
        case 'g': {
          uint8_t spare = 0;
          uint64_t g = v;
          if (g & kSharedBit) spare = 7, g &= ~kSharedBit;
          if ((g & kBeyondWidth) && !spare) spare = 5, g &= ~kBeyondWidth;
          if ((g & 0xfff) == 0x800 && !spare) spare = 6, g &= ~0xfffull;
          if (g & 0xfff)
            return fail(where(s) + "GPA " + std::to_string(v) + " does not fit the byte format");
          if (!gfn(g >> 12, spare, s, true)) return false;
          break;
        }
        case 'c':
          if (!count(v, s.args[i - 1], s)) return false;
          break;
        case 'l':
          if (target == Target::kKvm)
            put(v == 0 ? 0 : v == 1 ? 4 : 7);
          else
            put(v == 0 ? 0 : v == 1 ? 3 : static_cast<uint8_t>(v + 4));
          break;
        case 'v':
        case 'a':
        case 's':
        case 'm':
          put(static_cast<uint8_t>(v));
          break;
        case 'x':
          if ((v >> 8) == st.writes + 1 && (v & 0xff) < 0xf0) {
            put(static_cast<uint8_t>(v & 0xff));
          } else {
            put(0xf0);
            for (int b = 0; b < 8; b++) put(static_cast<uint8_t>(v >> (8 * b)));
          }
          st.writes++;
          break;
        default:  // 'n'
          if (v < 0x80) {
            put(static_cast<uint8_t>(v));
          } else if (v < 0x8000) {
            put(static_cast<uint8_t>(0x80 | (v >> 8)));
            put(static_cast<uint8_t>(v & 0xff));
          } else {
            return fail(where(s) + "count " + std::to_string(v) + " is above 32767");
          }
          break;
      }
    }
    if (!scheduled) {
      if (!s.actor.empty())
        out.dropped.push_back(where(s) + "`@" + s.actor + "` (no effect without a schedule)");
      return true;
    }
    if (is_vcpu_op(s.op)) {
      if (s.actor.empty()) return put(0), true;
      if (s.actor == "vcpu" + std::to_string(s.args[0])) return put(1), true;
    } else {
      if (s.actor.empty()) return put(0), true;
      const int id = sched::parse_actor(s.actor);
      if (id >= sched::kHostBase) return put(static_cast<uint8_t>(1 + id - sched::kHostBase)), true;
    }
    return fail(where(s) + "actor @" + s.actor + " on `" + std::string(info.name) +
                "` does not fit the byte format");
  }
};

}  // namespace

Encoded encode(const Trace& t) {
  Encoder e;
  e.st.target = t.target;
  const int mem_shift = t.memory == 512 ? 0 : t.memory == 1024 ? 1 : t.memory == 2048 ? 2 : 3;
  if (t.memory != (512ull << mem_shift)) {
    e.fail("memory " + std::to_string(t.memory) + ": the byte format has 512, 1024, 2048, 4096");
    return e.out;
  }
  const sched::Schedule& s = t.schedule;
  uint8_t kind = 0;
  if (t.target == Target::kKvm)
    kind = s.kind == sched::Schedule::kRules    ? 1
           : s.kind == sched::Schedule::kRandom ? 2
           : s.kind == sched::Schedule::kPct    ? 3
                                                : 0;
  e.put(static_cast<uint8_t>((t.vcpus - 1) | (mem_shift << 3) | (kind << 5)));
  // The byte format has no setup phase: every actor starts with the first statement.
  if (t.setup > 0) e.out.dropped.push_back("schedule setup " + std::to_string(t.setup));
  e.st.vcpus = t.vcpus;
  e.st.memory = t.memory;
  e.st.start();

  uint8_t opt = 0;
  const auto fl = flags(t.target);
  for (auto& [name, value] : t.options) {
    size_t i = 0;
    while (i < fl.size() && fl[i].name != name) i++;
    uint64_t want, have;
    if (i < fl.size() && option_number(value, &have) && option_number(fl[i].value, &want)) {
      if (have == want) {
        opt |= static_cast<uint8_t>(1u << i);
        continue;
      }
    }
    // The byte format holds only the non-default values of the configuration flags above.
    e.out.dropped.push_back("option " + name + "=" + value);
  }
  e.put(opt);

  if (kind == 1) {
    if (s.rules.size() > 8) {
      e.fail("more than 8 switch rules");
      return e.out;
    }
    e.put(static_cast<uint8_t>(s.rules.size() - 1));
    for (auto& r : s.rules) {
      const auto p = std::find(std::begin(kPointNames), std::end(kPointNames), r.where);
      if (r.nth < 1 || r.nth > 8) {
        e.fail("switch rule at " + r.where + ":" + std::to_string(r.nth) +
               ": the byte format counts to 8");
        return e.out;
      }
      e.put(static_cast<uint8_t>(actor_index(r.who, t.vcpus)));
      e.put(static_cast<uint8_t>(p - std::begin(kPointNames)));
      e.put(static_cast<uint8_t>(r.nth - 1));
      e.put(static_cast<uint8_t>(actor_index(r.to, t.vcpus)));
    }
  } else if (kind >= 2) {
    if (s.seed > 0xffff) {
      e.fail("schedule seed " + std::to_string(s.seed) + ": the byte format has 16-bit seeds");
      return e.out;
    }
    e.put(static_cast<uint8_t>(s.seed));
    e.put(static_cast<uint8_t>(s.seed >> 8));
    if (kind == 3) {
      if (s.depth < 1 || s.depth > 4) {
        e.fail("PCT depth " + std::to_string(s.depth) + ": the byte format has 1..4");
        return e.out;
      }
      e.put(static_cast<uint8_t>(s.depth - 1));
    }
  }

  // Swarm weights: 4 for the kinds the trace uses, 1 for the rest (mutations explore).
  const auto& ops = decodable_ops(t.target);
  std::vector<uint8_t> weight(ops.size(), 1);
  std::vector<const Stmt*> kept;
  for (auto& st : t.stmts) {
    const auto it = std::find(ops.begin(), ops.end(), st.op);
    if (it == ops.end()) {
      e.out.dropped.push_back(Encoder::where(st) + "`" + print_stmt(st) + "`");
      continue;
    }
    weight[it - ops.begin()] = 4;
    kept.push_back(&st);
  }
  if (kept.size() > kMaxDecodedOps) {
    e.fail("more than " + std::to_string(kMaxDecodedOps) + " statements");
    return e.out;
  }
  std::vector<uint8_t> start(ops.size());
  for (size_t k = 0, sum = 0; k < ops.size(); sum += weight[k++])
    start[k] = static_cast<uint8_t>(sum);
  for (uint8_t w : weight) e.put(w);

  for (const Stmt* st : kept) {
    e.put(start[std::find(ops.begin(), ops.end(), st->op) - ops.begin()]);
    if (!e.stmt(*st, t.target, kind != 0)) return e.out;
    if (st->expect.kind != Expect::kNone)
      e.out.dropped.push_back(Encoder::where(*st) + "`-> " + print_expect(st->expect) + "`");
  }
  return e.out;
}

}  // namespace trace
