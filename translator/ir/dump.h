// A stable, readable text form of the IR and of decision lists, used by the
// golden tests and by `nf2bpf translate --dump-ir`.
#pragma once

#include <string>

#include "translator/ir/ir.h"
#include "translator/ir/pipeline.h"

namespace nf2bpf::ir {

std::string dump(const Match& m);
std::string dump(const Statement& s);
std::string dump(const Ruleset& rs);
std::string dump(const Pipeline& p, const Ruleset& rs);

}  // namespace nf2bpf::ir
