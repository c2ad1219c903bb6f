#include "sim/check/module_check.h"
#include "sim/host/hex.h"

#include <algorithm>
#include <cassert>
#include <cstdio>
#include <cstring>
#include <string>

namespace check {
namespace {

using tdx::Module;
using tdx::PageType;
using tdx::SeptEntry;
using tdx::SeptState;

using host::hex;

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

[[gnu::cold, gnu::noinline]] void host_mismatch(Violations* host, host::HostPages& h, uint64_t pfn,
                                                PageType t) {
  host->push_back({"module", "pamt-vs-host",
                   "frame " + hex(pfn << 12) + " is PAMT " + tdx::page_type_name(t) +
                       " but host ledger says " + host::use_name(h.use(pfn))});
}
[[gnu::cold, gnu::noinline]] void host_lost(Violations* host, uint64_t pfn) {
  host->push_back({"module", "pamt-vs-host",
                   "frame " + hex(pfn << 12) + " handed to the module but not in its PAMT (lost)"});
}

// Zero when eight ledger bytes are all kModule.
inline uint64_t ledger8(const host::Use* use) {
  uint64_t uses;
  std::memcpy(&uses, use, 8);
  return uses ^ 0x0101010101010101ull * static_cast<uint8_t>(host::Use::kModule);
}

// Whether eight 4K frames are all NDA and (kHost) none is the module's in the ledger: then
// scan_frames has nothing to do for any of them.
template <bool kHost>
bool quiet8(const tdx::PamtEntry* p, const host::Use* use) {
  unsigned types = 0;
  for (int j = 0; j < 8; j++)
    types |= static_cast<unsigned>(p[j].type.load(std::memory_order_relaxed));
  if (types) return false;
  if (!kHost) return true;
  // No byte equal to kModule: the classic has-a-zero-byte test on the bytes xor kModule.
  static_assert(sizeof(host::Use) == 1);
  uint64_t v;
  std::memcpy(&v, use, 8);
  v ^= 0x0101010101010101ull * static_cast<uint8_t>(host::Use::kModule);
  return !((v - 0x0101010101010101ull) & ~v & 0x8080808080808080ull);
}

// One pass over the frames of the 2M blocks that the host or the module ever touched (the
// others are NDA at every PAMT level and free in the ledger, so no check can fail there):
// with kHost, the PAMT-against-ledger violations into `host`, in frame order; and leaf(pfn,
// entry, type, level) for each PAMT leaf (pamt_leaf) that is not NDA, at its head frame, in
// frame order. Eight 4K frames at a time, run(base, entries, uses, g) and group(pfn, entries,
// uses) may take the frames instead, only when each is a leaf with nothing against the ledger
// and they have done what leaf() would have done for each: run takes the blocks' groups of
// eight from `g` on while it can and returns where it stopped, group one group (true if taken).
template <bool kHost, typename F, typename R, typename G>
void scan_frames(Module& m, Violations* host, F&& leaf, R&& run, G&& group) {
  host::HostPages& h = m.host();
  const host::Use* const uses = h.uses();
  const uint64_t nblocks = h.npages() / host::kPagesPer2M;
  for (uint64_t b = 0; b < nblocks; b++) {
    const uint64_t base = h.base_pfn() + b * host::kPagesPer2M;
    if (!h.block_touched(b) && !m.pamt_touched(b)) {
      assert(block_pristine(m, base));
      continue;
    }
    const host::Use* const use = uses + b * host::kPagesPer2M;  // the block's frames
    int level = tdx::kLevel1G;
    tdx::PamtEntry* big = &m.pamt_1g(base);
    if (big->type == PageType::NDA) level = tdx::kLevel2M, big = &m.pamt_2m(base);
    if (big->type != PageType::NDA) {
      // One leaf for the whole block; its head frame is here unless it is a 1G leaf's tail.
      const PageType t = big->type;
      if (!((base << 12) & (tdx::level_size(level) - 1))) leaf(base, *big, t, level);
      if (kHost)
        for (uint64_t i = 0; i < host::kPagesPer2M; i++)
          if (use[i] != host::Use::kModule) host_mismatch(host, h, base + i, t);
      continue;
    }
    tdx::PamtEntry* const pamt = &m.pamt_4k(base);  // the block's 4K entries are contiguous
    // A block whose 4K entries are all NDA has no leaf, and nothing against the ledger unless
    // a frame is the module's: found 32 types and then the whole ledger block at a time.
    unsigned any_type = 0;
    for (uint64_t i = 0; i < host::kPagesPer2M && !any_type; i += 32)
      for (uint64_t j = i; j < i + 32; j++)
        any_type |= static_cast<unsigned>(pamt[j].type.load(std::memory_order_relaxed));
    if (!any_type &&
        (!kHost || !std::memchr(use, static_cast<int>(host::Use::kModule), host::kPagesPer2M)))
      continue;
    for (uint64_t g = 0; g < host::kPagesPer2M; g += 8) {
      g = run(base, pamt, use, g);
      if (g == host::kPagesPer2M) break;
      if (group(base + g, pamt + g, use + g) || quiet8<kHost>(pamt + g, use + g)) continue;
      for (uint64_t i = g; i < g + 8; i++) {
        const PageType t = pamt[i].type.load(std::memory_order_relaxed);
        if (t != PageType::NDA) {
          leaf(base + i, pamt[i], t, tdx::kLevel4K);
          if (kHost && use[i] != host::Use::kModule) host_mismatch(host, h, base + i, t);
        } else if (kHost && use[i] == host::Use::kModule) {
          host_lost(host, base + i);
        }
      }
    }
  }
}

class TdChecker {
 public:
  TdChecker(Module& m, tdx::Td& td, bool quiescent, Violations* out)
      : m_(m), td_(td), quiescent_(quiescent), out_(out) {}

