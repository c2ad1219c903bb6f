#include "sim/check/module_check.h"
#include "sim/host/hex.h"

#include <algorithm>
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
    tdx::PamtEntry* const pamt = &m.pamt_4k(base);  // the block's 4K entries are contiguous
    for (uint64_t pfn = base; pfn < base + host::kPagesPer2M; pfn++) {
      tdx::PamtEntry& p = pamt[pfn - base];
      const PageType t = p.type.load(std::memory_order_relaxed);
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
    if (quiescent_) {
      const uint64_t base = m_.host().base_pfn();
      seen_buf_.begin(m_.host().npages());
      seen_ = {base, seen_buf_.word.data(), seen_buf_.gen << 8};
    }
    const bool walk = quiescent_ && td_.lifecycle != tdx::Lifecycle::TEARDOWN;
    if (walk) walk_table(td_.root, tdx::kPwl, 0);
    if (quiescent_) check_pamt_leaves(/*coverage=*/walk);
    check_epochs();
    if (quiescent_) check_locks();
  }

 private:
  // Cold and out of line, like at(): the walk stays free of string code.
  [[gnu::cold, gnu::noinline]] void fail(const char* site, std::string detail) {
    out_->push_back({"module", site, std::move(detail)});
  }

  [[gnu::cold, gnu::noinline]] static std::string at(uint64_t gpa, int level) {
    return "GPA " + hex(gpa) + " " + tdx::level_name(level);
  }

  // Every entry of every reachable table: children exist and are owned right (PAMT against
  // entries), leaves sit at levels that can hold them, no entry lock is left when quiescent.
  void walk_table(uint64_t table, int level, uint64_t gpa_base) {
    tdx::SeptPage* page = m_.sept_page(table);
    if (!page) return fail("sept-table", "table " + hex(table) + " is not an S-EPT page");
    // Most entries sit in 4K tables: with the level a constant there, the compiler drops the
    // level tests from that loop.
    if (level == tdx::kLevel4K)
      for (uint64_t i = 0; i < 512; i++) check_entry(page->e[i], i, tdx::kLevel4K, gpa_base);
    else
      for (uint64_t i = 0; i < 512; i++) check_entry(page->e[i], i, level, gpa_base);
  }

  [[gnu::always_inline]] void check_entry(const std::atomic<uint64_t>& slot, uint64_t i, int level,
                                          uint64_t gpa_base) {
    const SeptEntry e{slot.load(std::memory_order_relaxed)};
    if (!e.raw) return;  // FREE, unlocked, no HPA: nothing to check
    const uint64_t gpa = gpa_base + (i << tdx::level_shift(level));
    // `where` is built only when something is wrong: this loop runs for every entry.
#define where at(gpa, level)
    if (quiescent_ && e.locked()) fail("entry-lock-held", where + ": TDEL set while quiescent");
    // TDHP is sticky by design (tdx-module.md §8.3): a host that failed to lock leaves it
    // until its next successful lock, so it is not an error when quiescent.
    const SeptState s = e.state();
    if (s == SeptState::FREE) {
      if (e.hpa_bits()) fail("free-entry", where + ": FREE entry with HPA bits");
      return;
    }
    if (tdx::is_non_leaf(s)) {
      if (level == 0) {
        fail("non-leaf-at-4k", where + " is " + tdx::state_name(s));
        return;
      }
      const uint64_t child = e.hpa_bits();
      tdx::PamtEntry& p = m_.pamt_4k(child >> 12);
      if (p.type != PageType::EPT || p.owner != td_.tdr)
        fail("pamt-vs-sept",
             where + ": child table " + hex(child) + " has PAMT " + tdx::page_type_name(p.type));
      if (!reach(child >> 12))
        walk_table(child, level - 1, gpa);
      else
        fail("pamt-vs-sept", where + ": table " + hex(child) + " linked twice");
      return;
    }
    if (!tdx::is_leaf(s) || level > tdx::kLevel1G) {
      fail("leaf-level", where + ": " + tdx::state_name(s) + " at this level");
      return;
    }
    if (level == tdx::kLevel4K || s != SeptState::PENDING) {
      if (e.accept_counter() && level == tdx::kLevel2M)
        fail("accept-counter", where + ": ACCEPT_COUNTER set on a " + tdx::state_name(s) + " leaf");
    }
    const uint64_t hpa = e.hpa(level), pfn = hpa >> 12;
    if (level == tdx::kLevel4K && (e.hpa_bits() & 0xfff))
      fail("leaf-hpa", where + ": misaligned HPA");
    int plevel;
    tdx::PamtEntry& p = m_.pamt_leaf(pfn, &plevel);
    if (p.type != PageType::REG || p.owner != td_.tdr || plevel != level)
      fail("pamt-vs-sept", where + ": page " + hex(hpa) + " has PAMT " +
                               tdx::page_type_name(p.type) + " at " + tdx::level_name(plevel));
    if (reach(pfn)) fail("pamt-vs-sept", where + ": page " + hex(hpa) + " mapped twice");
  }

