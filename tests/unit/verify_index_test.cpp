// The rule index must never change a verdict, a deciding rule or a hit
// count: random rulesets (jumps, RETURN, goto, marks, ranges, negations)
// and random packets, evaluated with and without it.
#include <catch2/catch.hpp>

#include <random>

#include "tests/helpers.h"
#include "verify/builder.h"
#include "verify/reference.h"

using namespace nf2bpf;
using namespace nf2bpf::verify;

namespace {

std::string random_rules(std::mt19937& rng, int n) {
  auto pick = [&](int k) { return (int)(rng() % (unsigned)k); };
  auto addr = [&]() {
    return "10.0." + std::to_string(pick(4)) + "." + std::to_string(pick(256)) +
           (pick(3) == 0 ? "/" + std::to_string(24 + pick(9)) : "");
  };
  std::string r = "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n:A - [0:0]\n:B - [0:0]\n";
  std::vector<std::string> chains = {"INPUT", "A", "B"};
  for (int i = 0; i < n; ++i) {
    std::string chain = chains[pick(10) < 7 ? 0 : 1 + pick(2)];
    std::string rule = "-A " + chain;
    if (pick(4)) rule += std::string(pick(5) == 0 ? " !" : "") + " -s " + addr();
    if (pick(3) == 0) rule += " -d 192.0.2." + std::to_string(pick(4)) + "/31";
    if (pick(2)) {
      rule += pick(2) ? " -p tcp" : " -p udp";
      if (pick(2)) {
        int lo = 1000 + pick(50);
        rule += std::string(pick(6) == 0 ? " !" : "") + " --dport " + std::to_string(lo) +
                (pick(2) ? ":" + std::to_string(lo + pick(20)) : "");
      }
    }
    if (pick(6) == 0) rule += " -m mark --mark " + std::to_string(pick(2));
    int t = pick(12);
    if (chain == "INPUT" && t == 0)
      rule += " -j A";
    else if (chain == "INPUT" && t == 1)
      rule += " -g B";
    else if (chain == "A" && t == 2)
      rule += " -j B";
    else if (t == 3 && chain != "INPUT")
      rule += " -j RETURN";
    else if (t == 4)
      rule += " -j MARK --set-mark 1";
    else if (t <= 7)
      rule += " -j ACCEPT";
    else if (t <= 9)
      rule += " -j DROP";
    else
      rule += " -j LOG";
    r += rule + "\n";
  }
  return r + "COMMIT\n";
}

// One packet, placed on `host`, decided by the indexed engine `a` and the
// full scan `b`: the two must agree on the verdict and the deciding rule.
std::pair<Decision, Decision> decide_both(HostModel& host, const PacketSpec& s, int i, ReferenceEngine& a,
                                          ReferenceEngine& b) {
  Captured c;
  auto ip = build_ip(s);
  REQUIRE(decode_ip(ip.data(), ip.size(), c.packet) == "");
  c.packet.time = 1000 + i;
  Traversal t;
  REQUIRE(host.place(c, t) == "");
  Decision x = a.decide(c.packet, t), y = b.decide(c.packet, t);
  INFO("packet " << i << " " << format_tuple(c.packet));
  CHECK(to_string(x.verdict) == std::string(to_string(y.verdict)));
  CHECK(x.rule.location == y.rule.location);
  return {x, y};
}

// A host on eth0 with the local addresses of `cidr`.
HostModel host_on(const char* cidr) {
  HostOptions ho;
  std::string err;
  ho.local.push_back(*ir::parse_cidr(cidr, ir::AddrFamily::V4, err));
  ho.iface = "eth0";
  return HostModel(ho);
}

// Every rule was counted as often with the index (`a`) as by the full scan.
void check_same_hits(const ReferenceEngine& a, const ReferenceEngine& b) {
  auto ha = a.hits(), hb = b.hits();
  REQUIRE(ha.size() == hb.size());
  for (size_t k = 0; k < ha.size(); ++k) {
    INFO(ha[k].location << " " << ha[k].text);
    CHECK(ha[k].hits == hb[k].hits);
  }
}

}  // namespace

