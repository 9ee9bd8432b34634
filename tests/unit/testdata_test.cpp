// The realistic rulesets in testdata/iptables/ (real iptables-save output):
// every one translates without errors, and a few facts per file show the
// front-end understood what the ruleset says, not just that it did not choke.
#include <catch2/catch.hpp>
#include <filesystem>
#include <set>

#include "tests/helpers.h"
#include "translator/capabilities/capabilities.h"
#include "translator/ir/dump.h"

using namespace nf2bpf;
namespace fs = std::filesystem;

namespace {

std::string ipsets_for(const fs::path& rules) {
  fs::path p = fs::path(test::src_path("testdata/ipset")) / rules.filename();
  p.replace_extension(".save");
  return fs::exists(p) ? p.string() : "";
}

Translation load(const std::string& name, bool allow_partial = true, bool with_ipsets = true) {
  std::string path = test::src_path("testdata/iptables/" + name);
  TranslateOptions opt;
  opt.allow_partial = allow_partial;
  if (with_ipsets) opt.ipsets_path = ipsets_for(path);
  auto tr = translate_file(path, opt);
  REQUIRE(tr.ok());
  return std::move(*tr);
}

std::string all_diags(const Translation& tr) {
  std::string s;
  for (const auto& d : tr.diags.all()) s += diag::render(d);
  return s;
}

const ir::Table& table(const Translation& tr, std::string_view name, ir::Family fam = ir::Family::Ip) {
  for (const auto& t : tr.ruleset.tables)
    if (t.name == name && t.family == fam) return t;
  FAIL("no table " << name);
  throw;
}

size_t chains_with_prefix(const ir::Table& t, std::string_view prefix) {
  size_t n = 0;
  for (const auto& c : t.chains) n += c.name.starts_with(prefix);
  return n;
}

size_t count_stmts(const ir::Table& t, ir::StmtKind k) {
  size_t n = 0;
  for (const auto& c : t.chains)
    for (const auto& r : c.rules)
      for (const auto& s : r.statements) n += s.kind == k;
  return n;
}

size_t count_diags(const Translation& tr, std::string_view needle) {
  size_t n = 0;
  for (const auto& d : tr.diags.all()) n += d.message.find(needle) != std::string::npos;
  return n;
}

const ir::Rule& rule_at(const Translation& tr, uint32_t line) {
  for (const auto& t : tr.ruleset.tables)
    for (const auto& c : t.chains)
      for (const auto& r : c.rules)
        if (r.loc.line == line) return r;
  FAIL("no rule at line " << line);
  throw;
}

}  // namespace

TEST_CASE("testdata: every ruleset translates with no errors") {
  std::vector<fs::path> files;
  for (auto& e : fs::directory_iterator(test::src_path("testdata/iptables")))
    if (e.path().extension() == ".rules") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  REQUIRE(files.size() >= 8);
  for (const auto& f : files) {
    INFO(f.filename().string());
    Translation tr = load(f.filename().string());
    INFO(all_diags(tr));
    CHECK(tr.diags.errors() == 0);
    CHECK(tr.ruleset.rule_count() > 0);
    CHECK(tr.rules.size() == tr.ruleset.rule_count());
    CHECK_FALSE(tr.pipeline.stages.empty());
    CHECK_FALSE(tr.rejected(true));
    // Without --allow-partial the exit status follows the unsupported count.
    Translation strict = load(f.filename().string(), false);
    CHECK(strict.rejected(false) == (strict.count(caps::Fidelity::Unsupported) > 0));
  }
}

