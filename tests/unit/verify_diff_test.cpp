// diff --against on the golden captures, the report formats, and the
// synthesized capture.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "tests/helpers.h"
#include "translator/policy/compile.h"
#include "verify/diff.h"
#include "verify/policy_engine.h"
#include "verify/reference.h"
#include "verify/report.h"
#include "verify/synthesize.h"

using namespace nf2bpf;
using namespace nf2bpf::verify;

namespace {

Translation load(const std::string& rel) {
  TranslateOptions opt;
  opt.allow_partial = true;
  auto tr = translate_file(test::src_path(rel), opt);
  REQUIRE(tr.ok());
  REQUIRE_FALSE(tr->diags.has_errors());
  return std::move(*tr);
}

HostOptions host_opts(std::vector<std::string> local, std::string iface = "eth0") {
  HostOptions o;
  o.iface = std::move(iface);
  for (const auto& l : local) {
    std::string err;
    auto fam = l.find(':') != std::string::npos ? ir::AddrFamily::V6 : ir::AddrFamily::V4;
    o.local.push_back(*ir::parse_cidr(l, fam, err));
  }
  return o;
}

struct DiffRun {
  Translation a, b;
  HostModel host;
  DiffReport rep;
  DiffRun(const std::string& capture, const std::string& left, const std::string& right, HostOptions ho)
      : a(load(left)), b(load(right)), host(std::move(ho)) {
    auto cap = CaptureReader::open(capture[0] == '/' ? capture : test::src_path(capture));
    REQUIRE(cap.ok());
    ReferenceEngine e(a.ruleset, a.pipeline, host), x(b.ruleset, b.pipeline, host);
    rep = run_diff(**cap, host, e, x);
  }
};

std::vector<uint64_t> numbers(const std::vector<PacketReport>& v) {
  std::vector<uint64_t> n;
  for (const auto& p : v) n.push_back(p.number);
  return n;
}

const char* kHost = "testdata/pcap/host.rules";
const char* kEdited = "testdata/pcap/host-edited.rules";

}  // namespace

TEST_CASE("diff: one rule's port changed lists exactly the packets it affects") {
  DiffRun d("testdata/pcap/tcp-stateful.pcap", kHost, kEdited, host_opts({"192.0.2.10"}));
  const auto& r = d.rep;
  CHECK(r.error.empty());
  CHECK(r.packets == 20);
  CHECK(r.skipped == 0);
  CHECK(r.indeterminate == 0);
  // Packet 9 is the SYN to port 80; 11 and 12 are that connection's next
  // packets, ESTABLISHED on the old side, rejected on the new. 13 and later
  // are not affected: the host's own ACK out (13) lets conntrack pick the
  // connection up mid-stream on the new side too, as the kernel would.
  CHECK(numbers(r.differences) == std::vector<uint64_t>{9, 11, 12});
  CHECK(r.differed == 3);
  CHECK(r.agreed == 17);
  const auto& p9 = r.differences[0];
  CHECK(p9.tuple == "tcp 198.51.100.7:40001 -> 192.0.2.10:80 [S]");
  CHECK(p9.expected.verdict == Verdict::Accept);
  CHECK(p9.expected.rule.location == test::src_path(kHost) + ":10");
  CHECK(p9.expected.rule.text == "-A INPUT -p tcp -m tcp --dport 80 -j ACCEPT");
  CHECK(p9.actual.verdict == Verdict::Reject);
  CHECK(p9.actual.reject_with == "tcp-reset");
  CHECK(p9.actual.rule.location == test::src_path(kEdited) + ":14");
  CHECK(p9.expected.hook == ir::Hook::Input);
  CHECK(p9.iif == "eth0");
  CHECK(p9.time == Approx(1714550400.008));
  CHECK(r.differences[1].expected.ct_state == "ESTABLISHED");
  CHECK(r.differences[1].actual.ct_state == "NEW");
}

TEST_CASE("diff: the same change is invisible on captures that never use the port") {
  for (const char* cap : {"testdata/pcap/udp.pcap", "testdata/pcap/icmp.pcap", "testdata/pcap/vlan.pcap"}) {
    DiffRun d(cap, kHost, kEdited, host_opts({"192.0.2.10"}));
    INFO(cap);
    CHECK(d.rep.differed == 0);
    CHECK(d.rep.equivalent());
  }
}

