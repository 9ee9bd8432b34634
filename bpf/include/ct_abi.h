/* Connection tracking data shared by the BPF programs (bpf/lib/maps.h,
 * bpf/lib/ct.h) and the userspace model that mirrors them (verify/model.cpp):
 * the nf_ct map's key and value, the state and flag bits, netfilter's TCP
 * state machine and its default timeouts. Defined once here so the two cannot
 * drift apart; the code that uses them stays mirrored line by line. Plain C,
 * fixed-width types; included by BPF code and by C++.
 *
 * The reference evaluator (verify/conntrack.cpp) must not include this: it is
 * the independent oracle and derives the same facts from the kernel's
 * behaviour on its own. */
#ifndef NF2BPF_CT_ABI_H
#define NF2BPF_CT_ABI_H

#include "abi.h"

/* Connection states as the rules see them (xt_state's bits). */
#define NF_CT_STATE_INVALID 1
#define NF_CT_STATE_ESTABLISHED 2
#define NF_CT_STATE_RELATED 4
#define NF_CT_STATE_NEW 8
#define NF_CT_STATE_UNTRACKED 64

/* One entry per flow, both directions: the key is normalised so that a
 * packet and its reply find the same entry. */
struct nf_ct_key {
  nf_u8 a[16], b[16]; /* endpoints, ordered so a <= b */
  nf_u16 pa, pb;      /* ports (or ICMP id) of a and b */
  nf_u8 proto;
  nf_u8 pad[3];                /* pad[0]: the request type of an ICMP flow */
} __attribute__((aligned(4))); /* addresses are copied as words */

/* nf_ct_val.flags */
#define NF_CT_SEEN_REPLY 1
#define NF_CT_ASSURED 2
#define NF_CT_ORIG_IS_A 4
#define NF_CT_SNAT 8         /* the connection's source was translated (ct status snat) */
#define NF_CT_DNAT 16        /* its destination was (ct status dnat) */
#define NF_CT_ALIAS 32       /* keyed by a NATed connection's reply tuple: names the connection by `orig` */
#define NF_CT_SRC_PENDING 64 /* created by a forwarded first packet before its source NAT point (POSTROUTING) */

/* An alias's expires_ns: it lives as long as the connection it names. */
#define NF_CT_ALIAS_EXPIRES (~(nf_u64)0)

/* One direction of a connection: the packet's addresses and ports (ICMP:
 * the identifier in both ports). */
struct nf_ct_tuple {
  nf_u8 src[16], dst[16];
  nf_u16 sport, dport;
} __attribute__((aligned(4))); /* addresses are copied as words */

/* The entry of a connection (keyed by its original tuple) holds its state.
 * A NATed connection (NF_CT_SNAT / NF_CT_DNAT) also stores both tuples, as
 * the kernel's nf_conn does: `orig` as its first packet came in, `reply` as
 * the answer to the translated packet comes back; and a second entry, the
 * alias (NF_CT_ALIAS, the same tuples, no state, no timeout of its own),
 * keyed by the reply tuple, finds the connection from the other side. */
struct nf_ct_val {
  nf_u64 expires_ns;
  nf_u32 mark;
  nf_u8 tcp_state;
  nf_u8 flags;
  nf_u8 pad[2];
  struct nf_ct_tuple orig, reply;
};

/* The nf_nat_src map (the kernel's nf_nat_bysource): a connection's
 * original source — address, port (ICMP: identifier), protocol — names the
 * newest connection from it, by its entry's key, so a later connection from
 * the same source can take the same source mapping (find_appropriate_src). */
struct nf_nat_src_key {
  nf_u8 addr[16];
  nf_u16 port;
  nf_u8 proto;
  nf_u8 pad;
} __attribute__((aligned(4)));

/* TCP states with netfilter's short names (nf_conntrack_proto_tcp.c): none,
 * SYN sent, SYN received, established, FIN wait, close wait, last ACK, time
 * wait, close, SYN sent 2 (simultaneous open). sIV (invalid) and sIG
 * (ignore) are results of the table, never stored. */
enum nf_tcp_state { sNO, sSS, sSR, sES, sFW, sCW, sLA, sTW, sCL, sS2, sIV, sIG };

/* [dir][index: syn, synack, fin, ack, rst, none][old state] */
static const nf_u8 nf_tcp_table[2][6][10] = {
    {
        /* original */
        {sSS, sSS, sIG, sIG, sIG, sIG, sIG, sSS, sSS, sS2},
        {sIV, sIV, sSR, sIV, sIV, sIV, sIV, sIV, sIV, sSR},
        {sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV},
        {sES, sIV, sES, sES, sCW, sCW, sTW, sTW, sCL, sIV},
        {sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL},
        {sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV},
    },
    {
        /* reply */
        {sIV, sS2, sIV, sIV, sIV, sIV, sIV, sSS, sIV, sS2},
        {sIV, sSR, sIG, sIG, sIG, sIG, sIG, sIG, sIG, sSR},
        {sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV},
        {sIV, sIG, sSR, sES, sCW, sCW, sTW, sTW, sCL, sIG},
        {sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL},
        {sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV},
    },
};

/* Timeouts in seconds (netfilter defaults): TCP by state, UDP (and UDP-Lite)
 * before and after a reply, ICMP, any other protocol. */
static const nf_u32 nf_tcp_timeout[10] = {0, 120, 60, 432000, 120, 60, 30, 120, 10, 120};
#define NF_CT_UDP_TIMEOUT 30
#define NF_CT_UDP_STREAM_TIMEOUT 120
#define NF_CT_ICMP_TIMEOUT 30
#define NF_CT_GENERIC_TIMEOUT 600

#define NF_SEC 1000000000ULL

/* One -m connlimit list (nf_conncount's per-key list): keyed by the
 * generation (a new policy's rules count afresh, as a reloaded ruleset's
 * do), the rule's limit index and the masked address; the connections in the
 * order they were added, with the jiffy and CPU that added each
 * (find_or_evict's age rule). At most NF_CONNLIMIT_CONNS a key. */
#define NF_CONNLIMIT_KEYS 8192
struct nf2bpf_connlimit_key {
  nf_u64 generation;
  nf_u32 limit;
  nf_u8 family;
  nf_u8 pad[3];
  nf_u8 addr[16];
};
struct nf2bpf_connlimit_conn {
  struct nf_ct_key key;
  nf_u32 jiffies32, cpu;
};
struct nf2bpf_connlimit_val {
  nf_u32 count, last_gc;
  struct nf2bpf_connlimit_conn conns[NF_CONNLIMIT_CONNS];
};

/* Conntrack verifies a transport checksum of at most this many bytes
 * (bpf/lib/csum.h: 64-byte steps, then a short one); a longer one is taken
 * as right. */
#define NF_CSUM_STEPS 160
#define NF_CSUM_MAX (NF_CSUM_STEPS * 64 + 63)

#endif /* NF2BPF_CT_ABI_H */
