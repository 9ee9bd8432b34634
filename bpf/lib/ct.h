/* Connection tracking with netfilter's semantics: one LRU entry per flow
 * (both directions), TCP state machine from nf_conntrack_proto_tcp, ICMP
 * echo/info flows, RELATED for ICMP errors quoting a tracked flow, UNTRACKED
 * for NOTRACK and ICMPv6 neighbour discovery/MLD, netfilter's default
 * timeouts. Window tracking is not done (see docs/design.md). The map's key
 * and value, the TCP table and the timeouts are in include/ct_abi.h, shared
 * with the userspace model. */
#ifndef NF2BPF_CT_H
#define NF2BPF_CT_H

#include "abi.h"
#include "ct_abi.h"
#include "maps.h"
#include "parse.h"

struct nf_ct_res {
  struct nf_ct_key key;
  __u8 state;     /* NF_CT_STATE_* */
  __u8 dir;       /* 0 original, 1 reply, 2 none */
  __u8 exists;    /* an entry was found (not expired) */
  __u8 track;     /* confirm/update the entry when the packet is accepted */
  __u8 new_tcp;   /* TCP state after this packet */
  __u8 orig_is_a; /* for a new entry */
  __u8 proto;
  __u8 kill; /* delete the entry after this packet (RST as the first reply) */
  __u32 ctmark;
};

static __always_inline int nf_addr_cmp(const __u8* x, const __u8* y) {
#pragma unroll
  for (int i = 0; i < 16; i++) {
    if (x[i] < y[i]) return -1;
    if (x[i] > y[i]) return 1;
  }
  return 0;
}

/* Fills the normalised key; returns 1 when (sa, sp) is endpoint a. */
static __always_inline int nf_ct_key_of(struct nf_ct_key* k, const __u8* sa, const __u8* da, __u16 sp, __u16 dp,
                                        __u8 proto) {
  int c = nf_addr_cmp(sa, da);
  int src_is_a = c < 0 || (c == 0 && sp <= dp);
  __builtin_memset(k, 0, sizeof(*k));
  if (src_is_a) {
    __builtin_memcpy(k->a, sa, 16);
    __builtin_memcpy(k->b, da, 16);
    k->pa = sp;
    k->pb = dp;
  } else {
    __builtin_memcpy(k->a, da, 16);
    __builtin_memcpy(k->b, sa, 16);
    k->pa = dp;
    k->pb = sp;
  }
  k->proto = proto;
  return src_is_a;
}

static __always_inline int nf_tcp_index(__u8 f) {
  if (f & 0x04) return 4;                  /* rst */
  if (f & 0x02) return (f & 0x10) ? 1 : 0; /* synack : syn */
  if (f & 0x01) return 2;                  /* fin */
  if (f & 0x10) return 3;                  /* ack */
  return 5;
}

/* tcp_error(): flag combinations netfilter accepts (PSH, ECE, CWR ignored). */
static __always_inline int nf_tcp_flags_valid(__u8 f) {
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
    case 0x30: return 1;
  }
  return 0;
}

static __always_inline int nf_icmp_is_request(__u8 family, __u8 type) {
  if (family == 4) return type == 8 || type == 13 || type == 15 || type == 17;
  return type == 128;
}
static __always_inline int nf_icmp_is_reply(__u8 family, __u8 type) {
  if (family == 4) return type == 0 || type == 14 || type == 16 || type == 18;
  return type == 129;
}
/* ICMPv6 types conntrack leaves untracked: MLD and neighbour discovery. */
static __always_inline int nf_icmp6_noct(__u8 type) {
  return type == 130 || type == 131 || type == 132 || type == 133 || type == 134 || type == 135 || type == 136 ||
         type == 143;
}

/* Classifies the packet against the tracker without changing it. Global
 * function: verified once (see NF_SUBPROG in classify.h).
 *
 * `looped`: the packet is a local one coming back in on lo. Netfilter does
 * not track it again (nf_conntrack_in keeps the connection OUTPUT attached),
 * so it has the state OUTPUT gave it: an entry found is read as it is (no TCP
 * transition: OUTPUT made it already), and a packet OUTPUT left untracked
 * (NOTRACK) finds no entry where it would start one: UNTRACKED. */
