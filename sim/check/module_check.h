// The `module` property: the TDX module model's internal consistency and its agreement with
// the host page ledger (DESIGN.md, Properties).
#pragma once

#include "sim/check/violation.h"
#include "sim/tdx/module.h"

namespace check {

// Checks every TD of `m`. With `quiescent` (no SEAMCALL or TDCALL in progress) it also
// requires that no lock is held beyond those a vCPU in guest mode keeps (TDR and TDVPR,
// shared). Host-ledger violations recorded since `ledger_seen` are reported too; the count
// seen so far is written back.
void check_module(tdx::Module& m, bool quiescent, size_t* ledger_seen, Violations* out);

}  // namespace check
