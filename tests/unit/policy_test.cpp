// Policy compiler + userspace model: compile real iptables-save text and
// judge packets the way the BPF programs do. No root needed.
#include <catch2/catch.hpp>

#include "tests/helpers.h"
#include "translator/frontend/ipset/ipset_save.h"
#include "tests/support/packets.h"
#include "translator/policy/compile.h"
#include "verify/model.h"

using namespace nf2bpf;
using namespace nf2bpf::test;
using model::Path;

namespace {

struct Compiled {
  Translation tr;
  policy::Policy pol;
  std::string diags;
};

Compiled compile_text(const std::string& text, const std::vector<ir::Set>& ipsets = {}) {
  Compiled c;
  TranslateOptions opt;
  opt.allow_partial = true;
  c.tr = translate_source({"rules.v4", text}, opt, ipsets);
  diag::Diagnostics d;
  c.pol = policy::compile(c.tr, d);
  for (const auto& x : c.tr.diags.all())
    if (x.severity == diag::Severity::Error) c.diags += diag::render(x);
  for (const auto& x : d.all()) c.diags += diag::render(x);
  return c;
}

// Judges a sequence of packets; returns "ACCEPT@line" / "DROP@policy" ...
struct Judge {
  Compiled c;
  model::Model m;
  uint64_t now = 1'000'000'000;
  explicit Judge(const std::string& text) : c(compile_text(text)), m(c.pol) {
    INFO(c.diags);
    REQUIRE(c.diags.empty());
  }
  std::string operator()(const pkt::Packet& p, Path path = Path::Input) {
    auto d = m.decide(p, path, now += 1000);
    std::string v = d.action == NF_ACT_ACCEPT ? "ACCEPT" : d.action == NF_ACT_DROP ? "DROP" : "REJECT";
    if (d.by_policy) return v + "@policy";
    return v + "@" + std::to_string(c.pol.origins[d.rule].source_line);
  }
};

const std::string kHead = "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n";  // lines 1-4

}  // namespace

TEST_CASE("first match over CIDRs and port ranges, with their edges") {
  Judge j(kHead +
          "-A INPUT -s 10.0.0.0/8 -p tcp -m tcp --dport 1000:2000 -j ACCEPT\n"  // 5
          "-A INPUT -s 10.1.0.0/16 -j DROP\n"                                   // 6
          "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n"                       // 7
          "COMMIT\n");
  CHECK(j(tcp("10.1.2.3", 5555, "192.0.2.1", 1000)) == "ACCEPT@5");
  CHECK(j(tcp("10.1.2.3", 5555, "192.0.2.1", 2000)) == "ACCEPT@5");
  CHECK(j(tcp("10.1.2.3", 5555, "192.0.2.1", 2001)) == "DROP@6");
  CHECK(j(tcp("10.1.2.3", 5555, "192.0.2.1", 999)) == "DROP@6");
  CHECK(j(tcp("10.255.255.255", 5555, "192.0.2.1", 999)) == "DROP@policy");
  CHECK(j(tcp("11.0.0.0", 5555, "192.0.2.1", 1500)) == "DROP@policy");
  CHECK(j(tcp("9.255.255.255", 1, "192.0.2.1", 22)) == "ACCEPT@7");
  CHECK(j(tcp("10.1.0.0", 1, "192.0.2.1", 22)) == "DROP@6");
  CHECK(j(udp("10.0.0.1", 1, "192.0.2.1", 1500)) == "DROP@policy");
}

TEST_CASE("negation, interfaces with wildcards, protocols") {
  Judge j(kHead +
          "-A INPUT -i lo -j ACCEPT\n"                             // 5
          "-A INPUT ! -s 192.168.0.0/16 -i eth+ -p udp -j DROP\n"  // 6
          "-A INPUT -i eth0 -p udp ! --dport 53 -j ACCEPT\n"       // 7
          "-A INPUT -p icmp -m icmp --icmp-type 8 -j ACCEPT\n"     // 8
          "-A INPUT -p icmp -m icmp ! --icmp-type 3/4 -j DROP\n"   // 9
          "-A INPUT -p icmp -j ACCEPT\n"                           // 10
          "COMMIT\n");
  CHECK(j(on(udp("1.2.3.4", 1, "5.6.7.8", 53), "lo")) == "ACCEPT@5");
  CHECK(j(on(udp("1.2.3.4", 1, "5.6.7.8", 53), "eth3")) == "DROP@6");
  CHECK(j(on(udp("192.168.1.1", 1, "5.6.7.8", 53), "eth0")) == "DROP@policy");
  CHECK(j(on(udp("192.168.1.1", 1, "5.6.7.8", 54), "eth0")) == "ACCEPT@7");
  CHECK(j(on(udp("192.168.1.1", 1, "5.6.7.8", 54), "wlan0")) == "DROP@policy");
  CHECK(j(on(udp("1.2.3.4", 1, "5.6.7.8", 54), "wlan0")) == "DROP@policy");
  CHECK(j(on(icmp("1.2.3.4", "5.6.7.8", 8), "wlan0")) == "ACCEPT@8");
  CHECK(j(on(icmp("1.2.3.4", "5.6.7.8", 3, 4), "wlan0")) == "ACCEPT@10");
  CHECK(j(on(icmp("1.2.3.4", "5.6.7.8", 3, 3), "wlan0")) == "DROP@9");
}

TEST_CASE("user chains, RETURN and goto keep first-match order") {
  Judge j(kHead + ":A - [0:0]\n:B - [0:0]\n" +
          "-A INPUT -p tcp -j A\n"              // 7
          "-A INPUT -p tcp -j ACCEPT\n"         // 8
          "-A A -s 10.0.0.1 -j RETURN\n"        // 9
          "-A A -s 10.0.0.2 -g B\n"             // 10
          "-A A -j DROP\n"                      // 11
          "-A B -p tcp --dport 80 -j ACCEPT\n"  // 12
          "COMMIT\n");
  CHECK(j(tcp("10.0.0.1", 1, "1.1.1.1", 80)) == "ACCEPT@8");
  CHECK(j(tcp("10.0.0.2", 1, "1.1.1.1", 80)) == "ACCEPT@12");
  CHECK(j(tcp("10.0.0.2", 1, "1.1.1.1", 81)) == "ACCEPT@8");  // end of B returns to INPUT
  CHECK(j(tcp("10.0.0.3", 1, "1.1.1.1", 80)) == "DROP@11");
  CHECK(j(udp("10.0.0.3", 1, "1.1.1.1", 80)) == "DROP@policy");
}

