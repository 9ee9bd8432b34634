/* The contract between the policy compiler (userspace), the loader and the
 * fixed BPF programs: map layouts and value structs. Plain C, fixed-width
 * types, no pointers; included by BPF code and by C++.
 *
 * Classifier in one paragraph (docs/design.md has the full story): every
 * packet field a rule can test is first mapped to a small "class" id by one
 * lookup (LPM trie for addresses, flat arrays for ports/ICMP/flags/...,
 * a hash for interfaces). Rules become exact-match entries over the class ids
 * of the fields they constrain, grouped into "tuples" (which fields are
 * constrained). Finding the first matching rule costs one hash lookup per
 * tuple, independent of the number of rules. */
#ifndef NF2BPF_ABI_H
#define NF2BPF_ABI_H

#ifdef __cplusplus
#include <cstdint>
typedef uint8_t nf_u8;
typedef uint16_t nf_u16;
typedef uint32_t nf_u32;
typedef uint64_t nf_u64;
typedef int32_t nf_s32;
#else
typedef __u8 nf_u8;
typedef __u16 nf_u16;
typedef __u32 nf_u32;
typedef __u64 nf_u64;
typedef __s32 nf_s32;
#endif

#define NF2BPF_ABI_VERSION 10

/* Classified key slots. */
enum nf2bpf_slot {
  NF_SLOT_SADDR = 0, /* LPM */
  NF_SLOT_DADDR,     /* LPM */
  NF_SLOT_SPORT,     /* small array */
  NF_SLOT_DPORT,
  NF_SLOT_PROTO,
  NF_SLOT_ICMP, /* family*65536 + (type << 8 | code) */
  NF_SLOT_CTSTATE,
  NF_SLOT_TCPFLAGS,
  NF_SLOT_PKTTYPE,
  NF_SLOT_LENGTH,
  NF_SLOT_TTL,
  NF_SLOT_NFPROTO,
  NF_SLOT_SADDRTYPE,
  NF_SLOT_DADDRTYPE,
  NF_SLOT_CTDIR,
  NF_SLOT_FRAG,
  NF_SLOT_TOS, /* the IPv4 TOS / IPv6 traffic class byte: DSCP << 2 | ECN */
  NF_SLOT_IIF, /* iface hash */
  NF_SLOT_OIF, /* iface hash */
  NF_SLOT_MAX
};

/* Layout of the "small" class array: each slot owns [base, base + size),
 * where the last index (size - 1) is the "field absent" entry (no ports on
 * ICMP, no ICMP header on TCP, later fragments ...). */
