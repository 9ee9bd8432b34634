#include "translator/policy/yaml.h"

#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <arpa/inet.h>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <set>
#include <unordered_map>

#include "common/atomic_file.h"
#include "common/sha256.h"

namespace nf2bpf::policy {

namespace {

using ir::u128;

constexpr int kVersion = 1;

const char* const kSlotNames[NF_SLOT_MAX] = {
    "saddr", "daddr",   "sport",     "dport",     "proto", "icmp", "ctstate", "tcpflags", "pkttype", "length",
    "ttl",   "nfproto", "saddrtype", "daddrtype", "ctdir", "frag", "dscp",    "iif",      "oif"};
const char* const kHookNames[NF_HOOK_MAX] = {"prerouting", "input", "forward", "output", "postrouting"};
const char* const kActionNames[] = {"accept", "drop", "reject", "continue", "skip"};

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
    {NF_SLOT_DSCP, NF_SMALL_DSCP_BASE, NF_SMALL_DSCP_SIZE},
};
static_assert(NF_SMALL_DSCP_BASE + NF_SMALL_DSCP_SIZE == NF_SMALL_TOTAL);

int slot_by_name(std::string_view s) {
  for (int i = 0; i < NF_SLOT_MAX; ++i)
    if (s == kSlotNames[i]) return i;
  return -1;
}

std::string slot_name(unsigned s) { return s < NF_SLOT_MAX ? kSlotNames[s] : "slot" + std::to_string(s); }

// Known names print as names, anything else as its number (and is then
// caught by validation or the checksum on load).
std::string enum_name(const char* const* names, size_t n, unsigned v) {
  return v < n ? names[v] : std::to_string(v);
}

std::string hex(uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "0x%llx", (unsigned long long)v);
  return b;
}

// --- Text helpers -----------------------------------------------------------

// Length of the valid UTF-8 sequence at s[i] and its code point, or 0.
size_t utf8_at(std::string_view s, size_t i, uint32_t& cp) {
  auto c = (unsigned char)s[i];
  size_t n = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  cp = n == 1 ? c : n == 2 ? c & 0x1f : n == 3 ? c & 0x0f : c & 0x07;
  for (size_t k = 1; k < n; ++k) {
    auto x = (unsigned char)s[i + k];
    if ((x & 0xc0) != 0x80) return 0;
    cp = cp << 6 | (x & 0x3f);
  }
  static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return n;
}

// Words a YAML 1.1 reader would take for booleans or null if left plain.
bool yaml_keyword(std::string_view s) {
  std::string l;
  for (char c : s) l += (char)std::tolower((unsigned char)c);
  for (const char* k : {"y", "n", "yes", "no", "true", "false", "on", "off", "null"})
    if (l == k) return true;
  return false;
}

// A YAML scalar for any byte string: plain when it is a simple word or
// phrase (names, actions), single-quoted when every character is printable,
// double-quoted with escapes otherwise, and base64 (!!binary) when the bytes
// are not UTF-8 (YAML text must be).
std::string yq(std::string_view s, bool allow_plain = true) {
  if (allow_plain && !s.empty() && std::isalpha((unsigned char)s[0]) && s.back() != ' ' && !yaml_keyword(s) &&
      s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./+- ") == std::string_view::npos)
    return std::string(s);
  bool plain_ok = true;
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = 0;
    size_t n = utf8_at(s, i, cp);
    if (n == 0) {
      std::vector<unsigned char> bytes(s.begin(), s.end());
      return "!!binary \"" + YAML::EncodeBase64(bytes.data(), bytes.size()) + "\"";
    }
    if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f) || cp == 0xfeff) plain_ok = false;
    i += n;
  }
  std::string out;
  if (plain_ok) {
    out = "'";
    for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
    return out + "'";
  }
  out = "\"";
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = 0;
    size_t n = utf8_at(s, i, cp);
    char b[12];
    if (cp == '"' || cp == '\\') out += '\\', out += (char)cp;
    else if (cp == '\n') out += "\\n";
    else if (cp == '\t') out += "\\t";
    else if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f)) std::snprintf(b, sizeof b, "\\x%02x", cp), out += b;
    else if (cp == 0xfeff) out += "\\ufeff";
    else out.append(s.substr(i, n));
    i += n;
  }
  return out + "\"";
}

// A string inside a spelled-out check or statement: C-like quoting, ASCII only.
std::string cq(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') out += '\\', out += (char)c;
    else if (c < 0x20 || c >= 0x7f) {
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02x", c);
      out += b;
    } else out += (char)c;
  }
  return out + "\"";
}

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
      if (e != 'x' || i + 4 > s.size() || std::from_chars(s.data() + i + 2, s.data() + i + 4, v, 16).ptr != s.data() + i + 4)
        return false;
      out += (char)v, i += 4;
    }
    return lit("\"");
  }
  static std::string hex_text(uint64_t v) { return nf2bpf::policy::hex(v); }
};

std::string mac_text(uint64_t m) {
  char b[24];
  std::snprintf(b, sizeof b, "%02x:%02x:%02x:%02x:%02x:%02x", (unsigned)(m >> 40 & 0xff), (unsigned)(m >> 32 & 0xff),
                (unsigned)(m >> 24 & 0xff), (unsigned)(m >> 16 & 0xff), (unsigned)(m >> 8 & 0xff), (unsigned)(m & 0xff));
  return b;
}

// "5/second burst 5": recomputed on load and compared with what the file says.
std::string limit_text(const nf2bpf_limit_cfg& l) {
  if (l.cost_ns == 0) return "unlimited";
  double per_sec = 1e9 / (double)l.cost_ns;
  std::string rate;
  for (auto [unit, secs] : {std::pair{"second", 1.0}, {"minute", 60.0}, {"hour", 3600.0}, {"day", 86400.0}}) {
    double n = per_sec * secs;
    if (n >= 1 && std::fabs(n - std::round(n)) < 1e-6 * n) {
      rate = std::to_string((long long)std::llround(n)) + "/" + unit;
      break;
    }
  }
  if (rate.empty()) {
    char b[40];
    std::snprintf(b, sizeof b, "%.6g/second", per_sec);
    rate = b;
  }
  if (l.burst_ns % l.cost_ns == 0) return rate + " burst " + std::to_string(l.burst_ns / l.cost_ns);
  return rate + " burst " + std::to_string(l.burst_ns) + "ns";
}

std::string probability_text(uint32_t below) {
  char b[32];
  std::snprintf(b, sizeof b, "%.6g", below / 2147483648.0);
  return b;
}

// "10.0.0.0/8" for the IPv4-mapped range, "2001:db8::/32" otherwise.
std::string cidr_text(u128 addr, unsigned len) {
  char buf[INET6_ADDRSTRLEN];
  if (ir::is_v4_mapped(addr) && len >= 96) {
    in_addr x{};
    x.s_addr = htonl((uint32_t)addr);
    inet_ntop(AF_INET, &x, buf, sizeof buf);
    return std::string(buf) + "/" + std::to_string(len - 96);
  }
  in6_addr x{};
  for (int i = 15; i >= 0; --i, addr >>= 8) x.s6_addr[i] = (uint8_t)(addr & 0xff);
  inet_ntop(AF_INET6, &x, buf, sizeof buf);
  return std::string(buf) + "/" + std::to_string(len);
}

bool parse_cidr_text(std::string_view s, u128& addr, unsigned& len) {
  auto slash = s.find('/');
  if (slash == std::string_view::npos) return false;
  std::string a(s.substr(0, slash));
  uint64_t l = 0;
  Cursor c{s.substr(slash + 1)};
  if (!c.dec(l, 128) || !c.done()) return false;
  if (a.find(':') == std::string::npos) {
    in_addr x{};
    if (inet_pton(AF_INET, a.c_str(), &x) != 1 || l > 32) return false;
    addr = ir::v4_to_u128(ntohl(x.s_addr));
    len = (unsigned)l + 96;
    return true;
  }
  in6_addr x{};
  if (inet_pton(AF_INET6, a.c_str(), &x) != 1) return false;
  addr = 0;
  for (int i = 0; i < 16; ++i) addr = addr << 8 | x.s6_addr[i];
  len = (unsigned)l;
  // The IPv4-mapped form of a /96-or-longer prefix is spelled dotted.
  return !(ir::is_v4_mapped(addr) && len >= 96);
}

// --- Spelled-out rules --------------------------------------------------------

// The raw fields of a compiled rule, for the `raw:` override of anything the
// spelled-out form does not determine (never needed for compiler output).
struct RawField {
  const char* name;
  size_t off, size;
};
#define NF2BPF_RULE_FIELD(x) RawField{#x, offsetof(nf2bpf_rule, x), sizeof(nf2bpf_rule::x)}
constexpr RawField kRuleFields[] = {
    NF2BPF_RULE_FIELD(action),     NF2BPF_RULE_FIELD(reject_type),  NF2BPF_RULE_FIELD(stmt_count),
    NF2BPF_RULE_FIELD(stmt_first), NF2BPF_RULE_FIELD(skip_to),      NF2BPF_RULE_FIELD(residual),
    NF2BPF_RULE_FIELD(mark_mask),  NF2BPF_RULE_FIELD(mark_value),   NF2BPF_RULE_FIELD(mark2_mask),
    NF2BPF_RULE_FIELD(mark2_value), NF2BPF_RULE_FIELD(ctmark_mask), NF2BPF_RULE_FIELD(ctmark_value),
    NF2BPF_RULE_FIELD(limit),      NF2BPF_RULE_FIELD(random_below), NF2BPF_RULE_FIELD(src_chain),
    NF2BPF_RULE_FIELD(mac),        NF2BPF_RULE_FIELD(src_line),     NF2BPF_RULE_FIELD(pad),
};
#undef NF2BPF_RULE_FIELD

