#include "translator/policy/yaml_schema.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "common/sha256.h"
#include "translator/policy/yaml.h"

namespace nf2bpf::policy {

namespace yaml_schema {

namespace {

// First index of a log prefix, as the spelled-out form resolves it.
int64_t prefix_index(const Policy& p, const std::string& text) {
  for (size_t i = 0; i < p.log_prefixes.size(); ++i)
    if (p.log_prefixes[i] == text) return (int64_t)i;
  return -1;
}

}  // namespace

int slot_by_name(std::string_view s) {
  for (int i = 0; i < NF_SLOT_MAX; ++i)
    if (s == kSlotNames[i]) return i;
  return -1;
}

std::string slot_name(unsigned s) { return s < NF_SLOT_MAX ? kSlotNames[s] : "slot" + std::to_string(s); }

std::string enum_name(const char* const* names, size_t n, unsigned v) { return v < n ? names[v] : std::to_string(v); }

std::string hex(uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "0x%llx", (unsigned long long)v);
  return b;
}

// --- Text helpers -----------------------------------------------------------

std::string cq(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\')
      out += '\\', out += (char)c;
    else if (c < 0x20 || c >= 0x7f) {
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02x", c);
      out += b;
    } else
      out += (char)c;
  }
  return out + "\"";
}

std::string mac_text(uint64_t m) {
  char b[24];
  std::snprintf(b, sizeof b, "%02x:%02x:%02x:%02x:%02x:%02x", (unsigned)(m >> 40 & 0xff), (unsigned)(m >> 32 & 0xff),
                (unsigned)(m >> 24 & 0xff), (unsigned)(m >> 16 & 0xff), (unsigned)(m >> 8 & 0xff),
                (unsigned)(m & 0xff));
  return b;
}

