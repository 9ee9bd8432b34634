#include <cstdio>
// The packet-test table: one or more cases per capability the translator
// marks exact, each a ruleset and packets in order with the verdict
// netfilter gives them (and, where it matters, the rule that decides and the
// skb mark after the hooks). tests/kernel/fixture.cpp runs them through
// BPF_PROG_TEST_RUN and the userspace model; the [meta] test below checks
// the table against the capability table.
//
// Addresses: see topology.h. 10.0.0.1 / fd00::1 is this host on nfk0, with
// clients 10.0.0.2 / fd00::2 behind it; 198.51.100.0/24 and 2001:db8:51::/64
// are routed out of nfk1, 203.0.113.0/24 and 2001:db8:203::/64 out of nfw0.
#include <catch2/catch.hpp>

#include <algorithm>

#include "tests/kernel/fixture.h"
#include "translator/capabilities/capabilities.h"

using namespace nf2bpf;
using namespace nf2bpf::ktest;

namespace {

const std::string kHost = "10.0.0.1", kLan = "10.0.0.2";
const std::string kHost6 = "fd00::1", kLan6 = "fd00::2";

// The filter table with its three policies, then the rules (lines 5 on).
std::string filter(const std::string& input, const std::string& forward, const std::string& output,
                   const std::string& rules) {
  return "*filter\n:INPUT " + input + " [0:0]\n:FORWARD " + forward + " [0:0]\n:OUTPUT " + output + " [0:0]\n" + rules +
         "COMMIT\n";
}

const std::string kMangleHead =
    "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
    ":POSTROUTING ACCEPT [0:0]\n";

// ---- addresses, protocols, interfaces --------------------------------------
void address_cases(std::vector<Case>& v) {
  v.push_back({
      "addresses: -s/-d prefixes, their edges, negation (IPv4)",
      {"*filter", "-s", "-d", "-j ACCEPT", "-j DROP"},
      "iptables",
      filter("DROP", "DROP", "ACCEPT",
             "-A INPUT -s 192.0.2.128/25 -j DROP\n"
             "-A INPUT -s 192.0.2.0/24 -d 10.0.0.1/32 -j ACCEPT\n"
             "-A INPUT ! -s 198.18.0.0/15 -d 10.1.0.1/32 -j ACCEPT\n"
             "-A INPUT -s 198.18.0.0/15 ! -d 10.0.0.1/32 -j ACCEPT\n"),
      "",
      {
          in("nfk0", udp("192.0.2.1", 1000, kHost, 2000), ACCEPT).rule("-s 192.0.2.0/24 -d 10.0.0.1/32"),
          in("nfk0", udp("192.0.2.127", 1000, kHost, 2000), ACCEPT).rule("-s 192.0.2.0/24 -d 10.0.0.1/32"),
          in("nfk0", udp("192.0.2.128", 1000, kHost, 2000), DROP).rule("-s 192.0.2.128/25"),
          in("nfk0", udp("192.0.2.255", 1000, kHost, 2000), DROP).rule("-s 192.0.2.128/25"),
          in("nfk0", udp("192.0.2.1", 1000, "10.1.0.1", 2000), ACCEPT).rule("! -s 198.18.0.0/15"),
          in("nfk0", udp("198.19.255.255", 1000, "10.1.0.1", 2000), ACCEPT).rule("! -d 10.0.0.1/32"),
          in("nfk0", udp("198.18.0.0", 1000, kHost, 2000), DROP).policy(),
          in("nfk0", udp("198.20.0.1", 1000, kHost, 2000), DROP).policy(),
          in("nfk0", udp("198.17.255.255", 1000, "10.1.0.1", 2000), ACCEPT).rule("! -s 198.18.0.0/15"),
      },
  });

  v.push_back({
      "addresses (IPv6): -s/-d prefixes, edges, negation, iprange; IPv4 is not judged",
      {"-s", "-d", "-m iprange --src-range"},
      "ip6tables",
      filter("DROP", "DROP", "ACCEPT",
             "-A INPUT -s 2001:db8:bad::/48 -j DROP\n"
             "-A INPUT -s 2001:db8::/32 -d fd00::1/128 -j ACCEPT\n"
             "-A INPUT ! -s 2001:db8::/32 -d fd01::1/128 -j ACCEPT\n"
             "-A INPUT -m iprange --src-range fd00::10-fd00::20 -j ACCEPT\n"),
      "",
      {
          in("nfk0", udp("2001:db8:1::5", 1000, kHost6, 2000), ACCEPT).rule("-s 2001:db8::/32 -d fd00::1/128"),
          in("nfk0", udp("2001:db8:bad:ffff::1", 1000, kHost6, 2000), DROP).rule("2001:db8:bad::/48"),
          in("nfk0", udp("2001:db8:bae::", 1000, kHost6, 2000), ACCEPT).rule("-s 2001:db8::/32 -d fd00::1/128"),
          in("nfk0", udp("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", 1000, kHost6, 2000), DROP).policy(),
          in("nfk0", udp("2001:db9::", 1000, "fd01::1", 2000), ACCEPT).rule("! -s 2001:db8::/32"),
          in("nfk0", udp("2001:db8::1", 1000, "fd01::1", 2000), DROP).policy(),
          in("nfk0", udp("fd00::10", 1000, "fd02::1", 2000), ACCEPT).rule("--src-range"),
          in("nfk0", udp("fd00::20", 1000, "fd02::1", 2000), ACCEPT).rule("--src-range"),
          in("nfk0", udp("fd00::21", 1000, "fd02::1", 2000), DROP).policy(),
          in("nfk0", udp("fd00::f", 1000, "fd02::1", 2000), DROP).policy(),
          in("nfk0", udp("192.0.2.1", 1000, kHost, 2000), ACCEPT),
      },
  });

  v.push_back({
      "protocols: -p by name and number, negated",
      {"-p"},
      "iptables",
      filter("ACCEPT", "DROP", "ACCEPT",
             "-A INPUT -p udp -j DROP\n"
             "-A INPUT -p gre -j DROP\n"
             "-A INPUT -s 192.0.2.66/32 ! -p tcp -j DROP\n"
             "-A INPUT -s 192.0.2.67/32 -p 132 -j DROP\n"),
      "",
      {
          in("nfk0", udp(kLan, 1, kHost, 2), DROP).rule("-p udp"),
          in("nfk0", raw(kLan, kHost, 47), DROP).rule("-p gre"),
          in("nfk0", tcp(kLan, 1, kHost, 2), ACCEPT).policy(),
          in("nfk0", icmp("192.0.2.66", kHost, 8), DROP).rule("! -p tcp"),
          in("nfk0", tcp("192.0.2.66", 1, kHost, 2), ACCEPT).policy(),
          in("nfk0", sctp("192.0.2.66", 1, kHost, 2), DROP).rule("! -p tcp"),
          in("nfk0", sctp("192.0.2.67", 1, kHost, 2), DROP).rule("-p 132"),
          in("nfk0", icmp("192.0.2.67", kHost, 8), ACCEPT).policy(),
      },
  });

  v.push_back({
      "interfaces: -i/-o with + wildcards and negation on INPUT, FORWARD and OUTPUT",
      {"-i", "-o"},
      "iptables",
      filter("DROP", "DROP", "ACCEPT",
             "-A INPUT -i nfk+ -p tcp -m tcp --dport 22 -j ACCEPT\n"
             "-A INPUT ! -i nfk0 -p udp -j ACCEPT\n"
             "-A FORWARD -i nfk0 -o nfk1 -j ACCEPT\n"
             "-A FORWARD -i nfk+ -o nfw+ -p tcp -j ACCEPT\n"
             "-A FORWARD ! -i nfk1 ! -o nfk0 -p udp -j ACCEPT\n"
             "-A OUTPUT -o nfw0 -p tcp -j DROP\n"
             "-A OUTPUT ! -o nfk+ -p udp -j DROP\n"),
      "",
      {
          in("nfk0", tcp(kLan, 40000, kHost, 22), ACCEPT).rule("-A INPUT -i nfk+"),
          in("nfk1", tcp("10.1.0.2", 40000, "10.1.0.1", 22), ACCEPT).rule("-A INPUT -i nfk+"),
          in("nfw0", tcp("10.2.0.2", 40000, "10.2.0.1", 22), DROP).policy(),
          in("nfk0", udp(kLan, 5000, kHost, 53), DROP).policy(),
          in("nfw0", udp("10.2.0.2", 5000, "10.2.0.1", 53), ACCEPT).rule("! -i nfk0"),
          fwd("nfk0", "nfk1", tcp(kLan, 40000, "198.51.100.5", 80), ACCEPT).rule("-i nfk0 -o nfk1"),
          fwd("nfk0", "nfk1", icmp(kLan, "198.51.100.5", 8), ACCEPT).rule("-i nfk0 -o nfk1"),
          fwd("nfk0", "nfw0", tcp(kLan, 40000, "203.0.113.5", 80), ACCEPT).rule("-o nfw+"),
          fwd("nfk0", "nfw0", udp(kLan, 40000, "203.0.113.5", 53), ACCEPT).rule("! -i nfk1 ! -o nfk0"),
          fwd("nfk1", "nfw0", udp("198.51.100.5", 40000, "203.0.113.5", 53), DROP).policy(),
          fwd("nfw0", "nfk0", tcp("203.0.113.5", 40000, kLan, 22), DROP).policy(),
          fwd("nfw0", "nfk1", udp("203.0.113.5", 40000, "198.51.100.9", 53), ACCEPT).rule("! -i nfk1 ! -o nfk0"),
          out("nfk0", udp(kHost, 5000, kLan, 53), ACCEPT),
          out("nfw0", tcp("10.2.0.1", 5000, "10.2.0.2", 80), DROP).rule("-o nfw0 -p tcp"),
          out("nfw0", udp("10.2.0.1", 5000, "10.2.0.2", 53), DROP).rule("! -o nfk+"),
          out("nfw0", icmp("10.2.0.1", "10.2.0.2", 8), ACCEPT).policy(),
          out("nfk1", udp("10.1.0.1", 5000, "10.1.0.2", 53), ACCEPT).policy(),
      },
  });

  v.push_back({
      "interfaces and forwarding (IPv6)",
      {"-i", "-o", "-s", "-m tcp --sport", "-m tcp --dport"},
      "ip6tables",
      filter("DROP", "DROP", "ACCEPT",
             "-A INPUT -i nfk0 -p tcp -m tcp --dport 22 -j ACCEPT\n"
             "-A FORWARD -s fd00::/64 -i nfk0 -o nfk1 -j ACCEPT\n"
             "-A FORWARD -i nfk1 -o nfk0 -p tcp -m tcp --sport 443 -j ACCEPT\n"),
      "",
      {
          in("nfk0", tcp(kLan6, 40000, kHost6, 22), ACCEPT).rule("-i nfk0 -p tcp"),
          in("nfk1", tcp("fd01::2", 40000, "fd01::1", 22), DROP).policy(),
          fwd("nfk0", "nfk1", tcp(kLan6, 40000, "2001:db8:51::5", 443), ACCEPT).rule("-s fd00::/64"),
          fwd("nfk0", "nfw0", tcp(kLan6, 40000, "2001:db8:203::5", 443), DROP).policy(),
          fwd("nfk1", "nfk0", tcp("2001:db8:51::5", 443, kLan6, 40000, SYN | ACK), ACCEPT).rule("--sport 443"),
          fwd("nfk1", "nfk0", tcp("2001:db8:51::5", 80, kLan6, 40000, SYN | ACK), DROP).policy(),
      },
  });
}

// ---- transport ---------------------------------------------------------------
void transport_cases(std::vector<Case>& v) {
  v.push_back({
      "tcp: ports, port ranges, --tcp-flags, --syn and their negations",
      {"-m tcp --sport", "-m tcp --dport", "-m tcp --tcp-flags", "-m tcp --syn"},
      "iptables",
      filter("DROP", "DROP", "ACCEPT",
             "-A INPUT -p tcp -m tcp --tcp-flags FIN,SYN FIN,SYN -j DROP\n"
             "-A INPUT -p tcp -m tcp --tcp-flags ALL NONE -j DROP\n"
             "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n"
             "-A INPUT -p tcp -m tcp --sport 1024:2047 --dport 8000:8080 -j ACCEPT\n"
             "-A INPUT -p tcp -m tcp ! --dport 0:1023 ! --syn -j ACCEPT\n"
             "-A INPUT -p tcp -m tcp --dport 443 --syn -j ACCEPT\n"
             "-A INPUT -p tcp -m tcp ! --sport 7 --tcp-flags RST RST -j ACCEPT\n"),
      "",
      {
          in("nfk0", tcp(kLan, 5000, kHost, 22, SYN | FIN), DROP).rule("FIN,SYN FIN,SYN"),
          in("nfk0", tcp(kLan, 5000, kHost, 22, SYN | FIN | PSH), DROP).rule("FIN,SYN FIN,SYN"),
          in("nfk0", tcp(kLan, 5000, kHost, 22, 0), DROP).rule("ALL NONE"),
          in("nfk0", tcp(kLan, 5000, kHost, 22, SYN), ACCEPT).rule("--dport 22"),
          in("nfk0", tcp(kLan, 1024, kHost, 8000, SYN), ACCEPT).rule("--sport 1024:2047"),
          in("nfk0", tcp(kLan, 2047, kHost, 8080, SYN), ACCEPT).rule("--sport 1024:2047"),
          in("nfk0", tcp(kLan, 2048, kHost, 8080, SYN), DROP).policy(),
          in("nfk0", tcp(kLan, 1023, kHost, 8000, SYN), DROP).policy(),
          in("nfk0", tcp(kLan, 2048, kHost, 8080, ACK), ACCEPT).rule("! --syn"),
          in("nfk0", tcp(kLan, 2048, kHost, 8080, SYN | ACK), ACCEPT).rule("! --syn"),
          in("nfk0", tcp(kLan, 2048, kHost, 1023, ACK), DROP).policy(),
          in("nfk0", tcp(kLan, 2048, kHost, 443, SYN), ACCEPT).rule("--dport 443 --syn"),
          in("nfk0", tcp(kLan, 2048, kHost, 443, SYN | ECE | CWR), ACCEPT).rule("--dport 443 --syn"),
          in("nfk0", tcp(kLan, 2048, kHost, 443, SYN | ACK), DROP).policy(),
          in("nfk0", tcp(kLan, 8, kHost, 80, RST | ACK), ACCEPT).rule("--tcp-flags RST RST"),
          in("nfk0", tcp(kLan, 7, kHost, 80, RST), DROP).policy(),
          in("nfk0", udp(kLan, 2048, kHost, 8080), DROP).policy(),
      },
  });

  v.push_back({
      "tcp and udp ports, multiport (IPv6)",
      {"-m tcp --sport", "-m tcp --dport", "-m tcp --tcp-flags", "-m udp --sport", "-m udp --dport",
       "-m multiport --dports"},
      "ip6tables",
      filter("DROP", "DROP", "ACCEPT",
             "-A INPUT -p tcp -m tcp --sport 1024:65535 --dport 22 --tcp-flags FIN,SYN,RST,ACK SYN -j ACCEPT\n"
             "-A INPUT -p udp -m udp --sport 547 --dport 546 -j ACCEPT\n"
             "-A INPUT -p tcp -m multiport --dports 80,443,8080:8090 -j ACCEPT\n"),
      "",
      {
          in("nfk0", tcp(kLan6, 40000, kHost6, 22, SYN), ACCEPT).rule("--dport 22"),
          in("nfk0", tcp(kLan6, 1023, kHost6, 22, SYN), DROP).policy(),
          in("nfk0", tcp(kLan6, 40000, kHost6, 22, ACK), DROP).policy(),
          in("nfk0", udp("fe80::1", 547, kHost6, 546), ACCEPT).rule("--sport 547"),
          in("nfk0", udp("fe80::1", 546, kHost6, 547), DROP).policy(),
          in("nfk0", tcp(kLan6, 40000, kHost6, 443, ACK), ACCEPT).rule("multiport"),
          in("nfk0", tcp(kLan6, 40000, kHost6, 8090, ACK), ACCEPT).rule("multiport"),
          in("nfk0", tcp(kLan6, 40000, kHost6, 8091, ACK), DROP).policy(),
          in("nfk0", udp(kLan6, 40000, kHost6, 443), DROP).policy(),
      },
  });

  v.push_back({
      "udp, udplite and sctp: ports and ranges",
      {"-m udp --sport", "-m udp --dport", "-m udplite --sport", "-m udplite --dport", "-m sctp --sport",
       "-m sctp --dport"},
      "iptables",
      filter("DROP", "DROP", "ACCEPT",
             "-A INPUT -p udp -m udp --dport 53 -j ACCEPT\n"
             "-A INPUT -p udp -m udp --sport 67:68 --dport 67:68 -j ACCEPT\n"
             "-A INPUT -p udplite -m udplite --dport 5000:5010 -j ACCEPT\n"
             "-A INPUT -p udplite -m udplite --sport 7 -j ACCEPT\n"
             "-A INPUT -p sctp -m sctp --dport 3868 -j ACCEPT\n"
             "-A INPUT -p sctp -m sctp --sport 2905:2910 ! --dport 9 -j ACCEPT\n"),
      "",
      {
          in("nfk0", udp(kLan, 1234, kHost, 53), ACCEPT).rule("--dport 53"),
          in("nfk0", udp(kLan, 68, kHost, 67), ACCEPT).rule("--sport 67:68"),
          in("nfk0", udp(kLan, 68, kHost, 69), DROP).policy(),
          in("nfk0", udp(kLan, 66, kHost, 67), DROP).policy(),
          in("nfk0", udplite(kLan, 1, kHost, 5000), ACCEPT).rule("--dport 5000:5010"),
          in("nfk0", udplite(kLan, 1, kHost, 5011), DROP).policy(),
          in("nfk0", udplite(kLan, 7, kHost, 1), ACCEPT).rule("udplite --sport 7"),
          in("nfk0", udp(kLan, 7, kHost, 1), DROP).policy(),
          in("nfk0", udp(kLan, 1, kHost, 5005), DROP).policy(),
          in("nfk0", udplite(kLan, 1, kHost, 53), DROP).policy(),
          in("nfk0", sctp(kLan, 1, kHost, 3868), ACCEPT).rule("--dport 3868"),
          in("nfk0", sctp(kLan, 2905, kHost, 10), ACCEPT).rule("--sport 2905:2910"),
          in("nfk0", sctp(kLan, 2910, kHost, 9), DROP).policy(),
          in("nfk0", sctp(kLan, 2911, kHost, 10), DROP).policy(),
          in("nfk0", tcp(kLan, 1, kHost, 53), DROP).policy(),
      },
  });

  v.push_back({
      "icmp: types, type/code, names, any, negation",
      {"-m icmp --icmp-type"},
      "iptables",
      filter("DROP", "DROP", "ACCEPT",
             "-A INPUT -p icmp -m icmp --icmp-type 3/4 -j ACCEPT\n"
             "-A INPUT -p icmp -m icmp --icmp-type echo-request -j ACCEPT\n"
             "-A INPUT -s 192.0.2.0/24 -p icmp -m icmp ! --icmp-type 13 -j ACCEPT\n"
             "-A INPUT -s 198.51.100.0/24 -p icmp -m icmp --icmp-type any -j ACCEPT\n"),
      "",
      {
          in("nfk0", icmp_error(kLan, kHost, 3, 4, udp(kHost, 1, kLan, 2)), ACCEPT).rule("3/4"),
          in("nfk0", icmp_error(kLan, kHost, 3, 3, udp(kHost, 1, kLan, 2)), DROP).policy(),
          in("nfk0", icmp(kLan, kHost, 8, 0), ACCEPT).rule("echo-request"),
          in("nfk0", icmp(kLan, kHost, 8, 5), ACCEPT).rule("echo-request"),
          in("nfk0", icmp(kLan, kHost, 0, 0), DROP).policy(),
          in("nfk0", icmp("192.0.2.1", kHost, 13, 0), DROP).policy(),
          in("nfk0", icmp("192.0.2.1", kHost, 14, 0), ACCEPT).rule("! --icmp-type 13"),
          in("nfk0", icmp("198.51.100.1", kHost, 17, 0), ACCEPT).rule("--icmp-type any"),
          in("nfk0", udp("198.51.100.1", 1, kHost, 2), DROP).policy(),
      },
  });

  v.push_back({
      "icmpv6: types, type/code, names, negation",
      {"-m icmp6 --icmpv6-type"},
      "ip6tables",
      filter("DROP", "DROP", "ACCEPT",
             "-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 1/4 -j ACCEPT\n"
             "-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type echo-request -j ACCEPT\n"
             "-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 135 -j ACCEPT\n"
             "-A INPUT -s 2001:db8::/32 -p ipv6-icmp -m icmp6 ! --icmpv6-type 2 -j ACCEPT\n"),
      "",
      {
          in("nfk0", icmp_error(kLan6, kHost6, 1, 4, udp(kHost6, 1, kLan6, 2)), ACCEPT).rule("1/4"),
          in("nfk0", icmp_error(kLan6, kHost6, 1, 3, udp(kHost6, 1, kLan6, 2)), DROP).policy(),
          in("nfk0", icmp(kLan6, kHost6, 128, 0), ACCEPT).rule("echo-request"),
          in("nfk0", icmp(kLan6, kHost6, 129, 0), DROP).policy(),
          in("nfk0", icmp(kLan6, "ff02::1:ff00:1", 135, 0).multicast(), ACCEPT).rule("--icmpv6-type 135"),
          in("nfk0", icmp_error("2001:db8::1", kHost6, 2, 0, udp(kHost6, 1, "2001:db8::9", 2)), DROP).policy(),
          in("nfk0", icmp("2001:db8::1", kHost6, 129, 0), ACCEPT).rule("! --icmpv6-type 2"),
      },
  });

  v.push_back({
      "multiport: --sports, --dports, --ports, lists with ranges, negation",
      {"-m multiport --sports", "-m multiport --dports", "-m multiport --ports"},
      "iptables",
      filter("ACCEPT", "DROP", "ACCEPT",
             "-A INPUT -p tcp -m multiport --dports 22,80,443,8000:8010 -j ACCEPT\n"
             "-A INPUT -p udp -m multiport --sports 53,123 -j ACCEPT\n"
             "-A INPUT -p tcp -m multiport --ports 25,587 -j ACCEPT\n"
             "-A INPUT -p udp -m multiport ! --dports 1000:2000,3000 -j DROP\n"
             "-A INPUT -p sctp -m multiport ! --ports 9,10 -j DROP\n"
             "-A INPUT -p tcp -j DROP\n"),
      "",
      {
          in("nfk0", tcp(kLan, 40000, kHost, 22), ACCEPT).rule("--dports 22,80"),
          in("nfk0", tcp(kLan, 40000, kHost, 8010), ACCEPT).rule("--dports 22,80"),
          in("nfk0", tcp(kLan, 40000, kHost, 8011), DROP).rule("-p tcp -j DROP"),
          in("nfk0", tcp(kLan, 22, kHost, 21), DROP).rule("-p tcp -j DROP"),
          in("nfk0", tcp(kLan, 25, kHost, 40000), ACCEPT).rule("--ports 25,587"),
          in("nfk0", tcp(kLan, 40000, kHost, 587), ACCEPT).rule("--ports 25,587"),
          in("nfk0", tcp(kLan, 26, kHost, 588), DROP).rule("-p tcp -j DROP"),
          in("nfk0", udp(kLan, 53, kHost, 9999), ACCEPT).rule("--sports 53,123"),
          in("nfk0", udp(kLan, 123, kHost, 5), ACCEPT).rule("--sports 53,123"),
          in("nfk0", udp(kLan, 54, kHost, 1500), ACCEPT).policy(),
          in("nfk0", udp(kLan, 54, kHost, 2500), DROP).rule("! --dports"),
          in("nfk0", udp(kLan, 54, kHost, 3000), ACCEPT).policy(),
          in("nfk0", sctp(kLan, 9, kHost, 1), ACCEPT).policy(),
          in("nfk0", sctp(kLan, 1, kHost, 10), ACCEPT).policy(),
          in("nfk0", sctp(kLan, 1, kHost, 2), DROP).rule("! --ports 9,10"),
      },
  });
}

// ---- connection tracking -------------------------------------------------------
void conntrack_cases(std::vector<Case>& v) {
  v.push_back({
      "conntrack: TCP handshake, UDP reply, RELATED ICMP errors, INVALID SYN-ACK, ICMP echo",
      {"-m conntrack --ctstate", "-m state --state"},
      "iptables",
      filter("ACCEPT", "DROP", "ACCEPT",
             "-A INPUT -m conntrack --ctstate INVALID -j DROP\n"
             "-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"
             "-A INPUT -p tcp -m tcp --dport 22 -m conntrack --ctstate NEW -j ACCEPT\n"
             "-A INPUT -p icmp -m icmp --icmp-type 8 -m state --state NEW -j ACCEPT\n"
             "-A INPUT -m state --state NEW -j DROP\n"
             "-A OUTPUT -m state --state INVALID -j DROP\n"),
      "",
      {
          in("nfk0", tcp(kLan, 40000, kHost, 22, SYN).seq(1000), ACCEPT).rule("--dport 22"),
          out("nfk0", tcp(kHost, 22, kLan, 40000, SYN | ACK).seq(5000, 1001), ACCEPT).policy(),
          in("nfk0", tcp(kLan, 40000, kHost, 22, ACK).seq(1001, 5001), ACCEPT).rule("RELATED,ESTABLISHED"),
          in("nfk0", tcp(kLan, 40001, kHost, 23, SYN).seq(2000), DROP).rule("--state NEW -j DROP"),
          // Its SYN was dropped: no connection, so our SYN-ACK is INVALID.
          out("nfk0", tcp(kHost, 23, kLan, 40001, SYN | ACK).seq(7000, 2001), DROP).rule("--state INVALID"),
          in("nfk0", tcp(kLan, 80, kHost, 5555, SYN | ACK).seq(9000, 1), DROP).rule("--ctstate INVALID"),
          out("nfk0", udp(kHost, 5353, kLan, 53), ACCEPT).policy(),
          in("nfk0", udp(kLan, 53, kHost, 5353), ACCEPT).rule("RELATED,ESTABLISHED"),
          in("nfk0", icmp_error(kLan, kHost, 3, 3, udp(kHost, 5353, kLan, 53)), ACCEPT).rule("RELATED,ESTABLISHED"),
          in("nfk0", icmp_error(kLan, kHost, 3, 3, udp(kHost, 5354, kLan, 53)), DROP).rule("--ctstate INVALID"),
          // An error about that flow sent to another of our addresses than the
          // flow's: netfilter calls it INVALID (outer destination != quoted source).
          in("nfk0", icmp_error(kLan, "10.1.0.1", 3, 3, udp(kHost, 5353, kLan, 53)), DROP).rule("--ctstate INVALID"),
          in("nfk0", icmp(kLan, kHost, 8, 0, 7), ACCEPT).rule("--icmp-type 8"),
          out("nfk0", icmp(kHost, kLan, 0, 0, 7), ACCEPT).policy(),
          in("nfk0", icmp(kLan, kHost, 8, 0, 7), ACCEPT).rule("RELATED,ESTABLISHED"),
          in("nfk0", icmp(kLan, kHost, 0, 0, 99), DROP).rule("--ctstate INVALID"),
          in("nfk0", udp(kLan, 9999, kHost, 7777), DROP).rule("--state NEW -j DROP"),
          in("nfk0", icmp_error("10.0.0.254", kHost, 11, 0, tcp(kHost, 22, kLan, 40000, ACK).seq(5001, 1001)), ACCEPT)
              .rule("RELATED,ESTABLISHED"),
          in("nfk0", tcp(kLan, 40000, kHost, 22, FIN | ACK).seq(1001, 5001), ACCEPT).rule("RELATED,ESTABLISHED"),
          out("nfk0", tcp(kHost, 22, kLan, 40000, FIN | ACK).seq(5001, 1002), ACCEPT).policy(),
          in("nfk0", tcp(kLan, 40000, kHost, 22, ACK).seq(1002, 5002), ACCEPT).rule("RELATED,ESTABLISHED"),
      },
  });

  v.push_back({
      "conntrack: an arriving packet whose transport checksum is wrong is INVALID; OUTPUT does not check",
      {"-m conntrack --ctstate"},
      "iptables",
      filter("ACCEPT", "DROP", "ACCEPT",
             "-A INPUT -m conntrack --ctstate INVALID -j DROP\n"
             "-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"
             "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n"
             "-A INPUT -p udp -j ACCEPT\n"
             "-A INPUT -p icmp -j ACCEPT\n"
             "-A OUTPUT -m conntrack --ctstate INVALID -j DROP\n"),
      "",
      {
          in("nfk0", tcp(kLan, 40010, kHost, 22, SYN).seq(1000).bad_checksum(), DROP)
              .rule("-A INPUT -m conntrack --ctstate INVALID"),
          in("nfk0", tcp(kLan, 40010, kHost, 22, SYN).seq(1000), ACCEPT).rule("--dport 22"),
          // (the host's own packets are not checked: CHECKSUM_PARTIAL, or
          // conntrack's check is PREROUTING's only)
          out("nfk0", tcp(kHost, 22, kLan, 40010, SYN | ACK).seq(5000, 1001).bad_checksum(), ACCEPT).policy(),
          in("nfk0", tcp(kLan, 40010, kHost, 22, ACK).seq(1001, 5001).bad_checksum(), DROP)
              .rule("-A INPUT -m conntrack --ctstate INVALID"),
          in("nfk0", tcp(kLan, 40010, kHost, 22, ACK).seq(1001, 5001), ACCEPT).rule("RELATED,ESTABLISHED"),
          in("nfk0", udp(kLan, 53, kHost, 5353).bad_checksum(), DROP).rule("-A INPUT -m conntrack --ctstate INVALID"),
          in("nfk0", icmp(kLan, kHost, 8, 0, 9).bad_checksum(), DROP).rule("-A INPUT -m conntrack --ctstate INVALID"),
          in("nfk0", icmp(kLan, kHost, 8, 0, 9), ACCEPT).rule("-p icmp"),
      },
  });

  v.push_back({
      "conntrack: UNTRACKED from raw CT --notrack and NOTRACK, on PREROUTING and OUTPUT",
      {"*raw", "-j CT --notrack", "-j NOTRACK", "-m conntrack --ctstate", "-m state --state"},
      "iptables",
      "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
      "-A PREROUTING -p udp -m udp --dport 4789 -j CT --notrack\n"
      "-A PREROUTING -p udp -m udp --dport 6081 -j NOTRACK\n"
      "-A OUTPUT -p udp -m udp --sport 4789 -j CT --notrack\n"
      "COMMIT\n" +
          filter("DROP", "DROP", "DROP",
                 "-A INPUT -m conntrack --ctstate UNTRACKED -j ACCEPT\n"
                 "-A INPUT -m conntrack --ctstate ESTABLISHED -j ACCEPT\n"
                 "-A OUTPUT -m state --state UNTRACKED -j ACCEPT\n"
                 "-A OUTPUT -p udp -m udp --dport 53 -j ACCEPT\n"),
      "",
      {
          in("nfk0", udp(kLan, 1000, kHost, 4789), ACCEPT).rule("--ctstate UNTRACKED"),
          in("nfk0", udp(kLan, 1000, kHost, 6081), ACCEPT).rule("--ctstate UNTRACKED"),
          in("nfk0", udp(kLan, 1000, kHost, 4790), DROP).policy(),
          out("nfk0", udp(kHost, 4789, kLan, 1000), ACCEPT).rule("--state UNTRACKED"),
          out("nfk0", udp(kHost, 4790, kLan, 1000), DROP).policy(),
          out("nfk0", udp(kHost, 5000, kLan, 53), ACCEPT).rule("--dport 53 -j ACCEPT"),
          in("nfk0", udp(kLan, 53, kHost, 5000), ACCEPT).rule("--ctstate ESTABLISHED"),
          // Untracked packets leave no connection behind: the "reply" is NEW.
          in("nfk0", udp(kLan, 1000, kHost, 4789), ACCEPT).rule("--ctstate UNTRACKED"),
          out("nfk0", udp(kHost, 6081, kLan, 1000), DROP).policy(),
      },
  });

  v.push_back({
      "conntrack (IPv6): handshake, ICMPv6 echo, RELATED errors, untracked neighbour discovery",
      {"-m conntrack --ctstate", "-m icmp6 --icmpv6-type"},
      "ip6tables",
      filter("DROP", "DROP", "ACCEPT",
             "-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"
             "-A INPUT -p ipv6-icmp -m conntrack --ctstate UNTRACKED -j ACCEPT\n"
             "-A INPUT -p tcp -m tcp --dport 22 -m conntrack --ctstate NEW -j ACCEPT\n"
             "-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 128 -m conntrack --ctstate NEW -j ACCEPT\n"),
      "",
      {
          in("nfk0", icmp(kLan6, "ff02::1:ff00:1", 135, 0).multicast(), ACCEPT).rule("--ctstate UNTRACKED"),
          in("nfk0", icmp(kLan6, kHost6, 136, 0), ACCEPT).rule("--ctstate UNTRACKED"),
          in("nfk0", icmp(kLan6, kHost6, 128, 0, 5), ACCEPT).rule("--icmpv6-type 128"),
          out("nfk0", icmp(kHost6, kLan6, 129, 0, 5), ACCEPT).policy(),
          in("nfk0", icmp(kLan6, kHost6, 128, 0, 5), ACCEPT).rule("RELATED,ESTABLISHED"),
          in("nfk0", icmp(kLan6, kHost6, 129, 0, 6), DROP).policy(),
          in("nfk0", tcp(kLan6, 40000, kHost6, 22, SYN).seq(100), ACCEPT).rule("--dport 22"),
          out("nfk0", tcp(kHost6, 22, kLan6, 40000, SYN | ACK).seq(300, 101), ACCEPT).policy(),
          in("nfk0", tcp(kLan6, 40000, kHost6, 22, ACK).seq(101, 301), ACCEPT).rule("RELATED,ESTABLISHED"),
          in("nfk0", tcp(kLan6, 40001, kHost6, 23, SYN), DROP).policy(),
          in("nfk0", tcp(kLan6, 80, kHost6, 40002, SYN | ACK), DROP).policy(),
          out("nfk1", udp("fd01::1", 5353, "2001:db8:51::53", 53), ACCEPT).policy(),
          in("nfk1", icmp_error("fd01::2", "fd01::1", 1, 4, udp("fd01::1", 5353, "2001:db8:51::53", 53)), ACCEPT)
              .rule("RELATED,ESTABLISHED"),
          in("nfk1", udp("2001:db8:51::53", 53, "fd01::1", 5353), ACCEPT).rule("RELATED,ESTABLISHED"),
          in("nfk0", icmp_error(kLan6, kHost6, 2, 0, tcp(kHost6, 22, kLan6, 40000, ACK).seq(301, 101)), ACCEPT)
              .rule("RELATED,ESTABLISHED"),
          in("nfk1", icmp_error("fd01::2", "fd01::1", 1, 4, udp("fd01::1", 5354, "2001:db8:51::53", 53)), DROP)
              .policy(),
          in("nfk1", udp("2001:db8:51::53", 53, "fd01::1", 9999), DROP).policy(),
      },
  });

  v.push_back({
      "conntrack tuple: --ctproto, --ctdir, --ctorig*/--ctrepl* addresses and ports",
      {"-m conntrack --ctproto", "-m conntrack --ctdir", "-m conntrack --ctorigsrc", "-m conntrack --ctorigdst",
       "-m conntrack --ctreplsrc", "-m conntrack --ctrepldst", "-m conntrack --ctorigsrcport",
       "-m conntrack --ctorigdstport", "-m conntrack --ctreplsrcport", "-m conntrack --ctrepldstport"},
      "iptables",
      filter(
          "DROP", "DROP", "ACCEPT",
          "-A INPUT -m conntrack --ctproto tcp --ctorigdst 10.0.0.1 --ctorigdstport 22 --ctdir ORIGINAL -j ACCEPT\n"
          "-A INPUT -p udp -m conntrack --ctproto udp --ctorigsrc 10.0.0.1 --ctorigdstport 53 --ctdir REPLY -j ACCEPT\n"
          "-A INPUT -m conntrack --ctreplsrc 10.0.0.1 --ctreplsrcport 80 -j ACCEPT\n"
          "-A INPUT -m conntrack --ctrepldst 10.0.0.1 --ctreplsrcport 443 --ctrepldstport 5000:5010 -j ACCEPT\n"
          "-A INPUT -m conntrack --ctorigsrc 192.0.2.0/24 --ctorigsrcport 1000 -j ACCEPT\n"
          "-A INPUT -p tcp -m conntrack ! --ctorigsrc 10.0.0.0/8 --ctorigdstport 9 -j ACCEPT\n"),
      "",
      {
          in("nfk0", tcp(kLan, 40000, kHost, 22, SYN), ACCEPT).rule("--ctorigdstport 22"),
          in("nfk0", tcp(kLan, 40000, kHost, 23, SYN), DROP).policy(),
          in("nfk0", tcp(kLan, 40001, kHost, 80, SYN), ACCEPT).rule("--ctreplsrcport 80"),
          out("nfk0", udp(kHost, 5353, kLan, 53), ACCEPT),
          in("nfk0", udp(kLan, 53, kHost, 5353), ACCEPT).rule("--ctdir REPLY"),
          in("nfk0", udp(kLan, 5353, kHost, 53), DROP).policy(),
          out("nfk0", tcp(kHost, 5005, kLan, 443, SYN).seq(10), ACCEPT),
          in("nfk0", tcp(kLan, 443, kHost, 5005, SYN | ACK).seq(20, 11), ACCEPT).rule("--ctrepldstport 5000:5010"),
          out("nfk0", tcp(kHost, 5011, kLan, 443, SYN).seq(10), ACCEPT),
          in("nfk0", tcp(kLan, 443, kHost, 5011, SYN | ACK).seq(20, 11), DROP).policy(),
          in("nfk0", tcp("192.0.2.9", 1000, kHost, 9, SYN), ACCEPT).rule("--ctorigsrcport 1000"),
          in("nfk0", tcp("192.0.2.9", 1001, kHost, 9, SYN), ACCEPT).rule("! --ctorigsrc 10.0.0.0/8"),
          in("nfk0", tcp("10.9.9.9", 1001, kHost, 9, SYN), DROP).policy(),
          // No connection (INVALID): conntrack tuple matches never match, negated or not.
          in("nfk0", tcp("192.0.2.9", 1000, kHost, 9, SYN | ACK), DROP).policy(),
          in("nfk0", tcp("192.0.2.9", 1001, kHost, 9, SYN | ACK), DROP).policy(),
      },
  });

  v.push_back({
      "no connection (INVALID, UNTRACKED): --ctproto and connmark never match, CONNMARK does nothing",
      {"-m conntrack --ctproto", "-m connmark --mark", "-j CONNMARK", "-j CT --notrack"},
      "iptables",
      "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
      "-A PREROUTING -p udp -m udp --dport 4789 -j CT --notrack\n"
      "COMMIT\n" +
          kMangleHead +
          "-A PREROUTING -p udp -m udp --dport 4789 -j CONNMARK --set-xmark 0x9/0xffffffff\n"
          "-A PREROUTING -p udp -m udp --dport 4789 -j CONNMARK --restore-mark\n"
          "COMMIT\n" +
          filter("DROP", "DROP", "ACCEPT",
                 "-A INPUT -m conntrack --ctproto udp -j ACCEPT\n"
                 "-A INPUT -p tcp -m conntrack ! --ctproto udp -j ACCEPT\n"
                 "-A INPUT -p icmp -m connmark --mark 0x0 -j ACCEPT\n"
                 "-A INPUT -p icmp -m connmark ! --mark 0x9 -j ACCEPT\n"
                 "-A INPUT -p udp -m mark --mark 0x7 -j ACCEPT\n"),
      "",
      {
          // Untracked: the CONNMARK rules change nothing, the mark stays 0x7.
          in("nfk0", udp(kLan, 1000, kHost, 4789), ACCEPT).mark(0x7).gives_mark(0x7).rule("--mark 0x7"),
          in("nfk0", udp(kLan, 1000, kHost, 4789), DROP).policy(),
          in("nfk0", tcp(kLan, 80, kHost, 5555, SYN | ACK), DROP).policy(),  // INVALID
          in("nfk0", icmp(kLan, kHost, 0, 0, 4), DROP).policy(),             // INVALID: a reply nobody asked for
          in("nfk0", udp(kLan, 1000, kHost, 5000), ACCEPT).rule("-m conntrack --ctproto udp"),
          in("nfk0", tcp(kLan, 1000, kHost, 22), ACCEPT).rule("! --ctproto udp"),
          in("nfk0", icmp(kLan, kHost, 8, 0, 4), ACCEPT).rule("connmark --mark 0x0"),
      },
  });
}

// ---- other matches -------------------------------------------------------------
void match_cases(std::vector<Case>& v) {
  // xt_statistic nth: the counter counts the packets that reach the match
  // (here: those every earlier match let through); --every N --packet P
  // holds for the (P+1)th of them and every Nth after it.
  v.push_back({
      "statistic nth: the kernel's sequence, per rule, only for packets that reach it; ! inverts",
      {"-m statistic --mode nth", "-m statistic --every", "-m statistic --packet"},
      "iptables",
      filter("ACCEPT", "DROP", "ACCEPT",
             "-A INPUT -p udp -m udp --dport 7000 -m statistic --mode nth --every 3 --packet 1 -j DROP\n"
             "-A INPUT -p udp -m udp --dport 7001 -m statistic --mode nth ! --every 2 --packet 0 -j DROP\n"
             "-A INPUT -p udp -m udp --dport 7200 -m mark --mark 0x1 -m statistic --mode nth --every 2 --packet 0 "
             "-j DROP\n"),
      "",
      {
          in("nfk0", udp(kLan, 1000, kHost, 7000), ACCEPT).policy(),           // 7000: 1st
          in("nfk0", udp(kLan, 1000, kHost, 7002), ACCEPT).policy(),           // no counter
          in("nfk0", udp(kLan, 1000, kHost, 7000), DROP).rule("--every 3"),    // 7000: 2nd
          in("nfk0", udp(kLan, 1000, kHost, 7001), ACCEPT).policy(),           // 7001: 1st (nth holds, inverted)
          in("nfk0", udp(kLan, 1000, kHost, 7000), ACCEPT).policy(),           // 7000: 3rd
          in("nfk0", udp(kLan, 1000, kHost, 7001), DROP).rule("! --every 2"),  // 7001: 2nd
          in("nfk0", udp(kLan, 1000, kHost, 7000), ACCEPT).policy(),           // 7000: 4th
          in("nfk0", udp(kLan, 1000, kHost, 7000), DROP).rule("--every 3"),    // 7000: 5th
          in("nfk0", udp(kLan, 1000, kHost, 7001), ACCEPT).policy(),           // 7001: 3rd
          in("nfk0", udp(kLan, 1000, kHost, 7000), ACCEPT).policy(),           // 7000: 6th
          in("nfk0", udp(kLan, 1000, kHost, 7000), ACCEPT).policy(),           // 7000: 7th
          in("nfk0", udp(kLan, 1000, kHost, 7000), DROP).rule("--every 3"),    // 7000: 8th
          // The mark test comes first: unmarked packets do not count.
          in("nfk0", udp(kLan, 1000, kHost, 7200), ACCEPT).policy(),
          in("nfk0", udp(kLan, 1000, kHost, 7200), DROP).mark(0x1).rule("--mark 0x1"),  // 1st
          in("nfk0", udp(kLan, 1000, kHost, 7200), ACCEPT).policy(),
          in("nfk0", udp(kLan, 1000, kHost, 7200), ACCEPT).mark(0x1).policy(),  // 2nd
          in("nfk0", udp(kLan, 1000, kHost, 7200), ACCEPT).policy(),
          in("nfk0", udp(kLan, 1000, kHost, 7200), DROP).mark(0x1).rule("--mark 0x1"),  // 3rd
      },
  });
  // -m limit: a bucket of --limit-burst packets that refills at 1/hour, so
  // the packets of this case see only the burst (tests/kernel/limit.sh and
  // the unit tests time the refill).
  v.push_back({
      "limit: the burst passes, then the rule stops matching; packets the rule does not reach take no tokens",
      {"-m limit --limit", "-m limit --limit-burst"},
      "iptables",
      filter("ACCEPT", "DROP", "ACCEPT",
             "-A INPUT -p udp -m udp --dport 7300 -m limit --limit 1/hour --limit-burst 2 -j DROP\n"),
      "",
      {
          in("nfk0", udp(kLan, 1000, kHost, 7301), ACCEPT).policy(),
          in("nfk0", udp(kLan, 1000, kHost, 7300), DROP).rule("--limit-burst 2"),
          in("nfk0", udp(kLan, 1000, kHost, 7300), DROP).rule("--limit-burst 2"),
          in("nfk0", udp(kLan, 1000, kHost, 7300), ACCEPT).policy(),
          in("nfk0", udp(kLan, 1000, kHost, 7300), ACCEPT).policy(),
      },
  });
  // -m hashlimit: a bucket per source /24 of --hashlimit-burst packets that
  // refills at 1/hour (tests/kernel/hashlimit.sh times the refill).
  v.push_back({
      "hashlimit: a burst per source /24, each bucket its own; packets the rule does not reach take no credits",
      {"-m hashlimit"},
      "iptables",
      filter("ACCEPT", "DROP", "ACCEPT",
             "-A INPUT -p udp -m udp --dport 7310 -m hashlimit --hashlimit-upto 1/hour --hashlimit-burst 2 "
             "--hashlimit-mode srcip --hashlimit-srcmask 24 --hashlimit-name pc -j DROP\n"),
      "",
      {
          in("nfk0", udp(kLan, 1000, kHost, 7311), ACCEPT).policy(),
          in("nfk0", udp(kLan, 1000, kHost, 7310), DROP).rule("--hashlimit-name pc"),
          in("nfk0", udp("10.0.0.9", 1000, kHost, 7310), DROP).rule("--hashlimit-name pc"),
          in("nfk0", udp(kLan, 1000, kHost, 7310), ACCEPT).policy(),  // the /24's bucket is empty
          in("nfk0", udp("10.0.1.2", 1000, kHost, 7310), DROP).rule("--hashlimit-name pc"),  // another /24
      },
  });
  // nft sets the packet path writes: an element added, found, deleted; an
  // element's own limit (tests/kernel/dynsets.sh times expiry and refill).
  v.push_back({
      "nft set writes: add, lookup, delete, and each element's own limit",
      {},
      "nft",
      "table inet t {\n"
      "  set knock { type ipv4_addr; flags dynamic, timeout; timeout 1h; }\n"
      "  set flood { type ipv4_addr . inet_service; flags dynamic; }\n"
      "  chain input {\n"
      "    type filter hook input priority 0; policy accept;\n"
      "    udp dport 7320 add @knock { ip saddr }\n"
      "    udp dport 7321 ip saddr != @knock drop\n"
      "    udp dport 7322 delete @knock { ip saddr }\n"
      "    udp dport 7323 update @flood { ip saddr . udp dport limit rate over 1/hour burst 2 packets } drop\n"
      "  }\n"
      "}\n",
      "",
      {
          in("nfk0", udp(kLan, 1000, kHost, 7321), DROP).rule("!= @knock"),
          in("nfk0", udp(kLan, 1000, kHost, 7320), ACCEPT).policy(),
          in("nfk0", udp(kLan, 1000, kHost, 7321), ACCEPT).policy(),
          in("nfk0", udp("10.0.0.9", 1000, kHost, 7321), DROP).rule("!= @knock"),
          in("nfk0", udp(kLan, 1000, kHost, 7322), ACCEPT).policy(),
          in("nfk0", udp(kLan, 1000, kHost, 7321), DROP).rule("!= @knock"),
          in("nfk0", udp(kLan, 1000, kHost, 7323), ACCEPT).policy(),
          in("nfk0", udp(kLan, 1000, kHost, 7323), ACCEPT).policy(),
          in("nfk0", udp(kLan, 1000, kHost, 7323), DROP).rule("update @flood"),
          in("nfk0", udp("10.0.0.9", 1000, kHost, 7323), ACCEPT).policy(),  // its own element
      },
  });
  // -m dscp and -m tos: the TOS byte's DSCP, and the byte under a mask,
  // ECN bits included.
  v.push_back({
      "dscp and tos: the DSCP of the TOS byte (any ECN), the TOS byte under its mask",
      {"-m dscp --dscp", "-m dscp --dscp-class", "-m tos --tos"},
      "iptables",
      filter("ACCEPT", "DROP", "ACCEPT",
             "-A INPUT -p udp -m udp --dport 7500 -m dscp --dscp 0x2e -j DROP\n"
             "-A INPUT -p udp -m udp --dport 7501 -m dscp ! --dscp-class AF11 -j DROP\n"
             "-A INPUT -p udp -m udp --dport 7502 -m tos --tos 0x10/0x3f -j DROP\n"
             "-A INPUT -p udp -m udp --dport 7503 -m tos --tos 0x1 -j DROP\n"),
      "",
      {
          in("nfk0", udp(kLan, 1000, kHost, 7500).tos(0xb8), DROP).rule("--dscp 0x2e"),
          in("nfk0", udp(kLan, 1000, kHost, 7500).tos(0xbb), DROP).rule("--dscp 0x2e"),  // EF with ECN CE
          in("nfk0", udp(kLan, 1000, kHost, 7500).tos(0xb4), ACCEPT).policy(),
          in("nfk0", udp(kLan, 1000, kHost, 7501).tos(0x28), ACCEPT).policy(),  // AF11
          in("nfk0", udp(kLan, 1000, kHost, 7501).tos(0x00), DROP).rule("--dscp-class AF11"),
          in("nfk0", udp(kLan, 1000, kHost, 7502).tos(0x10), DROP).rule("--tos 0x10/0x3f"),
          in("nfk0", udp(kLan, 1000, kHost, 7502).tos(0xd0), DROP).rule("--tos 0x10/0x3f"),  // outside the mask
          in("nfk0", udp(kLan, 1000, kHost, 7502).tos(0x11), ACCEPT).policy(),
          in("nfk0", udp(kLan, 1000, kHost, 7503).tos(0x01), DROP).rule("--dport 7503"),
          in("nfk0", udp(kLan, 1000, kHost, 7503).tos(0x05), ACCEPT).policy(),
      },
  });
  // -m owner on packets without a sending socket (a test run's have none;
  // tests/kernel/owner.sh sends from processes): xt_owner matches them only
  // when every test it makes is negated.
  v.push_back({
      "owner: a packet without a socket matches only negated tests",
      {"-m owner --uid-owner", "-m owner --gid-owner", "-m owner --socket-exists"},
      "iptables",
      filter("ACCEPT", "ACCEPT", "ACCEPT",
             "-A OUTPUT -p udp -m udp --dport 7400 -m owner --uid-owner 0 -j DROP\n"
             "-A OUTPUT -p udp -m udp --dport 7401 -m owner ! --uid-owner 0 -j DROP\n"
             "-A OUTPUT -p udp -m udp --dport 7402 -m owner ! --socket-exists -j DROP\n"
             "-A OUTPUT -p udp -m udp --dport 7403 -m owner --gid-owner 0-10 -j DROP\n"
             "-A OUTPUT -p udp -m udp --dport 7404 -m owner --socket-exists -j DROP\n"
             "-A OUTPUT -p udp -m udp --dport 7405 -m owner ! --uid-owner 1 ! --gid-owner 5 -j DROP\n"
             "-A OUTPUT -p udp -m udp --dport 7406 -m owner ! --uid-owner 1 --gid-owner 5 -j DROP\n"),
      "",
      {
          out("nfk0", udp(kHost, 5000, kLan, 7400), ACCEPT).policy(),
          out("nfk0", udp(kHost, 5000, kLan, 7401), DROP).rule("--dport 7401"),
          out("nfk0", udp(kHost, 5000, kLan, 7402), DROP).rule("--dport 7402"),
          out("nfk0", udp(kHost, 5000, kLan, 7403), ACCEPT).policy(),
          out("nfk0", udp(kHost, 5000, kLan, 7404), ACCEPT).policy(),
          out("nfk0", udp(kHost, 5000, kLan, 7405), DROP).rule("--dport 7405"),
          out("nfk0", udp(kHost, 5000, kLan, 7406), ACCEPT).policy(),
      },
  });
  v.push_back({
      "statistic nth: a chain's rule reached by two jumps (and two hooks) keeps one counter",
      {"-m statistic --mode nth", "-m statistic --every", "-m statistic --packet"},
      "iptables",
      filter("ACCEPT", "ACCEPT", "ACCEPT",
             ":CNT - [0:0]\n"
             "-A INPUT -p udp -m udp --dport 7100 -j CNT\n"
             "-A INPUT -p tcp -m tcp --dport 7100 -j CNT\n"
             "-A FORWARD -p udp -m udp --dport 7100 -j CNT\n"
             "-A CNT -m statistic --mode nth --every 2 --packet 1 -j DROP\n"),
      "",
      {
          in("nfk0", udp(kLan, 1000, kHost, 7100), ACCEPT).policy(),                           // 1st
          in("nfk0", tcp(kLan, 1000, kHost, 7100), DROP).rule("--every 2"),                    // 2nd
          in("nfk0", tcp(kLan, 1000, kHost, 7100), ACCEPT).policy(),                           // 3rd
          in("nfk0", udp(kLan, 1000, kHost, 7100), DROP).rule("--every 2"),                    // 4th
          fwd("nfk0", "nfk1", udp(kLan, 1000, "198.51.100.7", 7100), ACCEPT).policy(),         // 5th
          fwd("nfk0", "nfk1", udp(kLan, 1000, "198.51.100.7", 7100), DROP).rule("--every 2"),  // 6th
          in("nfk0", udp(kLan, 1000, kHost, 7101), ACCEPT).policy(),                           // no jump
          in("nfk0", udp(kLan, 1000, kHost, 7100), ACCEPT).policy(),                           // 7th
      },
  });

  // xt_recent: the SSH guard. --set stamps every new SSH packet of a source
  // (and matches, without a verdict); --update counts the stamps of the
  // last 60 s and drops from the 4th on, stamping the dropped ones too.
  v.push_back({
      "recent: --set then --update --seconds 60 --hitcount 4 drops a source's 4th packet on; per source",
      {"-m recent"},
      "iptables",
      filter("ACCEPT", "ACCEPT", "ACCEPT",
             "-A INPUT -p tcp -m tcp --dport 22 -m recent --set --name SSH --mask 255.255.255.255 --rsource\n"
             "-A INPUT -p tcp -m tcp --dport 22 -m recent --update --seconds 60 --hitcount 4 --name SSH "
             "--mask 255.255.255.255 --rsource -j DROP\n"),
      "",
      {
          in("nfk0", tcp(kLan, 1000, kHost, 22), ACCEPT).policy(),            // 1 stamp
          in("nfk0", tcp(kLan, 1001, kHost, 22), ACCEPT).policy(),            // 2
          in("nfk0", tcp(kLan, 1002, kHost, 80), ACCEPT).policy(),            // not SSH
          in("nfk0", tcp(kLan, 1003, kHost, 22), ACCEPT).policy(),            // 3
          in("nfk0", tcp("10.0.0.3", 1000, kHost, 22), ACCEPT).policy(),      // another source: 1
          in("nfk0", tcp(kLan, 1004, kHost, 22), DROP).rule("--hitcount 4"),  // 4: dropped
          in("nfk0", tcp(kLan, 1005, kHost, 22), DROP).rule("--hitcount 4"),  // 6 (the drop stamped 5)
          in("nfk0", tcp("10.0.0.3", 1001, kHost, 22), ACCEPT).policy(),      // 2
          in("nfk0", tcp(kLan, 1006, kHost, 80), ACCEPT).policy(),
      },
  });
  // --rdest keys by the destination; --remove deletes the entry (and
  // matches when there was one); ! inverts --rcheck.
  v.push_back({
      "recent: --rdest, --rcheck, ! --rcheck and --remove on one list",
      {"-m recent"},
      "iptables",
      filter("ACCEPT", "ACCEPT", "ACCEPT",
             "-A INPUT -p udp -m udp --dport 7300 -m recent --set --name D --mask 255.255.255.255 --rdest\n"
             "-A INPUT -p udp -m udp --dport 7301 -m recent --rcheck --name D --mask 255.255.255.255 --rdest -j DROP\n"
             "-A INPUT -p udp -m udp --dport 7302 -m recent --remove --name D --mask 255.255.255.255 --rdest "
             "-j ACCEPT\n"
             "-A INPUT -p udp -m udp --dport 7303 -m recent ! --rcheck --name D --mask 255.255.255.255 --rdest "
             "-j DROP\n"
             "-A INPUT -p udp -m udp --dport 7304 -m recent --rcheck --name D --mask 255.255.255.255 --rsource "
             "-j DROP\n"),
      "",
      {
          in("nfk0", udp(kLan, 1000, kHost, 7301), ACCEPT).policy(),          // not listed
          in("nfk0", udp(kLan, 1000, kHost, 7303), DROP).rule("! --rcheck"),  // not listed: ! holds
          in("nfk0", udp(kLan, 1000, kHost, 7300), ACCEPT).policy(),          // lists 10.0.0.1
          in("nfk0", udp(kLan, 1000, kHost, 7301), DROP).rule("7301"),        // listed
          in("nfk0", udp(kLan, 1000, kHost, 7303), ACCEPT).policy(),          // listed: ! fails
          in("nfk0", udp(kLan, 1000, kHost, 7304), ACCEPT).policy(),          // the source is not listed
          in("nfk0", udp(kLan, 1000, kHost, 7302), ACCEPT).rule("--remove"),  // removed (matched)
          in("nfk0", udp(kLan, 1000, kHost, 7302), ACCEPT).policy(),          // nothing to remove
          in("nfk0", udp(kLan, 1000, kHost, 7301), ACCEPT).policy(),          // gone
      },
  });

  // ip_list_tot: a list holds 100 entries; the 101st evicts the one least
  // recently set or updated.
  {
    Case c{"recent: the 101st source evicts the list's least recently set one",
           {"-m recent"},
           "iptables",
           filter("DROP", "ACCEPT", "ACCEPT",
                  "-A INPUT -p udp -m udp --dport 7500 -m recent --set --name L --mask 255.255.255.255 --rsource "
                  "-j ACCEPT\n"
                  "-A INPUT -p udp -m udp --dport 7501 -m recent --rcheck --name L --mask 255.255.255.255 --rsource "
                  "-j ACCEPT\n"),
           "",
           {}};
    auto host = [](int i) { return "10.2." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1); };
    for (int i = 0; i < 100; ++i) c.steps.push_back(in("nfk0", udp(host(i), 1, kHost, 7500), ACCEPT).rule("7500"));
    c.steps.push_back(in("nfk0", udp(host(0), 1, kHost, 7500), ACCEPT).rule("7500"));    // host 0: the newest
    c.steps.push_back(in("nfk0", udp(host(100), 1, kHost, 7500), ACCEPT).rule("7500"));  // evicts host 1
    c.steps.push_back(in("nfk0", udp(host(0), 1, kHost, 7501), ACCEPT).rule("7501"));
    c.steps.push_back(in("nfk0", udp(host(1), 1, kHost, 7501), DROP).policy());
    c.steps.push_back(in("nfk0", udp(host(2), 1, kHost, 7501), ACCEPT).rule("7501"));
    c.steps.push_back(in("nfk0", udp(host(100), 1, kHost, 7501), ACCEPT).rule("7501"));
    v.push_back(c);
  }
  // IPv6: --mask over the whole address (a /64 here); --rttl finds only an
  // entry whose stored hop limit is the packet's.
  v.push_back({
      "recent (IPv6): a /64 --mask, --rttl",
      {"-m recent"},
      "ip6tables",
      filter("ACCEPT", "ACCEPT", "ACCEPT",
             "-A INPUT -p udp -m udp --dport 7400 -m recent --set --name V6 --mask ffff:ffff:ffff:ffff:: --rsource\n"
             "-A INPUT -p udp -m udp --dport 7401 -m recent --rcheck --rttl --name V6 --mask ffff:ffff:ffff:ffff:: "
             "--rsource -j DROP\n"),
      "",
      {
          in("nfk0", udp(kLan6, 1, kHost6, 7401), ACCEPT).policy(),            // not listed
          in("nfk0", udp(kLan6, 1, kHost6, 7400), ACCEPT).policy(),            // listed, hop limit 64
          in("nfk0", udp("fd00::99", 1, kHost6, 7401), DROP).rule("--rttl"),   // the same /64
          in("nfk0", udp(kLan6, 1, kHost6, 7401).ttl(63), ACCEPT).policy(),    // another hop limit
          in("nfk0", udp("fd00:0:0:1::2", 1, kHost6, 7401), ACCEPT).policy(),  // another /64
      },
  });