uint64_t get_field(const nf2bpf_rule& r, const RawField& f) {
  const char* p = reinterpret_cast<const char*>(&r) + f.off;
  switch (f.size) {
    case 1: { uint8_t v; std::memcpy(&v, p, 1); return v; }
    case 2: { uint16_t v; std::memcpy(&v, p, 2); return v; }
    case 4: { uint32_t v; std::memcpy(&v, p, 4); return v; }
    default: { uint64_t v; std::memcpy(&v, p, 8); return v; }
  }
}
void set_field(nf2bpf_rule& r, const RawField& f, uint64_t v) {
  char* p = reinterpret_cast<char*>(&r) + f.off;
  switch (f.size) {
    case 1: { uint8_t x = (uint8_t)v; std::memcpy(p, &x, 1); break; }
    case 2: { uint16_t x = (uint16_t)v; std::memcpy(p, &x, 2); break; }
    case 4: { uint32_t x = (uint32_t)v; std::memcpy(p, &x, 4); break; }
    default: std::memcpy(p, &v, 8);
  }
}
uint64_t field_max(const RawField& f) { return f.size >= 8 ? UINT64_MAX : (1ULL << (8 * f.size)) - 1; }

std::string action_text(const nf2bpf_rule& r) {
  switch (r.action) {
    case NF_ACT_ACCEPT: return "accept";
    case NF_ACT_DROP: return "drop";
    case NF_ACT_REJECT: return r.reject_type ? std::string("reject with ") + reject_name(r.reject_type) : "reject";
    case NF_ACT_CONTINUE: return "continue";
    case NF_ACT_SKIP: return "skip to " + std::to_string(r.skip_to);
  }
  return "accept";  // the raw override carries the real value
}

// Returns the offset of the first character it could not read, or npos.
size_t parse_action(std::string_view s, nf2bpf_rule& r) {
  Cursor c{s};
  uint64_t to = 0;
  if (c.lit("accept")) r.action = NF_ACT_ACCEPT;
  else if (c.lit("drop")) r.action = NF_ACT_DROP;
  else if (c.lit("reject")) {
    r.action = NF_ACT_REJECT;
    if (c.lit(" with ")) {
      size_t at = c.i;
      uint8_t code = kRejectUnknown;
      for (uint8_t k = 1; k < kRejectUnknown && std::string_view(reject_name(k)) != "unknown"; ++k)
        if (c.lit(reject_name(k))) {
          code = k;
          break;
        }
      if (code == kRejectUnknown) return at;
      r.reject_type = code;
    }
  } else if (c.lit("continue")) r.action = NF_ACT_CONTINUE;
  else if (c.lit("skip to ")) {
    if (!c.dec(to, UINT32_MAX)) return c.i;
    r.action = NF_ACT_SKIP;
    r.skip_to = (uint32_t)to;
  } else return 0;
  return c.done() ? std::string_view::npos : c.i;
}

std::vector<std::string> checks_text(const Policy& p, const nf2bpf_rule& r) {
  std::vector<std::string> out;
  auto masked = [](const char* what, uint32_t mask, uint32_t value, bool neg) {
    return std::string(what) + " & " + hex(mask) + (neg ? " != " : " == ") + hex(value);
  };
  if (r.residual & NF_RES_MARK) out.push_back(masked("mark", r.mark_mask, r.mark_value, r.residual & NF_RES_MARK_NEG));
  if ((r.residual & NF_RES_MARK2) && (r.residual & NF_RES_MARK))
    out.push_back(masked("mark", r.mark2_mask, r.mark2_value, r.residual & NF_RES_MARK2_NEG));
  if (r.residual & NF_RES_CTMARK)
    out.push_back(masked("ctmark", r.ctmark_mask, r.ctmark_value, r.residual & NF_RES_CTMARK_NEG));
  if ((r.residual & NF_RES_LIMIT) && r.limit < p.limits.size())
    out.push_back("limit " + limit_text(p.limits[r.limit]) + " (#" + std::to_string(r.limit) + ")");
  if (r.residual & NF_RES_RANDOM)
    out.push_back(std::string(r.residual & NF_RES_RANDOM_NEG ? "not " : "") + "random " +
                  probability_text(r.random_below) + " (below " + hex(r.random_below) + ")");
  if (r.residual & NF_RES_MAC)
    out.push_back(std::string("mac ") + (r.residual & NF_RES_MAC_NEG ? "!= " : "== ") + mac_text(r.mac));
  return out;
}

struct ParseFail {
  size_t offset;
  std::string why;
};

// Adds one spelled-out check to `r`.
std::optional<ParseFail> parse_check(std::string_view s, const Policy& p, nf2bpf_rule& r) {
  Cursor c{s};
  auto masked = [&](uint32_t& mask, uint32_t& value, uint32_t neg_bit) -> std::optional<ParseFail> {
    if (!c.hex32(mask)) return ParseFail{c.i, "expected a hex mask like 0xff"};
    bool neg = false;
    if (c.lit(" != ")) neg = true;
    else if (!c.lit(" == ")) return ParseFail{c.i, "expected ' == ' or ' != '"};
    if (!c.hex32(value)) return ParseFail{c.i, "expected a hex value like 0x1"};
    if (neg) r.residual |= neg_bit;
    return std::nullopt;
  };
  std::optional<ParseFail> f;
  if (c.lit("mark & ")) {
    if (!(r.residual & NF_RES_MARK)) {
      r.residual |= NF_RES_MARK;
      f = masked(r.mark_mask, r.mark_value, NF_RES_MARK_NEG);
    } else if (!(r.residual & NF_RES_MARK2)) {
      r.residual |= NF_RES_MARK2;
      f = masked(r.mark2_mask, r.mark2_value, NF_RES_MARK2_NEG);
    } else {
      return ParseFail{0, "a rule has at most two mark checks"};
    }
  } else if (c.lit("ctmark & ")) {
    if (r.residual & NF_RES_CTMARK) return ParseFail{0, "a rule has at most one ctmark check"};
    r.residual |= NF_RES_CTMARK;
    f = masked(r.ctmark_mask, r.ctmark_value, NF_RES_CTMARK_NEG);
  } else if (c.lit("limit ")) {
    if (r.residual & NF_RES_LIMIT) return ParseFail{0, "a rule has at most one limit"};
    auto open = s.rfind(" (#");
    if (open == std::string_view::npos || open < c.i) return ParseFail{c.i, "expected 'RATE burst N (#INDEX)'"};
    std::string_view shown = s.substr(c.i, open - c.i);
    c.i = open + 3;
    uint64_t idx = 0;
    if (!c.dec(idx, UINT32_MAX) || !c.lit(")")) return ParseFail{c.i, "expected a limit index like (#1)"};
    if (idx == 0 || idx >= p.limits.size())
      return ParseFail{open + 3, "limit #" + std::to_string(idx) + " is not in 'limits' (1.." +
                                     std::to_string(p.limits.empty() ? 0 : p.limits.size() - 1) + ")"};
    if (shown != limit_text(p.limits[idx]))
      return ParseFail{open - shown.size(), "says '" + std::string(shown) + "' but limit #" + std::to_string(idx) +
                                                " is " + limit_text(p.limits[idx])};
    r.residual |= NF_RES_LIMIT;
    r.limit = (uint32_t)idx;
  } else if (s.starts_with("random ") || s.starts_with("not random ")) {
    if (r.residual & NF_RES_RANDOM) return ParseFail{0, "a rule has at most one random check"};
    if (c.lit("not ")) r.residual |= NF_RES_RANDOM_NEG;
    c.lit("random ");
    size_t at = c.i;
    auto open = s.find(" (below ", at);
    if (open == std::string_view::npos) return ParseFail{c.i, "expected 'P (below 0xN)'"};
    std::string_view shown = s.substr(at, open - at);
    c.i = open + 8;
    uint64_t below = 0;
    if (!c.hex(below) || !c.lit(")")) return ParseFail{c.i, "expected a hex threshold like (below 0x40000000)"};
    if (shown != probability_text((uint32_t)below))
      return ParseFail{at, "says probability " + std::string(shown) + " but the threshold gives " +
                               probability_text((uint32_t)below)};
    r.residual |= NF_RES_RANDOM;
    r.random_below = (uint32_t)below;
  } else if (c.lit("mac ")) {
    if (r.residual & NF_RES_MAC) return ParseFail{0, "a rule has at most one mac check"};
    if (c.lit("!= ")) r.residual |= NF_RES_MAC_NEG;
    else if (!c.lit("== ")) return ParseFail{c.i, "expected '== ' or '!= '"};
    uint64_t m = 0;
    for (int k = 0; k < 6; ++k) {
      if (k && !c.lit(":")) return ParseFail{c.i, "expected a MAC address like 00:11:22:33:44:55"};
      unsigned v = 0;
      auto [ptr, ec] = std::from_chars(s.data() + c.i, s.data() + std::min(s.size(), c.i + 2), v, 16);
      if (ec != std::errc() || ptr != s.data() + c.i + 2 || std::isupper((unsigned char)s[c.i]) ||
          std::isupper((unsigned char)s[c.i + 1]))
        return ParseFail{c.i, "expected a MAC address like 00:11:22:33:44:55"};
      m = m << 8 | v;
      c.i += 2;
    }
    r.residual |= NF_RES_MAC;
    r.mac = m;
  } else {
    return ParseFail{0, "unknown check (expected mark, ctmark, limit, random, not random or mac)"};
  }
  if (f) return f;
  if (!c.done()) return ParseFail{c.i, "unexpected text after the check"};
  return std::nullopt;
}

