#include "translator/passes/flatten.h"

#include <algorithm>
#include <string_view>
#include <unordered_map>

namespace nf2bpf::passes {

using namespace ir;

namespace {

// Fields a statement can change while a chain runs, as bits.
constexpr uint8_t kMutMark = 1, kMutCtMark = 2, kMutTos = 4;

uint8_t statements_change(const std::vector<Statement>& ss) {
  uint8_t m = 0;
  for (const auto& st : ss) {
    switch (st.kind) {
      case StmtKind::SetMark:
      case StmtKind::RestoreMark: m |= kMutMark; break;
      case StmtKind::SetCtMark:
      case StmtKind::SaveMark: m |= kMutCtMark; break;
      case StmtKind::SetTos: m |= kMutTos; break;
      default: break;
    }
  }
  return m;
}

// Whether a match tests a field in `mut` (directly or as part of a set key).
bool tests_changed(const Match& m, uint8_t mut) {
  auto hit = [&](Field f) {
    return (f == Field::Mark && (mut & kMutMark)) || (f == Field::CtMark && (mut & kMutCtMark)) ||
           ((f == Field::Dscp || f == Field::Tos) && (mut & kMutTos));
  };
  if (hit(m.field)) return true;
  if (const auto* s = std::get_if<SetRef>(&m.value))
    for (Field f : s->key)
      if (hit(f)) return true;
  return false;
}

class Flattener {
 public:
  Flattener(const Ruleset& rs, diag::Diagnostics& d, const FlattenOptions& o) : rs_(rs), diag_(d), opt_(o) {}

  Pipeline run();

 private:
  // A place a RETURN (or the end of a goto'd chain) continues at: the end of
  // some inlined region. Skips to it are patched when the region closes.
  struct Region {
    std::vector<size_t> fixups;
  };

  void inline_chain(uint32_t t, uint32_t c, std::vector<RuleRef>& path, size_t return_region);
  void emit_rule(uint32_t t, uint32_t c, uint32_t r, const Rule& rule, const std::vector<Match>& own, const Verdict& v,
                 std::vector<RuleRef>& path, size_t return_region, bool with_statements);
  void emit_jump(const RuleRef& ref, const Rule& rule, const std::vector<Match>& own, const Verdict& v,
                 std::vector<RuleRef>& path, size_t return_region, bool with_statements);
  size_t emit_guards(const RuleRef& ref, const std::vector<Match>& kept, const std::vector<const Match*>& once,
                     const std::vector<RuleRef>& path);
  FlatRule& push(const std::vector<Match>& own, const RuleRef& origin, const std::vector<RuleRef>& path);
  void close_region(size_t region, size_t target);
  bool find_loops(uint32_t t);
  uint8_t chain_changes(uint32_t t, uint32_t c);

  // Per table and chain: the fields (kMut*) the chain, or a chain it reaches,
  // can change; 0xff while not computed yet.
  std::vector<std::vector<uint8_t>> changes_;
  // Matches each jump on the current path put on prefix_, and how many of
  // those jumps left a test out (to guards): flat rules then record segments.
  std::vector<uint32_t> segments_;
  size_t guarded_ = 0;

