// A small packet builder: IP packets with correct checksums, wrapped in the
// link layers the capture reader understands. Used by `diff --synthesize`
// and by tests that need exact bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "translator/ir/values.h"
#include "verify/parse.h"

namespace nf2bpf::verify {

struct PacketSpec {
  uint8_t family = 4;
  ir::u128 saddr = 0, daddr = 0;  // IR address space (IPv4 mapped)
  uint8_t proto = 6;
  uint16_t sport = 0, dport = 0;  // TCP/UDP/UDPLite/SCTP/DCCP
  uint8_t tcp_flags = 0x02;
  uint32_t seq = 0, ack = 0;
  std::vector<uint8_t> tcp_options;  // padded to 4 bytes
  uint8_t icmp_type = 8, icmp_code = 0;
  uint16_t icmp_id = 0, icmp_seq = 0;
  std::vector<uint8_t> quote;  // ICMP error body: the quoted IP packet
  uint8_t ttl = 64, dscp = 0, ecn = 0;
  uint16_t ip_id = 0;
  uint16_t frag_offset = 0;  // in 8-byte units
  bool more_fragments = false;
  bool ipv6_hop_by_hop = false;       // prepend a hop-by-hop options header
  bool ipv6_fragment_header = false;  // IPv6: add a fragment header (offset/more from above)
  std::vector<uint8_t> payload;
  // The TCP, UDP, ICMP or ICMPv6 checksum off by one bit: never
  // valid (a one's complement sum differs by 256), never UDP's 0 ("none").
  bool bad_checksum = false;
};

std::vector<uint8_t> build_ip(const PacketSpec& s);

std::vector<uint8_t> wrap_ethernet(const std::vector<uint8_t>& ip, uint64_t src_mac, uint64_t dst_mac,
                                   const std::vector<uint16_t>& vlans = {});
// SLL packet types: 0 host, 1 broadcast, 2 multicast, 3 other host, 4 outgoing.
std::vector<uint8_t> wrap_sll(const std::vector<uint8_t>& ip, uint16_t pkttype, uint64_t src_mac);
std::vector<uint8_t> wrap_sll2(const std::vector<uint8_t>& ip, uint8_t pkttype, uint32_t ifindex, uint64_t src_mac);

}  // namespace nf2bpf::verify
