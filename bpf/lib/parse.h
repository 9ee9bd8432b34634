/* Packet parsing shared by TC and XDP: the one context abstraction is
 * nf_load(), which reads bytes from an skb or an xdp buffer. */
#ifndef NF2BPF_PARSE_H
#define NF2BPF_PARSE_H

#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>

#include "abi.h"

#define NF_AF_INET 2
#define NF_AF_INET6 10

/* TC reads relative to the network header (so devices without an Ethernet
 * header work too); XDP reads from the frame start. */
static __always_inline int nf_load(void* ctx, int xdp, __u32 off, void* to, __u32 len) {
  if (xdp) return bpf_xdp_load_bytes(ctx, off, to, len);
  return bpf_skb_load_bytes_relative(ctx, off, to, len, BPF_HDR_START_NET);
}

struct nf_pkt {
  __u8 saddr[16], daddr[16];       /* IPv4 mapped ::ffff:a.b.c.d */
  __u8 in_saddr[16], in_daddr[16]; /* ICMP error: the quoted packet's addresses */
  __u64 src_mac;
  __u32 len; /* skb length for byte counters */
  __u32 mark;
  __u32 iif, oif;       /* ifindex; 0 when there is none */
  __u32 sk_uid, sk_gid; /* NF_SK_FILE: its file's fsuid and fsgid */
  __u16 sport, dport;   /* host order; valid when has_ports */
  __u16 length;         /* IP total length */
  __u16 icmp_id;
  __u16 in_sport, in_dport;
  __u8 family; /* 4 or 6 */
  __u8 l4proto;
  __u8 ttl;
  __u8 tos;  /* IPv4 TOS / IPv6 traffic class: DSCP << 2 | ECN */
  __u8 frag; /* 0 not fragmented, 1 first fragment, 2 later fragment */
  __u8 has_ports;
  __u8 has_icmp;
  __u8 icmp_type, icmp_code;
  __u8 icmp_err; /* an ICMP error with a parsed quoted tuple */
  __u8 in_proto;
  __u8 tcp_flags;
  __u8 has_tcp;
  __u8 pkttype;
  __u8 local;     /* destination is this host (ingress) */
  __u8 sk;        /* egress: the sending socket as xt_owner sees it (NF_SK_*) */
  __u8 csum_bad;  /* conntrack found the transport checksum wrong (lib/csum.h) */
  __u16 l4off;    /* transport header, from the network header (0: none parsed) */
  __u16 in_l4off; /* ICMP error: the quoted transport header, from the network header */
};

#define NF_SK_NONE 0   /* no socket: forwarded, or a packet the kernel sends for no socket */
#define NF_SK_KERNEL 1 /* a socket without a file: the kernel's own (ICMP errors, RSTs) */
#define NF_SK_FILE 2   /* a process's socket */

static __always_inline void nf_v4_mapped(__u8* dst, __u32 be_addr) {
  __builtin_memset(dst, 0, 10);
  dst[10] = 0xff;
  dst[11] = 0xff;
  __builtin_memcpy(dst + 12, &be_addr, 4);
}

static __always_inline int nf_is_icmp_error(__u8 family, __u8 type) {
  if (family == 4) return type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
  return type >= 1 && type <= 4;
}

/* Ports of TCP/UDP/SCTP/UDPLite/DCCP live in the first 4 bytes. */
static __always_inline int nf_has_ports(__u8 proto) {
  return proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_SCTP || proto == IPPROTO_UDPLITE ||
         proto == IPPROTO_DCCP;
}

/* Walks IPv6 extension headers to the upper-layer protocol. Returns the
 * offset of the upper-layer header, or -1. Sets frag from a fragment header. */
static __always_inline int nf_ipv6_skip(void* ctx, int xdp, __u32 off, __u8* nexthdr, __u8* frag) {
  __u8 nh = *nexthdr;
#pragma unroll
  for (int i = 0; i < 8; i++) {
    if (nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_DSTOPTS) {
      __u8 h[2];
      if (nf_load(ctx, xdp, off, h, 2)) return -1;
      nh = h[0];
      off += ((__u32)h[1] + 1) * 8;
    } else if (nh == IPPROTO_FRAGMENT) {
      __u8 h[4];
      if (nf_load(ctx, xdp, off, h, 4)) return -1;
      __u16 fo = ((__u16)h[2] << 8 | h[3]);
      if ((fo & 0xfff8) != 0)
        *frag = 2;
      else if (fo & 1)
        *frag = 1;
      nh = h[0];
      off += 8;
    } else if (nh == IPPROTO_AH) {
      __u8 h[2];
      if (nf_load(ctx, xdp, off, h, 2)) return -1;
      nh = h[0];
      off += ((__u32)h[1] + 2) * 4;
    } else {
      *nexthdr = nh;
      return off;
    }
  }
  return -1;
}

/* Parses the quoted datagram inside an ICMP error at `off` (the packet's
 * network header is at l3off). */
