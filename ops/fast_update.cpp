#include "ops/fast_update.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

namespace nf2bpf::ops {

namespace {

using Lines = std::vector<std::string>;

// A rule line's words as iptables prints them: "..." quotes one word (a
// comment), with \" and \\ inside.
std::vector<std::string> words(const std::string& line) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && line[i] == ' ') ++i;
    if (i >= line.size()) break;
    std::string w;
    if (line[i] == '"') {
      for (++i; i < line.size() && line[i] != '"'; ++i) {
        if (line[i] == '\\' && i + 1 < line.size()) ++i;
        w += line[i];
      }
      ++i;
      w = "\"" + w + "\"";  // a quoted word never equals an option
    } else {
      while (i < line.size() && line[i] != ' ') w += line[i++];
    }
    out.push_back(std::move(w));
  }
  return out;
}

// The chains a rule line jumps or goes to: iptables' -j/-g target (also a
// target such as DNAT: callers keep the names of chains), nft's jump and
// goto verdicts, also in a verdict map ("goto A," inside its braces).
std::vector<std::string> targets_of(const std::string& line, bool nft) {
  auto w = words(line);
  std::vector<std::string> out;
  for (size_t i = 0; i + 1 < w.size(); ++i) {
    bool verb = nft ? (w[i] == "jump" || w[i] == "goto") : (w[i] == "-j" || w[i] == "-g");
    if (!verb) continue;
    std::string t = w[i + 1];
    if (nft && !t.empty() && t.back() == ',') t.pop_back();
    out.push_back(std::move(t));
  }
  return out;
}

// An endpoint address and port as DNAT's --to-destination and nft's `dnat
// to` write them: A:P, [A]:P for IPv6.
std::optional<policy::ServiceBackend> endpoint_addr(std::string_view to, uint8_t family) {
  size_t colon = to.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string_view addr = to.substr(0, colon), port = to.substr(colon + 1);
  if (family == 6) {
    if (addr.size() < 2 || addr.front() != '[' || addr.back() != ']') return std::nullopt;
    addr = addr.substr(1, addr.size() - 2);
  }
  auto a = ir::parse_addr(addr, family == 6 ? ir::AddrFamily::V6 : ir::AddrFamily::V4);
  char* end = nullptr;
  std::string ps(port);
  long pn = std::strtol(ps.c_str(), &end, 10);
  if (!a || ps.empty() || !end || *end || pn < 1 || pn > 65535) return std::nullopt;
  return policy::ServiceBackend{*a, (uint16_t)pn};
}

// A load-balancing chain's choice of endpoint: how many rules come before it,
// its form (the same for every draw), and the endpoint chains in draw order.
struct Choice {
  size_t head = 0;
  std::string form;
  std::vector<std::string> targets;
};

// iptables: the lines from `head` on are a uniform cascade, each `-m
// statistic --mode random --probability 1/(k-j)` (the last one without) and
// a jump to an endpoint chain, alike but for the comment text.
std::variant<Choice, std::string> iptables_choice(const Lines& lines, size_t head, const std::string& c) {
  Choice ch;
  ch.head = head;
  size_t k = lines.size() - head;
  for (size_t j = 0; j < k; ++j) {
    auto w = words(lines[head + j]);
    if (w.size() < 4 || w[0] != "-A" || w[w.size() - 2] != "-j")
      return "the cascade of " + c + " is not one this reads";
    std::string form;
    std::optional<double> p;
    for (size_t i = 2; i + 2 < w.size(); ++i) {
      if (w[i] == "-m" && w[i + 1] == "comment" && i + 3 < w.size() - 2 && w[i + 2] == "--comment") {
        form += "-m comment --comment * ";
        i += 3;
        continue;
      }
      if (w[i] == "-m" && w[i + 1] == "statistic" && i + 5 < w.size() - 2 && w[i + 2] == "--mode" &&
          w[i + 3] == "random" && w[i + 4] == "--probability" && !p) {
        char* end = nullptr;
        double v = std::strtod(w[i + 5].c_str(), &end);
        if (!end || *end || !(v > 0 && v <= 1)) return "the cascade of " + c + " is not one this reads";
        p = v;
        i += 5;
        continue;
      }
      form += w[i] + " ";
    }
    if (j && form != ch.form) return "the cascade of " + c + " changed form";
    ch.form = form;
    // Uniform: the j-th of k is drawn with chance 1/(k - j), the last one
    // unconditionally (as the compiler requires).
    double want = 1.0 / (double)(k - j);
    if (p ? std::fabs(*p - want) > 1e-6 * want : j + 1 != k) return "the draws of " + c + " are not uniform";
    ch.targets.push_back(w.back());
  }
  return ch;
}

