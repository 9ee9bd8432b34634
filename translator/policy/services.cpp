#include "translator/policy/services.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <optional>

namespace nf2bpf::policy {

using namespace ir;

namespace {

bool same_value(const MatchValue& a, const MatchValue& b) {
  if (a.index() != b.index()) return false;
  if (auto* x = std::get_if<IntervalSet>(&a)) return *x == std::get<IntervalSet>(b);
  if (auto* x = std::get_if<Masked>(&a)) {
    const auto& y = std::get<Masked>(b);
    return x->mask == y.mask && x->values == y.values;
  }
  if (auto* x = std::get_if<std::vector<IfacePattern>>(&a)) return *x == std::get<std::vector<IfacePattern>>(b);
  const auto &x = std::get<SetRef>(a), &y = std::get<SetRef>(b);
  return x.name == y.name && x.key == y.key;
}

// The same test of the packet, however it was written (`-p tcp`, `meta
// l4proto tcp`, a verdict map key's component).
bool same_test(const Match& a, const Match& b) {
  if (a.field != b.field || a.negated != b.negated || !same_value(a.value, b.value)) return false;
  return a.field != Field::Opaque || (a.module == b.module && a.args == b.args);
}

bool same_tests(const std::vector<Match>& a, size_t na, const std::vector<Match>& b, size_t nb) {
  if (na != nb) return false;
  for (size_t i = 0; i < na; ++i)
    if (!same_test(a[i], b[i])) return false;
  return true;
}

// `-m statistic --mode random --probability P` (the iptables front-end's
// two matches, or the one the flattener makes of a `numgen random` vmap
// element): the matches [end - len, end) it is made of, and P.
struct Draw {
  size_t len = 0;
  double p = 0;
};
std::optional<Draw> random_draw(const std::vector<Match>& ms, size_t end) {
  bool random = false;
  std::optional<double> p;
  size_t i = end;
  while (i > 0 && end - i < 2) {
    const Match& m = ms[i - 1];
    if (m.field != Field::Opaque || m.module != "statistic" || m.negated) break;
    for (const auto& [k, v] : m.args) {
      if (k == "--mode") random = v == "random";
      if (k == "--probability") p = std::atof(v.c_str());
    }
    --i;
  }
  if (!random || !p) return std::nullopt;
  return Draw{end - i, *p};
}

bool jumps(const Verdict& v) { return v.kind == VerdictKind::Jump || v.kind == VerdictKind::Goto; }

// A rule that may pick an endpoint chain: a jump whose only test is one
// random draw (or none: the last of the cascade), or a `numgen random`
// verdict map whose elements all jump.
bool picks_endpoint(const Ruleset& rs, const RuleRef& ref) {
  const Table& t = rs.tables[ref.table];
  const Chain& c = t.chains[ref.chain];
  if (c.base) return false;
  const Rule& r = c.rules[ref.rule];
  if (!r.statements.empty()) return false;
  if (r.vmap) {
    if (r.matches.size() != 1 || r.matches[0].module != kNumgenModule) return false;
    for (const auto& [k, v] : r.matches[0].args)
      if (k == "mode" && v != "random") return false;
    const Set* map = rs.find_set(t, r.vmap->name);
    if (!map) return false;
    for (const auto& e : map->elements)
      if (!e.verdict || !jumps(*e.verdict)) return false;
    return true;
  }
  if (!jumps(r.verdict)) return false;
  if (r.matches.empty()) return true;
  auto d = random_draw(r.matches, r.matches.size());
  return d && d->len == r.matches.size();
}

std::optional<u128> single(const MatchValue& v) {
  auto* s = std::get_if<IntervalSet>(&v);
  if (!s || s->intervals().size() != 1 || s->intervals()[0].lo != s->intervals()[0].hi) return std::nullopt;
  return s->intervals()[0].lo;
}

bool v4_mapped(u128 a) { return (a >> 32) == 0xffff; }

// One recognised group: its flat rules [first, end) become `rule`.
struct Group {
  size_t first = 0, end = 0;
  FlatRule rule;
  Service service;
  std::pair<uint32_t, uint32_t> chain;  // the load-balancing chain (table, chain)
};

class Recogniser {
 public:
  Recogniser(const Ruleset& rs, const DecisionList& dl) : rs_(rs), dl_(dl) {}

