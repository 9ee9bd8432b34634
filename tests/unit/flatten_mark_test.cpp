// Flatten: a jump's matches are tested once, at the jump. When the chain it
// inlines (or a chain that one reaches) can change what a match tests (the
// packet mark, the connection mark), guard entries test it there and skip the
// chain; the inlined rules do not re-test it. Checked on the decision list and
// on packets: the compiled policy's userspace model against the reference.
#include <catch2/catch.hpp>

#include <memory>

#include "tests/helpers.h"
#include "tests/support/packets.h"
#include "translator/passes/flatten.h"
#include "translator/policy/compile.h"
#include "verify/builder.h"
#include "verify/model.h"
#include "verify/parse.h"
#include "verify/policy_engine.h"
#include "verify/reference.h"

using namespace nf2bpf;
using namespace nf2bpf::test;

namespace {

std::string flat(const std::string& text) {
  auto p = parse_ipt(text);
  INFO(p.rendered());
  REQUIRE_FALSE(p.diags.has_errors());
  diag::Diagnostics d;
  auto pipe = passes::flatten(p.rs, d);
  REQUIRE_FALSE(d.has_errors());
  return ir::dump(pipe, p.rs);
}

// One stage of a dump, from its header line to the next stage.
std::string stage(const std::string& dump, const std::string& header) {
  size_t a = dump.find("stage " + header);
  if (a == std::string::npos) return "";
  size_t b = dump.find("\nstage ", a + 1);
  return dump.substr(a, b == std::string::npos ? std::string::npos : b + 1 - a);
}

constexpr const char* kHost = "192.0.2.10";

// The same packets through the reference evaluator (netfilter semantics) and
// through the compiled policy (its userspace model), both ways described as
// "VERDICT@line mark=0x..".
struct Both {
  Translation tr;
  policy::Policy pol;
  verify::HostModel host;
  std::unique_ptr<verify::ReferenceEngine> ref;
  std::unique_ptr<verify::PolicyEngine> compiled;
  std::unique_ptr<model::Model> model;
  double now = 1000;

  explicit Both(const std::string& text) : host(options()) {
    TranslateOptions opt;
    opt.allow_partial = true;
    tr = translate_source({"rules.v4", text}, opt);
    std::string diags;
    for (const auto& d : tr.diags.all()) diags += diag::render(d);
    INFO(diags);
    REQUIRE_FALSE(tr.diags.has_errors());
    diag::Diagnostics cd;
    pol = policy::compile(tr, cd);
    REQUIRE_FALSE(cd.has_errors());
    ref = std::make_unique<verify::ReferenceEngine>(tr.ruleset, tr.pipeline, host);
    compiled = std::make_unique<verify::PolicyEngine>(pol, host, "compiled");
    model = std::make_unique<model::Model>(pol);
  }

  static verify::HostOptions options() {
    verify::HostOptions o;
    std::string err;
    o.local.push_back(*ir::parse_cidr(kHost, ir::AddrFamily::V4, err));
    return o;
  }

  static std::string hex(uint32_t v) {
    char b[16];
    snprintf(b, sizeof b, "0x%x", v);
    return b;
  }

  static std::string line_of(const verify::Decision& d) {
    if (d.rule.policy) return "policy";
    auto c = d.rule.location.rfind(':');
    return c == std::string::npos ? d.rule.location : d.rule.location.substr(c + 1);
  }

  // The reference's mark after the hooks: the last mark its events report.
  static uint32_t ref_mark(const verify::Decision& d) {
    uint32_t m = 0;
    for (const auto& e : d.events) {
      std::string v;
      if (e.what.rfind("MARK ", 0) == 0)
        v = e.what.substr(5);
      else if (e.what.rfind("CONNMARK restore: mark ", 0) == 0)
        v = e.what.substr(23);
      if (!v.empty()) m = (uint32_t)std::stoul(v, nullptr, 16);
    }
    return m;
  }

