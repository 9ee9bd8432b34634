// sync --watch: a change of kube-proxy's service chains read from those chains
// alone (ops/fast_update.h). Each accepted change must give the backends the
// compiler gives the whole new ruleset; each change it cannot prove so is
// refused with a reason (the watch then reads everything).
#include <catch2/catch.hpp>

#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "ops/fast_update.h"
#include "tests/helpers.h"
#include "translator/ir/values.h"
#include "translator/policy/compile.h"

using namespace nf2bpf;

namespace {

struct Svc {
  std::vector<std::string> eps;  // endpoint addresses, port 8080 (IPv6 without brackets)
  bool hairpin = true;           // endpoint chains mark their own address for masquerade
  uint16_t port = 8080;
};

std::string sep(size_t i, const std::string& ep) {
  std::string n = "KUBE-SEP-" + std::to_string(i) + "-";
  for (char c : ep) n += std::isalnum((unsigned char)c) ? (char)std::toupper((unsigned char)c) : 'X';
  return n;
}

// A kube-proxy (iptables mode) nat table: ClusterIP 10.96.0.i:80/tcp (or
// fd00:96::i) per Service, its load-balancing chain KUBE-SVC-i, an endpoint
// chain per endpoint; `extra` lines go into KUBE-SERVICES.
std::string kube(const std::vector<Svc>& svcs, int fam = 4, const std::string& extra = "") {
  std::string decl =
                  "*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n"
                  ":KUBE-MARK-MASQ - [0:0]\n",
              rules =
                  "-A PREROUTING -j KUBE-SERVICES\n-A OUTPUT -j KUBE-SERVICES\n"
                  "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000\n" +
                  extra;
  std::string host = fam == 6 ? "/128" : "/32", cidr = fam == 6 ? "fd00:244::/64" : "10.244.0.0/16";
  for (size_t i = 0; i < svcs.size(); ++i) {
    std::string svc = "KUBE-SVC-" + std::to_string(i);
    std::string vip = (fam == 6 ? "fd00:96::" : "10.96.0.") + std::to_string(i + 1);
    decl += ":" + svc + " - [0:0]\n";
    rules += "-A KUBE-SERVICES -d " + vip + host + " -p tcp -m comment --comment \"ns/svc-" + std::to_string(i) +
             ":p cluster IP\" -m tcp --dport 80 -j " + svc + "\n";
    rules += "-A " + svc + " ! -s " + cidr + " -d " + vip + host + " -p tcp -m comment --comment \"ns/svc-" +
             std::to_string(i) + ":p cluster IP\" -m tcp --dport 80 -j KUBE-MARK-MASQ\n";
    const auto& eps = svcs[i].eps;
    for (size_t j = 0; j < eps.size(); ++j) {
      std::string c = sep(i, eps[j]);
      decl += ":" + c + " - [0:0]\n";
      std::string to = (fam == 6 ? "[" + eps[j] + "]" : eps[j]) + ":" + std::to_string(svcs[i].port);
      rules += "-A " + svc + " -m comment --comment \"ns/svc-" + std::to_string(i) + ":p -> " + to + "\"";
      if (j + 1 < eps.size()) {
        char p[32];
        std::snprintf(p, sizeof p, "%.11f", 1.0 / (double)(eps.size() - j));
        rules += std::string(" -m statistic --mode random --probability ") + p;
      }
      rules += " -j " + c + "\n";
      if (svcs[i].hairpin)
        rules += "-A " + c + " -s " + eps[j] + host + " -m comment --comment \"ns/svc-" + std::to_string(i) +
                 ":p\" -j KUBE-MARK-MASQ\n";
      rules += "-A " + c + " -p tcp -m comment --comment \"ns/svc-" + std::to_string(i) +
               ":p\" -m tcp -j DNAT --to-destination " + to + "\n";
    }
  }
  return decl + rules + "COMMIT\n";
}

struct Read {
  Translation tr;
  policy::Policy pol;
  std::shared_ptr<ops::NatChains> chains;
};

Read read(const std::string& text, int fam = 4) {
  TranslateOptions opt;
  opt.allow_partial = true;
  opt.from = fam == 6 ? "ip6tables" : "iptables";
  Read r{translate_source({"kube.rules", text}, opt, {}), {}, nullptr};
  INFO(text);
  REQUIRE_FALSE(r.tr.diags.has_errors());
  // As read from the kernel: tables iptables-nft wrote.
  for (auto& t : r.tr.ruleset.tables) t.iptables_rules = true;
  diag::Diagnostics d;
  r.pol = policy::compile(r.tr, d);
  REQUIRE_FALSE(d.has_errors());
  r.chains = ops::nat_chains_of(r.tr.ruleset);
  REQUIRE(r.chains);
  return r;
}

// The chains that differ between two reads, as notifications name them.
ops::ChainChanges diff(const ops::NatChains& a, const ops::NatChains& b, uint8_t fam,
                       const std::string& table = "nat") {
  ops::ChainChanges out;
  const auto &x = a.tables.at({fam, table}).chains, &y = b.tables.at({fam, table}).chains;
  for (const auto& [c, lines] : x)
    if (!y.count(c) || y.at(c) != lines) out[{fam, table, c}] = !y.count(c);
  for (const auto& [c, lines] : y)
    if (!x.count(c)) out[{fam, table, c}] = false;
  return out;
}

struct Outcome {
  std::string reason;  // "" when planned
  ops::FastUpdate update;
  std::vector<std::string> reads;
};

Outcome plan(const Read& before, const Read& after, uint8_t fam, ops::ChainChanges changes) {
  Outcome o;
  auto reader = [&](uint8_t f, const std::string& table, const std::string& c,
                    bool nft) -> Result<std::vector<std::string>> {
    CHECK(f == fam);
    CHECK(nft == after.chains->tables.at({f, table}).nft);
    o.reads.push_back(c);
    const auto& t = after.chains->tables.at({f, table}).chains;
    if (!t.count(c)) return Error{ENOENT, "no chain " + c};
    return t.at(c);
  };
  auto r = ops::plan_fast_update(*before.chains, changes, before.pol, reader);
  if (auto* u = std::get_if<ops::FastUpdate>(&r))
    o.update = *u;
  else
    o.reason = std::get<std::string>(r);
  return o;
}

// The plan applied to the old policy gives the new policy's backends, and
// the old chains updated are the new ones.
void same_as_full_read(const Read& before, const Read& after, const Outcome& o) {
  INFO(o.reason);
  REQUIRE(o.reason.empty());
  REQUIRE(before.pol.services.size() == after.pol.services.size());
  auto pol = before.pol;
  for (const auto& [id, b] : o.update.services) pol.services.at(id).backends = b;
  for (size_t i = 0; i < pol.services.size(); ++i) {
    INFO(pol.services[i].name);
    CHECK(pol.services[i].name == after.pol.services[i].name);
    CHECK(pol.services[i].backends == after.pol.services[i].backends);
  }
  ops::NatChains nc = *before.chains;
  ops::apply_chains(nc, o.update);
  for (const auto& [key, table] : after.chains->tables) {
    CHECK(nc.tables.at(key).chains == table.chains);
    CHECK(nc.tables.at(key).referrers == table.referrers);
  }
}

// A change from `before` to `after` (IPv4, in `table`) the planner refuses,
// for a reason that says `why`.
Outcome refusal(const Read& before, const Read& after, const std::string& table, const std::string& why) {
  auto o = plan(before, after, 4, diff(*before.chains, *after.chains, 4, table));
  INFO(o.reason);
  CHECK(o.reason.find(why) != std::string::npos);
  return o;
}

const std::vector<std::string> kThree = {"10.244.1.2", "10.244.2.2", "10.244.3.2"};

}  // namespace

