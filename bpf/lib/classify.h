/* The classifier: field -> class lookups, then a first-match search over
 * the tuples of one base chain (stage), then the rule's residual checks,
 * statements and action. The search runs inside bpf_loop, one hash probe per
 * iteration, so its cost is bounded by the compiler's proven step count
 * instead of by the verifier's patience. */
#ifndef NF2BPF_CLASSIFY_H
#define NF2BPF_CLASSIFY_H

#include "abi.h"
#include "ct_abi.h"
#include "maps.h"
#include "parse.h"

#define NF_NONE 0xffffffffu
#define NF_MAX_STAGES_PER_HOOK 16
#define NF_MAX_STMTS 16

static __always_inline void* nf_inner(void* outer, __u32 live) { return bpf_map_lookup_elem(outer, &live); }

static __always_inline __u32 nf_small_class(__u32 live, __u32 index) {
  __u32 k = live * NF_SMALL_TOTAL + index;
  __u32* c = bpf_map_lookup_elem(&nf_small, &k);
  return c ? *c : 0;
}

static __always_inline __u32 nf_lpm_class(__u32 live, __u8 slot, const __u8* addr) {
  void* lpm = nf_inner(&nf_lpm, live);
  if (!lpm) return 0;
  struct nf2bpf_lpm_key k = {};
  k.prefixlen = 8 + 128;
  k.slot = slot;
  __builtin_memcpy(k.addr, addr, 16);
  __u32* c = bpf_map_lookup_elem(lpm, &k);
  return c ? *c : 0;
}

static __always_inline __u32 nf_iface_class(__u32 live, __u32 slot, __u32 ifindex) {
  void* m = nf_inner(&nf_ifaces, live);
  if (!m) return 0;
  struct nf2bpf_iface_key k = {slot, ifindex};
  __u32* c = bpf_map_lookup_elem(m, &k);
  if (c) return *c;
  k.ifindex = 0xffffffffu; /* interfaces that appeared after the policy was applied */
  c = bpf_map_lookup_elem(m, &k);
  return c ? *c : 0;
}

/* The address's type as the family's tables give it. IPv4's entries live in
 * ::ffff:0:0/96 of the one table; an IPv6 packet's IPv4-mapped address is
 * none of them (the IPv6 FIB routes it; ipv6_addr_type calls it MAPPED, no
 * type bit). */
static __always_inline __u32 nf_addr_type_of(__u8 family, const __u8* addr) {
  if (family == 6) {
    __u32 w[3];
    __builtin_memcpy(w, addr, 12);
    if (!w[0] && !w[1] && w[2] == bpf_htonl(0xffff)) return 0;
  }
  struct nf_addrtype_key k = {};
  k.prefixlen = 128;
  __builtin_memcpy(k.addr, addr, 16);
  __u32* t = bpf_map_lookup_elem(&nf_addrtype, &k);
  return t ? *t : 2; /* UNICAST */
}

/* Global (__noinline, non-static) functions are verified once, on their
 * own, instead of at every call site: that keeps the verifier's work linear. */
#define NF_SUBPROG __attribute__((noinline))

/* The running kernel's HZ: -m recent's --seconds window and xt_limit's
 * credits count jiffies. */
extern unsigned int CONFIG_HZ __kconfig __weak;

/* xt_limit's user2credits: avg (1/10000 s) in credits of 1/cpj jiffy. */
static __always_inline __u32 nf_user2credits(__u32 user, __u32 hz, __u32 cpj) {
  if (user > 0xFFFFFFFFu / (hz * cpj)) return (user / 10000) * hz * cpj;
  return (user * hz * cpj) / 10000;
}

/* -m limit / nft limit: 1 when the rule matches (struct nf2bpf_limit_cfg).
 * The kernel's arithmetic: xt_limit's limit_mt (u32 credits, jiffies) or
 * nft_limit_eval (ns tokens). As in limit_mt, each CPU takes the time since
 * the last packet with an exchange and settles the bucket with a
 * compare-and-swap; `last` 0 means a bucket not used yet, which is full (as
 * both fill it when the rule is loaded). length: the IP packet's, which is
 * the skb->len nft_limit_bytes_eval charges. */
/* xt_hashlimit's maskl over an IPv4-mapped (family 4) or IPv6 address:
 * the first `bits` bits of the address kept (hashlimit_ipv6_mask). */
static __always_inline void nf_hl_mask(__u8* out, const __u8* a, __u32 family, __u32 bits) {
  __u32 from = family == 4 ? 12 : 0, n = bits;
#pragma unroll
  for (int i = 0; i < 16; i++) {
    if (i < from) continue;
    __u32 bit = (i - from) * 8;
    out[i] = bit + 8 <= n ? a[i] : bit >= n ? 0 : a[i] & (__u8)(0xff << (8 - (n - bit)));
  }
}

/* One packet through one -m hashlimit match (hashlimit_mt_common, revision
 * 3, packets mode): the packet's bucket is found, or made full (rateinfo_init:
 * credit = cap = user2credits(avg * burst)), or refilled by the jiffies since
 * its last packet (rateinfo_recalc), then charged user2credits(avg) if it
 * has that much. A bucket whose --hashlimit-htable-expire has passed counts
 * as gone (the kernel's collector removes it within a gc interval).
 * Returns whether the match holds. Global: verified once. */
/* The packet's key in table c->table of nf_hashlimit (hashlimit_init_dst). */
static __always_inline void nf_hl_key(struct nf2bpf_hashlimit_key* k, const struct nf2bpf_limit_cfg* c,
                                      const struct nf_pkt* p) {
  __builtin_memset(k, 0, sizeof(*k));
  k->table = c->table;
  k->family = p->family;
  __u32 mode = c->mode;
  if (mode & NF_HL_SIP) nf_hl_mask(k->src, p->saddr, p->family, c->srcmask);
  if (mode & NF_HL_DIP) nf_hl_mask(k->dst, p->daddr, p->family, c->dstmask);
  if (p->has_ports) { /* proto_ports_offset: TCP, UDP, UDP-Lite, SCTP, DCCP */
    if (mode & NF_HL_SPT) k->sport = bpf_htons(p->sport);
    if (mode & NF_HL_DPT) k->dport = bpf_htons(p->dport);
  }
}

