#include "verify/rule_index.h"

#include <algorithm>
#include <optional>

namespace nf2bpf::verify {

using ir::Field;
using ir::u128;

namespace {

constexpr size_t kMinRules = 32;          // below this, a plain scan is as fast
constexpr size_t kMaxPiecesPerRule = 64;  // wider constraints make a rule a wildcard

bool port_proto(uint8_t p) { return p == 6 || p == 17 || p == 136 || p == 132 || p == 33; }

// The values of `f` a rule allows for sure: the intersection of its plain
// (not negated) interval matches on f; nullopt when it has none.
std::optional<ir::IntervalSet> constraint(const ir::FlatRule& fr, Field f, size_t limit = SIZE_MAX) {
  std::optional<ir::IntervalSet> c;
  for (size_t i = 0; i < fr.matches.size() && i < limit; ++i) {
    const auto& m = fr.matches[i];
    // A counter (-m statistic --mode nth) or a list (-m recent) moves
    // whatever the matches after it say: only those before it may rule the
    // packet out.
    if (m.module == "statistic" || m.module == "recent") break;
    if (m.field != f || m.negated) continue;
    const auto* s = std::get_if<ir::IntervalSet>(&m.value);
    if (!s) continue;
    c = c ? c->intersect(*s) : *s;
  }
  return c;
}

}  // namespace

RuleIndex::RuleIndex(const ir::DecisionList& dl, const std::vector<size_t>& entry) {
  const size_t n = dl.rules.size();
  if (n < kMinRules) return;
  // The first rule of each inlined region is visited whenever the jumps up
  // to it can match, so the jump that leads into it is tested (and counted)
  // where the kernel tests it.
  std::vector<size_t> jump_matches(n, kNoEntry);
  for (size_t i = 0; i < n; ++i)
    if (i < entry.size())
      jump_matches[i] = entry[i];
    else if (!dl.rules[i].path.empty() && (i == 0 || dl.rules[i - 1].path != dl.rules[i].path))
      jump_matches[i] = kUnknown;

  size_t best_wild = n;
  for (Field f : {Field::SrcAddr, Field::DstAddr, Field::DstPort, Field::SrcPort}) {
    std::vector<std::optional<ir::IntervalSet>> cons(n);
    std::vector<u128> cuts;
    for (size_t i = 0; i < n; ++i) {
      if (jump_matches[i] == kNoEntry)
        cons[i] = constraint(dl.rules[i], f);
      else if (jump_matches[i] != kUnknown)
        // Only what its jumps test: they are tested (and counted) here
        // whatever the rule's deeper jumps and own matches say.
        cons[i] = constraint(dl.rules[i], f, jump_matches[i]);
      if (!cons[i]) continue;
      for (const auto& iv : cons[i]->intervals()) {
        cuts.push_back(iv.lo);
        if (iv.hi != ir::kU128Max) cuts.push_back(iv.hi + 1);
      }
    }
    std::sort(cuts.begin(), cuts.end());
    cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
    std::vector<std::vector<uint32_t>> lists(cuts.size());
    std::vector<uint32_t> wild;
    for (size_t i = 0; i < n; ++i) {
      if (!cons[i]) {
        wild.push_back((uint32_t)i);
        continue;
      }
      // Pieces each interval spans; too many makes the rule a wildcard.
      std::vector<std::pair<size_t, size_t>> spans;
      size_t pieces = 0;
      for (const auto& iv : cons[i]->intervals()) {
        size_t a = (size_t)(std::lower_bound(cuts.begin(), cuts.end(), iv.lo) - cuts.begin());
        size_t b = iv.hi == ir::kU128Max
                       ? cuts.size()
                       : (size_t)(std::lower_bound(cuts.begin(), cuts.end(), iv.hi + 1) - cuts.begin());
        spans.emplace_back(a, b);
        pieces += b - a;
      }
      if (pieces > kMaxPiecesPerRule) {
        wild.push_back((uint32_t)i);
        continue;
      }
      for (auto [a, b] : spans)
        for (size_t k = a; k < b; ++k) lists[k].push_back((uint32_t)i);
    }
    if (wild.size() < best_wild && wild.size() * 2 < n) {
      best_wild = wild.size();
      enabled_ = true;
      field_ = f;
      starts_ = std::move(cuts);
      lists_ = std::move(lists);
      wild_ = std::move(wild);
    }
  }
}

void RuleIndex::candidates(const pkt::Packet& p, std::vector<uint32_t>& out) const {
  out.clear();
  std::optional<u128> v;
  switch (field_) {
    case Field::SrcAddr: v = p.saddr; break;
    case Field::DstAddr: v = p.daddr; break;
    case Field::SrcPort:
      if (p.has_l4 && port_proto(p.l4proto)) v = p.sport;
      break;
    case Field::DstPort:
      if (p.has_l4 && port_proto(p.l4proto)) v = p.dport;
      break;
    default: break;
  }
  const std::vector<uint32_t>* specific = nullptr;
  if (v) {
    auto it = std::upper_bound(starts_.begin(), starts_.end(), *v);
    if (it != starts_.begin()) specific = &lists_[(size_t)(it - starts_.begin()) - 1];
  }
  if (!specific || specific->empty()) {
    out = wild_;
    return;
  }
  out.resize(specific->size() + wild_.size());
  auto end = std::set_union(specific->begin(), specific->end(), wild_.begin(), wild_.end(), out.begin());
  out.resize((size_t)(end - out.begin()));
}

}  // namespace nf2bpf::verify