TEST_CASE("diff: identical rulesets agree and count rule hits") {
  DiffRun d("testdata/pcap/tcp-stateful.pcap", kHost, kHost, host_opts({"192.0.2.10"}));
  CHECK(d.rep.differed == 0);
  CHECK(d.rep.agreed == 20);
  auto hits = [&](int line) {
    for (const auto& h : d.rep.expected_hits)
      if (h.location == test::src_path(kHost) + ":" + std::to_string(line)) return (int64_t)h.hits;
    return (int64_t)-1;
  };
  CHECK(hits(6) == 0);   // -i lo
  CHECK(hits(7) == 8);   // RELATED,ESTABLISHED: 4 incoming packets of each session after its SYN
  CHECK(hits(8) == 2);   // INVALID: stray SYN-ACK, XMAS
  CHECK(hits(9) == 2);   // ssh SYN, loose ACK
  CHECK(hits(10) == 1);  // http SYN
  CHECK(hits(14) == 1);  // REJECT the SYN to 23
}

TEST_CASE("diff: ICMP error RELATED and the INVALID ones") {
  DiffRun d("testdata/pcap/icmp.pcap", kHost, kHost, host_opts({"192.0.2.10"}));
  // Re-run the reference alone to look at states.
  Translation t = load(kHost);
  HostModel host(host_opts({"192.0.2.10"}));
  ReferenceEngine e(t.ruleset, t.pipeline, host);
  auto cap = CaptureReader::open(test::src_path("testdata/pcap/icmp.pcap"));
  REQUIRE(cap.ok());
  std::vector<std::string> states;
  std::vector<Verdict> verdicts;
  Frame f;
  while ((*cap)->next(f)) {
    Captured c;
    REQUIRE(decode(**cap, f, c) == "");
    c.ifname = "eth0";
    Traversal tr;
    REQUIRE(host.place(c, tr) == "");
    auto dec = e.decide(c.packet, tr);
    states.push_back(dec.ct_state);
    verdicts.push_back(dec.verdict);
  }
  CHECK(states == std::vector<std::string>{"NEW", "ESTABLISHED", "NEW", "RELATED", "INVALID", "INVALID"});
  CHECK(verdicts == std::vector<Verdict>{Verdict::Accept, Verdict::Accept, Verdict::Accept, Verdict::Accept,
                                         Verdict::Drop, Verdict::Drop});
}

TEST_CASE("diff: a truncated capture names the packet and keeps the ones before it") {
  DiffRun d("testdata/pcap/truncated.pcap", kHost, kEdited, host_opts({"192.0.2.10"}));
  CHECK(d.rep.packets == 5);
  CHECK(d.rep.agreed == 5);
  CHECK(d.rep.error.find("truncated.pcap: packet 6: ") != std::string::npos);
  std::string text = render_text(d.rep);
  CHECK(text.find("error: " + d.rep.error) != std::string::npos);
  CHECK(text.find("result: incomplete: the capture broke off") != std::string::npos);
  auto j = render_json(d.rep);
  CHECK(j["error"].get<std::string>() == d.rep.error);
  CHECK(j["summary"]["packets"] == 5);
}

TEST_CASE("diff: pcapng router capture: interfaces from the blocks, forwarded copies counted once") {
  DiffRun d("testdata/pcap/two-interfaces.pcapng", kHost, kEdited, HostOptions{});
  const auto& r = d.rep;
  CHECK(r.packets == 6);
  CHECK(r.skipped == 2);  // packets 2 and 4: the forwarded copies leaving
  REQUIRE(r.skips.size() == 1);
  CHECK(r.skips[0].first == 2);
  CHECK(r.skips[0].count == 2);
  CHECK(r.agreed == 4);
  // Check the reference's view of each packet on the old ruleset.
  HostModel host;
  Translation t = load(kHost);
  ReferenceEngine e(t.ruleset, t.pipeline, host);
  ReferenceEngine e2(t.ruleset, t.pipeline, host);
  struct Spy : VerdictEngine {
    ReferenceEngine& inner;
    std::vector<Decision> seen;
    std::vector<std::string> oifs;
    explicit Spy(ReferenceEngine& i) : inner(i) {}
    std::string name() const override { return inner.name(); }
    Decision decide(const pkt::Packet& p, const Traversal& tr) override {
      oifs.push_back(p.oif);
      seen.push_back(inner.decide(p, tr));
      return seen.back();
    }
    std::vector<RuleHits> hits() const override { return inner.hits(); }
  } spy(e);
  auto cap = CaptureReader::open(test::src_path("testdata/pcap/two-interfaces.pcapng"));
  REQUIRE(cap.ok());
  run_diff(**cap, host, spy, e2);
  REQUIRE(spy.seen.size() == 4);
  CHECK(spy.oifs[0] == "eth0");  // packet 1's output interface from its copy, packet 2
  CHECK(spy.seen[0].rule.location == test::src_path(kHost) + ":15");  // -i eth1 -o eth0
  CHECK(spy.seen[1].rule.location == test::src_path(kHost) + ":16");  // the SYN-ACK back: ESTABLISHED
  CHECK(spy.seen[2].rule.location == test::src_path(kHost) + ":9");   // ssh to the router itself
  CHECK(spy.seen[3].verdict == Verdict::Drop);                        // telnet from outside: FORWARD policy
  CHECK(spy.seen[3].rule.policy);
}

