// The reference evaluator on rulesets written as iptables-save text: first
// match, jumps, policies, statements, stage order, NAT and conntrack states
// over packet sequences.
#include <catch2/catch.hpp>

#include <memory>

#include "tests/helpers.h"
#include "translator/frontend/ipset/ipset_save.h"
#include "verify/builder.h"
#include "verify/reference.h"

using namespace nf2bpf;
using namespace nf2bpf::verify;

namespace {

ir::u128 a4(const char* s) { return *ir::parse_addr(s, ir::AddrFamily::V4); }
ir::u128 a6(const char* s) { return *ir::parse_addr(s, ir::AddrFamily::V6); }

constexpr const char* kHost = "192.0.2.10";
constexpr const char* kClient = "198.51.100.7";

PacketSpec tcp(const char* src, uint16_t sport, const char* dst, uint16_t dport, uint8_t flags) {
  PacketSpec s;
  s.saddr = a4(src);
  s.daddr = a4(dst);
  s.proto = 6;
  s.sport = sport;
  s.dport = dport;
  s.tcp_flags = flags;
  return s;
}
PacketSpec udp(const char* src, uint16_t sport, const char* dst, uint16_t dport) {
  PacketSpec s = tcp(src, sport, dst, dport, 0);
  s.proto = 17;
  return s;
}
PacketSpec icmp(const char* src, const char* dst, uint8_t type, uint8_t code = 0, uint16_t id = 1) {
  PacketSpec s;
  s.saddr = a4(src);
  s.daddr = a4(dst);
  s.proto = 1;
  s.icmp_type = type;
  s.icmp_code = code;
  s.icmp_id = id;
  return s;
}

constexpr uint8_t SYN = 0x02, ACK = 0x10, SYNACK = 0x12, FIN = 0x01, RST = 0x04, PSH = 0x08;

struct Fixture {
  Translation tr;
  HostModel host;
  std::unique_ptr<ReferenceEngine> eng;
  double now = 1000;
  std::string iface = "eth0";
  std::string comment;  // the capture's packet comment ("nf2bpf: oif=IF")

  explicit Fixture(const std::string& rules, std::vector<std::string> local = {kHost, "2001:db8::10"},
                   ReferenceOptions ro = {}, const std::vector<ir::Set>& ipsets = {},
                   const std::string& from = "iptables")
      : host(options(local)) {
    TranslateOptions opt;
    opt.from = from;
    opt.allow_partial = true;  // unsupported by the dataplane is still evaluable
    tr = translate_source({"rules.v4", rules}, opt, ipsets);
    std::string diags;
    for (const auto& d : tr.diags.all()) diags += diag::render(d);
    INFO(diags);
    REQUIRE_FALSE(tr.diags.has_errors());
    eng = std::make_unique<ReferenceEngine>(tr.ruleset, tr.pipeline, host, ro);
  }

  static HostOptions options(const std::vector<std::string>& local) {
    HostOptions o;
    for (const auto& l : local) {
      std::string err;
      auto fam = l.find(':') != std::string::npos ? ir::AddrFamily::V6 : ir::AddrFamily::V4;
      o.local.push_back(*ir::parse_cidr(l, fam, err));
    }
    return o;
  }

  // Sends one packet as the capture would show it (direction from the
  // addresses) and returns the reference verdict.
  Decision send(const PacketSpec& s, Direction dir = Direction::Unknown, double dt = 0.001) {
    now += dt;
    Captured c;
    auto ip = build_ip(s);
    REQUIRE(decode_ip(ip.data(), ip.size(), c.packet) == "");
    c.packet.time = now;
    c.dir = dir;
    c.ifname = iface;
    c.comment = comment;
    Traversal t;
    std::string why = host.place(c, t);
    REQUIRE(why == "");
    return eng->decide(c.packet, t);
  }
};

std::string head(const char* input = "ACCEPT", const char* forward = "ACCEPT", const char* output = "ACCEPT") {
  return std::string("*filter\n:INPUT ") + input + " [0:0]\n:FORWARD " + forward + " [0:0]\n:OUTPUT " + output +
         " [0:0]\n";
}

}  // namespace

TEST_CASE("reference: ordered first match decides, and names the rule") {
  Fixture f(head("DROP") +
            "-A INPUT -p tcp --dport 22 -j ACCEPT\n"  // line 5
            "-A INPUT -p tcp --dport 20:30 -j REJECT --reject-with tcp-reset\n"
            "-A INPUT -s 198.51.100.0/24 -j ACCEPT\n"
            "COMMIT\n");
  auto d = f.send(tcp(kClient, 1000, kHost, 22, SYN));
  CHECK(d.verdict == Verdict::Accept);
  CHECK(d.rule.location == "rules.v4:5");
  CHECK(d.rule.text == "-A INPUT -p tcp --dport 22 -j ACCEPT");
  CHECK(d.hook == ir::Hook::Input);
  d = f.send(tcp(kClient, 1000, kHost, 23, SYN));
  CHECK(d.verdict == Verdict::Reject);
  CHECK(d.reject_with == "tcp-reset");
  CHECK(d.verdict_text() == "REJECT (tcp-reset)");
  CHECK(d.rule.location == "rules.v4:6");
  d = f.send(udp(kClient, 1000, kHost, 53));
  CHECK(d.verdict == Verdict::Accept);
  CHECK(d.rule.location == "rules.v4:7");
  // Port range edges: 20 and 30 are in, 19 and 31 are not.
  CHECK(f.send(tcp("203.0.113.1", 1, kHost, 20, SYN)).verdict == Verdict::Reject);
  CHECK(f.send(tcp("203.0.113.1", 1, kHost, 30, SYN)).verdict == Verdict::Reject);
  CHECK(f.send(tcp("203.0.113.1", 1, kHost, 19, SYN)).verdict == Verdict::Drop);
  CHECK(f.send(tcp("203.0.113.1", 1, kHost, 31, SYN)).verdict == Verdict::Drop);
}

TEST_CASE("reference: the policy decides when no rule does, located at the chain") {
  Fixture f(head("DROP") + "-A INPUT -p tcp --dport 22 -j ACCEPT\nCOMMIT\n");
  auto d = f.send(tcp(kClient, 1000, kHost, 80, SYN));
  CHECK(d.verdict == Verdict::Drop);
  CHECK(d.rule.policy);
  CHECK(d.rule.location == "rules.v4:2");
  CHECK(d.rule.chain == "filter/INPUT");
  auto hits = f.eng->hits();
  bool found = false;
  for (const auto& h : hits)
    if (h.policy && h.chain == "filter/INPUT") {
      found = true;
      CHECK(h.hits == 1);
    }
  CHECK(found);
}

TEST_CASE("reference: jumps, RETURN and goto") {
  Fixture f(head("DROP") +
            ":SSH - [0:0]\n:WEB - [0:0]\n:DENY - [0:0]\n"
            "-A INPUT -p tcp --dport 22 -j SSH\n"    // 8
            "-A INPUT -p tcp -g WEB\n"               // 9
            "-A INPUT -p udp -j ACCEPT\n"            // 10
            "-A SSH -s 198.51.100.0/24 -j ACCEPT\n"  // 11
            "-A SSH -s 203.0.113.0/24 -j RETURN\n"   // 12
            "-A SSH -j DENY\n"                       // 13
            "-A WEB -p tcp --dport 80 -j ACCEPT\n"   // 14
            "-A DENY -j REJECT\n"                    // 15
            "COMMIT\n");
  auto d = f.send(tcp(kClient, 1, kHost, 22, SYN));
  CHECK(d.verdict == Verdict::Accept);
  CHECK(d.rule.location == "rules.v4:11");
  CHECK(d.rule.via == std::vector<std::string>{"rules.v4:8"});
  // RETURN goes back to INPUT: the goto to WEB then finds no match, and a
  // goto'd chain falling off its end returns to INPUT's caller: the policy.
  d = f.send(tcp("203.0.113.5", 1, kHost, 22, SYN));
  CHECK(d.verdict == Verdict::Drop);
  CHECK(d.rule.policy);
  d = f.send(tcp("192.0.2.99", 1, kHost, 22, SYN));
  CHECK(d.verdict == Verdict::Reject);
  CHECK(d.rule.location == "rules.v4:15");
  CHECK(d.rule.via == std::vector<std::string>{"rules.v4:8", "rules.v4:13"});
  d = f.send(tcp(kClient, 1, kHost, 80, SYN));
  CHECK(d.verdict == Verdict::Accept);
  CHECK(d.rule.location == "rules.v4:14");
  // tcp to 443: WEB has no match; the goto does not come back to rule 10.
  d = f.send(tcp(kClient, 1, kHost, 443, SYN));
  CHECK(d.verdict == Verdict::Drop);
  CHECK(f.send(udp(kClient, 1, kHost, 443)).verdict == Verdict::Accept);
  // Jump rules count the packets that took the jump.
  CHECK(f.eng->hits_of({0, 0, 0}) == 3);  // -j SSH
  CHECK(f.eng->hits_of({0, 0, 1}) == 3);  // -g WEB (one came back from SSH by RETURN)
}

TEST_CASE("reference: MARK changes what later rules and stages see") {
  Fixture f(
      "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
      ":POSTROUTING ACCEPT [0:0]\n"
      "-A PREROUTING -s 198.51.100.0/24 -j MARK --set-mark 0x10/0xff\n"
      "COMMIT\n" +
      head("ACCEPT") + "-A INPUT -m mark --mark 0x10/0xf0 -j DROP\nCOMMIT\n");
  auto d = f.send(tcp(kClient, 1, kHost, 80, SYN));
  CHECK(d.verdict == Verdict::Drop);
  CHECK(d.rule.location == "rules.v4:13");
  REQUIRE(d.events.size() == 1);
  CHECK(d.events[0].what == "MARK 0x10");
  CHECK(f.send(tcp("203.0.113.1", 1, kHost, 80, SYN)).verdict == Verdict::Accept);
}

TEST_CASE("reference: a jump's matches are tested once, even when its chain changes the mark") {
  Fixture f(head("DROP") +
            ":TAG - [0:0]\n"
            "-A INPUT -m mark --mark 0 -j TAG\n"   // 6
            "-A INPUT -m mark --mark 1 -j DROP\n"  // 7
            "-A TAG -j MARK --set-mark 1\n"        // 8
            "-A TAG -p tcp -j ACCEPT\n"            // 9
            "COMMIT\n");
  // The kernel tested "mark 0" once, at the jump; rule 9 still runs.
  auto d = f.send(tcp(kClient, 1, kHost, 22, SYN));
  CHECK(d.verdict == Verdict::Accept);
  CHECK(d.rule.location == "rules.v4:9");
  d = f.send(udp(kClient, 1, kHost, 22));
  CHECK(d.verdict == Verdict::Drop);
  CHECK(d.rule.location == "rules.v4:7");
}

