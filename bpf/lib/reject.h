/* REJECT's answers, built as the kernel builds them for a packet rejected at
 * PREROUTING, INPUT or FORWARD (the TC ingress run) or OUTPUT (egress: a
 * local packet, whose answer goes to this host over lo):
 *
 *   ICMP     nf_send_unreach -> icmp_send: destination unreachable with the
 *            rule's code, quoting the rejected packet from its IP header
 *            as the rules saw it (TTL one less when routed; at most 576
 *            bytes in all); TOS (tos & 0x1e) | 0xc0, TTL 64,
 *            no DF; from the packet's destination when that is this host's,
 *            else from the address routing picks towards the sender (a
 *            local sender's own address).
 *   ICMPv6   nf_send_unreach6 -> icmpv6_send: the same, at most 1,280 bytes
 *            in all; traffic class 0, hop limit 64.
 *   TCP RST  nf_send_reset / nf_send_reset6: from the packet's destination
 *            (port too), sequence its ACK number or, without ACK, an ACK of
 *            everything it carried; IPv4 DF, ID 0, TOS 0, TTL 64; IPv6
 *            traffic class and flow label 0, hop limit 64.
 *
 * The kernel answers nothing for a later fragment, a packet not addressed to
 * this host's link layer (broadcast, multicast, another host's MAC), a
 * broadcast or multicast destination, an ICMP error (or an unknown ICMP
 * type), an RST (for tcp-reset), a non-TCP packet (tcp-reset), or a code
 * with no meaning in the family; the packet is then only dropped.
 *
 * The answer replaces the packet (the skb is rebuilt in place) and is sent
 * as the kernel sends it: routed towards the sender (bpf_redirect_neigh),
 * through this host's OUTPUT and POSTROUTING (the egress run knows it by
 * NF_CB_ANSWER), carrying the rejected packet's connection. ICMP errors
 * pass the kernel's rate limits (below). An answer to a packet NAT changed
 * is translated back on its way out, as the connection's other direction
 * (nf_answer_nat). A packet whose transport checksum the kernel finds wrong
 * gets no answer (lib/csum.h). Not yet as the kernel: IP options are quoted
 * but not echoed. */
#ifndef NF2BPF_REJECT_H
#define NF2BPF_REJECT_H

#include <linux/tcp.h>

/* skb->cb[3]'s upper half on an answer handed to routing: its egress run
 * judges it as a locally generated packet (OUTPUT, POSTROUTING). */
#define NF_CB_ANSWER 0x4e41u
/* and in its lower half: the answer's peer bucket is still to pass (IPv6). */
#define NF_CB_PEER6 (1u << 14)

/* The ICMP (type 3) and ICMPv6 (type 1) codes of each reject code
 * (translator/policy/policy.h, kRejectNames' order); 0xff: no such answer
 * in the family. tcp-reset (1) is built apart. */
static __always_inline __u8 nf_reject_icmp_code(__u32 family, __u32 type) {
  switch (type) {
    case 0: return family == 4 ? 3 : 4;     /* port unreachable */
    case 2: return 0;                       /* net unreachable / no route */
    case 3: return family == 4 ? 1 : 3;     /* host unreachable / address unreachable */
    case 4: return family == 4 ? 2 : 0xff;  /* protocol unreachable */
    case 5: return family == 4 ? 9 : 0xff;  /* network prohibited */
    case 6: return family == 4 ? 10 : 0xff; /* host prohibited */
    case 7: return family == 4 ? 13 : 1;    /* administratively prohibited */
    case 8: return family == 4 ? 0xff : 5;  /* source address failed policy */
    case 9: return family == 4 ? 0xff : 6;  /* reject route */
  }
  return 0xff;
}

/* Routing of an answer from s->answer_src (zero: routing picks it) to
 * the rejected packet's source: the kernel's output routing, from lo (lo
 * itself for a source of this host's).
 * bpf_fib_lookup answers only where lo forwards (any host with ip_forward=1,
 * every router); elsewhere the answer to a packet for this host leaves by
 * the device the packet came in by (bpf_redirect_neigh routes it there).
 * Returns the device to leave by, 0 when routing finds none. */
