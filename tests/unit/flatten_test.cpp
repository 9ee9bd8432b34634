#include <catch2/catch.hpp>

#include "translator/passes/flatten.h"
#include "tests/helpers.h"

using namespace nf2bpf;
using namespace nf2bpf::test;

static std::string flat(const std::string& text, diag::Diagnostics* out = nullptr) {
  auto p = parse_ipt(text);
  INFO(p.rendered());
  REQUIRE_FALSE(p.diags.has_errors());
  diag::Diagnostics d;
  auto pipe = passes::flatten(p.rs, d);
  if (out) *out = d;
  return ir::dump(pipe, p.rs);
}

static const char* kHead = "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n";

TEST_CASE("jump, RETURN and goto inline into one decision list") {
  std::string text = std::string(kHead) +
                     ":A - [0:0]\n:B - [0:0]\n"
                     "-A INPUT -p tcp -j A\n"        // 7
                     "-A INPUT -j ACCEPT\n"          // 8
                     "-A A -s 10.0.0.1 -j RETURN\n"  // 9
                     "-A A -g B\n"                   // 10
                     "-A A -j DROP\n"                // 11
                     "-A B -d 1.1.1.1 -j DROP\n"     // 12
                     "COMMIT\n";
  std::string d = flat(text);
  // RETURN in A skips to after A's region (index 4); the goto's fall-through
  // leaves through A's caller too, so A's "-j DROP" is dead.
  CHECK(d.find("stage ip input filter/INPUT priority 0 policy drop\n"
               "  0 @9: l4proto 6; saddr 10.0.0.1; skip 4\n"
               "  1 @12: l4proto 6; daddr 1.1.1.1; drop\n"
               "  2 @10: l4proto 6; skip 4\n"
               "  3 @11: l4proto 6; drop\n"
               "  4 @8: accept\n") != std::string::npos);
}

TEST_CASE("RETURN in a base chain goes to the policy") {
  std::string d = flat(std::string(kHead) + "-A INPUT -s 10.0.0.1 -j RETURN\n-A INPUT -j ACCEPT\nCOMMIT\n");
  CHECK(d.find("  0 @5: saddr 10.0.0.1; skip 2\n  1 @6: accept\n") != std::string::npos);
}

TEST_CASE("jump loops are errors") {
  auto p = parse_ipt(std::string(kHead) + ":A - [0:0]\n:B - [0:0]\n-A INPUT -j A\n-A A -j B\n-A B -j A\nCOMMIT\n");
  REQUIRE_FALSE(p.diags.has_errors());
  diag::Diagnostics d;
  auto pipe = passes::flatten(p.rs, d);
  REQUIRE(d.errors() == 1);
  CHECK(d.all()[0].message == "jump loop: A -> B -> A");
  CHECK(d.all()[0].loc.str() == "rules.v4:9:9");
  CHECK(pipe.stages.empty());
}

TEST_CASE("unused chains and unreachable rules are reported") {
  diag::Diagnostics d;
  flat(std::string(kHead) +
           ":UNUSED - [0:0]\n-A INPUT -j DROP\n-A INPUT -p tcp -j ACCEPT\n-A UNUSED -j ACCEPT\nCOMMIT\n",
       &d);
  REQUIRE(d.warnings() == 2);
  std::string all;
  for (auto& x : d.all()) all += diag::render(x);
  CHECK(
      all.find(
          "rules.v4:5:1: warning: chain 'UNUSED' in table 'filter' is never jumped to; its 1 rules affect no packet") !=
      std::string::npos);
  CHECK(all.find("rules.v4:7:1: warning: rule is never reached\n") != std::string::npos);
  CHECK(all.find("hint: the rule at rules.v4:6 decides every packet before it") != std::string::npos);
}

TEST_CASE("stages are ordered by hook then priority") {
  std::string d = flat(
      "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
      "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT "
      "[0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n"
      "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n");
  std::string order;
  size_t pos = 0;
  while ((pos = d.find("stage ", pos)) != std::string::npos) {
    size_t e = d.find(" priority", pos);
    order += d.substr(pos + 9, e - pos - 9) + "|";
    pos = e;
  }
  CHECK(order ==
        "prerouting raw/PREROUTING|prerouting mangle/PREROUTING|input mangle/INPUT|input filter/INPUT|"
        "forward mangle/FORWARD|forward filter/FORWARD|output raw/OUTPUT|output mangle/OUTPUT|"
        "output filter/OUTPUT|postrouting mangle/POSTROUTING|");
}
