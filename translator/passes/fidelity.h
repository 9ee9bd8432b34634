// Pass: check every rule against the capability table and classify it.
#pragma once

#include <string>
#include <vector>

#include "translator/capabilities/capabilities.h"
#include "translator/diag/diagnostics.h"
#include "translator/ir/ir.h"
#include "translator/ir/pipeline.h"

namespace nf2bpf::passes {

struct RuleFidelity {
  ir::RuleRef ref;
  caps::Fidelity status = caps::Fidelity::Exact;
  std::string reason;  // the stated difference or why it is refused; empty when exact
};

struct FidelityOptions {
  // With --allow-partial, unsupported rules are warnings ("left in netfilter")
  // instead of errors.
  bool allow_partial = false;
};

// One entry per source rule, in file order. Emits a located diagnostic for
// every approximate (warning) and unsupported (error; warning with allow_partial) part of a rule.
std::vector<RuleFidelity> classify(const ir::Ruleset& rs, diag::Diagnostics& diags, const FidelityOptions& opt = {});

}  // namespace nf2bpf::passes
