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
};

// Reports jump loops (error), chains no base chain reaches (warning) and
// rules no packet can reach (warning). Verdict maps are expanded into one
// entry per element. Stages come out sorted by hook and priority.
ir::Pipeline flatten(const ir::Ruleset& rs, diag::Diagnostics& diags, const FlattenOptions& opt = {});

}  // namespace nf2bpf::passes
