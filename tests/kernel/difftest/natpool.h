// Addresses of the NAT topologies (nat.h): who sends, what the rules
// rewrite to, and what the testbed must route for it.
#pragma once

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "tests/kernel/difftest/nat.h"

namespace nf2bpf::difftest {

struct NatPool {
  std::vector<std::string> clients;      // behind c0
  std::vector<std::string> services;     // exist nowhere: only a DNAT makes them reach a host
  std::vector<std::string> cli_targets;  // real destinations of client flows
  std::vector<std::string> srv_sources;  // sources of flows srv starts
  std::vector<std::string> all;          // for matches
  std::vector<std::string> ifaces, nft_ifaces;
  std::vector<std::string> dnat_to, out_dnat_to, snat_to;
  std::pair<std::string, std::string> dnat_range, snat_range;  // --nat-ranges only
  std::string masq_addr;
  // NETMAP prefixes (router mode; empty: none drawn): services onto the
  // server side, clients onto a prefix whose host bits keep them apart.
  std::string netmap_dst, netmap_src;
  // A source range the clients' own addresses lie in (router mode): SNAT
  // keeps such a source as it is (get_unique_tuple's first step).
  std::pair<std::string, std::string> snat_keep;

  const std::vector<std::string>& sources(bool local_out) const { return local_out ? srv_sources : all; }
};

inline NatPool nat_pool(NatMode m, int fam) {
  NatPool p;
  bool v4 = fam == 4;
  if (m == NatMode::Router) {
    p.clients = v4 ? std::vector<std::string>{"10.201.1.1", "10.201.1.7", "192.0.2.7"}
                   : std::vector<std::string>{"fd00:201:1::1", "fd00:201:1::7", "2001:db8::7"};
    p.services = v4 ? std::vector<std::string>{"10.201.9.1", "10.201.9.2"}
                    : std::vector<std::string>{"fd00:201:9::1", "fd00:201:9::2"};
    p.cli_targets = v4 ? std::vector<std::string>{"10.201.2.1", "10.201.2.9", "198.51.100.200"}
                       : std::vector<std::string>{"fd00:201:2::1", "fd00:201:2::9", "2001:db8:1::200"};
    p.srv_sources = p.cli_targets;
    p.ifaces = {"r0", "r1", "r+", "eth9"};
    p.nft_ifaces = {"r0", "r1", "r*", "eth9"};
    p.dnat_to = p.cli_targets;
    p.out_dnat_to = p.cli_targets;
    p.snat_to = v4 ? std::vector<std::string>{"10.201.2.250", "10.201.2.254"}
                   : std::vector<std::string>{"fd00:201:2::fa", "fd00:201:2::fe"};
    p.dnat_range = v4 ? std::pair<std::string, std::string>{"10.201.2.1", "10.201.2.9"}
                      : std::pair<std::string, std::string>{"fd00:201:2::1", "fd00:201:2::9"};
    p.snat_range = v4 ? std::pair<std::string, std::string>{"10.201.2.250", "10.201.2.253"}
                      : std::pair<std::string, std::string>{"fd00:201:2::fa", "fd00:201:2::fd"};
    p.masq_addr = v4 ? "10.201.2.254" : "fd00:201:2::fe";
    p.netmap_dst = v4 ? "10.201.2.0/24" : "fd00:201:2::/64";
    p.netmap_src = v4 ? "10.202.0.0/16" : "fd00:202::/48";
    p.snat_keep = v4 ? std::pair<std::string, std::string>{"10.201.1.1", "10.201.1.9"}
                     : std::pair<std::string, std::string>{"fd00:201:1::1", "fd00:201:1::9"};
  } else {
    p.clients = v4 ? std::vector<std::string>{"10.200.0.1", "10.200.0.7", "192.0.2.7"}
                   : std::vector<std::string>{"fd00:200::1", "fd00:200::7", "2001:db8::7"};
    p.services = v4 ? std::vector<std::string>{"10.200.9.1"} : std::vector<std::string>{"fd00:200:9::1"};
    p.cli_targets = v4 ? std::vector<std::string>{"10.200.0.2"} : std::vector<std::string>{"fd00:200::2"};
    p.srv_sources = p.cli_targets;
    p.ifaces = {"s0", "s+", "lo", "eth9"};
    p.nft_ifaces = {"s0", "s*", "lo", "eth9"};
    p.dnat_to = p.cli_targets;
    p.out_dnat_to = p.clients;
    p.snat_to = v4 ? std::vector<std::string>{"10.200.5.5", "10.200.5.6"}
                   : std::vector<std::string>{"fd00:200::5:5", "fd00:200::5:6"};
    p.dnat_range = v4 ? std::pair<std::string, std::string>{"10.200.0.2", "10.200.0.4"}
                      : std::pair<std::string, std::string>{"fd00:200::2", "fd00:200::4"};
    p.snat_range = v4 ? std::pair<std::string, std::string>{"10.200.5.5", "10.200.5.8"}
                      : std::pair<std::string, std::string>{"fd00:200::5:5", "fd00:200::5:8"};
    p.masq_addr = v4 ? "10.200.0.2" : "fd00:200::2";
  }
  p.all = p.clients;
  for (const auto* v : {&p.services, &p.cli_targets})
    for (const auto& a : *v)
      if (std::find(p.all.begin(), p.all.end(), a) == p.all.end()) p.all.push_back(a);
  return p;
}

}  // namespace nf2bpf::difftest