static __always_inline void nf_parse_inner(void* ctx, int xdp, __u32 l3off, __u32 off, struct nf_pkt* p) {
  if (p->family == 4) {
    struct iphdr ih;
    if (nf_load(ctx, xdp, off, &ih, sizeof(ih))) return;
    if (ih.version != 4 || ih.ihl < 5) return;
    nf_v4_mapped(p->in_saddr, ih.saddr);
    nf_v4_mapped(p->in_daddr, ih.daddr);
    p->in_proto = ih.protocol;
    off += ih.ihl * 4;
  } else {
    struct ipv6hdr ih;
    if (nf_load(ctx, xdp, off, &ih, sizeof(ih))) return;
    __builtin_memcpy(p->in_saddr, &ih.saddr, 16);
    __builtin_memcpy(p->in_daddr, &ih.daddr, 16);
    __u8 nh = ih.nexthdr, frag = 0;
    int o = nf_ipv6_skip(ctx, xdp, off + sizeof(ih), &nh, &frag);
    if (o < 0) return;
    p->in_proto = nh;
    off = o;
  }
  __u8 h[8];
  if (nf_load(ctx, xdp, off, h, 8)) return;
  if (nf_has_ports(p->in_proto)) {
    p->in_sport = (__u16)h[0] << 8 | h[1];
    p->in_dport = (__u16)h[2] << 8 | h[3];
  } else if (p->in_proto == IPPROTO_ICMP || p->in_proto == IPPROTO_ICMPV6) {
    p->in_sport = p->in_dport = (__u16)h[4] << 8 | h[5]; /* echo id */
  }
  p->in_l4off = (__u16)(off - l3off);
  p->icmp_err = 1;
}

/* Parses from the L3 header at l3off; the L2 part is the caller's. Returns 0
 * for IPv4/IPv6 packets nf2bpf judges, -1 for anything else. */
static __always_inline int nf_parse_l3(void* ctx, int xdp, __u32 l3off, __u16 proto_be, struct nf_pkt* p) {
  __u32 off;
  if (proto_be == bpf_htons(ETH_P_IP)) {
    struct iphdr ip;
    if (nf_load(ctx, xdp, l3off, &ip, sizeof(ip))) return -1;
    if (ip.version != 4 || ip.ihl < 5) return -1;
    p->family = 4;
    nf_v4_mapped(p->saddr, ip.saddr);
    nf_v4_mapped(p->daddr, ip.daddr);
    p->l4proto = ip.protocol;
    p->ttl = ip.ttl;
    p->tos = ip.tos;
    p->length = bpf_ntohs(ip.tot_len);
    __u16 fo = bpf_ntohs(ip.frag_off);
    if (fo & 0x1fff)
      p->frag = 2;
    else if (fo & 0x2000)
      p->frag = 1;
    off = l3off + ip.ihl * 4;
  } else if (proto_be == bpf_htons(ETH_P_IPV6)) {
    struct ipv6hdr ip6;
    if (nf_load(ctx, xdp, l3off, &ip6, sizeof(ip6))) return -1;
    if (ip6.version != 6) return -1;
    p->family = 6;
    __builtin_memcpy(p->saddr, &ip6.saddr, 16);
    __builtin_memcpy(p->daddr, &ip6.daddr, 16);
    p->ttl = ip6.hop_limit;
    p->tos = (ip6.priority << 4) | (ip6.flow_lbl[0] >> 4);
    p->length = bpf_ntohs(ip6.payload_len) + 40;
    __u8 nh = ip6.nexthdr;
    int o = nf_ipv6_skip(ctx, xdp, l3off + sizeof(ip6), &nh, &p->frag);
    if (o < 0) {
      p->l4proto = nh;
      return 0;
    }
    p->l4proto = nh;
    off = o;
  } else {
    return -1;
  }
  if (p->frag == 2) return 0; /* no transport header in later fragments */
  p->l4off = off - l3off;
  __u8 h[16];
  if (nf_has_ports(p->l4proto)) {
    if (nf_load(ctx, xdp, off, h, 4)) return 0;
    p->sport = (__u16)h[0] << 8 | h[1];
    p->dport = (__u16)h[2] << 8 | h[3];
    p->has_ports = 1;
    if (p->l4proto == IPPROTO_TCP && nf_load(ctx, xdp, off + 13, h, 1) == 0) {
      p->tcp_flags = h[0];
      p->has_tcp = 1;
    }
  } else if ((p->family == 4 && p->l4proto == IPPROTO_ICMP) || (p->family == 6 && p->l4proto == IPPROTO_ICMPV6)) {
    if (nf_load(ctx, xdp, off, h, 8)) return 0;
    p->icmp_type = h[0];
    p->icmp_code = h[1];
    p->icmp_id = (__u16)h[4] << 8 | h[5];
    p->has_icmp = 1;
    if (nf_is_icmp_error(p->family, p->icmp_type)) nf_parse_inner(ctx, xdp, l3off, off + 8, p);
  }
  return 0;
}

#endif
