// Coverage marks: PROBE(name) counts how often a named branch was taken (probes.def).
#pragma once

#include <atomic>
#include <cstdint>
#include <string_view>

namespace sched {

enum class Probe : uint16_t {
#define PROBE(name, help) name,
#include "sim/sched/probes.def"
#undef PROBE
  kCount
};

std::atomic<uint64_t>* probe_counters();
inline void hit(Probe p) {
  probe_counters()[static_cast<size_t>(p)].fetch_add(1, std::memory_order_relaxed);
}
inline uint64_t probe_count(Probe p) {
  return probe_counters()[static_cast<size_t>(p)].load(std::memory_order_relaxed);
}
void reset_probes();
std::string_view probe_name(Probe p);

}  // namespace sched