#define NF_SMALL_SPORT_BASE 0u
#define NF_SMALL_SPORT_SIZE 65537u
#define NF_SMALL_DPORT_BASE (NF_SMALL_SPORT_BASE + NF_SMALL_SPORT_SIZE)
#define NF_SMALL_DPORT_SIZE 65537u
#define NF_SMALL_PROTO_BASE (NF_SMALL_DPORT_BASE + NF_SMALL_DPORT_SIZE)
#define NF_SMALL_PROTO_SIZE 257u
#define NF_SMALL_ICMP_BASE (NF_SMALL_PROTO_BASE + NF_SMALL_PROTO_SIZE)
#define NF_SMALL_ICMP_SIZE 131073u /* [0,65536) ICMPv4, [65536,131072) ICMPv6 */
#define NF_SMALL_CTSTATE_BASE (NF_SMALL_ICMP_BASE + NF_SMALL_ICMP_SIZE)
#define NF_SMALL_CTSTATE_SIZE 257u
#define NF_SMALL_TCPFLAGS_BASE (NF_SMALL_CTSTATE_BASE + NF_SMALL_CTSTATE_SIZE)
#define NF_SMALL_TCPFLAGS_SIZE 257u
#define NF_SMALL_PKTTYPE_BASE (NF_SMALL_TCPFLAGS_BASE + NF_SMALL_TCPFLAGS_SIZE)
#define NF_SMALL_PKTTYPE_SIZE 257u
#define NF_SMALL_LENGTH_BASE (NF_SMALL_PKTTYPE_BASE + NF_SMALL_PKTTYPE_SIZE)
#define NF_SMALL_LENGTH_SIZE 65537u
#define NF_SMALL_TTL_BASE (NF_SMALL_LENGTH_BASE + NF_SMALL_LENGTH_SIZE)
#define NF_SMALL_TTL_SIZE 257u
#define NF_SMALL_NFPROTO_BASE (NF_SMALL_TTL_BASE + NF_SMALL_TTL_SIZE)
#define NF_SMALL_NFPROTO_SIZE 257u
#define NF_SMALL_SADDRTYPE_BASE (NF_SMALL_NFPROTO_BASE + NF_SMALL_NFPROTO_SIZE)
#define NF_SMALL_SADDRTYPE_SIZE 4097u
#define NF_SMALL_DADDRTYPE_BASE (NF_SMALL_SADDRTYPE_BASE + NF_SMALL_SADDRTYPE_SIZE)
#define NF_SMALL_DADDRTYPE_SIZE 4097u
#define NF_SMALL_CTDIR_BASE (NF_SMALL_DADDRTYPE_BASE + NF_SMALL_DADDRTYPE_SIZE)
#define NF_SMALL_CTDIR_SIZE 3u
#define NF_SMALL_FRAG_BASE (NF_SMALL_CTDIR_BASE + NF_SMALL_CTDIR_SIZE)
#define NF_SMALL_FRAG_SIZE 3u
#define NF_SMALL_TOS_BASE (NF_SMALL_FRAG_BASE + NF_SMALL_FRAG_SIZE)
#define NF_SMALL_TOS_SIZE 257u
#define NF_SMALL_TOTAL (NF_SMALL_TOS_BASE + NF_SMALL_TOS_SIZE)

/* Hooks, in packet order. */
enum nf2bpf_hook {
  NF_HOOK_PREROUTING = 0,
  NF_HOOK_INPUT,
  NF_HOOK_FORWARD,
  NF_HOOK_OUTPUT,
  NF_HOOK_POSTROUTING,
  NF_HOOK_MAX
};

/* Rule actions. */
enum nf2bpf_action {
  NF_ACT_ACCEPT = 0,
  NF_ACT_DROP,
  NF_ACT_REJECT,
  NF_ACT_CONTINUE, /* statements only, then the next rule */
  NF_ACT_SKIP,     /* continue at rule skip_to */
  NF_ACT_NAT,      /* a nat chain's binding: nf2bpf_rule.nat names the range; the chain ends (accept) */
};

enum nf2bpf_stmt_kind {
  NF_STMT_LOG = 1,      /* ring buffer event */
  NF_STMT_SET_MARK,     /* mark = (mark & ~mask) ^ value */
  NF_STMT_SET_CTMARK,   /* ctmark = (ctmark & ~mask) ^ value */
  NF_STMT_SAVE_MARK,    /* ctmark = (ctmark & ~mask) | (mark & mask) */
  NF_STMT_RESTORE_MARK, /* mark = (mark & ~mask) | (ctmark & mask) */
  NF_STMT_NOTRACK,
  NF_STMT_TCPMSS,  /* TCPMSS: lower the MSS option to value, or (value 0) to the path MTU's;
                    * mask NF_TCPMSS_INSERT: a SYN without one gets one (xt_TCPMSS; nft's
                    * exthdr write changes an option only where there is one) */
  NF_STMT_SET_TOS, /* tos = (tos & ~mask) ^ value: the IPv4 TOS / IPv6 traffic class byte (DSCP, TOS) */
};

#define NF_TCPMSS_INSERT 1u

#define NF_MAX_TUPLE_SLOTS 12

/* Key of the rule-entry hash: which tuple, which entry of the chain of rules
 * sharing this key (seq), and the class ids of the tuple's slots in order. */
struct nf2bpf_entry_key {
  nf_u16 tuple;
  nf_u16 seq;
  nf_u32 cls[NF_MAX_TUPLE_SLOTS];
};

struct nf2bpf_entry_val {
  nf_u32 rule;     /* global rule index */
  nf_u32 has_next; /* an entry with seq + 1 exists */
};

