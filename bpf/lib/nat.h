/* NAT with the kernel's semantics (nf_nat_core.c, nf_nat_proto.c; the facts
 * are in docs/nat-design.md). A connection's binding is chosen at the NAT
 * points its first packet passes — destination at PREROUTING/OUTPUT, source
 * at INPUT/POSTROUTING — from the first nat stage rule that binds, else the
 * identity ("null binding"); the reply tuple it leads to must be unique, so a
 * clashing port is searched for as get_unique_tuple does. Every later packet,
 * in both directions, is rewritten from the tuples stored with the
 * connection (ct.h). Mirrored line by line by verify/model.cpp. */
#ifndef NF2BPF_NAT_H
#define NF2BPF_NAT_H

#include <linux/pkt_cls.h>

#include "abi.h"
#include "ct.h"
#include "classify.h"
#include "ct_abi.h"
#include "maps.h"
#include "parse.h"

#define NF_NAT_MAX_ATTEMPTS 128 /* nf_nat_l4proto_unique_tuple */

/* Bob Jenkins' lookup3 as the kernel's jhash2() (include/linux/jhash.h). */
#define NF_ROL32(x, k) (((x) << (k)) | ((x) >> (32 - (k))))
static __always_inline __u32 nf_jhash2_4(const __u32* k, __u32 initval) {
  __u32 a, b, c;
  a = b = c = 0xdeadbeef + (4 << 2) + initval;
  a += k[0];
  b += k[1];
  c += k[2];
  a -= c, a ^= NF_ROL32(c, 4), c += b;
  b -= a, b ^= NF_ROL32(a, 6), a += c;
  c -= b, c ^= NF_ROL32(b, 8), b += a;
  a -= c, a ^= NF_ROL32(c, 16), c += b;
  b -= a, b ^= NF_ROL32(a, 19), a += c;
  c -= b, c ^= NF_ROL32(b, 4), b += a;
  a += k[3];
  c ^= b, c -= NF_ROL32(b, 14);
  a ^= c, a -= NF_ROL32(c, 11);
  b ^= a, b -= NF_ROL32(a, 25);
  c ^= b, c -= NF_ROL32(b, 16);
  a ^= c, a -= NF_ROL32(c, 4);
  b ^= a, b -= NF_ROL32(a, 14);
  c ^= b, c -= NF_ROL32(b, 24);
  return c;
}

/* The kernel's union nf_inet_addr words of an address: IPv4 in word 0. */
static __always_inline void nf_inet_words(__u32* w, const __u8* a, __u8 family) {
  if (family == 4) {
    __builtin_memcpy(&w[0], a + 12, 4);
    w[1] = w[2] = w[3] = 0;
    return;
  }
  __builtin_memcpy(w, a, 16);
}

/* find_best_ips_proto(): one address of the range, by a hash of the tuple's
 * addresses (--persistent: of the source only). Writes nw->addr (IR form).
 * Global: verified once, on its own stack frame. */
NF_SUBPROG int nf_nat_pick_addr(struct nf_nat_work* nw, __u32 family) {
  if (!nw) return 0;
  const struct nf2bpf_nat* n = &nw->range;
  const struct nf_ct_tuple* t = &nw->cand;
  __u8* out = nw->addr;
  __u32 *mn = nw->words[0], *mx = nw->words[1], *src = nw->words[2], *dst = nw->words[3], *res = nw->words[4];
  nf_inet_words(mn, n->addr_min, family);
  nf_inet_words(mx, n->addr_max, family);
  if (mn[0] == mx[0] && mn[1] == mx[1] && mn[2] == mx[2] && mn[3] == mx[3]) {
    __builtin_memcpy(out, n->addr_min, 16);
    return 0;
  }
  nf_inet_words(src, t->src, family);
  nf_inet_words(dst, t->dst, family);
  int persistent = n->flags & NF_NAT_F_PERSISTENT;
  int max = family == 4 ? 0 : 3;
  __u32 j = nf_jhash2_4(src, persistent ? 0 : dst[max & 3]);
  int full = 0;
#pragma unroll
  for (int i = 0; i < 4; i++) {
    res[i] = 0;
    if (i > max) continue;
    __u32 minip = full ? 0 : bpf_ntohl(mn[i]);
    __u32 dist = full ? ~0u : bpf_ntohl(mx[i]) - minip + 1;
    res[i] = bpf_htonl(minip + (__u32)(((__u64)j * dist) >> 32));
    if (res[i] != mx[i]) full = 1;
    if (!persistent) j ^= dst[i];
  }
  if (family == 4) {
    nf_v4_mapped(out, res[0]);
    return 0;
  }
  __builtin_memcpy(out, res, 16);
  return 0;
}

/* Is nw->cand (the packet's tuple after the binding) taken: is the reply
 * it implies already a tuple of another live connection (nf_nat_used_tuple)?
 * Global: verified once, on its own stack frame. */
