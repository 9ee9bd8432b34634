/* nf2bpf's fixed programs. A ruleset never becomes code here: it becomes the
 * contents of the maps in lib/maps.h.
 *
 *   TC ingress: PREROUTING (raw, conntrack, the rest), then INPUT for this
 *               host's packets or FORWARD for routed ones.
 *   TC egress:  OUTPUT then POSTROUTING for local packets; POSTROUTING only
 *               for forwarded ones.
 *   XDP:        the stateless early-drop stage, when the compiler proved one. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "lib/parse.h"
#include "lib/maps.h"
#include "lib/ct.h"
#include "lib/kern.h"
#include "lib/classify.h"
#include "lib/csum.h"
#include "lib/nat.h"

char LICENSE[] SEC("license") = "GPL";

#define NF_AF_INET_ 2
#define NF_AF_INET6_ 10
#define NF_LOOPBACK_IFINDEX 1 /* lo: the first device of every network namespace */
/* skb->cb[3]'s upper half on a packet an ingress run handed to lo (nf_tc's
 * `to_lo`), with cb[0] its ACCEPT: lo's runs pass it as it is. */
#define NF_CB_TO_LO 0x4e4cu

#include "lib/reject.h"
#include "lib/frag.h"

/* The loopback addresses (127/8, ::1) travel over lo only: routing drops a
 * packet that brings one in on another interface (martian source or
 * destination; IPv6 even before PREROUTING), whatever INPUT says. */
static __always_inline int nf_martian(const struct nf_pkt* p, __u32 ifindex) {
  if (ifindex == NF_LOOPBACK_IFINDEX) return 0;
  if (p->family == 4) return p->saddr[12] == 127 || p->daddr[12] == 127;
  const __u8* a[2] = {p->saddr, p->daddr};
#pragma unroll
  for (int k = 0; k < 2; k++) {
    __u32 w0, w1, w2, w3;
    __builtin_memcpy(&w0, a[k], 4);
    __builtin_memcpy(&w1, a[k] + 4, 4);
    __builtin_memcpy(&w2, a[k] + 8, 4);
    __builtin_memcpy(&w3, a[k] + 12, 4);
    if (!w0 && !w1 && !w2 && w3 == bpf_htonl(1)) return 1;
  }
  return 0;
}

/* A FIB query for the packet's flow (`reverse`: the flow back to its
 * sender), starting from `ifindex`. */
static __always_inline void nf_fib_query_dir(struct bpf_fib_lookup* f, const struct nf_pkt* p, __u32 ifindex,
                                             int reverse) {
  const __u8* src = reverse ? p->daddr : p->saddr;
  const __u8* dst = reverse ? p->saddr : p->daddr;
  __builtin_memset(f, 0, sizeof(*f));
  f->ifindex = ifindex;
  f->l4_protocol = p->l4proto;
  f->sport = bpf_htons(reverse ? p->dport : p->sport);
  f->dport = bpf_htons(reverse ? p->sport : p->dport);
  f->tot_len = p->length;
  if (p->family == 4) {
    f->family = NF_AF_INET_;
    f->tos = p->tos & 0xfc;
    __builtin_memcpy(&f->ipv4_src, src + 12, 4);
    __builtin_memcpy(&f->ipv4_dst, dst + 12, 4);
  } else {
    f->family = NF_AF_INET6_;
    __builtin_memcpy(f->ipv6_src, src, 16);
    __builtin_memcpy(f->ipv6_dst, dst, 16);
  }
}
static __always_inline void nf_fib_query(struct bpf_fib_lookup* f, const struct nf_pkt* p, __u32 ifindex) {
  nf_fib_query_dir(f, p, ifindex, 0);
}

#include "lib/mangle.h"

/* Is the packet for this host? Like the kernel's input routing: the local
 * table first (this namespace's addresses, broadcasts, multicast: kept in
 * nf_addrtype by the loader), then the FIB for routed packets. Returns 1
 * local, 0 forward (sets *oif), -1 the kernel will not route it (no route,
 * forwarding off, a loopback address off lo): only PREROUTING applies. */
