// Checks on witness traffic, shared by `sync` (verification before a swap,
// the change guard) and `apply --cutover` (is the live ruleset the one that
// was translated?): packets synthesized from the rules themselves
// (verify/synthesize.h) or a recorded capture, replayed through two verdict
// engines (verify/diff.h).
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/result.h"
#include "translator/policy/policy.h"
#include "translator/translate.h"
#include "verify/diff.h"

namespace nf2bpf::ops {

struct Comparison {
  std::string capture;
  uint64_t packets = 0;  // compared (agreed + differed)
  uint64_t agreed = 0, differed = 0;
  uint64_t excused = 0;  // differences decided by rules left in netfilter (--allow-partial)
  uint64_t indeterminate = 0, skipped = 0;
  // Per filter hook (INPUT, FORWARD, OUTPUT): the packets the first engine
  // accepted, and of those how many the second one accepted too. The change
  // guard: a policy that accepts none of what the live one accepted on a hook
  // cuts that traffic off (a source truncated to `:INPUT DROP`).
  struct Accepts {
    uint64_t before = 0, both = 0;
  };
  std::map<std::string, Accepts> accepts;
  // The hooks where the first engine accepted packets and the second none of them.
  std::vector<std::string> cut_off() const;
  std::vector<verify::PacketReport> differences;  // the first few
  std::string error;                              // the capture broke off
  double percent_changed() const { return packets ? 100.0 * (double)differed / (double)packets : 0.0; }
  void add(const Comparison& o);
  nlohmann::json json() const;
  // "tcp 198.51.100.1:20000 -> 192.0.2.1:22 (INPUT): expected ACCEPT (rules:4), got DROP (policy)"
  std::vector<std::string> describe(size_t max) const;
};

// Writes witness packets for `tr` to `path` (pcapng). Returns the packet count.
Result<size_t> synthesize_witness(const Translation& tr, const std::string& path);

// The source ruleset (reference evaluator) against its compiled policy
// (userspace model of the BPF programs). A difference whose expected side
// was decided by, or reached through, a rule left in netfilter is counted as
// excused, not as a difference: the kernel still applies that rule.
Result<Comparison> check_compiled(const Translation& tr, const policy::Policy& pol, const std::string& capture);

// Two compiled policies on the same traffic (the change guard).
Result<Comparison> compare_policies(const policy::Policy& before, const policy::Policy& after,
                                    const std::string& capture);

// Two rulesets by the reference evaluator (is the live ruleset the source?).
Result<Comparison> compare_rulesets(const Translation& a, const Translation& b, const std::string& capture);

}  // namespace nf2bpf::ops
