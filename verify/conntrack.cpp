#include "verify/conntrack.h"

#include <algorithm>

#include "translator/ir/ir.h"
#include "verify/parse.h"

namespace nf2bpf::verify {

using ir::u128;

namespace {

// Default timeouts (seconds), as the kernel ships them.
constexpr double kTcpTimeout[] = {
    0,       // None
    120,     // SynSent
    60,      // SynRecv
    432000,  // Established (5 days)
    120,     // FinWait
    60,      // CloseWait
    30,      // LastAck
    120,     // TimeWait
    10,      // Close
    120,     // SynSent2
};
constexpr double kTcpUnacknowledged = 300;
constexpr double kUdpUnreplied = 30, kUdpStream = 120, kUdpStreamAfter = 2;
constexpr double kIcmpTimeout = 30;
constexpr double kGenericTimeout = 600;

// Which TCP segment kind a packet is, in the kernel's precedence: RST, then
// SYN (with or without ACK), then FIN, then ACK, then none of them.
enum Seg { kSyn, kSynAck, kFin, kAck, kRst, kNone };

Seg segment(uint8_t flags) {
  if (flags & 0x04) return kRst;
  if (flags & 0x02) return (flags & 0x10) ? kSynAck : kSyn;
  if (flags & 0x01) return kFin;
  if (flags & 0x10) return kAck;
  return kNone;
}

// The transition table, per direction and segment kind, indexed by the old
// state (None, SynSent, SynRecv, Established, FinWait, CloseWait, LastAck,
// TimeWait, Close, SynSent2). 'v' invalid, 'g' ignore, else the new state:
// n none, s syn-sent, r syn-recv, e established, f fin-wait, c close-wait,
// l last-ack, t time-wait, x close, 2 syn-sent2.
constexpr const char* kOriginal[6] = {
    /* syn    */ "ssgggggss2",
    /* synack */ "vvrvvvvvvr",
    /* fin    */ "vvffllltxv",
    /* ack    */ "eveeccttxv",
    /* rst    */ "vxxxxxxxxx",
    /* none   */ "vvvvvvvvvv",
};
constexpr const char* kReply[6] = {
    /* syn    */ "v2vvvvvsv2",
    /* synack */ "vrgggggggr",
    /* fin    */ "vvffllltxv",
    /* ack    */ "vgreccttxg",
    /* rst    */ "vxxxxxxxxx",
    /* none   */ "vvvvvvvvvv",
};

enum Next { kInvalid = -1, kIgnore = -2 };

int transition(int dir, Seg seg, TcpState old) {
  char c = (dir ? kReply : kOriginal)[seg][(int)old];
  switch (c) {
    case 'v': return kInvalid;
    case 'g': return kIgnore;
    case 'n': return (int)TcpState::None;
    case 's': return (int)TcpState::SynSent;
    case 'r': return (int)TcpState::SynRecv;
    case 'e': return (int)TcpState::Established;
    case 'f': return (int)TcpState::FinWait;
    case 'c': return (int)TcpState::CloseWait;
    case 'l': return (int)TcpState::LastAck;
    case 't': return (int)TcpState::TimeWait;
    case 'x': return (int)TcpState::Close;
    case '2': return (int)TcpState::SynSent2;
  }
  return kInvalid;
}

// tcp_error(): flag combinations a real stack never sends, ignoring PSH/ECE/CWR.
bool tcp_flags_valid(uint8_t flags) {
  uint8_t f = flags & ~(0x08 | 0x40 | 0x80);
  switch (f) {
    case 0x02:
    case 0x22:
    case 0x12:  // SYN, SYN|URG, SYN|ACK
    case 0x04:
    case 0x14:  // RST, RST|ACK
    case 0x11:
    case 0x31:  // FIN|ACK, FIN|ACK|URG
    case 0x10:
    case 0x30:  // ACK, ACK|URG
      return true;
  }
  return false;
}

const char* seg_name(Seg s) {
  switch (s) {
    case kSyn: return "SYN";
    case kSynAck: return "SYN-ACK";
    case kFin: return "FIN";
    case kAck: return "ACK";
    case kRst: return "RST";
    case kNone: return "segment without SYN/ACK/FIN/RST";
  }
  return "?";
}

bool icmp4_error(uint8_t t) { return t == 3 || t == 4 || t == 5 || t == 11 || t == 12; }
bool icmp4_starts(uint8_t t) { return t == 8 || t == 13 || t == 15 || t == 17; }
int icmp4_reply(uint8_t t) {
  switch (t) {
    case 8: return 0;
    case 0: return 8;
    case 13: return 14;
    case 14: return 13;
    case 15: return 16;
    case 16: return 15;
    case 17: return 18;
    case 18: return 17;
  }
  return -1;
}
bool icmp6_error(uint8_t t) { return t < 128; }
bool icmp6_starts(uint8_t t) { return t == 128 || t == 139; }
int icmp6_reply(uint8_t t) {
  switch (t) {
    case 128: return 129;
    case 129: return 128;
    case 139: return 140;
    case 140: return 139;
  }
  return -1;
}
// Neighbour discovery, MLD and multicast router discovery: never tracked.
bool icmp6_untracked(uint8_t t) {
  return t == 130 || t == 131 || t == 132 || t == 133 || t == 134 || t == 135 || t == 136 || t == 143 || t == 151 ||
         t == 152;
}

bool is_icmp(uint8_t proto, bool v6) { return v6 ? proto == 58 : proto == 1; }

}  // namespace

const char* to_string(TcpState s) {
  switch (s) {
    case TcpState::None: return "NONE";
    case TcpState::SynSent: return "SYN_SENT";
    case TcpState::SynRecv: return "SYN_RECV";
    case TcpState::Established: return "ESTABLISHED";
    case TcpState::FinWait: return "FIN_WAIT";
    case TcpState::CloseWait: return "CLOSE_WAIT";
    case TcpState::LastAck: return "LAST_ACK";
    case TcpState::TimeWait: return "TIME_WAIT";
    case TcpState::Close: return "CLOSE";
    case TcpState::SynSent2: return "SYN_SENT2";
  }
  return "?";
}

const char* CtView::state_name() const {
  switch (state) {
    case ir::kCtInvalid: return "INVALID";
    case ir::kCtEstablished: return "ESTABLISHED";
    case ir::kCtRelated: return "RELATED";
    case ir::kCtNew: return "NEW";
    case ir::kCtUntracked: return "UNTRACKED";
  }
  return "?";
}

size_t CtTupleHash::operator()(const CtTuple& t) const {
  auto mix = [](uint64_t h, uint64_t v) {
    h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    return h;
  };
  uint64_t h = 0;
  h = mix(h, (uint64_t)t.src);
  h = mix(h, (uint64_t)(t.src >> 64));
  h = mix(h, (uint64_t)t.dst);
  h = mix(h, (uint64_t)(t.dst >> 64));
  h = mix(h, ((uint64_t)t.proto << 32) | ((uint64_t)t.sport << 16) | t.dport);
  return (size_t)h;
}

CtTuple tuple_of(const pkt::Packet& p) {
  CtTuple t;
  t.src = p.saddr;
  t.dst = p.daddr;
  t.proto = p.l4proto;
  if (!p.has_l4) return t;
  switch (p.l4proto) {
    case 6:
    case 17:
    case 136:
    case 132:
    case 33:
      t.sport = p.sport;
      t.dport = p.dport;
      break;
    case 1:
    case 58:
      t.sport = p.icmp_id;
      t.dport = (uint16_t)(p.icmp_type << 8 | p.icmp_code);
      break;
  }
  return t;
}

CtTuple invert(const CtTuple& t) {
  CtTuple r;
  r.src = t.dst;
  r.dst = t.src;
  r.proto = t.proto;
  if (t.proto == 1 || t.proto == 58) {
    int type = t.dport >> 8;
    int rt = ir::is_v4_mapped(t.src) ? icmp4_reply((uint8_t)type) : icmp6_reply((uint8_t)type);
    r.sport = t.sport;
    r.dport = (uint16_t)(((rt < 0 ? 255 : rt) << 8) | (t.dport & 0xff));
  } else {
    r.sport = t.dport;
    r.dport = t.sport;
  }
  return r;
}

const CtEntry* Conntrack::find(const CtTuple& t, double now, int* dir) const {
  auto it = index_.find(t);
  if (it == index_.end()) return nullptr;
  auto e = entries_.find(it->second.first);
  if (e == entries_.end() || e->second.expires < now) return nullptr;
  if (dir) *dir = it->second.second;
  return &e->second;
}

unsigned wild_mask(const CtEntry& e) {
  bool icmp = e.orig.proto == 1 || e.orig.proto == 58;
  unsigned m = 0;
  // A source choice is the reply's destination; a destination choice its
  // source. An ICMP identifier lives in sport either way.
  if (e.choice[0].addr) m |= 2;
  if (e.choice[0].port) m |= icmp ? 4 : 8;
  if (e.choice[1].addr) m |= 1;
  if (e.choice[1].port) m |= 4;
  return m;
}

namespace {

CtTuple wildcard(CtTuple t, unsigned m) {
  if (m & 1) t.src = 0;
  if (m & 2) t.dst = 0;
  if (m & 4) t.sport = 0;
  if (m & 8) t.dport = 0;
  return t;
}

}  // namespace

size_t Conntrack::ChoicesHash::operator()(const Choices& k) const {
  uint64_t h = 0;
  auto mix = [&h](uint64_t v) { h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2); };
  for (const CtChoice& c : k.c) {
    mix((uint64_t)c.addr_lo), mix((uint64_t)(c.addr_lo >> 64)), mix((uint64_t)c.addr_hi);
    mix((uint64_t)(c.addr_hi >> 64));
    mix((uint64_t)c.addr << 33 | (uint64_t)c.port << 32 | (uint64_t)c.port_lo << 16 | c.port_hi);
  }
  return (size_t)h;
}

