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

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 1 << 20);
} nf_events SEC(".maps"); /* LOG / NFLOG records */

/* Per-CPU working memory of one packet (the BPF stack is 512 bytes):
 * [0] TC ingress, [1] TC egress, [2] XDP. */
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

struct nf_scratch {
  struct nf_pkt p;
  struct nf_search srch;
  struct nf2bpf_entry_key key;
  __u32 cls[32];
  __u32 ctmark;
  __u8 notrack;
  __u8 hook;
  __u8 has_ct;  /* the packet has a connection (conntrack/connmark work) */
  __u8 pending; /* ingress: pending_key was created for a forwarded packet */
  __u64 generation;
  struct nf_ct_key pending_key;
};

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 3);
  __type(key, __u32);
  __type(value, struct nf_scratch);
} nf_scratch SEC(".maps"); /* per-CPU packet state (see struct nf_scratch) */

#endif
