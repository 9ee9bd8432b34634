// Load-balancing chains → services. A nat chain that draws one of k endpoint
// chains uniformly at random (kube-proxy's KUBE-SVC-* chains: statistic
// draws of 1/k, 1/(k-1) ... then an unconditional jump; its nftables mode's
// `numgen random mod k vmap`), where each endpoint chain only marks a
// hairpin client and DNATs to one address and port, becomes one NAT rule
// whose backends live in the service maps (abi.h, NF_NAT_SERVICE). A change
// of a service's backends is then a few map writes instead of a new
// generation. Anything else is left to the generic NAT translation.
#pragma once

#include <vector>

#include "translator/ir/pipeline.h"
#include "translator/policy/policy.h"

namespace nf2bpf::policy {

// The pipeline with each recognised load-balancing group of a destination
// nat decision list replaced by one flat rule, a DNAT statement naming its
// service (NatSpec::service); `services` receives the services. Returns
// false, leaving `out` untouched, when there is none.
bool lower_services(const ir::Ruleset& rs, const ir::Pipeline& in, ir::Pipeline& out, std::vector<Service>& services);

}  // namespace nf2bpf::policy