  // The walks over the whole tree and PAMT run only when quiescent; mid-run (another actor
  // between steps) only the cheap epoch accounting. The PAMT pass also collects the
  // PAMT-against-ledger violations into `host`, when not null.
  void run(Violations* host) {
    if (quiescent_) {
      const uint64_t base = m_.host().base_pfn();
      seen_buf_.begin(m_.host().npages());
      seen_ = {base, seen_buf_.word.data(), seen_buf_.gen << 8};
    }
    const bool walk = quiescent_ && td_.lifecycle != tdx::Lifecycle::TEARDOWN;
    if (walk) walk_table(td_.root, tdx::kPwl, 0);
    if (quiescent_) check_pamt_leaves(/*coverage=*/walk, host);
    check_epochs();
    if (quiescent_) check_locks();
  }
  // run() when not quiescent.
  void run_midrun() { check_epochs(); }

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
    if (level == tdx::kLevel4K) return walk_4k(*page, gpa_base);
    // The upper tables are mostly empty: eight all-zero entries are skipped at once.
    for (uint64_t i = 0;; i += 8) {
      i = next_chunk(*page, i);
      if (i == 512) break;
      for (uint64_t j = i; j < i + 8; j++) check_entry(page->e[j], j, level, gpa_base);
    }
  }
  // The first multiple of 8 from `i` (one) on whose eight entries are not all zero, or 512. A
  // loop of its own, so that it keeps to registers.
  static uint64_t next_chunk(const tdx::SeptPage& page, uint64_t i) {
    for (; i < 512; i += 8) {
      uint64_t any = 0;
      for (int j = 0; j < 8; j++) any |= page.e[i + j].load(std::memory_order_relaxed);
      if (any) break;
    }
    return i;
  }

  // A 4K table, where most entries are. The common entry, an unlocked leaf in a 2M block whose
  // 1G and 2M PAMT entries are NDA (the block of the previous leaf, as a rule) that passes and
  // was not reached before, is checked here; every other entry goes to entry_4k, from scratch.
  [[gnu::noinline]] void walk_4k(tdx::SeptPage& page, uint64_t gpa_base) {
    uint64_t small_block = ~0ull;  // offset >> 9 of the 2M block entry_4k last found small
    for (uint64_t i = 0;; i++) {
      i = fast_4k(page, i, small_block);
      if (i == 512) break;
      small_block = entry_4k(page.e[i], i, gpa_base, small_block);
    }
  }