TEST_CASE("reference: ACCEPT ends one base chain, DROP ends the packet, stages run by priority") {
  Fixture f(
      "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
      "-A PREROUTING -p udp --dport 123 -j NOTRACK\n"  // 4
      "-A PREROUTING -p tcp --dport 9 -j DROP\n"       // 5
      "COMMIT\n"
      "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
      ":POSTROUTING ACCEPT [0:0]\n"
      "-A INPUT -p tcp --dport 80 -j ACCEPT\n"  // 13
      "COMMIT\n" +
      head("DROP") +
      "-A INPUT -m conntrack --ctstate UNTRACKED -j ACCEPT\n"  // 19
      "-A INPUT -p tcp --dport 22 -j ACCEPT\n"                 // 20
      "COMMIT\n");
  // mangle's ACCEPT does not skip filter: port 80 is still dropped there.
  auto d = f.send(tcp(kClient, 1, kHost, 80, SYN));
  CHECK(d.verdict == Verdict::Drop);
  CHECK(d.rule.policy);
  CHECK(d.path == std::vector<ir::Hook>{ir::Hook::Ingress, ir::Hook::Prerouting, ir::Hook::Input});
  // raw drops before anything else.
  d = f.send(tcp(kClient, 1, kHost, 9, SYN));
  CHECK(d.verdict == Verdict::Drop);
  CHECK(d.rule.location == "rules.v4:5");
  CHECK(d.hook == ir::Hook::Prerouting);
  // NOTRACK in raw makes the packet UNTRACKED for filter.
  d = f.send(udp(kClient, 123, kHost, 123));
  CHECK(d.verdict == Verdict::Accept);
  CHECK(d.ct_state == "UNTRACKED");
  CHECK(d.rule.location == "rules.v4:19");
  d = f.send(tcp(kClient, 1, kHost, 22, SYN));
  CHECK(d.rule.location == "rules.v4:20");
}

namespace {
const std::string kStateful = head("DROP", "DROP", "DROP") +
                              "-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"    // 5
                              "-A INPUT -m conntrack --ctstate INVALID -j DROP\n"                  // 6
                              "-A INPUT -p tcp --dport 22 -m conntrack --ctstate NEW -j ACCEPT\n"  // 7
                              "-A INPUT -p icmp --icmp-type echo-request -j ACCEPT\n"              // 8
                              "-A OUTPUT -m state --state ESTABLISHED,RELATED -j ACCEPT\n"         // 9
                              "-A OUTPUT -p udp -j ACCEPT\n"                                       // 10
                              "-A OUTPUT -p tcp --dport 443 -j ACCEPT\n"                           // 11
                              "COMMIT\n";
}

TEST_CASE("conntrack: a TCP handshake is NEW, then ESTABLISHED in both directions") {
  Fixture f(kStateful);
  auto d = f.send(tcp(kClient, 40000, kHost, 22, SYN));
  CHECK(d.ct_state == "NEW");
  CHECK(d.rule.location == "rules.v4:7");
  d = f.send(tcp(kHost, 22, kClient, 40000, SYNACK));
  CHECK(d.path == std::vector<ir::Hook>{ir::Hook::Output, ir::Hook::Postrouting, ir::Hook::Egress});
  CHECK(d.ct_state == "ESTABLISHED");  // the reply itself is ESTABLISHED
  CHECK(d.verdict == Verdict::Accept);
  CHECK(d.rule.location == "rules.v4:9");
  d = f.send(tcp(kClient, 40000, kHost, 22, ACK));
  CHECK(d.ct_state == "ESTABLISHED");
  CHECK(d.rule.location == "rules.v4:5");
  CHECK(f.send(tcp(kClient, 40000, kHost, 22, ACK | PSH)).ct_state == "ESTABLISHED");
  CHECK(f.send(tcp(kClient, 40000, kHost, 22, FIN | ACK)).ct_state == "ESTABLISHED");
  CHECK(f.send(tcp(kHost, 22, kClient, 40000, FIN | ACK)).ct_state == "ESTABLISHED");
  CHECK(f.send(tcp(kClient, 40000, kHost, 22, ACK)).ct_state == "ESTABLISHED");
  CHECK(f.eng->conntrack().size() == 1);
}

TEST_CASE("conntrack: a dropped first packet leaves no connection") {
  Fixture f(kStateful);
  auto d = f.send(tcp(kClient, 40001, kHost, 80, SYN));
  CHECK(d.verdict == Verdict::Drop);
  CHECK(d.ct_state == "NEW");
  CHECK(f.eng->conntrack().size() == 0);
  // So the host's SYN-ACK for it starts nothing: INVALID, and OUTPUT drops it.
  d = f.send(tcp(kHost, 80, kClient, 40001, SYNACK));
  CHECK(d.ct_state == "INVALID");
  CHECK(d.verdict == Verdict::Drop);
  CHECK(d.note.find("SYN-ACK cannot start a TCP connection") != std::string::npos);
}

TEST_CASE("conntrack: INVALID TCP: stray SYN-ACK, bad flags, ACK before SYN-ACK; loose pick-up of an ACK") {
  Fixture f(kStateful);
  auto d = f.send(tcp("203.0.113.9", 443, kHost, 40003, SYNACK));
  CHECK(d.ct_state == "INVALID");
  CHECK(d.rule.location == "rules.v4:6");
  d = f.send(tcp(kClient, 40005, kHost, 22, FIN | PSH | 0x20));  // XMAS
  CHECK(d.ct_state == "INVALID");
  CHECK(d.note == "INVALID: invalid TCP flag combination");
  // tcp_loose=1: an ACK with no connection is picked up as NEW.
  d = f.send(tcp(kClient, 40004, kHost, 22, ACK));
  CHECK(d.ct_state == "NEW");
  CHECK(d.rule.location == "rules.v4:7");
  // SYN then a client ACK before any SYN-ACK: INVALID (SYN_SENT + ACK).
  CHECK(f.send(tcp(kClient, 40006, kHost, 22, SYN)).ct_state == "NEW");
  d = f.send(tcp(kClient, 40006, kHost, 22, ACK));
  CHECK(d.ct_state == "INVALID");
  CHECK(d.note == "INVALID: ACK in state SYN_SENT (original direction)");
  // A retransmitted SYN is still NEW.
  CHECK(f.send(tcp(kClient, 40006, kHost, 22, SYN)).ct_state == "NEW");
}

TEST_CASE("conntrack: RST before any reply ends the connection; SYN re-opens a closed one") {
  Fixture f(kStateful);
  CHECK(f.send(tcp(kClient, 40010, kHost, 22, SYN)).ct_state == "NEW");
  CHECK(f.send(tcp(kHost, 22, kClient, 40010, RST | ACK)).ct_state == "ESTABLISHED");
  CHECK(f.eng->conntrack().size() == 0);
  // A full session closed by FIN: a new SYN on the same ports in TIME_WAIT is NEW.
  f.send(tcp(kClient, 40011, kHost, 22, SYN));
  f.send(tcp(kHost, 22, kClient, 40011, SYNACK));
  f.send(tcp(kClient, 40011, kHost, 22, ACK));
  f.send(tcp(kClient, 40011, kHost, 22, FIN | ACK));
  f.send(tcp(kHost, 22, kClient, 40011, FIN | ACK));
  f.send(tcp(kClient, 40011, kHost, 22, ACK));
  auto d = f.send(tcp(kClient, 40011, kHost, 22, SYN));
  CHECK(d.ct_state == "NEW");
  CHECK(d.verdict == Verdict::Accept);
}

TEST_CASE("conntrack: UDP replies are ESTABLISHED until the 30 s timeout") {
  Fixture f(kStateful);
  auto d = f.send(udp(kHost, 41000, "9.9.9.9", 53));
  CHECK(d.ct_state == "NEW");
  CHECK(d.rule.location == "rules.v4:10");
  d = f.send(udp("9.9.9.9", 53, kHost, 41000));
  CHECK(d.ct_state == "ESTABLISHED");
  CHECK(d.verdict == Verdict::Accept);
  // An answer 31 s later finds nothing: NEW, and INPUT drops it.
  f.send(udp(kHost, 41001, "9.9.9.9", 53));
  d = f.send(udp("9.9.9.9", 53, kHost, 41001), Direction::Unknown, 31);
  CHECK(d.ct_state == "NEW");
  CHECK(d.verdict == Verdict::Drop);
}

TEST_CASE("conntrack: ICMP echo and errors: RELATED, INVALID") {
  Fixture f(kStateful);
  auto d = f.send(icmp(kClient, kHost, 8, 0, 0x77));
  CHECK(d.ct_state == "NEW");
  d = f.send(icmp(kHost, kClient, 0, 0, 0x77));
  CHECK(d.ct_state == "ESTABLISHED");
  // An echo reply nobody asked for cannot start a connection.
  d = f.send(icmp(kClient, kHost, 0, 0, 0x99));
  CHECK(d.ct_state == "INVALID");
  CHECK(d.verdict == Verdict::Drop);
  // Port unreachable quoting our own UDP probe: RELATED.
  PacketSpec probe = udp(kHost, 33000, "203.0.113.5", 33434);
  CHECK(f.send(probe).ct_state == "NEW");
  PacketSpec err = icmp("203.0.113.5", kHost, 3, 3);
  auto quoted = build_ip(probe);
  err.quote.assign(quoted.begin(), quoted.begin() + 28);
  d = f.send(err);
  CHECK(d.ct_state == "RELATED");
  CHECK(d.verdict == Verdict::Accept);
  CHECK(d.rule.location == "rules.v4:5");
  // Quoting a flow that was never seen: INVALID.
  PacketSpec stray = udp(kHost, 33999, "203.0.113.77", 9);
  auto q2 = build_ip(stray);
  PacketSpec err2 = icmp("203.0.113.77", kHost, 3, 3);
  err2.quote.assign(q2.begin(), q2.begin() + 28);
  d = f.send(err2);
  CHECK(d.ct_state == "INVALID");
  CHECK(d.rule.location == "rules.v4:6");
}

