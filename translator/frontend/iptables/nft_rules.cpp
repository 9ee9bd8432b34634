#include "translator/frontend/iptables/nft_rules.h"

#include <arpa/inet.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <optional>

#include "common/nft_netlink.h"

namespace nf2bpf::frontend {

namespace {

using Bytes = std::vector<uint8_t>;
using nfnl::expr_bytes;
using nfnl::expr_string;
using nfnl::header;
using nfnl::prefix_length;

// Little helpers over the xtables option blobs (host byte order, as the
// kernel's structs hold them, except where the struct says __be).
template <typename T>
T field(const Bytes& b, size_t off) {
  T v{};
  if (off + sizeof(T) <= b.size()) std::memcpy(&v, b.data() + off, sizeof(T));
  return v;
}

std::string hex(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%x", v);
  return buf;
}

std::string addr_text(const uint8_t* p, bool v6) {
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(v6 ? AF_INET6 : AF_INET, p, buf, sizeof buf);
  return buf;
}

// xtables_save_string: bare when only [A-Za-z0-9_-], else quoted with ", \ and ' escaped.
std::string save_string(const std::string& s) {
  static const char kBare[] = "_-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  size_t n = std::strspn(s.c_str(), kBare);
  if (n > 0 && n == s.size()) return " " + s;
  std::string out = " \"";
  for (char c : s) {
    if (c == '"' || c == '\\' || c == '\'') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string port_range(uint16_t lo, uint16_t hi) {
  return lo == hi ? std::to_string(lo) : std::to_string(lo) + ":" + std::to_string(hi);
}

const char* proto_name(uint8_t p, bool v6) {
  switch (p) {
    case IPPROTO_TCP: return "tcp";
    case IPPROTO_UDP: return "udp";
    case IPPROTO_SCTP: return "sctp";
    case IPPROTO_ICMP: return v6 ? nullptr : "icmp";
    default: return nullptr;
  }
}

Error refuse(const std::string& what) { return Error{EOPNOTSUPP, what}; }

// The port part of a tcp or udp match (xt_tcp / xt_udp): ports in host order,
// [lo, hi]; the inversion flags are 1 (source) and 2 (destination) in both.
struct Ports {
  uint16_t spts[2] = {0, 0xffff}, dpts[2] = {0, 0xffff};
  uint8_t invflags = 0;
  // tcp only
  uint8_t option = 0, flg_mask = 0, flg_cmp = 0;
};

std::string tcp_flags(uint8_t f) {
  static const std::pair<uint8_t, const char*> kNames[] = {{0x01, "FIN"}, {0x02, "SYN"}, {0x04, "RST"},
                                                           {0x08, "PSH"}, {0x10, "ACK"}, {0x20, "URG"}};
  std::string out;
  for (const auto& [bit, name] : kNames)
    if (f & bit) out += (out.empty() ? "" : ",") + std::string(name);
  return out.empty() ? "NONE" : out;
}

// tcp_save / udp_save.
std::string ports_text(const Ports& p, bool tcp) {
  std::string out;
  if (p.spts[0] != 0 || p.spts[1] != 0xffff)
    out += std::string(p.invflags & 1 ? " !" : "") + " --sport " + port_range(p.spts[0], p.spts[1]);
  if (p.dpts[0] != 0 || p.dpts[1] != 0xffff)
    out += std::string(p.invflags & 2 ? " !" : "") + " --dport " + port_range(p.dpts[0], p.dpts[1]);
  if (tcp && (p.option || (p.invflags & 8)))
    out += std::string(p.invflags & 8 ? " !" : "") + " --tcp-option " + std::to_string(p.option);
  if (tcp && (p.flg_mask || (p.invflags & 4)))
    out +=
        std::string(p.invflags & 4 ? " !" : "") + " --tcp-flags " + tcp_flags(p.flg_mask) + " " + tcp_flags(p.flg_cmp);
  return out;
}

// nf_nat_range2 (rev 2), nf_nat_range (rev 1) or nf_nat_ipv4_multi_range_compat
// (rev 0), as one range.
struct NatRange {
  uint32_t flags = 0;
  uint8_t min_addr[16] = {}, max_addr[16] = {};
  uint16_t min_port = 0, max_port = 0;  // network order
};

std::optional<NatRange> nat_range(const Bytes& b, uint32_t rev, bool v6) {
  NatRange r;
  if (rev == 0 && !v6) {
    if (b.size() < 24 || field<uint32_t>(b, 0) != 1) return std::nullopt;
    r.flags = field<uint32_t>(b, 4);
    std::memcpy(r.min_addr, b.data() + 8, 4);
    std::memcpy(r.max_addr, b.data() + 12, 4);
    r.min_port = field<uint16_t>(b, 16);
    r.max_port = field<uint16_t>(b, 18);
    return r;
  }
  if ((rev == 1 && b.size() < 40) || (rev == 2 && b.size() < 44) || rev > 2 || rev == 0) return std::nullopt;
  r.flags = field<uint32_t>(b, 0);
  std::memcpy(r.min_addr, b.data() + 4, 16);
  std::memcpy(r.max_addr, b.data() + 20, 16);
  r.min_port = field<uint16_t>(b, 36);
  r.max_port = field<uint16_t>(b, 38);
  return r;
}

constexpr uint32_t kMapIps = 1, kProtoSpecified = 2, kRandom = 4, kPersistent = 8, kRandomFully = 16;

// libxt_NAT's print of a range: [ADDR[-ADDR]][:PORT[-PORT]] then the flags.
std::optional<std::string> nat_text(const NatRange& r, bool v6, const char* option) {
  if (r.flags & ~(kMapIps | kProtoSpecified | kRandom | kPersistent | kRandomFully)) return std::nullopt;
  size_t alen = v6 ? 16 : 4;
  bool brackets = v6 && (r.flags & kProtoSpecified);
  std::string range;
  if (r.flags & kMapIps) {
    range += (brackets ? "[" : "") + addr_text(r.min_addr, v6);
    if (std::memcmp(r.min_addr, r.max_addr, alen) != 0) range += "-" + addr_text(r.max_addr, v6);
    if (brackets) range += "]";
  }
  if (r.flags & kProtoSpecified) {
    range += ":" + std::to_string(ntohs(r.min_port));
    if (r.max_port != r.min_port) range += "-" + std::to_string(ntohs(r.max_port));
  }
  std::string out;
  if (!range.empty()) out += std::string(" ") + option + " " + range;
  if (r.flags & kRandom) out += " --random";
  if (r.flags & kRandomFully) out += " --random-fully";
  if (r.flags & kPersistent) out += " --persistent";
  return out;
}

// One xtables match's options as its save function prints them.
Result<std::string> match_text(const std::string& name, uint32_t rev, const Bytes& b, bool v6) {
  auto bad = [&] { return refuse("match " + name + " revision " + std::to_string(rev)); };
  if (name == "comment" && rev == 0) {
    std::string c(reinterpret_cast<const char*>(b.data()), strnlen(reinterpret_cast<const char*>(b.data()), b.size()));
    return " --comment" + save_string(c);
  }
  if (name == "statistic" && rev == 0 && b.size() >= 8) {
    uint16_t mode = field<uint16_t>(b, 0), flags = field<uint16_t>(b, 2);
    if (mode != 0) return bad();  // nth: not decoded
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.11f", 1.0 * field<uint32_t>(b, 4) / 0x80000000);
    return std::string(" --mode random") + (flags & 1 ? " !" : "") + " --probability " + buf;
  }
  if ((name == "tcp" || name == "udp") && rev == 0 && b.size() >= (name == "tcp" ? 12u : 9u)) {
    Ports p;
    p.spts[0] = field<uint16_t>(b, 0), p.spts[1] = field<uint16_t>(b, 2);
    p.dpts[0] = field<uint16_t>(b, 4), p.dpts[1] = field<uint16_t>(b, 6);
    if (name == "tcp") {
      p.option = b[8], p.flg_mask = b[9], p.flg_cmp = b[10], p.invflags = b[11];
    } else {
      p.invflags = b[8];
    }
    return ports_text(p, name == "tcp");
  }
  if (name == "recent" && rev == 1 && b.size() >= 228) {
    uint32_t seconds = field<uint32_t>(b, 0), hits = field<uint32_t>(b, 4);
    uint8_t cs = b[8], invert = b[9], side = b[210];
    std::string nm(reinterpret_cast<const char*>(b.data() + 10),
                   strnlen(reinterpret_cast<const char*>(b.data() + 10), 200));
    std::string out = invert ? " !" : "";
    if (cs & 2) out += " --set";
    if (cs & 1) out += " --rcheck";
    if (cs & 4) out += " --update";
    if (cs & 8) out += " --remove";
    if (seconds) out += " --seconds " + std::to_string((int)seconds);
    if (cs & 32) out += " --reap";
    if (hits) out += " --hitcount " + std::to_string((int)hits);
    if (cs & 16) out += " --rttl";
    out += " --name " + nm + " --mask " + addr_text(b.data() + 212, v6);
    if (side == 0) out += " --rsource";
    if (side == 1) out += " --rdest";
    return out;
  }
  if (name == "addrtype" && rev == 1 && b.size() >= 8) {
    static const char* kTypes[] = {"UNSPEC",    "UNICAST",     "LOCAL",    "BROADCAST", "ANYCAST", "MULTICAST",
                                   "BLACKHOLE", "UNREACHABLE", "PROHIBIT", "THROW",     "NAT",     "XRESOLVE"};
    auto types = [&](uint16_t m) {
      std::string s;
      for (int i = 0; i < 12; ++i)
        if (m & (1u << i)) s += (s.empty() ? "" : ",") + std::string(kTypes[i]);
      return s;
    };
    uint16_t src = field<uint16_t>(b, 0), dst = field<uint16_t>(b, 2);
    uint32_t flags = field<uint32_t>(b, 4);
    if (src >> 12 || dst >> 12) return bad();
    std::string out;
    if (src) out += std::string(flags & 1 ? " !" : "") + " --src-type " + types(src);
    if (dst) out += std::string(flags & 2 ? " !" : "") + " --dst-type " + types(dst);
    if (flags & 4) out += " --limit-iface-in";
    if (flags & 8) out += " --limit-iface-out";
    return out;
  }
  if (name == "mark" && rev == 1 && b.size() >= 9) {
    uint32_t mark = field<uint32_t>(b, 0), mask = field<uint32_t>(b, 4);
    return std::string(b[8] ? " !" : "") + " --mark " + hex(mark) + (mask != 0xffffffffu ? "/" + hex(mask) : "");
  }
  return bad();
}

// One xtables target's options.
Result<std::string> target_text(const std::string& name, uint32_t rev, const Bytes& b, bool v6) {
  auto bad = [&] { return refuse("target " + name + " revision " + std::to_string(rev)); };
  if ((name == "DNAT" || name == "SNAT") && (rev == 1 || rev == 2 || (rev == 0 && !v6))) {
    auto r = nat_range(b, rev, v6);
    if (!r) return bad();
    auto t = nat_text(*r, v6, name == "DNAT" ? "--to-destination" : "--to-source");
    if (!t) return bad();
    return *t;
  }
  if (name == "MASQUERADE" && rev == 0) {
    auto r = nat_range(b, v6 ? 1 : 0, v6);
    if (!r || (r->flags & ~(kProtoSpecified | kRandom | kRandomFully))) return bad();
    std::string out;
    if (r->flags & kProtoSpecified) {
      out += " --to-ports " + std::to_string(ntohs(r->min_port));
      if (r->max_port != r->min_port) out += "-" + std::to_string(ntohs(r->max_port));
    }
    if (r->flags & kRandom) out += " --random";
    if (r->flags & kRandomFully) out += " --random-fully";
    return out;
  }
  if (name == "MARK" && rev == 2 && b.size() >= 8)
    return " --set-xmark " + hex(field<uint32_t>(b, 0)) + "/" + hex(field<uint32_t>(b, 4));
  return bad();
}

// What a register holds: a payload or meta load, perhaps masked.
struct Load {
  enum Kind { None, Payload, Meta } kind = None;
  uint32_t base = 0, offset = 0, len = 0, key = 0;
  Bytes mask;  // from a bitwise on it; empty when none
};

// The interface match: "eth0" (the name and its NUL) or "eth+" (a prefix).
std::optional<std::string> iface_text(const Bytes& d) {
  if (d.empty() || d.size() > 16) return std::nullopt;
  if (d.back() == 0) {
    std::string s(reinterpret_cast<const char*>(d.data()), d.size() - 1);
    if (s.find('\0') != std::string::npos) return std::nullopt;
    return s;
  }
  std::string s(reinterpret_cast<const char*>(d.data()), d.size());
  if (s.find('\0') != std::string::npos) return std::nullopt;
  return s + "+";
}

struct RuleParts {
  std::string src, dst, in, out;  // "ADDR/LEN", interface names ("" when the rule has no such test)
  bool src_inv = false, dst_inv = false, in_inv = false, out_inv = false, proto_inv = false;
  int proto = -1;
  struct Match {
    std::string name;
    std::string text;            // compat: its options
    std::optional<Ports> ports;  // tcp/udp built from native tests (printed where it first appears)
  };
  std::vector<Match> matches;
  std::string target;  // " -j X ..." or " -g X"
};

// The address a compare gives (its first bytes; the rest zero) with its prefix length.
std::string addr_with_len(const Bytes& d, size_t full, bool v6, int plen) {
  uint8_t a[16] = {};
  std::memcpy(a, d.data(), std::min(d.size(), full));
  return addr_text(a, v6) + "/" + std::to_string(plen);
}

}  // namespace

Result<std::string> xtables_rule_text(const nftnl_rule* r, bool v6, bool* has_xt) {
  const char* chain = nftnl_rule_get_str(r, NFTNL_RULE_CHAIN);
  std::string where = std::string("rule handle ") + std::to_string(nftnl_rule_get_u64(r, NFTNL_RULE_HANDLE)) +
                      " of chain " + (chain ? chain : "?");
  RuleParts parts;
  std::map<uint32_t, Load> regs;
  std::optional<Error> err;
  bool xt = false;
  size_t addr_off_src = v6 ? 8 : 12, addr_off_dst = v6 ? 24 : 16, alen = v6 ? 16 : 4;

  auto tcp_or_udp = [&](const std::string& name) -> RuleParts::Match& {
    for (auto& m : parts.matches)
      if (m.name == name && m.ports) return m;
    parts.matches.push_back({name, "", Ports{}});
    return parts.matches.back();
  };

  std::unique_ptr<nftnl_expr_iter, void (*)(nftnl_expr_iter*)> it(nftnl_expr_iter_create(r), nftnl_expr_iter_destroy);
  for (nftnl_expr* e = it ? nftnl_expr_iter_next(it.get()) : nullptr; e && !err; e = nftnl_expr_iter_next(it.get())) {
    std::string kind = expr_string(e, NFTNL_EXPR_NAME);
    auto fail = [&](const std::string& why) { err = refuse(where + ": " + why); };
    if (!parts.target.empty()) {  // nothing follows the verdict in what iptables-nft writes
      fail("expression " + kind + " after the verdict");
      break;
    }
    if (kind == "counter") continue;
    if (kind == "payload") {
      Load l;
      l.kind = Load::Payload;
      l.base = nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_BASE);
      l.offset = nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET);
      l.len = nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_LEN);
      if (nftnl_expr_is_set(e, NFTNL_EXPR_PAYLOAD_SREG)) {
        fail("payload write");
        break;
      }
      regs[nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_DREG)] = l;
    } else if (kind == "meta") {
      if (!nftnl_expr_is_set(e, NFTNL_EXPR_META_DREG)) {
        fail("meta write");
        break;
      }
      Load l;
      l.kind = Load::Meta;
      l.key = nftnl_expr_get_u32(e, NFTNL_EXPR_META_KEY);
      regs[nftnl_expr_get_u32(e, NFTNL_EXPR_META_DREG)] = l;
    } else if (kind == "bitwise") {
      uint32_t sreg = nftnl_expr_get_u32(e, NFTNL_EXPR_BITWISE_SREG),
               dreg = nftnl_expr_get_u32(e, NFTNL_EXPR_BITWISE_DREG);
      Bytes xr = expr_bytes(e, NFTNL_EXPR_BITWISE_XOR);
      bool shift = nftnl_expr_is_set(e, NFTNL_EXPR_BITWISE_OP) && nftnl_expr_get_u32(e, NFTNL_EXPR_BITWISE_OP) != 0;
      auto s = regs.find(sreg);
      if (shift || s == regs.end() || !s->second.mask.empty() ||
          std::any_of(xr.begin(), xr.end(), [](uint8_t x) { return x != 0; })) {
        fail("bitwise expression");
        break;
      }
      Load l = s->second;
      l.mask = expr_bytes(e, NFTNL_EXPR_BITWISE_MASK);
      regs[dreg] = l;
    } else if (kind == "cmp" || kind == "range") {
      bool is_range = kind == "range";
      uint32_t sreg = nftnl_expr_get_u32(e, is_range ? (uint16_t)NFTNL_EXPR_RANGE_SREG : (uint16_t)NFTNL_EXPR_CMP_SREG);
      uint32_t op = nftnl_expr_get_u32(e, is_range ? (uint16_t)NFTNL_EXPR_RANGE_OP : (uint16_t)NFTNL_EXPR_CMP_OP);
      Bytes d = expr_bytes(e, is_range ? (uint16_t)NFTNL_EXPR_RANGE_FROM_DATA : (uint16_t)NFTNL_EXPR_CMP_DATA);
      Bytes to = is_range ? expr_bytes(e, NFTNL_EXPR_RANGE_TO_DATA) : d;
      auto s = regs.find(sreg);
      if (s == regs.end() || (op != NFT_CMP_EQ && op != NFT_CMP_NEQ)) {
        fail(kind + " expression");
        break;
      }
      const Load l = s->second;
      regs.erase(s);
      bool inv = op == NFT_CMP_NEQ;
      if (l.kind == Load::Payload && l.base == NFT_PAYLOAD_NETWORK_HEADER && !is_range &&
          (l.offset == addr_off_src || l.offset == addr_off_dst) && l.len >= 1 && l.len <= alen && d.size() == l.len) {
        int plen = 8 * (int)l.len;
        if (!l.mask.empty()) {
          auto p = prefix_length(l.mask);
          if (!p || l.mask.size() != l.len) {
            fail("address mask");
            break;
          }
          plen = *p;
        }
        bool is_src = l.offset == addr_off_src;
        std::string& slot = is_src ? parts.src : parts.dst;
        if (!slot.empty()) {
          fail("second address test");
          break;
        }
        slot = addr_with_len(d, alen, v6, plen);
        (is_src ? parts.src_inv : parts.dst_inv) = inv;
      } else if (l.kind == Load::Meta && l.mask.empty() && !is_range && l.key == NFT_META_L4PROTO && d.size() == 1 &&
                 parts.proto < 0) {
        parts.proto = d[0];
        parts.proto_inv = inv;
      } else if (l.kind == Load::Meta && l.mask.empty() && !is_range &&
                 (l.key == NFT_META_IIFNAME || l.key == NFT_META_OIFNAME)) {
        auto name = iface_text(d);
        std::string& slot = l.key == NFT_META_IIFNAME ? parts.in : parts.out;
        if (!name || !slot.empty()) {
          fail("interface test");
          break;
        }
        slot = *name;
        (l.key == NFT_META_IIFNAME ? parts.in_inv : parts.out_inv) = inv;
      } else if (l.kind == Load::Meta && l.key == NFT_META_MARK && !is_range && d.size() == 4 &&
                 (l.mask.empty() || l.mask.size() == 4)) {
        uint32_t mark, mask = 0xffffffffu;
        std::memcpy(&mark, d.data(), 4);
        if (!l.mask.empty()) std::memcpy(&mask, l.mask.data(), 4);
        parts.matches.push_back(
            {"mark",
             std::string(inv ? " !" : "") + " --mark " + hex(mark) + (mask != 0xffffffffu ? "/" + hex(mask) : ""),
             std::nullopt});
      } else if (l.kind == Load::Payload && l.base == NFT_PAYLOAD_TRANSPORT_HEADER && l.mask.empty() && l.len == 2 &&
                 (l.offset == 0 || l.offset == 2) && d.size() == 2 && to.size() == 2 && !parts.proto_inv &&
                 (parts.proto == IPPROTO_TCP || parts.proto == IPPROTO_UDP)) {
        auto& m = tcp_or_udp(parts.proto == IPPROTO_TCP ? "tcp" : "udp");
        uint16_t* pts = l.offset == 0 ? m.ports->spts : m.ports->dpts;
        uint8_t bit = l.offset == 0 ? 1 : 2;
        if (pts[0] != 0 || pts[1] != 0xffff || (m.ports->invflags & bit)) {
          fail("second port test");
          break;
        }
        uint16_t lo, hi;
        std::memcpy(&lo, d.data(), 2);
        std::memcpy(&hi, to.data(), 2);
        pts[0] = ntohs(lo), pts[1] = ntohs(hi);
        if (inv) m.ports->invflags |= bit;
      } else if (l.kind == Load::Payload && l.base == NFT_PAYLOAD_TRANSPORT_HEADER && l.offset == 13 && l.len == 1 &&
                 !is_range && d.size() == 1 && l.mask.size() <= 1 && !parts.proto_inv && parts.proto == IPPROTO_TCP) {
        auto& m = tcp_or_udp("tcp");
        uint8_t mask = l.mask.empty() ? 0xff : l.mask[0];
        if (m.ports->flg_mask || (m.ports->invflags & 4) || (mask & ~0x3f) || (d[0] & ~mask)) {
          fail("TCP flags test");
          break;
        }
        m.ports->flg_mask = mask, m.ports->flg_cmp = d[0];
        if (inv) m.ports->invflags |= 4;
      } else {
        fail(kind + " on a field iptables-nft does not write");
        break;
      }
    } else if (kind == "match" || kind == "target") {
      xt = true;
      bool is_match = kind == "match";
      std::string name = expr_string(e, is_match ? (uint16_t)NFTNL_EXPR_MT_NAME : (uint16_t)NFTNL_EXPR_TG_NAME);
      uint32_t rev = nftnl_expr_get_u32(e, is_match ? (uint16_t)NFTNL_EXPR_MT_REV : (uint16_t)NFTNL_EXPR_TG_REV);
      Bytes info = expr_bytes(e, is_match ? (uint16_t)NFTNL_EXPR_MT_INFO : (uint16_t)NFTNL_EXPR_TG_INFO);
      auto t = is_match ? match_text(name, rev, info, v6) : target_text(name, rev, info, v6);
      if (!t) {
        fail(t.error().context);
        break;
      }
      if (is_match)
        parts.matches.push_back({name, *t, std::nullopt});
      else
        parts.target = " -j " + name + *t;
    } else if (kind == "immediate") {
      if (nftnl_expr_get_u32(e, NFTNL_EXPR_IMM_DREG) != NFT_REG_VERDICT) {
        fail("immediate data");
        break;
      }
      int v = (int)nftnl_expr_get_u32(e, NFTNL_EXPR_IMM_VERDICT);
      std::string to = expr_string(e, NFTNL_EXPR_IMM_CHAIN);
      switch (v) {
        case NF_ACCEPT: parts.target = " -j ACCEPT"; break;
        case NF_DROP: parts.target = " -j DROP"; break;
        case NFT_RETURN: parts.target = " -j RETURN"; break;
        case NFT_JUMP: parts.target = " -j " + to; break;
        case NFT_GOTO: parts.target = " -g " + to; break;
        default: fail("verdict " + std::to_string(v));
      }
    } else {
      fail("expression " + kind);
    }
  }
  if (err) return *err;
  if (!regs.empty()) return refuse(where + ": a load no test uses");

  std::string out = std::string("-A ") + (chain ? chain : "");
  auto neg = [](bool inv) { return inv ? " !" : ""; };
  if (!parts.src.empty()) out += std::string(neg(parts.src_inv)) + " -s " + parts.src;
  if (!parts.dst.empty()) out += std::string(neg(parts.dst_inv)) + " -d " + parts.dst;
  if (!parts.in.empty()) out += std::string(neg(parts.in_inv)) + " -i " + parts.in;
  if (!parts.out.empty()) out += std::string(neg(parts.out_inv)) + " -o " + parts.out;
  if (parts.proto >= 0) {
    const char* pn = proto_name((uint8_t)parts.proto, v6);
    if (!pn) return refuse(where + ": protocol " + std::to_string(parts.proto));
    out += std::string(neg(parts.proto_inv)) + " -p " + pn;
  }
  for (const auto& m : parts.matches)
    out += " -m " + m.name + (m.ports ? ports_text(*m.ports, m.name == "tcp") : m.text);
  out += parts.target;
  if (has_xt) *has_xt = xt;
  return out;
}