TEST_CASE("testdata: docker host") {
  Translation tr = load("docker-host.rules");
  CHECK(tr.input_format == "iptables");
  const auto& filter = table(tr, "filter");
  const auto& nat = table(tr, "nat");
  CHECK(filter.find_chain("FORWARD")->base->policy == ir::VerdictKind::Drop);
  for (auto name : {"DOCKER", "DOCKER-USER", "DOCKER-ISOLATION-STAGE-1", "DOCKER-ISOLATION-STAGE-2"})
    CHECK(filter.find_chain(name) != nullptr);
  // Four published ports: one DNAT each, and the matching hairpin MASQUERADE.
  CHECK(count_stmts(nat, ir::StmtKind::Dnat) == 4);
  CHECK(count_stmts(nat, ir::StmtKind::Masquerade) == 6);
  const auto& dnat = nat.find_chain("DOCKER")->rules[2];
  REQUIRE(dnat.statements.size() == 1);
  CHECK(ir::dump(dnat.statements[0]) == "dnat to 172.17.0.2 ports 80-80 (-j DNAT)");
  CHECK(ir::dump(dnat.matches[0]) == "!iifname docker0");
  // Every rule translates exactly, the nat table's too: nat OUTPUT DNATs
  // the host's own connections to its addresses (--dst-type LOCAL) to the
  // containers, and the answers are handed to lo (nf_tc's to_lo).
  CHECK(tr.count(caps::Fidelity::Unsupported) == 0);
  CHECK(tr.count(caps::Fidelity::Approximate) == 0);
  // DOCKER-USER's conntrack original-destination match is understood, not opaque.
  const auto& user = filter.find_chain("DOCKER-USER")->rules[0];
  CHECK(ir::dump(user.matches[2]) == "ct-original-dport 8080");
  CHECK(ir::dump(user.matches[4]) == "!ct-original-saddr 203.0.113.0/24");
}

TEST_CASE("testdata: ufw host") {
  Translation tr = load("ufw-host.rules");
  const auto& filter = table(tr, "filter");
  CHECK(chains_with_prefix(filter, "ufw-") == 32);
  CHECK(filter.find_chain("INPUT")->base->policy == ir::VerdictKind::Drop);
  // ufw-not-local RETURNs before its DROP, so ufw-user-input stays reachable.
  CHECK(count_diags(tr, "never reached") == 0);
  // ufw's quoted comment: iptables-save escapes the inner single quotes.
  CHECK(rule_at(tr, 111).comment == "'dapp_Nginx%20Full'");
  // `ufw limit ssh` uses -m recent, its --update on a rule that jumps to
  // ufw-user-limit: it translates (tested once, by the jump's guard).
  CHECK(tr.count(caps::Fidelity::Unsupported) == 0);
  // LOG under -m limit is approximate and carries the prefix.
  const auto& log = filter.find_chain("ufw-user-limit")->rules[0];
  REQUIRE(log.statements.size() == 1);
  CHECK(log.statements[0].text == "[UFW LIMIT BLOCK] ");
  // Chains ufw declares but never fills or calls are reported, not errors.
  CHECK(count_diags(tr, "chain 'ufw-logging-allow' in table 'filter' is never jumped to") == 1);
}

TEST_CASE("testdata: kube-proxy node") {
  Translation tr = load("kube-proxy-node.rules");
  const auto& nat = table(tr, "nat");
  const auto& filter = table(tr, "filter");
  CHECK(chains_with_prefix(nat, "KUBE-SEP-") == 14);
  CHECK(chains_with_prefix(nat, "KUBE-SVC-") == 7);
  CHECK(chains_with_prefix(nat, "KUBE-SVL-") == 1);
  CHECK(chains_with_prefix(nat, "KUBE-FW-") == 1);
  CHECK(chains_with_prefix(nat, "KUBE-EXT-") == 2);
  // The well-known hash of default/kubernetes:https.
  const auto* api = nat.find_chain("KUBE-SVC-NPX46M4PTMTKRN6Y");
  REQUIRE(api != nullptr);
  // Three-endpoint service: probabilities 1/3 then 1/2, then the fall-through.
  const auto* web = nat.find_chain("KUBE-SVC-PY4JZH2ITZYEO4CN");
  REQUIRE(web != nullptr);
  REQUIRE(web->rules.size() == 4);
  CHECK(ir::dump(web->rules[1].matches[1]) == "opaque[-m statistic --probability --probability 0.33333333349]");
  CHECK(ir::dump(web->rules[2].matches[1]) == "opaque[-m statistic --probability --probability 0.50000000000]");
  CHECK(web->rules[3].matches.empty());
  CHECK(web->rules[3].verdict.kind == ir::VerdictKind::Jump);
  // KUBE-MARK-MASQ / KUBE-POSTROUTING: mark 0x4000 set, tested, cleared, MASQUERADE --random-fully.
  CHECK(ir::dump(nat.find_chain("KUBE-MARK-MASQ")->rules[0].statements[0]) ==
        "mark-set value 0x4000 mask 0x4000 (-j MARK)");
  const auto* post = nat.find_chain("KUBE-POSTROUTING");
  CHECK(ir::dump(post->rules[0].matches[0]) == "!mark & 0x4000 in 0x4000");
  // `--xor-mark 0x4000` as iptables-save prints it: new = (old & ~0) ^ 0x4000.
  CHECK(ir::dump(post->rules[1].statements[0]) == "mark-set value 0x4000 mask 0x0 (-j MARK)");
  CHECK(post->rules[2].statements[0].nat.fully_random);
  // KUBE-NODEPORTS is entered only for local destinations.
  const auto& last = nat.find_chain("KUBE-SERVICES")->rules.back();
  CHECK(last.verdict.chain == "KUBE-NODEPORTS");
  CHECK(ir::dump(last.matches[0]) == "daddr-type 0x4");
  // ClientIP affinity: -m recent in the SVC and SEP chains.
  size_t recent = 0;
  for (const auto& c : nat.chains)
    for (const auto& r : c.rules)
      for (const auto& m : r.matches) recent += m.module == "recent";
  CHECK(recent == 4);
  // Filter side: services without endpoints are rejected; the LB firewall drops.
  CHECK(filter.find_chain("KUBE-SERVICES")->rules.size() == 2);
  CHECK(filter.find_chain("KUBE-EXTERNAL-SERVICES")->rules.size() == 1);
  CHECK(filter.find_chain("KUBE-PROXY-FIREWALL")->rules[0].verdict.kind == ir::VerdictKind::Drop);
  CHECK(ir::dump(filter.find_chain("KUBE-FORWARD")->rules[1].matches[0]) == "mark & 0x4000 in 0x4000");
  // The rule with no target in KUBE-FW-* parses as a no-op.
  CHECK(nat.find_chain("KUBE-FW-QVL3QWCKMQNIGYWH")->rules.back().verdict.kind == ir::VerdictKind::Continue);
  CHECK(count_diags(tr, "never reached") == 0);
}

