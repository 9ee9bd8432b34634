#include "cutover/plan.h"

#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>

#include <algorithm>
#include <map>
#include <set>

namespace nf2bpf::cutover {

using ir::Family;
using ir::RuleRef;

size_t ChainPlan::removed() const {
  return (size_t)std::count_if(rules.begin(), rules.end(), [](const RulePlan& r) { return r.remove; });
}

size_t Plan::rules_removed() const {
  size_t n = 0;
  for (const auto& t : tables)
    for (const auto& c : t.chains) n += c.removed();
  return n;
}

size_t Plan::rules_kept() const {
  size_t n = 0;
  for (const auto& t : tables)
    for (const auto& c : t.chains) n += c.kept();
  return n;
}

size_t Plan::chains_deleted() const {
  size_t n = 0;
  for (const auto& t : tables)
    for (const auto& c : t.chains) n += c.delete_chain;
  return n;
}

uint8_t nfproto_of(Family f) {
  switch (f) {
    case Family::Ip: return NFPROTO_IPV4;
    case Family::Ip6: return NFPROTO_IPV6;
    case Family::Inet: return NFPROTO_INET;
    case Family::Arp: return NFPROTO_ARP;
    case Family::Bridge: return NFPROTO_BRIDGE;
    case Family::Netdev: return NFPROTO_NETDEV;
  }
  return NFPROTO_UNSPEC;
}

std::vector<TableId> source_tables(const Translation& tr) {
  std::vector<TableId> v;
  for (const auto& t : tr.ruleset.tables) v.push_back({nfproto_of(t.family), t.name});
  return v;
}

namespace {

enum Reach : uint8_t {
  kEnforced = 1,   // reached from a base chain the eBPF policy enforces, through translated jumps
  kNetfilter = 2,  // reached from a base chain it does not enforce, or through an untranslated jump
};

// Chains a rule sends packets to: its jump/goto target and, for a verdict
// map, every chain the map's elements jump or go to.
std::vector<uint32_t> targets_of(const ir::Ruleset& rs, const ir::Table& t, const ir::Rule& r) {
  std::vector<uint32_t> out;
  auto add = [&](const ir::Verdict& v) {
    if (v.kind != ir::VerdictKind::Jump && v.kind != ir::VerdictKind::Goto) return;
    for (uint32_t i = 0; i < t.chains.size(); ++i)
      if (t.chains[i].name == v.chain) out.push_back(i);
  };
  add(r.verdict);
  if (r.vmap)
    if (const ir::Set* s = rs.find_set(t, r.vmap->name))
      for (const auto& e : s->elements)
        if (e.verdict) add(*e.verdict);
  return out;
}

// Chains the elements of the table's named maps jump or go to.
std::set<std::string> held_by_named_maps(const ir::Table& t) {
  std::set<std::string> out;
  for (const auto& s : t.sets) {
    if (s.anonymous) continue;
    for (const auto& e : s.elements)
      if (e.verdict && (e.verdict->kind == ir::VerdictKind::Jump || e.verdict->kind == ir::VerdictKind::Goto))
        out.insert(e.verdict->chain);
  }
  return out;
}

bool compiled_stage(const ir::DecisionList& dl, const policy::Policy& pol) {
  if (dl.family != Family::Ip && dl.family != Family::Ip6 && dl.family != Family::Inet) return false;
  if (dl.hook == ir::Hook::Ingress || dl.hook == ir::Hook::Egress) return false;
  for (const auto& o : pol.stage_origins)
    if (o.table == dl.table && o.chain == dl.chain) return true;
  return false;
}

// Decides, table by table, which rules and chains the cut-over removes.
class Planner {
 public:
  Planner(const Translation& tr, const policy::Policy& pol);
  void table(uint32_t ti, const TableId& id, const KTable& kt, Plan& plan) const;

 private:
  bool unsupported(const RuleRef& r) const {
    auto it = status_.find(r);
    return it != status_.end() && it->second == caps::Fidelity::Unsupported;
  }
  bool same_shape(const ir::Table& t, const TableId& id, const KTable& kt, Plan& plan) const;
  std::vector<uint8_t> reachability(uint32_t ti) const;
  void keep_what_is_needed(uint32_t ti, const std::vector<uint8_t>& reach, const std::vector<uint32_t>& chain_of_plan,
                           TablePlan& tp) const;

