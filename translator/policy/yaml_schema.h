// Private to the policy YAML writer and reader: names, the spelled-out forms
// of actions, checks, statements and NAT ranges (the writer spells them, the
// reader reads them back, and the writer reads its own spelling back to know
// when a rule or a range needs `raw:`), and the origin fields both sides share.
#pragma once

#include <cctype>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <string_view>
#include <vector>

#include "translator/policy/policy.h"

namespace nf2bpf::policy::yaml_schema {

using ir::u128;

constexpr int kVersion = 2;

const char* const kSlotNames[NF_SLOT_MAX] = {
    "saddr", "daddr",   "sport",     "dport",     "proto", "icmp", "ctstate", "tcpflags", "pkttype", "length",
    "ttl",   "nfproto", "saddrtype", "daddrtype", "ctdir", "frag", "dscp",    "iif",      "oif"};
const char* const kHookNames[NF_HOOK_MAX] = {"prerouting", "input", "forward", "output", "postrouting"};
const char* const kActionNames[] = {"accept", "drop", "reject", "continue", "skip"};
const char* const kNatKindNames[] = {nullptr,    "dnat",   "snat",   "masquerade",
                                     "redirect", "netmap", "service"};  // by NF_NAT_*
// Conntrack tuple tests kept with the NAT ranges: by kind - NF_NAT_CT.
const char* const kCtTestNames[] = {"ct original saddr", "ct original sport", "ct original daddr", "ct original dport",
                                    "ct reply saddr",    "ct reply sport",    "ct reply daddr",    "ct reply dport"};

// The slots of the "small" class array, in array order.
struct SmallSlot {
  int slot;
  uint32_t base, size;
};
constexpr SmallSlot kSmall[] = {
    {NF_SLOT_SPORT, NF_SMALL_SPORT_BASE, NF_SMALL_SPORT_SIZE},
    {NF_SLOT_DPORT, NF_SMALL_DPORT_BASE, NF_SMALL_DPORT_SIZE},
    {NF_SLOT_PROTO, NF_SMALL_PROTO_BASE, NF_SMALL_PROTO_SIZE},
    {NF_SLOT_ICMP, NF_SMALL_ICMP_BASE, NF_SMALL_ICMP_SIZE},
    {NF_SLOT_CTSTATE, NF_SMALL_CTSTATE_BASE, NF_SMALL_CTSTATE_SIZE},
    {NF_SLOT_TCPFLAGS, NF_SMALL_TCPFLAGS_BASE, NF_SMALL_TCPFLAGS_SIZE},
    {NF_SLOT_PKTTYPE, NF_SMALL_PKTTYPE_BASE, NF_SMALL_PKTTYPE_SIZE},
    {NF_SLOT_LENGTH, NF_SMALL_LENGTH_BASE, NF_SMALL_LENGTH_SIZE},
    {NF_SLOT_TTL, NF_SMALL_TTL_BASE, NF_SMALL_TTL_SIZE},
    {NF_SLOT_NFPROTO, NF_SMALL_NFPROTO_BASE, NF_SMALL_NFPROTO_SIZE},
    {NF_SLOT_SADDRTYPE, NF_SMALL_SADDRTYPE_BASE, NF_SMALL_SADDRTYPE_SIZE},
    {NF_SLOT_DADDRTYPE, NF_SMALL_DADDRTYPE_BASE, NF_SMALL_DADDRTYPE_SIZE},
    {NF_SLOT_CTDIR, NF_SMALL_CTDIR_BASE, NF_SMALL_CTDIR_SIZE},
    {NF_SLOT_FRAG, NF_SMALL_FRAG_BASE, NF_SMALL_FRAG_SIZE},
    {NF_SLOT_TOS, NF_SMALL_TOS_BASE, NF_SMALL_TOS_SIZE},
};
static_assert(NF_SMALL_TOS_BASE + NF_SMALL_TOS_SIZE == NF_SMALL_TOTAL);

int slot_by_name(std::string_view s);
std::string slot_name(unsigned s);
// Known names print as names, anything else as its number (and is then
// caught by validation or the checksum on load).
std::string enum_name(const char* const* names, size_t n, unsigned v);
std::string hex(uint64_t v);

// --- Text helpers -----------------------------------------------------------

// A string inside a spelled-out check or statement: C-like quoting, ASCII only.
std::string cq(std::string_view s);

// Reads the spelled-out forms back. Every step either consumes what it
// expects or fails leaving `i` where the mismatch is (for the column).
struct Cursor {
  std::string_view s;
  size_t i = 0;
  bool lit(std::string_view t) {
    if (s.substr(i).starts_with(t)) return i += t.size(), true;
    return false;
  }
  bool done() const { return i == s.size(); }
  bool dec(uint64_t& v, uint64_t max = UINT64_MAX) {
    size_t j = i;
    while (j < s.size() && s[j] >= '0' && s[j] <= '9') ++j;
    if (j == i || (j - i > 1 && s[i] == '0')) return false;
    auto [p, ec] = std::from_chars(s.data() + i, s.data() + j, v);
    if (ec != std::errc() || v > max) return false;
    i = j;
    return true;
  }
  bool hex(uint64_t& v, uint64_t max = UINT32_MAX) {
    if (!s.substr(i).starts_with("0x")) return false;
    size_t j = i + 2;
    while (j < s.size() && std::isxdigit((unsigned char)s[j]) && !std::isupper((unsigned char)s[j])) ++j;
    if (j == i + 2) return false;
    auto [p, ec] = std::from_chars(s.data() + i + 2, s.data() + j, v, 16);
    if (ec != std::errc() || v > max || hex_text(v) != s.substr(i, j - i)) return false;  // canonical only
    i = j;
    return true;
  }
  bool hex32(uint32_t& v) {
    uint64_t x;
    if (!hex(x)) return false;
    v = (uint32_t)x;
    return true;
  }
  bool quoted(std::string& out) {
    if (!lit("\"")) return false;
    out.clear();
    while (i < s.size() && s[i] != '"') {
      if (s[i] != '\\') {
        out += s[i++];
        continue;
      }
      if (i + 1 >= s.size()) return false;
      char e = s[i + 1];
      if (e == '"' || e == '\\') {
        out += e, i += 2;
        continue;
      }
      unsigned v = 0;
      if (e != 'x' || i + 4 > s.size() ||
          std::from_chars(s.data() + i + 2, s.data() + i + 4, v, 16).ptr != s.data() + i + 4)
        return false;
      out += (char)v, i += 4;
    }
    return lit("\"");
  }
  static std::string hex_text(uint64_t v) { return yaml_schema::hex(v); }
};

std::string mac_text(uint64_t m);
// "5/second burst 5": recomputed on load and compared with what the file says.
std::string limit_text(const nf2bpf_limit_cfg& l);
std::string probability_text(uint32_t below);

// --- Spelled-out rules --------------------------------------------------------

// The raw fields of a compiled rule, for the `raw:` override of anything the
// spelled-out form does not determine (never needed for compiler output).
struct RawField {
  const char* name;
  size_t off, size;
};
#define NF2BPF_RULE_FIELD(x) \
  RawField { #x, offsetof(nf2bpf_rule, x), sizeof(nf2bpf_rule::x) }
constexpr RawField kRuleFields[] = {
    NF2BPF_RULE_FIELD(action),
    NF2BPF_RULE_FIELD(reject_type),
    NF2BPF_RULE_FIELD(stmt_count),
    NF2BPF_RULE_FIELD(stmt_first),
    NF2BPF_RULE_FIELD(skip_to),
    NF2BPF_RULE_FIELD(residual),
    NF2BPF_RULE_FIELD(mark_mask),
    NF2BPF_RULE_FIELD(mark_value),
    NF2BPF_RULE_FIELD(mark2_mask),
    NF2BPF_RULE_FIELD(mark2_value),
    NF2BPF_RULE_FIELD(ctmark_mask),
    NF2BPF_RULE_FIELD(ctmark_value),
    NF2BPF_RULE_FIELD(limit),
    NF2BPF_RULE_FIELD(random_below),
    NF2BPF_RULE_FIELD(src_chain),
    NF2BPF_RULE_FIELD(mac),
    NF2BPF_RULE_FIELD(src_line),
    NF2BPF_RULE_FIELD(nat),
    NF2BPF_RULE_FIELD(ctstatus),
    NF2BPF_RULE_FIELD(nth_slot),
    NF2BPF_RULE_FIELD(nth_every),
    NF2BPF_RULE_FIELD(nth_hit),
    NF2BPF_RULE_FIELD(recent_table),
    NF2BPF_RULE_FIELD(recent_seconds),
    NF2BPF_RULE_FIELD(recent_hitcount),
    NF2BPF_RULE_FIELD(recent_cmd),
    NF2BPF_RULE_FIELD(recent_flags),
    NF2BPF_RULE_FIELD(recent_ring),
    RawField{"recent_mask_hi", offsetof(nf2bpf_rule, recent_mask), 8},
    RawField{"recent_mask_lo", offsetof(nf2bpf_rule, recent_mask) + 8, 8},
};
#undef NF2BPF_RULE_FIELD

uint64_t get_field(const nf2bpf_rule& r, const RawField& f);
void set_field(nf2bpf_rule& r, const RawField& f, uint64_t v);
uint64_t field_max(const RawField& f);

struct ParseFail {
  size_t offset;
  std::string why;
  std::string hint = {};
};

// --- NAT ranges ---------------------------------------------------------------

// "dnat", "snat", "masquerade", "redirect", "netmap"; another kind as its number.
std::string nat_kind_name(unsigned kind);
int nat_kind_by_name(std::string_view s);  // -1 when unknown
// The flags a `nat:` entry lists (random, random-fully, persistent; any other
// bit as its number). NF_NAT_F_ADDR and NF_NAT_F_PORTS are not listed: `to`
// says whether an address and a port range are given.
std::vector<std::string> nat_flag_names(uint8_t flags);
int nat_flag_by_name(std::string_view s);  // the NF_NAT_F_* bit, -1 when unknown
// "10.0.0.1" for an IPv4-mapped address, "fd00::1" otherwise.
std::string nat_addr_text(const uint8_t a[16]);
bool parse_nat_addr(std::string_view s, uint8_t a[16]);
// Where the range translates to, as iptables' --to-destination spells it:
// "10.0.0.2-10.0.0.5:8080-8090", "[fd00::1]:80", ":8080" (ports only), ""
// (neither: masquerade, a plain redirect).
std::string nat_to_text(const nf2bpf_nat& n);
// Sets the address and port fields and NF_NAT_F_ADDR/PORTS from `to`.
std::optional<ParseFail> parse_nat_to(std::string_view s, nf2bpf_nat& n);
// The whole range in one line: "dnat to 10.0.0.2:8080 random".
std::string nat_text(const nf2bpf_nat& n);
// A service backend as `to` spells one address and port: "10.1.0.5:80", "[fd00::5]:80".
std::string service_backend_text(const ServiceBackend& b);
std::optional<ParseFail> parse_service_backend(std::string_view s, ServiceBackend& b);

// --- Actions --------------------------------------------------------------------

// NF_ACT_NAT spells out the range it names: "dnat #3 to 10.0.0.2:8080".
std::string action_text(const Policy& p, const nf2bpf_rule& r);
std::optional<ParseFail> parse_action(std::string_view s, const Policy& p, nf2bpf_rule& r);

std::vector<std::string> checks_text(const Policy& p, const nf2bpf_rule& r);

// Adds one spelled-out check to `r`.
std::optional<ParseFail> parse_check(std::string_view s, const Policy& p, nf2bpf_rule& r);

std::string stmt_text(const Policy& p, const nf2bpf_stmt& s);
std::optional<ParseFail> parse_stmt(std::string_view s, const Policy& p, nf2bpf_stmt& st);
// All fields of a statement, for one its spelled-out form does not give back.
std::string stmt_map(const nf2bpf_stmt& s);

// --- Origins ------------------------------------------------------------------

// The line of "file:line", or 0.
uint32_t line_of_location(std::string_view loc);
// "table/chain" -> its index in `chain_names` (built once: rules are looked
// up one by one).
using ChainIndex = std::unordered_map<std::string, int64_t>;
ChainIndex chain_index_of(const Policy& p);
// Index of the origin's table/chain in `chain_names`, or -1.
int64_t chain_index(const ChainIndex& index, const Origin& g);

}  // namespace nf2bpf::policy::yaml_schema
