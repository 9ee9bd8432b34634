// Raw bytes -> pkt::Packet: link layers (Ethernet with VLAN tags, Linux
// cooked SLL/SLL2, raw IP, BSD loopback), IPv4/IPv6 with extension headers,
// the transport ports and flags netfilter matches on, and for ICMP errors the
// tuple of the quoted packet.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "verify/packet.h"

namespace nf2bpf::verify {

// libpcap DLT_* values we read (pcap/dlt.h numbering on Linux).
enum LinkType : int {
  kDltNull = 0,         // BSD loopback: 4-byte host-order address family
  kDltEthernet = 1,     // DLT_EN10MB
  kDltRaw = 12,         // DLT_RAW: IPv4 or IPv6 by the version nibble
  kDltLoop = 108,       // DLT_LOOP: like DLT_NULL, network byte order
  kDltLinuxSll = 113,   // DLT_LINUX_SLL
  kDltIpv4 = 228,       // DLT_IPV4
  kDltIpv6 = 229,       // DLT_IPV6
  kDltLinuxSll2 = 276,  // DLT_LINUX_SLL2
};
const char* link_type_name(int dlt);
bool link_type_supported(int dlt);

// Which way a packet crossed the interface it was captured on, when the
// capture says (SLL/SLL2 packet type, pcapng epb_flags).
enum class Direction : uint8_t { Unknown, Inbound, Outbound };
const char* to_string(Direction d);

// A decoded capture record: the packet plus what the link layer and the
// capture file told us about where it was seen.
struct Captured {
  pkt::Packet packet;
  Direction dir = Direction::Unknown;
  std::string ifname;               // capture interface, when known
  std::optional<uint32_t> ifindex;  // SLL2 interface index
  std::vector<uint16_t> vlans;      // 802.1Q/802.1ad VLAN ids, outermost first
  bool otherhost = false;           // SLL/SLL2: addressed to another host's MAC
  std::string comment;              // pcapng opt_comment ("nf2bpf: oif=eth1" is honoured)
};

// Decodes one link-layer frame. Returns an empty string on success, or why the
// packet cannot be evaluated ("not IP: ARP", "IPv4 header length 12 < 20" ...);
// such packets are skipped, not fatal.
std::string decode_frame(int dlt, const uint8_t* data, size_t caplen, Captured& out);

// Decodes an IP packet (version from the first nibble) into `p`; fills
// everything from `family` to `inner` and copies the bytes into `p.l3`.
std::string decode_ip(const uint8_t* data, size_t len, pkt::Packet& p);

// Offset of the transport header in p.l3 (nullopt for later fragments or
// malformed headers), and the IP identification of a fragmented packet (IPv4
// header or IPv6 fragment header).
std::optional<size_t> l4_offset(const pkt::Packet& p);
std::optional<uint32_t> fragment_id(const pkt::Packet& p);

// Conveniences for reports.
std::string format_tuple(const pkt::Packet& p);  // "tcp 10.0.0.1:1234 -> 10.0.0.2:80"
const char* l4_name(uint8_t proto);              // "tcp", "udp", ... or nullptr
std::string format_mac(uint64_t mac);

}  // namespace nf2bpf::verify