NF_SUBPROG int nf_hashlimit_match(const struct nf2bpf_limit_cfg* c, const struct nf_pkt* p) {
  if (!c || !p) return 0;
  struct nf2bpf_hashlimit_key k;
  nf_hl_key(&k, c, p);
  __u64 hz = CONFIG_HZ ? CONFIG_HZ : 250;
  __u64 cpj = 0xFFFFFFFFFFFFFFFFull / (hz * 86400); /* MAX_CPJ, then POW2_BELOW64 */
  cpj |= cpj >> 1;
  cpj |= cpj >> 2;
  cpj |= cpj >> 4;
  cpj |= cpj >> 8;
  cpj |= cpj >> 16;
  cpj |= cpj >> 32;
  cpj = (cpj >> 1) + 1;
  /* user2credits: the constants divided first */
  __u64 scale = 1000000, hc = hz * cpj;
  __u64 now = bpf_jiffies64();
  struct nf2bpf_hashlimit_val* v = bpf_map_lookup_elem(&nf_hashlimit, &k);
  if (!v || (__s64)(now - v->expires) >= 0) {
    struct nf2bpf_hashlimit_val n;
    __builtin_memset(&n, 0, sizeof(n));
    n.prev = now;
    n.cost = scale >= hc ? c->cost / (scale / hc) : c->cost * (hc / scale);
    n.credit = scale >= hc ? c->cost * c->cap / (scale / hc) : c->cost * c->cap * (hc / scale);
    n.cap = n.credit;
    bpf_map_update_elem(&nf_hashlimit, &k, &n, BPF_ANY);
    v = bpf_map_lookup_elem(&nf_hashlimit, &k);
    if (!v) return 0;
  } else if (now != v->prev) {
    v->credit += (now - v->prev) * cpj;
    v->prev = now;
    if (v->credit > v->cap) v->credit = v->cap;
  }
  v->expires = now + (c->expire * hz + 999) / 1000; /* msecs_to_jiffies */
  int under = v->credit >= v->cost;
  if (under) v->credit -= v->cost;
  return under != !!(c->flags & NF_LIMIT_INV);
}

/* One packet through an nft set the packet path updates (nft_dynset_eval)
 * or one lookup of such a set (nft_lookup_eval), as abi.h's NF_LIMIT_SET
 * says. An element is there until the jiffy its timeout ends
 * (nft_set_elem_expired); an add or update of an element not there makes it
 * (nft_dynset_new: the timeout from now, its limit full), an update of one
 * there with a timeout starts the timeout again; then the element's limit
 * (nft_limit_eval) decides whether the rule goes on. Returns whether the
 * match holds. Global: verified once. */
NF_SUBPROG int nf_set_match(const struct nf2bpf_limit_cfg* c, const struct nf_pkt* p) {
  if (!c || !p) return 0;
  struct nf2bpf_hashlimit_key k;
  nf_hl_key(&k, c, p);
  __u32 op = (__u32)c->rate & NF_SET_OP, inv = (c->flags & NF_LIMIT_INV) != 0;
  __u64 hz = CONFIG_HZ ? CONFIG_HZ : 250;
  __u64 now = bpf_jiffies64(), timeout = (__u64)c->expire * hz / 1000; /* nsecs_to_jiffies64 */
  struct nf2bpf_hashlimit_val* v = bpf_map_lookup_elem(&nf_hashlimit, &k);
  if (v && v->expires != NF_SET_NEVER && (__s64)(now - v->expires) >= 0) v = 0;
  if (op == NF_SET_LOOKUP) return (v != 0) != inv;
  if (op == NF_SET_DELETE) {
    if (v) bpf_map_delete_elem(&nf_hashlimit, &k);
    return 1;
  }
  __u64 ns = bpf_ktime_get_ns(), ns_per_jiffy = 1000000000ull / hz;
  if (!v) {
    struct nf2bpf_hashlimit_val n;
    __builtin_memset(&n, 0, sizeof(n));
    n.expires = c->expire ? now + timeout : NF_SET_NEVER;
    n.cap = c->expire ? ns + timeout * ns_per_jiffy : 0;
    n.cost = timeout;
    n.credit = c->cap;
    n.prev = ns;
    bpf_map_update_elem(&nf_hashlimit, &k, &n, BPF_ANY);
    v = bpf_map_lookup_elem(&nf_hashlimit, &k);
    if (!v) return 0; /* no room: the kernel's full set breaks the rule too */
  } else if (op == NF_SET_UPDATE && v->expires != NF_SET_NEVER) {
    __u64 t = ((__u32)c->rate & NF_SET_TIMEOUT) ? timeout : v->cost;
    v->expires = now + t;
    v->cap = ns + t * ns_per_jiffy;
  }
  if (!((__u32)c->rate & NF_SET_LIMIT)) return 1;
  __u64 tokens = v->credit + (ns - v->prev);
  if (tokens > c->cap) tokens = c->cap;
  v->prev = ns;
  int under = tokens >= c->cost;
  v->credit = under ? tokens - c->cost : tokens;
  return under != inv;
}

/* nf_conncount's walk over one list (__nf_conncount_add), one connection a
 * step: a connection conntrack no longer has is dropped when this CPU added
 * it or it is 2 jiffies old (find_or_evict), a closed TCP one too; at most
 * 8 are dropped a walk (CONNCOUNT_GC_MAX_NODES); the packet's own connection
 * found again ends it (`dup`). The kept ones move down to `w`. */
static const struct nf2bpf_connlimit_val nf_connlimit_empty;
struct nf_connlimit_walk {
  struct nf2bpf_connlimit_val* v;
  const struct nf_ct_key* self;
  __u64 now_ns;
  __u32 jiffies, cpu, collect, w, dup, stop;
};
static long nf_connlimit_step(__u32 i, struct nf_connlimit_walk* g) {
  struct nf2bpf_connlimit_val* v = g->v;
  if (i >= v->count || i >= NF_CONNLIMIT_CONNS) return 1;
  __u32 at = i;
  asm volatile("" : "+r"(at)); /* the verifier sees the mask */
  struct nf2bpf_connlimit_conn* c = &v->conns[at & (NF_CONNLIMIT_CONNS - 1)];
  int keep = 1;
  if (!g->stop && !g->dup) {
    if (g->collect > 8) {
      g->stop = 1;
    } else {
      struct nf_ct_val* ct = bpf_map_lookup_elem(&nf_ct, &c->key);
      int same = nf_ct_key_eq(&c->key, g->self);
      if (!ct || ct->expires_ns <= g->now_ns) {
        if (c->cpu == g->cpu || g->jiffies - c->jiffies32 >= 2) {
          keep = 0;
          g->collect++;
        } else if (same) {
          g->dup = 1; /* not confirmed yet: already listed */
        }
      } else if (same) {
        g->dup = 1;
      } else if (c->key.proto == IPPROTO_TCP && (ct->tcp_state == sTW || ct->tcp_state == sCL)) {
        keep = 0;
        g->collect++;
      }
    }
  }
  if (keep) {
    __u32 w = g->w;
    asm volatile("" : "+r"(w));
    w &= NF_CONNLIMIT_CONNS - 1;
    if (w != at) v->conns[w] = *c;
    g->w++;
  }
  return 0;
}