__attribute__((noinline)) int nf_ct_lookup(struct nf_pkt* p, __u64 now, struct nf_ct_res* r, int looped) {
  if (!p || !r) return 0;
  r->dir = 2;
  r->state = NF_CT_STATE_INVALID;
  if (p->frag == 2) return 0; /* later fragments carry no tuple (the kernel would reassemble) */
  __u8 proto = p->l4proto;
  __u16 sp = 0, dp = 0;
  if (p->has_icmp) {
    if (p->icmp_err) {
      struct nf_ct_key k;
      int inner_is_a;
      /* nf_conntrack_inet_error(): the error must go to the host that sent
       * the quoted packet, otherwise it is INVALID. */
      if (nf_addr_cmp(p->daddr, p->in_saddr) != 0) return 0;
      if (p->in_proto == IPPROTO_ICMP || p->in_proto == IPPROTO_ICMPV6) {
        /* A quoted echo request: keyed from its sender, like the flow. */
        __builtin_memset(&k, 0, sizeof(k));
        __builtin_memcpy(k.a, p->in_saddr, 16);
        __builtin_memcpy(k.b, p->in_daddr, 16);
        k.pa = k.pb = p->in_sport;
        k.proto = p->in_proto;
        k.pad[0] = p->family == 4 ? 8 : 128;
        inner_is_a = 1;
      } else {
        inner_is_a = nf_ct_key_of(&k, p->in_saddr, p->in_daddr, p->in_sport, p->in_dport, p->in_proto);
      }
      struct nf_ct_val* v = bpf_map_lookup_elem(&nf_ct, &k);
      if (v && v->expires_ns > now) {
        int inner_orig = ((v->flags & NF_CT_ORIG_IS_A) != 0) == inner_is_a;
        r->state = NF_CT_STATE_RELATED;
        r->dir = inner_orig ? 1 : 0;
        r->ctmark = v->mark;
      }
      return 0;
    }
    if (p->family == 6 && nf_icmp6_noct(p->icmp_type)) {
      r->state = NF_CT_STATE_UNTRACKED;
      return 0;
    }
    int req = nf_icmp_is_request(p->family, p->icmp_type);
    int rep = nf_icmp_is_reply(p->family, p->icmp_type);
    if (!req && !rep) return 0; /* INVALID */
    /* ICMP flows are keyed from the requester's side (a = requester), with
     * the request type, so a request and its reply share one entry while a
     * request from the other side is a flow of its own. */
    __u8 req_type = req ? p->icmp_type : (p->family == 4 ? (p->icmp_type == 0 ? 8 : p->icmp_type - 1) : 128);
    __builtin_memset(&r->key, 0, sizeof(r->key));
    __builtin_memcpy(r->key.a, req ? p->saddr : p->daddr, 16);
    __builtin_memcpy(r->key.b, req ? p->daddr : p->saddr, 16);
    r->key.pa = r->key.pb = p->icmp_id;
    r->key.proto = proto;
    r->key.pad[0] = req_type;
    r->proto = proto;
    struct nf_ct_val* iv = bpf_map_lookup_elem(&nf_ct, &r->key);
    int iexists = iv && iv->expires_ns > now;
    if (rep && !iexists) return 0; /* a reply needs its request */
    if (looped && !iexists) {
      r->state = NF_CT_STATE_UNTRACKED;
      return 0;
    }
    r->track = 1;
    r->exists = iexists;
    r->orig_is_a = 1;
    if (!iexists) {
      r->state = NF_CT_STATE_NEW;
      r->dir = 0;
      return 0;
    }
    r->ctmark = iv->mark;
    r->dir = rep ? 1 : 0;
    r->state = (rep || (iv->flags & NF_CT_SEEN_REPLY)) ? NF_CT_STATE_ESTABLISHED : NF_CT_STATE_NEW;
    return 0;
  } else if (p->has_ports) {
    sp = p->sport;
    dp = p->dport;
  } else if (nf_has_ports(proto)) {
    return 0; /* truncated transport header */
  }
  r->proto = proto;
  int src_is_a = nf_ct_key_of(&r->key, p->saddr, p->daddr, sp, dp, proto);
  struct nf_ct_val* v = bpf_map_lookup_elem(&nf_ct, &r->key);
  int exists = v && v->expires_ns > now;
  int dir = 0;
  if (exists) {
    dir = (((v->flags & NF_CT_ORIG_IS_A) != 0) == src_is_a) ? 0 : 1;
  }
  if (proto == IPPROTO_TCP && !p->has_tcp) return 0;
  if (proto == IPPROTO_TCP && !nf_tcp_flags_valid(p->tcp_flags)) return 0;
  if (proto == IPPROTO_TCP && !(looped && exists)) {
    int idx = nf_tcp_index(p->tcp_flags);
    __u8 old = exists ? v->tcp_state : sNO;
    if (old > sS2) old = sNO;
    /* A SYN reopening a closed connection starts a new one. */
    if (exists && dir == 0 && idx == 0 && (old == sTW || old == sCL)) exists = 0, old = sNO;
    __u8 ns = nf_tcp_table[exists ? dir : 0][idx & 7][old];
    if (ns == sIV) return 0; /* INVALID: not tracked, no update */
    if (ns == sIG) ns = old; /* ignored: the state stays, the packet keeps its connection */
    r->new_tcp = ns;
    /* A RST before any reply: netfilter drops the connection at once. */
    if (exists && (p->tcp_flags & 0x04) && !(v->flags & NF_CT_SEEN_REPLY)) r->kill = 1;
  }
  if (looped && !exists) {
    r->state = NF_CT_STATE_UNTRACKED;
    return 0;
  }
  r->track = 1;
  r->exists = exists;
  r->orig_is_a = src_is_a;
  if (!exists) {
    r->state = NF_CT_STATE_NEW;
    r->dir = 0;
    return 0;
  }
  r->ctmark = v->mark;
  r->dir = dir;
  if (dir == 1 || (v->flags & NF_CT_SEEN_REPLY))
    r->state = NF_CT_STATE_ESTABLISHED;
  else
    r->state = NF_CT_STATE_NEW;
  return 0;
}