  // walk_4k's entries from `i` on, up to the first one that needs entry_4k: returns its index,
  // or 512. It calls nothing, so that what it uses stays in registers.
  [[gnu::always_inline]] uint64_t fast_4k(tdx::SeptPage& page, uint64_t i, uint64_t small_block) {
    const uint64_t tdr = td_.tdr;
    const Seen seen = seen_;
    // The PAMT's 4K entries by frame offset from the pool's base (the PAMT's base too).
    const tdx::PamtEntry* const pamt = &m_.pamt_4k(seen.base_pfn);
    for (; i < 512; i++) {
      if (!(i & 7))
        while (i < 512 && run8(page, i, small_block, pamt, seen, tdr)) i += 8;
      if (i == 512) break;
      const uint64_t raw = page.e[i].load(std::memory_order_relaxed);
      if (!raw) continue;
      const uint64_t off = ((raw & tdx::kHpaMask) >> 12) - seen.base_pfn;
      // TDEL clear and a leaf state: the low bits and the lock bit together in [MAPPED,
      // PENDING_BLOCKED].
      const uint64_t lock_state = raw & (tdx::kTdel | 0xf);
      if (lock_state - static_cast<uint64_t>(SeptState::MAPPED) >
              static_cast<uint64_t>(SeptState::PENDING_BLOCKED) -
                  static_cast<uint64_t>(SeptState::MAPPED) ||
          off >> 9 != small_block)
        break;
      const tdx::PamtEntry& p = pamt[off];
      uint32_t& w = seen.word[off];
      if (p.type.load(std::memory_order_relaxed) != PageType::REG ||
          p.owner.load(std::memory_order_relaxed) != tdr || (w & ~Seen::kNotGen) == seen.stamp)
        break;
      w = seen.stamp | Seen::kPamtOk | 1;  // seen.reach(): first reach, PAMT found right
    }
    return i;
  }

  // One entry of a 4K table, as check_entry checks it; returns walk_4k's small_block, updated.
  [[gnu::noinline]] uint64_t entry_4k(const std::atomic<uint64_t>& slot, uint64_t i,
                                      uint64_t gpa_base, uint64_t small_block) {
    const SeptEntry e{slot.load(std::memory_order_relaxed)};
    if (e.locked() || !tdx::is_leaf(e.state())) {
      check_entry(slot, i, tdx::kLevel4K, gpa_base);
      return small_block;
    }
    // check_entry for an unlocked 4K leaf: the accept-counter test is for 2M leaves, and
    // kHpaMask has no bits below 12, so the HPA is never misaligned.
    const uint64_t pfn = e.hpa(tdx::kLevel4K) >> 12;
    int plevel;
    tdx::PamtEntry& p = m_.pamt_leaf(pfn, &plevel);
    if (plevel == tdx::kLevel4K) small_block = (pfn - seen_.base_pfn) >> 9;
    const bool pamt_ok = p.type == PageType::REG && p.owner == td_.tdr && plevel == tdx::kLevel4K;
    const uint8_t reached_before = seen_.reach(pfn);
    if (!pamt_ok || reached_before)
      leaf_failed(gpa_base + (i << 12), e.hpa(tdx::kLevel4K), p, plevel, pamt_ok, reached_before);
    return small_block;
  }

