#pragma once

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "translator/diag/diagnostics.h"
#include "translator/frontend/iptables/parser.h"
#include "translator/ir/dump.h"
#include "translator/translate.h"

namespace nf2bpf::test {

struct Parsed {
  ir::Ruleset rs;
  diag::Diagnostics diags;
  std::string rendered() const {
    std::string s;
    for (const auto& d : diags.all()) s += diag::render(d);
    return s;
  }
};

inline Parsed parse_ipt(const std::string& text, ir::AddrFamily fam = ir::AddrFamily::V4,
                        const std::vector<ir::Set>& ipsets = {}) {
  Parsed p;
  p.rs = frontend::parse_iptables({"rules.v4", text}, fam, ipsets, p.diags);
  return p;
}

// "*filter\n:INPUT ACCEPT [0:0]\n... -A INPUT <rule>\nCOMMIT\n" around one rule.
inline std::string one_rule(const std::string& rule, const std::string& table = "filter",
                            const std::string& extra_chains = "") {
  return "*" + table + "\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n" + extra_chains +
         "-A INPUT " + rule + "\nCOMMIT\n";
}

inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline std::string src_path(const std::string& rel) { return std::string(NF2BPF_SOURCE_DIR) + "/" + rel; }

// The files of a source directory with this extension (".nft"), sorted.
inline std::vector<std::filesystem::path> source_files(const std::string& rel_dir, const std::string& ext) {
  std::vector<std::filesystem::path> v;
  for (auto& e : std::filesystem::directory_iterator(src_path(rel_dir)))
    if (e.path().extension() == ext) v.push_back(e.path());
  std::sort(v.begin(), v.end());
  return v;
}

}  // namespace nf2bpf::test
