// Names of the module's vocabulary, and the architectural output encodings (§2.13).
#include <sstream>

#include "sim/tdx/module.h"

namespace tdx {

const char* level_name(int level) {
  static const char* const kNames[] = {"4K", "2M", "1G", "512G", "256T"};
  return level >= 0 && level <= 4 ? kNames[level] : "?";
}

const char* state_name(SeptState s) {
  switch (s) {
    case SeptState::FREE:
      return "FREE";
    case SeptState::NL_MAPPED:
      return "NL_MAPPED";
    case SeptState::NL_BLOCKED:
      return "NL_BLOCKED";
    case SeptState::MAPPED:
      return "MAPPED";
    case SeptState::BLOCKED:
      return "BLOCKED";
    case SeptState::PENDING:
      return "PENDING";
    case SeptState::PENDING_BLOCKED:
      return "PENDING_BLOCKED";
    case SeptState::REMOVED:
      return "REMOVED";
  }
  return "?";
}

uint8_t public_state(SeptState s) {
  switch (s) {
    case SeptState::FREE:
      return 0;
    case SeptState::BLOCKED:
      return 1;
    case SeptState::PENDING:
      return 2;
    case SeptState::PENDING_BLOCKED:
      return 3;
    case SeptState::MAPPED:
      return 4;
    case SeptState::REMOVED:
      return 5;
    case SeptState::NL_MAPPED:
      return 0x84;
    case SeptState::NL_BLOCKED:
      return 0x81;
  }
  return 0xff;
}

const char* page_type_name(PageType t) {
  switch (t) {
    case PageType::NDA:
      return "NDA";
    case PageType::RSVD:
      return "RSVD";
    case PageType::REG:
      return "REG";
    case PageType::TDR:
      return "TDR";
    case PageType::TDCX:
      return "TDCX";
    case PageType::TDVPR:
      return "TDVPR";
    case PageType::EPT:
      return "EPT";
  }
  return "?";
}

const char* op_state_name(OpState s) {
  switch (s) {
    case OpState::UNINITIALIZED:
      return "UNINITIALIZED";
    case OpState::INITIALIZED:
      return "INITIALIZED";
    case OpState::RUNNABLE:
      return "RUNNABLE";
  }
  return "?";
}

const char* leaf_name(Leaf l) {
  switch (l) {
#define LEAF(e, name, num, ver) \
  case Leaf::e:                 \
    return name;
#include "sim/tdx/leaf.def"
#undef LEAF
  }
  return "TDH.?";
}

bool find_leaf(std::string_view name, Leaf* leaf) {
#define LEAF(e, n, num, ver) \
  if (name == n) return *leaf = Leaf::e, true;
#include "sim/tdx/leaf.def"
#undef LEAF
  return false;
}

int leaf_max_version(Leaf l) {
  switch (l) {
#define LEAF(e, name, num, ver) \
  case Leaf::e:                 \
    return ver;
#include "sim/tdx/leaf.def"
#undef LEAF
  }
  return -1;
}

bool Options::set(std::string_view name, uint64_t value) {
#define OPTION(n, def, help) \
  if (name == #n) {          \
    n = value;               \
    return true;             \
  }
#include "sim/tdx/options.def"
#undef OPTION
  return false;
}

std::string Options::help() {
  std::ostringstream o;
#define OPTION(n, def, help) o << "  " << #n << " (default " << def << ")\n      " << help << "\n";
#include "sim/tdx/options.def"
#undef OPTION
  return o.str();
}

uint64_t arch_entry(SeptEntry e) {
  const SeptState s = e.state();
  if (s == SeptState::FREE) return kSve;
  if (is_non_leaf(s)) return s == SeptState::NL_MAPPED ? 0x7 : 0x0;
  // Leaf: MT=WB(6) in bits 5:3, IPAT bit 6, PS bit 7; RWX only when MAPPED.
  uint64_t v = kSve | e.hpa_bits() | (6u << 3) | (1u << 6) | (1u << 7);
  if (s == SeptState::MAPPED) v |= 0x7;
  return v;
}

uint64_t level_state(SeptEntry e, int level) {
  return static_cast<uint64_t>(level & 7) | (static_cast<uint64_t>(public_state(e.state())) << 8);
}

}  // namespace tdx
