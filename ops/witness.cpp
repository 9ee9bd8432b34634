#include "ops/witness.h"

#include <algorithm>
#include <set>

#include "verify/pcap_reader.h"
#include "verify/policy_engine.h"
#include "verify/reference.h"
#include "verify/synthesize.h"

namespace nf2bpf::ops {

namespace {

constexpr size_t kKeepDifferences = 20;

// Locations (file:line) of the rules a translation leaves in netfilter.
std::set<std::string> left_in_netfilter(const Translation& tr) {
  std::set<std::string> out;
  for (const auto& r : tr.rules)
    if (r.status == caps::Fidelity::Unsupported) {
      const auto& rule = tr.ruleset.tables[r.ref.table].chains[r.ref.chain].rules[r.ref.rule];
      out.insert(rule.loc.file_line());
    }
  return out;
}

// Which filter hook a packet's path is judged at, for the accept tallies.
std::string filter_hook(const verify::Traversal& t) {
  for (ir::Hook h : {ir::Hook::Input, ir::Hook::Forward, ir::Hook::Output})
    if (std::find(t.hooks.begin(), t.hooks.end(), h) != t.hooks.end()) return verify::hook_name(h);
  return verify::format_hooks(t.hooks);
}

// Engines that tally accepts: run_diff asks the first, then the second,
// about each packet.
struct AcceptTally {
  std::map<std::string, Comparison::Accepts> by_hook;
  std::string last_hook;
  bool last_accepted = false;
};

class Tallying : public verify::VerdictEngine {
 public:
  Tallying(verify::VerdictEngine& e, AcceptTally& tally, bool first) : e_(e), tally_(tally), first_(first) {}
  std::string name() const override { return e_.name(); }
  verify::Decision decide(const pkt::Packet& p, const verify::Traversal& t) override {
    verify::Decision d = e_.decide(p, t);
    bool accepted = d.verdict == verify::Verdict::Accept;
    if (first_) {
      tally_.last_hook = filter_hook(t);
      tally_.last_accepted = accepted;
      if (accepted) ++tally_.by_hook[tally_.last_hook].before;
    } else if (accepted && tally_.last_accepted) {
      ++tally_.by_hook[tally_.last_hook].both;
    }
    return d;
  }
  std::vector<verify::RuleHits> hits() const override { return e_.hits(); }