  v.push_back({
      "comment: a commented rule matches like the same rule without it",
      {"-m comment --comment"},
      "iptables",
      filter("DROP", "DROP", "ACCEPT",
             "-A INPUT -p tcp -m tcp --dport 80 -m comment --comment \"web server\" -j ACCEPT\n"
             "-A INPUT -m comment --comment \"drop the rest, loudly\" -j DROP\n"),
      "",
      {
          in("nfk0", tcp(kLan, 40000, kHost, 80), ACCEPT).rule("web server"),
          in("nfk0", tcp(kLan, 40000, kHost, 81), DROP).rule("drop the rest"),
      },
  });

  v.push_back({
      "set: hash:ip, hash:net, hash:ip,port, negation, counter options",
      {"-m set --match-set", "-m set --update-counters", "-m set --update-subcounters"},
      "iptables",
      filter("DROP", "DROP", "ACCEPT",
             "-A INPUT -m set --match-set blocked src -j DROP\n"
             "-A INPUT -m set --match-set svc dst,dst -j ACCEPT\n"
             "-A INPUT -p tcp -m tcp --dport 22 -m set --match-set allow4 src ! --update-counters "
             "! --update-subcounters -j ACCEPT\n"
             "-A INPUT -p udp -m set ! --match-set allow4 src -j ACCEPT\n"),
      "create blocked hash:ip family inet hashsize 1024 maxelem 65536\n"
      "add blocked 203.0.113.9\n"
      "add blocked 192.0.2.99\n"
      "create allow4 hash:net family inet hashsize 1024 maxelem 65536\n"
      "add allow4 192.0.2.0/25\n"
      "add allow4 198.51.100.7\n"
      "create svc hash:ip,port family inet hashsize 1024 maxelem 65536\n"
      "add svc 10.0.0.1,tcp:443\n"
      "add svc 10.0.0.1,udp:53\n",
      {
          in("nfk0", tcp("192.0.2.99", 1000, kHost, 443), DROP).rule("blocked src"),
          in("nfk0", tcp("192.0.2.1", 1000, kHost, 443), ACCEPT).rule("svc dst,dst"),
          in("nfk0", udp(kLan, 1000, kHost, 53), ACCEPT).rule("svc dst,dst"),
          in("nfk0", tcp(kLan, 1000, kHost, 53), DROP).policy(),
          in("nfk0", tcp("192.0.2.1", 1000, kHost, 22), ACCEPT).rule("allow4 src !"),
          in("nfk0", tcp("192.0.2.128", 1000, kHost, 22), DROP).policy(),
          in("nfk0", tcp("198.51.100.7", 1000, kHost, 22), ACCEPT).rule("allow4 src !"),
          in("nfk0", tcp("198.51.100.8", 1000, kHost, 22), DROP).policy(),
          in("nfk0", udp("192.0.2.200", 1000, kHost, 9999), ACCEPT).rule("! --match-set allow4"),
          in("nfk0", udp("192.0.2.5", 1000, kHost, 9999), DROP).policy(),
          in("nfk0", udp("203.0.113.9", 1000, kHost, 53), DROP).rule("blocked src"),
      },
  });