static __always_inline __u32 nf_answer_route(struct __sk_buff* skb, __u32 ifindex, struct nf_scratch* s) {
  struct nf_pkt* p = &s->p;
  __u8* src = s->answer_src;
  struct bpf_fib_lookup* f = &s->nat.fib;
  int pick = 1;
#pragma unroll
  for (int k = 0; k < 16; k++)
    if (src[k] && !(k >= 10 && k < 12 && p->family == 4)) pick = 0;
  /* To this host (a local packet, one over lo): over lo, from the address
   * itself, as the local route gives it. */
  if (nf_addr_type_of(p->family, p->saddr) & 4) {
    if (pick) __builtin_memcpy(src, p->saddr, 16);
    return NF_LOOPBACK_IFINDEX;
  }
  __builtin_memset(f, 0, sizeof(*f));
  f->ifindex = NF_LOOPBACK_IFINDEX;
  f->l4_protocol = p->family == 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6;
  if (p->family == 4) {
    f->family = NF_AF_INET_;
    __builtin_memcpy(&f->ipv4_src, src + 12, 4);
    __builtin_memcpy(&f->ipv4_dst, p->saddr + 12, 4);
  } else {
    f->family = NF_AF_INET6_;
    __builtin_memcpy(f->ipv6_src, src, 16);
    __builtin_memcpy(f->ipv6_dst, p->saddr, 16);
  }
  long rc = bpf_fib_lookup(skb, f, sizeof(*f), BPF_FIB_LOOKUP_SKIP_NEIGH | (pick ? BPF_FIB_LOOKUP_SRC : 0));
  if (rc == BPF_FIB_LKUP_RET_FWD_DISABLED && !pick) return ifindex;
  if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH) return 0;
  if (pick) {
    if (p->family == 4)
      __builtin_memcpy(src + 12, &f->ipv4_src, 4);
    else
      __builtin_memcpy(src, f->ipv6_src, 16);
  }
  return f->ifindex;
}

/* Writes the packet's TTL (hop limit) as the rules saw it into its header. */
static __always_inline int nf_store_ttl(struct __sk_buff* skb, const struct nf_pkt* p) {
  __u8 ttl = p->ttl;
  if (p->family == 6) return (int)bpf_skb_store_bytes(skb, NF_ETH_HLEN + 7, &ttl, 1, 0);
  __u8 old[2], now[2];
  if (bpf_skb_load_bytes(skb, NF_ETH_HLEN + 8, old, 2)) return -1;
  now[0] = ttl;
  now[1] = old[1];
  __u16 o16, n16;
  __builtin_memcpy(&o16, old, 2);
  __builtin_memcpy(&n16, now, 2);
  if (bpf_l3_csum_replace(skb, NF_ETH_HLEN + 10, o16, n16, 2)) return -1;
  return (int)bpf_skb_store_bytes(skb, NF_ETH_HLEN + 8, now, 2, 0);
}

/* Writes an answer's IP header, without options, from src to dst (IPv4
 * mapped) in front of `len` bytes of payload: TTL / hop limit 64; IPv4 with
 * tos, id and the fragment field (host order); IPv6 with traffic class and
 * flow label 0. Returns 0 when written. */
static __always_inline int nf_put_ip(struct __sk_buff* skb, __u32 family, __u8 proto, __u8 tos, __u16 id, __u16 frag,
                                     __u32 len, const __u8* src, const __u8* dst) {
  if (family == 4) {
    struct iphdr ip;
    __builtin_memset(&ip, 0, sizeof(ip));
    ip.version = 4;
    ip.ihl = 5;
    ip.tos = tos;
    ip.tot_len = bpf_htons(sizeof(ip) + len);
    ip.id = id;
    ip.frag_off = bpf_htons(frag);
    ip.ttl = 64;
    ip.protocol = proto;
    __builtin_memcpy(&ip.saddr, src + 12, 4);
    __builtin_memcpy(&ip.daddr, dst + 12, 4);
    ip.check = nf_csum_fold((__u32)bpf_csum_diff(0, 0, (__be32*)&ip, sizeof(ip), 0));
    return (int)bpf_skb_store_bytes(skb, NF_ETH_HLEN, &ip, sizeof(ip), 0);
  }
  struct ipv6hdr ip6;
  __builtin_memset(&ip6, 0, sizeof(ip6));
  ip6.version = 6;
  ip6.payload_len = bpf_htons(len);
  ip6.nexthdr = proto;
  ip6.hop_limit = 64;
  __builtin_memcpy(&ip6.saddr, src, 16);
  __builtin_memcpy(&ip6.daddr, dst, 16);
  return (int)bpf_skb_store_bytes(skb, NF_ETH_HLEN, &ip6, sizeof(ip6), 0);
}