// nft: the last rule is `numgen random mod K vmap { 0 : goto A, 1 : goto B,
// ... }` with every value below K drawn to one endpoint chain: uniform.
std::variant<Choice, std::string> nft_choice(const Lines& lines, const std::string& c) {
  std::string bad = "the endpoint choice of " + c + " is not one this reads";
  if (lines.empty()) return bad;
  auto w = words(lines.back());
  if (w.size() < 10 || w[0] != "numgen" || w[1] != "random" || w[2] != "mod" || w[4] != "vmap" || w[5] != "{" ||
      w.back() != "}" || (w.size() - 7) % 4 != 0)
    return bad;
  char* end = nullptr;
  unsigned long k = std::strtoul(w[3].c_str(), &end, 10);
  if (!end || *end || k != (w.size() - 7) / 4) return bad;
  Choice ch;
  ch.head = lines.size() - 1;
  ch.form = "numgen random mod * vmap " + w[8];
  for (size_t j = 0; j < k; ++j) {
    const std::string* e = &w[6 + 4 * j];
    std::string target = e[3];
    if (j + 1 < k) {
      if (target.empty() || target.back() != ',') return bad;
      target.pop_back();
    }
    if (e[0] != std::to_string(j) || e[1] != ":" || e[2] != w[8] || (e[2] != "goto" && e[2] != "jump")) return bad;
    ch.targets.push_back(std::move(target));
  }
  return ch;
}

// An endpoint chain: its rules with the endpoint written as @EP (the hairpin
// test: iptables' `-s EP/32`, nft's `ip saddr EP`) and @EP:@PORT (the DNAT),
// and that endpoint.
struct Endpoint {
  std::string form;
  policy::ServiceBackend backend;
};
std::optional<Endpoint> endpoint_of(const Lines& lines, uint8_t family, bool nft) {
  ir::AddrFamily fam = family == 6 ? ir::AddrFamily::V6 : ir::AddrFamily::V4;
  const std::string host = nft ? "" : family == 6 ? "/128" : "/32";
  const std::string saddr = nft ? "saddr" : "-s", to = nft ? "to" : "--to-destination";
  Endpoint e;
  std::optional<ir::u128> hairpin;
  bool dnat = false;
  for (const auto& line : lines) {
    auto w = words(line);
    size_t first = 0;
    if (!nft) {
      if (w.size() < 2 || w[0] != "-A") return std::nullopt;
      e.form += "-A @";
      first = 2;
    }
    for (size_t i = first; i < w.size(); ++i) {
      bool nft_family = !nft || (i > 0 && w[i - 1] == (family == 6 ? "ip6" : "ip"));
      if (w[i] == saddr && nft_family && i + 1 < w.size() && !hairpin) {
        const std::string& a = w[i + 1];
        if (a.size() <= host.size() || a.compare(a.size() - host.size(), host.size(), host) != 0) return std::nullopt;
        hairpin = ir::parse_addr(std::string_view(a).substr(0, a.size() - host.size()), fam);
        if (!hairpin) return std::nullopt;
        e.form += " " + w[i] + " @EP";
        ++i;
        continue;
      }
      if (w[i] == to && (!nft || (i > 0 && w[i - 1] == "dnat")) && i + 1 < w.size() && !dnat) {
        auto b = endpoint_addr(w[i + 1], family);
        if (!b) return std::nullopt;
        e.backend = *b;
        dnat = true;
        e.form += " " + w[i] + " @EP:@PORT";
        ++i;
        continue;
      }
      e.form += " " + w[i];
    }
    e.form += "\n";
  }
  if (!dnat || (hairpin && *hairpin != e.backend.addr)) return std::nullopt;
  return e;
}

std::string table_text(uint8_t fam, const std::string& table) { return (fam == 6 ? "ip6 " : "ip ") + table; }

}  // namespace