  v.push_back({
      "MARK and -m mark: set/xor/or/and with masks, two mark tests in a rule, the skb mark after",
      {"*mangle", "-j MARK", "-m mark --mark"},
      "iptables",
      kMangleHead +
          "-A PREROUTING -p tcp -m tcp --dport 22 -j MARK --set-xmark 0x10/0xff\n"
          "-A PREROUTING -p tcp -m tcp --dport 80 -j MARK --set-mark 0x20\n"
          "-A PREROUTING -p udp -j MARK --or-mark 0x100\n"
          "-A PREROUTING -p udp -m mark --mark 0x1/0x1 -j MARK --and-mark 0xfffffff0\n"
          "-A OUTPUT -p tcp -j MARK --xor-mark 0x3\n"
          "COMMIT\n" +
          filter("DROP", "DROP", "ACCEPT",
                 "-A INPUT -m mark --mark 0x10/0xff -j ACCEPT\n"
                 "-A INPUT -m mark --mark 0x20 -j ACCEPT\n"
                 "-A INPUT -p udp -m mark --mark 0x100/0x100 -m mark ! --mark 0x0/0xf -j ACCEPT\n"
                 "-A OUTPUT -m mark --mark 0x3/0x3 -j DROP\n"),
      "",
      {
          in("nfk0", tcp(kLan, 1, kHost, 22), ACCEPT).gives_mark(0x10).rule("--mark 0x10/0xff"),
          in("nfk0", tcp(kLan, 1, kHost, 22), ACCEPT).mark(0x1234).gives_mark(0x1210).rule("--mark 0x10/0xff"),
          in("nfk0", tcp(kLan, 1, kHost, 80), ACCEPT).mark(0x1234).gives_mark(0x20).rule("-m mark --mark 0x20 "),
          in("nfk0", tcp(kLan, 1, kHost, 81), ACCEPT).mark(0x20).gives_mark(0x20).rule("-m mark --mark 0x20 "),
          in("nfk0", tcp(kLan, 1, kHost, 81), DROP).mark(0x21).policy(),
          in("nfk0", udp(kLan, 1, kHost, 2), DROP).policy(),
          in("nfk0", udp(kLan, 1, kHost, 2), DROP).mark(0x5).policy(),
          in("nfk0", udp(kLan, 1, kHost, 2), ACCEPT).mark(0x6).gives_mark(0x106).rule("! --mark 0x0/0xf"),
          out("nfk0", tcp(kHost, 1, kLan, 2), DROP).rule("--mark 0x3/0x3"),
          out("nfk0", tcp(kHost, 1, kLan, 2), ACCEPT).mark(0x1).gives_mark(0x2),
          out("nfk0", udp(kHost, 1, kLan, 2), DROP).mark(0x7).rule("--mark 0x3/0x3"),
      },
  });