TEST_CASE("non-terminal targets run and evaluation continues") {
  Judge j(kHead +
          "-A INPUT -p tcp -j LOG --log-prefix \"in: \"\n"             // 5
          "-A INPUT -p tcp -j MARK --set-xmark 0x4/0xffffffff\n"       // 6
          "-A INPUT -m mark --mark 0x4 -p tcp --dport 22 -j ACCEPT\n"  // 7
          "-A INPUT -m mark ! --mark 0x4 -j ACCEPT\n"                  // 8
          "COMMIT\n");
  CHECK(j(tcp("1.1.1.1", 1, "2.2.2.2", 22)) == "ACCEPT@7");
  CHECK(j(tcp("1.1.1.1", 1, "2.2.2.2", 23)) == "DROP@policy");
  CHECK(j(udp("1.1.1.1", 1, "2.2.2.2", 23)) == "ACCEPT@8");
  auto hits = j.m.hits();
  CHECK(hits[0] == 2);  // LOG saw both TCP packets
  CHECK(hits[1] == 2);
}

TEST_CASE("mark tests along a jump path combine: repeated, implied and contradicting tests") {
  // Three mark tests reach the rules of C (the jumps' and the rule's own):
  // more than the two residual slots, but they combine.
  Judge j(kHead +
          ":A - [0:0]\n:B - [0:0]\n:C - [0:0]\n"        // 5-7
          "-A INPUT -m mark ! --mark 0x1 -j A\n"        // 8
          "-A A -m mark ! --mark 0x1 -j B\n"            // 9
          "-A B -m mark --mark 0x2 -p tcp -j ACCEPT\n"  // 10: != 1, != 1, == 2
          "-A B -m mark ! --mark 0x3 -p udp -j C\n"     // 11
          "-A C -m mark --mark 0x1 -j ACCEPT\n"         // 12: can never match
          "-A C -m mark --mark 0x5 -j ACCEPT\n"         // 13: != 1, != 1, != 3, == 5
          "COMMIT\n");
  auto marked = [](pkt::Packet p, uint32_t m) {
    p.mark = m;
    return p;
  };
  CHECK(j(marked(tcp("1.1.1.1", 1, "2.2.2.2", 22), 2)) == "ACCEPT@10");
  CHECK(j(marked(tcp("1.1.1.1", 1, "2.2.2.2", 22), 1)) == "DROP@policy");
  CHECK(j(marked(tcp("1.1.1.1", 1, "2.2.2.2", 22), 3)) == "DROP@policy");
  CHECK(j(marked(udp("1.1.1.1", 1, "2.2.2.2", 22), 5)) == "ACCEPT@13");
  CHECK(j(marked(udp("1.1.1.1", 1, "2.2.2.2", 22), 1)) == "DROP@policy");
  CHECK(j(marked(udp("1.1.1.1", 1, "2.2.2.2", 22), 3)) == "DROP@policy");
  CHECK(j(marked(udp("1.1.1.1", 1, "2.2.2.2", 22), 6)) == "DROP@policy");
}

TEST_CASE("connection tracking: TCP handshake, replies, INVALID, RELATED") {
  Judge j(kHead +
          "-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"    // 5
          "-A INPUT -m conntrack --ctstate INVALID -j DROP\n"                  // 6
          "-A INPUT -p tcp --dport 22 -m conntrack --ctstate NEW -j ACCEPT\n"  // 7
          "-A OUTPUT -m conntrack --ctstate NEW -j ACCEPT\n"                   // 8
          "-A OUTPUT -m conntrack --ctstate ESTABLISHED -j ACCEPT\n"           // 9
          "-A OUTPUT -j DROP\n"                                                // 10
          "COMMIT\n");
  // Inbound SSH: SYN is NEW, the server's SYN-ACK is ESTABLISHED, then the ACK.
  CHECK(j(tcp("1.1.1.1", 40000, "2.2.2.2", 22, SYN)) == "ACCEPT@7");
  CHECK(j(tcp("2.2.2.2", 22, "1.1.1.1", 40000, SYN | ACK), Path::Output) == "ACCEPT@9");
  CHECK(j(tcp("1.1.1.1", 40000, "2.2.2.2", 22, ACK)) == "ACCEPT@5");
  // A SYN-ACK nobody asked for is INVALID.
  CHECK(j(tcp("3.3.3.3", 80, "2.2.2.2", 5000, SYN | ACK)) == "DROP@6");
  // Not port 22: NEW, dropped by policy, not tracked.
  CHECK(j(tcp("1.1.1.1", 40001, "2.2.2.2", 23, SYN)) == "DROP@policy");
  // Outbound UDP, its reply ESTABLISHED, an ICMP error about it RELATED.
  CHECK(j(udp("2.2.2.2", 5353, "8.8.8.8", 53), Path::Output) == "ACCEPT@8");
  CHECK(j(udp("8.8.8.8", 53, "2.2.2.2", 5353)) == "ACCEPT@5");
  auto err = icmp("9.9.9.9", "2.2.2.2", 3, 3);
  err.inner = pkt::Packet::Inner{addr("2.2.2.2"), addr("8.8.8.8"), 17, 5353, 53};
  CHECK(j(err) == "ACCEPT@5");
  auto stray = icmp("9.9.9.9", "2.2.2.2", 3, 3);
  stray.inner = pkt::Packet::Inner{addr("2.2.2.2"), addr("7.7.7.7"), 17, 5353, 53};
  CHECK(j(stray) == "DROP@6");
  // Echo reply without a request is INVALID; with one, ESTABLISHED.
  CHECK(j(icmp("8.8.8.8", "2.2.2.2", 0, 0, 7)) == "DROP@6");
  CHECK(j(icmp("2.2.2.2", "8.8.8.8", 8, 0, 7), Path::Output) == "ACCEPT@8");
  CHECK(j(icmp("8.8.8.8", "2.2.2.2", 0, 0, 7)) == "ACCEPT@5");
}