  // Returns {reference, compiled}.
  std::pair<std::string, std::string> send(const pkt::Packet& in) {
    now += 0.001;
    verify::PacketSpec s;
    s.saddr = in.saddr;
    s.daddr = in.daddr;
    s.proto = in.l4proto;
    s.sport = in.sport;
    s.dport = in.dport;
    s.tcp_flags = in.tcp_flags;
    verify::Captured c;
    auto ip = verify::build_ip(s);
    REQUIRE(verify::decode_ip(ip.data(), ip.size(), c.packet) == "");
    c.packet.time = now;
    c.ifname = "eth0";
    verify::Traversal t;
    REQUIRE(host.place(c, t) == "");
    auto r = ref->decide(c.packet, t);
    auto p = compiled->decide(c.packet, t);
    pkt::Packet mp = c.packet;
    mp.iif = "eth0";
    auto md = model->decide(mp, model::Path::Input, (uint64_t)(now * 1e9));
    return {std::string(verify::to_string(r.verdict)) + "@" + line_of(r) + " mark=" + hex(ref_mark(r)),
            std::string(verify::to_string(p.verdict)) + "@" + line_of(p) + " mark=" + hex(md.mark)};
  }
};

// Both sides agree, and say `want`.
#define AGREE(both, packet, want)    \
  do {                               \
    auto res_ = (both).send(packet); \
    CHECK(res_.first == (want));     \
    CHECK(res_.second == (want));    \
  } while (0)

const std::string kMangle =
    "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n"
    ":OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n";  // lines 1-6
// The filter table that makes the final mark visible in the verdict.
const std::string kFilter =
    "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n"
    "-A INPUT -m mark --mark 0x2 -j ACCEPT\n"
    "COMMIT\n";

}  // namespace

TEST_CASE("flatten: a jump's mark test is done once when its chain changes the mark") {
  std::string text = kMangle + ":C - [0:0]\n" +
                     "-A PREROUTING -m mark --mark 0x0 -j C\n"           // 8
                     "-A PREROUTING -j MARK --set-xmark 0x100/0x100\n"   // 9
                     "-A C -j MARK --set-xmark 0x1/0xffffffff\n"         // 10
                     "-A C -p tcp -j MARK --set-xmark 0x2/0xffffffff\n"  // 11
                     "COMMIT\n";
  // The guard skips C when the mark is not 0; C's rules do not re-test it.
  CHECK(stage(flat(text), "ip prerouting mangle/PREROUTING") ==
        "stage ip prerouting mangle/PREROUTING priority -150 policy accept\n"
        "  0 @8: !mark & 0xffffffff in 0x0; skip 3\n"
        "  1 @10: mark-set value 0x1 mask 0xffffffff (-j MARK); continue\n"
        "  2 @11: l4proto 6; mark-set value 0x2 mask 0xffffffff (-j MARK); continue\n"
        "  3 @9: mark-set value 0x100 mask 0x100 (-j MARK); continue\n");

  Both b(text + kFilter);
  // netfilter: mark 0 -> C: 0x1, then tcp: 0x2, then 0x102.
  AGREE(b, tcp("198.51.100.7", 1000, kHost, 22), "DROP@policy mark=0x102");
  AGREE(b, udp("198.51.100.7", 1000, kHost, 53), "DROP@policy mark=0x101");
}

TEST_CASE("flatten: the mark test of a jump, seen by a later rule") {
  // The final mark decides the verdict: 0x2 is accepted by filter.
  std::string text = kMangle + ":C - [0:0]\n" +
                     "-A PREROUTING -m mark --mark 0x0 -j C\n"           // 8
                     "-A C -j MARK --set-xmark 0x1/0xffffffff\n"         // 9
                     "-A C -p tcp -j MARK --set-xmark 0x2/0xffffffff\n"  // 10
                     "COMMIT\n" +
                     kFilter;  // INPUT accept rule at line 16
  Both b(text);
  AGREE(b, tcp("198.51.100.7", 1000, kHost, 22), "ACCEPT@16 mark=0x2");
  AGREE(b, udp("198.51.100.7", 1000, kHost, 53), "DROP@policy mark=0x1");
}

