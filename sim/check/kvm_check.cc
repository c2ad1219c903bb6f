#include "sim/check/kvm_check.h"
#include "sim/host/hex.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

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

// The TD whose S-EPT `mirror-sept` compares against, or null when there is nothing to compare.
tdx::Td* mirror_sept_td(kvm::Kvm& k) {
  tdx::Td* td = k.module().td_of(k.tdr());
  return td && k.hkid_assigned() ? td : nullptr;
}

// `mirror-sept` messages, shared by the side-by-side walk and the per-entry reference. Out of
// line and cold, here and for `page-owner`: inlined, their string code would make the walks
// spill registers at every entry.
[[gnu::cold, gnu::noinline]] Violation missing(uint64_t gfn, int level, bool leaf, int stop_level,
                                               tdx::SeptEntry stop) {
  return {"mirror-sept", "missing",
          "GFN " + hex(gfn) + " " + kvm_level(level) + ": mirror has a " +
              (leaf ? "leaf" : "table") + ", the S-EPT walk stops at " +
              tdx::level_name(stop_level) + " (" + tdx::state_name(stop.state()) + ")"};
}
[[gnu::cold, gnu::noinline]] Violation leaf_mismatch(uint64_t gfn, int level, uint64_t spte,
                                                     tdx::SeptEntry e, int tl) {
  return {"mirror-sept", "leaf",
          "GFN " + hex(gfn) + " " + kvm_level(level) + ": mirror leaf PFN " +
              hex(kvm::spte_pfn(spte)) + ", S-EPT " + tdx::state_name(e.state()) + " HPA " +
              hex(e.hpa(tl))};
}
[[gnu::cold, gnu::noinline]] Violation table_mismatch(uint64_t gfn, int level, uint64_t ext,
                                                      tdx::SeptEntry e) {
  return {"mirror-sept", "table",
          "GFN " + hex(gfn) + " " + kvm_level(level) + ": mirror table with external_spt " +
              hex(ext) + ", S-EPT " + tdx::state_name(e.state()) + " -> " + hex(e.hpa_bits())};
}
[[gnu::cold, gnu::noinline]] Violation extra(uint64_t gpa, int level, tdx::SeptEntry e,
                                             bool present) {
  return {"mirror-sept", "extra",
          "GFN " + hex(gpa >> 12) + " " + tdx::level_name(level) + ": S-EPT has " +
              tdx::state_name(e.state()) + ", the mirror " +
              (present ? "a different kind of entry" : "nothing")};
}
// After the per-entry findings: the leaf counts against kvm->stat, and the premapped leaves.
void report_counts(kvm::Kvm& k, const int64_t leaves[5], uint64_t premapped_free, Violations* out) {
  for (int level = kvm::kPg4K; level <= kvm::kPg1G; level++)
    if (leaves[level] != k.page_stats(level))
      out->push_back({"mirror-sept", "page-stats",
                      std::string("pages_") + kvm_level(level) + " is " +
                          std::to_string(k.page_stats(level)) + ", the mirror has " +
                          std::to_string(leaves[level]) + " leaves"});
  if (premapped_free > static_cast<uint64_t>(k.nr_premapped()))
    out->push_back({"mirror-sept", "premap",
                    std::to_string(premapped_free) +
                        " mirror leaves have no S-EPT page, but nr_premapped is " +
                        std::to_string(k.nr_premapped())});
}

// Frame offset in the host pool -> the GFN that maps it, for `page-owner`. An entry counts
// only when its stamp is this check's, so a check neither clears nor scans the pool.
struct FrameMarks {
  std::vector<uint32_t> stamp;
  std::vector<uint64_t> gfn;
  uint32_t gen = 0;
  void begin(uint64_t npages) {
    if (stamp.size() < npages) stamp.resize(npages, 0), gfn.resize(npages);
    if (++gen == 0) std::fill(stamp.begin(), stamp.end(), 0), gen = 1;
  }
};