/* One packet through one -m connlimit match (connlimit_mt, nf_conncount_count):
 * the connections of the packet's key this rule has seen, the packet's own
 * added; the match holds when they are more than the limit
 * (--connlimit-above), or not (--connlimit-upto). Global: verified once. */
NF_SUBPROG int nf_connlimit_match(const struct nf2bpf_limit_cfg* c, struct nf_scratch* s, __u32 idx) {
  if (!c || !s) return 0;
  const struct nf_pkt* p = &s->p;
  struct nf2bpf_connlimit_key k;
  __builtin_memset(&k, 0, sizeof(k));
  k.generation = s->generation;
  k.limit = idx;
  k.family = p->family;
  nf_hl_mask(k.addr, (c->mode & NF_CL_DADDR) ? p->daddr : p->saddr, p->family, c->srcmask);
  __u32 jiffies = (__u32)bpf_jiffies64(), cpu = bpf_get_smp_processor_id(), count = 1;
  struct nf2bpf_connlimit_val* v = bpf_map_lookup_elem(&nf_connlimit, &k);
  if (!v || !v->count) { /* insert_tree: a new list of this one connection */
    if (!v) {            /* (the value is too big for the stack: made empty, then filled in place) */
      bpf_map_update_elem(&nf_connlimit, &k, &nf_connlimit_empty, BPF_ANY);
      v = bpf_map_lookup_elem(&nf_connlimit, &k);
      if (!v) return 0; /* no room: the match fails (the kernel drops the packet) */
    }
    v->conns[0].key = s->ct.key;
    v->conns[0].jiffies32 = jiffies;
    v->conns[0].cpu = cpu;
    v->count = 1;
    v->last_gc = jiffies; /* nf_conncount_list_init */
  } else {
    struct nf_connlimit_walk g = {
        .v = v, .self = &s->ct.key, .now_ns = bpf_ktime_get_ns(), .jiffies = jiffies, .cpu = cpu};
    if (jiffies != v->last_gc) {
      bpf_loop(NF_CONNLIMIT_CONNS, nf_connlimit_step, &g, 0);
      v->count = g.w;
      if (!g.dup) v->last_gc = jiffies;
    }
    if (!g.dup && v->count < NF_CONNLIMIT_CONNS) {
      __u32 n = v->count;
      asm volatile("" : "+r"(n));
      n &= NF_CONNLIMIT_CONNS - 1;
      v->conns[n].key = s->ct.key;
      v->conns[n].jiffies32 = jiffies;
      v->conns[n].cpu = cpu;
      v->count++;
    }
    count = v->count;
  }
  return (count > c->cost) != !!(c->flags & NF_LIMIT_INV);
}

/* One packet through one -m time match (time_mt): the real time is the TAI
 * clock less the offset the loader read (bpf_ktime_get_tai_ns; the kernel's
 * ktime_get_real_seconds). The day of the month from the days since 1970
 * (a proleptic Gregorian civil date, as localtime_3's tables give it).
 * Global: verified once. */
NF_SUBPROG int nf_time_match(const struct nf2bpf_limit_cfg* c) {
  if (!c) return 0;
  __u32 zero = 0;
  struct nf2bpf_host_cfg* h = bpf_map_lookup_elem(&nf_host_cfg, &zero);
  __s64 stamp = (__s64)(bpf_ktime_get_tai_ns() / 1000000000ull) - (h ? h->tai_offset : 0);
  if ((c->mode & NF_TM_KERNELTZ) && h) stamp -= 60 * (__s64)h->tz_minuteswest;
  __s64 date_start = (__s64)(c->cost & 0xffffffffull), date_stop = (__s64)(c->cost >> 32);
  if (stamp < date_start || stamp > date_stop) return 0;
  __u64 t = (__u64)stamp; /* (not before 1970 from here on: BPF divides unsigned) */
  __u32 packet_time = (__u32)(t % 86400);
  __u32 ds = (__u32)c->cap, de = (__u32)(c->cap >> 32);
  if (ds < de) {
    if (packet_time < ds || packet_time > de) return 0;
  } else {
    if (packet_time < ds && packet_time > de) return 0;
    /* over midnight: with --contiguous the early part is the previous day's */
    if ((c->mode & NF_TM_CONTIGUOUS) && packet_time <= de && t >= 86400) t -= 86400;
  }
  __u64 dse = t / 86400;
  __u32 weekday = (__u32)((dse + 3) % 7) + 1; /* 1970-01-01 was a Thursday (4) */
  if (!((c->rate >> 32) & (1u << weekday))) return 0;
  __u32 monthdays = (__u32)c->rate;
  if (monthdays != 0xFFFFFFFEu) {
    __u64 z = dse + 719468, era = z / 146097; /* civil_from_days */
    __u64 doe = z - era * 146097;
    __u64 yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    __u64 doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    __u64 mp = (5 * doy + 2) / 153;
    __u32 day = (__u32)(doy - (153 * mp + 2) / 5 + 1);
    if (!(monthdays & (1u << (day & 31)))) return 0;
  }
  return 1;
}

