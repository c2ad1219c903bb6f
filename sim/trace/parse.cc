// The text trace parser: every error names its line and column and nothing runs.
#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "sim/kvm/kvm.h"
#include "sim/tdx/module.h"
#include "sim/tdx/status.h"
#include "sim/trace/trace.h"

namespace trace {
namespace {

constexpr OpInfo kOps[] = {
#define OP(e, name, target, args, help) {name, #target[0], args, help},
#include "sim/trace/ops.def"
#undef OP
};

struct Token {
  std::string_view text;
  int column;  // 1-based
};

std::vector<Token> tokenize(std::string_view line) {
  std::vector<Token> out;
  size_t i = 0;
  while (i < line.size()) {
    if (line[i] == '#') break;
    if (std::isspace(static_cast<unsigned char>(line[i]))) {
      i++;
      continue;
    }
    size_t start = i;
    if (line.compare(i, 2, "->") == 0) {
      i += 2;
    } else {
      while (i < line.size() && !std::isspace(static_cast<unsigned char>(line[i])) &&
             line[i] != '#' && line.compare(i, 2, "->") != 0)
        i++;
    }
    out.push_back({line.substr(start, i - start), static_cast<int>(start) + 1});
  }
  return out;
}

bool parse_number(std::string_view s, uint64_t* v) {
  if (s.empty()) return false;
  int base = 10;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    base = 16;
    s.remove_prefix(2);
  }
  if (s.size() > (base == 16 ? 16u : 20u)) return false;
  std::string buf(s);
  for (char c : buf)
    if (!(base == 16 ? std::isxdigit(static_cast<unsigned char>(c))
                     : std::isdigit(static_cast<unsigned char>(c))))
      return false;
  errno = 0;
  *v = std::strtoull(buf.c_str(), nullptr, base);
  return errno == 0;
}

int parse_level(std::string_view s) {
  if (s == "4K" || s == "4k") return 0;
  if (s == "2M" || s == "2m") return 1;
  if (s == "1G" || s == "1g") return 2;
  if (s == "512G" || s == "512g") return 3;
  return -1;
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> d(b.size() + 1);
  for (size_t j = 0; j <= b.size(); j++) d[j] = j;
  for (size_t i = 1; i <= a.size(); i++) {
    size_t prev = d[0];
    d[0] = i;
    for (size_t j = 1; j <= b.size(); j++) {
      size_t cur = d[j];
      d[j] = std::min({d[j] + 1, d[j - 1] + 1, prev + (a[i - 1] != b[j - 1])});
      prev = cur;
    }
  }
  return d[b.size()];
}

std::string suggest(std::string_view word) {
  std::string_view best;
  size_t best_d = 4;
  for (const auto& o : kOps) {
    size_t d = edit_distance(word, o.name);
    if (d < best_d) best_d = d, best = o.name;
  }
  for (std::string_view h : {"target", "vcpus", "memory", "option"}) {
    size_t d = edit_distance(word, h);
    if (d < best_d) best_d = d, best = h;
  }
  return best.empty() ? "" : "; did you mean `" + std::string(best) + "`?";
}

const char* arg_name(char k) {
  switch (k) {
    case 'g':
      return "GPA";
    case 'l':
      return "LEVEL (4K, 2M, 1G or 512G)";
    case 'v':
      return "vCPU index";
    case 'n':
      return "count";
    case 'f':
      return "GFN";
    case 'c':
      return "COUNT";
    case 'x':
      return "VALUE";
    case 'a':
      return "`shared` or `private`";
    case 's':
      return "`pending` or `accepted`";
    case 'm':
      return "`alive`, `dead` or `bugged`";
  }
  return "argument";
}

// Keyword arguments, stored as their index.
int keyword(char kind, std::string_view w) {
  static constexpr std::string_view kA[] = {"shared", "private"}, kS[] = {"pending", "accepted"},
                                    kM[] = {"alive", "dead", "bugged"};
  const std::string_view* words = kind == 'a' ? kA : kind == 's' ? kS : kM;
  const int n = kind == 'm' ? 3 : 2;
  for (int i = 0; i < n; i++)
    if (words[i] == w) return i;
  return -1;
}

class Parser {
 public:
  explicit Parser(ParseError* err) : err_(err) {}