TEST_CASE("diff report: json keys and markdown shape") {
  DiffRun d("testdata/pcap/tcp-stateful.pcap", kHost, kEdited, host_opts({"192.0.2.10"}));
  auto j = render_json(d.rep);
  for (const char* k : {"packets", "agreed", "differed", "skipped", "indeterminate"}) CHECK(j["summary"].contains(k));
  CHECK(j["summary"]["packets"] == 20);
  CHECK(j["summary"]["differed"] == 3);
  REQUIRE(j["differences"].size() == 3);
  const auto& first = j["differences"][0];
  CHECK(first["packet"] == 9);
  CHECK(first["time"].get<double>() == Approx(1714550400.008));
  CHECK(first["hook"] == "INPUT");
  CHECK(first["tuple"]["proto"] == "tcp");
  CHECK(first["tuple"]["dport"] == 80);
  CHECK(first["tuple"]["src"] == "198.51.100.7");
  CHECK(first["expected"]["verdict"] == "ACCEPT");
  CHECK(first["expected"]["rule"] == test::src_path(kHost) + ":10");
  CHECK(first["actual"]["verdict"] == "REJECT");
  CHECK(first["actual"]["rule"] == test::src_path(kEdited) + ":14");
  REQUIRE(j["rules"].is_array());
  bool saw = false;
  for (const auto& r : j["rules"])
    if (r["rule"] == test::src_path(kHost) + ":10") {
      saw = true;
      CHECK(r["hits"] == 1);
    }
  CHECK(saw);
  bool never = false;
  for (const auto& n : j["never_hit"])
    if (n["rule"] == test::src_path(kEdited) + ":10" && n["side"] == "actual") never = true;
  CHECK(never);

  std::string md = render_markdown(d.rep);
  CHECK(md.find("## nf2bpf diff: `") == 0);
  CHECK(md.find("**Result: 3 packets differ**") != std::string::npos);
  CHECK(md.find("| packets | agreed | differed | indeterminate | skipped |\n|---:|---:|---:|---:|---:|\n| 20 | 17 | 3 "
                "| 0 | 0 |") != std::string::npos);
  CHECK(md.find("### Differences") != std::string::npos);
  CHECK(md.find("| 9 | 08:00:00.008000 | `tcp 198.51.100.7:40001 -> 192.0.2.10:80 [S]` | INPUT (NEW) | **ACCEPT**") !=
        std::string::npos);
  CHECK(md.find("### Never hit") != std::string::npos);

  std::string text = render_text(d.rep);
  CHECK(text.find("packets 20, agreed 17, differed 3, indeterminate 0, skipped 0") != std::string::npos);
  CHECK(text.find(
            "  packet 9  2024-05-01 08:00:00.008000  tcp 198.51.100.7:40001 -> 192.0.2.10:80 [S]  INPUT (ct NEW)") !=
        std::string::npos);
  CHECK(text.find("result: 3 packets differ") != std::string::npos);
}

