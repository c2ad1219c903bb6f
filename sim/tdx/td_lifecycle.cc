// TD construction (condensed), TDH.MR.FINALIZE and the HKID-release steps KVM takes at
// teardown: TDH.MNG.VPFLUSHDONE, TDH.PHYMEM.CACHE.WB, TDH.MNG.KEY.FREEID (tdx-module.md §7,
// kvm-tdx.md §2.B5).
#include "sim/tdx/call.h"

namespace tdx {

uint64_t Module::create_td(int nvcpus, BuildStage stage) {
  auto take = [&](PageType type, uint64_t owner) -> uint64_t {
    uint64_t pfn;
    if (!host_.alloc(0, host::Use::kModule, &pfn)) return 0;
    PamtEntry& p = pamt_4k(pfn);
    set_pamt(p, type, owner ? owner : pfn << host::kPageShift);
    p.bepoch = 0;
    return pfn << host::kPageShift;
  };
  // TDH.MNG.CREATE: the TDR page, with its HKID.
  const uint64_t tdr = take(PageType::TDR, 0);
  if (!tdr) return 0;
  auto td = std::make_unique<Td>();
  td->tdr = tdr;
  td->hkid = next_hkid_++;
  Td& t = *td;
  tds_.push_back(std::move(td));
  if (stage == BuildStage::kCreated) return tdr;
  t.lifecycle = Lifecycle::KEYS_CONFIGURED;  // TDH.MNG.KEY.CONFIG
  if (stage == BuildStage::kKeysConfigured) return tdr;
  // TDH.MNG.ADDCX: one TDCS page and the S-EPT root (a TDCX page in 1.5).
  t.tdcs = take(PageType::TDCX, tdr);
  t.root = take(PageType::TDCX, tdr);
  if (!t.tdcs || !t.root) return 0;
  new_sept_page(t.root);
  t.chldcnt += 2;
  t.tdcs_allocated = true;
  if (stage == BuildStage::kTdcsAdded) return tdr;
  t.op_state = OpState::INITIALIZED;  // TDH.MNG.INIT
  // TDH.VP.CREATE, TDH.VP.ADDCX, TDH.VP.INIT.
  if (nvcpus > 0) t.vcpus.reserve(static_cast<size_t>(nvcpus));
  for (int i = 0; i < nvcpus; i++) {
    Vcpu v;
    v.tdvpr = take(PageType::TDVPR, tdr);
    v.tdvpx = take(PageType::TDCX, tdr);
    if (!v.tdvpr || !v.tdvpx) return 0;
    v.initialized = true;
    t.chldcnt += 2;
    t.vcpus.push_back(v);
  }
  return tdr;
}

Regs Module::tdh_mr_finalize(const Regs& in) {
  Call c(*this, Leaf::MR_FINALIZE, in);
  [&]() -> bool {
    Prologue p;
    p.tdr_pa = in.rcx;
    p.tdr_op = Operand::RCX;
    p.tdr_mode = LockMode::kExclusive;
    p.op_state_lock = false;
    p.allowed = kOnlyInitialized;
    p.max_level = -1;
    p.tree = p.entry_lock = false;
    Target t;
    if (!prologue(c, p, &t)) return false;
    bool any = false;
    for (auto& v : t.td->vcpus) any |= v.initialized;
    if (!any) return c.fail(raw(Status::NO_VCPUS));
    t.td->op_state = OpState::RUNNABLE;
    return true;
  }();
  return c.out;
}

Regs Module::tdh_mng_vpflushdone(const Regs& in) {
  Call c(*this, Leaf::MNG_VPFLUSHDONE, in);
  [&]() -> bool {
    Td* td;
    // Exclusive: a vCPU in guest mode holds the TDR shared.
    if (!check_tdr(c, in.rcx, Operand::RCX, LockMode::kExclusive, &td)) return false;
    if (td->lifecycle != Lifecycle::KEYS_CONFIGURED)
      return c.fail(raw(Status::LIFECYCLE_STATE_INCORRECT));
    for (auto& v : td->vcpus)
      if (v.associated) return c.fail(raw(Status::FLUSHVP_NOT_DONE));
    td->lifecycle = Lifecycle::BLOCKED;
    return true;
  }();
  return c.out;
}

Regs Module::tdh_phymem_cache_wb(const Regs& in) {
  Call c(*this, Leaf::PHYMEM_CACHE_WB, in);
  // Writes back every cache line of every released HKID on the package; nothing to model.
  return c.out;
}

Regs Module::tdh_mng_key_freeid(const Regs& in) {
  Call c(*this, Leaf::MNG_KEY_FREEID, in);
  [&]() -> bool {
    Td* td;
    if (!check_tdr(c, in.rcx, Operand::RCX, LockMode::kExclusive, &td)) return false;
    if (td->lifecycle != Lifecycle::BLOCKED) return c.fail(raw(Status::LIFECYCLE_STATE_INCORRECT));
    td->lifecycle = Lifecycle::TEARDOWN;
    td->hkid = 0;
    return true;
  }();
  return c.out;
}

}  // namespace tdx
