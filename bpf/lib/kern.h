/* What the TC programs read of the kernel's own structures, through BTF
 * (bpf_cast_to_kern_ctx, CO-RE field offsets of the running kernel), so
 * only the fields named here are assumed:
 *
 *   the sending socket, as xt_owner (-m owner) and nft's meta skuid/skgid
 *   read it at OUTPUT and POSTROUTING: skb_to_full_sk(skb) (a SYN-ACK's
 *   request socket stands for its listener), then sk->sk_socket and its
 *   file's credentials;
 *   the IPv6 route a packet leaves by (skb's dst), for its prefix length;
 *   the skb's checksum state (ip_summed, csum_valid, csum_start), for
 *   skb_csum_unnecessary (lib/csum.h). */
#ifndef NF2BPF_KERN_H
#define NF2BPF_KERN_H

#include <bpf/bpf_core_read.h>

extern void* bpf_cast_to_kern_ctx(void* obj) __ksym;
extern void* bpf_rdonly_cast(const void* obj, __u32 btf_id) __ksym;

struct sock___nf;
struct sock_common___nf {
  unsigned char skc_state;
  void* skc_listener; /* a request socket's listener (rsk_listener), in a union */
} __attribute__((preserve_access_index));
struct cred___nf {
  struct {
    unsigned int val;
  } fsuid, fsgid;
} __attribute__((preserve_access_index));
struct file___nf {
  const struct cred___nf* f_cred;
} __attribute__((preserve_access_index));
struct socket___nf {
  struct file___nf* file;
} __attribute__((preserve_access_index));
struct sock___nf {
  struct sock_common___nf __sk_common;
  struct socket___nf* sk_socket;
} __attribute__((preserve_access_index));
struct sk_buff___nf {
  struct sock___nf* sk;
  unsigned long _skb_refdst; /* the dst_entry, SKB_DST_NOREF in bit 0 */
  __u8 ip_summed : 2;
  __u8 csum_valid : 1;
  __u16 csum_start; /* CHECKSUM_PARTIAL's, from head */
  unsigned char *head, *data;
} __attribute__((preserve_access_index));
struct rt6key___nf {
  int plen;
} __attribute__((preserve_access_index));
struct rt6_info___nf {
  struct rt6key___nf rt6i_dst; /* the route's destination prefix */
} __attribute__((preserve_access_index));

#define NF_TCP_TIME_WAIT 6
#define NF_TCP_NEW_SYN_RECV 12

/* s->p.sk, sk_uid and sk_gid for the packet skb sends (a global function:
 * verified once). */
__attribute__((noinline)) int nf_sock_owner(struct __sk_buff* skb, struct nf_scratch* s) {
  if (!s) return 0;
  struct nf_pkt* p = &s->p;
  struct sk_buff___nf* kskb = bpf_cast_to_kern_ctx(skb);
  struct sock___nf* sk = kskb->sk;
  p->sk = NF_SK_NONE;
  if (!sk) return 0;
  __u8 state = sk->__sk_common.skc_state;
  if (state == NF_TCP_TIME_WAIT) return 0; /* not a full socket: no sk_socket */
  if (state == NF_TCP_NEW_SYN_RECV) {
    /* The verifier reads the union as its first member, a number: cast. */
    sk = bpf_rdonly_cast(sk->__sk_common.skc_listener, bpf_core_type_id_kernel(struct sock___nf));
    if (!sk) return 0;
  }
  struct socket___nf* sock = sk->sk_socket;
  if (!sock) return 0;
  struct file___nf* file = sock->file;
  if (!file) {
    p->sk = NF_SK_KERNEL;
    return 0;
  }
  const struct cred___nf* cred = file->f_cred;
  if (!cred) return 0;
  p->sk = NF_SK_FILE;
  p->sk_uid = cred->fsuid.val;
  p->sk_gid = cred->fsgid.val;
  return 0;
}

/* The prefix length of the IPv6 route skb leaves by (an rt6_info's copy of
 * its fib6_info's: 128 for a cached exception), -1 without a route. */
static __always_inline int nf_skb_route6_plen(struct __sk_buff* skb) {
  struct sk_buff___nf* kskb = bpf_cast_to_kern_ctx(skb);
  unsigned long dst = kskb->_skb_refdst & ~1UL;
  if (!dst) return -1;
  struct rt6_info___nf* rt = bpf_rdonly_cast((void*)dst, bpf_core_type_id_kernel(struct rt6_info___nf));
  return rt->rt6i_dst.plen;
}

/* The skb's checksum state: NF_CSUM_STATE_GOOD where skb_csum_unnecessary
 * holds (CHECKSUM_UNNECESSARY, csum_valid, or CHECKSUM_PARTIAL starting
 * inside the data), NF_CSUM_STATE_COMPLETE (a device's sum, not yet
 * checked), NF_CSUM_STATE_NONE. */
#define NF_CSUM_STATE_GOOD 0
#define NF_CSUM_STATE_NONE 1
#define NF_CSUM_STATE_COMPLETE 2
static __always_inline int nf_skb_csum_state(struct __sk_buff* skb) {
  struct sk_buff___nf* kskb = bpf_cast_to_kern_ctx(skb);
  __u32 summed = (__u32)BPF_CORE_READ_BITFIELD(kskb, ip_summed);
  if (summed == 1 || BPF_CORE_READ_BITFIELD(kskb, csum_valid)) return NF_CSUM_STATE_GOOD;
  if (summed == 3) {
    long headroom = (long)(kskb->data - kskb->head);
    return (long)kskb->csum_start - headroom >= 0 ? NF_CSUM_STATE_GOOD : NF_CSUM_STATE_NONE;
  }
  return summed == 2 ? NF_CSUM_STATE_COMPLETE : NF_CSUM_STATE_NONE;
}

/* xt_owner's owner_mt (NF_OWNER_NFT: nft_meta_get_eval_skugid, where a
 * packet without a process's socket matches nothing). */
static __always_inline int nf_owner_ok(const struct nf_pkt* p, const struct nf2bpf_rule* r) {
  __u32 match = r->owner_match, inv = r->owner_inv;
  if (p->sk != NF_SK_FILE && (match & NF_OWNER_NFT)) return 0;
  if (p->sk == NF_SK_NONE) return ((match ^ inv) & (NF_OWNER_UID | NF_OWNER_GID | NF_OWNER_SOCKET)) == 0;
  if (match & inv & NF_OWNER_SOCKET) return 0;
  if (p->sk == NF_SK_KERNEL) return ((match ^ inv) & (NF_OWNER_UID | NF_OWNER_GID)) == 0;
  if (match & NF_OWNER_UID) {
    int in = p->sk_uid >= r->owner_uid[0] && p->sk_uid <= r->owner_uid[1];
    if (in == !!(inv & NF_OWNER_UID)) return 0;
  }
  if (match & NF_OWNER_GID) {
    int in = p->sk_gid >= r->owner_gid[0] && p->sk_gid <= r->owner_gid[1];
    if (in == !!(inv & NF_OWNER_GID)) return 0;
  }
  return 1;
}

#endif
