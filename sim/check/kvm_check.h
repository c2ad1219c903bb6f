// The KVM-level properties (DESIGN.md, Properties): `kvm-bug-on`, `mirror-sept`, `page-owner`,
// `stale-tlb`, `lock-discipline`, `liveness`, plus `module` underneath. `guest-data` is checked
// by the executor at each read against check::GuestDataModel.
#pragma once

#include "sim/check/violation.h"
#include "sim/guest/guest.h"
#include "sim/kvm/kvm.h"

namespace check {

struct KvmCheckCursor {  // what was already reported
  size_t bug_ons = 0, kvm = 0, guest = 0, ledger = 0;
};

// Everything new since the cursor, then (quiescent) the full-state checks.
void check_kvm(kvm::Kvm& k, const guest::Guest& g, bool quiescent, KvmCheckCursor* cur,
               Violations* out);

// `mirror-sept`: every present mirror SPTE has its S-EPT twin and nothing else is in the S-EPT.
void check_mirror_sept(kvm::Kvm& k, Violations* out);
// The same check entry by entry (a root-to-leaf S-EPT walk per mirror SPTE, a mirror lookup
// per S-EPT entry): the fallback when a mirror table is off its index path, and the oracle
// the tests compare check_mirror_sept with.
void check_mirror_sept_reference(kvm::Kvm& k, Violations* out);

}  // namespace check
