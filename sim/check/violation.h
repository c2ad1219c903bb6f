// A property violation: the property's stable name, the site (where it was detected), and a
// human-readable detail. The crash signature used for deduplication is "property + site".
#pragma once

#include <string>
#include <vector>

namespace check {

struct Violation {
  std::string property;  // `module`, `kvm-bug-on`, ... (DESIGN.md, Properties)
  std::string site;
  std::string detail;
  std::string signature() const { return property + " " + site; }
};

using Violations = std::vector<Violation>;

}  // namespace check
