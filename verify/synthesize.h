// `diff --synthesize`: a capture made from the rules themselves, for an
// operator without a recording. For every rule it writes a packet that
// matches it, and around every match the boundary cases: each edge of a port
// range or CIDR and one past it, each ICMP type/code edge, the other side of
// a negation, and each connection state reached the way the kernel would see
// it (SYN, SYN-ACK, ACK sequences; an ICMP error quoting a flow; a stray
// SYN-ACK for INVALID). The pcapng keeps interface names, directions and
// this host's addresses, so `diff --pcap` needs no other options to read it.
#pragma once

#include <string>
#include <vector>

#include "common/result.h"
#include "translator/ir/ir.h"
#include "translator/ir/pipeline.h"

namespace nf2bpf::verify {

struct SynthResult {
  size_t packets = 0;
  size_t rules_total = 0;    // source rules on a path a packet can take
  size_t rules_covered = 0;  // of which a matching packet was written
  size_t boundary_packets = 0;
  std::vector<std::string> notes;  // rules no packet can satisfy, and why
};

Result<SynthResult> synthesize(const ir::Ruleset& rs, const ir::Pipeline& pipe, const std::string& out_path);

}  // namespace nf2bpf::verify