// One depth-first walk of the mirror and, beside it, of the S-EPT: the mirror table and the
// S-EPT table reached by the same index path are visited together, so each entry is compared
// with its twin without a root-to-leaf walk per entry. It finds what the per-entry formulation
// (check_mirror_sept_reference) finds, in the same order, as long as every mirror table sits
// where its index path says (level and GFN, as tdp_mmu_alloc_sp makes them); when one does
// not, paired() is false and the caller falls back to the reference.
// With `owner` it also does `page-owner` for every mirror leaf, in walk_visit order.
class MirrorWalk {
 public:
  MirrorWalk(kvm::Kvm& k, tdx::Td* td, bool owner)
      : k_(k), m_(k.module()), h_(k.host()), td_(td), sept_(td != nullptr), owner_(owner) {}

  void run() {
    const kvm::KvmMmuPage* root = k_.sp(k_.mirror_root());
    tdx::SeptPage* s = nullptr;
    if (sept_) {
      runnable_ = k_.td_state() == kvm::TdState::RUNNABLE;
      s = m_.sept_page(td_->root);
      if (!s || root->level != tdx::kPwl + 1 || root->gfn != 0) sept_ = false;
    }
    if (owner_) {
      marks_.begin(h_.npages());
      use_ = &marks_;
    }
    visit(root, s, tdx::kPwl, 0, nullptr, 0);
  }
  bool paired() const { return sept_; }
  // The `mirror-sept` findings, in the reference's order.
  void report(Violations* out) {
    for (auto& v : forward_) out->push_back(std::move(v));
    report_counts(k_, leaves_, premapped_free_, out);
    for (auto& v : extra_) out->push_back(std::move(v));
  }
  Violations owner_found;

 private:
  // `p`: the mirror table (null: the mirror has no table here); `s`: the S-EPT table on the
  // same index path, entries at TDX level `l` (null: none); `stop`: the entry where the
  // module's walk (Module::walk) towards `p`'s entries stops, at `stop_level` (null: it
  // reaches `s`).
  void visit(const kvm::KvmMmuPage* p, tdx::SeptPage* s, int l, uint64_t gpa_base,
             const std::atomic<uint64_t>* stop, int stop_level) {
    if (p && s && sept_ && !stop && l == tdx::kLevel4K && p->level == kvm::kPg4K)
      return visit_4k(*p, *s, gpa_base);
    for (uint64_t c = 0;; c += 8) {
      c = next_chunk(p, sept_ ? s : nullptr, c);  // sept_ may have changed
      if (c == 512) break;
      for (uint64_t i = c; i < c + 8; i++) visit_entry(p, s, l, gpa_base, stop, stop_level, i);
    }
  }

