// Which interfaces the dataplane covers, and covering the ones it does not:
// an interface created after `apply` (a pod's veth, a VLAN, a tunnel)
// carries traffic no rule sees until nf2bpf is attached to it. Used by
// `status` and `sync` (warn, attach), `apply --cutover` (refuse while an up
// interface would be left to no filter at all) and `attach --follow`.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/result.h"
#include "loader/dataplane.h"
#include "loader/host.h"
#include "translator/policy/policy.h"

namespace nf2bpf::ops {

// The up interfaces of `all` that `attached` (the dataplane's attachment
// list: name and ifindex) does not list and `excluded` does not name. An
// interface recreated under an attached one's name (new ifindex) is not
// covered.
std::vector<loader::Interface> uncovered(const std::vector<loader::Interface>& all, const nlohmann::json& attached,
                                         const std::vector<std::string>& excluded);

// The same for this namespace's dataplane, now.
Result<std::vector<loader::Interface>> uncovered_now(loader::Dataplane& dp);

// Interfaces the dataplane's attachment list names that are gone (or whose
// name now belongs to another ifindex).
Result<std::vector<std::string>> gone_now(loader::Dataplane& dp);

// The live policy of `dp`: the generation store's copy with the live
// checksum, else the recorded source translated again when it still gives
// that checksum. Fails with the reason otherwise.
Result<policy::Policy> live_policy(loader::Dataplane& dp);

// Keeps a copy of a policy made live by `apply` (<state dir>/applied/, apart
// from sync's generation store, which its change guard reads), so
// that interfaces can be covered later. Best effort: "" or why not.
std::string keep_policy(const policy::Policy& pol);

// Covers `add` with the live generation (classes from the live policy) and
// attaches to them; attachments of interfaces that are gone are forgotten.
Result<void> cover(loader::Dataplane& dp, const std::vector<loader::Interface>& add);

// For `sync`: the up interfaces the live dataplane (its attachment list and
// exclusions) leaves uncovered, and whether `ifaces` (what this run attaches
// to) covers each. One note per interface.
std::vector<std::string> coverage_notes(const nlohmann::json& attached, const std::vector<std::string>& excluded,
                                        const std::vector<loader::Interface>& ifaces, nlohmann::json& names);

// "veth1, vlan10"
std::string names(const std::vector<loader::Interface>& v);

}  // namespace nf2bpf::ops
