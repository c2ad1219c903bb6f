// The reference model of props/sept_model.h. Every rule cites tdx-module.md.
#include "props/sept_model.h"

namespace props {

using tdx::Operand;
using tdx::Status;

namespace {

constexpr uint32_t kRcx = static_cast<uint32_t>(Operand::RCX);

bool any_blocked(St s) {
  return s == St::NL_BLOCKED || s == St::BLOCKED || s == St::PENDING_BLOCKED;
}
bool leaf(St s) {
  return s == St::MAPPED || s == St::BLOCKED || s == St::PENDING || s == St::PENDING_BLOCKED;
}
bool non_leaf(St s) {
  return s == St::NL_MAPPED || s == St::NL_BLOCKED;
}
// §1.3: BLOCK / UNBLOCK transitions.
St blocked_of(St s) {
  switch (s) {
    case St::NL_MAPPED:
      return St::NL_BLOCKED;
    case St::MAPPED:
      return St::BLOCKED;
    case St::PENDING:
      return St::PENDING_BLOCKED;
    default:
      return s;
  }
}
St unblocked_of(St s) {
  switch (s) {
    case St::NL_BLOCKED:
      return St::NL_MAPPED;
    case St::BLOCKED:
      return St::MAPPED;
    case St::PENDING_BLOCKED:
      return St::PENDING;
    default:
      return s;
  }
}

}  // namespace

bool Model::is_leaf(St s) {
  return leaf(s);
}
bool Model::is_blocked(St s) {
  return any_blocked(s);
}

const char* st_name(St s) {
  switch (s) {
    case St::FREE:
      return "FREE";
    case St::NL_MAPPED:
      return "NL_MAPPED";
    case St::NL_BLOCKED:
      return "NL_BLOCKED";
    case St::MAPPED:
      return "MAPPED";
    case St::BLOCKED:
      return "BLOCKED";
    case St::PENDING:
      return "PENDING";
    case St::PENDING_BLOCKED:
      return "PENDING_BLOCKED";
  }
  return "?";
}

std::string Res::str() const {
  switch (kind) {
    case kEptViolation:
      return "EPT_VIOLATION";
    case kNotInTd:
      return "NOT_IN_TD";
    case kStatus:
      break;
  }
  return check_operand ? tdx::status_name(status)
                       : std::string(tdx::status_class_name(status).value_or("?")) + "|*";
}

Ent& Model::at(Tgt t) {
  switch (t.level) {
    case 3:
      return l3;
    case 2:
      return l2;
    case 1:
      return l1[t.idx];
    default:
      return l0[t.idx];
  }
}

int Model::walk(Tgt t) const {
  for (int l = 3; l > t.level; l--) {
    Tgt up{l, l >= 2 ? 0 : t.idx / 512};
    if (at(up).s != St::NL_MAPPED) return l;  // §1.3: stops at a leaf or RWX=0
  }
  return t.level;
}

// §3: tracked(B) := B < E-1 || (B == E-1 && REFCOUNT[B&1] == 0).
bool Model::tracked(uint64_t b) const {
  return b + 1 < epoch || (b + 1 == epoch && refcount[b & 1] == 0);
}

// A new table (SEPT.ADD) starts with 512 FREE entries (§2.1); only the modelled ones matter.
void Model::reset_children(Tgt t) {
  switch (t.level) {
    case 3:
      l2 = {};
      break;
    case 2:
      l1 = {};
      break;
    case 1:
      for (int i = 0; i < 512; i++) l0[t.idx * 512 + i] = {};
      break;
  }
}

bool Model::children_free(Tgt t) const {
  switch (t.level) {
    case 3:
      return l2.s == St::FREE;
    case 2:
      for (auto& e : l1)
        if (e.s != St::FREE) return false;
      return true;
    case 1:
      for (int i = 0; i < 512; i++)
        if (l0[t.idx * 512 + i].s != St::FREE) return false;
      return true;
  }
  return true;
}

// §0 verify_page_info_input (level in the leaf's range, GPA aligned) then the §2.0 step 9 walk.
#define PAGE_INFO_OR_FAIL(t, lo, hi)                         \
  if ((t).level < (lo) || (t).level > (hi) || (t).skew != 0) \
  return Res::st(Status::OPERAND_INVALID, kRcx)
#define WALK_OR_FAIL(t) \
  if (walk(t) != (t).level) return Res::st(Status::EPT_WALK_FAILED, kRcx)

// §2.1: FREE -> NL_MAPPED with a table of FREE entries; NL_MAPPED with ALLOW_EXISTING (RDX
// bit 0) succeeds without using the page; anything else is EPT_ENTRY_STATE_INCORRECT.
Res Model::sept_add(Tgt t, bool allow_existing) {
  PAGE_INFO_OR_FAIL(t, 1, 3);
  WALK_OR_FAIL(t);
  Ent& e = at(t);
  if (e.s == St::NL_MAPPED && allow_existing) return Res::ok();
  if (e.s != St::FREE) return Res::st(Status::EPT_ENTRY_STATE_INCORRECT, kRcx);
  e = {St::NL_MAPPED, 0};
  reset_children(t);
  chldcnt += 1;
  return Res::ok();
}

// §2.2: non-leaf; in RUNNABLE blocked and tracked; the child table all FREE.
Res Model::sept_remove(Tgt t) {
  PAGE_INFO_OR_FAIL(t, 1, 3);
  WALK_OR_FAIL(t);
  Ent& e = at(t);
  if (!non_leaf(e.s)) return Res::st(Status::EPT_ENTRY_STATE_INCORRECT, kRcx);
  if (runnable) {
    if (e.s != St::NL_BLOCKED) return Res::st(Status::GPA_RANGE_NOT_BLOCKED, kRcx);
    if (!tracked(e.bepoch)) return Res::st(Status::TLB_TRACKING_NOT_DONE, kRcx);
  }
  if (!children_free(t)) return Res::st(Status::EPT_PAGE_NOT_FREE, kRcx);
  e = {};
  chldcnt -= 1;
  return Res::ok();
}

// §2.4: FREE -> PENDING (REMOVED is import-only).
Res Model::aug(Tgt t) {
  PAGE_INFO_OR_FAIL(t, 0, 1);
  WALK_OR_FAIL(t);
  Ent& e = at(t);
  if (e.s != St::FREE) return Res::st(Status::EPT_ENTRY_STATE_INCORRECT, kRcx);
  e = {St::PENDING, 0};
  chldcnt += t.level == 1 ? 512 : 1;
  return Res::ok();
}

// §2.5, §8.6: already blocked is the non-error ALREADY_BLOCKED; FREE is a state error.
Res Model::block(Tgt t) {
  PAGE_INFO_OR_FAIL(t, 0, 3);
  WALK_OR_FAIL(t);
  Ent& e = at(t);
  if (any_blocked(e.s)) return Res::st(Status::GPA_RANGE_ALREADY_BLOCKED, kRcx);
  if (e.s == St::FREE) return Res::st(Status::EPT_ENTRY_STATE_INCORRECT, kRcx);
  e.s = blocked_of(e.s);
  e.bepoch = epoch;
  return Res::ok();
}

// §2.6, §8.5: not blocked -> state error; in RUNNABLE tracked, else TRACKING_NOT_DONE|SEPT_TREE.
Res Model::unblock(Tgt t) {
  PAGE_INFO_OR_FAIL(t, 0, 3);
  WALK_OR_FAIL(t);
  Ent& e = at(t);
  if (!any_blocked(e.s)) return Res::st(Status::EPT_ENTRY_STATE_INCORRECT, kRcx);
  if (runnable && !tracked(e.bepoch))
    return Res::st(Status::TLB_TRACKING_NOT_DONE, static_cast<uint32_t>(Operand::SEPT_TREE));
  e.s = unblocked_of(e.s);
  return Res::ok();
}

// §2.7: nobody may still run from the previous epoch.
Res Model::track() {
  if (refcount[(epoch - 1) & 1] != 0) return Res::st(Status::PREVIOUS_TLB_EPOCH_BUSY);
  epoch++;
  return Res::ok();
}

// §2.8: a leaf; in RUNNABLE blocked then tracked.
Res Model::remove(Tgt t) {
  PAGE_INFO_OR_FAIL(t, 0, 2);
  WALK_OR_FAIL(t);
  Ent& e = at(t);
  if (!leaf(e.s)) return Res::st(Status::EPT_ENTRY_STATE_INCORRECT, kRcx);
  if (runnable) {
    if (e.s != St::BLOCKED && e.s != St::PENDING_BLOCKED)
      return Res::st(Status::GPA_RANGE_NOT_BLOCKED, kRcx);
    if (!tracked(e.bepoch)) return Res::st(Status::TLB_TRACKING_NOT_DONE, kRcx);
  }
  e = {};
  chldcnt -= t.level == 1 ? 512 : 1;
  return Res::ok();
}

// §4: a 2M leaf; in RUNNABLE blocked then tracked. Parent NL_MAPPED; the 512 children take
// the parent's state unblocked (§8.12).
Res Model::demote(Tgt t) {
  PAGE_INFO_OR_FAIL(t, 1, 2);
  WALK_OR_FAIL(t);
  Ent& e = at(t);
  if (!leaf(e.s)) return Res::st(Status::EPT_ENTRY_STATE_INCORRECT, kRcx);
  if (runnable) {
    if (e.s != St::BLOCKED && e.s != St::PENDING_BLOCKED)
      return Res::st(Status::GPA_RANGE_NOT_BLOCKED, kRcx);
    if (!tracked(e.bepoch)) return Res::st(Status::TLB_TRACKING_NOT_DONE, kRcx);
  }
  // Only 4K and 2M pages exist here, so a 1G entry is never a leaf and never gets this far.
  const St child = unblocked_of(e.s);
  for (int i = 0; i < 512; i++) l0[t.idx * 512 + i] = {child, 0};
  e = {St::NL_MAPPED, 0};
  chldcnt += 1;
  return Res::ok();
}

// §5: a non-leaf; in RUNNABLE NL_BLOCKED then tracked; 512 identical MAPPED or PENDING
// children (the harness maps child i at parent HPA + i*4K, so only states can differ).
Res Model::promote(Tgt t) {
  PAGE_INFO_OR_FAIL(t, 1, 2);
  WALK_OR_FAIL(t);
  Ent& e = at(t);
  if (!non_leaf(e.s)) return Res::st(Status::EPT_ENTRY_STATE_INCORRECT, kRcx);
  if (runnable) {
    if (e.s != St::NL_BLOCKED) return Res::st(Status::GPA_RANGE_NOT_BLOCKED, kRcx);
    if (!tracked(e.bepoch)) return Res::st(Status::TLB_TRACKING_NOT_DONE, kRcx);
  }
  // A 1G promote: the PD's other 510 entries lie outside the model and are FREE.
  if (t.level == 2) return Res::st(Status::EPT_INVALID_PROMOTE_CONDITIONS, kRcx);
  const St c0 = l0[t.idx * 512].s;
  bool ok = c0 == St::MAPPED || c0 == St::PENDING;
  for (int i = 1; ok && i < 512; i++) ok = l0[t.idx * 512 + i].s == c0;
  if (!ok) return Res::st(Status::EPT_INVALID_PROMOTE_CONDITIONS, kRcx);
  e = {c0, 0};
  for (int i = 0; i < 512; i++) l0[t.idx * 512 + i] = {};  // the table is gone
  chldcnt -= 1;
  return Res::ok();
}

// §2.2-2.3 prologue with the TDR locked exclusively (a vCPU in guest mode holds it shared,
// §2.14 step 5), then §7: INITIALIZED only. Which register the TDR operand id names is not
// fixed by the spec for MR.FINALIZE, so only the class is compared for BUSY.
Res Model::finalize() {
  for (auto& v : vcpu)
    if (v.in_td) return Res::st(Status::OPERAND_BUSY, 0, false);
  if (runnable) return Res::st(Status::OP_STATE_INCORRECT);
  runnable = true;
  return Res::ok();
}

// §2.14: RUNNABLE only; REFCOUNT[E&1]++ and VCPU_EPOCH := E. Entering a vCPU already in the
// TD is TDX_VCPU_STATE_INCORRECT (TRACE_FORMAT.md, the project's choice).
Res Model::vp_enter(int v) {
  if (!runnable) return Res::st(Status::OP_STATE_INCORRECT);
  if (vcpu[v].in_td) return Res::st(Status::VCPU_STATE_INCORRECT);
  refcount[epoch & 1]++;
  vcpu[v] = {true, epoch};
  return Res::ok();
}

// §2.14 step 6: REFCOUNT[VCPU_EPOCH&1]--.
Res Model::td_exit(int v) {
  if (!vcpu[v].in_td) return {Res::kNotInTd};
  refcount[vcpu[v].epoch & 1]--;
  vcpu[v].in_td = false;
  return Res::ok();
}

// §2.15, §8.14.
Res Model::accept(int v, Tgt t) {
  if (!vcpu[v].in_td) return {Res::kNotInTd};
  PAGE_INFO_OR_FAIL(t, 0, 1);  // §2.15 step 1
  auto exit = [&]() -> Res {
    td_exit(v);
    return {Res::kEptViolation};
  };
  const int stop = walk(t);
  if (stop != t.level) {
    Tgt up{stop, stop >= 2 ? 0 : t.idx / 512};
    if (at(up).s == St::MAPPED)
      return Res::st(Status::PAGE_ALREADY_ACCEPTED, static_cast<uint32_t>(stop));
    return exit();
  }
  Ent& e = at(t);
  if (non_leaf(e.s)) return Res::st(Status::PAGE_SIZE_MISMATCH, static_cast<uint32_t>(t.level));
  if (e.s == St::MAPPED)
    return Res::st(Status::PAGE_ALREADY_ACCEPTED, static_cast<uint32_t>(t.level));
  if (e.s != St::PENDING) return exit();
  e.s = St::MAPPED;
  return Res::ok();
}

}  // namespace props
