#include "verify/parse.h"

#include <cstdio>
#include <cstring>

namespace nf2bpf::verify {

using ir::u128;

namespace {

uint16_t be16(const uint8_t* p) { return (uint16_t)((p[0] << 8) | p[1]); }
uint32_t be32(const uint8_t* p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
uint32_t le32(const uint8_t* p) {
  return ((uint32_t)p[3] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[1] << 8) | p[0];
}

u128 v6addr(const uint8_t* p) {
  u128 v = 0;
  for (int i = 0; i < 16; ++i) v = (v << 8) | p[i];
  return v;
}

uint64_t mac48(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 6; ++i) v = (v << 8) | p[i];
  return v;
}

constexpr uint16_t kEthIpv4 = 0x0800, kEthIpv6 = 0x86dd, kEthVlan = 0x8100, kEthQinQ = 0x88a8, kEthQinQOld = 0x9100,
                   kEthArp = 0x0806;

std::string ethertype_reason(uint16_t type) {
  char buf[64];
  const char* name = type == kEthArp                    ? " (ARP)"
                     : type == 0x8035                   ? " (RARP)"
                     : type == 0x88cc                   ? " (LLDP)"
                     : type == 0x8863 || type == 0x8864 ? " (PPPoE)"
                     : type == 0x8847                   ? " (MPLS)"
                                                        : "";
  if (type < 0x0600) return "not IP: 802.3 length field (LLC frame)";
  std::snprintf(buf, sizeof buf, "not IP: ethertype 0x%04x%s", type, name);
  return buf;
}

bool has_ports(uint8_t proto) { return proto == 6 || proto == 17 || proto == 136 || proto == 132 || proto == 33; }

bool icmp4_is_error(uint8_t type) { return type == 3 || type == 4 || type == 5 || type == 11 || type == 12; }
bool icmp4_has_id(uint8_t type) {
  return type == 0 || type == 8 || type == 13 || type == 14 || type == 15 || type == 16 || type == 17 || type == 18;
}
bool icmp6_is_error(uint8_t type) { return type < 128; }
bool icmp6_has_id(uint8_t type) { return type == 128 || type == 129 || type == 139 || type == 140; }

// IPv6 extension headers that precede the upper-layer header.
bool ipv6_ext(uint8_t nh) {
  return nh == 0 || nh == 43 || nh == 44 || nh == 60 || nh == 51 || nh == 135 || nh == 139 || nh == 140;
}

struct L3 {
  uint8_t proto = 0;
  size_t l4off = 0;  // offset of the L4 header in the buffer
  bool later_fragment = false;
  bool fragment = false;
};

// Walks IPv6 extension headers starting at `off` with next header `nh`.
// Returns an error text or "".
std::string walk_ipv6(const uint8_t* d, size_t len, uint8_t nh, size_t off, L3& out) {
  for (int guard = 0; guard < 32 && ipv6_ext(nh); ++guard) {
    if (off + 8 > len) return "IPv6 extension header cut off";
    uint8_t next = d[off];
    size_t hlen;
    if (nh == 44) {  // fragment header: fixed 8 bytes
      uint16_t fo = be16(d + off + 2);
      out.fragment = true;
      if ((fo >> 3) != 0) {
        out.later_fragment = true;
        out.proto = next;
        out.l4off = off + 8;
        return "";
      }
      hlen = 8;
    } else if (nh == 51) {  // AH: length in 4-octet units minus 2
      hlen = ((size_t)d[off + 1] + 2) * 4;
    } else {
      hlen = ((size_t)d[off + 1] + 1) * 8;
    }
    off += hlen;
    nh = next;
    if (off > len) return "IPv6 extension header cut off";
  }
  if (ipv6_ext(nh)) return "too many IPv6 extension headers";
  out.proto = nh;
  out.l4off = off;
  return "";
}

// Reads the quoted packet inside an ICMP error (best effort: the quote may
// be short; ports need the first 4 bytes of the inner L4 header).
void parse_inner(const uint8_t* d, size_t len, pkt::Packet& p) {
  if (len < 1) return;
  pkt::Packet::Inner in;
  L3 l3;
  int ver = d[0] >> 4;
  if (p.family == 4) {
    if (ver != 4 || len < 20) return;
    size_t ihl = (size_t)(d[0] & 0x0f) * 4;
    if (ihl < 20 || ihl > len) return;
    in.saddr = ir::v4_to_u128(be32(d + 12));
    in.daddr = ir::v4_to_u128(be32(d + 16));
    l3.proto = d[9];
    l3.l4off = ihl;
    if ((be16(d + 6) & 0x1fff) != 0) l3.later_fragment = true;
  } else {
    if (ver != 6 || len < 40) return;
    in.saddr = v6addr(d + 8);
    in.daddr = v6addr(d + 24);
    if (!walk_ipv6(d, len, d[6], 40, l3).empty()) return;
  }
  in.l4proto = l3.proto;
  const uint8_t* l4 = d + l3.l4off;
  size_t l4len = len - l3.l4off;
  if (!l3.later_fragment) {
    if (has_ports(l3.proto) && l4len >= 4) {
      in.sport = be16(l4);
      in.dport = be16(l4 + 2);
    } else if ((l3.proto == 1 || l3.proto == 58) && l4len >= 8) {
      in.sport = be16(l4 + 4);                      // identifier
      in.dport = (uint16_t)((l4[0] << 8) | l4[1]);  // type << 8 | code
    }
  }
  p.inner = in;
}

std::string decode_l4(const uint8_t* d, size_t len, const L3& l3, pkt::Packet& p) {
  p.l4proto = l3.proto;
  p.fragment = l3.fragment;
  p.later_fragment = l3.later_fragment;
  if (l3.later_fragment) return "";  // no transport header in this fragment
  const uint8_t* l4 = d + l3.l4off;
  size_t n = l3.l4off <= len ? len - l3.l4off : 0;
  switch (l3.proto) {
    case 6:
      if (n < 14) return "TCP header cut off";
      if ((l4[12] >> 4) < 5) return "TCP data offset below 5";
      p.sport = be16(l4);
      p.dport = be16(l4 + 2);
      p.tcp_flags = l4[13];
      p.has_l4 = true;
      break;
    case 17:
    case 136:
    case 132:
    case 33:
      if (n < 4) return std::string(l4_name(l3.proto)) + " header cut off";
      p.sport = be16(l4);
      p.dport = be16(l4 + 2);
      p.has_l4 = true;
      break;
    case 1:
    case 58: {
      bool v6 = l3.proto == 58;
      if (v6 != (p.family == 6)) break;  // ICMP in IPv6 or ICMPv6 in IPv4: no ICMP fields
      if (n < 4) return v6 ? "ICMPv6 header cut off" : "ICMP header cut off";
      p.icmp_type = l4[0];
      p.icmp_code = l4[1];
      p.has_l4 = true;
      if (n >= 8 && (v6 ? icmp6_has_id(p.icmp_type) : icmp4_has_id(p.icmp_type))) p.icmp_id = be16(l4 + 4);
      if (n > 8 && (v6 ? icmp6_is_error(p.icmp_type) : icmp4_is_error(p.icmp_type))) parse_inner(l4 + 8, n - 8, p);
      break;
    }
    default: break;
  }
  return "";
}

}  // namespace

const char* l4_name(uint8_t proto) {
  switch (proto) {
    case 1: return "icmp";
    case 2: return "igmp";
    case 6: return "tcp";
    case 17: return "udp";
    case 33: return "dccp";
    case 47: return "gre";
    case 50: return "esp";
    case 51: return "ah";
    case 58: return "icmpv6";
    case 132: return "sctp";
    case 136: return "udplite";
  }
  return nullptr;
}

const char* link_type_name(int dlt) {
  switch (dlt) {
    case kDltNull: return "BSD loopback";
    case kDltEthernet: return "Ethernet";
    case kDltRaw: return "raw IP";
    case kDltLoop: return "OpenBSD loopback";
    case kDltLinuxSll: return "Linux cooked (SLL)";
    case kDltIpv4: return "raw IPv4";
    case kDltIpv6: return "raw IPv6";
    case kDltLinuxSll2: return "Linux cooked v2 (SLL2)";
  }
  return "unknown";
}

bool link_type_supported(int dlt) { return std::strcmp(link_type_name(dlt), "unknown") != 0; }

const char* to_string(Direction d) {
  switch (d) {
    case Direction::Unknown: return "unknown";
    case Direction::Inbound: return "in";
    case Direction::Outbound: return "out";
  }
  return "?";
}

std::string format_mac(uint64_t mac) {
  char buf[18];
  std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", (unsigned)(mac >> 40) & 0xff,
                (unsigned)(mac >> 32) & 0xff, (unsigned)(mac >> 24) & 0xff, (unsigned)(mac >> 16) & 0xff,
                (unsigned)(mac >> 8) & 0xff, (unsigned)mac & 0xff);
  return buf;
}

