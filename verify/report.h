// Renders a DiffReport: text for a terminal, JSON for tools (the schema is in
// man/nf2bpf.8 under diff), markdown for a merge request.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "verify/diff.h"

namespace nf2bpf::verify {

std::string render_text(const DiffReport& r, bool color = false);
nlohmann::json render_json(const DiffReport& r);
std::string render_markdown(const DiffReport& r);

// What the text report's "result:" line says: "equivalent on this capture", "3 packets differ" ...
std::string result_line(const DiffReport& r);

std::string format_time(double t);  // "2024-05-01 08:00:00.001000" (UTC)

}  // namespace nf2bpf::verify