// First index of a log prefix, as the spelled-out form resolves it.
int64_t prefix_index(const Policy& p, const std::string& text) {
  for (size_t i = 0; i < p.log_prefixes.size(); ++i)
    if (p.log_prefixes[i] == text) return (int64_t)i;
  return -1;
}

std::string stmt_text(const Policy& p, const nf2bpf_stmt& s) {
  auto m = hex(s.mask), v = hex(s.value);
  switch (s.kind) {
    case NF_STMT_LOG: {
      std::string t = "log level " + std::to_string(s.level);
      if (s.group) t += " group " + std::to_string(s.group);
      if (s.prefix_id < p.log_prefixes.size() && prefix_index(p, p.log_prefixes[s.prefix_id]) == s.prefix_id)
        return t + " prefix " + cq(p.log_prefixes[s.prefix_id]);
      return t + " prefix #" + std::to_string(s.prefix_id);
    }
    case NF_STMT_SET_MARK: return "mark = (mark & ~" + m + ") ^ " + v;
    case NF_STMT_SET_CTMARK: return "ctmark = (ctmark & ~" + m + ") ^ " + v;
    case NF_STMT_SAVE_MARK: return "ctmark = (ctmark & ~" + m + ") | (mark & " + m + ")";
    case NF_STMT_RESTORE_MARK: return "mark = (mark & ~" + m + ") | (ctmark & " + m + ")";
    case NF_STMT_NOTRACK: return "notrack";
  }
  return "?";
}

std::optional<ParseFail> parse_stmt(std::string_view s, const Policy& p, nf2bpf_stmt& st) {
  Cursor c{s};
  st = {};
  auto expr = [&](const char* lhs_open, uint8_t set_kind, const char* copy_from, uint8_t copy_kind)
      -> std::optional<ParseFail> {
    // "X = (X & ~M) ^ V" sets, "X = (X & ~M) | (Y & M)" copies.
    if (!c.lit(lhs_open) || !c.hex32(st.mask) || !c.lit(") ")) return ParseFail{c.i, "expected '(... & ~0xMASK) '"};
    if (c.lit("^ ")) {
      if (!c.hex32(st.value)) return ParseFail{c.i, "expected a hex value"};
      st.kind = set_kind;
      return std::nullopt;
    }
    uint32_t mask2 = 0;
    if (!c.lit("| (") || !c.lit(copy_from) || !c.hex32(mask2) || !c.lit(")"))
      return ParseFail{c.i, std::string("expected '^ 0xVALUE' or '| (") + copy_from + "0xMASK)'"};
    if (mask2 != st.mask) return ParseFail{c.i, "the two masks differ"};
    st.kind = copy_kind;
    return std::nullopt;
  };
  std::optional<ParseFail> f;
  if (c.lit("log level ")) {
    uint64_t level = 0, group = 0, id = 0;
    if (!c.dec(level, 255)) return ParseFail{c.i, "expected a log level 0..255"};
    if (c.lit(" group ") && !c.dec(group, 65535)) return ParseFail{c.i, "expected a group 0..65535"};
    if (!c.lit(" prefix ")) return ParseFail{c.i, "expected ' prefix \"TEXT\"'"};
    if (c.lit("#")) {
      if (!c.dec(id, UINT32_MAX)) return ParseFail{c.i, "expected a log prefix index"};
    } else {
      size_t at = c.i;
      std::string text;
      if (!c.quoted(text)) return ParseFail{c.i, "expected a quoted prefix"};
      int64_t k = prefix_index(p, text);
      if (k < 0) return ParseFail{at, "prefix " + cq(text) + " is not in 'log_prefixes'"};
      id = (uint64_t)k;
    }
    if (id >= p.log_prefixes.size()) return ParseFail{0, "log prefix #" + std::to_string(id) + " is not in 'log_prefixes'"};
    st.kind = NF_STMT_LOG, st.level = (uint8_t)level, st.group = (uint16_t)group, st.prefix_id = (uint32_t)id;
  } else if (c.lit("mark = ")) {
    f = expr("(mark & ~", NF_STMT_SET_MARK, "ctmark & ", NF_STMT_RESTORE_MARK);
  } else if (c.lit("ctmark = ")) {
    f = expr("(ctmark & ~", NF_STMT_SET_CTMARK, "mark & ", NF_STMT_SAVE_MARK);
  } else if (c.lit("notrack")) {
    st.kind = NF_STMT_NOTRACK;
  } else {
    return ParseFail{0, "unknown statement (expected log, mark = ..., ctmark = ... or notrack)"};
  }
  if (f) return f;
  if (!c.done()) return ParseFail{c.i, "unexpected text after the statement"};
  return std::nullopt;
}

std::string stmt_map(const nf2bpf_stmt& s) {
  return "{kind: " + std::to_string(s.kind) + ", level: " + std::to_string(s.level) + ", group: " +
         std::to_string(s.group) + ", value: " + std::to_string(s.value) + ", mask: " + std::to_string(s.mask) +
         ", prefix_id: " + std::to_string(s.prefix_id) + "}";
}

// Statements are written inline with their rule when they are laid out the
// way the compiler lays them out: each rule's after the previous rule's.
bool stmts_inline(const Policy& p) {
  uint32_t next = 0;
  for (const auto& r : p.rules) {
    if (r.stmt_first != next) return false;
    next += r.stmt_count;
  }
  return next == p.stmts.size();
}

// --- Origins ------------------------------------------------------------------

uint32_t line_of_location(std::string_view loc) {
  auto colon = loc.rfind(':');
  if (colon == std::string_view::npos) return 0;
  Cursor c{loc.substr(colon + 1)};
  uint64_t v = 0;
  return c.dec(v, UINT32_MAX) && c.done() ? (uint32_t)v : 0;
}

void write_origin(std::string& o, const Origin& g, const char* indent, const char* text_key) {
  o += indent, o += "at: " + yq(g.location) + "\n";
  if (g.table.find('/') == std::string::npos) {
    o += indent, o += "chain: " + yq(g.table + "/" + g.chain) + "\n";
  } else {
    o += indent, o += "table: " + yq(g.table) + "\n";
    o += indent, o += "chain: " + yq(g.chain) + "\n";
  }
  o += indent, o += text_key, o += ": " + yq(g.text) + "\n";
  if (line_of_location(g.location) != g.source_line) o += indent, o += "line: " + std::to_string(g.source_line) + "\n";
}

int64_t chain_index(const Policy& p, const Origin& g) {
  std::string name = g.table + "/" + g.chain;
  for (size_t i = 0; i < p.chain_names.size(); ++i)
    if (p.chain_names[i] == name) return (int64_t)i;
  return -1;
}

// What a rule's spelled-out form determines (the loader's view), so the
// writer can add `raw:` for whatever it does not.
nf2bpf_rule derive_rule(const Policy& p, const Origin& g, const std::string& action,
                        const std::vector<std::string>& checks, uint32_t stmt_first, uint32_t stmt_count) {
  nf2bpf_rule r{};
  parse_action(action, r);
  for (const auto& c : checks) parse_check(c, p, r);
  r.stmt_first = stmt_first, r.stmt_count = (uint16_t)stmt_count;
  int64_t ci = chain_index(p, g);
  r.src_chain = ci < 0 ? 0 : (uint32_t)ci;
  r.src_line = g.source_line;
  return r;
}

}  // namespace

std::string notes_checksum(const Policy& p) {
  std::string s = "nf2bpf-policy-notes-v1";
  auto put_str = [&](const std::string& x) {
    uint64_t n = x.size();
    s.append(reinterpret_cast<const char*>(&n), sizeof n);
    s += x;
  };
  auto put_num = [&](uint64_t v) { s.append(reinterpret_cast<const char*>(&v), sizeof v); };
  auto put_origin = [&](const Origin& g) {
    put_str(g.location), put_str(g.table), put_str(g.chain), put_str(g.text), put_num(g.source_line);
  };
  put_str(p.source), put_str(p.input_format), put_num(p.rule_count_source);
  put_num(p.origins.size());
  for (const auto& g : p.origins) put_origin(g);
  put_num(p.stage_origins.size());
  for (const auto& g : p.stage_origins) put_origin(g);
  put_num(p.chain_names.size());
  for (const auto& c : p.chain_names) put_str(c);
  return sha256_hex(s);
}

