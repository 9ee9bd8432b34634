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

// The chain a rule line jumps or goes to ("" when none).
std::string target_of(const std::vector<std::string>& w) {
  for (size_t i = 0; i + 1 < w.size(); ++i)
    if (w[i] == "-j" || w[i] == "-g") return w[i + 1];
  return "";
}

// One line of a load-balancing cascade: its form (the line without its
// chain, comment text, draw and target), its draw and its target.
struct Pick {
  std::string form;
  std::optional<double> p;
  std::string target;
  bool jump = false;  // -j, not -g
};
std::optional<Pick> pick_of(const std::string& line) {
  auto w = words(line);
  if (w.size() < 4 || w[0] != "-A" || w[w.size() - 2] != "-j") return std::nullopt;
  Pick k;
  k.target = w.back();
  k.jump = true;
  for (size_t i = 2; i + 2 < w.size(); ++i) {
    if (w[i] == "-m" && w[i + 1] == "comment" && i + 3 < w.size() - 2 && w[i + 2] == "--comment") {
      k.form += "-m comment --comment * ";
      i += 3;
      continue;
    }
    if (w[i] == "-m" && w[i + 1] == "statistic" && i + 5 < w.size() - 2 && w[i + 2] == "--mode" &&
        w[i + 3] == "random" && w[i + 4] == "--probability" && !k.p) {
      char* end = nullptr;
      double p = std::strtod(w[i + 5].c_str(), &end);
      if (!end || *end || !(p > 0 && p <= 1)) return std::nullopt;
      k.p = p;
      i += 5;
      continue;
    }
    k.form += w[i] + " ";
  }
  return k;
}