  v.push_back({
      "CONNMARK and -m connmark: set, save and restore across the packets of a connection",
      {"*mangle", "-j CONNMARK", "-m connmark --mark", "-j MARK", "-m mark --mark"},
      "iptables",
      kMangleHead +
          "-A PREROUTING -m connmark ! --mark 0x0 -j CONNMARK --restore-mark\n"
          "-A PREROUTING -p tcp -m tcp --dport 80 --tcp-flags FIN,SYN,RST,ACK SYN -j MARK --set-xmark 0x20/0xffffffff\n"
          "-A PREROUTING -m mark --mark 0x20 -j CONNMARK --save-mark\n"
          "-A PREROUTING -p udp -m udp --dport 53 -j CONNMARK --set-xmark 0x5/0xf\n"
          "-A OUTPUT -p udp -m connmark --mark 0x5/0xf -j CONNMARK --restore-mark --mask 0xf\n"
          "COMMIT\n" +
          filter("DROP", "DROP", "ACCEPT",
                 "-A INPUT -m connmark --mark 0x20 -j ACCEPT\n"
                 "-A INPUT -p udp -m connmark --mark 0x5/0xf -j ACCEPT\n"
                 "-A OUTPUT -p udp -m mark ! --mark 0x5/0xf -j DROP\n"),
      "",
      {
          in("nfk0", tcp(kLan, 40000, kHost, 80, SYN).seq(1), ACCEPT).gives_mark(0x20).rule("-m connmark --mark 0x20"),
          out("nfk0", tcp(kHost, 80, kLan, 40000, SYN | ACK).seq(50, 2), ACCEPT),
          // Later packets carry no mark: --restore-mark brings it back from the connection.
          in("nfk0", tcp(kLan, 40000, kHost, 80, ACK).seq(2, 51), ACCEPT)
              .gives_mark(0x20)
              .rule("-m connmark --mark 0x20"),
          in("nfk0", tcp(kLan, 40001, kHost, 80, ACK).seq(2, 51), DROP).policy(),
          in("nfk0", udp(kLan, 1000, kHost, 53), ACCEPT).mark(0x100).gives_mark(0x100).rule("--mark 0x5/0xf -j ACCEPT"),
          // The reply leaves with the connection's low bits restored into its mark.
          out("nfk0", udp(kHost, 53, kLan, 1000), ACCEPT).mark(0xf0).gives_mark(0xf5),
          out("nfk0", udp(kHost, 53, kLan, 1001), DROP).mark(0xf0).rule("! --mark 0x5/0xf"),
          in("nfk0", udp(kLan, 1000, kHost, 54), DROP).policy(),
      },
  });

