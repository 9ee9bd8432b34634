// The nftables JSON front-end: locations by JSON pointer, errors, commands,
// and the kernel reader's pairing of iptables-nft xt rules with the listing.
#include <catch2/catch.hpp>

#include "tests/unit/nft_support.h"
#include "translator/report/report.h"

using namespace nf2bpf;
using namespace nf2bpf::test;

namespace {

std::string wrap(const std::string& items) { return "{\"nftables\": [" + items + "]}"; }

const char* kTableChain =
    R"({"table": {"family": "inet", "name": "t"}},)"
    R"({"chain": {"family": "inet", "table": "t", "name": "c", "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}},)";

}  // namespace

TEST_CASE("nft json: rules are located by JSON pointer") {
  auto p = parse_nft_json(
      wrap(std::string(kTableChain) +
           R"({"rule": {"family": "inet", "table": "t", "chain": "c", "handle": 4, "expr": [)"
           R"({"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}},)"
           R"({"accept": null}]}})"));
  INFO(p.rendered());
  REQUIRE(p.diags.errors() == 0);
  const ir::Rule& r = p.rs.tables[0].chains[0].rules.at(0);
  CHECK(r.loc.str() == "rules.json#/nftables/2/rule");
  CHECK(r.matches.back().loc.str() == "rules.json#/nftables/2/rule/expr/0/match/left");
  CHECK(r.verdict.loc.str() == "rules.json#/nftables/2/rule/expr/1");
  CHECK(r.handle == 4u);
  CHECK(r.text == "tcp dport 22 accept");  // rendered in nft syntax for reports
}

TEST_CASE("nft json: value errors point into the expression") {
  auto p = parse_nft_json(wrap(
      std::string(kTableChain) +
      R"({"rule": {"family": "inet", "table": "t", "chain": "c", "expr": [)"
      R"({"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "10.0.0.300"}},)"
      R"({"drop": null}]}})"));
  REQUIRE(p.diags.errors() == 1);
  CHECK(p.diags.all()[0].loc.str() == "rules.json#/nftables/2/rule/expr/0/match/right");
  CHECK(p.diags.all()[0].message == "invalid IPv4 address '10.0.0.300'");
  CHECK(p.rs.rule_count() == 0);
}

TEST_CASE("nft json: structural errors are located too") {
  auto p =
      parse_nft_json(wrap(std::string(kTableChain) +
                          R"({"rule": {"family": "inet", "table": "t", "chain": "nope", "expr": [{"accept": null}]}},)"
                          R"({"rule": {"family": "inet", "table": "t", "chain": "c", "expr": [{"frobnicate": 1}]}},)"
                          R"({"rule": {"family": "inet", "table": "t", "chain": "c"}},)"
                          R"({"bogus": {}},)"
                          R"({"chain": {"family": "inet6", "table": "t", "name": "x"}})"));
  std::vector<std::string> got;
  for (const auto& d : p.diags.all()) got.push_back(d.loc.pointer + ": " + d.message);
  CHECK(got == std::vector<std::string>{
                   "/nftables/2/rule/chain: chain 'nope' does not exist in table 'inet t'",
                   "/nftables/3/rule/expr/0/frobnicate: unknown statement 'frobnicate'",
                   "/nftables/4/rule: rule without an 'expr' array",
                   "/nftables/5/bogus: unknown object 'bogus'",
                   "/nftables/6/chain/family: unknown family 'inet6'",
               });
}

TEST_CASE("nft json: syntax errors are located by line and column") {
  auto p = parse_nft_json("{\"nftables\": [\n  {\"table\": {\"family\": \"ip\",, \"name\": \"t\"}}\n]}\n");
  REQUIRE(p.diags.errors() == 1);
  CHECK(p.diags.all()[0].loc.line == 2);
  CHECK(p.diags.all()[0].loc.col == 29);  // the second comma
  CHECK(p.diags.all()[0].message.starts_with("invalid JSON: syntax error"));
  auto q = parse_nft_json("[1, 2]");
  REQUIRE(q.diags.errors() == 1);
  CHECK(q.diags.all()[0].message == "expected {\"nftables\": [...]} at the top level");
}