NF_SUBPROG int nf_nat_used(struct nf_nat_work* nw, __u32 proto) {
  if (!nw) return 0;
  nf_tuple_invert(&nw->used, &nw->cand);
  nf_tuple_key(&nw->key, &nw->used, proto, nw->icmp_req, 1);
  struct nf_ct_val* v = bpf_map_lookup_elem(&nf_ct, &nw->key);
  if (!v || v->expires_ns <= nw->now) return 0;
  if (v->flags & NF_CT_ALIAS) {
    /* An alias names a live connection's tuple only while that lives. */
    struct nf_ct_tuple reply = v->reply;
    nf_tuple_key(&nw->key, &v->orig, proto, nw->icmp_req, 0);
    v = bpf_map_lookup_elem(&nf_ct, &nw->key);
    if (!v || v->expires_ns <= nw->now || (v->flags & NF_CT_ALIAS) || !nf_tuple_eq(&v->reply, &reply)) return 0;
  }
  /* Our own connection (a forwarded one is created before POSTROUTING). */
  if (nf_tuple_eq(&v->orig, &nw->orig)) return 0;
  return 1;
}

struct nf_port_search {
  __u32 which; /* scratch index */
  __u32 min, size, off;
  __u32 found;
};

static long nf_nat_try_port(__u32 i, struct nf_port_search* ps) {
  __u32 which = ps->which;
  struct nf_scratch* s = bpf_map_lookup_elem(&nf_scratch, &which);
  if (!s || !ps->size) return 1;
  __u16 port = (__u16)(ps->min + (ps->off + i) % ps->size);
  struct nf_nat_work* nw = &s->nat;
  if (nw->manip_dst)
    nw->cand.dport = port;
  else
    nw->cand.sport = port;
  if (nw->icmp_req) nw->cand.sport = nw->cand.dport = port;
  if (nf_nat_used(nw, s->p.l4proto)) return 0;
  ps->found = 1;
  return 1;
}

/* get_unique_tuple() for one manip type: turns nw->cand (the packet's tuple
 * so far) into the bound tuple. Returns 0, or -1 when no unique tuple is
 * left (the kernel then fails to confirm the connection: the packet drops). */
NF_SUBPROG int nf_nat_unique(struct nf_scratch* s, __u32 which, __u32 ports) {
  if (!s) return -1;
  struct nf_nat_work* nw = &s->nat;
  const struct nf2bpf_nat* n = nw->has_range ? &nw->range : 0;
  int dst = nw->manip_dst;
  int icmp = nw->icmp_req != 0;
  int specified = n && (n->flags & NF_NAT_F_PORTS);
  int random = n && (n->flags & (NF_NAT_F_RANDOM | NF_NAT_F_RANDOM_FULLY));
  __u16 cur = dst ? nw->cand.dport : nw->cand.sport;
  if (!ports) return 0;
  if (!random) {
    if (specified) {
      if (cur >= n->port_min && cur <= n->port_max && (n->port_min == n->port_max || !nf_nat_used(nw, s->p.l4proto)))
        return 0;
    } else if (!nf_nat_used(nw, s->p.l4proto)) {
      return 0;
    }
  }
  struct nf_port_search ps = {which, 0, 0, 0, 0};
  if (icmp) {
    ps.min = specified ? n->port_min : 0;
    ps.size = specified ? (__u32)n->port_max - n->port_min + 1 : 65536;
  } else if (!specified) {
    if (dst) return 0; /* a destination's port is only changed by a given range */
    if (cur < 1024) {
      ps.min = cur < 512 ? 1 : 600;
      ps.size = cur < 512 ? 511 : 1023 - 600 + 1;
    } else {
      ps.min = 1024;
      ps.size = 65535 - 1024 + 1;
    }
  } else {
    ps.min = n->port_min;
    ps.size = (__u32)n->port_max - n->port_min + 1;
  }
  ps.off = (random || !dst) ? (bpf_get_prandom_u32() & 0xffff) : 0;
  __u32 attempts = ps.size < NF_NAT_MAX_ATTEMPTS ? ps.size : NF_NAT_MAX_ATTEMPTS;
  bpf_loop(attempts, nf_nat_try_port, &ps, 0);
  return ps.found ? 0 : -1;
}

/* Whether tuple t's source lies in the binding rule's range
 * (nf_nat_inet_in_range, nf_nat_l4proto_in_range): `fixed` — MASQUERADE's
 * and NETMAP's one address, in nw->addr — or the rule's address range, and
 * the port (ICMP: identifier) range when it gives one. */