  v.push_back({
      "addrtype: LOCAL, UNICAST, BROADCAST, MULTICAST as source and destination",
      {"-m addrtype --src-type", "-m addrtype --dst-type"},
      "iptables",
      filter("ACCEPT", "DROP", "ACCEPT",
             "-A INPUT -m addrtype --dst-type BROADCAST -j DROP\n"
             "-A INPUT -p udp -m addrtype --dst-type MULTICAST -j DROP\n"
             "-A INPUT -p tcp -m addrtype --dst-type LOCAL -m tcp --dport 22 -j ACCEPT\n"
             "-A INPUT -p tcp -j DROP\n"
             "-A FORWARD -m addrtype --src-type UNICAST --dst-type UNICAST -j ACCEPT\n"
             "-A OUTPUT -m addrtype ! --src-type LOCAL -j DROP\n"),
      "",
      {
          in("nfk0", udp(kLan, 68, "10.0.0.255", 67).broadcast(), DROP).rule("--dst-type BROADCAST"),
          in("nfk0", udp(kLan, 68, "255.255.255.255", 67).broadcast(), DROP).rule("--dst-type BROADCAST"),
          in("nfk0", udp(kLan, 5353, "224.0.0.251", 5353).multicast(), DROP).rule("--dst-type MULTICAST"),
          in("nfk0", icmp(kLan, "224.0.0.1", 8).multicast(), ACCEPT).policy(),
          in("nfk0", tcp(kLan, 40000, kHost, 22), ACCEPT).rule("--dst-type LOCAL"),
          in("nfk0", tcp(kLan, 40000, "10.2.0.1", 22), ACCEPT).rule("--dst-type LOCAL"),
          in("nfk0", tcp(kLan, 40000, kHost, 23), DROP).rule("-p tcp -j DROP"),
          fwd("nfk0", "nfk1", tcp(kLan, 40000, "198.51.100.5", 80), ACCEPT).rule("--src-type UNICAST"),
          fwd("nfk1", "nfk0", udp("198.51.100.5", 1, kLan, 2), ACCEPT).rule("--src-type UNICAST"),
          out("nfk0", udp(kHost, 1, kLan, 2), ACCEPT).policy(),
          out("nfk0", udp("10.1.0.1", 1, kLan, 2), ACCEPT).policy(),
          out("nfk0", udp("192.0.2.77", 1, kLan, 2), DROP).rule("! --src-type LOCAL"),
      },
  });

  v.push_back({
      "addrtype (IPv6): every listed type must hold, a local address is UNICAST too",
      {"-m addrtype --src-type", "-m addrtype --dst-type"},
      "ip6tables",
      filter("ACCEPT", "DROP", "ACCEPT",
             "-A INPUT -p udp -m addrtype ! --dst-type UNICAST -m udp --dport 5353 -j ACCEPT\n"
             "-A INPUT -p udp -m addrtype --dst-type MULTICAST -j DROP\n"
             "-A INPUT -m addrtype --src-type UNSPEC -j DROP\n"
             "-A INPUT -p tcp -m addrtype --dst-type UNICAST -m tcp --dport 22 -j ACCEPT\n"
             "-A INPUT -p tcp -m addrtype --dst-type LOCAL -m tcp --dport 23 -j ACCEPT\n"
             "-A INPUT -p tcp -m addrtype --dst-type UNICAST,LOCAL -m tcp --dport 25 -j ACCEPT\n"
             "-A INPUT -p tcp -j DROP\n"
             "-A INPUT -p udp -m addrtype --src-type UNICAST --dst-type LOCAL -j DROP\n"
             "-A FORWARD -m addrtype --src-type UNICAST --dst-type UNICAST -j ACCEPT\n"
             "-A OUTPUT -m addrtype ! --src-type LOCAL -j DROP\n"),
      "",
      {
          in("nfk0", udp(kLan6, 5353, "ff02::fb", 5353).multicast(), ACCEPT).rule("! --dst-type UNICAST"),
          in("nfk0", udp(kLan6, 9, "ff02::1", 9).multicast(), DROP).rule("--dst-type MULTICAST"),
          in("nfk0", udp(kLan6, 5353, kHost6, 5353), DROP).rule("--src-type UNICAST --dst-type LOCAL -j DROP"),
          in("nfk0", icmp("::", "ff02::1:ff00:1", 135).multicast(), DROP).rule("--src-type UNSPEC"),
          in("nfk0", tcp(kLan6, 1, kHost6, 22), ACCEPT).rule("--dst-type UNICAST -m tcp --dport 22"),
          in("nfk0", tcp("fe80::2", 1, "fd01::1", 22), ACCEPT).rule("--dst-type UNICAST -m tcp --dport 22"),
          in("nfk0", tcp(kLan6, 1, kHost6, 23), ACCEPT).rule("--dst-type LOCAL -m tcp --dport 23"),
          in("nfk0", tcp(kLan6, 1, kHost6, 25), ACCEPT).rule("UNICAST,LOCAL"),
          in("nfk0", tcp(kLan6, 1, kHost6, 24), DROP).rule("-p tcp -j DROP"),
          in("nfk0", udp(kLan6, 1, kHost6, 2), DROP).rule("--src-type UNICAST --dst-type LOCAL -j DROP"),
          fwd("nfk0", "nfk1", tcp(kLan6, 1, "2001:db8:51::5", 80), ACCEPT)
              .rule("--src-type UNICAST --dst-type UNICAST"),
          out("nfk0", udp(kHost6, 1, kLan6, 2), ACCEPT).policy(),
          out("nfk0", udp("2001:db8::99", 1, kLan6, 2), DROP).rule("! --src-type LOCAL"),
      },
  });

  v.push_back({
      "iprange: source and destination ranges, negation",
      {"-m iprange --src-range", "-m iprange --dst-range"},
      "iptables",
      filter("DROP", "DROP", "ACCEPT",
             "-A INPUT -m iprange --src-range 192.0.2.10-192.0.2.20 -j ACCEPT\n"
             "-A INPUT -m iprange --dst-range 10.1.0.1-10.2.0.1 -p udp -j ACCEPT\n"
             "-A INPUT -p tcp -m iprange ! --src-range 10.0.0.0-10.255.255.255 -j ACCEPT\n"),
      "",
      {
          in("nfk0", udp("192.0.2.10", 1, kHost, 2), ACCEPT).rule("--src-range 192.0.2.10-192.0.2.20"),
          in("nfk0", udp("192.0.2.20", 1, kHost, 2), ACCEPT).rule("--src-range 192.0.2.10-192.0.2.20"),
          in("nfk0", udp("192.0.2.21", 1, kHost, 2), DROP).policy(),
          in("nfk0", udp("192.0.2.9", 1, "10.1.0.1", 2), ACCEPT).rule("--dst-range"),
          in("nfk0", udp("192.0.2.9", 1, "10.2.0.1", 2), ACCEPT).rule("--dst-range"),
          in("nfk0", udp("10.0.0.2", 1, kHost, 2), DROP).policy(),
          in("nfk0", tcp("192.0.2.9", 1, kHost, 2), ACCEPT).rule("! --src-range"),
          in("nfk0", tcp(kLan, 1, kHost, 2), DROP).policy(),
      },
  });

  v.push_back({
      "mac: source MAC, negated",
      {"-m mac --mac-source"},
      "iptables",
      filter("DROP", "DROP", "ACCEPT",
             "-A INPUT -m mac --mac-source 02:00:00:00:00:42 -j ACCEPT\n"
             "-A INPUT -p udp -m mac ! --mac-source 02:00:00:00:00:43 -j ACCEPT\n"),
      "",
      {
          in("nfk0", tcp(kLan, 1, kHost, 2).mac(0x020000000042ULL), ACCEPT).rule("--mac-source 02:00:00:00:00:42"),
          in("nfk0", tcp(kLan, 1, kHost, 2).mac(0x020000000043ULL), DROP).policy(),
          in("nfk0", udp(kLan, 1, kHost, 2).mac(0x020000000043ULL), DROP).policy(),
          in("nfk0", udp(kLan, 1, kHost, 2).mac(0x020000000044ULL), ACCEPT).rule("! --mac-source"),
      },
  });

  v.push_back({
      "pkttype: unicast, broadcast, multicast",
      {"-m pkttype --pkt-type"},
      "iptables",
      filter("ACCEPT", "DROP", "ACCEPT",
             "-A INPUT -m pkttype --pkt-type broadcast -j DROP\n"
             "-A INPUT -p udp -m pkttype --pkt-type multicast -j DROP\n"
             "-A INPUT -p tcp -m pkttype ! --pkt-type unicast -j DROP\n"
             "-A INPUT -p icmp -m pkttype --pkt-type unicast -j DROP\n"),
      "",
      {
          in("nfk0", udp(kLan, 68, "10.0.0.255", 67).broadcast(), DROP).rule("--pkt-type broadcast"),
          in("nfk0", udp(kLan, 5353, "224.0.0.251", 5353).multicast(), DROP).rule("--pkt-type multicast"),
          in("nfk0", udp(kLan, 1, kHost, 2), ACCEPT).policy(),
          in("nfk0", tcp(kLan, 1, kHost, 2), ACCEPT).policy(),
          in("nfk0", icmp(kLan, kHost, 8), DROP).rule("-p icmp -m pkttype"),
          in("nfk0", icmp(kLan, "224.0.0.1", 8).multicast(), ACCEPT).policy(),
      },
  });

