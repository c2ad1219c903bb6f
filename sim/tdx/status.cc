#include "sim/tdx/status.h"
#include "sim/host/hex.h"

#include <cstdio>
#include <cstdlib>

namespace tdx {
namespace {

struct StatusRow {
  std::string_view name;
  uint64_t value;
};
constexpr StatusRow kStatuses[] = {
#define STATUS(name, value) {#name, value},
#include "sim/tdx/status.def"
#undef STATUS
};

struct OperandRow {
  std::string_view name;
  uint32_t id;
};
constexpr OperandRow kOperands[] = {
#define OPERAND(name, id) {#name, id},
#include "sim/tdx/operand.def"
#undef OPERAND
};

std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

std::optional<std::string_view> status_class_name(uint64_t r) {
  for (const auto& s : kStatuses)
    if (s.value == (r & kStatusMask)) return s.name;
  return std::nullopt;
}

std::optional<std::string_view> operand_name(uint32_t id) {
  for (const auto& o : kOperands)
    if (o.id == id) return o.name;
  return std::nullopt;
}

std::string status_name(uint64_t r) {
  auto cls = status_class_name(r);
  if (!cls) return hex(r);
  std::string out = "TDX_" + std::string(*cls);
  uint32_t low = static_cast<uint32_t>(r);
  if (low == 0) return out;
  // Operand ids read better by name; ACCEPT's level details and others stay hex.
  auto op = operand_name(low);
  bool level_detail = status_class(r) == Status::PAGE_ALREADY_ACCEPTED ||
                      status_class(r) == Status::PAGE_SIZE_MISMATCH;
  out += "|";
  out += (op && !level_detail) ? std::string(*op) : hex(low);
  return out;
}

std::optional<Status> parse_status_class(std::string_view name) {
  if (name.substr(0, 4) == "TDX_") name.remove_prefix(4);
  for (const auto& s : kStatuses)
    if (s.name == name) return static_cast<Status>(s.value);
  return std::nullopt;
}

std::optional<uint32_t> parse_operand(std::string_view name) {
  for (const auto& o : kOperands)
    if (o.name == name) return o.id;
  if (name.size() > 2 && name[0] == '0' && (name[1] == 'x' || name[1] == 'X')) {
    std::string s(name.substr(2));
    char* end = nullptr;
    unsigned long long v = std::strtoull(s.c_str(), &end, 16);
    if (end && *end == '\0' && !s.empty() && v <= 0xFFFFFFFFull) return static_cast<uint32_t>(v);
  }
  return std::nullopt;
}

}  // namespace tdx
