/* Packet rewriting that decides nothing: -j TCPMSS and nft's `tcp option
 * maxseg size set`, the MSS option of a SYN lowered as xt_TCPMSS's
 * tcpmss_mangle_packet (and nft_exthdr's set) lower it, once the run accepts
 * the packet; -j DSCP, -j TOS and nft's `ip/ip6 dscp set`, whose byte the
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

/* Lowers the TCP MSS option to the smallest MSS this run's TCPMSS
 * statements asked for (s->tcpmss; s->tcpmss_pmtu: the smaller of the
 * forward and the reverse route's MTU less the IP and TCP headers, as
 * --clamp-mss-to-pmtu and `rt mtu` take it). Never raises it; fixes the TCP
 * checksum. A packet without the option is left as it is (the kernel adds
 * one to a SYN without data). Returns -1 when the kernel drops the packet
 * (a path MTU no larger than the headers), else 0. Global: verified once. */
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
  if (olen < 24) return 0; /* no room for the option */
  olen -= 20;
  if (olen > 40) return 0;
  if (bpf_skb_load_bytes_relative(skb, p->l4off + 20, s->opts, olen, BPF_HDR_START_NET)) return 0;
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
  return 0;
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
