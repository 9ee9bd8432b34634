// One chain of an nft table read over netlink and printed as `nft list
// chain` prints its rules (nft.h, read_nft_chain). The decoder knows the
// expressions kube-proxy's nftables mode writes into its service, endpoint
// and local chains: address and port tests (with nft's implied `meta
// l4proto` folded into `tcp dport`), named-set lookups, a `numgen` verdict
// map, `dnat to`, `update @set`, verdicts and comments. Anything else is
// refused (EOPNOTSUPP) with the expression named; the kernel-nft-read test
// compares what it prints with nft's own listing.
#include <arpa/inet.h>
#include <cstdio>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>

#include <algorithm>
#include <functional>
#include <cstring>
#include <map>
#include <memory>
#include <optional>

#include "common/nft_netlink.h"
#include "translator/frontend/nft/nft.h"

namespace nf2bpf::frontend {

namespace {

using Bytes = std::vector<uint8_t>;
using nfnl::expr_bytes;
using nfnl::expr_string;
using nfnl::header;
using nfnl::prefix_length;

Error refuse(const std::string& what) { return Error{EOPNOTSUPP, what}; }

const char* l4_name(uint8_t p) {
  switch (p) {
    case IPPROTO_TCP: return "tcp";
    case IPPROTO_UDP: return "udp";
    case IPPROTO_SCTP: return "sctp";
    default: return nullptr;
  }
}

// What a register holds.
struct Load {
  enum Kind { Payload, Meta, Numgen, Data } kind = Data;
  uint32_t base = 0, offset = 0, len = 0;   // Payload
  uint32_t key = 0;                         // Meta key
  uint32_t modulus = 0, numgen_offset = 0;  // Numgen (random)
  Bytes data, mask;                         // Data; Payload's bitwise mask
};

class RuleDecoder {
 public:
  RuleDecoder(bool v6, std::string where, std::function<Result<std::string>(const std::string&)> anon_map)
      : v6_(v6), where_(std::move(where)), anon_map_(std::move(anon_map)) {}

  Result<std::string> decode(const nftnl_rule* r) {
    std::unique_ptr<nftnl_expr_iter, void (*)(nftnl_expr_iter*)> it(nftnl_expr_iter_create(r), nftnl_expr_iter_destroy);
    for (nftnl_expr* e = it ? nftnl_expr_iter_next(it.get()) : nullptr; e; e = nftnl_expr_iter_next(it.get())) {
      if (verdict_) return fail("expression " + expr_string(e, NFTNL_EXPR_NAME) + " after the verdict");
      if (auto r2 = expr(e); !r2) return r2.error();
    }
    for (const auto& [reg, l] : regs_)
      if (l.kind != Load::Data) return fail("a value loaded and not used");
    flush_dependency();
    if (auto c = comment(r); !c)
      return c.error();
    else if (!c->empty())
      out_.push_back("comment \"" + *c + "\"");
    std::string s;
    for (const auto& p : out_) s += (s.empty() ? "" : " ") + p;
    return s;
  }

 private:
  Error fail(const std::string& why) const { return refuse(where_ + ": " + why); }

  void emit(std::string s) {
    flush_dependency();
    out_.push_back(std::move(s));
  }
  // nft prints the protocol test it implied for a transport header field
  // only when no such field follows it.
  void flush_dependency() {
    if (l4_dependency_) out_.push_back(std::string("meta l4proto ") + l4_name(*l4_dependency_));
    l4_dependency_.reset();
  }

  std::string addr_text(const Bytes& d, size_t full, std::optional<int> plen) const {
    uint8_t buf[16] = {};
    std::memcpy(buf, d.data(), std::min(d.size(), full));
    char s[INET6_ADDRSTRLEN];
    inet_ntop(v6_ ? AF_INET6 : AF_INET, buf, s, sizeof s);
    return plen ? std::string(s) + "/" + std::to_string(*plen) : std::string(s);
  }

  // "ip saddr" / "ip6 daddr" for an address field of the network header.
  std::optional<std::string> addr_field(const Load& l) const {
    if (l.kind != Load::Payload || l.base != NFT_PAYLOAD_NETWORK_HEADER) return std::nullopt;
    uint32_t src = v6_ ? 8 : 12, dst = v6_ ? 24 : 16;
    if (l.offset != src && l.offset != dst) return std::nullopt;
    return std::string(v6_ ? "ip6 " : "ip ") + (l.offset == src ? "saddr" : "daddr");
  }

