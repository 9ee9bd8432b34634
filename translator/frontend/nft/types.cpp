#include "translator/frontend/nft/types.h"

#include <algorithm>
#include <cctype>
#include <utility>

namespace nf2bpf::frontend::nft {

using ir::IntervalSet;
using ir::u128;

namespace {

struct Sym {
  std::string_view name;
  uint64_t value;
};

// Symbol tables, as nft names the values (nft describe <type>).
// clang-format off
constexpr Sym kInetProto[] = {
    {"ip", 0}, {"hopopt", 0}, {"icmp", 1}, {"igmp", 2}, {"ggp", 3}, {"ipencap", 4}, {"st", 5},
    {"tcp", 6}, {"egp", 8}, {"igp", 9}, {"pup", 12}, {"udp", 17}, {"hmp", 20}, {"xns-idp", 22},
    {"rdp", 27}, {"iso-tp4", 29}, {"dccp", 33}, {"xtp", 36}, {"ddp", 37}, {"idpr-cmtp", 38},
    {"ipv6", 41}, {"ipv6-route", 43}, {"ipv6-frag", 44}, {"idrp", 45}, {"rsvp", 46}, {"gre", 47},
    {"esp", 50}, {"ah", 51}, {"skip", 57}, {"ipv6-icmp", 58}, {"icmpv6", 58}, {"ipv6-nonxt", 59},
    {"ipv6-opts", 60}, {"rspf", 73}, {"vmtp", 81}, {"eigrp", 88}, {"ospf", 89}, {"ax.25", 93},
    {"ipip", 94}, {"etherip", 97}, {"encap", 98}, {"pim", 103}, {"ipcomp", 108}, {"vrrp", 112},
    {"l2tp", 115}, {"isis", 124}, {"sctp", 132}, {"fc", 133}, {"mobility-header", 135},
    {"udplite", 136}, {"mpls-in-ip", 137}, {"manet", 138}, {"hip", 139}, {"shim6", 140},
    {"wesp", 141}, {"rohc", 142}, {"ethernet", 143}};

constexpr Sym kServices[] = {
    {"tcpmux", 1}, {"echo", 7}, {"discard", 9}, {"daytime", 13}, {"ftp-data", 20}, {"ftp", 21},
    {"ssh", 22}, {"telnet", 23}, {"smtp", 25}, {"time", 37}, {"whois", 43}, {"tacacs", 49},
    {"domain", 53}, {"bootps", 67}, {"bootpc", 68}, {"tftp", 69}, {"gopher", 70}, {"finger", 79},
    {"http", 80}, {"www", 80}, {"kerberos", 88}, {"pop3", 110}, {"sunrpc", 111}, {"auth", 113},
    {"nntp", 119}, {"ntp", 123}, {"epmap", 135}, {"netbios-ns", 137}, {"netbios-dgm", 138},
    {"netbios-ssn", 139}, {"imap", 143}, {"imap2", 143}, {"snmp", 161}, {"snmp-trap", 162},
    {"bgp", 179}, {"irc", 194}, {"ldap", 389}, {"https", 443}, {"microsoft-ds", 445},
    {"kpasswd", 464}, {"isakmp", 500}, {"syslog", 514}, {"printer", 515}, {"submission", 587},
    {"ipp", 631}, {"ldaps", 636}, {"rsync", 873}, {"ftps-data", 989}, {"ftps", 990},
    {"telnets", 992}, {"imaps", 993}, {"pop3s", 995}, {"socks", 1080}, {"openvpn", 1194},
    {"ms-sql-s", 1433}, {"ms-sql-m", 1434}, {"l2tp", 1701}, {"pptp", 1723}, {"radius", 1812},
    {"radius-acct", 1813}, {"nfs", 2049}, {"squid", 3128}, {"mysql", 3306}, {"ms-wbt-server", 3389},
    {"ipsec-nat-t", 4500}, {"sip", 5060}, {"sip-tls", 5061}, {"xmpp-client", 5222},
    {"xmpp-server", 5269}, {"mdns", 5353}, {"postgresql", 5432}, {"amqp", 5672}, {"x11", 6000},
    {"redis", 6379}, {"http-alt", 8080}, {"webcache", 8080}};

constexpr Sym kCtState[] = {{"invalid", 1}, {"established", 2}, {"related", 4}, {"new", 8}, {"untracked", 64}};

constexpr Sym kCtStatus[] = {{"expected", 1}, {"seen-reply", 2}, {"assured", 4}, {"confirmed", 8},
                             {"snat", 16},    {"dnat", 32},       {"dying", 512}};

constexpr Sym kCtDir[] = {{"original", 0}, {"reply", 1}};

constexpr Sym kTcpFlag[] = {{"fin", 0x01}, {"syn", 0x02}, {"rst", 0x04}, {"psh", 0x08},
                            {"ack", 0x10}, {"urg", 0x20}, {"ecn", 0x40}, {"cwr", 0x80}};

constexpr Sym kIcmpType[] = {
    {"echo-reply", 0}, {"destination-unreachable", 3}, {"source-quench", 4}, {"redirect", 5},
    {"echo-request", 8}, {"router-advertisement", 9}, {"router-solicitation", 10},
    {"time-exceeded", 11}, {"parameter-problem", 12}, {"timestamp-request", 13},
    {"timestamp-reply", 14}, {"info-request", 15}, {"info-reply", 16},
    {"address-mask-request", 17}, {"address-mask-reply", 18}};

constexpr Sym kIcmpCode[] = {
    {"net-unreachable", 0}, {"host-unreachable", 1}, {"prot-unreachable", 2},
    {"port-unreachable", 3}, {"frag-needed", 4}, {"net-prohibited", 9},
    {"host-prohibited", 10}, {"admin-prohibited", 13}};

constexpr Sym kIcmpv6Type[] = {
    {"destination-unreachable", 1}, {"packet-too-big", 2}, {"time-exceeded", 3},
    {"parameter-problem", 4}, {"echo-request", 128}, {"echo-reply", 129},
    {"mld-listener-query", 130}, {"mld-listener-report", 131}, {"mld-listener-done", 132},
    {"mld-listener-reduction", 132}, {"nd-router-solicit", 133}, {"nd-router-advert", 134},
    {"nd-neighbor-solicit", 135}, {"nd-neighbor-advert", 136}, {"nd-redirect", 137},
    {"router-renumbering", 138}, {"ind-neighbor-solicit", 141}, {"ind-neighbor-advert", 142},
    {"mld2-listener-report", 143}};

constexpr Sym kIcmpv6Code[] = {{"no-route", 0},         {"admin-prohibited", 1}, {"addr-unreachable", 3},
                               {"port-unreachable", 4}, {"policy-fail", 5},      {"reject-route", 6}};

constexpr Sym kIcmpxCode[] = {
    {"port-unreachable", 1}, {"admin-prohibited", 3}, {"no-route", 0}, {"host-unreachable", 2}};

constexpr Sym kPktType[] = {{"host", 0}, {"unicast", 0}, {"broadcast", 1}, {"multicast", 2}, {"other", 3}};

constexpr Sym kNfProto[] = {{"ipv4", 2}, {"ipv6", 10}};

constexpr Sym kEtherType[] = {{"ip", 0x0800}, {"arp", 0x0806}, {"ip6", 0x86dd}, {"vlan", 0x8100},
                              {"8021q", 0x8100}, {"8021ad", 0x88a8}};

// fib "type" results are RTN_* numbers; the IR stores them as AddrType bits.
constexpr Sym kFibAddrType[] = {
    {"unspec", 1u << 0},    {"unicast", 1u << 1},      {"local", 1u << 2},   {"broadcast", 1u << 3},
    {"anycast", 1u << 4},   {"multicast", 1u << 5},    {"blackhole", 1u << 6}, {"unreachable", 1u << 7},
    {"prohibit", 1u << 8},  {"throw", 1u << 9},        {"nat", 1u << 10},    {"xresolve", 1u << 11}};

constexpr Sym kBoolean[] = {{"exists", 1}, {"missing", 0}, {"true", 1}, {"false", 0}};

constexpr Sym kDscp[] = {
    {"cs0", 0x00},  {"cs1", 0x08},  {"cs2", 0x10},  {"cs3", 0x18},  {"cs4", 0x20},  {"cs5", 0x28},
    {"cs6", 0x30},  {"cs7", 0x38},  {"df", 0x00},   {"be", 0x00},   {"lephb", 0x01}, {"af11", 0x0a},
    {"af12", 0x0c}, {"af13", 0x0e}, {"af21", 0x12}, {"af22", 0x14}, {"af23", 0x16}, {"af31", 0x1a},
    {"af32", 0x1c}, {"af33", 0x1e}, {"af41", 0x22}, {"af42", 0x24}, {"af43", 0x26}, {"va", 0x2c},
    {"ef", 0x2e}};
// clang-format on

template <size_t N>
std::optional<uint64_t> lookup(const Sym (&table)[N], std::string_view s) {
  for (const auto& e : table)
    if (e.name == s) return e.value;
  return std::nullopt;
}

template <size_t N>
std::string names(const Sym (&table)[N], size_t max = 8) {
  std::string out;
  size_t n = 0;
  for (const auto& e : table) {
    if (n++ == max) return out + ", ...";
    out += (out.empty() ? "" : ", ") + std::string(e.name);
  }
  return out;
}

bool parse_mac(std::string_view s, u128& out) {
  uint64_t mac = 0;
  int parts = 0;
  size_t i = 0;
  while (i <= s.size()) {
    size_t j = s.find(':', i);
    std::string_view p = s.substr(i, j == std::string_view::npos ? std::string_view::npos : j - i);
    if (p.empty() || p.size() > 2) return false;
    uint64_t b = 0;
    for (char ch : p) {
      if (!std::isxdigit((unsigned char)ch)) return false;
      b = b * 16 + (std::isdigit((unsigned char)ch) ? ch - '0' : std::tolower(ch) - 'a' + 10);
    }
    mac = (mac << 8) | b;
    ++parts;
    if (j == std::string_view::npos) break;
    i = j + 1;
  }
  if (parts != 6) return false;
  out = mac;
  return true;
}

}  // namespace

bool parse_number(std::string_view s, uint64_t max, uint64_t& out) {
  if (s.empty() || s.size() > 20) return false;
  uint64_t v = 0;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    for (char c : s.substr(2)) {
      int d = (c >= '0' && c <= '9')   ? c - '0'
              : (c >= 'a' && c <= 'f') ? c - 'a' + 10
              : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                       : -1;
      if (d < 0 || v > (UINT64_MAX >> 4)) return false;
      v = v * 16 + (uint64_t)d;
    }
  } else {
    for (char c : s) {
      if (c < '0' || c > '9') return false;
      if (v > (UINT64_MAX - (uint64_t)(c - '0')) / 10) return false;
      v = v * 10 + (uint64_t)(c - '0');
    }
  }
  if (v > max) return false;
  out = v;
  return true;
}