std::string decode_ip(const uint8_t* d, size_t len, pkt::Packet& p) {
  if (len < 1) return "empty IP packet";
  int ver = d[0] >> 4;
  L3 l3;
  size_t end = len;
  if (ver == 4) {
    if (len < 20) return "IPv4 header cut off";
    size_t ihl = (size_t)(d[0] & 0x0f) * 4;
    if (ihl < 20) return "IPv4 header length " + std::to_string(ihl) + " < 20";
    if (ihl > len) return "IPv4 header cut off";
    uint16_t total = be16(d + 2);
    if (total < ihl) return "IPv4 total length " + std::to_string(total) + " < header length " + std::to_string(ihl);
    if (total < end) end = total;  // drop link-layer padding
    p.family = 4;
    p.saddr = ir::v4_to_u128(be32(d + 12));
    p.daddr = ir::v4_to_u128(be32(d + 16));
    p.length = total;
    p.ttl = d[8];
    p.tos = d[1];
    uint16_t fo = be16(d + 6);
    l3.proto = d[9];
    l3.l4off = ihl;
    l3.fragment = (fo & 0x2000) || (fo & 0x1fff);
    l3.later_fragment = (fo & 0x1fff) != 0;
  } else if (ver == 6) {
    if (len < 40) return "IPv6 header cut off";
    uint16_t plen = be16(d + 4);
    if ((size_t)plen + 40 < end) end = (size_t)plen + 40;
    p.family = 6;
    p.saddr = v6addr(d + 8);
    p.daddr = v6addr(d + 24);
    p.length = (uint16_t)(plen + 40);
    p.ttl = d[7];
    p.tos = (uint8_t)((d[0] & 0x0f) << 4 | d[1] >> 4);
    if (auto e = walk_ipv6(d, end, d[6], 40, l3); !e.empty()) return e;
  } else {
    return "not IP: version " + std::to_string(ver);
  }
  if (auto e = decode_l4(d, end, l3, p); !e.empty()) return e;
  p.l3.assign(d, d + end);
  return "";
}