struct nf2bpf_tuple {
  nf_u32 min_rule, max_rule; /* range of rule indices with entries here */
  nf_u8 nslots;
  nf_u8 slots[NF_MAX_TUPLE_SLOTS];
  nf_u8 pad[3];
};

/* family_mask bits */
#define NF_FAM_V4 1
#define NF_FAM_V6 2

struct nf2bpf_stage {
  nf_u32 first_rule, end_rule; /* [first, end) */
  nf_u32 tuple_first, tuple_count;
  nf_u32 policy_counter; /* counter index for the policy */
  nf_u8 policy;          /* NF_ACT_ACCEPT or NF_ACT_DROP */
  nf_u8 hook;
  nf_u8 family_mask;
  nf_u8 flags; /* NF_STAGE_* */
};

#define NF_STAGE_BEFORE_CT 1 /* priority below conntrack's (-200): raw tables */
#define NF_STAGE_NAT 2       /* a nat-type chain: runs at its hook's NAT point, for a connection's first packet */
#define NF_STAGE_AFTER_NAT 4 /* priority above the hook's NAT point (-100 dst, +100 src): sees the rewritten packet */

/* Per hook: the stages in order are stage_first .. stage_first + count. */
struct nf2bpf_hook_desc {
  nf_u32 stage_first, stage_count;
};

/* Residual checks run on a candidate rule after the classifier found it. */
#define NF_RES_MARK 1u
#define NF_RES_MARK_NEG 2u
#define NF_RES_CTMARK 4u
#define NF_RES_CTMARK_NEG 8u
#define NF_RES_LIMIT 16u
#define NF_RES_RANDOM 32u
#define NF_RES_MARK2 64u /* a second mark test (jump prefix + rule) */
#define NF_RES_MARK2_NEG 128u
#define NF_RES_MAC 256u /* source MAC equals mac */
#define NF_RES_MAC_NEG 512u
#define NF_RES_RANDOM_NEG 1024u
#define NF_RES_CTSTATUS 2048u /* the connection's NAT status is one ctstatus allows */
#define NF_RES_NTH 4096u      /* -m statistic --mode nth: see nf2bpf_rule.nth_* */
#define NF_RES_NTH_NEG 8192u
#define NF_RES_RECENT 16384u /* -m recent: see nf2bpf_rule.recent_* */
#define NF_RES_RECENT_NEG 32768u

/* nf2bpf_rule.recent_cmd: xt_recent's one command per match. */
enum nf2bpf_recent_cmd {
  NF_RECENT_SET = 1,
  NF_RECENT_CHECK,
  NF_RECENT_UPDATE,
  NF_RECENT_REMOVE,
};
/* nf2bpf_rule.recent_flags */
#define NF_RECENT_RDEST 1u /* the destination address (--rdest), else the source */
#define NF_RECENT_REAP 2u  /* --reap */
#define NF_RECENT_RTTL 4u  /* --rttl */
/* Conntrack tuple tests (--ctorigsrc ..., ct original ip daddr ...) in a
 * family with NAT: the connection's own tuples, which NAT made different from
 * the packet's; the tests are nf_nat[ct_range] and the entries after it while
 * NF_NAT_F_MORE is set (see NF_NAT_CT_*). */
#define NF_RES_CTTUPLE (1u << 20)
/* With NF_RES_NTH: the counter steps once per stage run for all the rules of
 * its slot, which read that one step (nft `numgen inc mod N`: one rule per
 * map element, nth_hit the element's value + 1; nft_ng_inc_gen steps once
 * per evaluation of the expression). The step is cached in nf_scratch's draw
 * cache under the slot's tag NF_NTH_ONCE_TAG | nth_slot. */
#define NF_RES_NTH_ONCE (1u << 21)
#define NF_NTH_ONCE_TAG 0x80000000u
/* -m owner (xt_owner) and nft meta skuid/skgid: the sending socket, at
 * egress. owner_match and owner_inv hold NF_OWNER_* bits as xt_owner's
 * match and invert do. */
