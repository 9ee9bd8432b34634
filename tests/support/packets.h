// Packet constructors for tests: pkt::Packet values by their fields, and the
// same packets as bytes (Ethernet frames) for the BPF programs.
#pragma once

#include <string>

#include "verify/builder.h"
#include "verify/packet.h"

namespace nf2bpf::test {

inline ir::u128 addr(const std::string& s) {
  bool v6 = s.find(':') != std::string::npos;
  return *ir::parse_addr(s, v6 ? ir::AddrFamily::V6 : ir::AddrFamily::V4);
}

inline pkt::Packet ip_packet(const std::string& src, const std::string& dst, uint8_t proto) {
  pkt::Packet p;
  p.family = src.find(':') != std::string::npos ? 6 : 4;
  p.saddr = addr(src);
  p.daddr = addr(dst);
  p.l4proto = proto;
  p.length = 60;
  p.has_l4 = true;
  return p;
}

enum : uint8_t { FIN = 0x01, SYN = 0x02, RST = 0x04, PSH = 0x08, ACK = 0x10 };

inline pkt::Packet tcp(const std::string& src, uint16_t sport, const std::string& dst, uint16_t dport,
                       uint8_t flags = SYN) {
  auto p = ip_packet(src, dst, 6);
  p.sport = sport, p.dport = dport, p.tcp_flags = flags;
  return p;
}

inline pkt::Packet udp(const std::string& src, uint16_t sport, const std::string& dst, uint16_t dport) {
  auto p = ip_packet(src, dst, 17);
  p.sport = sport, p.dport = dport;
  return p;
}

inline pkt::Packet icmp(const std::string& src, const std::string& dst, uint8_t type, uint8_t code = 0,
                        uint16_t id = 1) {
  bool v6 = src.find(':') != std::string::npos;
  auto p = ip_packet(src, dst, v6 ? 58 : 1);
  p.icmp_type = type, p.icmp_code = code, p.icmp_id = id;
  return p;
}

inline pkt::Packet on(pkt::Packet p, const std::string& iif, const std::string& oif = "") {
  p.iif = iif;
  p.oif = oif;
  return p;
}

// The Ethernet frame of a packet (for BPF_PROG_TEST_RUN).
inline std::vector<uint8_t> frame(const pkt::Packet& p) {
  verify::PacketSpec s;
  s.family = p.family;
  s.saddr = p.saddr;
  s.daddr = p.daddr;
  s.proto = p.l4proto;
  s.sport = p.sport;
  s.dport = p.dport;
  s.tcp_flags = p.tcp_flags;
  s.icmp_type = p.icmp_type;
  s.icmp_code = p.icmp_code;
  s.icmp_id = p.icmp_id;
  s.ttl = p.ttl;
  s.dscp = p.dscp();
  s.ecn = p.tos & 3;
  if (p.inner) {
    verify::PacketSpec q;
    q.family = p.family;
    q.saddr = p.inner->saddr;
    q.daddr = p.inner->daddr;
    q.proto = p.inner->l4proto;
    q.sport = p.inner->sport;
    q.dport = p.inner->dport;
    q.icmp_id = p.inner->sport;
    s.quote = verify::build_ip(q);
  }
  auto ip = verify::build_ip(s);
  return verify::wrap_ethernet(ip, p.src_mac ? p.src_mac : 0x020000000001ULL, 0x020000000002ULL);
}

}  // namespace nf2bpf::test