static __always_inline int nf_nat_in_range(struct nf_nat_work* nw, const struct nf_ct_tuple* t, __u32 fixed,
                                           __u32 ports) {
  const struct nf2bpf_nat* n = &nw->range;
  if (fixed) {
    if (!nf_addr_eq(t->src, nw->addr)) return 0;
  } else if (n->flags & NF_NAT_F_ADDR) {
    __builtin_memcpy(nw->words[0], n->addr_min, 16);
    __builtin_memcpy(nw->words[1], n->addr_max, 16);
    if (nf_addr_cmp(t->src, (const __u8*)nw->words[0]) < 0 || nf_addr_cmp(t->src, (const __u8*)nw->words[1]) > 0)
      return 0;
  }
  if ((n->flags & NF_NAT_F_PORTS) && ports && (t->sport < n->port_min || t->sport > n->port_max)) return 0;
  return 1;
}

/* get_unique_tuple's first step for a source binding by a rule (not
 * --random/--random-fully): the packet's tuple when its source is in the
 * range and the tuple is free; else the source mapping of the newest
 * connection from the same source (find_appropriate_src, through nf_nat_src)
 * when that is in the range and free. Returns 1 when nw->cand is the
 * binding; else nw->cand is as it was (nw->before). Global: verified once. */
NF_SUBPROG int nf_nat_src_keep(struct nf_scratch* s, __u32 fixed, __u32 ports) {
  if (!s) return 0;
  struct nf_nat_work* nw = &s->nat;
  __u32 proto = s->p.l4proto;
  nw->cand = nw->before;
  if (nf_nat_in_range(nw, &nw->cand, fixed, ports)) return !nf_nat_used(nw, proto);
  __builtin_memset(&nw->src_key, 0, sizeof(nw->src_key));
  nf_addr_copy(nw->src_key.addr, nw->before.src);
  nw->src_key.port = nw->before.sport;
  nw->src_key.proto = (__u8)proto;
  struct nf_ct_key* ck = bpf_map_lookup_elem(&nf_nat_src, &nw->src_key);
  if (!ck) return 0;
  nw->key = *ck;
  struct nf_ct_val* v = bpf_map_lookup_elem(&nf_ct, &nw->key);
  if (!v || v->expires_ns <= nw->now || (v->flags & NF_CT_ALIAS) || v->orig.sport != nw->before.sport ||
      !nf_addr_eq(v->orig.src, nw->before.src))
    return 0;
  nf_addr_copy(nw->cand.src, v->reply.dst);
  nw->cand.sport = v->reply.dport;
  if (nw->icmp_req) nw->cand.dport = nw->cand.sport;
  if (nf_nat_in_range(nw, &nw->cand, fixed, ports) && !nf_nat_used(nw, proto)) return 1;
  nw->cand = nw->before;
  return 0;
}

/* bpf_l4_csum_replace, or with NF_CSUM_SOFT its arithmetic for a checksum that is
 * complete whatever the skb says (inet_proto_csum_replace* with ip_summed
 * not CHECKSUM_PARTIAL): REJECT's answers, which the kernel builds as new
 * packets with their checksums computed, are built here in the rejected
 * packet's skb, which may be a CHECKSUM_PARTIAL one (from a local socket or a
 * veth); there bpf_l4_csum_replace would leave the field as it was. `flags`:
 * the field's size (2, 4; 0: `to` is a bpf_csum_diff sum) and
 * BPF_F_MARK_MANGLED_0 (UDP: 0, no checksum, stays 0; a 0 result is 0xffff),
 * and NF_CSUM_SOFT. Global: verified once. */
#define NF_CSUM_SOFT (1ull << 32) /* nf_csum_replace's `soft`, in its flags */
NF_SUBPROG int nf_csum_replace(struct __sk_buff* skb, __u32 off, __u32 from, __u32 to, __u64 flags) {
  if (!skb) return -1;
  int soft = (flags & NF_CSUM_SOFT) != 0;
  flags &= 0xffffffffull;
  if (!soft) return (int)bpf_l4_csum_replace(skb, off, from, to, flags);
  __u16 f;
  if (bpf_skb_load_bytes(skb, off, &f, 2)) return -1;
  int m0 = (flags & BPF_F_MARK_MANGLED_0) != 0;
  if (m0 && !f) return 0;
  __u64 sum = (__u16)~f;
  switch (flags & BPF_F_HDR_FIELD_MASK) {
    case 2: sum += (__u16)~from + (__u16)to; break;
    case 4: sum += (__u16)~from + (__u16) ~(from >> 16) + (to & 0xffff) + (to >> 16); break;
    default: sum += (to & 0xffff) + (to >> 16); break;
  }
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  f = (__u16)~sum;
  if (m0 && !f) f = 0xffff;
  return (int)bpf_skb_store_bytes(skb, off, &f, 2, 0);
}

/* Writes a new address and port into one side of the packet, with the
 * checksums the kernel's nf_nat_manip_pkt fixes: the IPv4 header's, and the
 * transport checksum (pseudo-header for TCP/UDP/UDP-Lite/DCCP/ICMPv6). SCTP's
 * CRC covers no addresses; its ports are never changed (see nf_nat_ports). */
