/* Fragments, where the kernel reassembles before conntrack (nf_defrag: any
 * policy that tracks connections): its rules and NAT see a datagram once,
 * whole. Here each fragment comes by itself; the first carries the transport
 * header and is judged, and its outcome is kept for the later ones (nf_frag),
 * which take it without being judged: passed (with the addresses NAT gave the
 * first) or dropped. A later fragment that comes before its first, or after
 * 30 s, is judged by itself (it has no ports and no connection). */
#ifndef NF2BPF_FRAG_H
#define NF2BPF_FRAG_H

#include "maps.h"
#include "parse.h"

/* The fragment's datagram identification: IPv4's, or IPv6's fragment
 * header's (read here, not while parsing: in a global function the walk over
 * the extension headers is verified once). */
static __always_inline __u32 nf_frag_id(struct __sk_buff* skb, __u8 family) {
  __u32 id = 0;
  if (family == 4) {
    __u16 id4 = 0;
    bpf_skb_load_bytes_relative(skb, 4, &id4, 2, BPF_HDR_START_NET);
    return id4;
  }
  __u8 h[8];
  if (bpf_skb_load_bytes_relative(skb, 6, h, 1, BPF_HDR_START_NET)) return 0;
  __u8 nh = h[0];
  __u32 off = 40;
#pragma unroll
  for (int i = 0; i < 8; i++) {
    if (bpf_skb_load_bytes_relative(skb, off, h, 8, BPF_HDR_START_NET)) return 0;
    if (nh == IPPROTO_FRAGMENT) {
      __builtin_memcpy(&id, h + 4, 4);
      return id;
    }
    if (nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_DSTOPTS)
      off += ((__u32)h[1] + 1) * 8;
    else if (nh == IPPROTO_AH)
      off += ((__u32)h[1] + 2) * 4;
    else
      return 0;
    nh = h[0];
  }
  return 0;
}

/* s->frag_key: the datagram of the fragment in s->p, in run `run`. */
static __always_inline void nf_frag_key_of(struct __sk_buff* skb, struct nf_scratch* s, __u32 run) {
  const struct nf_pkt* p = &s->p;
  struct nf_frag_key* k = &s->frag_key;
  __builtin_memset(k, 0, sizeof(*k));
  k->id = nf_frag_id(skb, p->family);
  k->family = p->family;
  k->proto = p->l4proto;
  k->run = (__u8)run;
  __builtin_memcpy(k->saddr, p->saddr, 16);
  __builtin_memcpy(k->daddr, p->daddr, 16);
}

/* One address of the IP header set to `to` (a later fragment: no transport
 * checksum to fix). */
static __always_inline int nf_frag_set_addr(struct __sk_buff* skb, __u32 l3, __u8 family, int dst, const __u8* from,
                                            const __u8* to) {
  if (family == 4) {
    __u32 o4, n4;
    __builtin_memcpy(&o4, from + 12, 4);
    __builtin_memcpy(&n4, to + 12, 4);
    if (o4 == n4) return 0;
    if (bpf_l3_csum_replace(skb, l3 + 10, o4, n4, 4)) return -1;
    return (int)bpf_skb_store_bytes(skb, l3 + (dst ? 16 : 12), &n4, 4, 0);
  }
  return (int)bpf_skb_store_bytes(skb, l3 + (dst ? 24 : 8), to, 16, 0);
}

/* Run `run`'s start (ct_needed: the policy tracks connections, so the
 * kernel would reassemble): a later fragment whose first one was judged
 * takes its outcome, TC_ACT_OK (its addresses set as the first's left) or
 * TC_ACT_SHOT. -1: judge the packet (not a fragment, no first one known; a
 * first fragment, whose outcome nf_frag_note then keeps: s->frag_first).
 * Global: verified once (and the main program does not branch on it). */
NF_SUBPROG int nf_frag_follow(struct __sk_buff* skb, struct nf_scratch* s, __u32 run, __u32 ct_needed) {
  if (!skb || !s) return -1;
  s->frag_first = 0;
  if (!ct_needed || !s->p.frag || (skb->cb[3] >> 16) == NF_CB_ANSWER) return -1;
  nf_frag_key_of(skb, s, run);
  if (s->p.frag == 1) {
    s->frag_first = 1;
    return -1;
  }
  struct nf_frag_val* v = bpf_map_lookup_elem(&nf_frag, &s->frag_key);
  if (!v || v->expires_ns <= bpf_ktime_get_ns()) return -1;
  if (!v->pass) return TC_ACT_SHOT;
  int l3 = nf_l3_offset(skb);
  if (l3 < 0) return TC_ACT_SHOT;
  const struct nf_frag_key* k = &s->frag_key;
  if (nf_frag_set_addr(skb, (__u32)l3, k->family, 0, k->saddr, v->saddr) ||
      nf_frag_set_addr(skb, (__u32)l3, k->family, 1, k->daddr, v->daddr))
    return TC_ACT_SHOT;
  return TC_ACT_OK;
}

/* A first fragment's outcome, for its later ones: passed (TC_ACT_OK) with
 * the addresses it leaves with, or not; nothing for other packets.
 * Global: verified once. */
NF_SUBPROG int nf_frag_note(struct nf_scratch* s, int pass) {
  if (!s || !s->frag_first) return 0;
  struct nf_frag_val* v = &s->frag_val;
  __builtin_memset(v, 0, sizeof(*v));
  v->expires_ns = bpf_ktime_get_ns() + NF_FRAG_TIMEOUT_NS;
  v->pass = pass != 0;
  __builtin_memcpy(v->saddr, s->p.saddr, 16);
  __builtin_memcpy(v->daddr, s->p.daddr, 16);
  bpf_map_update_elem(&nf_frag, &s->frag_key, v, BPF_ANY);
  return 0;
}

#endif
