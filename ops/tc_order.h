// Someone else's TC filter that runs before nf2bpf's on the same hook sees
// (and may pass, drop or redirect) packets before the eBPF policy does:
// `status` and `unload` warn about it.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "loader/host.h"

namespace nf2bpf::ops {

// nf2bpf's filters sit at this pref (and handle) on clsact ingress and egress.
inline constexpr uint32_t kNf2bpfTcPref = 0x2bf;

// The warning for one hook of one interface, or "" when no other filter runs
// before nf2bpf's: "s0 ingress: matchall (pref 1) runs before nf2bpf's filter
// (pref 703)".
std::string filters_before(const std::string& iface, bool ingress, const std::vector<loader::TcFilter>& filters);

// Those warnings for every interface in `attach` (status's list).
std::vector<std::string> foreign_filters_before(const nlohmann::json& attach);

}  // namespace nf2bpf::ops