namespace {

// The chains iptables-nft creates as base chains, per table, in the order
// iptables-nft-save prints them.
const std::vector<std::string>* builtin_chains(const std::string& table) {
  static const std::map<std::string, std::vector<std::string>> kBuiltin = {
      {"filter", {"INPUT", "FORWARD", "OUTPUT"}},
      {"nat", {"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"}},
      {"mangle", {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"}},
      {"raw", {"PREROUTING", "OUTPUT"}},
      {"security", {"INPUT", "FORWARD", "OUTPUT"}},
  };
  auto it = kBuiltin.find(table);
  return it == kBuiltin.end() ? nullptr : &it->second;
}

using RulePtr = std::unique_ptr<nftnl_rule, void (*)(const nftnl_rule*)>;
using ChainPtr = std::unique_ptr<nftnl_chain, void (*)(const nftnl_chain*)>;

// The "-A" lines of one chain, from one dump of its rules (the kernel finds
// the chain by its hash; a dump of the whole table is resumed by walking it
// again from the start for every 32 KiB sent, which is quadratic: 70 s of
// kernel time for the nat table of 10,000 Services). `*has_xt` is set when a
// rule holds an xtables expression. `what` prefixes errors.
Result<std::vector<std::string>> chain_lines(nfnl::NftSocket& sock, bool v6, const std::string& table,
                                             const std::string& chain, const std::string& what, bool* has_xt) {
  auto rules = sock.dump(NFT_MSG_GETRULE, v6 ? NFPROTO_IPV6 : NFPROTO_IPV4, table, {}, chain);
  if (!rules) return Error{rules.error().code, what + ": " + rules.error().message()};
  std::vector<std::string> out;
  for (const auto& m : *rules) {
    RulePtr r(nftnl_rule_alloc(), nftnl_rule_free);
    if (!r || nftnl_rule_nlmsg_parse(header(m), r.get()) < 0) return refuse(what + ": a rule message");
    const char* t = nftnl_rule_get_str(r.get(), NFTNL_RULE_TABLE);
    const char* c = nftnl_rule_get_str(r.get(), NFTNL_RULE_CHAIN);
    if (!t || !c || table != t || chain != c) continue;
    bool xt = false;
    auto text = xtables_rule_text(r.get(), v6, &xt);
    if (!text) return Error{text.error().code, what + ": " + text.error().context};
    if (has_xt) *has_xt |= xt;
    out.push_back(std::move(*text));
  }
  return out;
}

}  // namespace

Result<XtablesTable> read_xtables_table_netlink(bool v6, const std::string& table) {
  std::string what = std::string("read table ") + (v6 ? "ip6 " : "ip ") + table + " over netlink";
  const auto* builtin = builtin_chains(table);
  if (!builtin) return refuse(what + ": not a table iptables-nft writes");
  auto sock = nfnl::NftSocket::open();
  if (!sock) return Error{sock.error().code, what + ": " + sock.error().context};
  uint8_t family = v6 ? NFPROTO_IPV6 : NFPROTO_IPV4;
  for (int attempt = 0; attempt < 10; ++attempt) {
    auto gen = (*sock)->generation();
    if (!gen) return gen.error();
    auto chains = (*sock)->dump(NFT_MSG_GETCHAIN, family, table);
    if (!chains) return chains.error();
    std::map<std::string, std::string> base;  // name -> policy
    std::vector<std::string> user;
    for (const auto& m : *chains) {
      ChainPtr c(nftnl_chain_alloc(), nftnl_chain_free);
      if (!c || nftnl_chain_nlmsg_parse(header(m), c.get()) < 0) return refuse(what + ": a chain message");
      const char* t = nftnl_chain_get_str(c.get(), NFTNL_CHAIN_TABLE);
      if (!t || table != t) continue;
      std::string name = nftnl_chain_get_str(c.get(), NFTNL_CHAIN_NAME);
      if (nftnl_chain_is_set(c.get(), NFTNL_CHAIN_HOOKNUM)) {
        if (std::find(builtin->begin(), builtin->end(), name) == builtin->end())
          return refuse(what + ": base chain " + name + " is not one iptables-nft creates");
        uint32_t policy = nftnl_chain_is_set(c.get(), NFTNL_CHAIN_POLICY)
                              ? nftnl_chain_get_u32(c.get(), NFTNL_CHAIN_POLICY)
                              : NF_ACCEPT;
        base[name] = policy == NF_DROP ? "DROP" : "ACCEPT";
      } else {
        user.push_back(name);
      }
    }
    if (base.empty() && user.empty()) return Error{ENOENT, what};
    std::sort(user.begin(), user.end());
    std::vector<std::string> order;
    for (const auto& b : *builtin)
      if (base.count(b)) order.push_back(b);
    order.insert(order.end(), user.begin(), user.end());
    XtablesTable out;
    std::vector<std::vector<std::string>> lines;  // per chain of `order`
    for (const auto& c : order) {
      auto l = chain_lines(**sock, v6, table, c, what, &out.has_xt);
      if (!l) return l.error();
      lines.push_back(std::move(*l));
    }
    auto gen2 = (*sock)->generation();
    if (!gen2) return gen2.error();
    if (*gen2 != *gen) continue;  // changed while read: the dumps may not agree

    std::string& s = out.text;
    s += "*" + table + "\n";
    for (const auto& c : order) s += ":" + c + " " + (base.count(c) ? base[c] : "-") + " [0:0]\n";
    for (const auto& chain : lines)
      for (const auto& l : chain) s += l + "\n";
    s += "COMMIT\n";
    return out;
  }
  return Error{EAGAIN, what + ": the ruleset kept changing while it was read"};
}

Result<std::vector<std::string>> read_xtables_chain_netlink(bool v6, const std::string& table,
                                                            const std::string& chain) {
  std::string what =
      std::string("read chain ") + chain + " of table " + (v6 ? "ip6 " : "ip ") + table + " over netlink";
  auto sock = nfnl::NftSocket::open();
  if (!sock) return Error{sock.error().code, what + ": " + sock.error().context};
  auto lines = chain_lines(**sock, v6, table, chain, what, nullptr);
  if (!lines || !lines->empty()) return lines;
  auto exists = (*sock)->chain_exists(v6 ? NFPROTO_IPV6 : NFPROTO_IPV4, table, chain);
  if (!exists) return Error{exists.error().code, what + ": " + exists.error().context};
  if (!*exists) return Error{ENOENT, what};
  return lines;
}

}  // namespace nf2bpf::frontend