TEST_CASE("nft json: the report names JSON locations by table, chain and rule, not by JSON pointer") {
  TranslateOptions opt;
  opt.from = "nft-json";
  auto tr = translate_source(
      {"k.json", wrap(std::string(kTableChain) +
                      R"({"rule": {"family": "inet", "table": "t", "chain": "c", "expr": [)"
                      R"({"match": {"op": "==", "left": {"meta": {"key": "cpu"}}, "right": 1}}, {"drop": null}]}})")},
      opt);
  REQUIRE(tr.rules.size() == 1);
  CHECK(tr.rules[0].status == caps::Fidelity::Unsupported);
  auto j = report::json(tr);
  CHECK(j["rules"][0]["location"] == "k.json: table inet t, chain c, rule 1");  // no handle in this JSON
  CHECK(j["rules"][0]["text"] == "meta cpu 1 drop");
  CHECK(j["diagnostics"][0]["where"] == "table inet t, chain c, rule 1");
  CHECK(!j["diagnostics"][0].contains("pointer"));
  // The rule as nft prints it, under the location.
  CHECK(diag::render(tr.diags.all()[0]).find("\n    meta cpu 1 drop\n") != std::string::npos);
}

TEST_CASE("nft json: command objects (add, insert, delete, flush)") {
  auto p = parse_nft_json(wrap(
      R"({"add": {"table": {"family": "ip", "name": "old"}}},)"
      R"({"flush": {"ruleset": null}},)"
      R"({"add": {"table": {"family": "ip", "name": "t"}}},)"
      R"({"add": {"chain": {"family": "ip", "table": "t", "name": "c"}}},)"
      R"({"add": {"rule": {"family": "ip", "table": "t", "chain": "c", "expr": [{"drop": null}]}}},)"
      R"({"insert": {"rule": {"family": "ip", "table": "t", "chain": "c", "expr": [{"accept": null}]}}},)"
      R"({"add": {"rule": {"family": "ip", "table": "t", "chain": "c", "handle": 9, "expr": [{"return": null}]}}},)"
      R"({"delete": {"rule": {"family": "ip", "table": "t", "chain": "c", "handle": 9}}})"));
  INFO(p.rendered());
  REQUIRE(p.diags.errors() == 0);
  REQUIRE(p.rs.tables.size() == 1);
  const auto& rules = p.rs.tables[0].chains[0].rules;
  REQUIRE(rules.size() == 2);
  CHECK(rules[0].verdict.kind == ir::VerdictKind::Accept);
  CHECK(rules[1].verdict.kind == ir::VerdictKind::Drop);
}

TEST_CASE("nft json: 'kernel' input is the JSON libnftables prints") {
  TranslateOptions opt;
  opt.from = "kernel";
  auto tr = translate_source(
      {"kernel", wrap(std::string(kTableChain) +
                      R"({"rule": {"family": "inet", "table": "t", "chain": "c", "expr": [{"accept": null}]}})")},
      opt);
  CHECK(tr.ruleset.frontend == ir::Frontend::Kernel);
  CHECK(tr.input_format == "kernel");
  CHECK(tr.rules.size() == 1);
  CHECK(tr.pipeline.stages.size() == 1);
}

TEST_CASE("nft json: xt rules of iptables-nft take the text listing's translation, paired by handle") {
  // What libnftables prints for `-A INPUT -m conntrack --ctstate NEW -p tcp --dport 22 -j ACCEPT`
  // added with iptables-nft: the conntrack match stays in xtables form in JSON.
  std::string listing =
      "table ip filter {\n\tchain INPUT { # handle 1\n"
      "\t\ttype filter hook input priority filter; policy drop;\n"
      "\t\tct state new meta l4proto tcp tcp dport 22 counter packets 0 bytes 0 accept # handle 5\n"
      "\t\txt match recent counter packets 0 bytes 0 drop # handle 6\n"
      "\t}\n}\n";
  std::map<frontend::NftRuleKey, frontend::nft::RuleAst> subs;
  frontend::NftTextOptions topt;
  topt.on_rule = [&](ir::Family f, const std::string& t, const std::string& c, const frontend::nft::RuleAst& r) {
    if (r.handle) subs[{f, t, c, *r.handle}] = r;
  };
  diag::Diagnostics scratch;
  frontend::parse_nft_text({"listing", listing}, scratch, topt);
  REQUIRE(subs.size() == 2);

  std::string js = wrap(
      R"({"table": {"family": "ip", "name": "filter"}},)"
      R"({"chain": {"family": "ip", "table": "filter", "name": "INPUT", "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}},)"
      R"({"rule": {"family": "ip", "table": "filter", "chain": "INPUT", "handle": 5, "expr": [{"xt": {"type": "match", "name": "conntrack"}},)"
      R"({"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}},)"
      R"({"counter": {"packets": 0, "bytes": 0}}, {"accept": null}]}},)"
      R"({"rule": {"family": "ip", "table": "filter", "chain": "INPUT", "handle": 6, "expr": [{"xt": {"type": "match", "name": "recent"}}, {"counter": {"packets": 0, "bytes": 0}}, {"drop": null}]}})");
  Parsed with, without;
  frontend::NftJsonOptions jopt;
  jopt.frontend = ir::Frontend::Kernel;
  jopt.substitutes = &subs;
  with.rs = frontend::parse_nft_json({"kernel", js}, with.diags, jopt);
  without.rs = frontend::parse_nft_json({"kernel", js}, without.diags);
  INFO(with.rendered());
  REQUIRE(with.diags.errors() == 0);
  const auto& r = with.rs.tables[0].chains[0].rules;
  REQUIRE(r.size() == 2);
  CHECK(ir::dump(r[0].matches[0]) == "l4proto 6");
  CHECK(ir::dump(r[0].matches[1]) == "ct-state 0x8");
  CHECK(r[0].loc.pointer == "/nftables/2/rule");
  CHECK(r[1].matches[0].cap == "xt match");  // the listing could not translate it either
  // Without the listing the conntrack match is an opaque xt match.
  CHECK(without.rs.tables[0].chains[0].rules[0].matches[0].cap == "xt match");
}