std::shared_ptr<NatChains> nat_chains_of(const ir::Ruleset& rs) {
  auto nc = std::make_shared<NatChains>();
  for (const auto& t : rs.tables) {
    if ((t.iptables_rules && t.name != "nat") || (t.family != ir::Family::Ip && t.family != ir::Family::Ip6)) continue;
    auto& out = nc->tables[{t.family == ir::Family::Ip ? (uint8_t)4 : (uint8_t)6, t.name}];
    out.nft = !t.iptables_rules;
    for (const auto& c : t.chains) {
      auto& lines = out.chains[c.name];
      for (const auto& r : c.rules) {
        size_t a = r.text.find_first_not_of(" \t"), b = r.text.find_last_not_of(" \t");
        lines.push_back(a == std::string::npos ? "" : r.text.substr(a, b - a + 1));
      }
    }
    for (const auto& [c, lines] : out.chains)
      for (const auto& l : lines)
        for (const auto& to : targets_of(l, out.nft))
          if (out.chains.count(to)) out.referrers[to].insert(c);
    // A named verdict map's elements reach chains too (an anonymous one's
    // are in its rule's line): "@map" refers to them, and is no chain.
    for (const auto& set : t.sets)
      if (!set.anonymous)
        for (const auto& e : set.elements)
          if (e.verdict && out.chains.count(e.verdict->chain)) out.referrers[e.verdict->chain].insert("@" + set.name);
  }
  if (nc->tables.empty()) return nullptr;
  return nc;
}

void index_services(const NatChains& nc, const policy::Policy& live) {
  if (nc.indexed == live.checksum && !nc.indexed.empty()) return;
  nc.service_of.clear();
  for (uint32_t id = 0; id < live.services.size(); ++id) {
    const auto& sv = live.services[id];
    nc.service_of[{sv.family, sv.name}] = id;
  }
  nc.indexed = live.checksum;
}