TEST_CASE("flatten: goto with a mark test; the goto's end re-tests only what cannot change") {
  std::string text = kMangle + ":C - [0:0]\n" +
                     "-A PREROUTING -s 10.9.9.9 -j MARK --set-xmark 0x7/0xffffffff\n"  // 8
                     "-A PREROUTING -m mark --mark 0x0 -p tcp -g C\n"                  // 9
                     "-A PREROUTING -j MARK --set-xmark 0x9/0xffffffff\n"              // 10
                     "-A C -j MARK --set-xmark 0x1/0xffffffff\n"                       // 11
                     "-A C -p tcp --dport 22 -j MARK --set-xmark 0x2/0xffffffff\n"     // 12
                     "COMMIT\n";
  CHECK(stage(flat(text), "ip prerouting mangle/PREROUTING") ==
        "stage ip prerouting mangle/PREROUTING priority -150 policy accept\n"
        "  0 @8: saddr 10.9.9.9; mark-set value 0x7 mask 0xffffffff (-j MARK); continue\n"
        "  1 @9: l4proto 6; !mark & 0xffffffff in 0x0; skip 5\n"
        "  2 @11: l4proto 6; mark-set value 0x1 mask 0xffffffff (-j MARK); continue\n"
        "  3 @12: l4proto 6; l4proto 6; dport 22; mark-set value 0x2 mask 0xffffffff (-j MARK); continue\n"
        "  4 @9: l4proto 6; skip 6\n"  // the goto's end: the tcp test only
        "  5 @10: mark-set value 0x9 mask 0xffffffff (-j MARK); continue\n");

  Both b(text + kFilter);
  // Through C, and C's end leaves PREROUTING: rule 10 does not run.
  AGREE(b, tcp("198.51.100.7", 1000, kHost, 22), "ACCEPT@18 mark=0x2");
  AGREE(b, tcp("198.51.100.7", 1001, kHost, 23), "DROP@policy mark=0x1");
  // Not tcp: no goto.
  AGREE(b, udp("198.51.100.7", 1000, kHost, 22), "DROP@policy mark=0x9");
  // Mark 7: the guard skips C and its end; rule 10 runs.
  AGREE(b, tcp("10.9.9.9", 1000, kHost, 22), "DROP@policy mark=0x9");
}

TEST_CASE("flatten: a connmark test of a jump whose chain changes the connection mark") {
  std::string text = kMangle + ":C - [0:0]\n" +
                     "-A PREROUTING -p tcp -m connmark --mark 0x0 -j C\n"           // 8
                     "-A C -j CONNMARK --set-xmark 0x1/0xffffffff\n"                // 9
                     "-A C -p tcp --dport 22 -j MARK --set-xmark 0x2/0xffffffff\n"  // 10
                     "COMMIT\n";
  CHECK(stage(flat(text), "ip prerouting mangle/PREROUTING") ==
        "stage ip prerouting mangle/PREROUTING priority -150 policy accept\n"
        "  0 @8: l4proto 6; !ct-mark & 0xffffffff in 0x0; skip 4\n"
        "  1 @8: l4proto 6; !ct-state 0x2,0x4,0x8; skip 4\n"  // no connection: neither ct mark test matches
        "  2 @9: l4proto 6; ct-mark-set value 0x1 mask 0xffffffff (-j CONNMARK); continue\n"
        "  3 @10: l4proto 6; l4proto 6; dport 22; mark-set value 0x2 mask 0xffffffff (-j MARK); continue\n");

  Both b(text + kFilter);  // filter's accept rule: line 16
  AGREE(b, tcp("198.51.100.7", 1000, kHost, 22), "ACCEPT@16 mark=0x2");
  // The same connection, now with ct mark 1: C is skipped.
  AGREE(b, tcp("198.51.100.7", 1000, kHost, 22, ACK), "DROP@policy mark=0x0");
  AGREE(b, tcp("198.51.100.7", 1001, kHost, 23), "DROP@policy mark=0x0");
}