NF_SUBPROG int nf_limit_match(struct nf2bpf_limit_val* l, struct nf_scratch* s, __u32 idx) {
  if (!l || !s) return 0;
  const struct nf_pkt* p = &s->p;
  __u32 flags = l->cfg.flags, length = p->length;
  if (flags & NF_LIMIT_HASH) return nf_hashlimit_match(&l->cfg, p);
  if (flags & NF_LIMIT_CONN) return nf_connlimit_match(&l->cfg, s, idx);
  if (flags & NF_LIMIT_TIME) return nf_time_match(&l->cfg);
  if (flags & NF_LIMIT_SET) return nf_set_match(&l->cfg, p);
  if (flags & NF_LIMIT_XT) {
    __u32 hz = CONFIG_HZ ? CONFIG_HZ : 250;
    __u32 cpj = 0xFFFFFFFFu / (hz * 86400u); /* MAX_CPJ, then POW2_BELOW32 */
    cpj |= cpj >> 1;
    cpj |= cpj >> 2;
    cpj |= cpj >> 4;
    cpj |= cpj >> 8;
    cpj |= cpj >> 16;
    cpj = (cpj >> 1) + 1;
    __u32 avg = (__u32)l->cfg.cost;
    __u32 cost = nf_user2credits(avg, hz, cpj), cap = nf_user2credits(avg * (__u32)l->cfg.cap, hz, cpj);
    __u64 now = bpf_jiffies64();
    if ((__u32)l->tokens < cost && l->last == now) return 0; /* limit_mt's fast path */
    __u32 inc = 0;
    int ret = 0;
    for (int i = 0; i < 4; i++) {
      __u64 prev = __sync_lock_test_and_set(&l->last, now);
      inc += prev ? (__u32)((now - prev) * cpj) : cap;
      __u32 old = (__u32)l->tokens, credit = old + inc;
      if (credit > cap) credit = cap;
      ret = credit >= cost;
      if (ret) credit -= cost;
      if (__sync_val_compare_and_swap(&l->tokens, (__u64)old, (__u64)credit) == old) break;
      now = bpf_jiffies64();
    }
    return ret;
  }
  __u64 now = bpf_ktime_get_ns(), cost = l->cfg.cost, cap = l->cfg.cap;
  if (flags & NF_LIMIT_BYTES) cost = l->cfg.rate ? cost * length / l->cfg.rate : 0;
  __u64 prev = __sync_lock_test_and_set(&l->last, now);
  __u64 inc = !prev ? cap : now > prev ? now - prev : 0;
  int within = 0;
  for (int i = 0; i < 4; i++) {
    __u64 old = l->tokens, tokens = old + inc;
    if (tokens > cap) tokens = cap;
    within = (__s64)(tokens - cost) >= 0;
    if (__sync_val_compare_and_swap(&l->tokens, old, within ? tokens - cost : tokens) == old) break;
  }
  return within != !!(flags & NF_LIMIT_INV);
}

/* Classes of every slot some rule of the live generation tests. */
NF_SUBPROG int nf_classify(struct nf_scratch* s, __u32 live, __u32 used, __u32 ctstate, __u32 ctdir) {
  if (!s) return 0;
  live &= 1;
  ctstate &= 255;
  struct nf_pkt* p = &s->p;
  if (used & (1u << NF_SLOT_SADDR)) s->cls[NF_SLOT_SADDR] = nf_lpm_class(live, NF_SLOT_SADDR, p->saddr);
  if (used & (1u << NF_SLOT_DADDR)) s->cls[NF_SLOT_DADDR] = nf_lpm_class(live, NF_SLOT_DADDR, p->daddr);
  if (used & (1u << NF_SLOT_SPORT))
    s->cls[NF_SLOT_SPORT] = nf_small_class(live, NF_SMALL_SPORT_BASE + (p->has_ports ? p->sport : 65536));
  if (used & (1u << NF_SLOT_DPORT))
    s->cls[NF_SLOT_DPORT] = nf_small_class(live, NF_SMALL_DPORT_BASE + (p->has_ports ? p->dport : 65536));
  if (used & (1u << NF_SLOT_PROTO)) s->cls[NF_SLOT_PROTO] = nf_small_class(live, NF_SMALL_PROTO_BASE + p->l4proto);
  if (used & (1u << NF_SLOT_ICMP)) {
    __u32 v = p->has_icmp ? ((p->family == 6 ? 65536u : 0u) + ((__u32)p->icmp_type << 8 | p->icmp_code)) : 131072u;
    s->cls[NF_SLOT_ICMP] = nf_small_class(live, NF_SMALL_ICMP_BASE + v);
  }
  if (used & (1u << NF_SLOT_CTSTATE)) s->cls[NF_SLOT_CTSTATE] = nf_small_class(live, NF_SMALL_CTSTATE_BASE + ctstate);
  if (used & (1u << NF_SLOT_TCPFLAGS))
    s->cls[NF_SLOT_TCPFLAGS] = nf_small_class(live, NF_SMALL_TCPFLAGS_BASE + (p->has_tcp ? p->tcp_flags : 256u));
  if (used & (1u << NF_SLOT_PKTTYPE))
    s->cls[NF_SLOT_PKTTYPE] = nf_small_class(live, NF_SMALL_PKTTYPE_BASE + p->pkttype);
  if (used & (1u << NF_SLOT_LENGTH)) s->cls[NF_SLOT_LENGTH] = nf_small_class(live, NF_SMALL_LENGTH_BASE + p->length);
  if (used & (1u << NF_SLOT_TTL)) s->cls[NF_SLOT_TTL] = nf_small_class(live, NF_SMALL_TTL_BASE + p->ttl);
  if (used & (1u << NF_SLOT_NFPROTO))
    s->cls[NF_SLOT_NFPROTO] = nf_small_class(live, NF_SMALL_NFPROTO_BASE + (p->family == 4 ? 2 : 10));
  if (used & (1u << NF_SLOT_SADDRTYPE))
    s->cls[NF_SLOT_SADDRTYPE] =
        nf_small_class(live, NF_SMALL_SADDRTYPE_BASE + (nf_addr_type_of(p->family, p->saddr) & 4095));
  if (used & (1u << NF_SLOT_DADDRTYPE))
    s->cls[NF_SLOT_DADDRTYPE] =
        nf_small_class(live, NF_SMALL_DADDRTYPE_BASE + (nf_addr_type_of(p->family, p->daddr) & 4095));
  if (used & (1u << NF_SLOT_CTDIR))
    s->cls[NF_SLOT_CTDIR] = nf_small_class(live, NF_SMALL_CTDIR_BASE + (ctdir > 2 ? 2 : ctdir));
  if (used & (1u << NF_SLOT_FRAG))
    s->cls[NF_SLOT_FRAG] = nf_small_class(live, NF_SMALL_FRAG_BASE + (p->frag == 2 ? 1 : 0));
  if (used & (1u << NF_SLOT_TOS)) s->cls[NF_SLOT_TOS] = nf_small_class(live, NF_SMALL_TOS_BASE + p->tos);
  if (used & (1u << NF_SLOT_IIF)) s->cls[NF_SLOT_IIF] = nf_iface_class(live, NF_SLOT_IIF, p->iif);
  if (used & (1u << NF_SLOT_OIF)) s->cls[NF_SLOT_OIF] = nf_iface_class(live, NF_SLOT_OIF, p->oif);
  return 0;
}