// An endpoint chain: its rules with the endpoint written as @EP (the
// hairpin test `-s EP/32`) and @EP:@PORT (the DNAT), and that endpoint.
struct Endpoint {
  std::string form;
  policy::ServiceBackend backend;
};
std::optional<Endpoint> endpoint_of(const Lines& lines, uint8_t family) {
  ir::AddrFamily fam = family == 6 ? ir::AddrFamily::V6 : ir::AddrFamily::V4;
  const std::string host = family == 6 ? "/128" : "/32";
  Endpoint e;
  std::optional<ir::u128> hairpin;
  bool dnat = false;
  for (const auto& line : lines) {
    auto w = words(line);
    if (w.size() < 2 || w[0] != "-A") return std::nullopt;
    e.form += "-A @";
    for (size_t i = 2; i < w.size(); ++i) {
      if (w[i] == "-s" && i + 1 < w.size() && !hairpin) {
        const std::string& a = w[i + 1];
        if (a.size() <= host.size() || a.compare(a.size() - host.size(), host.size(), host) != 0) return std::nullopt;
        hairpin = ir::parse_addr(std::string_view(a).substr(0, a.size() - host.size()), fam);
        if (!hairpin) return std::nullopt;
        e.form += " -s @EP";
        ++i;
        continue;
      }
      if (w[i] == "--to-destination" && i + 1 < w.size() && !dnat) {
        std::string_view to = w[i + 1];
        size_t colon = to.rfind(':');
        if (colon == std::string_view::npos) return std::nullopt;
        std::string_view addr = to.substr(0, colon), port = to.substr(colon + 1);
        if (family == 6) {
          if (addr.size() < 2 || addr.front() != '[' || addr.back() != ']') return std::nullopt;
          addr = addr.substr(1, addr.size() - 2);
        }
        auto a = ir::parse_addr(addr, fam);
        char* end = nullptr;
        std::string ps(port);
        long pn = std::strtol(ps.c_str(), &end, 10);
        if (!a || ps.empty() || !end || *end || pn < 1 || pn > 65535) return std::nullopt;
        e.backend = {*a, (uint16_t)pn};
        dnat = true;
        e.form += " --to-destination @EP:@PORT";
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

}  // namespace

std::shared_ptr<NatChains> nat_chains_of(const ir::Ruleset& rs) {
  auto nc = std::make_shared<NatChains>();
  for (const auto& t : rs.tables) {
    if (!t.iptables_rules || t.name != "nat" || (t.family != ir::Family::Ip && t.family != ir::Family::Ip6)) continue;
    auto& chains = nc->tables[t.family == ir::Family::Ip ? 4 : 6];
    auto& refs = nc->referrers[t.family == ir::Family::Ip ? 4 : 6];
    for (const auto& c : t.chains) {
      auto& lines = chains[c.name];
      for (const auto& r : c.rules) {
        lines.push_back(r.text);
        if (r.verdict.kind == ir::VerdictKind::Jump || r.verdict.kind == ir::VerdictKind::Goto)
          refs[r.verdict.chain].insert(c.name);
      }
    }
  }
  if (nc->tables.empty()) return nullptr;
  return nc;
}

void index_services(const NatChains& nc, const policy::Policy& live) {
  if (nc.indexed == live.checksum && !nc.indexed.empty()) return;
  nc.service_of.clear();
  for (uint32_t id = 0; id < live.services.size(); ++id) {
    const auto& sv = live.services[id];
    if (sv.name.rfind("nat/", 0) == 0) nc.service_of[{sv.family, sv.name.substr(4)}] = id;
  }
  nc.indexed = live.checksum;
}

std::variant<FastUpdate, std::string> plan_fast_update(const NatChains& before, const ChainChanges& changes,
                                                       const policy::Policy& live, const ChainReader& read) {
  if (changes.empty()) return std::string("no chain changed");
  FastUpdate u;
  // Per family: the changed chains, and which of them are live services'
  // load-balancing chains.
  std::map<uint8_t, std::map<std::string, bool>> changed;  // chain -> gone
  for (const auto& [key, gone] : changes) {
    const auto& [fam, table, chain] = key;
    if (!fam || table != "nat") return "a change outside the ip and ip6 nat tables (" + table + ")";
    if (!before.tables.count(fam)) return std::string("a change to a nat table the last full read did not have");
    changed[fam][chain] = gone;
  }
  index_services(before, live);
  const auto& service_of = before.service_of;
  // Before reading anything: each changed chain the last read had must be
  // a load-balancing chain or reached from such chains alone (an endpoint
  // chain); a change of KUBE-SERVICES, say, is refused here.
  constexpr size_t kMaxChains = 4096;
  for (const auto& [fam, chains] : changed) {
    if (chains.size() > kMaxChains) return std::string("too many chains changed to read them one by one");
    const auto& old = before.tables.at(fam);
    const auto& refs = before.referrers.at(fam);
    for (const auto& [c, gone] : chains) {
      if (service_of.count({fam, c}) || !old.count(c)) continue;
      auto r = refs.find(c);
      auto lb = [&](const std::string& from) { return service_of.count({fam, from}) && chains.count(from); };
      if (r == refs.end() || std::none_of(r->second.begin(), r->second.end(), lb))
        return "the chain " + c + " is not a service's";
      for (const auto& from : r->second)
        if (!lb(from)) return "the chain " + c + " is also reached from " + from;
    }
  }
  for (const auto& [fam, chains] : changed) {
    const auto& old = before.tables.at(fam);
    auto now = [&](const std::string& c) -> Result<Lines> {  // a chain after the change
      auto ch = chains.find(c);
      if (ch == chains.end()) {
        auto o = old.find(c);
        if (o == old.end()) return Error{ENOENT, "chain " + c + " does not exist"};
        return o->second;
      }
      if (ch->second) return Error{ENOENT, "chain " + c + " was deleted"};
      auto& slot = u.chains[fam][c];
      if (!slot) {
        auto r = read(fam, c);
        if (!r) return r.error();
        ++u.chains_read;
        slot = std::move(*r);
      }
      return *slot;
    };
    std::set<std::string> lb, endpoints_then, endpoints_now;
    for (const auto& [c, gone] : chains)
      if (service_of.count({fam, c})) {
        if (gone) return "the load-balancing chain " + c + " was deleted";
        lb.insert(c);
      }
    for (const auto& c : lb) {
      uint32_t id = service_of.at({fam, c});
      const auto& sv = live.services[id];
      auto o = old.find(c);
      size_t k_old = sv.backends.size();
      if (o == old.end() || o->second.size() < k_old || !k_old) return "the last full read does not have " + c;
      const Lines& then = o->second;
      size_t head = then.size() - k_old;
      // The old cascade and its endpoint chains: their common forms.
      std::optional<std::string> pick_form, ep_form;
      std::vector<policy::ServiceBackend> was;
      for (size_t i = head; i < then.size(); ++i) {
        auto k = pick_of(then[i]);
        auto t = k ? old.find(k->target) : old.end();
        if (!k || t == old.end()) return "the cascade of " + c + " is not one this reads";
        auto e = endpoint_of(t->second, fam);
        if (!e || (pick_form && *pick_form != k->form) || (ep_form && *ep_form != e->form))
          return "the endpoint chains of " + c + " differ in more than their endpoints";
        pick_form = k->form, ep_form = e->form;
        endpoints_then.insert(k->target);
        was.push_back(e->backend);
      }
      // The chains read then are the ones the live policy was made of.
      if (was != sv.backends) return "the live backends of " + c + " are not the last full read's";
      auto cur = now(c);
      if (!cur) return cur.error().message();
      if (cur->size() <= head || !std::equal(then.begin(), then.begin() + (long)head, cur->begin()))
        return "the rules of " + c + " before its cascade changed";
      size_t k_new = cur->size() - head;
      if (k_new > NF_SVC_BACKENDS_MAX) return c + " has more endpoints than a service map holds";
      std::vector<policy::ServiceBackend> backends;
      for (size_t j = 0; j < k_new; ++j) {
        auto k = pick_of((*cur)[head + j]);
        if (!k || k->form != *pick_form) return "the cascade of " + c + " changed form";
        // Uniform: the j-th of k is drawn with chance 1/(k - j), the last
        // one unconditionally (as the compiler requires).
        double want = 1.0 / (double)(k_new - j);
        if (k->p ? std::fabs(*k->p - want) > 1e-6 * want : j + 1 != k_new)
          return "the draws of " + c + " are not uniform";
        if (service_of.count({fam, k->target})) return c + " jumps to a load-balancing chain";
        auto ep = now(k->target);
        if (!ep) return ep.error().message();
        auto e = endpoint_of(*ep, fam);
        if (!e || e->form != *ep_form) return "the endpoint chain " + k->target + " differs in more than its endpoint";
        backends.push_back(e->backend);
        endpoints_now.insert(k->target);
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
        u.chains[fam][c] = std::nullopt;
      else if (!u.chains[fam].count(c))
        return "the chain " + c + " changed but was not read";
    }
  }
  return u;
}

void apply_chains(NatChains& nc, const FastUpdate& u) {
  for (const auto& [fam, chains] : u.chains) {
    auto& table = nc.tables[fam];
    auto& refs = nc.referrers[fam];
    for (const auto& [c, lines] : chains) {
      if (auto o = table.find(c); o != table.end())
        for (const auto& l : o->second)
          if (auto r = refs.find(target_of(words(l))); r != refs.end() && r->second.erase(c) && r->second.empty())
            refs.erase(r);
      if (lines)
        table[c] = *lines;
      else
        table.erase(c);
    }
    // Jumps and gotos to chains (not to targets such as DNAT or MARK).
    for (const auto& [c, lines] : chains)
      if (lines)
        for (const auto& l : *lines)
          if (std::string t = target_of(words(l)); table.count(t)) refs[t].insert(c);
  }
}

}  // namespace nf2bpf::ops
