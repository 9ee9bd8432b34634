#include "cutover/snapshot.h"

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <vector>
#include <memory>

namespace nf2bpf::cutover {

namespace {

template <typename T, void (*Free)(const T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using RulePtr = std::unique_ptr<nftnl_rule, Deleter<nftnl_rule, nftnl_rule_free>>;
using ChainPtr = std::unique_ptr<nftnl_chain, Deleter<nftnl_chain, nftnl_chain_free>>;
using TablePtr = std::unique_ptr<nftnl_table, Deleter<nftnl_table, nftnl_table_free>>;
using SetPtr = std::unique_ptr<nftnl_set, Deleter<nftnl_set, nftnl_set_free>>;

RulePtr parse_rule(const Bytes& msg) {
  RulePtr r(nftnl_rule_alloc());
  if (!r || nftnl_rule_nlmsg_parse(nfnl::header(msg), r.get()) < 0) return nullptr;
  return r;
}
ChainPtr parse_chain(const Bytes& msg) {
  ChainPtr c(nftnl_chain_alloc());
  if (!c || nftnl_chain_nlmsg_parse(nfnl::header(msg), c.get()) < 0) return nullptr;
  return c;
}
SetPtr parse_set(const Bytes& msg) {
  SetPtr s(nftnl_set_alloc());
  if (!s || nftnl_set_nlmsg_parse(nfnl::header(msg), s.get()) < 0) return nullptr;
  return s;
}

// One top-level attribute of an nftables message, as raw bytes.
std::optional<Bytes> attr_bytes(const nlmsghdr* nlh, uint16_t type) {
  struct Ctx {
    uint16_t type;
    std::optional<Bytes> out;
  } ctx{type, std::nullopt};
  mnl_attr_parse(
      nlh, sizeof(nfgenmsg),
      [](const nlattr* a, void* data) -> int {
        auto* c = static_cast<Ctx*>(data);
        if (mnl_attr_get_type(a) == c->type) {
          const auto* p = static_cast<const uint8_t*>(mnl_attr_get_payload(a));
          c->out = Bytes(p, p + mnl_attr_get_payload_len(a));
        }
        return MNL_CB_OK;
      },
      &ctx);
  return ctx.out;
}

// A canonical form of an attribute stream, to tell whether libnftnl rebuilds
// what the kernel dumped: one "path=payload" line per leaf attribute, sorted.
// Attribute order within a nest does not matter (the kernel and libnftnl
// order some expressions' attributes differently); the order of repeated
// nests of one type does (the expression list), through an ordinal in the
// path. The kernel's dumps do not flag nests (NLA_F_NESTED) while libnftnl
// does: which paths are nests is taken from libnftnl's side (`nests`). An
// attribute libnftnl does not know is a leaf only one side has.
void canon(const uint8_t* p, size_t len, const std::string& path, std::set<std::string>* nests,
           const std::set<std::string>& known_nests, std::vector<std::string>& out) {
  std::map<uint16_t, int> seen;
  size_t off = 0;
  while (off + sizeof(nlattr) <= len) {
    const auto* h = reinterpret_cast<const nlattr*>(p + off);
    if (h->nla_len < sizeof(nlattr) || off + h->nla_len > len) {
      out.push_back(path + "/!malformed");
      return;
    }
    uint16_t type = h->nla_type & NLA_TYPE_MASK;
    std::string me = path + "/" + std::to_string(type) + "#" + std::to_string(seen[type]++);
    const uint8_t* body = p + off + sizeof(nlattr);
    size_t blen = h->nla_len - sizeof(nlattr);
    bool nested = nests ? (h->nla_type & NLA_F_NESTED) != 0 : known_nests.count(me) > 0;
    if (nested) {
      if (nests) nests->insert(me);
      canon(body, blen, me, nests, known_nests, out);
    } else {
      out.push_back(me + "=" + to_hex(Bytes(body, body + blen)));
    }
    off += (h->nla_len + 3) & ~3u;
  }
}

// `kernel` as dumped, `rebuilt` as libnftnl built it.
bool same_attr(const std::optional<Bytes>& kernel, const std::optional<Bytes>& rebuilt) {
  if (!kernel || !rebuilt) return kernel.has_value() == rebuilt.has_value();
  std::set<std::string> nests;
  std::vector<std::string> a, b;
  canon(rebuilt->data(), rebuilt->size(), "", &nests, {}, b);
  canon(kernel->data(), kernel->size(), "", nullptr, nests, a);
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  return a == b;
}

std::string chain_str(const KTable& t, const KChain& c) {
  return std::string(family_name(t.family)) + " " + t.name + " " + c.name;
}

// An exthdr expression that writes (`tcp option maxseg size set ...`) is
// dumped with NFTA_EXTHDR_FLAGS (0), which its init refuses when a rule is
// added (nft_exthdr_tcp_set_init: EINVAL): it goes back without flags, as
// nft adds it. The rule's expressions are taken out and put back in order.
void strip_exthdr_write_flags(nftnl_rule* r) {
  std::vector<nftnl_expr*> all;
  bool any = false;
  nftnl_expr_iter* it = nftnl_expr_iter_create(r);
  if (!it) return;
  for (nftnl_expr* e = nftnl_expr_iter_next(it); e; e = nftnl_expr_iter_next(it)) {
    all.push_back(e);
    any |= std::string(nftnl_expr_get_str(e, NFTNL_EXPR_NAME)) == "exthdr" &&
           nftnl_expr_is_set(e, NFTNL_EXPR_EXTHDR_SREG) && nftnl_expr_is_set(e, NFTNL_EXPR_EXTHDR_FLAGS);
  }
  nftnl_expr_iter_destroy(it);
  if (!any) return;
  for (nftnl_expr* e : all) nftnl_rule_del_expr(e);
  for (nftnl_expr* e : all) {
    if (std::string(nftnl_expr_get_str(e, NFTNL_EXPR_NAME)) == "exthdr" &&
        nftnl_expr_is_set(e, NFTNL_EXPR_EXTHDR_SREG)) {
      nftnl_expr* w = nftnl_expr_alloc("exthdr");
      nftnl_expr_set_u32(w, NFTNL_EXPR_EXTHDR_SREG, nftnl_expr_get_u32(e, NFTNL_EXPR_EXTHDR_SREG));
      nftnl_expr_set_u8(w, NFTNL_EXPR_EXTHDR_TYPE, nftnl_expr_get_u8(e, NFTNL_EXPR_EXTHDR_TYPE));
      nftnl_expr_set_u32(w, NFTNL_EXPR_EXTHDR_OFFSET, nftnl_expr_get_u32(e, NFTNL_EXPR_EXTHDR_OFFSET));
      nftnl_expr_set_u32(w, NFTNL_EXPR_EXTHDR_LEN, nftnl_expr_get_u32(e, NFTNL_EXPR_EXTHDR_LEN));
      if (nftnl_expr_is_set(e, NFTNL_EXPR_EXTHDR_OP))
        nftnl_expr_set_u32(w, NFTNL_EXPR_EXTHDR_OP, nftnl_expr_get_u32(e, NFTNL_EXPR_EXTHDR_OP));
      nftnl_expr_free(e);
      e = w;
    }
    nftnl_rule_add_expr(r, e);
  }
}

// iptables-nft passes the rule's -p protocol (NFTA_RULE_COMPAT) when it adds
// a rule with xtables matches or targets: their checkentry functions insist
// on it (`-j REJECT --reject-with tcp-reset` needs -p tcp). The kernel does
// not dump it; it is what the rule's protocol match says.
void set_compat(nftnl_rule* r) {
  bool xt = false;
  std::optional<std::pair<uint32_t, bool>> proto;
  uint32_t proto_reg = 0;  // register holding the protocol; 0 (the verdict register) = none
  nftnl_expr_iter* it = nftnl_expr_iter_create(r);
  if (!it) return;
  for (nftnl_expr* e = nftnl_expr_iter_next(it); e; e = nftnl_expr_iter_next(it)) {
    std::string name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);
    if (name == "match" || name == "target") {
      xt = true;
    } else if (!proto && name == "meta" && nftnl_expr_is_set(e, NFTNL_EXPR_META_DREG) &&
               nftnl_expr_get_u32(e, NFTNL_EXPR_META_KEY) == NFT_META_L4PROTO) {
      proto_reg = nftnl_expr_get_u32(e, NFTNL_EXPR_META_DREG);
      continue;
    } else if (!proto && name == "payload" && nftnl_expr_is_set(e, NFTNL_EXPR_PAYLOAD_DREG) &&
               nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_BASE) == NFT_PAYLOAD_NETWORK_HEADER &&
               nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET) == 9 &&
               nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_LEN) == 1) {
      proto_reg = nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_DREG);
      continue;
    } else if (!proto && proto_reg && name == "cmp" && nftnl_expr_get_u32(e, NFTNL_EXPR_CMP_SREG) == proto_reg) {
      uint32_t op = nftnl_expr_get_u32(e, NFTNL_EXPR_CMP_OP);
      uint32_t len = 0;
      const auto* d = static_cast<const uint8_t*>(nftnl_expr_get_data(e, NFTNL_EXPR_CMP_DATA, &len));
      if (d && len >= 1 && (op == NFT_CMP_EQ || op == NFT_CMP_NEQ)) proto = {{d[0], op == NFT_CMP_NEQ}};
    }
    proto_reg = 0;
  }
  nftnl_expr_iter_destroy(it);
  if (!xt) return;
  nftnl_rule_set_u32(r, NFTNL_RULE_COMPAT_PROTO, proto ? proto->first : 0);
  nftnl_rule_set_u32(r, NFTNL_RULE_COMPAT_FLAGS, proto && proto->second ? NFT_RULE_COMPAT_F_INV : 0);
}