static __always_inline void nf_search_reset(struct nf_search* sr, __u32 from) {
  sr->from = from;
  sr->best = NF_NONE;
  sr->ti = 0;
  sr->seq = 0;
}

/* The least recently set or updated entry of one table (the head of
 * xt_recent's LRU list), found by a walk over the map. */
struct nf_recent_oldest {
  __u32 table;
  __u32 found;
  __u64 lru;
  __u64 last; /* its newest stamp */
  struct nf2bpf_recent_key key;
};

static long nf_recent_oldest_cb(void* map, struct nf2bpf_recent_key* k, struct nf2bpf_recent_val* v,
                                struct nf_recent_oldest* o) {
  if (k->table != o->table) return 0;
  if (o->found && v->lru >= o->lru) return 0;
  o->found = 1;
  o->lru = v->lru;
  o->last = v->stamps[(__u32)(v->index - 1) & (NF_RECENT_STAMPS - 1)];
  __builtin_memcpy(&o->key, k, sizeof *k);
  return 0;
}

/* Stamps of one entry inside the --seconds window (all without one). */
struct nf_recent_count {
  struct nf2bpf_recent_val* e;
  __u64 time;
  __u32 n, secs, hits;
};

static long nf_recent_count_cb(__u32 i, struct nf_recent_count* c) {
  if (i >= c->n || i >= NF_RECENT_STAMPS) return 1;
  struct nf2bpf_recent_val* e = c->e;
  if (!e) return 1;
  __u32 j = i;
  asm volatile("" : "+r"(j)); /* keep the mask: the verifier needs it on the register that indexes */
  j &= NF_RECENT_STAMPS - 1;
  if (!c->secs || (__s64)(e->stamps[j] - c->time) >= 0) /* !time_after(time, stamp) */
    c->hits++;
  return 0;
}

static __always_inline void nf_recent_forget(struct nf2bpf_recent_tab* t, struct nf2bpf_recent_key* k) {
  if (bpf_map_delete_elem(&nf_recent, k) == 0) __sync_fetch_and_add(&t->entries, -1);
}

/* One packet through one recent match: 1 when it matches (inversion
 * included). Entries change as recent_mt changes them; concurrent packets
 * of other CPUs are not serialised as the kernel's recent_lock does. */
NF_SUBPROG int nf_recent_match(struct nf_scratch* s, struct nf2bpf_rule* r) {
  if (!s || !r) return 0;
  struct nf2bpf_recent_key k = {};
  k.table = r->recent_table;
  k.family = s->p.family;
  const __u8* a = (r->recent_flags & NF_RECENT_RDEST) ? s->p.daddr : s->p.saddr;
  for (int i = 0; i < 16; ++i) k.addr[i] = a[i] & r->recent_mask[i];
  /* recent_mt uses the TTL as seen before forwarding; FORWARD sees it decremented. */
  __u8 ttl = s->p.ttl + (s->hook == NF_HOOK_FORWARD ? 1 : 0);
  int ret = !!(r->residual & NF_RES_RECENT_NEG);
  __u32 cmd = r->recent_cmd;
  __u64 now = bpf_jiffies64();
  struct nf2bpf_recent_tab* t = bpf_map_lookup_elem(&nf_recent_tab, &k.table);
  if (!t) {
    struct nf2bpf_recent_tab z = {};
    bpf_map_update_elem(&nf_recent_tab, &k.table, &z, BPF_NOEXIST);
    t = bpf_map_lookup_elem(&nf_recent_tab, &k.table);
    if (!t) return 0;
  }
  struct nf2bpf_recent_val* e = bpf_map_lookup_elem(&nf_recent, &k);
  if (e && (r->recent_flags & NF_RECENT_RTTL) && !(e->ttl == ttl || ttl == 0 || e->ttl == 0)) e = 0;
  if (!e) {
    if (cmd != NF_RECENT_SET) return ret;
    if (t->entries >= NF_RECENT_LIST_TOT) { /* full: the oldest entry goes */
      struct nf_recent_oldest o = {.table = k.table};
      bpf_for_each_map_elem(&nf_recent, nf_recent_oldest_cb, &o, 0);
      if (o.found) nf_recent_forget(t, &o.key);
    }
    __u32 zero = 0;
    struct nf2bpf_recent_val* n = bpf_map_lookup_elem(&nf_recent_new, &zero);
    if (!n) return 0;
    __builtin_memset(n, 0, sizeof *n);
    n->stamps[0] = now;
    n->nstamps = 1;
    n->index = 1;
    n->ttl = ttl;
    n->lru = __sync_fetch_and_add(&t->clock, 1) + 1;
    if (bpf_map_update_elem(&nf_recent, &k, n, BPF_NOEXIST) == 0) __sync_fetch_and_add(&t->entries, 1);
    return !ret;
  }
  int gone = 0;
  if (cmd == NF_RECENT_SET) {
    ret = !ret;
  } else if (cmd == NF_RECENT_REMOVE) {
    nf_recent_forget(t, &k);
    return !ret;
  } else {
    __u64 hz = CONFIG_HZ ? CONFIG_HZ : 250;
    __u64 time = now - (__u64)r->recent_seconds * hz;
    /* recent_mt stops at the first stamp in the window without --hitcount,
     * at the hitcount-th with it: it matches when that many are there. */
    struct nf_recent_count c = {.e = e, .time = time, .n = e->nstamps, .secs = r->recent_seconds};
    bpf_loop(NF_RECENT_STAMPS, nf_recent_count_cb, &c, 0);
    __u32 need = r->recent_hitcount;
    if (c.hits >= (need ? need : 1)) ret = !ret;
    if (r->recent_flags & NF_RECENT_REAP) { /* the table's oldest entry, when its newest stamp is stale */
      struct nf_recent_oldest o = {.table = k.table};
      bpf_for_each_map_elem(&nf_recent, nf_recent_oldest_cb, &o, 0);
      if (o.found && (__s64)(o.last - time) < 0) {
        gone = o.lru == e->lru; /* this entry itself (one lru value per entry of a table) */
        nf_recent_forget(t, &o.key);
      }
    }
  }
  if (!gone && (cmd == NF_RECENT_SET || (cmd == NF_RECENT_UPDATE && ret))) {
    __u32 idx = (__u32)e->index & r->recent_ring & (NF_RECENT_STAMPS - 1);
    e->stamps[idx] = now;
    e->index = idx + 1;
    if (e->index > e->nstamps) e->nstamps = e->index;
    e->ttl = ttl;
    e->lru = __sync_fetch_and_add(&t->clock, 1) + 1;
  }
  return ret;
}

