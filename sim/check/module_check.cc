#include "sim/check/module_check.h"
#include "sim/host/hex.h"

#include <cassert>
#include <cstdio>
#include <string>

namespace check {
namespace {

using tdx::Module;
using tdx::PageType;
using tdx::SeptEntry;
using tdx::SeptState;

using host::hex;

// A PAMT leaf (pamt_leaf) that is not NDA, at its head frame.
struct PamtLeaf {
  uint64_t pfn, owner;
  PageType type;
  int level;
};

// One pass over the frames of the 2M blocks that the host or the module ever touched (the
// others are NDA at every PAMT level and free in the ledger, so no check can fail there): the
// non-NDA PAMT leaves for the per-TD checks, and the PAMT-against-ledger violations, in frame
// order.
struct FrameScan {
  std::vector<PamtLeaf> leaves;
  Violations host;
};

#ifndef NDEBUG
bool block_pristine(Module& m, uint64_t pfn) {
  host::HostPages& h = m.host();
  auto pristine = [](tdx::PamtEntry& p) { return p.type == PageType::NDA && p.owner == 0; };
  if (!pristine(m.pamt_1g(pfn)) || !pristine(m.pamt_2m(pfn))) return false;
  for (uint64_t i = 0; i < host::kPagesPer2M; i++)
    if (!pristine(m.pamt_4k(pfn + i)) || h.use(pfn + i) != host::Use::kFree) return false;
  return true;
}
#endif

void scan_frames(Module& m, FrameScan* s) {
  host::HostPages& h = m.host();
  auto host_mismatch = [&](uint64_t pfn, PageType t) {
    s->host.push_back({"module", "pamt-vs-host",
                       "frame " + hex(pfn << 12) + " is PAMT " + tdx::page_type_name(t) +
                           " but host ledger says " + host::use_name(h.use(pfn))});
  };
  for (uint64_t b = 0; b < h.npages() / host::kPagesPer2M; b++) {
    const uint64_t base = h.base_pfn() + b * host::kPagesPer2M;
    if (!h.block_touched(b) && !m.pamt_touched(b)) {
      assert(block_pristine(m, base));
      continue;
    }
    int level = tdx::kLevel1G;
    tdx::PamtEntry* big = &m.pamt_1g(base);
    if (big->type == PageType::NDA) level = tdx::kLevel2M, big = &m.pamt_2m(base);
    if (big->type != PageType::NDA) {
      // One leaf for the whole block; its head frame is here unless it is a 1G leaf's tail.
      const PageType t = big->type;
      if (!((base << 12) & (tdx::level_size(level) - 1)))
        s->leaves.push_back({base, big->owner, t, level});
      for (uint64_t pfn = base; pfn < base + host::kPagesPer2M; pfn++)
        if (h.use(pfn) != host::Use::kModule) host_mismatch(pfn, t);
      continue;
    }
    for (uint64_t pfn = base; pfn < base + host::kPagesPer2M; pfn++) {
      tdx::PamtEntry& p = m.pamt_4k(pfn);
      const PageType t = p.type;
      if (t != PageType::NDA) {
        s->leaves.push_back({pfn, p.owner, t, tdx::kLevel4K});
        if (h.use(pfn) != host::Use::kModule) host_mismatch(pfn, t);
      } else if (h.use(pfn) == host::Use::kModule) {
        s->host.push_back(
            {"module", "pamt-vs-host",
             "frame " + hex(pfn << 12) + " handed to the module but not in its PAMT (lost)"});
      }
    }
  }
}

class TdChecker {
 public:
  TdChecker(Module& m, tdx::Td& td, bool quiescent, const FrameScan& scan, Violations* out)
      : m_(m), td_(td), quiescent_(quiescent), scan_(scan), out_(out) {}

  // The walks over the whole tree and PAMT run only when quiescent; mid-run (another actor
  // between steps) only the cheap epoch accounting.
  void run() {
    if (quiescent_ && td_.lifecycle != tdx::Lifecycle::TEARDOWN) {
      walk_table(td_.root, tdx::kPwl, 0);
      check_pamt_coverage();
    }
    if (quiescent_) check_chldcnt();
    check_epochs();
    if (quiescent_) check_locks();
  }