// Points the rule's references to anonymous sets at the re-created ones: by
// id, with a name no set has, so the kernel resolves them by id.
void retarget_sets(nftnl_rule* r, const std::vector<std::pair<std::string, uint32_t>>& ids) {
  auto id_of = [&](const char* name) -> std::optional<uint32_t> {
    if (!name) return std::nullopt;
    for (const auto& [n, id] : ids)
      if (n == name) return id;
    return std::nullopt;
  };
  nftnl_expr_iter* it = nftnl_expr_iter_create(r);
  if (!it) return;
  for (nftnl_expr* e = nftnl_expr_iter_next(it); e; e = nftnl_expr_iter_next(it)) {
    std::string name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);
    uint16_t name_attr = 0, id_attr = 0;
    if (name == "lookup")
      name_attr = NFTNL_EXPR_LOOKUP_SET, id_attr = NFTNL_EXPR_LOOKUP_SET_ID;
    else if (name == "dynset")
      name_attr = NFTNL_EXPR_DYNSET_SET_NAME, id_attr = NFTNL_EXPR_DYNSET_SET_ID;
    else if (name == "objref")
      name_attr = NFTNL_EXPR_OBJREF_SET_NAME, id_attr = NFTNL_EXPR_OBJREF_SET_ID;
    else
      continue;
    if (!nftnl_expr_is_set(e, name_attr)) continue;
    if (auto id = id_of(nftnl_expr_get_str(e, name_attr))) {
      nftnl_expr_set_str(e, name_attr, "__set%d");
      nftnl_expr_set_u32(e, id_attr, *id);
    }
  }
  nftnl_expr_iter_destroy(it);
}