const char* type_name(Type t) {
  switch (t) {
    case Type::Unknown: return "unknown";
    case Type::Ipv4Addr: return "ipv4_addr";
    case Type::Ipv6Addr: return "ipv6_addr";
    case Type::EtherAddr: return "ether_addr";
    case Type::InetProto: return "inet_proto";
    case Type::InetService: return "inet_service";
    case Type::Mark: return "mark";
    case Type::Integer: return "integer";
    case Type::IfName: return "ifname";
    case Type::IfIndex: return "iface_index";
    case Type::CtState: return "ct_state";
    case Type::CtStatus: return "ct_status";
    case Type::CtDir: return "ct_dir";
    case Type::TcpFlag: return "tcp_flag";
    case Type::IcmpType: return "icmp_type";
    case Type::IcmpCode: return "icmp_code";
    case Type::Icmpv6Type: return "icmpv6_type";
    case Type::Icmpv6Code: return "icmpv6_code";
    case Type::IcmpxCode: return "icmpx_code";
    case Type::PktType: return "pkt_type";
    case Type::NfProto: return "nf_proto";
    case Type::EtherType: return "ether_type";
    case Type::FibAddrType: return "fib_addrtype";
    case Type::Boolean: return "boolean";
    case Type::Dscp: return "dscp";
    case Type::Verdict: return "verdict";
  }
  return "unknown";
}