static __always_inline int nf_route(struct __sk_buff* skb, struct nf_pkt* p, __u32* oif, struct bpf_fib_lookup* fp) {
  if (nf_martian(p, skb->ifindex)) return -1;
  if (p->pkttype == 1 || p->pkttype == 2) return 1; /* broadcast / multicast */
  __u32 t = nf_addr_type_of(p->family, p->daddr);
  if (t & (4 | 8 | 32)) return 1; /* LOCAL, BROADCAST, MULTICAST */
  struct bpf_fib_lookup* f = fp;  /* (in scratch: the BPF stack is small) */
  nf_fib_query(f, p, skb->ingress_ifindex ? skb->ingress_ifindex : skb->ifindex);
  long rc = bpf_fib_lookup(skb, f, sizeof(*f), 0);
  switch (rc) {
    case BPF_FIB_LKUP_RET_SUCCESS:
    case BPF_FIB_LKUP_RET_NO_NEIGH:
    case BPF_FIB_LKUP_RET_FRAG_NEEDED: *oif = f->ifindex; return 0;
    case BPF_FIB_LKUP_RET_NOT_FWDED: return 1;
    default: return -1;
  }
}

/* bpf_fib_lookup's policy-routing mark (linux >= 6.10; newer than this
 * system's headers): the mark shares its place with smac. */
#define NF_FIB_LOOKUP_MARK (1U << 5)

/* ip_route_me_harder: a local packet whose destination nat OUTPUT changed is
 * routed again. Returns 0 for this host (over lo), the ifindex to leave by,
 * or -1: no route (the kernel drops it). The query starts from lo, as the
 * kernel's output routing does (iif lo for policy rules). bpf_fib_lookup
 * answers only where the device it starts from forwards (in every mode):
 * it finds the kernel's route where lo forwards (every host with
 * ip_forward=1: every host that NATs for containers, VMs or a LAN; or
 * net.ipv4.conf.lo.forwarding=1 alone). Elsewhere the packet stays on the
 * device its first route chose (bpf_redirect_neigh routes it there by
 * itself, mark included). Global: verified once. */
NF_SUBPROG int nf_reroute(struct __sk_buff* skb, struct nf_scratch* s) {
  if (!skb || !s) return -1;
  struct nf_pkt* p = &s->p;
  struct bpf_fib_lookup* f = &s->nat.fib;
  if (nf_addr_type_of(p->family, p->daddr) & 4) return 0; /* LOCAL */
  __u32 flags = NF_FIB_LOOKUP_MARK | BPF_FIB_LOOKUP_SKIP_NEIGH;
  long rc = 0;
  for (int attempt = 0; attempt < 2; attempt++) {
    nf_fib_query(f, p, NF_LOOPBACK_IFINDEX);
    __builtin_memcpy(f->smac, &p->mark, 4);
    rc = bpf_fib_lookup(skb, f, sizeof(*f), flags);
    if (rc != -22) break;
    flags &= ~NF_FIB_LOOKUP_MARK; /* -EINVAL: a kernel without the mark flag */
  }
  switch (rc) {
    case BPF_FIB_LKUP_RET_SUCCESS:
    case BPF_FIB_LKUP_RET_NO_NEIGH:
    case BPF_FIB_LKUP_RET_FRAG_NEEDED: return f->ifindex ? (int)f->ifindex : -1;
    case BPF_FIB_LKUP_RET_FWD_DISABLED: return (int)skb->ifindex;
    case BPF_FIB_LKUP_RET_NOT_FWDED: return 0;
    default: return -1;
  }
}

/* Whether this egress run continues a local packet its OUTPUT run routed
 * again (nf_scratch.rerouted, fwd_tuple in the ingress slot): then only
 * POSTROUTING remains. Global: verified once. */
NF_SUBPROG int nf_rerouted_here(struct nf_scratch* s) {
  __u32 zero = 0;
  struct nf_scratch* in = bpf_map_lookup_elem(&nf_scratch, &zero);
  if (!s || !in || !in->rerouted) return 0;
  in->rerouted = 0;
  nf_pkt_tuple(&s->p, &s->nat.cand);
  return in->fwd && nf_tuple_eq(&in->fwd_tuple, &s->nat.cand);
}

static __always_inline int nf_dst_moved(const __u64* was, const __u8* now) {
  __u64 a, b;
  __builtin_memcpy(&a, now, 8);
  __builtin_memcpy(&b, now + 8, 8);
  return a != was[0] || b != was[1];
}

