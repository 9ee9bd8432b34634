#include "verify/synthesize.h"

#include <algorithm>
#include <map>
#include <set>

#include "common/progress.h"
#include "verify/builder.h"
#include "verify/pcap_reader.h"
#include "verify/pcap_writer.h"
#include "verify/reference.h"

namespace nf2bpf::verify {

using ir::Field;
using ir::u128;

namespace {

u128 v4(uint32_t a) { return ir::v4_to_u128(a); }
const u128 kLocal4 = v4(0xc0000201);   // 192.0.2.1
const u128 kRemote4 = v4(0xc6336401);  // 198.51.100.1
const u128 kFar4 = v4(0xcb007101);     // 203.0.113.1
const u128 kLocal6 = ((u128)0x20010db8 << 96) | 1;
const u128 kRemote6 = ((u128)0x20010db8 << 96) | ((u128)0xffff << 64) | 1;
const u128 kFar6 = ((u128)0x20010db8 << 96) | ((u128)0xeeee << 64) | 1;
constexpr uint64_t kPeerMac = 0x020000000001, kHostMac = 0x020000000002;

enum class Place : uint8_t { In, Forward, Out };

struct Probe {
  PacketSpec s;
  Place place = Place::In;
  std::string iif = "eth0", oif;
  uint64_t src_mac = kPeerMac, dst_mac = kHostMac;
  uint8_t ct = 0;  // wanted ct state bit; 0: none asked
  bool flags_fixed = false, sport_fixed = false;
  bool boundary = false;
};

// One packet to write.
struct Out {
  std::vector<uint8_t> ip;
  std::string ifname;
  Direction dir = Direction::Inbound;
  std::string oif_hint;
  uint64_t src_mac = kPeerMac, dst_mac = kHostMac;
  Place place = Place::In;
  u128 saddr = 0, daddr = 0;
};

u128 family_max(uint8_t fam) { return fam == 4 ? ir::kV4MappedBase + 0xffffffffULL : ir::kU128Max; }
u128 family_min(uint8_t fam) { return fam == 4 ? ir::kV4MappedBase : 0; }

// A value inside `s` (or outside it, for a negated match), preferring `cur`.
std::optional<u128> pick(const ir::IntervalSet& s, bool negated, u128 lo_dom, u128 hi_dom, u128 cur) {
  ir::IntervalSet want = negated ? s.complement(hi_dom) : s;
  want = want.intersect(ir::IntervalSet::range(lo_dom, hi_dom));
  if (want.empty()) return std::nullopt;
  if (want.contains(cur)) return cur;
  const auto& iv = want.intervals().front();
  return iv.hi - iv.lo >= 2 ? iv.lo + 1 : iv.lo;  // avoid a network's own address when there is room
}

class Synth {
 public:
  Synth(const ir::Ruleset& rs, const ir::Pipeline& pipe) : rs_(rs), pipe_(pipe) {}

  void build() {
    std::set<std::pair<ir::RuleRef, size_t>> seen;  // (rule, number of matches): one witness per flat variant
    for (const auto& dl : pipe_.stages) {
      if (dl.family == ir::Family::Arp || dl.family == ir::Family::Bridge || dl.family == ir::Family::Netdev) continue;
      if (dl.hook == ir::Hook::Ingress || dl.hook == ir::Hook::Egress) continue;
      for (const auto& fr : dl.rules) {
        if (!seen.insert({fr.origin, fr.matches.size()}).second) continue;
        rule(dl, fr);
      }
    }
  }

  std::vector<Out> packets;
  std::map<std::string, std::vector<u128>> if_addrs;
  size_t boundary = 0;
  std::vector<std::string> notes;

 private:
  uint16_t port() {
    if (next_port_ < 20000 || next_port_ > 60000) next_port_ = 20000;
    return next_port_++;
  }