TEST_CASE("multiport --ports, ipset sets, IPv6") {
  auto c = compile_text(kHead + "-A INPUT -p tcp -m multiport --ports 25,587 -j ACCEPT\nCOMMIT\n");
  REQUIRE(c.diags.empty());
  model::Model m(c.pol);
  CHECK(m.decide(tcp("1.1.1.1", 25, "2.2.2.2", 9999), Path::Input, 1).action == NF_ACT_ACCEPT);
  CHECK(m.decide(tcp("1.1.1.1", 9999, "2.2.2.2", 587), Path::Input, 2).action == NF_ACT_ACCEPT);
  CHECK(m.decide(tcp("1.1.1.1", 9999, "2.2.2.2", 588), Path::Input, 3).action == NF_ACT_DROP);

  diag::Diagnostics d;
  auto sets =
      frontend::parse_ipset_save({"sets",
                                  "create bad hash:net family inet\nadd bad 203.0.113.0/24\nadd bad 198.51.100.7\n"
                                  "create svc hash:ip,port family inet\nadd svc 192.0.2.10,tcp:443\n"},
                                 d);
  REQUIRE_FALSE(d.has_errors());
  auto s = compile_text(kHead +
                            "-A INPUT -m set --match-set bad src -j DROP\n"
                            "-A INPUT -m set --match-set svc dst,dst -j ACCEPT\nCOMMIT\n",
                        sets);
  INFO(s.diags);
  REQUIRE(s.diags.empty());
  model::Model ms(s.pol);
  CHECK(ms.decide(tcp("203.0.113.9", 1, "192.0.2.10", 443), Path::Input, 1).action == NF_ACT_DROP);
  CHECK(ms.decide(tcp("198.51.100.7", 1, "192.0.2.10", 443), Path::Input, 2).action == NF_ACT_DROP);
  CHECK(ms.decide(tcp("198.51.100.8", 1, "192.0.2.10", 443), Path::Input, 3).action == NF_ACT_ACCEPT);
  CHECK(ms.decide(udp("198.51.100.8", 1, "192.0.2.10", 443), Path::Input, 4).action == NF_ACT_DROP);

  TranslateOptions o;
  auto tr6 = translate_source({"rules.v6",
                               "# Generated by ip6tables-save\n*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n"
                               ":OUTPUT ACCEPT [0:0]\n-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 135 -j ACCEPT\n"
                               "-A INPUT -s 2001:db8::/32 -p tcp --dport 443 -j ACCEPT\nCOMMIT\n"},
                              o);
  diag::Diagnostics d6;
  auto p6 = policy::compile(tr6, d6);
  REQUIRE_FALSE(d6.has_errors());
  model::Model m6(p6);
  CHECK(m6.decide(icmp("fe80::1", "fe80::2", 135), Path::Input, 1).action == NF_ACT_ACCEPT);
  CHECK(m6.decide(icmp("fe80::1", "fe80::2", 136), Path::Input, 2).action == NF_ACT_DROP);
  CHECK(m6.decide(tcp("2001:db8::5", 1, "2001:db8::1", 443), Path::Input, 3).action == NF_ACT_ACCEPT);
  CHECK(m6.decide(tcp("2001:db9::5", 1, "2001:db8::1", 443), Path::Input, 4).action == NF_ACT_DROP);
  // IPv4 packets see no ip6tables stage: accepted.
  CHECK(m6.decide(tcp("10.0.0.1", 1, "10.0.0.2", 1), Path::Input, 5).action == NF_ACT_ACCEPT);
}

TEST_CASE("the policy checksum is stable and content-addressed") {
  std::string text = kHead + "-A INPUT -s 10.0.0.0/8 -j ACCEPT\n-A INPUT -p tcp --dport 22 -j ACCEPT\nCOMMIT\n";
  auto a = compile_text(text), b = compile_text(text);
  CHECK(a.pol.checksum == b.pol.checksum);
  CHECK(a.pol.checksum.size() == 64);
  auto c = compile_text(kHead + "-A INPUT -s 10.0.0.0/8 -j ACCEPT\n-A INPUT -p tcp --dport 23 -j ACCEPT\nCOMMIT\n");
  CHECK(a.pol.checksum != c.pol.checksum);
}

TEST_CASE("per-packet work stays flat: tuples do not grow with rules") {
  std::string big = kHead;
  for (int i = 0; i < 5000; ++i)
    big += "-A INPUT -s 10." + std::to_string(i / 250) + "." + std::to_string(i % 250) + ".0/24 -p tcp --dport " +
           std::to_string(1000 + i % 50) + " -j ACCEPT\n";
  big += "COMMIT\n";
  auto c = compile_text(big);
  REQUIRE(c.diags.empty());
  CHECK(c.pol.tuples.size() == 1);
  model::Model m(c.pol);
  CHECK(m.decide(tcp("10.19.249.7", 1, "1.1.1.1", 1049), Path::Input, 1).action == NF_ACT_ACCEPT);
  CHECK(m.decide(tcp("10.19.249.7", 1, "1.1.1.1", 1048), Path::Input, 2).action == NF_ACT_DROP);
}