/* Residual checks of a candidate rule: 1 when the rule matches. */
/* One conntrack tuple test (NF_NAT_CT_*): the field of the connection's
 * original or reply tuple. A connection NAT bound (or is binding) has its
 * tuples in s->nat (loaded by the lookup, also for a local packet back in on
 * lo, whose NAT points do not run again); another one's are the packet's,
 * read by its direction. */
static __always_inline int nf_ct_tuple_test(const struct nf_scratch* s, const struct nf2bpf_nat* t) {
  __u32 f = t->kind - NF_NAT_CT;
  int reply = (f >> 2) & 1, dst = (f >> 1) & 1, port = f & 1;
  const struct nf_nat_work* nw = &s->nat;
  const __u8* addr;
  __u16 pv;
  if ((nw->active && nw->binding) || (nw->flags & (NF_CT_SNAT | NF_CT_DNAT))) {
    const struct nf_ct_tuple* tu = reply ? &nw->reply : &nw->orig;
    addr = dst ? tu->dst : tu->src;
    pv = dst ? tu->dport : tu->sport;
  } else {
    /* The original tuple is the packet's in the original direction and
     * its inverse in the reply direction; the reply tuple the other way. */
    int pkt_src = (dst == 0) == (reply == s->ctdir);
    addr = pkt_src ? s->p.saddr : s->p.daddr;
    pv = pkt_src ? s->p.sport : s->p.dport;
  }
  int in;
  if (port)
    in = pv >= t->port_min && pv <= t->port_max;
  else
    in = nf_addr_cmp(addr, t->addr_min) >= 0 && nf_addr_cmp(addr, t->addr_max) <= 0;
  return in != !!(t->flags & NF_NAT_F_NEG);
}

/* A rule's conntrack tuple tests, nf_nat[first] and those chained after it
 * (global: verified once, not at every residual check). */
NF_SUBPROG int nf_ct_tuple_ok(struct nf_scratch* s, __u32 live, __u32 first) {
  if (!s || s->ctdir > 1) return 0; /* xt_conntrack: no connection, no tuple to match (negated or not) */
  void* nm = nf_inner(&nf_nat, live & 1);
  if (!nm) return 0;
  __u32 idx = first;
#pragma unroll
  for (int k = 0; k < 4; k++) {
    struct nf2bpf_nat* t = bpf_map_lookup_elem(nm, &idx);
    if (!t || t->kind < NF_NAT_CT || t->kind > NF_NAT_CT_MAX || !nf_ct_tuple_test(s, t)) return 0;
    if (!(t->flags & NF_NAT_F_MORE)) return 1;
    idx++;
  }
  return 0; /* (the compiler allows four) */
}

static __always_inline int nf_residual_ok(struct nf_scratch* s, struct nf2bpf_rule* r, __u32 live, __u32 rule) {
  __u32 res = r->residual;
  if (!res) return 1;
  if (res & NF_RES_MARK) {
    int eq = (s->p.mark & r->mark_mask) == r->mark_value;
    if (eq == !!(res & NF_RES_MARK_NEG)) return 0;
  }
  if (res & NF_RES_MARK2) {
    int eq = (s->p.mark & r->mark2_mask) == r->mark2_value;
    if (eq == !!(res & NF_RES_MARK2_NEG)) return 0;
  }
  if (res & NF_RES_CTMARK) {
    if (!s->has_ct) return 0; /* xt_connmark: no connection, no match (negated or not) */
    int eq = (s->ctmark & r->ctmark_mask) == r->ctmark_value;
    if (eq == !!(res & NF_RES_CTMARK_NEG)) return 0;
  }
  if (res & NF_RES_CTSTATUS) {
    /* xt_conntrack's SNAT/DNAT, nft's ct status snat/dnat: the connection's
     * IPS_SRC_NAT/IPS_DST_NAT bits (none without a connection). */
    __u32 st = s->has_ct ? ((s->nat.flags & NF_CT_SNAT) ? 1 : 0) | ((s->nat.flags & NF_CT_DNAT) ? 2 : 0) : 0;
    if (!((r->ctstatus >> st) & 1)) return 0;
  }
  if ((res & NF_RES_CTTUPLE) && !nf_ct_tuple_ok(s, live, r->ct_range)) return 0;
  if ((res & NF_RES_OWNER) && !nf_owner_ok(&s->p, r)) return 0;
  if (res & NF_RES_MAC) {
    int eq = s->p.src_mac == r->mac;
    if (eq == !!(res & NF_RES_MAC_NEG)) return 0;
  }
  if (res & NF_RES_RANDOM) {
    __u32 k = r->nth_slot % NF_DRAW_CACHE;
    if (!((s->draw_valid >> k) & 1) || s->draw_slot[k] != r->nth_slot) {
      s->draw_valid |= 1u << k;
      s->draw_slot[k] = r->nth_slot;
      s->draw_val[k] = bpf_get_prandom_u32() >> 1;
    }
    int below = s->draw_val[k] < r->random_below;
    if (below == !!(res & NF_RES_RANDOM_NEG)) return 0;
  }
  if (res & NF_RES_LIMIT) {
    void* lm = nf_inner(&nf_limits, live);
    if (!lm) return 0;
    __u32 idx = r->limit;
#pragma unroll
    for (int i = 0; i < NF_LIMIT_CHAIN; i++) {
      struct nf2bpf_limit_val* l = bpf_map_lookup_elem(lm, &idx);
      if (!nf_limit_match(l, s, idx)) return 0;
      if (!l || !(l->cfg.flags & NF_LIMIT_MORE)) break;
      idx++;
    }
  }
  if (res & NF_RES_NTH) {
    /* Last: the counter moves only for packets every other test let
     * through, as xt_statistic's does for the packets that reach it. One
     * atomic add orders the packets of all CPUs, like its cmpxchg loop. */
    void* nm = nf_inner(&nf_nth, live);
    if (!nm) return 0;
    __u32 idx = r->nth_slot;
    struct nf2bpf_nth_val* n = bpf_map_lookup_elem(nm, &idx);
    __u64 every = r->nth_every;
    if (!n || !every) return 0;
    __u64 seen;
    if (res & NF_RES_NTH_ONCE) {
      __u32 k = idx % NF_DRAW_CACHE, tag = NF_NTH_ONCE_TAG | idx;
      if (!((s->draw_valid >> k) & 1) || s->draw_slot[k] != tag) {
        s->draw_valid |= 1u << k;
        s->draw_slot[k] = tag;
        s->draw_val[k] = (__u32)((__sync_fetch_and_add(&n->count, 1) + 1) % every);
      }
      seen = s->draw_val[k];
    } else {
      seen = __sync_fetch_and_add(&n->count, 1) + 1;
    }
    int hit = seen % every == r->nth_hit;
    if (hit == !!(res & NF_RES_NTH_NEG)) return 0;
  }
  /* Last too (the compiler puts a recent match after every other test):
   * it changes its table as the kernel's does for packets that reach it. */
  if ((res & NF_RES_RECENT) && !nf_recent_match(s, r)) return 0;
  return 1;
}