  Probe witness(const ir::DecisionList& dl, const ir::FlatRule& fr, bool& ok, std::string& why) {
    Probe p = probe_for(dl, fr);
    ok = true;
    for (const auto& m : fr.matches) {
      fit(m, p, ok, why);
      if (!ok) return p;
    }
    PacketSpec& s = p.s;
    uint8_t fam = s.family;
    if (s.proto == 1 && fam == 6) s.proto = 58;
    if ((s.proto == 1 || s.proto == 58) && s.icmp_type == 8 && fam == 6) s.icmp_type = 128;
    if (s.proto == 1 || s.proto == 58) s.icmp_id = port();
    return p;
  }

  // A TCP SYN on the stage's path (its hook and family) before any match.
  Probe probe_for(const ir::DecisionList& dl, const ir::FlatRule& fr) {
    Probe p;
    p.place = dl.hook == ir::Hook::Forward                                      ? Place::Forward
              : dl.hook == ir::Hook::Output || dl.hook == ir::Hook::Postrouting ? Place::Out
                                                                                : Place::In;
    uint8_t fam = dl.family == ir::Family::Ip6 ? 6 : 4;
    if (dl.family == ir::Family::Inet) {
      for (const auto& m : fr.matches)
        if ((m.field == Field::SrcAddr || m.field == Field::DstAddr) &&
            std::holds_alternative<ir::IntervalSet>(m.value)) {
          const auto& s = std::get<ir::IntervalSet>(m.value);
          if (!s.empty() && !ir::is_v4_mapped(s.intervals()[0].lo)) fam = 6;
        } else if (m.field == Field::NfProto && std::holds_alternative<ir::IntervalSet>(m.value) &&
                   std::get<ir::IntervalSet>(m.value).contains(10) && !m.negated)
          fam = 6;
    }
    PacketSpec& s = p.s;
    s.family = fam;
    u128 local = fam == 4 ? kLocal4 : kLocal6, remote = fam == 4 ? kRemote4 : kRemote6, far = fam == 4 ? kFar4 : kFar6;
    switch (p.place) {
      case Place::In: s.saddr = remote, s.daddr = local; break;
      case Place::Forward: s.saddr = remote, s.daddr = far, p.oif = "eth1"; break;
      case Place::Out: s.saddr = local, s.daddr = remote, p.oif = "eth0", p.iif.clear(); break;
    }
    s.proto = 6;
    s.sport = port();
    s.dport = 9;
    s.tcp_flags = 0x02;
    return p;
  }