TEST_CASE("statistic nth: the model counts per source rule, after the rule's other tests") {
  Judge j(kHead +
          ":CNT - [0:0]\n"
          "-A INPUT -p udp -m udp --dport 53 -m statistic --mode nth --every 3 --packet 2 -j ACCEPT\n"  // 6
          "-A INPUT -p tcp -j CNT\n"                                                                    // 7
          "-A INPUT -p udp -j CNT\n"                                                                    // 8
          "-A CNT -m statistic --mode nth ! --every 2 --packet 0 -j DROP\n"                             // 9
          "-A CNT -j ACCEPT\n"
          "COMMIT\n");
  auto dns = udp("10.0.0.1", 1000, "10.0.0.2", 53);
  auto web = tcp("10.0.0.1", 1000, "10.0.0.2", 80);
  // Rule 6 holds for the 3rd, 6th ... udp/53 packet; the others go on to CNT,
  // whose one counter (rule 9, reached by two jumps) holds for odd counts, inverted.
  std::vector<std::string> got;
  for (int i = 0; i < 6; ++i) got.push_back(j(i % 2 ? web : dns));
  CHECK(got == std::vector<std::string>{"ACCEPT@10", "DROP@9", "ACCEPT@10", "DROP@9", "ACCEPT@6", "ACCEPT@10"});
  for (const auto& r : j.c.pol.rules)
    if (r.residual & NF_RES_NTH) CHECK(r.nth_slot < j.c.pol.nth_slots());
  CHECK(j.c.pol.nth_slots() == 2);
}

TEST_CASE("statistic nth: forms whose counter the dataplane cannot keep are refused") {
  // The fidelity pass refuses them (left in netfilter with --allow-partial) ...
  auto err = [](const std::string& rules) {
    Translation tr = translate_source({"rules.v4", kHead + rules + "COMMIT\n"}, TranslateOptions{});
    std::string out;
    for (const auto& x : tr.diags.all()) out += diag::render(x);
    return out;
  };
  CHECK(err("-A INPUT -m statistic --mode nth --every 2 --packet 0 -p tcp -m tcp --dport 22 -j ACCEPT\n")
            .find("error: unsupported -m statistic --mode nth") != std::string::npos);
  CHECK(err("-A INPUT -m statistic --mode nth --every 2 --packet 0 -m statistic --mode random --probability 0.5 "
            "-j ACCEPT\n")
            .find("'-m statistic --mode' comes after it") != std::string::npos);
  CHECK(err(":C - [0:0]\n-A INPUT -m statistic --mode nth --every 2 --packet 0 -j C\n-A C -j ACCEPT\n")
            .find("a counter on a jump or goto rule is not implemented") != std::string::npos);
  // ... and the compiler, should such a rule reach it, too.
  Translation tr = translate_source(
      {"rules.v4",
       kHead + "-A INPUT -p udp -m statistic --mode nth --every 2 --packet 0 -m udp --dport 9 -j DROP\nCOMMIT\n"},
      TranslateOptions{});
  tr.diags = {};
  for (auto& r : tr.rules) r.status = caps::Fidelity::Exact;  // as if the fidelity pass had let it through
  diag::Diagnostics d;
  policy::compile(tr, d);
  std::string cd;
  for (const auto& x : d.all()) cd += diag::render(x);
  CHECK(cd.find("'-m udp --dport' after -m statistic --mode nth is not supported") != std::string::npos);
  // Address and interface options are tested before any match, wherever they are written.
  auto compiled = [](const std::string& rules) { return compile_text(kHead + rules + "COMMIT\n").diags; };
  CHECK(compiled("-A INPUT -m statistic --mode nth --every 2 --packet 0 -s 10.0.0.0/8 -i eth0 -j ACCEPT\n") == "");
  CHECK(compiled("-A INPUT -m comment --comment x -m statistic --mode nth --every 2 --packet 1 -m comment --comment "
                 "y -j ACCEPT\n") == "");
}

TEST_CASE("recent: the model keeps xt_recent's lists (SSH guard, --seconds in jiffies, --rdest, --remove)") {
  Compiled c = compile_text(kHead +
                            "-A INPUT -p tcp -m tcp --dport 22 -m recent --set --name SSH --rsource\n"  // 5
                            "-A INPUT -p tcp -m tcp --dport 22 -m recent --update --seconds 2 --hitcount 3 "
                            "--name SSH --rsource -j DROP\n"                                                    // 6
                            "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n"                                     // 7
                            "-A INPUT -p udp -m udp --dport 1 -m recent --set --name D --rdest -j ACCEPT\n"     // 8
                            "-A INPUT -p udp -m udp --dport 2 -m recent --rcheck --name D --rdest -j ACCEPT\n"  // 9
                            "-A INPUT -p udp -m udp --dport 3 -m recent --remove --name D --rdest -j ACCEPT\n"  // 10
                            "COMMIT\n");
  INFO(c.diags);
  REQUIRE(c.diags.empty());
  model::Model m(c.pol);  // HZ 250: a jiffy is 4 ms
  uint64_t t = 1'000'000'000'000;
  auto v = [&](const pkt::Packet& p, uint64_t dt_ms = 1) {
    auto d = m.decide(p, Path::Input, t += dt_ms * 1'000'000);
    return d.action == NF_ACT_DROP ? 'D' : 'A';
  };
  std::string seq;
  for (int i = 0; i < 5; ++i) seq += v(tcp("10.0.0.1", 1000, "10.0.0.2", 22));
  seq += v(tcp("10.0.0.3", 1000, "10.0.0.2", 22));        // another source
  seq += v(tcp("10.0.0.1", 1000, "10.0.0.2", 22), 3000);  // 3 s on: the window is empty again
  seq += v(tcp("10.0.0.1", 1000, "10.0.0.2", 22));
  seq += v(tcp("10.0.0.1", 1000, "10.0.0.2", 22));
  CHECK(seq == "AADDDAAAD");
  std::string d;
  d += v(udp("10.0.0.1", 1, "10.0.0.2", 2));  // not listed: the policy drops
  d += v(udp("10.0.0.1", 1, "10.0.0.2", 1));  // lists the destination
  d += v(udp("10.0.0.9", 1, "10.0.0.2", 2));  // any source to it
  d += v(udp("10.0.0.9", 1, "10.0.0.5", 2));  // another destination
  d += v(udp("10.0.0.9", 1, "10.0.0.2", 3));  // removed (and matched)
  d += v(udp("10.0.0.9", 1, "10.0.0.2", 3));  // nothing to remove
  d += v(udp("10.0.0.1", 1, "10.0.0.2", 2));
  CHECK(d == "DAADADD");
}