  // check_entry's findings for a 4K leaf whose PAMT is wrong or that was reached before.
  [[gnu::cold, gnu::noinline]] void leaf_failed(uint64_t gpa, uint64_t hpa, tdx::PamtEntry& p,
                                                int plevel, bool pamt_ok, bool reached_before) {
    const int level = tdx::kLevel4K;
    if (!pamt_ok)
      fail("pamt-vs-sept", at(gpa, level) + ": page " + hex(hpa) + " has PAMT " +
                               tdx::page_type_name(p.type) + " at " + tdx::level_name(plevel));
    if (reached_before)
      fail("pamt-vs-sept", at(gpa, level) + ": page " + hex(hpa) + " mapped twice");
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
      if (!seen_.reach(child >> 12))
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
    if (seen_.reach(pfn)) fail("pamt-vs-sept", where + ": page " + hex(hpa) + " mapped twice");
  }

#undef where
  // One pass over the PAMT leaves (scan_frames) for two checks (it runs at every quiescent
  // check):
  // - with `coverage`, every page the PAMT gives this TD as REG or EPT is reachable from the
  //   tree: none lost;
  // - CHLDCNT counts, in 4K units, every page associated with the TD (§8.22).
  void check_pamt_leaves(bool coverage, Violations* host) {
    // Each combination of the two flags has its own loop.
    const int64_t expected =
        coverage ? host ? pamt_pass<true, true>(host) : pamt_pass<true, false>(nullptr)
        : host ? pamt_pass<false, true>(host)
                 : pamt_pass<false, false>(nullptr);
    if (expected != td_.chldcnt.load())
      fail("chldcnt", "CHLDCNT " + std::to_string(td_.chldcnt.load()) + ", pages owned " +
                          std::to_string(expected));
  }

  // REFCOUNT[p] is the number of vCPUs in guest mode that entered in an epoch of parity p;
  // they all entered in the current or the previous epoch (§3).
  // The frame scan for check_pamt_leaves; returns the pages the TD owns, in 4K units.
  template <bool kCoverage, bool kHost>
  [[gnu::noinline]] int64_t pamt_pass(Violations* host) {
    const uint64_t tdr = td_.tdr;
    const Seen seen = seen_;
    int64_t expected = 0;
    auto leaf = [&](uint64_t pfn, const tdx::PamtEntry& p, PageType t, int level) {
      if (p.owner.load(std::memory_order_relaxed) != tdr) return;
      if (t != PageType::TDR) expected += static_cast<int64_t>(tdx::level_pages(level));
      if (kCoverage && (t == PageType::REG || t == PageType::EPT) && !seen.reached(pfn))
        lost(pfn, t);
    };
    // Groups of eight frames reached once each, by the 4K walk's fast path, which found the
    // PAMT entry REG and this TD's (Seen::kPamtOk; nothing has changed it since), and (kHost)
    // the module's in the ledger: nothing more to read. A loop of its own, kept in registers.
    auto run = [&](uint64_t base, const tdx::PamtEntry*, const host::Use* use, uint64_t g) {
      if (!kCoverage) return g;
      const uint32_t* const word = seen.word + (base - seen.base_pfn);
      const uint32_t once = seen.stamp | Seen::kPamtOk | 1;
      const uint64_t g0 = g;
      for (; g < host::kPagesPer2M; g += 8) {
        uint64_t bad = 0;
        if (kHost) bad = ledger8(use + g);
        uint32_t other = 0;
        for (uint64_t j = g; j < g + 8; j++) other |= word[j] ^ once;
        if (bad | other) break;
      }
      expected += static_cast<int64_t>(g - g0);
      return g;
    };
    // The other common group: eight REG frames of this TD, each the module's in the ledger and
    // reached by the tree. Tested without branches, all eight at once.
    const uint32_t stamp1 = seen.stamp + 1;
    auto group = [&](uint64_t pfn, const tdx::PamtEntry* p, const host::Use* use) {
      const uint32_t* const word = seen.word + (pfn - seen.base_pfn);
      uint64_t bad = kHost ? ledger8(use) : 0;
      if (p[0].type.load(std::memory_order_relaxed) != PageType::REG) return false;
      uint32_t count = 0;  // the largest word - stamp - 1
      for (int j = 0; j < 8; j++) {
        bad |= static_cast<uint64_t>(p[j].type.load(std::memory_order_relaxed)) ^
               static_cast<uint64_t>(PageType::REG);
        bad |= p[j].owner.load(std::memory_order_relaxed) ^ tdr;
        if (kCoverage) count = std::max(count, (word[j] & ~Seen::kPamtOk) - stamp1);
      }
      // seen.reached() != 0 for each: its word is this check's, with a count in [1, 255].
      if (bad || count >= 255) return false;
      expected += 8;
      return true;
    };
    scan_frames<kHost>(m_, host, leaf, run, group);
    return expected;
  }