TEST_CASE("fast update: endpoints removed, added and replaced give the full read's backends") {
  Read before = read(kube({{kThree}, {{"10.244.9.2"}}}));
  REQUIRE(before.pol.services.size() == 2);
  SECTION("one endpoint removed: the load-balancing chain is read, the deleted endpoint chain not") {
    Read after = read(kube({{{"10.244.1.2", "10.244.3.2"}}, {{"10.244.9.2"}}}));
    auto o = plan(before, after, 4, diff(*before.chains, *after.chains, 4));
    same_as_full_read(before, after, o);
    CHECK(o.reads == std::vector<std::string>{"KUBE-SVC-0"});
    CHECK(o.update.services.size() == 1);
  }
  SECTION("an endpoint added: the new endpoint chain is read too") {
    Read after = read(kube({{{"10.244.1.2", "10.244.2.2", "10.244.3.2", "10.244.4.2"}}, {{"10.244.9.2"}}}));
    auto o = plan(before, after, 4, diff(*before.chains, *after.chains, 4));
    same_as_full_read(before, after, o);
    CHECK(o.update.chains_read == 2);
  }
  SECTION("down to one endpoint, and up from one") {
    Read after = read(kube({{{"10.244.2.2"}}, {{"10.244.9.2", "10.244.8.2"}}}));
    same_as_full_read(before, after, plan(before, after, 4, diff(*before.chains, *after.chains, 4)));
  }
  SECTION("a chain rewritten as it was: no service changes") {
    ops::ChainChanges same{{{4, "nat", "KUBE-SVC-0"}, false}};
    auto o = plan(before, before, 4, same);
    REQUIRE(o.reason.empty());
    CHECK(o.update.services.empty());
  }
}