  const ir::Ruleset& rs_;
  std::map<RuleRef, caps::Fidelity> status_;
  std::set<std::pair<uint32_t, uint32_t>> enforced_base_;  // (table, chain) indices
};

Planner::Planner(const Translation& tr, const policy::Policy& pol) : rs_(tr.ruleset) {
  for (const auto& r : tr.rules) status_[r.ref] = r.status;
  for (const auto& dl : tr.pipeline.stages)
    if (compiled_stage(dl, pol)) enforced_base_.insert({dl.table_index, dl.chain_index});
}

// The live table must have the source's shape, or positions mean nothing.
bool Planner::same_shape(const ir::Table& t, const TableId& id, const KTable& kt, Plan& plan) const {
  bool shape_ok = true;
  for (const auto& kc : kt.chains) {
    if (!t.find_chain(kc.name)) {
      plan.problems.push_back("chain " + id.str() + " " + kc.name + " is in the kernel but not in " + rs_.source);
      shape_ok = false;
    }
    if (kc.flags & NFT_CHAIN_BINDING) {
      plan.problems.push_back("chain " + id.str() + " " + kc.name +
                              " is an anonymous (bound) chain, which cut-over does not handle");
      shape_ok = false;
    }
  }
  for (const auto& c : t.chains) {
    const KChain* kc = kt.find_chain(c.name);
    if (!kc) {
      if (!c.rules.empty() || (c.base && c.base->policy != ir::VerdictKind::Accept)) {
        plan.problems.push_back("chain " + id.str() + " " + c.name + " of " + rs_.source + " is not in the kernel");
        shape_ok = false;
      }
      continue;
    }
    if (kc->rules.size() != c.rules.size()) {
      plan.problems.push_back("chain " + id.str() + " " + c.name + " has " + std::to_string(kc->rules.size()) +
                              " rules in the kernel and " + std::to_string(c.rules.size()) + " in " + rs_.source);
      shape_ok = false;
    }
  }
  return shape_ok;
}

// Reachability of every chain of a table, and by which kind of path.
std::vector<uint8_t> Planner::reachability(uint32_t ti) const {
  const ir::Table& t = rs_.tables[ti];
  std::vector<uint8_t> reach(t.chains.size(), 0);
  for (uint32_t ci = 0; ci < t.chains.size(); ++ci)
    if (t.chains[ci].base) reach[ci] = enforced_base_.count({ti, ci}) ? (uint8_t)kEnforced : (uint8_t)kNetfilter;
  for (bool changed = true; changed;) {
    changed = false;
    for (uint32_t ci = 0; ci < t.chains.size(); ++ci) {
      if (!reach[ci]) continue;
      for (uint32_t ri = 0; ri < t.chains[ci].rules.size(); ++ri) {
        uint8_t give = unsupported({ti, ci, ri}) ? (uint8_t)kNetfilter : reach[ci];
        for (uint32_t tgt : targets_of(rs_, t, t.chains[ci].rules[ri]))
          if ((reach[tgt] | give) != reach[tgt]) reach[tgt] |= give, changed = true;
      }
    }
  }
  return reach;
}

void Planner::table(uint32_t ti, const TableId& id, const KTable& kt, Plan& plan) const {
  const ir::Table& t = rs_.tables[ti];
  if (!same_shape(t, id, kt, plan)) return;
  std::vector<uint8_t> reach = reachability(ti);

  TablePlan tp;
  tp.id = id;
  std::vector<uint32_t> chain_of_plan;  // TablePlan chain -> IR chain index
  bool all_removable = true;
  for (uint32_t ci = 0; ci < t.chains.size(); ++ci) {
    const ir::Chain& c = t.chains[ci];
    const KChain* kc = kt.find_chain(c.name);
    if (!kc) continue;
    ChainPlan cp;
    cp.name = c.name;
    cp.base = kc->base;
    cp.old_policy = kc->policy;
    for (uint32_t ri = 0; ri < c.rules.size(); ++ri) {
      RulePlan rp;
      rp.handle = kc->rules[ri].handle;
      rp.location = c.rules[ri].loc.file_line();
      rp.text = c.rules[ri].text;
      if (unsupported({ti, ci, ri}))
        rp.why = "not translated (unsupported)";
      else if (reach[ci] & kNetfilter)
        rp.why =
            c.base ? "its base chain is not enforced by the eBPF policy"
                   : "reached from a base chain the eBPF policy does not enforce, or through a rule left in netfilter";
      rp.remove = rp.why.empty();
      all_removable &= rp.remove;
      cp.rules.push_back(std::move(rp));
    }
    // A base chain the dataplane does not enforce may go only when it does nothing.
    if (c.base && !enforced_base_.count({ti, ci}) && kc->policy != NF_ACCEPT) all_removable = false;
    tp.chains.push_back(std::move(cp));
    chain_of_plan.push_back(ci);
  }

  if (all_removable) {
    tp.emptied = true;
    // A chain a named map's element jumps to stays (emptied of its rules):
    // the map stays with the table and holds a reference the kernel will
    // not let a chain deletion break.
    std::set<std::string> held = held_by_named_maps(t);
    for (auto& cp : tp.chains) cp.delete_chain = !held.count(cp.name);
  } else {
    keep_what_is_needed(ti, reach, chain_of_plan, tp);
  }
  plan.tables.push_back(std::move(tp));
}

// In a table that stays: rules of unreached chains, and translated jumps to
// rules that stay, stay too; enforced base chains lose their DROP policy.
void Planner::keep_what_is_needed(uint32_t ti, const std::vector<uint8_t>& reach,
                                  const std::vector<uint32_t>& chain_of_plan, TablePlan& tp) const {
  const ir::Table& t = rs_.tables[ti];
  // Chains no base chain reaches stay as they are.
  for (size_t k = 0; k < tp.chains.size(); ++k)
    if (!reach[chain_of_plan[k]])
      for (auto& rp : tp.chains[k].rules)
        if (rp.remove) rp.remove = false, rp.why = "its chain is not reached from any base chain";
  // A translated jump stays when it leads to rules that stay, so they
  // keep being reached the way they were.
  auto plan_index = [&](uint32_t ci) -> int {
    for (size_t k = 0; k < chain_of_plan.size(); ++k)
      if (chain_of_plan[k] == ci) return (int)k;
    return -1;
  };
  std::vector<bool> has_kept(t.chains.size(), false);
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t k = 0; k < tp.chains.size(); ++k) {
      uint32_t ci = chain_of_plan[k];
      auto& cp = tp.chains[k];
      bool any = cp.kept() > 0;
      for (uint32_t ri = 0; ri < cp.rules.size(); ++ri) {
        if (!cp.rules[ri].remove) continue;
        for (uint32_t tgt : targets_of(rs_, t, t.chains[ci].rules[ri])) {
          int pk = plan_index(tgt);
          if (pk >= 0 && (has_kept[tgt] || tp.chains[pk].kept() > 0)) {
            cp.rules[ri].remove = false;
            cp.rules[ri].why = "it leads to rules that stay in chain " + t.chains[tgt].name;
            any = true;
            changed = true;
            break;
          }
        }
      }
      if (any && !has_kept[ci]) has_kept[ci] = true, changed = true;
    }
  }
  // The eBPF policy applies an enforced base chain's DROP policy now.
  for (size_t k = 0; k < tp.chains.size(); ++k) {
    auto& cp = tp.chains[k];
    if (cp.base && cp.old_policy == NF_DROP && enforced_base_.count({ti, chain_of_plan[k]}) &&
        !(reach[chain_of_plan[k]] & kNetfilter))
      cp.set_policy = NF_ACCEPT;
  }
}

}  // namespace

Plan make_plan(const Translation& tr, const policy::Policy& pol, const Snapshot& snap) {
  Plan plan;
  const ir::Ruleset& rs = tr.ruleset;
  Planner planner(tr, pol);
  std::set<TableId> translated;
  for (uint32_t ti = 0; ti < rs.tables.size(); ++ti) {
    const ir::Table& t = rs.tables[ti];
    TableId id{nfproto_of(t.family), t.name};
    translated.insert(id);
    const KTable* kt = snap.find(id);
    if (!kt) {
      plan.problems.push_back("table " + id.str() + " of " + rs.source + " is not in the kernel's nftables ruleset");
      continue;
    }
    planner.table(ti, id, *kt, plan);
  }
  for (const auto& id : snap.all_tables)
    if (!translated.count(id)) plan.untouched.push_back(id.str());
  return plan;
}

}  // namespace nf2bpf::cutover