  // Changes the probe so that it passes one match; `ok` false (with `why`)
  // when no value does.
  void fit(const ir::Match& m, Probe& p, bool& ok, std::string& why) {
    PacketSpec& s = p.s;
    const uint8_t fam = s.family;
    const u128 amin = family_min(fam), amax = family_max(fam);
    const auto* set = std::get_if<ir::IntervalSet>(&m.value);
    auto need = [&](std::optional<u128> v) -> u128 {
      if (!v) {
        ok = false;
        why = std::string("no value satisfies its ") + ir::to_string(m.field) + " match";
        return 0;
      }
      return *v;
    };
    switch (m.field) {
      case Field::NfProto: break;
      case Field::SrcAddr:
      case Field::DstAddr:
        if (set) {
          u128& a = m.field == Field::SrcAddr ? s.saddr : s.daddr;
          a = need(pick(*set, m.negated, amin, amax, a));
        } else if (const auto* ref = std::get_if<ir::SetRef>(&m.value)) {
          set_ref(*ref, m.negated, p);
        }
        break;
      case Field::L4Proto:
        if (set) s.proto = (uint8_t)need(pick(*set, m.negated, 0, 255, s.proto));
        break;
      case Field::SrcPort:
      case Field::DstPort:
        if (set) {
          uint16_t& port = m.field == Field::SrcPort ? s.sport : s.dport;
          port = (uint16_t)need(pick(*set, m.negated, 0, 65535, port));
          if (m.field == Field::SrcPort) p.sport_fixed = true;
        } else if (const auto* ref = std::get_if<ir::SetRef>(&m.value)) {
          set_ref(*ref, m.negated, p);
        }
        break;
      case Field::IcmpType:
      case Field::Icmp6Type:
        if (set) {
          s.proto = m.field == Field::IcmpType ? 1 : 58;
          u128 v = need(pick(*set, m.negated, 0, 0xffff, (u128)(s.icmp_type << 8 | s.icmp_code)));
          s.icmp_type = (uint8_t)(v >> 8);
          s.icmp_code = (uint8_t)v;
        }
        break;
      case Field::TcpFlags:
        if (const auto* mk = std::get_if<ir::Masked>(&m.value); mk && !mk->values.empty()) {
          uint8_t want = (uint8_t)mk->values.intervals()[0].lo;
          uint8_t low = (uint8_t)(mk->mask & (~mk->mask + 1));
          s.tcp_flags = m.negated ? (uint8_t)(want ^ low) : want;
          p.flags_fixed = true;
        }
        break;
      case Field::Fragment:
        if (set && set->contains(1) != m.negated) {
          s.frag_offset = 3;
          s.payload.assign(16, 'f');
        }
        break;
      case Field::IifName:
      case Field::OifName: fit_iface(m, p); break;
      case Field::CtState:
        if (set) {
          for (uint8_t b : {ir::kCtNew, ir::kCtEstablished, ir::kCtRelated, ir::kCtInvalid, ir::kCtUntracked})
            if (set->contains(b) != m.negated) {
              p.ct = b;
              break;
            }
        }
        break;
      case Field::SrcAddrType:
      case Field::DstAddrType:
        if (set) fit_addr_type(m, *set, p);
        break;
      case Field::PktType:
        if (set) fit_pkt_type(m, *set, p);
        break;
      case Field::Length:
        if (set) {
          u128 len = need(pick(*set, m.negated, 0, 65535, 60));
          size_t hdr = (fam == 4 ? 20 : 40) + (s.proto == 6 ? 20 : 8);
          if (len >= hdr) s.payload.assign((size_t)(len - hdr), 'l');
        }
        break;
      case Field::Ttl:
        if (set) s.ttl = (uint8_t)need(pick(*set, m.negated, 0, 255, s.ttl));
        break;
      case Field::Dscp:
        if (set) s.dscp = (uint8_t)need(pick(*set, m.negated, 0, 63, s.dscp));
        break;
      case Field::Tos:
        if (set) {
          auto t = need(pick(*set, m.negated, 0, 255, (uint64_t)(s.dscp << 2 | s.ecn)));
          s.dscp = (uint8_t)(t >> 2), s.ecn = (uint8_t)(t & 3);
        }
        break;
      case Field::SrcMac:
        if (set) p.src_mac = (uint64_t)need(pick(*set, m.negated, 0, 0xffffffffffffULL, p.src_mac));
        break;
      case Field::Opaque:
        if (m.module == "multiport" && set && !set->empty() && !m.negated) s.dport = (uint16_t)set->intervals()[0].lo;
        break;
      default: break;  // marks, conntrack tuples, sockets: set by rules or unknowable; the diff will tell
    }
  }

  void fit_iface(const ir::Match& m, Probe& p) {
    if (const auto* pats = std::get_if<std::vector<ir::IfacePattern>>(&m.value); pats && !pats->empty()) {
      std::string name = m.negated ? "other0" : (*pats)[0].name + ((*pats)[0].prefix ? "0" : "");
      if (m.negated)
        for (const auto& pt : *pats)
          if (pt.matches(name)) name = "nf2b0";
      (m.field == Field::IifName ? p.iif : p.oif) = name;
    }
  }

  void fit_addr_type(const ir::Match& m, const ir::IntervalSet& set, Probe& p) {
    PacketSpec& s = p.s;
    const uint8_t fam = s.family;
    u128 local = fam == 4 ? kLocal4 : kLocal6, remote = fam == 4 ? kRemote4 : kRemote6, far = fam == 4 ? kFar4 : kFar6;
    u128& a = m.field == Field::SrcAddrType ? s.saddr : s.daddr;
    for (uint16_t t : {ir::kAddrLocal, ir::kAddrUnicast, ir::kAddrBroadcast, ir::kAddrMulticast})
      if (set.contains(t) != m.negated) {
        if (t == ir::kAddrLocal)
          a = local;
        else if (t == ir::kAddrUnicast)
          a = m.field == Field::SrcAddrType ? remote : far;
        else if (t == ir::kAddrBroadcast && fam == 4)
          a = v4(0xffffffff);
        else if (t == ir::kAddrMulticast)
          a = fam == 4 ? v4(0xe00000fb) : ((u128)0xff02 << 112) | 0xfb;
        else
          continue;
        break;
      }
  }