// --- Writer -------------------------------------------------------------------

std::string to_yaml(const Policy& p) {
  std::string o;
  o.reserve(4096 + p.rules.size() * 256 + p.entries.size() * 32 + p.lpm.size() * 32);
  auto num = [](uint64_t v) { return std::to_string(v); };
  auto names_of_bits = [&](uint32_t bits, const char* const* names, size_t n) {
    std::string s = "[";
    for (size_t b = 0; b < 32; ++b)
      if (bits & (1u << b)) s += (s.size() > 1 ? ", " : "") + (b < n ? std::string(names[b]) : num(b));
    return s + "]";
  };

  o += "# nf2bpf compiled policy. Review the rules and stages; the part after them is what the\n"
       "# loader writes into the BPF maps. `nf2bpf apply` loads this file; edits are refused\n"
       "# (checksums), so change the ruleset and run `nf2bpf translate -o` again instead.\n";
  o += "nf2bpf-policy: " + num(kVersion) + "\n";
  o += "source: " + yq(p.source) + "\n";
  o += "format: " + yq(p.input_format) + "\n";
  o += "checksum: " + yq(p.checksum, false) + "\n";
  o += "notes-checksum: " + yq(notes_checksum(p), false) + "\n";
  o += "counts: {source_rules: " + num(p.rule_count_source) + ", rules: " + num(p.rules.size()) +
       ", stages: " + num(p.stages.size()) + ", statements: " + num(p.stmts.size()) + ", limits: " +
       num(p.limits.size()) + ", tuples: " + num(p.tuples.size()) + ", entries: " + num(p.entries.size()) +
       ", lpm: " + num(p.lpm.size()) + ", chains: " + num(p.chain_names.size()) + ", log_prefixes: " +
       num(p.log_prefixes.size()) + "}\n";
  o += "config: {slots_used: " + names_of_bits(p.cfg.slots_used, kSlotNames, NF_SLOT_MAX) +
       ", hooks_used: " + names_of_bits(p.cfg.hooks_used, kHookNames, NF_HOOK_MAX) + ", nrules: " +
       num(p.cfg.nrules) + ", max_steps: " + num(p.cfg.max_steps) + ", ct_needed: " + num(p.cfg.ct_needed) +
       ", xdp_stage: " + num(p.cfg.xdp_stage) + "}\n";

  // Rules, in evaluation order.
  bool inline_stmts = stmts_inline(p);
  o += "\nrules:\n";
  if (p.rules.empty()) o.back() = ' ', o += "[]\n";
  uint32_t next_stmt = 0;
  for (size_t i = 0; i < p.rules.size(); ++i) {
    const nf2bpf_rule& r = p.rules[i];
    Origin none;
    const Origin& g = i < p.origins.size() ? p.origins[i] : none;
    o += "  - index: " + num(i) + "\n";
    write_origin(o, g, "    ", "rule");
    std::string action = action_text(r);
    o += "    action: " + yq(action) + "\n";
    auto checks = checks_text(p, r);
    if (!checks.empty()) {
      o += "    checks: [";
      for (size_t k = 0; k < checks.size(); ++k) o += (k ? ", " : "") + yq(checks[k]);
      o += "]\n";
    }
    uint32_t first = 0, count = 0;
    if (inline_stmts) {
      first = next_stmt, count = r.stmt_count;
      next_stmt += r.stmt_count;
      if (count) {
        o += "    do: [";
        for (uint32_t k = 0; k < count; ++k) {
          const nf2bpf_stmt& s = p.stmts[first + k];
          std::string t = stmt_text(p, s);
          nf2bpf_stmt back{};
          bool exact = !parse_stmt(t, p, back) && std::memcmp(&back, &s, sizeof s) == 0;
          o += (k ? ", " : "") + (exact ? yq(t) : stmt_map(s));
        }
        o += "]\n";
      }
    }
    nf2bpf_rule d = derive_rule(p, g, action, checks, first, count);
    std::string raw;
    for (const auto& f : kRuleFields)
      if (get_field(d, f) != get_field(r, f)) raw += (raw.empty() ? "" : ", ") + std::string(f.name) + ": " + num(get_field(r, f));
    if (!raw.empty()) o += "    raw: {" + raw + "}\n";
  }

  o += "\nstages:\n";
  if (p.stages.empty()) o.back() = ' ', o += "[]\n";
  for (size_t i = 0; i < p.stages.size(); ++i) {
    const nf2bpf_stage& s = p.stages[i];
    o += "  - index: " + num(i) + "\n";
    o += "    hook: " + enum_name(kHookNames, NF_HOOK_MAX, s.hook) + "\n";
    std::string family = s.family_mask == NF_FAM_V4                 ? "ipv4"
                         : s.family_mask == NF_FAM_V6                 ? "ipv6"
                         : s.family_mask == (NF_FAM_V4 | NF_FAM_V6) ? "inet"
                                                                      : num(s.family_mask);
    o += "    family: " + family + "\n";
    o += "    policy: " + enum_name(kActionNames, 2, s.policy) + "\n";
    o += "    rules: [" + num(s.first_rule) + ", " + num(s.end_rule) + "]    # first, end (exclusive)\n";
    o += "    tuples: [" + num(s.tuple_first) + ", " + num(s.tuple_count) + "]    # first, count\n";
    // "none": the XDP early-drop stage, whose no-match passes to TC uncounted.
    o += "    policy_counter: " + (s.policy_counter == UINT32_MAX ? std::string("none") : num(s.policy_counter)) + "\n";
    if (s.flags) o += "    flags: " + num(s.flags) + (s.flags == NF_STAGE_BEFORE_CT ? "    # before conntrack (raw table)" : "") + "\n";
    Origin none;
    write_origin(o, i < p.stage_origins.size() ? p.stage_origins[i] : none, "    ", "text");
  }

  // The machine part.
  o += "\n# Everything below is map contents.\n";
  o += "hooks: {";
  for (int h = 0; h < NF_HOOK_MAX; ++h)
    o += std::string(h ? ", " : "") + kHookNames[h] + ": [" + num(p.hooks[h].stage_first) + ", " +
         num(p.hooks[h].stage_count) + "]";
  o += "}    # first stage, count\n";
  auto str_list = [&](const char* key, const std::vector<std::string>& v, const char* comment) {
    o += key, o += ":";
    if (v.empty()) o += " []";
    o += comment, o += "\n";
    for (const auto& s : v) o += "  - " + yq(s) + "\n";
  };
  str_list("chains", p.chain_names, "    # table/chain of the rules (raw src_chain indexes it)");
  str_list("log_prefixes", p.log_prefixes, "");
  o += "limits:";
  o += p.limits.empty() ? " []" : "    # [cost_ns, burst_ns] of the token bucket; #0 is unused";
  o += "\n";
  for (size_t i = 0; i < p.limits.size(); ++i) {
    o += "  - [" + num(p.limits[i].cost_ns) + ", " + num(p.limits[i].burst_ns) + "]";
    if (i) o += "    # #" + num(i) + ": " + limit_text(p.limits[i]);
    o += "\n";
  }
  if (!inline_stmts) {
    o += "statements:\n";
    for (const auto& s : p.stmts) {
      std::string t = stmt_text(p, s);
      nf2bpf_stmt back{};
      bool exact = !parse_stmt(t, p, back) && std::memcmp(&back, &s, sizeof s) == 0;
      o += "  - " + (exact ? yq(t) : stmt_map(s)) + "\n";
    }
  }
  o += "tuples:";
  o += p.tuples.empty() ? " []\n" : "    # slots of the key, [min_rule, max_rule]\n";
  for (const auto& t : p.tuples) {
    o += "  - {slots: [";
    for (unsigned k = 0; k < t.nslots && k < NF_MAX_TUPLE_SLOTS; ++k) o += (k ? ", " : "") + slot_name(t.slots[k]);
    o += "], rules: [" + num(t.min_rule) + ", " + num(t.max_rule) + "]}\n";
  }
  o += "entries:";
  o += p.entries.empty() ? " []\n"
                         : "    # tTUPLE sSEQ [class of each slot] -> RULE, '+': entry sSEQ+1 follows\n";
  for (const auto& [k, v] : p.entries) {
    o += "  - \"t" + num(k.tuple) + " s" + num(k.seq) + " [";
    unsigned n = k.tuple < p.tuples.size() ? std::min<unsigned>(p.tuples[k.tuple].nslots, NF_MAX_TUPLE_SLOTS) : 0;
    for (unsigned c = 0; c < n; ++c) o += (c ? ", " : "") + num(k.cls[c]);
    o += "] -> " + num(v.rule) + (v.has_next ? " +" : "") + "\"\n";
  }
  o += "lpm:";
  o += p.lpm.empty() ? " []\n" : "    # slot prefix -> class\n";
  for (const auto& e : p.lpm)
    o += "  - \"" + slot_name(e.slot) + " " + cidr_text(e.addr, e.prefixlen) + " -> " + num(e.cls) + "\"\n";
  o += "small:    # per slot, runs [first, last, class] over the slot's values; the last value is 'absent'\n";
  for (const auto& ss : kSmall) {
    o += "  " + std::string(kSlotNames[ss.slot]) + ": [";
    uint32_t runs = 0;
    for (uint32_t i = 0; i < ss.size;) {
      uint32_t at = ss.base + i;
      uint32_t cls = at < p.small.size() ? p.small[at] : 0;
      uint32_t j = i;
      while (j + 1 < ss.size && ss.base + j + 1 < p.small.size() && p.small[ss.base + j + 1] == cls) ++j;
      if (runs && runs % 8 == 0) o += ",\n    ";
      else if (runs) o += ", ";
      o += "[" + num(i) + ", " + num(j) + ", " + num(cls) + "]";
      ++runs;
      i = j + 1;
    }
    o += "]\n";
  }
  o += "interfaces:    # predicates: clauses that all hold; a clause lists names (+ = prefix), not: none of them;\n"
       "               # classes: [which predicates hold, class]\n";
  for (int w = 0; w < 2; ++w) {
    o += w ? "  oif:\n" : "  iif:\n";
    o += "    predicates:";
    if (p.iface_predicates[w].empty()) o += " []";
    o += "\n";
    for (const auto& pr : p.iface_predicates[w]) {
      o += "      - [";
      for (size_t c = 0; c < pr.clauses.size(); ++c) {
        const auto& cl = pr.clauses[c];
        o += c ? ", " : "";
        o += cl.negated ? "{not: [" : "[";
        for (size_t k = 0; k < cl.patterns.size(); ++k) {
          const auto& pat = cl.patterns[k];
          o += k ? ", " : "";
          if (pat.prefix) o += yq(pat.name + "+");
          else if (!pat.name.empty() && pat.name.back() == '+') o += "{exact: " + yq(pat.name) + "}";
          else o += yq(pat.name);
        }
        o += cl.negated ? "]}" : "]";
      }
      o += "]\n";
    }
    o += "    classes: [";
    size_t k = 0;
    for (const auto& [sig, cls] : p.iface_classes[w]) {
      std::string bits;
      for (bool b : sig) bits += b ? '1' : '0';
      o += (k++ ? ", " : "") + std::string("['") + bits + "', " + num(cls) + "]";  // '' quotes: never a number
    }
    o += "]\n";
  }
  return o;
}

