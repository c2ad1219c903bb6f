#include "sim/check/kvm_check.h"
#include "sim/host/hex.h"

#include <cstdio>
#include <unordered_map>

#include "sim/check/module_check.h"

namespace check {
namespace {

using host::hex;
const char* kvm_level(int l) {
  return l == 1 ? "4K" : l == 2 ? "2M" : l == 3 ? "1G" : "512G";
}

// Visits every non-FREE S-EPT entry below `table` (TDX level of its entries: `level`).
template <typename F>
void walk_sept(tdx::Module& m, uint64_t table, int level, uint64_t gpa_base, F& f) {
  tdx::SeptPage* p = m.sept_page(table);
  if (!p) return;
  for (uint64_t i = 0; i < 512; i++) {
    const tdx::SeptEntry e{p->e[i].load(std::memory_order_relaxed)};
    if (e.state() == tdx::SeptState::FREE) continue;
    const uint64_t gpa = gpa_base + (i << tdx::level_shift(level));
    f(gpa, level, e);
    if (tdx::is_non_leaf(e.state()) && level > 0) walk_sept(m, e.hpa_bits(), level - 1, gpa, f);
  }
}

}  // namespace

void check_mirror_sept(kvm::Kvm& k, Violations* out) {
  tdx::Module& m = k.module();
  tdx::Td* td = m.td_of(k.tdr());
  if (!td || !k.hkid_assigned()) return;
  uint64_t premapped_free = 0;
  int64_t leaves[5] = {0, 0, 0, 0, 0};
  k.for_each_mirror_spte([&](uint64_t gfn, int level, uint64_t spte, bool leaf, uint64_t ext) {
    if (leaf) leaves[level]++;
    const int tl = kvm::tdx_level(level);
    auto w = m.walk(*td, gfn << 12, tl);
    const tdx::SeptEntry e{w.slot->load(std::memory_order_relaxed)};
    auto where_fn = [&] { return "GFN " + hex(gfn) + " " + kvm_level(level); };
#define where where_fn()
    if (!w.reached) {
      out->push_back({"mirror-sept", "missing",
                      where + ": mirror has a " + (leaf ? "leaf" : "table") +
                          ", the S-EPT walk stops at " + tdx::level_name(w.level) + " (" +
                          tdx::state_name(e.state()) + ")"});
      return;
    }
    if (leaf) {
      if (e.state() == tdx::SeptState::FREE && k.td_state() != kvm::TdState::RUNNABLE) {
        premapped_free++;  // build time: faulted in, not PAGE.ADDed yet (§5.1 exception a)
        return;
      }
      if ((e.state() != tdx::SeptState::MAPPED && e.state() != tdx::SeptState::PENDING) ||
          e.hpa(tl) != kvm::spte_pfn(spte) << 12)
        out->push_back({"mirror-sept", "leaf",
                        where + ": mirror leaf PFN " + hex(kvm::spte_pfn(spte)) + ", S-EPT " +
                            tdx::state_name(e.state()) + " HPA " + hex(e.hpa(tl))});
    } else if (e.state() != tdx::SeptState::NL_MAPPED || e.hpa_bits() != ext) {
      out->push_back({"mirror-sept", "table",
                      where + ": mirror table with external_spt " + hex(ext) + ", S-EPT " +
                          tdx::state_name(e.state()) + " -> " + hex(e.hpa_bits())});
    }
  });
  for (int level = kvm::kPg4K; level <= kvm::kPg1G; level++)
    if (leaves[level] != k.page_stats(level))
      out->push_back({"mirror-sept", "page-stats",
                      std::string("pages_") + kvm_level(level) + " is " +
                          std::to_string(k.page_stats(level)) + ", the mirror has " +
                          std::to_string(leaves[level]) + " leaves"});
#undef where
  if (premapped_free > static_cast<uint64_t>(k.nr_premapped()))
    out->push_back({"mirror-sept", "premap",
                    std::to_string(premapped_free) +
                        " mirror leaves have no S-EPT page, but nr_premapped is " +
                        std::to_string(k.nr_premapped())});
  // Nothing in the S-EPT that the mirror does not have.
  auto f = [&](uint64_t gpa, int level, tdx::SeptEntry e) {
    uint64_t spte;
    const bool present = k.mirror_spte_at(gpa >> 12, level + 1, &spte);
    const bool sept_leaf = tdx::is_leaf(e.state());
    if (!present || kvm::is_last_spte(spte, level + 1) != sept_leaf)
      out->push_back({"mirror-sept", "extra",
                      "GFN " + hex(gpa >> 12) + " " + tdx::level_name(level) + ": S-EPT has " +
                          tdx::state_name(e.state()) + ", the mirror " +
                          (present ? "a different kind of entry" : "nothing")});
  };
  walk_sept(m, td->root, tdx::kPwl, 0, f);
}

void check_kvm(kvm::Kvm& k, const guest::Guest& g, bool quiescent, KvmCheckCursor* cur,
               Violations* out) {
  const auto& bugs = k.bug_ons();
  for (; cur->bug_ons < bugs.size(); cur->bug_ons++) {
    const kvm::BugOn& b = bugs[cur->bug_ons];
    out->push_back({"kvm-bug-on", b.function,
                    "KVM_BUG_ON(" + b.condition + ") in " + b.function +
                        (b.status.empty() ? "" : ": " + b.status)});
  }
  for (; cur->kvm < k.violations().size(); cur->kvm++) out->push_back(k.violations()[cur->kvm]);
  for (; cur->guest < g.violations().size(); cur->guest++)
    out->push_back(g.violations()[cur->guest]);
  // The module's own invariants; the host ledger is `page-owner` at this level.
  Violations mod;
  check_module(k.module(), quiescent, &cur->ledger, &mod);
  for (auto& v : mod) {
    if (v.site == "host-ledger" || v.site == "pamt-vs-host") v.property = "page-owner";
    out->push_back(std::move(v));
  }
  if (!quiescent || k.vm_bugged()) return;
  check_mirror_sept(k, out);
  // page-owner: a frame a mirror leaf maps is neither free nor mapped twice.
  host::HostPages& h = k.host();
  // Frame offset -> the GFN that maps it, ~0 when none. Kept across checks and reset entry by
  // entry afterwards, so that a check costs what the mirror maps rather than the pool size.
  thread_local std::vector<uint64_t> mapped;
  thread_local std::vector<uint64_t> set;
  if (mapped.size() < h.npages()) mapped.resize(h.npages(), ~0ull);
  k.for_each_mirror_spte([&](uint64_t gfn, int level, uint64_t spte, bool leaf, uint64_t) {
    if (!leaf) return;
    for (uint64_t i = 0; i < kvm::pages_per(level); i++) {
      const uint64_t pfn = kvm::spte_pfn(spte) + i;
      if (k.host().use(pfn) == host::Use::kFree)
        out->push_back({"page-owner", "mapped-free",
                        "GFN " + hex(gfn + i) + " maps PFN " + hex(pfn) + ", which is free"});
      if (!h.contains(pfn)) continue;
      uint64_t& at = mapped[pfn - h.base_pfn()];
      if (at != ~0ull)
        out->push_back(
            {"page-owner", "mapped-twice",
             "PFN " + hex(pfn) + " is mapped at GFN " + hex(at) + " and GFN " + hex(gfn + i)});
      if (at == ~0ull) set.push_back(pfn - h.base_pfn());
      at = gfn + i;
    }
  });
  for (uint64_t i : set) mapped[i] = ~0ull;
  set.clear();
  g.check_tlbs(out);
  if (k.wait_for_sept_zap())
    out->push_back(
        {"liveness", "wait_for_sept_zap", "wait_for_sept_zap left set: no vCPU can enter again"});
  if (k.mmu_lock().writer || k.mmu_lock().readers)
    out->push_back({"liveness", "mmu_lock", "kvm->mmu_lock left held after the operation"});
}

}  // namespace check
