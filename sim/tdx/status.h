// TDX status codes (RAX of a SEAMCALL or TDCALL) and their text form.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tdx {

enum class Status : uint64_t {
#define STATUS(name, value) name = value,
#include "sim/tdx/status.def"
#undef STATUS
};

enum class Operand : uint32_t {
#define OPERAND(name, id) name = id,
#include "sim/tdx/operand.def"
#undef OPERAND
};

// Bits 63:32 carry the class and code; bits 31:0 the operand id or detail.
inline constexpr uint64_t kStatusMask = 0xFFFFFFFF00000000ull;
inline constexpr uint64_t kErrorBit = 1ull << 63;

inline constexpr uint64_t raw(Status s) {
  return static_cast<uint64_t>(s);
}
// The module adds the operand id into the low bits (api_error_with_operand_id).
inline constexpr uint64_t raw(Status s, Operand op) {
  return static_cast<uint64_t>(s) + static_cast<uint32_t>(op);
}
inline constexpr uint64_t raw(Status s, uint32_t detail) {
  return static_cast<uint64_t>(s) + detail;
}
inline constexpr Status status_class(uint64_t r) {
  return static_cast<Status>(r & kStatusMask);
}
inline constexpr bool is_error(uint64_t r) {
  return (r & kErrorBit) != 0;
}
inline constexpr bool is_busy(uint64_t r) {
  return status_class(r) == Status::OPERAND_BUSY;
}

// "TDX_OPERAND_BUSY|SEPT_TREE", "TDX_PAGE_ALREADY_ACCEPTED|0x1", "0x1234..." if unknown.
std::string status_name(uint64_t r);
// Name of the class alone ("TDX_OPERAND_BUSY"), nullopt when the class is not in the table.
std::optional<std::string_view> status_class_name(uint64_t r);
// Parses a class name with or without the TDX_ prefix.
std::optional<Status> parse_status_class(std::string_view name);
// Parses an operand name (RCX, SEPT_TREE, ...) or a hex id.
std::optional<uint32_t> parse_operand(std::string_view name);
std::optional<std::string_view> operand_name(uint32_t id);

}  // namespace tdx
