#include "verify/diff.h"

#include <algorithm>
#include <deque>
#include <map>

#include "common/progress.h"

namespace nf2bpf::verify {

namespace {

struct Item {
  uint64_t number = 0;
  Captured c;
  std::string skip;
  uint64_t copy_of = 0;  // a forwarded packet's copy leaving: the packet it copies
};

bool port_proto(uint8_t p) { return p == 6 || p == 17 || p == 136 || p == 132 || p == 33; }

// The same IP packet after forwarding: addresses, protocol, ports, flags and
// IP id equal, TTL one lower (or equal, if captured before the decrement).
bool forwarded_copy(const pkt::Packet& in, const Captured& out) {
  const pkt::Packet& o = out.packet;
  if (out.dir != Direction::Outbound) return false;
  if (o.family != in.family || o.saddr != in.saddr || o.daddr != in.daddr || o.l4proto != in.l4proto) return false;
  if (o.sport != in.sport || o.dport != in.dport || o.tcp_flags != in.tcp_flags) return false;
  if (!(o.ttl == in.ttl || o.ttl + 1 == in.ttl)) return false;
  if (in.family == 4 && in.l3.size() >= 6 && o.l3.size() >= 6 && (in.l3[4] != o.l3[4] || in.l3[5] != o.l3[5]))
    return false;
  return true;
}

PacketReport make_report(const Captured& c, const Decision& e, const Decision& a) {
  PacketReport r;
  const pkt::Packet& p = c.packet;
  r.number = p.number;
  r.time = p.time;
  r.family = p.family;
  r.l4proto = p.l4proto;
  r.saddr = p.saddr;
  r.daddr = p.daddr;
  r.has_ports = p.has_l4 && port_proto(p.l4proto);
  r.sport = p.sport;
  r.dport = p.dport;
  r.is_icmp = p.has_l4 && (p.l4proto == 1 || p.l4proto == 58);
  r.icmp_type = p.icmp_type;
  r.icmp_code = p.icmp_code;
  r.tuple = format_tuple(p);
  r.iif = p.iif;
  r.oif = p.oif;
  r.expected = e;
  r.actual = a;
  return r;
}

}  // namespace

DiffReport run_diff(CaptureReader& capture, HostModel& host, VerdictEngine& expected, VerdictEngine& actual,
                    const DiffOptions& opt) {
  DiffReport rep;
  rep.capture = capture.path();
  rep.expected_name = expected.name();
  rep.actual_name = actual.name();
  std::map<std::string, size_t> skip_index;
  auto skip = [&](uint64_t number, const std::string& why) {
    ++rep.skipped;
    auto it = skip_index.find(why);
    if (it == skip_index.end()) {
      skip_index[why] = rep.skips.size();
      rep.skips.push_back({why, 1, number});
    } else {
      ++rep.skips[it->second].count;
    }
  };

  std::deque<Item> window;
  size_t ifaces_seen = 0;
  bool eof = false;
  auto fill = [&]() {
    while (!eof && window.size() <= opt.lookahead) {
      Frame f;
      if (!capture.next(f)) {
        eof = true;
        break;
      }
      Item it;
      it.number = f.number;
      progress::tick("replaying packets", f.number);
      it.skip = decode(capture, f, it.c);
      window.push_back(std::move(it));
    }
    // pcapng interface addresses are this host's.
    const auto& ifs = capture.interfaces();
    for (; ifaces_seen < ifs.size(); ++ifaces_seen)
      for (size_t i = 0; i < ifs[ifaces_seen].addrs.size(); ++i)
        host.add_local(ifs[ifaces_seen].addrs[i], ifs[ifaces_seen].name,
                       i < ifs[ifaces_seen].prefix_lens.size() ? ifs[ifaces_seen].prefix_lens[i] : 128);
  };

  bool told_no_local = false, told_no_iface = false;
  for (;;) {
    fill();
    if (window.empty()) break;
    Item it = std::move(window.front());
    window.pop_front();
    ++rep.packets;
    if (!it.skip.empty()) {
      skip(it.number, it.skip);
      continue;
    }
    if (it.copy_of) {
      skip(it.number, "forwarded copy of an earlier packet leaving the host: judged where it arrived");
      continue;
    }
    Traversal t;
    std::string why = host.place(it.c, t);
    if (!why.empty()) {
      skip(it.number, why);
      continue;
    }
    pkt::Packet& p = it.c.packet;
    if (t.origin == Origin::Incoming && std::find(t.hooks.begin(), t.hooks.end(), ir::Hook::Forward) != t.hooks.end()) {
      // The same packet leaving on another interface says where it was routed.
      for (auto& later : window)
        if (later.skip.empty() && !later.copy_of && !later.c.ifname.empty() && later.c.ifname != p.iif &&
            forwarded_copy(p, later.c)) {
          if (p.oif.empty()) p.oif = later.c.ifname;
          later.copy_of = it.number;
          break;
        }
    }
    if (!host.has_local_addresses() && !told_no_local) {
      rep.notes.push_back(
          "no --local-addr and no addresses in the capture: every packet is taken as "
          "addressed to this host (INPUT); pass --local-addr to tell INPUT, FORWARD and OUTPUT apart");
      told_no_local = true;
    }
    if (t.origin == Origin::Incoming && p.iif.empty() && !told_no_iface) {
      rep.notes.push_back(
          "the capture does not say which interface packets arrived on and --iface is not given: "
          "rules testing -i (other than lo) are undecidable");
      told_no_iface = true;
    }
    Decision e = expected.decide(p, t);
    Decision a = actual.decide(p, t);
    if (e.verdict == Verdict::Indeterminate || a.verdict == Verdict::Indeterminate) {
      ++rep.indeterminate;
      if (rep.undecided.size() < 10000) rep.undecided.push_back(make_report(it.c, e, a));
    } else if (e.same_outcome(a)) {
      ++rep.agreed;
    } else {
      ++rep.differed;
      rep.differences.push_back(make_report(it.c, e, a));
    }
  }
  rep.error = capture.error();
  rep.expected_hits = expected.hits();
  rep.actual_hits = actual.hits();
  return rep;
}

}  // namespace nf2bpf::verify