TEST_CASE("testdata: fail2ban host with and without its ipsets") {
  Translation tr = load("fail2ban-host.rules");
  CHECK(tr.ruleset.global_sets.size() == 4);
  CHECK(tr.count(caps::Fidelity::Unsupported) == 0);
  const auto& filter = table(tr, "filter");
  const auto* sshd = filter.find_chain("f2b-sshd");
  REQUIRE(sshd->rules.size() == 6);
  CHECK(sshd->rules[0].verdict.kind == ir::VerdictKind::Reject);
  CHECK(sshd->rules[0].verdict.reject_with == "icmp-port-unreachable");
  CHECK(sshd->rules.back().verdict.kind == ir::VerdictKind::Return);
  // The timed fail2ban sets are approximate; the permanent ones are exact.
  const auto& postfix = filter.find_chain("INPUT")->rules[4];
  CHECK(ir::dump(postfix.matches.back()) == "@f2b-postfix-sasl(saddr)");
  size_t approx_sets = 0;
  for (const auto& r : tr.rules) approx_sets += r.reason.find("set 'f2b-") != std::string::npos;
  CHECK(approx_sets == 2);
  CHECK(tr.rules[0].status == caps::Fidelity::Exact);  // blocklist-net, no timeout

  // Without the ipset file the set contents are unknown: those rules are unsupported.
  Translation bare = load("fail2ban-host.rules", true, false);
  CHECK(bare.diags.errors() == 0);
  CHECK(bare.count(caps::Fidelity::Unsupported) == 4);
}

TEST_CASE("testdata: router with NAT, and its -c dump") {
  Translation tr = load("router-nat.rules");
  const auto& nat = table(tr, "nat");
  CHECK(count_stmts(nat, ir::StmtKind::Dnat) == 6);
  CHECK(count_stmts(nat, ir::StmtKind::Redirect) == 1);
  CHECK(count_stmts(nat, ir::StmtKind::Snat) == 3);
  CHECK(count_stmts(nat, ir::StmtKind::Masquerade) == 1);
  CHECK(count_stmts(table(tr, "mangle"), ir::StmtKind::TcpMss) == 2);
  CHECK(count_stmts(table(tr, "raw"), ir::StmtKind::Notrack) == 2);
  const auto* pf = nat.find_chain("port_forward");
  CHECK(ir::dump(pf->rules[4].matches[1]) == "dport 27015-27030");
  CHECK(ir::dump(table(tr, "filter").find_chain("INPUT")->rules[3].matches[1]) == "!tcp-flags & 0x17 in 0x2");

  Translation c = load("router-nat-counters.rules");
  // Same ruleset, same verdicts; only counters differ.
  CHECK(c.ruleset.rule_count() == tr.ruleset.rule_count());
  CHECK(c.count(caps::Fidelity::Exact) == tr.count(caps::Fidelity::Exact));
  CHECK(c.count(caps::Fidelity::Unsupported) == tr.count(caps::Fidelity::Unsupported));
  size_t with_counters = 0;
  for (const auto& t : c.ruleset.tables)
    for (const auto& ch : t.chains)
      for (const auto& r : ch.rules) with_counters += r.counters.has_value();
  CHECK(with_counters == c.ruleset.rule_count());
  const auto& mangle = table(c, "mangle");
  CHECK(mangle.find_chain("PREROUTING")->counters->packets == 252353);
  CHECK(mangle.find_chain("PREROUTING")->rules[0].counters->packets == 1038872);
  CHECK(mangle.find_chain("PREROUTING")->rules[0].counters->bytes == 158947416);
}

