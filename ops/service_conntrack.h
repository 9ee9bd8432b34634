// What kube-proxy does to conntrack after a sync, done to nf2bpf's tracker:
// a UDP flow to a Service keeps its endpoint through its connection entry, so
// when the endpoint leaves the Service the flow would go on reaching it.
// kube-proxy deletes such entries (conntrack -D -p udp --orig-dst FRONTEND
// --reply-src ENDPOINT); after a new policy is live, nf2bpf deletes the
// entries of UDP connections to a Service frontend whose endpoint is no
// longer among that Service's backends, and, given the policy that was live
// before, those to an endpoint of a Service (load-balancing chain) that is
// gone as a whole whose frontend is no Service's now (kube-proxy: conntrack
// -D -p udp --orig-dst of a removed Service's IP). TCP connections keep
// theirs, as with kube-proxy. Policies with no kube-proxy rules are left alone.
#pragma once

#include <cstddef>
#include <set>
#include <utility>
#include <vector>

#include "common/result.h"
#include "loader/dataplane.h"
#include "translator/ir/ir.h"
#include "translator/policy/policy.h"

namespace nf2bpf::ops {

// Returns how many entries were deleted (0 when the ruleset is not
// kube-proxy's).
// `before` and `now`: the services of the policy that was live and of the
// one live now (policy::Policy::services, Dataplane::kept_services).
Result<size_t> clear_stale_service_udp(loader::Dataplane& dp, const ir::Ruleset& rs,
                                       const std::vector<policy::Service>* before = nullptr,
                                       const std::vector<policy::Service>* now = nullptr);

// After an install: `before` is the generation kept beside the new one
// (whoever made it live: apply, sync or a rollback).
Result<size_t> clear_stale_service_udp_after_install(loader::Dataplane& dp, const ir::Ruleset& rs,
                                                     const std::vector<policy::Service>& now);

// The UDP entries of connections a Service sent to one of `endpoints`
// (address, port): the endpoints that left the Services an update changed.
Result<size_t> clear_udp_to_endpoints(loader::Dataplane& dp, const std::set<std::pair<ir::u128, uint16_t>>& endpoints);

}  // namespace nf2bpf::ops
