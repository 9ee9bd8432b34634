// `apply --cutover`: with the eBPF policy live, prove the live netfilter
// ruleset is the one that was translated, save what will be removed, and
// remove it in one nftables transaction (cutover/). Retried when the ruleset
// changes under it.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "cutover/plan.h"
#include "cutover/snapshot.h"
#include "ops/outcome.h"
#include "translator/policy/policy.h"
#include "translator/translate.h"

namespace nf2bpf::ops {

struct CutoverOptions {
  std::string backup;       // "" = default_backup_path(default_state_dir())
  bool dry_run = false;     // make the plan, change nothing
  bool check_only = false;  // the checks alone (before the eBPF policy is loaded)
  std::string source;       // as recorded in the backup
};

struct CutoverOutcome {
  Kind kind = Kind::ok;  // refused: the live ruleset is not the source, iptables-legacy, a backup in the way ...
  std::string message, hint;
  std::vector<std::string> problems;  // what a refusal is about, one line each, shown before the message
  // Once the live ruleset is proven to be the source:
  uint32_t genid = 0;  // the netfilter ruleset generation it was read at
  std::string how;     // how it was proven
  std::optional<cutover::Plan> plan;
  size_t messages = 0;  // in the transaction that was sent
  std::string backup;   // where the removed objects were saved
};

CutoverOutcome run_cutover(const Translation& tr, const policy::Policy& pol, const CutoverOptions& o);

// The tables iptables-legacy holds for a family (cutover::legacy_tables in
// the running namespace).
using LegacyTables = std::function<std::vector<std::string>(uint8_t family)>;

// cutover::make_plan, plus a problem for every source table that the
// snapshot lacks because iptables-legacy holds it: out of an nftables
// transaction's reach.
cutover::Plan plan_cutover(const Translation& tr, const policy::Policy& pol, const cutover::Snapshot& snap,
                           const LegacyTables& legacy);

// The hint for a plan with problems: what to do about iptables-legacy
// tables, or how to translate what is live.
std::string plan_refusal_hint(const cutover::Plan& plan);

}  // namespace nf2bpf::ops
