// A trace: the header and the statements of a text trace (TRACE_FORMAT.md), parsed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sim/sched/scheduler.h"

namespace trace {

enum class Op : uint8_t {
#define OP(e, name, target, args, help) e,
#include "sim/trace/ops.def"
#undef OP
  kCount
};

enum class Target : uint8_t { kKvm, kModule };

struct OpInfo {
  std::string_view name;
  char target;  // 'M', 'K', 'B'
  std::string_view args;
  std::string_view help;
};
const OpInfo& op_info(Op op);
std::optional<Op> find_op(std::string_view name);

// What a `-> RESULT` expects.
struct Expect {
  enum Kind : uint8_t {
    kNone,
    kStatusClass,  // a status name without operand: bits 63:32 must match
    kStatusExact,  // name|OPERAND or a raw hex value: all 64 bits must match
    kPseudo,       // a word that is not a TDX status (EPT_VIOLATION, ok, EIO, killed, ...)
    kValue,        // a KVM trace's `read` value
  } kind = kNone;
  uint64_t value = 0;
  std::string pseudo;
  bool operator==(const Expect&) const = default;
};

// Results that are not TDX statuses, in module traces.
inline constexpr std::string_view kPseudoResults[] = {
    "EPT_VIOLATION",  // the call ended in an EPT-violation TD exit
    "INTERRUPTED",    // a 2M ACCEPT stopped for an interrupt and will re-execute
    "NOT_IN_TD",      // a guest operation on a vCPU that is not in guest mode
    "NOMEM",          // the harness had no host page to supply
};

// Results of KVM trace operations besides errno names.
inline constexpr std::string_view kKvmResults[] = {"ok", "ve", "killed"};

struct Stmt {
  Op op = Op::kCount;
  std::vector<uint64_t> args;
  std::string actor;  // "" when the line has no @actor prefix
  Expect expect;
  int line = 0;  // source position, for reports (not compared)
  int column = 0;
  bool operator==(const Stmt& o) const {
    return op == o.op && args == o.args && actor == o.actor && expect == o.expect;
  }
};

struct Trace {
  Target target = Target::kKvm;
  int vcpus = 2;
  uint64_t memory = 4096;
  std::vector<std::pair<std::string, std::string>> options;  // `option NAME=VALUE`, as written
  std::vector<Stmt> stmts;
  sched::Schedule schedule;  // `schedule` lines; kNone: sequential
  // `schedule setup N`: with a schedule, the first N statements run to completion, in order,
  // before the actors start (a VMM builds and finalizes the TD before it starts vCPU threads).
  size_t setup = 0;
  bool operator==(const Trace& o) const {
    return target == o.target && vcpus == o.vcpus && memory == o.memory && options == o.options &&
           stmts == o.stmts && schedule == o.schedule && setup == o.setup;
  }
};

struct ParseError {
  int line = 0, column = 0;
  std::string message;
};

// Parses a whole trace. On error returns nullopt and fills `err` (first error only).
std::optional<Trace> parse(std::string_view text, ParseError* err);

// Checks `option NAME=VALUE` for a target: module options and (KVM traces) KVM options take a
// number or on/off; `bug` takes bug-zoo names separated by commas. Empty string when valid.
std::string check_option(Target target, std::string_view name, std::string_view value);
bool option_number(std::string_view value, uint64_t* out);
// `option inject=LEAF:STATUS[:N]`: the N-th (default first) call of LEAF (its ABI name, e.g.
// TDH.MEM.PAGE.DEMOTE) returns STATUS (a name[|OPERAND] or 0x value) without running: the error
// paths no valid input reaches. Empty string when valid, else why not.
std::string parse_injection(std::string_view value, uint32_t* leaf, uint64_t* status,
                            uint32_t* nth);

// The actor a statement belongs to: its @prefix, else vcpuV for vCPU and guest operations,
// else host0.
int stmt_actor(const Stmt& s);
// The `schedule` lines: the schedule's, then `schedule setup N` when setup > 0.
std::string print_schedule(const sched::Schedule& s, size_t setup);

// Canonical text of a trace; parse(print(t)) == t.
std::string print(const Trace& t);
std::string print_stmt(const Stmt& s);
std::string print_expect(const Expect& e);

// The help text for the vocabulary (used by `tdxfuzz --help` and the docs).
std::string ops_help();

}  // namespace trace
