// Replays a capture through two verdict engines and collects every packet
// on which they disagree, with the rule on each side that decided it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "verify/engine.h"
#include "verify/host.h"
#include "verify/pcap_reader.h"

namespace nf2bpf::verify {

// One packet as the report shows it.
struct PacketReport {
  uint64_t number = 0;
  double time = 0;
  uint8_t family = 4, l4proto = 0;
  ir::u128 saddr = 0, daddr = 0;
  uint16_t sport = 0, dport = 0;
  bool has_ports = false;
  uint8_t icmp_type = 0, icmp_code = 0;
  bool is_icmp = false;
  std::string tuple;  // format_tuple()
  std::string iif, oif;
  Decision expected, actual;
};

struct SkipReason {
  std::string reason;
  uint64_t count = 0;
  uint64_t first = 0;  // packet number of the first one
};

struct DiffReport {
  std::string capture;
  std::string expected_name, actual_name;
  std::string expected_engine, actual_engine;  // "reference evaluator", "compiled policy (userspace model)" ...
  uint64_t packets = 0, agreed = 0, differed = 0, indeterminate = 0, skipped = 0;
  std::vector<SkipReason> skips;
  std::vector<PacketReport> differences;
  std::vector<PacketReport> undecided;  // indeterminate on either side
  std::vector<RuleHits> expected_hits, actual_hits;
  std::vector<std::string> notes;  // how the capture was interpreted
  std::string error;               // the capture broke off: packets before it are counted
  bool engine_error = false;       // ... or rather a verdict engine failed (--kernel)
  // Rules of the expected ruleset that the compiled (actual) side does not
  // have: they stay in netfilter. The compiled policy alone is then not the
  // ruleset, whatever the capture shows (NAT rules, for one, change no verdict).
  uint64_t left_in_netfilter = 0;
  bool equivalent() const { return differed == 0 && left_in_netfilter == 0; }
};

struct DiffOptions {
  size_t lookahead = 32;  // packets searched for a forwarded packet's copy leaving (its output interface)
};

DiffReport run_diff(CaptureReader& capture, HostModel& host, VerdictEngine& expected, VerdictEngine& actual,
                    const DiffOptions& opt = {});

}  // namespace nf2bpf::verify