  void fit_pkt_type(const ir::Match& m, const ir::IntervalSet& set, Probe& p) {
    PacketSpec& s = p.s;
    const uint8_t fam = s.family;
    for (int t : {0, 1, 2})
      if (set.contains(t) != m.negated) {
        if (t == 1 && fam == 4) p.dst_mac = 0xffffffffffffULL, s.daddr = v4(0xffffffff);
        if (t == 2) p.dst_mac = 0x01005e0000fbULL, s.daddr = fam == 4 ? v4(0xe00000fb) : ((u128)0xff02 << 112) | 0xfb;
        break;
      }
  }

  void set_ref(const ir::SetRef& ref, bool negated, Probe& p) {
    if (negated) return;  // the default addresses are unlikely members
    const ir::Set* set = nullptr;
    for (const auto& t : rs_.tables)
      if ((set = rs_.find_set(t, ref.name))) break;
    if (!set || set->elements.empty()) return;
    const auto& e = set->elements.front();
    for (size_t i = 0; i < ref.key.size() && i < e.key.size(); ++i) {
      if (e.key[i].empty()) continue;
      const auto& iv = e.key[i].intervals().front();
      u128 v = iv.hi - iv.lo >= 2 ? iv.lo + 1 : iv.lo;
      switch (ref.key[i]) {
        case Field::SrcAddr:
          p.s.saddr = v;
          p.s.family = ir::is_v4_mapped(v) ? 4 : 6;
          break;
        case Field::DstAddr:
          p.s.daddr = v;
          p.s.family = ir::is_v4_mapped(v) ? 4 : 6;
          break;
        case Field::SrcPort:
          p.s.sport = (uint16_t)v;
          p.sport_fixed = true;
          break;
        case Field::DstPort: p.s.dport = (uint16_t)v; break;
        case Field::L4Proto: p.s.proto = (uint8_t)v; break;
        default: break;
      }
    }
  }