std::string limit_text(const nf2bpf_limit_cfg& l) {
  static const std::pair<const char*, uint64_t> units[] = {
      {"second", 1}, {"minute", 60}, {"hour", 3600}, {"day", 86400}, {"week", 604800}};
  if (l.flags & NF_LIMIT_TIME) {  // as iptables-save shows -m time
    auto date = [](uint64_t t) {
      int64_t z = (int64_t)(t / 86400) + 719468, era = z / 146097, doe = z - era * 146097;
      int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365,
              doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
      int64_t mp = (5 * doy + 2) / 153, d = doy - (153 * mp + 2) / 5 + 1, m = mp < 10 ? mp + 3 : mp - 9;
      int64_t y = yoe + era * 400 + (m <= 2);
      char b[40];
      std::snprintf(b, sizeof b, "%04lld-%02lld-%02lldT%02u:%02u:%02u", (long long)y, (long long)m, (long long)d,
                    (unsigned)(t % 86400 / 3600), (unsigned)(t % 3600 / 60), (unsigned)(t % 60));
      return std::string(b);
    };
    auto daytime = [](uint64_t t) {
      char b[16];
      std::snprintf(b, sizeof b, "%02u:%02u:%02u", (unsigned)(t / 3600), (unsigned)(t % 3600 / 60), (unsigned)(t % 60));
      return std::string(b);
    };
    uint64_t ds = l.cost & 0xffffffff, de = l.cost >> 32, ts = l.cap & 0xffffffff, te = l.cap >> 32;
    uint64_t md = l.rate & 0xffffffff, wd = l.rate >> 32;
    std::string t = "time";
    if (ds) t += " datestart " + date(ds);
    if (de != 0x7fffffff) t += " datestop " + date(de);
    if (ts || te != 86399) t += " daytime " + daytime(ts) + "-" + daytime(te);
    if (wd != 0xfe) {
      static const char* names[] = {"", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
      std::string w;
      for (int d = 1; d <= 7; ++d)
        if (wd >> d & 1) w += (w.empty() ? "" : ",") + std::string(names[d]);
      t += " weekdays " + (w.empty() ? "none" : w);
    }
    if (md != 0xfffffffe) {
      std::string m;
      for (int d = 1; d <= 31; ++d)
        if (md >> d & 1) m += (m.empty() ? "" : ",") + std::to_string(d);
      t += " monthdays " + (m.empty() ? "none" : m);
    }
    if (l.mode & NF_TM_KERNELTZ) t += " kerneltz";
    if (l.mode & NF_TM_CONTIGUOUS) t += " contiguous";
    return t;
  }
  if (l.flags & NF_LIMIT_CONN)
    return std::string("connlimit ") + (l.flags & NF_LIMIT_INV ? "upto " : "above ") + std::to_string(l.cost) +
           " mask " + std::to_string(l.srcmask) + (l.mode & NF_CL_DADDR ? " daddr" : " saddr");
  if (l.flags & NF_LIMIT_SET) {
    static const char* ops[] = {"?", "lookup", "add", "update", "delete", "?", "?", "?"};
    uint32_t op = (uint32_t)(l.rate & NF_SET_OP);
    bool lookup = op == NF_SET_LOOKUP;
    std::string t = std::string(lookup && (l.flags & NF_LIMIT_INV) ? "not " : "") + "set " + ops[op] + " table " +
                    hex(l.table) + " key";
    for (auto [bit, w] :
         {std::pair{NF_HL_SIP, "saddr"}, {NF_HL_DIP, "daddr"}, {NF_HL_SPT, "sport"}, {NF_HL_DPT, "dport"}})
      if (l.mode & bit) t += " " + std::string(w);
    if (l.mode & NF_HL_SIP) t += " srcmask " + std::to_string(l.srcmask);
    if (l.mode & NF_HL_DIP) t += " dstmask " + std::to_string(l.dstmask);
    if (op == NF_SET_ADD || op == NF_SET_UPDATE)
      t += " timeout " + std::to_string(l.expire) + "ms" + (l.rate & NF_SET_TIMEOUT ? "" : " (the set's)");
    if (l.rate & NF_SET_LIMIT) {
      nf2bpf_limit_cfg x{};
      x.cost = l.cost, x.cap = l.cap, x.flags = l.flags & NF_LIMIT_INV;
      t += " limit " + limit_text(x);
    }
    return t;
  }
  if (l.flags & NF_LIMIT_HASH) {  // avg in 1/1000000 s, as libxt_hashlimit keeps it
    std::string t = std::string(l.flags & NF_LIMIT_INV ? "hashlimit above " : "hashlimit upto ");
    const char* name = nullptr;
    uint64_t n = 0;
    for (auto [u, secs] : units)
      if (!name && l.cost && secs * 1000000 % l.cost == 0) name = u, n = secs * 1000000 / l.cost;
    t += name ? std::to_string(n) + "/" + name : "avg " + std::to_string(l.cost) + "us";
    t += " burst " + std::to_string(l.cap) + " table " + hex(l.table) + " mode";
    std::string mode;
    for (auto [bit, w] :
         {std::pair{NF_HL_SIP, "srcip"}, {NF_HL_SPT, "srcport"}, {NF_HL_DIP, "dstip"}, {NF_HL_DPT, "dstport"}})
      if (l.mode & bit) mode += (mode.empty() ? " " : ",") + std::string(w);
    t += mode.empty() ? " none" : mode;
    if (l.mode & NF_HL_SIP) t += " srcmask " + std::to_string(l.srcmask);
    if (l.mode & NF_HL_DIP) t += " dstmask " + std::to_string(l.dstmask);
    return t + " expire " + std::to_string(l.expire) + "ms";
  }
  if (l.flags & NF_LIMIT_XT) {  // as libxt_limit's print_rate shows avg
    if (!l.cost || l.cost > UINT32_MAX)
      return "avg " + std::to_string(l.cost) + " burst " + std::to_string(l.cap) + " xt_limit";
    auto [n, secs] = xt_rate((uint32_t)l.cost);
    const char* name = "second";
    for (auto [u, s] : units)
      if (s == secs) name = u;
    return std::to_string(n) + "/" + name + " burst " + std::to_string(l.cap) + " xt_limit";
  }
  std::string over = l.flags & NF_LIMIT_INV ? "over " : "";
  if (l.flags & NF_LIMIT_BYTES)
    return over + std::to_string(l.rate) + " bytes/" + std::to_string(l.cost / 1000000000) + "s tokens_max " +
           std::to_string(l.cap) + "ns";
  if (l.cost == 0) return over + "unlimited";
  for (auto [unit, secs] : units) {
    uint64_t ns = secs * 1000000000, n = ns / l.cost;
    if (n && ns / n == l.cost && (l.cap % l.cost) == 0)
      return over + std::to_string(n) + "/" + unit + " burst " + std::to_string(l.cap / l.cost);
  }
  return over + std::to_string(l.cost) + "ns per packet tokens_max " + std::to_string(l.cap) + "ns";
}

std::string probability_text(uint32_t below) {
  char b[32];
  std::snprintf(b, sizeof b, "%.6g", below / 2147483648.0);
  return b;
}

// --- Spelled-out rules --------------------------------------------------------

uint64_t get_field(const nf2bpf_rule& r, const RawField& f) {
  const char* p = reinterpret_cast<const char*>(&r) + f.off;
  switch (f.size) {
    case 1: {
      uint8_t v;
      std::memcpy(&v, p, 1);
      return v;
    }
    case 2: {
      uint16_t v;
      std::memcpy(&v, p, 2);
      return v;
    }
    case 4: {
      uint32_t v;
      std::memcpy(&v, p, 4);
      return v;
    }
    default: {
      uint64_t v;
      std::memcpy(&v, p, 8);
      return v;
    }
  }
}
void set_field(nf2bpf_rule& r, const RawField& f, uint64_t v) {
  char* p = reinterpret_cast<char*>(&r) + f.off;
  switch (f.size) {
    case 1: {
      uint8_t x = (uint8_t)v;
      std::memcpy(p, &x, 1);
      break;
    }
    case 2: {
      uint16_t x = (uint16_t)v;
      std::memcpy(p, &x, 2);
      break;
    }
    case 4: {
      uint32_t x = (uint32_t)v;
      std::memcpy(p, &x, 4);
      break;
    }
    default: std::memcpy(p, &v, 8);
  }
}
uint64_t field_max(const RawField& f) { return f.size >= 8 ? UINT64_MAX : (1ULL << (8 * f.size)) - 1; }

// --- NAT ranges ---------------------------------------------------------------

namespace {

constexpr std::pair<const char*, int> kNatFlagNames[] = {{"random", NF_NAT_F_RANDOM},
                                                         {"random-fully", NF_NAT_F_RANDOM_FULLY},
                                                         {"persistent", NF_NAT_F_PERSISTENT},
                                                         {"negated", NF_NAT_F_NEG},
                                                         {"and-next", NF_NAT_F_MORE}};

bool v4_mapped(const uint8_t a[16]) {
  static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::memcmp(a, prefix, sizeof prefix) == 0;
}

// An address as it stands in `to`: IPv6 in brackets, so a port can follow.
std::string to_addr_text(const uint8_t a[16]) { return v4_mapped(a) ? nat_addr_text(a) : "[" + nat_addr_text(a) + "]"; }

}  // namespace

std::string nat_kind_name(unsigned kind) {
  if (kind >= NF_NAT_CT && kind <= NF_NAT_CT_MAX) return kCtTestNames[kind - NF_NAT_CT];
  return kind >= 1 && kind < std::size(kNatKindNames) ? kNatKindNames[kind] : std::to_string(kind);
}

int nat_kind_by_name(std::string_view s) {
  for (size_t k = 1; k < std::size(kNatKindNames); ++k)
    if (s == kNatKindNames[k]) return (int)k;
  for (size_t k = 0; k < std::size(kCtTestNames); ++k)
    if (s == kCtTestNames[k]) return (int)(NF_NAT_CT + k);
  return -1;
}

std::vector<std::string> nat_flag_names(uint8_t flags) {
  std::vector<std::string> out;
  for (int bit = 1; bit < 256; bit <<= 1) {
    if (!(flags & bit) || bit == NF_NAT_F_ADDR || bit == NF_NAT_F_PORTS) continue;
    std::string name = std::to_string(bit);
    for (const auto& [n, b] : kNatFlagNames)
      if (b == bit) name = n;
    out.push_back(name);
  }
  return out;
}

int nat_flag_by_name(std::string_view s) {
  for (const auto& [n, b] : kNatFlagNames)
    if (s == n) return b;
  return -1;
}

std::string nat_addr_text(const uint8_t a[16]) {
  char buf[INET6_ADDRSTRLEN];
  if (v4_mapped(a)) return inet_ntop(AF_INET, a + 12, buf, sizeof buf);
  return inet_ntop(AF_INET6, a, buf, sizeof buf);
}

bool parse_nat_addr(std::string_view s, uint8_t a[16]) {
  std::string t(s);
  if (t.find(':') == std::string::npos) {
    std::memset(a, 0, 16);
    a[10] = a[11] = 0xff;
    return inet_pton(AF_INET, t.c_str(), a + 12) == 1;
  }
  // The IPv4-mapped form is spelled dotted, as the writer does.
  return inet_pton(AF_INET6, t.c_str(), a) == 1 && !v4_mapped(a);
}

std::string nat_to_text(const nf2bpf_nat& n) {
  std::string s;
  if (n.flags & NF_NAT_F_ADDR) {
    s = to_addr_text(n.addr_min);
    if (std::memcmp(n.addr_min, n.addr_max, 16) != 0) s += "-" + to_addr_text(n.addr_max);
  }
  if (n.flags & NF_NAT_F_PORTS) {
    s += ":" + std::to_string(n.port_min);
    if (n.port_min != n.port_max) s += "-" + std::to_string(n.port_max);
  }
  return s;
}

std::optional<ParseFail> parse_nat_to(std::string_view s, nf2bpf_nat& n) {
  Cursor c{s};
  const char* form = "expected ADDR[-ADDR][:PORT[-PORT]] or :PORT[-PORT]";
  const char* hint = "like 10.0.0.2-10.0.0.5:8080-8090, [fd00::1]:80 or :8080";
  auto addr = [&](uint8_t a[16]) -> std::optional<ParseFail> {
    size_t at = c.i, end;
    std::string_view text;
    if (c.lit("[")) {
      end = s.find(']', c.i);
      if (end == std::string_view::npos) return ParseFail{at, "an IPv6 address in '[' has no ']'", hint};
      text = s.substr(c.i, end - c.i);
      if (text.find(':') == std::string_view::npos)
        return ParseFail{at, "only IPv6 addresses are written in brackets", hint};
      c.i = end + 1;
    } else {
      std::string_view rest = s.substr(c.i, s.find('-', c.i) - c.i);  // this address, and maybe ports
      if (std::count(rest.begin(), rest.end(), ':') >= 2)
        return ParseFail{at, "an IPv6 address is written in brackets: [fd00::1]", hint};
      end = s.find_first_not_of("0123456789.", c.i);
      text = s.substr(c.i, (end == std::string_view::npos ? s.size() : end) - c.i);
      if (text.empty()) return ParseFail{at, form, hint};
      c.i += text.size();
    }
    if (!parse_nat_addr(text, a)) {
      uint8_t x[16];
      bool mapped = text.find(':') != std::string_view::npos && inet_pton(AF_INET6, std::string(text).c_str(), x) == 1;
      return ParseFail{at + (s[at] == '[' ? 1 : 0),
                       mapped ? "an IPv4-mapped address is written dotted: " + nat_addr_text(x)
                              : "'" + std::string(text) + "' is not an IPv4 or IPv6 address",
                       hint};
    }
    return std::nullopt;
  };
  auto port = [&](uint16_t& v) -> std::optional<ParseFail> {
    uint64_t x = 0;
    if (!c.dec(x, 65535)) return ParseFail{c.i, "expected a port 0..65535", hint};
    v = (uint16_t)x;
    return std::nullopt;
  };
  if (s.empty()) return ParseFail{0, form, hint};
  if (!s.starts_with(":")) {
    size_t at = c.i;
    if (auto f = addr(n.addr_min)) return f;
    std::memcpy(n.addr_max, n.addr_min, 16);
    if (c.lit("-")) {
      if (auto f = addr(n.addr_max)) return f;
      if (std::memcmp(n.addr_min, n.addr_max, 16) > 0)
        return ParseFail{at, "the address range " + std::string(s.substr(at, c.i - at)) + " is empty (first > last)"};
    }
    n.flags |= NF_NAT_F_ADDR;
  }
  if (c.lit(":")) {
    size_t at = c.i;
    if (auto f = port(n.port_min)) return f;
    n.port_max = n.port_min;
    if (c.lit("-")) {
      if (auto f = port(n.port_max)) return f;
      if (n.port_min > n.port_max)
        return ParseFail{at, "the port range " + std::string(s.substr(at, c.i - at)) + " is empty (first > last)"};
    }
    n.flags |= NF_NAT_F_PORTS;
  }
  if (!c.done()) return ParseFail{c.i, form, hint};
  return std::nullopt;
}

std::string service_backend_text(const ServiceBackend& b) {
  nf2bpf_nat n{};
  n.flags = NF_NAT_F_ADDR | NF_NAT_F_PORTS;
  for (int i = 0; i < 16; ++i) n.addr_min[i] = n.addr_max[i] = (uint8_t)(b.addr >> (8 * (15 - i)));
  n.port_min = n.port_max = b.port;
  return nat_to_text(n);
}

std::optional<ParseFail> parse_service_backend(std::string_view s, ServiceBackend& b) {
  nf2bpf_nat n{};
  if (auto fail = parse_nat_to(s, n)) return fail;
  if (n.flags != (NF_NAT_F_ADDR | NF_NAT_F_PORTS) || std::memcmp(n.addr_min, n.addr_max, 16) != 0 ||
      n.port_min != n.port_max)
    return ParseFail{0, "a backend is one address and one port", "like 10.1.0.5:80 or [fd00::5]:80"};
  b.addr = 0;
  for (int i = 0; i < 16; ++i) b.addr = (b.addr << 8) | n.addr_min[i];
  b.port = n.port_min;
  return std::nullopt;
}

std::string nat_text(const nf2bpf_nat& n) {
  std::string s = nat_kind_name(n.kind);
  if (n.kind == NF_NAT_SERVICE) s += " (services #" + std::to_string(n.service) + ")";
  if (std::string to = nat_to_text(n); !to.empty()) s += " to " + to;
  for (const auto& f : nat_flag_names(n.flags)) s += " " + f;
  return s;
}

// --- Actions --------------------------------------------------------------------

namespace {

// "dnat #3 to 10.0.0.2:8080": the range's text with its index after the kind.
std::string nat_action_text(const Policy& p, uint32_t index) {
  if (index >= p.nats.size()) return "nat #" + std::to_string(index);
  std::string t = nat_text(p.nats[index]), kind = nat_kind_name(p.nats[index].kind);
  return kind + " #" + std::to_string(index) + t.substr(kind.size());
}

}  // namespace

std::string action_text(const Policy& p, const nf2bpf_rule& r) {
  switch (r.action) {
    case NF_ACT_ACCEPT: return "accept";
    case NF_ACT_DROP: return "drop";
    case NF_ACT_REJECT: return r.reject_type ? std::string("reject with ") + reject_name(r.reject_type) : "reject";
    case NF_ACT_CONTINUE: return "continue";
    case NF_ACT_SKIP: return "skip to " + std::to_string(r.skip_to);
    case NF_ACT_NAT: return nat_action_text(p, r.nat);
  }
  return "accept";  // the raw override carries the real value
}

std::optional<ParseFail> parse_action(std::string_view s, const Policy& p, nf2bpf_rule& r) {
  Cursor c{s};
  uint64_t to = 0;
  auto unknown = [&](size_t at) {
    return ParseFail{at, "unknown action '" + std::string(s) + "'",
                     "actions are accept, drop, reject, reject with tcp-reset, continue, skip to N, "
                     "and KIND #N ... naming an entry of 'nat'"};
  };
  bool nat = false;
  for (const char* k : {"dnat #", "snat #", "masquerade #", "redirect #", "netmap #", "service #", "nat #"})
    if (c.lit(k)) {
      nat = true;
      break;
    }
  if (nat) {
    size_t at = c.i;
    if (!c.dec(to, UINT32_MAX)) return ParseFail{at, "expected a NAT range index like #0"};
    if (to >= p.nats.size())
      return ParseFail{at, "nat #" + std::to_string(to) + " is not in 'nat' " +
                               (p.nats.empty() ? "(it is empty)" : "(0.." + std::to_string(p.nats.size() - 1) + ")")};
    if (s != nat_action_text(p, (uint32_t)to))
      return ParseFail{0,
                       "says '" + std::string(s) + "' but nat #" + std::to_string(to) + " is " + nat_text(p.nats[to])};
    r.action = NF_ACT_NAT;
    r.nat = (uint32_t)to;
    return std::nullopt;
  }
  if (c.lit("accept"))
    r.action = NF_ACT_ACCEPT;
  else if (c.lit("drop"))
    r.action = NF_ACT_DROP;
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
      if (code == kRejectUnknown) return unknown(at);
      r.reject_type = code;
    }
  } else if (c.lit("continue"))
    r.action = NF_ACT_CONTINUE;
  else if (c.lit("skip to ")) {
    if (!c.dec(to, UINT32_MAX)) return unknown(c.i);
    r.action = NF_ACT_SKIP;
    r.skip_to = (uint32_t)to;
  } else
    return unknown(0);
  if (!c.done()) return unknown(c.i);
  return std::nullopt;
}

