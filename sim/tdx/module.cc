// Module construction, PAMT, the common prologue and the SEAMCALL dispatcher.
#include "sim/tdx/module.h"
#include "sim/host/recycle.h"

#include <algorithm>
#include <cassert>
#include <new>

#include "sim/tdx/call.h"

namespace tdx {

bool sept_lock_acquire_host(std::atomic<uint64_t>& slot, SeptEntry* seen) {
  uint64_t v = slot.load(std::memory_order_relaxed);
  for (;;) {
    if (v & kTdel) {
      host::rmw_or(slot, kTdhp, std::memory_order_relaxed);
      *seen = {v};
      return false;
    }
    if (host::rmw_cas(slot, v, (v | kTdel) & ~kTdhp, std::memory_order_acquire)) {
      *seen = {v & ~kTdhp};
      return true;
    }
  }
}

namespace {
// This thread's freed S-EPT pages, reused by new_sept_page instead of a 4K malloc and free.
std::vector<std::unique_ptr<SeptPage>>& spare_sept_pages() {
  thread_local std::vector<std::unique_ptr<SeptPage>> spare;
  return spare;
}
void recycle(std::unique_ptr<SeptPage>& p) {
  auto& spare = spare_sept_pages();
  if (spare.size() < host::kRecycledTables)  // bounded: the rest is freed
    spare.push_back(std::move(p));
  else
    p.reset();
}
}  // namespace

Module::Module(host::HostPages& host, Options opts, Hooks* hooks)
    : host_(host),
      opts_(opts),
      hooks_(hooks ? hooks : &null_hooks_),
      base_(host.base_pfn()),
      n_(host.npages()),
      pamt4k_(n_),
      pamt2m_((n_ + 511) >> 9),
      pamt1g_((n_ + (1u << 18) - 1) >> 18),
      touched_(new std::atomic<uint8_t>[pamt2m_.size()]()),
      sept_touched_(new std::atomic<uint8_t>[pamt2m_.size()]()),
      sept_pages_(n_) {}

Module::~Module() = default;

void Module::reset(const Options& opts, Hooks* hooks) {
  opts_ = opts;
  set_hooks(hooks);
  auto renew = [](PamtEntry& p) {
    p.~PamtEntry();
    new (&p) PamtEntry;
  };
  for (uint64_t b = 0; b < pamt2m_.size(); b++) {
    const uint64_t first = b << 9, end = std::min<uint64_t>(first + 512, n_);
    if (!touched_[b].load(std::memory_order_relaxed)) {
      // Locks are released when a call returns and BEPOCH is set only on pages the TD owns.
      auto pristine = [](const PamtEntry& p) {
        return p.type == PageType::NDA && !p.owner && !p.bepoch && !p.lock.held();
      };
      assert(pristine(pamt2m_[b]));
      for (uint64_t i = first; i < end; i++) assert(pristine(pamt4k_[i]) && !sept_pages_[i]);
      (void)pristine;
      continue;
    }
    // Two loops: the PAMT one has no calls in it, and only blocks that had S-EPT pages are
    // scanned for them.
    // The tables through locals: the byte stores would make the compiler reload them.
    PamtEntry* const pamt = pamt4k_.data();
    for (uint64_t i = first; i < end; i++) renew(pamt[i]);
    if (sept_touched_[b].load(std::memory_order_relaxed)) {
      std::unique_ptr<SeptPage>* const sept = sept_pages_.data();
      for (uint64_t i = first; i < end; i++)
        if (sept[i]) recycle(sept[i]);
      sept_touched_[b].store(0, std::memory_order_relaxed);
    }
    renew(pamt2m_[b]);
    touched_[b].store(0, std::memory_order_relaxed);
  }
  for (auto& g : pamt1g_) renew(g);
  tds_.clear();
  next_hkid_ = 1;
  injections_.clear();
}

SeptPage* Module::new_sept_page(uint64_t hpa) {
  const uint64_t i = (hpa >> host::kPageShift) - base_;
  touched_[i >> 9].store(1, std::memory_order_relaxed);
  sept_touched_[i >> 9].store(1, std::memory_order_relaxed);
  auto& p = sept_pages_[i];
  auto& spare = spare_sept_pages();
  if (spare.empty()) {
    p = std::make_unique<SeptPage>();
  } else {
    p = std::move(spare.back());
    spare.pop_back();
    for (auto& x : p->e) x.store(0, std::memory_order_relaxed);  // as SeptPage() leaves it
  }
  return p.get();
}

void Module::free_sept_page(uint64_t hpa) {
  auto& p = sept_pages_[(hpa >> host::kPageShift) - base_];
  if (p) recycle(p);
}

// tracked(B) := B < E-1 || (B == E-1 && REFCOUNT[B&1] == 0)  (§3, helpers.h is_tlb_tracked)
bool Module::is_tlb_tracked(const Td& td, uint64_t bepoch) {
  const uint64_t e = td.td_epoch.load(std::memory_order_acquire);
  if (bepoch + 1 < e) return true;
  return bepoch + 1 == e && td.refcount[bepoch & 1].load(std::memory_order_acquire) == 0;
}

uint64_t Module::pamt_bepoch_of(const Td& td, SeptEntry e, int level) {
  (void)td;
  const uint64_t pfn = e.hpa(level) >> host::kPageShift;
  if (is_non_leaf(e.state())) return pamt_4k(e.hpa_bits() >> host::kPageShift).bepoch;
  if (level == kLevel2M) return pamt_2m(pfn).bepoch;
  if (level == kLevel1G) return pamt_1g(pfn).bepoch;
  return pamt_4k(pfn).bepoch;
}

void Module::set_pamt_bepoch(SeptEntry e, int level, uint64_t epoch) {
  const uint64_t pfn = e.hpa(level) >> host::kPageShift;
  if (is_non_leaf(e.state()))
    pamt_4k(e.hpa_bits() >> host::kPageShift).bepoch = epoch;
  else if (level == kLevel2M)
    pamt_2m(pfn).bepoch = epoch;
  else if (level == kLevel1G)
    pamt_1g(pfn).bepoch = epoch;
  else
    pamt_4k(pfn).bepoch = epoch;
}

// check_lock_and_map_explicit_tdr (§2.0 step 2).
bool Module::check_tdr(Call& c, uint64_t pa, Operand op, LockMode mode, Td** td) {
  if ((pa & 0xfff) || (pa & kHkidMask) || (pa >> kMaxPaBits))
    return c.fail(raw(Status::OPERAND_INVALID, op));
  if (!in_tdmr(pa, host::kPageSize)) return c.fail(raw(Status::OPERAND_ADDR_RANGE_ERROR, op));
  int lvl;
  PamtEntry& p = pamt_leaf(pa >> host::kPageShift, &lvl);
  if (!(mode == LockMode::kShared ? p.lock.try_shared() : p.lock.try_exclusive()))
    return c.fail(raw(Status::OPERAND_BUSY, op));
  c.hold(p.lock, mode);
  c.yield("tdr-locked");
  if (p.type != PageType::TDR || lvl != 0) return c.fail(raw(Status::PAGE_METADATA_INCORRECT, op));
  *td = td_of(pa);
  // A TDR-typed page always has its TD; fail loudly rather than look like success if not.
  if (!*td) return c.fail(raw(Status::PAGE_METADATA_INCORRECT, op));
  return true;
}

// A page the host hands to the module (R8): SEPT.ADD and DEMOTE's new S-EPT page, AUG and
// PAGE.ADD's guest page. Checks in order: address, TDMR, PAMT lock, PAMT free at that size.
bool Module::check_new_page(Call& c, uint64_t pa, int level, Operand op, PamtEntry** locked) {
  const uint64_t size = level_size(level);
  if ((pa & (size - 1)) || (pa & kHkidMask) || (pa >> kMaxPaBits))
    return c.fail(raw(Status::OPERAND_INVALID, op));
  if (!in_tdmr(pa, size)) return c.fail(raw(Status::OPERAND_ADDR_RANGE_ERROR, op));
  const uint64_t pfn = pa >> host::kPageShift;
  int lvl = 0;
  PamtEntry* p = level == kLevel4K   ? &pamt_leaf(pfn, &lvl)
                 : level == kLevel2M ? &pamt_2m(pfn)
                                     : &pamt_1g(pfn);
  if (!p->lock.try_exclusive()) return c.fail(raw(Status::OPERAND_BUSY, op));
  c.hold(p->lock, LockMode::kExclusive);
  c.yield("page-pamt-locked");
  bool free = p->type == PageType::NDA && lvl == 0;
  if (level >= kLevel2M) {
    // The whole range must be free at every smaller size (§8.18).
    if (pamt_1g(pfn).type != PageType::NDA) free = false;
    for (uint64_t i = 0; free && i < level_pages(level); i += 512)
      if (pamt_2m(pfn + i).type != PageType::NDA) free = false;
    for (uint64_t i = 0; free && i < level_pages(level); i++)
      if (pamt_4k(pfn + i).type != PageType::NDA) free = false;
  }
  if (!free) return c.fail(raw(Status::PAGE_METADATA_INCORRECT, op));
  *locked = p;
  return true;
}

// The common prologue of TD-scoped S-EPT leaves, tdx-module.md §2.0 steps 2-10.
bool Module::prologue(Call& c, const Prologue& p, Target* t) {
  Td* td = nullptr;
  if (!check_tdr(c, p.tdr_pa, p.tdr_op, p.tdr_mode, &td)) return false;
  // Step 3: check_td_in_correct_build_state.
  if (td->fatal) return c.fail(raw(Status::TD_FATAL));
  if (td->lifecycle != Lifecycle::KEYS_CONFIGURED)
    return c.fail(raw(Status::TD_KEYS_NOT_CONFIGURED));
  if (!td->tdcs_allocated) return c.fail(raw(Status::TDCS_NOT_ALLOCATED));
  // Step 4: OP_STATE lock, shared.
  if (p.op_state_lock) {
    if (!td->op_state_lock.try_shared())
      return c.fail(raw(Status::OPERAND_BUSY, Operand::OP_STATE));
    c.hold(td->op_state_lock, LockMode::kShared);
    c.yield("op-state-locked");
  }
  // Step 5: the leaf is allowed in this op state.
  if (!(p.allowed & op_bit(td->op_state))) return c.fail(raw(Status::OP_STATE_INCORRECT));
  t->td = td;
  if (p.max_level < 0) return true;  // no page_info (TRACK, FINALIZE)
  // Step 6: page_info (verify_page_info_input).
  const uint64_t rcx = c.in.rcx;
  const int level = static_cast<int>(rcx & 7);
  const uint64_t gpa = gpa_of(rcx);
  if ((rcx & 0xff8) || (rcx >> 52) || level < p.min_level || level > p.max_level ||
      (gpa & (level_size(level) - 1)))
    return c.fail(raw(Status::OPERAND_INVALID, Operand::RCX));
  // Step 7: a private GPA inside the GPA width.
  if ((gpa & kSharedBit) || (gpa >> kGpaw))
    return c.fail(raw(Status::OPERAND_INVALID, Operand::RCX));
  t->gpa = gpa;
  t->level = level;
  // Step 8: S-EPT tree lock in the leaf's mode.
  if (p.tree) {
    bool ok = p.tree_mode == LockMode::kShared ? td->sept_lock.try_shared()
                                               : td->sept_lock.try_exclusive();
    if (!ok) return c.fail(raw(Status::OPERAND_BUSY, Operand::SEPT_TREE));
    c.hold(td->sept_lock, p.tree_mode);
    c.yield("sept-tree-locked");
  }
  // Step 9: walk to the requested level.
  WalkResult w = walk(*td, gpa, level);
  if (!w.reached)
    return c.fail_entry(raw(Status::EPT_WALK_FAILED, Operand::RCX),
                        sept_read(*w.slot).without_locks(), w.level);
  t->slot = w.slot;
  // Step 10: host-side entry lock.
  if (p.entry_lock) {
    SeptEntry seen;
    if (!sept_lock_acquire_host(*w.slot, &seen))
      return c.fail_entry(raw(Status::OPERAND_BUSY, Operand::RCX), seen.without_locks(), level);
    c.hold_entry(w.slot);
    c.yield("sept-entry-locked");
  }
  t->e = sept_read(*w.slot).without_locks();
  return true;
}

// The dispatcher calls handler(leaf) for every leaf it accepts (checked by clang builds: GCC 12
// cannot constant-evaluate a member pointer compared with nullptr).
#ifdef __clang__
#define LEAF(e, name, num, ver) static_assert(Module::handler(Leaf::e) != nullptr);
#include "sim/tdx/leaf.def"
#undef LEAF
#endif

Regs Module::seamcall(const Regs& in) {
  const uint64_t num = in.rax & 0xffff;
  const auto leaf = static_cast<Leaf>(num);
  const unsigned version = (in.rax >> 16) & 0xff;
  // Leaves without versions reject a non-zero one here; versioned leaves check it themselves
  // after their RDX check (§0, §2.0 step 1).
  if (num >= kLeafNumbers || !kLeafInfo[num].name ||
      (version != 0 && kLeafInfo[num].max_version == 0) || (in.rax >> 24)) {
    Regs out;
    out.rax = raw(Status::OPERAND_INVALID, Operand::RAX);
    return out;
  }
  for (auto it = injections_.begin(); it != injections_.end(); ++it) {
    if (it->leaf != leaf || --it->countdown) continue;
    Regs out;
    out.rax = it->status;
    injections_.erase(it);
    if (hooks_->calls_observed()) hooks_->on_call(kLeafInfo[num].name, in, out);
    return out;
  }
  // Every number that passed the check above has its leaf function.
  return (this->*handler(leaf))(in);
}

}  // namespace tdx