  // Upper tables are mostly empty: eight entries at a time, the first chunk from `c` on (or
  // 512) where an entry is present in the mirror (null: no table) or not FREE in the S-EPT
  // (null: none compared). One loop for each pair of tables, so that it keeps to registers.
  static uint64_t next_chunk(const kvm::KvmMmuPage* p, const tdx::SeptPage* s, uint64_t c) {
    if (p && s) return scan_chunks<true, true>(p, s, c);
    if (p) return scan_chunks<true, false>(p, s, c);
    if (s) return scan_chunks<false, true>(p, s, c);
    return 512;
  }
  template <bool kMirror, bool kSept>
  static uint64_t scan_chunks(const kvm::KvmMmuPage* p, const tdx::SeptPage* s, uint64_t c) {
    for (; c < 512; c += 8) {
      uint64_t sptes = 0, entries = 0;
      if (kMirror) sptes = or8(&p->spt[c]);
      if (kSept) entries = or8(&s->e[c]);
      if (kvm::is_shadow_present(sptes) || (entries & 0xf)) break;
    }
    return c;
  }
  static uint64_t or8(const std::atomic<uint64_t>* q) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= q[i].load(std::memory_order_relaxed);
    return v;
  }

  // Entry `i` of visit()'s tables.
  [[gnu::always_inline]] void visit_entry(const kvm::KvmMmuPage* p, tdx::SeptPage* s, int l,
                                          uint64_t gpa_base, const std::atomic<uint64_t>* stop,
                                          int stop_level, uint64_t i) {
    {
      const uint64_t spte = p ? p->spt[i].load(std::memory_order_relaxed) : kvm::kShadowNonpresent;
      const bool present = kvm::is_shadow_present(spte);
      const tdx::SeptEntry e{s && sept_ ? s->e[i].load(std::memory_order_relaxed) : 0};
      if (!present && e.state() == tdx::SeptState::FREE) return;
      const kvm::KvmMmuPage* child = nullptr;
      uint64_t gfn = 0;
      int level = 0;
      if (present) {
        level = p->level;
        gfn = p->gfn + i * kvm::pages_per(level);
        const bool leaf = kvm::is_last_spte(spte, level);
        if (!leaf) child = k_.sp(kvm::spte_pfn(spte));
        if (leaf && owner_) page_owner(gfn, level, spte);
        if (child && (child->level != level - 1 || child->gfn != gfn)) sept_ = false;
        if (sept_)
          forward(gfn, level, spte, leaf, child, s ? &s->e[i] : nullptr, e, l, stop, stop_level);
      }
      if (!sept_) {
        if (child) visit(child, nullptr, 0, 0, nullptr, 0);
        return;
      }
      const uint64_t gpa = gpa_base + (i << tdx::level_shift(l));
      // Reverse direction: nothing in the S-EPT that the mirror lacks (the mirror entry at
      // this index path and level is the one mirror_spte_at finds).
      if (e.state() != tdx::SeptState::FREE &&
          (!present || kvm::is_last_spte(spte, l + 1) != tdx::is_leaf(e.state())))
        extra_.push_back(extra(gpa, l, e, present));
      // The S-EPT child walk_sept would visit, and where Module::walk stops for the mirror's.
      tdx::SeptPage* cs = nullptr;
      if (tdx::is_non_leaf(e.state()) && l > 0) cs = m_.sept_page(e.hpa_bits());
      if (child) {
        const std::atomic<uint64_t>* cstop = stop;
        int cstop_level = stop_level;
        if (!stop && !(e.state() == tdx::SeptState::NL_MAPPED && cs))
          cstop = &s->e[i], cstop_level = l;
        visit(child, cs, l - 1, gpa, cstop, cstop_level);
      } else if (cs) {
        visit(nullptr, cs, l - 1, gpa, nullptr, 0);
      }
    }
  }

  // visit() for a 4K mirror table and its S-EPT twin, where most entries are: every present
  // entry is a leaf, nothing has children, and the module's walk reaches `s`. The common entry,
  // a leaf whose twin is MAPPED or PENDING at its frame, a frame in use and not marked yet, is
  // done by fast_4k; any other goes to entry_4k, from scratch.
  [[gnu::noinline]] void visit_4k(const kvm::KvmMmuPage& p, tdx::SeptPage& s, uint64_t gpa_base) {
    const uint32_t gen = owner_ ? use_->gen : 0;
    uint32_t* const stamp = owner_ ? use_->stamp.data() : nullptr;
    uint64_t* const mark_gfn = owner_ ? use_->gfn.data() : nullptr;
    int64_t leaves = 0;
    for (uint64_t i = 0;; i++) {
      i = owner_ ? fast_4k<true>(p, s, i, gen, stamp, mark_gfn, &leaves)
                 : fast_4k<false>(p, s, i, gen, stamp, mark_gfn, &leaves);
      if (i == 512) break;
      entry_4k(p, s, gpa_base, i);
    }
    leaves_[kvm::kPg4K] += leaves;
  }

  // visit_4k's entries from `i` on, up to the first one that needs entry_4k: returns its index,
  // or 512. It calls nothing, so that what it uses stays in registers.
  template <bool kOwner>
  [[gnu::always_inline]] uint64_t fast_4k(const kvm::KvmMmuPage& p, tdx::SeptPage& s, uint64_t i,
                                          uint32_t gen, uint32_t* stamp, uint64_t* mark_gfn,
                                          int64_t* leaves_out) {
    const host::Use* const use = h_.uses();
    const uint64_t base = h_.base_pfn(), npages = h_.npages(), gfn0 = p.gfn;
    int64_t leaves = *leaves_out;
    for (; i < 512; i++) {
      if (!(i & 7))
        while (i < 512 && run8<kOwner>(p, s, i, {use, base, npages, gfn0, gen, stamp, mark_gfn}))
          i += 8, leaves += 8;
      if (i == 512) break;
      const uint64_t spte = p.spt[i].load(std::memory_order_relaxed);
      const uint64_t raw = s.e[i].load(std::memory_order_relaxed);
      const tdx::SeptState st = tdx::SeptEntry{raw}.state();
      if (!kvm::is_shadow_present(spte)) {
        if (st != tdx::SeptState::FREE) break;
        continue;
      }
      // A 4K leaf's HPA and a leaf SPTE's PFN field are the same bits.
      static_assert(tdx::kHpaMask == kvm::kSptePfnMask);
      if ((st != tdx::SeptState::MAPPED && st != tdx::SeptState::PENDING) ||
          ((raw ^ spte) & tdx::kHpaMask))
        break;
      if (kOwner) {  // page_owner() for one frame
        const uint64_t f = kvm::spte_pfn(spte) - base;
        if (f >= npages || use[f] == host::Use::kFree || stamp[f] == gen) break;
        stamp[f] = gen;
        mark_gfn[f] = gfn0 + i;
      }
      leaves++;
    }
    *leaves_out = leaves;
    return i;
  }

  // fast_4k's locals, by value: run8's stores could alias members.
  struct Fast4k {
    const host::Use* use;
    uint64_t base, npages, gfn0;
    uint32_t gen;
    uint32_t* stamp;
    uint64_t* mark_gfn;
  };

  // fast_4k for the eight entries from `i` (a multiple of 8) when their S-EPT twins map eight
  // consecutive frames with the same bits otherwise (as a split leaves them; distinct frames,
  // so none is marked twice within the eight) and each passes: returns true once they are
  // marked. Tested without branches, all eight at once; on false nothing has changed.
  template <bool kOwner>
  [[gnu::always_inline]] static bool run8(const kvm::KvmMmuPage& p, const tdx::SeptPage& s,
                                          uint64_t i, const Fast4k v) {
    const uint64_t raw = s.e[i].load(std::memory_order_relaxed);
    const tdx::SeptState st = tdx::SeptEntry{raw}.state();
    if (st != tdx::SeptState::MAPPED && st != tdx::SeptState::PENDING) return false;
    const uint64_t f = ((raw & tdx::kHpaMask) >> 12) - v.base;
    if (kOwner && (f >= v.npages || v.npages - f < 8)) return false;
    // The SPTEs too are consecutive, with the same bits otherwise: the first one's tests hold
    // for all.
    const uint64_t spte = p.spt[i].load(std::memory_order_relaxed);
    uint64_t bad = ((raw ^ spte) & tdx::kHpaMask) | (~spte & kvm::kSptePresent);
    for (uint64_t j = 1; j < 8; j++) {
      bad |= s.e[i + j].load(std::memory_order_relaxed) ^ (raw + (j << 12));
      bad |= p.spt[i + j].load(std::memory_order_relaxed) ^ (spte + (j << 12));
    }
    if (kOwner) {
      // No frame free (kFree is 0: the has-a-zero-byte test) and none marked already.
      static_assert(static_cast<int>(host::Use::kFree) == 0 && sizeof(host::Use) == 1);
      uint64_t uses;
      std::memcpy(&uses, v.use + f, 8);
      bad |= (uses - 0x0101010101010101ull) & ~uses & 0x8080808080808080ull;
      // Bit 63: every stamp is below this check's generation (so none is marked yet). Stamps
      // never exceed the current generation; one that did would only send the eight to fast_4k.
      uint64_t older = ~0ull;
      for (uint64_t j = 0; j < 8; j++) older &= uint64_t{v.stamp[f + j]} - v.gen;
      if (bad || !(older >> 63)) return false;
      for (uint64_t j = 0; j < 8; j++) v.stamp[f + j] = v.gen, v.mark_gfn[f + j] = v.gfn0 + i + j;
    }
    return !bad;
  }

  // Entry `i` of visit_4k's tables.
  [[gnu::noinline]] void entry_4k(const kvm::KvmMmuPage& p, tdx::SeptPage& s, uint64_t gpa_base,
                                  uint64_t i) {
    const uint64_t spte = p.spt[i].load(std::memory_order_relaxed);
    const tdx::SeptEntry e{s.e[i].load(std::memory_order_relaxed)};
    const tdx::SeptState st = e.state();
    if (!kvm::is_shadow_present(spte)) {
      if (st != tdx::SeptState::FREE) extra_.push_back(extra(gpa_base + (i << 12), 0, e, false));
      return;
    }
    const uint64_t gfn = p.gfn + i;
    if (owner_) page_owner(gfn, kvm::kPg4K, spte);
    leaves_[kvm::kPg4K]++;
    if (st == tdx::SeptState::FREE && !runnable_) {
      premapped_free_++;  // build time: faulted in, not PAGE.ADDed yet (§5.1 exception a)
    } else if ((st != tdx::SeptState::MAPPED && st != tdx::SeptState::PENDING) ||
               e.hpa(tdx::kLevel4K) != kvm::spte_pfn(spte) << 12) {
      forward_.push_back(leaf_mismatch(gfn, kvm::kPg4K, spte, e, tdx::kLevel4K));
    }
    if (st != tdx::SeptState::FREE && !tdx::is_leaf(st))
      extra_.push_back(extra(gpa_base + (i << 12), 0, e, true));
  }

  // The mirror entry against its twin `e` at `slot` (TDX level `l`), or against where the
  // module's walk stopped.
  void forward(uint64_t gfn, int level, uint64_t spte, bool leaf, const kvm::KvmMmuPage* child,
               const std::atomic<uint64_t>* slot, tdx::SeptEntry e, int l,
               const std::atomic<uint64_t>* stop, int stop_level) {
    if (leaf) leaves_[level]++;
    if (stop) {
      forward_.push_back(missing(gfn, level, leaf, stop_level,
                                 tdx::SeptEntry{stop->load(std::memory_order_relaxed)}));
      return;
    }
    if (!slot || level != l + 1) {  // off the index path: leave it to the reference
      sept_ = false;
      return;
    }
    if (leaf) {
      if (e.state() == tdx::SeptState::FREE && !runnable_) {
        premapped_free_++;  // build time: faulted in, not PAGE.ADDed yet (§5.1 exception a)
        return;
      }
      if ((e.state() != tdx::SeptState::MAPPED && e.state() != tdx::SeptState::PENDING) ||
          e.hpa(l) != kvm::spte_pfn(spte) << 12)
        forward_.push_back(leaf_mismatch(gfn, level, spte, e, l));
    } else if (e.state() != tdx::SeptState::NL_MAPPED || e.hpa_bits() != child->external_spt) {
      forward_.push_back(table_mismatch(gfn, level, child->external_spt, e));
    }
  }

  // page-owner: a frame a mirror leaf maps is neither free nor mapped twice.
  void page_owner(uint64_t gfn, int level, uint64_t spte) {
    for (uint64_t j = 0; j < kvm::pages_per(level); j++) {
      const uint64_t pfn = kvm::spte_pfn(spte) + j;
      if (h_.use(pfn) == host::Use::kFree) mapped_free(gfn + j, pfn);
      if (!h_.contains(pfn)) continue;
      const uint64_t f = pfn - h_.base_pfn();
      if (use_->stamp[f] == use_->gen) mapped_twice(pfn, use_->gfn[f], gfn + j);
      use_->stamp[f] = use_->gen;
      use_->gfn[f] = gfn + j;
    }
  }

  [[gnu::cold, gnu::noinline]] void mapped_free(uint64_t gfn, uint64_t pfn) {
    owner_found.push_back({"page-owner", "mapped-free",
                           "GFN " + hex(gfn) + " maps PFN " + hex(pfn) + ", which is free"});
  }
  [[gnu::cold, gnu::noinline]] void mapped_twice(uint64_t pfn, uint64_t at, uint64_t gfn) {
    owner_found.push_back(
        {"page-owner", "mapped-twice",
         "PFN " + hex(pfn) + " is mapped at GFN " + hex(at) + " and GFN " + hex(gfn)});
  }

  kvm::Kvm& k_;
  tdx::Module& m_;
  host::HostPages& h_;
  tdx::Td* td_;
  bool sept_, owner_, runnable_ = false;
  int64_t leaves_[5] = {0, 0, 0, 0, 0};
  uint64_t premapped_free_ = 0;
  Violations forward_, extra_;
  FrameMarks* use_ = nullptr;
  static thread_local FrameMarks marks_;
};
thread_local FrameMarks MirrorWalk::marks_;

}  // namespace