std::vector<std::string> set_refs(nftnl_rule* r) {
  std::vector<std::string> out;
  nftnl_expr_iter* it = nftnl_expr_iter_create(r);
  if (!it) return out;
  for (nftnl_expr* e = nftnl_expr_iter_next(it); e; e = nftnl_expr_iter_next(it)) {
    std::string name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);
    uint16_t a = name == "lookup"   ? NFTNL_EXPR_LOOKUP_SET
                 : name == "dynset" ? NFTNL_EXPR_DYNSET_SET_NAME
                 : name == "objref" ? NFTNL_EXPR_OBJREF_SET_NAME
                                    : 0;
    if (a && nftnl_expr_is_set(e, a)) out.push_back(nftnl_expr_get_str(e, a));
  }
  nftnl_expr_iter_destroy(it);
  return out;
}

}  // namespace

std::string TableId::str() const { return std::string(family_name(family)) + " " + name; }

const KChain* KTable::find_chain(const std::string& n) const {
  for (const auto& c : chains)
    if (c.name == n) return &c;
  return nullptr;
}

const KSet* KTable::find_set(const std::string& n) const {
  for (const auto& s : anon_sets)
    if (s.name == n) return &s;
  return nullptr;
}

const KTable* Snapshot::find(const TableId& t) const {
  for (const auto& x : tables)
    if (x.family == t.family && x.name == t.name) return &x;
  return nullptr;
}