  // The text of a whole-field load used as a lookup key.
  Result<std::string> key_text(const Load& l) {
    size_t full = v6_ ? 16 : 4;
    if (auto f = addr_field(l); f && l.len == full && l.mask.empty()) return *f;
    if (l.kind == Load::Numgen) {
      std::string s = "numgen random mod " + std::to_string(l.modulus);
      if (l.numgen_offset) s += " offset " + std::to_string(l.numgen_offset);
      return s;
    }
    return fail("a lookup key this does not print");
  }

  Result<void> cmp(const nftnl_expr* e) {
    auto s = regs_.find(nftnl_expr_get_u32(e, NFTNL_EXPR_CMP_SREG));
    uint32_t op = nftnl_expr_get_u32(e, NFTNL_EXPR_CMP_OP);
    if (s == regs_.end() || (op != NFT_CMP_EQ && op != NFT_CMP_NEQ)) return fail("cmp expression");
    Load l = s->second;
    regs_.erase(s);
    Bytes d = expr_bytes(e, NFTNL_EXPR_CMP_DATA);
    std::string neg = op == NFT_CMP_NEQ ? "!= " : "";
    size_t full = v6_ ? 16 : 4;
    if (auto f = addr_field(l)) {
      if (d.size() != l.len || l.len > full || !l.len) return fail("address test");
      std::optional<int> plen;
      if (!l.mask.empty()) {
        plen = prefix_length(l.mask);
        if (!plen || l.mask.size() != l.len) return fail("address mask");
      } else if (l.len < full) {
        plen = 8 * (int)l.len;
      }
      emit(*f + " " + neg + addr_text(d, full, plen));
      return {};
    }
    if (!l.mask.empty()) return fail("bitwise expression");
    if (l.kind == Load::Meta && l.key == NFT_META_L4PROTO && d.size() == 1 && l4_name(d[0])) {
      if (neg.empty()) {
        flush_dependency();
        l4_dependency_ = d[0];
      } else {
        emit(std::string("meta l4proto != ") + l4_name(d[0]));
      }
      return {};
    }
    if (l.kind == Load::Payload && l.base == NFT_PAYLOAD_TRANSPORT_HEADER && l.len == 2 && d.size() == 2 &&
        (l.offset == 0 || l.offset == 2) && l4_dependency_) {
      uint16_t port = (uint16_t)(d[0] << 8 | d[1]);
      std::string proto = l4_name(*l4_dependency_);
      l4_dependency_.reset();
      emit(proto + (l.offset == 0 ? " sport " : " dport ") + neg + std::to_string(port));
      return {};
    }
    return fail("a test this does not print");
  }

  Result<void> lookup(const nftnl_expr* e) {
    auto s = regs_.find(nftnl_expr_get_u32(e, NFTNL_EXPR_LOOKUP_SREG));
    if (s == regs_.end()) return fail("lookup of an empty register");
    Load l = s->second;
    regs_.erase(s);
    std::string set = expr_string(e, NFTNL_EXPR_LOOKUP_SET);
    bool vmap = nftnl_expr_is_set(e, NFTNL_EXPR_LOOKUP_DREG);
    if (vmap && nftnl_expr_get_u32(e, NFTNL_EXPR_LOOKUP_DREG) != NFT_REG_VERDICT) return fail("data map lookup");
    bool inv = nftnl_expr_is_set(e, NFTNL_EXPR_LOOKUP_FLAGS) &&
               (nftnl_expr_get_u32(e, NFTNL_EXPR_LOOKUP_FLAGS) & NFT_LOOKUP_F_INV);
    auto key = key_text(l);
    if (!key) return key.error();
    bool anonymous = set.rfind("__", 0) == 0;
    if (anonymous && !(vmap && l.kind == Load::Numgen && !inv)) return fail("anonymous set " + set);
    if (!anonymous && l.kind == Load::Numgen) return fail("numgen lookup in a named set");
    std::string what = anonymous ? "" : "@" + set;
    if (anonymous) {
      auto elems = anon_map_(set);
      if (!elems) return elems.error();
      what = *elems;
    }
    emit(*key + (vmap ? " vmap " : " ") + (inv ? "!= " : "") + what);
    if (vmap) verdict_ = true;
    return {};
  }