TEST_CASE("recent: the compiled rule carries xt_recent's options; one table per name") {
  Compiled c = compile_text(kHead +
                            "-A INPUT -m recent --set --name SSH --mask 255.255.255.0 --rsource\n"
                            "-A INPUT -m recent ! --update --seconds 60 --hitcount 4 --reap --rttl --name SSH "
                            "--mask 255.255.255.0 -j DROP\n"
                            "-A INPUT -m recent --remove --name other --rdest -j ACCEPT\n"
                            "COMMIT\n");
  INFO(c.diags);
  REQUIRE(c.diags.empty());
  std::vector<nf2bpf_rule> rs;
  for (const auto& r : c.pol.rules)
    if (r.residual & NF_RES_RECENT) rs.push_back(r);
  REQUIRE(rs.size() == 3);
  uint32_t h = 2166136261u;
  for (char ch : std::string("SSH")) h = (h ^ (uint8_t)ch) * 16777619u;
  CHECK(rs[0].recent_table == h);
  CHECK(rs[1].recent_table == h);
  CHECK(rs[2].recent_table != h);
  CHECK(rs[0].recent_cmd == NF_RECENT_SET);
  CHECK(rs[1].recent_cmd == NF_RECENT_UPDATE);
  CHECK((rs[1].residual & NF_RES_RECENT_NEG));
  CHECK_FALSE((rs[0].residual & NF_RES_RECENT_NEG));
  CHECK(rs[1].recent_seconds == 60);
  CHECK(rs[1].recent_hitcount == 4);
  CHECK(rs[1].recent_flags == (NF_RECENT_REAP | NF_RECENT_RTTL));
  CHECK(rs[2].recent_flags == NF_RECENT_RDEST);
  CHECK(rs[0].recent_ring == 31);  // the --set rule has no --hitcount: 32 stamps for the table
  CHECK(rs[1].recent_ring == 31);
  // --mask over the IPv4-mapped address.
  for (int i = 0; i < 12; ++i) CHECK(rs[0].recent_mask[i] == 0xff);
  CHECK(rs[0].recent_mask[14] == 0xff);
  CHECK(rs[0].recent_mask[15] == 0);
  CHECK(rs[2].recent_mask[15] == 0xff);
}

TEST_CASE("recent: forms the dataplane cannot keep are refused") {
  auto err = [](const std::string& rules) {
    Translation tr = translate_source({"rules.v4", kHead + rules + "COMMIT\n"}, TranslateOptions{});
    std::string out;
    for (const auto& x : tr.diags.all()) out += diag::render(x);
    return out;
  };
  CHECK(err("-A INPUT -m recent --rcheck --name x -p tcp -m tcp --dport 22 -j ACCEPT\n")
            .find("'-m tcp --dport' comes after it") != std::string::npos);
  // On a rule that jumps it translates (tested once, by the jump's guard).
  CHECK(err(":C - [0:0]\n-A INPUT -m recent --rcheck --name x -j C\n-A C -j ACCEPT\n").find("error") ==
        std::string::npos);
  // A list one rule leaves in netfilter keeps the rules naming it there.
  std::string shared = err(
      ":C - [0:0]\n-A INPUT -m recent --set --name x\n-A INPUT -m recent --rcheck --name x -p tcp -m tcp --dport 22 "
      "-j C\n-A INPUT -m recent --rcheck --name y -j DROP\n-A C -j ACCEPT\n");
  CHECK(shared.find("rules.v4:6:1: error: unsupported -m recent --name x") != std::string::npos);
  CHECK(shared.find("rules.v4:8:13: error") == std::string::npos);  // list y is not shared with it
  // The compiler's own checks (xt_recent's checkentry, the dataplane's limits).
  auto compiled = [](const std::string& rules) { return compile_text(kHead + rules + "COMMIT\n").diags; };
  CHECK(compiled("-A INPUT -m recent --rcheck --set --name x -j DROP\n").find("exactly one of") != std::string::npos);
  CHECK(compiled("-A INPUT -m recent --set --seconds 5 --name x -j DROP\n").find("go with --rcheck or --update") !=
        std::string::npos);
  CHECK(compiled("-A INPUT -m recent --rcheck --reap --name x -j DROP\n").find("--reap needs --seconds") !=
        std::string::npos);
  CHECK(compiled("-A INPUT -m recent --rcheck --hitcount 33 --name x -j DROP\n").find("above 32") != std::string::npos);
  CHECK(compiled("-A INPUT -m recent --set --name x --mask 255.255.0.0\n-A INPUT -m recent --rcheck --name x -j DROP\n")
            .find("two different --mask values") != std::string::npos);
  CHECK(compiled("-A INPUT -m recent --update --seconds 9 --hitcount 32 --reap --name x -j DROP\n") == "");
}

TEST_CASE("recent: a full list evicts its least recently set or updated entry; --reap drops a stale oldest one") {
  Compiled c = compile_text(kHead +
                            "-A INPUT -p udp -m udp --dport 1 -m recent --set --name L\n"                        // 5
                            "-A INPUT -p udp -m udp --dport 2 -m recent --rcheck --name L -j ACCEPT\n"           // 6
                            "-A INPUT -p udp -m udp --dport 3 -m recent --rcheck --seconds 5 --reap --name L\n"  // 7
                            "COMMIT\n");
  INFO(c.diags);
  REQUIRE(c.diags.empty());
  model::Model m(c.pol);
  uint64_t t = 1'000'000'000'000;
  auto v = [&](const std::string& src, uint16_t port, uint64_t dt_ms = 1) {
    return m.decide(udp(src, 1, "10.0.0.2", port), Path::Input, t += dt_ms * 1'000'000).action == NF_ACT_ACCEPT ? 'A'
                                                                                                                : 'D';
  };
  auto host = [](int i) { return "10.1." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1); };
  for (int i = 0; i < 100; ++i) v(host(i), 1);  // 100 entries: the list is full
  v(host(0), 1);                                // host 0 set again: now the newest
  v(host(100), 1);                              // the 101st evicts the oldest: host 1
  std::string seq;
  for (int i : {0, 1, 2, 100}) seq += v(host(i), 2);
  CHECK(seq == "ADAA");
  // 6 s on, a --reap check of a listed source drops the list's oldest entry
  // (host 2, last stamped > 5 s ago), one per packet; an unlisted source reaps nothing.
  v(host(200), 3, 6000);
  v(host(50), 3);
  v(host(51), 3);
  seq.clear();
  for (int i : {2, 3, 4, 0}) seq += v(host(i), 2);
  CHECK(seq == "DDAA");
}