TEST_CASE("flatten: nested chains; a chain that reaches one changing the mark; RETURN") {
  std::string text = kMangle + ":A - [0:0]\n:B - [0:0]\n:I - [0:0]\n" +
                     "-A PREROUTING -m mark --mark 0x0 -j A\n"                 // 10
                     "-A PREROUTING -m mark ! --mark 0x0 -j I\n"               // 11
                     "-A A -j B\n"                                             // 12
                     "-A A -p tcp -j MARK --set-xmark 0x20/0x20\n"             // 13
                     "-A B -j MARK --set-xmark 0x1/0xffffffff\n"               // 14
                     "-A B -p udp -j RETURN\n"                                 // 15
                     "-A B -m mark --mark 0x1 -j I\n"                          // 16
                     "-A B -j MARK --set-xmark 0x4/0x4\n"                      // 17
                     "-A I -j MARK --set-xmark 0x2/0x2\n"                      // 18
                     "-A I -p tcp --dport 22 -j MARK --set-xmark 0x40/0x40\n"  // 19
                     "COMMIT\n";
  // A does not mark itself, but B (which A reaches) does: rule 13 must not
  // re-test mark 0. Inside B, the jump to I tests mark 0x1 once.
  CHECK(stage(flat(text), "ip prerouting mangle/PREROUTING") ==
        "stage ip prerouting mangle/PREROUTING priority -150 policy accept\n"
        "  0 @10: !mark & 0xffffffff in 0x0; skip 8\n"
        "  1 @14: mark-set value 0x1 mask 0xffffffff (-j MARK); continue\n"
        "  2 @15: l4proto 17; skip 7\n"  // RETURN from B: on with A
        "  3 @16: !mark & 0xffffffff in 0x1; skip 6\n"
        "  4 @18: mark-set value 0x2 mask 0x2 (-j MARK); continue\n"
        "  5 @19: l4proto 6; dport 22; mark-set value 0x40 mask 0x40 (-j MARK); continue\n"
        "  6 @17: mark-set value 0x4 mask 0x4 (-j MARK); continue\n"
        "  7 @13: l4proto 6; mark-set value 0x20 mask 0x20 (-j MARK); continue\n"
        "  8 @11: mark & 0xffffffff in 0x0; skip 11\n"  // guard of a negated test: the test itself
        "  9 @18: mark-set value 0x2 mask 0x2 (-j MARK); continue\n"
        "  10 @19: l4proto 6; dport 22; mark-set value 0x40 mask 0x40 (-j MARK); continue\n");

  Both b(text + kFilter);
  // A: B marks 0x1, then I (0x3, 0x43 for port 22), B 0x4; A 0x20; then
  // PREROUTING's second jump to I (the mark is no longer 0).
  AGREE(b, tcp("198.51.100.7", 1000, kHost, 22), "DROP@policy mark=0x67");
  AGREE(b, tcp("198.51.100.7", 1001, kHost, 23), "DROP@policy mark=0x27");
  // udp RETURNs from B: no I from B, no 0x4, no 0x20; I from PREROUTING.
  AGREE(b, udp("198.51.100.7", 1000, kHost, 53), "DROP@policy mark=0x3");
}

TEST_CASE("flatten: mark tests stay in the prefix when nothing inlined changes them") {
  // C changes the connection mark only, and D nothing: the jumps' mark tests
  // are repeated on every inlined rule as before, with no guard.
  std::string text = kMangle + ":C - [0:0]\n:D - [0:0]\n" +
                     "-A PREROUTING -m mark --mark 0x1 -j C\n"        // 9
                     "-A PREROUTING -m connmark --mark 0x1 -j D\n"    // 10
                     "-A C -j CONNMARK --set-xmark 0x1/0xffffffff\n"  // 11
                     "-A C -p tcp -j ACCEPT\n"                        // 12
                     "-A D -p udp -j DROP\n"                          // 13
                     "COMMIT\n";
  CHECK(stage(flat(text), "ip prerouting mangle/PREROUTING") ==
        "stage ip prerouting mangle/PREROUTING priority -150 policy accept\n"
        "  0 @11: mark & 0xffffffff in 0x1; ct-mark-set value 0x1 mask 0xffffffff (-j CONNMARK); continue\n"
        "  1 @12: mark & 0xffffffff in 0x1; l4proto 6; accept\n"
        "  2 @13: ct-mark & 0xffffffff in 0x1; l4proto 17; drop\n");
}
