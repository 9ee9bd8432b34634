// Generated rulesets for the benchmarks, one generator per family, each able
// to write the same N rules for every engine the benchmarks compare:
// iptables-save text (iptables-restore, iptables-legacy-restore, nf2bpf),
// nft plain rules, nft with a set, and iptables + ipset.
//
// Families (docs/benchmarks.md describes them in prose):
//   kube    kube-proxy-like service matches: -d VIP -p tcp|udp --dport P -j ACCEPT,
//           policy DROP. Traffic matches the last rule.
//   hostfw  a host firewall: lo/ct-state/negation header, then rules over
//           source CIDRs (/25../32 and "any"), single ports and port ranges,
//           ct state NEW, interface wildcards; ACCEPT or DROP; policy DROP.
//           Traffic matches the last rule.
//   deny    an ipset-style deny list as N rules -s PREFIX -j DROP, policy
//           ACCEPT. Traffic matches no rule (the policy accepts it).
//   denyset the same prefixes as one `-m set --match-set` rule over an
//           `ipset save` hash:net set of N entries (classifier only).
//   nat     kube-proxy-like destination NAT: N rules in the nat table's
//           PREROUTING, -d VIP -p tcp|udp --dport P -j DNAT --to-destination
//           BACKEND:PORT, no filter rules (filter policies ACCEPT). Backends
//           are local addresses (the classifier's locally routed 10.96.0.0/12;
//           in E2E mode the flow's own destination, port 5001 -> 5002), so the
//           first packet's whole path runs in TC ingress and the e2e sink
//           counts it. Traffic matches the last rule. `iptables_filter` holds
//           the same N matches as filter rules (-j ACCEPT, policy DROP: the
//           kube family) for the filter-only comparison.
//
// Mode::Classifier: the last rule is an ordinary rule of the family and the
// test packets are built around it. Mode::E2E: the last rule (kube, hostfw)
// accepts the benchmark's UDP flow 198.18.0.1 -> 198.18.0.2:5001 (nat: translates
// it to 198.18.0.2:5002).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace nf2bpf::bench {

enum class Family { Kube, HostFw, Deny, DenySet, Nat };
enum class Mode { Classifier, E2E };

const char* family_name(Family f);
bool parse_family(const std::string& s, Family& f);

// A packet of the benchmark (IPv4), and what the ruleset does with it.
struct TestPacket {
  uint32_t saddr = 0, daddr = 0;
  uint8_t proto = 17;
  uint16_t sport = 40000, dport = 0;
  bool accept = true;  // the verdict netfilter gives
  std::string what;    // "last rule", "policy" ...
};

struct Ruleset {
  Family family;
  size_t n = 0;                 // rules (for denyset: set entries)
  std::string iptables;         // iptables-save text
  std::string ipset_save;       // `ipset save` text (denyset; and the set engines)
  std::string iptables_set;     // iptables-save text using -m set (set engines)
  std::string nft_plain;        // nft -f text, one rule per rule
  std::string nft_set;          // nft -f text with a set (empty: family has none)
  std::string iptables_filter;  // nat: the same matches as filter rules, no NAT
  TestPacket match, nomatch;
  // nat: where the last rule sends `match` (destination address and port).
  uint32_t nat_daddr = 0;
  uint16_t nat_dport = 0;
  // For the "rotating" classifier measurement: packets that each match one
  // rule spread over the whole ruleset (empty when the family has none).
  std::vector<TestPacket> spread;
  // A one-rule change of the same ruleset (the service at the middle gets a
  // new port / the middle prefix moves), for the control-plane benchmark.
  std::string iptables_changed;
  std::string nft_plain_changed;
  // The single rule before and after that change, as iptables arguments
  // (for `iptables -R INPUT <pos> ...`) and its 1-based position.
  size_t changed_pos = 0;
  std::string changed_rule_ipt;
};

Ruleset generate(Family f, size_t n, Mode mode, size_t spread = 0);

std::string ip4(uint32_t a);

}  // namespace nf2bpf::bench