namespace {

// "ct tuple #3: ct original dport 8080, not ct original saddr 203.0.113.0-203.0.113.255":
// the conntrack tuple tests a rule's check names, from nf_nat[first] on.
std::string ct_tuple_text(const Policy& p, uint32_t first) {
  std::string s = "ct tuple #" + std::to_string(first);
  for (uint32_t i = first, k = 0; i < p.nats.size() && k < 4; ++i, ++k) {
    const nf2bpf_nat& t = p.nats[i];
    if (t.kind < NF_NAT_CT || t.kind > NF_NAT_CT_MAX) break;
    std::string to = nat_to_text(t);
    if (!to.empty() && to[0] == ':') to = to.substr(1);
    s += std::string(k ? ", " : ": ") + (t.flags & NF_NAT_F_NEG ? "not " : "") + nat_kind_name(t.kind) + " " + to;
    if (!(t.flags & NF_NAT_F_MORE)) break;
  }
  return s;
}

}  // namespace

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
  if (r.residual & NF_RES_LIMIT)
    for (size_t i = r.limit; i < p.limits.size(); ++i) {  // the rule's chain of them
      out.push_back("limit " + limit_text(p.limits[i]) + " (#" + std::to_string(i) + ")");
      if (!(p.limits[i].flags & NF_LIMIT_MORE)) break;
    }
  if (r.residual & NF_RES_RANDOM)
    out.push_back(std::string(r.residual & NF_RES_RANDOM_NEG ? "not " : "") + "random " +
                  probability_text(r.random_below) + " (below " + hex(r.random_below) + ", draw #" +
                  std::to_string(r.nth_slot) + ")");
  if (r.residual & NF_RES_MAC)
    out.push_back(std::string("mac ") + (r.residual & NF_RES_MAC_NEG ? "!= " : "== ") + mac_text(r.mac));
  // In iptables' terms: --every N --packet P holds when the rule's count is
  // P + 1 modulo N.
  if (r.residual & NF_RES_CTTUPLE) out.push_back(ct_tuple_text(p, r.ct_range));
  // The sending socket, in xt_owner's terms: "owner [nft] [not] uid A-B
  // [not] gid A-B [not] socket".
  if (r.residual & NF_RES_OWNER) {
    std::string t = "owner";
    if (r.owner_match & NF_OWNER_NFT) t += " nft";
    auto item = [&](uint32_t bit, const char* what, const uint32_t* range) {
      if (!(r.owner_match & bit)) return;
      t += std::string(r.owner_inv & bit ? " not " : " ") + what;
      if (range) t += " " + std::to_string(range[0]) + "-" + std::to_string(range[1]);
    };
    item(NF_OWNER_UID, "uid", r.owner_uid);
    item(NF_OWNER_GID, "gid", r.owner_gid);
    item(NF_OWNER_SOCKET, "socket", nullptr);
    out.push_back(t);
  }
  if ((r.residual & NF_RES_NTH) && r.nth_every)
    out.push_back(std::string(r.residual & NF_RES_NTH_NEG ? "not " : "") + "nth every " + std::to_string(r.nth_every) +
                  " packet " + std::to_string((r.nth_hit + r.nth_every - 1) % r.nth_every) + " (#" +
                  std::to_string(r.nth_slot) + (r.residual & NF_RES_NTH_ONCE ? ", one step per run" : "") + ")");
  // -m recent: the table by its name hash, xt_recent's options by name; the
  // mask (over the IPv4-mapped address) only when it is not all ones.
  if (r.residual & NF_RES_RECENT) {
    static const char* kCmd[] = {"?", "set", "rcheck", "update", "remove"};
    std::string t = std::string(r.residual & NF_RES_RECENT_NEG ? "not " : "") + "recent " +
                    kCmd[r.recent_cmd <= NF_RECENT_REMOVE ? r.recent_cmd : 0] + " table " + hex(r.recent_table) +
                    " ring " + std::to_string(r.recent_ring);
    if (r.recent_seconds) t += " seconds " + std::to_string(r.recent_seconds);
    if (r.recent_hitcount) t += " hitcount " + std::to_string(r.recent_hitcount);
    if (r.recent_flags & NF_RECENT_REAP) t += " reap";
    if (r.recent_flags & NF_RECENT_RTTL) t += " rttl";
    if (r.recent_flags & NF_RECENT_RDEST) t += " rdest";
    uint64_t hi = 0, lo = 0;
    for (int i = 0; i < 8; ++i) hi = hi << 8 | r.recent_mask[i], lo = lo << 8 | r.recent_mask[8 + i];
    if (hi != UINT64_MAX || lo != UINT64_MAX) t += " mask " + hex(hi) + " " + hex(lo);
    out.push_back(t);
  }
  return out;
}

