/* Packet rewriting that decides nothing: -j TCPMSS and nft's `tcp option
 * maxseg size set`, the MSS option of a SYN lowered as xt_TCPMSS's
 * tcpmss_mangle_packet (and nft_exthdr's set) lower it, once the run accepts
 * or rejects the packet; -j DSCP, -j TOS and nft's `ip/ip6 dscp set`, whose byte the
 * statement sets at once in p.tos (later rules see it) and nf_store_tos
 * writes when the run accepts or rejects the packet. */
#ifndef NF2BPF_MANGLE_H
#define NF2BPF_MANGLE_H

/* bpf_fib_lookup without the neighbour: its MTU even before ARP/ND. */
#define NF_FIB_LOOKUP_SKIP_NEIGH (1U << 2)

/* The MTU of the route from the ingress device for the packet's flow
 * (`reverse`: back to its sender), as bpf_fib_lookup gives it (the route's
 * mtu or its device's; a nonzero tot_len asks for it); 0 when there is no
 * route. (nf_fib_query_dir: nf2bpf.bpf.c, which includes this file.) */
static __always_inline __u32 nf_route_mtu(struct __sk_buff* skb, struct bpf_fib_lookup* f, const struct nf_pkt* p,
                                          int reverse) {
  nf_fib_query_dir(f, p, p->iif, reverse);
  long rc = bpf_fib_lookup(skb, f, sizeof(*f), NF_FIB_LOOKUP_SKIP_NEIGH);
  return rc == BPF_FIB_LKUP_RET_SUCCESS || rc == BPF_FIB_LKUP_RET_FRAG_NEEDED ? f->mtu_result : 0;
}

/* The MSS option a SYN without one gets (tcpmss_mangle_packet): only
 * where nothing follows the header and the header has room (doff < 15); at
 * most the default MSS the sender must then assume (RFC 1122's 536; 1220 for
 * IPv6), put first, the options behind it moved up; the packet four bytes
 * longer. The checksums change as the kernel changes them (the TCP length in
 * the pseudo-header, the option word, the data offset word; the IPv4 header's
 * total length). Returns -1 when the packet cannot be grown, else 0. */
static __always_inline int nf_tcpmss_add(struct __sk_buff* skb, struct nf_scratch* s, __u32 newmss, __u32 olen) {
  struct nf_pkt* p = &s->p;
  __u32 seglen = (__u32)p->length - p->l4off;
  if (seglen != 20 + olen || olen >= 40) return 0; /* data after the header, or no room */
  __u32 dflt = p->family == 4 ? 536 : 1220;
  if (newmss > dflt) newmss = dflt;
  int l3 = nf_l3_offset(skb);
  if (l3 < 0) return 0;
  __u32 l4 = (__u32)l3 + p->l4off;
  __u8 word[2];
  if (bpf_skb_load_bytes(skb, l4 + 12, word, 2)) return 0;
  if (bpf_skb_change_tail(skb, l4 + seglen + 4, 0)) return -1;
  __u64 n = olen & 63;
  asm volatile("" : "+r"(n));
  if (n && n <= 40 && bpf_skb_store_bytes(skb, l4 + 24, s->opts, n, 0)) return -1;
  __u8 opt[4] = {2, 4, (__u8)(newmss >> 8), (__u8)newmss};
  if (bpf_skb_store_bytes(skb, l4 + 20, opt, 4, 0)) return -1;
  __u32 csum = l4 + 16;
  bpf_l4_csum_replace(skb, csum, bpf_htons((__u16)seglen), bpf_htons((__u16)(seglen + 4)), BPF_F_PSEUDO_HDR | 2);
  __u32 optword;
  __builtin_memcpy(&optword, opt, 4);
  bpf_l4_csum_replace(skb, csum, 0, optword, 4);
  __u16 from, to;
  __builtin_memcpy(&from, word, 2);
  word[0] += 0x10; /* doff + 1 */
  __builtin_memcpy(&to, word, 2);
  if (bpf_skb_store_bytes(skb, l4 + 12, word, 2, 0)) return -1;
  bpf_l4_csum_replace(skb, csum, from, to, 2);
  __be16 oldlen = bpf_htons(p->length), newlen = bpf_htons(p->length + 4);
  p->length += 4; /* (REJECT quotes it) */
  if (p->family == 4) {
    bpf_l3_csum_replace(skb, l3 + 10, oldlen, newlen, 2);
    return bpf_skb_store_bytes(skb, l3 + 2, &newlen, 2, 0) ? -1 : 0;
  }
  newlen = bpf_htons(p->length - 40);
  return bpf_skb_store_bytes(skb, l3 + 4, &newlen, 2, 0) ? -1 : 0;
}