// --- Reader -------------------------------------------------------------------

namespace {

// The first problem found; thrown inside the reader only and turned into a
// diagnostic by from_yaml.
struct Refused {
  YAML::Mark mark;
  size_t offset = 0;  // into the scalar at mark
  bool quoted = false;
  std::string message, hint;
};

[[noreturn]] void refuse(const YAML::Node& n, std::string msg, std::string hint = {}, size_t offset = 0) {
  throw Refused{n.Mark(), offset, n.IsScalar() && n.Tag() == "!", std::move(msg), std::move(hint)};
}

class Loader {
 public:
  Loader(const YAML::Node& root, Policy& p) : root_(root), p_(p) {}
  void run();

 private:
  // A map's keys, each allowed once and each known.
  struct Fields {
    YAML::Node self;
    std::vector<std::pair<std::string, YAML::Node>> items;
    YAML::Node get(const std::string& k) const {
      for (const auto& [key, v] : items)
        if (key == k) return v;
      return YAML::Node(YAML::NodeType::Undefined);
    }
    YAML::Node req(const std::string& k, const std::string& what) const {
      YAML::Node v = get(k);
      if (!v.IsDefined()) refuse(self, what + " has no '" + k + "'", "the file is truncated or was edited");
      return v;
    }
  };
  Fields fields(const YAML::Node& n, const std::string& what, std::initializer_list<const char*> known);
  const YAML::Node& seq(const YAML::Node& n, const std::string& what);
  std::string str(const YAML::Node& n, const std::string& what);
  uint64_t number(const YAML::Node& n, const std::string& what, uint64_t max);
  std::pair<uint64_t, uint64_t> pair(const YAML::Node& n, const std::string& what, uint64_t max);
  uint32_t slot(const YAML::Node& n, std::string_view name, size_t offset);
  template <typename T>
  void count_is(const YAML::Node& n, const std::vector<T>& v, const char* what, uint64_t expect);
  Origin origin(const Fields& f, const std::string& what, const char* text_key);
  nf2bpf_stmt stmt(const YAML::Node& n);

  void header();
  void rules();
  void stages();
  void machine();
  void small();
  void interfaces();