namespace {

Result<Snapshot> read_once(NftSocket& s, const std::vector<TableId>& want) {
  Snapshot snap;
  auto tables = s.dump(NFT_MSG_GETTABLE, NFPROTO_UNSPEC);
  if (!tables) return tables.error();
  for (const auto& m : *tables) {
    TablePtr t(nftnl_table_alloc());
    if (!t || nftnl_table_nlmsg_parse(nfnl::header(m), t.get()) < 0) return Error{EPROTO, "parse an nftables table"};
    TableId id{(uint8_t)nftnl_table_get_u32(t.get(), NFTNL_TABLE_FAMILY),
               nftnl_table_get_str(t.get(), NFTNL_TABLE_NAME)};
    snap.all_tables.push_back(id);
    if (std::find(want.begin(), want.end(), id) == want.end()) continue;
    KTable kt;
    kt.family = id.family;
    kt.name = id.name;
    kt.flags = nftnl_table_is_set(t.get(), NFTNL_TABLE_FLAGS) ? nftnl_table_get_u32(t.get(), NFTNL_TABLE_FLAGS) : 0;
    snap.tables.push_back(std::move(kt));
  }
  for (auto& kt : snap.tables) {
    std::string where = TableId{kt.family, kt.name}.str();
    auto chains = s.dump(NFT_MSG_GETCHAIN, kt.family);
    if (!chains) return chains.error();
    for (auto& m : *chains) {
      ChainPtr c = parse_chain(m);
      if (!c) return Error{EPROTO, "parse a chain of table " + where};
      if (kt.name != nftnl_chain_get_str(c.get(), NFTNL_CHAIN_TABLE)) continue;
      KChain kc;
      kc.name = nftnl_chain_get_str(c.get(), NFTNL_CHAIN_NAME);
      kc.handle = nftnl_chain_get_u64(c.get(), NFTNL_CHAIN_HANDLE);
      kc.base = nftnl_chain_is_set(c.get(), NFTNL_CHAIN_HOOKNUM);
      if (nftnl_chain_is_set(c.get(), NFTNL_CHAIN_POLICY)) kc.policy = nftnl_chain_get_u32(c.get(), NFTNL_CHAIN_POLICY);
      if (nftnl_chain_is_set(c.get(), NFTNL_CHAIN_FLAGS)) kc.flags = nftnl_chain_get_u32(c.get(), NFTNL_CHAIN_FLAGS);
      kc.msg = std::move(m);
      kt.chains.push_back(std::move(kc));
    }
    auto rules = s.dump(NFT_MSG_GETRULE, kt.family, kt.name);
    if (!rules) return rules.error();
    std::map<std::string, std::vector<std::string>> anon_users;
    for (auto& m : *rules) {
      RulePtr r = parse_rule(m);
      if (!r) return Error{EPROTO, "parse a rule of table " + where + " (an expression libnftnl does not know?)"};
      if (kt.name != nftnl_rule_get_str(r.get(), NFTNL_RULE_TABLE)) continue;
      std::string chain = nftnl_rule_get_str(r.get(), NFTNL_RULE_CHAIN);
      auto ci = std::find_if(kt.chains.begin(), kt.chains.end(), [&](const KChain& c) { return c.name == chain; });
      if (ci == kt.chains.end())
        return Error{EAGAIN, "table " + where + ": a rule of chain " + chain + " without its chain"};
      KRule kr;
      kr.handle = nftnl_rule_get_u64(r.get(), NFTNL_RULE_HANDLE);
      kr.anon_sets = set_refs(r.get());
      kr.msg = std::move(m);
      ci->rules.push_back(std::move(kr));
    }
    auto sets = s.dump(NFT_MSG_GETSET, kt.family, kt.name);
    if (!sets) return sets.error();
    std::map<std::string, KSet> anon;
    for (auto& m : *sets) {
      SetPtr st = parse_set(m);
      if (!st) return Error{EPROTO, "parse a set of table " + where};
      uint32_t flags = nftnl_set_is_set(st.get(), NFTNL_SET_FLAGS) ? nftnl_set_get_u32(st.get(), NFTNL_SET_FLAGS) : 0;
      if (!(flags & NFT_SET_ANONYMOUS)) continue;
      KSet ks;
      ks.name = nftnl_set_get_str(st.get(), NFTNL_SET_NAME);
      ks.flags = flags;
      ks.msg = std::move(m);
      anon[ks.name] = std::move(ks);
    }
    // Only anonymous sets are bound to rules; named ones stay with the table.
    for (auto& c : kt.chains)
      for (auto& r : c.rules) {
        std::vector<std::string> anon_refs;
        for (const auto& n : r.anon_sets)
          if (anon.count(n)) anon_refs.push_back(n);
        r.anon_sets = anon_refs;
        for (const auto& n : anon_refs) {
          if (kt.find_set(n)) continue;
          KSet ks = anon[n];
          auto elems = s.dump(NFT_MSG_GETSETELEM, kt.family, kt.name, n);
          if (!elems) return elems.error();
          ks.elems = std::move(*elems);
          kt.anon_sets.push_back(std::move(ks));
        }
      }
  }
  return snap;
}

}  // namespace