TEST_CASE("limit: iptables-legacy's xt_limit counts credits in jiffies, iptables-nft's nft_limit tokens in ns") {
  auto rules = [](const char* backend) {
    return std::string("# Generated by iptables-save v1.8.9 (") + backend + ") on Sat Dec  5 00:00:00 2026\n" + kHead +
           "-A INPUT -p udp -m limit --limit 7/sec --limit-burst 1 -j ACCEPT\nCOMMIT\n";  // line 6
  };
  // 7/second. xt_limit (HZ 250, 128 credits a jiffy) charges user2credits(10000 / 7) = 4569 credits,
  // 35.7 jiffies: the next packet passes 36 jiffies (144 ms) after one that took the bucket.
  // nft_limit charges 1e9 / 7 = 142857142 ns.
  Judge xt(rules("legacy")), nft(rules("nf_tables"));
  auto at = [](Judge& j, uint64_t ns) {
    j.now = 1'000'000'000 + ns - 1000;
    return j(udp("10.0.0.1", 1, "192.0.2.1", 53));
  };
  CHECK(at(xt, 0) == "ACCEPT@6");
  CHECK(at(nft, 0) == "ACCEPT@6");
  CHECK(at(nft, 142'857'141) == "DROP@policy");
  CHECK(at(nft, 142'857'142) == "ACCEPT@6");
  CHECK(at(xt, 142'857'142) == "DROP@policy");  // jiffy 35 after the first: 4480 credits
  CHECK(at(xt, 143'999'999) == "DROP@policy");
  CHECK(at(xt, 144'000'000) == "ACCEPT@6");  // jiffy 36: 4608
  // A dump without a header is taken as iptables-nft's (Debian's, Ubuntu's and RHEL's default).
  Judge plain(kHead + "-A INPUT -p udp -m limit --limit 7/sec --limit-burst 1 -j ACCEPT\nCOMMIT\n");
  CHECK(plain.c.pol.limits.at(1).flags == 0);
  CHECK(xt.c.pol.limits.at(1).flags == NF_LIMIT_XT);
}

TEST_CASE("hashlimit: xt_hashlimit's buckets per key, credits in jiffies, expiry") {
  Judge j(kHead +
          "-A INPUT -p udp -m hashlimit --hashlimit-upto 7/sec --hashlimit-burst 1 --hashlimit-mode srcip "
          "--hashlimit-name a -j ACCEPT\n"  // line 5
          "-A INPUT -p tcp -m hashlimit --hashlimit-above 1/hour --hashlimit-burst 1 --hashlimit-name b "
          "--hashlimit-htable-expire 100 -j DROP\n"  // line 6
          "COMMIT\n");
  REQUIRE(j.c.diags.empty());
  auto at = [&](uint64_t ns, const pkt::Packet& p) {
    j.now = 1'000'000'000 + ns - 1000;
    return j(p);
  };
  // 7/second: user2credits(142857 us) = 142857 * 137438953 credits, CREDITS_PER_JIFFY 2^39 at HZ 250:
  // 35.7 jiffies, so the next packet passes 36 jiffies (144 ms) after one that emptied the bucket.
  CHECK(at(0, udp("10.0.0.1", 1, "192.0.2.1", 53)) == "ACCEPT@5");
  CHECK(at(1, udp("10.0.0.2", 1, "192.0.2.1", 53)) == "ACCEPT@5");  // its own bucket
  CHECK(at(143'999'999, udp("10.0.0.1", 1, "192.0.2.1", 53)) == "DROP@policy");
  CHECK(at(144'000'000, udp("10.0.0.1", 1, "192.0.2.1", 53)) == "ACCEPT@5");
  // above 1/hour burst 1, one bucket: the first is within, the next over;
  // unused for 100 ms (25 jiffies) the bucket is gone and the next is within again.
  CHECK(at(0, tcp("10.0.0.1", 1, "192.0.2.1", 80)) == "DROP@policy");
  CHECK(at(50'000'000, tcp("10.0.0.3", 1, "192.0.2.1", 80)) == "DROP@6");
  CHECK(at(147'999'999, tcp("10.0.0.1", 1, "192.0.2.1", 80)) == "DROP@6");       // jiffy 286: 24 after the last
  CHECK(at(252'000'000, tcp("10.0.0.1", 1, "192.0.2.1", 80)) == "DROP@policy");  // jiffy 313: gone at 311
}

TEST_CASE("hashlimit: what the kernel would refuse, and what nf2bpf does not implement, is located") {
  auto err = [](const std::string& m) {
    auto c = compile_text(kHead + "-A INPUT -p udp " + m + " -j ACCEPT\nCOMMIT\n");
    return c.diags;
  };
  CHECK_THAT(err("-m hashlimit --hashlimit-upto 5/sec"), Catch::Contains("--hashlimit-name"));
  CHECK_THAT(err("-m hashlimit --hashlimit-name a"), Catch::Contains("--hashlimit-upto or --hashlimit-above"));
  CHECK_THAT(err("-m hashlimit --hashlimit-upto 5/sec --hashlimit-mode srcip,foo --hashlimit-name a"),
             Catch::Contains("invalid --hashlimit-mode"));
  // Byte rates and rate matching stay in netfilter (a reason, not an error).
  auto left = [](const std::string& m) {
    auto c = compile_text(kHead + "-A INPUT -p udp " + m + " -j ACCEPT\nCOMMIT\n");
    return c.tr.rules.size() == 1 && c.tr.rules[0].status == caps::Fidelity::Unsupported ? c.tr.rules[0].reason : "";
  };
  CHECK_THAT(left("-m hashlimit --hashlimit-upto 1kb/s --hashlimit-name a"), Catch::Contains("byte rates"));
  CHECK_THAT(left("-m hashlimit --hashlimit-upto 5/sec --hashlimit-name a --hashlimit-rate-match"),
             Catch::Contains("rate matching is not implemented"));
  CHECK_THAT(err("-m hashlimit --hashlimit-upto 5/sec --hashlimit-srcmask 33 --hashlimit-name a"),
             Catch::Contains("--hashlimit-srcmask"));
}

