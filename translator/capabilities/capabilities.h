// The capability table: every match, target, option and structure a front-end
// understands, with how faithfully nf2bpf's dataplane reproduces it. The
// per-rule report, the man page's SUPPORTED MATCHES AND TARGETS section and
// the packet-test meta-test are all generated from this one table.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace nf2bpf::caps {

enum class Fidelity { Exact, Approximate, Unsupported };
const char* to_string(Fidelity f);

// The one switch for the NAT rows (issue 12). The rows say what the NAT
// dataplane supports (DNAT/SNAT/MASQUERADE/REDIRECT exact, the random and
// persistent flags approximate); while it is false, every one of them reads
// unsupported, so the translate report stays true until the dataplane lands.
inline constexpr bool kNatDataplane = true;
constexpr std::string_view kNatPending =
    "NAT is not implemented in the dataplane yet (it lands with the kube-proxy services work)";
// A row the NAT dataplane supports with `f` (and reason `why`).
constexpr Fidelity nat_fidelity(Fidelity f) { return kNatDataplane ? f : Fidelity::Unsupported; }
constexpr std::string_view nat_why(std::string_view why) { return kNatDataplane ? why : kNatPending; }
constexpr std::string_view kNatRandom = "the port/address is drawn from the same range by a different random source";

struct Capability {
  std::string_view frontend;  // "iptables" (also ip6tables) or "nft"
  std::string_view kind;      // "table", "option", "match", "target", "expression", "statement"
  std::string_view name;      // how the user writes it: "-m tcp --dport", "-j LOG"
  Fidelity fidelity;
  std::string_view why;  // the stated difference (approximate) or the reason (unsupported)
};

const std::vector<Capability>& table();

// The rows, one function per front-end (one file each).
const std::vector<Capability>& iptables_capabilities();
const std::vector<Capability>& nft_capabilities();

// Looks up `name` for `frontend`. Unknown names return nullptr: callers report
// them as unsupported ("not in nf2bpf's capability table").
const Capability* find(std::string_view frontend, std::string_view name);

struct Counts {
  size_t exact = 0, approximate = 0, unsupported = 0;
};
Counts count(std::string_view frontend);

}  // namespace nf2bpf::caps
