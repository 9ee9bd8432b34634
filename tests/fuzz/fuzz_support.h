// What every libFuzzer target over a ruleset front-end does with the result:
// the passes, every report writer, the IR dumps, and for an accepted ruleset
// the compiler and a policy YAML round trip. Anything but a clean return (a
// crash, a sanitizer report, an exception, a hang) is a bug; a broken round
// trip aborts so libFuzzer keeps the input.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "translator/ir/dump.h"
#include "translator/passes/flatten.h"
#include "translator/policy/compile.h"
#include "translator/policy/yaml.h"
#include "translator/report/report.h"
#include "translator/translate.h"

namespace nf2bpf::fuzz {

// The passes as translate_source runs them, for targets that call a parser
// directly (to keep include files off the file system).
inline void run_passes(Translation& tr, bool allow_partial) {
  if (!tr.diags.has_errors()) tr.pipeline = passes::flatten(tr.ruleset, tr.diags);
  tr.rules = passes::classify(tr.ruleset, tr.diags, {allow_partial});
}

// Compiles an accepted translation and checks that its policy YAML loads back
// to the same file. Small limits keep one input from taking seconds.
inline void compile_round_trip(const Translation& tr) {
  diag::Diagnostics d;
  policy::CompileOptions copt;
  copt.max_entries = 20'000;
  copt.max_classes_per_slot = 20'000;
  policy::Policy p = policy::compile(tr, d, copt);
  if (d.has_errors()) return;
  std::string yaml = policy::to_yaml(p);
  diag::Diagnostics back_diags;
  auto back = policy::from_yaml(yaml, "fuzz.yaml", back_diags);
  if (back && policy::to_yaml(*back) == yaml) return;
  // The writer wrote what the reader refuses, or reads back differently.
  std::fprintf(stderr, "policy YAML round trip failed (%s):\n", back ? "reads back differently" : "refused");
  for (const auto& x : back_diags.all()) std::fprintf(stderr, "%s", diag::render(x).c_str());
  std::abort();
}

// Returns 0; the writers must cope with whatever the front-end accepted.
// Input bytes need not be UTF-8: the JSON writer replaces what it cannot encode.
inline int exercise(const Translation& tr, bool allow_partial, bool verbose) {
  std::string text = report::text(tr, verbose);
  std::string json = report::json(tr).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::string ir = ir::dump(tr.ruleset);
  std::string flat = ir::dump(tr.pipeline, tr.ruleset);
  if (text.empty() || json.empty()) std::abort();  // both always have at least a summary
  if (!tr.rejected(allow_partial)) compile_round_trip(tr);
  return 0;
}

}  // namespace nf2bpf::fuzz
