// Helpers for the nftables front-end's tests: parse text or JSON, and dump
// the IR deeply enough (set elements included) to compare two parses.
#pragma once

#include <regex>
#include <string>

#include "tests/helpers.h"
#include "translator/frontend/nft/nft.h"
#include "translator/ir/dump.h"
#include "translator/passes/flatten.h"

namespace nf2bpf::test {

inline Parsed parse_nft(const std::string& text, const std::string& name = "rules.nft") {
  Parsed p;
  p.rs = frontend::parse_nft_text({name, text}, p.diags);
  return p;
}

inline Parsed parse_nft_json(const std::string& text, const std::string& name = "rules.json") {
  Parsed p;
  p.rs = frontend::parse_nft_json({name, text}, p.diags);
  return p;
}

// Every named and anonymous set with its flags and elements, one per line.
inline std::string dump_sets(const ir::Ruleset& rs) {
  std::string out;
  for (const auto& t : rs.tables)
    for (const auto& s : t.sets) {
      out += "set " + std::string(ir::to_string(t.family)) + " " + t.name + " " + s.name + " [" + s.origin_type;
      if (s.interval) out += ", interval";
      if (s.has_timeout) out += ", timeout";
      if (s.constant) out += ", constant";
      if (s.anonymous) out += ", anonymous";
      out += s.kind == ir::Set::Kind::VerdictMap ? ", vmap" : s.kind == ir::Set::Kind::Map ? ", map" : "";
      out += "]\n";
      for (const auto& e : s.elements) {
        out += "  ";
        for (size_t k = 0; k < e.key.size(); ++k) {
          ir::Match m;
          m.field = k < s.key.size() ? s.key[k] : ir::Field::Opaque;
          m.value = e.key[k];
          out += (k ? " . " : "") + ir::dump(m);
        }
        if (e.verdict) out += " : " + ir::to_string(*e.verdict);
        if (e.data) out += " : " + ir::format_int_set(*e.data);
        out += "\n";
      }
    }
  return out;
}

// The capability each match, statement and verdict names, rule by rule.
inline std::string dump_caps(const ir::Ruleset& rs) {
  std::string out;
  for (const auto& t : rs.tables)
    for (const auto& c : t.chains)
      for (const auto& r : c.rules) {
        out += t.name + "/" + c.name + ":";
        for (const auto& m : r.matches) out += " " + m.cap + ";";
        for (const auto& st : r.statements) out += " " + st.cap + ";";
        out += " " + r.verdict.cap + "\n";
      }
  return out;
}

// IR, sets and decision lists, without source lines (text has them, JSON not).
inline std::string deep_dump(const ir::Ruleset& rs) {
  diag::Diagnostics d;
  auto pipe = passes::flatten(rs, d);
  std::string s = ir::dump(rs) + "== sets\n" + dump_sets(rs) + "== decision lists\n" + ir::dump(pipe, rs);
  static const std::regex kLine(R"((\n(?:    |  \d+ ))@\d+:)");
  return std::regex_replace("\n" + s, kLine, "$1@:").substr(1);
}

}  // namespace nf2bpf::test
