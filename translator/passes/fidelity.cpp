#include "translator/passes/fidelity.h"

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "bpf/include/abi.h"
#include "common/progress.h"

namespace nf2bpf::passes {

using namespace ir;
using caps::Fidelity;

namespace {

std::string_view frontend_name(Frontend f) {
  return (f == Frontend::Iptables || f == Frontend::Ip6tables) ? "iptables" : "nft";
}

struct Finding {
  Fidelity fidelity;
  std::string what;  // "-m recent"
  std::string why;
  SourceLoc loc;
};

// The chains the base chains `start` picks reach through jumps, gotos and
// verdict maps.
std::vector<bool> reached(const Ruleset& rs, const Table& table, const std::function<bool(const Chain&)>& start) {
  std::vector<bool> in(table.chains.size(), false);
  std::vector<uint32_t> work;
  for (uint32_t c = 0; c < table.chains.size(); ++c)
    if (start(table.chains[c])) in[c] = true, work.push_back(c);
  ChainIndex chains(&table);
  auto reach = [&](const std::string& name) {
    if (const Chain* tc = chains.find(name)) {
      uint32_t i = (uint32_t)(tc - table.chains.data());
      if (!in[i]) in[i] = true, work.push_back(i);
    }
  };
  while (!work.empty()) {
    uint32_t c = work.back();
    work.pop_back();
    for (const auto& r : table.chains[c].rules) {
      if (r.verdict.kind == VerdictKind::Jump || r.verdict.kind == VerdictKind::Goto) reach(r.verdict.chain);
      if (r.vmap)
        if (const Set* m = rs.find_set(table, r.vmap->name))
          for (const auto& e : m->elements)
            if (e.verdict) reach(e.verdict->chain);
    }
  }
  return in;
}

// nftables: rules in chains a nat base chain reaches see only each
// connection's first packet; classified by the "type nat" row.
std::vector<bool> nat_reached(const Ruleset& rs, const Table& table) {
  return reached(rs, table, [](const Chain& c) { return c.base && c.base->type == ChainType::Nat; });
}

// -m statistic --mode nth keeps a counter of the packets that reach it.
// The dataplane counts the packets that passed the rule's other tests, once
// per source rule: the same count only when no match module comes after the
// statistic match (address, protocol and interface options are tested before
// any module), and not for a jump, whose matches are inlined into every rule
// of its chain.
void nth_placement(const Rule& rule, std::vector<Finding>& found) {
  // One -m statistic's options are consecutive matches, from its --mode on.
  size_t first = SIZE_MAX, last = 0;
  bool in_nth = false;
  for (size_t i = 0; i < rule.matches.size(); ++i) {
    const Match& m = rule.matches[i];
    bool stat = m.module == "statistic";
    bool mode = stat && !m.args.empty() && m.args[0].first == "--mode";
    if (!stat || mode) in_nth = false;
    if (mode && m.args[0].second == "nth" && first == SIZE_MAX) in_nth = true, first = i;
    if (in_nth) last = i;
  }
  if (first == SIZE_MAX) return;
  std::string why;
  if (rule.verdict.kind == VerdictKind::Jump || rule.verdict.kind == VerdictKind::Goto)
    why = "a counter on a jump or goto rule is not implemented";
  for (size_t i = last + 1; i < rule.matches.size() && why.empty(); ++i)
    if (!rule.matches[i].module.empty() && rule.matches[i].module != "comment")
      why = "'" + rule.matches[i].cap +
            "' comes after it: the kernel counts every packet that reaches the statistic match, the dataplane only "
            "those every other test of the rule let through (put the statistic match last)";
  if (!why.empty()) found.push_back({Fidelity::Unsupported, "-m statistic --mode nth", why, rule.matches[first].loc});
}

// -m recent changes its list (--set, --update, --remove, --reap),
// -m hashlimit its bucket and -m connlimit its connection list for every
// packet that reaches it: as for nth, the
// dataplane runs them after the rule's other tests, so each must be the
// rule's last module.
void stateful_placement(const Rule& rule, std::string_view module, std::string_view state,
                        std::vector<Finding>& found) {
  size_t at = SIZE_MAX, n = 0;
  for (size_t i = 0; i < rule.matches.size(); ++i)
    if (rule.matches[i].module == module) at = i, ++n;
  if (at == SIZE_MAX) return;
  std::string why, m = "-m " + std::string(module);
  if (n > 1) why = "more than one " + m + " in one rule is not implemented";
  for (size_t i = at + 1; i < rule.matches.size() && why.empty(); ++i)
    if (!rule.matches[i].module.empty() && rule.matches[i].module != "comment")
      why = "'" + rule.matches[i].cap + "' comes after it: the kernel updates the " + std::string(state) +
            " for every packet that reaches the " + std::string(module) +
            " match, the dataplane only for those every other test of the rule let through (put the " +
            std::string(module) + " match last)";
  if (!why.empty()) found.push_back({Fidelity::Unsupported, m, why, rule.matches[at].loc});
}

// An nft rule tests and writes in its order: a set write (add, update,
// delete, a meter) or a connection count (ct count) happens for every packet
// that reaches it. The dataplane
// writes after the rule's other tests (set lookups and writes keep their
// order among themselves), so every other test must come before the write.
void set_write_placement(const Rule& rule, std::vector<Finding>& found) {
  size_t at = SIZE_MAX;
  for (size_t i = 0; i < rule.matches.size() && at == SIZE_MAX; ++i) {
    const Match& m = rule.matches[i];
    if ((m.module == "nftset" && !m.args.empty() && m.args[0].second != "lookup") || m.module == "connlimit") at = i;
  }
  for (size_t i = at == SIZE_MAX ? at : at + 1; i < rule.matches.size(); ++i)
    if (rule.matches[i].module != "nftset" && rule.matches[i].module != "connlimit") {
      found.push_back({Fidelity::Unsupported, rule.matches[at].cap,
                       "'" + rule.matches[i].cap +
                           "' comes after it: the kernel writes the set for every packet "
                           "that reaches the write, the dataplane only for those every other test of the rule let "
                           "through (put the write last)",
                       rule.matches[at].loc});
      return;
    }
}

// What of -m connlimit and -m hashlimit stays in netfilter: a connlimit
// above what a list keeps (NF_CONNLIMIT_CONNS), hashlimit's byte rates and
// --hashlimit-rate-match.
void limit_options(const Rule& rule, std::vector<Finding>& found) {
  for (const auto& m : rule.matches) {
    if (m.module == "hashlimit")
      for (const auto& [k, v] : m.args) {
        bool bytes = (k == "--hashlimit-upto" || k == "--hashlimit-above" || k == "--hashlimit") &&
                     v.substr(0, v.find('/')).find_first_not_of("0123456789") != std::string::npos;
        if (bytes || k == "--hashlimit-rate-match" || k == "--hashlimit-rate-interval")
          found.push_back({Fidelity::Unsupported, "-m hashlimit " + k,
                           bytes ? "byte rates are not implemented" : "rate matching is not implemented", m.loc});
      }
    if (m.module != "connlimit") continue;
    for (const auto& [k, v] : m.args)
      if ((k == "--connlimit-above" || k == "--connlimit-upto") &&
          std::strtoull(v.c_str(), nullptr, 10) >= NF_CONNLIMIT_CONNS - 1)
        found.push_back({Fidelity::Unsupported, m.cap.starts_with("-m ") ? "-m connlimit " + k : m.cap,
                         "nf2bpf's connection lists keep " + std::to_string(NF_CONNLIMIT_CONNS) +
                             " connections: limits up to " + std::to_string(NF_CONNLIMIT_CONNS - 2) + " are translated",
                         m.loc});
  }
}

// What keeps one rule from being exact: its table, matches, the sets they
// name, statements and verdicts (a verdict map's included).
std::vector<Finding> findings_of(const Ruleset& rs, const Table& table, const Rule& rule, std::string_view fe,
                                 const caps::Capability* table_cap) {
  bool ipt = fe == "iptables";
  std::vector<Finding> found;
  auto check = [&](const std::string& cap, const SourceLoc& loc) {
    if (cap.empty()) return;
    const caps::Capability* k = caps::find(fe, cap);
    if (!k) {
      found.push_back({Fidelity::Unsupported, cap, "nf2bpf does not implement " + cap, loc});
      return;
    }
    if (k->fidelity != Fidelity::Exact) found.push_back({k->fidelity, cap, std::string(k->why), loc});
  };
  if (table_cap && table_cap->fidelity != Fidelity::Exact)
    found.push_back({table_cap->fidelity, ipt ? "table " + table.name : std::string(table_cap->name),
                     std::string(table_cap->why), rule.loc});
  for (const auto& m : rule.matches) {
    check(m.cap, m.loc);
    if (auto* ref = std::get_if<SetRef>(&m.value)) {
      const Set* s = rs.find_set(table, ref->name);
      if (!s || !s->contents_known)
        found.push_back(
            {Fidelity::Unsupported, "set '" + ref->name + "'",
             ipt ? "the contents of ipset '" + ref->name + "' are unknown; pass `ipset save` output with --ipsets FILE"
                 : "set '" + ref->name + "' is not defined",
             m.loc});
      else if (s->dynamic || s->has_timeout)
        found.push_back({Fidelity::Approximate, "set '" + ref->name + "'",
                         "elements added at run time or expiring are not followed; the "
                         "policy holds the elements present when it was translated",
                         m.loc});
    }
  }
  if (ipt) nth_placement(rule, found);
  if (ipt) stateful_placement(rule, "recent", "list", found);
  if (ipt) stateful_placement(rule, "hashlimit", "bucket", found);
  if (ipt) stateful_placement(rule, "connlimit", "connection list", found);
  limit_options(rule, found);
  if (!ipt) set_write_placement(rule, found);
  for (const auto& s : rule.statements) check(s.cap, s.loc);
  check(rule.verdict.cap, rule.verdict.loc);
  if (rule.vmap)  // the verdicts a map can give
    if (const Set* m = rs.find_set(table, rule.vmap->name))
      for (const auto& e : m->elements)
        if (e.verdict) check(e.verdict->cap, rule.verdict.loc);
  return found;
}

// The rule's status and reason from its worst findings, and one diagnostic
// per distinct reason.
RuleFidelity judge(const RuleRef& ref, const Rule& rule, const std::vector<Finding>& found, diag::Diagnostics& diags,
                   const FidelityOptions& opt) {
  RuleFidelity rf;
  rf.ref = ref;
  for (const auto& f : found) rf.status = std::max(rf.status, f.fidelity);
  // Reason: the worst findings, de-duplicated.
  for (const auto& f : found) {
    if (f.fidelity != rf.status) continue;
    std::string piece = f.what + ": " + f.why;
    if (rf.reason.find(piece) != std::string::npos) continue;
    if (!rf.reason.empty()) rf.reason += "; ";
    rf.reason += piece;
  }
  std::vector<std::string_view> said;  // one diagnostic per distinct reason
  for (const auto& f : found) {
    if (std::find(said.begin(), said.end(), f.why) != said.end()) continue;
    said.push_back(f.why);
    if (f.fidelity == Fidelity::Unsupported) {
      std::string msg = "unsupported " + f.what;
      if (opt.allow_partial) {
        diags.warning(f.loc, msg + "; the rule is not translated and stays in netfilter", f.why, rule.text);
      } else {
        diags.error(f.loc, msg, f.why, rule.text);
      }
    } else if (f.fidelity == Fidelity::Approximate) {
      diags.warning(f.loc, "approximate " + f.what, f.why, rule.text);
    }
  }
  return rf;
}

// The address families (1 IPv4, 2 IPv6) of a table.
unsigned families_of(const Table& t) {
  return t.family == Family::Ip ? 1u : t.family == Family::Ip6 ? 2u : t.family == Family::Inet ? 3u : 0u;
}

}  // namespace

std::vector<RuleFidelity> classify(const Ruleset& rs, diag::Diagnostics& diags, const FidelityOptions& opt) {
  std::vector<RuleFidelity> out;
  bool any_ipt = false;
  struct Pending {
    RuleRef ref;
    const Rule* rule;
    std::vector<Finding> found;
    bool nat;
    unsigned fams;
  };
  std::vector<Pending> pending;

  for (uint32_t t = 0; t < rs.tables.size(); ++t) {
    const Table& table = rs.tables[t];
    std::string_view fe = table.iptables_rules ? "iptables" : frontend_name(rs.frontend);
    bool ipt = fe == "iptables";
    any_ipt |= ipt;
    const caps::Capability* table_cap =
        caps::find(fe, ipt ? "*" + table.name : std::string("table ") + to_string(table.family));
    std::vector<bool> in_nat = ipt ? std::vector<bool>(table.chains.size(), false) : nat_reached(rs, table);
    const caps::Capability* nat_cap = ipt ? nullptr : caps::find(fe, "type nat");
    for (uint32_t c = 0; c < table.chains.size(); ++c) {
      const Chain& chain = table.chains[c];
      for (uint32_t r = 0; r < chain.rules.size(); ++r) {
        progress::tick("checking rules", out.size());
        const Rule& rule = chain.rules[r];
        std::vector<Finding> found = findings_of(rs, table, rule, fe, table_cap);
        // Said once: a rule with its own unsupported part needs no second reason.
        if (nat_cap && in_nat[c] && nat_cap->fidelity != Fidelity::Exact &&
            std::none_of(found.begin(), found.end(),
                         [](const Finding& f) { return f.fidelity == Fidelity::Unsupported; }))
          found.push_back({nat_cap->fidelity, "rule in a nat chain", std::string(nat_cap->why), rule.loc});
        bool nat_chain = ipt ? table.name == "nat" : in_nat[c];
        // A multiport/list with overlapping elements on a non-terminal rule
        // would be several iptables rules hitting twice; rare, noted.
        pending.push_back({{t, c, r}, &rule, std::move(found), nat_chain, families_of(table)});
      }
    }
  }
  // -m recent lists and -m hashlimit tables are not shared between netfilter
  // and nf2bpf: one that a rule left in netfilter uses stays in netfilter
  // with every rule naming it.
  auto unsupported = [](const Pending& p) {
    return std::any_of(p.found.begin(), p.found.end(),
                       [](const Finding& f) { return f.fidelity == Fidelity::Unsupported; });
  };
  // The rule's named state: "-m recent --name N" or "-m hashlimit --hashlimit-name N".
  auto state_name = [](const Rule& r) -> std::optional<std::string> {
    for (const auto& m : r.matches) {
      if (m.module != "recent" && m.module != "hashlimit") continue;
      bool recent = m.module == "recent";
      std::string key = recent ? "--name" : "--hashlimit-name", name = recent ? "DEFAULT" : "";
      for (const auto& [k, v] : m.args)
        if (k == key) name = v;
      return "-m " + m.module + " " + key + " " + name;
    }
    return std::nullopt;
  };
  auto keep_recent_lists = [&] {
    std::map<std::string, std::string> kept_lists;  // name -> the first rule left in netfilter
    for (const auto& p : pending)
      if (auto n = state_name(*p.rule); n && unsupported(p)) kept_lists.try_emplace(*n, p.rule->loc.file_line());
    for (auto& p : pending)
      if (auto n = state_name(*p.rule); n && kept_lists.count(*n) && !unsupported(p))
        p.found.push_back({Fidelity::Unsupported, *n,
                           "another rule using this state stays in netfilter (" + kept_lists[*n] +
                               "), and nf2bpf's state is not the kernel's: this one stays with it",
                           p.rule->loc});
  };
  if (any_ipt) keep_recent_lists();
  // NAT is translated whole or not at all per family (a connection's
  // binding cannot be split between netfilter and nf2bpf): one nat rule left
  // in netfilter keeps every nat rule of its family there.
  auto kept = [](const Pending& p) {
    return p.nat && std::any_of(p.found.begin(), p.found.end(),
                                [](const Finding& f) { return f.fidelity == Fidelity::Unsupported; });
  };
  unsigned nat_kept = 0;
  std::string kept_at[4];  // by family bits: the first nat rule left in netfilter
  for (const auto& p : pending)
    if (kept(p)) {
      for (unsigned f = 1; f < 4; ++f)
        if ((p.fams & f) && kept_at[f].empty()) kept_at[f] = p.rule->loc.file_line();
      nat_kept |= p.fams;
    }
  for (auto& p : pending)
    if (p.nat && (p.fams & nat_kept) && !kept(p))
      p.found.push_back({Fidelity::Unsupported, "nat rule",
                         "a nat rule of this address family stays in netfilter (" + kept_at[p.fams & nat_kept] +
                             "), and NAT is translated whole or not at all: this one stays with it",
                         p.rule->loc});
  if (any_ipt) keep_recent_lists();  // nat rules kept above may name lists too
  for (auto& p : pending) out.push_back(judge(p.ref, *p.rule, p.found, diags, opt));
  // File order, so reports read top to bottom.
  std::stable_sort(out.begin(), out.end(), [&](const RuleFidelity& a, const RuleFidelity& b) {
    const auto& la = rs.tables[a.ref.table].chains[a.ref.chain].rules[a.ref.rule].loc;
    const auto& lb = rs.tables[b.ref.table].chains[b.ref.chain].rules[b.ref.rule].loc;
    return la.line < lb.line;
  });
  return out;
}

}  // namespace nf2bpf::passes