void check_mirror_sept_reference(kvm::Kvm& k, Violations* out) {
  tdx::Module& m = k.module();
  tdx::Td* td = mirror_sept_td(k);
  if (!td) return;
  uint64_t premapped_free = 0;
  int64_t leaves[5] = {0, 0, 0, 0, 0};
  k.for_each_mirror_spte([&](uint64_t gfn, int level, uint64_t spte, bool leaf, uint64_t ext) {
    if (leaf) leaves[level]++;
    const int tl = kvm::tdx_level(level);
    auto w = m.walk(*td, gfn << 12, tl);
    const tdx::SeptEntry e{w.slot->load(std::memory_order_relaxed)};
    if (!w.reached) return out->push_back(missing(gfn, level, leaf, w.level, e));
    if (leaf) {
      if (e.state() == tdx::SeptState::FREE && k.td_state() != kvm::TdState::RUNNABLE) {
        premapped_free++;  // build time: faulted in, not PAGE.ADDed yet (§5.1 exception a)
        return;
      }
      if ((e.state() != tdx::SeptState::MAPPED && e.state() != tdx::SeptState::PENDING) ||
          e.hpa(tl) != kvm::spte_pfn(spte) << 12)
        out->push_back(leaf_mismatch(gfn, level, spte, e, tl));
    } else if (e.state() != tdx::SeptState::NL_MAPPED || e.hpa_bits() != ext) {
      out->push_back(table_mismatch(gfn, level, ext, e));
    }
  });
  report_counts(k, leaves, premapped_free, out);
  // Nothing in the S-EPT that the mirror does not have.
  auto f = [&](uint64_t gpa, int level, tdx::SeptEntry e) {
    uint64_t spte;
    const bool present = k.mirror_spte_at(gpa >> 12, level + 1, &spte);
    if (!present || kvm::is_last_spte(spte, level + 1) != tdx::is_leaf(e.state()))
      out->push_back(extra(gpa, level, e, present));
  };
  walk_sept(m, td->root, tdx::kPwl, 0, f);
}