  std::optional<Trace> run(std::string_view text) {
    int lineno = 0;
    while (!text.empty()) {
      size_t nl = text.find('\n');
      std::string_view line = text.substr(0, nl);
      text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
      lineno++;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (!statement(lineno, line)) return std::nullopt;
    }
    // `schedule setup N` is checked against the whole trace.
    if (setup_line_ && t_.schedule.kind == sched::Schedule::kNone) {
      error(setup_line_, 1,
            "`schedule setup N` needs a schedule to go with: `schedule random SEED`, `schedule "
            "pct SEED [DEPTH]` or switch rules (without one every line runs in order anyway)");
      return std::nullopt;
    }
    if (t_.setup > t_.stmts.size()) {
      error(setup_line_, setup_column_,
            "`schedule setup " + std::to_string(t_.setup) + "`: the trace has only " +
                std::to_string(t_.stmts.size()) +
                (t_.stmts.size() == 1 ? " operation" : " operations"));
      return std::nullopt;
    }
    return std::move(t_);
  }

 private:
  bool error(int line, int column, std::string msg) {
    *err_ = {line, column, std::move(msg)};
    return false;
  }

  bool statement(int ln, std::string_view line) {
    std::vector<Token> tok = tokenize(line);
    if (tok.empty()) return true;
    const int eol = static_cast<int>(line.size()) + 1;
    std::string_view w = tok[0].text;
    if (w == "target" || w == "vcpus" || w == "memory" || w == "option") {
      if (!t_.stmts.empty())
        return error(
            ln, tok[0].column,
            "`" + std::string(w) + "` is a header line: it must come before the first operation");
      if (tok.size() < 2) return error(ln, eol, "`" + std::string(w) + "` needs a value");
      if (tok.size() > 2)
        return error(ln, tok[2].column, "unexpected `" + std::string(tok[2].text) + "`");
      return header(ln, w, tok[1]);
    }
    if (w == "schedule") return schedule(ln, tok, eol);
    Stmt s;
    s.line = ln;
    s.column = tok[0].column;
    size_t i = 0;
    if (w[0] == '@') {
      if (!actor(ln, tok[0], &s.actor)) return false;
      if (++i == tok.size()) return error(ln, eol, "an actor prefix needs an operation after it");
    }
    std::string word(tok[i].text);
    if (word == "expect") {
      if (i + 1 == tok.size() || tok[i + 1].text == "->")
        return error(ln, eol, "`expect` needs `mapped`, `unmapped` or `vm`");
      word += " " + std::string(tok[++i].text);
    }
    auto op = find_op(word);
    if (!op) return error(ln, tok[i].column, "unknown operation `" + word + "`" + suggest(word));
    s.op = *op;
    const OpInfo& info = op_info(*op);
    if (info.target == 'M' && t_.target != Target::kModule)
      return error(ln, tok[i].column,
                   "`" + std::string(info.name) +
                       "` is a module operation: put `target module` before the first operation");
    if (info.target == 'K' && t_.target != Target::kKvm)
      return error(
          ln, tok[i].column,
          "`" + std::string(info.name) + "` is a KVM operation; this trace is `target module`");
    i++;
    for (char k : info.args) {
      if (i == tok.size() || tok[i].text == "->") {
        if (k == 'n') {
          s.args.push_back(0);
          continue;
        }
        return error(ln, i == tok.size() ? eol : tok[i].column,
                     std::string("missing ") + arg_name(k));
      }
      uint64_t v;
      if (k == 'l') {
        int l = parse_level(tok[i].text);
        if (l < 0 || (info.target == 'K' && l > 2))
          return error(ln, tok[i].column,
                       "bad level `" + std::string(tok[i].text) + "`: expected 4K, 2M, 1G" +
                           (info.target == 'K' ? "" : " or 512G"));
        v = static_cast<uint64_t>(l);
      } else if (k == 'a' || k == 's' || k == 'm') {
        int w = keyword(k, tok[i].text);
        if (w < 0)
          return error(
              ln, tok[i].column,
              "expected " + std::string(arg_name(k)) + ", got `" + std::string(tok[i].text) + "`");
        v = static_cast<uint64_t>(w);
      } else if (!parse_number(tok[i].text, &v)) {
        return error(ln, tok[i].column,
                     "bad " + std::string(arg_name(k)) + " `" + std::string(tok[i].text) +
                         "`: expected a decimal or 0x hex number");
      } else if (k == 'v' && v >= static_cast<uint64_t>(t_.vcpus)) {
        return error(ln, tok[i].column,
                     "vCPU " + std::to_string(v) + " out of range: the trace has " +
                         std::to_string(t_.vcpus) + " vCPUs (`vcpus N`)");
      } else if (k == 'f' && v >= t_.memory) {
        return error(ln, tok[i].column,
                     "GFN " + std::string(tok[i].text) + " is outside guest memory (`memory " +
                         std::to_string(t_.memory) + "`)");
      } else if (k == 'c' && (v == 0 || v > t_.memory - s.args.back())) {
        return error(ln, tok[i].column,
                     "COUNT " + std::string(tok[i].text) +
                         ": the range must be non-empty and end inside guest memory");
      }
      s.args.push_back(v);
      i++;
    }
    if (i < tok.size() && tok[i].text != "->")
      return error(ln, tok[i].column, "unexpected argument `" + std::string(tok[i].text) + "`");
    const bool guest_op = s.op == Op::ACCEPT || s.op == Op::GUEST_ACCEPT ||
                          s.op == Op::GUEST_WRITE || s.op == Op::GUEST_READ;
    if (!s.actor.empty() && guest_op && s.actor != "vcpu" + std::to_string(s.args[0]))
      return error(ln, s.column,
                   "a guest operation on vCPU " + std::to_string(s.args[0]) + " belongs to @vcpu" +
                       std::to_string(s.args[0]));
    if (i < tok.size()) {
      if (i + 1 == tok.size()) return error(ln, eol, "`->` needs a result");
      std::string result;
      for (size_t j = i + 1; j < tok.size(); j++) result += tok[j].text;
      if (!expect(ln, tok[i + 1].column, result, &s.expect)) return false;
    }
    t_.stmts.push_back(std::move(s));
    return true;
  }