Type type_from_name(std::string_view n) {
  for (Type t : {Type::Ipv4Addr,   Type::Ipv6Addr,    Type::EtherAddr, Type::InetProto, Type::InetService,
                 Type::Mark,       Type::Integer,     Type::IfName,    Type::IfIndex,   Type::CtState,
                 Type::CtStatus,   Type::CtDir,       Type::TcpFlag,   Type::IcmpType,  Type::IcmpCode,
                 Type::Icmpv6Type, Type::Icmpv6Code,  Type::IcmpxCode, Type::PktType,   Type::NfProto,
                 Type::EtherType,  Type::FibAddrType, Type::Boolean,   Type::Dscp,      Type::Verdict})
    if (n == type_name(t)) return t;
  return Type::Unknown;
}

unsigned type_bits(Type t, unsigned integer_bits) {
  switch (t) {
    case Type::Ipv4Addr: return 32;
    case Type::Ipv6Addr: return 128;
    case Type::EtherAddr: return 48;
    case Type::InetProto:
    case Type::TcpFlag:
    case Type::IcmpType:
    case Type::IcmpCode:
    case Type::Icmpv6Type:
    case Type::Icmpv6Code:
    case Type::IcmpxCode:
    case Type::PktType:
    case Type::NfProto:
    case Type::CtDir:
    case Type::Boolean: return 8;
    case Type::Dscp: return 6;
    case Type::InetService:
    case Type::EtherType: return 16;
    case Type::Mark:
    case Type::CtState:
    case Type::CtStatus:
    case Type::FibAddrType:
    case Type::IfIndex: return 32;
    case Type::Integer: return integer_bits;
    default: return 32;
  }
}