static __always_inline void nf_count(__u32 live, __u32 idx, __u32 bytes) {
  void* cm = nf_inner(&nf_counters, live);
  if (!cm) return;
  struct nf2bpf_counter* c = bpf_map_lookup_elem(cm, &idx);
  if (!c) return;
  c->packets++;
  c->bytes += bytes;
}

static __always_inline void nf_log(struct nf_scratch* s, struct nf2bpf_stmt* st, __u32 rule) {
  struct nf2bpf_log_event* e = bpf_ringbuf_reserve(&nf_events, sizeof(*e), 0);
  if (!e) return;
  e->ts_ns = bpf_ktime_get_ns();
  e->rule = rule;
  e->prefix_id = st->prefix_id;
  e->ifindex = s->p.iif ? s->p.iif : s->p.oif;
  e->hook = s->hook;
  e->family = s->p.family;
  e->proto = s->p.l4proto;
  e->level = st->level;
  __builtin_memcpy(e->saddr, s->p.saddr, 16);
  __builtin_memcpy(e->daddr, s->p.daddr, 16);
  e->sport = s->p.sport;
  e->dport = s->p.dport;
  e->len = s->p.len;
  e->generation = s->generation;
  bpf_ringbuf_submit(e, 0);
}

static __always_inline void nf_statements(struct nf_scratch* s, struct nf2bpf_rule* r, __u32 live, __u32 rule) {
  if (!r->stmt_count) return;
  void* sm = nf_inner(&nf_stmts, live);
  if (!sm) return;
  for (__u32 i = 0; i < NF_MAX_STMTS; i++) {
    if (i >= r->stmt_count) break;
    __u32 idx = r->stmt_first + i;
    struct nf2bpf_stmt* st = bpf_map_lookup_elem(sm, &idx);
    if (!st) break;
    switch (st->kind) {
      case NF_STMT_LOG: nf_log(s, st, rule); break;
      case NF_STMT_SET_MARK: s->p.mark = (s->p.mark & ~st->mask) ^ st->value; break;
      /* xt_CONNMARK does nothing to a packet without a connection. */
      case NF_STMT_SET_CTMARK:
        if (s->has_ct) s->ctmark = (s->ctmark & ~st->mask) ^ st->value;
        break;
      case NF_STMT_SAVE_MARK:
        if (s->has_ct) s->ctmark = (s->ctmark & ~st->mask) | (s->p.mark & st->mask);
        break;
      case NF_STMT_RESTORE_MARK:
        if (s->has_ct) s->p.mark = (s->p.mark & ~st->mask) | (s->ctmark & st->mask);
        break;
      case NF_STMT_NOTRACK: s->notrack = 1; break;
      /* Applied when the run accepts the packet (lib/mangle.h): the MSS
       * only goes down, so the smallest asked for is the outcome. */
      case NF_STMT_TCPMSS:
        if (st->mask & NF_TCPMSS_INSERT) s->tcpmss_insert = 1;
        if (!st->value)
          s->tcpmss_pmtu = 1;
        else if (!s->tcpmss || st->value < s->tcpmss)
          s->tcpmss = st->value;
        break;
      /* Later rules see the new byte (its class too); the packet gets it
       * when the run accepts or rejects it (lib/mangle.h). */
      case NF_STMT_SET_TOS:
        s->p.tos = (s->p.tos & ~st->mask) ^ st->value;
        s->tos_set = 1;
        s->cls[NF_SLOT_TOS] = nf_small_class(live, NF_SMALL_TOS_BASE + s->p.tos);
        break;
    }
  }
}

/* The search found `best` (or nothing): decide, or set up the next search.
 * Returns 1 when the stage has a verdict. */
NF_SUBPROG int nf_process(struct nf_scratch* s, __u32 live) {
  if (!s) return 1;
  live &= 1;
  struct nf_search* sr = &s->srch;
  if (sr->best == NF_NONE || sr->best >= sr->end_rule) {
    void* stm = nf_inner(&nf_stages, live);
    __u32 si = sr->stage;
    struct nf2bpf_stage* st = stm ? bpf_map_lookup_elem(stm, &si) : 0;
    sr->verdict = st ? st->policy : NF_ACT_ACCEPT;
    sr->rule = st ? st->policy_counter : NF_NONE;
    if (st) nf_count(live, st->policy_counter, s->p.len);
    return 1;
  }
  __u32 ri = sr->best;
  void* rm = nf_inner(&nf_rules, live);
  struct nf2bpf_rule* r = rm ? bpf_map_lookup_elem(rm, &ri) : 0;
  if (!r) {
    sr->verdict = NF_ACT_ACCEPT;
    sr->rule = NF_NONE;
    return 1;
  }
  if (!nf_residual_ok(s, r, live, ri)) {
    nf_search_reset(sr, ri + 1);
    return 0;
  }
  nf_count(live, ri, s->p.len);
  nf_statements(s, r, live, ri);
  switch (r->action) {
    case NF_ACT_CONTINUE: nf_search_reset(sr, ri + 1); return 0;
    case NF_ACT_SKIP: nf_search_reset(sr, r->skip_to); return 0;
  }
  sr->verdict = r->action;
  sr->rule = ri;
  return 1;
}

