// How many freed page-table objects (KVM's KvmMmuPage, the module's SeptPage) a thread keeps
// for reuse instead of a 4K allocation per table. None under AddressSanitizer: a cache would
// hide a use-after-free of a freed table from it, and sanitizer builds (tests, fuzzing) want
// that report more than the speed.
#pragma once

#include <cstddef>

namespace host {

#if defined(__SANITIZE_ADDRESS__)
inline constexpr size_t kRecycledTables = 0;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr size_t kRecycledTables = 0;
#else
inline constexpr size_t kRecycledTables = 64;
#endif
#else
inline constexpr size_t kRecycledTables = 64;
#endif

}  // namespace host