const CtEntry* Conntrack::find_reply(const CtTuple& t, double now, int* dir, std::optional<CtEntry>& pinned) const {
  pinned.reset();
  if (const CtEntry* e = find(t, now, dir)) return e;
  const bool icmp = t.proto == 1 || t.proto == 58;
  auto in = [](auto v, auto lo, auto hi) { return lo <= v && v <= hi; };
  for (unsigned m = 1; m < 16; ++m) {
    if (!(masks_in_use_ & (1u << m))) continue;
    auto it = chosen_.find(wildcard(t, m));
    if (it == chosen_.end()) continue;
    // The first entry indexed whose ranges hold the reply.
    const CtEntry* first = nullptr;
    uint64_t first_seq = UINT64_MAX;
    const ChoiceGroups& groups = it->second;
    for (size_t i = 0; i < groups.size(); ++i) {
      const CtChoice &s = groups.key(i).c[0], &d = groups.key(i).c[1];
      if ((m & 2) && !in(t.dst, s.addr_lo, s.addr_hi)) continue;
      if ((m & 1) && !in(t.src, d.addr_lo, d.addr_hi)) continue;
      if ((m & 8) && !in(t.dport, s.port_lo, s.port_hi)) continue;
      if ((m & 4) && !in(t.sport, (s.port && icmp ? s : d).port_lo, (s.port && icmp ? s : d).port_hi)) continue;
      for (const Indexed& x : groups.ids(i)) {
        if (x.seq >= first_seq) break;
        auto e = entries_.find(x.id);
        if (e == entries_.end() || e->second.expires < now || wild_mask(e->second) != m) continue;
        first = &e->second, first_seq = x.seq;
        break;
      }
    }
    if (!first) continue;
    pinned = *first;
    pinned->reply = t;
    pinned->choice[0] = pinned->choice[1] = CtChoice{};
    *dir = 1;
    return first;
  }
  return nullptr;
}

