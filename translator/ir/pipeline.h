// The flattened form of a ruleset: for every base chain, the ordered decision
// list the kernel effectively evaluates, with user chains inlined. This is
// what the policy compiler lowers and what the reference evaluator runs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "translator/ir/ir.h"

namespace nf2bpf::ir {

// Indices of a rule in its Ruleset (tables[table].chains[chain].rules[rule]).
struct RuleRef {
  uint32_t table = 0, chain = 0, rule = 0;
  bool operator==(const RuleRef&) const = default;
  auto operator<=>(const RuleRef&) const = default;
};

enum class FlatAction : uint8_t {
  Accept,
  Drop,
  Reject,
  Queue,
  Continue,  // statements only (LOG, MARK, counter ...): go on with the next rule
  Skip,      // go on at rule `skip_to` (RETURN, the end of a goto'd chain, vmap miss)
};
const char* to_string(FlatAction a);

struct FlatRule {
  std::vector<Match> matches;         // conjunction of the rule and of every jump leading to it
  std::vector<Statement> statements;  // run in order when the rule matches
  FlatAction action = FlatAction::Continue;
  std::string reject_with;
  uint32_t skip_to = 0;       // for Skip: index in the same list (== size(): the policy)
  RuleRef origin;             // the source rule that this entry comes from
  std::vector<RuleRef> path;  // the jump/goto rules that lead here, outermost first
  // How many of `matches` each jump on `path` contributed, outermost first,
  // when a jump's test of a field its chain changes (mark, ct mark) was left
  // out of the prefix; empty: every jump contributed all of its matches.
  std::vector<uint32_t> segments;
  // A Skip entry that tests, once at the jump/goto `origin`, that one of its
  // conditions on such a field fails, and skips the inlined chain.
  bool guard = false;
  bool terminal() const {
    return action == FlatAction::Accept || action == FlatAction::Drop || action == FlatAction::Reject ||
           action == FlatAction::Queue;
  }
};

// One base chain: evaluated in hook order, then priority order.
struct DecisionList {
  Family family = Family::Ip;
  Hook hook = Hook::Input;
  ChainType type = ChainType::Filter;
  int priority = 0;
  std::string table, chain;
  uint32_t table_index = 0, chain_index = 0;
  VerdictKind policy = VerdictKind::Accept;
  std::vector<FlatRule> rules;
};

struct Pipeline {
  std::vector<DecisionList> stages;  // sorted by (hook, priority, family)
  size_t flat_rules() const;
};

}  // namespace nf2bpf::ir
