// Which netfilter objects a cut-over removes, decided without the kernel:
// from the translation (which rules were translated, which base chains the
// compiled policy enforces) and the shape of the live tables (chain names,
// rule counts and handles from a Snapshot).
//
// A rule is removed when it was translated and every way a packet reaches it
// runs through the eBPF policy: its chain hangs off base chains the policy
// enforces, through jumps that were translated too. Everything else stays:
// unsupported rules (--allow-partial), rules only reachable through them,
// chains of hooks or families the dataplane does not enforce (nat, bridge,
// netdev ...), and translated jumps that lead to rules that stay.
//
// A table whose rules all go is emptied: its chains are deleted (base chains
// unregister their hooks). The table itself stays, empty — it costs nothing
// per packet and keeps `nft list ruleset`'s order when restore refills it.
// In a table where something stays no chain is deleted: translated rules are
// deleted one by one and a base chain's DROP policy becomes ACCEPT, since
// the eBPF policy now applies it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cutover/snapshot.h"
#include "translator/policy/policy.h"
#include "translator/translate.h"

namespace nf2bpf::cutover {

struct RulePlan {
  uint64_t handle = 0;
  bool remove = false;
  std::string why;       // why it stays (empty when removed)
  std::string location;  // file:line in the source
  std::string text;      // as written in the source
};

struct ChainPlan {
  std::string name;
  bool base = false;
  bool delete_chain = false;           // with all its rules
  std::optional<uint32_t> set_policy;  // NF_ACCEPT where a DROP policy moves to eBPF
  uint32_t old_policy = 1;
  std::vector<RulePlan> rules;  // in chain order (same as the kernel's)
  size_t removed() const;
  size_t kept() const { return rules.size() - removed(); }
};

struct TablePlan {
  TableId id;
  bool emptied = false;  // every chain deleted
  std::vector<ChainPlan> chains;
};

struct Plan {
  std::vector<TablePlan> tables;       // the tables the source translated (and the kernel has)
  std::vector<std::string> untouched;  // the namespace's other tables
  std::vector<std::string> problems;   // reasons to refuse the cut-over
  size_t rules_removed() const;
  size_t rules_kept() const;
  size_t chains_deleted() const;
};

uint8_t nfproto_of(ir::Family f);

// The tables of the source ruleset, as kernel table ids.
std::vector<TableId> source_tables(const Translation& tr);

Plan make_plan(const Translation& tr, const policy::Policy& pol, const Snapshot& snap);

}  // namespace nf2bpf::cutover
