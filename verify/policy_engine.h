// The compiled side of a diff: a Policy judged by the userspace model of the
// BPF programs (translator/policy/model.h), behind the VerdictEngine
// interface. No privileges needed.
#pragma once

#include <memory>
#include <string>

#include "translator/policy/model.h"
#include "translator/policy/policy.h"
#include "verify/engine.h"
#include "verify/host.h"

namespace nf2bpf::verify {

class PolicyEngine : public VerdictEngine {
 public:
  // `pol` and `host` must outlive the engine.
  PolicyEngine(const policy::Policy& pol, const HostModel& host, std::string name);
  std::string name() const override { return name_; }
  Decision decide(const pkt::Packet& p, const Traversal& t) override;
  std::vector<RuleHits> hits() const override;

 private:
  Decision translate(const policy::Decision& d, const pkt::Packet& p) const;
  const policy::Policy& pol_;
  const HostModel& host_;
  std::string name_;
  std::unique_ptr<policy::Model> model_;
};

}  // namespace nf2bpf::verify