TEST_CASE("fast update: IPv6 endpoints") {
  Read before = read(kube({{{"fd00:244::1:2", "fd00:244::2:2"}}}, 6), 6);
  REQUIRE(before.pol.services.size() == 1);
  Read after = read(kube({{{"fd00:244::2:2", "fd00:244::5:2", "fd00:244::6:2"}}}, 6), 6);
  same_as_full_read(before, after, plan(before, after, 6, diff(*before.chains, *after.chains, 6)));
}

TEST_CASE("fast update: changes it cannot prove are left to a full read, with the reason") {
  Read before = read(kube({{kThree}, {{"10.244.9.2"}}}));
  auto refused = [&](const std::string& text, const std::string& why) {
    return refusal(before, read(text), "nat", why);
  };
  SECTION("the rules before the cascade changed") {
    std::string t = kube({{{"10.244.1.2", "10.244.3.2"}}, {{"10.244.9.2"}}});
    t.replace(t.find("-j KUBE-MARK-MASQ"), 17, "-j RETURN");
    refused(t, "before its endpoint choice changed");
  }
  SECTION("a draw that is not uniform") {
    std::string t = kube({{{"10.244.1.2", "10.244.3.2"}}, {{"10.244.9.2"}}});
    t.replace(t.find("0.50000000000"), 13, "0.30000000000");
    refused(t, "not uniform");
  }
  SECTION("a new Service: KUBE-SERVICES changed, refused before reading any chain") {
    auto o = refused(kube({{kThree}, {{"10.244.9.2"}}, {{"10.244.7.2"}}}), "KUBE-SERVICES is not a service's");
    CHECK(o.reads.empty());
  }
  SECTION("an endpoint chain of another form (no hairpin mark)") {
    Svc s{{"10.244.1.2", "10.244.2.2", "10.244.3.2", "10.244.4.2"}};
    std::string t = kube({s, {{"10.244.9.2"}}});
    std::string c = sep(0, "10.244.4.2");
    // Only the new endpoint chain loses its mark rule.
    t.erase(t.find("-A " + c + " -s"), t.find('\n', t.find("-A " + c + " -s")) - t.find("-A " + c + " -s") + 1);
    refused(t, "differs in more than its endpoint");
  }
  SECTION("an endpoint chain that another chain also reaches") {
    std::string extra = "-A KUBE-SERVICES -d 10.96.1.1/32 -p tcp -m tcp --dport 81 -j " + sep(0, "10.244.2.2") + "\n";
    before = read(kube({{kThree}, {{"10.244.9.2"}}}, 4, extra));
    // The endpoints' port changes: every endpoint chain of svc-0 changes.
    Svc moved{kThree};
    moved.port = 9090;
    refused(kube({moved, {{"10.244.9.2"}}}, 4, extra), "also reached from KUBE-SERVICES");
  }
  SECTION("chains that are not the ones the live policy was made of") {
    Read other = read(kube({{{"10.244.5.2", "10.244.6.2", "10.244.7.2"}}, {{"10.244.9.2"}}}));
    Read after = read(kube({{{"10.244.1.2", "10.244.3.2"}}, {{"10.244.9.2"}}}));
    before.pol = other.pol;
    auto o = plan(before, after, 4, diff(*before.chains, *after.chains, 4));
    CHECK(o.reason.find("are not the last full read's") != std::string::npos);
  }
  SECTION("a change outside the nat table, or the load-balancing chain deleted") {
    auto o = plan(before, before, 4, {{{4, "filter", "KUBE-FORWARD"}, false}});
    CHECK(o.reason.find("outside") != std::string::npos);
    o = plan(before, before, 4, {{{0, "nat", "KUBE-SVC-0"}, false}});
    CHECK(o.reason.find("outside") != std::string::npos);
    o = plan(before, before, 4, {{{4, "nat", "KUBE-SVC-0"}, true}});
    CHECK(o.reason.find("was deleted") != std::string::npos);
  }
}