/* What a packet routed on leaves for the egress run that follows it on this
 * CPU, in the ingress slot (forwarded at ingress, or a local packet routed
 * again at egress): its connection and tuple (`fwd`: as the hint), whether
 * it is the local one (`rerouted`), and the new connection to remove again
 * if POSTROUTING drops it (`pending`). Global: verified once. */
NF_SUBPROG int nf_leave_hint(struct nf_scratch* s, int fwd, int rerouted, int pending, int alias) {
  __u32 zero = 0;
  struct nf_scratch* o = bpf_map_lookup_elem(&nf_scratch, &zero);
  if (!s || !o) return 0;
  o->pending = 0;
  o->pending_alias = 0;
  o->fwd = 0;
  o->rerouted = rerouted != 0;
  if (fwd && s->nat.active) {
    o->fwd = 1;
    o->fwd_key = s->ct.key;
    nf_pkt_tuple(&s->p, &o->fwd_tuple);
  }
  if (pending) {
    o->pending = 1;
    o->pending_key = s->ct.key;
    if (alias) {
      o->pending_alias = 1;
      nf_ct_alias_key(&o->pending_alias_key, &s->nat.reply, &s->ct, &s->nat);
    }
  }
  return 0;
}

/* The end of an OUTPUT run whose nat OUTPUT changed the destination: the
 * packet is routed again (nf_reroute; no route: dropped, as the kernel
 * does), its connection confirmed with its source binding pending, and it
 * is redirected to the new route's device with bpf_redirect_neigh, which
 * routes it out of there (over lo with a local route for this host); that
 * device's egress run judges POSTROUTING through the hint left here.
 * skb->cb as nf_tc leaves it, cb[4] the device. Global: verified once. */
NF_SUBPROG int nf_output_rerouted(struct __sk_buff* skb, struct nf_scratch* s, __u64 now, __u32 ct_needed) {
  if (!skb || !s) return TC_ACT_SHOT;
  struct nf_ct_res* ct = &s->ct;
  int oif = nf_reroute(skb, s);
  if (oif == 0) oif = NF_LOOPBACK_IFINDEX;
  int accepted = oif > 0;
  int alias = 0;
  if (ct_needed && !s->notrack) alias = nf_ct_finish(ct, now, accepted, s->ctmark, &s->nat, accepted && s->nat.active);
  if (accepted) nf_leave_hint(s, 1, 1, ct_needed && !s->notrack && ct->track && !ct->exists, alias);
  skb->cb[0] = 0x100 | (accepted ? NF_ACT_ACCEPT : NF_ACT_DROP);
  skb->cb[1] = s->srch.rule;
  skb->cb[2] = s->srch.stage;
  skb->cb[3] = ct->state | (ct->dir << 8);
  skb->cb[4] = accepted ? (__u32)oif : 0;
  if (!accepted) return TC_ACT_SHOT;
  if (s->p.mark != skb->mark) skb->mark = s->p.mark;
  return bpf_redirect_neigh((__u32)oif, 0, 0, 0);
}

/* Later nf2bpf runs find every map through the programs attached to
 * interfaces (pins can vanish with an `ip netns exec` mount namespace), so a
 * map no code reads is still referenced here, behind a constant that is
 * never set. */
const volatile __u32 nf_reference_all_maps = 0;