std::optional<ParseFail> parse_check(std::string_view s, const Policy& p, nf2bpf_rule& r) {
  Cursor c{s};
  auto masked = [&](uint32_t& mask, uint32_t& value, uint32_t neg_bit) -> std::optional<ParseFail> {
    if (!c.hex32(mask)) return ParseFail{c.i, "expected a hex mask like 0xff"};
    bool neg = false;
    if (c.lit(" != "))
      neg = true;
    else if (!c.lit(" == "))
      return ParseFail{c.i, "expected ' == ' or ' != '"};
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
    size_t chain_end = r.limit;  // a later check of the rule's: in the chain flags 128 make from its first
    while ((r.residual & NF_RES_LIMIT) && chain_end < p.limits.size() && (p.limits[chain_end].flags & NF_LIMIT_MORE))
      ++chain_end;
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
    if ((r.residual & NF_RES_LIMIT) && (idx <= r.limit || idx > chain_end))
      return ParseFail{open + 3, "limit #" + std::to_string(idx) + " is not in the chain of the rule's limit #" +
                                     std::to_string(r.limit) + " (flags 128 chains a limit to the next)"};
    if (!(r.residual & NF_RES_LIMIT)) r.limit = (uint32_t)idx;
    r.residual |= NF_RES_LIMIT;
  } else if (s.starts_with("random ") || s.starts_with("not random ")) {
    if (r.residual & NF_RES_RANDOM) return ParseFail{0, "a rule has at most one random check"};
    if (c.lit("not ")) r.residual |= NF_RES_RANDOM_NEG;
    c.lit("random ");
    size_t at = c.i;
    auto open = s.find(" (below ", at);
    if (open == std::string_view::npos) return ParseFail{c.i, "expected 'P (below 0xN)'"};
    std::string_view shown = s.substr(at, open - at);
    c.i = open + 8;
    uint64_t below = 0, slot = 0;
    if (!c.hex(below) || !c.lit(", draw #") || !c.dec(slot, UINT32_MAX) || !c.lit(")"))
      return ParseFail{c.i, "expected a hex threshold and a draw slot like (below 0x40000000, draw #0)"};
    if (r.residual & NF_RES_NTH) return ParseFail{0, "a rule has a random check or an nth check, not both"};
    r.nth_slot = (uint32_t)slot;
    if (shown != probability_text((uint32_t)below))
      return ParseFail{at, "says probability " + std::string(shown) + " but the threshold gives " +
                               probability_text((uint32_t)below)};
    r.residual |= NF_RES_RANDOM;
    r.random_below = (uint32_t)below;
  } else if (s.starts_with("nth ") || s.starts_with("not nth ")) {
    if (r.residual & NF_RES_NTH) return ParseFail{0, "a rule has at most one nth check"};
    if (r.residual & NF_RES_RANDOM) return ParseFail{0, "a rule has a random check or an nth check, not both"};
    if (c.lit("not ")) r.residual |= NF_RES_NTH_NEG;
    c.lit("nth ");
    uint64_t every = 0, packet = 0, slot = 0;
    if (!c.lit("every ") || !c.dec(every, UINT32_MAX) || every == 0)
      return ParseFail{c.i, "expected 'every N' with N >= 1"};
    if (!c.lit(" packet ") || !c.dec(packet, UINT32_MAX) || packet >= every)
      return ParseFail{c.i, "expected ' packet P' with P below N"};
    if (!c.lit(" (#") || !c.dec(slot, UINT32_MAX)) return ParseFail{c.i, "expected a counter index like (#0)"};
    if (c.lit(", one step per run")) r.residual |= NF_RES_NTH_ONCE;  // nft numgen inc
    if (!c.lit(")")) return ParseFail{c.i, "expected ')' after the counter index"};
    r.residual |= NF_RES_NTH;
    r.nth_every = (uint32_t)every;
    r.nth_hit = (uint32_t)((packet + 1) % every);
    r.nth_slot = (uint32_t)slot;
  } else if (c.lit("owner")) {
    if (r.residual & NF_RES_OWNER) return ParseFail{0, "a rule has at most one owner check"};
    r.residual |= NF_RES_OWNER;
    if (c.lit(" nft")) r.owner_match |= NF_OWNER_NFT;
    auto item = [&](uint32_t bit, const char* what, uint32_t* range) -> std::optional<ParseFail> {
      size_t save = c.i;
      bool neg = c.lit(" not ");
      if (!neg && !c.lit(" ")) return std::nullopt;
      if (!c.lit(what)) {
        c.i = save;
        return std::nullopt;
      }
      r.owner_match |= bit;
      if (neg) r.owner_inv |= bit;
      if (!range) return std::nullopt;
      uint64_t lo = 0, hi = 0;
      if (!c.lit(" ") || !c.dec(lo, UINT32_MAX) || !c.lit("-") || !c.dec(hi, UINT32_MAX) || lo > hi)
        return ParseFail{c.i, std::string("expected '") + what + " MIN-MAX'"};
      range[0] = (uint32_t)lo, range[1] = (uint32_t)hi;
      return std::nullopt;
    };
    if (auto e = item(NF_OWNER_UID, "uid", r.owner_uid)) return e;
    if (auto e = item(NF_OWNER_GID, "gid", r.owner_gid)) return e;
    if (auto e = item(NF_OWNER_SOCKET, "socket", nullptr)) return e;
    if (!(r.owner_match & (NF_OWNER_UID | NF_OWNER_GID | NF_OWNER_SOCKET)))
      return ParseFail{c.i, "expected ' uid MIN-MAX', ' gid MIN-MAX' or ' socket' (each may follow 'not')"};
  } else if (c.lit("ct tuple #")) {
    if (r.residual & NF_RES_CTTUPLE) return ParseFail{0, "a rule has at most one ct tuple check"};
    uint64_t idx = 0;
    if (!c.dec(idx, UINT32_MAX)) return ParseFail{c.i, "expected an index into 'nat' like #3"};
    if (idx >= p.nats.size() || p.nats[idx].kind < NF_NAT_CT || p.nats[idx].kind > NF_NAT_CT_MAX)
      return ParseFail{10, "nat #" + std::to_string(idx) + " is not a conntrack tuple test"};
    if (s != ct_tuple_text(p, (uint32_t)idx))
      return ParseFail{0, "says '" + std::string(s) + "' but the tests are: " + ct_tuple_text(p, (uint32_t)idx)};
    r.residual |= NF_RES_CTTUPLE;
    r.ct_range = (uint32_t)idx;
    c.i = s.size();
  } else if (s.starts_with("recent ") || s.starts_with("not recent ")) {
    if (r.residual & NF_RES_RECENT) return ParseFail{0, "a rule has at most one recent check"};
    if (c.lit("not ")) r.residual |= NF_RES_RECENT_NEG;
    c.lit("recent ");
    static const char* kCmd[] = {"set", "rcheck", "update", "remove"};
    r.recent_cmd = 0;
    for (int k = 0; k < 4 && !r.recent_cmd; ++k)
      if (c.lit(kCmd[k])) r.recent_cmd = (uint8_t)(k + 1);
    if (!r.recent_cmd) return ParseFail{c.i, "expected set, rcheck, update or remove"};
    uint64_t table = 0, ring = 0, v = 0;
    if (!c.lit(" table ") || !c.hex(table) || table == 0) return ParseFail{c.i, "expected ' table 0x...' (not 0)"};
    if (!c.lit(" ring ") || !c.dec(ring, NF_RECENT_STAMPS - 1) || ((ring + 1) & ring))
      return ParseFail{c.i, "expected ' ring N' with N + 1 a power of two up to " + std::to_string(NF_RECENT_STAMPS)};
    r.recent_table = (uint32_t)table;
    r.recent_ring = (uint8_t)ring;
    if (c.lit(" seconds ")) {
      if (!c.dec(v, UINT32_MAX) || v == 0) return ParseFail{c.i, "expected a number of seconds >= 1"};
      r.recent_seconds = (uint32_t)v;
    }
    if (c.lit(" hitcount ")) {
      if (!c.dec(v, NF_RECENT_STAMPS) || v == 0)
        return ParseFail{c.i, "expected a hit count from 1 to " + std::to_string(NF_RECENT_STAMPS)};
      r.recent_hitcount = (uint16_t)v;
    }
    if (c.lit(" reap")) r.recent_flags |= NF_RECENT_REAP;
    if (c.lit(" rttl")) r.recent_flags |= NF_RECENT_RTTL;
    if (c.lit(" rdest")) r.recent_flags |= NF_RECENT_RDEST;
    std::memset(r.recent_mask, 0xff, 16);
    if (c.lit(" mask ")) {
      uint64_t hi = 0, lo = 0;
      if (!c.hex(hi, UINT64_MAX) || !c.lit(" ") || !c.hex(lo, UINT64_MAX))
        return ParseFail{c.i, "expected ' mask 0x... 0x...' (the 16 mask bytes as two numbers)"};
      for (int i = 7; i >= 0; --i)
        r.recent_mask[i] = (uint8_t)hi, r.recent_mask[8 + i] = (uint8_t)lo, hi >>= 8, lo >>= 8;
    }
    bool set_remove = r.recent_cmd == NF_RECENT_SET || r.recent_cmd == NF_RECENT_REMOVE;
    if (set_remove && (r.recent_seconds || r.recent_hitcount || (r.recent_flags & (NF_RECENT_REAP | NF_RECENT_RTTL))))
      return ParseFail{0, "set and remove take no seconds, hitcount, reap or rttl"};
    if ((r.recent_flags & NF_RECENT_REAP) && !r.recent_seconds) return ParseFail{0, "reap needs seconds"};
    if (r.recent_hitcount > r.recent_ring + 1u) return ParseFail{0, "hitcount above the ring size"};
    r.residual |= NF_RES_RECENT;
  } else if (c.lit("mac ")) {
    if (r.residual & NF_RES_MAC) return ParseFail{0, "a rule has at most one mac check"};
    if (c.lit("!= "))
      r.residual |= NF_RES_MAC_NEG;
    else if (!c.lit("== "))
      return ParseFail{c.i, "expected '== ' or '!= '"};
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
    return ParseFail{0,
                     "unknown check (expected mark, ctmark, limit, random, not random, nth, not nth, recent, not "
                     "recent, ct tuple or mac)"};
  }
  if (f) return f;
  if (!c.done()) return ParseFail{c.i, "unexpected text after the check"};
  return std::nullopt;
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
    case NF_STMT_TCPMSS:
      return (s.value ? "tcpmss " + std::to_string(s.value) : std::string("tcpmss path-mtu")) +
             (s.mask & NF_TCPMSS_INSERT ? " insert" : "");
    case NF_STMT_SET_TOS: return "tos = (tos & ~" + m + ") ^ " + v;
  }
  return "?";
}