/* Lowers the TCP MSS option to the smallest MSS this run's TCPMSS
 * statements asked for (s->tcpmss; s->tcpmss_pmtu: the smaller of the
 * forward and the reverse route's MTU less the IP and TCP headers, as
 * --clamp-mss-to-pmtu and `rt mtu` take it). Never raises it; fixes the TCP
 * checksum. A SYN without the option gets one where an iptables TCPMSS
 * statement asked (nf_tcpmss_add; nft's never add one). Returns -1
 * when the kernel drops the packet (a path MTU no larger than the headers,
 * a packet it cannot grow), else 0. Global: verified once. */
NF_SUBPROG int nf_tcpmss(struct __sk_buff* skb, struct nf_scratch* s) {
  if (!skb || !s) return 0;
  struct nf_pkt* p = &s->p;
  if (!p->has_tcp || p->frag == 2 || !p->l4off) return 0;
  __u32 newmss = s->tcpmss ? s->tcpmss : 0xffff;
  if (s->tcpmss_pmtu) {
    __u32 minlen = p->family == 4 ? 40 : 60;
    __u32 mtu = nf_route_mtu(skb, &s->nat.fib, p, 0);
    __u32 back = nf_route_mtu(skb, &s->nat.fib, p, 1); /* tcpmss_reverse_mtu */
    if (back && (!mtu || back < mtu)) mtu = back;
    if (mtu <= minlen) return -1;
    if (mtu - minlen < newmss) newmss = mtu - minlen;
  }
  __u8 b = 0;
  if (bpf_skb_load_bytes_relative(skb, p->l4off + 12, &b, 1, BPF_HDR_START_NET)) return 0;
  __u32 olen = (__u32)(b >> 4) * 4;
  if (olen < 20) return -1; /* a header shorter than its fixed part */
  olen -= 20;
  if (olen > 40) return 0;
  if ((__u32)p->length - p->l4off < 20 + olen) return -1; /* shorter than its header */
  __u64 n = olen;
  asm volatile("" : "+r"(n));
  if (n && n <= 40 && bpf_skb_load_bytes_relative(skb, p->l4off + 20, s->opts, n, BPF_HDR_START_NET)) return 0;
  __u32 i = 0;
  for (int k = 0; k < 40; k++) {
    if (i + 4 > olen || i > 36) break;
    __u32 j = i;
    asm volatile("%0 &= 31" : "+r"(j)); /* a bound the verifier sees: i <= 36 after the test above */
    __u8* o = s->opts + j + (i & 32);
    __u8 kind = o[0], len = o[1];
    if (kind == 2 && len == 4) { /* TCPOPT_MSS, TCPOLEN_MSS */
      __u16 oldmss = (__u16)o[2] << 8 | o[3];
      if (oldmss <= newmss) return 0;
      __be16 from = bpf_htons(oldmss), to = bpf_htons((__u16)newmss);
      int l3 = nf_l3_offset(skb);
      if (l3 < 0) return 0;
      if (bpf_skb_store_bytes(skb, l3 + p->l4off + 20 + i + 2, &to, 2, 0)) return 0;
      bpf_l4_csum_replace(skb, l3 + p->l4off + 16, from, to, 2);
      return 0;
    }
    i += kind <= 1 || len == 0 ? 1 : len; /* xt_TCPMSS's optlen() */
  }
  return s->tcpmss_insert ? nf_tcpmss_add(skb, s, newmss, olen) : 0;
}

/* xt_DSCP's dscp_tg / tos_tg (ipv4_change_dsfield, ipv6_change_dsfield) and
 * nft's dscp payload write: the TOS / traffic class byte the statements
 * left in p.tos, written into the packet (IPv4 with its header checksum;
 * IPv6's byte straddles the version and the flow label). Global: verified
 * once. */
NF_SUBPROG int nf_store_tos(struct __sk_buff* skb, struct nf_scratch* s) {
  if (!skb || !s) return -1;
  int l3 = nf_l3_offset(skb);
  if (l3 < 0) return -1;
  __u8 old[2], now[2];
  if (bpf_skb_load_bytes(skb, l3, old, 2)) return -1;
  __u8 tos = s->p.tos;
  if (s->p.family == 4) {
    if (old[1] == tos) return 0;
    now[0] = old[0];
    now[1] = tos;
    __u16 from, to;
    __builtin_memcpy(&from, old, 2);
    __builtin_memcpy(&to, now, 2);
    if (bpf_l3_csum_replace(skb, l3 + 10, from, to, 2)) return -1;
  } else {
    now[0] = (old[0] & 0xf0) | (tos >> 4);
    now[1] = (old[1] & 0x0f) | (__u8)(tos << 4);
  }
  return bpf_skb_store_bytes(skb, l3, now, 2, 0) ? -1 : 0;
}

#endif
