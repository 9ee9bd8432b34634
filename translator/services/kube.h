// Kubernetes Services as kube-proxy writes them, recognised in a parsed
// ruleset: its iptables mode (KUBE-SERVICES, KUBE-SVC-*, KUBE-SEP-* ...)
// and its nftables mode (table kube-proxy: the service-ips and
// service-nodeports maps, service-*/endpoint-* chains). What a Service is
// made of — frontends, backends, affinity, policies — and the source rules
// that make it, for `nf2bpf services`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "translator/ir/ir.h"

namespace nf2bpf::services {

struct Frontend {
  std::string kind;      // "ClusterIP", "ExternalIP", "LoadBalancer", "NodePort"
  std::string address;   // empty for a NodePort: every address of the node
  std::string protocol;  // "tcp", "udp", "sctp"
  uint16_t port = 0;
  ir::SourceLoc loc;  // the rule (or map element) that makes it
};

struct Backend {
  std::string address;
  uint16_t port = 0;
  bool local = false;  // one of the node's own endpoints (externalTrafficPolicy: Local)
  ir::SourceLoc loc;   // its DNAT rule
  std::string chain;   // and that rule's "table/chain"
};

struct Service {
  std::string name;    // "namespace/name:port", as kube-proxy's comments and chain names give it
  std::string family;  // "ip" or "ip6"
  std::vector<Frontend> frontends;
  std::vector<Backend> backends;
  std::optional<uint64_t> affinity_seconds;  // sessionAffinity: ClientIP, its timeout
  bool external_local = false;               // externalTrafficPolicy: Local
  std::vector<std::string> source_ranges;    // loadBalancerSourceRanges
  std::string masquerade;                    // which packets kube-proxy masquerades, in words
  bool no_endpoints = false;                 // rejected: the Service has no endpoints
  std::vector<ir::SourceLoc> rules;          // every source rule that makes it
  std::vector<std::string> chains;           // "table/chain" of every chain that makes it
};

struct Recognition {
  std::string mode;  // "iptables", "nftables", or "" when no kube-proxy rules were found
  std::vector<Service> services;
};

Recognition recognise(const ir::Ruleset& rs);

}  // namespace nf2bpf::services