TEST_CASE("hashlimit: a table a rule left in netfilter uses stays there with every rule naming it") {
  auto c = compile_text(kHead +
                        "-A INPUT -p udp -m hashlimit --hashlimit-upto 1kb/s --hashlimit-name t -j ACCEPT\n"
                        "-A INPUT -p tcp -m hashlimit --hashlimit-upto 5/sec --hashlimit-name t -j ACCEPT\n"
                        "-A INPUT -p tcp -m hashlimit --hashlimit-upto 5/sec --hashlimit-name u -j ACCEPT\n"
                        "COMMIT\n");
  CHECK(c.diags.empty());  // (left in netfilter: warnings)
  std::vector<std::string> status;
  for (const auto& r : c.tr.rules) status.push_back(std::string(caps::to_string(r.status)) + " " + r.reason);
  REQUIRE(status.size() == 3);
  INFO(status[0] + "\n" + status[1] + "\n" + status[2]);
  CHECK(c.pol.limits.size() == 2);  // only the third rule's table is nf2bpf's
  CHECK(status[0] == "unsupported -m hashlimit --hashlimit-upto: byte rates are not implemented");
  CHECK(
      status[1].starts_with("unsupported -m hashlimit --hashlimit-name t: another rule using this state stays in "
                            "netfilter (rules.v4:5)"));
  CHECK(status[2].starts_with("approximate"));
}

TEST_CASE("connlimit: nf_conncount's list per source, its own connection once, the ones conntrack lost dropped") {
  Judge j(kHead +
          "-A INPUT -p tcp -m tcp --syn -m connlimit --connlimit-above 1 -j REJECT --reject-with tcp-reset\n"  // 5
          "-A INPUT -p tcp -j ACCEPT\n"                                                                        // 6
          "COMMIT\n");
  REQUIRE(j.c.pol.cfg.ct_needed == 1);  // conntrack runs for the count
  auto at = [&](uint64_t ms, uint16_t sport) {
    j.now = 1'000'000'000 + ms * 1'000'000 - 1000;
    return j(tcp("10.0.0.1", sport, "192.0.2.1", 80));
  };
  CHECK(at(0, 1) == "ACCEPT@6");    // 1 connection
  CHECK(at(100, 2) == "REJECT@5");  // 2 > 1 (its own counted; never confirmed)
  CHECK(at(200, 3) == "REJECT@5");  // connection 2 dropped (conntrack never had it), 3 added: 2
  CHECK(at(300, 1) == "REJECT@5");  // connection 1 again, found first: the walk ends there, 3 stays: 2
  CHECK(at(300, 4) == "REJECT@5");  // the same jiffy: no walk, 4 added: 3
  CHECK(j(tcp("10.0.0.2", 9, "192.0.2.1", 80)) == "ACCEPT@6");  // another source, its own list
}

TEST_CASE("time: xt_time's dates, times of day, weekdays and days of the month, in UTC") {
  Judge j(kHead +
          "-A INPUT -p udp -m udp --dport 1 -m time --timestart 22:00:00 --timestop 02:00:00 --weekdays Sat "
          "--contiguous -j ACCEPT\n"  // 5
          "-A INPUT -p udp -m udp --dport 2 -m time --timestart 22:00:00 --timestop 02:00:00 --weekdays Sat "
          "-j ACCEPT\n"  // 6
          "-A INPUT -p udp -m udp --dport 3 -m time --monthdays 5,31 --datestart 2026-12-01 "
          "--datestop 2026-12-31T23:59:59 -j ACCEPT\n"                                 // 7
          "-A INPUT -p udp -m udp --dport 4 -m time ! --weekdays Sat,Sun -j ACCEPT\n"  // 8
          "COMMIT\n");
  // Saturday 2026-12-05 is day 20792 since 1970: 1796428800 s.
  auto at = [&](int64_t s, uint16_t port) {
    j.now = (uint64_t)s * 1'000'000'000 - 1000;
    return j(udp("10.0.0.1", 1, "192.0.2.1", port));
  };
  const int64_t sat = 1796428800;
  CHECK(at(sat + 23 * 3600, 1) == "ACCEPT@5");        // Saturday 23:00
  CHECK(at(sat + 86400 + 3600, 1) == "ACCEPT@5");     // Sunday 01:00: contiguous, Saturday's night
  CHECK(at(sat + 86400 + 3600, 2) == "DROP@policy");  // not contiguous: Sunday
  CHECK(at(sat + 3600, 2) == "ACCEPT@6");             // Saturday 01:00
  CHECK(at(sat + 12 * 3600, 2) == "DROP@policy");     // noon
  CHECK(at(sat + 12 * 3600, 3) == "ACCEPT@7");        // the 5th of December 2026
  CHECK(at(sat + 86400, 3) == "DROP@policy");         // the 6th
  CHECK(at(sat + 26 * 86400, 3) == "ACCEPT@7");       // the 31st
  CHECK(at(sat + 27 * 86400, 3) == "DROP@policy");    // 2027-01-01: after --datestop
  CHECK(at(sat, 4) == "DROP@policy");                 // Saturday
  CHECK(at(sat - 86400, 4) == "ACCEPT@8");            // Friday
}