  // The group of flat rules starting at `i` (the innermost endpoint-picking
  // jump on their path at the same depth, in the same chain, after the same
  // jumps), recognised or not; `end` is where the next one may start.
  std::optional<Group> at(size_t i, size_t& end) {
    end = i + 1;
    auto q = pick_depth(dl_.rules[i]);
    if (!q) return std::nullopt;
    const FlatRule& f0 = dl_.rules[i];
    auto key = [&](const FlatRule& f, size_t d) {
      if (f.path.size() < d) return false;
      for (size_t k = 0; k < d; ++k)
        if (!(f.path[k] == f0.path[k])) return false;
      if (goto_tail(f, f0.path[d])) return true;
      return f.path.size() > d && f.path[d].table == f0.path[d].table && f.path[d].chain == f0.path[d].chain &&
             pick_depth(f) == d;
    };
    while (end < dl_.rules.size() && key(dl_.rules[end], *q)) ++end;
    return recognise(i, end, *q);
  }

 private:
  const Rule& source(const RuleRef& r) const { return rs_.tables[r.table].chains[r.chain].rules[r.rule]; }

  // After an endpoint chain reached by a goto: the skip to where the
  // load-balancing chain returns. Never taken here: the DNAT before it
  // always matches (recognise() checks that).
  bool goto_tail(const FlatRule& f, const RuleRef& lb) {
    if (f.action != FlatAction::Skip || f.guard || f.origin.table != lb.table || f.origin.chain != lb.chain)
      return false;
    auto [it, fresh] = picks_.try_emplace(f.origin, false);
    if (fresh) it->second = picks_endpoint(rs_, f.origin);
    return it->second;
  }

  std::optional<size_t> pick_depth(const FlatRule& f) {
    if (!f.segments.empty() || f.guard) return std::nullopt;
    for (size_t d = f.path.size(); d-- > 0;) {
      auto [it, fresh] = picks_.try_emplace(f.path[d], false);
      if (fresh) it->second = picks_endpoint(rs_, f.path[d]);
      if (it->second) return d;
    }
    return std::nullopt;
  }

  // The flat rules of one endpoint chain: [a hairpin mark rule,] its DNAT.
  struct Endpoint {
    const FlatRule* mark = nullptr;
    const FlatRule* dnat = nullptr;
    std::optional<Draw> draw;  // its share of the cascade
    size_t prefix = 0;         // matches before the draw: the jumps' that led to the chain
  };

  // Splits a flat rule's matches: prefix, [draw], then `own` matches of the
  // endpoint chain's rules. False when they do not have that form.
  bool split(const FlatRule& f, size_t own, Endpoint& e) {
    if (f.matches.size() < own) return false;
    size_t rest = f.matches.size() - own;
    std::optional<Draw> draw = random_draw(f.matches, rest);
    size_t prefix = draw ? rest - draw->len : rest;
    if (e.mark) {  // the endpoint's other rule: the same prefix and draw
      if (prefix != e.prefix || draw.has_value() != e.draw.has_value()) return false;
      if (draw && !same_tests(f.matches, rest, e.mark->matches, e.prefix + draw->len)) return false;
    }
    e.draw = draw;
    e.prefix = prefix;
    return true;
  }

