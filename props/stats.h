// Coverage counters for the RapidCheck properties: with PROPS_STATS=1 set, each property counts
// what it exercised (operation names, command results) and prints the table at exit.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

namespace props {

struct Stats {
  std::map<std::string, uint64_t> n;
  bool on = std::getenv("PROPS_STATS") != nullptr;
  ~Stats() {
    for (auto& [k, v] : n)
      std::printf("%10llu  %s\n", static_cast<unsigned long long>(v), k.c_str());
  }
};

// One table for the whole props binary; keys name what was counted.
inline Stats& stats() {
  static Stats s;
  return s;
}

}  // namespace props
