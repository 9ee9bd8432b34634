// Packet-test fixtures in the style of Katran's and Cilium's BPF tests: a
// table of cases, each a ruleset and the packets sent through it in order,
// with the hook path, the interfaces and the verdict netfilter gives. Every
// packet runs through the BPF programs (BPF_PROG_TEST_RUN on a private
// dataplane holding the compiled policy) and through the userspace model;
// the fixture checks BPF == expected and model == BPF, packet by packet.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "translator/translate.h"
#include "verify/builder.h"

namespace nf2bpf::loader {
class Dataplane;
}

namespace nf2bpf::ktest {

// ---- packets ----------------------------------------------------------------

enum Tcp : uint8_t { FIN = 0x01, SYN = 0x02, RST = 0x04, PSH = 0x08, ACK = 0x10, URG = 0x20, ECE = 0x40, CWR = 0x80 };

// An IP packet and the link layer it arrives with. The Ethernet destination
// is the receiving device's own MAC unless broadcast()/multicast() say
// otherwise, so the kernel classifies it as PACKET_HOST like a real frame.
struct Pkt {
  verify::PacketSpec ip;
  uint64_t src_mac = 0x020000000002ULL;
  enum class L2 : uint8_t { Host, Broadcast, Multicast } l2 = L2::Host;

  Pkt& ttl(uint8_t v) {
    ip.ttl = v;
    return *this;
  }
  Pkt& tos(uint8_t v) {  // DSCP << 2 | ECN
    ip.dscp = v >> 2, ip.ecn = v & 3;
    return *this;
  }
  Pkt& payload(size_t bytes) {
    ip.payload.assign(bytes, 0x5a);
    return *this;
  }
  Pkt& seq(uint32_t s, uint32_t a = 0) {
    ip.seq = s, ip.ack = a;
    return *this;
  }
  Pkt& mac(uint64_t m) {
    src_mac = m;
    return *this;
  }
  Pkt& mss(uint16_t v) {  // a TCP MSS option
    ip.tcp_options = {2, 4, (uint8_t)(v >> 8), (uint8_t)v};
    return *this;
  }
  Pkt& bad_checksum() {
    ip.bad_checksum = true;
    return *this;
  }
  Pkt& broadcast() {
    l2 = L2::Broadcast;
    return *this;
  }
  Pkt& multicast() {
    l2 = L2::Multicast;
    return *this;
  }
};

Pkt tcp(const std::string& src, uint16_t sport, const std::string& dst, uint16_t dport, uint8_t flags = SYN);
Pkt udp(const std::string& src, uint16_t sport, const std::string& dst, uint16_t dport);
Pkt udplite(const std::string& src, uint16_t sport, const std::string& dst, uint16_t dport);
Pkt sctp(const std::string& src, uint16_t sport, const std::string& dst, uint16_t dport);
// ICMP or ICMPv6 by the address family; `id` for echo and info messages.
Pkt icmp(const std::string& src, const std::string& dst, uint8_t type, uint8_t code = 0, uint16_t id = 0x77);
// An ICMP(v6) error quoting `quoted` (the offending packet as it was sent).
Pkt icmp_error(const std::string& src, const std::string& dst, uint8_t type, uint8_t code, const Pkt& quoted);
// Any other protocol: the IP header and a few payload bytes.
Pkt raw(const std::string& src, const std::string& dst, uint8_t proto);

// ---- steps and cases --------------------------------------------------------

enum class Hook : uint8_t {
  In,   // TC ingress on iif, to this host: PREROUTING, INPUT
  Fwd,  // TC ingress on iif, routed out of oif: PREROUTING, FORWARD; then TC egress: POSTROUTING
  Out,  // TC egress on oif, from this host: OUTPUT, POSTROUTING
};
enum class V : uint8_t { Accept, Drop };
inline constexpr V ACCEPT = V::Accept;
inline constexpr V DROP = V::Drop;

struct Step {
  Hook hook = Hook::In;
  std::string iif, oif;
  Pkt pkt;
  V expect = ACCEPT;
  uint32_t mark_in = 0;              // skb mark the packet arrives with
  std::optional<uint32_t> mark_out;  // skb mark after an accepted run
  std::string by;                    // text of the rule that decides (unique in the ruleset)
  bool by_policy = false;            // the chain policy decides
  // NAT: the header the accepted packet leaves with, "SRC:PORT > DST:PORT"
  // (IPv6 in brackets, ICMP echo: the identifier as the port; a port may be
  // a range LO-HI where the kernel picks at random). Empty: unchanged.
  std::string leaves;
  // An ICMP error: the quoted packet's header as the error leaves, in the
  // same form. Empty: not checked.
  std::string quotes;
  // Handed to lo: INPUT's source NAT made the source this host's address.
  bool to_lo = false;
  // -j DSCP / -j TOS: the TOS / traffic class byte the accepted packet
  // leaves with; -1: as it came.
  int tos_out = -1;

  Step& mark(uint32_t m) {
    mark_in = m;
    return *this;
  }
  Step& gives_mark(uint32_t m) {
    mark_out = m;
    return *this;
  }
  Step& rule(std::string text) {
    by = std::move(text);
    return *this;
  }
  Step& policy() {
    by_policy = true;
    return *this;
  }
  Step& nat(std::string tuple) {
    leaves = std::move(tuple);
    return *this;
  }
  Step& quoting(std::string tuple) {
    quotes = std::move(tuple);
    return *this;
  }
  Step& leaves_tos(uint8_t tos) {
    tos_out = tos;
    return *this;
  }
  Step& handed_to_lo() {
    to_lo = true;
    return *this;
  }
};

Step in(const std::string& iif, Pkt p, V expect);
Step fwd(const std::string& iif, const std::string& oif, Pkt p, V expect);
Step out(const std::string& oif, Pkt p, V expect);

struct Case {
  std::string name;
  std::vector<std::string> covers;  // capability-table names this case exercises
  std::string from = "iptables";    // or "ip6tables", "nft"
  std::string rules;                // iptables-save text (nft: an nft file)
  std::string ipsets;               // `ipset save` text, for -m set
  std::vector<Step> steps;
};

const std::vector<Case>& cases();

// ---- running ----------------------------------------------------------------

struct Compiled;
// Translates and compiles a case; errors (diagnostics) go to `errors`.
std::shared_ptr<Compiled> compile_case(const Case& c, std::string& errors);
const Translation& translation(const Compiled& c);

// The capability names a translated ruleset uses: its tables, and the
// options, matches, targets and statements of its rules.
std::set<std::string> used_capabilities(const Translation& tr);

// Hands the fixture the private dataplane main() loaded (to probe for BPF),
// so the programs are loaded once per run.
void use_dataplane(std::unique_ptr<loader::Dataplane> dp);

struct CaseReport {
  size_t packets = 0;
  size_t xdp_drops = 0;               // packets the XDP early-drop stage dropped (TC never saw them)
  std::vector<std::string> failures;  // readable, one per wrong packet
};
// Runs every step through BPF and the model (needs root and the test
// namespace). Failures to set up are reported as failures too.
CaseReport run_case(const Case& c);

}  // namespace nf2bpf::ktest