  std::optional<Group> recognise(size_t first, size_t end, size_t q) {
    // Endpoint chains, in order: the chain of path[q + 1] or of the origin.
    std::vector<Endpoint> eps;
    std::vector<std::pair<uint32_t, uint32_t>> ep_chain;
    for (size_t i = first; i < end; ++i) {
      const FlatRule& f = dl_.rules[i];
      if (goto_tail(f, f.origin)) {
        if (eps.empty() || !eps.back().dnat) return std::nullopt;
        continue;
      }
      const RuleRef& at = f.path.size() > q + 1 ? f.path[q + 1] : f.origin;
      std::pair<uint32_t, uint32_t> c{at.table, at.chain};
      if (ep_chain.empty() || ep_chain.back() != c || eps.back().dnat) {
        eps.emplace_back();
        ep_chain.push_back(c);
      }
      Endpoint& e = eps.back();
      if (f.action == FlatAction::Continue && f.path.size() <= q + 2 && f.statements.size() == 1 &&
          f.statements[0].kind == StmtKind::SetMark && !e.mark) {
        // `-s ENDPOINT -j KUBE-MARK-MASQ`: the test in the endpoint chain,
        // the mark in the chain it jumps to (which tests nothing).
        size_t own = source(f.origin).matches.size();
        if (f.path.size() == q + 2) {
          if (own) return std::nullopt;
          own = source(f.path[q + 1]).matches.size();
        }
        if (own != 1 || !split(f, own, e)) return std::nullopt;
        const Match& m = f.matches.back();
        if (m.field != Field::SrcAddr || m.negated || !single(m.value)) return std::nullopt;
        e.mark = &f;
        continue;
      }
      if (!f.terminal() || f.path.size() != q + 1 || f.statements.size() != 1 ||
          f.statements[0].kind != StmtKind::Dnat || e.dnat)
        return std::nullopt;
      const NatSpec& n = f.statements[0].nat;
      if (!n.addrs || n.addrs->intervals().size() != 1 || !n.ports || n.ports->first != n.ports->second || n.random ||
          n.fully_random || n.persistent || n.from_map || n.service)
        return std::nullopt;
      const auto& iv = n.addrs->intervals()[0];
      if (iv.lo != iv.hi) return std::nullopt;
      if (!split(f, source(f.origin).matches.size(), e)) return std::nullopt;
      e.dnat = &f;
    }
    size_t k = eps.size();
    if (!k) return std::nullopt;
    const FlatRule& lead = *eps[0].dnat;
    size_t prefix = eps[0].prefix;
    Group g;
    Service& sv = g.service;
    for (size_t j = 0; j < k; ++j) {
      const Endpoint& e = eps[j];
      if (!e.dnat) return std::nullopt;
      // A uniform cascade: the j-th of k is drawn with chance 1/(k - j),
      // the last one unconditionally (iptables) or with chance 1 (numgen).
      double want = 1.0 / (double)(k - j);
      if (e.draw ? std::fabs(e.draw->p - want) > 1e-6 * want : j + 1 != k) return std::nullopt;
      if (!same_tests(e.dnat->matches, e.prefix, lead.matches, prefix)) return std::nullopt;
      // The DNAT rule's own tests (`-p tcp`) must already hold on the way
      // in, so that the draw and the hairpin mark happen exactly when the
      // translation does.
      for (size_t m = e.prefix + (e.draw ? e.draw->len : 0); m < e.dnat->matches.size(); ++m) {
        bool implied = false;
        for (size_t p = 0; p < prefix && !implied; ++p) implied = same_test(e.dnat->matches[m], lead.matches[p]);
        if (!implied) return std::nullopt;
      }
      const Statement& st = e.dnat->statements[0];
      ServiceBackend b{st.nat.addrs->intervals()[0].lo, st.nat.ports->first};
      uint8_t fam = v4_mapped(b.addr) ? 4 : 6;
      if (j && fam != sv.family) return std::nullopt;
      sv.family = fam;
      if (e.mark) {
        if (*single(e.mark->matches.back().value) != b.addr) return std::nullopt;
        const Statement& ms = e.mark->statements[0];
        uint32_t mask = (uint32_t)ms.mask, value = (uint32_t)ms.value;
        if (!mask || (j && (mask != sv.mark_mask || value != sv.mark_value))) return std::nullopt;
        sv.mark_mask = mask, sv.mark_value = value;
      } else if (sv.mark_mask) {
        return std::nullopt;
      }
      if (!e.mark && j && eps[0].mark) return std::nullopt;
      sv.backends.push_back(b);
    }
    const RuleRef& lb = lead.path[q];
    const Table& t = rs_.tables[lb.table];
    sv.name = t.name + "/" + t.chains[lb.chain].name;
    g.chain = {lb.table, lb.chain};
    g.first = first;
    g.end = end;
    FlatRule& r = g.rule;
    for (size_t m = 0; m < prefix; ++m)
      if (lead.matches[m].module != kNumgenModule) r.matches.push_back(lead.matches[m]);
    r.statements = {lead.statements[0]};
    r.statements[0].nat = NatSpec{};
    r.action = lead.action;
    r.origin = lb;
    r.path.assign(lead.path.begin(), lead.path.begin() + (long)q);
    return g;
  }

