// What the diff needs to know about the host the capture was taken on: which
// addresses are its own (to tell INPUT from FORWARD from OUTPUT), which
// interface a packet arrived on or leaves by, and the address types the
// addrtype match asks about.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "translator/ir/ir.h"
#include "verify/parse.h"

namespace nf2bpf::verify {

// Whether the packet came in from the network or was sent by this host.
enum class Origin : uint8_t { Incoming, Local };

// The hooks a packet meets, in order. Engines start from this; an engine
// that models DNAT re-decides INPUT vs FORWARD after PREROUTING itself.
struct Traversal {
  Origin origin = Origin::Incoming;
  std::vector<ir::Hook> hooks;
};
std::string format_hooks(const std::vector<ir::Hook>& hooks);  // "PREROUTING > INPUT"
const char* hook_name(ir::Hook h);                             // "INPUT"

struct HostOptions {
  std::vector<ir::IntervalSet> local;  // --local-addr CIDRs (every address inside is this host's)
  std::string iface;                   // --iface: the capture interface when the capture does not say
  std::vector<std::pair<ir::IntervalSet, std::string>> routes;  // --route CIDR=IF, for oif
  std::map<uint32_t, std::string> ifindex_names;                // --ifindex N=NAME (SLL2)
};

class HostModel {
 public:
  explicit HostModel(HostOptions o = {});

  // Addresses learned from the capture (pcapng if_IPv4addr/if_IPv6addr).
  void add_local(ir::u128 addr, const std::string& ifname = {}, unsigned prefix_len = 128);
  bool has_local_addresses() const { return !opt_.local.empty() || !learned_.empty(); }

  bool is_local(ir::u128 a) const;
  // The address type the kernel's addrtype match would see (one AddrType bit;
  // an IPv6 packet's IPv4-mapped address has none).
  uint16_t addr_type(ir::u128 a) const;
  uint16_t addr_type(uint8_t family, ir::u128 a) const;
  // Output interface for a destination: --route, else where a local address
  // of the same network was seen, else "".
  std::string route(ir::u128 dst) const;
  // A local address of the family: one on `ifname` when known, else the
  // first. (The compiled side's model uses it; the kernel's choices for
  // MASQUERADE and REDIRECT are masquerade_source and redirect_target.)
  std::optional<ir::u128> local_address(uint8_t family, const std::string& ifname = {}) const;
  // The source address MASQUERADE takes for a packet to `dst` leaving by
  // `oif`, as the kernel picks it: IPv4 inet_select_addr(oif, nexthop,
  // universe) (the first primary address of oif whose subnet holds the
  // nexthop, else oif's first primary, else the first universe-scope address
  // of another device); IPv6 ipv6_dev_get_saddr (RFC 6724: scope, outgoing
  // interface, longest matching prefix). The nexthop is taken to be `dst`
  // (routes carry no gateway). Falls back to --local-addr; nullopt: no address.
  std::optional<ir::u128> masquerade_source(uint8_t family, const std::string& oif, ir::u128 dst) const;
  // The address REDIRECT rewrites a packet to `dst` arriving on `iif` to at
  // PREROUTING, as nf_nat_redirect does: lo 127.0.0.1 / ::1; IPv4 the first
  // address of iif; IPv6 the first of iif's addresses with the scope of
  // `dst`. nullopt when iif has none (the kernel drops the packet). When the
  // host model knows no address of iif, the first local address of the
  // family stands in and `*guessed` is set.
  std::optional<ir::u128> redirect_target(uint8_t family, const std::string& iif, ir::u128 dst, bool* guessed) const;

  // Decides where a captured packet comes from and which hooks it meets, and
  // fills packet.iif/oif. Returns "" or why the packet cannot be placed
  // (it is then skipped).
  std::string place(Captured& c, Traversal& t) const;
  // The hooks after PREROUTING for an incoming packet with this destination.
  std::vector<ir::Hook> after_prerouting(uint8_t family, ir::u128 daddr, pkt::PktType type) const;

  const HostOptions& options() const { return opt_; }

  // Addresses learned from the capture, in the order they were learned.
  struct Learned {
    ir::u128 addr;
    std::string ifname;
    ir::IntervalSet net;  // the interface's network, for routing
  };
  const std::vector<Learned>& learned() const { return learned_; }

 private:
  struct U128Hash {
    size_t operator()(ir::u128 v) const {
      return std::hash<uint64_t>()((uint64_t)v ^ (uint64_t)(v >> 64) * 0x9e3779b97f4a7c15ULL);
    }
  };
  HostOptions opt_;
  std::vector<Learned> learned_;
  // Indexes over learned_, so a host with thousands of addresses (a
  // kube-proxy node's witness capture) costs no scan per packet. Each answers
  // what the scan in learned order would: the smallest index that fits.
  std::set<std::pair<ir::u128, std::string>> seen_;            // (addr, ifname) learned
  std::unordered_set<ir::u128, U128Hash> local_;               // every learned address
  std::unordered_map<ir::u128, size_t, U128Hash> host_route_;  // addr -> first host entry with an ifname
  std::vector<size_t> nets_;                                   // entries whose net is wider than the address
  std::map<std::string, std::vector<size_t>> by_if_;           // ifname -> its entries
  std::vector<bool> secondary_;                                // per entry (inet_insert_ifa's IFA_F_SECONDARY)
  std::set<std::tuple<std::string, bool, ir::u128, ir::u128>> subnets_;  // (ifname, v4, net lo, hi) seen
  std::optional<size_t> first_[2], first_global_[2], first_primary_v4_;  // [v6]: first of the family; not loopback
};

}  // namespace nf2bpf::verify