#define NF_RES_OWNER (1u << 22)
#define NF_OWNER_UID 1u    /* its file's fsuid in owner_uid[0..1] */
#define NF_OWNER_GID 2u    /* its file's fsgid in owner_gid[0..1] */
#define NF_OWNER_SOCKET 4u /* --socket-exists */
#define NF_OWNER_NFT 8u    /* nft meta skuid/skgid: no socket or no file, no match (negated or not) */

struct nf2bpf_rule {
  nf_u8 action;
  nf_u8 reject_type;
  nf_u16 stmt_count;
  nf_u32 stmt_first;
  nf_u32 skip_to;  /* global rule index */
  nf_u32 residual; /* NF_RES_* */
  nf_u32 mark_mask, mark_value;
  nf_u32 mark2_mask, mark2_value;
  nf_u32 ctmark_mask, ctmark_value;
  nf_u32 limit;        /* index into the limit state map */
  nf_u32 random_below; /* NF_RES_RANDOM: matches when the draw (prandom_u32() >> 1) < random_below */
  nf_u32 src_chain;    /* index into the generation's chain list (userspace state) */
  nf_u32 ctstatus;     /* NF_RES_CTSTATUS: bit (snat | dnat << 1) set for each status that matches */
  nf_u64 mac;          /* NF_RES_MAC: 48-bit source MAC */
  nf_u32 src_line;     /* source line of the rule, for counters in `status` */
  nf_u32 nat;          /* NF_ACT_NAT: index into the generation's NAT ranges */
  /* NF_RES_NTH, checked after every other check of the rule (the compiler
   * only accepts rules whose statistic match comes after their other
   * matches): the source rule's counter nf_nth[nth_slot] counts the packets
   * that reached the match; the match holds when that count, this packet
   * included, is nth_hit modulo nth_every. xt_statistic's --every N
   * --packet P holds for the (P+1)th packet and every Nth after it, so
   * nth_hit = (P + 1) % N. Rules inlined from one source rule share its slot. */
  /* NF_RES_RANDOM (a rule has either): the draw's slot (NF_DRAW_CACHE). Rules
   * inlined from one statistic match (a jump's or goto's prefix, a numgen
   * vmap element) share one draw per stage run, as the kernel draws once. */
  nf_u32 nth_slot;
  nf_u32 nth_every;
  nf_u32 nth_hit;
  nf_u32 ct_range; /* NF_RES_CTTUPLE: index of its first test in nf_nat */
  /* NF_RES_RECENT, checked last like NF_RES_NTH (the compiler only accepts
   * rules whose recent match comes after their other matches): xt_recent's
   * match on the table nf_recent keys by recent_table, a hash of --name, so
   * a table outlives a policy swap that still names it. recent_mask is
   * --mask over the IPv4-mapped address (the first 12 bytes all ones for
   * IPv4). recent_ring is the table's stamp ring size - 1 (xt_recent's
   * nstamps_max_mask: the largest over the rules naming the table). */
  nf_u32 recent_table;
  nf_u32 recent_seconds;
  nf_u16 recent_hitcount;
  nf_u8 recent_cmd;   /* enum nf2bpf_recent_cmd */
  nf_u8 recent_flags; /* NF_RECENT_* */
  nf_u8 recent_ring;
  nf_u8 owner_match; /* NF_RES_OWNER: NF_OWNER_* tests */
  nf_u8 owner_inv;   /* NF_RES_OWNER: NF_OWNER_* tests negated */
  nf_u8 pad;
  nf_u8 recent_mask[16];
  nf_u32 owner_uid[2]; /* NF_RES_OWNER: min, max */
  nf_u32 owner_gid[2];
};

struct nf2bpf_stmt {
  nf_u8 kind;
  nf_u8 level;
  nf_u16 group;
  nf_u32 value, mask;
  nf_u32 prefix_id; /* log prefix index (strings live in userspace state) */
};

/* A NAT rule's range (nf_nat), as the kernel's nf_nat_range2: what the
 * binding may translate the packet's destination (DNAT, REDIRECT) or source
 * (SNAT, MASQUERADE) to. Addresses are IPv4-mapped for IPv4. */
