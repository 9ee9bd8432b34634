#include "translator/report/report.h"

#include <algorithm>
#include <array>
#include <map>
#include <tuple>
#include <sstream>

#include "common/strings.h"

namespace nf2bpf::report {

using caps::Fidelity;

namespace {

struct ChainRow {
  std::string family, table, chain;
  size_t rules = 0, exact = 0, approximate = 0, unsupported = 0;
};

std::vector<ChainRow> chain_rows(const Translation& tr) {
  std::vector<ChainRow> rows;
  std::map<std::pair<uint32_t, uint32_t>, size_t> index;
  const auto& rs = tr.ruleset;
  // Every chain appears, in file order, even when it has no rules.
  for (uint32_t t = 0; t < rs.tables.size(); ++t)
    for (uint32_t c = 0; c < rs.tables[t].chains.size(); ++c) {
      index[{t, c}] = rows.size();
      rows.push_back({ir::to_string(rs.tables[t].family), rs.tables[t].name, rs.tables[t].chains[c].name});
    }
  for (const auto& r : tr.rules) {
    auto& row = rows[index[{r.ref.table, r.ref.chain}]];
    ++row.rules;
    if (r.status == Fidelity::Exact) ++row.exact;
    if (r.status == Fidelity::Approximate) ++row.approximate;
    if (r.status == Fidelity::Unsupported) ++row.unsupported;
  }
  return rows;
}

std::string pad(const std::string& s, size_t w, bool right = false) {
  if (s.size() >= w) return s;
  return right ? std::string(w - s.size(), ' ') + s : s + std::string(w - s.size(), ' ');
}

// Diagnostics come from several passes; readers want them in file order.
std::vector<const diag::Diagnostic*> sorted(const diag::Diagnostics& ds) {
  std::vector<const diag::Diagnostic*> v;
  for (const auto& d : ds.all()) v.push_back(&d);
  std::stable_sort(v.begin(), v.end(), [](auto* a, auto* b) {
    if (a->loc.file != b->loc.file) return false;
    return std::tie(a->loc.line, a->loc.col) < std::tie(b->loc.line, b->loc.col);
  });
  return v;
}

}  // namespace

std::string text(const Translation& tr, bool color) {
  std::ostringstream out;
  out << diag::render_folded(sorted(tr.diags), color);
  if (tr.diags.suppressed()) out << "(" << tr.diags.suppressed() << " more diagnostics not shown)\n";
  if (!tr.diags.all().empty()) out << "\n";

  auto rows = chain_rows(tr);
  bool mixed = false;
  for (const auto& r : rows) mixed |= r.family != rows.front().family;
  std::vector<std::array<std::string, 6>> cells;
  cells.push_back({"table", "chain", "rules", "exact", "approximate", "unsupported"});
  ChainRow total{"", "total", ""};
  for (const auto& r : rows) {
    cells.push_back({escape_controls(mixed ? r.family + " " + r.table : r.table), escape_controls(r.chain),
                     std::to_string(r.rules), std::to_string(r.exact), std::to_string(r.approximate),
                     std::to_string(r.unsupported)});
    total.rules += r.rules, total.exact += r.exact, total.approximate += r.approximate,
        total.unsupported += r.unsupported;
  }
  cells.push_back({"total", "", std::to_string(total.rules), std::to_string(total.exact),
                   std::to_string(total.approximate), std::to_string(total.unsupported)});
  std::array<size_t, 6> w{};
  for (const auto& row : cells)
    for (size_t i = 0; i < 6; ++i) w[i] = std::max(w[i], row[i].size());
  for (size_t k = 0; k < cells.size(); ++k) {
    if (k == cells.size() - 1) {
      size_t width = 0;
      for (size_t i = 0; i < 6; ++i) width += w[i] + (i ? 2 : 0);
      out << std::string(width, '-') << "\n";
    }
    const auto& row = cells[k];
    out << pad(row[0], w[0]) << "  " << pad(row[1], w[1]);
    for (size_t i = 2; i < 6; ++i) out << "  " << pad(row[i], w[i], true);
    out << "\n";
  }
  out << "\n" << escape_controls(summary_line(tr)) << "\n";
  return out.str();
}

std::string summary_line(const Translation& tr) {
  std::ostringstream out;
  out << tr.ruleset.source << ": " << tr.rules.size() << " rules: " << tr.count(caps::Fidelity::Exact) << " exact, "
      << tr.count(caps::Fidelity::Approximate) << " approximate, " << tr.count(caps::Fidelity::Unsupported)
      << " unsupported; " << tr.diags.errors() << (tr.diags.errors() == 1 ? " error, " : " errors, ")
      << tr.diags.warnings() << (tr.diags.warnings() == 1 ? " warning" : " warnings");
  return out.str();
}

nlohmann::json diagnostic_json(const diag::Diagnostic& d) {
  nlohmann::json j = {{"severity", diag::to_string(d.severity)},
                      {"location", d.loc.str()},
                      {"file", d.loc.file},
                      {"message", d.message}};
  if (!d.loc.pointer.empty() && d.loc.pointer[0] != '/')
    j["where"] = d.loc.pointer;  // nft JSON and kernel input: "table inet filter, chain input, handle 7"
  else if (!d.loc.pointer.empty())
    j["pointer"] = d.loc.pointer;
  else
    j["line"] = d.loc.line, j["column"] = d.loc.col;
  if (!d.hint.empty()) j["hint"] = d.hint;
  return j;
}

nlohmann::json json(const Translation& tr) {
  nlohmann::json j;
  j["source"] = tr.ruleset.source;
  j["format"] = tr.input_format;
  j["summary"] = {{"rules", tr.rules.size()},
                  {"exact", tr.count(Fidelity::Exact)},
                  {"approximate", tr.count(Fidelity::Approximate)},
                  {"unsupported", tr.count(Fidelity::Unsupported)},
                  {"errors", tr.diags.errors()},
                  {"warnings", tr.diags.warnings()}};
  auto& rules = j["rules"] = nlohmann::json::array();
  for (const auto& r : tr.rules) {
    const auto& t = tr.ruleset.tables[r.ref.table];
    const auto& rule = t.chains[r.ref.chain].rules[r.ref.rule];
    nlohmann::json e = {{"location", rule.loc.file_line()},
                        {"family", ir::to_string(t.family)},
                        {"table", t.name},
                        {"chain", t.chains[r.ref.chain].name},
                        {"status", caps::to_string(r.status)},
                        {"reason", r.reason},
                        {"text", rule.text}};
    rules.push_back(std::move(e));
  }
  auto& chains = j["chains"] = nlohmann::json::array();
  for (const auto& row : chain_rows(tr))
    chains.push_back({{"family", row.family},
                      {"table", row.table},
                      {"chain", row.chain},
                      {"rules", row.rules},
                      {"exact", row.exact},
                      {"approximate", row.approximate},
                      {"unsupported", row.unsupported}});
  auto& diags = j["diagnostics"] = nlohmann::json::array();
  for (const auto* d : sorted(tr.diags)) diags.push_back(diagnostic_json(*d));
  return j;
}

}  // namespace nf2bpf::report