  const YAML::Node& root_;
  Policy& p_;
  Fields top_;
  std::unordered_map<std::string, uint64_t> counts_;
  YAML::Node counts_node_;
};

Loader::Fields Loader::fields(const YAML::Node& n, const std::string& what, std::initializer_list<const char*> known) {
  if (!n.IsMap()) refuse(n, what + " must be a map");
  Fields f{n, {}};
  for (auto it = n.begin(); it != n.end(); ++it) {
    if (!it->first.IsScalar()) refuse(it->first, "unexpected key in " + what);
    const std::string& k = it->first.Scalar();
    bool ok = false;
    for (const char* x : known) ok |= k == x;
    if (!ok) refuse(it->first, "unknown key '" + k + "' in " + what);
    if (f.get(k).IsDefined()) refuse(it->first, "'" + k + "' appears twice in " + what);
    f.items.emplace_back(k, it->second);
  }
  return f;
}

const YAML::Node& Loader::seq(const YAML::Node& n, const std::string& what) {
  if (!n.IsSequence()) refuse(n, what + " must be a list");
  return n;
}

std::string Loader::str(const YAML::Node& n, const std::string& what) {
  if (!n.IsScalar()) refuse(n, what + " must be a string");
  if (n.Tag() == "tag:yaml.org,2002:binary") {
    auto bytes = YAML::DecodeBase64(n.Scalar());
    if (bytes.empty() && !n.Scalar().empty()) refuse(n, what + " is not valid base64");
    return std::string(bytes.begin(), bytes.end());
  }
  return n.Scalar();
}

uint64_t Loader::number(const YAML::Node& n, const std::string& what, uint64_t max) {
  if (!n.IsScalar() || n.Tag() != "?") refuse(n, what + " must be a number");
  Cursor c{n.Scalar()};
  uint64_t v = 0;
  if (!c.dec(v, max) || !c.done()) refuse(n, what + " must be a number 0.." + std::to_string(max));
  return v;
}

std::pair<uint64_t, uint64_t> Loader::pair(const YAML::Node& n, const std::string& what, uint64_t max) {
  if (!n.IsSequence() || n.size() != 2) refuse(n, what + " must be a pair [a, b]");
  return {number(n[0], what, max), number(n[1], what, max)};
}

uint32_t Loader::slot(const YAML::Node& n, std::string_view name, size_t offset) {
  int s = slot_by_name(name);
  if (s < 0) {
    std::string all;
    for (const char* x : kSlotNames) all += (all.empty() ? "" : ", ") + std::string(x);
    refuse(n, "unknown slot '" + std::string(name) + "'", "slots are " + all, offset);
  }
  return (uint32_t)s;
}

template <typename T>
void Loader::count_is(const YAML::Node& n, const std::vector<T>& v, const char* what, uint64_t expect) {
  if (v.size() != expect)
    refuse(n, std::string("'") + what + "' lists " + std::to_string(v.size()) + " items but 'counts' says " +
                  std::to_string(expect),
           "the file is truncated or was edited; write it again with `nf2bpf translate -o`");
}

Origin Loader::origin(const Fields& f, const std::string& what, const char* text_key) {
  Origin g;
  g.location = str(f.req("at", what), what + " 'at'");
  std::string chain = str(f.req("chain", what), what + " 'chain'");
  if (YAML::Node t = f.get("table"); t.IsDefined()) {
    g.table = str(t, what + " 'table'");
    g.chain = chain;
  } else {
    auto slash = chain.find('/');
    if (slash == std::string::npos) refuse(f.get("chain"), what + " 'chain' must be TABLE/CHAIN");
    g.table = chain.substr(0, slash);
    g.chain = chain.substr(slash + 1);
  }
  g.text = str(f.req(text_key, what), what + " '" + text_key + "'");
  g.source_line = line_of_location(g.location);
  if (YAML::Node l = f.get("line"); l.IsDefined()) g.source_line = (uint32_t)number(l, what + " 'line'", UINT32_MAX);
  return g;
}

// A statement: spelled out, or (when it cannot be) all its fields.
nf2bpf_stmt Loader::stmt(const YAML::Node& n) {
  nf2bpf_stmt x{};
  if (n.IsMap()) {
    Fields f = fields(n, "a statement", {"kind", "level", "group", "value", "mask", "prefix_id"});
    x.kind = (uint8_t)number(f.req("kind", "a statement"), "'kind'", 255);
    x.level = (uint8_t)number(f.req("level", "a statement"), "'level'", 255);
    x.group = (uint16_t)number(f.req("group", "a statement"), "'group'", 65535);
    x.value = (uint32_t)number(f.req("value", "a statement"), "'value'", UINT32_MAX);
    x.mask = (uint32_t)number(f.req("mask", "a statement"), "'mask'", UINT32_MAX);
    x.prefix_id = (uint32_t)number(f.req("prefix_id", "a statement"), "'prefix_id'", UINT32_MAX);
  } else if (auto fail = parse_stmt(str(n, "a statement"), p_, x)) {
    refuse(n, fail->why, {}, fail->offset);
  }
  return x;
}

void Loader::header() {
  top_ = fields(root_, "the policy",
                {"nf2bpf-policy", "source", "format", "checksum", "notes-checksum", "counts", "config", "rules",
                 "stages", "hooks", "chains", "log_prefixes", "limits", "statements", "tuples", "entries", "lpm",
                 "small", "interfaces"});
  YAML::Node v = top_.get("nf2bpf-policy");
  if (!v.IsDefined())
    refuse(root_, "not an nf2bpf policy: no 'nf2bpf-policy:' version at the top",
           "policy files are written by `nf2bpf translate -o FILE.yaml`");
  if (!v.IsScalar() || v.Scalar() != std::to_string(kVersion))
    refuse(v, "unsupported policy format version '" + (v.IsScalar() ? v.Scalar() : std::string("?")) + "'",
           "this nf2bpf reads version " + std::to_string(kVersion) + "; translate the ruleset again");
  p_.source = str(top_.req("source", "the policy"), "'source'");
  p_.input_format = str(top_.req("format", "the policy"), "'format'");
  p_.checksum = str(top_.req("checksum", "the policy"), "'checksum'");
  counts_node_ = top_.req("counts", "the policy");
  Fields c = fields(counts_node_, "'counts'",
                    {"source_rules", "rules", "stages", "statements", "limits", "tuples", "entries", "lpm", "chains",
                     "log_prefixes"});
  for (const char* k : {"source_rules", "rules", "stages", "statements", "limits", "tuples", "entries", "lpm",
                        "chains", "log_prefixes"})
    counts_[k] = number(c.req(k, "'counts'"), std::string("count of ") + k, UINT32_MAX);
  p_.rule_count_source = counts_["source_rules"];

  Fields cfg = fields(top_.req("config", "the policy"), "'config'",
                      {"slots_used", "hooks_used", "nrules", "max_steps", "ct_needed", "xdp_stage"});
  for (const auto& s : seq(cfg.req("slots_used", "'config'"), "'slots_used'"))
    p_.cfg.slots_used |= 1u << slot(s, str(s, "a slot name"), 0);
  for (const auto& h : seq(cfg.req("hooks_used", "'config'"), "'hooks_used'")) {
    std::string name = str(h, "a hook name");
    int k = -1;
    for (int i = 0; i < NF_HOOK_MAX; ++i)
      if (name == kHookNames[i]) k = i;
    if (k < 0) refuse(h, "unknown hook '" + name + "'", "hooks are prerouting, input, forward, output, postrouting");
    p_.cfg.hooks_used |= 1u << k;
  }
  p_.cfg.nrules = (uint32_t)number(cfg.req("nrules", "'config'"), "'nrules'", UINT32_MAX);
  p_.cfg.max_steps = (uint32_t)number(cfg.req("max_steps", "'config'"), "'max_steps'", UINT32_MAX);
  p_.cfg.ct_needed = (uint32_t)number(cfg.req("ct_needed", "'config'"), "'ct_needed'", UINT32_MAX);
  p_.cfg.xdp_stage = (uint32_t)number(cfg.req("xdp_stage", "'config'"), "'xdp_stage'", counts_["stages"]);

  // Tables the rules refer to.
  YAML::Node chains = top_.req("chains", "the policy");
  for (const auto& c : seq(chains, "'chains'")) p_.chain_names.push_back(str(c, "a chain name"));
  count_is(chains, p_.chain_names, "chains", counts_["chains"]);
  YAML::Node prefixes = top_.req("log_prefixes", "the policy");
  for (const auto& c : seq(prefixes, "'log_prefixes'")) p_.log_prefixes.push_back(str(c, "a log prefix"));
  count_is(prefixes, p_.log_prefixes, "log_prefixes", counts_["log_prefixes"]);
  YAML::Node limits = top_.req("limits", "the policy");
  for (const auto& l : seq(limits, "'limits'")) {
    auto [cost, burst] = pair(l, "a limit", UINT64_MAX);
    p_.limits.push_back({cost, burst});
  }
  count_is(limits, p_.limits, "limits", counts_["limits"]);
  if (YAML::Node st = top_.get("statements"); st.IsDefined()) {
    for (const auto& s : seq(st, "'statements'")) {
      p_.stmts.push_back(stmt(s));
    }
  }
}

void Loader::rules() {
  YAML::Node list = seq(top_.req("rules", "the policy"), "'rules'");
  bool own_stmts = top_.get("statements").IsDefined();
  for (const auto& n : list) {
    std::string what = "rule " + std::to_string(p_.rules.size());
    Fields f = fields(n, what, {"index", "at", "table", "chain", "rule", "line", "action", "checks", "do", "raw"});
    if (number(f.req("index", what), "'index'", UINT32_MAX) != p_.rules.size())
      refuse(f.get("index"), "rule index " + f.get("index").Scalar() + " is out of order; expected " +
                                 std::to_string(p_.rules.size()),
             "rules are listed in evaluation order, each once");
    Origin g = origin(f, what, "rule");
    nf2bpf_rule r{};
    YAML::Node act = f.req("action", what);
    std::string action = str(act, "'action'");
    if (size_t at = parse_action(action, r); at != std::string_view::npos)
      refuse(act, "unknown action '" + action + "'",
             "actions are accept, drop, reject, reject with tcp-reset, continue, skip to N", at);
    if (YAML::Node checks = f.get("checks"); checks.IsDefined())
      for (const auto& c : seq(checks, "'checks'"))
        if (auto fail = parse_check(str(c, "a check"), p_, r)) refuse(c, fail->why, {}, fail->offset);
    r.stmt_first = (uint32_t)p_.stmts.size();
    if (YAML::Node d = f.get("do"); d.IsDefined()) {
      if (own_stmts) refuse(d, "'do' and a top-level 'statements' list cannot both be given");
      for (const auto& s : seq(d, "'do'")) {
        p_.stmts.push_back(stmt(s));
      }
      if (p_.stmts.size() - r.stmt_first > 65535) refuse(d, "more than 65535 statements in one rule");
    }
    r.stmt_count = (uint16_t)(p_.stmts.size() - r.stmt_first);
    if (own_stmts) r.stmt_first = 0;
    int64_t ci = chain_index(p_, g);
    r.src_chain = ci < 0 ? 0 : (uint32_t)ci;
    r.src_line = g.source_line;
    if (YAML::Node raw = f.get("raw"); raw.IsDefined()) {
      if (!raw.IsMap()) refuse(raw, "'raw' must be a map of rule fields");
      for (auto it = raw.begin(); it != raw.end(); ++it) {
        std::string k = it->first.IsScalar() ? it->first.Scalar() : "";
        const RawField* fld = nullptr;
        for (const auto& x : kRuleFields)
          if (k == x.name) fld = &x;
        if (!fld) refuse(it->first, "unknown rule field '" + k + "' in 'raw'");
        set_field(r, *fld, number(it->second, "'" + k + "'", field_max(*fld)));
      }
    } else if (ci < 0) {
      refuse(f.get("chain"), "chain '" + g.table + "/" + g.chain + "' is not in 'chains'");
    }
    p_.rules.push_back(r);
    p_.origins.push_back(std::move(g));
  }
  count_is(list, p_.rules, "rules", counts_["rules"]);
  count_is(top_.get("statements").IsDefined() ? top_.get("statements") : list, p_.stmts, "statements",
           counts_["statements"]);

  // Every index a rule holds points into the policy.
  for (size_t i = 0; i < p_.rules.size(); ++i) {
    const nf2bpf_rule& r = p_.rules[i];
    const YAML::Node& n = list[i];
    auto bad = [&](const std::string& m) { refuse(n, "rule " + std::to_string(i) + ": " + m); };
    if (r.action > NF_ACT_SKIP) bad("unknown action " + std::to_string(r.action));
    if (r.action == NF_ACT_SKIP && (r.skip_to <= i || r.skip_to > p_.rules.size()))
      bad("skips to rule " + std::to_string(r.skip_to) + ", which is not after it in the policy");
    if ((uint64_t)r.stmt_first + r.stmt_count > p_.stmts.size()) bad("its statements are not in the policy");
    if ((r.residual & NF_RES_LIMIT) && (r.limit == 0 || r.limit >= p_.limits.size())) bad("its limit is not in 'limits'");
    if (r.src_chain >= p_.chain_names.size()) bad("its chain is not in 'chains'");
  }
  for (size_t i = 0; i < p_.stmts.size(); ++i) {
    const auto& s = p_.stmts[i];
    if (s.kind < NF_STMT_LOG || s.kind > NF_STMT_NOTRACK)
      refuse(list, "statement " + std::to_string(i) + " has unknown kind " + std::to_string(s.kind));
    if (s.kind == NF_STMT_LOG && s.prefix_id >= p_.log_prefixes.size())
      refuse(list, "statement " + std::to_string(i) + " logs with a prefix that is not in 'log_prefixes'");
  }
}

void Loader::stages() {
  YAML::Node list = seq(top_.req("stages", "the policy"), "'stages'");
  uint64_t nrules = p_.rules.size(), ntuples = counts_["tuples"], nstages = counts_["stages"];
  for (const auto& n : list) {
    std::string what = "stage " + std::to_string(p_.stages.size());
    Fields f = fields(n, what,
                      {"index", "hook", "family", "policy", "rules", "tuples", "policy_counter", "flags", "at",
                       "table", "chain", "text", "line"});
    if (number(f.req("index", what), "'index'", UINT32_MAX) != p_.stages.size())
      refuse(f.get("index"), "stage index out of order; expected " + std::to_string(p_.stages.size()));
    nf2bpf_stage s{};
    YAML::Node hook = f.req("hook", what);
    std::string h = str(hook, "'hook'");
    s.hook = 255;
    for (int i = 0; i < NF_HOOK_MAX; ++i)
      if (h == kHookNames[i]) s.hook = (uint8_t)i;
    if (s.hook == 255) refuse(hook, "unknown hook '" + h + "'", "hooks are prerouting, input, forward, output, postrouting");
    YAML::Node fam = f.req("family", what);
    std::string fm = str(fam, "'family'");
    s.family_mask = fm == "ipv4" ? NF_FAM_V4 : fm == "ipv6" ? NF_FAM_V6 : fm == "inet" ? (NF_FAM_V4 | NF_FAM_V6) : 0;
    if (!s.family_mask) refuse(fam, "unknown family '" + fm + "'", "families are ipv4, ipv6, inet");
    YAML::Node pol = f.req("policy", what);
    std::string pl = str(pol, "'policy'");
    if (pl == "accept") s.policy = NF_ACT_ACCEPT;
    else if (pl == "drop") s.policy = NF_ACT_DROP;
    else refuse(pol, "unknown policy '" + pl + "'", "a stage's policy is accept or drop");
    YAML::Node rr = f.req("rules", what);
    auto [first, end] = pair(rr, "'rules'", UINT32_MAX);
    if (first > end || end > nrules)
      refuse(rr, "rule range [" + std::to_string(first) + ", " + std::to_string(end) + ") is not in the policy's " +
                     std::to_string(nrules) + " rules");
    YAML::Node tt = f.req("tuples", what);
    auto [tf, tc] = pair(tt, "'tuples'", UINT32_MAX);
    if (tf + tc > ntuples)
      refuse(tt, "tuples " + std::to_string(tf) + " + " + std::to_string(tc) + " are not in the policy's " +
                     std::to_string(ntuples) + " tuples");
    s.first_rule = (uint32_t)first, s.end_rule = (uint32_t)end;
    s.tuple_first = (uint32_t)tf, s.tuple_count = (uint32_t)tc;
    YAML::Node pc = f.req("policy_counter", what);
    s.policy_counter = pc.IsScalar() && pc.Scalar() == "none"
                           ? UINT32_MAX
                           : (uint32_t)number(pc, "'policy_counter'", nrules + nstages - 1);
    if (YAML::Node fl = f.get("flags"); fl.IsDefined()) s.flags = (uint8_t)number(fl, "'flags'", 255);
    p_.stages.push_back(s);
    p_.stage_origins.push_back(origin(f, what, "text"));
  }
  count_is(list, p_.stages, "stages", nstages);
  for (size_t i = 0; i < p_.stages.size(); ++i)
    for (uint32_t r = p_.stages[i].first_rule; r < p_.stages[i].end_rule; ++r)
      if (p_.rules[r].action == NF_ACT_SKIP && p_.rules[r].skip_to > p_.stages[i].end_rule)
        refuse(list[i], "rule " + std::to_string(r) + " skips past the end of stage " + std::to_string(i));
  Fields hooks = fields(top_.req("hooks", "the policy"), "'hooks'",
                        {"prerouting", "input", "forward", "output", "postrouting"});
  for (int h = 0; h < NF_HOOK_MAX; ++h) {
    YAML::Node n = hooks.req(kHookNames[h], "'hooks'");
    auto [first, count] = pair(n, "a hook's stages", UINT32_MAX);
    if (first + count > p_.stages.size()) refuse(n, "stages " + std::to_string(first) + " + " + std::to_string(count) + " are not in the policy");
    p_.hooks[h] = {(uint32_t)first, (uint32_t)count};
  }
}

void Loader::machine() {
  YAML::Node tuples = seq(top_.req("tuples", "the policy"), "'tuples'");
  for (const auto& n : tuples) {
    Fields f = fields(n, "a tuple", {"slots", "rules"});
    nf2bpf_tuple t{};
    YAML::Node slots = seq(f.req("slots", "a tuple"), "'slots'");
    if (slots.size() > NF_MAX_TUPLE_SLOTS)
      refuse(slots, "a tuple has at most " + std::to_string(NF_MAX_TUPLE_SLOTS) + " slots");
    for (const auto& s : slots) t.slots[t.nslots++] = (uint8_t)slot(s, str(s, "a slot name"), 0);
    YAML::Node rr = f.req("rules", "a tuple");
    auto [lo, hi] = pair(rr, "'rules'", UINT32_MAX);
    if (lo > hi || hi >= p_.rules.size()) refuse(rr, "rule range is not in the policy");
    t.min_rule = (uint32_t)lo, t.max_rule = (uint32_t)hi;
    p_.tuples.push_back(t);
  }
  count_is(tuples, p_.tuples, "tuples", counts_["tuples"]);
  for (size_t i = 0; i < p_.stages.size(); ++i)
    if ((uint64_t)p_.stages[i].tuple_first + p_.stages[i].tuple_count > p_.tuples.size())
      refuse(tuples, "stage " + std::to_string(i) + "'s tuples are not in 'tuples'");

  YAML::Node entries = seq(top_.req("entries", "the policy"), "'entries'");
  p_.entries.reserve(entries.size());
  for (const auto& n : entries) {
    if (!n.IsScalar()) refuse(n, "an entry must be a string like \"t0 s0 [1, 2] -> 5\"");
    const std::string& s = n.Scalar();
    Cursor c{s};
    nf2bpf_entry_key k{};
    nf2bpf_entry_val v{};
    uint64_t tuple = 0, seqno = 0, rule = 0;
    auto bad = [&](const char* why) { refuse(n, std::string(why) + " (entries look like \"t0 s0 [1, 2] -> 5 +\")", {}, c.i); };
    if (!c.lit("t") || !c.dec(tuple, 65535)) bad("expected a tuple index tN");
    if (tuple >= p_.tuples.size()) refuse(n, "tuple t" + std::to_string(tuple) + " is not in 'tuples'", {}, 1);
    if (!c.lit(" s") || !c.dec(seqno, 65535)) bad("expected a sequence number sN");
    if (!c.lit(" [")) bad("expected ' ['");
    unsigned nslots = p_.tuples[tuple].nslots, got = 0;
    while (!c.lit("]")) {
      uint64_t cls = 0;
      if (got && !c.lit(", ")) bad("expected ', ' or ']'");
      if (got == nslots) refuse(n, "tuple t" + std::to_string(tuple) + " has " + std::to_string(nslots) + " slots", {}, c.i);
      if (!c.dec(cls, UINT32_MAX)) bad("expected a class number");
      k.cls[got++] = (uint32_t)cls;
    }
    if (got != nslots) refuse(n, "tuple t" + std::to_string(tuple) + " has " + std::to_string(nslots) + " slots", {}, c.i);
    if (!c.lit(" -> ") || !c.dec(rule, UINT32_MAX)) bad("expected ' -> RULE'");
    if (rule >= p_.rules.size()) refuse(n, "rule " + std::to_string(rule) + " is not in the policy", {}, c.i);
    if (c.lit(" +")) v.has_next = 1;
    if (!c.done()) bad("unexpected text");
    k.tuple = (uint16_t)tuple, k.seq = (uint16_t)seqno;
    v.rule = (uint32_t)rule;
    p_.entries.emplace_back(k, v);
  }
  count_is(entries, p_.entries, "entries", counts_["entries"]);

  YAML::Node lpm = seq(top_.req("lpm", "the policy"), "'lpm'");
  p_.lpm.reserve(lpm.size());
  for (const auto& n : lpm) {
    if (!n.IsScalar()) refuse(n, "an LPM entry must be a string like \"saddr 10.0.0.0/8 -> 3\"");
    std::string_view s = n.Scalar();
    auto sp = s.find(' '), arrow = s.find(" -> ");
    if (sp == std::string_view::npos || arrow == std::string_view::npos || arrow < sp)
      refuse(n, "an LPM entry looks like \"saddr 10.0.0.0/8 -> 3\"");
    LpmEntry e{};
    e.slot = (uint8_t)slot(n, s.substr(0, sp), 0);
    if (e.slot != NF_SLOT_SADDR && e.slot != NF_SLOT_DADDR) refuse(n, "only saddr and daddr have LPM entries");
    unsigned len = 0;
    if (!parse_cidr_text(s.substr(sp + 1, arrow - sp - 1), e.addr, len))
      refuse(n, "expected an address prefix like 10.0.0.0/8 or 2001:db8::/32", {}, sp + 1);
    e.prefixlen = (uint8_t)len;
    Cursor c{s, arrow + 4};
    uint64_t cls = 0;
    if (!c.dec(cls, UINT32_MAX) || !c.done()) refuse(n, "expected a class number", {}, c.i);
    e.cls = (uint32_t)cls;
    p_.lpm.push_back(e);
  }
  count_is(lpm, p_.lpm, "lpm", counts_["lpm"]);
}

void Loader::small() {
  std::initializer_list<const char*> names = {"sport",   "dport", "proto",     "icmp",      "ctstate",
                                              "tcpflags", "pkttype", "length", "ttl",       "nfproto",
                                              "saddrtype", "daddrtype", "ctdir", "frag",    "dscp"};
  Fields f = fields(top_.req("small", "the policy"), "'small'", names);
  p_.small.assign(NF_SMALL_TOTAL, 0);
  for (const auto& ss : kSmall) {
    YAML::Node runs = seq(f.req(kSlotNames[ss.slot], "'small'"), std::string("'") + kSlotNames[ss.slot] + "'");
    uint64_t next = 0;
    for (const auto& r : runs) {
      if (!r.IsSequence() || r.size() != 3) refuse(r, "a run must be [first, last, class]");
      uint64_t first = number(r[0], "a run's first value", UINT32_MAX);
      uint64_t last = number(r[1], "a run's last value", UINT32_MAX);
      uint64_t cls = number(r[2], "a class", UINT32_MAX);
      if (first != next || last < first || last >= ss.size)
        refuse(r, std::string(kSlotNames[ss.slot]) + " runs must cover 0.." + std::to_string(ss.size - 1) +
                      " in order without gaps; this one should start at " + std::to_string(next));
      std::fill(p_.small.begin() + ss.base + first, p_.small.begin() + ss.base + last + 1, (uint32_t)cls);
      next = last + 1;
    }
    if (next != ss.size)
      refuse(runs, std::string(kSlotNames[ss.slot]) + " runs end at " + std::to_string(next) + ", before " +
                       std::to_string(ss.size - 1));
  }
}

void Loader::interfaces() {
  Fields f = fields(top_.req("interfaces", "the policy"), "'interfaces'", {"iif", "oif"});
  for (int w = 0; w < 2; ++w) {
    const char* which = w ? "oif" : "iif";
    Fields g = fields(f.req(which, "'interfaces'"), std::string("'") + which + "'", {"predicates", "classes"});
    for (const auto& pn : seq(g.req("predicates", which), "'predicates'")) {
      IfacePredicate pr;
      for (const auto& cn : seq(pn, "a predicate")) {
        IfaceClause cl;
        YAML::Node pats = cn;
        if (cn.IsMap()) {
          Fields nf = fields(cn, "a negated clause", {"not"});
          pats = nf.req("not", "a negated clause");
          cl.negated = true;
        }
        for (const auto& x : seq(pats, "a clause")) {
          ir::IfacePattern pat;
          if (x.IsMap()) {
            pat.name = str(fields(x, "a pattern", {"exact"}).req("exact", "a pattern"), "'exact'");
          } else {
            pat.name = str(x, "an interface name");
            if (!pat.name.empty() && pat.name.back() == '+') pat.name.pop_back(), pat.prefix = true;
          }
          cl.patterns.push_back(std::move(pat));
        }
        pr.clauses.push_back(std::move(cl));
      }
      p_.iface_predicates[w].push_back(std::move(pr));
    }
    for (const auto& cn : seq(g.req("classes", which), "'classes'")) {
      if (!cn.IsSequence() || cn.size() != 2) refuse(cn, "a class must be ['SIGNATURE', CLASS]");
      std::string bits = str(cn[0], "a signature");
      if (bits.size() != p_.iface_predicates[w].size() || bits.find_first_not_of("01") != std::string::npos)
        refuse(cn[0], "a signature has one 0/1 per predicate (" + std::to_string(p_.iface_predicates[w].size()) + ")");
      std::vector<bool> sig;
      for (char b : bits) sig.push_back(b == '1');
      if (!p_.iface_classes[w].emplace(std::move(sig), (uint32_t)number(cn[1], "a class", UINT32_MAX)).second)
        refuse(cn, "signature '" + bits + "' appears twice");
    }
  }
}

void Loader::run() {
  header();
  rules();
  stages();
  machine();
  small();
  interfaces();
  if (p_.cfg.nrules != p_.rules.size())
    refuse(top_.get("config"), "'nrules' says " + std::to_string(p_.cfg.nrules) + " but the policy has " +
                                   std::to_string(p_.rules.size()) + " rules");
  p_.origins.shrink_to_fit();
  YAML::Node notes = top_.req("notes-checksum", "the policy");
  std::string want_notes = str(notes, "'notes-checksum'");
  std::string got = compute_checksum(p_);
  if (got != p_.checksum)
    refuse(top_.get("checksum"), "policy was edited: checksum mismatch (the file says " + p_.checksum +
                                     ", its contents give " + got + ")",
           "policy files are not edited by hand: change the ruleset and write the policy again with "
           "`nf2bpf translate RULES -o FILE.yaml`");
  if (notes_checksum(p_) != want_notes)
    refuse(notes, "policy was edited: the rule texts, locations or names do not match 'notes-checksum'",
           "policy files are not edited by hand: change the ruleset and write the policy again with "
           "`nf2bpf translate RULES -o FILE.yaml`");
}

std::string line_of(const std::string& text, size_t line) {
  size_t pos = 0;
  for (size_t l = 0; l < line && pos != std::string::npos; ++l) {
    pos = text.find('\n', pos);
    if (pos != std::string::npos) ++pos;
  }
  if (pos == std::string::npos || pos > text.size()) return {};
  return text.substr(pos, text.find('\n', pos) - pos);
}

}  // namespace