TEST_CASE("conntrack: ICMPv6 neighbour discovery is UNTRACKED, echo is tracked") {
  Fixture f(
      "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n"
      "-A INPUT -m conntrack --ctstate UNTRACKED -j ACCEPT\n"
      "-A INPUT -p ipv6-icmp -m conntrack --ctstate NEW -j ACCEPT\n"
      "COMMIT\n",
      {kHost, "2001:db8::10"}, {}, {}, "ip6tables");
  PacketSpec ns;
  ns.family = 6;
  ns.saddr = a6("fe80::1");
  ns.daddr = a6("ff02::1:ff00:10");
  ns.proto = 58;
  ns.icmp_type = 135;
  auto d = f.send(ns);
  CHECK(d.ct_state == "UNTRACKED");
  CHECK(d.verdict == Verdict::Accept);
  PacketSpec echo = ns;
  echo.saddr = a6("2001:db8:1::7");
  echo.daddr = a6("2001:db8::10");
  echo.icmp_type = 128;
  echo.ipv6_hop_by_hop = true;
  d = f.send(echo);
  CHECK(d.ct_state == "NEW");
  CHECK(d.verdict == Verdict::Accept);
}

TEST_CASE("conntrack: a wrong transport checksum arriving is INVALID and starts nothing; OUTPUT does not check") {
  Fixture f(kStateful);
  auto bad = [](PacketSpec s) {
    s.bad_checksum = true;
    return s;
  };
  auto d = f.send(bad(tcp(kClient, 40000, kHost, 22, SYN)));
  CHECK(d.ct_state == "INVALID");
  CHECK(d.note.find("bad checksum") != std::string::npos);
  CHECK(f.eng->conntrack().size() == 0);
  CHECK(f.send(tcp(kClient, 40000, kHost, 22, SYN)).ct_state == "NEW");
  CHECK(f.eng->conntrack().size() == 1);
  // The host's own SYN-ACK is not checked (conntrack checks at PREROUTING).
  CHECK(f.send(bad(tcp(kHost, 22, kClient, 40000, SYNACK))).ct_state == "ESTABLISHED");
  CHECK(f.send(bad(tcp(kClient, 40000, kHost, 22, ACK))).ct_state == "INVALID");
  CHECK(f.send(bad(udp(kClient, 53, kHost, 5353))).ct_state == "INVALID");
  CHECK(f.send(bad(icmp(kClient, kHost, 8))).ct_state == "INVALID");
  // A UDP datagram without a checksum has none to be wrong.
  Captured c;
  auto ip = build_ip(udp(kClient, 54, kHost, 5353));
  ip[26] = ip[27] = 0;
  REQUIRE(decode_ip(ip.data(), ip.size(), c.packet) == "");
  c.packet.time = f.now += 0.001;
  Traversal t;
  REQUIRE(f.host.place(c, t) == "");
  CHECK(f.eng->decide(c.packet, t).ct_state == "NEW");
}

TEST_CASE("reference: an IPv6 packet to an IPv4-mapped address is routed, and has no address type") {
  // ::ffff:192.0.2.10 holds this host's IPv4 address, but IPv6's tables
  // know no IPv4 address: the IPv6 FIB routes the packet (FORWARD), and
  // ipv6_addr_type gives it no unicast or local bit.
  Fixture f(
      "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
      "-A FORWARD -m addrtype --dst-type UNICAST -j DROP\n"
      "COMMIT\n",
      {kHost, "2001:db8::10"}, {}, {}, "ip6tables");
  PacketSpec s;
  s.family = 6;
  s.saddr = a6("2001:db8:1::7");
  s.daddr = a6("::ffff:192.0.2.10");
  s.proto = 6;
  s.sport = 40000;
  s.dport = 22;
  s.tcp_flags = SYN;
  auto d = f.send(s);
  CHECK(d.path == std::vector<ir::Hook>{ir::Hook::Ingress, ir::Hook::Prerouting, ir::Hook::Forward,
                                        ir::Hook::Postrouting, ir::Hook::Egress});
  CHECK(d.verdict == Verdict::Accept);  // not UNICAST
}

TEST_CASE("reference: hooks follow the addresses: FORWARD, OUTPUT, loopback") {
  Fixture f(head("ACCEPT", "DROP", "ACCEPT") +
            "-A FORWARD -i eth0 -o eth1 -j ACCEPT\n"
            "-A OUTPUT -o lo -j ACCEPT\n"
            "-A OUTPUT -d 203.0.113.0/24 -j REJECT\n"
            "COMMIT\n");
  HostOptions ho = Fixture::options({kHost});
  std::string err;
  ho.routes.emplace_back(*ir::parse_cidr("10.0.0.0/8", ir::AddrFamily::V4, err), "eth1");
  f.host = HostModel(ho);
  auto d = f.send(tcp(kClient, 1, "10.1.2.3", 80, SYN));
  CHECK(d.path == std::vector<ir::Hook>{ir::Hook::Ingress, ir::Hook::Prerouting, ir::Hook::Forward,
                                        ir::Hook::Postrouting, ir::Hook::Egress});
  CHECK(d.verdict == Verdict::Accept);
  CHECK(d.hook == ir::Hook::Forward);
  CHECK(d.rule.location == "rules.v4:5");
  // No route for it: FORWARD's -o test cannot be decided.
  d = f.send(tcp(kClient, 1, "172.16.0.1", 80, SYN));
  CHECK(d.verdict == Verdict::Indeterminate);
  CHECK(d.note.find("output interface is not known") != std::string::npos);
  d = f.send(tcp(kHost, 1, "203.0.113.3", 80, SYN));
  CHECK(d.path.front() == ir::Hook::Output);
  CHECK(d.verdict == Verdict::Reject);
  d = f.send(tcp(kHost, 1, kHost, 80, SYN));
  CHECK(d.path ==
        std::vector<ir::Hook>{ir::Hook::Output, ir::Hook::Postrouting, ir::Hook::Prerouting, ir::Hook::Input});
  CHECK(d.verdict == Verdict::Accept);
}

TEST_CASE("reference: rate-dependent matches are indeterminate only when the verdict depends on them") {
  Fixture f(head("DROP") +
            "-A INPUT -p tcp --dport 22 -m limit --limit 3/min -j LOG --log-prefix \"ssh: \"\n"  // 5
            "-A INPUT -p tcp --dport 22 -j ACCEPT\n"                                             // 6
            "-A INPUT -p icmp -m limit --limit 1/s -j ACCEPT\n"                                  // 7
            "COMMIT\n");
  auto d = f.send(tcp(kClient, 1, kHost, 22, SYN));
  CHECK(d.verdict == Verdict::Accept);
  CHECK(d.rule.location == "rules.v4:6");
  REQUIRE(d.events.size() == 1);
  CHECK(d.events[0].what == "LOG prefix \"ssh: \"");
  d = f.send(icmp(kClient, kHost, 8));
  CHECK(d.verdict == Verdict::Indeterminate);
  CHECK(d.rule.location == "rules.v4:7");
  CHECK(d.note.find("rules.v4:7: '-m limit --limit 1/s' depends on the packet rate: the verdict is ACCEPT or DROP") !=
        std::string::npos);
}

TEST_CASE("reference: a verdict map is looked up once: no element is tried after a jumped chain returns") {
  // The chain an element jumps to changes the mark the map tests, or the
  // map is numgen's (each element a draw): either way the kernel goes on
  // with the next rule. (The dataplane refuses both, mark as a map key and
  // numgen maps that jump; `nf2bpf diff` reports what the kernel does with
  // them from here.)
  Fixture f(
      "table ip t {\n"
      "  chain input {\n"
      "    type filter hook input priority 0; policy accept;\n"
      "    meta mark set 0x1\n"
      "    tcp dport 1-32767 meta mark vmap { 0x1 : jump set2, 0x2 : jump drop_it }\n"
      "    meta mark 0x2 tcp dport 1-16383 drop\n"
      "    udp dport 1-32767 numgen random mod 2 vmap { 0 : jump or1, 1 : jump or2 }\n"
      "    meta mark 0x7 drop\n"
      "  }\n"
      "  chain set2 { meta mark set 0x2; }\n"
      "  chain drop_it { drop; }\n"
      "  chain or1 { meta mark set meta mark | 0x2; }\n"
      "  chain or2 { meta mark set meta mark | 0x4; }\n"
      "}\n",
      {kHost}, {}, {}, "nft");
  auto d = f.send(tcp(kClient, 1000, kHost, 20000, SYN));
  INFO(d.note);
  CHECK(d.verdict == Verdict::Accept);
  CHECK(f.send(tcp(kClient, 1000, kHost, 80, SYN)).verdict == Verdict::Drop);
  d = f.send(udp(kClient, 1000, kHost, 53));
  INFO(d.note);
  CHECK(d.verdict == Verdict::Accept);
}

TEST_CASE("reference: ipset sets, addrtype and multiport --ports") {
  diag::Diagnostics dd;
  auto sets =
      frontend::parse_ipset_save({"ipsets", "create blocked hash:net family inet\nadd blocked 203.0.113.0/25\n"}, dd);
  REQUIRE_FALSE(dd.has_errors());
  Fixture f(head("ACCEPT") +
                "-A INPUT -m set --match-set blocked src -j DROP\n"     // 5
                "-A INPUT -m addrtype --dst-type BROADCAST -j DROP\n"   // 6
                "-A INPUT -p tcp -m multiport --ports 7,9 -j REJECT\n"  // 7
                "-A INPUT -m addrtype ! --dst-type LOCAL -j DROP\n"     // 8
                "COMMIT\n",
            {kHost}, {}, sets);
  CHECK(f.send(tcp("203.0.113.127", 1, kHost, 80, SYN)).rule.location == "rules.v4:5");
  CHECK(f.send(tcp("203.0.113.128", 1, kHost, 80, SYN)).verdict == Verdict::Accept);
  CHECK(f.send(udp("0.0.0.0", 68, "255.255.255.255", 67)).rule.location == "rules.v4:6");
  CHECK(f.send(tcp(kClient, 7, kHost, 80, SYN)).rule.location == "rules.v4:7");
  CHECK(f.send(tcp(kClient, 80, kHost, 9, SYN)).rule.location == "rules.v4:7");
  CHECK(f.send(tcp(kClient, 80, kHost, 8, SYN)).verdict == Verdict::Accept);
}

