// The compiled side of a diff: a Policy judged by the userspace model of the
// BPF programs (verify/model.h), behind the VerdictEngine interface. No
// privileges needed.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "translator/policy/policy.h"
#include "verify/engine.h"
#include "verify/host.h"
#include "verify/model.h"

namespace nf2bpf::verify {

// A compiled-policy decision (from the model or from the BPF programs) in
// report terms: verdict, hook, and the source rule behind the compiled rule.
Decision describe(const policy::Policy& pol, const model::Decision& md);
// A forwarded packet: FORWARD's decision at TC ingress, then POSTROUTING's at
// egress. POSTROUTING decides when it drops, or accepts by a rule of its own.
model::Decision combine_forward(model::Decision forward, model::Decision post);
// The header an accepted packet leaves with (md.out), when NAT changed it
// from `in`'s.
std::optional<NatTuple> nat_of(const pkt::Packet& in, const model::Decision& md);
// Per source rule and chain policy hit counts from the compiled rules'
// counters (compiled rules that share a source rule are summed).
std::vector<RuleHits> rule_hits(const policy::Policy& pol, const std::vector<uint64_t>& counts);

class PolicyEngine : public VerdictEngine {
 public:
  // `pol` and `host` must outlive the engine.
  PolicyEngine(const policy::Policy& pol, const HostModel& host, std::string name);
  std::string name() const override { return name_; }
  Decision decide(const pkt::Packet& p, const Traversal& t) override;
  std::vector<RuleHits> hits() const override;

 private:
  const policy::Policy& pol_;
  const HostModel& host_;
  std::string name_;
  std::unique_ptr<model::Model> model_;
};

}  // namespace nf2bpf::verify
