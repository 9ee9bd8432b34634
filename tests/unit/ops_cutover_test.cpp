// The cut-over plan, decided without the kernel: cutover::make_plan on a
// translation and a synthesized snapshot of the live tables, and what ops
// adds to it (tables iptables-legacy holds) and the refusal hint.
#include <linux/netfilter.h>

#include <catch2/catch.hpp>

#include "ops/cutover_run.h"
#include "tests/unit/ops_support.h"

using namespace nf2bpf;
namespace co = nf2bpf::cutover;

namespace {

const char* kRules =
    "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:SSH - [0:0]\n"
    "-A INPUT -p tcp -m tcp --dport 22 -j SSH\n"
    "-A INPUT -p tcp -m tcp --dport 80 -j ACCEPT\n"
    "-A SSH -s 10.0.0.0/8 -j ACCEPT\n"
    "COMMIT\n";

// kRules with an unsupported rule in INPUT (left in netfilter with --allow-partial).
const char* kPartial =
    "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:SSH - [0:0]\n"
    "-A INPUT -p tcp -m string --string foo --algo bm\n"
    "-A INPUT -p tcp -m tcp --dport 22 -j SSH\n"
    "-A INPUT -p tcp -m tcp --dport 80 -j ACCEPT\n"
    "-A SSH -s 10.0.0.0/8 -j ACCEPT\n"
    "COMMIT\n";

co::KChain chain(const std::string& name, bool base, uint32_t policy, size_t rules, uint64_t& handle) {
  co::KChain c;
  c.name = name;
  c.base = base;
  c.policy = policy;
  c.handle = handle++;
  for (size_t i = 0; i < rules; ++i) c.rules.push_back(co::KRule{handle++, {}, {}});
  return c;
}

// The kernel's view of `ip filter` with these rule counts in INPUT and SSH,
// plus an `inet other` table the source does not have.
co::Snapshot snapshot(size_t input_rules, size_t ssh_rules) {
  uint64_t handle = 1;
  co::KTable t;
  t.family = NFPROTO_IPV4;
  t.name = "filter";
  t.chains.push_back(chain("INPUT", true, NF_DROP, input_rules, handle));
  t.chains.push_back(chain("FORWARD", true, NF_ACCEPT, 0, handle));
  t.chains.push_back(chain("OUTPUT", true, NF_ACCEPT, 0, handle));
  t.chains.push_back(chain("SSH", false, NF_ACCEPT, ssh_rules, handle));
  co::Snapshot s;
  s.genid = 42;
  s.all_tables = {{NFPROTO_IPV4, "filter"}, {NFPROTO_INET, "other"}};
  s.tables.push_back(std::move(t));
  return s;
}

std::vector<std::string> no_legacy(uint8_t) { return {}; }

}  // namespace

TEST_CASE("ops cut-over plan: a fully translated table is emptied") {
  Translation tr = test::translate_text(kRules);
  policy::Policy pol = test::compile_ok(tr);
  co::Plan plan = ops::plan_cutover(tr, pol, snapshot(2, 1), no_legacy);
  INFO((plan.problems.empty() ? "" : plan.problems.front()));
  CHECK(plan.problems.empty());
  REQUIRE(plan.tables.size() == 1);
  const auto& tp = plan.tables[0];
  CHECK(tp.id.str() == "ip filter");
  CHECK(tp.emptied);
  CHECK(plan.rules_removed() == 3);
  CHECK(plan.rules_kept() == 0);
  CHECK(plan.chains_deleted() == 4);
  REQUIRE(tp.chains.size() == 4);
  CHECK(tp.chains[0].name == "INPUT");
  REQUIRE(tp.chains[0].rules.size() == 2);
  CHECK(tp.chains[0].rules[0].handle == 2);  // INPUT is handle 1, its rules 2 and 3
  CHECK(tp.chains[0].rules[1].location == "rules.v4:7");
  CHECK(tp.chains[0].rules[1].text == "-A INPUT -p tcp -m tcp --dport 80 -j ACCEPT");
  CHECK_FALSE(tp.chains[0].set_policy);  // the chain goes as a whole
  CHECK(plan.untouched == std::vector<std::string>{"inet other"});
}