  const Ruleset& rs_;
  const DecisionList& dl_;
  std::map<RuleRef, bool> picks_;
};

}  // namespace

bool lower_services(const Ruleset& rs, const Pipeline& in, Pipeline& out, std::vector<Service>& services) {
  std::vector<Service> found;
  std::map<std::pair<uint32_t, uint32_t>, std::vector<uint32_t>> by_chain;  // a chain's services
  Pipeline p;
  p.stages.reserve(in.stages.size());
  for (const auto& dl : in.stages) {
    bool dst = dl.hook == Hook::Prerouting || dl.hook == Hook::Output;
    if (dl.type != ChainType::Nat || !dst) {
      p.stages.push_back(dl);
      continue;
    }
    Recogniser rec(rs, dl);
    std::vector<Group> groups;
    for (size_t i = 0, end = 0; i < dl.rules.size(); i = end)
      if (auto g = rec.at(i, end)) groups.push_back(std::move(*g));
    // A skip into the middle of a group (never made by a chain of this
    // shape) would lose its target: such a group stays as it is.
    std::vector<bool> inside(dl.rules.size() + 1, false);
    for (const auto& g : groups)
      for (size_t i = g.first + 1; i < g.end; ++i) inside[i] = true;
    for (const auto& f : dl.rules)
      if (f.action == FlatAction::Skip && inside[f.skip_to])
        for (auto& g : groups)
          if (f.skip_to > g.first && f.skip_to < g.end) g.end = g.first;  // dropped below
    std::erase_if(groups, [](const Group& g) { return g.end == g.first; });
    DecisionList nd = dl;
    nd.rules.clear();
    std::vector<uint32_t> remap(dl.rules.size() + 1, 0);
    size_t gi = 0;
    for (size_t i = 0; i < dl.rules.size();) {
      remap[i] = (uint32_t)nd.rules.size();
      if (gi < groups.size() && groups[gi].first == i) {
        Group& g = groups[gi++];
        // One service per chain and backend set (a chain inlined at several
        // frontends is one service).
        auto& ids = by_chain[g.chain];
        auto same = std::find_if(ids.begin(), ids.end(), [&](uint32_t id) { return found[id] == g.service; });
        uint32_t id = same != ids.end() ? *same : (uint32_t)found.size();
        if (same == ids.end()) {
          ids.push_back(id);
          found.push_back(g.service);
        }
        g.rule.statements[0].nat.service = id + 1;
        for (size_t k = g.first; k < g.end; ++k) remap[k] = (uint32_t)nd.rules.size();
        nd.rules.push_back(std::move(g.rule));
        i = g.end;
        continue;
      }
      nd.rules.push_back(dl.rules[i++]);
    }
    remap[dl.rules.size()] = (uint32_t)nd.rules.size();
    for (auto& f : nd.rules)
      if (f.action == FlatAction::Skip) f.skip_to = remap[f.skip_to];
    p.stages.push_back(std::move(nd));
  }
  if (found.empty()) return false;
  out = std::move(p);
  services = std::move(found);
  return true;
}

}  // namespace nf2bpf::policy