bool is_bitmask(Type t) { return t == Type::CtState || t == Type::CtStatus || t == Type::TcpFlag; }

std::string type_hint(Type t) {
  switch (t) {
    case Type::Ipv4Addr: return "use an IPv4 address, prefix (10.0.0.0/8) or range (10.0.0.1-10.0.0.9)";
    case Type::Ipv6Addr: return "use an IPv6 address, prefix (fe80::/10) or range";
    case Type::EtherAddr: return "write XX:XX:XX:XX:XX:XX";
    case Type::InetProto: return "use a protocol name (tcp, udp, icmp, ...) or a number 0-255";
    case Type::InetService: return "use a port number 0-65535, a range (1024-65535) or a service name such as ssh";
    case Type::CtState: return "states are " + names(kCtState);
    case Type::CtStatus: return "statuses are " + names(kCtStatus);
    case Type::CtDir: return "use original or reply";
    case Type::TcpFlag: return "flags are " + names(kTcpFlag);
    case Type::IcmpType: return "use a number or a name such as " + names(kIcmpType, 4);
    case Type::IcmpCode: return "use a number or a name such as " + names(kIcmpCode, 4);
    case Type::Icmpv6Type: return "use a number or a name such as " + names(kIcmpv6Type, 4);
    case Type::Icmpv6Code: return "use a number or a name such as " + names(kIcmpv6Code, 4);
    case Type::IcmpxCode: return "codes are " + names(kIcmpxCode);
    case Type::PktType: return "use host, broadcast, multicast or other";
    case Type::NfProto: return "use ipv4 or ipv6";
    case Type::EtherType: return "use ip, ip6, arp, vlan or a number";
    case Type::FibAddrType: return "types are " + names(kFibAddrType, 12);
    case Type::Boolean: return "use exists or missing";
    case Type::Dscp: return "use a number 0-63 or a name such as cs1, af41, ef";
    default: return "";
  }
}

std::optional<u128> symbol_value(Type t, std::string_view s, unsigned bits, std::string& err) {
  auto fail = [&](std::string why = {}) -> std::optional<u128> {
    err = why.empty() ? "invalid " + std::string(type_name(t)) + " value '" + std::string(s) + "'" : why;
    return std::nullopt;
  };
  if (s.empty()) return fail();
  uint64_t max = bits >= 64 ? UINT64_MAX : ((uint64_t)1 << bits) - 1;
  std::optional<uint64_t> sym;
  switch (t) {
    case Type::Ipv4Addr: {
      auto a = ir::parse_addr(s, ir::AddrFamily::V4);
      if (!a) return fail("invalid IPv4 address '" + std::string(s) + "'");
      return *a;
    }
    case Type::Ipv6Addr: {
      std::string_view v = s;
      if (v.size() > 2 && v.front() == '[' && v.back() == ']') v = v.substr(1, v.size() - 2);
      auto a = ir::parse_addr(v, ir::AddrFamily::V6);
      if (!a) return fail("invalid IPv6 address '" + std::string(s) + "'");
      return *a;
    }
    case Type::EtherAddr: {
      u128 m;
      if (!parse_mac(s, m)) return fail("invalid MAC address '" + std::string(s) + "'");
      return m;
    }
    case Type::InetProto: sym = lookup(kInetProto, s); break;
    case Type::InetService: sym = lookup(kServices, s); break;
    case Type::CtState: sym = lookup(kCtState, s); break;
    case Type::CtStatus: sym = lookup(kCtStatus, s); break;
    case Type::CtDir: sym = lookup(kCtDir, s); break;
    case Type::TcpFlag: sym = lookup(kTcpFlag, s); break;
    case Type::IcmpType: sym = lookup(kIcmpType, s); break;
    case Type::IcmpCode: sym = lookup(kIcmpCode, s); break;
    case Type::Icmpv6Type: sym = lookup(kIcmpv6Type, s); break;
    case Type::Icmpv6Code: sym = lookup(kIcmpv6Code, s); break;
    case Type::IcmpxCode: sym = lookup(kIcmpxCode, s); break;
    case Type::PktType: sym = lookup(kPktType, s); break;
    case Type::NfProto: sym = lookup(kNfProto, s); break;
    case Type::EtherType: sym = lookup(kEtherType, s); break;
    case Type::FibAddrType: sym = lookup(kFibAddrType, s); break;
    case Type::Boolean: sym = lookup(kBoolean, s); break;
    case Type::Dscp: sym = lookup(kDscp, s); break;
    default: break;
  }
  if (sym) return *sym;
  uint64_t v;
  if (parse_number(s, max, v)) {
    // fib types are written as names; a number is the RTN_* value.
    if (t == Type::FibAddrType) {
      if (v > 11) return fail("fib address type " + std::string(s) + " is out of range");
      return (u128)1 << v;
    }
    return v;
  }
  if (parse_number(s, UINT64_MAX, v))
    return fail("value " + std::string(s) + " does not fit in " + std::to_string(bits) + " bits");
  return fail();
}