/* The TCP RST of tcp-reset; returns the new IP packet's length, 0 for none.
 * Global: verified once, on its own stack. */
NF_SUBPROG __u32 nf_build_rst(struct __sk_buff* skb, struct nf_scratch* s) {
  if (!skb || !s) return 0;
  struct nf_pkt* p = &s->p;
  if (p->l4proto != IPPROTO_TCP || !p->has_tcp || (p->tcp_flags & 0x04)) return 0;
  struct tcphdr o;
  if (bpf_skb_load_bytes(skb, NF_ETH_HLEN + p->l4off, &o, sizeof(o))) return 0;
  struct tcphdr t;
  __builtin_memset(&t, 0, sizeof(t));
  t.source = o.dest;
  t.dest = o.source;
  t.doff = 5;
  t.rst = 1;
  if (o.ack) {
    t.seq = o.ack_seq;
  } else {
    __u32 seglen = (__u32)p->length - p->l4off - o.doff * 4;
    t.ack_seq = bpf_htonl(bpf_ntohl(o.seq) + o.syn + o.fin + seglen);
    t.ack = 1;
  }
  __u32 hl = p->family == 4 ? 20 : 40;
  __u32 sum = nf_pseudo_sum(p->family, p->daddr, p->saddr, sizeof(t), IPPROTO_TCP);
  sum = (__u32)bpf_csum_diff(0, 0, (__be32*)&t, sizeof(t), sum);
  t.check = nf_csum_fold(sum);
  if (bpf_skb_change_tail(skb, NF_ETH_HLEN + hl + sizeof(t), 0)) return 0;
  if (nf_put_ip(skb, p->family, IPPROTO_TCP, 0, 0, 0x4000 /* DF */, sizeof(t), p->daddr, p->saddr)) return 0;
  if (bpf_skb_store_bytes(skb, NF_ETH_HLEN + hl, &t, sizeof(t), 0)) return 0;
  return hl + sizeof(t);
}

/* Whether the kernel sends an ICMP error about this packet at all (beyond
 * the checks every answer has): never about an ICMP error, an unknown ICMP
 * type, or from/to an address no error may go to. */
static __always_inline int nf_icmp_eligible(const struct nf_pkt* p) {
  if (p->family == 4) {
    if (p->l4proto == IPPROTO_ICMP) {
      if (!p->has_icmp) return 0;
      __u8 t = p->icmp_type; /* icmp_pointers[].error, and > NR_ICMP_TYPES */
      if (t > 18 || (t >= 1 && t <= 7) || (t >= 9 && t <= 12)) return 0;
    }
    return 1;
  }
  if (p->l4proto == IPPROTO_ICMPV6 && (!p->has_icmp || p->icmp_type < 128)) return 0; /* is_ineligible */
  if (p->saddr[0] == 0xff) return 0;                                                  /* multicast source */
  __u64 a, b;
  __builtin_memcpy(&a, p->saddr, 8);
  __builtin_memcpy(&b, p->saddr + 8, 8);
  return a || b; /* not :: */
}

/* The ICMP/ICMPv6 destination unreachable (`code`) about the packet, from
 * s->answer_src; returns the new IP packet's length, 0 for none. Global:
 * verified once, on its own stack. */