  // schedule random SEED | schedule pct SEED [DEPTH] | schedule WHO:POINT[:N] -> ACTOR |
  // schedule setup N
  bool schedule(int ln, const std::vector<Token>& tok, int eol) {
    sched::Schedule& sc = t_.schedule;
    if (t_.target != Target::kKvm)
      return error(ln, tok[0].column,
                   "`schedule` applies to KVM traces; module traces run sequentially");
    if (tok.size() < 2)
      return error(
          ln, eol,
          "`schedule` needs `random SEED`, `pct SEED [DEPTH]`, `WHO:POINT[:N] -> ACTOR` or "
          "`setup N`");
    std::string_view kind = tok[1].text;
    if (kind == "setup") {
      uint64_t n;
      if (setup_line_) return error(ln, tok[0].column, "only one `schedule setup` line");
      if (tok.size() < 3 || !parse_number(tok[2].text, &n) || n > 1000000)
        return error(ln, tok.size() < 3 ? eol : tok[2].column,
                     "expected the number of leading operations that run before the actors start");
      if (tok.size() > 3)
        return error(ln, tok[3].column, "unexpected `" + std::string(tok[3].text) + "`");
      t_.setup = n;
      setup_line_ = ln;
      setup_column_ = tok[2].column;
      return true;
    }
    if (kind == "random" || kind == "pct") {
      if (sc.kind != sched::Schedule::kNone)
        return error(ln, tok[0].column,
                     "only one `schedule random|pct` line, and not together with switch rules");
      uint64_t seed, depth = 3;
      if (tok.size() < 3 || !parse_number(tok[2].text, &seed))
        return error(ln, tok.size() < 3 ? eol : tok[2].column, "expected a seed number");
      if (kind == "pct" && tok.size() > 3 &&
          (!parse_number(tok[3].text, &depth) || depth < 1 || depth > 64))
        return error(ln, tok[3].column, "PCT depth must be 1..64");
      if (tok.size() > (kind == "pct" ? 4u : 3u))
        return error(ln, tok[kind == "pct" ? 4 : 3].column,
                     "unexpected `" + std::string(tok.back().text) + "`");
      sc.kind = kind == "random" ? sched::Schedule::kRandom : sched::Schedule::kPct;
      sc.seed = seed;
      sc.depth = static_cast<uint32_t>(depth);
      return true;
    }
    if (sc.kind != sched::Schedule::kNone && sc.kind != sched::Schedule::kRules)
      return error(ln, tok[0].column, "switch rules cannot be combined with `schedule random|pct`");
    std::string_view rule = tok[1].text;
    const size_t colon = rule.find(':');
    if (colon == std::string_view::npos)
      return error(ln, tok[1].column,
                   "expected `WHO:POINT[:N] -> ACTOR` (e.g. vcpu0:accept-entry-locked -> host0)");
    sched::SwitchRule r;
    r.who = sched::parse_actor(std::string(rule.substr(0, colon)));
    if (r.who < 0 || (sched::is_vcpu_actor(r.who) && r.who >= t_.vcpus))
      return error(ln, tok[1].column, "unknown actor `" + std::string(rule.substr(0, colon)) + "`");
    std::string_view point = rule.substr(colon + 1);
    const size_t hash = point.find(':');
    if (hash != std::string_view::npos) {
      uint64_t n;
      if (!parse_number(point.substr(hash + 1), &n) || n == 0 || n > 1000000)
        return error(ln, tok[1].column + static_cast<int>(colon + hash) + 2,
                     "expected an occurrence number 1.. after the second `:`");
      r.nth = static_cast<uint32_t>(n);
      point = point.substr(0, hash);
    }
    if (!sched::is_yield_point(point))
      return error(ln, tok[1].column + static_cast<int>(colon) + 1,
                   "unknown yield point `" + std::string(point) + "`; the points are:\n" +
                       sched::yield_points_help());
    r.where = std::string(point);
    if (tok.size() < 4 || tok[2].text != "->")
      return error(ln, tok.size() < 3 ? eol : tok[2].column, "expected `-> ACTOR`");
    r.to = sched::parse_actor(std::string(tok[3].text));
    if (r.to < 0 || (sched::is_vcpu_actor(r.to) && r.to >= t_.vcpus))
      return error(ln, tok[3].column, "unknown actor `" + std::string(tok[3].text) + "`");
    if (tok.size() > 4)
      return error(ln, tok[4].column, "unexpected `" + std::string(tok[4].text) + "`");
    sc.kind = sched::Schedule::kRules;
    sc.rules.push_back(r);
    return true;
  }

