// Seeded random rulesets and packet sequences for the differential tests.
// Rulesets use only what nf2bpf translates exactly; packets come as small
// flows with consistent TCP sequence numbers in both directions, interleaved,
// so connection tracking sees real NEW / ESTABLISHED / RELATED / INVALID
// traffic.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "tests/kernel/difftest/testbed.h"

namespace nf2bpf::difftest {

struct Case {
  Mode mode;
  int family;
  std::string ruleset;
  std::vector<Probe> probes;
};

// ref: the rules in iptables-save syntax (loaded with iptables-restore) or in
// `nft -f` syntax (loaded with nft); nf2bpf apply reads the same text.
// reject: some rules REJECT (iptables: every --reject-with; nft: every
// `reject with`), and the harness compares the answers the sender gets.
Case random_case(uint64_t seed, Mode mode, int family, int packets, Reference ref = Reference::Iptables,
                 bool reject = false);

}  // namespace nf2bpf::difftest
