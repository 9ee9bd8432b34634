/* Every map nf2bpf's programs use, declared once.
 *
 * Per-generation maps are ARRAY_OF_MAPS outers with two slots (0/1); the
 * loader fills the spare slot with fresh inner maps, then flips
 * nf_control.live. A packet reads `live` once, so it sees one generation. */
#ifndef NF2BPF_MAPS_H
#define NF2BPF_MAPS_H

#include "abi.h"
#include "ct_abi.h"
#include "parse.h"

/* Outer map of two generation slots whose inner maps are of one type. The
 * inner definition is written inline so clang keeps its value type's BTF. */
#define NF_OUTER(name, itype, ktype, vtype, iflags) \
  struct {                                          \
    __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);       \
    __uint(max_entries, 2);                         \
    __type(key, __u32);                             \
    __array(                                        \
        values, struct {                            \
          __uint(type, itype);                      \
          __uint(max_entries, 1);                   \
          __uint(map_flags, iflags);                \
          __type(key, ktype);                       \
          __type(value, vtype);                     \
        });                                         \
  } name SEC(".maps")

/* clang only records a struct's layout in BTF when something outside a
 * pointer refers to it; inner maps' value types need their layout, so keep
 * one read-only instance of each. */
#define NF_BTF_KEEP(type, name) const volatile type name = {}
NF_BTF_KEEP(struct nf2bpf_stage, nf_btf_stage);
NF_BTF_KEEP(struct nf2bpf_tuple, nf_btf_tuple);
NF_BTF_KEEP(struct nf2bpf_rule, nf_btf_rule);
NF_BTF_KEEP(struct nf2bpf_stmt, nf_btf_stmt);
NF_BTF_KEEP(struct nf2bpf_limit_val, nf_btf_limit);
NF_BTF_KEEP(struct nf2bpf_nth_val, nf_btf_nth);
NF_BTF_KEEP(struct nf2bpf_nat, nf_btf_nat);
NF_BTF_KEEP(struct nf2bpf_counter, nf_btf_counter);
NF_BTF_KEEP(struct nf2bpf_entry_key, nf_btf_entry_key);
NF_BTF_KEEP(struct nf2bpf_entry_val, nf_btf_entry_val);
NF_BTF_KEEP(struct nf2bpf_lpm_key, nf_btf_lpm_key);
NF_BTF_KEEP(struct nf2bpf_iface_key, nf_btf_iface_key);

/* per generation: base chains in hook order */
NF_OUTER(nf_stages, BPF_MAP_TYPE_ARRAY, __u32, struct nf2bpf_stage, BPF_F_INNER_MAP);
/* per generation: classifier tuples, per stage sorted by first rule */
NF_OUTER(nf_tuples, BPF_MAP_TYPE_ARRAY, __u32, struct nf2bpf_tuple, BPF_F_INNER_MAP);
/* per generation: action, residual checks, statement range of each rule */
NF_OUTER(nf_rules, BPF_MAP_TYPE_ARRAY, __u32, struct nf2bpf_rule, BPF_F_INNER_MAP);
/* per generation: non-terminal statements */
NF_OUTER(nf_stmts, BPF_MAP_TYPE_ARRAY, __u32, struct nf2bpf_stmt, BPF_F_INNER_MAP);
/* per generation: token buckets of rate-limited rules */
NF_OUTER(nf_limits, BPF_MAP_TYPE_ARRAY, __u32, struct nf2bpf_limit_val, BPF_F_INNER_MAP);
/* per generation: the packet counters of -m statistic --mode nth rules (nf2bpf_rule.nth_slot) */
NF_OUTER(nf_nth, BPF_MAP_TYPE_ARRAY, __u32, struct nf2bpf_nth_val, BPF_F_INNER_MAP);
/* per generation: the ranges of NAT rules (nf2bpf_rule.nat) */
NF_OUTER(nf_nat, BPF_MAP_TYPE_ARRAY, __u32, struct nf2bpf_nat, BPF_F_INNER_MAP);
/* per generation: per-CPU packet/byte counters per rule, then per stage policy
 * (a hash: only plain arrays may vary in size as inner maps; every key is
 * inserted at load) */