static __always_inline int nf_nat_write(struct __sk_buff* skb, struct nf_pkt* p, struct nf_nat_work* nw, __u32 l3,
                                        int dst, const __u8* addr, __u16 port) {
  __u8* cur = dst ? p->daddr : p->saddr;
  __u32 csum = 0; /* transport checksum offset from l3, 0: none to fix */
  __u64 mangled0 = 0, csoft = nw->soft_csum ? NF_CSUM_SOFT : 0;
  int pseudo = 1;
  if (p->frag != 2 && p->l4off) {
    switch (p->l4proto) {
      case IPPROTO_TCP: csum = p->l4off + 16; break;
      case IPPROTO_UDP: csum = p->l4off + 6, mangled0 = BPF_F_MARK_MANGLED_0; break;
      case IPPROTO_UDPLITE:
      case IPPROTO_DCCP: csum = p->l4off + 6; break;
      case IPPROTO_ICMP: csum = p->l4off + 2, pseudo = 0; break;
      case IPPROTO_ICMPV6: csum = p->l4off + 2; break;
    }
  }
  if (!nf_addr_eq(cur, addr)) {
    if (p->family == 4) {
      __u32 o4, n4;
      __builtin_memcpy(&o4, cur + 12, 4);
      __builtin_memcpy(&n4, addr + 12, 4);
      if (bpf_l3_csum_replace(skb, l3 + 10, o4, n4, 4)) return -1;
      if (csum && pseudo && nf_csum_replace(skb, l3 + csum, o4, n4, BPF_F_PSEUDO_HDR | mangled0 | 4 | csoft)) return -1;
      if (bpf_skb_store_bytes(skb, l3 + (dst ? 16 : 12), &n4, 4, 0)) return -1;
    } else {
      __builtin_memcpy(nw->o6, cur, 16);
      __builtin_memcpy(nw->n6, addr, 16);
      __s64 d = bpf_csum_diff((__be32*)nw->o6, 16, (__be32*)nw->n6, 16, 0);
      if (csum && pseudo && nf_csum_replace(skb, l3 + csum, 0, d, BPF_F_PSEUDO_HDR | mangled0 | csoft)) return -1;
      if (bpf_skb_store_bytes(skb, l3 + (dst ? 24 : 8), nw->n6, 16, 0)) return -1;
    }
    nf_addr_copy(cur, addr);
  }
  if (p->has_ports && p->l4proto != IPPROTO_SCTP) {
    __u16 old = dst ? p->dport : p->sport;
    if (old != port) {
      __be16 ob = bpf_htons(old), nb = bpf_htons(port);
      if (csum && nf_csum_replace(skb, l3 + csum, ob, nb, mangled0 | 2 | csoft)) return -1;
      if (bpf_skb_store_bytes(skb, l3 + p->l4off + (dst ? 2 : 0), &nb, 2, 0)) return -1;
      if (dst)
        p->dport = port;
      else
        p->sport = port;
    }
  } else if (p->has_icmp && !p->icmp_err && p->icmp_id != port) {
    __be16 ob = bpf_htons(p->icmp_id), nb = bpf_htons(port);
    if (csum && nf_csum_replace(skb, l3 + csum, ob, nb, 2 | csoft)) return -1;
    if (bpf_skb_store_bytes(skb, l3 + p->l4off + 4, &nb, 2, 0)) return -1;
    p->icmp_id = port;
  }
  return 0;
}

/* A checksum field at `off` changes as a field it covers goes from `from`
 * to `to` (`flags`: nf_csum_replace's); the ICMP checksum at `ck`,
 * which covers the field, follows it. */
static __always_inline int nf_icmp_inner_csum(struct __sk_buff* skb, __u32 ck, __u32 off, __u32 from, __u32 to,
                                              __u64 flags, __u64 csoft) {
  __u16 before, after;
  if (bpf_skb_load_bytes(skb, off, &before, 2)) return -1;
  if (nf_csum_replace(skb, off, from, to, flags | csoft)) return -1;
  if (bpf_skb_load_bytes(skb, off, &after, 2)) return -1;
  return nf_csum_replace(skb, ck, before, after, 2 | csoft) ? -1 : 0;
}

/* The quoted packet of an ICMP error about a NATed connection
 * (nf_nat_icmp_reply_translation): it is a packet of the other direction,
 * so it takes the other manip type, with the tuple of its own direction —
 * the transport part first (ports or the echo identifier, and the quoted
 * transport checksum where the kernel fixes it: TCP only with its whole
 * header quoted, UDP only when it has one), then the address (and the quoted
 * IPv4 header checksum). Every changed byte is inside the ICMP message, so
 * its checksum follows each change (the kernel recomputes it; the same
 * result for a message that had a right one). The caller rewrites the outer
 * header as a packet of the error's direction. */
