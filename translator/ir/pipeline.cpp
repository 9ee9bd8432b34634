#include "translator/ir/pipeline.h"

namespace nf2bpf::ir {

const char* to_string(FlatAction a) {
  switch (a) {
    case FlatAction::Accept: return "accept";
    case FlatAction::Drop: return "drop";
    case FlatAction::Reject: return "reject";
    case FlatAction::Queue: return "queue";
    case FlatAction::Continue: return "continue";
    case FlatAction::Skip: return "skip";
  }
  return "?";
}

size_t Pipeline::flat_rules() const {
  size_t n = 0;
  for (const auto& s : stages) n += s.rules.size();
  return n;
}

}  // namespace nf2bpf::ir