static __always_inline int nf_tc(struct __sk_buff* skb, int ingress) {
  __u32 zero = 0;
  if (nf_reference_all_maps && bpf_map_lookup_elem(&nf_state, &zero)) return TC_ACT_UNSPEC;
  /* Judged already on the device it came in by, and handed to lo (below):
   * lo's egress and ingress runs pass it. skb->cb survives the way there
   * (bpf_redirect_neigh, lo's transmit, its backlog). */
  if (skb->ifindex == NF_LOOPBACK_IFINDEX && skb->cb[0] == (0x100 | NF_ACT_ACCEPT) &&
      (skb->cb[3] >> 16) == NF_CB_TO_LO) {
    if (ingress) skb->cb[3] = 0;
    return TC_ACT_OK;
  }
  struct nf2bpf_control* ctrl = bpf_map_lookup_elem(&nf_control, &zero);
  if (!ctrl || ctrl->abi != NF2BPF_ABI_VERSION) return TC_ACT_OK;
  __u32 live = ctrl->live & 1;
  struct nf2bpf_gen_cfg* cfgp = bpf_map_lookup_elem(&nf_cfg, &live);
  if (!cfgp) return TC_ACT_OK;
  struct nf2bpf_gen_cfg cfg = *cfgp;
  if (skb->vlan_present) return TC_ACT_OK; /* judged on the VLAN device */
  __u32 which = ingress ? 0 : 1;
  struct nf_scratch* s = bpf_map_lookup_elem(&nf_scratch, &which);
  if (!s) return TC_ACT_OK;
  __builtin_memset(&s->p, 0, sizeof(s->p));
  if (nf_parse_l3(skb, 0, 0, skb->protocol, &s->p) < 0) return TC_ACT_OK;
  /* A fragment where the kernel would reassemble (lib/frag.h): a later one
   * takes its first one's outcome, a first one's is kept. */
  int frag_out = nf_frag_follow(skb, s, which, cfg.ct_needed);
  if (frag_out >= 0) return frag_out;
  struct nf_pkt* p = &s->p;
  p->len = skb->len;
  p->mark = skb->mark;
  p->pkttype = skb->pkt_type;
  s->generation = ctrl->generation;
  s->ctmark = 0;
  s->notrack = 0;
  s->has_ct = 0;
  s->srch.rule = NF_NONE; /* no stage has decided yet (read back by test runs) */
  s->nat.active = 0;
  s->nat.binding = 0;
  s->nat.flags = 0;
  s->nat.passed = 0;
  s->nat.changed = 0;
  s->nat.had_alias = 0;
  s->nat.hint = 0;
  s->nat.soft_csum = 0;
  s->srch.stage = NF_NONE;
  if (cfg.slots_used || 1) {
    __u8 mac[6];
    if (bpf_skb_load_bytes_relative(skb, 6, mac, 6, BPF_HDR_START_MAC) == 0)
      p->src_mac = (__u64)mac[0] << 40 | (__u64)mac[1] << 32 | (__u64)mac[2] << 24 | (__u64)mac[3] << 16 |
                   (__u64)mac[4] << 8 | mac[5];
  }

  __u64 now = bpf_ktime_get_ns();
  struct nf_ct_res* ct = &s->ct;
  __builtin_memset(ct, 0, sizeof(*ct));
  __u32 verdict = NF_ACT_ACCEPT;
  __u32 first_hook, second_hook = NF_HOOK_MAX;
  int confirm = 1;
  int unrouted = 0; /* the kernel's routing drops it: its new connection is never confirmed */
  /* A local packet coming back in on lo: OUTPUT and POSTROUTING judged it at
   * lo's egress and conntrack confirmed it there; PREROUTING and INPUT see
   * it with the connection OUTPUT gave it. */
  int looped = ingress && skb->ifindex == NF_LOOPBACK_IFINDEX;
  /* REJECT's answer to a packet a run rejected (lib/reject.h): a packet this
   * host sends, judged as a local one, with the rejected packet's
   * connection (and so again on lo's ingress run, for a local sender). */
  s->answer = 0;
  s->tcpmss = 0;
  s->tcpmss_pmtu = 0;
  s->tcpmss_insert = 0;
  s->tos_set = 0;
  s->answer_ct = 0;
  s->answer_mark = 0;
  if ((skb->cb[3] >> 16) == NF_CB_ANSWER && nf_answer_begin(skb, s, ingress, looped) && !ingress &&
      (skb->cb[3] & NF_CB_PEER6) && !nf_answer_peer6(skb, s))
    return TC_ACT_SHOT; /* its peer's ICMP rate limit */
  if (ingress) {
    p->iif = skb->ifindex;
    p->oif = 0;
    first_hook = NF_HOOK_PREROUTING;
  } else if (skb->ingress_ifindex && !s->answer) {
    /* Forwarded: FORWARD ran at ingress; only POSTROUTING remains. */
    p->iif = skb->ingress_ifindex;
    p->oif = skb->ifindex;
    first_hook = NF_HOOK_POSTROUTING;
    confirm = 0;
  } else {
    p->iif = 0;
    p->oif = skb->ifindex;
    first_hook = NF_HOOK_OUTPUT;
    second_hook = NF_HOOK_POSTROUTING;
    /* A local packet its OUTPUT run routed again and redirected here: only
     * POSTROUTING remains, as for a forwarded packet (the connection
     * through the same hint). */
    if (!s->answer && nf_rerouted_here(s)) {
      first_hook = NF_HOOK_POSTROUTING;
      second_hook = NF_HOOK_MAX;
      confirm = 0;
    }
  }
  /* The sending socket, for -m owner: a REJECT answer's is the kernel's
   * ICMP socket (icmp_send) or none (nf_send_reset's RST). */
  if (!ingress) {
    if (s->answer)
      p->sk = p->l4proto == IPPROTO_TCP ? NF_SK_NONE : NF_SK_KERNEL;
    else if (cfg.owner)
      nf_sock_owner(skb, s);
  }
  /* The destination OUTPUT starts with (nat OUTPUT may change it). */
  __u64 dst_in[2];
  __builtin_memcpy(dst_in, p->daddr, 16);

  __u32 decided_hook = first_hook; /* the hook of the stage that decided */
  /* Stages before conntrack (raw) see no connection. */
  nf_classify(s, live, cfg.slots_used, NF_CT_STATE_INVALID, 2);
  verdict = nf_run_hook(skb, s, which, live, first_hook, NF_PHASE_BEFORE_CT, cfg.max_steps);
  if (verdict != NF_ACT_ACCEPT) goto out;

  if (cfg.ct_needed) {
    if (s->notrack && !looped) { /* NOTRACK does nothing to a packet that has its connection */
      ct->state = NF_CT_STATE_UNTRACKED;
      ct->dir = 2;
    } else {
      /* A forwarded packet's egress run: the kernel's skb carries its
       * connection from PREROUTING to POSTROUTING; the ingress run, just
       * before on this CPU, left its key (NAT may have made the packet's
       * tuple one no key names). */
      s->nat.hint = 0;
      if (!confirm) {
        struct nf_scratch* in = bpf_map_lookup_elem(&nf_scratch, &zero);
        if (in && in->fwd) {
          nf_pkt_tuple(p, &s->nat.cand);
          if (nf_tuple_eq(&in->fwd_tuple, &s->nat.cand)) {
            s->nat.hint = 1;
            s->nat.hint_key = in->fwd_key;
          }
          in->fwd = 0;
        }
      }
      nf_ct_csum(skb, s, ingress && !looped);
      nf_ct_lookup(p, now, ct, looped, &s->nat);
      /* (an answer carrying its packet's connection is not tracked again:
       * nf_conntrack_in leaves a packet that has one alone) */
      if (confirm && !looped && !s->answer_ct) nf_ct_update(ct, now);
      s->ctmark = ct->ctmark;
      s->has_ct = (ct->state & (NF_CT_STATE_NEW | NF_CT_STATE_ESTABLISHED | NF_CT_STATE_RELATED)) != 0;
      nf_nat_begin(s, ct, now, cfg.nat_fams, looped, !confirm);
    }
  } else {
    ct->state = NF_CT_STATE_UNTRACKED;
    ct->dir = 2;
  }
  if (s->answer_ct) nf_answer_ct(s);
  if (s->answer && !ingress) nf_answer_nat(s);
  s->ctstate = ct->state;
  s->ctdir = ct->dir;
  nf_classify(s, live, cfg.slots_used & ((1u << NF_SLOT_CTSTATE) | (1u << NF_SLOT_CTDIR)), ct->state, ct->dir);

  verdict = nf_run_hook(skb, s, which, live, first_hook, NF_PHASE_AFTER_CT, cfg.max_steps);
  if (verdict != NF_ACT_ACCEPT) goto out;

  /* The kernel routes a local packet again when nat OUTPUT changed its
   * destination; its POSTROUTING is then the run on the new route's device. */
  if (first_hook == NF_HOOK_OUTPUT && s->nat.changed && nf_dst_moved(dst_in, p->daddr))
    return nf_output_rerouted(skb, s, now, cfg.ct_needed);
  if (ingress) {
    __u32 oif = 0;
    int r = nf_route(skb, p, &oif, &s->nat.fib);
    if (r < 0) {
      unrouted = 1;
      goto out;
    }
    if (r == 0) {
      p->oif = oif;
      if (cfg.slots_used & (1u << NF_SLOT_OIF)) s->cls[NF_SLOT_OIF] = nf_iface_class(live, NF_SLOT_OIF, oif);
      second_hook = NF_HOOK_FORWARD;
      /* ip_forward()/ip6_forward() decrement the TTL before the FORWARD hook. */
      if (p->ttl) p->ttl--;
      if (cfg.slots_used & (1u << NF_SLOT_TTL)) s->cls[NF_SLOT_TTL] = nf_small_class(live, NF_SMALL_TTL_BASE + p->ttl);
    } else {
      second_hook = NF_HOOK_INPUT;
    }
  }
  if (second_hook < NF_HOOK_MAX) {
    decided_hook = second_hook;
    verdict = nf_run_hook(skb, s, which, live, second_hook, NF_PHASE_ALL, cfg.max_steps);
  }

out:;
  /* The rewrites of the statements that ran (a REJECT's answer quotes the
   * packet as they left it). */
  int kept = verdict == NF_ACT_ACCEPT || verdict == NF_ACT_REJECT;
  if (kept && (s->tcpmss || s->tcpmss_pmtu) && nf_tcpmss(skb, s) < 0) verdict = NF_ACT_DROP;
  if (kept && s->tos_set && nf_store_tos(skb, s) < 0) verdict = NF_ACT_DROP;
  /* (For a looped packet only a connmark change remains to be stored.) */
  int accepted = verdict == NF_ACT_ACCEPT;
  int forwarding = ingress && second_hook == NF_HOOK_FORWARD;
  int alias = 0;
  if (cfg.ct_needed && confirm && (looped || !s->notrack))
    alias = nf_ct_finish(ct, now, accepted && !unrouted, s->ctmark, &s->nat, forwarding && s->nat.active);
  /* A forwarded connection's source binding is made at its POSTROUTING. */
  if (!confirm && s->nat.binding && accepted) nf_ct_finish(ct, now, 1, ct->ctmark, &s->nat, 0);
  /* Netfilter confirms a forwarded packet's new connection only after
   * POSTROUTING. Ingress creates it once FORWARD accepts and remembers it;
   * the egress program, which runs next for the same packet on the same CPU,
   * removes it again when POSTROUTING drops the packet. */
  if (ingress) {
    nf_leave_hint(s, forwarding && accepted, 0,
                  cfg.ct_needed && !s->notrack && forwarding && accepted && ct->track && !ct->exists, alias);
  } else if (!confirm) {
    struct nf_scratch* in = bpf_map_lookup_elem(&nf_scratch, &zero);
    if (in && in->pending) {
      if (!accepted && nf_ct_key_eq(&in->pending_key, &ct->key)) {
        bpf_map_delete_elem(&nf_ct, &in->pending_key);
        if (in->pending_alias) bpf_map_delete_elem(&nf_ct, &in->pending_alias_key);
      }
      in->pending = 0;
    }
  }
  /* What decided, for BPF_PROG_TEST_RUN callers (`diff --kernel`): the
   * action, the deciding rule (or a stage's policy counter) of the last stage
   * that ran, and the connection state the rules saw. skb->cb is the qdisc
   * layer's scratch area; nothing after this program reads it. */
  skb->cb[0] = 0x100 | verdict;
  skb->cb[1] = s->srch.rule;
  skb->cb[2] = s->srch.stage;
  skb->cb[3] = ct->state | (ct->dir << 8);
  skb->cb[4] = forwarding ? p->oif : 0; /* ingress: routed on (FORWARD) out of this device */
  if (verdict == NF_ACT_ACCEPT) {
    if (p->mark != skb->mark) skb->mark = p->mark;
    if (!ingress && s->answer) {
      nf_answer_pass(skb, s);
      nf_answer_done(s, 1, now);
    }
    /* INPUT's NAT point gave the packet one of this host's addresses as its
     * source (the reply of the host's own connection to its own address,
     * which nat OUTPUT DNATed elsewhere; an SNAT in nat INPUT). The kernel
     * does that after its input routing; here it is done before, and that
     * routing would drop the packet as a martian source. It is handed to lo
     * instead, routed there by bpf_redirect_neigh with this host's local
     * route, which delivers it as the kernel would have. */
    if (ingress && !looped && second_hook == NF_HOOK_INPUT && (s->nat.changed & 2) &&
        (nf_addr_type_of(p->family, p->saddr) & 4)) {
      skb->cb[3] |= NF_CB_TO_LO << 16;
      return bpf_redirect_neigh(NF_LOOPBACK_IFINDEX, 0, 0, 0);
    }
    nf_frag_note(s, 1);
    return TC_ACT_OK;
  }
  nf_frag_note(s, 0);
  int act = TC_ACT_SHOT;
  if (verdict == NF_ACT_REJECT && !unrouted && decided_hook != NF_HOOK_POSTROUTING)
    act = nf_reject(skb, s, live, s->srch.rule, decided_hook);
  /* (an answer rejected in turn keeps the connection for its own answer) */
  if (!ingress && s->answer && act == TC_ACT_SHOT) nf_answer_done(s, 0, now);
  return act;
}

