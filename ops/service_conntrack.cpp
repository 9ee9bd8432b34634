#include "ops/service_conntrack.h"

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <tuple>

#include "translator/services/kube.h"

namespace nf2bpf::ops {

Result<size_t> clear_stale_service_udp(loader::Dataplane& dp, const ir::Ruleset& rs,
                                       const std::vector<policy::Service>* before,
                                       const std::vector<policy::Service>* now) {
  services::Recognition found = services::recognise(rs);
  if (found.mode.empty()) return size_t{0};
  // UDP frontend (address, "" for a NodePort on any address; port) -> the
  // backends its Service has now.
  using Endpoint = std::pair<std::string, uint16_t>;
  std::map<Endpoint, std::set<Endpoint>> backends;
  for (const auto& s : found.services)
    for (const auto& f : s.frontends) {
      if (f.protocol != "udp") continue;
      auto& b = backends[{f.address, f.port}];
      for (const auto& e : s.backends) b.insert({e.address, e.port});
    }
  // The endpoints of load-balancing chains that are gone as a whole.
  std::set<Endpoint> orphaned;
  if (before && now) {
    std::set<std::string> kept;
    for (const auto& s : *now) kept.insert(s.name);
    for (const auto& s : *before)
      if (!kept.count(s.name))
        for (const auto& b : s.backends) orphaned.insert({ir::format_addr(b.addr), b.port});
  }
  if (backends.empty() && orphaned.empty()) return size_t{0};
  static const uint8_t kZero[16] = {};
  return dp.delete_connections([&](const nf_ct_key& k, const nf_ct_val& v) {
    if (k.proto != 17 || !(v.flags & (NF_CT_DNAT | NF_CT_ALIAS))) return false;
    if (std::equal(kZero, kZero + 16, v.reply.src)) return false;  // tuples not stored: not NATed
    Endpoint backend{loader::ct_addr_text(v.reply.src), v.reply.sport};
    auto it = backends.find({loader::ct_addr_text(v.orig.dst), v.orig.dport});
    if (it == backends.end()) it = backends.find({std::string(), v.orig.dport});
    if (it == backends.end()) return orphaned.count(backend) > 0;  // its Service is gone
    return !it->second.count(backend);
  });
}

Result<size_t> clear_stale_service_udp_after_install(loader::Dataplane& dp, const ir::Ruleset& rs,
                                                     const std::vector<policy::Service>& now) {
  auto before = dp.kept_services();
  return clear_stale_service_udp(dp, rs, before ? &*before : nullptr, &now);
}

Result<size_t> clear_udp_to_endpoints(loader::Dataplane& dp, const std::set<std::pair<ir::u128, uint16_t>>& endpoints) {
  if (endpoints.empty()) return size_t{0};
  std::set<std::pair<std::string, uint16_t>> text;
  for (const auto& [a, p] : endpoints) text.insert({ir::format_addr(a), p});
  return dp.delete_connections([&](const nf_ct_key& k, const nf_ct_val& v) {
    if (k.proto != 17 || !(v.flags & (NF_CT_DNAT | NF_CT_ALIAS))) return false;
    return text.count({loader::ct_addr_text(v.reply.src), v.reply.sport}) > 0;
  });
}

}  // namespace nf2bpf::ops