void check_mirror_sept(kvm::Kvm& k, Violations* out) {
  tdx::Td* td = mirror_sept_td(k);
  if (!td) return;
  MirrorWalk w(k, td, /*owner=*/false);
  w.run();
  if (w.paired())
    w.report(out);
  else
    check_mirror_sept_reference(k, out);
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
  const size_t first_module = out->size();
  check_module(k.module(), quiescent, &cur->ledger, out);
  for (size_t i = first_module; i < out->size(); i++) {
    Violation& v = (*out)[i];
    if (v.site == "host-ledger" || v.site == "pamt-vs-host") v.property = "page-owner";
  }
  if (!quiescent || k.vm_bugged()) return;
  // `mirror-sept`, then `page-owner` for the mirror's leaves, from one walk of the mirror.
  tdx::Td* td = mirror_sept_td(k);
  MirrorWalk w(k, td, /*owner=*/true);
  w.run();
  if (td) {
    if (w.paired())
      w.report(out);
    else
      check_mirror_sept_reference(k, out);
  }
  for (auto& v : w.owner_found) out->push_back(std::move(v));
  g.check_tlbs(out);
  if (k.wait_for_sept_zap())
    out->push_back(
        {"liveness", "wait_for_sept_zap", "wait_for_sept_zap left set: no vCPU can enter again"});
  if (k.mmu_lock().writer || k.mmu_lock().readers)
    out->push_back({"liveness", "mmu_lock", "kvm->mmu_lock left held after the operation"});
}

}  // namespace check
