// Capture reading and packet parsing against the golden captures in
// testdata/pcap (made by scripts/make-captures.py) and hand-built frames.
#include <catch2/catch.hpp>

#include <cstdio>
#include <unistd.h>

#include "tests/helpers.h"
#include "verify/builder.h"
#include "verify/pcap_reader.h"
#include "verify/pcap_writer.h"

using namespace nf2bpf;
using namespace nf2bpf::verify;

namespace {

struct Read {
  std::vector<Captured> pkts;
  std::vector<std::pair<uint64_t, std::string>> skipped;
  std::string error;
  int dlt = -1;
};

Read read_path(const std::string& path) {
  Read out;
  auto r = CaptureReader::open(path);
  REQUIRE(r.ok());
  out.dlt = (*r)->dlt();
  Frame f;
  while ((*r)->next(f)) {
    Captured c;
    std::string why = decode(**r, f, c);
    if (why.empty())
      out.pkts.push_back(std::move(c));
    else
      out.skipped.emplace_back(f.number, why);
  }
  out.error = (*r)->error();
  return out;
}

Read read_capture(const std::string& rel) { return read_path(test::src_path(rel)); }

ir::u128 v4(const char* s) { return *ir::parse_addr(s, ir::AddrFamily::V4); }
ir::u128 v6(const char* s) { return *ir::parse_addr(s, ir::AddrFamily::V6); }

}  // namespace

TEST_CASE("pcap: Ethernet TCP session decodes addresses, ports and flags") {
  auto r = read_capture("testdata/pcap/tcp-stateful.pcap");
  REQUIRE(r.error.empty());
  REQUIRE(r.dlt == kDltEthernet);
  REQUIRE(r.pkts.size() == 20);
  const auto& syn = r.pkts[0].packet;
  CHECK(syn.number == 1);
  CHECK(syn.family == 4);
  CHECK(syn.saddr == v4("198.51.100.7"));
  CHECK(syn.daddr == v4("192.0.2.10"));
  CHECK(syn.l4proto == 6);
  CHECK(syn.sport == 40000);
  CHECK(syn.dport == 22);
  CHECK(syn.tcp_flags == 0x02);
  CHECK(syn.has_l2);
  CHECK(format_mac(syn.src_mac) == "02:00:00:00:00:07");
  CHECK(syn.pkttype == pkt::PktType::Host);
  CHECK(syn.length == 40);
  CHECK(syn.ttl == 64);
  CHECK(syn.l3.size() == 40);
  CHECK(r.pkts[1].packet.tcp_flags == 0x12);
  CHECK(r.pkts[3].packet.tcp_flags == 0x18);
  CHECK(r.pkts[3].packet.length == 46);
  CHECK(r.pkts[19].packet.tcp_flags == 0x29);  // FIN PSH URG
  CHECK(syn.time == Approx(1714550400.0));
  CHECK(r.pkts[1].packet.time == Approx(1714550400.001));
  CHECK(r.pkts[0].dir == Direction::Unknown);
  CHECK(format_tuple(syn) == "tcp 198.51.100.7:40000 -> 192.0.2.10:22 [S]");
}

TEST_CASE("pcap: truncated capture names the packet and keeps the ones before it") {
  auto r = read_capture("testdata/pcap/truncated.pcap");
  CHECK(r.pkts.size() == 5);
  CHECK(r.error.find("truncated.pcap: packet 6: ") != std::string::npos);
  CHECK(r.error.find("truncated") != std::string::npos);
}

TEST_CASE("pcap: a file that is not a capture is an open error") {
  auto r = CaptureReader::open(test::src_path("testdata/pcap/README.md"));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message().find("README.md") != std::string::npos);
  auto missing = CaptureReader::open("/nonexistent/x.pcap");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().message() == "open /nonexistent/x.pcap: No such file or directory");
}