TEST_CASE("reference: DNAT re-routes to FORWARD and replies are ESTABLISHED") {
  Fixture f(
      "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
      "-A PREROUTING -d 192.0.2.10/32 -p tcp --dport 8080 -j DNAT --to-destination 10.0.0.5:80\n"  // 6
      "COMMIT\n" +
      head("DROP", "DROP", "ACCEPT") +
      "-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n"  // 12
      "-A FORWARD -d 10.0.0.5/32 -p tcp --dport 80 -m conntrack --ctstate DNAT -j ACCEPT\n"
      "-A FORWARD -d 10.0.0.5/32 -p tcp --dport 80 -j ACCEPT\n"  // 14
      "COMMIT\n");
  auto d = f.send(tcp(kClient, 5000, kHost, 8080, SYN));
  CHECK(d.verdict == Verdict::Accept);
  CHECK(d.path == std::vector<ir::Hook>{ir::Hook::Ingress, ir::Hook::Prerouting, ir::Hook::Forward,
                                        ir::Hook::Postrouting, ir::Hook::Egress});
  CHECK(d.rule.location == "rules.v4:13");  // --ctstate DNAT sees the translation
  REQUIRE_FALSE(d.events.empty());
  CHECK(d.events[0].what == "DNAT to 10.0.0.5:80");
  // The backend's answer matches the connection's reply tuple.
  d = f.send(tcp("10.0.0.5", 80, kClient, 5000, SYNACK));
  CHECK(d.ct_state == "ESTABLISHED");
  CHECK(d.rule.location == "rules.v4:12");
  // The client's next packet is rewritten again without the nat table.
  d = f.send(tcp(kClient, 5000, kHost, 8080, ACK));
  CHECK(d.ct_state == "ESTABLISHED");
  CHECK(d.path[2] == ir::Hook::Forward);
}

TEST_CASE("reference: fragments share their datagram's verdict under conntrack") {
  Fixture f(kStateful);
  PacketSpec s = udp(kClient, 5353, kHost, 53);
  s.payload.assign(40, 'y');
  s.ip_id = 0x4242;
  auto whole = build_ip(s);
  // first fragment: header + 24 bytes of UDP; second: the rest at offset 3.
  PacketSpec f1 = s;
  f1.more_fragments = true;
  auto ip1 = build_ip(f1);
  ip1.resize(20 + 24);
  ip1[2] = 0, ip1[3] = 44;
  PacketSpec f2 = s;
  f2.frag_offset = 3;
  f2.payload.assign(whole.begin() + 20 + 24, whole.end());
  Captured c1, c2;
  REQUIRE(decode_ip(ip1.data(), ip1.size(), c1.packet) == "");
  auto ip2 = build_ip(f2);
  REQUIRE(decode_ip(ip2.data(), ip2.size(), c2.packet) == "");
  Traversal t1, t2;
  c1.ifname = c2.ifname = "eth0";
  REQUIRE(f.host.place(c1, t1) == "");
  REQUIRE(f.host.place(c2, t2) == "");
  auto d1 = f.eng->decide(c1.packet, t1);
  CHECK(d1.verdict == Verdict::Drop);  // udp/53 is not allowed in
  auto d2 = f.eng->decide(c2.packet, t2);
  CHECK(d2.verdict == Verdict::Drop);
  CHECK(d2.rule.location == d1.rule.location);
  CHECK(d2.note.find("nf_defrag") != std::string::npos);
  // An orphan fragment is never reassembled: no rule sees it.
  PacketSpec f3 = s;
  f3.ip_id = 0x9999;
  f3.frag_offset = 5;
  auto ip3 = build_ip(f3);
  Captured c3;
  REQUIRE(decode_ip(ip3.data(), ip3.size(), c3.packet) == "");
  c3.ifname = "eth0";
  Traversal t3;
  REQUIRE(f.host.place(c3, t3) == "");
  auto d3 = f.eng->decide(c3.packet, t3);
  CHECK(d3.verdict == Verdict::Drop);
  CHECK(d3.rule.location.empty());
}

TEST_CASE("reference: without conntrack, later fragments have no ports and -f matches them") {
  Fixture f(head("ACCEPT") + "-A INPUT -f -j DROP\n-A INPUT -p udp --dport 53 -j REJECT\nCOMMIT\n");
  REQUIRE_FALSE(f.eng->tracks_connections());
  PacketSpec s = udp(kClient, 5353, kHost, 53);
  s.frag_offset = 3;
  s.payload.assign(16, 'z');
  auto d = f.send(s);
  CHECK(d.verdict == Verdict::Drop);
  CHECK(d.rule.location == "rules.v4:5");
}

TEST_CASE("reference: CONNMARK save and restore carry a mark across a connection") {
  Fixture f(
      "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
      ":POSTROUTING ACCEPT [0:0]\n"
      "-A PREROUTING -j CONNMARK --restore-mark\n"
      "-A PREROUTING -p tcp --dport 22 -m conntrack --ctstate NEW -j MARK --set-mark 0x2\n"
      "-A PREROUTING -j CONNMARK --save-mark\n"
      "COMMIT\n" +
      head("ACCEPT") +
      "-A INPUT -m mark --mark 0x2 -j ACCEPT\n-A INPUT -m connmark --mark 0x2 -j ACCEPT\n"
      "-A INPUT -j DROP\nCOMMIT\n");
  auto d = f.send(tcp(kClient, 4000, kHost, 22, SYN));
  CHECK(d.verdict == Verdict::Accept);
  CHECK(d.rule.location == "rules.v4:15");
  f.send(tcp(kHost, 22, kClient, 4000, SYNACK));
  d = f.send(tcp(kClient, 4000, kHost, 22, ACK));  // not NEW: the mark comes back from the connection
  CHECK(d.verdict == Verdict::Accept);
  CHECK(d.rule.location == "rules.v4:15");
  CHECK(f.send(tcp(kClient, 4001, kHost, 80, SYN)).verdict == Verdict::Drop);
}

// ---- NAT (nf_nat_core.c, nf_nat_proto.c, nf_nat_masquerade.c, nf_nat_redirect.c) ----

namespace {

std::string nat_head() {
  return "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n";
}

NatTuple exact(const char* src, uint16_t sport, const char* dst, uint16_t dport, bool ports = true) {
  return NatTuple::exact(a4(src), a4(dst), sport, dport, ports);
}

bool has_event(const Decision& d, const std::string& what) {
  for (const auto& e : d.events)
    if (e.what.find(what) != std::string::npos) return true;
  return false;
}

std::string events(const Decision& d) {
  std::string s;
  for (const auto& e : d.events) s += e.what + "\n";
  return s;
}

}  // namespace

TEST_CASE("reference NAT: DNAT port forward, the reply reverse-translated, --ctorigdst and --ctreplsrc") {
  Fixture f(nat_head() +
            "-A PREROUTING -d 192.0.2.10/32 -p tcp --dport 8080 -j DNAT --to-destination 10.0.0.5:80\n"  // 6
            "COMMIT\n" +
            head("DROP", "DROP", "ACCEPT") +
            "-A FORWARD -m conntrack --ctstate ESTABLISHED -j ACCEPT\n"  // 12
            "-A FORWARD -m conntrack --ctorigdst 192.0.2.10 --ctorigdstport 8080 --ctreplsrc 10.0.0.5 "
            "--ctreplsrcport 80 -j ACCEPT\n"  // 13
            "COMMIT\n");
  auto d = f.send(tcp(kClient, 5000, kHost, 8080, SYN));
  INFO(events(d));
  CHECK(d.verdict == Verdict::Accept);
  CHECK(d.rule.location == "rules.v4:13");  // the stored tuples: original and reply after DNAT
  REQUIRE(d.nat);
  CHECK(*d.nat == exact(kClient, 5000, "10.0.0.5", 80));
  CHECK(d.events.at(0).what == "DNAT to 10.0.0.5:80");
  // The backend's answer leaves as if the host had sent it.
  d = f.send(tcp("10.0.0.5", 80, kClient, 5000, SYNACK));
  CHECK(d.ct_state == "ESTABLISHED");
  CHECK(d.rule.location == "rules.v4:12");
  REQUIRE(d.nat);
  CHECK(*d.nat == exact(kHost, 8080, kClient, 5000));
  // Later packets are rewritten from the binding, without the nat table.
  d = f.send(tcp(kClient, 5000, kHost, 8080, ACK));
  REQUIRE(d.nat);
  CHECK(*d.nat == exact(kClient, 5000, "10.0.0.5", 80));
  CHECK(d.events.empty());
  // A connection no rule translates leaves unchanged: no Decision::nat.
  d = f.send(tcp(kClient, 5001, kHost, 22, SYN));
  CHECK(d.verdict == Verdict::Drop);
  f.eng = std::make_unique<ReferenceEngine>(f.tr.ruleset, f.tr.pipeline, f.host);
  d = f.send(tcp(kHost, 40000, kClient, 443, SYN));
  CHECK(d.verdict == Verdict::Accept);
  CHECK_FALSE(d.nat);
}

TEST_CASE("reference NAT: SNAT address and port ranges, --random, the port kept when it may be") {
  auto run = [](const std::string& target, uint16_t sport) {
    Fixture f(nat_head() + "-A POSTROUTING -o eth1 -p tcp -j SNAT " + target + "\nCOMMIT\n" + head() + "COMMIT\n");
    f.comment = "nf2bpf: oif=eth1";
    auto d = f.send(tcp("10.1.0.5", sport, "203.0.113.9", 443, SYN));
    INFO(target << "\n" << events(d));
    REQUIRE(d.verdict == Verdict::Accept);
    REQUIRE(d.path.at(2) == ir::Hook::Forward);
    REQUIRE(d.nat);
    return *d.nat;
  };
  // One address: exact, the port kept.
  CHECK(run("--to-source 198.51.100.1", 40000) == exact("198.51.100.1", 40000, "203.0.113.9", 443));
  // Several addresses: a hash the reference does not reproduce: the range.
  NatTuple n = run("--to-source 198.51.100.1-198.51.100.4", 40000);
  CHECK(n.src_lo == a4("198.51.100.1"));
  CHECK(n.src_hi == a4("198.51.100.4"));
  CHECK(n.sport_lo == 40000);
  CHECK(n.sport_hi == 40000);
  // A port range that holds the original port keeps it ...
  CHECK(run("--to-source 198.51.100.1:30000-50000", 40000) == exact("198.51.100.1", 40000, "203.0.113.9", 443));
  // ... one that does not: a random start in it.
  n = run("--to-source 198.51.100.1:1000-2000", 40000);
  CHECK(n.src_lo == n.src_hi);
  CHECK(n.sport_lo == 1000);
  CHECK(n.sport_hi == 2000);
  // --random draws even a free port: in its class when no range is given.
  n = run("--to-source 198.51.100.1 --random", 40000);
  CHECK(n.sport_lo == 1024);
  CHECK(n.sport_hi == 65535);
  n = run("--to-source 198.51.100.1 --random-fully", 700);
  CHECK(n.sport_lo == 600);
  CHECK(n.sport_hi == 1023);
  n = run("--to-source 198.51.100.1 --random", 22);
  CHECK(n.sport_lo == 1);
  CHECK(n.sport_hi == 511);
  // The source already in the range and free: nothing changes (no SNAT status).
  Fixture f(nat_head() + "-A POSTROUTING -j SNAT --to-source 10.1.0.0-10.1.0.255\nCOMMIT\n" + head() +
            "-A FORWARD -m conntrack --ctstate SNAT -j DROP\nCOMMIT\n");
  auto d = f.send(tcp("10.1.0.5", 40000, "203.0.113.9", 443, SYN));
  CHECK(d.verdict == Verdict::Accept);
  CHECK_FALSE(d.nat);
}