  v.push_back({
      "length: ranges, open ranges, negation (IPv4 total length, IPv6 payload + 40)",
      {"-m length --length"},
      "iptables",
      filter("ACCEPT", "DROP", "ACCEPT",
             "-A INPUT -p udp -m length --length 0:100 -j ACCEPT\n"
             "-A INPUT -p udp -m length --length 1000: -j DROP\n"
             "-A INPUT -p tcp -m length ! --length 40 -j DROP\n"),
      "",
      {
          in("nfk0", udp(kLan, 1, kHost, 2).payload(72), ACCEPT).rule("--length 0:100"),  // 20 + 8 + 72 = 100
          in("nfk0", udp(kLan, 1, kHost, 2).payload(73), ACCEPT).policy(),
          in("nfk0", udp(kLan, 1, kHost, 2).payload(972), DROP).rule("--length 1000:"),
          in("nfk0", udp(kLan, 1, kHost, 2).payload(971), ACCEPT).policy(),
          in("nfk0", tcp(kLan, 1, kHost, 2), ACCEPT).policy(),
          in("nfk0", tcp(kLan, 1, kHost, 2).payload(1), DROP).rule("! --length 40"),
      },
  });

  v.push_back({
      "length (IPv6)",
      {"-m length --length"},
      "ip6tables",
      filter("ACCEPT", "DROP", "ACCEPT", "-A INPUT -p udp -m length --length 49:60 -j DROP\n"),
      "",
      {
          in("nfk0", udp(kLan6, 1, kHost6, 2), ACCEPT).policy(),  // 40 + 8
          in("nfk0", udp(kLan6, 1, kHost6, 2).payload(1), DROP),
          in("nfk0", udp(kLan6, 1, kHost6, 2).payload(12), DROP),
          in("nfk0", udp(kLan6, 1, kHost6, 2).payload(13), ACCEPT),
      },
  });

  v.push_back({
      "ttl: equal, greater, less, negated",
      {"-m ttl --ttl-eq", "-m ttl --ttl-gt", "-m ttl --ttl-lt"},
      "iptables",
      filter("ACCEPT", "DROP", "ACCEPT",
             "-A INPUT -m ttl --ttl-eq 1 -j DROP\n"
             "-A INPUT -m ttl --ttl-gt 128 -j DROP\n"
             "-A INPUT -p udp -m ttl --ttl-lt 10 -j DROP\n"
             "-A INPUT -p tcp -m ttl ! --ttl-eq 64 -j DROP\n"),
      "",
      {
          in("nfk0", udp(kLan, 1, kHost, 2).ttl(1), DROP).rule("--ttl-eq 1"),
          in("nfk0", udp(kLan, 1, kHost, 2).ttl(129), DROP).rule("--ttl-gt 128"),
          in("nfk0", udp(kLan, 1, kHost, 2).ttl(128), ACCEPT).policy(),
          in("nfk0", udp(kLan, 1, kHost, 2).ttl(9), DROP).rule("--ttl-lt 10"),
          in("nfk0", udp(kLan, 1, kHost, 2).ttl(10), ACCEPT).policy(),
          in("nfk0", tcp(kLan, 1, kHost, 2).ttl(64), ACCEPT).policy(),
          in("nfk0", tcp(kLan, 1, kHost, 2).ttl(63), DROP).rule("! --ttl-eq 64"),
      },
  });

  v.push_back({
      "hl (IPv6 hop limit): equal, greater, less, negated",
      {"-m hl --hl-eq", "-m hl --hl-gt", "-m hl --hl-lt"},
      "ip6tables",
      filter("ACCEPT", "DROP", "ACCEPT",
             "-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 135 -m hl ! --hl-eq 255 -j DROP\n"
             "-A INPUT -m hl --hl-gt 200 -p udp -j DROP\n"
             "-A INPUT -m hl --hl-lt 2 -j DROP\n"),
      "",
      {
          in("nfk0", icmp(kLan6, "ff02::1:ff00:1", 135).multicast().ttl(255), ACCEPT).policy(),
          in("nfk0", icmp(kLan6, "ff02::1:ff00:1", 135).multicast().ttl(64), DROP).rule("! --hl-eq 255"),
          in("nfk0", udp(kLan6, 1, kHost6, 2).ttl(201), DROP).rule("--hl-gt 200"),
          in("nfk0", udp(kLan6, 1, kHost6, 2).ttl(200), ACCEPT).policy(),
          in("nfk0", tcp(kLan6, 1, kHost6, 2).ttl(1), DROP).rule("--hl-lt 2"),
          in("nfk0", tcp(kLan6, 1, kHost6, 2).ttl(2), ACCEPT).policy(),
      },
  });
}

// ---- chains, targets, tables -----------------------------------------------------
void chain_cases(std::vector<Case>& v) {
  v.push_back({
      "mangle: -j TCPMSS lowers a SYN's MSS option or adds one (the frame's checksums checked)",
      {"-j TCPMSS"},
      "iptables",
      kMangleHead +
          "-A FORWARD -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1300\n"
          "COMMIT\n" +
          filter("ACCEPT", "ACCEPT", "ACCEPT", ""),
      "",
      {
          fwd("nfk0", "nfk1", tcp(kLan, 40000, "198.51.100.5", 80, SYN).mss(1460), ACCEPT).policy(),
          fwd("nfk0", "nfk1", tcp(kLan, 40001, "198.51.100.5", 80, SYN), ACCEPT).policy(),
          fwd("nfk0", "nfk1", tcp(kLan, 40002, "198.51.100.5", 80, SYN).payload(8), ACCEPT).policy(),
      },
  });
  v.push_back({
      "mangle: -j DSCP and -j TOS rewrite the TOS byte (ECN kept by DSCP); later rules see the new value",
      {"-j DSCP", "-j TOS"},
      "iptables",
      kMangleHead +
          "-A PREROUTING -p udp -m udp --dport 53 -j DSCP --set-dscp-class EF\n"
          "-A PREROUTING -p udp -m udp --dport 54 -j TOS --set-tos 0x10/0x3f\n"
          "-A PREROUTING -p udp -m udp --dport 55 -j TOS --and-tos 0x0f\n"
          "-A FORWARD -p udp -m udp --dport 56 -j TOS --xor-tos 0x04\n"
          "-A POSTROUTING -p udp -m udp --dport 57 -j DSCP --set-dscp 10\n"
          "COMMIT\n" +
          filter("ACCEPT", "ACCEPT", "ACCEPT",
                 "-A INPUT -p udp -m dscp --dscp-class EF -j DROP\n"
                 "-A INPUT -p udp -m tos --tos 0x90 -j DROP\n"
                 "-A FORWARD -p udp -m tos --tos 0x07 -j DROP\n"),
      "",
      {
          in("nfk0", udp(kLan, 1000, kHost, 53).tos(0x01), DROP).rule("--dscp-class EF -j DROP"),
          in("nfk0", udp(kLan, 1000, kHost, 53).tos(0x03), DROP).rule("--dscp-class EF -j DROP"),
          in("nfk0", udp(kLan, 1000, kHost, 54).tos(0xb9), DROP).rule("--tos 0x90 -j DROP"),
          in("nfk0", udp(kLan, 1000, kHost, 54).tos(0x3f), ACCEPT).policy().leaves_tos(0x10),
          in("nfk0", udp(kLan, 1000, kHost, 55).tos(0xff), ACCEPT).policy().leaves_tos(0x0f),
          // FORWARD sees the byte its own mangle rule gave: 0x03 ^ 0x04 = 0x07.
          fwd("nfk0", "nfk1", udp(kLan, 1000, "198.51.100.5", 56).tos(0x03), DROP).rule("--tos 0x07 -j DROP"),
          fwd("nfk0", "nfk1", udp(kLan, 1000, "198.51.100.5", 56).tos(0x13), ACCEPT).policy().leaves_tos(0x17),
          out("nfk0", udp(kHost, 1000, kLan, 57).tos(0xb9), ACCEPT).policy().leaves_tos(0x29),
      },
  });
  v.push_back({
      "user chains: -j and -g, RETURN, nesting, falling off the end, policies",
      {"-j <chain>", "-g <chain>", "-j RETURN", "-j ACCEPT", "-j DROP"},
      "iptables",
      "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n"
      ":svc - [0:0]\n:web - [0:0]\n:admin - [0:0]\n"
      "-A INPUT -p tcp -j svc\n"
      "-A INPUT -p tcp -m tcp --dport 8080 -j ACCEPT\n"
      "-A INPUT -s 10.1.0.0/16 -p tcp -j ACCEPT\n"
      "-A INPUT -p udp -g admin\n"
      "-A INPUT -p udp -m udp --dport 53 -j ACCEPT\n"
      "-A svc -s 192.0.2.0/24 -j RETURN\n"
      "-A svc -p tcp -m tcp --dport 80:443 -j web\n"
      "-A svc -p tcp -m tcp --dport 22 -g admin\n"
      "-A svc -p tcp -m tcp --dport 8081 -j DROP\n"
      "-A web -p tcp -m tcp --dport 81:442 -j RETURN\n"
      "-A web -j ACCEPT\n"
      "-A admin -s 10.0.0.128/25 -j RETURN\n"
      "-A admin -s 10.0.0.0/24 -j ACCEPT\n"
      "COMMIT\n",
      "",
      {
          in("nfk0", tcp(kLan, 1, kHost, 80), ACCEPT).rule("-A web -j ACCEPT"),
          in("nfk0", tcp(kLan, 1, kHost, 443), ACCEPT).rule("-A web -j ACCEPT"),
          // web RETURNs to svc, svc ends and returns to INPUT, nothing else matches.
          in("nfk0", tcp(kLan, 1, kHost, 100), DROP).policy(),
          in("nfk0", tcp("192.0.2.1", 1, kHost, 80), DROP).policy(),  // svc RETURNs before web
          in("nfk0", tcp("192.0.2.1", 1, kHost, 8080), ACCEPT).rule("--dport 8080 -j ACCEPT"),
          in("nfk0", tcp(kLan, 1, kHost, 8080), ACCEPT).rule("--dport 8080 -j ACCEPT"),
          in("nfk0", tcp(kLan, 1, kHost, 8081), DROP).rule("--dport 8081 -j DROP"),
          in("nfk0", tcp(kLan, 1, kHost, 22), ACCEPT).rule("-A admin -s 10.0.0.0/24"),
          // svc goes to admin; when admin ends (or RETURNs) evaluation resumes in
          // svc's caller, INPUT, after the jump to svc.
          in("nfk0", tcp("10.1.0.2", 1, "10.1.0.1", 22), ACCEPT).rule("-s 10.1.0.0/16"),
          in("nfk0", tcp("10.0.0.200", 1, kHost, 22), DROP).policy(),
          in("nfk0", tcp("10.0.0.200", 1, kHost, 8080), ACCEPT).rule("--dport 8080 -j ACCEPT"),
          in("nfk0", udp(kLan, 1, kHost, 53), ACCEPT).rule("-A admin -s 10.0.0.0/24"),
          // INPUT itself goes to admin: when admin ends, INPUT's policy decides and
          // the INPUT rule after the goto never runs.
          in("nfk0", udp("10.1.0.2", 1, "10.1.0.1", 53), DROP).policy(),
          in("nfk0", udp("10.0.0.200", 1, kHost, 53), DROP).policy(),
      },
  });

  v.push_back({
      "tables in priority order (raw, mangle, filter, security) and rule counters (-c)",
      {"*raw", "*mangle", "*filter", "*security", "-c", "-j MARK", "-m mark --mark"},
      "iptables",
      "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
      "[12:720] -A PREROUTING -p tcp -m tcp --dport 25 -j DROP\n"
      "COMMIT\n" +
          kMangleHead +
          "[0:0] -A INPUT -p tcp -j MARK --set-xmark 0x1/0x1\n"
          "COMMIT\n"
          "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n"
          "-A INPUT -p tcp -m mark ! --mark 0x1/0x1 -j DROP\n"
          "-A INPUT -p tcp -m tcp --dport 23 -j ACCEPT\n"
          "COMMIT\n"
          "*security\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
          "-A INPUT -p tcp -c 3 180 -m tcp --dport 23 -j DROP\n"
          "COMMIT\n",
      "",
      {
          in("nfk0", tcp(kLan, 1, kHost, 25), DROP).rule("--dport 25 -j DROP"),
          in("nfk0", tcp(kLan, 1, kHost, 22), ACCEPT).gives_mark(0x1),
          // filter accepts port 23, security (after filter) still drops it.
          in("nfk0", tcp(kLan, 1, kHost, 23), DROP).rule("--dport 23 -j DROP"),
          in("nfk0", udp(kLan, 1, kHost, 23), ACCEPT).gives_mark(0x0),
      },
  });
}

// ---- paths ---------------------------------------------------------------------
void path_cases(std::vector<Case>& v) {
  v.push_back({
      "forward path: stateful FORWARD, mangle FORWARD/POSTROUTING marks, return traffic",
      {"-i", "-o", "-m conntrack --ctstate", "-j MARK", "-m mark --mark", "*mangle"},
      "iptables",
      kMangleHead +
          "-A FORWARD -o nfw0 -j MARK --set-xmark 0x7/0xff\n"
          "-A POSTROUTING -o nfk1 -j MARK --set-xmark 0x100/0x100\n"
          "-A POSTROUTING -m mark --mark 0x7/0xff -p udp -j DROP\n"
          "COMMIT\n" +
          filter("DROP", "DROP", "ACCEPT",
                 "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"
                 "-A FORWARD -i nfk0 -m conntrack --ctstate NEW -j ACCEPT\n"),
      "",
      {
          fwd("nfk0", "nfk1", tcp(kLan, 40000, "198.51.100.5", 80, SYN).seq(1), ACCEPT)
              .gives_mark(0x100)
              .rule("--ctstate NEW"),
          fwd("nfk1", "nfk0", tcp("198.51.100.5", 80, kLan, 40000, SYN | ACK).seq(9, 2), ACCEPT)
              .gives_mark(0)
              .rule("RELATED,ESTABLISHED"),
          fwd("nfk0", "nfk1", tcp(kLan, 40000, "198.51.100.5", 80, ACK).seq(2, 10), ACCEPT).gives_mark(0x100),
          fwd("nfk1", "nfk0", tcp("198.51.100.5", 80, kLan, 40001, SYN), DROP).policy(),
          fwd("nfk1", "nfk0", tcp("198.51.100.5", 80, kLan, 40002, SYN | ACK), DROP).policy(),
          fwd("nfk0", "nfw0", tcp(kLan, 40000, "203.0.113.5", 443, SYN).seq(1), ACCEPT).gives_mark(0x7),
          fwd("nfk0", "nfw0", udp(kLan, 40000, "203.0.113.5", 53), DROP).rule("--mark 0x7/0xff -p udp"),
          // The dropped datagram left no connection: its reply is NEW from nfw0, dropped.
          fwd("nfw0", "nfk0", udp("203.0.113.5", 53, kLan, 40000), DROP).policy(),
          fwd("nfk0", "nfk1", icmp(kLan, "198.51.100.5", 8, 0, 3), ACCEPT).gives_mark(0x100),
          fwd("nfk1", "nfk0", icmp("198.51.100.5", kLan, 0, 0, 3), ACCEPT).rule("RELATED,ESTABLISHED"),
          fwd("nfk1", "nfk0", icmp_error("10.1.0.2", kLan, 11, 0, tcp(kLan, 40000, "198.51.100.5", 80, ACK).seq(2, 10)),
              ACCEPT)
              .rule("RELATED,ESTABLISHED"),
      },
  });

  v.push_back({
      "forward path (IPv6): stateful FORWARD by interface",
      {"-i", "-o", "-m conntrack --ctstate"},
      "ip6tables",
      filter("DROP", "DROP", "ACCEPT",
             "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"
             "-A FORWARD -i nfk0 -o nfk1 -m conntrack --ctstate NEW -j ACCEPT\n"),
      "",
      {
          fwd("nfk0", "nfk1", udp(kLan6, 5000, "2001:db8:51::9", 53), ACCEPT).rule("--ctstate NEW"),
          fwd("nfk1", "nfk0", udp("2001:db8:51::9", 53, kLan6, 5000), ACCEPT).rule("RELATED,ESTABLISHED"),
          fwd("nfk1", "nfk0", udp("2001:db8:51::9", 53, kLan6, 5001), DROP).policy(),
          fwd("nfk0", "nfw0", udp(kLan6, 5000, "2001:db8:203::9", 53), DROP).policy(),
          fwd("nfk0", "nfk1", icmp(kLan6, "2001:db8:51::9", 128, 0, 9), ACCEPT).rule("--ctstate NEW"),
          fwd("nfk1", "nfk0", icmp("2001:db8:51::9", kLan6, 129, 0, 9), ACCEPT).rule("RELATED,ESTABLISHED"),
      },
  });

  v.push_back({
      "output path: OUTPUT by destination and state, POSTROUTING marks",
      {"-o", "-d", "-p", "-m conntrack --ctstate", "-j MARK", "*mangle"},
      "iptables",
      kMangleHead +
          "-A OUTPUT -p tcp -m tcp --dport 443 -j MARK --set-xmark 0x2/0x2\n"
          "-A POSTROUTING -o nfk1 -j MARK --set-xmark 0x40/0x40\n"
          "COMMIT\n" +
          filter("DROP", "DROP", "DROP",
                 "-A INPUT -m conntrack --ctstate ESTABLISHED -j ACCEPT\n"
                 "-A OUTPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n"
                 "-A OUTPUT -d 198.51.100.0/24 -o nfk1 -p tcp -j ACCEPT\n"
                 "-A OUTPUT -p udp -m udp --dport 53 -j ACCEPT\n"),
      "",
      {
          out("nfk1", tcp("10.1.0.1", 40000, "198.51.100.5", 443, SYN).seq(1), ACCEPT).gives_mark(0x42),
          in("nfk1", tcp("198.51.100.5", 443, "10.1.0.1", 40000, SYN | ACK).seq(7, 2), ACCEPT)
              .rule("-A INPUT -m conntrack"),
          out("nfk1", tcp("10.1.0.1", 40000, "198.51.100.5", 443, ACK).seq(2, 8), ACCEPT).gives_mark(0x42),
          out("nfw0", tcp("10.2.0.1", 40000, "203.0.113.5", 443, SYN), DROP).policy(),
          out("nfk0", udp(kHost, 5000, kLan, 53), ACCEPT).gives_mark(0),
          in("nfk0", udp(kLan, 53, kHost, 5000), ACCEPT),
          in("nfk0", udp(kLan, 53, kHost, 5001), DROP).policy(),
          out("nfk0", icmp(kHost, kLan, 8), DROP).policy(),
      },
  });
}