  bool header(int ln, std::string_view w, Token v) {
    uint64_t n;
    if (w == "target") {
      if (v.text == "kvm")
        t_.target = Target::kKvm;
      else if (v.text == "module")
        t_.target = Target::kModule;
      else
        return error(ln, v.column,
                     "unknown target `" + std::string(v.text) + "`: expected `kvm` or `module`");
      return true;
    }
    if (w == "vcpus") {
      if (!parse_number(v.text, &n) || n < 1 || n > 8)
        return error(ln, v.column, "vcpus must be 1..8");
      t_.vcpus = static_cast<int>(n);
      return true;
    }
    if (w == "memory") {
      if (!parse_number(v.text, &n) || n == 0 || n % 512 || n > (1u << 20))
        return error(ln, v.column, "memory must be a multiple of 512 GFNs, at most 1048576");
      t_.memory = n;
      return true;
    }
    size_t eq = v.text.find('=');
    if (eq == std::string_view::npos) return error(ln, v.column, "expected `option NAME=VALUE`");
    std::string_view name = v.text.substr(0, eq), val = v.text.substr(eq + 1);
    std::string why = check_option(t_.target, name, val);
    if (!why.empty())
      return error(ln, v.column + (why.rfind("bad", 0) == 0 ? static_cast<int>(eq) + 1 : 0), why);
    t_.options.emplace_back(std::string(name), std::string(val));
    return true;
  }