  void rule(const ir::DecisionList& dl, const ir::FlatRule& fr) {
    bool ok = true;
    std::string why;
    Probe w = witness(dl, fr, ok, why);
    const auto& src = rs_.tables[fr.origin.table].chains[fr.origin.chain].rules[fr.origin.rule];
    if (!ok) {
      notes.push_back(src.loc.file_line() + ": " + why);
      return;
    }
    emit(w);
    // Boundaries of every match.
    const uint8_t fam = w.s.family;
    for (const auto& m : fr.matches) {
      const auto* set = std::get_if<ir::IntervalSet>(&m.value);
      u128 lo_dom = 0, hi_dom = 0;
      switch (m.field) {
        case Field::SrcAddr:
        case Field::DstAddr: lo_dom = family_min(fam), hi_dom = family_max(fam); break;
        case Field::SrcPort:
        case Field::DstPort: hi_dom = 65535; break;
        case Field::IcmpType:
        case Field::Icmp6Type: hi_dom = 0xffff; break;
        case Field::Ttl: hi_dom = 255; break;
        case Field::Length: lo_dom = 60, hi_dom = 65535; break;
        case Field::CtState: {
          for (uint8_t st : {ir::kCtNew, ir::kCtEstablished, ir::kCtRelated, ir::kCtInvalid}) {
            if (st == w.ct) continue;
            Probe b = w;
            b.ct = st;
            b.boundary = true;
            if (!b.sport_fixed) b.s.sport = port();
            emit(b);
          }
          continue;
        }
        case Field::IifName:
        case Field::OifName: {
          Probe b = w;
          b.boundary = true;
          (m.field == Field::IifName ? b.iif : b.oif) = "ovr9";
          if (m.field == Field::IifName && b.place == Place::Out) continue;
          if (!b.sport_fixed) b.s.sport = port();
          emit(b);
          continue;
        }
        case Field::TcpFlags: {
          if (const auto* mk = std::get_if<ir::Masked>(&m.value)) {
            for (int bit = 0; bit < 8; ++bit)
              if (mk->mask & (1u << bit)) {
                Probe b = w;
                b.boundary = true;
                b.s.tcp_flags ^= (uint8_t)(1u << bit);
                b.flags_fixed = true;
                if (!b.sport_fixed) b.s.sport = port();
                emit(b);
              }
          }
          continue;
        }
        default: continue;
      }
      if (!set) continue;
      size_t n = 0;
      std::set<u128> values;
      for (const auto& iv : set->intervals()) {
        if (++n > 8) break;  // bound the size for long lists; the first edges are enough to catch an off-by-one
        for (u128 v : {iv.lo, iv.hi}) values.insert(v);
        if (iv.lo > lo_dom) values.insert(iv.lo - 1);
        if (iv.hi < hi_dom) values.insert(iv.hi + 1);
      }
      for (u128 v : values) {
        Probe b = w;
        b.boundary = true;
        switch (m.field) {
          case Field::SrcAddr: b.s.saddr = v; break;
          case Field::DstAddr: b.s.daddr = v; break;
          case Field::SrcPort:
            b.s.sport = (uint16_t)v;
            b.sport_fixed = true;
            break;
          case Field::DstPort: b.s.dport = (uint16_t)v; break;
          case Field::IcmpType:
          case Field::Icmp6Type:
            b.s.icmp_type = (uint8_t)(v >> 8);
            b.s.icmp_code = (uint8_t)v;
            break;
          case Field::Ttl: b.s.ttl = (uint8_t)v; break;
          case Field::Length: {
            size_t hdr = (fam == 4 ? 20 : 40) + (b.s.proto == 6 ? 20 : 8);
            if (v < hdr) continue;
            b.s.payload.assign((size_t)(v - hdr), 'l');
            break;
          }
          default: break;
        }
        if (!b.sport_fixed) b.s.sport = port();
        emit(b);
      }
    }
  }

  Out packet_of(const Probe& p) {
    Out o;
    o.ip = build_ip(p.s);
    o.src_mac = p.src_mac;
    o.dst_mac = p.dst_mac;
    o.place = p.place;
    o.saddr = p.s.saddr;
    o.daddr = p.s.daddr;
    switch (p.place) {
      case Place::In: o.ifname = p.iif.empty() ? "eth0" : p.iif, o.dir = Direction::Inbound; break;
      case Place::Forward:
        o.ifname = p.iif.empty() ? "eth0" : p.iif;
        o.dir = Direction::Inbound;
        o.oif_hint = p.oif;
        break;
      case Place::Out:
        o.ifname = p.oif.empty() ? "eth0" : p.oif;
        o.dir = Direction::Outbound;
        o.src_mac = kHostMac, o.dst_mac = kPeerMac;
        break;
    }
    return o;
  }

  // The same flow the other way: addresses and ports swapped, the opposite path.
  Probe reverse(const Probe& p) {
    Probe r = p;
    std::swap(r.s.saddr, r.s.daddr);
    std::swap(r.s.sport, r.s.dport);
    r.s.payload.clear();
    switch (p.place) {
      case Place::In: r.place = Place::Out, r.oif = p.iif.empty() ? "eth0" : p.iif; break;
      case Place::Out: r.place = Place::In, r.iif = p.oif.empty() ? "eth0" : p.oif; break;
      case Place::Forward: r.iif = p.oif.empty() ? "eth1" : p.oif, r.oif = p.iif.empty() ? "eth0" : p.iif; break;
    }
    std::swap(r.src_mac, r.dst_mac);
    if (r.dst_mac == 0xffffffffffffULL || (r.dst_mac >> 40) == 0x01) r.dst_mac = kPeerMac;
    return r;
  }

  void push(const Probe& p) {
    packets.push_back(packet_of(p));
    if (p.boundary) ++boundary;
  }