NF_SUBPROG __u32 nf_build_unreach(struct __sk_buff* skb, struct nf_scratch* s, __u32 code) {
  if (!skb || !s) return 0;
  struct nf_pkt* p = &s->p;
  const __u8* src = s->answer_src;
  __u32 hl = p->family == 4 ? 20 : 40;
  __u32 room = p->family == 4 ? 576 - 28 : 1280 - 48;
  __u32 q = p->length;
  if (q > room) q = room;
  if (q < hl) return 0;
  __u8 tos = 0;
  if (p->family == 4 && bpf_skb_load_bytes(skb, NF_ETH_HLEN + 1, &tos, 1)) return 0;
  /* The quoted packet, then room for the new headers in front of it. */
  if (bpf_skb_change_tail(skb, NF_ETH_HLEN + q, 0)) return 0;
  if (bpf_skb_adjust_room(skb, (__s32)(hl + 8), BPF_ADJ_ROOM_MAC, 0)) return 0;
  __u32 sum = nf_csum_skb(skb, s, NF_ETH_HLEN + hl + 8, q, 0);
  __u8 icmp[8] = {p->family == 4 ? 3 : 1, (__u8)code, 0, 0, 0, 0, 0, 0};
  if (p->family == 6) sum += nf_pseudo_sum(6, src, p->saddr, 8 + q, IPPROTO_ICMPV6);
  sum = (__u32)bpf_csum_diff(0, 0, (__be32*)icmp, 8, sum);
  __u16 ck = nf_csum_fold(sum);
  __builtin_memcpy(icmp + 2, &ck, 2);
  __u8 proto = p->family == 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6;
  if (nf_put_ip(skb, p->family, proto, (tos & 0x1e) | 0xc0, (__u16)bpf_get_prandom_u32(), 0, 8 + q, src, p->saddr))
    return 0;
  if (bpf_skb_store_bytes(skb, NF_ETH_HLEN + hl, icmp, 8, 0)) return 0;
  return hl + 8 + q;
}

/* ---- The answer's own runs ------------------------------------------------
 *
 * It carries the connection of the packet it answers, if that had one
 * (nf_ct_attach): RELATED, in the other direction, with the connection's
 * mark; it confirms and updates nothing. Without one it is judged as any
 * packet (INVALID, as in the kernel). Global functions, and the flags in
 * scratch: the verifier follows one path through the rest for both. */

/* Whether this run, whose skb->cb carries NF_CB_ANSWER, judges an answer
 * (s->answer, s->answer_ct/mark; the caller cleared them). */
NF_SUBPROG int nf_answer_begin(struct __sk_buff* skb, struct nf_scratch* s, __u32 ingress, __u32 looped) {
  if (!skb || !s) return 0;
  __u32 cb0 = skb->cb[0], cb3 = skb->cb[3], cb4 = skb->cb[4];
  s->answer = (cb3 >> 16) == NF_CB_ANSWER &&
              (ingress ? looped && cb0 == (0x100 | NF_ACT_ACCEPT) : cb0 == (0x100 | NF_ACT_REJECT));
  if (s->answer && (cb3 & (NF_CT_STATE_NEW | NF_CT_STATE_ESTABLISHED | NF_CT_STATE_RELATED))) {
    s->answer_ct = cb3 & 0x3ff;
    s->answer_mark = cb4;
  }
  return s->answer;
}

/* The NAT of the packet REJECT answered, left in the CPU's scratch for its
 * answer's next run: that runs at once, on this CPU (bpf_redirect_neigh). */
#define NF_ANSWER_NAT 0x80
static __always_inline void nf_answer_nat_keep(struct nf_scratch* s) {
  __u32 zero = 0;
  struct nf_scratch* cpu = bpf_map_lookup_elem(&nf_scratch, &zero);
  if (!cpu) return;
  const struct nf_nat_work* nw = &s->nat;
  cpu->answer_nat = nw->active ? NF_ANSWER_NAT | (nw->flags & (NF_CT_SNAT | NF_CT_DNAT)) : 0;
  if (!cpu->answer_nat) return;
  cpu->answer_orig = nw->orig;
  cpu->answer_reply = nw->reply;
}

/* The connection a REJECTed packet began, never confirmed (the packet was
 * dropped), kept in the CPU's scratch for its answer's runs: the answer
 * carries it in the other direction (nf_ct_attach), and when a rule rejects
 * the answer in turn, the second answer carries it in the first direction
 * again. Once that one passes POSTROUTING, __nf_conntrack_confirm inserts
 * the connection (confirm skips a packet of the reply direction only). Kept
 * without NAT only (a rejected packet NAT bound is not followed). */