TEST_CASE("reference NAT: MASQUERADE takes the address the kernel selects on the out device") {
  Fixture f(nat_head() + "-A POSTROUTING -o wan0 -j MASQUERADE\nCOMMIT\n" + head() + "COMMIT\n", {"192.168.1.1"});
  // (prefix lengths in the 128-bit space: /24 of an IPv4 address is 120)
  f.host.add_local(a4("192.168.1.1"), "lan0", 120);
  f.host.add_local(a4("198.51.100.1"), "wan0", 120);
  f.host.add_local(a4("198.51.100.2"), "wan0", 120);  // secondary: never selected
  f.host.add_local(a4("203.0.113.1"), "wan0", 120);
  f.iface = "lan0";
  f.comment = "nf2bpf: oif=wan0";
  // (Checked on Linux 6.18 with the same addresses on a router's wan device:
  // to 203.0.113.77 on-link the source was 203.0.113.1, to 8.8.8.8 via a
  // gateway in 198.51.100.0/24 it was 198.51.100.1.)
  // Off-link destination: the device's first primary address.
  auto d = f.send(tcp("192.168.1.50", 40000, "8.8.8.8", 443, SYN));
  INFO(events(d));
  REQUIRE(d.nat);
  CHECK(*d.nat == exact("198.51.100.1", 40000, "8.8.8.8", 443));
  CHECK(d.events.at(0).what == "MASQUERADE to 198.51.100.1");
  CHECK(d.rule.chain == "filter/FORWARD");  // a nat rule binds, it does not decide the verdict
  // The nexthop in one of its subnets: that subnet's primary address.
  d = f.send(tcp("192.168.1.50", 40001, "203.0.113.77", 443, SYN));
  REQUIRE(d.nat);
  CHECK(*d.nat == exact("203.0.113.1", 40001, "203.0.113.77", 443));
  // The reply is un-masqueraded at PREROUTING and forwarded to the client.
  f.iface = "wan0";
  f.comment = "nf2bpf: oif=lan0";
  d = f.send(tcp("8.8.8.8", 443, "198.51.100.1", 40000, SYNACK));
  CHECK(d.ct_state == "ESTABLISHED");
  CHECK(d.path.at(2) == ir::Hook::Forward);
  REQUIRE(d.nat);
  CHECK(*d.nat == exact("8.8.8.8", 443, "192.168.1.50", 40000));
  // --to-ports: a port range.
  Fixture g(
      nat_head() + "-A POSTROUTING -o wan0 -p udp -j MASQUERADE --to-ports 2000-2999\nCOMMIT\n" + head() + "COMMIT\n",
      {"192.168.1.1"});
  g.host.add_local(a4("198.51.100.1"), "wan0", 120);
  g.comment = "nf2bpf: oif=wan0";
  d = g.send(udp("192.168.1.50", 5353, "8.8.8.8", 53));
  REQUIRE(d.nat);
  CHECK(d.nat->src_lo == a4("198.51.100.1"));
  CHECK(d.nat->src_hi == a4("198.51.100.1"));
  CHECK(d.nat->sport_lo == 2000);
  CHECK(d.nat->sport_hi == 2999);
}

TEST_CASE("reference NAT: REDIRECT at PREROUTING (the in-device's address, none: dropped) and OUTPUT (loopback)") {
  Fixture f(nat_head() +
            "-A PREROUTING -p tcp --dport 80 -j REDIRECT --to-ports 3128\n"  // 6
            "-A OUTPUT -p tcp --dport 80 -j REDIRECT --to-ports 8080\n"      // 7
            "COMMIT\n" +
            head() + "COMMIT\n");
  f.host.add_local(a4(kHost), "eth0", 120);
  f.host.add_local(a6("2001:db8:1::1"), "eth1", 64);
  auto d = f.send(tcp(kClient, 5000, "203.0.113.9", 80, SYN));
  INFO(events(d));
  CHECK(d.verdict == Verdict::Accept);
  CHECK(d.path == std::vector<ir::Hook>{ir::Hook::Ingress, ir::Hook::Prerouting, ir::Hook::Input});
  REQUIRE(d.nat);
  CHECK(*d.nat == exact(kClient, 5000, kHost, 3128));
  CHECK(d.events.at(0).what == "REDIRECT to 192.0.2.10:3128");
  // eth1 has no IPv4 address: nf_nat_redirect_ipv4 drops the packet.
  f.iface = "eth1";
  d = f.send(tcp(kClient, 5001, "203.0.113.9", 80, SYN));
  CHECK(d.verdict == Verdict::Drop);
  CHECK(d.rule.location == "rules.v4:6");
  CHECK(d.note.find("no address") != std::string::npos);
  // Locally sent: to 127.0.0.1, routed again over lo to INPUT.
  f.iface = "eth0";
  d = f.send(tcp(kHost, 40000, "203.0.113.9", 80, SYN), Direction::Outbound);
  CHECK(d.verdict == Verdict::Accept);
  CHECK(d.path ==
        std::vector<ir::Hook>{ir::Hook::Output, ir::Hook::Postrouting, ir::Hook::Prerouting, ir::Hook::Input});
  REQUIRE(d.nat);
  CHECK(*d.nat == exact(kHost, 40000, "127.0.0.1", 8080));
}

TEST_CASE(
    "reference NAT: two connections DNATed to one backend from one client port: the second's source port is "
    "searched") {
  Fixture f(nat_head() +
                "-A PREROUTING -p tcp --dport 80 -d 192.0.2.10 -j DNAT --to-destination 10.0.0.5:80\n"
                "-A PREROUTING -p tcp --dport 80 -d 192.0.2.11 -j DNAT --to-destination 10.0.0.5:80\n"
                "-A PREROUTING -p tcp --dport 81 -d 192.0.2.11 -j DNAT --to-destination 10.0.0.5:8000-8010\n"
                "-A PREROUTING -p tcp --dport 82 -d 192.0.2.11 -j DNAT --to-destination 10.0.0.5:8000-8010\n"
                "COMMIT\n" +
                head() + "-A FORWARD -m conntrack --ctstate SNAT -j ACCEPT\n"  // 15
                + "COMMIT\n",
            {kHost, "192.0.2.11"});
  auto d = f.send(tcp(kClient, 5000, kHost, 80, SYN));
  REQUIRE(d.nat);
  CHECK(*d.nat == exact(kClient, 5000, "10.0.0.5", 80));
  CHECK(d.rule.location != "rules.v4:15");
  // Same client port, same backend: the reply tuple 10.0.0.5:80 -> client:5000
  // is taken, so the null binding at POSTROUTING searches a source port.
  // (Checked on Linux 6.18 with iptables-nft in netns: the backend saw the
  // second connection from port 38162, and --ctstate SNAT matched its later
  // packets in FORWARD; likewise when the first was already in TIME_WAIT.)
  d = f.send(tcp(kClient, 5000, "192.0.2.11", 80, SYN));
  INFO(events(d));
  CHECK(d.verdict == Verdict::Accept);
  REQUIRE(d.nat);
  CHECK(d.nat->src_lo == a4(kClient));
  CHECK(d.nat->src_hi == a4(kClient));
  CHECK(d.nat->sport_lo == 1024);
  CHECK(d.nat->sport_hi == 65535);
  CHECK(d.nat->dst_lo == a4("10.0.0.5"));
  CHECK(d.nat->dport_lo == 80);
  CHECK(d.nat->dport_hi == 80);
  CHECK(has_event(d, "source port remapped to [1024-65535]"));
  // The null binding is set up at POSTROUTING, after FORWARD: the next
  // packet's FORWARD sees the IPS_SRC_NAT the changed source set.
  CHECK(d.rule.location != "rules.v4:15");
  d = f.send(tcp(kClient, 5000, "192.0.2.11", 80, SYN));
  CHECK(d.rule.location == "rules.v4:15");
  REQUIRE(d.nat);
  CHECK(d.nat->sport_lo == 1024);  // the binding's range again, not the stand-in port
  CHECK(d.nat->sport_hi == 65535);
  // The backend's answer shows the port the kernel chose: the reply is the
  // connection's, and from then on the binding is exact.
  d = f.send(tcp("10.0.0.5", 80, kClient, 33333, SYNACK));
  CHECK(d.ct_state == "ESTABLISHED");
  REQUIRE(d.nat);
  CHECK(*d.nat == exact("192.0.2.11", 80, kClient, 5000));
  d = f.send(tcp(kClient, 5000, "192.0.2.11", 80, ACK));
  REQUIRE(d.nat);
  CHECK(*d.nat == exact(kClient, 33333, "10.0.0.5", 80));
  // A port outside the range is no answer to it.
  d = f.send(tcp("10.0.0.5", 80, kClient, 80, SYNACK));
  CHECK(d.ct_state == "INVALID");
  // A destination port range is searched from its start, in order: exact.
  // (Checked on Linux 6.18: DNAT to B:8000-8010 from client ports 5000,
  // 5001, 5002 all reached 8000; a second connection from 5000 reached 8001.)
  d = f.send(tcp(kClient, 6000, "192.0.2.11", 81, SYN));
  REQUIRE(d.nat);
  CHECK(*d.nat == exact(kClient, 6000, "10.0.0.5", 8000));
  d = f.send(tcp(kClient, 6000, "192.0.2.11", 82, SYN));  // 10.0.0.5:8000 -> client:6000 is taken
  REQUIRE(d.nat);
  CHECK(*d.nat == exact(kClient, 6000, "10.0.0.5", 8001));
}