  void emit(Probe p) {
    PacketSpec& s = p.s;
    bool tcp = s.proto == 6, icmp = s.proto == 1 || s.proto == 58;
    bool v6 = s.family == 6;
    uint8_t echo = v6 ? 128 : 8, echo_reply = v6 ? 129 : 0;
    switch (p.ct) {
      case ir::kCtEstablished: {
        // Twice: once started from this packet's side, once from the other
        // side (whose reply this packet then is), so at least one handshake
        // gets past the rules that see its first packet.
        for (int initiator = 0; initiator < 2; ++initiator) {
          Probe me = p;
          if (initiator == 1 && !me.sport_fixed) me.s.sport = port();
          if (icmp) me.s.icmp_id = port();
          Probe other = reverse(me);
          if (tcp) {
            Probe syn = initiator == 0 ? me : other;
            syn.s.tcp_flags = 0x02;
            syn.s.payload.clear();
            syn.s.frag_offset = 0;
            push(syn);
            Probe sa = reverse(syn);
            sa.s.tcp_flags = 0x12;
            push(sa);
            if (initiator == 0) {
              if (!me.flags_fixed) me.s.tcp_flags = 0x10;
              push(me);
            }
          } else if (icmp) {
            Probe req = initiator == 0 ? me : other;
            req.s.icmp_type = echo;
            req.s.icmp_code = 0;
            push(req);
            Probe rep = reverse(req);
            rep.s.icmp_type = echo_reply;
            push(rep);
            if (initiator == 0) push(req);
          } else {
            Probe first = initiator == 0 ? me : other;
            push(first);
            push(reverse(first));
            if (initiator == 0) push(me);
          }
        }
        return;
      }
      case ir::kCtRelated: {
        // A flow the other way, then an ICMP error about it on this path.
        Probe flow = reverse(p);
        flow.s.proto = 17;
        flow.s.payload.clear();
        flow.s.frag_offset = 0;
        push(flow);
        auto quoted = build_ip(flow.s);
        Probe err = p;
        err.s.proto = v6 ? 58 : 1;
        err.s.icmp_type = v6 ? 1 : 3;
        err.s.icmp_code = v6 ? 4 : 3;
        err.s.payload.clear();
        err.s.frag_offset = 0;
        err.s.quote.assign(quoted.begin(), quoted.begin() + (long)std::min<size_t>(quoted.size(), v6 ? 48 : 28));
        push(err);
        return;
      }
      case ir::kCtInvalid: {
        Probe bad = p;
        bad.s.frag_offset = 0;
        if (tcp || !icmp) {
          bad.s.proto = 6;
          bad.s.tcp_flags = 0x12;  // a SYN-ACK with no connection behind it
        } else {
          bad.s.icmp_type = echo_reply;  // an answer to nothing
          bad.s.icmp_code = 0;
        }
        push(bad);
        return;
      }
      default:
        if (tcp && !p.flags_fixed) s.tcp_flags = 0x02;
        push(p);
        return;
    }
  }