TEST_CASE("pcap: ICMP echo ids and the tuple quoted by ICMP errors") {
  auto r = read_capture("testdata/pcap/icmp.pcap");
  REQUIRE(r.pkts.size() == 6);
  const auto& echo = r.pkts[0].packet;
  CHECK(echo.l4proto == 1);
  CHECK(echo.icmp_type == 8);
  CHECK(echo.icmp_id == 0x77);
  CHECK_FALSE(echo.inner.has_value());
  const auto& err = r.pkts[3].packet;
  CHECK(err.icmp_type == 3);
  CHECK(err.icmp_code == 3);
  REQUIRE(err.inner.has_value());
  CHECK(err.inner->saddr == v4("192.0.2.10"));
  CHECK(err.inner->daddr == v4("203.0.113.5"));
  CHECK(err.inner->l4proto == 17);
  CHECK(err.inner->sport == 33000);
  CHECK(err.inner->dport == 33434);
}

TEST_CASE("pcap: IPv6 extension headers are walked to the upper layer") {
  auto r = read_capture("testdata/pcap/ipv6.pcap");
  REQUIRE(r.skipped.empty());
  REQUIRE(r.pkts.size() == 16);
  const auto& hbh = r.pkts[0].packet;  // hop-by-hop then TCP
  CHECK(hbh.family == 6);
  CHECK(hbh.saddr == v6("2001:db8:1::7"));
  CHECK(hbh.l4proto == 6);
  CHECK(hbh.dport == 443);
  CHECK(hbh.tcp_flags == 0x02);
  CHECK(hbh.length == 40 + 8 + 20);
  const auto& dst = r.pkts[8].packet;  // destination options then ICMPv6 echo
  CHECK(dst.l4proto == 58);
  CHECK(dst.icmp_type == 128);
  CHECK(dst.icmp_id == 5);
  CHECK(r.pkts[10].packet.icmp_type == 135);  // neighbour solicitation
  CHECK(r.pkts[10].packet.pkttype == pkt::PktType::Multicast);
  CHECK(r.pkts[11].packet.l4proto == 17);  // routing header then UDP
  CHECK(r.pkts[11].packet.dport == 4789);
  CHECK(r.pkts[12].packet.l4proto == 6);  // AH then TCP
  CHECK(r.pkts[12].packet.dport == 22);
  const auto& f1 = r.pkts[13].packet;
  CHECK(f1.fragment);
  CHECK_FALSE(f1.later_fragment);
  CHECK(f1.l4proto == 17);
  CHECK(f1.dport == 5001);
  const auto& f2 = r.pkts[14].packet;
  CHECK(f2.fragment);
  CHECK(f2.later_fragment);
  CHECK(f2.l4proto == 17);
  CHECK_FALSE(f2.has_l4);
  const auto& err = r.pkts[15].packet;
  CHECK(err.icmp_type == 1);
  CHECK(err.icmp_code == 4);
  REQUIRE(err.inner.has_value());
  CHECK(err.inner->saddr == v6("2001:db8::10"));
  CHECK(err.inner->l4proto == 17);
  CHECK(err.inner->dport == 4789);
}

TEST_CASE("pcap: IPv4 fragments") {
  auto r = read_capture("testdata/pcap/fragments.pcap");
  REQUIRE(r.pkts.size() == 3);
  CHECK(r.pkts[0].packet.fragment);
  CHECK_FALSE(r.pkts[0].packet.later_fragment);
  CHECK(r.pkts[0].packet.dport == 53);
  CHECK(r.pkts[1].packet.fragment);
  CHECK(r.pkts[1].packet.later_fragment);
  CHECK_FALSE(r.pkts[1].packet.has_l4);
  CHECK(r.pkts[1].packet.l4proto == 17);
}

TEST_CASE("pcap: VLAN tags are stripped and non-IP frames skipped with a reason") {
  auto r = read_capture("testdata/pcap/vlan.pcap");
  REQUIRE(r.pkts.size() == 3);
  CHECK(r.pkts[0].vlans == std::vector<uint16_t>{100});
  CHECK(r.pkts[0].packet.dport == 22);
  CHECK(r.pkts[2].vlans == std::vector<uint16_t>{200, 300});
  CHECK(r.pkts[2].packet.l4proto == 17);
  REQUIRE(r.skipped.size() == 1);
  CHECK(r.skipped[0].first == 4);
  CHECK(r.skipped[0].second == "not IP: ethertype 0x0806 (ARP)");
}

