/* Transport checksums: the sums REJECT's answers are built with, and the
 * kernel's own verification of a received packet's checksum, which decides
 * two things the rules see:
 *
 *   conntrack  at PREROUTING (nf_conntrack_checksum=1, the default) a TCP,
 *              UDP (with a checksum), ICMP or ICMPv6 packet whose checksum
 *              is wrong is INVALID: no connection is found, made or
 *              updated (tcp_error, udp_error, icmp_error, icmpv6_error);
 *   REJECT     answers nothing for a packet whose checksum is wrong
 *              (nf_send_unreach, nf_send_reset and their IPv6 twins), for
 *              every protocol with a one's complement checksum over its
 *              whole payload: all but UDP without one, GRE, AH, ESP, SCTP,
 *              UDP-Lite and DCCP (nf_reject_verify_csum).
 *
 * Both verify only what the skb does not already vouch for
 * (skb_csum_unnecessary: a device that checked it, a local sender's
 * CHECKSUM_PARTIAL, an earlier verification); nf_ip_checksum and
 * nf_ip6_checksum then sum the payload, with the pseudo-header for TCP and
 * UDP (IPv4) or always (IPv6). A CHECKSUM_COMPLETE skb (the device summed
 * it) comes out the same by its sum as by ours, except at OUTPUT, where the
 * kernel does not look at it: answered. (At FORWARD there is none:
 * ip_forward's skb_forward_csum made it CHECKSUM_NONE; a checksum conntrack
 * verified stays vouched for by csum_valid.)
 *
 * Not verified here (taken as right): fragments (the kernel checks the
 * reassembled datagram), packets longer than NF_CSUM_MAX (a checksum only
 * software could check that long is one no device offloaded: a 64 KB
 * datagram over a device without offloads), SCTP's CRC32c and DCCP's and
 * UDP-Lite's partial coverage in conntrack. */
#ifndef NF2BPF_CSUM_H
#define NF2BPF_CSUM_H

#define NF_ETH_HLEN 14

/* The one's complement sum of len bytes of the packet from off (from the
 * skb's data start), in 64-byte steps (bpf_csum_diff's unit here; a short
 * last step is padded with zeros, as the checksum pads an odd length), read
 * through s->opts (TCP options, read only for an accepted packet's TCPMSS;
 * the stack has no room). Global: verified once. */
NF_SUBPROG __u32 nf_csum_skb(struct __sk_buff* skb, struct nf_scratch* s, __u32 off, __u32 len, __u32 sum) {
  if (!skb || !s) return sum;
  __u8* buf = s->opts;
  __u32 at = 0;
  for (int i = 0; i < NF_CSUM_STEPS && at + 64 <= len; i++, at += 64) {
    if (bpf_skb_load_bytes(skb, off + at, buf, 64)) return sum;
    sum = (__u32)bpf_csum_diff(0, 0, (__be32*)buf, 64, sum);
  }
  __u64 n = (len - at) & 63;
  asm volatile("" : "+r"(n)); /* the verifier sees the masked length */
  if (n == 0 || n > 63) return sum;
  __builtin_memset(buf, 0, 64);
  if (bpf_skb_load_bytes(skb, off + at, buf, n)) return sum;
  return (__u32)bpf_csum_diff(0, 0, (__be32*)buf, 64, sum);
}

static __always_inline __u16 nf_csum_fold(__u32 sum) {
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return (__u16)~sum;
}

/* The pseudo-header's sum (addresses, upper-layer length, next header). */
static __always_inline __u32 nf_pseudo_sum(__u32 family, const __u8* src, const __u8* dst, __u32 len, __u32 proto) {
  __be32 w[10];
  if (family == 4) {
    __builtin_memcpy(&w[0], src + 12, 4);
    __builtin_memcpy(&w[1], dst + 12, 4);
    w[2] = bpf_htonl(proto << 16 | len);
    return (__u32)bpf_csum_diff(0, 0, w, 12, 0);
  }
  __builtin_memcpy(&w[0], src, 16);
  __builtin_memcpy(&w[4], dst, 16);
  w[8] = bpf_htonl(len);
  w[9] = bpf_htonl(proto);
  return (__u32)bpf_csum_diff(0, 0, w, 40, 0);
}

/* What is checked: conntrack's (TCP, UDP, ICMP, ICMPv6) or REJECT's. */
#define NF_CSUM_CT 0
#define NF_CSUM_REJECT 1

/* Whether the protocol's checksum is one `why` verifies (a UDP datagram
 * without a checksum has none). */
static __always_inline int nf_csum_checked_proto(struct __sk_buff* skb, const struct nf_pkt* p, __u32 why) {
  __u8 proto = p->l4proto;
  if (p->frag || !p->l4off) return 0;
  if (why == NF_CSUM_CT) {
    if (proto != IPPROTO_TCP && proto != IPPROTO_UDP && proto != IPPROTO_ICMP && proto != IPPROTO_ICMPV6) return 0;
  } else if (proto == IPPROTO_GRE || proto == IPPROTO_AH || proto == IPPROTO_ESP || proto == IPPROTO_SCTP ||
             proto == IPPROTO_UDPLITE || proto == IPPROTO_DCCP) {
    return 0;
  }
  if (proto == IPPROTO_UDP) {
    __u16 check = 0;
    if (bpf_skb_load_bytes(skb, NF_ETH_HLEN + p->l4off + 6, &check, 2) == 0 && check == 0) return 0;
  }
  return 1;
}

/* Whether the kernel would find the transport checksum of s->p wrong, for
 * `why`, with the skb's checksum state as it is now. Global: verified once. */
NF_SUBPROG int nf_l4_csum_bad(struct __sk_buff* skb, struct nf_scratch* s, __u32 why) {
  if (!skb || !s) return 0;
  struct nf_pkt* p = &s->p;
  if (!nf_csum_checked_proto(skb, p, why)) return 0;
  if (nf_skb_csum_state(skb) == NF_CSUM_STATE_GOOD) return 0; /* COMPLETE: its sum and ours agree */
  if (p->length <= p->l4off) return 0;
  __u32 len = p->length - p->l4off;
  if (len > NF_CSUM_MAX) return 0;
  __u8 proto = p->l4proto;
  __u32 sum = 0;
  if (p->family == 6 || proto == IPPROTO_TCP || proto == IPPROTO_UDP)
    sum = nf_pseudo_sum(p->family, p->saddr, p->daddr, len, proto);
  sum = nf_csum_skb(skb, s, NF_ETH_HLEN + p->l4off, len, sum);
  return nf_csum_fold(sum) != 0;
}

/* Conntrack's check of a packet arriving (PREROUTING; not one coming back
 * in on lo, which keeps OUTPUT's connection): sets p->csum_bad. */
NF_SUBPROG int nf_ct_csum(struct __sk_buff* skb, struct nf_scratch* s, __u32 arriving) {
  if (!skb || !s) return 0;
  s->p.csum_bad = arriving ? (__u8)nf_l4_csum_bad(skb, s, NF_CSUM_CT) : 0;
  return s->p.csum_bad;
}

/* Whether REJECT at `hook` answers nothing for a wrong checksum. */
NF_SUBPROG int nf_reject_csum_bad(struct __sk_buff* skb, struct nf_scratch* s, __u32 hook) {
  if (!skb || !s) return 0;
  if (hook == NF_HOOK_OUTPUT && nf_skb_csum_state(skb) == NF_CSUM_STATE_COMPLETE) return 0;
  return nf_l4_csum_bad(skb, s, NF_CSUM_REJECT);
}

#endif