Result<Snapshot> read_snapshot(NftSocket& s, const std::vector<TableId>& tables) {
  for (int attempt = 0; attempt < 10; ++attempt) {
    auto g1 = s.generation();
    if (!g1) return g1.error();
    auto snap = read_once(s, tables);
    if (!snap && snap.error().code != EAGAIN) return snap.error();
    auto g2 = s.generation();
    if (!g2) return g2.error();
    if (snap && *g1 == *g2) {
      snap->genid = *g1;
      return snap;
    }
  }
  return Error{EAGAIN, "read the nftables ruleset: it kept changing while it was read"};
}

std::string check_reproducible(const KRule& r) {
  RulePtr p = parse_rule(r.msg);
  if (!p) return "libnftnl cannot parse it";
  std::vector<char> buf(r.msg.size() * 2 + 65536);
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buf.data(), NFT_MSG_NEWRULE, NFPROTO_UNSPEC, 0, 0);
  nftnl_rule_unset(p.get(), NFTNL_RULE_HANDLE);
  nftnl_rule_nlmsg_build_payload(nlh, p.get());
  auto a = attr_bytes(nfnl::header(r.msg), NFTA_RULE_EXPRESSIONS);
  auto b = attr_bytes(nlh, NFTA_RULE_EXPRESSIONS);
  if (!same_attr(a, b))
    return "libnftnl does not rebuild its expressions byte for byte (a kernel feature newer than libnftnl?)";
  auto ua = attr_bytes(nfnl::header(r.msg), NFTA_RULE_USERDATA);
  auto ub = attr_bytes(nlh, NFTA_RULE_USERDATA);
  if (ua != ub) return "libnftnl does not rebuild its user data (comment) byte for byte";
  return {};
}

