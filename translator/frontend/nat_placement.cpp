#include "translator/frontend/nat_placement.h"

#include <algorithm>
#include <set>
#include <unordered_map>
#include <string_view>

namespace nf2bpf::frontend {

using ir::Hook;
using ir::StmtKind;

namespace {

constexpr unsigned bit(Hook h) { return 1u << (unsigned)h; }
constexpr unsigned kDstHooks = bit(Hook::Prerouting) | bit(Hook::Output);
constexpr unsigned kSrcHooks = bit(Hook::Postrouting) | bit(Hook::Input);

bool is_nat(StmtKind k) {
  return k == StmtKind::Dnat || k == StmtKind::Snat || k == StmtKind::Masquerade || k == StmtKind::Redirect ||
         k == StmtKind::Netmap;
}

// How the user wrote the statement, and the hooks the kernel allows it on.
// nft's `dnat prefix to` / `snat prefix to` are Netmap statements whose cap
// keeps the keyword, and the keyword decides the hooks.
struct NatWord {
  std::string name;
  unsigned hooks;
  const char* where;
};
NatWord nat_word(const ir::Statement& st, bool iptables) {
  std::string_view w = ir::to_string(st.kind);
  if (st.kind == StmtKind::Netmap && !iptables) w = std::string_view(st.cap).substr(0, st.cap.find(' '));
  unsigned hooks = w == "dnat" || w == "redirect" ? kDstHooks
                   : w == "snat"                  ? kSrcHooks
                   : w == "masquerade"            ? bit(Hook::Postrouting)
                                                  : kDstHooks | kSrcHooks;  // NETMAP: manip type by hook
  const char* where = iptables ? (w == "dnat" || w == "redirect" ? "PREROUTING and OUTPUT"
                                  : w == "snat"                  ? "POSTROUTING and INPUT"
                                  : w == "masquerade"            ? "POSTROUTING"
                                                                 : "PREROUTING, INPUT, OUTPUT and POSTROUTING")
                               : (w == "dnat" || w == "redirect" ? "prerouting and output"
                                  : w == "snat"                  ? "postrouting and input"
                                                                 : "postrouting");
  std::string name;
  if (iptables) {
    name = "-j ";
    for (char c : w) name += (char)std::toupper((unsigned char)c);
  } else {
    name = std::string(w);
  }
  return {name, hooks, where};
}

std::string hook_name(Hook h, bool iptables) {
  std::string s = ir::to_string(h);
  if (iptables)
    for (auto& c : s) c = (char)std::toupper((unsigned char)c);
  return s;
}

}  // namespace

std::vector<MisplacedNat> misplaced_nat(const ir::Ruleset& rs, const ir::Table& t, bool iptables) {
  std::vector<MisplacedNat> out;
  // iptables: the targets are registered for table nat only (xt_check_target
  // compares the table before anything else), reached or not.
  if (iptables && t.name != "nat") {
    for (const auto& c : t.chains)
      for (const auto& r : c.rules)
        for (const auto& st : r.statements)
          if (is_nat(st.kind)) {
            auto w = nat_word(st, true);
            out.push_back(
                {&r, &st, w.name + " is only valid in the nat table",
                 "table '" + t.name + "' cannot hold it and iptables-restore refuses the rule; move it to *nat"});
          }
    return out;
  }
  std::set<const ir::Statement*> said;
  const size_t n = t.chains.size();
  std::unordered_map<std::string_view, size_t> by_name;
  for (size_t i = 0; i < n; ++i) by_name.emplace(t.chains[i].name, i);
  for (size_t b = 0; b < n; ++b) {
    const ir::Chain& base = t.chains[b];
    if (!base.base) continue;
    // Breadth-first from this base chain; parent[] gives the path for the message.
    std::vector<long> parent(n, -2);
    std::vector<size_t> work{b};
    parent[b] = -1;
    auto reach = [&](size_t from, const std::string& name) {
      if (auto it = by_name.find(name); it != by_name.end()) {
        size_t i = it->second;
        if (parent[i] == -2) parent[i] = (long)from, work.push_back(i);
      }
    };
    for (size_t k = 0; k < work.size(); ++k) {
      size_t c = work[k];
      for (const auto& r : t.chains[c].rules) {
        if (r.verdict.kind == ir::VerdictKind::Jump || r.verdict.kind == ir::VerdictKind::Goto)
          reach(c, r.verdict.chain);
        if (r.vmap)
          if (const ir::Set* m = rs.find_set(t, r.vmap->name))
            for (const auto& e : m->elements)
              if (e.verdict) reach(c, e.verdict->chain);
        for (const auto& st : r.statements) {
          if (!is_nat(st.kind) || said.count(&st)) continue;
          auto w = nat_word(st, iptables);
          bool nat_chain = base.base->type == ir::ChainType::Nat;
          if (nat_chain && (w.hooks & bit(base.base->hook))) continue;
          std::string path;
          for (long p = (long)c; p >= 0; p = parent[p]) path = t.chains[p].name + (path.empty() ? "" : " -> ") + path;
          // "POSTROUTING" / "postrouting filter chain 'c'"
          std::string base_desc = iptables ? hook_name(base.base->hook, true)
                                           : hook_name(base.base->hook, false) + " " + ir::to_string(base.base->type) +
                                                 " chain '" + base.name + "'";
          std::string msg;
          if (c != b)
            msg = w.name + " in chain '" + t.chains[c].name + "' is reached from " + base_desc + " (" + path + ")";
          else if (!nat_chain)
            msg = w.name + " is only valid in a nat chain";
          else
            msg = w.name + (iptables ? " is not valid in " : " is not valid at hook ") +
                  hook_name(base.base->hook, iptables);
          std::string hint = !nat_chain ? "nat statements need a chain of type nat; nft refuses the rule"
                                        : (iptables ? w.name.substr(3) : w.name) + " works in " + w.where + " only; " +
                                              (iptables ? "iptables-restore" : "nft") + " refuses the rule";
          said.insert(&st);
          out.push_back({&r, &st, std::move(msg), std::move(hint)});
        }
      }
    }
  }
  // In file order, as the reader meets them.
  std::stable_sort(out.begin(), out.end(), [](const MisplacedNat& a, const MisplacedNat& b) {
    return std::pair(a.stmt->loc.line, a.stmt->loc.col) < std::pair(b.stmt->loc.line, b.stmt->loc.col);
  });
  return out;
}

}  // namespace nf2bpf::frontend
