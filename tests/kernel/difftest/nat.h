// The NAT modes of the kernel-differential test. A NAT ruleset changes what
// arrives (the rewritten header) and only makes sense with replies, so a case
// here is a ruleset plus flows whose reply packets are built at run time from
// what each testbed's receiving host actually got (source and destination
// swapped, TCP sequence numbers from the flow's script). The two testbeds
// are compared on what each host finally receives: where it arrived, the
// addresses, ports or ICMP id (and the quoted header of an ICMP error), and
// whether its checksums are right.
//
//   nat mode:      cli --veth-- rtr --veth-- srv   rules on rtr (PREROUTING
//                  DNAT of service addresses, POSTROUTING SNAT/MASQUERADE out
//                  of r1, FORWARD filter rules on conntrack state)
//   nat-host mode: cli --veth-- srv                rules on srv (PREROUTING
//                  DNAT/REDIRECT to local ports, INPUT SNAT, OUTPUT DNAT and
//                  POSTROUTING SNAT/MASQUERADE of srv's own flows, INPUT and
//                  OUTPUT filter rules)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tests/kernel/difftest/testbed.h"

namespace nf2bpf::difftest {

enum class NatMode { Router, Host };
enum class Side { Cli, Srv };  // the host a packet is sent from or arrives at

struct NatOptions {
  NatMode mode = NatMode::Router;
  int family = 4;
  Reference ref = Reference::Iptables;
  // Also address ranges, port ranges a kept port may fall outside of and the
  // --random/--random-fully/--persistent flags: the kernel's choice is then
  // hashed or random, so a rewritten field is accepted when it lies in the
  // rule's range (checked loosely), not compared exactly.
  bool ranges = false;
  // Flows answered by an ICMP error quoting the received packet. Off
  // (--no-icmp-errors) for nf2bpf runs until its dataplane translates the
  // outer and quoted headers of an ICMP error about a NATed connection.
  bool icmp_errors = true;
  // Rules in the nat OUTPUT hook (host mode); off with --no-output-nat.
  bool output_nat = true;
};

struct NatFlow {
  Side init;  // who sends the first packet; the other side replies
  uint8_t proto;
  std::string src, dst;  // as the initiator sends them
  uint16_t sport = 0, dport = 0, icmp_id = 0;
  uint32_t isn_init = 0, isn_resp = 0;  // TCP
  bool icmp_error = false;              // UDP, answered by an ICMP port unreachable
};

struct NatStep {
  int flow;
  bool from_init;     // else a reply built from the responder's last observation
  uint8_t tcp_flags;  // TCP
  uint32_t seq = 0, ack = 0;
  uint32_t token;  // marker in the payload (an ICMP error is found by the quoted one)
  std::string what;
};

struct NatCase {
  std::string ruleset;
  // The ruleset with the first DNAT/REDIRECT port changed and, with ranges,
  // every address range cut to its first address (--mutate).
  std::string mutant;
  std::vector<NatFlow> flows;
  std::vector<NatStep> steps;  // flows interleaved
  // Every address and port range a NAT rule of the ruleset can pick from
  // (for the loose comparison with --nat-ranges): "lo-hi" text, both ends.
  std::vector<std::pair<std::string, std::string>> addr_ranges;
  std::vector<std::pair<int, int>> port_ranges;
};

NatCase random_nat_case(uint64_t seed, const NatOptions& o, int packets);

// Runs `cases` cases from `seed`; returns the number of disagreements, or -1
// when netfilter refused a generated ruleset. self_check: both testbeds are
// netfilter; mutate: the second testbed loads NatCase::mutant.
struct NatRun {
  std::string bin;
  uint64_t seed = 0;
  int cases = 10, packets = 200;
  bool verbose = false, self_check = false, mutate = false;
  std::string ruleset;  // replaces each generated ruleset (both sides), to minimise a finding
};
int run_nat(const NatOptions& o, const NatRun& r);

}  // namespace nf2bpf::difftest