#undef where
  // One pass over the PAMT leaves for two checks (it runs at every quiescent check):
  // - with `coverage`, every page the PAMT gives this TD as REG or EPT is reachable from the
  //   tree: none lost;
  // - CHLDCNT counts, in 4K units, every page associated with the TD (§8.22).
  void check_pamt_leaves(bool coverage) {
    const uint64_t tdr = td_.tdr;
    int64_t expected = 0;
    for (const PamtLeaf& l : scan_.leaves) {
      if (l.owner != tdr) continue;
      if (l.type != PageType::TDR) expected += static_cast<int64_t>(tdx::level_pages(l.level));
      if (coverage && (l.type == PageType::REG || l.type == PageType::EPT) && !reached(l.pfn))
        fail("pamt-vs-sept", "page " + hex(l.pfn << 12) + " (" + tdx::page_type_name(l.type) +
                                 ") owned by the TD but not in its S-EPT");
    }
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
  // How many times the tree reached each frame (wrapping like the byte counter it replaced), by
  // offset in the host pool, in the low byte of a word whose upper bits are the check's
  // generation: a count from an older check reads as zero, so no check clears or scans the pool
  // and a check costs what the tree holds. Words, not bytes: byte stores alias everything and
  // would make the walk reload its state after each one.
  struct SeenBuf {
    std::vector<uint32_t> word;
    uint32_t gen = 0;  // 24 bits
    void begin(uint64_t npages) {
      if (word.size() < npages) word.resize(npages, 0);
      if (++gen == 1u << 24) std::fill(word.begin(), word.end(), 0), gen = 1;
    }
  };
  struct Seen {
    uint64_t base_pfn = 0;
    uint32_t* word = nullptr;
    uint32_t stamp = 0;  // gen << 8
  };
  // Counts one more reach of `pfn`; returns the count before it.
  uint8_t reach(uint64_t pfn) {
    uint32_t& w = seen_.word[pfn - seen_.base_pfn];
    const uint8_t n = (w & ~0xffu) == seen_.stamp ? w & 0xff : 0;
    w = seen_.stamp | static_cast<uint8_t>(n + 1);
    return n;
  }
  uint8_t reached(uint64_t pfn) const {
    const uint32_t w = seen_.word[pfn - seen_.base_pfn];
    return (w & ~0xffu) == seen_.stamp ? w & 0xff : 0;
  }
  Seen seen_;
  static thread_local SeenBuf seen_buf_;
};
thread_local TdChecker::SeenBuf TdChecker::seen_buf_;

}  // namespace

void check_module(Module& m, bool quiescent, size_t* ledger_seen, Violations* out) {
  // Kept across checks so that its buffer is not regrown at each one.
  thread_local FrameScan scan;
  scan.leaves.clear();
  scan.host.clear();
  if (quiescent) scan_frames(m, &scan);
  for (auto& td : m.tds()) TdChecker(m, *td, quiescent, scan, out).run();
  // PAMT against the host ledger: what the module owns, the host must have handed over.
  for (auto& v : scan.host) out->push_back(std::move(v));
  scan.host.clear();
  host::HostPages& h = m.host();
  const auto& lv = h.violations();
  for (size_t i = *ledger_seen; i < lv.size(); i++)
    out->push_back({"module", "host-ledger", lv[i]});
  *ledger_seen = lv.size();
}

}  // namespace check