enum nf2bpf_nat_kind {
  NF_NAT_DNAT = 1,
  NF_NAT_SNAT,
  NF_NAT_MASQUERADE, /* source: the output route's source address */
  NF_NAT_REDIRECT,   /* destination: the input interface's address (127.0.0.1 / ::1 at OUTPUT) */
  NF_NAT_NETMAP,     /* the hook's side (destination at PREROUTING/OUTPUT, else source): the prefix
                        addr_min..addr_max (mask ~(min ^ max)) replaces its network bits */
  NF_NAT_SERVICE,    /* destination: one backend of service `service`, drawn at random (nf_svc) */
};
#define NF_NAT_F_ADDR 1  /* addr_min..addr_max given (NF_NAT_RANGE_MAP_IPS) */
#define NF_NAT_F_PORTS 2 /* port_min..port_max given (NF_NAT_RANGE_PROTO_SPECIFIED) */
#define NF_NAT_F_RANDOM 4
#define NF_NAT_F_RANDOM_FULLY 8
#define NF_NAT_F_PERSISTENT 16
/* nf_nat also holds conntrack tuple tests (NF_RES_CTTUPLE): kind
 * NF_NAT_CT + (reply tuple ? 4 : 0) + (destination ? 2 : 0) + (port ? 1 : 0),
 * the address range (NF_NAT_F_ADDR) or port range (NF_NAT_F_PORTS) the
 * field must lie in. */
#define NF_NAT_CT 16
#define NF_NAT_CT_MAX (NF_NAT_CT + 7)
#define NF_NAT_F_NEG 32  /* a test: the field must lie outside the range */
#define NF_NAT_F_MORE 64 /* a test: the next entry is another test of the same rule */
struct nf2bpf_nat {
  nf_u8 kind;
  nf_u8 flags;
  nf_u16 port_min, port_max;
  nf_u16 pad;
  nf_u8 addr_min[16], addr_max[16];
  nf_u32 service; /* NF_NAT_SERVICE: the generation's service id */
};

/* Services (NF_NAT_SERVICE): a load-balancing chain — one uniform random
 * draw among endpoint chains that each DNAT to one address and port, as
 * kube-proxy's KUBE-SVC-* / service-* chains — compiled to one NAT rule
 * whose backends live in these global maps, so that a change of a
 * service's backends is a handful of map writes, not a new generation.
 * Keys carry the generation slot (bit 31 of `sid`) next to the service id,
 * so the two generations never share an entry. A service's backends are
 * written to its unused backend slot first, then its nf_svc value is
 * replaced in one update (a hash map swaps the element whole): a packet
 * sees the old backend set or the new one, never a mix. */
#define NF_SVC_SID(gen, id) (((nf_u32)(gen) << 31) | ((nf_u32)(id)&0x7fffffffu))
#define NF_SVC_MAX 32768           /* services per generation */
#define NF_SVC_BACKENDS_MAX 262144 /* backend entries per generation and slot */
struct nf2bpf_svc_val {
  nf_u32 count;                 /* backends in the live slot (>= 1) */
  nf_u32 slot;                  /* backend slot (0 or 1) that is live */
  nf_u32 mark_mask, mark_value; /* hairpin: a client that is the backend gets mark = (mark & ~mask) ^ value */
};
struct nf2bpf_svc_be_key {
  nf_u32 sid;   /* NF_SVC_SID */
  nf_u32 index; /* slot << 31 | backend index */
};
struct nf2bpf_svc_be_val {
  nf_u8 addr[16]; /* IPv4-mapped for IPv4 */
  nf_u16 port;
  nf_u16 pad;
};
/* Connections bound to each backend (nf_svc_conns, per CPU), for
 * `nf2bpf services --live`: keyed by service and backend, so a backend
 * that stays across an update keeps its count. */
struct nf2bpf_svc_conn_key {
  nf_u32 sid;
  nf_u16 port;
  nf_u16 pad;
  nf_u8 addr[16];
};