static __always_inline void nf_answer_pend_keep(struct nf_scratch* s) {
  __u32 zero = 0;
  struct nf_scratch* cpu = bpf_map_lookup_elem(&nf_scratch, &zero);
  if (!cpu) return;
  cpu->answer_pend = s->ct.track && !s->ct.exists && !s->ct.kill && !s->nat.active;
  if (!cpu->answer_pend) return;
  cpu->answer_pend_ct = s->ct;
  cpu->answer_pend_ct.ctmark = s->ctmark;
}

/* An answer's run that did not reject it: the kept connection is inserted
 * when the answer carries it in its own direction and passes, then
 * forgotten. Global: verified once. */
NF_SUBPROG int nf_answer_done(struct nf_scratch* s, __u32 accepted, __u64 now) {
  if (!s || !s->answer) return 0;
  __u32 zero = 0;
  struct nf_scratch* cpu = bpf_map_lookup_elem(&nf_scratch, &zero);
  if (!cpu || !cpu->answer_pend) return 0;
  cpu->answer_pend = 0;
  if (!accepted || !s->answer_ct || s->ct.dir != 0) return 0;
  struct nf_ct_res r = cpu->answer_pend_ct;
  cpu->nat.active = 0; /* (the ingress run's, done with) */
  nf_ct_finish(&r, now, 1, r.ctmark, &cpu->nat, 0);
  return 1;
}

/* An answer's egress run, after NAT's start: the answer is translated as a
 * packet of the rejected packet's connection in the other direction (its
 * binding as it stood when the rule rejected: nf_nat_icmp_reply_translation
 * for an ICMP error, quoted packet and outer source; nf_nat_packet for a
 * RST), and binds nothing. Without a kept NAT (a packet over lo, whose
 * connection was confirmed before INPUT rejected it) the connection lookup's
 * NAT stands. */
NF_SUBPROG int nf_answer_nat(struct nf_scratch* s) {
  if (!s || !s->answer) return 0;
  struct nf_nat_work* nw = &s->nat;
  nw->binding = 0;
  nw->soft_csum = 1;
  __u32 zero = 0;
  struct nf_scratch* cpu = bpf_map_lookup_elem(&nf_scratch, &zero);
  if (!cpu || !cpu->answer_nat) return 0;
  nw->active = 1;
  nw->flags = cpu->answer_nat & (NF_CT_SNAT | NF_CT_DNAT);
  nw->dir = s->ct.dir;
  nw->orig = cpu->answer_orig;
  nw->reply = cpu->answer_reply;
  cpu->answer_nat = 0;
  return 1;
}

/* After the connection lookup: an answer's connection replaces what it found. */
NF_SUBPROG int nf_answer_ct(struct nf_scratch* s) {
  if (!s || !s->answer_ct) return 0;
  struct nf_ct_res* ct = &s->ct;
  ct->state = NF_CT_STATE_RELATED;
  ct->dir = ((s->answer_ct >> 8) & 1) ^ 1;
  ct->ctmark = s->answer_mark;
  ct->track = 0; /* nothing confirmed or updated */
  s->ctmark = s->answer_mark;
  s->has_ct = 1;
  return 1;
}

/* An accepted answer's egress run hands the same connection to lo's ingress
 * run (a local sender's answer). */
NF_SUBPROG int nf_answer_pass(struct __sk_buff* skb, struct nf_scratch* s) {
  if (!skb || !s || !s->answer) return 0;
  skb->cb[3] = s->answer_ct | (NF_CB_ANSWER << 16);
  skb->cb[4] = s->answer_mark;
  return 1;
}

/* ---- The kernel's ICMP rate limits -------------------------------------
 *
 * An ICMP error of a type in the family's ratemask (destination unreachable
 * is, by default) passes two buckets, unless the rejected packet came in by
 * lo: the namespace's global one (icmp_global_allow: icmp_msgs_per_sec,
 * icmp_msgs_burst; a sent error takes 0-2 credits at random,
 * icmp_global_consume) and, unless the answer goes out over lo, the
 * peer's (inet_peer_xrlim_allow: a token bucket in jiffies, the rate limit
 * per message, at most 6 in a burst). Kernels before commit 0201eedb69b2
 * give an IPv6 peer reached by a wider prefix more (icmpv6_xrlim_allow: the
 * limit >> ((128 - plen) >> 5); the loader tells which kind runs): its
 * bucket is asked on the answer's way out, where its route is known. */