static __always_inline int nf_nat_icmp_inner(struct __sk_buff* skb, struct nf_pkt* p, struct nf_nat_work* nw,
                                             __u32 l3) {
  int dst = !nw->manip_dst;
  const struct nf_ct_tuple* q = nw->dir == 1 ? &nw->orig : &nw->reply;
  __u32 ck = l3 + p->l4off + 2, il3 = l3 + p->l4off + 8, il4 = l3 + p->in_l4off;
  __u32 end = l3 + p->length, quoted = end > il4 ? end - il4 : 0;
  __u32 icsum = 0; /* the quoted transport checksum, 0: none the kernel fixes */
  __u64 m0 = 0;
  int pseudo = 1;
  __u64 csoft = nw->soft_csum ? NF_CSUM_SOFT : 0;
  switch (p->in_proto) {
    case IPPROTO_TCP:
      if (quoted >= 20) icsum = il4 + 16;
      break;
    case IPPROTO_UDP: icsum = il4 + 6, m0 = BPF_F_MARK_MANGLED_0; break;
    case IPPROTO_UDPLITE: icsum = il4 + 6; break;
    case IPPROTO_DCCP:
      if (quoted >= 12) icsum = il4 + 6;
      break;
    case IPPROTO_ICMP: icsum = il4 + 2, pseudo = 0; break;
    case IPPROTO_ICMPV6: icsum = il4 + 2; break;
  }
  if (nf_has_ports(p->in_proto) && p->in_proto != IPPROTO_SCTP) {
    __u16 old = dst ? p->in_dport : p->in_sport, port = dst ? q->dport : q->sport;
    if (old != port) {
      __be16 ob = bpf_htons(old), nb = bpf_htons(port);
      if (icsum && nf_icmp_inner_csum(skb, ck, icsum, ob, nb, m0 | 2, csoft)) return -1;
      if (nf_csum_replace(skb, ck, ob, nb, 2 | csoft)) return -1;
      if (bpf_skb_store_bytes(skb, il4 + (dst ? 2 : 0), &nb, 2, 0)) return -1;
      if (dst)
        p->in_dport = port;
      else
        p->in_sport = port;
    }
  } else if ((p->in_proto == IPPROTO_ICMP || p->in_proto == IPPROTO_ICMPV6) && p->in_sport != q->sport) {
    /* A quoted echo: its identifier, whichever the manip type. */
    __be16 ob = bpf_htons(p->in_sport), nb = bpf_htons(q->sport);
    if (nf_icmp_inner_csum(skb, ck, icsum, ob, nb, 2, csoft)) return -1;
    if (nf_csum_replace(skb, ck, ob, nb, 2 | csoft)) return -1;
    if (bpf_skb_store_bytes(skb, il4 + 4, &nb, 2, 0)) return -1;
    p->in_sport = p->in_dport = q->sport;
  }
  __u8* cur = dst ? p->in_daddr : p->in_saddr;
  const __u8* addr = dst ? q->dst : q->src;
  if (nf_addr_eq(cur, addr)) return 0;
  if (p->family == 4) {
    __u32 o4, n4;
    __builtin_memcpy(&o4, cur + 12, 4);
    __builtin_memcpy(&n4, addr + 12, 4);
    if (icsum && pseudo && nf_icmp_inner_csum(skb, ck, icsum, o4, n4, m0 | 4, csoft)) return -1;
    __u16 before, after;
    if (bpf_skb_load_bytes(skb, il3 + 10, &before, 2)) return -1;
    if (bpf_l3_csum_replace(skb, il3 + 10, o4, n4, 4)) return -1;
    if (bpf_skb_load_bytes(skb, il3 + 10, &after, 2)) return -1;
    if (nf_csum_replace(skb, ck, before, after, 2 | csoft)) return -1;
    if (nf_csum_replace(skb, ck, o4, n4, 4 | csoft)) return -1;
    if (bpf_skb_store_bytes(skb, il3 + (dst ? 16 : 12), &n4, 4, 0)) return -1;
  } else {
    __builtin_memcpy(nw->o6, cur, 16);
    __builtin_memcpy(nw->n6, addr, 16);
    __s64 d = bpf_csum_diff((__be32*)nw->o6, 16, (__be32*)nw->n6, 16, 0);
    if (icsum && pseudo && nf_icmp_inner_csum(skb, ck, icsum, 0, d, m0, csoft)) return -1;
    if (nf_csum_replace(skb, ck, 0, d, csoft)) return -1;
    if (bpf_skb_store_bytes(skb, il3 + (dst ? 24 : 8), nw->n6, 16, 0)) return -1;
  }
  nf_addr_copy(cur, addr);
  return 0;
}

/* Where the network header starts in the skb's data: after the Ethernet
 * header, or at 0 on devices without one. */
static __always_inline int nf_l3_offset(struct __sk_buff* skb) {
  __u64 a, b;
  if (bpf_skb_load_bytes_relative(skb, 0, &a, 8, BPF_HDR_START_NET)) return -1;
  if (bpf_skb_load_bytes(skb, 14, &b, 8) == 0 && a == b) return 14;
  if (bpf_skb_load_bytes(skb, 0, &b, 8) == 0 && a == b) return 0;
  return -1;
}

