// Packet selectors: which IR field an nft payload/meta/ct/fib expression
// reads, its datatype, the protocol it implies and its capability row.
#include <cstring>

#include "translator/frontend/nft/lower.h"

namespace nf2bpf::frontend::nft {

using ir::Field;

namespace {

struct PayloadField {
  const char* proto;
  const char* field;
  Field ir;
  Type type;
  unsigned bits;
  int nfproto, l4proto;
  Xform xform;
  bool masked;
  const char* cap;  // nullptr: "<proto> <field>"
};

// Payload fields nf2bpf translates; every other field is recognised by
// protocol and reported as an unsupported capability.
const PayloadField kPayload[] = {
    {"ip", "saddr", Field::SrcAddr, Type::Ipv4Addr, 32, 2, -1, Xform::None, false, nullptr},
    {"ip", "daddr", Field::DstAddr, Type::Ipv4Addr, 32, 2, -1, Xform::None, false, nullptr},
    {"ip", "protocol", Field::L4Proto, Type::InetProto, 8, 2, -1, Xform::None, false, nullptr},
    {"ip", "ttl", Field::Ttl, Type::Integer, 8, 2, -1, Xform::None, false, nullptr},
    {"ip", "length", Field::Length, Type::Integer, 16, 2, -1, Xform::None, false, nullptr},
    {"ip", "dscp", Field::Dscp, Type::Dscp, 6, 2, -1, Xform::None, false, nullptr},
    {"ip6", "saddr", Field::SrcAddr, Type::Ipv6Addr, 128, 10, -1, Xform::None, false, nullptr},
    {"ip6", "daddr", Field::DstAddr, Type::Ipv6Addr, 128, 10, -1, Xform::None, false, nullptr},
    {"ip6", "nexthdr", Field::L4Proto, Type::InetProto, 8, 10, -1, Xform::None, false, nullptr},
    {"ip6", "hoplimit", Field::Ttl, Type::Integer, 8, 10, -1, Xform::None, false, nullptr},
    {"ip6", "dscp", Field::Dscp, Type::Dscp, 6, 10, -1, Xform::None, false, nullptr},
    {"tcp", "sport", Field::SrcPort, Type::InetService, 16, 0, 6, Xform::None, false, nullptr},
    {"tcp", "dport", Field::DstPort, Type::InetService, 16, 0, 6, Xform::None, false, nullptr},
    {"tcp", "flags", Field::TcpFlags, Type::TcpFlag, 8, 0, 6, Xform::None, true, nullptr},
    {"udp", "sport", Field::SrcPort, Type::InetService, 16, 0, 17, Xform::None, false, nullptr},
    {"udp", "dport", Field::DstPort, Type::InetService, 16, 0, 17, Xform::None, false, nullptr},
    {"udplite", "sport", Field::SrcPort, Type::InetService, 16, 0, 136, Xform::None, false, nullptr},
    {"udplite", "dport", Field::DstPort, Type::InetService, 16, 0, 136, Xform::None, false, nullptr},
    {"sctp", "sport", Field::SrcPort, Type::InetService, 16, 0, 132, Xform::None, false, nullptr},
    {"sctp", "dport", Field::DstPort, Type::InetService, 16, 0, 132, Xform::None, false, nullptr},
    {"th", "sport", Field::SrcPort, Type::InetService, 16, 0, -1, Xform::None, false, nullptr},
    {"th", "dport", Field::DstPort, Type::InetService, 16, 0, -1, Xform::None, false, nullptr},
    {"icmp", "type", Field::IcmpType, Type::IcmpType, 8, 2, 1, Xform::IcmpType, false, nullptr},
    {"icmp", "code", Field::IcmpType, Type::IcmpCode, 8, 2, 1, Xform::IcmpCode, false, nullptr},
    {"icmpv6", "type", Field::Icmp6Type, Type::Icmpv6Type, 8, 10, 58, Xform::IcmpType, false, nullptr},
    {"icmpv6", "code", Field::Icmp6Type, Type::Icmpv6Code, 8, 10, 58, Xform::IcmpCode, false, nullptr},
    {"ether", "saddr", Field::SrcMac, Type::EtherAddr, 48, 0, -1, Xform::None, false, nullptr},
};

// Protocols whose other fields exist in nft but are not translated.
const char* const kKnownProtocols[] = {"ip",   "ip6",    "tcp",    "udp",   "udplite", "sctp", "dccp", "th",
                                       "icmp", "icmpv6", "igmp",   "ether", "vlan",    "arp",  "ah",   "esp",
                                       "comp", "gre",    "geneve", "vxlan", "dst",     "frag", "hbh",  "mh",
                                       "rt",   "rt0",    "rt2",    "srh",   "ip6ext"};

struct MetaKey {
  const char* key;
  Field ir;
  Type type;
  unsigned bits;
  Xform xform;
  bool masked;
};

const MetaKey kMeta[] = {
    {"l4proto", Field::L4Proto, Type::InetProto, 8, Xform::None, false},
    {"nfproto", Field::NfProto, Type::NfProto, 8, Xform::None, false},
    {"protocol", Field::NfProto, Type::EtherType, 16, Xform::EtherToNfProto, false},
    {"iif", Field::IifName, Type::IfIndex, 32, Xform::None, false},
    {"oif", Field::OifName, Type::IfIndex, 32, Xform::None, false},
    {"iifname", Field::IifName, Type::IfName, 128, Xform::None, false},
    {"oifname", Field::OifName, Type::IfName, 128, Xform::None, false},
    {"mark", Field::Mark, Type::Mark, 32, Xform::None, true},
    {"pkttype", Field::PktType, Type::PktType, 8, Xform::None, false},
    {"length", Field::Length, Type::Integer, 16, Xform::None, false},
    {"skuid", Field::SkUid, Type::Integer, 32, Xform::None, false},
    {"skgid", Field::SkGid, Type::Integer, 32, Xform::None, false},
};

struct CtKey {
  const char* key;
  const char* dir;  // required direction, "" = none, "*" = original or reply
  Field ir_orig, ir_reply;
  Type type;
  unsigned bits;
  bool masked;
};

const CtKey kCt[] = {
    {"state", "", Field::CtState, Field::CtState, Type::CtState, 32, false},
    {"status", "", Field::CtStatus, Field::CtStatus, Type::CtStatus, 32, true},
    {"mark", "", Field::CtMark, Field::CtMark, Type::Mark, 32, true},
    {"direction", "", Field::CtDirection, Field::CtDirection, Type::CtDir, 8, false},
    {"protocol", "*", Field::CtL4Proto, Field::CtL4Proto, Type::InetProto, 8, false},
    {"saddr", "*", Field::CtOrigSrc, Field::CtReplSrc, Type::Unknown, 0, false},
    {"daddr", "*", Field::CtOrigDst, Field::CtReplDst, Type::Unknown, 0, false},
    {"proto-src", "*", Field::CtOrigSrcPort, Field::CtReplSrcPort, Type::InetService, 16, false},
    {"proto-dst", "*", Field::CtOrigDstPort, Field::CtReplDstPort, Type::InetService, 16, false},
};

}  // namespace

Selector selector_for_type(Type t, unsigned bits) {
  Selector s;
  s.type = t;
  s.bits = type_bits(t, bits);
  s.supported = true;
  s.text = type_name(t);
  switch (t) {
    case Type::Ipv4Addr:
    case Type::Ipv6Addr: s.field = Field::SrcAddr; break;
    case Type::EtherAddr: s.field = Field::SrcMac; break;
    case Type::InetProto: s.field = Field::L4Proto; break;
    case Type::InetService: s.field = Field::SrcPort; break;
    case Type::Mark: s.field = Field::Mark; break;
    case Type::IfName:
    case Type::IfIndex: s.field = Field::IifName; break;
    case Type::CtState: s.field = Field::CtState; break;
    case Type::CtStatus: s.field = Field::CtStatus; break;
    case Type::CtDir: s.field = Field::CtDirection; break;
    case Type::TcpFlag: s.field = Field::TcpFlags; break;
    case Type::IcmpType: s.field = Field::IcmpType, s.xform = Xform::IcmpType; break;
    case Type::IcmpCode: s.field = Field::IcmpType, s.xform = Xform::IcmpCode; break;
    case Type::Icmpv6Type: s.field = Field::Icmp6Type, s.xform = Xform::IcmpType; break;
    case Type::Icmpv6Code: s.field = Field::Icmp6Type, s.xform = Xform::IcmpCode; break;
    case Type::PktType: s.field = Field::PktType; break;
    case Type::NfProto: s.field = Field::NfProto; break;
    case Type::EtherType: s.field = Field::NfProto, s.xform = Xform::EtherToNfProto; break;
    case Type::FibAddrType: s.field = Field::DstAddrType; break;
    case Type::Dscp: s.field = Field::Dscp; break;
    case Type::Integer: s.field = Field::Opaque; break;
    default: s.supported = false; break;
  }
  return s;
}

Selector Builder::describe(const Expr& e, ir::Family fam) {
  Selector s;
  s.loc = e.loc;
  auto unsupported = [&](std::string cap, std::string text = {}) {
    s.supported = false;
    s.field = Field::Opaque;
    s.text = text.empty() ? cap : text;
    s.cap = std::move(cap);
    return s;
  };
  switch (e.kind) {
    case Expr::Kind::Payload: {
      s.text = e.a + " " + e.b;
      for (const auto& p : kPayload) {
        if (e.a != p.proto || e.b != p.field) continue;
        s.field = p.ir;
        s.type = p.type;
        s.bits = p.bits;
        s.nfproto = p.nfproto;
        s.l4proto = p.l4proto;
        s.xform = p.xform;
        s.masked = p.masked;
        s.supported = true;
        s.cap = p.cap ? p.cap : s.text;
        s.any_transport = e.a == "th";
        return s;
      }
      // ip frag-off is only translated as `ip frag-off & 0x1fff != 0` (see matches.cpp).
      if (e.a == "ip" && e.b == "frag-off") {
        s.type = Type::Integer;
        s.bits = 16;
        s.nfproto = 2;
        s.field = Field::Fragment;
        s.cap = "ip frag-off";
        s.supported = false;
        return s;
      }
      if (e.a.starts_with("@")) return unsupported("raw payload", e.a + "," + e.b);
      return unsupported(s.text);
    }
    case Expr::Kind::Meta: {
      s.text = "meta " + e.a;
      for (const auto& m : kMeta) {
        if (e.a != m.key) continue;
        s.field = m.ir;
        s.type = m.type;
        s.bits = m.bits;
        s.xform = m.xform;
        s.masked = m.masked;
        s.supported = true;
        s.cap = s.text;
        return s;
      }
      return unsupported(s.text);
    }
    case Expr::Kind::Ct: {
      std::string dir = e.b.empty() ? "" : e.b + " ";
      std::string fam_s = e.c.empty() ? "" : e.c + " ";
      s.text = "ct " + dir + fam_s + e.a;
      for (const auto& k : kCt) {
        if (e.a != k.key) continue;
        bool has_dir = !e.b.empty();
        if (std::strcmp(k.dir, "") == 0 && has_dir) return unsupported("ct " + dir + e.a);
        s.field = e.b == "reply" ? k.ir_reply : k.ir_orig;
        s.type = k.type;
        s.bits = k.bits;
        s.masked = k.masked;
        s.supported = true;
        s.cap = "ct " + dir + e.a;
        if (e.a == "saddr" || e.a == "daddr") {
          // The address family comes from the table, or from "ct original ip saddr" in inet.
          std::string f = e.c;
          if (f.empty() && fam == ir::Family::Ip) f = "ip";
          if (f.empty() && fam == ir::Family::Ip6) f = "ip6";
          if (f == "ip")
            s.type = Type::Ipv4Addr, s.bits = 32, s.nfproto = 2;
          else if (f == "ip6")
            s.type = Type::Ipv6Addr, s.bits = 128, s.nfproto = 10;
          else
            return unsupported("ct " + dir + e.a + " without ip/ip6", s.text);
        }
        if (!has_dir && std::strcmp(k.dir, "*") == 0 && e.a != "protocol") return unsupported("ct " + e.a);
        return s;
      }
      return unsupported("ct " + dir + e.a, s.text);
    }
    case Expr::Kind::Fib: {
      std::string flags;
      for (const auto& f : e.flags) flags += (flags.empty() ? "" : " . ") + f;
      s.text = "fib " + flags + " " + e.a;
      if (e.a == "type" && e.flags.size() == 1 && (e.flags[0] == "daddr" || e.flags[0] == "saddr")) {
        s.field = e.flags[0] == "daddr" ? Field::DstAddrType : Field::SrcAddrType;
        s.type = Type::FibAddrType;
        s.bits = 32;
        s.supported = true;
        s.cap = "fib " + e.flags[0] + " type";
        return s;
      }
      return unsupported("fib", s.text);
    }
    case Expr::Kind::Other: return unsupported(e.a, e.b.empty() ? e.a : e.a + " " + e.b);
    default: return unsupported("expression", render(e));
  }
}

bool is_known_protocol(std::string_view p) {
  for (const char* k : kKnownProtocols)
    if (p == k) return true;
  return false;
}

}  // namespace nf2bpf::frontend::nft
