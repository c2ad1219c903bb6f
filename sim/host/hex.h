// "0x1f" formatting for reports and logs, used by every layer.
#pragma once

#include <cstdint>
#include <string>

namespace host {

// Lower-case hex without leading zeros, as printf's "0x%llx". Hand-rolled: every guest read's
// result goes through it, and snprintf costs more than the read.
inline std::string hex(uint64_t v) {
  char b[18];
  char* p = b + sizeof b;
  do {
    *--p = "0123456789abcdef"[v & 0xf];
    v >>= 4;
  } while (v);
  *--p = 'x';
  *--p = '0';
  return std::string(p, b + sizeof b);
}

}  // namespace host