TEST_CASE("synthesize: every rule gets a packet, and the boundaries catch a one-port change") {
  char tmpl[] = "/tmp/nf2bpf-synth-XXXXXX";
  REQUIRE(mkdtemp(tmpl));
  std::string out = std::string(tmpl) + "/probe.pcapng";
  Translation t = load(kHost);
  auto res = synthesize(t.ruleset, t.pipeline, out);
  REQUIRE(res.ok());
  CHECK(res->rules_total == 11);
  CHECK(res->rules_covered == 11);
  CHECK(res->boundary_packets > 0);
  // Diffing the capture against the same rules: equivalent; against the
  // edited rules: the probes of port 80 (and its edges) differ.
  DiffRun same(out, kHost, kHost, HostOptions{});
  CHECK(same.rep.skipped == 0);
  CHECK(same.rep.differed == 0);
  CHECK(same.rep.indeterminate == 0);
  DiffRun changed(out, kHost, kEdited, HostOptions{});
  CHECK(changed.rep.differed >= 1);
  for (const auto& p : changed.rep.differences) CHECK(p.tuple.find(":80 [") != std::string::npos);
  std::remove(out.c_str());
  rmdir(tmpl);
}

TEST_CASE("synthesize: port-range and CIDR edges and each connection state") {
  char tmpl[] = "/tmp/nf2bpf-synth-XXXXXX";
  REQUIRE(mkdtemp(tmpl));
  std::string out = std::string(tmpl) + "/edges.pcapng";
  TranslateOptions opt;
  opt.allow_partial = true;
  Translation t = translate_source({"edges.rules",
                                    "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n"
                                    "-A INPUT -m state --state ESTABLISHED -j ACCEPT\n"
                                    "-A INPUT -s 10.1.0.0/16 -p tcp --dport 1000:2000 -j ACCEPT\n"
                                    "COMMIT\n"},
                                   opt);
  REQUIRE_FALSE(t.diags.has_errors());
  auto res = synthesize(t.ruleset, t.pipeline, out);
  REQUIRE(res.ok());
  CHECK(res->rules_covered == 2);
  auto cap = CaptureReader::open(out);
  REQUIRE(cap.ok());
  std::set<uint16_t> dports;
  std::set<std::string> srcs;
  std::set<uint8_t> flags;
  Frame f;
  while ((*cap)->next(f)) {
    Captured c;
    REQUIRE(decode(**cap, f, c) == "");
    if (c.packet.l4proto != 6) continue;
    dports.insert(c.packet.dport);
    srcs.insert(ir::format_addr(c.packet.saddr));
    flags.insert(c.packet.tcp_flags);
  }
  for (uint16_t p : {999, 1000, 2000, 2001}) CHECK(dports.count(p));
  for (const char* a : {"10.0.255.255", "10.1.0.0", "10.1.255.255", "10.2.0.0"}) CHECK(srcs.count(a));
  CHECK(flags.count(0x02));  // SYN
  CHECK(flags.count(0x12));  // SYN-ACK of the handshake, and the stray one for INVALID
  CHECK(flags.count(0x10));  // the ACK that is ESTABLISHED
  std::remove(out.c_str());
  rmdir(tmpl);
}

TEST_CASE("diff, default mode: the compiled policy's userspace model behind the same interface") {
  Translation t = load(kHost);
  diag::Diagnostics cd;
  policy::Policy pol = policy::compile(t, cd);
  REQUIRE_FALSE(cd.has_errors());
  for (const char* capture : {"testdata/pcap/tcp-stateful.pcap", "testdata/pcap/udp.pcap", "testdata/pcap/icmp.pcap",
                              "testdata/pcap/ipv6.pcap", "testdata/pcap/vlan.pcap", "testdata/pcap/sll2.pcap"}) {
    INFO(capture);
    HostModel host(host_opts({"192.0.2.10", "2001:db8::10"}));
    ReferenceEngine ref(t.ruleset, t.pipeline, host);
    PolicyEngine compiled(pol, host, t.ruleset.source);
    auto cap = CaptureReader::open(test::src_path(capture));
    REQUIRE(cap.ok());
    DiffReport rep = run_diff(**cap, host, ref, compiled);
    CHECK(rep.differed == 0);
    CHECK(rep.indeterminate == 0);
    CHECK(rep.agreed + rep.skipped == rep.packets);
    // Hits are reported per source rule on both sides, and agree.
    auto count = [](const std::vector<RuleHits>& v, const std::string& loc) {
      uint64_t n = 0;
      for (const auto& h : v)
        if (h.location == loc && !h.policy) n += h.hits;
      return n;
    };
    for (int line : {7, 8, 9, 10, 11, 13, 14}) {
      std::string loc = test::src_path(kHost) + ":" + std::to_string(line);
      CHECK(count(rep.expected_hits, loc) == count(rep.actual_hits, loc));
    }
  }
}
