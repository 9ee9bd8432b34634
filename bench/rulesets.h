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
//
// Mode::Classifier: the last rule is an ordinary rule of the family and the
// test packets are built around it. Mode::E2E: the last rule (kube, hostfw)
// accepts the benchmark's UDP flow 198.18.0.1 -> 198.18.0.2:5001.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace nf2bpf::bench {

enum class Family { Kube, HostFw, Deny, DenySet };
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
  size_t n = 0;              // rules (for denyset: set entries)
  std::string iptables;      // iptables-save text
  std::string ipset_save;    // `ipset save` text (denyset; and the set engines)
  std::string iptables_set;  // iptables-save text using -m set (set engines)
  std::string nft_plain;     // nft -f text, one rule per rule
  std::string nft_set;       // nft -f text with a set (empty: family has none)
  TestPacket match, nomatch;
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