std::optional<Policy> from_yaml(const std::string& text, const std::string& name, diag::Diagnostics& d) {
  auto locate = [&](const YAML::Mark& m, size_t offset, bool quoted) {
    ir::SourceLoc loc{name, 0, 0, 0, {}};
    if (m.is_null() || m.line < 0) return loc;
    loc.line = (uint32_t)m.line + 1;
    loc.col = (uint32_t)m.column + 1 + (uint32_t)offset + (quoted ? 1 : 0);
    return loc;
  };
  auto report = [&](const YAML::Mark& m, size_t offset, bool quoted, const std::string& msg, const std::string& hint) {
    ir::SourceLoc loc = locate(m, offset, quoted);
    d.error(loc, msg, hint, loc.line ? line_of(text, loc.line - 1) : std::string());
  };
  try {
    std::vector<YAML::Node> docs = YAML::LoadAll(text);
    if (docs.size() != 1 || !docs[0].IsMap()) {
      YAML::Mark m{};  // an empty file: its first line
      if (!docs.empty() && !docs.back().Mark().is_null()) m = docs.size() > 1 ? docs[1].Mark() : docs[0].Mark();
      report(m, 0, false,
             docs.size() > 1 ? "a policy file holds one YAML document"
                             : "not an nf2bpf policy: expected a map starting with 'nf2bpf-policy: 1'",
             "policy files are written by `nf2bpf translate RULES -o FILE.yaml`");
      return std::nullopt;
    }
    Policy p;
    Loader(docs[0], p).run();
    return p;
  } catch (const Refused& r) {
    report(r.mark, r.offset, r.quoted, r.message, r.hint);
  } catch (const YAML::Exception& e) {
    report(e.mark, 0, false, "not valid YAML: " + e.msg, "the file is truncated or damaged; write it again with "
                                                          "`nf2bpf translate RULES -o FILE.yaml`");
  } catch (const std::exception& e) {
    report(YAML::Mark::null_mark(), 0, false, std::string("cannot read the policy: ") + e.what(), {});
  }
  return std::nullopt;
}

bool looks_like_policy_yaml(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    size_t eol = text.find('\n', i);
    std::string_view line = text.substr(i, eol == std::string_view::npos ? std::string_view::npos : eol - i);
    if (!line.empty() && line[0] != '#' && line != "---") return line.starts_with("nf2bpf-policy:");
    if (eol == std::string_view::npos) break;
    i = eol + 1;
  }
  return false;
}

Result<void> write_yaml_file(const Policy& p, const std::string& path) {
  std::string text = to_yaml(p);
  auto slash = path.rfind('/');
  if ((slash == std::string::npos ? path : path.substr(slash + 1)).empty())
    return sys_error("write policy to '" + path + "'", EISDIR);
  // Readable as any file the user creates (policies are not secret).
  mode_t mask = umask(0);
  umask(mask);
  return write_file_atomic(path, text, 0666 & ~mask);
}

}  // namespace nf2bpf::policy