TEST_CASE("ipset: ICMP elements of hash:ip,port, and a negated match on a two-dimensional set") {
  diag::Diagnostics d;
  auto sets = frontend::parse_ipset_save({"sets",
                                          "create pp hash:ip,port family inet\nadd pp 10.0.0.2,icmp:echo-request\n"
                                          "add pp 10.0.0.3,icmp:3/3\nadd pp 10.0.0.4,udp:53\n"},
                                         d);
  REQUIRE_FALSE(d.has_errors());
  REQUIRE(sets.size() == 1);
  auto c = compile_text(kHead +
                            "-A INPUT -p icmp -m set --match-set pp src,dst -j ACCEPT\n"   // 5
                            "-A INPUT -p udp -m set ! --match-set pp src,dst -j ACCEPT\n"  // 6
                            "COMMIT\n",
                        sets);
  INFO(c.diags);
  REQUIRE(c.diags.empty());
  model::Model m(c.pol);
  uint64_t t = 1;
  auto at = [&](const pkt::Packet& p) { return m.decide(p, Path::Input, t++).action; };
  // The "port" of an ICMP element is its type and code.
  CHECK(at(icmp("10.0.0.2", "10.0.0.1", 8)) == NF_ACT_ACCEPT);
  CHECK(at(icmp("10.0.0.2", "10.0.0.1", 0)) == NF_ACT_DROP);
  CHECK(at(icmp("10.0.0.3", "10.0.0.1", 3, 3)) == NF_ACT_ACCEPT);
  CHECK(at(icmp("10.0.0.3", "10.0.0.1", 3, 1)) == NF_ACT_DROP);
  // ! --match-set: every UDP datagram but 10.0.0.4 to port 53.
  CHECK(at(udp("10.0.0.4", 1, "10.0.0.1", 53)) == NF_ACT_DROP);
  CHECK(at(udp("10.0.0.4", 1, "10.0.0.1", 54)) == NF_ACT_ACCEPT);
  CHECK(at(udp("10.0.0.5", 1, "10.0.0.1", 53)) == NF_ACT_ACCEPT);
}

TEST_CASE("a NATed connection's replies are translated for as long as the connection lives") {
  Judge j(
      "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
      "-A PREROUTING -d 192.0.2.10/32 -p udp -m udp --dport 8080 -j DNAT --to-destination 192.0.2.10:80\n"
      "COMMIT\n" +
      kHead + "-A INPUT -j ACCEPT\nCOMMIT\n");
  auto request = [&] {
    auto d = j.m.decide(udp("198.51.100.1", 5000, "192.0.2.10", 8080), Path::Input, j.now += 1000);
    return d.out.dport;
  };
  auto reply = [&] {
    auto d = j.m.decide(udp("192.0.2.10", 80, "198.51.100.1", 5000), Path::Output, j.now += 1000);
    return d.out.sport;
  };
  const uint64_t s = 1'000'000'000;
  CHECK(request() == 80);
  CHECK(reply() == 8080);
  // A UDP stream lives 120 s after each packet once it has seen a reply,
  // well past its first packet's 30 s.
  for (int i = 0; i < 4; ++i) {
    j.now += 25 * s;
    CHECK(request() == 80);
    CHECK(reply() == 8080);
  }
}

TEST_CASE("a NATed connection killed by a RST frees its reply tuple at once") {
  // The kernel deletes a connection whose only reply is a RST; a new one
  // from the old reply tuple then keeps its source port (no clash to avoid).
  Judge j(
      "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
      "-A PREROUTING -d 192.0.2.10/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 192.0.2.10:80\n"
      "-A POSTROUTING -p tcp -m tcp --dport 1 -j MASQUERADE\n"
      "COMMIT\n" +
      kHead + "-A INPUT -j ACCEPT\nCOMMIT\n");
  auto out = [&](const pkt::Packet& p, Path path) { return j.m.decide(p, path, j.now += 1000).out; };
  CHECK(out(tcp("198.51.100.1", 5000, "192.0.2.10", 8080), Path::Input).dport == 80);
  CHECK(out(tcp("192.0.2.10", 80, "198.51.100.1", 5000, RST | ACK), Path::Output).sport == 8080);
  auto fresh = out(tcp("192.0.2.10", 80, "198.51.100.1", 5000, SYN), Path::Output);
  CHECK(fresh.sport == 80);
  CHECK(fresh.dport == 5000);
}

TEST_CASE("fragments: where connections are tracked, later fragments take their first one's outcome") {
  Judge j(
      "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
      "-A PREROUTING -d 192.0.2.10/32 -p udp -m udp --dport 9003 -j DNAT --to-destination 192.0.2.11:9001\n"
      "COMMIT\n" +
      kHead +
      "-A INPUT -m conntrack --ctstate ESTABLISHED -j ACCEPT\n"  // 9
      "-A INPUT -p udp -m udp --dport 9001 -j ACCEPT\n"          // 10
      "COMMIT\n");
  auto frag = [](pkt::Packet p, bool later) {
    p.fragment = true;
    p.later_fragment = later;
    if (later) p.sport = p.dport = 0;
    return p;
  };
  auto first = udp("198.51.100.1", 5000, "192.0.2.10", 9001), other = udp("198.51.100.1", 5000, "192.0.2.10", 9002);
  // No first fragment seen: a later one is judged by itself (no ports).
  CHECK(j(frag(first, true)) == "DROP@policy");
  auto act = [&](const pkt::Packet& p) { return j.m.decide(p, Path::Input, j.now += 1000).action; };
  CHECK(act(frag(first, false)) == NF_ACT_ACCEPT);
  CHECK(act(frag(first, true)) == NF_ACT_ACCEPT);
  CHECK(j(frag(other, false)) == "DROP@policy");
  CHECK(act(frag(other, true)) == NF_ACT_DROP);
  // A first fragment DNATed: its later ones get the same addresses.
  auto dnat = udp("198.51.100.2", 5000, "192.0.2.10", 9003);
  CHECK(j.m.decide(frag(dnat, false), Path::Input, j.now += 1000).out.daddr == addr("192.0.2.11"));
  auto later = j.m.decide(frag(dnat, true), Path::Input, j.now += 1000);
  CHECK(later.action == NF_ACT_ACCEPT);
  CHECK(later.out.daddr == addr("192.0.2.11"));
  // 30 s later the kernel has given up on the datagram: judged by itself.
  j.now += 31'000'000'000ull;
  CHECK(j(frag(dnat, true)) == "DROP@policy");
}