 private:
  void fail(const char* site, std::string detail) {
    out_->push_back({"module", site, std::move(detail)});
  }

  // Every entry of every reachable table: children exist and are owned right (PAMT against
  // entries), leaves sit at levels that can hold them, no entry lock is left when quiescent.
  void walk_table(uint64_t table, int level, uint64_t gpa_base) {
    tdx::SeptPage* page = m_.sept_page(table);
    if (!page) return fail("sept-table", "table " + hex(table) + " is not an S-EPT page");
    for (uint64_t i = 0; i < 512; i++) {
      const SeptEntry e{page->e[i].load(std::memory_order_relaxed)};
      if (!e.raw) continue;  // FREE, unlocked, no HPA: nothing to check
      const uint64_t gpa = gpa_base + (i << tdx::level_shift(level));
      // Built only when something is wrong: this loop runs for every entry at every step.
      auto where_fn = [&] { return "GPA " + hex(gpa) + " " + tdx::level_name(level); };
#define where where_fn()
      if (quiescent_ && e.locked()) fail("entry-lock-held", where + ": TDEL set while quiescent");
      // TDHP is sticky by design (tdx-module.md §8.3): a host that failed to lock leaves it
      // until its next successful lock, so it is not an error when quiescent.
      const SeptState s = e.state();
      if (s == SeptState::FREE) {
        if (e.hpa_bits()) fail("free-entry", where + ": FREE entry with HPA bits");
        continue;
      }
      if (tdx::is_non_leaf(s)) {
        if (level == 0) {
          fail("non-leaf-at-4k", where + " is " + tdx::state_name(s));
          continue;
        }
        const uint64_t child = e.hpa_bits();
        tdx::PamtEntry& p = m_.pamt_4k(child >> 12);
        if (p.type != PageType::EPT || p.owner != td_.tdr)
          fail("pamt-vs-sept",
               where + ": child table " + hex(child) + " has PAMT " + tdx::page_type_name(p.type));
        if (!seen(child >> 12)++)
          walk_table(child, level - 1, gpa);
        else
          fail("pamt-vs-sept", where + ": table " + hex(child) + " linked twice");
        continue;
      }
      if (!tdx::is_leaf(s) || level > tdx::kLevel1G) {
        fail("leaf-level", where + ": " + tdx::state_name(s) + " at this level");
        continue;
      }
      if (level == tdx::kLevel4K || s != SeptState::PENDING) {
        if (e.accept_counter() && level == tdx::kLevel2M)
          fail("accept-counter",
               where + ": ACCEPT_COUNTER set on a " + tdx::state_name(s) + " leaf");
      }
      const uint64_t hpa = e.hpa(level), pfn = hpa >> 12;
      if (level == tdx::kLevel4K && (e.hpa_bits() & 0xfff))
        fail("leaf-hpa", where + ": misaligned HPA");
      int plevel;
      tdx::PamtEntry& p = m_.pamt_leaf(pfn, &plevel);
      if (p.type != PageType::REG || p.owner != td_.tdr || plevel != level)
        fail("pamt-vs-sept", where + ": page " + hex(hpa) + " has PAMT " +
                                 tdx::page_type_name(p.type) + " at " + tdx::level_name(plevel));
      if (seen(pfn)++) fail("pamt-vs-sept", where + ": page " + hex(hpa) + " mapped twice");
    }
  }

#undef where
  // Every page the PAMT gives this TD as REG or EPT is reachable from the tree: none lost.
  void check_pamt_coverage() {
    for (const PamtLeaf& l : scan_.leaves) {
      if (l.owner != td_.tdr || (l.type != PageType::REG && l.type != PageType::EPT)) continue;
      if (!seen(l.pfn))
        fail("pamt-vs-sept", "page " + hex(l.pfn << 12) + " (" + tdx::page_type_name(l.type) +
                                 ") owned by the TD but not in its S-EPT");
    }
  }

  // CHLDCNT counts, in 4K units, every page associated with the TD (§8.22).
  void check_chldcnt() {
    int64_t expected = 0;
    for (const PamtLeaf& l : scan_.leaves)
      if (l.owner == td_.tdr && l.type != PageType::TDR)
        expected += static_cast<int64_t>(tdx::level_pages(l.level));
    if (expected != td_.chldcnt.load())
      fail("chldcnt", "CHLDCNT " + std::to_string(td_.chldcnt.load()) + ", pages owned " +
                          std::to_string(expected));
  }