  const ir::Ruleset& rs_;
  const ir::Pipeline& pipe_;
  uint16_t next_port_ = 20000;
};

}  // namespace

Result<SynthResult> synthesize(const ir::Ruleset& rs, const ir::Pipeline& pipe, const std::string& out_path) {
  progress::report("synthesizing probes");
  Synth syn(rs, pipe);
  syn.build();
  SynthResult res;
  res.notes = syn.notes;

  // This host's addresses: where INPUT probes go and OUTPUT probes come from.
  // A probe that would contradict them (a "forwarded" packet to a local
  // address) is dropped.
  std::set<u128> local;
  for (const auto& o : syn.packets) {
    if (o.place == Place::In) local.insert(o.daddr);
    if (o.place == Place::Out) local.insert(o.saddr);
  }
  // Broadcast and multicast destinations are not addresses of ours.
  for (auto it = local.begin(); it != local.end();) {
    u128 a = *it;
    bool mc = ir::is_v4_mapped(a) ? (((uint32_t)a >> 28) == 0xe || (uint32_t)a == 0xffffffff) : (a >> 120) == 0xff;
    it = mc || a == ir::kV4MappedBase || a == 0 ? local.erase(it) : std::next(it);
  }
  std::vector<Out> kept;
  size_t dropped = 0;
  for (auto& o : syn.packets) {
    bool bad = (o.place == Place::Forward && (local.count(o.daddr) || local.count(o.saddr))) ||
               (o.place == Place::In && local.count(o.saddr));
    if (bad) {
      ++dropped;
      continue;
    }
    kept.push_back(std::move(o));
  }
  if (dropped)
    res.notes.push_back(std::to_string(dropped) +
                        " probes left out: their addresses are this host's for other rules (a path cannot be both)");

  std::map<std::string, std::vector<u128>> if_addrs;
  std::vector<std::string> if_order;
  auto iface = [&](const std::string& n) {
    if (!if_addrs.count(n)) if_order.push_back(n);
    if_addrs[n];
  };
  iface("eth0");
  for (const auto& o : kept) {
    iface(o.ifname);
    if (o.place == Place::In && local.count(o.daddr)) {
      auto& v = if_addrs[o.ifname];
      if (std::find(v.begin(), v.end(), o.daddr) == v.end()) v.push_back(o.daddr);
    }
    if (o.place == Place::Out && local.count(o.saddr)) {
      auto& v = if_addrs[o.ifname];
      if (std::find(v.begin(), v.end(), o.saddr) == v.end()) v.push_back(o.saddr);
    }
  }

  auto w = PcapngWriter::open(out_path);
  if (!w) return w.error();
  std::map<std::string, uint32_t> ids;
  for (const auto& n : if_order) ids[n] = w->add_interface(n, kDltEthernet, if_addrs[n]);
  for (size_t i = 0; i < kept.size(); ++i) {
    const Out& o = kept[i];
    double t =
        1700000000.0 + (double)i * 0.001;  // one millisecond apart, computed (not summed) to stay exact to the µs
    w->write(ids[o.ifname], t, wrap_ethernet(o.ip, o.src_mac, o.dst_mac), o.dir,
             o.oif_hint.empty() ? std::string() : "nf2bpf: oif=" + o.oif_hint);
  }
  if (auto r = w->close(); !r) return r.error();
  res.packets = kept.size();
  res.boundary_packets = syn.boundary;

  // Coverage: replay the capture through the reference evaluator and count
  // the rules some packet matched.
  auto cap = CaptureReader::open(out_path);
  if (!cap) return cap.error();
  HostModel host;
  ReferenceEngine eng(rs, pipe, host);
  Frame f;
  while ((*cap)->next(f)) {
    progress::tick("counting the rules the probes exercise", f.number, kept.size());
    if (f.number == 1)
      for (const auto& ci : (*cap)->interfaces())
        for (u128 a : ci.addrs) host.add_local(a, ci.name);
    Captured c;
    if (!decode(**cap, f, c).empty()) continue;
    Traversal tr;
    if (!host.place(c, tr).empty()) continue;
    eng.decide(c.packet, tr);
  }
  std::set<std::string> reachable;
  for (const auto& dl : pipe.stages)
    for (const auto& fr : dl.rules) {
      const auto& r = rs.tables[fr.origin.table].chains[fr.origin.chain].rules[fr.origin.rule];
      reachable.insert(r.loc.file_line() + "\n" + r.text);
    }
  std::vector<std::string> missed;
  for (const auto& h : eng.hits()) {
    if (h.policy || !reachable.count(h.location + "\n" + h.text)) continue;
    ++res.rules_total;
    if (h.hits)
      ++res.rules_covered;
    else
      missed.push_back(h.location);
  }
  if (!missed.empty()) {
    std::string list;
    for (size_t i = 0; i < missed.size() && i < 10; ++i) list += (list.empty() ? "" : ", ") + missed[i];
    if (missed.size() > 10) list += ", ...";
    res.notes.push_back(
        "no packet matched " + std::to_string(missed.size()) +
        " rules (earlier rules decide first, or they test marks or state a capture cannot carry): " + list);
  }
  return res;
}

}  // namespace nf2bpf::verify