TEST_CASE("nft json: comment-only xt matches (iptables-nft -m comment) are no-ops") {
  auto p = parse_nft_json(wrap(std::string(kTableChain) +
                               R"({"rule": {"family": "inet", "table": "t", "chain": "c", "expr": [)"
                               R"({"xt": {"type": "match", "name": "comment"}}, {"accept": null}]}})"));
  REQUIRE(p.diags.errors() == 0);
  CHECK(p.rs.tables[0].chains[0].rules[0].matches.empty());
}

TEST_CASE("nft json: the NAT forms of `nft -j list ruleset` lower as their text does") {
  // tests/unit/data/nat-forms.json is `nft -j list ruleset` (nft 1.0.6) of the
  // ruleset whose text listing is nat-forms.nft.
  auto j = parse_nft_json(read_file(src_path("tests/unit/data/nat-forms.json")));
  INFO(j.rendered());
  REQUIRE(j.diags.errors() == 0);
  auto t = parse_nft(read_file(src_path("tests/unit/data/nat-forms.nft")));
  REQUIRE(t.diags.errors() == 0);
  auto stmts = [](const ir::Ruleset& rs) {
    std::string out;
    for (const auto& tb : rs.tables)
      for (const auto& c : tb.chains)
        for (const auto& r : c.rules)
          for (const auto& st : r.statements) out += tb.name + "/" + c.name + ": " + ir::dump(st) + "\n";
    return out;
  };
  CHECK(stmts(j.rs) == stmts(t.rs));
  CHECK(stmts(j.rs).find("t/pre: netmap to 192.168.2.0/24 (dnat prefix)\n") != std::string::npos);
  CHECK(stmts(j.rs).find("t/post: masquerade fully-random persistent (masquerade fully-random)\n") !=
        std::string::npos);
  CHECK(deep_dump(j.rs) == deep_dump(t.rs));
  // The rule text reports show for JSON input is nft's own spelling.
  std::string texts;
  for (const auto& tb : j.rs.tables)
    for (const auto& c : tb.chains)
      for (const auto& r : c.rules) texts += r.text + "\n";
  CHECK(texts.find("\ndnat prefix to 192.168.2.0/24\n") != std::string::npos);
  CHECK(texts.find("\nmeta l4proto tcp snat to 10.0.0.1-10.0.0.5:1000-2000\n") != std::string::npos);
  CHECK(texts.find("\ntcp dport 80 dnat to [fd00::1]:80\n") != std::string::npos);
  CHECK(texts.find("\nmasquerade fully-random,persistent\n") != std::string::npos);
}

TEST_CASE("nft json: NAT in a filter chain is located by JSON pointer") {
  // nft: "Could not process rule: Operation not supported".
  auto p = parse_nft_json(wrap(
      std::string(kTableChain) +
      R"({"rule": {"family": "inet", "table": "t", "chain": "c", "expr": [{"dnat": {"family": "ip", "addr": "10.0.0.1"}}]}})"));
  std::string errs;
  for (const auto& d : p.diags.all())
    if (d.severity == diag::Severity::Error) errs += d.loc.str() + ": " + d.message + "\n";
  CHECK(errs == "rules.json#/nftables/2/rule/expr/0: dnat is only valid in a nat chain\n");
}