bool Conntrack::taken(const CtTuple& t, double now, const std::vector<uint64_t>& ignore) const {
  const CtEntry* e = find(t, now);
  return e && std::find(ignore.begin(), ignore.end(), e->id) == ignore.end();
}

namespace {

CtTuple source_key(const CtTuple& t) {
  CtTuple k;
  k.src = t.src;
  k.sport = t.sport;
  k.proto = t.proto;
  return k;
}

}  // namespace

std::vector<const CtEntry*> Conntrack::by_source(const CtTuple& t, double now) const {
  std::vector<const CtEntry*> out;
  auto it = bysource_.find(source_key(t));
  if (it == bysource_.end()) return out;
  for (const Indexed& x : it->second)
    if (auto e = entries_.find(x.id); e != entries_.end() && e->second.expires >= now) out.push_back(&e->second);
  // In creation order, so the choice does not depend on the hash map's.
  std::sort(out.begin(), out.end(), [](const CtEntry* a, const CtEntry* b) { return a->id < b->id; });
  return out;
}

CtView Conntrack::start(const CtTuple& t, double now) const {
  CtView v;
  v.state = ir::kCtNew;
  v.dir = 0;
  v.is_new = true;
  v.entry.id = next_id_++;
  v.entry.orig = t;
  v.entry.reply = invert(t);
  v.entry.created = now;
  // A stale entry holding either tuple is replaced.
  for (const CtTuple* k : {&v.entry.orig, &v.entry.reply})
    if (auto it = index_.find(*k); it != index_.end()) v.remove.push_back(it->second.first);
  return v;
}