std::variant<FastUpdate, std::string> plan_fast_update(const NatChains& before, const ChainChanges& changes,
                                                       const policy::Policy& live, const ChainReader& read) {
  if (changes.empty()) return std::string("no chain changed");
  FastUpdate u;
  // Per (family, table): the changed chains, and which of them are live
  // services' load-balancing chains.
  using TableKey = std::pair<uint8_t, std::string>;
  std::map<TableKey, std::map<std::string, bool>> changed;  // chain -> gone
  for (const auto& [key, gone] : changes) {
    const auto& [fam, table, chain] = key;
    if (!fam || !before.tables.count({fam, table}))
      return "a change outside the tables the last full read kept (" + (fam ? table_text(fam, table) : table) + ")";
    changed[{fam, table}][chain] = gone;
  }
  index_services(before, live);
  auto service = [&](const TableKey& t, const std::string& chain) {
    auto it = before.service_of.find({t.first, t.second + "/" + chain});
    return it == before.service_of.end() ? std::nullopt : std::optional<uint32_t>(it->second);
  };
  // Before reading anything: each changed chain the last read had must be
  // a load-balancing chain or reached from such chains alone (an endpoint
  // chain); a change of KUBE-SERVICES, say, is refused here.
  constexpr size_t kMaxChains = 4096;
  for (const auto& [tk, chains] : changed) {
    if (chains.size() > kMaxChains) return std::string("too many chains changed to read them one by one");
    const auto& old = before.tables.at(tk);
    for (const auto& [c, gone] : chains) {
      if (service(tk, c) || !old.chains.count(c)) continue;
      auto r = old.referrers.find(c);
      auto lb = [&](const std::string& from) { return service(tk, from) && chains.count(from); };
      if (r == old.referrers.end() || std::none_of(r->second.begin(), r->second.end(), lb))
        return "the chain " + c + " is not a service's";
      for (const auto& from : r->second)
        if (!lb(from)) return "the chain " + c + " is also reached from " + from;
    }
  }
  for (const auto& [tk, chains] : changed) {
    const auto& [fam, table] = tk;
    const auto& old = before.tables.at(tk);
    bool nft = old.nft;
    auto now = [&](const std::string& c) -> Result<Lines> {  // a chain after the change
      auto ch = chains.find(c);
      if (ch == chains.end()) {
        auto o = old.chains.find(c);
        if (o == old.chains.end()) return Error{ENOENT, "chain " + c + " does not exist"};
        return o->second;
      }
      if (ch->second) return Error{ENOENT, "chain " + c + " was deleted"};
      auto& slot = u.chains[tk][c];
      if (!slot) {
        auto r = read(fam, table, c, nft);
        if (!r) return r.error();
        ++u.chains_read;
        slot = std::move(*r);
      }
      return *slot;
    };
    std::set<std::string> lb, endpoints_then, endpoints_now;
    for (const auto& [c, gone] : chains)
      if (service(tk, c)) {
        if (gone) return "the load-balancing chain " + c + " was deleted";
        lb.insert(c);
      }
    for (const auto& c : lb) {
      uint32_t id = *service(tk, c);
      const auto& sv = live.services[id];
      auto o = old.chains.find(c);
      size_t k_old = sv.backends.size();
      if (o == old.chains.end() || !k_old || (!nft && o->second.size() < k_old))
        return "the last full read does not have " + c;
      const Lines& then = o->second;
      // The old choice and its endpoint chains: their common forms.
      auto was_choice = nft ? nft_choice(then, c) : iptables_choice(then, then.size() - k_old, c);
      if (auto* why = std::get_if<std::string>(&was_choice)) return *why;
      const Choice& oc = std::get<Choice>(was_choice);
      std::optional<std::string> ep_form;
      std::vector<policy::ServiceBackend> was;
      for (const auto& t : oc.targets) {
        auto tc = old.chains.find(t);
        auto e = tc == old.chains.end() ? std::nullopt : endpoint_of(tc->second, fam, nft);
        if (!e || (ep_form && *ep_form != e->form))
          return "the endpoint chains of " + c + " differ in more than their endpoints";
        ep_form = e->form;
        endpoints_then.insert(t);
        was.push_back(e->backend);
      }
      // The chains read then are the ones the live policy was made of.
      if (was != sv.backends) return "the live backends of " + c + " are not the last full read's";
      auto cur = now(c);
      if (!cur) return cur.error().message();
      if (cur->size() <= oc.head || !std::equal(then.begin(), then.begin() + (long)oc.head, cur->begin()))
        return "the rules of " + c + " before its endpoint choice changed";
      auto now_choice = nft ? nft_choice(*cur, c) : iptables_choice(*cur, oc.head, c);
      if (auto* why = std::get_if<std::string>(&now_choice)) return *why;
      const Choice& nc = std::get<Choice>(now_choice);
      if (nc.head != oc.head) return "the rules of " + c + " before its endpoint choice changed";
      if (nc.form != oc.form) return "the endpoint choice of " + c + " changed form";
      if (nc.targets.size() > NF_SVC_BACKENDS_MAX) return c + " has more endpoints than a service map holds";
      std::vector<policy::ServiceBackend> backends;
      for (const auto& t : nc.targets) {
        if (service(tk, t)) return c + " jumps to a load-balancing chain";
        auto ep = now(t);
        if (!ep) return ep.error().message();
        auto e = endpoint_of(*ep, fam, nft);
        if (!e || e->form != *ep_form) return "the endpoint chain " + t + " differs in more than its endpoint";
        backends.push_back(e->backend);
        endpoints_now.insert(t);
      }
      if (backends != sv.backends) u.services.emplace_back(id, std::move(backends));
    }
    // Every other changed chain is an endpoint chain of these services
    // alone: gone, or one of their endpoints now.
    for (const auto& [c, gone] : chains) {
      if (lb.count(c)) continue;
      if (!endpoints_then.count(c) && !endpoints_now.count(c)) return "the chain " + c + " is not a service's";
      if (!gone && !endpoints_now.count(c)) return "the chain " + c + " stays but no service jumps to it";
      if (gone)
        u.chains[tk][c] = std::nullopt;
      else if (!u.chains[tk].count(c))
        return "the chain " + c + " changed but was not read";
    }
  }
  return u;
}

void apply_chains(NatChains& nc, const FastUpdate& u) {
  for (const auto& [tk, chains] : u.chains) {
    auto& table = nc.tables[tk];
    for (const auto& [c, lines] : chains) {
      if (auto o = table.chains.find(c); o != table.chains.end())
        for (const auto& l : o->second)
          for (const auto& to : targets_of(l, table.nft))
            if (auto r = table.referrers.find(to);
                r != table.referrers.end() && r->second.erase(c) && r->second.empty())
              table.referrers.erase(r);
      if (lines)
        table.chains[c] = *lines;
      else
        table.chains.erase(c);
    }
    // Jumps and gotos to chains (not to targets such as DNAT or MARK).
    for (const auto& [c, lines] : chains)
      if (lines)
        for (const auto& l : *lines)
          for (const auto& to : targets_of(l, table.nft))
            if (table.chains.count(to)) table.referrers[to].insert(c);
  }
}

}  // namespace nf2bpf::ops
