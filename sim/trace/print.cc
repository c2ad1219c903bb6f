// The canonical printer: parse(print(t)) == t.
#include <cstdio>
#include <sstream>
#include "sim/host/hex.h"

#include "sim/tdx/status.h"
#include "sim/tdx/types.h"
#include "sim/trace/trace.h"

namespace trace {
namespace {
using host::hex;
}  // namespace

std::string print_expect(const Expect& e) {
  switch (e.kind) {
    case Expect::kNone:
      return "";
    case Expect::kPseudo:
      return e.pseudo;
    case Expect::kValue:
      return hex(e.value);
    case Expect::kStatusClass:
      return std::string(tdx::status_name(e.value & tdx::kStatusMask));
    case Expect::kStatusExact: {
      // The decoded name when it reads back to the same 64 bits, else the raw number.
      const uint32_t low = static_cast<uint32_t>(e.value);
      if (!tdx::status_class_name(e.value)) return hex(e.value);
      std::string name = tdx::status_name(e.value);
      return low ? name : name + "|0x0";
    }
  }
  return "";
}

std::string print_stmt(const Stmt& s) {
  std::string out;
  if (!s.actor.empty()) out += "@" + s.actor + " ";
  const OpInfo& info = op_info(s.op);
  out += info.name;
  for (size_t i = 0; i < info.args.size() && i < s.args.size(); i++) {
    out += ' ';
    switch (info.args[i]) {
      case 'g':
        out += hex(s.args[i]);
        break;
      case 'l':
        out += tdx::level_name(static_cast<int>(s.args[i]));
        break;
      case 'f':
      case 'x':
        out += hex(s.args[i]);
        break;
      case 'a':
        out += s.args[i] ? "private" : "shared";
        break;
      case 's':
        out += s.args[i] ? "accepted" : "pending";
        break;
      case 'm':
        out += s.args[i] == 0 ? "alive" : s.args[i] == 1 ? "dead" : "bugged";
        break;
      default:
        out += std::to_string(s.args[i]);
    }
  }
  if (s.expect.kind != Expect::kNone) out += " -> " + print_expect(s.expect);
  return out;
}

std::string print_schedule(const sched::Schedule& s, size_t setup) {
  std::string out;
  switch (s.kind) {
    case sched::Schedule::kNone:
      break;
    case sched::Schedule::kRandom:
      out = "schedule random " + std::to_string(s.seed) + "\n";
      break;
    case sched::Schedule::kPct:
      out = "schedule pct " + std::to_string(s.seed) + " " + std::to_string(s.depth) + "\n";
      break;
    case sched::Schedule::kRules:
      for (const auto& r : s.rules)
        out += "schedule " + sched::actor_name(r.who) + ":" + r.where +
               (r.nth == 1 ? "" : ":" + std::to_string(r.nth)) + " -> " + sched::actor_name(r.to) +
               "\n";
      break;
  }
  if (setup > 0) out += "schedule setup " + std::to_string(setup) + "\n";
  return out;
}

std::string print(const Trace& t) {
  std::ostringstream o;
  o << "target " << (t.target == Target::kModule ? "module" : "kvm") << "\n";
  o << "vcpus " << t.vcpus << "\n";
  o << "memory " << t.memory << "\n";
  for (auto& [name, value] : t.options) o << "option " << name << "=" << value << "\n";
  o << print_schedule(t.schedule, t.setup);
  for (auto& s : t.stmts) o << print_stmt(s) << "\n";
  return o.str();
}

std::string ops_help() {
  std::ostringstream o;
  for (size_t i = 0; i < static_cast<size_t>(Op::kCount); i++) {
    const OpInfo& info = op_info(static_cast<Op>(i));
    o << "  " << info.name;
    for (char k : info.args)
      o << (k == 'g'   ? " GPA"
            : k == 'l' ? " LEVEL"
            : k == 'v' ? " V"
            : k == 'n' ? " [N]"
            : k == 'f' ? " GFN"
            : k == 'c' ? " COUNT"
            : k == 'x' ? " VALUE"
            : k == 'a' ? " shared|private"
            : k == 's' ? " pending|accepted"
            : k == 'm' ? " alive|dead|bugged"
                       : " ?");
    o << (info.target == 'M'   ? "   (module)"
          : info.target == 'K' ? "   (kvm)"
                               : "")
      << "\n      " << info.help << "\n";
  }
  return o.str();
}

}  // namespace trace
