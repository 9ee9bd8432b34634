// Renders a Translation as the per-rule report `nf2bpf translate` prints.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "translator/translate.h"

namespace nf2bpf::report {

// Compiler-style diagnostics, then a per-chain summary table.
std::string text(const Translation& tr, bool color = false);

// The report's last line: "FILE: N rules: E exact, A approximate, U unsupported; X errors, Y warnings".
std::string summary_line(const Translation& tr);

// {"source", "format", "summary", "rules", "chains", "diagnostics"}; the schema is in nf2bpf(8).
nlohmann::json json(const Translation& tr);

nlohmann::json diagnostic_json(const diag::Diagnostic& d);

}  // namespace nf2bpf::report