TEST_CASE("pcap: Linux cooked SLL gives direction and packet type") {
  auto r = read_capture("testdata/pcap/sll.pcap");
  REQUIRE(r.dlt == kDltLinuxSll);
  REQUIRE(r.pkts.size() == 4);
  CHECK(r.pkts[0].dir == Direction::Inbound);
  CHECK(r.pkts[0].packet.has_l2);
  CHECK(format_mac(r.pkts[0].packet.src_mac) == "02:00:00:00:00:07");
  CHECK(r.pkts[1].dir == Direction::Outbound);
  CHECK(r.pkts[2].packet.pkttype == pkt::PktType::Broadcast);
  CHECK(r.pkts[3].otherhost);
}

TEST_CASE("pcap: Linux cooked SLL2 gives direction and interface index") {
  auto r = read_capture("testdata/pcap/sll2.pcap");
  REQUIRE(r.dlt == kDltLinuxSll2);
  REQUIRE(r.pkts.size() == 3);
  CHECK(r.pkts[0].ifindex == 2u);
  CHECK(r.pkts[0].dir == Direction::Inbound);
  CHECK(r.pkts[1].dir == Direction::Outbound);
  CHECK(r.pkts[2].ifindex == 3u);
  CHECK(r.pkts[2].packet.family == 6);
}

TEST_CASE("pcap: raw IP link type carries both families") {
  auto r = read_capture("testdata/pcap/raw-ip.pcap");
  REQUIRE(r.dlt == kDltRaw);
  REQUIRE(r.pkts.size() == 2);
  CHECK(r.pkts[0].packet.family == 4);
  CHECK_FALSE(r.pkts[0].packet.has_l2);
  CHECK(r.pkts[1].packet.family == 6);
  CHECK(r.pkts[1].packet.dport == 443);
}

TEST_CASE("pcapng: interface names, addresses and directions from the blocks") {
  auto rd = CaptureReader::open(test::src_path("testdata/pcap/two-interfaces.pcapng"));
  REQUIRE(rd.ok());
  CHECK((*rd)->pcapng());
  auto r = read_capture("testdata/pcap/two-interfaces.pcapng");
  REQUIRE(r.pkts.size() == 6);
  CHECK(r.pkts[0].ifname == "eth1");
  CHECK(r.pkts[0].dir == Direction::Inbound);
  CHECK(r.pkts[1].ifname == "eth0");
  CHECK(r.pkts[1].dir == Direction::Outbound);
  CHECK(r.pkts[1].packet.ttl == 63);
  CHECK(r.pkts[5].ifname == "eth0");
  Frame f;
  while ((*rd)->next(f)) {}
  REQUIRE((*rd)->interfaces().size() == 2);
  CHECK((*rd)->interfaces()[0].name == "eth0");
  CHECK((*rd)->interfaces()[0].addrs == std::vector<ir::u128>{v4("192.0.2.10")});
  CHECK((*rd)->interfaces()[1].addrs == std::vector<ir::u128>{v4("10.0.0.1")});
}

TEST_CASE("parse: malformed IP headers are skipped with the reason") {
  Captured c;
  std::vector<uint8_t> bad = {0x43, 0, 0, 20, 0, 0, 0, 0, 64, 6, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8};
  CHECK(decode_frame(kDltRaw, bad.data(), bad.size(), c) == "IPv4 header length 12 < 20");
  std::vector<uint8_t> shortv6(20, 0);
  shortv6[0] = 0x60;
  CHECK(decode_frame(kDltRaw, shortv6.data(), shortv6.size(), c) == "IPv6 header cut off");
  PacketSpec s;
  s.saddr = v4("10.0.0.1");
  s.daddr = v4("10.0.0.2");
  auto ip = build_ip(s);
  ip.resize(30);  // TCP header cut after 10 bytes
  ip[2] = 0, ip[3] = 30;
  CHECK(decode_frame(kDltRaw, ip.data(), ip.size(), c) == "TCP header cut off");
  std::vector<uint8_t> ver = {0x50, 0};
  CHECK(decode_frame(kDltRaw, ver.data(), ver.size(), c) == "not IP: version 5");
}