NF_OUTER(nf_counters, BPF_MAP_TYPE_PERCPU_HASH, __u32, struct nf2bpf_counter, 0);
/* per generation: (tuple, seq, classes) -> rule */
NF_OUTER(nf_entries, BPF_MAP_TYPE_HASH, struct nf2bpf_entry_key, struct nf2bpf_entry_val, 0);
/* per generation: address prefix -> class */
NF_OUTER(nf_lpm, BPF_MAP_TYPE_LPM_TRIE, struct nf2bpf_lpm_key, __u32, BPF_F_NO_PREALLOC);
/* per generation: (slot, ifindex) -> class */
NF_OUTER(nf_ifaces, BPF_MAP_TYPE_HASH, struct nf2bpf_iface_key, __u32, 0);

/* Fixed-size per-generation data, indexed by slot * size + i. */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 2);
  __type(key, __u32);
  __type(value, struct nf2bpf_gen_cfg);
} nf_cfg SEC(".maps"); /* per generation: settings */

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 2 * NF_HOOK_MAX);
  __type(key, __u32);
  __type(value, struct nf2bpf_hook_desc);
} nf_hooks SEC(".maps"); /* per generation: stage range of each hook */

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 2 * NF_SMALL_TOTAL);
  __type(key, __u32);
  __type(value, __u32);
} nf_small SEC(".maps"); /* per generation: value -> class for small fields */

/* Global state. */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct nf2bpf_control);
} nf_control SEC(".maps"); /* which generation slot is live */

#define NF_STATE_BLOB 16384
struct nf_state_blob {
  __u8 data[NF_STATE_BLOB];
};
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 3);
  __type(key, __u32);
  __type(value, struct nf_state_blob);
} nf_state SEC(".maps"); /* userspace metadata per slot (JSON), [2] = namespace */

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 262144);
  __type(key, struct nf_ct_key);
  __type(value, struct nf_ct_val);
} nf_ct SEC(".maps"); /* connection tracking, both directions in one entry */

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 262144);
  __type(key, struct nf_nat_src_key);
  __type(value, struct nf_ct_key);
} nf_nat_src SEC(".maps"); /* the newest NAT-family connection from each source (ct_abi.h) */

struct nf_addrtype_key {
  __u32 prefixlen;
  __u8 addr[16];
};
struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, 16384);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct nf_addrtype_key);
  __type(value, __u32);
} nf_addrtype SEC(".maps"); /* this namespace's local/broadcast/multicast addresses */

struct nf_ifaddr_key {
  __u32 ifindex;
  __u32 family; /* 4 or 6 */
};
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 4096);
  __type(key, struct nf_ifaddr_key);
  __type(value, __u8[16]);
} nf_ifaddr SEC(".maps"); /* each interface's first address per family (REDIRECT) */

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 1 << 20);
} nf_events SEC(".maps"); /* LOG / NFLOG records */

/* -m recent tables (abi.h): not per generation, so a policy swap keeps the
 * lists of the names it still uses (the loader drops the others). */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, NF_RECENT_TABLES* NF_RECENT_LIST_TOT);
  __type(key, struct nf2bpf_recent_key);
  __type(value, struct nf2bpf_recent_val);
} nf_recent SEC(".maps");
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, NF_RECENT_TABLES);
  __type(key, __u32);
  __type(value, struct nf2bpf_recent_tab);
} nf_recent_tab SEC(".maps");
/* -m hashlimit buckets (abi.h), not per generation either: xt_hashlimit's
 * tables outlive a ruleset reload that still names them. LRU: a full map
 * forgets its least recently used bucket. */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, NF_HASHLIMIT_ENTRIES);
  __type(key, struct nf2bpf_hashlimit_key);
  __type(value, struct nf2bpf_hashlimit_val);
} nf_hashlimit SEC(".maps");
/* -m connlimit lists (ct_abi.h), keyed by generation: a new policy counts
 * afresh (the loader drops the other generations' lists). Allocated as keys
 * come (6 KB a list); with the map full a new key's match fails (the
 * kernel drops the packet when it cannot allocate a list). */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(max_entries, NF_CONNLIMIT_KEYS);
  __type(key, struct nf2bpf_connlimit_key);
  __type(value, struct nf2bpf_connlimit_val);
} nf_connlimit SEC(".maps");
/* REJECT's ICMP rate limits (lib/reject.h): the sysctls, the namespace's
 * global bucket (icmp_global_allow) and one bucket per peer (inet_peer). */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct nf2bpf_host_cfg);
} nf_host_cfg SEC(".maps");
struct nf_icmp_bucket {
  __s32 credit;
  __u32 stamp; /* jiffies of the last refill */
};
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct nf_icmp_bucket);
} nf_icmp_global SEC(".maps");
struct nf_addr16 {
  __u8 a[16]; /* IPv4 mapped */
};
struct nf_icmp_peer {
  __u64 last;   /* jiffies */
  __u64 tokens; /* jiffies of credit, at most 6 x the rate limit */
};
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 16384);
  __type(key, struct nf_addr16);
  __type(value, struct nf_icmp_peer);
} nf_icmp_peers SEC(".maps");
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct nf2bpf_recent_val);
} nf_recent_new SEC(".maps"); /* per-CPU room to build a new entry (too big for the stack) */