TEST_CASE("ops cut-over plan: a rule left in netfilter keeps its table and chains") {
  Translation tr = test::translate_text(kPartial, "rules.v4", true);
  REQUIRE_FALSE(tr.rejected(true));
  policy::Policy pol = test::compile_ok(tr);
  co::Plan plan = ops::plan_cutover(tr, pol, snapshot(3, 1), no_legacy);
  CHECK(plan.problems.empty());
  REQUIRE(plan.tables.size() == 1);
  const auto& tp = plan.tables[0];
  CHECK_FALSE(tp.emptied);
  CHECK(plan.chains_deleted() == 0);
  CHECK(plan.rules_kept() == 1);
  CHECK(plan.rules_removed() == 3);
  const auto& input = tp.chains[0];
  REQUIRE(input.rules.size() == 3);
  CHECK_FALSE(input.rules[0].remove);
  CHECK(input.rules[0].why == "not translated (unsupported)");
  CHECK(input.rules[0].location == "rules.v4:6");
  CHECK(input.rules[1].remove);
  CHECK(input.rules[2].remove);
  // INPUT's DROP policy moves to the eBPF policy.
  REQUIRE(input.set_policy);
  CHECK(*input.set_policy == (uint32_t)NF_ACCEPT);
  CHECK(input.old_policy == (uint32_t)NF_DROP);
}

TEST_CASE("ops cut-over plan: a live table of another shape is refused") {
  Translation tr = test::translate_text(kRules);
  policy::Policy pol = test::compile_ok(tr);
  co::Plan plan = ops::plan_cutover(tr, pol, snapshot(5, 1), no_legacy);
  REQUIRE(plan.problems.size() == 1);
  CHECK(plan.problems[0] == "chain ip filter INPUT has 5 rules in the kernel and 2 in rules.v4");
  CHECK(plan.tables.empty());
  CHECK(ops::plan_refusal_hint(plan).find("nf2bpf apply --from kernel --cutover") != std::string::npos);
}

TEST_CASE("ops cut-over plan: tables iptables-legacy holds are named first") {
  Translation tr = test::translate_text(kRules);
  policy::Policy pol = test::compile_ok(tr);
  co::Snapshot none;
  none.all_tables = {{NFPROTO_INET, "other"}};
  std::vector<uint8_t> asked;
  auto legacy = [&](uint8_t family) {
    asked.push_back(family);
    return std::vector<std::string>{"mangle", "filter"};
  };
  co::Plan plan = ops::plan_cutover(tr, pol, none, legacy);
  CHECK(asked == std::vector<uint8_t>{NFPROTO_IPV4});
  REQUIRE(plan.problems.size() == 2);
  CHECK(plan.problems[0] ==
        "table ip filter is an iptables-legacy (x_tables) table, which an nftables transaction cannot touch");
  CHECK(plan.problems[1] == "table ip filter of rules.v4 is not in the kernel's nftables ruleset");
  CHECK(ops::plan_refusal_hint(plan).find("iptables-legacy-save | iptables-nft-restore") != std::string::npos);

  // Not in iptables-legacy either: only make_plan's problem, and the other hint.
  co::Plan missing = ops::plan_cutover(tr, pol, none, no_legacy);
  REQUIRE(missing.problems.size() == 1);
  CHECK(missing.problems[0] == "table ip filter of rules.v4 is not in the kernel's nftables ruleset");
  CHECK(ops::plan_refusal_hint(missing).find("iptables-legacy") == std::string::npos);
}

TEST_CASE("ops cut-over plan: a table present in nftables is not looked up in iptables-legacy") {
  Translation tr = test::translate_text(kRules);
  policy::Policy pol = test::compile_ok(tr);
  bool asked = false;
  co::Plan plan = ops::plan_cutover(tr, pol, snapshot(2, 1), [&](uint8_t) {
    asked = true;
    return std::vector<std::string>{"filter"};
  });
  CHECK_FALSE(asked);
  CHECK(plan.problems.empty());
}