  Result<void> nat(const nftnl_expr* e) {
    if (nftnl_expr_get_u32(e, NFTNL_EXPR_NAT_TYPE) != NFT_NAT_DNAT) return fail("snat expression");
    uint32_t fam = nftnl_expr_get_u32(e, NFTNL_EXPR_NAT_FAMILY);
    uint32_t flags = nftnl_expr_is_set(e, NFTNL_EXPR_NAT_FLAGS) ? nftnl_expr_get_u32(e, NFTNL_EXPR_NAT_FLAGS) : 0;
    // The kernel reports the maximum registers as the minimum ones when none
    // was given, and adds NF_NAT_RANGE_MAP_IPS when there is an address.
    auto same_max = [&](uint16_t min, uint16_t max) {
      return !nftnl_expr_is_set(e, max) || nftnl_expr_get_u32(e, max) == nftnl_expr_get_u32(e, min);
    };
    if (fam != (v6_ ? NFPROTO_IPV6 : NFPROTO_IPV4) || !nftnl_expr_is_set(e, NFTNL_EXPR_NAT_REG_ADDR_MIN) ||
        !nftnl_expr_is_set(e, NFTNL_EXPR_NAT_REG_PROTO_MIN) ||
        !same_max(NFTNL_EXPR_NAT_REG_ADDR_MIN, NFTNL_EXPR_NAT_REG_ADDR_MAX) ||
        !same_max(NFTNL_EXPR_NAT_REG_PROTO_MIN, NFTNL_EXPR_NAT_REG_PROTO_MAX) ||
        (flags & ~(uint32_t)NF_NAT_RANGE_MAP_IPS) != NF_NAT_RANGE_PROTO_SPECIFIED)
      return fail("a dnat other than to one address and port");
    auto a = regs_.find(nftnl_expr_get_u32(e, NFTNL_EXPR_NAT_REG_ADDR_MIN));
    auto p = regs_.find(nftnl_expr_get_u32(e, NFTNL_EXPR_NAT_REG_PROTO_MIN));
    size_t full = v6_ ? 16 : 4;
    if (a == regs_.end() || p == regs_.end() || a == p || a->second.kind != Load::Data ||
        p->second.kind != Load::Data || a->second.data.size() != full || p->second.data.size() != 2)
      return fail("dnat from registers this does not print");
    std::string addr = addr_text(a->second.data, full, std::nullopt);
    uint16_t port = (uint16_t)(p->second.data[0] << 8 | p->second.data[1]);
    regs_.erase(a);
    regs_.erase(p);
    emit("dnat to " + (v6_ ? "[" + addr + "]" : addr) + ":" + std::to_string(port));
    verdict_ = true;
    return {};
  }

  Result<void> dynset(const nftnl_expr* e) {
    uint32_t op = nftnl_expr_get_u32(e, NFTNL_EXPR_DYNSET_OP);
    if ((op != NFT_DYNSET_OP_ADD && op != NFT_DYNSET_OP_UPDATE) || nftnl_expr_is_set(e, NFTNL_EXPR_DYNSET_SREG_DATA) ||
        (nftnl_expr_is_set(e, NFTNL_EXPR_DYNSET_TIMEOUT) && nftnl_expr_get_u64(e, NFTNL_EXPR_DYNSET_TIMEOUT)) ||
        nftnl_expr_is_set(e, NFTNL_EXPR_DYNSET_EXPR) || nftnl_expr_is_set(e, NFTNL_EXPR_DYNSET_EXPRESSIONS))
      return fail("a set update this does not print");
    auto s = regs_.find(nftnl_expr_get_u32(e, NFTNL_EXPR_DYNSET_SREG_KEY));
    if (s == regs_.end()) return fail("set update of an empty register");
    Load l = s->second;
    regs_.erase(s);
    auto key = key_text(l);
    if (!key) return key.error();
    emit(std::string(op == NFT_DYNSET_OP_ADD ? "add @" : "update @") + expr_string(e, NFTNL_EXPR_DYNSET_SET_NAME) +
         " { " + *key + " }");
    return {};
  }

  Result<void> immediate(const nftnl_expr* e) {
    uint32_t dreg = nftnl_expr_get_u32(e, NFTNL_EXPR_IMM_DREG);
    if (dreg != NFT_REG_VERDICT) {
      Load l;
      l.data = expr_bytes(e, NFTNL_EXPR_IMM_DATA);
      regs_[dreg] = l;
      return {};
    }
    int32_t v = (int32_t)nftnl_expr_get_u32(e, NFTNL_EXPR_IMM_VERDICT);
    std::string chain = nftnl_expr_is_set(e, NFTNL_EXPR_IMM_CHAIN) ? expr_string(e, NFTNL_EXPR_IMM_CHAIN) : "";
    switch (v) {
      case NFT_JUMP: emit("jump " + chain); break;
      case NFT_GOTO: emit("goto " + chain); break;
      case NF_ACCEPT: emit("accept"); break;
      case NF_DROP: emit("drop"); break;
      case NFT_RETURN: emit("return"); break;
      default: return fail("verdict " + std::to_string(v));
    }
    verdict_ = true;
    return {};
  }