  [[gnu::cold, gnu::noinline]] void lost(uint64_t pfn, PageType t) {
    fail("pamt-vs-sept", "page " + hex(pfn << 12) + " (" + tdx::page_type_name(t) +
                             ") owned by the TD but not in its S-EPT");
  }

  // It runs at every step: the findings' texts are built out of line.
  void check_epochs() {
    const uint64_t e = td_.td_epoch.load();
    uint32_t count[2] = {0, 0};
    for (auto& v : td_.vcpus) {
      if (v.epoch > e) epoch_ahead(v.epoch, e);
      if (!v.in_td) continue;
      count[v.epoch & 1]++;
      if (v.epoch + 1 < e) epoch_stale(v.epoch, e);
    }
    for (int p = 0; p < 2; p++)
      if (count[p] != td_.refcount[p].load()) refcount_off(p, count[p]);
  }
  [[gnu::cold, gnu::noinline]] void epoch_ahead(uint64_t v, uint64_t e) {
    fail("epoch", "VCPU_EPOCH " + std::to_string(v) + " > TD_EPOCH " + std::to_string(e));
  }
  [[gnu::cold, gnu::noinline]] void epoch_stale(uint64_t v, uint64_t e) {
    fail("epoch", "a vCPU in guest mode entered in epoch " + std::to_string(v) + ", TD_EPOCH is " +
                      std::to_string(e));
  }
  [[gnu::cold, gnu::noinline]] void refcount_off(int p, uint32_t n) {
    fail("epoch", "REFCOUNT[" + std::to_string(p) +
                      "] = " + std::to_string(td_.refcount[p].load()) + ", " + std::to_string(n) +
                      " vCPUs in guest mode");
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
  Violations* out_;
  // How many times the tree reached each frame (wrapping like the byte counter it replaced), by
  // offset in the host pool, in the low byte of a word whose bits 30:8 are the check's
  // generation: a count from an older check reads as zero, so no check clears or scans the pool
  // and a check costs what the tree holds. Words, not bytes: byte stores alias everything and
  // would make the walk reload its state after each one. Bit 31 (Seen::kPamtOk) is set by the
  // 4K walk's fast path on a first reach, whose PAMT entry it found REG and this TD's; any
  // later reach clears it.
  struct SeenBuf {
    std::vector<uint32_t> word;
    uint32_t gen = 0;  // 23 bits
    void begin(uint64_t npages) {
      if (word.size() < npages) word.resize(npages, 0);
      if (++gen == 1u << 23) std::fill(word.begin(), word.end(), 0), gen = 1;
    }
  };
  // Copied into a local by the hot loops: a store to a word could alias the member.
  struct Seen {
    uint64_t base_pfn = 0;
    uint32_t* word = nullptr;
    uint32_t stamp = 0;  // gen << 8
    static constexpr uint32_t kPamtOk = 1u << 31;
    static constexpr uint32_t kNotGen = kPamtOk | 0xff;  // the bits that are not the generation
    // Counts one more reach of `pfn`; returns the count before it.
    uint8_t reach(uint64_t pfn) const {
      uint32_t& w = word[pfn - base_pfn];
      const uint8_t n = (w & ~kNotGen) == stamp ? w & 0xff : 0;
      w = stamp | static_cast<uint8_t>(n + 1);
      return n;
    }
    uint8_t reached(uint64_t pfn) const {
      const uint32_t w = word[pfn - base_pfn];
      return (w & ~kNotGen) == stamp ? w & 0xff : 0;
    }
  };
  // fast_4k for the eight entries from `i` (a multiple of 8) when they map eight consecutive
  // frames with the same bits otherwise (as a split leaves them; distinct frames, so none is
  // reached twice within the eight) and each passes: returns true once they are marked reached.
  // Tested without branches, all eight at once; on false nothing has changed.
  [[gnu::always_inline]] static bool run8(const tdx::SeptPage& page, uint64_t i,
                                          uint64_t small_block, const tdx::PamtEntry* pamt,
                                          const Seen& seen, uint64_t tdr) {
    const uint64_t raw = page.e[i].load(std::memory_order_relaxed);
    const uint64_t off = ((raw & tdx::kHpaMask) >> 12) - seen.base_pfn;
    const uint64_t lock_state = raw & (tdx::kTdel | 0xf);
    // As in fast_4k, and the eighth frame in the same 2M block as the first.
    if (lock_state - static_cast<uint64_t>(SeptState::MAPPED) >
            static_cast<uint64_t>(SeptState::PENDING_BLOCKED) -
                static_cast<uint64_t>(SeptState::MAPPED) ||
        off >> 9 != small_block || (off & 511) > 511 - 7)
      return false;
    uint64_t bad = 0;
    uint8_t types = 0;  // the PAMT types ^ REG, or'ed
    // Bit 31: every word's generation is below this check's (so none was reached yet). The
    // generations (bits 30:8) never exceed the current one; a word that did would only send
    // the eight to fast_4k.
    uint32_t older = ~0u;
    for (uint64_t j = 0; j < 8; j++) {
      if (j) bad |= page.e[i + j].load(std::memory_order_relaxed) ^ (raw + (j << 12));
      const tdx::PamtEntry& p = pamt[off + j];
      types |= static_cast<uint8_t>(p.type.load(std::memory_order_relaxed)) ^
               static_cast<uint8_t>(PageType::REG);
      bad |= p.owner.load(std::memory_order_relaxed) ^ tdr;
      older &= (seen.word[off + j] & ~Seen::kNotGen) - seen.stamp;
    }
    if (bad || types || !(older >> 31)) return false;
    for (uint64_t j = 0; j < 8; j++) seen.word[off + j] = seen.stamp | Seen::kPamtOk | 1;
    return true;
  }

  Seen seen_;
  static thread_local SeenBuf seen_buf_;
};
thread_local TdChecker::SeenBuf TdChecker::seen_buf_;

// check_module's quiescent part, before the ledger: out of line, so that the mid-run check
// (at every step) stays small.
[[gnu::noinline]] void check_quiescent(Module& m, Violations* out) {
  // PAMT against the host ledger (what the module owns, the host must have handed over),
  // reported after the per-TD findings. The frame scan that finds it is the one the first TD's
  // check makes anyway; with more TDs each makes its own (its pass needs its own tree's marks).
  Violations host;
  const auto& tds = m.tds();
  if (tds.empty())
    scan_frames<true>(
        m, &host, [](uint64_t, const tdx::PamtEntry&, PageType, int) {},
        [](uint64_t, const tdx::PamtEntry*, const host::Use*, uint64_t g) { return g; },
        [](uint64_t, const tdx::PamtEntry*, const host::Use*) { return false; });
  for (size_t i = 0; i < tds.size(); i++)
    TdChecker(m, *tds[i], /*quiescent=*/true, out).run(i == 0 ? &host : nullptr);
  for (auto& v : host) out->push_back(std::move(v));
}

}  // namespace

void check_module(Module& m, bool quiescent, size_t* ledger_seen, Violations* out) {
  if (quiescent) {
    check_quiescent(m, out);
  } else {
    for (auto& td : m.tds()) TdChecker(m, *td, /*quiescent=*/false, out).run_midrun();
  }
  host::HostPages& h = m.host();
  const auto& lv = h.violations();
  for (size_t i = *ledger_seen; i < lv.size(); i++)
    out->push_back({"module", "host-ledger", lv[i]});
  *ledger_seen = lv.size();
}

}  // namespace check
