// Pass: resolve jumps, gotos and RETURN into per-hook decision lists.
#pragma once

#include "translator/diag/diagnostics.h"
#include "translator/ir/ir.h"
#include "translator/ir/pipeline.h"

namespace nf2bpf::passes {

struct FlattenOptions {
  // Inlining a chain reached from many places copies it each time; past this
  // many flattened rules the ruleset is refused with a diagnostic.
  size_t max_flat_rules = 8'000'000;
  // Jumps nested deeper than this are refused with a diagnostic (flattening
  // recurses once per level). iptables-nft stops at 16; legacy has no limit.
  size_t max_depth = 256;
};

// Reports jump loops and jumps nested deeper than max_depth (errors), chains
// no base chain reaches (warning) and rules no packet can reach (warning). Verdict maps are expanded into one
// entry per element. Stages come out sorted by hook and priority.
ir::Pipeline flatten(const ir::Ruleset& rs, diag::Diagnostics& diags, const FlattenOptions& opt = {});

}  // namespace nf2bpf::passes