 private:
  verify::VerdictEngine& e_;
  AcceptTally& tally_;
  bool first_;
};

// `host` is the one the engines were made with: the capture teaches it this
// host's addresses as it is read.
Result<Comparison> run(const std::string& capture, verify::HostModel& host, verify::VerdictEngine& expected,
                       verify::VerdictEngine& actual, const std::set<std::string>& excuse = {}) {
  auto cap = verify::CaptureReader::open(capture);
  if (!cap) return cap.error();
  AcceptTally tally;
  Tallying first(expected, tally, true), second(actual, tally, false);
  verify::DiffReport rep = verify::run_diff(**cap, host, first, second);
  Comparison c;
  c.accepts = std::move(tally.by_hook);
  c.capture = capture;
  c.agreed = rep.agreed;
  c.indeterminate = rep.indeterminate;
  c.skipped = rep.skipped;
  c.error = rep.error;
  for (auto& d : rep.differences) {
    bool excused = excuse.count(d.expected.rule.location) > 0;
    for (const auto& v : d.expected.rule.via) excused |= excuse.count(v) > 0;
    if (excused) {
      ++c.excused;
      continue;
    }
    ++c.differed;
    if (c.differences.size() < kKeepDifferences) c.differences.push_back(std::move(d));
  }
  c.packets = c.agreed + c.differed + c.excused;
  return c;
}

std::string side(const verify::Decision& d) {
  std::string rule = d.rule.policy ? "policy of " + d.rule.chain : d.rule.location;
  if (rule.empty()) rule = "no rule";
  return d.verdict_text() + " (" + rule + ")";
}

}  // namespace

void Comparison::add(const Comparison& o) {
  if (!capture.empty() && !o.capture.empty()) capture += ", ";
  capture += o.capture;
  packets += o.packets;
  agreed += o.agreed;
  differed += o.differed;
  excused += o.excused;
  indeterminate += o.indeterminate;
  skipped += o.skipped;
  for (const auto& [hook, a] : o.accepts) {
    accepts[hook].before += a.before;
    accepts[hook].both += a.both;
  }
  // A packet both witness sets have is listed once.
  for (const auto& d : o.differences) {
    if (differences.size() >= kKeepDifferences) break;
    bool listed = std::any_of(differences.begin(), differences.end(), [&](const verify::PacketReport& x) {
      return x.tuple == d.tuple && x.expected.hook == d.expected.hook &&
             x.expected.verdict_text() == d.expected.verdict_text() &&
             x.actual.verdict_text() == d.actual.verdict_text();
    });
    if (!listed) differences.push_back(d);
  }
  if (error.empty()) error = o.error;
}

std::vector<std::string> Comparison::cut_off() const {
  std::vector<std::string> out;
  for (const auto& [hook, a] : accepts)
    if (a.before > 0 && a.both == 0) out.push_back(hook);
  return out;
}

std::vector<std::string> Comparison::describe(size_t max) const {
  std::vector<std::string> out;
  for (size_t i = 0; i < differences.size() && i < max; ++i) {
    const auto& d = differences[i];
    std::string hook = verify::hook_name(d.expected.hook);
    out.push_back(d.tuple + " (" + hook + "): expected " + side(d.expected) + ", got " + side(d.actual));
  }
  return out;
}

nlohmann::json Comparison::json() const {
  nlohmann::json j = {{"capture", capture}, {"packets", packets},
                      {"agreed", agreed},   {"differed", differed},
                      {"excused", excused}, {"indeterminate", indeterminate},
                      {"skipped", skipped}, {"percent_changed", percent_changed()}};
  for (const auto& [hook, a] : accepts) j["accepted"][hook] = {{"before", a.before}, {"still", a.both}};
  auto& d = j["differences"] = nlohmann::json::array();
  for (const auto& x : differences)
    d.push_back({{"packet", x.number},
                 {"tuple", x.tuple},
                 {"hook", verify::hook_name(x.expected.hook)},
                 {"expected", {{"verdict", x.expected.verdict_text()}, {"rule", x.expected.rule.location}}},
                 {"actual", {{"verdict", x.actual.verdict_text()}, {"rule", x.actual.rule.location}}}});
  if (!error.empty()) j["error"] = error;
  return j;
}

Result<size_t> synthesize_witness(const Translation& tr, const std::string& path) {
  auto r = verify::synthesize(tr.ruleset, tr.pipeline, path);
  if (!r) return r.error();
  return r->packets;
}

Result<Comparison> check_compiled(const Translation& tr, const policy::Policy& pol, const std::string& capture) {
  verify::HostModel host;
  verify::ReferenceEngine ref(tr.ruleset, tr.pipeline, host);
  verify::PolicyEngine model(pol, host, tr.ruleset.source);
  return run(capture, host, ref, model, left_in_netfilter(tr));
}

Result<Comparison> compare_policies(const policy::Policy& before, const policy::Policy& after,
                                    const std::string& capture) {
  verify::HostModel host;
  verify::PolicyEngine a(before, host, "live policy");
  verify::PolicyEngine b(after, host, "new policy");
  return run(capture, host, a, b);
}

Result<Comparison> compare_rulesets(const Translation& a, const Translation& b, const std::string& capture) {
  verify::HostModel host;
  verify::ReferenceEngine x(a.ruleset, a.pipeline, host);
  verify::ReferenceEngine y(b.ruleset, b.pipeline, host);
  return run(capture, host, x, y);
}

}  // namespace nf2bpf::ops