// tcp_error / udp_error / icmp_error / icmpv6_error at PREROUTING with
// nf_conntrack_checksum=1: the transport checksum over the rest of the IP
// packet (nf_ip_checksum: with the pseudo-header for TCP and UDP only;
// nf_ip6_checksum: always) must fold to zero. A UDP datagram with checksum 0
// has none. The packet's bytes are taken as the wire carried them, as for a
// device that leaves checking to software (CHECKSUM_NONE).
static bool bad_transport_checksum(const pkt::Packet& p) {
  if (p.fragment || !p.has_l4) return false;
  const bool v6 = p.family == 6;
  const uint8_t proto = p.l4proto;
  if (proto != 6 && proto != 17 && !is_icmp(proto, v6)) return false;
  auto off = l4_offset(p);
  const size_t end = std::min<size_t>(p.length, p.l3.size());
  if (!off || *off + 8 > end) return false;
  const std::vector<uint8_t>& b = p.l3;
  if (proto == 17 && b[*off + 6] == 0 && b[*off + 7] == 0) return false;
  uint64_t sum = 0;
  for (size_t i = *off; i < end; i += 2) sum += (uint32_t)b[i] << 8 | (i + 1 < end ? b[i + 1] : 0);
  const size_t seg = end - *off;
  if (v6 || proto == 6 || proto == 17) {
    const size_t alen = v6 ? 16 : 4;
    const size_t src = v6 ? 8 : 12;  // source, then destination, in the IP header
    for (size_t i = 0; i < 2 * alen; i += 2) sum += (uint32_t)b[src + i] << 8 | b[src + i + 1];
    sum += (seg >> 16) + (seg & 0xffff) + proto;
  }
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return sum != 0xffff;
}

CtView Conntrack::classify(const pkt::Packet& p, double now, bool at_prerouting) const {
  if (at_prerouting && bad_transport_checksum(p)) {
    CtView inv;
    inv.why = "bad checksum";
    return inv;
  }
  CtTuple t = tuple_of(p);
  bool v6 = p.family == 6;
  if (is_icmp(p.l4proto, v6) && p.has_l4) return classify_icmp(p, now);
  if (p.l4proto == 6 && p.has_l4) return classify_tcp(p, t, now);
  if (p.l4proto == 17 || p.l4proto == 136) return classify_generic(p, t, now, kUdpUnreplied);
  return classify_generic(p, t, now, kGenericTimeout);
}

CtView Conntrack::classify_generic(const pkt::Packet& p, const CtTuple& t, double now, double timeout) const {
  int dir = 0;
  std::optional<CtEntry> pinned;
  const CtEntry* e = find_reply(t, now, &dir, pinned);
  CtView v;
  if (!e) {
    v = start(t, now);
  } else {
    v.dir = dir;
    v.entry = pinned ? *pinned : *e;
    v.state = dir == 1 || (e->status & kStSeenReply) ? ir::kCtEstablished : ir::kCtNew;
  }
  bool udp = p.l4proto == 17 || p.l4proto == 136;
  if (udp) {
    // udp_packet(): the stream timeout once replies were seen and the flow
    // outlived its first two seconds.
    if ((v.entry.status & kStSeenReply) && now > v.entry.created + kUdpStreamAfter) {
      timeout = kUdpStream;
      v.entry.status |= kStAssured;
    }
  }
  v.entry.expires = now + timeout;
  if (v.dir == 1) v.entry.status |= kStSeenReply;
  return v;
}