static __always_inline __u64 nf_ct_timeout(struct nf_ct_res* r, __u8 seen_reply) {
  if (r->proto == IPPROTO_TCP) return (__u64)nf_tcp_timeout[r->new_tcp < 10 ? r->new_tcp : 0] * NF_SEC;
  if (r->proto == IPPROTO_UDP || r->proto == IPPROTO_UDPLITE)
    return (seen_reply ? NF_CT_UDP_STREAM_TIMEOUT : NF_CT_UDP_TIMEOUT) * NF_SEC;
  if (r->proto == IPPROTO_ICMP || r->proto == IPPROTO_ICMPV6) return NF_CT_ICMP_TIMEOUT * NF_SEC;
  return NF_CT_GENERIC_TIMEOUT * NF_SEC;
}

/* Netfilter updates a connection it already tracks when the packet passes
 * the conntrack hook, before any filtering: a reply that a later rule drops
 * still marks the connection as having seen a reply. */
static __always_inline void nf_ct_update(struct nf_ct_res* r, __u64 now) {
  if (!r->track || !r->exists) return;
  if (r->kill) {
    bpf_map_delete_elem(&nf_ct, &r->key);
    return;
  }
  struct nf_ct_val* v = bpf_map_lookup_elem(&nf_ct, &r->key);
  if (!v) return;
  if (r->dir == 1) v->flags |= NF_CT_SEEN_REPLY;
  v->tcp_state = r->new_tcp;
  v->expires_ns = now + nf_ct_timeout(r, v->flags & NF_CT_SEEN_REPLY);
}

/* After the hooks: a new connection is confirmed (created) only when the
 * packet was accepted; connmark changes stick to a tracked one either way. */
static __always_inline void nf_ct_finish(struct nf_ct_res* r, __u64 now, int accepted, __u32 ctmark) {
  if (!r->track || r->kill) return;
  if (r->exists) {
    if (ctmark == r->ctmark) return;
    struct nf_ct_val* v = bpf_map_lookup_elem(&nf_ct, &r->key);
    if (v) v->mark = ctmark;
    return;
  }
  if (!accepted) return;
  struct nf_ct_val v = {};
  v.tcp_state = r->new_tcp;
  v.flags = r->orig_is_a ? NF_CT_ORIG_IS_A : 0;
  v.mark = ctmark;
  v.expires_ns = now + nf_ct_timeout(r, 0);
  bpf_map_update_elem(&nf_ct, &r->key, &v, BPF_ANY);
}

/* Both keys live in 4-byte aligned storage (nf_ct_res, nf_scratch). */
static __always_inline int nf_ct_key_eq(const struct nf_ct_key* x, const struct nf_ct_key* y) {
  const __u32 *a = (const __u32*)x, *b = (const __u32*)y;
#pragma unroll
  for (int i = 0; i < (int)(sizeof(struct nf_ct_key) / 4); i++)
    if (a[i] != b[i]) return 0;
  return 1;
}

#endif