std::optional<ParseFail> parse_stmt(std::string_view s, const Policy& p, nf2bpf_stmt& st) {
  Cursor c{s};
  st = {};
  auto expr = [&](const char* lhs_open, uint8_t set_kind, const char* copy_from,
                  uint8_t copy_kind) -> std::optional<ParseFail> {
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
    if (id >= p.log_prefixes.size())
      return ParseFail{0, "log prefix #" + std::to_string(id) + " is not in 'log_prefixes'"};
    st.kind = NF_STMT_LOG, st.level = (uint8_t)level, st.group = (uint16_t)group, st.prefix_id = (uint32_t)id;
  } else if (c.lit("mark = ")) {
    f = expr("(mark & ~", NF_STMT_SET_MARK, "ctmark & ", NF_STMT_RESTORE_MARK);
  } else if (c.lit("ctmark = ")) {
    f = expr("(ctmark & ~", NF_STMT_SET_CTMARK, "mark & ", NF_STMT_SAVE_MARK);
  } else if (c.lit("tos = (tos & ~")) {
    if (!c.hex32(st.mask) || !c.lit(") ^ ") || !c.hex32(st.value) || st.mask > 0xff || st.value > 0xff)
      return ParseFail{c.i, "expected 'tos = (tos & ~0xMASK) ^ 0xVALUE' with byte values"};
    st.kind = NF_STMT_SET_TOS;
  } else if (c.lit("notrack")) {
    st.kind = NF_STMT_NOTRACK;
  } else if (c.lit("tcpmss ")) {
    st.kind = NF_STMT_TCPMSS;
    uint64_t v = 0;
    if (!c.lit("path-mtu")) {
      if (!c.dec(v, 65535) || v == 0) return ParseFail{c.i, "expected an MSS from 1 to 65535, or path-mtu"};
      st.value = (uint32_t)v;
    }
    if (c.lit(" insert")) st.mask = NF_TCPMSS_INSERT;
  } else {
    return ParseFail{0, "unknown statement (expected log, mark = ..., ctmark = ..., tos = ..., notrack or tcpmss)"};
  }
  if (f) return f;
  if (!c.done()) return ParseFail{c.i, "unexpected text after the statement"};
  return std::nullopt;
}

std::string stmt_map(const nf2bpf_stmt& s) {
  return "{kind: " + std::to_string(s.kind) + ", level: " + std::to_string(s.level) +
         ", group: " + std::to_string(s.group) + ", value: " + std::to_string(s.value) +
         ", mask: " + std::to_string(s.mask) + ", prefix_id: " + std::to_string(s.prefix_id) + "}";
}

// --- Origins ------------------------------------------------------------------

uint32_t line_of_location(std::string_view loc) {
  auto colon = loc.rfind(':');
  if (colon == std::string_view::npos) return 0;
  Cursor c{loc.substr(colon + 1)};
  uint64_t v = 0;
  return c.dec(v, UINT32_MAX) && c.done() ? (uint32_t)v : 0;
}

ChainIndex chain_index_of(const Policy& p) {
  ChainIndex index;
  for (size_t i = 0; i < p.chain_names.size(); ++i) index.emplace(p.chain_names[i], (int64_t)i);
  return index;
}

int64_t chain_index(const ChainIndex& index, const Origin& g) {
  auto it = index.find(g.table + "/" + g.chain);
  return it == index.end() ? -1 : it->second;
}

}  // namespace yaml_schema

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

}  // namespace nf2bpf::policy