CtView Conntrack::classify_tcp(const pkt::Packet& p, const CtTuple& t, double now) const {
  CtView v;
  if (!tcp_flags_valid(p.tcp_flags)) {
    v.why = "invalid TCP flag combination";
    return v;
  }
  Seg seg = segment(p.tcp_flags);
  int dir = 0;
  std::optional<CtEntry> pinned;
  const CtEntry* e = find_reply(t, now, &dir, pinned);
  bool fresh = false;
  auto begin = [&]() -> bool {
    // tcp_new(): only a SYN, or with tcp_loose=1 an ACK picked up mid-stream.
    if (transition(0, seg, TcpState::None) < 0) {
      v = CtView{};
      v.why = std::string(seg_name(seg)) + " cannot start a TCP connection";
      return false;
    }
    auto removed = v.remove;
    v = start(t, now);
    v.remove.insert(v.remove.end(), removed.begin(), removed.end());
    fresh = true;
    return true;
  };
  if (!e) {
    if (!begin()) return v;
  } else {
    v.dir = dir;
    v.entry = pinned ? *pinned : *e;
    v.state = dir == 1 || (e->status & kStSeenReply) ? ir::kCtEstablished : ir::kCtNew;
  }

  CtEntry& ce = v.entry;
  TcpState old = fresh ? TcpState::None : ce.tcp;
  int next = transition(v.dir, seg, old);
  if (next == (int)TcpState::SynSent && !fresh && old >= TcpState::TimeWait) {
    // Re-opening a closed or aborted connection: the old entry goes and this
    // SYN starts a new one.
    if (ce.close_init[0] || ce.close_init[1] || (ce.last_dir == v.dir && ce.last_index == kRst)) {
      uint64_t old_id = ce.id;
      v.remove.push_back(old_id);
      if (!begin()) return v;
      old = TcpState::None;
      next = transition(0, seg, old);
    } else {
      next = kIgnore;
    }
  }
  if (next == kIgnore) {
    // Out of sync with the endpoints: let it through without a state change.
    ce.last_index = (uint8_t)seg;
    ce.last_dir = (uint8_t)v.dir;
    if (v.dir == 1) ce.status |= kStSeenReply;
    return v;
  }
  if (next == kInvalid) {
    CtView inv;
    inv.why = std::string(seg_name(seg)) + " in state " + to_string(old) +
              (v.dir ? " (reply direction)" : " (original direction)");
    return inv;
  }
  if (next == (int)TcpState::SynRecv && v.dir == 1 && seg == kAck && old == TcpState::SynSent2)
    next = (int)TcpState::Established;
  TcpState ns = (TcpState)next;
  ce.last_index = (uint8_t)seg;
  ce.last_dir = (uint8_t)v.dir;
  if (ns != old && ns == TcpState::FinWait) ce.close_init[v.dir] = true;
  ce.tcp = ns;
  double timeout = seg == kRst ? kTcpTimeout[(int)TcpState::Close] : kTcpTimeout[(int)ns];
  if (!(ce.status & kStSeenReply)) {
    if (seg == kRst) v.kill_after = true;
    if (ns == TcpState::Established && timeout > kTcpUnacknowledged) timeout = kTcpUnacknowledged;
  } else if (!(ce.status & kStAssured) && (old == TcpState::SynRecv || old == TcpState::Established) &&
             ns == TcpState::Established) {
    ce.status |= kStAssured;
  }
  ce.expires = now + timeout;
  if (v.dir == 1) ce.status |= kStSeenReply;
  return v;
}