/* Draws of the statistic-random slots a stage run has used (kept per CPU
 * in nf_scratch): a direct-mapped cache of NF_DRAW_CACHE entries by slot,
 * enough for the patterns that reuse one draw (a jump's or goto's inlined
 * rules come one after another). */
#define NF_DRAW_CACHE 8

/* The nf_nth map value: packets that reached one source rule's nth match
 * in this generation (a new generation starts from 0, as a ruleset reload
 * resets xt_statistic's counter). 64 bits: it never wraps. */
struct nf2bpf_nth_val {
  nf_u64 count;
};

/* -m recent: one entry of a table (xt_recent's recent_entry). Keyed by the
 * table (name hash), the family and the masked address (IPv4-mapped). Up to
 * NF_RECENT_LIST_TOT entries per table (the kernel's ip_list_tot default);
 * the least recently set or updated one is evicted when a new one needs
 * room. Stamps are jiffies (bpf_jiffies64), a ring of recent_ring + 1. */
#define NF_RECENT_LIST_TOT 100
#define NF_RECENT_TABLES 64
#define NF_RECENT_STAMPS 32 /* ring size limit: --hitcount up to 32 */
struct nf2bpf_recent_key {
  nf_u32 table;
  nf_u8 family; /* 4 or 6 */
  nf_u8 pad[3];
  nf_u8 addr[16];
};
struct nf2bpf_recent_val {
  nf_u64 stamps[NF_RECENT_STAMPS];
  nf_u64 lru; /* the table's clock when last set/updated: the smallest is evicted first */
  nf_u16 index, nstamps;
  nf_u8 ttl;
  nf_u8 pad[3];
};
/* Per table (name hash): its entry count and LRU clock. */
struct nf2bpf_recent_tab {
  nf_u64 clock;
  nf_u32 entries;
  nf_u32 pad;
};

/* -m limit / nft limit, per rule, with the kernel's own arithmetic.
 * NF_LIMIT_XT: xt_limit (iptables-legacy): credits, the clock in jiffies;
 *   the program turns avg and burst into credits with the running kernel's
 *   HZ (user2credits), as limit_mt_check does.
 * otherwise nft_limit (nft and iptables-nft's -m limit): tokens in ns, the
 *   clock bpf_ktime_get_ns; a packet costs unit_ns / rate, or with
 *   NF_LIMIT_BYTES unit_ns * length / rate. */
#define NF_LIMIT_XT (1u << 0)
#define NF_LIMIT_BYTES (1u << 1)
#define NF_LIMIT_INV (1u << 2) /* nft `limit rate over`: matches when over */
/* -m hashlimit (xt_hashlimit, revision 3): a bucket per key in the global
 * nf_hashlimit map (struct nf2bpf_hashlimit_key), credits in jiffies with
 * 64-bit CREDITS_PER_JIFFY at the running kernel's HZ; NF_LIMIT_INV for
 * --hashlimit-above. */
#define NF_LIMIT_HASH (1u << 3)
/* nf2bpf_limit_cfg.mode: the key's parts (--hashlimit-mode) */
#define NF_HL_DIP 1u
#define NF_HL_DPT 2u
#define NF_HL_SIP 4u
#define NF_HL_SPT 8u
/* -m connlimit (xt_connlimit over nf_conncount): the connections of the
 * packet's key (its masked source, or destination with NF_CL_DADDR) this
 * rule has seen, in the global nf_connlimit map; cost is the limit, srcmask
 * the mask; NF_LIMIT_INV for --connlimit-upto. */
#define NF_LIMIT_CONN (1u << 4)
#define NF_CL_DADDR 1u         /* nf2bpf_limit_cfg.mode: --connlimit-daddr */
#define NF_CONNLIMIT_CONNS 128 /* connections a list keeps (ct_abi.h): limits up to 126 */
/* -m time (xt_time's time_mt): the real time (UTC, or the kernel's timezone
 * with NF_TM_KERNELTZ) against a date range, a time of day range, weekdays
 * and days of the month. Its fields in nf2bpf_limit_cfg: cost = date_start
 * | date_stop << 32 (seconds since 1970), cap = daytime_start |
 * daytime_stop << 32 (seconds of the day), rate = monthdays | weekdays << 32
 * (bit N for day N: 1-31; Monday 1 .. Sunday 7), mode NF_TM_*. */
