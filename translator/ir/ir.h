// The IR: a front-end-neutral model of a netfilter ruleset.
//
// iptables-save, ip6tables-save and nftables (text, JSON, kernel) all map onto
// these types without reshaping: tables carry a family, chains may be base
// chains with hook/priority/policy, rules are a conjunction of matches, a list
// of non-terminal statements and one verdict, and tables hold named sets and
// (verdict) maps. Every rule, match and statement keeps where it came from.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "translator/ir/values.h"

namespace nf2bpf::ir {

struct SourceLoc {
  std::string file;               // as the user named it; "<stdin>" for "-"
  uint32_t line = 0;              // 1-based, 0 when unknown
  uint32_t col = 0;               // 1-based
  uint32_t len = 0;               // width of the located token (for tildes)
  std::string pointer;            // JSON pointer, for JSON input
  std::string str() const;        // file:line:col  (or file#pointer)
  std::string file_line() const;  // file:line      (or file#pointer)
};

enum class Family : uint8_t { Ip, Ip6, Inet, Arp, Bridge, Netdev };
enum class Hook : uint8_t { Prerouting, Input, Forward, Output, Postrouting, Ingress, Egress };
enum class ChainType : uint8_t { Filter, Nat, Route };

const char* to_string(Family f);
const char* to_string(Hook h);
const char* to_string(ChainType t);
std::optional<Hook> hook_from_string(std::string_view s);

// Packet fields a match can test. Names follow nftables where it has one.
enum class Field : uint8_t {
  NfProto,  // L3 family: 2 = IPv4, 10 = IPv6
  SrcAddr,  // 128-bit, IPv4 mapped into ::ffff:0:0/96
  DstAddr,
  L4Proto,  // IP protocol / IPv6 next header (after extension headers)
  SrcPort,  // TCP/UDP/SCTP/UDPLite
  DstPort,
  IcmpType,   // ICMP (v4): (type << 8) | code, so "type 3 code 4" and its negation stay exact
  Icmp6Type,  // ICMPv6, same encoding
  TcpFlags,   // masked
  Fragment,   // 1 = not the first fragment (iptables -f)
  IifName,    // interface name patterns
  OifName,
  Mark,         // skb mark, masked
  CtState,      // bit values as nftables: invalid 1, established 2, related 4, new 8, untracked 64
  CtStatus,     // masked: expected 1, seen-reply 2, assured 4, confirmed 8, snat 16, dnat 32
  CtMark,       // masked
  CtDirection,  // 0 original, 1 reply
  CtL4Proto,
  CtOrigSrc,
  CtOrigDst,
  CtReplSrc,
  CtReplDst,
  CtOrigSrcPort,
  CtOrigDstPort,
  CtReplSrcPort,
  CtReplDstPort,
  SrcAddrType,  // bit values: see AddrType
  DstAddrType,
  PktType,  // 0 host, 1 broadcast, 2 multicast, 3 otherhost
  Length,   // IP total length (iptables -m length, nft meta length)
  Ttl,      // IPv4 TTL / IPv6 hop limit
  Dscp,
  Tos,     // the whole TOS / traffic class byte: -m tos
  SrcMac,  // 48-bit
  SkUid,
  SkGid,   // owner of the local socket (OUTPUT)
  Opaque,  // a match the classifier cannot express; see Match::module
};
const char* to_string(Field f);

enum AddrType : uint16_t {
  kAddrUnspec = 1,
  kAddrUnicast = 2,
  kAddrLocal = 4,
  kAddrBroadcast = 8,
  kAddrAnycast = 16,
  kAddrMulticast = 32,
  kAddrBlackhole = 64,
  kAddrUnreachable = 128,
  kAddrProhibit = 256,
  kAddrThrow = 512,
  kAddrNat = 1024,
  kAddrXresolve = 2048,
};

enum CtStateBit : uint8_t {
  kCtInvalid = 1,
  kCtEstablished = 2,
  kCtRelated = 4,
  kCtNew = 8,
  kCtUntracked = 64,
};

// An interface-name pattern. iptables "eth+" and nftables "eth*" are prefixes.
struct IfacePattern {
  std::string name;
  bool prefix = false;
  bool matches(std::string_view ifname) const;
  bool operator==(const IfacePattern&) const = default;
};

// Reference to a named set (ipset or nftables @set). `dirs` says, for ipset,
// which packet address/port each key component is taken from ("src"/"dst").
struct SetRef {
  std::string name;
  std::vector<Field> key;  // packet fields that form the lookup key, in order
};

struct Masked {
  uint64_t mask = 0;
  IntervalSet values;  // (field & mask) ∈ values
};

using MatchValue = std::variant<IntervalSet, Masked, std::vector<IfacePattern>, SetRef>;

// One condition of a rule. `cap` names the capability-table entry it came
// from ("match:tcp --dport"), so support status is a table lookup.
struct Match {
  Field field = Field::Opaque;
  bool negated = false;
  MatchValue value;
  std::string cap;
  std::string module;                                     // iptables module / nft expression
  std::vector<std::pair<std::string, std::string>> args;  // raw option text, for reports
  SourceLoc loc;
};

struct Counters {
  uint64_t packets = 0;
  uint64_t bytes = 0;
};

enum class VerdictKind : uint8_t {
  Continue,  // no verdict: fall through to the next rule
  Accept,
  Drop,
  Reject,
  Return,
  Jump,
  Goto,
  Queue,
};

struct Verdict {
  VerdictKind kind = VerdictKind::Continue;
  std::string chain;        // Jump/Goto target
  std::string reject_with;  // Reject: icmp-port-unreachable, tcp-reset ...
  std::string cap;
  SourceLoc loc;
  bool terminal() const {
    return kind == VerdictKind::Accept || kind == VerdictKind::Drop || kind == VerdictKind::Reject ||
           kind == VerdictKind::Queue;
  }
};
const char* to_string(VerdictKind k);
std::string to_string(const Verdict& v);

// Non-terminal actions, executed in order when a rule matches.
enum class StmtKind : uint8_t {
  Counter,
  Log,
  Nflog,
  SetMark,
  SetCtMark,
  SaveMark,
  RestoreMark,
  Dnat,
  Snat,
  Masquerade,
  Redirect,
  Netmap,  // NETMAP / nft `dnat|snat prefix to`: nat.addrs is the prefix, host bits kept; manip by hook
  Notrack,
  CtHelper,
  CtZone,
  TcpMss,
  SetTos,  // the IPv4 TOS / IPv6 traffic class byte: new = (old & ~mask) ^ value (-j DSCP, -j TOS, nft dscp set)
  SetAdd,
  Limit,
  Other,
};
const char* to_string(StmtKind k);

struct NatSpec {
  std::optional<IntervalSet> addrs;  // address range to translate to (Netmap: the prefix as a range)
  std::optional<std::pair<uint16_t, uint16_t>> ports;
  bool random = false, fully_random = false, persistent = false;
  // nft `dnat to KEY map { K : ADDR ... }`: the address is the data of the
  // rule's vmap element that matched (the flattener fills addrs per element).
  bool from_map = false;
  // Set by the policy compiler alone (policy/services.cpp), never by a
  // front-end: 1 + the index of the policy service this DNAT draws from.
  uint32_t service = 0;
};

struct Statement {
  StmtKind kind = StmtKind::Other;
  std::string cap;
  uint64_t value = 0, mask = 0;   // SetMark/SetCtMark/SetTos: new = (old & ~mask) ^ value
  std::string text;               // log prefix, helper name ...
  uint32_t level = 0, group = 0;  // log level / nflog group
  NatSpec nat;
  std::vector<std::pair<std::string, std::string>> args;
  SourceLoc loc;
};

// Match::module of the marker an nft `numgen random|inc mod N [offset O]`
// vmap (or NAT map) rule carries (args "mode", "mod", "offset"): the
// flattener turns each element into a `-m statistic --mode random` draw with
// that element's share (random), or a test of the rule's one counter step
// (inc: kNumgenIncModule).
inline constexpr const char* kNumgenModule = "numgen";
// Match::module of an element's test of `numgen inc` (args "mod", "value"):
// the rule's counter steps once per evaluation (nft_ng_inc_gen), whichever
// element it picks; every element of one rule reads that one step.
inline constexpr const char* kNumgenIncModule = "numgen inc";

struct Rule {
  SourceLoc loc;     // start of the rule
  std::string text;  // the rule as written
  std::vector<Match> matches;
  std::vector<Statement> statements;
  Verdict verdict;
  // nftables verdict map (`meta l4proto . th dport vmap { ... }`): when set,
  // the rule's verdict comes from looking the key up in this map.
  std::optional<SetRef> vmap;
  std::string comment;
  std::optional<Counters> counters;
  std::optional<uint64_t> handle;
};

struct BaseChain {
  ChainType type = ChainType::Filter;
  Hook hook = Hook::Input;
  int priority = 0;
  VerdictKind policy = VerdictKind::Accept;
  std::string device;  // netdev / ingress
};

struct Chain {
  std::string name;
  std::optional<BaseChain> base;
  std::vector<Rule> rules;
  std::optional<Counters> counters;
  SourceLoc loc;
};

struct SetElement {
  std::vector<IntervalSet> key;     // one component per key field
  std::optional<Verdict> verdict;   // verdict maps
  std::optional<IntervalSet> data;  // data maps (single value)
  std::optional<uint64_t> timeout_ms;
  std::string comment;  // nft `comment "..."` (kube-proxy names services with it)
  SourceLoc loc;
};

struct Set {
  std::string name;
  std::vector<Field> key;  // element type, by the field it is compared with
  bool interval = false, dynamic = false, has_timeout = false, constant = false;
  uint64_t timeout_ms = 0;  // nft: the set's default element timeout (0: none)
  enum class Kind : uint8_t { Set, Map, VerdictMap } kind = Kind::Set;
  std::string origin_type;  // "hash:net", "ipv4_addr . inet_service" ...
  std::vector<SetElement> elements;
  bool anonymous = false;
  bool contents_known = true;  // false: an ipset named by a rule but not given
  SourceLoc loc;
};

struct Table {
  Family family = Family::Ip;
  std::string name;
  std::vector<Chain> chains;
  std::vector<Set> sets;
  SourceLoc loc;
  // In a kernel ruleset, a table iptables-nft wrote, read from
  // iptables-nft-save: its rules are iptables rules.
  bool iptables_rules = false;