// ---- transaction messages ------------------------------------------------------

void add_delete_rule(Batch& b, const KTable& t, const KChain& c, const KRule& r, const std::string& text) {
  b.add(NFT_MSG_DELRULE, t.family, 0,
        "delete rule " + chain_str(t, c) + " handle " + std::to_string(r.handle) +
            (text.empty() ? "" : " (" + text + ")"),
        [&](nlmsghdr* nlh) {
          RulePtr x(nftnl_rule_alloc());
          nftnl_rule_set_str(x.get(), NFTNL_RULE_TABLE, t.name.c_str());
          nftnl_rule_set_str(x.get(), NFTNL_RULE_CHAIN, c.name.c_str());
          nftnl_rule_set_u64(x.get(), NFTNL_RULE_HANDLE, r.handle);
          nftnl_rule_nlmsg_build_payload(nlh, x.get());
        });
}

void add_flush_chain(Batch& b, const KTable& t, const KChain& c) {
  b.add(NFT_MSG_DELRULE, t.family, 0, "flush chain " + chain_str(t, c), [&](nlmsghdr* nlh) {
    RulePtr x(nftnl_rule_alloc());
    nftnl_rule_set_str(x.get(), NFTNL_RULE_TABLE, t.name.c_str());
    nftnl_rule_set_str(x.get(), NFTNL_RULE_CHAIN, c.name.c_str());
    nftnl_rule_nlmsg_build_payload(nlh, x.get());
  });
}

void add_delete_chain(Batch& b, const KTable& t, const KChain& c) {
  b.add(NFT_MSG_DELCHAIN, t.family, 0, "delete chain " + chain_str(t, c), [&](nlmsghdr* nlh) {
    ChainPtr x(nftnl_chain_alloc());
    nftnl_chain_set_str(x.get(), NFTNL_CHAIN_TABLE, t.name.c_str());
    nftnl_chain_set_str(x.get(), NFTNL_CHAIN_NAME, c.name.c_str());
    nftnl_chain_nlmsg_build_payload(nlh, x.get());
  });
}

void add_chain_policy(Batch& b, const KTable& t, const KChain& c, uint32_t policy) {
  b.add(NFT_MSG_NEWCHAIN, t.family, 0,
        "set the policy of chain " + chain_str(t, c) + " to " + (policy == NF_DROP ? "drop" : "accept"),
        [&](nlmsghdr* nlh) {
          ChainPtr x(nftnl_chain_alloc());
          nftnl_chain_set_str(x.get(), NFTNL_CHAIN_TABLE, t.name.c_str());
          nftnl_chain_set_str(x.get(), NFTNL_CHAIN_NAME, c.name.c_str());
          nftnl_chain_set_u32(x.get(), NFTNL_CHAIN_POLICY, policy);
          nftnl_chain_nlmsg_build_payload(nlh, x.get());
        });
}

Result<void> add_create_chain(Batch& b, const KTable& t, const KChain& c) {
  ChainPtr x = parse_chain(c.msg);
  if (!x) return Error{EPROTO, "parse the saved chain " + chain_str(t, c)};
  // Identity the kernel assigns, not ours to pass back.
  nftnl_chain_unset(x.get(), NFTNL_CHAIN_HANDLE);
  nftnl_chain_unset(x.get(), NFTNL_CHAIN_USE);
  nftnl_chain_unset(x.get(), NFTNL_CHAIN_ID);
  if (nftnl_chain_is_set(x.get(), NFTNL_CHAIN_FLAGS)) {
    uint32_t f = nftnl_chain_get_u32(x.get(), NFTNL_CHAIN_FLAGS) & ~(uint32_t)NFT_CHAIN_BASE;
    if (f)
      nftnl_chain_set_u32(x.get(), NFTNL_CHAIN_FLAGS, f);
    else
      nftnl_chain_unset(x.get(), NFTNL_CHAIN_FLAGS);
  }
  b.add(
      NFT_MSG_NEWCHAIN, t.family, NLM_F_CREATE | NLM_F_EXCL, "create chain " + chain_str(t, c),
      [&](nlmsghdr* nlh) { nftnl_chain_nlmsg_build_payload(nlh, x.get()); }, c.msg.size());
  return {};
}