  Result<void> expr(const nftnl_expr* e) {
    std::string kind = expr_string(e, NFTNL_EXPR_NAME);
    if (kind == "payload") {
      if (nftnl_expr_is_set(e, NFTNL_EXPR_PAYLOAD_SREG)) return fail("payload write");
      Load l;
      l.kind = Load::Payload;
      l.base = nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_BASE);
      l.offset = nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET);
      l.len = nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_LEN);
      regs_[nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_DREG)] = l;
      return {};
    }
    if (kind == "meta") {
      if (!nftnl_expr_is_set(e, NFTNL_EXPR_META_DREG)) return fail("meta write");
      Load l;
      l.kind = Load::Meta;
      l.key = nftnl_expr_get_u32(e, NFTNL_EXPR_META_KEY);
      regs_[nftnl_expr_get_u32(e, NFTNL_EXPR_META_DREG)] = l;
      return {};
    }
    if (kind == "numgen") {
      if (nftnl_expr_get_u32(e, NFTNL_EXPR_NG_TYPE) != NFT_NG_RANDOM) return fail("numgen inc");
      Load l;
      l.kind = Load::Numgen;
      l.modulus = nftnl_expr_get_u32(e, NFTNL_EXPR_NG_MODULUS);
      l.numgen_offset = nftnl_expr_is_set(e, NFTNL_EXPR_NG_OFFSET) ? nftnl_expr_get_u32(e, NFTNL_EXPR_NG_OFFSET) : 0;
      regs_[nftnl_expr_get_u32(e, NFTNL_EXPR_NG_DREG)] = l;
      return {};
    }
    if (kind == "bitwise") {
      auto s = regs_.find(nftnl_expr_get_u32(e, NFTNL_EXPR_BITWISE_SREG));
      Bytes xr = expr_bytes(e, NFTNL_EXPR_BITWISE_XOR);
      bool shift = nftnl_expr_is_set(e, NFTNL_EXPR_BITWISE_OP) && nftnl_expr_get_u32(e, NFTNL_EXPR_BITWISE_OP) != 0;
      if (shift || s == regs_.end() || s->second.kind != Load::Payload || !s->second.mask.empty() ||
          std::any_of(xr.begin(), xr.end(), [](uint8_t x) { return x != 0; }))
        return fail("bitwise expression");
      Load l = s->second;
      regs_.erase(s);
      l.mask = expr_bytes(e, NFTNL_EXPR_BITWISE_MASK);
      regs_[nftnl_expr_get_u32(e, NFTNL_EXPR_BITWISE_DREG)] = l;
      return {};
    }
    if (kind == "cmp") return cmp(e);
    if (kind == "lookup") return lookup(e);
    if (kind == "immediate") return immediate(e);
    if (kind == "nat") return nat(e);
    if (kind == "dynset") return dynset(e);
    return fail("expression " + kind);
  }

  // The rule's comment (nft's user data: type 0, NUL-terminated), "" for none.
  Result<std::string> comment(const nftnl_rule* r) const {
    if (!nftnl_rule_is_set(r, NFTNL_RULE_USERDATA)) return std::string();
    uint32_t len = 0;
    const auto* p = static_cast<const uint8_t*>(nftnl_rule_get_data(r, NFTNL_RULE_USERDATA, &len));
    std::string text;
    for (uint32_t i = 0; p && i + 2 <= len;) {
      uint8_t type = p[i], n = p[i + 1];
      if (i + 2 + n > len) return fail("user data");
      if (type != 0 || !n || p[i + 2 + n - 1] != 0) return fail("user data other than a comment");
      text.assign(reinterpret_cast<const char*>(p + i + 2), n - 1);
      i += 2 + n;
    }
    if (text.find('"') != std::string::npos) return fail("a comment with a quote");
    return text;
  }

  bool v6_;
  std::string where_;
  std::function<Result<std::string>(const std::string&)> anon_map_;
  std::map<uint32_t, Load> regs_;
  std::optional<uint8_t> l4_dependency_;
  std::vector<std::string> out_;
  bool verdict_ = false;
};