SEC("tc")
int nf2bpf_ingress(struct __sk_buff* skb) { return nf_tc(skb, 1); }

SEC("tc")
int nf2bpf_egress(struct __sk_buff* skb) { return nf_tc(skb, 0); }

/* XDP: drops what the stateless early-drop stage drops, passes the rest to
 * TC, which decides everything else (and again for passed packets). */
SEC("xdp")
int nf2bpf_xdp(struct xdp_md* ctx) {
  __u32 zero = 0;
  struct nf2bpf_control* ctrl = bpf_map_lookup_elem(&nf_control, &zero);
  if (!ctrl || ctrl->abi != NF2BPF_ABI_VERSION) return XDP_PASS;
  __u32 live = ctrl->live & 1;
  struct nf2bpf_gen_cfg* cfg = bpf_map_lookup_elem(&nf_cfg, &live);
  if (!cfg || !cfg->xdp_stage) return XDP_PASS;
  __u32 which = 2;
  struct nf_scratch* s = bpf_map_lookup_elem(&nf_scratch, &which);
  if (!s) return XDP_PASS;
  __builtin_memset(&s->p, 0, sizeof(s->p));
  struct ethhdr eth;
  if (bpf_xdp_load_bytes(ctx, 0, &eth, sizeof(eth))) return XDP_PASS;
  if (nf_parse_l3(ctx, 1, sizeof(eth), eth.h_proto, &s->p) < 0) return XDP_PASS;
  struct nf_pkt* p = &s->p;
  p->iif = ctx->ingress_ifindex;
  p->len = ctx->data_end - ctx->data;
  if (eth.h_dest[0] & 1) p->pkttype = (eth.h_dest[0] == 0xff && eth.h_dest[1] == 0xff) ? 1 : 2;
  p->src_mac = (__u64)eth.h_source[0] << 40 | (__u64)eth.h_source[1] << 32 | (__u64)eth.h_source[2] << 24 |
               (__u64)eth.h_source[3] << 16 | (__u64)eth.h_source[4] << 8 | eth.h_source[5];
  s->generation = ctrl->generation;
  s->has_ct = 0;
  /* Only packets to this host's own addresses go to INPUT for certain. */
  if (!(nf_addr_type_of(p->family, p->daddr) & 4)) return XDP_PASS;
  nf_classify(s, live, cfg->slots_used, NF_CT_STATE_INVALID, 2);
  void* stm = nf_inner(&nf_stages, live);
  __u32 si = cfg->xdp_stage - 1;
  struct nf2bpf_stage* st = stm ? bpf_map_lookup_elem(stm, &si) : 0;
  if (!st) return XDP_PASS;
  __u8 fam = p->family == 4 ? NF_FAM_V4 : NF_FAM_V6;
  if (!(st->family_mask & fam)) return XDP_PASS;
  struct nf2bpf_stage stc = *st;
  __u32 v = nf_run_stage(s, which, live, si, &stc, cfg->max_steps);
  if (v != NF_ACT_DROP) return XDP_PASS;
  /* Netfilter updates a tracked connection before INPUT drops its packet;
   * so does the TC program. Do the same here, since TC will not see it. */
  if (cfg->ct_needed) {
    struct nf_ct_res ct = {};
    __u64 now = bpf_ktime_get_ns();
    s->nat.active = 0;
    s->nat.hint = 0;
    nf_ct_lookup(p, now, &ct, 0, &s->nat);
    nf_ct_update(&ct, now);
    nf_ct_finish(&ct, now, 0, ct.ctmark, &s->nat, 0);
  }
  return XDP_DROP;
}
