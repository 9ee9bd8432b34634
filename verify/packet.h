// One packet as every verdict engine sees it: the reference evaluator (IR
// semantics), the userspace model of the compiled policy, and the kernel test
// runner. Values are host byte order; addresses use the IR's 128-bit space
// (IPv4 mapped into ::ffff:0:0/96).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "translator/ir/values.h"

namespace nf2bpf::pkt {

using ir::u128;

enum class PktType : uint8_t { Host = 0, Broadcast = 1, Multicast = 2, OtherHost = 3 };

struct Packet {
  // Link layer (valid when has_l2).
  bool has_l2 = false;
  uint64_t src_mac = 0, dst_mac = 0;
  PktType pkttype = PktType::Host;

  // Network layer.
  uint8_t family = 4;  // 4 or 6
  u128 saddr = 0, daddr = 0;
  uint16_t length = 0;  // IPv4 total length / IPv6 payload length + 40
  uint8_t ttl = 64;     // TTL / hop limit
  uint8_t tos = 0;      // the whole TOS / traffic class byte: DSCP << 2 | ECN
  uint8_t dscp() const { return tos >> 2; }
  uint8_t l4proto = 0;          // after IPv6 extension headers
  bool fragment = false;        // part of a fragmented datagram
  bool later_fragment = false;  // not the first fragment: no L4 header

  // Transport layer (valid when has_l4).
  bool has_l4 = false;
  uint16_t sport = 0, dport = 0;  // TCP/UDP/SCTP/UDPLite/DCCP
  uint8_t tcp_flags = 0;
  uint8_t icmp_type = 0, icmp_code = 0;  // ICMP or ICMPv6 (by family)
  uint16_t icmp_id = 0;                  // echo request/reply identifier

  // For ICMP errors: the tuple of the packet quoted inside, so a tracker can
  // classify the error as RELATED to that connection.
  struct Inner {
    u128 saddr = 0, daddr = 0;
    uint8_t l4proto = 0;
    uint16_t sport = 0, dport = 0;  // or icmp id in sport for quoted echo
  };
  std::optional<Inner> inner;

  // Metadata the hooks see.
  std::string iif, oif;  // interface names; empty when there is none (OUTPUT has no iif)
  uint32_t mark = 0;
  uint32_t sk_uid = 0, sk_gid = 0;
  bool has_sk = false;

  // Where it came from, for reports.
  uint64_t number = 0;      // 1-based position in a capture
  double time = 0;          // seconds since the epoch
  std::vector<uint8_t> l3;  // the raw IP packet, from the IP header on
};

}  // namespace nf2bpf::pkt