// ---- NAT --------------------------------------------------------------------

// The nat table (its chains' policies are ACCEPT), then the filter table.
std::string nat(const std::string& rules, const std::string& filter_rules = "") {
  return "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n" +
         rules + "COMMIT\n" + filter("ACCEPT", "ACCEPT", "ACCEPT", filter_rules);
}

void nat_cases(std::vector<Case>& v) {
  v.push_back({
      "DNAT: a port forward to a host behind the router, its replies translated back, FORWARD sees the new "
      "destination",
      {"*nat", "-j DNAT"},
      "iptables",
      "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
      "-A PREROUTING -d 10.0.0.1/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 198.51.100.7:80\n"
      "-A PREROUTING -d 10.0.0.1/32 -p udp -m udp --dport 53 -j DNAT --to-destination 198.51.100.8\n"
      "COMMIT\n" +
          filter("ACCEPT", "DROP", "ACCEPT",
                 "-A FORWARD -d 198.51.100.7/32 -p tcp -m tcp --dport 80 -j ACCEPT\n"
                 "-A FORWARD -d 198.51.100.8/32 -p udp -m udp --dport 53 -j ACCEPT\n"
                 "-A FORWARD -m state --state ESTABLISHED -j ACCEPT\n"),
      "",
      {
          fwd("nfk0", "nfk1", tcp(kLan, 40000, kHost, 8080), ACCEPT)
              .rule("--dport 80 -j ACCEPT")
              .nat("10.0.0.2:40000 > 198.51.100.7:80"),
          fwd("nfk1", "nfk0", tcp("198.51.100.7", 80, kLan, 40000, SYN | ACK), ACCEPT)
              .rule("ESTABLISHED")
              .nat("10.0.0.1:8080 > 10.0.0.2:40000"),
          fwd("nfk0", "nfk1", tcp(kLan, 40000, kHost, 8080, ACK), ACCEPT).nat("10.0.0.2:40000 > 198.51.100.7:80"),
          fwd("nfk0", "nfk1", udp(kLan, 5353, kHost, 53), ACCEPT).nat("10.0.0.2:5353 > 198.51.100.8:53"),
          fwd("nfk1", "nfk0", udp("198.51.100.8", 53, kLan, 5353), ACCEPT).nat("10.0.0.1:53 > 10.0.0.2:5353"),
          // Not translated: the host's own port 8081 (INPUT), a forwarded packet to elsewhere (FORWARD drops).
          in("nfk0", tcp(kLan, 40001, kHost, 8081), ACCEPT),
          fwd("nfk0", "nfk1", tcp(kLan, 40002, "198.51.100.9", 80), DROP).policy(),
      },
  });
  v.push_back({
      "DNAT by statistic nth: new connections take the backends in turn, replies do not move the counters",
      {"*nat", "-j DNAT", "-m statistic --mode nth", "-m statistic --every", "-m statistic --packet"},
      "iptables",
      nat("-A PREROUTING -d 10.0.0.1/32 -p tcp -m tcp --dport 80 -m statistic --mode nth --every 3 --packet 0 -j DNAT "
          "--to-destination 198.51.100.7\n"
          "-A PREROUTING -d 10.0.0.1/32 -p tcp -m tcp --dport 80 -m statistic --mode nth --every 2 --packet 0 -j DNAT "
          "--to-destination 198.51.100.8\n"
          "-A PREROUTING -d 10.0.0.1/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 198.51.100.9\n"),
      "",
      {
          // The nat chain sees each connection's first packet only: the
          // counters count connections (1st: .7; 2nd: on to the every-2
          // rule, its 1st: .8; 3rd: .9; 4th: .7 ...).
          fwd("nfk0", "nfk1", tcp(kLan, 40000, kHost, 80), ACCEPT).nat("10.0.0.2:40000 > 198.51.100.7:80"),
          fwd("nfk1", "nfk0", tcp("198.51.100.7", 80, kLan, 40000, SYN | ACK), ACCEPT)
              .nat("10.0.0.1:80 > 10.0.0.2:40000"),
          fwd("nfk0", "nfk1", tcp(kLan, 40001, kHost, 80), ACCEPT).nat("10.0.0.2:40001 > 198.51.100.8:80"),
          fwd("nfk0", "nfk1", tcp(kLan, 40002, kHost, 80), ACCEPT).nat("10.0.0.2:40002 > 198.51.100.9:80"),
          fwd("nfk1", "nfk0", tcp("198.51.100.8", 80, kLan, 40001, SYN | ACK), ACCEPT)
              .nat("10.0.0.1:80 > 10.0.0.2:40001"),
          fwd("nfk0", "nfk1", tcp(kLan, 40003, kHost, 80), ACCEPT).nat("10.0.0.2:40003 > 198.51.100.7:80"),
          fwd("nfk0", "nfk1", tcp(kLan, 40004, kHost, 80), ACCEPT).nat("10.0.0.2:40004 > 198.51.100.8:80"),
          fwd("nfk0", "nfk1", tcp(kLan, 40005, kHost, 80), ACCEPT).nat("10.0.0.2:40005 > 198.51.100.9:80"),
      },
  });
  v.push_back({
      "MASQUERADE out of the uplink: TCP, UDP and ICMP echo take the uplink's address, replies go back to the "
      "client",
      {"*nat", "-j MASQUERADE"},
      "iptables",
      nat("-A POSTROUTING -o nfk1 -j MASQUERADE\n"),
      "",
      {
          fwd("nfk0", "nfk1", tcp(kLan, 41000, "198.51.100.9", 443), ACCEPT).nat("10.1.0.1:41000 > 198.51.100.9:443"),
          fwd("nfk1", "nfk0", tcp("198.51.100.9", 443, "10.1.0.1", 41000, SYN | ACK), ACCEPT)
              .nat("198.51.100.9:443 > 10.0.0.2:41000"),
          fwd("nfk0", "nfk1", udp(kLan, 5000, "198.51.100.9", 53), ACCEPT).nat("10.1.0.1:5000 > 198.51.100.9:53"),
          fwd("nfk1", "nfk0", udp("198.51.100.9", 53, "10.1.0.1", 5000), ACCEPT).nat("198.51.100.9:53 > 10.0.0.2:5000"),
          fwd("nfk0", "nfk1", icmp(kLan, "198.51.100.9", 8, 0, 0x77), ACCEPT).nat("10.1.0.1:119 > 198.51.100.9:119"),
          fwd("nfk1", "nfk0", icmp("198.51.100.9", "10.1.0.1", 0, 0, 0x77), ACCEPT)
              .nat("198.51.100.9:119 > 10.0.0.2:119"),
          // Out of the other uplink: no translation.
          fwd("nfk0", "nfw0", tcp(kLan, 41001, "203.0.113.5", 80), ACCEPT),
      },
  });
  v.push_back({
      "SNAT to a port range: clients share it, and once every port is taken the next connection drops",
      {"*nat", "-j SNAT"},
      "iptables",
      nat("-A POSTROUTING -o nfk1 -p tcp -j SNAT --to-source 10.1.0.1:5000-5001\n"),
      "",
      {
          fwd("nfk0", "nfk1", tcp(kLan, 1000, "198.51.100.7", 80), ACCEPT).nat("10.1.0.1:5000-5001 > 198.51.100.7:80"),
          fwd("nfk0", "nfk1", tcp("10.0.0.3", 1000, "198.51.100.7", 80), ACCEPT)
              .nat("10.1.0.1:5000-5001 > 198.51.100.7:80"),
          fwd("nfk0", "nfk1", tcp("10.0.0.4", 1000, "198.51.100.7", 80), DROP),
          // Another destination: the ports are free again for it.
          fwd("nfk0", "nfk1", tcp("10.0.0.4", 1000, "198.51.100.8", 80), ACCEPT)
              .nat("10.1.0.1:5000-5001 > 198.51.100.8:80"),
      },
  });
  v.push_back({
      "REDIRECT to a local port at PREROUTING (a transparent proxy)",
      {"*nat", "-j REDIRECT"},
      "iptables",
      nat("-A PREROUTING -i nfk0 -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 3128\n"),
      "",
      {
          in("nfk0", tcp(kLan, 42000, "198.51.100.7", 80), ACCEPT).nat("10.0.0.2:42000 > 10.0.0.1:3128"),
          in("nfk1", tcp("10.1.0.2", 42000, "10.1.0.1", 80), ACCEPT),
      },
  });
  v.push_back({
      "nat OUTPUT: a local connection DNATed to a host behind the other uplink is routed again (POSTROUTING there: "
      "MASQUERADE), filter OUTPUT still sees the first route's device; REDIRECT at OUTPUT goes to this host over lo",
      {"*nat", "-j DNAT", "-j REDIRECT", "-j MASQUERADE"},
      "iptables",
      "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
      "-A OUTPUT -d 198.51.100.20/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 203.0.113.7:8080\n"
      "-A OUTPUT -d 198.51.100.50/32 -p tcp -m tcp --dport 25 -j REDIRECT --to-ports 2525\n"
      "-A POSTROUTING -o nfw0 -j MASQUERADE\n"
      "COMMIT\n" +
          filter("ACCEPT", "ACCEPT", "DROP", "-A OUTPUT -o nfk1 -j ACCEPT\n-A OUTPUT -o lo -j ACCEPT\n"),
      "",
      {
          out("nfk1", tcp("10.1.0.1", 41000, "198.51.100.20", 80), ACCEPT)
              .rule("-o nfk1 -j ACCEPT")
              .nat("10.2.0.1:41000 > 203.0.113.7:8080"),
          in("nfw0", tcp("203.0.113.7", 8080, "10.2.0.1", 41000, SYN | ACK), ACCEPT)
              .nat("198.51.100.20:80 > 10.1.0.1:41000"),
          out("nfk1", tcp("10.1.0.1", 41000, "198.51.100.20", 80, ACK), ACCEPT)
              .nat("10.2.0.1:41000 > 203.0.113.7:8080"),
          // Not to the DNATed port: the first route stands.
          out("nfk1", tcp("10.1.0.1", 41001, "198.51.100.20", 81), ACCEPT),
          out("nfk1", tcp("10.1.0.1", 41002, "198.51.100.50", 25), ACCEPT).nat("10.1.0.1:41002 > 127.0.0.1:2525"),
          // The first route's device is what filter OUTPUT tests: out of nfw0, the policy drops.
          out("nfw0", tcp("10.2.0.1", 41003, "203.0.113.9", 80), DROP).policy(),
      },
  });
  v.push_back({
      "nat OUTPUT: the host's own connection to its own address DNATed to another host (Docker's published port "
      "reached from the host): the reply gets the local address back as its source and is handed to lo, which "
      "the kernel's input routing would drop as a martian source",
      {"*nat", "-j DNAT", "-m addrtype --dst-type"},
      "iptables",
      "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
      "-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -p tcp -m tcp --dport 8080 -j DNAT "
      "--to-destination 203.0.113.7:80\n"
      "COMMIT\n" +
          filter("DROP", "ACCEPT", "ACCEPT", "-A INPUT -i nfw0 -s 203.0.113.7 -p tcp --sport 80 -j ACCEPT\n"),
      "",
      {
          out("nfk1", tcp(kHost, 41100, kHost, 8080), ACCEPT).nat("10.0.0.1:41100 > 203.0.113.7:80"),
          // INPUT sees the reply as it came in, before its source is restored.
          in("nfw0", tcp("203.0.113.7", 80, kHost, 41100, SYN | ACK), ACCEPT)
              .rule("-s 203.0.113.7 -p tcp --sport 80 -j ACCEPT")
              .nat("10.0.0.1:8080 > 10.0.0.1:41100")
              .handed_to_lo(),
          out("nfk1", tcp(kHost, 41100, kHost, 8080, ACK), ACCEPT).nat("10.0.0.1:41100 > 203.0.113.7:80"),
          // A packet from another host's address is not handed to lo.
          in("nfw0", tcp("203.0.113.7", 80, kHost, 22, SYN | ACK), ACCEPT).rule("--sport 80 -j ACCEPT"),
      },
  });
  v.push_back({
      "conntrack tuple matches in a family with NAT read the connection's tuples, not the translated packet "
      "(Docker's DOCKER-USER --ctorigdstport)",
      {"*nat", "-j DNAT", "-m conntrack --ctorigdstport", "-m conntrack --ctorigsrc", "-m conntrack --ctreplsrc",
       "-m conntrack --ctorigdst", "-m conntrack --ctdir"},
      "iptables",
      "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
      "-A PREROUTING -d 10.0.0.1/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 198.51.100.7:80\n"
      "COMMIT\n" +
          filter("ACCEPT", "DROP", "ACCEPT",
                 "-A FORWARD -m conntrack --ctorigdstport 8080 --ctdir ORIGINAL -m conntrack ! --ctorigsrc "
                 "10.0.0.0/24 -j DROP\n"
                 "-A FORWARD -m conntrack --ctreplsrc 198.51.100.7 --ctdir REPLY -j ACCEPT\n"
                 "-A FORWARD -m conntrack --ctorigdst 10.0.0.1 -j ACCEPT\n"),
      "",
      {
          fwd("nfk0", "nfk1", tcp(kLan, 40000, kHost, 8080), ACCEPT)
              .rule("--ctorigdst 10.0.0.1 -j ACCEPT")
              .nat("10.0.0.2:40000 > 198.51.100.7:80"),
          fwd("nfk1", "nfk0", tcp("198.51.100.7", 80, kLan, 40000, SYN | ACK), ACCEPT)
              .rule("--ctreplsrc 198.51.100.7 --ctdir REPLY -j ACCEPT")
              .nat("10.0.0.1:8080 > 10.0.0.2:40000"),
          fwd("nfk0", "nfk1", tcp(kLan, 40000, kHost, 8080, ACK), ACCEPT)
              .rule("--ctorigdst 10.0.0.1 -j ACCEPT")
              .nat("10.0.0.2:40000 > 198.51.100.7:80"),
          fwd("nfk0", "nfk1", tcp("192.0.2.5", 40001, kHost, 8080), DROP).rule("! --ctorigsrc 10.0.0.0/24 -j DROP"),
          // Not DNATed: its tuple is the packet's own.
          fwd("nfk0", "nfk1", tcp(kLan, 40002, "198.51.100.7", 80), DROP).policy(),
      },
  });
  v.push_back({
      "DNAT and MASQUERADE on one connection, and two connections whose translations would clash",
      {"*nat", "-j DNAT", "-j MASQUERADE"},
      "iptables",
      nat("-A PREROUTING -d 10.0.0.1/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 198.51.100.7:80\n"
          "-A PREROUTING -d 10.0.0.1/32 -p tcp -m tcp --dport 8081 -j DNAT --to-destination 198.51.100.7:80\n"
          "-A POSTROUTING -o nfk1 -j MASQUERADE\n"),
      "",
      {
          fwd("nfk0", "nfk1", tcp(kLan, 43000, kHost, 8080), ACCEPT).nat("10.1.0.1:43000 > 198.51.100.7:80"),
          fwd("nfk1", "nfk0", tcp("198.51.100.7", 80, "10.1.0.1", 43000, SYN | ACK), ACCEPT)
              .nat("10.0.0.1:8080 > 10.0.0.2:43000"),
          fwd("nfk0", "nfk1", tcp(kLan, 43000, kHost, 8080, ACK), ACCEPT).nat("10.1.0.1:43000 > 198.51.100.7:80"),
          // The same client port to the other forward: the same backend tuple is taken, so the source port moves.
          fwd("nfk0", "nfk1", tcp(kLan, 43000, kHost, 8081), ACCEPT).nat("10.1.0.1:1024-65535 > 198.51.100.7:80"),
      },
  });
  v.push_back({
      "--ctstate SNAT/DNAT: the connection's NAT status, as bound so far (FORWARD runs before POSTROUTING's SNAT)",
      {"*nat", "-j DNAT", "-j MASQUERADE", "-m conntrack --ctstate SNAT,DNAT"},
      "iptables",
      "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
      "-A PREROUTING -d 10.0.0.1/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 198.51.100.7:80\n"
      "-A POSTROUTING -o nfk1 -j MASQUERADE\n"
      "COMMIT\n" +
          filter("ACCEPT", "DROP", "ACCEPT",
                 "-A FORWARD -m conntrack --ctstate SNAT -j ACCEPT\n"
                 "-A FORWARD -m conntrack --ctstate DNAT -j ACCEPT\n"),
      "",
      {
          fwd("nfk0", "nfk1", tcp(kLan, 45000, kHost, 8080), ACCEPT)
              .rule("--ctstate DNAT")
              .nat("10.1.0.1:45000 > 198.51.100.7:80"),
          fwd("nfk1", "nfk0", tcp("198.51.100.7", 80, "10.1.0.1", 45000, SYN | ACK), ACCEPT)
              .rule("--ctstate SNAT")
              .nat("10.0.0.1:8080 > 10.0.0.2:45000"),
          fwd("nfk0", "nfk1", tcp("10.0.0.3", 45001, "198.51.100.9", 80), DROP).policy(),
      },
  });
  v.push_back({
      "DNAT and MASQUERADE (IPv6)",
      {"*nat", "-j DNAT", "-j MASQUERADE"},
      "ip6tables",
      nat("-A PREROUTING -d fd00::1/128 -p tcp -m tcp --dport 8080 -j DNAT --to-destination [2001:db8:51::7]:80\n"
          "-A POSTROUTING -o nfk1 -j MASQUERADE\n"),
      "",
      {
          fwd("nfk0", "nfk1", tcp(kLan6, 44000, kHost6, 8080), ACCEPT).nat("[fd01::1]:44000 > [2001:db8:51::7]:80"),
          fwd("nfk1", "nfk0", tcp("2001:db8:51::7", 80, "fd01::1", 44000, SYN | ACK), ACCEPT)
              .nat("[fd00::1]:8080 > [fd00::2]:44000"),
          fwd("nfk0", "nfk1", icmp(kLan6, "2001:db8:51::7", 128, 0, 0x99), ACCEPT)
              .nat("[fd01::1]:153 > [2001:db8:51::7]:153"),
          fwd("nfk1", "nfk0", icmp("2001:db8:51::7", "fd01::1", 129, 0, 0x99), ACCEPT)
              .nat("[2001:db8:51::7]:153 > [fd00::2]:153"),
          // The backend's error about the first SYN: translated back as its connection's reply (outer source
          // too: nf_nat_icmp_reply_translation makes the error look like the reply to the client's packet).
          fwd("nfk1", "nfk0",
              icmp_error("2001:db8:51::7", "fd01::1", 1, 4, tcp("fd01::1", 44000, "2001:db8:51::7", 80)), ACCEPT)
              .nat("[fd00::1]:0 > [fd00::2]:0")
              .quoting("[fd00::2]:44000 > [fd00::1]:8080"),
      },
  });
  v.push_back({
      "SNAT keeps a source already in its range, and a source's next connection takes the mapping its newest "
      "connection got (find_appropriate_src)",
      {"*nat", "-j SNAT"},
      "iptables",
      nat("-A POSTROUTING -o nfk1 -p tcp -j SNAT --to-source 10.1.0.1:5000-5001\n"
          "-A POSTROUTING -o nfw0 -p udp -j SNAT --to-source 10.0.0.2-10.0.0.9\n"),
      "",
      {
          fwd("nfk0", "nfk1", tcp("10.0.0.3", 5000, "198.51.100.7", 80), ACCEPT).nat("10.1.0.1:5000 > 198.51.100.7:80"),
          // The same port from another client: taken, so the search finds the range's other port.
          fwd("nfk0", "nfk1", tcp(kLan, 5000, "198.51.100.7", 80), ACCEPT).nat("10.1.0.1:5001 > 198.51.100.7:80"),
          // That client's next connection (elsewhere, where 5000 is free) keeps its mapping: 5001.
          fwd("nfk0", "nfk1", tcp(kLan, 5000, "198.51.100.8", 80), ACCEPT).nat("10.1.0.1:5001 > 198.51.100.8:80"),
          // A source inside the range is its own mapping (no hash over the range).
          fwd("nfk0", "nfw0", udp("10.0.0.3", 6000, "203.0.113.9", 53), ACCEPT).nat("10.0.0.3:6000 > 203.0.113.9:53"),
          fwd("nfk0", "nfw0", udp("10.0.0.7", 6000, "203.0.113.9", 53), ACCEPT).nat("10.0.0.7:6000 > 203.0.113.9:53"),
      },
  });
  v.push_back({
      "NETMAP: a prefix mapped onto another, host bits kept, destination at PREROUTING and source at POSTROUTING",
      {"*nat", "-j NETMAP"},
      "iptables",
      nat("-A PREROUTING -d 10.9.0.0/24 -j NETMAP --to 198.51.100.0/24\n"
          "-A POSTROUTING -s 10.0.0.0/24 -o nfk1 -j NETMAP --to 10.1.0.0/24\n"),
      "",
      {
          fwd("nfk0", "nfk1", tcp(kLan, 47000, "10.9.0.7", 80), ACCEPT).nat("10.1.0.2:47000 > 198.51.100.7:80"),
          fwd("nfk1", "nfk0", tcp("198.51.100.7", 80, "10.1.0.2", 47000, SYN | ACK), ACCEPT)
              .nat("10.9.0.7:80 > 10.0.0.2:47000"),
          fwd("nfk0", "nfk1", udp("10.0.0.3", 5000, "10.9.0.200", 53), ACCEPT).nat("10.1.0.3:5000 > 198.51.100.200:53"),
          // Outside both prefixes: unchanged.
          fwd("nfk0", "nfk1", udp("10.0.0.3", 5001, "198.51.100.9", 53), ACCEPT).nat("10.1.0.3:5001 > 198.51.100.9:53"),
          fwd("nfk0", "nfw0", udp("10.0.0.3", 5002, "203.0.113.9", 53), ACCEPT),
      },
  });
  v.push_back({
      "NETMAP (IPv6): a /64 onto another",
      {"*nat", "-j NETMAP"},
      "ip6tables",
      nat("-A PREROUTING -d fd09::/64 -j NETMAP --to 2001:db8:51::/64\n"
          "-A POSTROUTING -s fd00::/64 -o nfk1 -j NETMAP --to fd01::/64\n"),
      "",
      {
          fwd("nfk0", "nfk1", tcp(kLan6, 47000, "fd09::7", 80), ACCEPT).nat("[fd01::2]:47000 > [2001:db8:51::7]:80"),
          fwd("nfk1", "nfk0", tcp("2001:db8:51::7", 80, "fd01::2", 47000, SYN | ACK), ACCEPT)
              .nat("[fd09::7]:80 > [fd00::2]:47000"),
      },
  });
  v.push_back({
      "ICMP errors about NATed connections: the outer and the quoted header translated as the connection's "
      "packets, in both directions; a redirect about a NATed connection dropped",
      {"*nat", "-j DNAT", "-j MASQUERADE"},
      "iptables",
      nat("-A PREROUTING -d 10.0.0.1/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 198.51.100.7:80\n"
          "-A PREROUTING -d 10.0.0.1/32 -p udp -m udp --dport 53 -j DNAT --to-destination 198.51.100.8\n"
          "-A POSTROUTING -o nfk1 -j MASQUERADE\n"),
      "",
      {
          fwd("nfk0", "nfk1", udp(kLan, 5000, kHost, 53), ACCEPT).nat("10.1.0.1:5000 > 198.51.100.8:53"),
          // The backend's port unreachable: its quoted packet is the client's, as sent.
          fwd("nfk1", "nfk0", icmp_error("198.51.100.8", "10.1.0.1", 3, 3, udp("10.1.0.1", 5000, "198.51.100.8", 53)),
              ACCEPT)
              .nat("10.0.0.1:0 > 10.0.0.2:0")
              .quoting("10.0.0.2:5000 > 10.0.0.1:53"),
          // The client's port unreachable about a reply: the other direction.
          fwd("nfk0", "nfk1", icmp_error(kLan, kHost, 3, 3, udp(kHost, 53, kLan, 5000)), ACCEPT)
              .nat("10.1.0.1:0 > 198.51.100.8:0")
              .quoting("198.51.100.8:53 > 10.1.0.1:5000"),
          // A router on the way: time exceeded about a SYN (the quoted TCP header is whole: its checksum follows).
          fwd("nfk0", "nfk1", tcp(kLan, 46000, kHost, 8080), ACCEPT).nat("10.1.0.1:46000 > 198.51.100.7:80"),
          fwd("nfk1", "nfk0", icmp_error("198.51.100.1", "10.1.0.1", 11, 0, tcp("10.1.0.1", 46000, "198.51.100.7", 80)),
              ACCEPT)
              .nat("10.0.0.1:0 > 10.0.0.2:0")
              .quoting("10.0.0.2:46000 > 10.0.0.1:8080"),
          // A quoted echo request: its identifier is the connection's.
          fwd("nfk0", "nfk1", icmp(kLan, "198.51.100.9", 8, 0, 0x78), ACCEPT).nat("10.1.0.1:120 > 198.51.100.9:120"),
          fwd("nfk1", "nfk0",
              icmp_error("198.51.100.1", "10.1.0.1", 3, 1, icmp("10.1.0.1", "198.51.100.9", 8, 0, 0x78)), ACCEPT)
              .nat("198.51.100.1:0 > 10.0.0.2:0")
              .quoting("10.0.0.2:120 > 198.51.100.9:120"),
          // A redirect about a NATed connection would teach a path around the translation.
          fwd("nfk1", "nfk0", icmp_error("198.51.100.8", "10.1.0.1", 5, 1, udp("10.1.0.1", 5000, "198.51.100.8", 53)),
              DROP),
      },
  });
}

