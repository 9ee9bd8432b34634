// Mirrors bpf/nf2bpf.bpf.c, bpf/lib/classify.h and bpf/lib/ct.h line by line
// in intent; when one changes, the other must (the kernel tests compare them).
// The conntrack data both use (key, value, TCP table, timeouts) is not copied:
// it comes from bpf/include/ct_abi.h.
#include "verify/model.h"

#include <arpa/inet.h>

#include <cstring>
#include <map>
#include <optional>
#include <tuple>

#include "verify/parse.h"

namespace nf2bpf::model {

namespace {

constexpr uint32_t kNone = 0xffffffffu;

void to_bytes(const ir::u128& v, uint8_t* out) {
  for (int i = 0; i < 16; ++i) out[i] = (uint8_t)(v >> (8 * (15 - i)));
}

bool has_ports(uint8_t proto) { return proto == 6 || proto == 17 || proto == 132 || proto == 136 || proto == 33; }

int tcp_index(uint8_t f) {
  if (f & 0x04) return 4;
  if (f & 0x02) return (f & 0x10) ? 1 : 0;
  if (f & 0x01) return 2;
  if (f & 0x10) return 3;
  return 5;
}

bool tcp_flags_valid(uint8_t f) {
  f &= ~(0x08 | 0x40 | 0x80);
  switch (f) {
    case 0x02:
    case 0x22:
    case 0x12:
    case 0x04:
    case 0x14:
    case 0x11:
    case 0x31:
    case 0x10:
    case 0x30: return true;
  }
  return false;
}

bool icmp_request(uint8_t fam, uint8_t t) { return fam == 4 ? (t == 8 || t == 13 || t == 15 || t == 17) : t == 128; }
bool icmp_reply(uint8_t fam, uint8_t t) { return fam == 4 ? (t == 0 || t == 14 || t == 16 || t == 18) : t == 129; }
bool icmp6_noct(uint8_t t) {
  return t == 130 || t == 131 || t == 132 || t == 133 || t == 134 || t == 135 || t == 136 || t == 143;
}

// As nf_martian in bpf/: a loopback address (127/8, ::1) that came in on
// another interface than lo.
bool martian(const pkt::Packet& p) {
  if (p.iif == "lo") return false;
  auto loop = [&](const ir::u128& a) { return p.family == 4 ? ((uint32_t)a >> 24) == 127 : a == (ir::u128)1; };
  return loop(p.saddr) || loop(p.daddr);
}

// Tuples and keys as bpf/lib/ct.h builds them (nf_tuple_set, nf_tuple_key ...).
ir::u128 from_bytes(const uint8_t* b) {
  ir::u128 v = 0;
  for (int i = 0; i < 16; ++i) v = (v << 8) | b[i];
  return v;
}

nf_ct_tuple tuple_set(const uint8_t* src, const uint8_t* dst, uint16_t sp, uint16_t dp) {
  nf_ct_tuple t{};
  std::memcpy(t.src, src, 16);
  std::memcpy(t.dst, dst, 16);
  t.sport = sp;
  t.dport = dp;
  return t;
}

nf_ct_tuple tuple_invert(const nf_ct_tuple& t) { return tuple_set(t.dst, t.src, t.dport, t.sport); }

bool tuple_eq(const nf_ct_tuple& x, const nf_ct_tuple& y) {
  return x.sport == y.sport && x.dport == y.dport && !std::memcmp(x.src, y.src, 16) && !std::memcmp(x.dst, y.dst, 16);
}

bool ct_key_of(nf_ct_key& k, const uint8_t* sa, const uint8_t* da, uint16_t sp, uint16_t dp, uint8_t proto) {
  int c = std::memcmp(sa, da, 16);
  bool src_is_a = c < 0 || (c == 0 && sp <= dp);
  k = {};
  std::memcpy(k.a, src_is_a ? sa : da, 16);
  std::memcpy(k.b, src_is_a ? da : sa, 16);
  k.pa = src_is_a ? sp : dp;
  k.pb = src_is_a ? dp : sp;
  k.proto = proto;
  return src_is_a;
}

nf_ct_key tuple_key(const nf_ct_tuple& t, uint8_t proto, uint8_t icmp_req, bool reply_dir) {
  nf_ct_key k{};
  if (icmp_req) {
    std::memcpy(k.a, reply_dir ? t.dst : t.src, 16);
    std::memcpy(k.b, reply_dir ? t.src : t.dst, 16);
    k.pa = k.pb = t.sport;
    k.proto = proto;
    k.pad[0] = icmp_req;
    return k;
  }
  ct_key_of(k, t.src, t.dst, t.sport, t.dport, proto);
  return k;
}

bool tuple_is(const nf_ct_tuple& t, const ir::u128& sa, const ir::u128& da, uint16_t sp, uint16_t dp) {
  return t.sport == sp && t.dport == dp && from_bytes(t.src) == sa && from_bytes(t.dst) == da;
}

// The kernel's jhash2() over 4 words (include/linux/jhash.h), as nf_jhash2_4.
uint32_t rol32(uint32_t x, int k) { return (x << k) | (x >> (32 - k)); }
uint32_t jhash2_4(const uint32_t* k, uint32_t initval) {
  uint32_t a, b, c;
  a = b = c = 0xdeadbeef + (4 << 2) + initval;
  a += k[0];
  b += k[1];
  c += k[2];
  a -= c, a ^= rol32(c, 4), c += b;
  b -= a, b ^= rol32(a, 6), a += c;
  c -= b, c ^= rol32(b, 8), b += a;
  a -= c, a ^= rol32(c, 16), c += b;
  b -= a, b ^= rol32(a, 19), a += c;
  c -= b, c ^= rol32(b, 4), b += a;
  a += k[3];
  c ^= b, c -= rol32(b, 14);
  a ^= c, a -= rol32(c, 11);
  b ^= a, b -= rol32(a, 25);
  c ^= b, c -= rol32(b, 16);
  a ^= c, a -= rol32(c, 4);
  b ^= a, b -= rol32(a, 14);
  c ^= b, c -= rol32(b, 24);
  return c;
}

// union nf_inet_addr's words of an address (raw memory order, as BPF reads them).
void inet_words(uint32_t* w, const uint8_t* a, uint8_t family) {
  if (family == 4) {
    std::memcpy(&w[0], a + 12, 4);
    w[1] = w[2] = w[3] = 0;
    return;
  }
  std::memcpy(w, a, 16);
}

// find_best_ips_proto, as nf_nat_pick_addr.
void pick_addr(const nf2bpf_nat& n, const nf_ct_tuple& t, uint8_t family, uint8_t* out) {
  uint32_t mn[4], mx[4], src[4], dst[4], res[4];
  inet_words(mn, n.addr_min, family);
  inet_words(mx, n.addr_max, family);
  if (!std::memcmp(mn, mx, sizeof mn)) {
    std::memcpy(out, n.addr_min, 16);
    return;
  }
  inet_words(src, t.src, family);
  inet_words(dst, t.dst, family);
  bool persistent = n.flags & NF_NAT_F_PERSISTENT;
  int max = family == 4 ? 0 : 3;
  uint32_t j = jhash2_4(src, persistent ? 0 : dst[max]);
  bool full = false;
  for (int i = 0; i < 4; ++i) {
    res[i] = 0;
    if (i > max) continue;
    uint32_t minip = full ? 0 : __builtin_bswap32(mn[i]);
    uint32_t dist = full ? ~0u : __builtin_bswap32(mx[i]) - minip + 1;
    res[i] = __builtin_bswap32(minip + (uint32_t)(((uint64_t)j * dist) >> 32));
    if (res[i] != mx[i]) full = true;
    if (!persistent) j ^= dst[i];
  }
  if (family == 4) {
    std::memset(out, 0, 10);
    out[10] = out[11] = 0xff;
    std::memcpy(out + 12, &res[0], 4);
    return;
  }
  std::memcpy(out, res, 16);
}

}  // namespace

Model::Model(const policy::Policy& p, ModelEnv env) : pol_(p), env_(std::move(env)) {
  for (const auto& e : p.lpm) {
    int which = e.slot == NF_SLOT_SADDR ? 0 : 1;
    lpm_[which][e.prefixlen][e.addr] = e.cls;
  }
  entries_.reserve(p.entries.size());
  for (const auto& [k, v] : p.entries) entries_.emplace(k, v);
  hits_.assign(p.counter_count(), 0);
  limit_tokens_.assign(p.limits.size(), 0);
  limit_last_.assign(p.limits.size(), 0);
  nth_count_.assign(p.nth_slots(), 0);
  if (!env_.addrtype) env_.addrtype = [](const ir::u128&) { return 2u; };
}

uint32_t Model::lpm_class(int slot, const ir::u128& a) const {
  for (const auto& [len, table] : lpm_[slot == NF_SLOT_SADDR ? 0 : 1]) {
    ir::u128 mask = len == 0 ? 0 : (len >= 128 ? ir::kU128Max : ~(ir::kU128Max >> len));
    auto it = table.find(a & mask);
    if (it != table.end()) return it->second;
  }
  return 0;
}

void Model::classify(Work& w, uint32_t used, uint8_t ctstate, uint8_t ctdir) const {
  const auto& p = w.p;
  auto small = [&](uint32_t idx) { return small_class(idx); };
  auto on = [&](int slot) { return (used & (1u << slot)) != 0; };
  if (on(NF_SLOT_SADDR)) w.cls[NF_SLOT_SADDR] = lpm_class(NF_SLOT_SADDR, p.saddr);
  if (on(NF_SLOT_DADDR)) w.cls[NF_SLOT_DADDR] = lpm_class(NF_SLOT_DADDR, p.daddr);
  if (on(NF_SLOT_SPORT))
    w.cls[NF_SLOT_SPORT] = small(NF_SMALL_SPORT_BASE + (p.has_l4 && has_ports(p.l4proto) ? p.sport : 65536u));
  if (on(NF_SLOT_DPORT))
    w.cls[NF_SLOT_DPORT] = small(NF_SMALL_DPORT_BASE + (p.has_l4 && has_ports(p.l4proto) ? p.dport : 65536u));
  if (on(NF_SLOT_PROTO)) w.cls[NF_SLOT_PROTO] = small(NF_SMALL_PROTO_BASE + p.l4proto);
  bool is_icmp = p.has_l4 && ((p.family == 4 && p.l4proto == 1) || (p.family == 6 && p.l4proto == 58));
  if (on(NF_SLOT_ICMP)) {
    uint32_t v = is_icmp ? ((p.family == 6 ? 65536u : 0u) + ((uint32_t)p.icmp_type << 8 | p.icmp_code)) : 131072u;
    w.cls[NF_SLOT_ICMP] = small(NF_SMALL_ICMP_BASE + v);
  }
  if (on(NF_SLOT_CTSTATE)) w.cls[NF_SLOT_CTSTATE] = small(NF_SMALL_CTSTATE_BASE + ctstate);
  bool is_tcp = p.has_l4 && p.l4proto == 6;
  if (on(NF_SLOT_TCPFLAGS)) w.cls[NF_SLOT_TCPFLAGS] = small(NF_SMALL_TCPFLAGS_BASE + (is_tcp ? p.tcp_flags : 256u));
  if (on(NF_SLOT_PKTTYPE)) w.cls[NF_SLOT_PKTTYPE] = small(NF_SMALL_PKTTYPE_BASE + (uint32_t)p.pkttype);
  if (on(NF_SLOT_LENGTH)) w.cls[NF_SLOT_LENGTH] = small(NF_SMALL_LENGTH_BASE + p.length);
  if (on(NF_SLOT_TTL)) w.cls[NF_SLOT_TTL] = small(NF_SMALL_TTL_BASE + p.ttl);
  if (on(NF_SLOT_NFPROTO)) w.cls[NF_SLOT_NFPROTO] = small(NF_SMALL_NFPROTO_BASE + (p.family == 4 ? 2u : 10u));
  if (on(NF_SLOT_SADDRTYPE))
    w.cls[NF_SLOT_SADDRTYPE] = small(NF_SMALL_SADDRTYPE_BASE + (addr_type(p.family, p.saddr) & 4095));
  if (on(NF_SLOT_DADDRTYPE))
    w.cls[NF_SLOT_DADDRTYPE] = small(NF_SMALL_DADDRTYPE_BASE + (addr_type(p.family, p.daddr) & 4095));
  if (on(NF_SLOT_CTDIR)) w.cls[NF_SLOT_CTDIR] = small(NF_SMALL_CTDIR_BASE + (ctdir > 2 ? 2 : ctdir));
  if (on(NF_SLOT_FRAG)) w.cls[NF_SLOT_FRAG] = small(NF_SMALL_FRAG_BASE + (p.later_fragment ? 1u : 0u));
  if (on(NF_SLOT_TOS)) w.cls[NF_SLOT_TOS] = small(NF_SMALL_TOS_BASE + p.tos);
  if (on(NF_SLOT_IIF)) w.cls[NF_SLOT_IIF] = pol_.iface_class(0, p.iif);
  if (on(NF_SLOT_OIF)) w.cls[NF_SLOT_OIF] = pol_.iface_class(1, p.oif);
}

// First rule >= from with an entry for this packet: one probe per tuple (and
// per chain position), tuples in order of their first rule.
uint32_t Model::search(const Work& w, const nf2bpf_stage& st, uint32_t from) const {
  uint32_t best = kNone;
  for (uint32_t ti = 0; ti < st.tuple_count; ++ti) {
    uint32_t tid = st.tuple_first + ti;
    const nf2bpf_tuple& t = pol_.tuples[tid];
    if (t.min_rule >= best) break;
    if (t.max_rule < from) continue;
    nf2bpf_entry_key k{};
    k.tuple = (uint16_t)tid;
    for (int j = 0; j < t.nslots && j < NF_MAX_TUPLE_SLOTS; ++j) k.cls[j] = w.cls[t.slots[j] & 31];
    for (uint32_t seq = 0;; ++seq) {
      k.seq = (uint16_t)seq;
      auto it = entries_.find(k);
      if (it == entries_.end()) break;
      if (it->second.rule >= from) {
        best = std::min(best, it->second.rule);
        break;
      }
      if (!it->second.has_next) break;
    }
  }
  return best;
}

// As nf_recent_match in bpf/lib/classify.h.
// bpf/lib/classify.h nf_limit_match, one CPU: xt_limit's credits in
// jiffies or nft_limit's tokens in ns. The model's clock starts at 0, so a
// `last` of 0 after a packet is taken as 1.
// As nf_hl_mask in bpf/lib/classify.h: the first `bits` bits of an
// IPv4-mapped (family 4: bytes 12-15) or IPv6 address, the rest zero.
static void hl_mask(uint8_t* out, const ir::u128& a, uint8_t family, uint32_t bits) {
  for (uint32_t from = family == 4 ? 12 : 0, i = from; i < 16; ++i) {
    uint32_t bit = (i - from) * 8;
    uint8_t b = (uint8_t)(a >> (8 * (15 - i)));
    out[i] = bit + 8 <= bits ? b : bit >= bits ? 0 : (uint8_t)(b & (uint8_t)(0xff << (8 - (bits - bit))));
  }
}

// As nf_hashlimit_match in bpf/lib/classify.h: the packet's bucket of the
// -m hashlimit table, in jiffies of the model's clock.
// As nf_hl_key.
nf2bpf_hashlimit_key Model::hl_key(const nf2bpf_limit_cfg& c, const pkt::Packet& p) const {
  nf2bpf_hashlimit_key k{};
  k.table = c.table;
  k.family = p.family;
  if (c.mode & NF_HL_SIP) hl_mask(k.src, p.saddr, p.family, c.srcmask);
  if (c.mode & NF_HL_DIP) hl_mask(k.dst, p.daddr, p.family, c.dstmask);
  if (p.has_l4 && has_ports(p.l4proto)) {
    if (c.mode & NF_HL_SPT) k.sport = htons(p.sport);
    if (c.mode & NF_HL_DPT) k.dport = htons(p.dport);
  }
  return k;
}

bool Model::hashlimit_match(const nf2bpf_limit_cfg& c, const pkt::Packet& p) {
  nf2bpf_hashlimit_key k = hl_key(c, p);
  uint64_t hz = env_.hz, cpj = UINT64_MAX / (hz * 86400);
  for (int sh : {1, 2, 4, 8, 16, 32}) cpj |= cpj >> sh;
  cpj = (cpj >> 1) + 1;
  uint64_t scale = 1000000, hc = hz * cpj;
  uint64_t now = (uint64_t)((unsigned __int128)now_ * hz / 1000000000u);
  auto it = hashlimit_.find(k);
  if (it == hashlimit_.end() || (int64_t)(now - it->second.expires) >= 0) {
    nf2bpf_hashlimit_val n{};
    n.prev = now;
    n.cost = scale >= hc ? c.cost / (scale / hc) : c.cost * (hc / scale);
    n.credit = scale >= hc ? c.cost * c.cap / (scale / hc) : c.cost * c.cap * (hc / scale);
    n.cap = n.credit;
    it = hashlimit_.insert_or_assign(k, n).first;
  } else if (now != it->second.prev) {
    auto& v = it->second;
    v.credit += (now - v.prev) * cpj;
    v.prev = now;
    if (v.credit > v.cap) v.credit = v.cap;
  }
  auto& v = it->second;
  v.expires = now + (c.expire * hz + 999) / 1000;
  bool under = v.credit >= v.cost;
  if (under) v.credit -= v.cost;
  return under != !!(c.flags & NF_LIMIT_INV);
}

// As nf_set_match in bpf/lib/classify.h: an nft set the packet path
// updates, its elements among the hashlimit buckets.
bool Model::set_match(const nf2bpf_limit_cfg& c, const pkt::Packet& p) {
  nf2bpf_hashlimit_key k = hl_key(c, p);
  uint32_t op = (uint32_t)c.rate & NF_SET_OP;
  bool inv = c.flags & NF_LIMIT_INV;
  uint64_t hz = env_.hz;
  uint64_t now = (uint64_t)((unsigned __int128)now_ * hz / 1000000000u), timeout = (uint64_t)c.expire * hz / 1000;
  auto it = hashlimit_.find(k);
  bool there =
      it != hashlimit_.end() && (it->second.expires == NF_SET_NEVER || (int64_t)(now - it->second.expires) < 0);
  if (op == NF_SET_LOOKUP) return there != inv;
  if (op == NF_SET_DELETE) {
    if (there) hashlimit_.erase(it);
    return true;
  }
  uint64_t ns_per_jiffy = 1000000000u / hz;
  if (!there) {
    nf2bpf_hashlimit_val n{};
    n.expires = c.expire ? now + timeout : NF_SET_NEVER;
    n.cap = c.expire ? now_ + timeout * ns_per_jiffy : 0;
    n.cost = timeout;
    n.credit = c.cap;
    n.prev = now_;
    it = hashlimit_.insert_or_assign(k, n).first;
  } else if (op == NF_SET_UPDATE && it->second.expires != NF_SET_NEVER) {
    uint64_t t = ((uint32_t)c.rate & NF_SET_TIMEOUT) ? timeout : it->second.cost;
    it->second.expires = now + t;
    it->second.cap = now_ + t * ns_per_jiffy;
  }
  if (!((uint32_t)c.rate & NF_SET_LIMIT)) return true;
  auto& v = it->second;
  uint64_t tokens = std::min<uint64_t>(v.credit + (now_ - v.prev), c.cap);
  v.prev = now_;
  bool under = tokens >= c.cost;
  v.credit = under ? tokens - c.cost : tokens;
  return under != inv;
}

// As nf_connlimit_match and nf_connlimit_step in bpf/lib/classify.h
// (nf_conncount), on CPU 0.
bool Model::connlimit_match(const nf2bpf_limit_cfg& c, const Work& w, uint32_t idx) {
  const pkt::Packet& p = w.p;
  std::array<uint8_t, 16> addr{};
  ir::u128 a = (c.mode & NF_CL_DADDR) ? p.daddr : p.saddr;
  hl_mask(addr.data(), a, p.family, c.srcmask);
  uint32_t jiffies = (uint32_t)((unsigned __int128)now_ * env_.hz / 1000000000u), cpu = 0, count = 1;
  auto [it, fresh] = connlimit_.try_emplace({idx, p.family, addr});
  nf2bpf_connlimit_val& v = it->second;
  auto add = [&](uint32_t n) {
    v.conns[n].key = w.ct_key;
    v.conns[n].jiffies32 = jiffies;
    v.conns[n].cpu = cpu;
  };
  if (fresh || !v.count) {
    add(0);
    v.count = 1;
    v.last_gc = jiffies;
  } else {
    bool dup = false;
    if (jiffies != v.last_gc) {
      uint32_t collect = 0, kept = 0;
      bool stop = false;
      for (uint32_t i = 0; i < v.count && i < NF_CONNLIMIT_CONNS; ++i) {
        const nf2bpf_connlimit_conn conn = v.conns[i];
        bool keep = true;
        if (!stop && !dup) {
          if (collect > 8) {
            stop = true;
          } else {
            auto ct = ct_.find(conn.key);
            bool same = std::memcmp(&conn.key, &w.ct_key, sizeof conn.key) == 0;
            if (ct == ct_.end() || ct->second.expires_ns <= now_) {
              if (conn.cpu == cpu || jiffies - conn.jiffies32 >= 2) {
                keep = false;
                ++collect;
              } else if (same) {
                dup = true;
              }
            } else if (same) {
              dup = true;
            } else if (conn.key.proto == 6 && (ct->second.tcp_state == sTW || ct->second.tcp_state == sCL)) {
              keep = false;
              ++collect;
            }
          }
        }
        if (keep) v.conns[kept++] = conn;
      }
      v.count = kept;
      if (!dup) v.last_gc = jiffies;
    }
    if (!dup && v.count < NF_CONNLIMIT_CONNS) add(v.count++);
    count = v.count;
  }
  return (count > c.cost) != !!(c.flags & NF_LIMIT_INV);
}

// As nf_time_match in bpf/lib/classify.h (xt_time's time_mt).
bool Model::time_match(const nf2bpf_limit_cfg& c) const {
  int64_t stamp = env_.real_seconds ? env_.real_seconds() : (int64_t)(now_ / 1000000000u);
  if (c.mode & NF_TM_KERNELTZ) stamp -= 60 * (int64_t)env_.tz_minuteswest;
  int64_t date_start = (int64_t)(c.cost & 0xffffffffu), date_stop = (int64_t)(c.cost >> 32);
  if (stamp < date_start || stamp > date_stop) return false;
  uint64_t t = (uint64_t)stamp;
  uint32_t packet_time = (uint32_t)(t % 86400), ds = (uint32_t)c.cap, de = (uint32_t)(c.cap >> 32);
  if (ds < de) {
    if (packet_time < ds || packet_time > de) return false;
  } else {
    if (packet_time < ds && packet_time > de) return false;
    if ((c.mode & NF_TM_CONTIGUOUS) && packet_time <= de && t >= 86400) t -= 86400;
  }
  uint64_t dse = t / 86400;
  uint32_t weekday = (uint32_t)((dse + 3) % 7) + 1;
  if (!((c.rate >> 32) & (1u << weekday))) return false;
  uint32_t monthdays = (uint32_t)c.rate;
  if (monthdays != 0xFFFFFFFEu) {
    uint64_t z = dse + 719468, era = z / 146097, doe = z - era * 146097;
    uint64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    uint64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
    uint32_t day = (uint32_t)(doy - (153 * mp + 2) / 5 + 1);
    if (!(monthdays & (1u << (day & 31)))) return false;
  }
  return true;
}

bool Model::limit_match(uint32_t i, const Work& w) {
  const auto& l = pol_.limits[i];
  const pkt::Packet& p = w.p;
  if (l.flags & NF_LIMIT_HASH) return hashlimit_match(l, p);
  if (l.flags & NF_LIMIT_CONN) return connlimit_match(l, w, i);
  if (l.flags & NF_LIMIT_TIME) return time_match(l);
  if (l.flags & NF_LIMIT_SET) return set_match(l, p);
  uint32_t length = p.length;
  uint64_t& last = limit_last_[i];
  uint64_t& tokens = limit_tokens_[i];
  if (l.flags & NF_LIMIT_XT) {
    uint32_t hz = env_.hz, cpj = 0xFFFFFFFFu / (hz * 86400u);
    cpj |= cpj >> 1, cpj |= cpj >> 2, cpj |= cpj >> 4, cpj |= cpj >> 8, cpj |= cpj >> 16;
    cpj = (cpj >> 1) + 1;
    auto credits = [&](uint32_t user) -> uint32_t {
      if (user > 0xFFFFFFFFu / (hz * cpj)) return (user / 10000) * hz * cpj;
      return (user * hz * cpj) / 10000;
    };
    uint32_t avg = (uint32_t)l.cost, cost = credits(avg), cap = credits(avg * (uint32_t)l.cap);
    uint64_t now = std::max<uint64_t>(1, (uint64_t)((unsigned __int128)now_ * hz / 1000000000u));
    if ((uint32_t)tokens < cost && last == now) return false;
    uint64_t prev = last;
    last = now;
    uint32_t credit = (uint32_t)tokens + (prev ? (uint32_t)((now - prev) * cpj) : cap);
    if (credit > cap) credit = cap;
    bool ret = credit >= cost;
    tokens = ret ? credit - cost : credit;
    return ret;
  }
  uint64_t now = std::max<uint64_t>(1, now_), cost = l.cost, cap = l.cap;
  if (l.flags & NF_LIMIT_BYTES) cost = l.rate ? cost * length / l.rate : 0;
  uint64_t prev = last;
  last = now;
  uint64_t t = tokens + (!prev ? cap : now > prev ? now - prev : 0);
  if (t > cap) t = cap;
  bool within = (int64_t)(t - cost) >= 0;
  tokens = within ? t - cost : t;
  return within != !!(l.flags & NF_LIMIT_INV);
}

bool Model::recent_match(const Work& w, const nf2bpf_rule& r) {
  nf2bpf_recent_key k{};
  k.table = r.recent_table;
  k.family = w.p.family;
  ir::u128 a = (r.recent_flags & NF_RECENT_RDEST) ? w.p.daddr : w.p.saddr;
  for (int i = 0; i < 16; ++i) k.addr[i] = (uint8_t)(a >> (8 * (15 - i))) & r.recent_mask[i];
  uint8_t ttl = (uint8_t)(w.p.ttl + (w.hook == NF_HOOK_FORWARD ? 1 : 0));
  bool ret = r.residual & NF_RES_RECENT_NEG;
  uint64_t now = (uint64_t)((unsigned __int128)now_ * env_.hz / 1000000000u);
  nf2bpf_recent_tab& t = recent_tab_[k.table];
  auto oldest = [&]() {
    auto best = recent_.end();
    for (auto it = recent_.begin(); it != recent_.end(); ++it)
      if (it->first.table == k.table && (best == recent_.end() || it->second.lru < best->second.lru)) best = it;
    return best;
  };
  auto forget = [&](std::map<nf2bpf_recent_key, nf2bpf_recent_val, RecentKeyLess>::iterator it) {
    recent_.erase(it);
    --t.entries;
  };
  auto e = recent_.find(k);
  if (e != recent_.end() && (r.recent_flags & NF_RECENT_RTTL) &&
      !(e->second.ttl == ttl || ttl == 0 || e->second.ttl == 0))
    e = recent_.end();
  if (e == recent_.end()) {
    if (r.recent_cmd != NF_RECENT_SET) return ret;
    if (t.entries >= NF_RECENT_LIST_TOT)
      if (auto o = oldest(); o != recent_.end()) forget(o);
    nf2bpf_recent_val n{};
    n.stamps[0] = now;
    n.nstamps = 1;
    n.index = 1;
    n.ttl = ttl;
    n.lru = ++t.clock;
    recent_.emplace(k, n);
    ++t.entries;
    return !ret;
  }
  bool gone = false;
  if (r.recent_cmd == NF_RECENT_SET) {
    ret = !ret;
  } else if (r.recent_cmd == NF_RECENT_REMOVE) {
    forget(e);
    return !ret;
  } else {
    uint64_t time = now - (uint64_t)r.recent_seconds * env_.hz;
    uint32_t hits = 0;
    for (uint32_t i = 0; i < NF_RECENT_STAMPS && i < e->second.nstamps; ++i) {
      if (r.recent_seconds && (int64_t)(e->second.stamps[i] - time) < 0) continue;
      if (!r.recent_hitcount || ++hits >= r.recent_hitcount) {
        ret = !ret;
        break;
      }
    }
    if (r.recent_flags & NF_RECENT_REAP) {
      auto o = oldest();
      if (o != recent_.end() &&
          (int64_t)(o->second.stamps[(uint32_t)(o->second.index - 1) & (NF_RECENT_STAMPS - 1)] - time) < 0) {
        gone = o == e;
        forget(o);
      }
    }
  }
  if (!gone && (r.recent_cmd == NF_RECENT_SET || (r.recent_cmd == NF_RECENT_UPDATE && ret))) {
    nf2bpf_recent_val& v = e->second;
    uint32_t idx = (uint32_t)v.index & r.recent_ring & (NF_RECENT_STAMPS - 1);
    v.stamps[idx] = now;
    v.index = (uint16_t)(idx + 1);
    if (v.index > v.nstamps) v.nstamps = v.index;
    v.ttl = ttl;
    v.lru = ++t.clock;
  }
  return ret;
}

bool Model::residual_ok(Work& w, const nf2bpf_rule& r, uint32_t) {
  uint32_t res = r.residual;
  if (!res) return true;
  auto test = [](bool eq, bool neg) { return eq != neg; };
  if ((res & NF_RES_MARK) && !test((w.p.mark & r.mark_mask) == r.mark_value, res & NF_RES_MARK_NEG)) return false;
  if ((res & NF_RES_MARK2) && !test((w.p.mark & r.mark2_mask) == r.mark2_value, res & NF_RES_MARK2_NEG)) return false;
  if ((res & NF_RES_CTMARK) &&
      (!w.has_ct || !test((w.ctmark & r.ctmark_mask) == r.ctmark_value, res & NF_RES_CTMARK_NEG)))
    return false;
  if (res & NF_RES_CTSTATUS) {
    uint32_t st = w.has_ct ? ((w.nat.flags & NF_CT_SNAT) ? 1 : 0) | ((w.nat.flags & NF_CT_DNAT) ? 2 : 0) : 0;
    if (!((r.ctstatus >> st) & 1)) return false;
  }
  if (res & NF_RES_CTTUPLE) {
    // As nf_ct_tuple_test, for nf_nat[ct_range] and the tests chained after it.
    if (w.ctdir > 1) return false;
    uint32_t idx = r.ct_range;
    for (int k = 0;; k++, idx++) {
      if (k == 4 || idx >= pol_.nats.size()) return false;
      const nf2bpf_nat& t = pol_.nats[idx];
      if (t.kind < NF_NAT_CT || t.kind > NF_NAT_CT_MAX) return false;
      uint32_t f = t.kind - NF_NAT_CT;
      bool reply = (f >> 2) & 1, dst = (f >> 1) & 1, port = f & 1;
      const NatWork& nw = w.nat;
      ir::u128 addr;
      uint16_t pv;
      if ((nw.active && nw.binding) || (nw.flags & (NF_CT_SNAT | NF_CT_DNAT))) {
        const nf_ct_tuple& tu = reply ? nw.reply : nw.orig;
        addr = from_bytes(dst ? tu.dst : tu.src);
        pv = dst ? tu.dport : tu.sport;
      } else {
        bool pkt_src = (!dst) == (reply == (w.ctdir == 1));
        addr = pkt_src ? w.p.saddr : w.p.daddr;
        pv = pkt_src ? w.p.sport : w.p.dport;
      }
      bool in = port ? pv >= t.port_min && pv <= t.port_max
                     : addr >= from_bytes(t.addr_min) && addr <= from_bytes(t.addr_max);
      if (!test(in, t.flags & NF_NAT_F_NEG)) return false;
      if (!(t.flags & NF_NAT_F_MORE)) break;
    }
  }
  if ((res & NF_RES_MAC) && !test(w.p.has_l2 && w.p.src_mac == r.mac, res & NF_RES_MAC_NEG)) return false;
  // A rate or chance only makes the verdict uncertain when the rule can
  // change it: a LOG-only rule (`-m limit -j LOG`) cannot.
  bool log_only = r.action == NF_ACT_CONTINUE;
  for (uint32_t i = 0; i < r.stmt_count && i < 16 && log_only; ++i)
    log_only = pol_.stmts[r.stmt_first + i].kind == NF_STMT_LOG;
  if (res & NF_RES_OWNER) {
    // bpf/lib/kern.h nf_owner_ok for a packet without a sending socket (a
    // capture or a test run has none): what the socket is decides.
    w.indeterminate |= !log_only;
    uint32_t match = r.owner_match, inv = r.owner_inv;
    if (match & NF_OWNER_NFT) return false;
    if (((match ^ inv) & (NF_OWNER_UID | NF_OWNER_GID | NF_OWNER_SOCKET)) != 0) return false;
  }
  if (res & NF_RES_RANDOM) {
    w.indeterminate |= !log_only;
    // One draw per slot and stage run, cached as nf_scratch.draw_*.
    uint32_t k = r.nth_slot % NF_DRAW_CACHE;
    if (!((w.draw_valid >> k) & 1) || w.draw_slot[k] != r.nth_slot) {
      rng_ ^= rng_ << 13, rng_ ^= rng_ >> 7, rng_ ^= rng_ << 17;
      w.draw_valid |= 1u << k;
      w.draw_slot[k] = r.nth_slot;
      w.draw_val[k] = (uint32_t)rng_ >> 1;
    }
    bool below = w.draw_val[k] < r.random_below;
    if (!test(below, res & NF_RES_RANDOM_NEG)) return false;
  }
  if (res & NF_RES_LIMIT) {
    w.indeterminate |= !log_only;
    for (uint32_t i = r.limit, n = 0; n < NF_LIMIT_CHAIN; ++i, ++n) {  // as bpf/: the rule's chain of checks
      if (i >= pol_.limits.size() || !limit_match(i, w)) return false;
      if (!(pol_.limits[i].flags & NF_LIMIT_MORE)) break;
    }
  }
  if (res & NF_RES_NTH) {
    // Last, as in bpf/: only packets every other test let through count.
    if (r.nth_slot >= nth_count_.size() || !r.nth_every) return false;
    uint64_t seen;
    if (res & NF_RES_NTH_ONCE) {  // as BPF: one step per stage run for the slot's rules
      uint32_t k = r.nth_slot % NF_DRAW_CACHE, tag = NF_NTH_ONCE_TAG | r.nth_slot;
      if (!((w.draw_valid >> k) & 1) || w.draw_slot[k] != tag) {
        w.draw_valid |= 1u << k;
        w.draw_slot[k] = tag;
        w.draw_val[k] = (uint32_t)(++nth_count_[r.nth_slot] % r.nth_every);
      }
      seen = w.draw_val[k];
    } else {
      seen = ++nth_count_[r.nth_slot];
    }
    if (!test(seen % r.nth_every == r.nth_hit, res & NF_RES_NTH_NEG)) return false;
  }
  if ((res & NF_RES_RECENT) && !recent_match(w, r)) return false;  // last, as in bpf/
  return true;
}

void Model::statements(Work& w, const nf2bpf_rule& r) {
  for (uint32_t i = 0; i < r.stmt_count && i < 16; ++i) {
    const nf2bpf_stmt& st = pol_.stmts[r.stmt_first + i];
    switch (st.kind) {
      case NF_STMT_SET_MARK: w.p.mark = (w.p.mark & ~st.mask) ^ st.value; break;
      case NF_STMT_SET_CTMARK:
        if (w.has_ct) w.ctmark = (w.ctmark & ~st.mask) ^ st.value;
        break;
      case NF_STMT_SAVE_MARK:
        if (w.has_ct) w.ctmark = (w.ctmark & ~st.mask) | (w.p.mark & st.mask);
        break;
      case NF_STMT_RESTORE_MARK:
        if (w.has_ct) w.p.mark = (w.p.mark & ~st.mask) | (w.ctmark & st.mask);
        break;
      case NF_STMT_NOTRACK: w.notrack = true; break;
      case NF_STMT_TCPMSS: break;  // rewrites the packet, decides nothing
      case NF_STMT_SET_TOS:
        w.p.tos = (uint8_t)((w.p.tos & ~st.mask) ^ st.value);
        w.cls[NF_SLOT_TOS] = small_class(NF_SMALL_TOS_BASE + w.p.tos);
        break;
      default: break;
    }
  }
}

uint8_t Model::run_stage(Work& w, uint32_t si, Decision& d) {
  const nf2bpf_stage& st = pol_.stages[si];
  uint32_t from = st.first_rule;
  w.draw_valid = 0;  // as nf_run_stage
  for (;;) {
    uint32_t best = search(w, st, from);
    if (best == kNone || best >= st.end_rule) {
      ++hits_[st.policy_counter];
      d.rule = st.policy_counter;
      d.by_policy = true;
      d.stage = si;
      return st.policy;
    }
    const nf2bpf_rule& r = pol_.rules[best];
    if (!residual_ok(w, r, best)) {
      from = best + 1;
      continue;
    }
    ++hits_[best];
    statements(w, r);
    if (r.action == NF_ACT_CONTINUE) {
      from = best + 1;
      continue;
    }
    if (r.action == NF_ACT_SKIP) {
      from = r.skip_to;
      continue;
    }
    d.rule = best;
    d.by_policy = false;
    d.stage = si;
    return r.action;
  }
}

// As nf_run_hook: the hook's nat stages run together at its NAT point.
uint8_t Model::run_hook(Work& w, int hook, int phase, Decision& d) {
  w.hook = hook;
  const auto& hd = pol_.hooks[hook];
  uint8_t fam = w.p.family == 4 ? NF_FAM_V4 : NF_FAM_V6;
  bool natpoint = w.nat.active && (phase & 2);
  w.nat.rule = kNone;
  for (uint32_t i = 0; i < hd.stage_count && i < 16; ++i) {
    uint32_t si = hd.stage_first + i;
    const auto& st = pol_.stages[si];
    if (!(st.family_mask & fam)) continue;
    int ph = (st.flags & NF_STAGE_BEFORE_CT) ? 1 : 2;
    if (!(ph & phase)) continue;
    if (st.flags & NF_STAGE_NAT) {
      if (!natpoint || !w.nat.binding || w.nat.rule != kNone) continue;
    } else if (natpoint && (st.flags & NF_STAGE_AFTER_NAT)) {
      natpoint = false;
      if (!nat_point(w, hook)) return NF_ACT_DROP;
    }
    uint8_t v = run_stage(w, si, d);
    if (v == NF_ACT_NAT) {
      w.nat.rule = d.rule;
      continue;
    }
    if (v != NF_ACT_ACCEPT) return v;
  }
  if (natpoint && !nat_point(w, hook)) return NF_ACT_DROP;
  return NF_ACT_ACCEPT;
}

// As nf_ct_csum (bpf/lib/csum.h) for an skb whose checksum state is
// CHECKSUM_NONE (as BPF_PROG_TEST_RUN's): nf_csum_checked_proto, then the
// one's complement sum of the transport bytes (and nf_pseudo_sum) folded.
static bool ct_csum_bad(const pkt::Packet& p) {
  const uint8_t proto = p.l4proto;
  auto l4off = verify::l4_offset(p);
  if (p.fragment || !l4off || !*l4off) return false;
  if (proto != IPPROTO_TCP && proto != IPPROTO_UDP && proto != IPPROTO_ICMP && proto != IPPROTO_ICMPV6) return false;
  const auto& b = p.l3;
  if (proto == IPPROTO_UDP && *l4off + 8 <= b.size() && b[*l4off + 6] == 0 && b[*l4off + 7] == 0) return false;
  if (p.length <= *l4off) return false;
  const uint32_t len = p.length - (uint32_t)*l4off;
  if (len > NF_CSUM_MAX || *l4off + len > b.size()) return false;
  uint32_t sum = 0;
  auto add = [&sum](const uint8_t* d, size_t n) {
    for (size_t i = 0; i < n; i += 2) sum += (uint32_t)d[i] << 8 | (i + 1 < n ? d[i + 1] : 0);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  };
  if (p.family == 6 || proto == IPPROTO_TCP || proto == IPPROTO_UDP) {
    uint8_t w[40] = {};
    size_t n = 0;
    if (p.family == 4) {
      std::memcpy(w, b.data() + 12, 8);
      w[9] = proto;
      w[10] = (uint8_t)(len >> 8);
      w[11] = (uint8_t)len;
      n = 12;
    } else {
      std::memcpy(w, b.data() + 8, 32);
      w[34] = (uint8_t)(len >> 8);
      w[35] = (uint8_t)len;
      w[39] = proto;
      n = 40;
    }
    add(w, n);
  }
  add(b.data() + *l4off, len);
  return (uint16_t)~sum != 0;
}

// As nf_addr_type_of: an IPv6 packet's IPv4-mapped address has no type.
uint32_t Model::addr_type(uint8_t family, const ir::u128& a) const {
  if (family == 6 && (a >> 32) == 0xffff) return 0;
  return env_.addrtype ? env_.addrtype(a) : 2u;
}

// As nf_pkt_tuple: ports, or the ICMP echo identifier in both.
static nf_ct_tuple packet_tuple(const pkt::Packet& p) {
  uint8_t sb[16], db[16];
  to_bytes(p.saddr, sb);
  to_bytes(p.daddr, db);
  bool is_icmp = p.has_l4 && ((p.family == 4 && p.l4proto == 1) || (p.family == 6 && p.l4proto == 58));
  bool ports = p.has_l4 && has_ports(p.l4proto);
  uint16_t sp = ports ? p.sport : is_icmp ? p.icmp_id : 0;
  uint16_t dp = ports ? p.dport : is_icmp ? p.icmp_id : 0;
  return tuple_set(sb, db, sp, dp);
}

// As nf_nat_begin.
void Model::nat_begin(Work& w, const CtRes& ct, uint64_t now, bool looped, bool forwarded_egress) const {
  NatWork& nw = w.nat;
  const pkt::Packet& p = w.p;
  uint32_t fam = p.family == 4 ? NF_FAM_V4 : NF_FAM_V6;
  bool is_icmp = p.has_l4 && ((p.family == 4 && p.l4proto == 1) || (p.family == 6 && p.l4proto == 58));
  if (!(pol_.cfg.nat_fams & fam) || looped) return;
  if (is_icmp && p.inner) {
    if (ct.state != NF_CT_STATE_RELATED) return;
    nw.active = true;
    nw.dir = ct.dir;
    nw.now = now;
    nw.flags &= NF_CT_SNAT | NF_CT_DNAT;
    return;
  }
  if (!ct.track) return;
  nw.active = true;
  nw.dir = ct.dir;
  nw.now = now;
  nw.icmp_req = is_icmp ? ct.key.pad[0] : 0;
  if (!ct.exists) {
    nw.binding = true;
    nw.flags = 0;
    nw.orig = packet_tuple(p);
    nw.reply = tuple_invert(nw.orig);
    return;
  }
  if (forwarded_egress && (nw.flags & NF_CT_SRC_PENDING)) {
    nw.binding = true;
    nw.passed = 1;
    nw.old_reply = nw.reply;
    nw.had_alias = (nw.flags & (NF_CT_SNAT | NF_CT_DNAT)) != 0;
  }
  nw.flags &= NF_CT_SNAT | NF_CT_DNAT;
}

// As nf_nat_point.
bool Model::nat_point(Work& w, int hook) {
  NatWork& nw = w.nat;
  bool dst = hook == NF_HOOK_PREROUTING || hook == NF_HOOK_OUTPUT;
  if (!dst && hook != NF_HOOK_INPUT && hook != NF_HOOK_POSTROUTING) return true;
  uint8_t bit = dst ? 1 : 2;
  if (nw.passed & bit) return true;
  nw.passed |= bit;
  nw.manip_dst = dst;
  if (nw.binding && !nat_bind(w, hook == NF_HOOK_OUTPUT)) return false;
  int rc = nat_apply(w);
  if (rc < 0) return false;
  if (rc > 0) classify(w, pol_.cfg.slots_used, w.ctstate, w.ctdir);
  return true;
}

// As nf_nat_used.
bool Model::nat_used(const NatWork& nw, uint8_t proto) const {
  nf_ct_key k = tuple_key(tuple_invert(nw.cand), proto, nw.icmp_req, true);
  auto it = ct_.find(k);
  if (it == ct_.end() || it->second.expires_ns <= nw.now) return false;
  if (it->second.flags & NF_CT_ALIAS) {
    const nf_ct_tuple reply = it->second.reply;
    it = ct_.find(tuple_key(it->second.orig, proto, nw.icmp_req, false));
    if (it == ct_.end() || it->second.expires_ns <= nw.now || (it->second.flags & NF_CT_ALIAS) ||
        !tuple_eq(it->second.reply, reply))
      return false;
  }
  return !tuple_eq(it->second.orig, nw.orig);
}

// As nf_nat_in_range.
bool Model::nat_in_range(const NatWork&, const nf2bpf_nat& n, const nf_ct_tuple& t, const uint8_t* fixed,
                         bool ports) const {
  if (fixed) {
    if (std::memcmp(t.src, fixed, 16) != 0) return false;
  } else if (n.flags & NF_NAT_F_ADDR) {
    if (std::memcmp(t.src, n.addr_min, 16) < 0 || std::memcmp(t.src, n.addr_max, 16) > 0) return false;
  }
  if ((n.flags & NF_NAT_F_PORTS) && ports && (t.sport < n.port_min || t.sport > n.port_max)) return false;
  return true;
}

// As nf_nat_src_keep.
bool Model::nat_src_keep(Work& w, const nf2bpf_nat& n, const uint8_t* fixed, bool ports) {
  NatWork& nw = w.nat;
  uint8_t proto = w.p.l4proto;
  nw.cand = nw.before;
  if (nat_in_range(nw, n, nw.cand, fixed, ports)) return !nat_used(nw, proto);
  nf_nat_src_key k{};
  std::memcpy(k.addr, nw.before.src, 16);
  k.port = nw.before.sport;
  k.proto = proto;
  auto s = nat_src_.find(k);
  if (s == nat_src_.end()) return false;
  auto it = ct_.find(s->second);
  if (it == ct_.end()) return false;
  const nf_ct_val& v = it->second;
  if (v.expires_ns <= nw.now || (v.flags & NF_CT_ALIAS) || v.orig.sport != nw.before.sport ||
      std::memcmp(v.orig.src, nw.before.src, 16) != 0)
    return false;
  std::memcpy(nw.cand.src, v.reply.dst, 16);
  nw.cand.sport = v.reply.dport;
  if (nw.icmp_req) nw.cand.dport = nw.cand.sport;
  if (nat_in_range(nw, n, nw.cand, fixed, ports) && !nat_used(nw, proto)) return true;
  nw.cand = nw.before;
  return false;
}

// As nf_nat_unique (get_unique_tuple's port part).
bool Model::nat_unique(Work& w, const nf2bpf_nat* n, bool ports) {
  NatWork& nw = w.nat;
  bool dst = nw.manip_dst;
  bool icmp = nw.icmp_req != 0;
  bool specified = n && (n->flags & NF_NAT_F_PORTS);
  bool random = n && (n->flags & (NF_NAT_F_RANDOM | NF_NAT_F_RANDOM_FULLY));
  uint16_t cur = dst ? nw.cand.dport : nw.cand.sport;
  if (!ports) return true;
  if (!random) {
    if (specified) {
      if (cur >= n->port_min && cur <= n->port_max && (n->port_min == n->port_max || !nat_used(nw, w.p.l4proto)))
        return true;
    } else if (!nat_used(nw, w.p.l4proto)) {
      return true;
    }
  }
  uint32_t min, size;
  if (icmp) {
    min = specified ? n->port_min : 0;
    size = specified ? (uint32_t)n->port_max - n->port_min + 1 : 65536;
  } else if (!specified) {
    if (dst) return true;
    if (cur < 1024) {
      min = cur < 512 ? 1 : 600;
      size = cur < 512 ? 511 : 1023 - 600 + 1;
    } else {
      min = 1024;
      size = 65535 - 1024 + 1;
    }
  } else {
    min = n->port_min;
    size = (uint32_t)n->port_max - n->port_min + 1;
  }
  uint32_t off = 0;
  if (random || !dst) {
    rng_ ^= rng_ << 13, rng_ ^= rng_ >> 7, rng_ ^= rng_ << 17;
    off = (uint32_t)rng_ & 0xffff;
  }
  uint32_t attempts = std::min<uint32_t>(size, 128);
  for (uint32_t i = 0; i < attempts; ++i) {
    uint16_t port = (uint16_t)(min + (off + i) % size);
    if (dst)
      nw.cand.dport = port;
    else
      nw.cand.sport = port;
    if (nw.icmp_req) nw.cand.sport = nw.cand.dport = port;
    if (!nat_used(nw, w.p.l4proto)) return true;
  }
  return false;
}

// As nf_svc_pick: one of the service's backends as a DNAT range (drawn at
// random when there are several: the decision is then indeterminate), the
// hairpin mark (nf_svc_conns' count is the loader's to read).
bool Model::svc_pick(Work& w, uint32_t id, nf2bpf_nat& range) {
  if (id >= pol_.services.size() || pol_.services[id].backends.empty()) return false;
  const policy::Service& sv = pol_.services[id];
  uint32_t count = (uint32_t)sv.backends.size(), i = 0;
  if (count > 1) {
    rng_ ^= rng_ << 13, rng_ ^= rng_ >> 7, rng_ ^= rng_ << 17;
    i = (uint32_t)(((uint64_t)(uint32_t)rng_ * count) >> 32);
    w.indeterminate = true;
  }
  const policy::ServiceBackend& b = sv.backends[i];
  range = nf2bpf_nat{};
  range.kind = NF_NAT_DNAT;
  range.flags = NF_NAT_F_ADDR | NF_NAT_F_PORTS;
  to_bytes(b.addr, range.addr_min);
  to_bytes(b.addr, range.addr_max);
  range.port_min = range.port_max = b.port;
  if (sv.mark_mask && w.p.saddr == b.addr) w.p.mark = (w.p.mark & ~sv.mark_mask) ^ sv.mark_value;
  return true;
}

// As nf_nat_bind.
bool Model::nat_bind(Work& w, bool output) {
  NatWork& nw = w.nat;
  const pkt::Packet& p = w.p;
  const nf2bpf_nat* n = nullptr;
  nf2bpf_nat drawn;
  if (nw.rule != kNone) {
    if (nw.rule >= pol_.rules.size() || pol_.rules[nw.rule].nat >= pol_.nats.size()) return false;
    n = &pol_.nats[pol_.rules[nw.rule].nat];
    if (n->kind == NF_NAT_SERVICE) {
      if (!svc_pick(w, n->service, drawn)) return false;
      n = &drawn;
    }
  }
  bool dst = nw.manip_dst;
  nw.cand = tuple_invert(nw.reply);
  nw.before = nw.cand;
  uint8_t addr[16];
  bool have = false;
  if (n && n->kind == NF_NAT_MASQUERADE) {
    std::optional<ir::u128> a;
    // As nf_nat_masq_addr: out of lo, IPv6 takes the destination; IPv4 the
    // device's address, else (lo, or none) the first device's.
    bool lo = p.oif == "lo";
    if (lo && p.family != 4)
      a = from_bytes(nw.cand.dst);
    else if (!lo && env_.source_address)
      a = env_.source_address(p.family, p.oif, from_bytes(nw.cand.dst));
    if (!a && !lo && env_.iface_address) a = env_.iface_address(p.family, p.oif);  // no route: the device's address
    if (!a && env_.iface_address && p.family == 4) a = env_.iface_address(4, "");  // none: the first device's
    if (!a) return false;
    to_bytes(*a, addr);
    have = true;
  } else if (n && n->kind == NF_NAT_REDIRECT) {
    std::optional<ir::u128> a;
    if (output)
      a = p.family == 4 ? ir::v4_to_u128(0x7f000001) : (ir::u128)1;
    else if (env_.iface_address)
      a = env_.iface_address(p.family, p.iif);
    if (!a) return false;
    to_bytes(*a, addr);
    have = true;
  } else if (n && n->kind == NF_NAT_NETMAP) {
    const uint8_t* cur = dst ? nw.cand.dst : nw.cand.src;
    for (int i = 0; i < 16; ++i) {
      uint8_t m = (uint8_t) ~(n->addr_min[i] ^ n->addr_max[i]);
      addr[i] = (uint8_t)((cur[i] & ~m) | (n->addr_min[i] & m));
    }
    have = true;
  } else if (n && (n->flags & NF_NAT_F_ADDR)) {
    pick_addr(*n, nw.cand, p.family, addr);
    have = true;
  }
  bool is_icmp = nw.icmp_req != 0;
  bool kept = !dst && n && !(n->flags & (NF_NAT_F_RANDOM | NF_NAT_F_RANDOM_FULLY)) &&
              nat_src_keep(w, *n, (n->kind == NF_NAT_MASQUERADE || n->kind == NF_NAT_NETMAP) ? addr : nullptr,
                           (p.has_l4 && has_ports(p.l4proto)) || is_icmp);
  if (!kept) {
    if (have) std::memcpy(dst ? nw.cand.dst : nw.cand.src, addr, 16);
    bool ports = (p.has_l4 && has_ports(p.l4proto) && p.l4proto != 132) || is_icmp;
    if (!nat_unique(w, n, ports)) return false;
  }
  if (!tuple_eq(nw.cand, nw.before)) nw.flags |= dst ? NF_CT_DNAT : NF_CT_SNAT;
  nw.reply = tuple_invert(nw.cand);
  return true;
}

// As nf_nat_apply: 1 rewritten, 0 nothing to do, -1 failure.
int Model::nat_apply(Work& w) {
  NatWork& nw = w.nat;
  bool dst = nw.manip_dst;
  pkt::Packet& p = w.p;
  bool is_icmp = p.has_l4 && ((p.family == 4 && p.l4proto == 1) || (p.family == 6 && p.l4proto == 58));
  if (is_icmp && p.inner && p.family == 4 && p.icmp_type == 5 && (nw.flags & (NF_CT_SNAT | NF_CT_DNAT))) return -1;
  uint8_t bit = (dst != (nw.dir == 1)) ? NF_CT_DNAT : NF_CT_SNAT;
  if (!(nw.flags & bit)) return 0;
  const nf_ct_tuple& other = nw.dir == 1 ? nw.orig : nw.reply;
  if (is_icmp && p.inner) {
    // As nf_nat_icmp_inner: the quoted packet, the other manip type, its own direction's tuple.
    auto& in = *p.inner;
    bool idst = !dst;
    const nf_ct_tuple& q = other;
    if (has_ports(in.l4proto) && in.l4proto != 132) {
      if (idst)
        in.dport = q.dport;
      else
        in.sport = q.sport;
    } else if (in.l4proto == 1 || in.l4proto == 58) {
      in.sport = in.dport = q.sport;
    }
    (idst ? in.daddr : in.saddr) = from_bytes(idst ? q.dst : q.src);
  }
  ir::u128 addr = from_bytes(dst ? other.src : other.dst);
  uint16_t port = dst ? other.sport : other.dport;
  (dst ? p.daddr : p.saddr) = addr;
  if (p.has_l4 && has_ports(p.l4proto) && p.l4proto != 132)
    (dst ? p.dport : p.sport) = port;
  else if (is_icmp && !p.inner)
    p.icmp_id = port;
  nw.changed |= dst ? 1 : 2;
  return 1;
}

// As nf_ct_nat_dir: the packet's key found a NATed connection's entry or
// alias; moves r.key and v to the connection's own entry. 0 original, 1
// reply, -1 a stale alias (no entry), 2 another flow's key. `how`:
// NF_CT_MATCH_* (exact, quoted, any).
int Model::nat_dir(CtRes& r, const nf_ct_val*& v, const ir::u128& sa, const ir::u128& da, uint16_t sp, uint16_t dp,
                   uint64_t now, int how) const {
  if (v->flags & NF_CT_ALIAS) {
    nf_ct_key mk = tuple_key(v->orig, r.key.proto, r.key.pad[0], false);
    auto it = ct_.find(mk);
    if (it == ct_.end() || it->second.expires_ns <= now || (it->second.flags & NF_CT_ALIAS) ||
        !tuple_eq(it->second.reply, v->reply))
      return -1;
    r.key = mk;
    v = &it->second;
  }
  if (how != kMatchQuoted) {
    if (tuple_is(v->orig, sa, da, sp, dp)) return 0;
    if (tuple_is(v->reply, sa, da, sp, dp)) return 1;
  }
  if (how != kMatchExact) {
    if (tuple_is(v->reply, da, sa, dp, sp)) return 0;
    if (tuple_is(v->orig, da, sa, dp, sp)) return 1;
  }
  if (how != kMatchAny) return 2;
  if (from_bytes(v->orig.src) == sa && from_bytes(v->reply.src) == da && v->orig.sport == sp && v->reply.sport == dp)
    return 0;
  if (from_bytes(v->reply.src) == sa && from_bytes(v->orig.src) == da && v->reply.sport == sp && v->orig.sport == dp)
    return 1;
  return 2;
}

void Model::ct_lookup(const pkt::Packet& p, uint64_t now, CtRes& r, bool looped, NatWork& nw) const {
  nw.flags = 0;
  auto nat_load = [&](const nf_ct_val* v) {
    nw.orig = v->orig;
    nw.reply = v->reply;
    nw.flags = v->flags & (NF_CT_SNAT | NF_CT_DNAT | NF_CT_SRC_PENDING);
  };
  r.dir = 2;
  r.state = NF_CT_STATE_INVALID;
  if (p.later_fragment) return;
  auto key_of = [](nf_ct_key& k, const ir::u128& sa, const ir::u128& da, uint16_t sp, uint16_t dp, uint8_t proto) {
    uint8_t sb[16], db[16];
    to_bytes(sa, sb);
    to_bytes(da, db);
    int c = std::memcmp(sb, db, 16);
    bool src_is_a = c < 0 || (c == 0 && sp <= dp);
    k = {};
    std::memcpy(k.a, src_is_a ? sb : db, 16);
    std::memcpy(k.b, src_is_a ? db : sb, 16);
    k.pa = src_is_a ? sp : dp;
    k.pb = src_is_a ? dp : sp;
    k.proto = proto;
    return src_is_a;
  };
  auto icmp_key = [](nf_ct_key& k, const ir::u128& requester, const ir::u128& responder, uint16_t id, uint8_t proto,
                     uint8_t req_type) {
    k = {};
    to_bytes(requester, k.a);
    to_bytes(responder, k.b);
    k.pa = k.pb = id;
    k.proto = proto;
    k.pad[0] = req_type;
  };
  auto live = [&](const nf_ct_key& k) -> const nf_ct_val* {
    auto it = ct_.find(k);
    return it != ct_.end() && it->second.expires_ns > now ? &it->second : nullptr;
  };
  bool is_icmp = p.has_l4 && ((p.family == 4 && p.l4proto == 1) || (p.family == 6 && p.l4proto == 58));
  uint8_t proto = p.l4proto;
  uint16_t sp = 0, dp = 0;
  if (is_icmp) {
    bool err = p.family == 4 ? (p.icmp_type == 3 || p.icmp_type == 4 || p.icmp_type == 5 || p.icmp_type == 11 ||
                                p.icmp_type == 12)
                             : (p.icmp_type >= 1 && p.icmp_type <= 4);
    if (err) {
      if (!p.inner) return;
      const auto& in = *p.inner;
      if (p.daddr != in.saddr) return;  // sent to someone else than the quoted sender: INVALID
      nf_ct_key k;
      bool inner_is_a;
      if (in.l4proto == 1 || in.l4proto == 58) {
        icmp_key(k, in.saddr, in.daddr, in.sport, in.l4proto, p.family == 4 ? 8 : 128);
        inner_is_a = true;
      } else {
        inner_is_a = key_of(k, in.saddr, in.daddr, in.sport, in.dport, in.l4proto);
      }
      if (nw.hint) k = nw.hint_key;
      if (const nf_ct_val* v = live(k)) {
        bool inner_orig = ((v->flags & NF_CT_ORIG_IS_A) != 0) == inner_is_a;
        r.key = k;
        if (v->flags & (NF_CT_SNAT | NF_CT_DNAT | NF_CT_ALIAS)) {
          uint16_t in_dport =
              (in.l4proto == 1 || in.l4proto == 58) ? in.sport : in.dport;  // parse.h: the echo id in both
          int d = nat_dir(r, v, in.saddr, in.daddr, in.sport, in_dport, now, nw.hint ? kMatchAny : kMatchQuoted);
          if (d < 0 || d > 1) return;
          inner_orig = d == 0;
        }
        r.state = NF_CT_STATE_RELATED;
        r.dir = inner_orig ? 1 : 0;
        r.ctmark = v->mark;
        nat_load(v);
      }
      return;
    }
    if (p.family == 6 && icmp6_noct(p.icmp_type)) {
      r.state = NF_CT_STATE_UNTRACKED;
      return;
    }
    bool req = icmp_request(p.family, p.icmp_type), rep = icmp_reply(p.family, p.icmp_type);
    if (!req && !rep) return;
    uint8_t req_type = req ? p.icmp_type : (p.family == 4 ? (p.icmp_type == 0 ? 8 : p.icmp_type - 1) : 128);
    icmp_key(r.key, req ? p.saddr : p.daddr, req ? p.daddr : p.saddr, p.icmp_id, proto, req_type);
    r.proto = proto;
    if (nw.hint) r.key = nw.hint_key;
    const nf_ct_val* v = live(r.key);
    if (v && (v->flags & (NF_CT_SNAT | NF_CT_DNAT | NF_CT_ALIAS)) &&
        nat_dir(r, v, p.saddr, p.daddr, p.icmp_id, p.icmp_id, now, (nw.hint || looped) ? kMatchAny : kMatchExact) < 0)
      v = nullptr;
    if (v) nat_load(v);
    if (rep && !v) return;
    if (looped && !v) {
      r.state = NF_CT_STATE_UNTRACKED;
      return;
    }
    r.track = true;
    r.exists = v != nullptr;
    r.orig_is_a = true;
    if (!v) {
      r.state = NF_CT_STATE_NEW;
      r.dir = 0;
      return;
    }
    r.ctmark = v->mark;
    r.dir = rep ? 1 : 0;
    r.state = (rep || (v->flags & NF_CT_SEEN_REPLY)) ? NF_CT_STATE_ESTABLISHED : NF_CT_STATE_NEW;
    return;
  }
  if (p.has_l4 && has_ports(proto)) {
    sp = p.sport;
    dp = p.dport;
  } else if (has_ports(proto)) {
    return;
  }
  r.proto = proto;
  bool src_is_a = key_of(r.key, p.saddr, p.daddr, sp, dp, proto);
  if (nw.hint) r.key = nw.hint_key;
  const nf_ct_val* v = live(r.key);
  bool exists = v != nullptr;
  int dir = 0;
  if (exists && (v->flags & (NF_CT_SNAT | NF_CT_DNAT | NF_CT_ALIAS))) {
    dir = nat_dir(r, v, p.saddr, p.daddr, sp, dp, now, (nw.hint || looped) ? kMatchAny : kMatchExact);
    if (dir == 2) return;  // INVALID: another connection has this key
    exists = dir >= 0;
    if (dir < 0) dir = 0;
  } else if (exists) {
    dir = (((v->flags & NF_CT_ORIG_IS_A) != 0) == src_is_a) ? 0 : 1;
  }
  if (exists) nat_load(v);
  if (proto == 6 && (!p.has_l4 || !tcp_flags_valid(p.tcp_flags))) return;
  if (proto == 6 && !(looped && exists)) {
    int idx = tcp_index(p.tcp_flags);
    uint8_t old = exists ? v->tcp_state : (uint8_t)sNO;
    if (old > sS2) old = sNO;
    if (exists && dir == 0 && idx == 0 && (old == sTW || old == sCL)) exists = false, old = sNO;
    uint8_t ns = nf_tcp_table[exists ? dir : 0][idx][old];
    if (ns == sIV) return;
    if (ns == sIG) ns = old;
    r.new_tcp = ns;
    if (exists && (p.tcp_flags & 0x04) && !(v->flags & NF_CT_SEEN_REPLY)) r.kill = true;
  }
  if (looped && !exists) {
    r.state = NF_CT_STATE_UNTRACKED;
    return;
  }
  r.track = true;
  r.exists = exists;
  r.orig_is_a = src_is_a;
  if (!exists) {
    r.state = NF_CT_STATE_NEW;
    r.dir = 0;
    return;
  }
  r.ctmark = v->mark;
  r.dir = (uint8_t)dir;
  r.state = (dir == 1 || (v->flags & NF_CT_SEEN_REPLY)) ? NF_CT_STATE_ESTABLISHED : NF_CT_STATE_NEW;
}

uint64_t Model::ct_timeout(const CtRes& r, bool seen_reply) {
  if (r.proto == 6) return (uint64_t)nf_tcp_timeout[r.new_tcp < 10 ? r.new_tcp : 0] * NF_SEC;
  if (r.proto == 17 || r.proto == 136) return (seen_reply ? NF_CT_UDP_STREAM_TIMEOUT : NF_CT_UDP_TIMEOUT) * NF_SEC;
  if (r.proto == 1 || r.proto == 58) return NF_CT_ICMP_TIMEOUT * NF_SEC;
  return NF_CT_GENERIC_TIMEOUT * NF_SEC;
}

// As nf_ct_update in bpf/lib/ct.h: a tracked connection changes when the
// packet passes the conntrack hook, whatever the rules decide afterwards.
void Model::ct_update(const CtRes& r, uint64_t now) {
  if (!r.track || !r.exists) return;
  auto it = ct_.find(r.key);
  if (it == ct_.end()) return;
  if (r.kill) {
    ct_.erase(it);
    return;
  }
  nf_ct_val& v = it->second;
  if (r.dir == 1) v.flags |= NF_CT_SEEN_REPLY;
  v.tcp_state = r.new_tcp;
  v.expires_ns = now + ct_timeout(r, v.flags & NF_CT_SEEN_REPLY);
}

// As nf_ct_write_alias.
void Model::write_alias(const CtRes& r, const NatWork& nw, const nf_ct_tuple& t, bool reply_dir) {
  nf_ct_val a{};
  a.expires_ns = NF_CT_ALIAS_EXPIRES;
  a.flags = NF_CT_ALIAS | (nw.flags & (NF_CT_SNAT | NF_CT_DNAT));
  a.orig = nw.orig;
  a.reply = nw.reply;
  ct_[tuple_key(t, r.key.proto, nw.icmp_req, reply_dir)] = a;
}

// As nf_ct_finish: new connections are created only for accepted packets;
// a forwarded one's source binding is stored at its egress. Returns whether
// an alias was written for a new connection.
// As nf_ct_by_source.
void Model::ct_by_source(const CtRes& r, const NatWork& nw) {
  nf_nat_src_key k{};
  std::memcpy(k.addr, nw.orig.src, 16);
  k.port = nw.orig.sport;
  k.proto = r.key.proto;
  nat_src_[k] = r.key;
}

bool Model::ct_finish(const CtRes& r, uint64_t now, bool accepted, uint32_t ctmark, const NatWork& nw,
                      bool src_pending) {
  if (!r.track || r.kill) return false;
  bool bind = nw.active && nw.binding && accepted;
  if (r.exists) {
    auto it = ct_.find(r.key);
    if (it == ct_.end()) return false;
    nf_ct_val& v = it->second;
    v.mark = ctmark;
    if (!bind) return false;
    v.reply = nw.reply;
    v.flags = (v.flags & ~(NF_CT_SRC_PENDING | NF_CT_SNAT | NF_CT_DNAT)) | (nw.flags & (NF_CT_SNAT | NF_CT_DNAT));
    if (nw.had_alias && !tuple_eq(nw.old_reply, nw.reply))
      ct_.erase(tuple_key(nw.old_reply, r.key.proto, nw.icmp_req, true));
    if (nw.flags & (NF_CT_SNAT | NF_CT_DNAT)) write_alias(r, nw, nw.reply, true);
    ct_by_source(r, nw);
    return false;
  }
  if (!accepted) return false;
  nf_ct_val v{};
  v.tcp_state = r.new_tcp;
  v.flags = r.orig_is_a ? NF_CT_ORIG_IS_A : 0;
  v.mark = ctmark;
  v.expires_ns = now + ct_timeout(r, false);
  if (nw.active) {
    v.orig = nw.orig;
    v.reply = nw.reply;
    v.flags |= (nw.flags & (NF_CT_SNAT | NF_CT_DNAT)) | (src_pending ? NF_CT_SRC_PENDING : 0);
  }
  ct_[r.key] = v;
  if (nw.active && !src_pending) ct_by_source(r, nw);
  if (!nw.active || !(nw.flags & (NF_CT_SNAT | NF_CT_DNAT))) return false;
  write_alias(r, nw, nw.reply, true);
  return true;
}

Decision Model::decide(const pkt::Packet& pin, Path path, uint64_t now_ns) {
  now_ = now_ns;
  Decision d;
  Work w;
  w.p = pin;
  const bool looped = path == Path::Looped;  // as `looped` in nf_tc
  if (looped) w.p.iif = "lo";
  if (path == Path::Input || path == Path::Prerouting || looped) w.p.oif.clear();
  if (path == Path::Output) w.p.iif.clear();
  const auto& cfg = pol_.cfg;
  // As nf_frag_follow: where the kernel would reassemble, a later fragment
  // takes its first one's outcome.
  const int run = path == Path::Output || path == Path::PostForward ? 1 : 0;
  std::optional<std::tuple<int, uint8_t, uint8_t, uint32_t, ir::u128, ir::u128>> frag_key;
  if (cfg.ct_needed && pin.fragment)
    frag_key = {run, pin.family, pin.l4proto, verify::fragment_id(pin).value_or(0), pin.saddr, pin.daddr};
  if (frag_key && pin.later_fragment) {
    auto it = frags_.find(*frag_key);
    if (it != frags_.end() && it->second.expires_ns > now_ns) {
      d.action = it->second.pass ? NF_ACT_ACCEPT : NF_ACT_DROP;
      d.out = w.p;
      if (it->second.pass) d.out.saddr = it->second.saddr, d.out.daddr = it->second.daddr;
      d.translated = d.out.saddr != pin.saddr || d.out.daddr != pin.daddr;
      return d;
    }
  }
  int first = (path == Path::Output)        ? NF_HOOK_OUTPUT
              : (path == Path::PostForward) ? NF_HOOK_POSTROUTING
                                            : NF_HOOK_PREROUTING;
  int second = path == Path::Input || looped ? (int)NF_HOOK_INPUT
               : path == Path::Forward       ? NF_HOOK_FORWARD
               : path == Path::Output        ? NF_HOOK_POSTROUTING
                                             : NF_HOOK_MAX;
  // As nf_route: routing drops a loopback address that arrives off lo.
  if ((path == Path::Input || path == Path::Forward) && martian(w.p)) second = NF_HOOK_MAX;
  bool confirm = path != Path::PostForward;
  // For the hooks before routing the output interface is not known yet.
  std::string oif = w.p.oif;
  if (first == NF_HOOK_PREROUTING) w.p.oif.clear();
  const ir::u128 dst_in = w.p.daddr;  // the destination OUTPUT starts with
  int reroute = -1;                   // routed again: 1 over lo, 0 out of oif
  classify(w, cfg.slots_used, NF_CT_STATE_INVALID, 2);
  uint8_t verdict = run_hook(w, first, 1, d);
  CtRes ct;
  if (verdict == NF_ACT_ACCEPT) {
    if (cfg.ct_needed && (!w.notrack || looped)) {
      // As nf_tc: a forwarded packet's egress run finds its connection
      // through the ingress run's hint.
      w.nat.hint = false;
      if (!confirm && fwd_) {
        if (tuple_eq(fwd_tuple_, packet_tuple(w.p))) {
          w.nat.hint = true;
          w.nat.hint_key = fwd_key_;
        }
        fwd_ = false;
      }
      // As nf_ct_csum then nf_ct_lookup's first checks: conntrack calls an
      // arriving packet with a wrong checksum INVALID.
      if (first == NF_HOOK_PREROUTING && !looped && ct_csum_bad(w.p)) {
        ct.dir = 2;
        ct.state = NF_CT_STATE_INVALID;
      } else {
        ct_lookup(w.p, now_ns, ct, looped, w.nat);
      }
      w.ct_key = ct.key;
      if (confirm && !looped) ct_update(ct, now_ns);
      w.ctmark = ct.ctmark;
      w.has_ct = (ct.state & (NF_CT_STATE_NEW | NF_CT_STATE_ESTABLISHED | NF_CT_STATE_RELATED)) != 0;
      nat_begin(w, ct, now_ns, looped, !confirm);
    } else {
      ct.state = NF_CT_STATE_UNTRACKED;
      ct.dir = 2;
    }
    w.ctstate = ct.state;
    w.ctdir = ct.dir;
    d.ctstate = ct.state;
    classify(w, cfg.slots_used & ((1u << NF_SLOT_CTSTATE) | (1u << NF_SLOT_CTDIR)), ct.state, ct.dir);
    verdict = run_hook(w, first, 2, d);
    // As nf_reroute: a local packet whose destination nat OUTPUT changed is
    // routed again; its POSTROUTING is the run on the new route's device.
    if (verdict == NF_ACT_ACCEPT && first == NF_HOOK_OUTPUT && w.nat.changed && w.p.daddr != dst_in) {
      std::optional<std::string> r = oif;
      if (addr_type(w.p.family, w.p.daddr) & 4)
        r = "";
      else if (env_.route)
        r = env_.route(w.p.family, w.p.daddr);
      if (!r) {
        verdict = NF_ACT_DROP;
      } else {
        reroute = r->empty() ? 1 : 0;
        oif = r->empty() ? "lo" : *r;
      }
      second = NF_HOOK_MAX;
    }
    // As nf_route, after PREROUTING: destination NAT may have changed where
    // the packet goes.
    if (verdict == NF_ACT_ACCEPT && first == NF_HOOK_PREROUTING && !looped && w.nat.changed && env_.route &&
        second != NF_HOOK_MAX) {
      auto r = env_.route(w.p.family, w.p.daddr);
      if (!r)
        second = NF_HOOK_MAX;
      else if (r->empty())
        second = NF_HOOK_INPUT, oif.clear();
      else
        second = NF_HOOK_FORWARD, oif = *r;
    }
    if (verdict == NF_ACT_ACCEPT && second != NF_HOOK_MAX) {
      if (first == NF_HOOK_PREROUTING) {
        w.p.oif = oif;
        if (cfg.slots_used & (1u << NF_SLOT_OIF)) w.cls[NF_SLOT_OIF] = pol_.iface_class(1, w.p.oif);
      }
      if (second == NF_HOOK_FORWARD) {  // as the BPF program: the forwarding path's TTL decrement
        if (w.p.ttl) --w.p.ttl;
        classify(w, cfg.slots_used & (1u << NF_SLOT_TTL), ct.state, ct.dir);
      }
      verdict = run_hook(w, second, 3, d);
    }
  }
  bool accepted = verdict == NF_ACT_ACCEPT;
  bool forwarding = first == NF_HOOK_PREROUTING && second == NF_HOOK_FORWARD;
  bool rerouted = accepted && reroute >= 0;
  // As `unrouted` in nf_tc: the kernel's routing drops the packet, so its
  // new connection is never confirmed.
  bool unrouted = first == NF_HOOK_PREROUTING && !looped && second == NF_HOOK_MAX;
  bool alias = false;
  if (cfg.ct_needed && confirm && (looped || !w.notrack))
    alias = ct_finish(ct, now_ns, accepted && !unrouted, w.ctmark, w.nat, (forwarding || rerouted) && w.nat.active);
  if (!confirm && w.nat.binding && accepted) ct_finish(ct, now_ns, true, ct.ctmark, w.nat, false);
  // As the BPF programs: a forwarded packet's new connection, created when
  // FORWARD accepted it, goes away when POSTROUTING drops the packet.
  if ((path != Path::Output && path != Path::PostForward) || rerouted) {
    pending_ = cfg.ct_needed && !w.notrack && (forwarding || rerouted) && accepted && ct.track && !ct.exists;
    pending_alias_ = false;
    fwd_ = (forwarding || rerouted) && accepted && w.nat.active;
    if (fwd_) fwd_key_ = ct.key, fwd_tuple_ = packet_tuple(w.p);
    if (pending_) {
      pending_key_ = ct.key;
      if (alias) {
        pending_alias_ = true;
        pending_alias_key_ = tuple_key(w.nat.reply, ct.key.proto, w.nat.icmp_req, true);
      }
    }
  } else if (path == Path::PostForward && pending_) {
    if (!accepted && std::memcmp(&ct.key, &pending_key_, sizeof ct.key) == 0) {
      ct_.erase(pending_key_);
      if (pending_alias_) ct_.erase(pending_alias_key_);
    }
    pending_ = false;
  }
  d.action = verdict;
  d.mark = w.p.mark;
  d.indeterminate = w.indeterminate;
  d.translated = w.nat.changed != 0;
  d.forwarded = forwarding || rerouted;
  // As nf_tc's `to_lo`: INPUT's NAT point made the source one of this
  // host's addresses; the packet goes to lo, whose runs pass it.
  d.to_lo = accepted && first == NF_HOOK_PREROUTING && !looped && second == NF_HOOK_INPUT && (w.nat.changed & 2) &&
            (addr_type(w.p.family, w.p.saddr) & 4);
  d.out = w.p;
  d.out.oif = oif;
  // As nf_frag_note: a first fragment's outcome (not when it goes to lo or
  // is routed again: its later fragments are judged by themselves).
  if (frag_key && !pin.later_fragment && !rerouted && !d.to_lo)
    frags_[*frag_key] = {accepted, w.p.saddr, w.p.daddr, now_ns + 30'000'000'000ull};
  return d;
}

}  // namespace nf2bpf::model
