// The rules iptables-nft wrote into nf_tables, read over netlink in-process
// and printed as iptables-nft-save prints them — what kube-proxy's iptables
// mode holds, without starting iptables-nft-save (which needs minutes for,
// and on Debian 12 crashes on, the 320,000-rule nat table of 10,000
// Services). The decoder knows the expressions iptables-nft writes for the
// matches and targets kube-proxy and most hosts use; a rule holding anything
// else makes the whole read an error that names it, and the caller runs the
// tool instead. It never prints a rule differently from the tool: the
// kernel-xtables-read test compares the two on the same tables.
#pragma once

#include <string>
#include <vector>

#include "common/result.h"

struct nftnl_rule;

namespace nf2bpf::frontend {

// One iptables table of the current network namespace.
struct XtablesTable {
  std::string text;     // "*TABLE", the chain lines, the "-A" lines, "COMMIT"
  bool has_xt = false;  // a rule holds an xtables match or target expression
};

// The table as `iptables-nft-save -t TABLE` (ip6tables-nft-save when `v6`)
// prints it, without its comment lines, with chain counters [0:0]. The ruleset
// generation is read before and after: a change in between reads again.
// An error when the table does not exist, or names the first rule this
// decoder cannot print exactly.
Result<XtablesTable> read_xtables_table_netlink(bool v6, const std::string& table);

// The "-A" lines of one chain, as `iptables-nft -t TABLE -S CHAIN` prints
// them. An error when the chain does not exist or a rule cannot be printed.
Result<std::vector<std::string>> read_xtables_chain_netlink(bool v6, const std::string& table,
                                                            const std::string& chain);

// One rule as iptables-nft-save prints it ("-A CHAIN ..."), or an error
// naming the expression it cannot print. `has_xt` is set when the rule holds
// an xtables match or target.
Result<std::string> xtables_rule_text(const nftnl_rule* r, bool v6, bool* has_xt = nullptr);

}  // namespace nf2bpf::frontend