TEST_CASE("reference NAT: nft nat chains run inside the NAT hook at -100, among themselves by priority") {
  // Checked on Linux 6.18 in a netns: a nat chain at priority -199 that
  // DNATs 8080 to 9090 is seen as 8080 by a filter chain at -150 and as 9090
  // by one at -50 (nat chains at -200 or lower are refused, EOPNOTSUPP).
  Fixture f(
      "table ip t {\n"
      "  chain nat_late { type nat hook prerouting priority -150; tcp dport 8080 dnat to 192.0.2.10:7070; }\n"
      "  chain nat_early { type nat hook prerouting priority -199; tcp dport 8080 dnat to 192.0.2.10:9090; }\n"
      "  chain f150 { type filter hook prerouting priority -150; tcp dport 9090 drop; }\n"
      "  chain f50 { type filter hook prerouting priority -50; tcp dport 8080 drop; }\n"
      "}\n",
      {kHost}, {}, {}, "nft");
  auto d = f.send(tcp(kClient, 5000, kHost, 8080, SYN));
  INFO(events(d));
  CHECK(d.verdict == Verdict::Accept);
  REQUIRE(d.nat);
  // nat_early binds first; nat_late then does not run for this manip type.
  CHECK(*d.nat == exact(kClient, 5000, kHost, 9090));
  CHECK(d.events.size() == 1);
  // Later packets: no nat chain, the binding; still after the -150 filter chain.
  d = f.send(tcp(kHost, 9090, kClient, 5000, SYNACK), Direction::Outbound);
  REQUIRE(d.nat);
  CHECK(*d.nat == exact(kHost, 8080, kClient, 5000));
  d = f.send(tcp(kClient, 5000, kHost, 8080, ACK));
  CHECK(d.verdict == Verdict::Accept);
  REQUIRE(d.nat);
  CHECK(*d.nat == exact(kClient, 5000, kHost, 9090));
}

TEST_CASE("reference NAT: an ICMP error quoting a DNATed flow is translated, outer and quoted header") {
  Fixture f(nat_head() +
            "-A PREROUTING -d 192.0.2.10/32 -p udp --dport 5353 -j DNAT --to-destination 10.0.0.5:53\n"
            "COMMIT\n" +
            head() + "COMMIT\n");
  auto d = f.send(udp(kClient, 5000, kHost, 5353));
  REQUIRE(d.nat);
  CHECK(*d.nat == exact(kClient, 5000, "10.0.0.5", 53));
  // The backend answers port unreachable, quoting the packet it got.
  PacketSpec err = icmp("10.0.0.5", kClient, 3, 3);
  auto quoted = build_ip(udp(kClient, 5000, "10.0.0.5", 53));
  err.quote.assign(quoted.begin(), quoted.begin() + 28);
  d = f.send(err);
  INFO(events(d));
  CHECK(d.ct_state == "RELATED");
  CHECK(d.verdict == Verdict::Accept);
  REQUIRE(d.nat);
  // It leaves from the address the client talked to, quoting what the client sent.
  CHECK(*d.nat == exact(kHost, 0, kClient, 0, false));
  CHECK(has_event(d, "quoting 198.51.100.7:5000 -> 192.0.2.10:5353"));
}

TEST_CASE("reference NAT: ICMP echo through SNAT: the identifier in both port fields; a clash remaps it") {
  Fixture f(nat_head() + "-A POSTROUTING -s 10.1.0.0/16 -j SNAT --to-source 198.51.100.1\nCOMMIT\n" + head() +
            "COMMIT\n");
  auto d = f.send(icmp("10.1.0.5", "203.0.113.9", 8, 0, 0x77));
  REQUIRE(d.nat);
  CHECK(*d.nat == exact("198.51.100.1", 0x77, "203.0.113.9", 0x77));
  d = f.send(icmp("203.0.113.9", "198.51.100.1", 0, 0, 0x77));
  REQUIRE(d.nat);
  CHECK(*d.nat == exact("203.0.113.9", 0x77, "10.1.0.5", 0x77));
  // Another client with the same identifier to the same server: the reply
  // tuple is taken, the identifier is searched over 0-65535.
  d = f.send(icmp("10.1.0.6", "203.0.113.9", 8, 0, 0x77));
  REQUIRE(d.nat);
  CHECK(d.nat->src_lo == a4("198.51.100.1"));
  CHECK(d.nat->sport_lo == 0);
  CHECK(d.nat->sport_hi == 65535);
  CHECK(d.nat->dport_lo == 0);
  CHECK(d.nat->dport_hi == 65535);
}

TEST_CASE("reference NAT: ct status dnat / --ctstate DNAT only when the tuple changed; ct original daddr") {
  Fixture f(
      "table ip nat {\n"
      "  chain pre { type nat hook prerouting priority dstnat; tcp dport 8080 dnat to 10.0.0.5:80; "
      "tcp dport 22 dnat to 192.0.2.10:22; }\n"
      "}\n"
      "table ip filter {\n"
      "  chain fwd { type filter hook forward priority filter; policy drop;\n"
      "    ct status dnat ct original ip daddr 192.0.2.10 ct original proto-dst 8080 accept\n"
      "  }\n"
      "  chain in { type filter hook input priority filter; policy accept;\n"
      "    ct status dnat drop\n"
      "  }\n"
      "}\n",
      {kHost}, {}, {}, "nft");
  auto d = f.send(tcp(kClient, 5000, kHost, 8080, SYN));
  INFO(events(d));
  CHECK(d.verdict == Verdict::Accept);
  CHECK(d.path.at(2) == ir::Hook::Forward);
  CHECK(d.rule.location == "rules.v4:6");
  // A DNAT to the address and port the packet already has changes nothing:
  // no IPS_DST_NAT, no translation.
  d = f.send(tcp(kClient, 5001, kHost, 22, SYN));
  CHECK(d.verdict == Verdict::Accept);
  CHECK(d.path.at(2) == ir::Hook::Input);
  CHECK_FALSE(d.nat);
}

TEST_CASE("reference NAT: IPv6 MASQUERADE selects the source as ipv6_dev_get_saddr does") {
  Fixture f(
      "table ip6 nat {\n  chain post { type nat hook postrouting priority srcnat; oifname \"wan0\" masquerade; }\n}\n",
      {"2001:db8:2::1"}, {}, {}, "nft");
  f.host.add_local(a6("fe80::1"), "wan0", 64);
  f.host.add_local(a6("2001:db8:2::1"), "lan0", 64);
  f.host.add_local(a6("2001:db8:1::1"), "wan0", 64);
  f.iface = "lan0";
  f.comment = "nf2bpf: oif=wan0";
  auto send = [&](const char* dst) {
    PacketSpec s;
    s.family = 6;
    s.saddr = a6("2001:db8:2::50");
    s.daddr = a6(dst);
    s.proto = 17;
    s.sport = 5000;
    s.dport = 53;
    auto d = f.send(s);
    INFO(events(d));
    REQUIRE(d.verdict == Verdict::Accept);
    REQUIRE(d.nat);
    CHECK(d.nat->src_lo == d.nat->src_hi);
    return d.nat->src_lo;
  };
  // A global destination: a global source (not the link-local one, though
  // it comes first), on the outgoing interface before a longer prefix match.
  CHECK(send("2001:db8:99::1") == a6("2001:db8:1::1"));
  CHECK(send("2001:db8:2::77") == a6("2001:db8:1::1"));
}

TEST_CASE("reference NAT: an ICMP error quoting a masqueraded packet goes back to the client, re-routed") {
  Fixture f(nat_head() + "-A POSTROUTING -o wan0 -j MASQUERADE\nCOMMIT\n" + head() + "COMMIT\n", {"192.168.1.1"});
  f.host.add_local(a4("192.168.1.1"), "lan0", 120);
  f.host.add_local(a4("198.51.100.1"), "wan0", 120);
  f.iface = "lan0";
  f.comment = "nf2bpf: oif=wan0";
  auto d = f.send(udp("192.168.1.50", 33000, "203.0.113.5", 33434));
  REQUIRE(d.nat);
  CHECK(*d.nat == exact("198.51.100.1", 33000, "203.0.113.5", 33434));
  // A router on the way answers the masqueraded probe.
  PacketSpec err = icmp("203.0.113.200", "198.51.100.1", 11, 0);
  auto quoted = build_ip(udp("198.51.100.1", 33000, "203.0.113.5", 33434));
  err.quote.assign(quoted.begin(), quoted.begin() + 28);
  f.iface = "wan0";
  f.comment = "nf2bpf: oif=lan0";
  d = f.send(err);
  INFO(events(d));
  CHECK(d.ct_state == "RELATED");
  CHECK(d.path.at(2) == ir::Hook::Forward);  // addressed to the router, forwarded to the client
  REQUIRE(d.nat);
  CHECK(*d.nat == exact("203.0.113.200", 0, "192.168.1.50", 0, false));
  CHECK(has_event(d, "quoting 192.168.1.50:33000 -> 203.0.113.5:33434"));
}

TEST_CASE("reference NAT: a backend chosen by -m statistic: every backend is allowed, for the whole connection") {
  Fixture f(nat_head() +
            "-A PREROUTING -d 192.0.2.10/32 -p tcp --dport 80 -m statistic --mode random --probability 0.5 -j DNAT "
            "--to-destination 10.0.0.5:8080\n"
            "-A PREROUTING -d 192.0.2.10/32 -p tcp --dport 80 -j DNAT --to-destination 10.0.0.9:8081\n"
            "COMMIT\n" +
            head() + "COMMIT\n");
  auto d = f.send(tcp(kClient, 5000, kHost, 80, SYN));
  INFO(events(d) << d.note);
  CHECK(d.verdict == Verdict::Accept);
  REQUIRE(d.nat);
  CHECK(d.nat->dst_lo == a4("10.0.0.5"));
  CHECK(d.nat->dst_hi == a4("10.0.0.9"));
  CHECK(d.nat->dport_lo == 8080);
  CHECK(d.nat->dport_hi == 8081);
  CHECK(d.note.find("the translation depends on") != std::string::npos);
  // The client's next packet: still either backend.
  d = f.send(tcp(kClient, 5000, kHost, 80, SYN));
  REQUIRE(d.nat);
  CHECK(d.nat->dst_lo == a4("10.0.0.5"));
  CHECK(d.nat->dst_hi == a4("10.0.0.9"));
  // The second backend answers: the connection is its from now on.
  d = f.send(tcp("10.0.0.9", 8081, kClient, 5000, SYNACK));
  CHECK(d.ct_state == "ESTABLISHED");
  REQUIRE(d.nat);
  CHECK(*d.nat == exact(kHost, 80, kClient, 5000));
  d = f.send(tcp(kClient, 5000, kHost, 80, ACK));
  REQUIRE(d.nat);
  CHECK(*d.nat == exact(kClient, 5000, "10.0.0.9", 8081));
}