std::string decode_frame(int dlt, const uint8_t* d, size_t len, Captured& out) {
  pkt::Packet& p = out.packet;
  uint16_t type = 0;
  size_t off = 0;
  switch (dlt) {
    case kDltEthernet: {
      if (len < 14) return "Ethernet header cut off";
      p.has_l2 = true;
      p.dst_mac = mac48(d);
      p.src_mac = mac48(d + 6);
      if (p.dst_mac == 0xffffffffffffULL)
        p.pkttype = pkt::PktType::Broadcast;
      else if (d[0] & 1)
        p.pkttype = pkt::PktType::Multicast;
      else
        p.pkttype = pkt::PktType::Host;
      type = be16(d + 12);
      off = 14;
      break;
    }
    case kDltLinuxSll: {
      if (len < 16) return "SLL header cut off";
      uint16_t pkttype = be16(d), hatype = be16(d + 2), alen = be16(d + 4);
      type = be16(d + 14);
      off = 16;
      if (pkttype == 4)
        out.dir = Direction::Outbound;
      else
        out.dir = Direction::Inbound;
      if (pkttype == 1)
        p.pkttype = pkt::PktType::Broadcast;
      else if (pkttype == 2)
        p.pkttype = pkt::PktType::Multicast;
      else if (pkttype == 3)
        out.otherhost = true, p.pkttype = pkt::PktType::OtherHost;
      if (hatype == 1 && alen == 6) {
        p.has_l2 = true;
        p.src_mac = mac48(d + 6);
      }
      break;
    }
    case kDltLinuxSll2: {
      if (len < 20) return "SLL2 header cut off";
      type = be16(d);
      out.ifindex = be32(d + 4);
      uint16_t hatype = be16(d + 8);
      uint8_t pkttype = d[10], alen = d[11];
      off = 20;
      if (pkttype == 4)
        out.dir = Direction::Outbound;
      else
        out.dir = Direction::Inbound;
      if (pkttype == 1)
        p.pkttype = pkt::PktType::Broadcast;
      else if (pkttype == 2)
        p.pkttype = pkt::PktType::Multicast;
      else if (pkttype == 3)
        out.otherhost = true, p.pkttype = pkt::PktType::OtherHost;
      if (hatype == 1 && alen == 6) {
        p.has_l2 = true;
        p.src_mac = mac48(d + 12);
      }
      break;
    }
    case kDltRaw: return decode_ip(d, len, p);
    case kDltIpv4:
      if (len >= 1 && (d[0] >> 4) != 4) return "not IPv4 on an IPv4 link: version " + std::to_string(d[0] >> 4);
      return decode_ip(d, len, p);
    case kDltIpv6:
      if (len >= 1 && (d[0] >> 4) != 6) return "not IPv6 on an IPv6 link: version " + std::to_string(d[0] >> 4);
      return decode_ip(d, len, p);
    case kDltNull:
    case kDltLoop: {
      if (len < 4) return "loopback header cut off";
      uint32_t af = dlt == kDltLoop ? be32(d) : le32(d);
      if (af != 2 && af != 10 && af != 24 && af != 28 && af != 30)
        return "not IP: address family " + std::to_string(af);
      return decode_ip(d + 4, len - 4, p);
    }
    default: return std::string("unsupported link type ") + std::to_string(dlt);
  }
  // VLAN tags (Ethernet; SLL carries them inline as well).
  for (int i = 0; i < 4 && (type == kEthVlan || type == kEthQinQ || type == kEthQinQOld); ++i) {
    if (off + 4 > len) return "VLAN tag cut off";
    out.vlans.push_back(be16(d + off) & 0x0fff);
    type = be16(d + off + 2);
    off += 4;
  }
  if (type != kEthIpv4 && type != kEthIpv6) return ethertype_reason(type);
  if (off > len) return "link header cut off";
  std::string err = decode_ip(d + off, len - off, p);
  if (err.empty() && ((type == kEthIpv4) != (p.family == 4))) return "ethertype and IP version disagree";
  return err;
}