  // REFCOUNT[p] is the number of vCPUs in guest mode that entered in an epoch of parity p;
  // they all entered in the current or the previous epoch (§3).
  void check_epochs() {
    const uint64_t e = td_.td_epoch.load();
    uint32_t count[2] = {0, 0};
    for (auto& v : td_.vcpus) {
      if (v.epoch > e)
        fail("epoch", "VCPU_EPOCH " + std::to_string(v.epoch) + " > TD_EPOCH " + std::to_string(e));
      if (!v.in_td) continue;
      count[v.epoch & 1]++;
      if (v.epoch + 1 < e)
        fail("epoch", "a vCPU in guest mode entered in epoch " + std::to_string(v.epoch) +
                          ", TD_EPOCH is " + std::to_string(e));
    }
    for (int p = 0; p < 2; p++)
      if (count[p] != td_.refcount[p].load())
        fail("epoch", "REFCOUNT[" + std::to_string(p) +
                          "] = " + std::to_string(td_.refcount[p].load()) + ", " +
                          std::to_string(count[p]) + " vCPUs in guest mode");
  }

  void check_locks() {
    if (td_.op_state_lock.held()) fail("lock-held", "OP_STATE lock held while quiescent");
    if (td_.sept_lock.held()) fail("lock-held", "S-EPT tree lock held while quiescent");
    if (td_.epoch_lock.held()) fail("lock-held", "epoch lock held while quiescent");
    uint32_t in_td = 0;
    for (auto& v : td_.vcpus) {
      in_td += v.in_td;
      tdx::PamtEntry& vp = m_.pamt_4k(v.tdvpr >> 12);
      if (vp.lock.held_exclusive() || vp.lock.shared_count() != (v.in_td ? 1u : 0u))
        fail("lock-held", "TDVPR " + hex(v.tdvpr) + " lock does not match the vCPU's guest mode");
    }
    tdx::PamtEntry& tp = m_.pamt_4k(td_.tdr >> 12);
    if (tp.lock.held_exclusive() || tp.lock.shared_count() != in_td)
      fail("lock-held", "TDR lock held " + std::to_string(tp.lock.shared_count()) + " times, " +
                            std::to_string(in_td) + " vCPUs in guest mode");
  }

  Module& m_;
  tdx::Td& td_;
  bool quiescent_;
  const FrameScan& scan_;
  Violations* out_;
  // Frames reached from the tree, by offset in the host pool. The buffer is kept across checks
  // and only the entries this check set are cleared (destructor), so a check costs what the
  // tree holds rather than the pool size.
  uint8_t& seen(uint64_t pfn) {
    const uint64_t i = pfn - m_.host().base_pfn();
    if (seen_.size() < m_.host().npages()) seen_.resize(m_.host().npages(), 0);
    if (!seen_[i]) seen_set_.push_back(i);
    return seen_[i];
  }
  static thread_local std::vector<uint8_t> seen_;
  static thread_local std::vector<uint64_t> seen_set_;

 public:
  ~TdChecker() {
    for (uint64_t i : seen_set_) seen_[i] = 0;
    seen_set_.clear();
  }
};
thread_local std::vector<uint8_t> TdChecker::seen_;
thread_local std::vector<uint64_t> TdChecker::seen_set_;

}  // namespace

void check_module(Module& m, bool quiescent, size_t* ledger_seen, Violations* out) {
  FrameScan scan;
  if (quiescent) scan_frames(m, &scan);
  for (auto& td : m.tds()) TdChecker(m, *td, quiescent, scan, out).run();
  // PAMT against the host ledger: what the module owns, the host must have handed over.
  for (auto& v : scan.host) out->push_back(std::move(v));
  host::HostPages& h = m.host();
  const auto& lv = h.violations();
  for (size_t i = *ledger_seen; i < lv.size(); i++)
    out->push_back({"module", "host-ledger", lv[i]});
  *ledger_seen = lv.size();
}

}  // namespace check