CtView Conntrack::classify_icmp(const pkt::Packet& p, double now) const {
  bool v6 = p.family == 6;
  uint8_t type = p.icmp_type;
  CtView v;
  if (!v6 && type > 18) {
    v.why = "unknown ICMP type " + std::to_string(type);
    return v;
  }
  if (v6 ? icmp6_error(type) : icmp4_error(type)) {
    if (!p.inner) {
      v.why = "ICMP error without a quoted packet";
      return v;
    }
    CtTuple quoted;
    quoted.src = p.inner->saddr;
    quoted.dst = p.inner->daddr;
    quoted.proto = p.inner->l4proto;
    quoted.sport = p.inner->sport;
    quoted.dport = p.inner->dport;
    if (is_icmp(quoted.proto, v6) &&
        (v6 ? icmp6_reply((uint8_t)(quoted.dport >> 8)) : icmp4_reply((uint8_t)(quoted.dport >> 8))) < 0) {
      v.why = "ICMP error quoting an ICMP message that is not a request or reply";
      return v;
    }
    int dir = 0;
    std::optional<CtEntry> pinned;  // (an error does not pin a choice: it only has to find its connection)
    const CtEntry* e = find_reply(invert(quoted), now, &dir, pinned);
    if (pinned) e = &*pinned;
    if (!e) {
      v.why = "ICMP error quoting a packet of no tracked connection";
      return v;
    }
    if (e->tuple(dir).dst != p.daddr) {
      v.why = "ICMP error sent to " + ir::format_addr(p.daddr) + ", not to the quoted connection's " +
              ir::format_addr(e->tuple(dir).dst);
      return v;
    }
    v.state = ir::kCtRelated;
    v.related = true;
    v.dir = dir;
    v.entry = *e;
    return v;
  }
  if (v6 && icmp6_untracked(type)) {
    v.state = ir::kCtUntracked;
    v.why = "neighbour discovery / MLD is never tracked";
    return v;
  }
  CtTuple t = tuple_of(p);
  int dir = 0;
  std::optional<CtEntry> pinned;
  const CtEntry* e = find_reply(t, now, &dir, pinned);
  if (!e) {
    if (!(v6 ? icmp6_starts(type) : icmp4_starts(type))) {
      v.why = std::string(v6 ? "ICMPv6" : "ICMP") + " type " + std::to_string(type) + " cannot start a connection";
      return v;
    }
    v = start(t, now);
  } else {
    v.dir = dir;
    v.entry = pinned ? *pinned : *e;
    v.state = dir == 1 || (e->status & kStSeenReply) ? ir::kCtEstablished : ir::kCtNew;
  }
  v.entry.expires = now + kIcmpTimeout;
  if (v.dir == 1) v.entry.status |= kStSeenReply;
  return v;
}

void Conntrack::index(const CtEntry& e) {
  index_[e.orig] = {e.id, 0};
  index_[e.reply] = {e.id, 1};
  ++indexed_;
  if (unsigned m = wild_mask(e)) {
    chosen_[wildcard(e.reply, m)][Choices{{e.choice[0], e.choice[1]}}].push_back(e.id, indexed_);
    masks_in_use_ |= 1u << m;
  }
  if (e.status & kStSrcNatDone) bysource_[source_key(e.orig)].push_back(e.id, indexed_);
}

void Conntrack::unindex(const CtEntry& e) {
  for (const CtTuple* k : {&e.orig, &e.reply}) {
    auto ix = index_.find(*k);
    if (ix != index_.end() && ix->second.first == e.id) index_.erase(ix);
  }
  if (unsigned m = wild_mask(e)) {
    if (auto it = chosen_.find(wildcard(e.reply, m)); it != chosen_.end()) {
      it->second.erase(Choices{{e.choice[0], e.choice[1]}}, e.id);
      if (it->second.empty()) chosen_.erase(it);
    }
  }
  if (auto it = bysource_.find(source_key(e.orig)); it != bysource_.end()) {
    it->second.erase(e.id);
    if (it->second.empty()) bysource_.erase(it);
  }
}

void Conntrack::erase(uint64_t id) {
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  unindex(it->second);
  entries_.erase(it);
}

void Conntrack::gc(double now) {
  std::vector<uint64_t> dead;
  for (const auto& [id, e] : entries_)
    if (e.expires < now) dead.push_back(id);
  for (uint64_t id : dead) erase(id);
}

void Conntrack::commit(const CtView& v, bool accepted, double now) {
  for (uint64_t id : v.remove) erase(id);
  if (v.dir >= 0 && !v.related) {
    if (v.is_new) {
      if (accepted && !v.kill_after) {
        CtEntry e = v.entry;
        e.status |= kStConfirmed;
        entries_[e.id] = e;
        index(e);
      }
    } else if (v.kill_after) {
      erase(v.entry.id);
    } else if (auto it = entries_.find(v.entry.id); it != entries_.end()) {
      // A reply that showed the kernel's NAT choice moves the reply tuple.
      bool moved = !(it->second.reply == v.entry.reply) || wild_mask(it->second) != wild_mask(v.entry) ||
                   !(it->second.choice[0] == v.entry.choice[0] && it->second.choice[1] == v.entry.choice[1]);
      if (moved) unindex(it->second);
      it->second = v.entry;
      if (moved) index(it->second);
    }
  } else if (v.related) {
    // An ICMP error may change the entry's mark (CONNMARK on the error).
    if (auto it = entries_.find(v.entry.id); it != entries_.end()) it->second.mark = v.entry.mark;
  }
  if (++commits_ % 65536 == 0) gc(now);
}

}  // namespace nf2bpf::verify
