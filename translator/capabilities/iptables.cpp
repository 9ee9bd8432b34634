// The iptables / ip6tables rows of the capability table.
#include "translator/capabilities/capabilities.h"

namespace nf2bpf::caps {

constexpr auto E = Fidelity::Exact;
constexpr auto A = Fidelity::Approximate;
constexpr auto U = Fidelity::Unsupported;

constexpr auto NE = nat_fidelity(E);
constexpr auto NA = nat_fidelity(A);
constexpr std::string_view kNatExact = nat_why("");
constexpr std::string_view kNatApprox = nat_why(kNatRandom);
constexpr std::string_view kLogRing =
    "the verdict is exact; the log record is written to nf2bpf's events ring buffer, not to the kernel log or "
    "nfnetlink_log, and nothing reads that buffer yet (no command shows the records)";

constexpr std::string_view kNth =
    "a counter per rule in BPF shared by all CPUs, the kernel's sequence; it restarts at 0 when a new policy is "
    "applied (as a ruleset reload does); the statistic match must come after the rule's other matches";

constexpr std::string_view kRecent =
    "the verdicts and list updates follow xt_recent (--set/--rcheck/--update/--remove, --seconds in jiffies, "
    "--hitcount, --reap, --rttl, --mask, --rsource/--rdest; lists survive a new policy that still names them); the "
    "lists are nf2bpf's BPF map nf_recent (`bpftool map dump name nf_recent`, keyed by a hash of --name), not "
    "the kernel's /proc/net/xt_recent/NAME: reading that file does not show them, writing it does not change them; "
    "the match must be the rule's last, with --hitcount up to 32, and packets of several CPUs are not serialised";

constexpr std::string_view kHashlimit =
    "xt_hashlimit's own arithmetic (revision 3: a bucket per key, credits in jiffies at the running kernel's HZ), so "
    "the same packets at the same times get the same verdicts: --hashlimit-upto/--hashlimit-above, -burst, -mode, "
    "-srcmask/-dstmask, -name, -htable-expire; the buckets outlive a new policy that still names the table; not as the "
    "kernel: a bucket counts as gone once its expire time has passed (the kernel's collector removes it up to "
    "--hashlimit-htable-gcinterval later), at most 16384 buckets in all (the least recently used goes; past "
    "--hashlimit-htable-max the kernel drops the packet), packets of several CPUs are not serialised; byte rates and "
    "--hashlimit-rate-match stay in netfilter, and the match must be the rule's last";

constexpr std::string_view kConnlimit =
    "nf_conncount's list per key (the masked source, or destination with --connlimit-daddr) in BPF: each connection "
    "is added when its packet reaches the match, and dropped when conntrack no longer has it (if this CPU added it, "
    "or 2 jiffies on) or it closed, at most 8 a walk and none twice in a jiffy, so the same connections give the "
    "same counts: --connlimit-upto/--connlimit-above, --connlimit-mask; not as the kernel: a list keeps at most 128 "
    "connections (limits up to 126), the kernel's background collector never runs, packets of several CPUs are not "
    "serialised; the match must be the rule's last, and a new policy's rules count afresh (as a reloaded ruleset's)";

// clang-format off
const std::vector<Capability>& iptables_capabilities() {
  static const std::vector<Capability> kRows = {
  // ---- iptables / ip6tables -----------------------------------------------
  {"iptables", "table", "*filter", E, ""},
  {"iptables", "table", "*mangle", E, ""},
  {"iptables", "table", "*raw", E, ""},
  {"iptables", "table", "*security", E, "evaluated like filter at priority 50; no SELinux labels are set"},
  {"iptables", "table", "*nat", NE, kNatExact},

  {"iptables", "option", "-s", E, ""},
  {"iptables", "option", "-d", E, ""},
  {"iptables", "option", "-p", E, ""},
  {"iptables", "option", "-i", E, "interface names are resolved to indexes when the policy is applied or synced"},
  {"iptables", "option", "-o", E, "interface names are resolved to indexes when the policy is applied or synced"},
  {"iptables", "option", "-f", A, "TC sees IP fragments before reassembly; with connection tracking loaded the kernel reassembles first and -f never matches"},
  {"iptables", "option", "-c", E, "counters are read; nf2bpf's per-rule counters start at zero"},

  {"iptables", "match", "-m tcp --sport", E, ""},
  {"iptables", "match", "-m tcp --dport", E, ""},
  {"iptables", "match", "-m tcp --tcp-flags", E, ""},
  {"iptables", "match", "-m tcp --syn", E, ""},
  {"iptables", "match", "-m tcp --tcp-option", U, "TCP options are not parsed by the dataplane"},
  {"iptables", "match", "-m udp --sport", E, ""},
  {"iptables", "match", "-m udp --dport", E, ""},
  {"iptables", "match", "-m udplite --sport", E, ""},
  {"iptables", "match", "-m udplite --dport", E, ""},
  {"iptables", "match", "-m sctp --sport", E, ""},
  {"iptables", "match", "-m sctp --dport", E, ""},
  {"iptables", "match", "-m sctp --chunk-types", U, "SCTP chunks are not parsed by the dataplane"},
  {"iptables", "match", "-m icmp --icmp-type", E, ""},
  {"iptables", "match", "-m icmp6 --icmpv6-type", E, ""},
  {"iptables", "match", "-m multiport --sports", E, ""},
  {"iptables", "match", "-m multiport --dports", E, ""},
  {"iptables", "match", "-m multiport --ports", E, ""},
  {"iptables", "match", "-m conntrack --ctstate", E, "nf2bpf's own connection tracker, with netfilter's default timeouts"},
  {"iptables", "match", "-m conntrack --ctstate SNAT,DNAT", NE, kNatExact},
  {"iptables", "match", "-m conntrack --ctstate SNAT,DNAT with other states", U, "a list mixing SNAT/DNAT with connection states matches either, an OR across two conntrack fields; write one rule for the states and one for SNAT/DNAT (a negated list is translated)"},
  {"iptables", "match", "-m conntrack --ctstatus", U, "conntrack status bits are not tracked"},
  {"iptables", "match", "-m conntrack --ctproto", E, ""},
  {"iptables", "match", "-m conntrack --ctorigsrc", E, ""},
  {"iptables", "match", "-m conntrack --ctorigdst", E, ""},
  {"iptables", "match", "-m conntrack --ctreplsrc", E, ""},
  {"iptables", "match", "-m conntrack --ctrepldst", E, ""},
  {"iptables", "match", "-m conntrack --ctorigsrcport", E, ""},
  {"iptables", "match", "-m conntrack --ctorigdstport", E, ""},
  {"iptables", "match", "-m conntrack --ctreplsrcport", E, ""},
  {"iptables", "match", "-m conntrack --ctrepldstport", E, ""},
  {"iptables", "match", "-m conntrack --ctdir", E, ""},
  {"iptables", "match", "-m conntrack --ctexpire", U, "remaining conntrack lifetime is not exposed to the classifier"},
  {"iptables", "match", "-m state --state", E, "nf2bpf's own connection tracker, with netfilter's default timeouts"},
  {"iptables", "match", "-m comment --comment", E, ""},
  {"iptables", "match", "-m set --match-set", E, "set contents are taken from the `ipset save` file given with --ipsets"},
  {"iptables", "match", "-m set --return-nomatch", U, "nomatch elements are not supported"},
  {"iptables", "match", "-m set --update-counters", E, "no effect on verdicts"},
  {"iptables", "match", "-m set --update-subcounters", E, "no effect on verdicts"},
  {"iptables", "match", "-m set --packets-eq", U, "ipset element counters are not kept"},
  {"iptables", "match", "-m set --packets-gt", U, "ipset element counters are not kept"},
  {"iptables", "match", "-m set --packets-lt", U, "ipset element counters are not kept"},
  {"iptables", "match", "-m set --bytes-eq", U, "ipset element counters are not kept"},
  {"iptables", "match", "-m set --bytes-gt", U, "ipset element counters are not kept"},
  {"iptables", "match", "-m set --bytes-lt", U, "ipset element counters are not kept"},
  {"iptables", "match", "-m mark --mark", E, ""},
  {"iptables", "match", "-m connmark --mark", E, ""},
  {"iptables", "match", "-m addrtype --src-type", E, "LOCAL is the set of this namespace's addresses when the policy is applied or synced"},
  {"iptables", "match", "-m addrtype --dst-type", E, "LOCAL is the set of this namespace's addresses when the policy is applied or synced"},
  {"iptables", "match", "-m addrtype --limit-iface-in", U, "per-interface address types are not modelled"},
  {"iptables", "match", "-m addrtype --limit-iface-out", U, "per-interface address types are not modelled"},
  {"iptables", "match", "-m iprange --src-range", E, ""},
  {"iptables", "match", "-m iprange --dst-range", E, ""},
  {"iptables", "match", "-m limit --limit", E,
   "the kernel's own arithmetic, so the same packets at the same times get the same verdicts: nft_limit's (tokens in ns) for a dump from iptables-nft, which turns -m limit into an nft limit, or one without an iptables-save header; xt_limit's (credits in jiffies at the running kernel's HZ) for a dump whose header says (legacy) or predates iptables 1.8; the bucket is full until the rule's first packet (the kernel fills it at load: the same unless xt_limit's credit counter wraps, over 37 hours idle at HZ 1000); CPUs share it with xt_limit's atomic exchange and compare-and-swap"},
  {"iptables", "match", "-m limit --limit-burst", E,
   "the kernel's own arithmetic, so the same packets at the same times get the same verdicts: nft_limit's (tokens in ns) for a dump from iptables-nft, which turns -m limit into an nft limit, or one without an iptables-save header; xt_limit's (credits in jiffies at the running kernel's HZ) for a dump whose header says (legacy) or predates iptables 1.8; the bucket is full until the rule's first packet (the kernel fills it at load: the same unless xt_limit's credit counter wraps, over 37 hours idle at HZ 1000); CPUs share it with xt_limit's atomic exchange and compare-and-swap"},
  {"iptables", "match", "-m hashlimit", A, kHashlimit},
  {"iptables", "match", "-m recent", A, kRecent},
  {"iptables", "match", "-m statistic --mode", A, "random mode draws from the BPF PRNG: the same probability, a different random stream"},
  {"iptables", "match", "-m statistic --probability", A, "random mode draws from the BPF PRNG: the same probability, a different random stream"},
  {"iptables", "match", "-m statistic --mode nth", E, kNth},
  {"iptables", "match", "-m statistic --every", E, kNth},
  {"iptables", "match", "-m statistic --packet", E, kNth},
  {"iptables", "match", "-m mac --mac-source", E, ""},
  {"iptables", "match", "-m pkttype --pkt-type", E, ""},
  {"iptables", "match", "-m length --length", E, ""},
  {"iptables", "match", "-m ttl --ttl-eq", E, ""},
  {"iptables", "match", "-m ttl --ttl-gt", E, ""},
  {"iptables", "match", "-m ttl --ttl-lt", E, ""},
  {"iptables", "match", "-m hl --hl-eq", E, ""},
  {"iptables", "match", "-m hl --hl-gt", E, ""},
  {"iptables", "match", "-m hl --hl-lt", E, ""},
  {"iptables", "match", "-m policy", U, "IPsec policy: TC programs see a packet before the kernel decrypts it (ingress) and after it encrypts it (egress), never the plaintext netfilter matches against its xfrm state and policy"},
  {"iptables", "match", "-m time", A, "xt_time's time_mt: the real time (UTC, or the kernel's timezone with --kerneltz) against --datestart/--datestop, --timestart/--timestop (--contiguous), --weekdays and --monthdays (negated too); the programs read the real time as the TAI clock less the TAI offset, and the kernel's timezone, as both were when the policy was installed (apply, sync): a later change of either (an NTP daemon setting the TAI offset, settimeofday) shifts the match until the next install"},
  {"iptables", "match", "-m dscp --dscp", E, ""},
  {"iptables", "match", "-m dscp --dscp-class", E, ""},
  {"iptables", "match", "-m tos --tos", E, "the whole TOS / traffic class byte under the mask, ECN bits included"},
  {"iptables", "match", "-m owner --uid-owner", E, "the sending socket's file credentials (fsuid), read at TC egress through the kernel's BTF, as xt_owner reads them; a packet without a socket, or with one of the kernel's own (ICMP errors, RSTs), matches as with xt_owner"},
  {"iptables", "match", "-m owner --gid-owner", E, "the sending socket's file credentials (fsgid), read at TC egress through the kernel's BTF, as xt_owner reads them"},
  {"iptables", "match", "-m owner --socket-exists", E, "whether the packet has a sending socket, as xt_owner decides it (a SYN-ACK's request socket stands for its listener)"},
  {"iptables", "match", "-m owner --suppl-groups", U, "the socket owner's supplementary groups are not read"},
  {"iptables", "match", "-m physdev", U, "bridge ports are not visible at TC on the bridge"},
  {"iptables", "match", "-m string", U, "payload string search is not implemented"},
  {"iptables", "match", "-m u32", U, "u32 expressions are not implemented"},
  {"iptables", "match", "-m connlimit", A, kConnlimit},

  {"iptables", "target", "-j ACCEPT", E, ""},
  {"iptables", "target", "-j DROP", E, ""},
  {"iptables", "target", "-j RETURN", E, ""},
  {"iptables", "target", "-j <chain>", E, "user chains are inlined into per-hook decision lists"},
  {"iptables", "target", "-g <chain>", E, "user chains are inlined into per-hook decision lists"},
  {"iptables", "target", "-j REJECT", A, 
   "answered as the kernel answers (the ICMP error or TCP reset, from the same address, quoting the same bytes, translated back where NAT changed the packet, with its ICMP rate limits); none for a packet whose transport checksum the kernel finds wrong; not yet: an IPv4 packet carrying IP options rejected after PREROUTING, whose route and timestamp options the kernel fills in and its ICMP error echoes (nf2bpf quotes the options as they came and echoes none)"},
  {"iptables", "target", "-j LOG", A, kLogRing},
  {"iptables", "target", "-j NFLOG", A, kLogRing},
  {"iptables", "target", "-j MARK", E, ""},
  {"iptables", "target", "-j CONNMARK", E, ""},
  {"iptables", "target", "-j DNAT", NE, kNatExact},
  {"iptables", "target", "-j DNAT --random", NA, kNatApprox},
  {"iptables", "target", "-j DNAT --persistent", NA, kNatApprox},
  {"iptables", "target", "-j SNAT", NE, kNatExact},
  {"iptables", "target", "-j SNAT --random", NA, kNatApprox},
  {"iptables", "target", "-j SNAT --random-fully", NA, kNatApprox},
  {"iptables", "target", "-j SNAT --persistent", NA, kNatApprox},
  {"iptables", "target", "-j MASQUERADE", NE, kNatExact},
  {"iptables", "target", "-j MASQUERADE --random", NA, kNatApprox},
  {"iptables", "target", "-j MASQUERADE --random-fully", NA, kNatApprox},
  {"iptables", "target", "-j REDIRECT", NE, kNatExact},
  {"iptables", "target", "-j REDIRECT --random", NA, kNatApprox},
  {"iptables", "target", "-j NETMAP", NE, kNatExact},
  {"iptables", "target", "-j CT --notrack", E, ""},
  {"iptables", "target", "-j CT", U, "conntrack helpers, zones and timeouts are not implemented"},
  {"iptables", "target", "-j NOTRACK", E, ""},
  {"iptables", "target", "-j DSCP", E, "the DSCP bits of the TOS / traffic class byte, ECN kept (xt_DSCP's dscp_tg); later rules see the new value, the packet leaves with it (IPv4 header checksum updated)"},
  {"iptables", "target", "-j TOS", E, "the TOS / traffic class byte as (tos & ~mask) ^ value (xt_DSCP's tos_tg: --set-tos, --and-tos, --or-tos, --xor-tos); later rules see the new value, the packet leaves with it"},
  {"iptables", "target", "-j CHECKSUM", A, "changes no verdict; the kernel completes a partial checksum (CHECKSUM_PARTIAL, as virtual devices pass packets on) in software where the rule says so, nf2bpf leaves it to the device as for every other packet: only a guest that ignores the virtio checksum flag (old DHCP clients) sees the difference"},
  {"iptables", "target", "-j TCPMSS", E, "the MSS option lowered as xt_TCPMSS lowers it (never raised; the TCP checksum fixed), and a SYN without one and without data given one of at most 536 (1220 for IPv6) in front of its options, as the kernel adds it; the path MTU (--clamp-mss-to-pmtu) is the smaller of the route's and the reverse route's MTU, in the forward hook only (elsewhere refused)"},
  {"iptables", "target", "-j QUEUE", U, "userspace queueing is not available to TC/XDP programs"},
  {"iptables", "target", "-j NFQUEUE", U, "userspace queueing is not available to TC/XDP programs"},
};
  return kRows;
}
// clang-format on

}  // namespace nf2bpf::caps
