// The nftables rows of the capability table. Names are how the nftables
// front-end spells an expression or statement (the `cap` of IR matches,
// statements and verdicts); fidelity mirrors the iptables rows for the same
// packet test or action.
#include "translator/capabilities/capabilities.h"

namespace nf2bpf::caps {

namespace {

constexpr auto E = Fidelity::Exact;
constexpr auto A = Fidelity::Approximate;
constexpr auto U = Fidelity::Unsupported;

constexpr auto NE = nat_fidelity(E);
constexpr auto NA = nat_fidelity(A);
constexpr std::string_view kNatExact = nat_why("");
constexpr std::string_view kNatApprox = nat_why(kNatRandom);
constexpr std::string_view kNatChain = kNatDataplane
                                           ? ""
                                           : "a nat chain sees only the first packet of each connection and "
                                             "exists to set up NAT, which is not implemented in the dataplane "
                                             "yet";
constexpr std::string_view kLogRing =
    "the verdict is exact; the log record is written to nf2bpf's events ring buffer, not to the kernel log or "
    "nfnetlink_log, and nothing reads that buffer yet (no command shows the records)";
constexpr std::string_view kIface = "interface names are resolved to indexes when the policy is applied or synced";
constexpr std::string_view kAddrType =
    "LOCAL is the set of this namespace's addresses when the policy is applied or synced";
constexpr std::string_view kCt = "nf2bpf's own connection tracker, with netfilter's default timeouts";
constexpr std::string_view kDynamic =
    "this use of a set the packet path writes is not implemented (translated: sets keyed by addresses and ports, "
    "written with add, update and delete, elements with a timeout, a packet-rate limit or a counter, no elements in "
    "the file, looked up with `KEY @set`; not: maps, interval sets, byte rates, ct count, quota)";
constexpr std::string_view kConnCount =
    "nft_connlimit's list (the rule's connections, or each set element's: `add @S { ip saddr ct count over N }` "
    "counts per address) kept as -m connlimit keeps nf_conncount's: each connection added once, closed and "
    "vanished ones dropped as __nf_conncount_add drops them; not as the kernel: a list keeps at most 128 "
    "connections (counts up to 126), an inet table's rule counts IPv4 and IPv6 connections apart, and a set "
    "counted so is translated only where no rule looks it up";
constexpr std::string_view kSetState =
    "the kernel's add/update/delete and lookup semantics (element timeouts in jiffies, each element's own nft limit "
    "from full) on nf2bpf's BPF map nf_hashlimit, not on the kernel's set: at most 16,384 elements of all such sets "
    "and -m hashlimit together, the least recently used forgotten where the kernel would refuse a new one (a set's "
    "size is not enforced), counters not kept, and `nft list set` does not show them; the write must be the rule's "
    "last test but other set operations";

}  // namespace

// clang-format off
const std::vector<Capability>& nft_capabilities() {
  static const std::vector<Capability> kRows = {
  // ---- tables and chains ----------------------------------------------------
  {"nft", "table", "table ip", E, ""},
  {"nft", "table", "table ip6", E, ""},
  {"nft", "table", "table inet", E, "IPv4 and IPv6 in one table; family-specific matches add an nfproto test"},
  {"nft", "table", "table arp", U, "ARP tables are not translated: TC/XDP programs classify IP traffic"},
  {"nft", "table", "table bridge", U, "bridge-family hooks run inside the bridge, where TC on the bridge device does not see them"},
  {"nft", "table", "table netdev", U, "netdev ingress/egress chains are not translated yet"},
  {"nft", "chain", "type nat", NE, kNatChain},

  // ---- payload expressions --------------------------------------------------
  {"nft", "expression", "ip saddr", E, ""},
  {"nft", "expression", "ip daddr", E, ""},
  {"nft", "expression", "ip protocol", E, ""},
  {"nft", "expression", "ip ttl", E, ""},
  {"nft", "expression", "ip length", E, ""},
  {"nft", "expression", "ip dscp", E, ""},
  {"nft", "expression", "ip frag-off", A, "only `ip frag-off & 0x1fff != 0` (not the first fragment) is translated; TC sees IP fragments before reassembly, and with connection tracking loaded the kernel reassembles first and the test never matches"},
  {"nft", "expression", "ip6 saddr", E, ""},
  {"nft", "expression", "ip6 daddr", E, ""},
  {"nft", "expression", "ip6 nexthdr", A, "compared with the upper-layer protocol after extension headers; nft compares the first next-header field, which differs when extension headers are present"},
  {"nft", "expression", "ip6 hoplimit", E, ""},
  {"nft", "expression", "ip6 dscp", E, ""},
  {"nft", "expression", "tcp sport", E, ""},
  {"nft", "expression", "tcp dport", E, ""},
  {"nft", "expression", "tcp flags", E, ""},
  {"nft", "expression", "udp sport", E, ""},
  {"nft", "expression", "udp dport", E, ""},
  {"nft", "expression", "udplite sport", E, ""},
  {"nft", "expression", "udplite dport", E, ""},
  {"nft", "expression", "sctp sport", E, ""},
  {"nft", "expression", "sctp dport", E, ""},
  {"nft", "expression", "th sport", E, "exact because the rule also limits meta l4proto to protocols with ports"},
  {"nft", "expression", "th dport", E, "exact because the rule also limits meta l4proto to protocols with ports"},
  {"nft", "expression", "th sport (any protocol)", A, "read as a port for TCP, UDP, UDP-Lite and SCTP only; for other protocols nft compares bytes 0-1 of whatever header follows IP"},
  {"nft", "expression", "th dport (any protocol)", A, "read as a port for TCP, UDP, UDP-Lite and SCTP only; for other protocols nft compares bytes 2-3 of whatever header follows IP"},
  {"nft", "expression", "icmp type", E, ""},
  {"nft", "expression", "icmp code", E, ""},
  {"nft", "expression", "icmpv6 type", E, ""},
  {"nft", "expression", "icmpv6 code", E, ""},
  {"nft", "expression", "ether saddr", E, ""},
  {"nft", "expression", "ether daddr", U, "destination MAC addresses are not matched"},
  {"nft", "expression", "ether type", U, "ethertypes are matched only as meta protocol ip/ip6"},
  {"nft", "expression", "vlan id", U, "VLAN tags are not matched"},
  {"nft", "expression", "arp htype", U, "ARP headers are not matched: TC/XDP programs classify IP traffic"},
  {"nft", "expression", "arp ptype", U, "ARP headers are not matched: TC/XDP programs classify IP traffic"},
  {"nft", "expression", "arp hlen", U, "ARP headers are not matched: TC/XDP programs classify IP traffic"},
  {"nft", "expression", "arp plen", U, "ARP headers are not matched: TC/XDP programs classify IP traffic"},
  {"nft", "expression", "arp operation", U, "ARP headers are not matched: TC/XDP programs classify IP traffic"},
  {"nft", "expression", "arp saddr ip", U, "ARP headers are not matched: TC/XDP programs classify IP traffic"},
  {"nft", "expression", "arp daddr ip", U, "ARP headers are not matched: TC/XDP programs classify IP traffic"},
  {"nft", "expression", "arp saddr ether", U, "ARP headers are not matched: TC/XDP programs classify IP traffic"},
  {"nft", "expression", "arp daddr ether", U, "ARP headers are not matched: TC/XDP programs classify IP traffic"},
  {"nft", "expression", "raw payload", U, "raw payload offsets (@nh,16,8) are not implemented"},
  {"nft", "expression", "tcp option", U, "TCP options are not parsed by the dataplane"},
  {"nft", "expression", "ip option", U, "IP options are not parsed by the dataplane"},
  {"nft", "expression", "sctp chunk", U, "SCTP chunks are not parsed by the dataplane"},
  {"nft", "expression", "exthdr", U, "IPv6 extension headers are not matched"},
  {"nft", "expression", "concatenation", E, "concatenated keys (a . b) are looked up field by field"},
  {"nft", "expression", "interface-name keys", U, "verdict maps and concatenations keyed on interface names are not translated yet; write one rule per interface"},
  {"nft", "expression", "bitwise expression", U, "bitwise operations are translated for marks, TCP flags and ct status only"},
  {"nft", "expression", "map", U, "data map lookups are not implemented"},

  // ---- meta, ct, fib -----------------------------------------------------------
  {"nft", "expression", "meta l4proto", E, ""},
  {"nft", "expression", "meta nfproto", E, ""},
  {"nft", "expression", "meta protocol", E, "ip and ip6 are IPv4 and IPv6; other ethertypes never reach an IP hook"},
  {"nft", "expression", "meta iif", E, kIface},
  {"nft", "expression", "meta oif", E, kIface},
  {"nft", "expression", "meta iifname", E, kIface},
  {"nft", "expression", "meta oifname", E, kIface},
  {"nft", "expression", "meta mark", E, ""},
  {"nft", "expression", "meta pkttype", E, ""},
  {"nft", "expression", "meta length", E, ""},
  {"nft", "expression", "meta skuid", E, "the sending socket's file credentials (fsuid), read at TC egress through the kernel's BTF as nft_meta reads them (no process's socket: no match); in output and postrouting chains, one value or range per match"},
  {"nft", "expression", "meta skgid", E, "the sending socket's file credentials (fsgid), read at TC egress through the kernel's BTF as nft_meta reads them (no process's socket: no match); in output and postrouting chains, one value or range per match"},
  {"nft", "expression", "meta random", A, "`meta random & 0x7fffffff < N` (iptables-nft's statistic) draws from the BPF PRNG: the same probability, a different random stream"},
  {"nft", "expression", "meta cpu", U, "the processing CPU is not matched"},
  {"nft", "expression", "meta cgroup", U, "socket cgroups are not matched"},
  {"nft", "expression", "meta iiftype", U, "interface types are not matched"},
  {"nft", "expression", "meta oiftype", U, "interface types are not matched"},
  {"nft", "expression", "meta iifgroup", U, "interface groups are not matched"},
  {"nft", "expression", "meta oifgroup", U, "interface groups are not matched"},
  {"nft", "expression", "meta priority", U, "skb priority is not matched"},
  {"nft", "expression", "meta time", U, "time-of-day matches are not implemented"},
  {"nft", "expression", "meta day", U, "time-of-day matches are not implemented"},
  {"nft", "expression", "meta hour", U, "time-of-day matches are not implemented"},
  {"nft", "expression", "meta secpath", U, "IPsec state is not visible to the dataplane"},
  {"nft", "expression", "ct state", E, kCt},
  {"nft", "expression", "ct status", U, "conntrack status bits are not tracked"},
  {"nft", "expression", "ct status snat,dnat", NE, kNatExact},
  {"nft", "expression", "ct mark", E, ""},
  {"nft", "expression", "ct direction", E, ""},
  {"nft", "expression", "ct protocol", E, ""},
  {"nft", "expression", "ct original protocol", E, ""},
  {"nft", "expression", "ct original saddr", E, ""},
  {"nft", "expression", "ct original daddr", E, ""},
  {"nft", "expression", "ct reply saddr", E, ""},
  {"nft", "expression", "ct reply daddr", E, ""},
  {"nft", "expression", "ct original proto-src", E, ""},
  {"nft", "expression", "ct original proto-dst", E, ""},
  {"nft", "expression", "ct reply proto-src", E, ""},
  {"nft", "expression", "ct reply proto-dst", E, ""},
  {"nft", "expression", "ct expiration", U, "remaining conntrack lifetime is not exposed to the classifier"},
  {"nft", "expression", "ct helper", U, "conntrack helpers are not implemented"},
  {"nft", "expression", "ct zone", U, "conntrack zones are not implemented"},
  {"nft", "expression", "ct label", U, "conntrack labels are not implemented"},
  {"nft", "expression", "ct l3proto", U, "use meta nfproto"},
  {"nft", "expression", "ct bytes", U, "per-connection counters are not kept"},
  {"nft", "expression", "ct packets", U, "per-connection counters are not kept"},
  {"nft", "expression", "ct avgpkt", U, "per-connection counters are not kept"},
  {"nft", "expression", "fib daddr type", E, kAddrType},
  {"nft", "expression", "fib saddr type", E, kAddrType},
  {"nft", "expression", "fib", U, "route lookups (reverse-path filtering, fib ... oif) are not implemented"},
  {"nft", "expression", "numgen", U, "numgen is only implemented as `numgen random|inc mod N vmap { ... }` (or a NAT address map) whose elements goto or give a final verdict (an element that jumps would come back to the next)"},
  {"nft", "expression", "numgen inc vmap", E, "the rule's counter steps once per evaluation, as nft_ng_inc_gen's (from 0; a new policy starts it again, as a ruleset reload does), and each element tests that step"},
  {"nft", "expression", "numgen random vmap", A, "each element is taken with its kernel share (1/N) by a draw from the BPF PRNG: the same distribution, a different random stream"},
  {"nft", "expression", "jhash", U, "hash-based selection is not implemented"},
  {"nft", "expression", "symhash", U, "hash-based selection is not implemented"},
  {"nft", "expression", "socket", U, "socket lookups are not implemented"},
  {"nft", "expression", "osf", U, "passive OS fingerprinting is not implemented"},
  {"nft", "expression", "rt", U, "routing information is not matched"},
  {"nft", "expression", "ipsec", U, "IPsec state is not visible to the dataplane"},
  {"nft", "expression", "limit rate", E,
   "nft_limit's own arithmetic (tokens in ns, burst 5 packets by default), so the same packets at the same times get the same verdicts; the bucket is full until the rule's first packet (the kernel fills it at load, which is the same); CPUs share it by atomic exchange and compare-and-swap where the kernel takes a lock"},
  {"nft", "expression", "limit rate over", E, "matches when over the rate, with nft_limit's arithmetic (as limit rate)"},
  {"nft", "expression", "limit rate bytes", E, "nft_limit's byte bucket: a packet costs its IP length (the skb->len netfilter sees, without the link-layer header)"},
  {"nft", "expression", "limit rate per week", E, ""},
  {"nft", "expression", "statement before match", U, "nf2bpf runs a rule's statements after all its matches; here a statement comes before a match"},

  // ---- verdicts -----------------------------------------------------------------
  {"nft", "verdict", "accept", E, ""},
  {"nft", "verdict", "drop", E, ""},
  {"nft", "verdict", "continue", E, ""},
  {"nft", "verdict", "return", E, ""},
  {"nft", "verdict", "jump", E, "regular chains are inlined into per-hook decision lists"},
  {"nft", "verdict", "goto", E, "regular chains are inlined into per-hook decision lists"},
  {"nft", "verdict", "vmap", E, "verdict map elements become one decision per element"},
  {"nft", "verdict", "reject", A, 
   "answered as the kernel answers (the ICMP error or TCP reset, from the same address, quoting the same bytes, translated back where NAT changed the packet, with its ICMP rate limits); none for a packet whose transport checksum the kernel finds wrong; not yet: an IPv4 packet carrying IP options rejected after PREROUTING, whose route and timestamp options the kernel fills in and its ICMP error echoes (nf2bpf quotes the options as they came and echoes none)"},
  {"nft", "verdict", "queue", U, "userspace queueing is not available to TC/XDP programs"},

  // ---- statements ----------------------------------------------------------------
  {"nft", "statement", "counter", E, "counters are read; nf2bpf's per-rule counters start at zero"},
  {"nft", "statement", "counter name", E, "no effect on verdicts; nf2bpf counts per rule, not in the named counter"},
  {"nft", "statement", "log", A, kLogRing},
  {"nft", "statement", "log level audit", U, "audit logging is not implemented"},
  {"nft", "statement", "notrack", E, ""},
  {"nft", "statement", "meta mark set", E, ""},
  {"nft", "statement", "ct mark set", E, ""},
  {"nft", "statement", "meta mark set (expression)", U, "only constants and mark arithmetic (and, or, xor) on the same mark are translated"},
  {"nft", "statement", "ct mark set (expression)", U, "only constants, mark arithmetic and ct mark set meta mark are translated"},
  {"nft", "statement", "dnat", NE, kNatExact},
  {"nft", "statement", "dnat random", NA, kNatApprox},
  {"nft", "statement", "dnat fully-random", NA, kNatApprox},
  {"nft", "statement", "dnat persistent", NA, kNatApprox},
  {"nft", "statement", "snat", NE, kNatExact},
  {"nft", "statement", "snat random", NA, kNatApprox},
  {"nft", "statement", "snat fully-random", NA, kNatApprox},
  {"nft", "statement", "snat persistent", NA, kNatApprox},
  {"nft", "statement", "masquerade", NE, kNatExact},
  {"nft", "statement", "masquerade random", NA, kNatApprox},
  {"nft", "statement", "masquerade fully-random", NA, kNatApprox},
  {"nft", "statement", "masquerade persistent", NA, kNatApprox},
  {"nft", "statement", "redirect", NE, kNatExact},
  {"nft", "statement", "redirect random", NA, kNatApprox},
  {"nft", "statement", "redirect fully-random", NA, kNatApprox},
  {"nft", "statement", "redirect persistent", NA, kNatApprox},
  {"nft", "statement", "dnat address map", NE, kNatExact},
  {"nft", "statement", "snat address map", NE, kNatExact},
  {"nft", "statement", "dnat prefix address map", NE, kNatExact},
  {"nft", "statement", "snat prefix address map", NE, kNatExact},
  {"nft", "statement", "dnat map", U, "only maps keyed by one field the dataplane tests or by numgen, with an address, range or prefix per element, are translated (not jhash, concatenated keys or address . port data)"},
  {"nft", "statement", "snat map", U, "only maps keyed by one field the dataplane tests or by numgen, with an address, range or prefix per element, are translated (not jhash, concatenated keys or address . port data)"},
  {"nft", "statement", "dnat prefix", NE, kNatExact},
  {"nft", "statement", "snat prefix", NE, kNatExact},
  {"nft", "statement", "tcp option maxseg size set", E, "the MSS option lowered as nft_exthdr writes it (never raised; the TCP checksum fixed; a packet without the option keeps none); rt mtu is the smaller of the route's and the reverse route's MTU, in the forward hook only (elsewhere refused)"},
  {"nft", "statement", "ct helper set", U, "conntrack helpers are not implemented"},
  {"nft", "statement", "ct zone set", U, "conntrack zones are not implemented"},
  {"nft", "statement", "ct timeout set", U, "custom conntrack timeouts are not implemented"},
  {"nft", "statement", "ct expectation set", U, "conntrack expectations are not implemented"},
  {"nft", "statement", "ct label set", U, "conntrack labels are not implemented"},
  {"nft", "statement", "ct event set", U, "conntrack event masks are not implemented"},
  {"nft", "statement", "meta priority set", U, "packet rewriting (skb priority) is not implemented"},
  {"nft", "statement", "meta nftrace set", U, "packet tracing is not implemented"},
  {"nft", "statement", "meta pkttype set", U, "packet rewriting is not implemented"},
  {"nft", "statement", "ip dscp set", E, "the DSCP bits to a constant, ECN kept (the payload write with the IPv4 header checksum); later rules see the new value"},
  {"nft", "statement", "ip6 dscp set", E, "the DSCP bits of the traffic class to a constant, ECN kept; later rules see the new value"},
  {"nft", "statement", "ip ttl set", U, "packet rewriting (TTL) is not implemented"},
  {"nft", "statement", "ip6 hoplimit set", U, "packet rewriting (hop limit) is not implemented"},
  {"nft", "statement", "set add", U, kDynamic},
  {"nft", "statement", "set update", U, kDynamic},
  {"nft", "statement", "set delete", U, kDynamic},
  {"nft", "statement", "add @set element", A, kSetState},
  {"nft", "statement", "update @set element", A, kSetState},
  {"nft", "statement", "delete @set element", A, kSetState},
  {"nft", "match", "lookup of a set the packet path writes", A, kSetState},
  {"nft", "statement", "limit name", U, "named limit objects are not implemented"},
  {"nft", "statement", "quota", U, "quotas are not implemented"},
  {"nft", "statement", "ct count", A, kConnCount},
  {"nft", "statement", "ct count in a set element", A, kConnCount},
  {"nft", "statement", "tproxy", U, "transparent proxying is not implemented"},
  {"nft", "statement", "fwd", U, "forwarding to another device is not implemented"},
  {"nft", "statement", "dup", U, "packet duplication is not implemented"},
  {"nft", "statement", "synproxy", U, "SYN proxying is not implemented"},
  {"nft", "statement", "flow add", U, "flowtable offload is not translated; offloaded flows bypass the forward hook"},
  {"nft", "statement", "secmark", U, "security marks are not implemented"},
  {"nft", "statement", "last", U, "the last-used timestamp is not kept"},
  {"nft", "statement", "xt match", U, "iptables-nft stores this match in xtables form; read it with iptables-save instead"},
  {"nft", "statement", "xt target", U, "iptables-nft stores this target in xtables form; read it with iptables-save instead"},
};
  return kRows;
}
// clang-format on

}  // namespace nf2bpf::caps
