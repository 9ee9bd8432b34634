// The witness checks sync and the cut-over rely on: a compiled policy
// against its source, two policies against each other, two rulesets, on
// packets synthesized from the rules into a scratch directory.
#include <catch2/catch.hpp>

#include "ops/sync.h"
#include "ops/witness.h"
#include "tests/unit/ops_support.h"

using namespace nf2bpf;
using test::ScratchDir;

namespace {

const char* kOpen =
    "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n"
    "-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n"
    "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n"
    "-A INPUT -p tcp -m tcp --dport 80 -j ACCEPT\n"
    "COMMIT\n";

// kOpen without port 80.
const char* kClosed =
    "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n"
    "-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n"
    "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n"
    "COMMIT\n";

verify::PacketReport difference(const std::string& tuple, verify::Verdict want, const std::string& where,
                                verify::Verdict got) {
  verify::PacketReport d;
  d.tuple = tuple;
  d.expected.verdict = want;
  d.expected.hook = ir::Hook::Input;
  d.expected.rule.location = where;
  d.actual.verdict = got;
  d.actual.hook = ir::Hook::Input;
  d.actual.rule.policy = true;
  d.actual.rule.chain = "filter/INPUT";
  return d;
}

}  // namespace

TEST_CASE("ops Comparison: percent, add and describe") {
  ops::Comparison a;
  CHECK(a.percent_changed() == 0.0);  // no packets: nothing changed
  a.capture = "one.pcapng";
  a.packets = 8;
  a.agreed = 6;
  a.differed = 2;
  a.differences.push_back(
      difference("tcp 10.0.0.1:1000 -> 10.0.0.2:80 [S]", verify::Verdict::Accept, "rules.v4:7", verify::Verdict::Drop));
  CHECK(a.percent_changed() == Approx(25.0));

  ops::Comparison b;
  b.capture = "two.pcapng";
  b.packets = 2;
  b.agreed = 1;
  b.differed = 1;
  b.excused = 0;
  b.skipped = 3;
  b.error = "truncated";
  b.differences.push_back(
      difference("udp 10.0.0.1:53 -> 10.0.0.2:53", verify::Verdict::Drop, "rules.v4:9", verify::Verdict::Accept));
  a.add(b);
  CHECK(a.capture == "one.pcapng, two.pcapng");
  CHECK(a.packets == 10);
  CHECK(a.differed == 3);
  CHECK(a.skipped == 3);
  CHECK(a.error == "truncated");
  CHECK(a.percent_changed() == Approx(30.0));

  auto lines = a.describe(10);
  REQUIRE(lines.size() == 2);
  CHECK(
      lines[0] ==
      "tcp 10.0.0.1:1000 -> 10.0.0.2:80 [S] (INPUT): expected ACCEPT (rules.v4:7), got DROP (policy of filter/INPUT)");
  CHECK(lines[1] ==
        "udp 10.0.0.1:53 -> 10.0.0.2:53 (INPUT): expected DROP (rules.v4:9), got ACCEPT (policy of "
        "filter/INPUT)");
  CHECK(a.describe(1).size() == 1);

  auto j = a.json();
  CHECK(j["packets"] == 10);
  CHECK(j["differed"] == 3);
  CHECK(j["percent_changed"].get<double>() == Approx(30.0));
  CHECK(j["error"] == "truncated");
  REQUIRE(j["differences"].size() == 2);
  CHECK(j["differences"][0]["expected"]["rule"] == "rules.v4:7");
  CHECK(j["differences"][0]["actual"]["verdict"] == "DROP");
}

TEST_CASE("ops check_compiled: a policy agrees with its source on the source's witness packets") {
  ScratchDir dir;
  REQUIRE(!dir.path.empty());
  Translation tr = test::translate_text(kOpen);
  REQUIRE_FALSE(tr.rejected(false));
  policy::Policy pol = test::compile_ok(tr);
  auto n = ops::synthesize_witness(tr, dir / "w.pcapng");
  REQUIRE(n);
  REQUIRE(*n > 0);
  auto c = ops::check_compiled(tr, pol, dir / "w.pcapng");
  REQUIRE(c);
  CHECK(c->capture == dir / "w.pcapng");
  CHECK(c->packets == *n);  // every witness packet is judged
  CHECK(c->agreed == c->packets);
  CHECK(c->differed == 0);
  CHECK(c->excused == 0);
  CHECK(c->error.empty());
  CHECK(c->describe(10).empty());
}

TEST_CASE("ops check_compiled: the wrong policy is caught on witness packets") {
  ScratchDir dir;
  Translation open = test::translate_text(kOpen);
  Translation closed = test::translate_text(kClosed);
  policy::Policy closed_pol = test::compile_ok(closed);
  REQUIRE(ops::synthesize_witness(open, dir / "w.pcapng"));
  auto c = ops::check_compiled(open, closed_pol, dir / "w.pcapng");
  REQUIRE(c);
  CHECK(c->differed > 0);
  CHECK(c->agreed > 0);
  CHECK(c->packets == c->agreed + c->differed);
  auto lines = c->describe(10);
  REQUIRE_FALSE(lines.empty());
  // Port 80 is what changed: the source accepts it, the policy drops it.
  for (const auto& l : lines) {
    INFO(l);
    CHECK(l.find(":80 ") != std::string::npos);
    CHECK(l.find("expected ACCEPT (rules.v4:7), got DROP") != std::string::npos);
  }
}

