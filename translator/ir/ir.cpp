#include "translator/ir/ir.h"

namespace nf2bpf::ir {

// `pointer` is a JSON pointer ("/nftables/5/rule/expr/0"), or, once the
// translator has named it (translate.cpp, nft JSON and kernel input), what it
// points at as nft says it: "table inet filter, chain input, handle 7".
static std::string pointed(const std::string& file, const std::string& pointer) {
  return pointer[0] == '/' ? file + "#" + pointer : file + ": " + pointer;
}

std::string SourceLoc::str() const {
  if (!pointer.empty()) return pointed(file, pointer);
  std::string s = file;
  if (line) s += ":" + std::to_string(line);
  if (line && col) s += ":" + std::to_string(col);
  return s;
}

std::string SourceLoc::file_line() const {
  if (!pointer.empty()) return pointed(file, pointer);
  return line ? file + ":" + std::to_string(line) : file;
}

const char* to_string(Family f) {
  switch (f) {
    case Family::Ip: return "ip";
    case Family::Ip6: return "ip6";
    case Family::Inet: return "inet";
    case Family::Arp: return "arp";
    case Family::Bridge: return "bridge";
    case Family::Netdev: return "netdev";
  }
  return "?";
}

const char* to_string(Hook h) {
  switch (h) {
    case Hook::Prerouting: return "prerouting";
    case Hook::Input: return "input";
    case Hook::Forward: return "forward";
    case Hook::Output: return "output";
    case Hook::Postrouting: return "postrouting";
    case Hook::Ingress: return "ingress";
    case Hook::Egress: return "egress";
  }
  return "?";
}

std::optional<Hook> hook_from_string(std::string_view s) {
  for (Hook h :
       {Hook::Prerouting, Hook::Input, Hook::Forward, Hook::Output, Hook::Postrouting, Hook::Ingress, Hook::Egress})
    if (s == to_string(h)) return h;
  return std::nullopt;
}

const char* to_string(ChainType t) {
  switch (t) {
    case ChainType::Filter: return "filter";
    case ChainType::Nat: return "nat";
    case ChainType::Route: return "route";
  }
  return "?";
}

const char* to_string(Field f) {
  switch (f) {
    case Field::NfProto: return "nfproto";
    case Field::SrcAddr: return "saddr";
    case Field::DstAddr: return "daddr";
    case Field::L4Proto: return "l4proto";
    case Field::SrcPort: return "sport";
    case Field::DstPort: return "dport";
    case Field::IcmpType: return "icmp-type";
    case Field::Icmp6Type: return "icmpv6-type";
    case Field::TcpFlags: return "tcp-flags";
    case Field::Fragment: return "fragment";
    case Field::IifName: return "iifname";
    case Field::OifName: return "oifname";
    case Field::Mark: return "mark";
    case Field::CtState: return "ct-state";
    case Field::CtStatus: return "ct-status";
    case Field::CtMark: return "ct-mark";
    case Field::CtDirection: return "ct-direction";
    case Field::CtL4Proto: return "ct-l4proto";
    case Field::CtOrigSrc: return "ct-original-saddr";
    case Field::CtOrigDst: return "ct-original-daddr";
    case Field::CtReplSrc: return "ct-reply-saddr";
    case Field::CtReplDst: return "ct-reply-daddr";
    case Field::CtOrigSrcPort: return "ct-original-sport";
    case Field::CtOrigDstPort: return "ct-original-dport";
    case Field::CtReplSrcPort: return "ct-reply-sport";
    case Field::CtReplDstPort: return "ct-reply-dport";
    case Field::SrcAddrType: return "saddr-type";
    case Field::DstAddrType: return "daddr-type";
    case Field::PktType: return "pkttype";
    case Field::Length: return "length";
    case Field::Ttl: return "ttl";
    case Field::Dscp: return "dscp";
    case Field::Tos: return "tos";
    case Field::SrcMac: return "ether-saddr";
    case Field::SkUid: return "skuid";
    case Field::SkGid: return "skgid";
    case Field::Opaque: return "opaque";
  }
  return "?";
}

const char* to_string(VerdictKind k) {
  switch (k) {
    case VerdictKind::Continue: return "continue";
    case VerdictKind::Accept: return "accept";
    case VerdictKind::Drop: return "drop";
    case VerdictKind::Reject: return "reject";
    case VerdictKind::Return: return "return";
    case VerdictKind::Jump: return "jump";
    case VerdictKind::Goto: return "goto";
    case VerdictKind::Queue: return "queue";
  }
  return "?";
}

std::string to_string(const Verdict& v) {
  std::string s = to_string(v.kind);
  if (v.kind == VerdictKind::Jump || v.kind == VerdictKind::Goto) s += " " + v.chain;
  if (v.kind == VerdictKind::Reject && !v.reject_with.empty()) s += " with " + v.reject_with;
  return s;
}

const char* to_string(StmtKind k) {
  switch (k) {
    case StmtKind::Counter: return "counter";
    case StmtKind::Log: return "log";
    case StmtKind::Nflog: return "nflog";
    case StmtKind::SetMark: return "mark-set";
    case StmtKind::SetCtMark: return "ct-mark-set";
    case StmtKind::SaveMark: return "ct-mark-save";
    case StmtKind::RestoreMark: return "ct-mark-restore";
    case StmtKind::Dnat: return "dnat";
    case StmtKind::Snat: return "snat";
    case StmtKind::Masquerade: return "masquerade";
    case StmtKind::Redirect: return "redirect";
    case StmtKind::Netmap: return "netmap";
    case StmtKind::Notrack: return "notrack";
    case StmtKind::CtHelper: return "ct-helper";
    case StmtKind::CtZone: return "ct-zone";
    case StmtKind::TcpMss: return "tcp-mss";
    case StmtKind::SetTos: return "set-tos";
    case StmtKind::SetAdd: return "set-add";
    case StmtKind::Limit: return "limit";
    case StmtKind::Other: return "other";
  }
  return "?";
}

const char* to_string(Frontend f) {
  switch (f) {
    case Frontend::Iptables: return "iptables";
    case Frontend::Ip6tables: return "ip6tables";
    case Frontend::Nft: return "nft";
    case Frontend::NftJson: return "nft-json";
    case Frontend::Kernel: return "kernel";
    case Frontend::PolicyYaml: return "policy";
  }
  return "?";
}

bool IfacePattern::matches(std::string_view ifname) const {
  if (prefix) return ifname.substr(0, name.size()) == name;
  return ifname == name;
}

Chain* Table::find_chain(std::string_view n) {
  for (auto& c : chains)
    if (c.name == n) return &c;
  return nullptr;
}

const Chain* Table::find_chain(std::string_view n) const {
  for (const auto& c : chains)
    if (c.name == n) return &c;
  return nullptr;
}

ChainIndex::ChainIndex(const Table* t) {
  if (!t) return;
  by_name_.reserve(t->chains.size());
  for (const auto& c : t->chains) by_name_.emplace(c.name, &c);
}

const Chain* ChainIndex::find(std::string_view n) const {
  auto it = by_name_.find(n);
  return it == by_name_.end() ? nullptr : it->second;
}

const Set* Table::find_set(std::string_view n) const {
  for (const auto& s : sets)
    if (s.name == n) return &s;
  return nullptr;
}

const Set* Ruleset::find_set(const Table& t, std::string_view name) const {
  if (auto* s = t.find_set(name)) return s;
  for (const auto& s : global_sets)
    if (s.name == name) return &s;
  return nullptr;
}

size_t Ruleset::rule_count() const {
  size_t n = 0;
  for (const auto& t : tables)
    for (const auto& c : t.chains) n += c.rules.size();
  return n;
}

int iptables_table_priority(std::string_view table) {
  if (table == "raw") return -300;
  if (table == "mangle") return -150;
  if (table == "nat") return -100;  // dstnat; srcnat (postrouting/input) is 100
  if (table == "filter") return 0;
  if (table == "security") return 50;
  return 0;
}

ChainType iptables_chain_type(std::string_view table, Hook hook) {
  if (table == "nat") return ChainType::Nat;
  if (table == "mangle" && hook == Hook::Output) return ChainType::Route;
  return ChainType::Filter;
}

}  // namespace nf2bpf::ir