  Chain* find_chain(std::string_view n);  // a scan: see ChainIndex for many lookups
  const Chain* find_chain(std::string_view n) const;
  const Set* find_set(std::string_view n) const;
};

// A table's chains by name, for code that looks many up (a kube-proxy node
// has tens of thousands). Valid while the table's chains are not changed.
class ChainIndex {
 public:
  explicit ChainIndex(const Table* t);
  const Chain* find(std::string_view n) const;

 private:
  std::unordered_map<std::string_view, const Chain*> by_name_;
};

enum class Frontend : uint8_t { Iptables, Ip6tables, Nft, NftJson, Kernel, PolicyYaml };
const char* to_string(Frontend f);

struct Ruleset {
  std::string source;  // file name as given
  Frontend frontend = Frontend::Iptables;
  std::vector<Table> tables;
  // Sets shared by all tables (ipset): iptables rules reference them by name.
  std::vector<Set> global_sets;
  // An iptables-legacy dump (its iptables-save header says "(legacy)" or
  // predates 1.8): its matches ran as x_tables modules (-m limit as xt_limit,
  // where iptables-nft's is nft_limit).
  bool iptables_legacy = false;
  const Set* find_set(const Table& t, std::string_view name) const;
  size_t rule_count() const;
};

// iptables' fixed table priorities (NF_IP_PRI_*), shared by ip and ip6.
int iptables_table_priority(std::string_view table);
ChainType iptables_chain_type(std::string_view table, Hook hook);

}  // namespace nf2bpf::ir