/* MASQUERADE's address: the source the kernel picks for the route out of
 * `oif` to `daddr` (inet_select_addr / ipv6_dev_get_saddr). */
static __always_inline int nf_nat_masq_addr(struct __sk_buff* skb, const struct nf_pkt* p, struct bpf_fib_lookup* f,
                                            const __u8* daddr, __u32 oif, __u8* out) {
  /* Out of lo (to this host itself): IPv6 source address selection picks
   * the destination (RFC 6724 rule 1); IPv4's inet_select_addr skips lo's
   * host-scope 127/8, as it skips a device without an address (below). */
  int lo = oif == 1;
  if (lo && p->family != 4) {
    __builtin_memcpy(out, daddr, 16);
    return 0;
  }
  if (!lo) {
    __builtin_memset(f, 0, sizeof(*f));
    f->ifindex = oif;
    f->l4_protocol = p->l4proto;
    if (p->family == 4) {
      f->family = 2;
      __builtin_memcpy(&f->ipv4_dst, daddr + 12, 4);
    } else {
      f->family = 10;
      __builtin_memcpy(f->ipv6_dst, daddr, 16);
    }
    long rc =
        bpf_fib_lookup(skb, f, sizeof(*f), BPF_FIB_LOOKUP_OUTPUT | BPF_FIB_LOOKUP_SRC | BPF_FIB_LOOKUP_SKIP_NEIGH);
    if ((rc == BPF_FIB_LKUP_RET_SUCCESS || rc == BPF_FIB_LKUP_RET_NO_NEIGH) && (p->family != 4 || f->ipv4_src)) {
      if (p->family == 4)
        nf_v4_mapped(out, f->ipv4_src);
      else
        __builtin_memcpy(out, f->ipv6_src, 16);
      return 0;
    }
  }
  /* No route to choose by (none, or the device does not forward, where
   * bpf_fib_lookup answers nothing): the device's first address; lo, or a
   * device without one: IPv4's inet_select_addr takes the first address of
   * the first device that has one (the loader keeps it under ifindex 0);
   * none: the kernel drops the packet. */
  struct nf_ifaddr_key k = {lo ? 0 : oif, p->family};
  __u8* a = bpf_map_lookup_elem(&nf_ifaddr, &k);
  if (!a && p->family == 4 && k.ifindex) {
    k.ifindex = 0;
    a = bpf_map_lookup_elem(&nf_ifaddr, &k);
  }
  if (!a) return -1;
  __builtin_memcpy(out, a, 16);
  return 0;
}

/* REDIRECT's address: at PREROUTING the input interface's first address
 * (the loader keeps them in nf_ifaddr), at OUTPUT the loopback address. */
static __always_inline int nf_nat_redirect_addr(const struct nf_pkt* p, int output, __u8* out) {
  if (output) {
    __builtin_memset(out, 0, 16);
    if (p->family == 4) {
      nf_v4_mapped(out, bpf_htonl(0x7f000001));
    } else {
      out[15] = 1;
    }
    return 0;
  }
  struct nf_ifaddr_key k = {p->iif, p->family};
  __u8* a = bpf_map_lookup_elem(&nf_ifaddr, &k);
  if (!a) return -1; /* no address: nf_nat_redirect drops the packet */
  __builtin_memcpy(out, a, 16);
  return 0;
}

/* NF_NAT_SERVICE: draws one of the service's backends (uniformly, as
 * kube-proxy's chain of 1/n, 1/(n-1) ... statistic draws picks one) and
 * turns the range into a DNAT to it; marks a hairpin client (the backend
 * itself) as the endpoint chain's mark rule did. Counts the connection on
 * the backend. Returns 0, or -1 (drop) when the service is gone. */