#define NF_LIMIT_TIME (1u << 5)
#define NF_TM_KERNELTZ 1u
#define NF_TM_CONTIGUOUS 2u
/* An nft set the packet path writes (nft_dynset: `add`, `update`, `delete
 * @set { KEY ... }`, meters) and the lookups of it (nft_lookup: `KEY @set`):
 * its elements live in the global nf_hashlimit map under `table` (a hash of
 * the family, table and set name), keyed as a hashlimit bucket by the parts
 * in `mode` (NF_HL_*; srcmask and dstmask 32 or 128, whole addresses).
 * `rate` is the operation, NF_SET_*. `expire`: the timeout, ms, a new
 * element gets and an update gives a found one that has a timeout (0: the
 * element never expires); an update without a timeout of its own
 * (NF_SET_TIMEOUT unset) starts the element's own again (kept in its `cost`,
 * jiffies). NF_SET_LIMIT: each element has its own nft limit
 * (cost, cap: ns, as nft_limit's), NF_LIMIT_INV for `limit rate over`.
 * A lookup holds while the element is there (NF_LIMIT_INV: `!= @set`), add
 * and update unless their element's limit stops the rule, delete always. */
#define NF_LIMIT_SET (1u << 6)
/* The next entry of the limits map is this rule's too: a rule's checks kept
 * there (at most NF_LIMIT_CHAIN, in the rule's order) must all hold. */
#define NF_LIMIT_MORE (1u << 7)
#define NF_LIMIT_CHAIN 4
#define NF_SET_LOOKUP 1u
#define NF_SET_ADD 2u
#define NF_SET_UPDATE 3u
#define NF_SET_DELETE 4u
#define NF_SET_OP 7u              /* the operation's bits in `rate` */
#define NF_SET_LIMIT 8u           /* in `rate`: add/update evaluate the element's limit */
#define NF_SET_TIMEOUT 16u        /* in `rate`: `expire` is the statement's own timeout, not the set's */
#define NF_SET_NEVER (~(nf_u64)0) /* nf2bpf_hashlimit_val.expires of an element without a timeout */
struct nf2bpf_limit_cfg {
  nf_u64 cost;   /* XT: avg (1/10000 s per packet); nft, SET: ns per packet; BYTES: unit_ns; HASH: avg (1/1000000 s) */
  nf_u64 cap;    /* XT: burst (packets); nft, SET: tokens_max ns; HASH: burst */
  nf_u64 rate;   /* BYTES: bytes per unit; SET: NF_SET_* */
  nf_u32 flags;  /* NF_LIMIT_* */
  nf_u32 table;  /* HASH: --hashlimit-name's hash (with the family, the table); SET: the set's */
  nf_u32 expire; /* HASH: --hashlimit-htable-expire, ms; SET: the timeout, ms */
  nf_u8 mode;    /* HASH, SET: NF_HL_* */
  nf_u8 srcmask, dstmask; /* HASH: --hashlimit-srcmask/dstmask, bits; SET: 32 or 128 */
  nf_u8 pad;
};
/* One -m hashlimit bucket (xt_hashlimit's dsthash_dst and rateinfo): the
 * key's parts the table's mode leaves out are 0; addresses IPv4-mapped. */
#define NF_HASHLIMIT_ENTRIES 16384
struct nf2bpf_hashlimit_key {
  nf_u32 table;
  nf_u8 family; /* 4 or 6 */
  nf_u8 pad;
  nf_u16 sport, dport; /* network order, as the kernel keeps them */
  nf_u8 pad2[2];
  nf_u8 src[16], dst[16];
};
struct nf2bpf_hashlimit_val {
  nf_u64 prev;              /* jiffies of the last refill; SET: ns, the limit's last */
  nf_u64 credit, cost, cap; /* SET: credit is the limit's tokens (ns), cost the element's timeout (jiffies),
                             cap when it expires in bpf_ktime_get_ns's clock (for listings; 0: never) */
  nf_u64 expires;           /* jiffies: from then on the entry counts as gone (the kernel's collector removes it) */
};
/* The limits map value: configuration and bucket state. CPUs take their
 * share of the bucket with an atomic exchange of `last` and a
 * compare-and-swap of `tokens` (xt_limit's own scheme). */