namespace {

// A kube-proxy (nftables mode) table as `nft list ruleset` prints it:
// ClusterIP 10.96.0.i:80/tcp (or fd00:96::i) per Service in @service-ips,
// its chain service-i ending in a numgen verdict map, an endpoint chain per
// endpoint.
std::string kube_nft(const std::vector<Svc>& svcs, int fam = 4) {
  std::string ip = fam == 6 ? "ip6" : "ip", cidr = fam == 6 ? "fd00:244::/64" : "10.244.0.0/16";
  std::string elements, chains;
  for (size_t i = 0; i < svcs.size(); ++i) {
    std::string svc = "service-" + std::to_string(i) + "-ns/svc-" + std::to_string(i) + "/tcp/p";
    std::string vip = (fam == 6 ? "fd00:96::" : "10.96.0.") + std::to_string(i + 1);
    elements += (elements.empty() ? "" : ", ") + vip + " . tcp . 80 : goto " + svc;
    chains += "  chain " + svc + " {\n    " + ip + " daddr " + vip + " tcp dport 80 " + ip + " saddr != " + cidr +
              " jump mark-for-masquerade\n    numgen random mod " + std::to_string(svcs[i].eps.size()) + " vmap { ";
    std::string eps;
    for (size_t j = 0; j < svcs[i].eps.size(); ++j) {
      const std::string& ep = svcs[i].eps[j];
      std::string c = "endpoint-" + sep(i, ep).substr(9) + "-ns/svc-" + std::to_string(i) + "/tcp/p__" + ep;
      std::string to = (fam == 6 ? "[" + ep + "]" : ep) + ":" + std::to_string(svcs[i].port);
      chains += (j ? ", " : "") + std::to_string(j) + " : goto " + c;
      eps += "  chain " + c + " {\n";
      if (svcs[i].hairpin) eps += "    " + ip + " saddr " + ep + " jump mark-for-masquerade\n";
      eps += "    meta l4proto tcp dnat to " + to + "\n  }\n";
    }
    chains += " }\n  }\n" + eps;
  }
  std::string addr = fam == 6 ? "ipv6_addr" : "ipv4_addr";
  return "table " + ip + " kube-proxy {\n  map service-ips {\n    type " + addr +
         " . inet_proto . inet_service : verdict\n    elements = { " + elements +
         " }\n  }\n"
         "  chain nat-prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n    jump services\n  "
         "}\n"
         "  chain nat-output {\n    type nat hook output priority -100; policy accept;\n    jump services\n  }\n"
         "  chain nat-postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n"
         "    jump masquerading\n  }\n"
         "  chain masquerading {\n    meta mark & 0x00004000 == 0x00000000 return\n"
         "    meta mark set meta mark ^ 0x00004000\n    masquerade fully-random\n  }\n"
         "  chain mark-for-masquerade {\n    meta mark set meta mark | 0x00004000\n  }\n"
         "  chain services {\n    " +
         ip + " daddr . meta l4proto . th dport vmap @service-ips\n  }\n" + chains + "}\n";
}

Read read_nft(const std::string& text, int fam = 4) {
  TranslateOptions opt;
  opt.allow_partial = true;
  opt.from = "nft";
  Read r{translate_source({"kube.nft", text}, opt, {}), {}, nullptr};
  INFO(text);
  REQUIRE_FALSE(r.tr.diags.has_errors());
  diag::Diagnostics d;
  r.pol = policy::compile(r.tr, d);
  REQUIRE_FALSE(d.has_errors());
  r.chains = ops::nat_chains_of(r.tr.ruleset);
  REQUIRE(r.chains);
  REQUIRE(r.chains->tables.at({(uint8_t)fam, "kube-proxy"}).nft);
  return r;
}

}  // namespace

