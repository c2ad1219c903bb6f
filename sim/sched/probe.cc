#include "sim/sched/probe.h"

namespace sched {

std::atomic<uint64_t>* probe_counters() {
  static std::atomic<uint64_t> counters[static_cast<size_t>(Probe::kCount)];
  return counters;
}

void reset_probes() {
  for (size_t i = 0; i < static_cast<size_t>(Probe::kCount); i++) probe_counters()[i].store(0);
}

std::string_view probe_name(Probe p) {
  static constexpr std::string_view kNames[] = {
#define PROBE(name, help) #name,
#include "sim/sched/probes.def"
#undef PROBE
  };
  return kNames[static_cast<size_t>(p)];
}

}  // namespace sched