/* Per-CPU working memory of one packet (the BPF stack is 512 bytes):
 * [0] TC ingress, [1] TC egress, [2] XDP. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 2 * NF_SVC_MAX);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, __u32);
  __type(value, struct nf2bpf_svc_val);
} nf_svc SEC(".maps"); /* services of both generations (abi.h) */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 4 * NF_SVC_BACKENDS_MAX);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct nf2bpf_svc_be_key);
  __type(value, struct nf2bpf_svc_be_val);
} nf_svc_be SEC(".maps"); /* their backends, two slots each */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
  __uint(max_entries, 2 * NF_SVC_BACKENDS_MAX);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct nf2bpf_svc_conn_key);
  __type(value, struct nf2bpf_counter);
} nf_svc_conns SEC(".maps"); /* connections bound per backend */

struct nf_search {
  __u32 from;    /* first rule index the search may return */
  __u32 best;    /* best rule found so far, NF_NONE when none */
  __u32 ti, seq; /* tuple cursor and chain position */
  __u32 stage;
  __u32 tuple_first, tuple_count;
  __u32 end_rule;
  __u32 verdict; /* NF_ACT_* once done */
  __u32 rule;    /* deciding rule (or the stage's policy counter) */
  __u32 done;
  __u32 live;
};

/* What conntrack says about the packet being judged (lib/ct.h). */
struct nf_ct_res {
  struct nf_ct_key key;
  __u8 state;     /* NF_CT_STATE_* */
  __u8 dir;       /* 0 original, 1 reply, 2 none */
  __u8 exists;    /* an entry was found (not expired) */
  __u8 track;     /* confirm/update the entry when the packet is accepted */
  __u8 new_tcp;   /* TCP state after this packet */
  __u8 orig_is_a; /* for a new entry */
  __u8 proto;
  __u8 kill; /* delete the entry after this packet (RST as the first reply) */
  __u32 ctmark;
};

/* NAT state of the packet being judged (lib/nat.h). */
struct nf_nat_work {
  struct nf_ct_tuple orig, reply; /* the connection's tuples (a new one: as bound so far) */
  struct nf_ct_tuple cand;        /* get_unique_tuple's candidate */
  __u64 now;
  __u32 rule;     /* the nat stage rule that bound this NAT point, NF_NONE: none yet */
  __u8 active;    /* the packet has a connection NAT applies to (its family has nat chains) */
  __u8 binding;   /* bind the connection at the NAT points this packet passes (its first packet) */
  __u8 flags;     /* NF_CT_SNAT | NF_CT_DNAT */
  __u8 dir;       /* the packet's direction in the connection */
  __u8 manip_dst; /* the NAT point at work: 1 destination, 0 source */
  __u8 icmp_req;  /* an ICMP echo flow's request type: the identifier is its port */
  __u8 passed;    /* NAT points passed: 1 destination, 2 source */
  __u8 changed;   /* the packet's header was rewritten: 1 its destination, 2 its source (bits) */
  __u8 had_alias; /* the entry's alias exists under old_reply */
  __u8 has_range; /* range holds the binding rule's range (else the null binding) */
  __u8 hint;      /* conntrack: the packet's connection is hint_key's (a forwarded packet's egress) */
  __u8 soft_csum; /* checksums are updated as complete ones (a REJECT answer: nf_csum_replace) */
  struct nf_ct_key hint_key;
  struct nf2bpf_nat range;
  struct nf_ct_tuple old_reply;
  /* Working memory (the BPF stack is small). */
  struct nf_ct_tuple before, used;
  struct nf_ct_key key;
  struct nf_ct_val val;
  __u8 addr[16], o6[16], n6[16];
  __u32 words[5][4];
  struct nf2bpf_svc_be_key svc_be; /* nf_svc_pick's keys and new count */
  struct nf2bpf_svc_conn_key svc_conn;
  struct nf2bpf_counter svc_one;
  struct bpf_fib_lookup fib;
  struct nf_nat_src_key src_key;
};