std::string symbol_name(Type t, u128 v) {
  auto find = [&](const auto& table) -> std::string {
    for (const auto& e : table)
      if (e.value == v) return std::string(e.name);
    return {};
  };
  switch (t) {
    case Type::InetProto: return find(kInetProto);
    case Type::CtState: return find(kCtState);
    case Type::CtStatus: return find(kCtStatus);
    case Type::CtDir: return find(kCtDir);
    case Type::TcpFlag: return find(kTcpFlag);
    case Type::IcmpType: return find(kIcmpType);
    case Type::IcmpCode: return find(kIcmpCode);
    case Type::Icmpv6Type: return find(kIcmpv6Type);
    case Type::Icmpv6Code: return find(kIcmpv6Code);
    case Type::IcmpxCode: return find(kIcmpxCode);
    case Type::PktType: return find(kPktType);
    case Type::NfProto: return find(kNfProto);
    case Type::FibAddrType: return find(kFibAddrType);
    default: return {};
  }
}

std::optional<IntervalSet> literal_value(Type t, std::string_view s, unsigned bits, std::string& err) {
  if (auto v = symbol_value(t, s, bits, err)) return IntervalSet::single(*v);
  std::string first_err = err;
  // Prefix: addresses, and (as nft allows) integers.
  if (auto slash = s.find('/'); slash != std::string_view::npos && (t == Type::Ipv4Addr || t == Type::Ipv6Addr)) {
    std::string e;
    auto r = ir::parse_cidr(s, t == Type::Ipv4Addr ? ir::AddrFamily::V4 : ir::AddrFamily::V6, e);
    if (!r) {
      err = "invalid prefix '" + std::string(s) + "': " + e;
      return std::nullopt;
    }
    return r;
  }
  // Range "lo-hi". Names contain '-' too, so try every split point.
  for (size_t dash = s.find('-'); dash != std::string_view::npos; dash = s.find('-', dash + 1)) {
    std::string e1, e2;
    auto lo = symbol_value(t, s.substr(0, dash), bits, e1);
    if (!lo) continue;
    auto hi = symbol_value(t, s.substr(dash + 1), bits, e2);
    if (!hi) continue;
    if (*lo > *hi) {
      err = "range '" + std::string(s) + "' ends before it starts";
      return std::nullopt;
    }
    return IntervalSet::range(*lo, *hi);
  }
  err = first_err;
  return std::nullopt;
}

std::optional<uint64_t> parse_time_ms(std::string_view s) {
  if (s.empty()) return std::nullopt;
  uint64_t plain;
  if (parse_number(s, UINT64_MAX / 1000, plain)) return plain * 1000;
  uint64_t total = 0;
  size_t i = 0;
  while (i < s.size()) {
    size_t j = i;
    while (j < s.size() && std::isdigit((unsigned char)s[j])) ++j;
    if (j == i) return std::nullopt;
    uint64_t n;
    if (!parse_number(s.substr(i, j - i), UINT64_MAX / 1000, n)) return std::nullopt;
    size_t k = j;
    while (k < s.size() && std::isalpha((unsigned char)s[k])) ++k;
    std::string_view unit = s.substr(j, k - j);
    uint64_t mult = unit == "ms"  ? 1
                    : unit == "s" ? 1000
                    : unit == "m" ? 60000
                    : unit == "h" ? 3600000
                    : unit == "d" ? 86400000
                                  : 0;
    if (!mult) return std::nullopt;
    total += n * mult;
    i = k;
  }
  return total;
}

}  // namespace nf2bpf::frontend::nft