TEST_CASE("testdata: IPv6 host") {
  Translation tr = load("ipv6-host.rules");
  CHECK(tr.input_format == "ip6tables");
  for (const auto& t : tr.ruleset.tables) CHECK(t.family == ir::Family::Ip6);
  const auto& filter = table(tr, "filter", ir::Family::Ip6);
  const auto* icmp = filter.find_chain("ICMPV6-IN");
  REQUIRE(icmp != nullptr);
  // Neighbour discovery: types 133-136 only with hop limit 255.
  size_t nd = 0;
  for (const auto& r : icmp->rules)
    if (r.matches.size() == 3 && ir::dump(r.matches[2]) == "ttl 255") ++nd;
  CHECK(nd == 4);
  CHECK(ir::dump(icmp->rules[2].matches[1]) == "icmpv6-type 3/0");
  CHECK(ir::dump(icmp->rules[6].matches[0]) == "saddr fe80::/10");
  const auto* svc = filter.find_chain("SERVICES");
  CHECK(ir::dump(svc->rules[4].matches.back()) == "saddr 2001:db8:2::10-2001:db8:2::ff");
  CHECK(ir::dump(svc->rules[5].matches[0]) == "!saddr 2001:db8::/32");
  CHECK(filter.find_chain("INPUT")->rules.back().verdict.reject_with == "icmp6-adm-prohibited");
}

TEST_CASE("testdata: iptables-save and ip6tables-save concatenated") {
  Translation tr = load("dualstack-web.rules");
  REQUIRE(tr.ruleset.tables.size() == 4);
  CHECK(tr.ruleset.tables[0].family == ir::Family::Ip);
  CHECK(tr.ruleset.tables[1].family == ir::Family::Ip);
  CHECK(tr.ruleset.tables[2].family == ir::Family::Ip6);
  CHECK(tr.ruleset.tables[3].family == ir::Family::Ip6);
  // Each family gets its own decision lists.
  size_t v4 = 0, v6 = 0;
  for (const auto& s : tr.pipeline.stages) (s.family == ir::Family::Ip ? v4 : v6)++;
  CHECK(v4 == 5);  // raw prerouting/output + filter input/forward/output
  CHECK(v6 == 5);
  CHECK(ir::dump(table(tr, "filter", ir::Family::Ip6).find_chain("INPUT")->rules[7].matches[1]) == "icmpv6-type 128");
}

// Every row of the iptables capability table is exercised by some golden
// input, so a new match or target cannot land without a golden test.
TEST_CASE("golden inputs cover every iptables capability") {
  std::set<std::string> used;
  for (auto& e : fs::directory_iterator(test::src_path("tests/golden/iptables"))) {
    if (e.path().extension() != ".rules") continue;
    frontend::Source src{e.path().filename().string(), test::read_file(e.path().string())};
    Translation tr = translate_source(src, {});
    for (const auto& t : tr.ruleset.tables) {
      used.insert("*" + t.name);
      for (const auto& c : t.chains)
        for (const auto& r : c.rules) {
          for (const auto& m : r.matches) used.insert(m.cap);
          for (const auto& s : r.statements) used.insert(s.cap);
          used.insert(r.verdict.cap);
          if (r.counters) used.insert("-c");
          if (!r.comment.empty()) used.insert("-m comment --comment");
        }
    }
  }
  for (const auto& row : caps::iptables_capabilities()) {
    INFO("capability row: " << row.kind << " " << row.name);
    CHECK(used.count(std::string(row.name)) == 1);
  }
}