// An anonymous verdict map keyed by numgen's values, as nft prints it:
// "{ 0 : goto A, 1 : goto B }", in key order.
Result<std::string> numgen_map(nfnl::NftSocket& sock, uint8_t family, const std::string& table, const std::string& set,
                               const std::string& what) {
  auto msgs = sock.dump(NFT_MSG_GETSETELEM, family, table, set);
  if (!msgs) return Error{msgs.error().code, what + ": elements of " + set + ": " + msgs.error().message()};
  std::unique_ptr<nftnl_set, void (*)(const nftnl_set*)> s(nftnl_set_alloc(), nftnl_set_free);
  for (const auto& m : *msgs)
    if (!s || nftnl_set_elems_nlmsg_parse(header(m), s.get()) < 0) return refuse(what + ": elements of " + set);
  std::map<uint32_t, std::string> elems;
  std::unique_ptr<nftnl_set_elems_iter, void (*)(nftnl_set_elems_iter*)> it(nftnl_set_elems_iter_create(s.get()),
                                                                            nftnl_set_elems_iter_destroy);
  for (nftnl_set_elem* e = it ? nftnl_set_elems_iter_next(it.get()) : nullptr; e;
       e = nftnl_set_elems_iter_next(it.get())) {
    uint32_t klen = 0;
    const void* k = nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY, &klen);
    if (!k || klen != 4 || !nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_VERDICT) ||
        nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_FLAGS))
      return refuse(what + ": an element of " + set + " this does not print");
    uint32_t key;
    std::memcpy(&key, k, 4);  // numgen's value, in host order
    int32_t v = (int32_t)nftnl_set_elem_get_u32(e, NFTNL_SET_ELEM_VERDICT);
    const char* chain = nftnl_set_elem_get_str(e, NFTNL_SET_ELEM_CHAIN);
    if ((v != NFT_GOTO && v != NFT_JUMP) || !chain) return refuse(what + ": a verdict in " + set);
    elems[key] = std::string(v == NFT_GOTO ? "goto " : "jump ") + chain;
  }
  std::string out = "{ ";
  for (const auto& [k, v] : elems) out += (out.size() > 2 ? ", " : "") + std::to_string(k) + " : " + v;
  return out + " }";
}

}  // namespace

Result<std::vector<std::string>> read_nft_chain(uint8_t family, const std::string& table, const std::string& chain) {
  bool v6 = family == 6;
  uint8_t nfproto = v6 ? NFPROTO_IPV6 : NFPROTO_IPV4;
  std::string what = "read chain " + chain + " of table " + (v6 ? "ip6 " : "ip ") + table + " over netlink";
  if (family != 4 && family != 6) return refuse(what + ": not an ip or ip6 table");
  auto sock = nfnl::NftSocket::open();
  if (!sock) return Error{sock.error().code, what + ": " + sock.error().context};
  for (int attempt = 0; attempt < 10; ++attempt) {
    auto gen = (*sock)->generation();
    if (!gen) return gen.error();
    auto rules = (*sock)->dump(NFT_MSG_GETRULE, nfproto, table, {}, chain);
    if (!rules) return Error{rules.error().code, what + ": " + rules.error().message()};
    std::vector<std::string> out;
    for (const auto& m : *rules) {
      std::unique_ptr<nftnl_rule, void (*)(const nftnl_rule*)> r(nftnl_rule_alloc(), nftnl_rule_free);
      if (!r || nftnl_rule_nlmsg_parse(header(m), r.get()) < 0) return refuse(what + ": a rule message");
      const char* t = nftnl_rule_get_str(r.get(), NFTNL_RULE_TABLE);
      const char* c = nftnl_rule_get_str(r.get(), NFTNL_RULE_CHAIN);
      if (!t || !c || table != t || chain != c) continue;
      std::string where = what + ": rule handle " + std::to_string(nftnl_rule_get_u64(r.get(), NFTNL_RULE_HANDLE));
      RuleDecoder d(v6, where, [&](const std::string& set) { return numgen_map(**sock, nfproto, table, set, where); });
      auto text = d.decode(r.get());
      if (!text) return text.error();
      out.push_back(std::move(*text));
    }
    if (out.empty()) {
      auto exists = (*sock)->chain_exists(nfproto, table, chain);
      if (!exists) return Error{exists.error().code, what + ": " + exists.error().context};
      if (!*exists) return Error{ENOENT, what};
    }
    // The rules and their maps' elements are separate dumps: a commit in
    // between reads again.
    auto gen2 = (*sock)->generation();
    if (!gen2) return gen2.error();
    if (*gen2 == *gen) return out;
  }
  return Error{EAGAIN, what + ": the ruleset kept changing while it was read"};
}

}  // namespace nf2bpf::frontend