TEST_CASE("rule index: same decisions and hits as a full scan on random rulesets") {
  std::mt19937 rng(20240501);
  for (int round = 0; round < 12; ++round) {
    std::string text = random_rules(rng, 150);
    TranslateOptions opt;
    opt.allow_partial = true;
    Translation tr = translate_source({"rand.rules", text}, opt);
    INFO(text);
    REQUIRE_FALSE(tr.diags.has_errors());
    // The index is in use (else this test would compare a scan with itself).
    bool indexed = false;
    for (const auto& st : tr.pipeline.stages) indexed |= RuleIndex(st).enabled();
    REQUIRE(indexed);
    HostModel host = host_on("192.0.2.0/29");
    ReferenceOptions with, without;
    without.use_index = false;
    ReferenceEngine a(tr.ruleset, tr.pipeline, host, with), b(tr.ruleset, tr.pipeline, host, without);
    for (int i = 0; i < 400; ++i) {
      PacketSpec s;
      s.saddr = ir::v4_to_u128(0x0a000000u | (uint32_t)(rng() % 4) << 8 | (uint32_t)(rng() % 256));
      s.daddr = ir::v4_to_u128(0xc0000200u | (uint32_t)(rng() % 4));
      s.proto = rng() % 2 ? 6 : 17;
      s.sport = (uint16_t)(30000 + rng() % 1000);
      s.dport = (uint16_t)(1000 + rng() % 80);
      INFO("round " << round);
      decide_both(host, s, i, a, b);
    }
    check_same_hits(a, b);
  }
}

// kube-proxy's rules: jumps three deep (KUBE-SERVICES -> KUBE-SVC -> KUBE-SEP
// -> KUBE-MARK-MASQ), the same chains inlined from several places, DNAT; the
// first rule of each inlined chain indexed by what its jumps test; in
// nftables mode, verdict maps with a goto per Service and per endpoint.
TEST_CASE("rule index: same decisions and hits as a full scan on kube-proxy's rules, both modes") {
  for (const char* file : {"testdata/kube-proxy/mix-8x3.rules", "testdata/kube-proxy/mix-8x3.nft"}) {
    INFO(file);
    TranslateOptions opt;
    opt.allow_partial = true;
    Translation tr = translate_file(test::src_path(file), opt).value();
    REQUIRE_FALSE(tr.diags.has_errors());
    HostModel host = host_on("192.168.49.2/32");
    ReferenceOptions with, without;
    without.use_index = false;
    ReferenceEngine a(tr.ruleset, tr.pipeline, host, with), b(tr.ruleset, tr.pipeline, host, without);
    REQUIRE(a.indexed_stages() > 0);
    std::mt19937 rng(7);
    const uint32_t dsts[] = {0x0a600101, 0x0a600102, 0x0a600103, 0x0a600104, 0x0a600105,
                             0x0a600108, 0xc0000203, 0xcb007104, 0xc0a83102, 0x0a6001f0};
    for (int i = 0; i < 600; ++i) {
      PacketSpec s;
      s.saddr = ir::v4_to_u128(rng() % 3 ? 0xc6336405u : 0x0af40002u);  // outside / a pod
      s.daddr = ir::v4_to_u128(dsts[rng() % std::size(dsts)]);
      s.proto = rng() % 4 ? 6 : 17;
      s.sport = (uint16_t)(30000 + rng() % 1000);
      s.dport = rng() % 3 ? (s.proto == 6 ? 80 : 53) : (uint16_t)(30000 + rng() % 8);
      auto [x, y] = decide_both(host, s, i, a, b);
      CHECK(x.same_outcome(y));
    }
    check_same_hits(a, b);
    // A verdict map's element tails are indexed by their keys: the rules
    // visited for every packet are not one per Service.
    for (size_t si = 0; si < tr.pipeline.stages.size(); ++si)
      if (tr.pipeline.stages[si].rules.size() > 64) CHECK(a.index_wildcards(si) < 8);
  }
}