struct nf_loop_ctx {
  __u32 which; /* scratch index */
};

/* One probe of the first-match search, or the processing of its result. */
static long nf_step(__u32 i, struct nf_loop_ctx* lc) {
  __u32 which = lc->which;
  struct nf_scratch* s = bpf_map_lookup_elem(&nf_scratch, &which);
  if (!s) return 1;
  struct nf_search* sr = &s->srch;
  __u32 live = sr->live;
  if (sr->ti >= sr->tuple_count) {
    if (nf_process(s, live)) {
      sr->done = 1;
      return 1;
    }
    return 0;
  }
  void* tm = nf_inner(&nf_tuples, live);
  void* em = nf_inner(&nf_entries, live);
  if (!tm || !em) {
    sr->ti = sr->tuple_count;
    return 0;
  }
  __u32 tid = sr->tuple_first + sr->ti;
  if (sr->seq == 0) {
    struct nf2bpf_tuple* t = bpf_map_lookup_elem(tm, &tid);
    if (!t || t->min_rule >= sr->best) {
      /* Tuples are sorted by their first rule: none later can do better. */
      sr->ti = sr->tuple_count;
      return 0;
    }
    if (t->max_rule < sr->from) {
      sr->ti++;
      return 0;
    }
    __builtin_memset(&s->key, 0, sizeof(s->key));
    s->key.tuple = (__u16)tid;
#pragma unroll
    for (int j = 0; j < NF_MAX_TUPLE_SLOTS; j++) {
      if (j < t->nslots) s->key.cls[j] = s->cls[t->slots[j] & 31];
    }
  }
  s->key.seq = (__u16)sr->seq;
  struct nf2bpf_entry_val* v = bpf_map_lookup_elem(em, &s->key);
  if (!v) {
    sr->ti++;
    sr->seq = 0;
    return 0;
  }
  if (v->rule >= sr->from) {
    if (v->rule < sr->best) sr->best = v->rule;
    sr->ti++;
    sr->seq = 0;
    return 0;
  }
  if (v->has_next) {
    sr->seq++;
    return 0;
  }
  sr->ti++;
  sr->seq = 0;
  return 0;
}

/* Evaluates one stage; returns NF_ACT_ACCEPT / DROP / REJECT. */
static __always_inline __u32 nf_run_stage(struct nf_scratch* s, __u32 which, __u32 live, __u32 si,
                                          struct nf2bpf_stage* st, __u32 max_steps) {
  struct nf_search* sr = &s->srch;
  sr->stage = si;
  sr->tuple_first = st->tuple_first;
  sr->tuple_count = st->tuple_count;
  sr->end_rule = st->end_rule;
  sr->done = 0;
  sr->live = live;
  s->draw_valid = 0;
  nf_search_reset(sr, st->first_rule);
  struct nf_loop_ctx lc = {which};
  bpf_loop(max_steps, nf_step, &lc, 0);
  if (!sr->done) return st->policy; /* unreachable: the compiler proves max_steps */
  return sr->verdict;
}

#define NF_PHASE_BEFORE_CT 1
#define NF_PHASE_AFTER_CT 2
#define NF_PHASE_ALL 3

/* The hook's NAT point (lib/nat.h): 0, or -1 when the packet must drop. */
NF_SUBPROG int nf_nat_point(struct __sk_buff* skb, struct nf_scratch* s, __u32 which, __u32 live, __u32 hook);

/* Runs the stages of one hook that belong to `phase`. The hook's nat stages
 * run together at its NAT point (the kernel's nat hook, -100 for
 * destination NAT, +100 for source NAT), only while a new connection is being
 * bound, until one binds it; stages after the NAT point see the rewritten
 * packet. */
static __always_inline __u32 nf_run_hook(struct __sk_buff* skb, struct nf_scratch* s, __u32 which, __u32 live,
                                         __u32 hook, __u32 phase, __u32 max_steps) {
  __u32 hk = live * NF_HOOK_MAX + hook;
  struct nf2bpf_hook_desc* hd = bpf_map_lookup_elem(&nf_hooks, &hk);
  void* stm = nf_inner(&nf_stages, live);
  int natpoint = s->nat.active && (phase & NF_PHASE_AFTER_CT);
  s->nat.rule = NF_NONE;
  if (hd && hd->stage_count && stm) {
    s->hook = hook;
    __u8 fam = s->p.family == 4 ? NF_FAM_V4 : NF_FAM_V6;
    for (__u32 i = 0; i < NF_MAX_STAGES_PER_HOOK; i++) {
      if (i >= hd->stage_count) break;
      __u32 si = hd->stage_first + i;
      struct nf2bpf_stage* st = bpf_map_lookup_elem(stm, &si);
      if (!st) break;
      if (!(st->family_mask & fam)) continue;
      __u32 ph = (st->flags & NF_STAGE_BEFORE_CT) ? NF_PHASE_BEFORE_CT : NF_PHASE_AFTER_CT;
      if (!(ph & phase)) continue;
      if (st->flags & NF_STAGE_NAT) {
        if (!natpoint || !s->nat.binding || s->nat.rule != NF_NONE) continue;
      } else if (natpoint && (st->flags & NF_STAGE_AFTER_NAT)) {
        natpoint = 0;
        if (nf_nat_point(skb, s, which, live, hook)) return NF_ACT_DROP;
      }
      struct nf2bpf_stage stc = *st;
      __u32 v = nf_run_stage(s, which, live, si, &stc, max_steps);
      if (v == NF_ACT_NAT) {
        s->nat.rule = s->srch.rule;
        continue;
      }
      if (v != NF_ACT_ACCEPT) return v;
    }
  }
  if (natpoint && nf_nat_point(skb, s, which, live, hook)) return NF_ACT_DROP;
  return NF_ACT_ACCEPT;
}

#endif