TEST_CASE("reference NAT: a numgen random map goes to one of its chains on every draw, never past them") {
  // kube-proxy's nftables mode: numgen random mod N always gives a value
  // below N, so some element always holds (the flattener's last share is
  // 1); the entry closing each goto's region re-tests the element as drawn
  // on the way in. Found when the reference let a run skip every element
  // and leave the packet untranslated (kube-proxy-gen --kind loadbalancer).
  for (int n : {2, 3}) {
    std::string elems, chains;
    for (int i = 0; i < n; ++i) {
      elems += (i ? ", " : "") + std::to_string(i) + " : goto ep" + std::to_string(i);
      chains += "  chain ep" + std::to_string(i) + " { meta l4proto tcp dnat to 10.0.0." + std::to_string(i + 1) +
                ":8080; }\n";
    }
    Fixture f(
        "table ip t {\n"
        "  chain pre { type nat hook prerouting priority -100; ip daddr 192.0.2.10 tcp dport 80 jump svc; }\n"
        "  chain svc { numgen random mod " +
            std::to_string(n) + " vmap { " + elems + " }; }\n" + chains + "}\n",
        {kHost}, {}, {}, "nft");
    auto d = f.send(tcp(kClient, 5000, "192.0.2.10", 80, SYN));
    INFO(n << " " << events(d) << d.note);
    CHECK(d.verdict == Verdict::Accept);
    REQUIRE(d.nat);
    CHECK(d.nat->dst_lo == a4("10.0.0.1"));
    CHECK(d.nat->dst_hi == a4(("10.0.0." + std::to_string(n)).c_str()));
    CHECK(d.nat->dport_lo == 8080);
    CHECK(d.nat->dport_hi == 8080);
  }
}

TEST_CASE("reference NAT: a reply pins the first connection whose backend choice holds it, in the order they began") {
  // Two Services on one address, the same client port: both connections'
  // replies come to kClient:5000 from a chosen backend, so one reply may fit
  // either connection's range of backends ([.5, .9] and [.7, .21]; each
  // connection's stand-in is its first backend, .5 and .21).
  auto svc = [](int port, const char* a, const char* b) {
    std::string m = "-A PREROUTING -d 192.0.2.10/32 -p tcp --dport " + std::to_string(port);
    return m + " -m statistic --mode random --probability 0.5 -j DNAT --to-destination " + a + ":8080\n" + m +
           " -j DNAT --to-destination " + b + ":8080\n";
  };
  auto two = [&] {
    auto f = std::make_unique<Fixture>(nat_head() + svc(80, "10.0.0.5", "10.0.0.9") + svc(81, "10.0.0.21", "10.0.0.7") +
                                       "COMMIT\n" + head() + "COMMIT\n");
    REQUIRE(f->send(tcp(kClient, 5000, kHost, 80, SYN)).nat);
    REQUIRE(f->send(tcp(kClient, 5000, kHost, 81, SYN)).nat);
    return f;
  };
  // A backend's reply: reverse-translated as the connection to Service port `port`.
  auto reply = [](Fixture& f, const char* backend, uint16_t port) {
    auto d = f.send(tcp(backend, 8080, kClient, 5000, SYNACK));
    REQUIRE(d.nat);
    CHECK(*d.nat == exact(kHost, port, kClient, 5000));
    return d;
  };
  SECTION("a backend in both ranges: the connection that began first") {
    auto f = two();
    CHECK(reply(*f, "10.0.0.8", 80).ct_state == "ESTABLISHED");
    // The other one may still have chosen any backend in [.7, .21].
    reply(*f, "10.0.0.20", 81);
  }
  SECTION("a backend in one range only: that connection, whatever the order") {
    auto f = two();
    reply(*f, "10.0.0.20", 81);
    reply(*f, "10.0.0.8", 80);
  }
}

TEST_CASE("reference NAT: SNAT reuses the mapping another connection from the same source has (bysource)") {
  Fixture f(nat_head() +
            "-A POSTROUTING -d 203.0.113.9 -j SNAT --to-source 198.51.100.1\n"
            "-A POSTROUTING -d 203.0.113.10 -j SNAT --to-source 198.51.100.1-198.51.100.4\n"
            "COMMIT\n" +
            head() + "COMMIT\n");
  auto d = f.send(tcp("10.1.0.5", 40000, "203.0.113.9", 443, SYN));
  REQUIRE(d.nat);
  CHECK(*d.nat == exact("198.51.100.1", 40000, "203.0.113.9", 443));
  // find_appropriate_src(): 198.51.100.1:40000 is in the second rule's range
  // and free towards 203.0.113.10: taken as it is, no hash.
  d = f.send(tcp("10.1.0.5", 40000, "203.0.113.10", 443, SYN));
  REQUIRE(d.nat);
  CHECK(*d.nat == exact("198.51.100.1", 40000, "203.0.113.10", 443));
  // Another source port has no mapping yet: the hashed address, a range.
  d = f.send(tcp("10.1.0.5", 40001, "203.0.113.10", 443, SYN));
  REQUIRE(d.nat);
  CHECK(d.nat->src_lo == a4("198.51.100.1"));
  CHECK(d.nat->src_hi == a4("198.51.100.4"));
}

TEST_CASE("reference NAT: a connection NAT leaves clashing is not confirmed: its packet is dropped") {
  // Checked on Linux 6.18: SNAT to 198.51.101.1:1000 for two clients; the
  // second one's UDP datagram and TCP SYNs were dropped (insert_failed).
  Fixture f(nat_head() + "-A POSTROUTING -p udp -j SNAT --to-source 198.51.100.1:1000\nCOMMIT\n" + head() + "COMMIT\n");
  auto d = f.send(udp("10.1.0.5", 4000, "203.0.113.9", 9999));
  CHECK(d.verdict == Verdict::Accept);
  REQUIRE(d.nat);
  CHECK(*d.nat == exact("198.51.100.1", 1000, "203.0.113.9", 9999));
  d = f.send(udp("10.1.0.6", 4000, "203.0.113.9", 9999));
  INFO(events(d));
  CHECK(d.verdict == Verdict::Drop);
  CHECK(d.rule.text.find("conntrack confirmation") != std::string::npos);
  CHECK_FALSE(d.nat);
  // Nothing was confirmed for it: the first client's flow is untouched.
  d = f.send(udp("203.0.113.9", 9999, "198.51.100.1", 1000));
  CHECK(d.ct_state == "ESTABLISHED");
  REQUIRE(d.nat);
  CHECK(*d.nat == exact("203.0.113.9", 9999, "10.1.0.5", 4000));
}

TEST_CASE("reference NAT: nft snat to a prefix with a port range, and redirect for IPv6 by scope") {
  Fixture f(
      "table ip nat {\n"
      "  chain post { type nat hook postrouting priority srcnat; oifname \"eth1\" meta l4proto tcp snat to "
      "198.51.100.0/30:2000-2999; "
      "}\n"
      "}\n"
      "table ip6 nat {\n"
      "  chain pre { type nat hook prerouting priority dstnat; tcp dport 80 redirect to :3128; }\n"
      "}\n",
      {kHost, "2001:db8::10"}, {}, {}, "nft");
  f.comment = "nf2bpf: oif=eth1";
  auto d = f.send(tcp("10.1.0.5", 40000, "203.0.113.9", 443, SYN));
  INFO(events(d));
  REQUIRE(d.nat);
  CHECK(d.nat->src_lo == a4("198.51.100.0"));
  CHECK(d.nat->src_hi == a4("198.51.100.3"));
  CHECK(d.nat->sport_lo == 2000);
  CHECK(d.nat->sport_hi == 2999);
  // IPv6 REDIRECT: the in-device's first address of the destination's scope.
  f.comment.clear();
  f.host.add_local(a6("fe80::10"), "eth0", 64);
  f.host.add_local(a6("2001:db8::10"), "eth0", 64);
  PacketSpec s;
  s.family = 6;
  s.saddr = a6("2001:db8::77");
  s.daddr = a6("2001:db8:5::1");
  s.proto = 6;
  s.sport = 5000;
  s.dport = 80;
  s.tcp_flags = SYN;
  d = f.send(s);
  REQUIRE(d.nat);
  CHECK(*d.nat == NatTuple::exact(a6("2001:db8::77"), a6("2001:db8::10"), 5000, 3128, true));
}

// xt_statistic nth: count starts at (every - 1) - packet; each packet that
// reaches the match moves it (to 0 after every - 1) and the match holds at 0.
TEST_CASE("reference: -m statistic --mode nth follows the kernel's counter, per rule") {
  Fixture f(head() +
            ":CNT - [0:0]\n"
            "-A INPUT -p udp -m udp --dport 7000 -m statistic --mode nth --every 3 --packet 1 -j DROP\n"
            // The tcp match comes after the counter: it moves for every udp packet.
            "-A INPUT -p udp -m statistic --mode nth ! --every 2 --packet 0 -m udp --dport 7001 -j DROP\n"
            "-A INPUT -p tcp -j CNT\n"
            "-A INPUT -p sctp -j CNT\n"
            "-A CNT -m statistic --mode nth --every 2 --packet 1 -j DROP\n"
            "COMMIT\n");
  auto v = [&](const PacketSpec& p) { return f.send(p).verdict; };
  const auto A = Verdict::Accept, D = Verdict::Drop;
  // Rule 1 holds for the 2nd, 5th, 8th udp/7000 packet.
  std::vector<Verdict> seq;
  for (int i = 0; i < 8; ++i) seq.push_back(v(udp(kClient, 1, kHost, 7000)));
  CHECK(seq == std::vector<Verdict>{A, D, A, A, D, A, A, D});
  // Rule 2's counter saw the five packets rule 1 let through; --every 2
  // --packet 0 holds for odd counts, inverted for even ones.
  CHECK(v(udp(kClient, 1, kHost, 7001)) == D);  // 6th: ! holds, --dport matches
  CHECK(v(udp(kClient, 1, kHost, 7002)) == A);  // 7th: nth holds, ! -> no
  CHECK(v(udp(kClient, 1, kHost, 7002)) == A);  // 8th: ! holds, then --dport 7001 fails (the count moved)
  CHECK(v(udp(kClient, 1, kHost, 7001)) == A);  // 9th: nth holds
  CHECK(v(udp(kClient, 1, kHost, 7001)) == D);  // 10th
  // One counter for the chain's rule, whichever jump led there.
  std::vector<Verdict> chain;
  for (int i = 0; i < 3; ++i) {
    chain.push_back(v(tcp(kClient, 1, kHost, 80, SYN)));
    PacketSpec s = udp(kClient, 1, kHost, 80);
    s.proto = 132;
    chain.push_back(v(s));
  }
  CHECK(chain == std::vector<Verdict>{A, D, A, D, A, D});
}