/* The kernel reassembles a datagram before conntrack and the rules see it
 * once: its first fragment's verdict (and the addresses NAT gave it) is kept
 * here for the later fragments, per run (ingress 0, egress 1), for as long as
 * the kernel waits for fragments (ipfrag_time, 30 s). lib/frag.h. */
struct nf_frag_key {
  __u32 id;
  __u8 family, proto, run, pad;
  __u8 saddr[16], daddr[16];
};
struct nf_frag_val {
  __u64 expires_ns;
  __u8 pass; /* the first fragment passed (TC_ACT_OK), else it was dropped or rejected */
  __u8 pad[7];
  __u8 saddr[16], daddr[16]; /* its addresses as it left (NAT's) */
};
#define NF_FRAG_ENTRIES 8192
#define NF_FRAG_TIMEOUT_NS (30ull * 1000000000ull)
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, NF_FRAG_ENTRIES);
  __type(key, struct nf_frag_key);
  __type(value, struct nf_frag_val);
} nf_frag SEC(".maps");

struct nf_scratch {
  struct nf_pkt p;
  struct nf_search srch;
  struct nf2bpf_entry_key key;
  __u32 cls[32];
  __u32 ctmark;
  __u8 notrack;
  __u8 hook;
  __u8 has_ct;         /* the packet has a connection (conntrack/connmark work) */
  __u8 pending;        /* ingress: pending_key was created for a forwarded packet */
  __u8 ctstate, ctdir; /* what the rules see of the connection */
  __u8 pending_alias;  /* ingress: pending_alias_key too */
  __u8 fwd;            /* ingress: a forwarded packet of fwd_key's connection leaves as fwd_tuple */
  __u8 rerouted;       /* egress: a local packet routed again leaves on another run (fwd_*) */
  __u8 answer;         /* a REJECT answer's run (lib/reject.h) */
  __u8 tcpmss_pmtu;    /* a TCPMSS statement asked for the path MTU's MSS (lib/mangle.h) */
  __u8 tos_set;        /* a DSCP/TOS statement changed p.tos (lib/mangle.h) */
  __u8 tcpmss_insert;  /* a TCPMSS statement that adds a missing option ran (NF_TCPMSS_INSERT) */
  __u8 frag_first;     /* a first fragment whose outcome nf_frag_note keeps (lib/frag.h) */
  __u64 generation;
  __u32 draw_slot[NF_DRAW_CACHE]; /* this stage run's draws by slot % NF_DRAW_CACHE */
  __u32 draw_val[NF_DRAW_CACHE];
  __u32 draw_valid; /* bit k: draw_slot/val[k] hold a draw of this stage run */
  __u16 tcpmss;     /* the smallest MSS a TCPMSS statement asked for this run; 0: none */
  __u16 pad2;
  __u8 opts[64];       /* TCP options, up to 40 bytes (lib/mangle.h; indexes masked to 63) */
  __u8 answer_src[16]; /* REJECT: its answer's source address (lib/reject.h) */
  __u32 answer_ct;     /* an answer's run: the connection it carries (state | dir << 8), 0 none */
  __u32 answer_mark;   /* and that connection's mark */
  /* Index 0's (the CPU's): the NAT of the packet REJECT answered, for its
   * answer's next run (lib/reject.h); 0: none left. */
  __u8 answer_nat;  /* NF_ANSWER_NAT | its NF_CT_SNAT / NF_CT_DNAT */
  __u8 answer_pend; /* answer_pend_ct is the connection the REJECTed packet began (unconfirmed) */
  __u8 pad3[2];
  struct nf_ct_res answer_pend_ct;
  struct nf_ct_tuple answer_orig, answer_reply;
  struct nf_ct_key pending_key, pending_alias_key, fwd_key;
  struct nf_ct_tuple fwd_tuple;
  struct nf_frag_key frag_key; /* a fragment's datagram as it came (lib/frag.h) */
  struct nf_frag_val frag_val;
  struct nf_ct_res ct;
  struct nf_nat_work nat;
};

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 3);
  __type(key, __u32);
  __type(value, struct nf_scratch);
} nf_scratch SEC(".maps"); /* per-CPU packet state (see struct nf_scratch) */

#endif