static __always_inline __u64 nf_hz(void) { return CONFIG_HZ ? CONFIG_HZ : 250; }

static __always_inline int nf_icmp_global_allow(const struct nf2bpf_host_cfg* c, struct nf_icmp_bucket* b) {
  if (b->credit > 0) return 1;
  __u64 hz = nf_hz();
  __u32 now = (__u32)bpf_jiffies64();
  __u32 delta = now - b->stamp;
  if (delta > hz) delta = (__u32)hz;
  if (delta < hz / 50) return 0;
  __s32 incr = (__s32)((__u64)c->msgs_per_sec * delta / hz);
  if (incr <= 0) return 0;
  b->stamp = now;
  __s32 n = b->credit + incr;
  b->credit = n > (__s32)c->msgs_burst ? (__s32)c->msgs_burst : n;
  return 1;
}

static __always_inline int nf_icmp_peer_allow(const __u8* addr, __u64 timeout) {
  struct nf_addr16 k;
  __builtin_memcpy(k.a, addr, 16);
  __u64 now = bpf_jiffies64();
  struct nf_icmp_peer* v = bpf_map_lookup_elem(&nf_icmp_peers, &k);
  if (!v) { /* a new peer: a full bucket (inet_getpeer: rate_last 60 s ago) */
    struct nf_icmp_peer n = {now - 60 * nf_hz(), 0};
    bpf_map_update_elem(&nf_icmp_peers, &k, &n, BPF_NOEXIST);
    v = bpf_map_lookup_elem(&nf_icmp_peers, &k);
    if (!v) return 1;
  }
  __u64 token = v->tokens, delta = now - v->last;
  if (delta) {
    v->last = now;
    token += delta;
    if (token > 6 * timeout) token = 6 * timeout;
  }
  int rc = 0;
  if (token >= timeout) {
    token -= timeout;
    rc = 1;
  }
  v->tokens = token;
  return rc;
}

static __always_inline void nf_icmp_global_consume(struct nf_icmp_bucket* b) {
  __u32 credits = bpf_get_prandom_u32() % 3;
  if (credits) __sync_fetch_and_add(&b->credit, -(__s32)credits);
}

/* Whether the kernel sends this ICMP error now (and its credit taken): 0 no,
 * 1 yes, 2 if its peer allows, which the answer's egress run asks once the
 * answer's route is known (an IPv6 peer's limit depends on its prefix:
 * nf_answer_peer6). */
static __always_inline int nf_icmp_allow(struct nf_scratch* s, __u32 in_ifindex, __u32 oif) {
  __u32 zero = 0;
  struct nf2bpf_host_cfg* c = bpf_map_lookup_elem(&nf_host_cfg, &zero);
  struct nf_icmp_bucket* b = bpf_map_lookup_elem(&nf_icmp_global, &zero);
  if (!c || !b || !c->valid || in_ifindex == NF_LOOPBACK_IFINDEX) return 1;
  int v4 = s->p.family == 4;
  if (!(v4 ? c->limit4 : c->limit6)) return 1;
  if (!nf_icmp_global_allow(c, b)) return 0;
  if (oif != NF_LOOPBACK_IFINDEX) {
    if (!v4) return 2;
    __u64 timeout = (c->ratelimit4 * nf_hz() + 999) / 1000; /* msecs_to_jiffies */
    if (!nf_icmp_peer_allow(s->p.saddr, timeout)) return 0;
  }
  nf_icmp_global_consume(b);
  return 1;
}

/* An IPv6 answer's egress run (its skb->cb says NF_CB_PEER6): the peer's
 * bucket (icmpv6_xrlim_allow), on kernels that still scale it with the
 * limit >> ((128 - plen) >> 5) for the prefix length of the route the answer
 * took (the skb's dst, which bpf_redirect_neigh looked up as the kernel's
 * ip6_route_output does), then the global credit. Returns whether the answer
 * is sent. Global: verified once. */