struct nf2bpf_limit_val {
  struct nf2bpf_limit_cfg cfg;
  nf_u64 tokens; /* XT: credits; nft: ns */
  nf_u64 last;   /* XT: jiffies; nft: ns; 0: not used yet (the bucket is full) */
};

/* LPM key: slot byte then the 128-bit address (IPv4 mapped ::ffff:a.b.c.d).
 * prefixlen counts the slot byte's 8 bits. */
struct nf2bpf_lpm_key {
  nf_u32 prefixlen;
  nf_u8 slot;
  nf_u8 addr[16];
};

struct nf2bpf_iface_key {
  nf_u32 slot;    /* NF_SLOT_IIF / NF_SLOT_OIF */
  nf_u32 ifindex; /* 0: no interface (OUTPUT's input, INPUT's output) */
};

/* Program-wide settings of one generation. */
struct nf2bpf_gen_cfg {
  nf_u32 slots_used; /* bitmask of NF_SLOT_* some rule tests */
  nf_u32 max_steps;  /* classifier search bound (proven by the compiler) */
  nf_u32 nrules;
  nf_u32 ct_needed;  /* some rule reads conntrack state */
  nf_u32 hooks_used; /* bitmask of NF_HOOK_* with stages */
  nf_u32 xdp_stage;  /* stage index + 1 for the XDP early-drop stage, 0 none */
  nf_u32 nat_fams;   /* NF_FAM_* with a nat chain: every new connection of it gets a binding */
  nf_u32 owner;      /* some rule tests the sending socket (NF_RES_OWNER) */
};

/* Facts of this host the programs need (global, not per generation),
 * written by the loader at every install (the kernel reads them live):
 * REJECT's ICMP rate limits, this namespace's sysctls (valid 0: never
 * written, no limit), and the clock -m time reads. */
struct nf2bpf_host_cfg {
  nf_u32 valid;
  nf_u32 limit4;         /* destination unreachable (3) is in net.ipv4.icmp_ratemask */
  nf_u32 limit6;         /* destination unreachable (1) is in net.ipv6.icmp.ratemask */
  nf_u32 ratelimit4;     /* net.ipv4.icmp_ratelimit, ms */
  nf_u32 ratelimit6;     /* net.ipv6.icmp.ratelimit, ms */
  nf_u32 msgs_per_sec;   /* net.ipv4.icmp_msgs_per_sec (both families) */
  nf_u32 msgs_burst;     /* net.ipv4.icmp_msgs_burst */
  nf_u32 prefix6;        /* IPv6: the limit >> ((128 - route prefix) >> 5), as kernels before 0201eedb69b2 */
  nf_s32 tai_offset;     /* seconds TAI is ahead of UTC (adjtimex): bpf_ktime_get_tai_ns - this = the real time */
  nf_s32 tz_minuteswest; /* the kernel's timezone (sys_tz, settimeofday), for -m time --kerneltz */
};

/* Global (not per generation) control record: which generation slot is live. */
struct nf2bpf_control {
  nf_u32 live; /* 0 or 1 */
  nf_u32 abi;
  nf_u64 generation; /* increasing number of the live generation */
};

/* Counters: per-CPU, index = rule index; stage policies use their own index. */
struct nf2bpf_counter {
  nf_u64 packets, bytes;
};

/* Ring buffer LOG event. */
struct nf2bpf_log_event {
  nf_u64 ts_ns;
  nf_u32 rule;
  nf_u32 prefix_id;
  nf_u32 ifindex;
  nf_u8 hook;
  nf_u8 family;
  nf_u8 proto;
  nf_u8 level;
  nf_u8 saddr[16], daddr[16];
  nf_u16 sport, dport;
  nf_u32 len;
  nf_u64 generation;
};

#endif /* NF2BPF_ABI_H */