Result<void> add_create_anon_set(Batch& b, const KTable& t, const KSet& s, uint32_t id) {
  SetPtr x = parse_set(s.msg);
  if (!x) return Error{EPROTO, "parse the saved set " + s.name + " of table " + TableId{t.family, t.name}.str()};
  nftnl_set_unset(x.get(), NFTNL_SET_HANDLE);
  nftnl_set_set_str(x.get(), NFTNL_SET_NAME, "__set%d");
  nftnl_set_set_u32(x.get(), NFTNL_SET_ID, id);
  std::string where = "anonymous set " + s.name + " of table " + TableId{t.family, t.name}.str();
  b.add(
      NFT_MSG_NEWSET, t.family, NLM_F_CREATE, "create " + where,
      [&](nlmsghdr* nlh) { nftnl_set_nlmsg_build_payload(nlh, x.get()); }, s.msg.size());
  size_t room = 0;
  for (const auto& e : s.elems) {
    if (nftnl_set_elems_nlmsg_parse(nfnl::header(e), x.get()) < 0)
      return Error{EPROTO, "parse the saved elements of " + where};
    room += e.size();
  }
  if (s.elems.empty()) return {};
  // Parsing the elements gave the set its dumped name back ("__set0"), which
  // the kernel looks up before the id: in a table where another set now has
  // that name (one created earlier in this transaction, or one a rule that
  // stayed uses), the elements would go into that set. A name no set has
  // leaves only the id.
  nftnl_set_set_str(x.get(), NFTNL_SET_NAME, "__set%d");
  nftnl_set_set_u32(x.get(), NFTNL_SET_ID, id);
  b.add(
      NFT_MSG_NEWSETELEM, t.family, NLM_F_CREATE, "add the elements of " + where,
      [&](nlmsghdr* nlh) { nftnl_set_elems_nlmsg_build_payload(nlh, x.get()); }, room);
  return {};
}

Result<void> add_create_rule(Batch& b, const KTable& t, const KChain& c, const KRule& r, std::optional<uint64_t> before,
                             const std::vector<std::pair<std::string, uint32_t>>& set_ids) {
  RulePtr x = parse_rule(r.msg);
  if (!x) return Error{EPROTO, "parse a saved rule of chain " + chain_str(t, c)};
  nftnl_rule_unset(x.get(), NFTNL_RULE_HANDLE);
  nftnl_rule_unset(x.get(), NFTNL_RULE_POSITION);
  nftnl_rule_unset(x.get(), NFTNL_RULE_ID);
  nftnl_rule_unset(x.get(), NFTNL_RULE_POSITION_ID);
  set_compat(x.get());
  strip_exthdr_write_flags(x.get());
  retarget_sets(x.get(), set_ids);
  uint16_t flags = NLM_F_CREATE;
  if (before)
    nftnl_rule_set_u64(x.get(), NFTNL_RULE_POSITION, *before);  // insert before it
  else
    flags |= NLM_F_APPEND;
  b.add(
      NFT_MSG_NEWRULE, t.family, flags,
      "add rule to " + chain_str(t, c) + (before ? " before handle " + std::to_string(*before) : ""),
      [&](nlmsghdr* nlh) { nftnl_rule_nlmsg_build_payload(nlh, x.get()); }, r.msg.size());
  return {};
}

}  // namespace nf2bpf::cutover