TEST_CASE("parse: every port-carrying protocol and ICMP inside IPv4 options") {
  for (uint8_t proto : {6, 17, 132, 136, 33}) {
    PacketSpec s;
    s.proto = proto;
    s.saddr = v4("10.0.0.1");
    s.daddr = v4("10.0.0.2");
    s.sport = 1111;
    s.dport = 2222;
    auto ip = build_ip(s);
    Captured c;
    REQUIRE(decode_frame(kDltIpv4, ip.data(), ip.size(), c) == "");
    CHECK(c.packet.l4proto == proto);
    CHECK(c.packet.sport == 1111);
    CHECK(c.packet.dport == 2222);
    CHECK(c.packet.has_l4);
  }
  // IPv4 with a 4-byte option (router alert): IHL 6.
  PacketSpec s;
  s.proto = 1;
  s.saddr = v4("10.0.0.1");
  s.daddr = v4("10.0.0.2");
  s.icmp_type = 8;
  s.icmp_id = 9;
  auto ip = build_ip(s);
  std::vector<uint8_t> opt = {0x94, 0x04, 0, 0};
  ip.insert(ip.begin() + 20, opt.begin(), opt.end());
  ip[0] = 0x46;
  uint16_t tl = (uint16_t)ip.size();
  ip[2] = (uint8_t)(tl >> 8), ip[3] = (uint8_t)tl;
  Captured c;
  REQUIRE(decode_frame(kDltRaw, ip.data(), ip.size(), c) == "");
  CHECK(c.packet.icmp_type == 8);
  CHECK(c.packet.icmp_id == 9);
  CHECK(c.packet.length == tl);
}

TEST_CASE("pcap writer: what we write, we read back (pcap and pcapng)") {
  char tmpl[] = "/tmp/nf2bpf-pcap-XXXXXX";
  REQUIRE(mkdtemp(tmpl));
  std::string dir = tmpl;
  PacketSpec s;
  s.saddr = v4("192.0.2.1");
  s.daddr = v4("192.0.2.2");
  s.sport = 1;
  s.dport = 2;
  auto ip = build_ip(s);
  {
    auto w = PcapWriter::open(dir + "/a.pcap", kDltLinuxSll2);
    REQUIRE(w.ok());
    w->write(100.25, wrap_sll2(ip, 4, 7, 0x020000000001));
    REQUIRE(w->close().ok());
  }
  auto a = read_path(dir + "/a.pcap");
  REQUIRE(a.pkts.size() == 1);
  CHECK(a.dlt == kDltLinuxSll2);
  CHECK(a.pkts[0].packet.time == Approx(100.25));
  CHECK(a.pkts[0].dir == Direction::Outbound);
  CHECK(a.pkts[0].ifindex == 7u);
  CHECK(a.pkts[0].packet.dport == 2);
  {
    auto w = PcapngWriter::open(dir + "/b.pcapng");
    REQUIRE(w.ok());
    uint32_t e0 = w->add_interface("eth0", kDltEthernet, {v4("192.0.2.2")});
    uint32_t e1 = w->add_interface("wan0", kDltEthernet);
    w->write(e1, 5.5, wrap_ethernet(ip, 1, 2), Direction::Inbound, "nf2bpf: oif=eth9");
    w->write(e0, 6.5, wrap_ethernet(ip, 2, 1), Direction::Outbound);
    REQUIRE(w->close().ok());
  }
  auto b = read_path(dir + "/b.pcapng");
  REQUIRE(b.error.empty());
  REQUIRE(b.pkts.size() == 2);
  CHECK(b.pkts[0].ifname == "wan0");
  CHECK(b.pkts[0].dir == Direction::Inbound);
  CHECK(b.pkts[0].comment == "nf2bpf: oif=eth9");
  CHECK(b.pkts[0].packet.time == Approx(5.5));
  CHECK(b.pkts[1].ifname == "eth0");
  CHECK(b.pkts[1].dir == Direction::Outbound);
  std::remove((dir + "/a.pcap").c_str());
  std::remove((dir + "/b.pcapng").c_str());
  rmdir(dir.c_str());
}