static __always_inline int nf_svc_pick(struct nf_scratch* s, __u32 live) {
  struct nf_nat_work* nw = &s->nat;
  struct nf2bpf_svc_be_key* bk = &nw->svc_be; /* scratch: the BPF stack is full here */
  bk->sid = NF_SVC_SID(live, nw->range.service);
  struct nf2bpf_svc_val* sv = bpf_map_lookup_elem(&nf_svc, &bk->sid);
  if (!sv || !sv->count) return -1;
  __u32 count = sv->count, i = 0;
  if (count > 1) i = (__u32)(((__u64)bpf_get_prandom_u32() * count) >> 32);
  bk->index = ((sv->slot & 1) << 31) | i;
  struct nf2bpf_svc_be_val* b = bpf_map_lookup_elem(&nf_svc_be, bk);
  if (!b) return -1;
  struct nf2bpf_nat* n = &nw->range;
  n->kind = NF_NAT_DNAT;
  n->flags = NF_NAT_F_ADDR | NF_NAT_F_PORTS;
  __builtin_memcpy(n->addr_min, b->addr, 16);
  __builtin_memcpy(n->addr_max, b->addr, 16);
  n->port_min = n->port_max = b->port;
  if (sv->mark_mask && nf_addr_eq(s->p.saddr, b->addr)) s->p.mark = (s->p.mark & ~sv->mark_mask) ^ sv->mark_value;
  struct nf2bpf_svc_conn_key* ck = &nw->svc_conn;
  ck->sid = bk->sid;
  ck->port = b->port;
  ck->pad = 0;
  __builtin_memcpy(ck->addr, b->addr, 16);
  struct nf2bpf_counter* c = bpf_map_lookup_elem(&nf_svc_conns, ck);
  if (c) {
    c->packets++;
    c->bytes += s->p.len;
  } else {
    nw->svc_one.packets = 1;
    nw->svc_one.bytes = s->p.len;
    bpf_map_update_elem(&nf_svc_conns, ck, &nw->svc_one, BPF_NOEXIST);
  }
  return 0;
}

/* Binds a new connection at one NAT point, with the range of the nat stage
 * rule that bound it (nw->rule), else the null binding. Updates nw->reply
 * and flags. Returns 0 or -1 (drop). Global: verified once. */
NF_SUBPROG int nf_nat_bind(struct __sk_buff* skb, struct nf_scratch* s, __u32 which, __u32 live, __u32 output) {
  if (!skb || !s) return -1;
  live &= 1;
  struct nf_nat_work* nw = &s->nat;
  struct nf_pkt* p = &s->p;
  struct nf2bpf_nat* n = 0;
  nw->has_range = 0;
  if (nw->rule != NF_NONE) {
    void* rm = nf_inner(&nf_rules, live);
    void* nm = nf_inner(&nf_nat, live);
    __u32 ri = nw->rule;
    struct nf2bpf_rule* r = rm ? bpf_map_lookup_elem(rm, &ri) : 0;
    __u32 ni = r ? r->nat : 0;
    struct nf2bpf_nat* m = nm && r ? bpf_map_lookup_elem(nm, &ni) : 0;
    if (!m) return -1;
    nw->range = *m;
    nw->has_range = 1;
    n = &nw->range;
    if (n->kind == NF_NAT_SERVICE && nf_svc_pick(s, live)) return -1;
  }
  int dst = nw->manip_dst;
  nf_tuple_invert(&nw->cand, &nw->reply); /* the packet as it leaves after the bindings so far */
  nw->before = nw->cand;
  __u8* addr = nw->addr;
  int have = 0;
  if (n && n->kind == NF_NAT_MASQUERADE) {
    if (nf_nat_masq_addr(skb, p, &nw->fib, nw->cand.dst, p->oif, addr)) return -1;
    have = 1;
  } else if (n && n->kind == NF_NAT_REDIRECT) {
    if (nf_nat_redirect_addr(p, output, addr)) return -1;
    have = 1;
  } else if (n && n->kind == NF_NAT_NETMAP) {
    /* netmap_tg: the prefix's network bits replace the packet's, its host
     * bits stay (per 32-bit word, as netmap_tg6). */
    __u32 *mn = nw->words[0], *mx = nw->words[1], *cur = nw->words[2], *res = nw->words[4];
    __builtin_memcpy(mn, n->addr_min, 16);
    __builtin_memcpy(mx, n->addr_max, 16);
    __builtin_memcpy(cur, dst ? nw->cand.dst : nw->cand.src, 16);
#pragma unroll
    for (int i = 0; i < 4; i++) {
      __u32 m = ~(mn[i] ^ mx[i]);
      res[i] = (cur[i] & ~m) | (mn[i] & m);
    }
    __builtin_memcpy(addr, res, 16);
    have = 1;
  } else if (n && (n->flags & NF_NAT_F_ADDR)) {
    nf_nat_pick_addr(nw, p->family);
    have = 1;
  }
  int kept = !dst && n && !(n->flags & (NF_NAT_F_RANDOM | NF_NAT_F_RANDOM_FULLY)) &&
             nf_nat_src_keep(s, n->kind == NF_NAT_MASQUERADE || n->kind == NF_NAT_NETMAP, p->has_ports || nw->icmp_req);
  if (!kept) {
    if (have) nf_addr_copy(dst ? nw->cand.dst : nw->cand.src, addr);
    int ports = (p->has_ports && p->l4proto != IPPROTO_SCTP) || nw->icmp_req;
    if (nf_nat_unique(s, which, ports)) return -1;
  }
  if (!nf_tuple_eq(&nw->cand, &nw->before)) nw->flags |= dst ? NF_CT_DNAT : NF_CT_SNAT;
  nf_tuple_invert(&nw->reply, &nw->cand);
  return 0;
}