  bool actor(int ln, Token tok, std::string* out) {
    std::string_view a = tok.text.substr(1);
    uint64_t n;
    if (a.substr(0, 4) == "vcpu" && parse_number(a.substr(4), &n)) {
      if (n >= static_cast<uint64_t>(t_.vcpus))
        return error(
            ln, tok.column,
            "actor @" + std::string(a) + ": the trace has " + std::to_string(t_.vcpus) + " vCPUs");
    } else if (!(a.substr(0, 4) == "host" && parse_number(a.substr(4), &n) && n <= 3)) {
      return error(
          ln, tok.column,
          "unknown actor `" + std::string(tok.text) + "`: expected @vcpuN or @host0..@host3");
    }
    *out = std::string(a);
    return true;
  }

  bool expect(int ln, int col, std::string_view r, Expect* e) {
    uint64_t v;
    if (t_.target == Target::kKvm) {
      if (parse_number(r, &v)) {
        *e = {Expect::kValue, v, ""};
        return true;
      }
      for (std::string_view w : kKvmResults)
        if (r == w) return *e = {Expect::kPseudo, 0, std::string(r)}, true;
      for (int en : {kvm::kEINTR, kvm::kEIO, kvm::kEAGAIN, kvm::kENOMEM, kvm::kEFAULT, kvm::kEBUSY,
                     kvm::kEINVAL, kvm::kEOPNOTSUPP})
        if (r == kvm::errno_name(en)) return *e = {Expect::kPseudo, 0, std::string(r)}, true;
      return error(ln, col,
                   "unknown result `" + std::string(r) +
                       "`: expected ok, an errno name (EINVAL, EBUSY, EIO, EFAULT, ENOMEM, "
                       "EOPNOTSUPP, EINTR), "
                       "ve, killed, or a value");
    }
    if (r.size() > 2 && r[0] == '0' && (r[1] == 'x' || r[1] == 'X')) {
      if (!parse_number(r, &v)) return error(ln, col, "bad status value `" + std::string(r) + "`");
      *e = {Expect::kStatusExact, v, ""};
      return true;
    }
    for (std::string_view p : kPseudoResults)
      if (r == p) {
        *e = {Expect::kPseudo, 0, std::string(p)};
        return true;
      }
    size_t bar = r.find('|');
    auto cls = tdx::parse_status_class(r.substr(0, bar));
    if (!cls)
      return error(
          ln, col,
          "unknown result `" + std::string(r.substr(0, bar)) +
              "`: expected a TDX status name (TDX_ prefix optional), a 0x value, or EPT_VIOLATION, "
              "INTERRUPTED, NOT_IN_TD, NOMEM");
    if (bar == std::string_view::npos) {
      *e = {Expect::kStatusClass, tdx::raw(*cls), ""};
      return true;
    }
    auto op = tdx::parse_operand(r.substr(bar + 1));
    if (!op)
      return error(ln, col + static_cast<int>(bar) + 1,
                   "unknown operand `" + std::string(r.substr(bar + 1)) +
                       "`: expected RCX, RDX, R8, SEPT_TREE, TD_EPOCH, OP_STATE, ... or 0x id");
    *e = {Expect::kStatusExact, tdx::raw(*cls, *op), ""};
    return true;
  }

  ParseError* err_;
  Trace t_;
  int setup_line_ = 0, setup_column_ = 0;  // where `schedule setup N` was
};

}  // namespace