std::optional<size_t> l4_offset(const pkt::Packet& p) {
  const auto& d = p.l3;
  if (d.empty()) return std::nullopt;
  if (p.family == 4) {
    if (d.size() < 20) return std::nullopt;
    if ((be16(d.data() + 6) & 0x1fff) != 0) return std::nullopt;
    size_t ihl = (size_t)(d[0] & 0x0f) * 4;
    return ihl <= d.size() ? std::optional<size_t>(ihl) : std::nullopt;
  }
  if (d.size() < 40) return std::nullopt;
  L3 l3;
  if (!walk_ipv6(d.data(), d.size(), d[6], 40, l3).empty() || l3.later_fragment) return std::nullopt;
  return l3.l4off;
}

std::optional<uint32_t> fragment_id(const pkt::Packet& p) {
  const auto& d = p.l3;
  if (p.family == 4) {
    if (d.size() < 20) return std::nullopt;
    return be16(d.data() + 4);
  }
  // Find the fragment header among the extension headers.
  if (d.size() < 40) return std::nullopt;
  uint8_t nh = d[6];
  size_t off = 40;
  for (int guard = 0; guard < 32 && ipv6_ext(nh); ++guard) {
    if (off + 8 > d.size()) return std::nullopt;
    if (nh == 44) return be32(d.data() + off + 4);
    size_t hlen = nh == 51 ? ((size_t)d[off + 1] + 2) * 4 : ((size_t)d[off + 1] + 1) * 8;
    nh = d[off];
    off += hlen;
  }
  return std::nullopt;
}

std::string format_tuple(const pkt::Packet& p) {
  const char* name = l4_name(p.l4proto);
  std::string proto = name ? name : "proto " + std::to_string(p.l4proto);
  auto addr = [&](u128 a, bool with_port, uint16_t port) {
    std::string s = ir::format_addr(a);
    if (!with_port) return s;
    return p.family == 6 ? "[" + s + "]:" + std::to_string(port) : s + ":" + std::to_string(port);
  };
  bool ports = p.has_l4 && has_ports(p.l4proto);
  std::string s = proto + " " + addr(p.saddr, ports, p.sport) + " -> " + addr(p.daddr, ports, p.dport);
  if (p.has_l4 && (p.l4proto == 1 || p.l4proto == 58))
    s += " type " + std::to_string(p.icmp_type) + " code " + std::to_string(p.icmp_code);
  if (p.has_l4 && p.l4proto == 6) {
    static const char kNames[] = "FSRPAUEC";
    std::string f;
    for (int i = 0; i < 8; ++i)
      if (p.tcp_flags & (1 << i)) f += kNames[i];
    s += " [" + (f.empty() ? std::string("none") : f) + "]";
  }
  if (p.later_fragment) s += " (fragment)";
  return s;
}

}  // namespace nf2bpf::verify
