// The compiled policy judged by the real BPF programs (`diff --kernel`'s
// engine; its own library, nf2bpf_verify_kernel, so the rest of verify/ needs
// no libbpf). A private dataplane (never pinned, never attached) is loaded in a private
// network namespace that mirrors what the diff knows about the host: one
// interface per name the capture or the options use, this host's addresses,
// the --route routes, forwarding on. Every packet runs through the TC
// programs with BPF_PROG_TEST_RUN: ingress (PREROUTING, then INPUT or
// FORWARD, decided by the program itself) and, for a forwarded packet, egress
// (POSTROUTING). The live dataplane is never touched.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "loader/dataplane.h"
#include "translator/policy/policy.h"
#include "verify/engine.h"
#include "verify/host.h"
#include "verify/policy_engine.h"

namespace nf2bpf::verify {

class KernelEngine : public VerdictEngine {
 public:
  // Moves this process into a new network namespace (diff does nothing else
  // with the network afterwards). Needs root. `pol` and `host` must outlive
  // the engine.
  static Result<std::unique_ptr<KernelEngine>> create(const policy::Policy& pol, const HostModel& host,
                                                      std::string name);
  ~KernelEngine() override;

  std::string name() const override { return name_; }
  Decision decide(const pkt::Packet& p, const Traversal& t) override;
  std::vector<RuleHits> hits() const override;
  // A failure after set-up (the packets it hit are reported indeterminate).
  const std::string& error() const { return error_; }

 private:
  KernelEngine(const policy::Policy& pol, const HostModel& host, std::string name)
      : pol_(pol), host_(host), name_(std::move(name)), shadow_(std::make_unique<PolicyEngine>(pol, host, name_)) {}
  struct Dev {
    uint32_t ifindex = 0;
    uint64_t mac = 0;
  };
  // The device standing for interface `name` ("" = the catch-all one),
  // created on first use.
  Result<Dev> device(const std::string& name);
  // Installs the policy again when devices or this host's addresses changed
  // since the last install (interface classes and address types are map
  // contents).
  Result<void> refresh();
  Result<loader::TestResult> run(loader::Prog prog, const pkt::Packet& p, const Dev& dev, uint32_t ingress_ifindex);

  // Per-counter packets: those of earlier generations plus the live one's.
  std::vector<uint64_t> live_counts() const;

  const policy::Policy& pol_;
  const HostModel& host_;
  std::string name_;
  std::unique_ptr<loader::Dataplane> dp_;
  std::map<std::string, Dev> devs_;
  std::map<ir::u128, std::string> routed_;  // host routes added for packets whose output interface was known
  std::vector<uint64_t> carried_;           // counted by generations replaced by refresh()
  size_t learned_seen_ = 0;
  bool stale_ = true;
  std::string error_;  // a setup failure: every packet is reported with it
  // The userspace model on the same packets, for one thing the test run does
  // not report: whether a rate-limited or random rule took part. Such a
  // verdict depends on the capture's rates, which a replay does not have (the
  // kernel's token bucket runs on the replay's clock): it is indeterminate,
  // as in the model, not a difference.
  std::unique_ptr<PolicyEngine> shadow_;
};

}  // namespace nf2bpf::verify
