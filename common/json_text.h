#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace nf2bpf {

// JSON from input text is not always UTF-8: rule comments, log prefixes and
// chain names carry whatever bytes the ruleset had. Every JSON document nf2bpf
// writes (stdout, state files, backups, map records) goes through these, so a
// stray byte is read as Latin-1 (0xE9 -> U+00E9) instead of failing the dump.
nlohmann::json utf8_json(const nlohmann::json& doc);

// utf8_json(doc).dump(indent).
std::string dump_utf8(const nlohmann::json& doc, int indent = -1);

}  // namespace nf2bpf