/* The rewrite at one NAT point for a packet of a NATed (or just bound)
 * connection (nf_nat_packet): the original direction takes the reply's
 * inverse, the reply direction the original's; a destination manip only for
 * the status bit it answers to. Returns 1 when it rewrote the packet, 0 when
 * there was nothing to do, -1 on failure. */
NF_SUBPROG int nf_nat_apply(struct __sk_buff* skb, struct nf_scratch* s) {
  if (!skb || !s) return -1;
  struct nf_nat_work* nw = &s->nat;
  int dst = nw->manip_dst;
  struct nf_pkt* p = &s->p;
  /* An ICMP redirect about a NATed connection would teach the sender a path
   * around the translation: nf_nat_icmp_reply_translation drops it. */
  if (p->icmp_err && p->family == 4 && p->icmp_type == 5 && (nw->flags & (NF_CT_SNAT | NF_CT_DNAT))) return -1;
  __u8 bit = (dst ^ (nw->dir == 1)) ? NF_CT_DNAT : NF_CT_SNAT;
  if (!(nw->flags & bit)) return 0;
  /* The packet's side of the inverse of the other direction's tuple. */
  const struct nf_ct_tuple* other = nw->dir == 1 ? &nw->orig : &nw->reply;
  int l3 = nf_l3_offset(skb);
  if (l3 < 0) return -1;
  if (p->icmp_err && nf_nat_icmp_inner(skb, p, nw, (__u32)l3)) return -1;
  if (nf_nat_write(skb, p, nw, (__u32)l3, dst, dst ? other->src : other->dst, dst ? other->sport : other->dport))
    return -1;
  nw->changed |= dst ? 1 : 2;
  return 1;
}

/* After conntrack: whether NAT applies to the packet's connection, and what
 * is left to bind. `forwarded_egress`: the egress run of a forwarded packet,
 * whose connection ingress created before its source NAT point. */
static __always_inline void nf_nat_begin(struct nf_scratch* s, const struct nf_ct_res* ct, __u64 now, __u32 nat_fams,
                                         int looped, int forwarded_egress) {
  struct nf_nat_work* nw = &s->nat;
  struct nf_pkt* p = &s->p;
  __u32 fam = p->family == 4 ? NF_FAM_V4 : NF_FAM_V6;
  if (!(nat_fams & fam) || looped) return;
  if (p->icmp_err) {
    /* An error about a connection (RELATED) is translated as a packet of
     * the direction it travels, at the NAT points it passes; it binds
     * nothing. */
    if (ct->state != NF_CT_STATE_RELATED) return;
    nw->active = 1;
    nw->dir = ct->dir;
    nw->now = now;
    nw->flags &= NF_CT_SNAT | NF_CT_DNAT;
    return;
  }
  if (!ct->track) return;
  nw->active = 1;
  nw->dir = ct->dir;
  nw->now = now;
  nw->icmp_req = p->has_icmp ? ct->key.pad[0] : 0;
  if (!ct->exists) {
    nw->binding = 1;
    nw->flags = 0;
    nf_pkt_tuple(p, &nw->orig);
    nf_tuple_invert(&nw->reply, &nw->orig);
    return;
  }
  if (forwarded_egress && (nw->flags & NF_CT_SRC_PENDING)) {
    nw->binding = 1;
    nw->passed = 1; /* its destination was bound at ingress */
    nw->old_reply = nw->reply;
    nw->had_alias = (nw->flags & (NF_CT_SNAT | NF_CT_DNAT)) != 0;
  }
  nw->flags &= NF_CT_SNAT | NF_CT_DNAT;
}

/* The NAT point of `hook` (called from nf_run_hook): binds a new connection
 * for the manip type of the hook — with the range of the nat stage rule that
 * bound it, else the null binding — then rewrites the packet, and classifies
 * it again when its header changed. */
NF_SUBPROG int nf_nat_point(struct __sk_buff* skb, struct nf_scratch* s, __u32 which, __u32 live, __u32 hook) {
  if (!skb || !s) return 0;
  live &= 1;
  struct nf_nat_work* nw = &s->nat;
  int dst = hook == NF_HOOK_PREROUTING || hook == NF_HOOK_OUTPUT;
  if (!dst && hook != NF_HOOK_INPUT && hook != NF_HOOK_POSTROUTING) return 0;
  __u8 bit = dst ? 1 : 2;
  if (nw->passed & bit) return 0;
  nw->passed |= bit;
  nw->manip_dst = dst;
  if (nw->binding && nf_nat_bind(skb, s, which, live, hook == NF_HOOK_OUTPUT)) return -1;
  int rc = nf_nat_apply(skb, s);
  if (rc < 0) return -1;
  if (rc > 0) {
    struct nf2bpf_gen_cfg* cfg = bpf_map_lookup_elem(&nf_cfg, &live);
    if (cfg) nf_classify(s, live, cfg->slots_used, s->ctstate, s->ctdir);
  }
  return 0;
}

#endif
