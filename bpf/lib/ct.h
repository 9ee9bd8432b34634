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

/* Orders two addresses (16 bytes, 4-byte aligned) as byte strings. */
static __always_inline int nf_addr_cmp(const __u8* x, const __u8* y) {
  const __u32 *a = (const __u32*)x, *b = (const __u32*)y;
#pragma unroll
  for (int i = 0; i < 4; i++) {
    __u32 u = bpf_ntohl(a[i]), v = bpf_ntohl(b[i]);
    if (u != v) return u < v ? -1 : 1;
  }
  return 0;
}

/* Addresses (16 bytes) live 4-byte aligned in every struct here: copied
 * as words, not byte by byte. */
static __always_inline void nf_addr_copy(__u8* to, const __u8* from) {
  __u32* d = (__u32*)to;
  const __u32* f = (const __u32*)from;
  d[0] = f[0];
  d[1] = f[1];
  d[2] = f[2];
  d[3] = f[3];
}

/* Fills the normalised key; returns 1 when (sa, sp) is endpoint a. */
static __always_inline int nf_ct_key_of(struct nf_ct_key* k, const __u8* sa, const __u8* da, __u16 sp, __u16 dp,
                                        __u8 proto) {
  int c = nf_addr_cmp(sa, da);
  int src_is_a = c < 0 || (c == 0 && sp <= dp);
  __builtin_memset(k, 0, sizeof(*k));
  if (src_is_a) {
    nf_addr_copy(k->a, sa);
    nf_addr_copy(k->b, da);
    k->pa = sp;
    k->pb = dp;
  } else {
    nf_addr_copy(k->a, da);
    nf_addr_copy(k->b, sa);
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

static __always_inline void nf_tuple_set(struct nf_ct_tuple* t, const __u8* src, const __u8* dst, __u16 sp, __u16 dp) {
  nf_addr_copy(t->src, src);
  nf_addr_copy(t->dst, dst);
  t->sport = sp;
  t->dport = dp;
}

static __always_inline void nf_tuple_invert(struct nf_ct_tuple* out, const struct nf_ct_tuple* t) {
  nf_tuple_set(out, t->dst, t->src, t->dport, t->sport);
}

/* The packet's own tuple: ports, or the ICMP echo identifier in both. */
static __always_inline void nf_pkt_tuple(const struct nf_pkt* p, struct nf_ct_tuple* t) {
  __u16 sp = p->has_ports ? p->sport : p->has_icmp ? p->icmp_id : 0;
  __u16 dp = p->has_ports ? p->dport : p->has_icmp ? p->icmp_id : 0;
  nf_tuple_set(t, p->saddr, p->daddr, sp, dp);
}

/* The key a tuple is found under: ICMP flows from the requester's side, with
 * the request type (ct.h). */
static __always_inline void nf_tuple_key(struct nf_ct_key* k, const struct nf_ct_tuple* t, __u8 proto, __u8 icmp_req,
                                         int reply_dir) {
  if (icmp_req) {
    __builtin_memset(k, 0, sizeof(*k));
    nf_addr_copy(k->a, reply_dir ? t->dst : t->src);
    nf_addr_copy(k->b, reply_dir ? t->src : t->dst);
    k->pa = k->pb = t->sport;
    k->proto = proto;
    k->pad[0] = icmp_req;
    return;
  }
  nf_ct_key_of(k, t->src, t->dst, t->sport, t->dport, proto);
}

/* BPF has no memcmp: equality of 16-byte addresses and of tuples. */
static __always_inline int nf_addr_eq(const __u8* x, const __u8* y) {
  const __u32 *a = (const __u32*)x, *b = (const __u32*)y;
  return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3];
}

static __always_inline int nf_tuple_eq(const struct nf_ct_tuple* x, const struct nf_ct_tuple* y) {
  return x->sport == y->sport && x->dport == y->dport && nf_addr_eq(x->src, y->src) && nf_addr_eq(x->dst, y->dst);
}

static __always_inline int nf_tuple_is(const struct nf_ct_tuple* t, const __u8* sa, const __u8* da, __u16 sp,
                                       __u16 dp) {
  return t->sport == sp && t->dport == dp && nf_addr_eq(t->src, sa) && nf_addr_eq(t->dst, da);
}

/* How a tuple is matched against a NATed connection's: a packet as it
 * arrives is the connection's when it is one of its two tuples exactly (the
 * inverse of the original is not: after a DNAT the reply comes from the new
 * address); the packet an ICMP error quotes when its inverse is one of them
 * (nf_conntrack_inet_error); a packet the dataplane has translated already
 * (a forwarded packet's egress run, a local packet back in on lo) in any of
 * its states. */
#define NF_CT_MATCH_EXACT 0
#define NF_CT_MATCH_QUOTED 1
#define NF_CT_MATCH_ANY 2

/* The packet's key found the entry *vp of a NATed connection, or its alias:
 * moves r->key and *vp to the connection's own entry and returns the
 * packet's direction — 0 original, 1 reply — or -1 when the entry is a stale
 * alias (read as no entry), 2 when the packet is none of the connection's
 * (its key is taken by another flow). `how`: NF_CT_MATCH_*. */
static __always_inline int nf_ct_nat_dir(struct nf_ct_res* r, struct nf_ct_val** vp, const __u8* sa, const __u8* da,
                                         __u16 sp, __u16 dp, __u64 now, struct nf_ct_key* mk, int how) {
  struct nf_ct_val* v = *vp;
  if (v->flags & NF_CT_ALIAS) {
    /* (mk: working memory for the connection's own key) */
    nf_tuple_key(mk, &v->orig, r->key.proto, r->key.pad[0], 0);
    struct nf_ct_val* m = bpf_map_lookup_elem(&nf_ct, mk);
    if (!m || m->expires_ns <= now || (m->flags & NF_CT_ALIAS) || !nf_tuple_eq(&m->reply, &v->reply)) return -1;
    r->key = *mk;
    *vp = m;
    v = m;
  }
  if (how != NF_CT_MATCH_QUOTED) {
    if (nf_tuple_is(&v->orig, sa, da, sp, dp)) return 0;
    if (nf_tuple_is(&v->reply, sa, da, sp, dp)) return 1;
  }
  if (how != NF_CT_MATCH_EXACT) {
    if (nf_tuple_is(&v->reply, da, sa, dp, sp)) return 0;
    if (nf_tuple_is(&v->orig, da, sa, dp, sp)) return 1;
  }
  if (how != NF_CT_MATCH_ANY) return 2;
  /* Between the two NAT points of a forwarded packet (its egress run, which
   * finds the connection through the ingress run's hint): the original
   * direction with its destination translated, the reply with its
   * destination restored. */
  if (nf_addr_eq(v->orig.src, sa) && nf_addr_eq(v->reply.src, da) && v->orig.sport == sp && v->reply.sport == dp)
    return 0;
  if (nf_addr_eq(v->reply.src, sa) && nf_addr_eq(v->orig.src, da) && v->reply.sport == sp && v->orig.sport == dp)
    return 1;
  return 2;
}

/* What a NAT binding needs of an entry found. */
static __always_inline void nf_ct_nat_load(struct nf_nat_work* nw, const struct nf_ct_val* v) {
  nw->orig = v->orig;
  nw->reply = v->reply;
  nw->flags = v->flags & (NF_CT_SNAT | NF_CT_DNAT | NF_CT_SRC_PENDING);
}

/* Classifies the packet against the tracker without changing it. Global
 * function: verified once (see NF_SUBPROG in classify.h).
 *
 * `looped`: the packet is a local one coming back in on lo. Netfilter does
 * not track it again (nf_conntrack_in keeps the connection OUTPUT attached),
 * so it has the state OUTPUT gave it: an entry found is read as it is (no TCP
 * transition: OUTPUT made it already), and a packet OUTPUT left untracked
 * (NOTRACK) finds no entry where it would start one: UNTRACKED. */
__attribute__((noinline)) int nf_ct_lookup(struct nf_pkt* p, __u64 now, struct nf_ct_res* r, int looped,
                                           struct nf_nat_work* nw) {
  if (!p || !r || !nw) return 0;
  nw->flags = 0;
  r->dir = 2;
  r->state = NF_CT_STATE_INVALID;
  if (p->frag == 2) return 0; /* later fragments carry no tuple (the kernel would reassemble) */
  if (p->csum_bad) return 0;  /* a wrong transport checksum (lib/csum.h) */
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
      /* A forwarded error's egress run: its quoted packet may be half
       * translated (ingress did the destination NAT point). */
      if (nw->hint) k = nw->hint_key;
      struct nf_ct_val* v = bpf_map_lookup_elem(&nf_ct, &k);
      if (v && v->expires_ns > now) {
        int inner_orig = ((v->flags & NF_CT_ORIG_IS_A) != 0) == inner_is_a;
        r->key = k;
        if (v->flags & (NF_CT_SNAT | NF_CT_DNAT | NF_CT_ALIAS)) {
          int d = nf_ct_nat_dir(r, &v, p->in_saddr, p->in_daddr, p->in_sport, p->in_dport, now, &nw->key,
                                nw->hint ? NF_CT_MATCH_ANY : NF_CT_MATCH_QUOTED);
          if (d < 0 || d > 1) return 0;
          inner_orig = d == 0;
        }
        r->state = NF_CT_STATE_RELATED;
        r->dir = inner_orig ? 1 : 0;
        r->ctmark = v->mark;
        nf_ct_nat_load(nw, v); /* the error is translated as its connection (nat.h) */
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
    if (nw->hint) r->key = nw->hint_key;
    struct nf_ct_val* iv = bpf_map_lookup_elem(&nf_ct, &r->key);
    int iexists = iv && iv->expires_ns > now;
    if (iexists && (iv->flags & (NF_CT_SNAT | NF_CT_DNAT | NF_CT_ALIAS))) {
      /* (An echo flow's direction is its type's.) */
      iexists = nf_ct_nat_dir(r, &iv, p->saddr, p->daddr, p->icmp_id, p->icmp_id, now, &nw->key,
                              (nw->hint || looped) ? NF_CT_MATCH_ANY : NF_CT_MATCH_EXACT) >= 0;
    }
    if (iexists) nf_ct_nat_load(nw, iv);
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
  if (nw->hint) r->key = nw->hint_key;
  struct nf_ct_val* v = bpf_map_lookup_elem(&nf_ct, &r->key);
  int exists = v && v->expires_ns > now;
  int dir = 0;
  if (exists && (v->flags & (NF_CT_SNAT | NF_CT_DNAT | NF_CT_ALIAS))) {
    dir = nf_ct_nat_dir(r, &v, p->saddr, p->daddr, sp, dp, now, &nw->key,
                        (nw->hint || looped) ? NF_CT_MATCH_ANY : NF_CT_MATCH_EXACT);
    if (dir == 2) return 0; /* INVALID: another connection has this key */
    exists = dir >= 0;
    if (dir < 0) dir = 0;
  } else if (exists) {
    dir = (((v->flags & NF_CT_ORIG_IS_A) != 0) == src_is_a) ? 0 : 1;
  }
  if (exists) nf_ct_nat_load(nw, v);
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

/* A NATed connection's alias: its tuples under the reply tuple's key. */
static __always_inline void nf_ct_alias_key(struct nf_ct_key* k, const struct nf_ct_tuple* reply,
                                            const struct nf_ct_res* r, const struct nf_nat_work* nw) {
  nf_tuple_key(k, reply, r->key.proto, nw->icmp_req, 1);
}

/* An alias of the connection in nw under the key of tuple t (reply_dir:
 * t is a reply-direction tuple). It has no lifetime of its own: whoever
 * finds it asks the connection's entry (nf_ct_nat_dir, nf_nat_used), whose
 * timeout every packet renews. (nw->key and nw->val are working memory.) */
static __always_inline void nf_ct_write_alias(const struct nf_ct_res* r, struct nf_nat_work* nw,
                                              const struct nf_ct_tuple* t, int reply_dir) {
  nf_tuple_key(&nw->key, t, r->key.proto, nw->icmp_req, reply_dir);
  __builtin_memset(&nw->val, 0, sizeof(nw->val));
  nw->val.expires_ns = NF_CT_ALIAS_EXPIRES;
  nw->val.flags = NF_CT_ALIAS | (nw->flags & (NF_CT_SNAT | NF_CT_DNAT));
  nw->val.orig = nw->orig;
  nw->val.reply = nw->reply;
  bpf_map_update_elem(&nf_ct, &nw->key, &nw->val, BPF_ANY);
}

/* The connection's original source names it in nf_nat_src, as the kernel
 * adds a connection to nf_nat_bysource once its source manip is set up
 * (nat.h's nf_nat_src_keep reads it). (nw->src_key: working memory.) */
static __always_inline void nf_ct_by_source(const struct nf_ct_res* r, struct nf_nat_work* nw) {
  __builtin_memset(&nw->src_key, 0, sizeof(nw->src_key));
  nf_addr_copy(nw->src_key.addr, nw->orig.src);
  nw->src_key.port = nw->orig.sport;
  nw->src_key.proto = r->key.proto;
  bpf_map_update_elem(&nf_nat_src, &nw->src_key, &r->key, BPF_ANY);
}

/* After the hooks: a new connection is confirmed (created) only when the
 * packet was accepted; connmark changes stick to a tracked one either way.
 * With NAT the entry keeps both tuples, and a translated connection gets its
 * alias; `src_pending`: a forwarded first packet whose source NAT point is
 * still ahead (at egress). Returns 1 when an alias was written. */
static __always_inline int nf_ct_finish(struct nf_ct_res* r, __u64 now, int accepted, __u32 ctmark,
                                        struct nf_nat_work* nw, int src_pending) {
  if (!r->track || r->kill) return 0;
  int bind = nw->active && nw->binding && accepted;
  if (r->exists) {
    struct nf_ct_val* v = 0;
    if (ctmark != r->ctmark || bind) v = bpf_map_lookup_elem(&nf_ct, &r->key);
    if (!v) return 0;
    v->mark = ctmark;
    if (!bind) return 0;
    /* A forwarded connection's source binding, made at its POSTROUTING. */
    v->reply = nw->reply;
    v->flags = (v->flags & ~(NF_CT_SRC_PENDING | NF_CT_SNAT | NF_CT_DNAT)) | (nw->flags & (NF_CT_SNAT | NF_CT_DNAT));
    if (nw->had_alias && !nf_tuple_eq(&nw->old_reply, &nw->reply)) {
      nf_ct_alias_key(&nw->key, &nw->old_reply, r, nw);
      bpf_map_delete_elem(&nf_ct, &nw->key);
    }
    if (nw->flags & (NF_CT_SNAT | NF_CT_DNAT)) nf_ct_write_alias(r, nw, &nw->reply, 1);
    nf_ct_by_source(r, nw);
    return 0;
  }
  if (!accepted) return 0;
  struct nf_ct_val* v = &nw->val;
  __builtin_memset(v, 0, sizeof(*v));
  v->tcp_state = r->new_tcp;
  v->flags = r->orig_is_a ? NF_CT_ORIG_IS_A : 0;
  v->mark = ctmark;
  v->expires_ns = now + nf_ct_timeout(r, 0);
  if (nw->active) {
    v->orig = nw->orig;
    v->reply = nw->reply;
    v->flags |= (nw->flags & (NF_CT_SNAT | NF_CT_DNAT)) | (src_pending ? NF_CT_SRC_PENDING : 0);
  }
  bpf_map_update_elem(&nf_ct, &r->key, v, BPF_ANY);
  if (nw->active && !src_pending) nf_ct_by_source(r, nw);
  if (!nw->active || !(nw->flags & (NF_CT_SNAT | NF_CT_DNAT))) return 0;
  nf_ct_write_alias(r, nw, &nw->reply, 1);
  return 1;
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