std::vector<Case> build_cases() {
  std::vector<Case> v;
  nat_cases(v);
  address_cases(v);
  transport_cases(v);
  conntrack_cases(v);
  match_cases(v);
  chain_cases(v);
  path_cases(v);
  return v;
}

}  // namespace

// Where nf2bpf is known to differ from netfilter: netfilter's verdicts, which
// the dataplane does not give yet. The test over these is expected to fail;
// when it passes, move the case into the table above.
std::vector<Case> known_divergences() {
  std::vector<Case> v;
  v.push_back({
      "RELATED ICMP errors: conntrack tuple matches read the related connection's tuple",
      {},
      "iptables",
      filter("DROP", "DROP", "ACCEPT",
             "-A INPUT -p icmp -m conntrack --ctstate RELATED --ctproto udp --ctorigsrcport 5353 "
             "--ctreplsrc 10.0.0.2 -j ACCEPT\n"),
      "",
      {
          out("nfk0", udp(kHost, 5353, kLan, 53), ACCEPT),
          // The error comes from a router, about our datagram to 10.0.0.2:53.
          in("nfk0", icmp_error("10.0.0.254", kHost, 3, 3, udp(kHost, 5353, kLan, 53)), ACCEPT).rule("RELATED"),
      },
  });
  return v;
}

namespace nf2bpf::ktest {
const std::vector<Case>& cases() {
  static const std::vector<Case> kCases = build_cases();
  return kCases;
}
}  // namespace nf2bpf::ktest

TEST_CASE("packet cases: BPF and the model give netfilter's verdicts", "[kernel]") {
  for (const auto& c : cases()) {
    DYNAMIC_SECTION(c.name) {
      auto rep = run_case(c);
      if (rep.xdp_drops)
        std::printf("%s: %zu of %zu packets dropped early by XDP\n", c.name.c_str(), rep.xdp_drops, rep.packets);
      for (const auto& f : rep.failures) FAIL_CHECK(f);
      CHECK(rep.packets == c.steps.size());
    }
  }
}

TEST_CASE("known divergences from netfilter still diverge", "[kernel][!shouldfail]") {
  for (const auto& c : known_divergences()) {
    DYNAMIC_SECTION(c.name) {
      auto rep = run_case(c);
      for (const auto& f : rep.failures) FAIL_CHECK(f);
    }
  }
}

TEST_CASE("every exact iptables capability has a packet case", "[meta]") {
  // The nft front-end is not in translate_source in the committed tree this
  // table was written against, so only the iptables rows are enforced.
  std::set<std::string> covered;
  for (const auto& c : cases()) {
    std::string errors;
    auto comp = compile_case(c, errors);
    INFO("case \"" << c.name << "\"");
    CHECK(errors == "");
    auto used = used_capabilities(translation(*comp));
    for (const auto& name : c.covers) {
      INFO("covers \"" << name << "\"");
      CHECK(caps::find("iptables", name) != nullptr);
      CHECK(used.count(name) == 1);  // the case's ruleset really uses it
      covered.insert(name);
    }
  }
  std::vector<std::string> uncovered;
  for (const auto& row : caps::table())
    if (row.frontend == "iptables" && row.fidelity == caps::Fidelity::Exact && !covered.count(std::string(row.name)))
      uncovered.emplace_back(row.name);
  std::string list;
  for (const auto& u : uncovered) list += "\n  " + u;
  INFO("exact iptables capabilities without a packet case:" << list);
  CHECK(uncovered.empty());
}
