// Where NAT statements may stand. The kernel refuses a NAT target or
// statement outside a nat table / nat chain, and on a hook whose manip type
// it does not do: xt_nat's DNAT and xt_REDIRECT register for PREROUTING and
// OUTPUT, SNAT for POSTROUTING and INPUT, MASQUERADE for POSTROUTING only,
// NETMAP for all four; nft_nat / nft_redir / nft_masq validate the same hooks.
// The check covers every base chain that reaches the rule through jumps,
// gotos and verdict maps, as the kernel's does when the ruleset is loaded:
// a user chain with DNAT that POSTROUTING jumps to is refused; one that no
// base chain reaches is not.
#pragma once

#include <string>
#include <vector>

#include "translator/ir/ir.h"

namespace nf2bpf::frontend {

struct MisplacedNat {
  const ir::Rule* rule;
  const ir::Statement* stmt;
  std::string message, hint;
};

// `iptables`: the names and hints use iptables' words (tables, -j DNAT,
// PREROUTING); otherwise nft's (nat chains, dnat, prerouting). One entry per
// misplaced statement, for the first base chain that reaches it wrongly.
std::vector<MisplacedNat> misplaced_nat(const ir::Ruleset& rs, const ir::Table& t, bool iptables);

}  // namespace nf2bpf::frontend