  const Ruleset& rs_;
  diag::Diagnostics& diag_;
  const FlattenOptions& opt_;
  DecisionList* list_ = nullptr;
  std::vector<Region> regions_;
  // While a verdict map's elements are emitted: the region past them. An
  // element that jumps ends with an entry that skips there once the chain
  // returns (the kernel looks the map up once).
  size_t vmap_tail_ = SIZE_MAX;
  bool overflow_ = false;
  std::vector<std::vector<bool>> reached_chains_;  // [table][chain]
  // The matches of every jump leading to the chain being inlined: one stack,
  // so nesting costs O(depth) memory, not O(depth^2), and each flat rule is
  // built with one copy of prefix + own matches.
  std::vector<Match> prefix_;
  // Chain index by name, per table: jumps are resolved in O(1), not by a scan
  // (kube-proxy nodes have tens of thousands of chains).
  std::vector<std::unordered_map<std::string_view, uint32_t>> chain_index_;
  std::optional<uint32_t> chain_by_name(uint32_t t, std::string_view name) const {
    auto it = chain_index_[t].find(name);
    if (it == chain_index_[t].end()) return std::nullopt;
    return it->second;
  }
};

FlatRule& Flattener::push(const std::vector<Match>& own, const RuleRef& origin, const std::vector<RuleRef>& path) {
  list_->rules.emplace_back();
  FlatRule& f = list_->rules.back();
  f.matches.reserve(prefix_.size() + own.size());
  f.matches.insert(f.matches.end(), prefix_.begin(), prefix_.end());
  f.matches.insert(f.matches.end(), own.begin(), own.end());
  f.origin = origin;
  f.path = path;
  if (guarded_) f.segments.assign(segments_.begin(), segments_.begin() + std::min(segments_.size(), path.size()));
  return f;
}

void Flattener::close_region(size_t region, size_t target) {
  for (size_t i : regions_[region].fixups) list_->rules[i].skip_to = (uint32_t)target;
  regions_[region].fixups.clear();
}

void Flattener::emit_rule(uint32_t t, uint32_t c, uint32_t r, const Rule& rule, const std::vector<Match>& own,
                          const Verdict& v, std::vector<RuleRef>& path, size_t return_region, bool with_statements) {
  RuleRef ref{t, c, r};
  if (list_->rules.size() >= opt_.max_flat_rules) {
    if (!overflow_)
      diag_.error(rule.loc, "the flattened ruleset exceeds " + std::to_string(opt_.max_flat_rules) + " rules",
                  "user chains are inlined at every jump; a chain jumped to from many places is copied each time");
    overflow_ = true;
    return;
  }
  // ! --match-set S a,b (a set of two or more dimensions): S is a union of
  // boxes, whose negation is no box. A guard per such set skips the rule
  // for packets in it (the rule's other matches and S), then the rule runs
  // without it. Not when a match has state (limit, statistic, recent ...):
  // the guard would take its tokens or draws a second time.
  auto neg_multi = [](const Match& m) {
    const auto* ref = std::get_if<SetRef>(&m.value);
    return m.negated && ref && ref->key.size() > 1;
  };
  if (std::any_of(own.begin(), own.end(), neg_multi) && std::none_of(own.begin(), own.end(), [](const Match& m) {
        return m.field == Field::Opaque && !m.module.empty() && m.module != "comment" && m.module != "owner";
      })) {
    std::vector<Match> rest;
    for (const auto& m : own)
      if (!neg_multi(m)) rest.push_back(m);
    regions_.emplace_back();
    size_t region = regions_.size() - 1;
    for (const auto& m : own)
      if (neg_multi(m)) {
        std::vector<Match> g = rest;
        g.push_back(m);
        g.back().negated = false;
        auto& f = push(g, ref, path);
        f.action = FlatAction::Skip;
        regions_[region].fixups.push_back(list_->rules.size() - 1);
      }
    emit_rule(t, c, r, rule, rest, v, path, return_region, with_statements);
    close_region(region, list_->rules.size());
    return;
  }
  switch (v.kind) {
    case VerdictKind::Accept:
    case VerdictKind::Drop:
    case VerdictKind::Reject:
    case VerdictKind::Queue:
    case VerdictKind::Continue: {
      auto& f = push(own, ref, path);
      if (with_statements) f.statements = rule.statements;
      f.action = v.kind == VerdictKind::Accept   ? FlatAction::Accept
                 : v.kind == VerdictKind::Drop   ? FlatAction::Drop
                 : v.kind == VerdictKind::Reject ? FlatAction::Reject
                 : v.kind == VerdictKind::Queue  ? FlatAction::Queue
                                                 : FlatAction::Continue;
      f.reject_with = v.reject_with;
      break;
    }
    case VerdictKind::Return: {
      auto& f = push(own, ref, path);
      if (with_statements) f.statements = rule.statements;
      f.action = FlatAction::Skip;
      regions_[return_region].fixups.push_back(list_->rules.size() - 1);
      break;
    }
    case VerdictKind::Jump:
    case VerdictKind::Goto: emit_jump(ref, rule, own, v, path, return_region, with_statements); break;
  }
}

// A jump or goto: the target chain inlined behind the rule's matches.
void Flattener::emit_jump(const RuleRef& ref, const Rule& rule, const std::vector<Match>& own, const Verdict& v,
                          std::vector<RuleRef>& path, size_t return_region, bool with_statements) {
  uint32_t t = ref.table;
  size_t map_tail = vmap_tail_;
  vmap_tail_ = SIZE_MAX;  // not for the rules of the chain it reaches
  auto target = chain_by_name(t, v.chain);
  if (!target) return;  // reported by the front-end
  uint32_t tc = *target;
  // Netfilter tests a jump's matches once, when it jumps. A test of a
  // field that the rule's statements or the chain (or a chain it reaches)
  // can change, and a match that changes state of its own when tested
  // (-m recent: its list; -m hashlimit: its bucket; -m connlimit: its
  // connection list; an nft set's write: the set), must not be repeated on every inlined rule:
  // guards test it once here and skip the chain when it fails; the inlined
  // rules get only the other matches.
  uint8_t mut = chain_changes(t, tc) | (with_statements ? statements_change(rule.statements) : 0);
  auto stateful = [](const Match& m) {
    return m.module == "recent" || m.module == "hashlimit" || m.module == "connlimit" || m.module == "nftset";
  };
  std::vector<Match> kept;
  std::vector<const Match*> once;
  if (mut || std::any_of(own.begin(), own.end(), stateful))
    for (const auto& m : own) {
      if (tests_changed(m, mut) || stateful(m))
        once.push_back(&m);
      else
        kept.push_back(m);
    }
  const std::vector<Match>& pre = once.empty() ? own : kept;
  size_t guard_region = once.empty() ? SIZE_MAX : emit_guards(ref, kept, once, path);
  if (with_statements && !rule.statements.empty()) {
    auto& f = push(pre, ref, path);  // (past the guards, `kept` holds exactly when `own` held)
    f.statements = rule.statements;
    f.action = FlatAction::Continue;
  }
  path.push_back(ref);
  size_t mark = prefix_.size();
  prefix_.insert(prefix_.end(), pre.begin(), pre.end());
  segments_.push_back((uint32_t)pre.size());
  if (!once.empty()) ++guarded_;
  auto leave = [&] {
    prefix_.resize(mark);
    segments_.pop_back();
    if (!once.empty()) --guarded_;
    path.pop_back();
  };
  if (v.kind == VerdictKind::Jump) {
    regions_.emplace_back();
    size_t region = regions_.size() - 1;
    inline_chain(t, tc, path, region);
    close_region(region, list_->rules.size());
    leave();
    // Back from a map element's chain: past the other elements, when trying
    // them could go wrong (the chain changed a field this element tests, or
    // the elements are numgen's draws); otherwise they never overlap.
    bool draws = std::any_of(own.begin(), own.end(), [](const Match& m) { return m.module == "statistic"; });
    if (map_tail != SIZE_MAX && (!once.empty() || draws)) {
      auto& f = push(pre, ref, path);
      f.action = FlatAction::Skip;
      regions_[map_tail].fixups.push_back(list_->rules.size() - 1);
    }
  } else {
    // goto: the target returns to where the current chain returns.
    inline_chain(t, tc, path, return_region);
    leave();
    auto& f = push(pre, ref, path);
    f.action = FlatAction::Skip;
    regions_[return_region].fixups.push_back(list_->rules.size() - 1);
  }
  // A failed guard goes on after the chain (and a goto's trailing entry).
  if (guard_region != SIZE_MAX) close_region(guard_region, list_->rules.size());
}

// kept ∧ ¬(K1 ∧ K2 ...) → skip: one guard per Ki (kept ∧ ¬Ki → skip).
// Returns the region the guards skip to.
size_t Flattener::emit_guards(const RuleRef& ref, const std::vector<Match>& kept, const std::vector<const Match*>& once,
                              const std::vector<RuleRef>& path) {
  regions_.emplace_back();
  size_t guard_region = regions_.size() - 1;
  for (const Match* k : once) {
    std::vector<Match> g = kept;
    g.push_back(*k);
    g.back().negated = !g.back().negated;
    auto& f = push(g, ref, path);
    f.action = FlatAction::Skip;
    f.guard = true;
    regions_[guard_region].fixups.push_back(list_->rules.size() - 1);
  }
  // A packet without a connection matches neither a ct mark test nor
  // its negation: it skips the chain too.
  auto ct = std::find_if(once.begin(), once.end(), [](const Match* m) { return tests_changed(*m, kMutCtMark); });
  if (ct != once.end()) {
    std::vector<Match> g = kept;
    Match m;
    m.field = Field::CtState;
    m.negated = true;
    for (uint8_t b : {kCtEstablished, kCtRelated, kCtNew}) std::get<IntervalSet>(m.value).add(b, b);
    m.cap = "-m conntrack --ctstate";
    m.module = "conntrack";
    m.loc = (*ct)->loc;
    g.push_back(std::move(m));
    auto& f = push(g, ref, path);
    f.action = FlatAction::Skip;
    f.guard = true;
    regions_[guard_region].fixups.push_back(list_->rules.size() - 1);
  }
  return guard_region;
}

void Flattener::inline_chain(uint32_t t, uint32_t c, std::vector<RuleRef>& path, size_t return_region) {
  const Table& table = rs_.tables[t];
  const Chain& chain = table.chains[c];
  reached_chains_[t][c] = true;
  for (uint32_t r = 0; r < chain.rules.size() && !overflow_; ++r) {
    const Rule& rule = chain.rules[r];
    if (!rule.vmap) {
      emit_rule(t, c, r, rule, rule.matches, rule.verdict, path, return_region, true);
      continue;
    }
    // Verdict map: statements run once, then one entry per element. Elements
    // never overlap, so trying them in order equals one lookup, as long as
    // no element is tried after a chain one jumped to returns where the
    // chain changed what they test, or where they are numgen's draws: such
    // an element ends with an entry that skips past the others (emit_jump). A NAT
    // statement whose address the map gives (nft `dnat to KEY map {…}`)
    // goes with each element instead, with that element's address.
    std::vector<Statement> once;
    const Statement* by_map = nullptr;
    for (const auto& st : rule.statements) {
      if (st.nat.from_map)
        by_map = &st;
      else
        once.push_back(st);
    }
    if (!once.empty()) {
      auto& f = push(rule.matches, RuleRef{t, c, r}, path);
      f.statements = std::move(once);
      f.action = FlatAction::Continue;
    }
    const Set* map = rs_.find_set(table, rule.vmap->name);
    if (!map) continue;  // reported by the front-end
    regions_.emplace_back();
    const size_t past_map = regions_.size() - 1;
    auto element = [&](const std::vector<Match>& em, const SetElement& e) {
      vmap_tail_ = past_map;
      if (!by_map || !e.data) {
        emit_rule(t, c, r, rule, em, *e.verdict, path, return_region, false);
      } else {
        Rule er = rule;
        er.statements = {*by_map};
        er.statements[0].nat.addrs = e.data;
        er.statements[0].nat.from_map = false;
        emit_rule(t, c, r, er, em, *e.verdict, path, return_region, true);
      }
      vmap_tail_ = SIZE_MAX;
    };
    // `numgen random mod N vmap`: one draw picks element k with chance 1/N
    // each; tried in order, the i-th of them (none before it taken) holds
    // with chance 1/(N - i), its share as a `-m statistic --mode random`.
    // `numgen inc mod N`: element k tests whether the rule's one counter
    // step gave k (ir::kNumgenIncModule).
    auto numgen = std::find_if(rule.matches.begin(), rule.matches.end(),
                               [](const Match& m) { return m.module == ir::kNumgenModule; });
    if (numgen != rule.matches.end()) {
      uint64_t n = 0, off = 0;
      bool inc = false;
      for (const auto& [k, v] : numgen->args) {
        if (k == "mode") inc = v == "inc";
        if (k == "mod" || k == "offset") (k == "mod" ? n : off) = std::strtoull(v.c_str(), nullptr, 10);
      }
      uint64_t taken = 0;
      std::vector<bool> seen(n, false);
      for (const auto& e : map->elements) {
        if (!e.verdict || e.key.size() != 1 || e.key[0].intervals().size() != 1) continue;
        const auto& iv = e.key[0].intervals()[0];
        if (iv.lo != iv.hi || iv.lo < off || iv.lo - off >= n || seen[(size_t)(iv.lo - off)]) continue;
        seen[(size_t)(iv.lo - off)] = true;
        if (inc) {
          auto em = rule.matches;
          Match m;
          m.field = Field::Opaque;
          m.module = ir::kNumgenIncModule;
          m.cap = numgen->cap;
          m.args = {{"mod", std::to_string(n)}, {"value", std::to_string((uint64_t)(iv.lo - off))}};
          m.loc = numgen->loc;
          em.push_back(std::move(m));
          element(em, e);
          continue;
        }
        char prob[32];
        std::snprintf(prob, sizeof prob, "%.11f", 1.0 / (double)(n - taken++));
        auto em = rule.matches;
        Match m;
        m.field = Field::Opaque;
        m.module = "statistic";
        m.cap = "numgen random vmap";
        m.args = {{"--mode", "random"}, {"--probability", prob}};
        m.loc = e.loc;
        em.push_back(std::move(m));
        element(em, e);
      }
      close_region(past_map, list_->rules.size());
      continue;
    }
    for (const auto& e : map->elements) {
      if (!e.verdict) continue;
      auto em = rule.matches;
      for (size_t k = 0; k < e.key.size() && k < rule.vmap->key.size(); ++k) {
        Match m;
        m.field = rule.vmap->key[k];
        m.value = e.key[k];
        m.cap = "vmap";
        m.loc = e.loc;
        em.push_back(std::move(m));
      }
      element(em, e);
    }
    close_region(past_map, list_->rules.size());
  }
}

uint8_t Flattener::chain_changes(uint32_t t, uint32_t c) {
  uint8_t& memo = changes_[t][c];
  if (memo != 0xff) return memo;
  memo = 0;  // no loops by now; this only guards against re-entry
  const Table& table = rs_.tables[t];
  uint8_t m = 0;
  auto via = [&](const Verdict& v) {
    if (v.kind != VerdictKind::Jump && v.kind != VerdictKind::Goto) return;
    if (auto tc = chain_by_name(t, v.chain)) m |= chain_changes(t, *tc);
  };
  for (const auto& rule : table.chains[c].rules) {
    m |= statements_change(rule.statements);
    via(rule.verdict);
    if (rule.vmap)
      if (const Set* map = rs_.find_set(table, rule.vmap->name))
        for (const auto& e : map->elements)
          if (e.verdict) via(*e.verdict);
  }
  return changes_[t][c] = m;
}

bool Flattener::find_loops(uint32_t t) {
  const Table& table = rs_.tables[t];
  size_t n = table.chains.size();
  std::vector<int> state(n, 0);                      // 0 new, 1 on stack, 2 done
  std::vector<uint32_t> height(n, 0);                // longest chain of jumps starting here, in chains
  std::vector<std::pair<uint32_t, uint32_t>> stack;  // (chain, rule) of jumps on the DFS path
  bool found = false, too_deep = false;

  auto targets_of = [&](const Rule& rule, auto&& fn) {
    if (rule.verdict.kind == VerdictKind::Jump || rule.verdict.kind == VerdictKind::Goto)
      fn(rule.verdict.chain, rule.verdict.loc);
    if (rule.vmap)
      if (const Set* m = rs_.find_set(table, rule.vmap->name))
        for (const auto& e : m->elements)
          if (e.verdict && (e.verdict->kind == VerdictKind::Jump || e.verdict->kind == VerdictKind::Goto))
            fn(e.verdict->chain, e.verdict->loc.line ? e.verdict->loc : rule.loc);
  };
  auto deep = [&](const SourceLoc& loc, const Rule& rule) {
    if (too_deep) return;
    too_deep = found = true;
    diag_.error(loc, "jumps nest more than " + std::to_string(opt_.max_depth) + " chains deep",
                "nf2bpf inlines user chains into each base chain; flatten the chain structure", rule.text);
  };

  auto dfs = [&](auto&& self, uint32_t c) -> void {
    state[c] = 1;
    const Chain& ch = table.chains[c];
    uint32_t h = 1;
    for (uint32_t r = 0; r < ch.rules.size() && !too_deep; ++r) {
      targets_of(ch.rules[r], [&](const std::string& name, const SourceLoc& loc) {
        auto tc = chain_by_name(t, name);
        if (!tc || too_deep) return;
        uint32_t ti = *tc;
        if (state[ti] == 1) {
          std::vector<std::string> names;
          for (auto& [sc, sr] : stack) names.push_back(table.chains[sc].name);
          names.push_back(ch.name);
          auto from = std::find(names.begin(), names.end(), name);
          std::string cycle;
          for (auto it = from; it != names.end(); ++it) cycle += *it + " -> ";
          cycle += name;
          diag_.error(loc, "jump loop: " + cycle, "iptables-restore and nft refuse rulesets with loops",
                      ch.rules[r].text);
          found = true;
          return;
        }
        if (state[ti] == 0) {
          if (stack.size() >= opt_.max_depth) return deep(loc, ch.rules[r]);  // bounds this recursion too
          stack.emplace_back(c, r);
          self(self, ti);
          stack.pop_back();
        }
        h = std::max(h, height[ti] + 1);
        if (h > opt_.max_depth + 1) deep(loc, ch.rules[r]);  // + 1: the base chain is not a jump
      });
    }
    height[c] = h;
    state[c] = 2;
  };
  for (uint32_t c = 0; c < n && !too_deep; ++c)
    if (state[c] == 0) dfs(dfs, c);
  return found;
}

Pipeline Flattener::run() {
  Pipeline p;
  chain_index_.resize(rs_.tables.size());
  reached_chains_.resize(rs_.tables.size());
  for (uint32_t t = 0; t < rs_.tables.size(); ++t) reached_chains_[t].assign(rs_.tables[t].chains.size(), false);
  for (uint32_t t = 0; t < rs_.tables.size(); ++t)
    for (uint32_t c = 0; c < rs_.tables[t].chains.size(); ++c)
      chain_index_[t].emplace(rs_.tables[t].chains[c].name, c);  // first of a duplicated name, like find_chain
  bool loops = false;
  for (uint32_t t = 0; t < rs_.tables.size(); ++t) loops |= find_loops(t);
  if (loops) return p;
  changes_.resize(rs_.tables.size());
  for (uint32_t t = 0; t < rs_.tables.size(); ++t) changes_[t].assign(rs_.tables[t].chains.size(), 0xff);

  for (uint32_t t = 0; t < rs_.tables.size(); ++t) {
    const Table& table = rs_.tables[t];
    for (uint32_t c = 0; c < table.chains.size(); ++c) {
      const Chain& chain = table.chains[c];
      if (!chain.base) continue;
      DecisionList dl;
      dl.family = table.family;
      dl.hook = chain.base->hook;
      dl.type = chain.base->type;
      dl.priority = chain.base->priority;
      dl.table = table.name;
      dl.chain = chain.name;
      dl.table_index = t;
      dl.chain_index = c;
      dl.policy = chain.base->policy;
      p.stages.push_back(std::move(dl));
      list_ = &p.stages.back();
      regions_.assign(1, Region{});
      std::vector<RuleRef> path;
      prefix_.clear();
      segments_.clear();
      guarded_ = 0;
      inline_chain(t, c, path, 0);
      close_region(0, list_->rules.size());
      list_ = nullptr;
    }
  }
  std::stable_sort(p.stages.begin(), p.stages.end(), [](const DecisionList& a, const DecisionList& b) {
    if (a.hook != b.hook) return a.hook < b.hook;
    return a.priority < b.priority;
  });

  // Chains nothing reaches.
  for (uint32_t t = 0; t < rs_.tables.size(); ++t) {
    const Table& table = rs_.tables[t];
    for (uint32_t c = 0; c < table.chains.size(); ++c) {
      const Chain& chain = table.chains[c];
      if (!chain.base && !reached_chains_[t][c])
        diag_.warning(chain.loc, "chain '" + chain.name + "' in table '" + table.name + "' is never jumped to; its " +
                                     std::to_string(chain.rules.size()) + " rules affect no packet");
    }
  }

  // Rules after an unconditional terminal rule of the same region are dead.
  // Reported once per source rule, and only when every copy of it is dead.
  // Per source rule: 0 no copy emitted, 1 every copy so far unreached, 2 some copy reached.
  std::vector<std::vector<std::vector<uint8_t>>> seen(rs_.tables.size());
  std::vector<std::vector<std::vector<RuleRef>>> blocked_by(rs_.tables.size());
  for (uint32_t t = 0; t < rs_.tables.size(); ++t) {
    seen[t].resize(rs_.tables[t].chains.size());
    blocked_by[t].resize(rs_.tables[t].chains.size());
    for (uint32_t c = 0; c < rs_.tables[t].chains.size(); ++c) {
      seen[t][c].assign(rs_.tables[t].chains[c].rules.size(), 0);
      blocked_by[t][c].resize(rs_.tables[t].chains[c].rules.size());
    }
  }
  // A rule is reached by falling through from a reached rule that does not
  // decide every packet, or as the target of a reached skip (RETURN, the end
  // of a goto'd chain): a conditional RETURN before an unconditional DROP in a
  // jumped-to chain keeps the caller's later rules alive.
  for (const auto& s : p.stages) {
    std::vector<bool> skip_target(s.rules.size() + 1, false);
    bool live = true;  // falling through from the previous rule
    RuleRef blocker{};
    for (size_t i = 0; i < s.rules.size(); ++i) {
      const FlatRule& f = s.rules[i];
      bool reached = live || skip_target[i];
      uint8_t& e = seen[f.origin.table][f.origin.chain][f.origin.rule];
      if (reached)
        e = 2;
      else if (e == 0)
        e = 1, blocked_by[f.origin.table][f.origin.chain][f.origin.rule] = blocker;
      if (!reached) continue;
      if (f.action == FlatAction::Skip) skip_target[std::min<size_t>(f.skip_to, s.rules.size())] = true;
      live = !(f.matches.empty() && (f.terminal() || (f.action == FlatAction::Skip && f.skip_to > i + 1)));
      if (!live) blocker = f.origin;
    }
  }
  for (uint32_t t = 0; t < rs_.tables.size(); ++t)
    for (uint32_t c = 0; c < rs_.tables[t].chains.size(); ++c)
      for (uint32_t r = 0; r < rs_.tables[t].chains[c].rules.size(); ++r) {
        if (seen[t][c][r] != 1) continue;
        const Rule& rule = rs_.tables[t].chains[c].rules[r];
        const RuleRef& by = blocked_by[t][c][r];
        const Rule& b = rs_.tables[by.table].chains[by.chain].rules[by.rule];
        diag_.warning(rule.loc, "rule is never reached",
                      "the rule at " + b.loc.file_line() + " decides every packet before it", rule.text);
      }
  return p;
}

}  // namespace

Pipeline flatten(const Ruleset& rs, diag::Diagnostics& diags, const FlattenOptions& opt) {
  return Flattener(rs, diags, opt).run();
}

}  // namespace nf2bpf::passes