const OpInfo& op_info(Op op) {
  return kOps[static_cast<size_t>(op)];
}

int stmt_actor(const Stmt& s) {
  if (!s.actor.empty()) return sched::parse_actor(s.actor);
  switch (s.op) {
    case Op::ENTER:
    case Op::EXIT:
    case Op::GUEST_ACCEPT:
    case Op::GUEST_WRITE:
    case Op::GUEST_READ:
    case Op::VP_ENTER:
    case Op::TD_EXIT:
    case Op::ACCEPT:
      return static_cast<int>(s.args[0]);  // the vCPU's own thread
    default:
      return sched::kHostBase;  // host0
  }
}

std::optional<Op> find_op(std::string_view name) {
  for (size_t i = 0; i < static_cast<size_t>(Op::kCount); i++)
    if (kOps[i].name == name) return static_cast<Op>(i);
  return std::nullopt;
}

std::optional<Trace> parse(std::string_view text, ParseError* err) {
  return Parser(err).run(text);
}

bool option_number(std::string_view val, uint64_t* n) {
  if (val == "on" || val == "true" || val == "yes") return *n = 1, true;
  if (val == "off" || val == "false" || val == "no") return *n = 0, true;
  return parse_number(val, n);
}

std::string parse_injection(std::string_view value, uint32_t* leaf, uint64_t* status,
                            uint32_t* nth) {
  const size_t c1 = value.find(':');
  if (c1 == std::string_view::npos) return "expected `inject=LEAF:STATUS[:N]`";
  tdx::Leaf l;
  if (!tdx::find_leaf(value.substr(0, c1), &l))
    return "unknown leaf `" + std::string(value.substr(0, c1)) + "` (e.g. TDH.MEM.PAGE.DEMOTE)";
  std::string_view rest = value.substr(c1 + 1);
  const size_t c2 = rest.find(':');
  std::string_view st = rest.substr(0, c2);
  uint64_t n = 1;
  if (c2 != std::string_view::npos &&
      (!parse_number(rest.substr(c2 + 1), &n) || n == 0 || n > 1000000))
    return "bad call number `" + std::string(rest.substr(c2 + 1)) + "`";
  uint64_t v;
  if (!parse_number(st, &v)) {
    const size_t bar = st.find('|');
    auto cls = tdx::parse_status_class(st.substr(0, bar));
    if (!cls) return "unknown status `" + std::string(st) + "`";
    v = tdx::raw(*cls);
    if (bar != std::string_view::npos) {
      auto op = tdx::parse_operand(st.substr(bar + 1));
      if (!op) return "unknown operand `" + std::string(st.substr(bar + 1)) + "`";
      v += *op;
    }
  }
  *leaf = static_cast<uint32_t>(l);
  *status = v;
  *nth = static_cast<uint32_t>(n);
  return "";
}

std::string check_option(Target target, std::string_view name, std::string_view val) {
  if (name == "inject") {
    uint32_t l, n;
    uint64_t st;
    std::string why = parse_injection(val, &l, &st, &n);
    return why.empty() ? "" : "bad injection: " + why;
  }
  if (name == "bug") {
    if (target != Target::kKvm) return "`bug` options belong to KVM traces";
    kvm::BugSet set;
    std::string bad;
    if (!kvm::parse_bugs(val, &set, &bad))
      return "bad bug-zoo entry `" + bad + "`; `tdxfuzz options` lists them";
    return "";
  }
  uint64_t n;
  tdx::Options mp;
  kvm::Options kp;
  const bool known = mp.set(name, 0) || (target == Target::kKvm && kp.set(name, 0));
  if (!known)
    return "unknown option `" + std::string(name) + "`; options:\n" + tdx::Options::help() +
           (target == Target::kKvm ? kvm::Options::help() : std::string());
  if (!option_number(val, &n))
    return "bad option value `" + std::string(val) + "`: a number, on or off";
  return "";
}

}  // namespace trace