TEST_CASE("reference: an undecidable match before an nth counter leaves the counter unknown") {
  Fixture f(head() +
            "-A INPUT -p udp -m udp --dport 1 -m limit --limit 1/s -j ACCEPT\n"
            "-A INPUT -p udp -m statistic --mode nth --every 2 --packet 0 -j DROP\n"
            "COMMIT\n");
  // First packet to port 2: the counter is known (the limit rule's port does not match).
  CHECK(f.send(udp(kClient, 1, kHost, 2)).verdict == Verdict::Drop);
  // To port 1: ACCEPT by the limit, or on to the counter (2nd: no match, ACCEPT).
  CHECK(f.send(udp(kClient, 1, kHost, 1)).verdict == Verdict::Accept);
  // Whether that packet moved the counter was not decided: now it is unknown.
  auto d = f.send(udp(kClient, 1, kHost, 2));
  CHECK(d.verdict == Verdict::Indeterminate);
  CHECK(d.note.find("counter depends on an earlier undecidable match") != std::string::npos);
}

TEST_CASE("reference: a random statistic match next to an nth one stays undecidable") {
  Fixture f(head() +
            "-A INPUT -p udp -m statistic --mode random --probability 0.5 -m statistic --mode nth --every 2 --packet 0 "
            "-j DROP\n"
            "COMMIT\n");
  auto d = f.send(udp(kClient, 1, kHost, 2));
  CHECK(d.verdict == Verdict::Indeterminate);
  CHECK(d.note.find("depends on sampling") != std::string::npos);
}

// xt_recent: --set stamps and matches; --update counts the stamps inside
// --seconds and stamps when it holds; --rcheck only counts; lists are per
// --name, keyed by the (masked) source or destination.
TEST_CASE("reference: -m recent follows xt_recent (SSH guard, windows, rdest, remove, mask, jump)") {
  Fixture f(
      head() +
          ":LIM - [0:0]\n"
          "-A INPUT -p tcp -m tcp --dport 22 -m recent --set --name SSH --mask 255.255.255.255 --rsource\n"
          "-A INPUT -p tcp -m tcp --dport 22 -m recent --update --seconds 60 --hitcount 4 --name SSH "
          "--mask 255.255.255.255 --rsource -j DROP\n"
          "-A INPUT -p udp -m udp --dport 53 -m recent --rcheck --seconds 10 --name SSH --rsource -j DROP\n"
          "-A INPUT -p udp -m udp --dport 7000 -m recent --set --name D --mask 255.255.255.0 --rdest\n"
          "-A INPUT -p udp -m udp --dport 7001 -m recent --rcheck --name D --mask 255.255.255.0 --rdest -j DROP\n"
          "-A INPUT -p udp -m udp --dport 7002 -m recent --remove --name D --mask 255.255.255.0 --rdest -j ACCEPT\n"
          "-A INPUT -p udp -m udp --dport 7003 -m recent ! --rcheck --name D --mask 255.255.255.0 --rdest -j DROP\n"
          // A jump: the kernel tests its recent match once, before the chain.
          "-A INPUT -p udp -m udp --dport 7100 -m recent --update --seconds 5 --hitcount 2 --name J -j LIM\n"
          "-A INPUT -p udp -m udp --dport 7100 -m recent --set --name J\n"
          "-A LIM -j DROP\n"
          "COMMIT\n",
      {kHost, "192.0.2.77", "2001:db8::10"});
  auto v = [&](const PacketSpec& p, double dt = 0.001) { return f.send(p, Direction::Unknown, dt).verdict; };
  const auto A = Verdict::Accept, D = Verdict::Drop;
  std::vector<Verdict> ssh;
  for (int i = 0; i < 5; ++i) ssh.push_back(v(tcp(kClient, 1000 + i, kHost, 22, SYN)));
  CHECK(ssh == std::vector<Verdict>{A, A, A, D, D});
  CHECK(v(tcp("198.51.100.8", 1000, kHost, 22, SYN)) == A);  // another source: its own entry
  CHECK(v(udp(kClient, 1, kHost, 53)) == D);                 // --rcheck: stamps in the last 10 s
  CHECK(v(udp(kClient, 1, kHost, 53), 11) == A);             // 11 s later: none
  CHECK(v(tcp(kClient, 1100, kHost, 22, SYN), 40) == D);     // 51 s after the 1st: every stamp is in the 60 s
  CHECK(v(tcp(kClient, 1101, kHost, 22, SYN), 61) == A);     // 61 s later: only this packet's own stamp
  // --rdest with --mask 255.255.255.0: 192.0.2.10 and 192.0.2.77 are one entry.
  CHECK(v(udp(kClient, 1, kHost, 7001)) == A);
  CHECK(v(udp(kClient, 1, kHost, 7003)) == D);
  CHECK(v(udp(kClient, 1, kHost, 7000)) == A);
  CHECK(v(udp(kClient, 1, "192.0.2.77", 7001)) == D);
  CHECK(v(udp(kClient, 1, kHost, 7003)) == A);
  CHECK(v(udp(kClient, 1, "192.0.2.77", 7002)) == A);  // removed (the rule's ACCEPT)
  CHECK(v(udp(kClient, 1, kHost, 7001)) == A);
  // The jump's --update: the 2nd packet sees two stamps (its own --set came after).
  std::vector<Verdict> j;
  for (int i = 0; i < 3; ++i) j.push_back(v(udp(kClient, 1, kHost, 7100)));
  CHECK(j == std::vector<Verdict>{A, A, D});
}

TEST_CASE("reference: an undecidable match before a recent match leaves its list unknown") {
  Fixture f(head() +
            "-A INPUT -p udp -m udp --dport 1 -m limit --limit 1/s -m recent --set --name L\n"
            "-A INPUT -p udp -m udp --dport 2 -m recent --rcheck --name L -j DROP\n"
            "COMMIT\n");
  CHECK(f.send(udp(kClient, 1, kHost, 2)).verdict == Verdict::Accept);  // empty list
  f.send(udp(kClient, 1, kHost, 1));  // the limit decides whether the source is listed
  auto d = f.send(udp(kClient, 1, kHost, 2));
  CHECK(d.verdict == Verdict::Indeterminate);
  CHECK(d.note.find("-m recent list L depends on an earlier undecidable match") != std::string::npos);
}

TEST_CASE("reference: a full -m recent list evicts its least recently used entry; --reap drops a stale oldest one") {
  Fixture f(head("DROP") +
            "-A INPUT -p udp -m udp --dport 1 -m recent --set --name L\n"
            "-A INPUT -p udp -m udp --dport 2 -m recent --rcheck --name L -j ACCEPT\n"
            "-A INPUT -p udp -m udp --dport 3 -m recent --rcheck --seconds 5 --reap --name L\n"
            "COMMIT\n");
  auto v = [&](const std::string& src, uint16_t port, double dt = 0.001) {
    return f.send(udp(src.c_str(), 1, kHost, port), Direction::Unknown, dt).verdict == Verdict::Accept ? 'A' : 'D';
  };
  auto host = [](int i) { return "198.18." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1); };
  for (int i = 0; i < 100; ++i) v(host(i), 1);  // ip_list_tot: 100 entries
  v(host(0), 1);                                // the newest again
  v(host(100), 1);                              // evicts host 1
  std::string seq;
  for (int i : {0, 1, 2, 100}) seq += v(host(i), 2);
  CHECK(seq == "ADAA");
  v(host(200), 3, 6);  // not listed: nothing found, nothing reaped
  v(host(50), 3);      // reaps host 2
  v(host(51), 3);      // reaps host 3
  seq.clear();
  for (int i : {2, 3, 4, 0}) seq += v(host(i), 2);
  CHECK(seq == "DDAA");
}

// nft sets the packet path writes (nft_dynset, nft_lookup): the sequence
// tests/kernel/dynsets.sh checks against the kernel, at the same times; an
// element's limit leaves the write's verdict to the packet rate.
TEST_CASE("reference: nft set writes and lookups follow nft_dynset (add, update, delete, timeouts)") {
  Fixture f(
      "table inet t {\n"
      "  set knock { type ipv4_addr; flags dynamic, timeout; timeout 1s; }\n"
      "  set stamp { type ipv4_addr; flags dynamic, timeout; timeout 1s; }\n"
      "  set flood { type ipv4_addr . inet_service; flags dynamic; }\n"
      "  chain input {\n"
      "    type filter hook input priority 0; policy accept;\n"
      "    udp dport 9001 add @knock { ip saddr }\n"
      "    udp dport 9002 ip saddr @knock accept\n"
      "    udp dport 9002 drop\n"
      "    udp dport 9003 delete @knock { ip saddr }\n"
      "    udp dport 9004 update @flood { ip saddr . udp dport limit rate over 5/second burst 2 packets } drop\n"
      "    udp dport 9005 update @stamp { ip saddr }\n"
      "    udp dport 9006 ip saddr != @stamp drop\n"
      "  }\n"
      "}\n",
      {kHost}, {}, {}, "nft");
  const std::string c2 = kClient, c3 = "198.51.100.8";
  std::string got;
  auto v = [&](const std::string& src, int port, double dt = 0.001) {
    auto d = f.send(udp(src.c_str(), 1000, kHost, port), Direction::Unknown, dt);
    got += d.verdict == Verdict::Accept ? "A" : d.verdict == Verdict::Drop ? "D" : "?";
  };
  v(c2, 9002), v(c2, 9001), v(c2, 9002), v(c2, 9002), v(c3, 9002);  // D A AA D: only c2 knocked
  v(c2, 9003), v(c2, 9002);                                         // A D: deleted
  v(c2, 9001), v(c2, 9001, 0.6), v(c2, 9002), v(c2, 9002, 0.7);     // A A A D: an add does not renew
  v(c3, 9005), v(c3, 9005, 0.6), v(c3, 9006, 0.7), v(c2, 9006);     // A A A D: an update renews
  v(c3, 9006, 1.0);                                                 // D: run out
  v(c2, 9004);                                                      // ?: the element's limit
  CHECK(got ==
        "DAAAD"
        "AD"
        "AAAD"
        "AAAD"
        "D"
        "?");
}