NF_SUBPROG int nf_answer_peer6(struct __sk_buff* skb, struct nf_scratch* s) {
  if (!skb || !s) return 1;
  __u32 zero = 0;
  struct nf2bpf_host_cfg* c = bpf_map_lookup_elem(&nf_host_cfg, &zero);
  struct nf_icmp_bucket* b = bpf_map_lookup_elem(&nf_icmp_global, &zero);
  if (!c || !b) return 1;
  __u64 timeout = (c->ratelimit6 * nf_hz() + 999) / 1000;
  int plen = nf_skb_route6_plen(skb);
  if (c->prefix6 && plen >= 0 && plen < 128) timeout >>= (128 - plen) >> 5;
  if (!nf_icmp_peer_allow(s->p.daddr, timeout)) return 0;
  nf_icmp_global_consume(b);
  return 1;
}

/* REJECT: the packet becomes the kernel's answer to it and is sent; `hook` the hook whose rule rejected it, `rule` that
 * rule. Returns the TC action (TC_ACT_SHOT when the kernel answers nothing). Global: verified once. */
NF_SUBPROG int nf_reject(struct __sk_buff* skb, struct nf_scratch* s, __u32 live, __u32 rule, __u32 hook) {
  if (!skb || !s) return TC_ACT_SHOT;
  __u32 ifindex = skb->ifindex;
  void* rm = nf_inner(&nf_rules, live & 1);
  struct nf2bpf_rule* r = rm ? bpf_map_lookup_elem(rm, &rule) : 0;
  if (!r) return TC_ACT_SHOT;
  __u32 type = r->reject_type;
  struct nf_pkt* p = &s->p;
  if (p->frag == 2 || p->pkttype != 0) return TC_ACT_SHOT;
  if (nf_addr_type_of(p->family, p->daddr) & (8 | 32)) return TC_ACT_SHOT; /* broadcast, multicast */
  /* The answer's source: the rejected packet's destination for an RST, and
   * for an ICMP error when that is this host's address (icmp_send: a local
   * route's RTCF_LOCAL; icmp6_send: ipv6_chk_addr), at INPUT or for a local
   * packet to this host itself; otherwise (FORWARD, OUTPUT to elsewhere) the
   * address routing picks. */
  __u8* src = s->answer_src;
  __u8 code = 0;
  __builtin_memset(src, 0, 16);
  if (type == 1 || hook == NF_HOOK_INPUT || (nf_addr_type_of(p->family, p->daddr) & 4))
    __builtin_memcpy(src, p->daddr, 16);
  if (p->family == 4) src[10] = src[11] = 0xff;
  if (type != 1) {
    code = nf_reject_icmp_code(p->family, type);
    if (code == 0xff || !nf_icmp_eligible(p)) return TC_ACT_SHOT;
  }
  if (nf_reject_csum_bad(skb, s, hook)) return TC_ACT_SHOT;
  __u32 oif = nf_answer_route(skb, ifindex, s);
  if (!oif) return TC_ACT_SHOT;
  int allow = type == 1 ? 1 : nf_icmp_allow(s, ifindex, oif);
  if (!allow) return TC_ACT_SHOT;
  /* A routed packet is quoted as FORWARD saw it: TTL / hop limit one less
   * (ip_forward's ip_decrease_ttl, header checksum too; ip6_forward). */
  if (hook == NF_HOOK_FORWARD && type != 1 && nf_store_ttl(skb, p)) return TC_ACT_SHOT;
  if (!(type == 1 ? nf_build_rst(skb, s) : nf_build_unreach(skb, s, code))) return TC_ACT_SHOT;
  skb->mark = 0;
  if (!s->answer) nf_answer_pend_keep(s);
  nf_answer_nat_keep(s);
  /* (the connection's state and direction below) */
  skb->cb[3] = (skb->cb[3] & 0x3ff) | (allow == 2 ? NF_CB_PEER6 : 0) | (NF_CB_ANSWER << 16);
  skb->cb[4] = s->ctmark;
  return bpf_redirect_neigh(oif, 0, 0, 0);
}

#endif