TEST_CASE("ops compare_policies feeds the change guard") {
  ScratchDir dir;
  Translation open = test::translate_text(kOpen);
  Translation closed = test::translate_text(kClosed);
  policy::Policy a = test::compile_ok(open), b = test::compile_ok(closed);
  REQUIRE(ops::synthesize_witness(open, dir / "open.pcapng"));

  auto same = ops::compare_policies(a, a, dir / "open.pcapng");
  REQUIRE(same);
  CHECK(same->differed == 0);
  CHECK(same->percent_changed() == 0.0);
  CHECK(ops::guard_after(same->percent_changed(), 0, false) == ops::Guard::pass);

  auto c = ops::compare_policies(a, b, dir / "open.pcapng");
  REQUIRE(c);
  REQUIRE(c->differed > 0);
  double pct = c->percent_changed();
  CHECK(pct == Approx(100.0 * (double)c->differed / (double)c->packets));
  CHECK(pct > 0.0);
  CHECK(pct < 100.0);  // port 22 and established traffic keep their verdicts
  CHECK(ops::guard_after(pct, 100, false) == ops::Guard::pass);
  CHECK(ops::guard_after(pct, pct / 2, false) == ops::Guard::refuse);
  CHECK(ops::guard_after(pct, pct / 2, true) == ops::Guard::force);
}

TEST_CASE("ops change guard: a source truncated to ':INPUT DROP' is caught whatever --max-change says") {
  ScratchDir dir;
  Translation open = test::translate_text(kOpen);
  Translation cut = test::translate_text("*filter\n:INPUT DROP [0:0]\nCOMMIT\n");
  policy::Policy a = test::compile_ok(open), b = test::compile_ok(cut);
  policy::Policy c = test::compile_ok(test::translate_text(kClosed));
  REQUIRE(ops::synthesize_witness(open, dir / "open.pcapng"));

  auto r = ops::compare_policies(a, b, dir / "open.pcapng");
  REQUIRE(r);
  // The live policy accepts ports 22, 80 and established traffic at INPUT;
  // the truncated one accepts none of it (OUTPUT, which it leaves alone,
  // still accepts).
  REQUIRE(r->accepts.count("INPUT"));
  CHECK(r->accepts.at("INPUT").before > 0);
  CHECK(r->accepts.at("INPUT").both == 0);
  CHECK(r->cut_off() == std::vector<std::string>{"INPUT"});
  CHECK(ops::guard_cutoff(r->cut_off(), false) == ops::Guard::refuse);
  CHECK(ops::guard_cutoff(r->cut_off(), true) == ops::Guard::force);
  CHECK(r->json()["accepted"]["INPUT"].value("still", (uint64_t)1) == 0);

  // Closing one port keeps the rest: not a cut-off.
  auto k = ops::compare_policies(a, c, dir / "open.pcapng");
  REQUIRE(k);
  CHECK(k->accepts.at("INPUT").both > 0);
  CHECK(k->accepts.at("INPUT").both < k->accepts.at("INPUT").before);
  CHECK(k->cut_off().empty());
  CHECK(ops::guard_cutoff(k->cut_off(), false) == ops::Guard::pass);
  // The same policy: everything it accepted is still accepted.
  auto same = ops::compare_policies(a, a, dir / "open.pcapng");
  REQUIRE(same);
  for (const auto& [hook, n] : same->accepts) CHECK(n.both == n.before);
}

TEST_CASE("ops compare_rulesets: the same rules written differently agree") {
  ScratchDir dir;
  Translation a = test::translate_text(kOpen);
  std::string respaced = kOpen;
  respaced.replace(respaced.find("--dport 22"), 10, "--dport  22");
  Translation b = test::translate_text(respaced, "other.v4");
  Translation closed = test::translate_text(kClosed);
  REQUIRE(ops::synthesize_witness(a, dir / "a.pcapng"));
  auto same = ops::compare_rulesets(a, b, dir / "a.pcapng");
  REQUIRE(same);
  CHECK(same->packets > 0);
  CHECK(same->differed == 0);
  auto diff = ops::compare_rulesets(a, closed, dir / "a.pcapng");
  REQUIRE(diff);
  CHECK(diff->differed > 0);
}

TEST_CASE("ops check_compiled: a capture that does not exist is an error") {
  Translation tr = test::translate_text(kOpen);
  auto c = ops::check_compiled(tr, test::compile_ok(tr), "/nonexistent/nf2bpf/w.pcapng");
  CHECK_FALSE(c);
}