TEST_CASE("fast update, nftables mode: endpoints removed, added and replaced give the full read's backends") {
  Read before = read_nft(kube_nft({{kThree}, {{"10.244.9.2"}}}));
  REQUIRE(before.pol.services.size() == 2);
  CHECK(before.pol.services[0].name == "kube-proxy/service-0-ns/svc-0/tcp/p");
  auto lb = before.chains->tables.at({4, "kube-proxy"}).chains.at("service-0-ns/svc-0/tcp/p");
  REQUIRE(lb.size() == 2);
  INFO(lb[0] + "\n" + lb[1]);
  CHECK(lb[1].rfind("numgen random mod 3 vmap { 0 : goto endpoint-", 0) == 0);
  SECTION("one endpoint removed: only the load-balancing chain is read") {
    Read after = read_nft(kube_nft({{{"10.244.1.2", "10.244.3.2"}}, {{"10.244.9.2"}}}));
    auto o = plan(before, after, 4, diff(*before.chains, *after.chains, 4, "kube-proxy"));
    same_as_full_read(before, after, o);
    CHECK(o.reads == std::vector<std::string>{"service-0-ns/svc-0/tcp/p"});
    CHECK(o.update.services.size() == 1);
  }
  SECTION("an endpoint added, and one replaced") {
    Read after = read_nft(kube_nft({{{"10.244.1.2", "10.244.5.2", "10.244.3.2", "10.244.4.2"}}, {{"10.244.9.2"}}}));
    auto o = plan(before, after, 4, diff(*before.chains, *after.chains, 4, "kube-proxy"));
    same_as_full_read(before, after, o);
    CHECK(o.update.chains_read == 3);
  }
  SECTION("IPv6, and down to one endpoint") {
    Read b6 = read_nft(kube_nft({{{"fd00:244::1:2", "fd00:244::2:2"}}}, 6), 6);
    Read a6 = read_nft(kube_nft({{{"fd00:244::2:2"}}}, 6), 6);
    same_as_full_read(b6, a6, plan(b6, a6, 6, diff(*b6.chains, *a6.chains, 6, "kube-proxy")));
  }
}

TEST_CASE("fast update, nftables mode: changes it cannot prove are left to a full read, with the reason") {
  Read before = read_nft(kube_nft({{kThree}, {{"10.244.9.2"}}}));
  auto refused = [&](const std::string& text, const std::string& why) {
    return refusal(before, read_nft(text), "kube-proxy", why);
  };
  SECTION("the rules before the endpoint choice changed") {
    std::string t = kube_nft({{{"10.244.1.2", "10.244.3.2"}}, {{"10.244.9.2"}}});
    t.replace(t.find("tcp dport 80 ip saddr"), 12, "tcp dport 81");
    refused(t, "before its endpoint choice changed");
  }
  SECTION("a choice that is not uniform: a value drawn to no endpoint") {
    std::string t = kube_nft({{{"10.244.1.2", "10.244.3.2"}}, {{"10.244.9.2"}}});
    t.replace(t.find("numgen random mod 2"), 19, "numgen random mod 3");
    refused(t, "is not one this reads");
  }
  SECTION("jump instead of goto") {
    std::string t = kube_nft({{{"10.244.1.2", "10.244.3.2"}}, {{"10.244.9.2"}}});
    t.replace(t.find("vmap { 0 : goto"), 15, "vmap { 0 : jump");
    refused(t, "not one this reads");
  }
  SECTION("a new Service: the map's elements changed (services' chain is not a service's)") {
    // A notification of the map comes as `other`; a chain named alone is
    // checked as well.
    auto o = plan(before, before, 4, {{{4, "kube-proxy", "services"}, false}});
    CHECK(o.reason.find("services is not a service's") != std::string::npos);
    CHECK(o.reads.empty());
  }
  SECTION("an endpoint chain of another form (no hairpin mark)") {
    Svc s{{"10.244.1.2", "10.244.2.2", "10.244.3.2", "10.244.4.2"}};
    s.hairpin = false;
    refused(kube_nft({s, {{"10.244.9.2"}}}), "differs in more than its endpoint");
  }
  SECTION("an endpoint chain a named map also reaches") {
    auto with_map = [](std::string t) {
      std::string ep = "endpoint-0-10X244X2X2-ns/svc-0/tcp/p__10.244.2.2";
      t.insert(t.find("  chain nat-prerouting"),
               "  map other {\n    type inet_service : verdict\n    elements = { 81 : goto " + ep + " }\n  }\n");
      return t;
    };
    before = read_nft(with_map(kube_nft({{kThree}, {{"10.244.9.2"}}})));
    Svc moved{{"10.244.1.2", "10.244.2.2"}};  // and every endpoint chain's port changes
    moved.port = 9090;
    refused(with_map(kube_nft({moved, {{"10.244.9.2"}}})), "also reached from @other");
  }
  SECTION("a change to another table") {
    auto o = plan(before, before, 4, {{{4, "filter", "INPUT"}, false}});
    CHECK(o.reason.find("outside the tables the last full read kept (ip filter)") != std::string::npos);
  }
}
