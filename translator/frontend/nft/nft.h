// The nftables front-end: `nft list ruleset` text and files for `nft -f`,
// `nft -j list ruleset` JSON, and the ruleset the running kernel holds.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "common/result.h"
#include "translator/diag/diagnostics.h"
#include "translator/frontend/nft/ast.h"
#include "translator/frontend/source.h"
#include "translator/ir/ir.h"

namespace nf2bpf::frontend {

struct NftTextOptions {
  // Reads an included file; the default reads from the file system.
  std::function<Result<std::string>(const std::string& path)> read_file;
  unsigned max_include_depth = 16;
  // Called with every rule as parsed (the kernel reader uses it to pair
  // text-listing rules with JSON ones by handle).
  std::function<void(ir::Family, const std::string& table, const std::string& chain, const nft::RuleAst&)> on_rule;
};

// Text: `nft list ruleset` output (with -a handles, -s) and `nft -f` files
// (define, include relative to the including file, flush, block and
// one-line forms).
ir::Ruleset parse_nft_text(const Source& src, diag::Diagnostics& diags, const NftTextOptions& opt = {});

// Key of a rule by where it lives and its handle.
using NftRuleKey = std::tuple<ir::Family, std::string, std::string, uint64_t>;

struct NftJsonOptions {
  ir::Frontend frontend = ir::Frontend::NftJson;
  // Rules to use instead of JSON rules that hold `xt` expressions (iptables-nft
  // matches the JSON output does not describe), keyed by handle.
  const std::map<NftRuleKey, nft::RuleAst>* substitutes = nullptr;
};

// JSON: `nft -j list ruleset` (and JSON command objects add/insert/delete/flush).
// Locations are JSON pointers ("/nftables/7/rule/expr/2").
ir::Ruleset parse_nft_json(const Source& src, diag::Diagnostics& diags, const NftJsonOptions& opt = {});

// The current network namespace's ruleset, read through libnftables
// in-process. System failures are Errors; ruleset problems are diagnostics.
Result<ir::Ruleset> read_kernel_ruleset(diag::Diagnostics& diags);

// One chain of a table iptables-nft wrote, as `iptables-nft -t TABLE -S
// CHAIN` (ip6tables-nft with v6) prints it: its `-A` lines, which are the
// lines iptables-nft-save prints for it. Read over netlink; from the tool
// when a rule holds what the netlink reader does not print. An error when
// the chain does not exist or the tool fails.
Result<std::vector<std::string>> read_xtables_chain(bool v6, const std::string& table, const std::string& chain);

// One chain of an nft table of family ip (4) or ip6 (6), its rules as `nft
// list chain` prints them (one line each, no handles), read over netlink:
// microseconds a chain, where libnftables first lists the whole table
// (15 s for kube-proxy's table of 10,000 Services). It prints what
// kube-proxy's nftables mode writes into its service, endpoint and local
// chains; a rule holding anything else is an error (EOPNOTSUPP) naming it.
// An error (ENOENT) when the chain does not exist.
Result<std::vector<std::string>> read_nft_chain(uint8_t family, const std::string& table, const std::string& chain);

}  // namespace nf2bpf::frontend
