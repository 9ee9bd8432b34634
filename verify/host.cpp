#include "verify/host.h"

#include <tuple>

namespace nf2bpf::verify {

using ir::Hook;
using ir::u128;

namespace {

const ir::IntervalSet& loopback() {
  static const ir::IntervalSet s = [] {
    ir::IntervalSet l = ir::IntervalSet::prefix(ir::v4_to_u128(0x7f000000), 104, 128);  // 127.0.0.0/8
    l.add(1, 1);                                                                        // ::1
    return l;
  }();
  return s;
}

bool is_multicast(u128 a) {
  if (ir::is_v4_mapped(a)) return ((uint32_t)a >> 28) == 0xe;  // 224.0.0.0/4
  return (a >> 120) == 0xff;                                   // ff00::/8
}

bool is_limited_broadcast(u128 a) { return a == ir::v4_to_u128(0xffffffff); }

// Why the kernel drops a packet that arrives with a loopback address (127/8,
// ::1) on another interface than lo, before INPUT or FORWARD whatever the
// rules say: IPv4 routing calls it a martian (after PREROUTING), IPv6 refuses
// it on receipt (before PREROUTING). "" when the packet is not such a one.
std::string martian(const pkt::Packet& p, const std::string& ifname) {
  if (ifname.empty() || ifname == "lo") return "";
  bool src = loopback().contains(p.saddr), dst = loopback().contains(p.daddr);
  if (!src && !dst) return "";
  std::string what = src ? "source " + ir::format_addr(p.saddr) : "destination " + ir::format_addr(p.daddr);
  return "loopback " + what + " arriving on " + ifname + ": the kernel drops it before INPUT or FORWARD (" +
         (p.family == 4 ? "martian" : "refused on receipt") + ")";
}

}  // namespace

const char* hook_name(Hook h) {
  switch (h) {
    case Hook::Prerouting: return "PREROUTING";
    case Hook::Input: return "INPUT";
    case Hook::Forward: return "FORWARD";
    case Hook::Output: return "OUTPUT";
    case Hook::Postrouting: return "POSTROUTING";
    case Hook::Ingress: return "INGRESS";
    case Hook::Egress: return "EGRESS";
  }
  return "?";
}

std::string format_hooks(const std::vector<Hook>& hooks) {
  std::string s;
  for (Hook h : hooks) {
    if (h == Hook::Ingress || h == Hook::Egress) continue;
    if (!s.empty()) s += " > ";
    s += hook_name(h);
  }
  return s;
}

HostModel::HostModel(HostOptions o) : opt_(std::move(o)) {}

void HostModel::add_local(u128 addr, const std::string& ifname, unsigned prefix_len) {
  if (!seen_.insert({addr, ifname}).second) return;
  size_t i = learned_.size();
  learned_.push_back({addr, ifname, ir::IntervalSet::prefix(addr, prefix_len > 128 ? 128 : prefix_len, 128)});
  const Learned& l = learned_.back();
  local_.insert(addr);
  bool v4 = ir::is_v4_mapped(addr);
  const auto& iv = l.net.intervals();
  bool wide = !(iv.size() == 1 && iv[0].lo == iv[0].hi);
  if (wide)
    nets_.push_back(i);
  else if (!ifname.empty())
    host_route_.emplace(addr, i);
  by_if_[ifname].push_back(i);
  // Secondary: an earlier address on the same device has the same subnet.
  bool sec = iv.size() == 1 && !subnets_.insert({ifname, v4, iv[0].lo, iv[0].hi}).second;
  secondary_.push_back(sec);
  if (!first_[v4 ? 0 : 1]) first_[v4 ? 0 : 1] = i;
  if (!loopback().contains(addr)) {
    if (!first_global_[v4 ? 0 : 1]) first_global_[v4 ? 0 : 1] = i;
    if (v4 && !sec && !first_primary_v4_) first_primary_v4_ = i;
  }
}

bool HostModel::is_local(u128 a) const {
  if (loopback().contains(a)) return true;
  for (const auto& s : opt_.local)
    if (s.contains(a)) return true;
  return local_.count(a) > 0;
}

uint16_t HostModel::addr_type(u128 a) const {
  if (a == 0 || a == ir::kV4MappedBase) return ir::kAddrUnspec;
  if (is_limited_broadcast(a)) return ir::kAddrBroadcast;
  if (is_multicast(a)) return ir::kAddrMulticast;
  if (is_local(a)) return ir::kAddrLocal;
  // The directed broadcast of a network this host is on.
  for (size_t i : nets_) {
    const auto& l = learned_[i];
    if (ir::is_v4_mapped(a) && l.net.intervals().size() == 1 && l.net.intervals()[0].hi == a &&
        l.net.intervals()[0].lo != a)
      return ir::kAddrBroadcast;
  }
  return ir::kAddrUnicast;
}

uint16_t HostModel::addr_type(uint8_t family, u128 a) const {
  // IPv6's own tables know no IPv4 address: ::ffff:a.b.c.d is routed by the
  // IPv6 FIB, and ipv6_addr_type gives it no unicast/local bit.
  if (family == 6 && ir::is_v4_mapped(a)) return 0;
  return addr_type(a);
}

std::string HostModel::route(u128 dst) const {
  const std::string* best = nullptr;
  u128 best_size = 0;
  for (const auto& [net, ifname] : opt_.routes) {
    if (!net.contains(dst)) continue;
    u128 size = net.size();
    if (!best || size < best_size) best = &ifname, best_size = size;
  }
  if (best) return *best;
  // The first learned entry whose network holds dst: a host entry for dst
  // itself, or an earlier wider one.
  std::optional<size_t> first;
  if (auto h = host_route_.find(dst); h != host_route_.end()) first = h->second;
  for (size_t i : nets_) {
    if (first && i > *first) break;
    if (!learned_[i].ifname.empty() && learned_[i].net.contains(dst)) {
      first = i;
      break;
    }
  }
  return first ? learned_[*first].ifname : "";
}

namespace {

bool family_of(uint8_t family, u128 a) { return (family == 4) == ir::is_v4_mapped(a); }

// IPv6 address scope (RFC 4291 / ipv6_addr_scope): larger is wider.
int v6_scope(u128 a) {
  if (a == 1) return 1;                                    // ::1: node-local
  if ((a >> 118) == 0x3fa) return 2;                       // fe80::/10: link-local
  if ((a >> 120) == 0xff) return (int)((a >> 112) & 0xf);  // multicast: its scope field
  return 14;                                               // global (ULA too)
}

unsigned common_prefix(u128 a, u128 b) {
  unsigned n = 0;
  for (u128 x = a ^ b; n < 128 && !(x >> 127); x <<= 1) ++n;
  return n;
}

}  // namespace

std::optional<u128> HostModel::local_address(uint8_t family, const std::string& ifname) const {
  if (auto it = by_if_.find(ifname); it != by_if_.end() && !ifname.empty())
    for (size_t i : it->second)
      if (family_of(family, learned_[i].addr)) return learned_[i].addr;
  if (const auto& f = first_[family == 4 ? 0 : 1]) return learned_[*f].addr;
  for (const auto& s : opt_.local)
    if (!s.empty() && family_of(family, s.intervals()[0].lo)) return s.intervals()[0].lo;
  return std::nullopt;
}

std::optional<u128> HostModel::masquerade_source(uint8_t family, const std::string& oif, u128 dst) const {
  if (family == 4) {
    // inet_select_addr(): the out device's primary addresses of universe
    // scope in order, the one whose subnet holds the nexthop first.
    std::optional<u128> first;
    if (auto it = by_if_.find(oif); it != by_if_.end() && !oif.empty())
      for (size_t i : it->second) {
        const auto& l = learned_[i];
        if (!family_of(4, l.addr) || loopback().contains(l.addr) || secondary_[i]) continue;
        if (l.net.contains(dst)) return l.addr;
        if (!first) first = l.addr;
      }
    if (first) return first;
    // No address on the device: the first universe-scope primary address of
    // any device.
    if (first_primary_v4_) return learned_[*first_primary_v4_].addr;
  } else {
    // ipv6_dev_get_saddr(): rule 2 (appropriate scope), rule 5 (the outgoing
    // interface), rule 8 (longest matching prefix).
    int ds = v6_scope(dst);
    const Learned* best = nullptr;
    auto key = [&](const Learned& l) {
      int sc = v6_scope(l.addr);
      int scope_rank = sc >= ds ? sc - ds : 100 + (ds - sc);
      return std::tuple(scope_rank, l.ifname == oif && !oif.empty() ? 0 : 1, 128 - (int)common_prefix(l.addr, dst));
    };
    for (const auto& l : learned_)
      if (family_of(6, l.addr) && !loopback().contains(l.addr) && (!best || key(l) < key(*best))) best = &l;
    if (best) return best->addr;
  }
  for (const auto& s : opt_.local)
    if (!s.empty() && family_of(family, s.intervals()[0].lo) && !loopback().contains(s.intervals()[0].lo))
      return s.intervals()[0].lo;
  return std::nullopt;
}

std::optional<u128> HostModel::redirect_target(uint8_t family, const std::string& iif, u128 dst, bool* guessed) const {
  *guessed = false;
  if (iif == "lo") return family == 4 ? ir::v4_to_u128(0x7f000001) : (u128)1;
  if (auto it = by_if_.find(iif); it != by_if_.end() && !iif.empty()) {
    for (size_t i : it->second) {
      const auto& l = learned_[i];
      if (!family_of(family, l.addr)) continue;
      if (family == 4 || v6_scope(l.addr) == v6_scope(dst)) return l.addr;
    }
    return std::nullopt;
  }
  *guessed = true;
  if (const auto& f = first_global_[family == 4 ? 0 : 1]) return learned_[*f].addr;
  for (const auto& s : opt_.local)
    if (!s.empty() && family_of(family, s.intervals()[0].lo)) return s.intervals()[0].lo;
  return std::nullopt;
}

std::vector<Hook> HostModel::after_prerouting(uint8_t family, u128 daddr, pkt::PktType type) const {
  bool mapped = family == 6 && ir::is_v4_mapped(daddr);  // not one of IPv6's own addresses
  bool to_us = !has_local_addresses() ||
               (!mapped && (is_local(daddr) || is_multicast(daddr) || is_limited_broadcast(daddr) ||
                            addr_type(daddr) == ir::kAddrBroadcast)) ||
               type == pkt::PktType::Broadcast || type == pkt::PktType::Multicast;
  if (to_us) return {Hook::Input};
  return {Hook::Forward, Hook::Postrouting, Hook::Egress};
}

std::string HostModel::place(Captured& c, Traversal& t) const {
  pkt::Packet& p = c.packet;
  if (c.otherhost)
    return "addressed to another host's MAC (packet type OTHERHOST): the kernel drops it before netfilter";
  std::string ifname = c.ifname;
  if (ifname.empty() && c.ifindex) {
    auto it = opt_.ifindex_names.find(*c.ifindex);
    if (it != opt_.ifindex_names.end())
      ifname = it->second;
    else if (!opt_.iface.empty())
      ifname = opt_.iface;
    else
      ifname = "if" + std::to_string(*c.ifindex);
  }
  if (ifname.empty()) ifname = opt_.iface;
  std::string oif_hint;
  if (auto pos = c.comment.find("nf2bpf: oif="); pos != std::string::npos) {
    oif_hint = c.comment.substr(pos + 12);
    oif_hint = oif_hint.substr(0, oif_hint.find_first_of(" \t\n;,"));
  }

  if (c.dir == Direction::Inbound)
    if (auto why = martian(p, ifname); !why.empty()) return why;

  bool known = has_local_addresses();
  bool local_src = known && is_local(p.saddr);
  bool local_origin = c.dir == Direction::Outbound ? (!known || local_src) : local_src;
  if (c.dir == Direction::Outbound && !local_origin)
    return "forwarded packet leaving " + (ifname.empty() ? std::string("the host") : ifname) +
           ": judged where it arrived";

  t = Traversal{};
  if (local_origin) {
    t.origin = Origin::Local;
    p.iif.clear();
    bool to_self = known && is_local(p.daddr);
    // (To a loopback address it goes over lo whatever interface the capture
    // names; from one, nowhere else.)
    if (!to_self && loopback().contains(p.saddr) && !ifname.empty() && ifname != "lo")
      return "loopback source " + ir::format_addr(p.saddr) + " leaving by " + ifname +
             ": the kernel never sends one off lo";
    if (to_self) {
      p.oif = "lo";
      t.hooks = {Hook::Output, Hook::Postrouting, Hook::Prerouting, Hook::Input};
    } else {
      p.oif = !oif_hint.empty() ? oif_hint : !ifname.empty() ? ifname : route(p.daddr);
      t.hooks = {Hook::Output, Hook::Postrouting, Hook::Egress};
    }
    return "";
  }
  t.origin = Origin::Incoming;
  p.iif = ifname;
  t.hooks = {Hook::Ingress, Hook::Prerouting};
  auto rest = after_prerouting(p.family, p.daddr, p.pkttype);
  t.hooks.insert(t.hooks.end(), rest.begin(), rest.end());
  p.oif = rest.front() == Hook::Forward ? (!oif_hint.empty() ? oif_hint : route(p.daddr)) : "";
  return "";
}

}  // namespace nf2bpf::verify
