// Traffic from this host to itself (over lo), and loopback addresses where
// they cannot be: the reference evaluator and the compiled policy's model
// must judge them as the kernel does (OUTPUT and POSTROUTING at lo's egress,
// PREROUTING and INPUT with iif lo at its ingress, one connection).
#include <catch2/catch.hpp>

#include "tests/helpers.h"
#include "translator/policy/compile.h"
#include "verify/builder.h"
#include "verify/model.h"
#include "verify/policy_engine.h"
#include "verify/reference.h"

using namespace nf2bpf;
using namespace nf2bpf::verify;

namespace {

constexpr const char* kHost = "192.0.2.10";
constexpr uint8_t SYN = 0x02, ACK = 0x10, SYNACK = 0x12;

PacketSpec tcp(const char* src, uint16_t sport, const char* dst, uint16_t dport, uint8_t flags) {
  auto fam = std::string(src).find(':') != std::string::npos ? ir::AddrFamily::V6 : ir::AddrFamily::V4;
  PacketSpec s;
  s.saddr = *ir::parse_addr(src, fam);
  s.daddr = *ir::parse_addr(dst, fam);
  s.family = fam == ir::AddrFamily::V4 ? 4 : 6;
  s.proto = 6;
  s.sport = sport;
  s.dport = dport;
  s.tcp_flags = flags;
  return s;
}

struct Both {
  Translation tr;
  policy::Policy pol;
  HostModel host;
  std::unique_ptr<ReferenceEngine> ref;
  std::unique_ptr<PolicyEngine> model;
  double now = 1000;

  explicit Both(const std::string& rules) {
    TranslateOptions opt;
    tr = translate_source({"rules.v4", rules}, opt);
    REQUIRE_FALSE(tr.diags.has_errors());
    diag::Diagnostics cd;
    pol = policy::compile(tr, cd);
    REQUIRE_FALSE(cd.has_errors());
    HostOptions o;
    std::string err;
    o.local.push_back(*ir::parse_cidr(kHost, ir::AddrFamily::V4, err));
    o.local.push_back(*ir::parse_cidr("2001:db8::10", ir::AddrFamily::V6, err));
    host = HostModel(o);
    ref = std::make_unique<ReferenceEngine>(tr.ruleset, tr.pipeline, host);
    model = std::make_unique<PolicyEngine>(pol, host, "compiled");
  }

  // Places the packet as captured on `ifname`; "" and both decisions, or why
  // it was not placed.
  std::string send(const PacketSpec& s, const std::string& ifname, Decision& e, Decision& a,
                   Direction dir = Direction::Unknown) {
    now += 0.001;
    Captured c;
    auto ip = build_ip(s);
    REQUIRE(decode_ip(ip.data(), ip.size(), c.packet) == "");
    c.packet.time = now;
    c.ifname = ifname;
    c.dir = dir;
    Traversal t;
    if (auto why = host.place(c, t); !why.empty()) return why;
    e = ref->decide(c.packet, t);
    a = model->decide(c.packet, t);
    return "";
  }
};

const std::string kRules =
    "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n"
    "-A INPUT -i lo -p tcp --dport 9998 -j DROP\n"                                       // 5
    "-A INPUT -p tcp --dport 9997 -m conntrack --ctstate NEW -j DROP\n"                  // 6
    "-A INPUT -i lo -p tcp --dport 9000 -m conntrack --ctstate ESTABLISHED -j ACCEPT\n"  // 7
    "-A INPUT -i lo -p tcp --dport 9000 -m conntrack --ctstate NEW -j ACCEPT\n"          // 8
    "-A INPUT -i lo -p tcp --sport 9000 -m conntrack --ctstate ESTABLISHED -j ACCEPT\n"  // 9
    "-A INPUT -i lo -p tcp -j REJECT\n"                                                  // 10
    "-A OUTPUT -o lo -p tcp --dport 9996 -j DROP\n"                                      // 11
    "COMMIT\n";

}  // namespace

TEST_CASE("loopback: a local connection meets OUTPUT, then INPUT with iif lo, in both engines") {
  Both b(kRules);
  Decision e, a;
  for (const char* dst : {"127.0.0.1", kHost}) {
    INFO(dst);
    // INPUT's rule for lo drops it: netfilter does, so must the policy.
    REQUIRE(b.send(tcp(dst, 40000, dst, 9998, SYN), "lo", e, a) == "");
    CHECK(e.verdict == Verdict::Drop);
    CHECK(e.hook == ir::Hook::Input);
    CHECK(a.verdict == Verdict::Drop);
    CHECK(a.hook == ir::Hook::Input);
    CHECK(a.rule.location == "rules.v4:5");
    // OUTPUT -o lo drops first.
    REQUIRE(b.send(tcp(dst, 40001, dst, 9996, SYN), "lo", e, a) == "");
    CHECK(e.verdict == Verdict::Drop);
    CHECK(a.verdict == Verdict::Drop);
    CHECK(a.hook == ir::Hook::Output);
    // INPUT sees the connection OUTPUT made: NEW, not yet ESTABLISHED.
    REQUIRE(b.send(tcp(dst, 40002, dst, 9997, SYN), "lo", e, a) == "");
    CHECK(e.verdict == Verdict::Drop);
    CHECK(a.verdict == Verdict::Drop);
    CHECK(a.ct_state == "NEW");
  }
}

TEST_CASE("loopback: a handshake over lo keeps one connection (no second tracking at lo's ingress)") {
  Both b(kRules);
  Decision e, a;
  struct Step {
    PacketSpec s;
    const char* state;
  } steps[] = {
      {tcp("127.0.0.1", 41000, "127.0.0.1", 9000, SYN), "NEW"},
      {tcp("127.0.0.1", 9000, "127.0.0.1", 41000, SYNACK), "ESTABLISHED"},
      {tcp("127.0.0.1", 41000, "127.0.0.1", 9000, ACK), "ESTABLISHED"},
      {tcp("::1", 41000, "::1", 9000, SYN), "NEW"},
      {tcp("::1", 9000, "::1", 41000, SYNACK), "ESTABLISHED"},
      {tcp("::1", 41000, "::1", 9000, ACK), "ESTABLISHED"},
  };
  for (const auto& st : steps) {
    REQUIRE(b.send(st.s, "lo", e, a) == "");
    CHECK(e.verdict == Verdict::Accept);
    CHECK(a.verdict == Verdict::Accept);
    CHECK(e.ct_state == st.state);
    CHECK(a.ct_state == st.state);
  }
  // Not part of a connection: REJECT on both sides.
  REQUIRE(b.send(tcp("127.0.0.1", 41000, "127.0.0.1", 9001, ACK), "lo", e, a) == "");
  CHECK(e.verdict == a.verdict);
}

TEST_CASE("loopback: a loopback address off lo is dropped by the kernel whatever the rules say") {
  Both b(kRules);
  Decision e, a;
  auto why = b.send(tcp("127.0.0.1", 1000, kHost, 22, SYN), "eth0", e, a, Direction::Inbound);
  CHECK(why.find("loopback source 127.0.0.1 arriving on eth0") != std::string::npos);
  why = b.send(tcp("198.51.100.7", 1000, "127.0.0.5", 22, SYN), "eth0", e, a, Direction::Inbound);
  CHECK(why.find("loopback destination 127.0.0.5 arriving on eth0") != std::string::npos);
  why = b.send(tcp("::1", 1000, "2001:db8::10", 22, SYN), "eth0", e, a, Direction::Inbound);
  CHECK(why.find("refused on receipt") != std::string::npos);
  why = b.send(tcp("127.0.0.1", 1000, "198.51.100.7", 22, SYN), "eth0", e, a, Direction::Outbound);
  CHECK(why.find("never sends one off lo") != std::string::npos);
  // To a loopback address, a local packet goes over lo whatever the capture
  // interface says (a synthesized witness packet, say): OUTPUT, then INPUT.
  REQUIRE(b.send(tcp(kHost, 1000, "127.0.0.1", 9998, SYN), "eth0", e, a, Direction::Outbound) == "");
  CHECK(e.verdict == Verdict::Drop);
  CHECK(a.verdict == Verdict::Drop);

  // The model mirrors the BPF program: routing takes such a packet no
  // further than PREROUTING, so INPUT's rules do not see it.
  model::Model m(b.pol);
  Captured c;
  auto ip = build_ip(tcp("127.0.0.1", 1000, kHost, 9997, SYN));
  REQUIRE(decode_ip(ip.data(), ip.size(), c.packet) == "");
  c.packet.iif = "eth0";
  CHECK(m.decide(c.packet, model::Path::Input, 1).stage == UINT32_MAX);
  c.packet.iif = "lo";
  CHECK(m.decide(c.packet, model::Path::Input, 2).action == NF_ACT_DROP);
}
