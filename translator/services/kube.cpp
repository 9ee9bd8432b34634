#include "translator/services/kube.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include "translator/ir/values.h"

namespace nf2bpf::services {

using ir::Field;

namespace {

std::string proto_name(uint64_t p) {
  switch (p) {
    case 6: return "tcp";
    case 17: return "udp";
    case 132: return "sctp";
  }
  return std::to_string(p);
}

// The value a match pins a field to (one value or one prefix), if any.
const ir::Match* match_of(const ir::Rule& r, Field f) {
  for (const auto& m : r.matches)
    if (m.field == f && !m.negated && std::holds_alternative<ir::IntervalSet>(m.value)) return &m;
  return nullptr;
}
std::optional<uint64_t> single(const ir::Rule& r, Field f) {
  const ir::Match* m = match_of(r, f);
  if (!m) return std::nullopt;
  const auto& iv = std::get<ir::IntervalSet>(m->value).intervals();
  if (iv.size() != 1 || iv[0].lo != iv[0].hi) return std::nullopt;
  return (uint64_t)iv[0].lo;
}
std::string addr_text(const ir::IntervalSet& s) {
  std::string a = ir::format_addr_set(s);
  for (const char* host : {"/32", "/128"})
    if (a.size() > std::string(host).size() && a.ends_with(host)) a.resize(a.size() - std::string(host).size());
  return a;
}

// The seconds of a rule's ClientIP affinity test (kube-proxy's): the recent
// match's --seconds (iptables), the timeout of the set it looks the source
// up in (nftables).
std::optional<uint64_t> recent_seconds(const ir::Rule& r) {
  for (const auto& m : r.matches) {
    bool lookup = m.module == "nftset" && !m.args.empty() && m.args[0].second == "lookup";
    if (m.module == "recent" || lookup)
      for (const auto& [k, v] : m.args) {
        if (k == "--seconds") return std::strtoull(v.c_str(), nullptr, 10);
        if (lookup && k == "timeout") return std::strtoull(v.c_str(), nullptr, 10) / 1000;
      }
  }
  return std::nullopt;
}

// A DNAT statement's target, the endpoint.
std::optional<Backend> dnat_target(const ir::Rule& r) {
  for (const auto& st : r.statements) {
    if (st.kind != ir::StmtKind::Dnat || !st.nat.addrs || st.nat.addrs->empty()) continue;
    Backend b;
    b.address = addr_text(*st.nat.addrs);
    if (st.nat.ports) b.port = st.nat.ports->first;
    b.loc = r.loc;
    return b;
  }
  return std::nullopt;
}

// The sources a rule excludes (`! -s CIDR`, `ip saddr != { ... }`).
std::vector<std::string> excluded_sources(const ir::Rule& r) {
  std::vector<std::string> out;
  for (const auto& m : r.matches)
    if (m.field == Field::SrcAddr && m.negated && std::holds_alternative<ir::IntervalSet>(m.value))
      out.push_back(ir::format_addr_set(std::get<ir::IntervalSet>(m.value)));
  return out;
}

// A rule that marks the service's packets for masquerading: which ones, in
// words ("from outside CIDR", else `otherwise`: "all" or "external").
void add_masquerade(Service& s, const ir::Rule& r, const std::string& otherwise) {
  auto ex = excluded_sources(r);
  std::string why = ex.empty() ? otherwise : "from outside " + ex.back();
  if (s.masquerade.find(why) == std::string::npos) s.masquerade += (s.masquerade.empty() ? "" : ", ") + why;
}

std::string family_of(ir::Family f) { return f == ir::Family::Ip6 ? "ip6" : "ip"; }

void add_backend(Service& s, Backend b) {
  for (auto& o : s.backends)
    if (o.address == b.address && o.port == b.port) {
      o.local = o.local || b.local;
      return;
    }
  s.backends.push_back(std::move(b));
}
void add_frontend(Service& s, Frontend f) {
  for (const auto& o : s.frontends)
    if (o.kind == f.kind && o.address == f.address && o.protocol == f.protocol && o.port == f.port) return;
  s.frontends.push_back(std::move(f));
}
void add_rule(Service& s, const ir::SourceLoc& loc) {
  for (const auto& o : s.rules)
    if (o.file == loc.file && o.line == loc.line && o.pointer == loc.pointer) return;
  s.rules.push_back(loc);
}

// ---- iptables mode -------------------------------------------------------------

class IptablesMode {
 public:
  IptablesMode(const ir::Table* nat, const ir::Table* filter, std::map<std::string, Service>& out)
      : nat_(nat), filter_(filter), chains_(nat), out_(out) {}

  void run() {
    if (const ir::Chain* c = nat_->find_chain("KUBE-SERVICES"))
      for (const auto& r : c->rules) service_rule(r);
    if (const ir::Chain* c = nat_->find_chain("KUBE-NODEPORTS"))
      for (const auto& r : c->rules) nodeport_rule(r);
    if (filter_)
      for (const char* chain : {"KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES"})
        if (const ir::Chain* c = filter_->find_chain(chain))
          for (const auto& r : c->rules) reject_rule(r, chain);
  }

 private:
  // "ns/svc:port cluster IP" -> "ns/svc:port"
  static std::string name_of(const std::string& comment) {
    for (const char* suffix :
         {" cluster IP", " external IP", " loadbalancer IP", " has no endpoints", " has no local endpoints"})
      if (comment.ends_with(suffix)) return comment.substr(0, comment.size() - std::string(suffix).size());
    return comment;
  }

  Service& service(const std::string& name) {
    Service& s = out_[family_of(nat_->family) + " " + name];
    s.name = name;
    s.family = family_of(nat_->family);
    return s;
  }

  Frontend frontend_of(const ir::Rule& r, const std::string& kind) {
    Frontend f;
    f.kind = kind;
    if (const ir::Match* m = match_of(r, Field::DstAddr)) f.address = addr_text(std::get<ir::IntervalSet>(m->value));
    if (auto p = single(r, Field::L4Proto)) f.protocol = proto_name(*p);
    if (auto p = single(r, Field::DstPort)) f.port = (uint16_t)*p;
    f.loc = r.loc;
    return f;
  }

  void service_rule(const ir::Rule& r) {
    const std::string& to = r.verdict.chain;
    if (r.verdict.kind != ir::VerdictKind::Jump || r.comment.empty() || to == "KUBE-NODEPORTS") return;
    std::string kind = to.starts_with("KUBE-SVC-")   ? "ClusterIP"
                       : to.starts_with("KUBE-EXT-") ? "ExternalIP"
                       : to.starts_with("KUBE-FW-")  ? "LoadBalancer"
                                                     : "";
    if (kind.empty()) return;
    Service& s = service(name_of(r.comment));
    add_frontend(s, frontend_of(r, kind));
    add_rule(s, r.loc);
    follow(s, to);
  }

  void nodeport_rule(const ir::Rule& r) {
    if (r.verdict.kind != ir::VerdictKind::Jump || r.comment.empty()) return;
    Service& s = service(name_of(r.comment));
    add_frontend(s, frontend_of(r, "NodePort"));
    add_rule(s, r.loc);
    follow(s, r.verdict.chain);
  }

  void reject_rule(const ir::Rule& r, const std::string& chain) {
    if (r.verdict.kind != ir::VerdictKind::Reject && r.verdict.kind != ir::VerdictKind::Drop) return;
    if (!r.comment.ends_with(" has no endpoints") && !r.comment.ends_with(" has no local endpoints")) return;
    Service& s = service(name_of(r.comment));
    s.no_endpoints = r.comment.ends_with(" has no endpoints");
    bool nodeport = std::any_of(r.matches.begin(), r.matches.end(),
                                [](const ir::Match& m) { return m.field == Field::DstAddrType; });
    std::string kind = chain == "KUBE-SERVICES" ? "ClusterIP" : nodeport ? "NodePort" : "ExternalIP";
    Frontend f = frontend_of(r, kind);
    if (nodeport) f.address.clear();
    add_frontend(s, f);
    add_rule(s, r.loc);
  }

  // A service's chains: KUBE-FW (source ranges) -> KUBE-EXT (masquerade,
  // policy) -> KUBE-SVC / KUBE-SVL (endpoints) -> KUBE-SEP (DNAT).
  void follow(Service& s, const std::string& name, int depth = 0) {
    const ir::Chain* c = chains_.find(name);
    if (!c || depth > 4 || !visited_.insert(s.family + s.name + "|" + name).second) return;
    s.chains.push_back(nat_->name + "/" + name);
    bool svc = name.starts_with("KUBE-SVC-") || name.starts_with("KUBE-SVL-");
    for (const auto& r : c->rules) {
      add_rule(s, r.loc);
      const std::string& to = r.verdict.chain;
      bool jumps = r.verdict.kind == ir::VerdictKind::Jump || r.verdict.kind == ir::VerdictKind::Goto;
      if (name.starts_with("KUBE-FW-") && jumps && to.starts_with("KUBE-EXT-"))
        if (const ir::Match* m = match_of(r, Field::SrcAddr))
          s.source_ranges.push_back(ir::format_addr_set(std::get<ir::IntervalSet>(m->value)));
      if (!jumps) continue;
      if (to == "KUBE-MARK-MASQ") {
        add_masquerade(s, r, svc ? "all" : "external");
      } else if (to.starts_with("KUBE-SEP-")) {
        if (auto t = recent_seconds(r)) s.affinity_seconds = t;
        endpoint(s, to, name.starts_with("KUBE-SVL-"));
      } else {
        if (to.starts_with("KUBE-SVL-")) s.external_local = true;
        follow(s, to, depth + 1);
      }
    }
  }

  void endpoint(Service& s, const std::string& sep, bool local) {
    const ir::Chain* c = chains_.find(sep);
    if (!c) return;
    for (const auto& r : c->rules) {
      add_rule(s, r.loc);
      if (auto b = dnat_target(r)) {
        b->local = local;
        b->chain = nat_->name + "/" + sep;
        add_backend(s, *b);
      }
    }
  }

  const ir::Table* nat_;
  const ir::Table* filter_;
  ir::ChainIndex chains_;  // nat_'s
  std::map<std::string, Service>& out_;
  std::set<std::string> visited_;
};

// ---- nftables mode -------------------------------------------------------------

class NftMode {
 public:
  NftMode(const ir::Ruleset& rs, const ir::Table& t, std::map<std::string, Service>& out)
      : rs_(rs), t_(t), chains_(&t), out_(out) {}

  void run() {
    map_elements("service-ips", false);
    map_elements("service-nodeports", true);
    if (const ir::Set* m = t_.find_set("no-endpoint-services"))
      for (const auto& e : m->elements) no_endpoint(*m, e, false);
    if (const ir::Set* m = t_.find_set("no-endpoint-nodeports"))
      for (const auto& e : m->elements) no_endpoint(*m, e, true);
    if (const ir::Set* m = t_.find_set("firewall-ips"))
      for (const auto& e : m->elements)
        if (e.verdict) firewall(*m, e);
  }

 private:
  // "service-2QRHZV4L-default/kubernetes/tcp/https" -> "default/kubernetes:https"
  static std::string name_of(const std::string& chain) {
    auto dash = chain.find('-');
    if (dash == std::string::npos) return chain;
    dash = chain.find('-', dash + 1);
    std::string rest = dash == std::string::npos ? chain : chain.substr(dash + 1);
    auto cut = rest.find("__");  // an endpoint chain's "__ADDR/PORT"
    if (cut != std::string::npos) rest.resize(cut);
    std::vector<std::string> parts;
    size_t from = 0;
    for (size_t i = 0; i <= rest.size(); ++i)
      if (i == rest.size() || rest[i] == '/') parts.push_back(rest.substr(from, i - from)), from = i + 1;
    if (parts.size() != 4) return rest;
    return parts[0] + "/" + parts[1] + ":" + parts[3];
  }

  Service& service(const std::string& name) {
    Service& s = out_[family_of(t_.family) + " " + name];
    s.name = name;
    s.family = family_of(t_.family);
    return s;
  }

  // What each key component of a named map is, by its declared type
  // ("ipv4_addr . inet_proto . inet_service : verdict"): a named map's
  // fields are only known from the rules that look it up.
  static std::vector<Field> key_fields(const ir::Set& m) {
    std::vector<Field> out;
    std::string t = m.origin_type.substr(0, m.origin_type.find(" :"));
    size_t from = 0;
    while (from <= t.size()) {
      size_t dot = t.find(" . ", from);
      std::string c = t.substr(from, dot == std::string::npos ? std::string::npos : dot - from);
      out.push_back(c == "ipv4_addr" || c == "ipv6_addr" ? Field::DstAddr
                    : c == "inet_proto"                  ? Field::L4Proto
                    : c == "inet_service"                ? Field::DstPort
                                                         : Field::Opaque);
      if (dot == std::string::npos) break;
      from = dot + 3;
    }
    return out;
  }
  static std::optional<uint64_t> key_value(const ir::Set& m, const ir::SetElement& e, Field f) {
    auto fields = key_fields(m);
    for (size_t i = 0; i < fields.size() && i < e.key.size(); ++i)
      if (fields[i] == f && e.key[i].intervals().size() == 1) return (uint64_t)e.key[i].intervals()[0].lo;
    return std::nullopt;
  }
  static std::string key_addr(const ir::Set& m, const ir::SetElement& e) {
    auto fields = key_fields(m);
    for (size_t i = 0; i < fields.size() && i < e.key.size(); ++i)
      if (fields[i] == Field::DstAddr) return addr_text(e.key[i]);
    return "";
  }
  Frontend frontend_of(const ir::Set& m, const ir::SetElement& e, const std::string& kind) {
    Frontend f;
    f.kind = kind;
    f.address = key_addr(m, e);
    if (auto p = key_value(m, e, Field::L4Proto)) f.protocol = proto_name(*p);
    if (auto p = key_value(m, e, Field::DstPort)) f.port = (uint16_t)*p;
    f.loc = e.loc;
    return f;
  }

  void map_elements(const char* map, bool nodeports) {
    const ir::Set* m = t_.find_set(map);
    if (!m) return;
    for (const auto& e : m->elements) {
      if (!e.verdict || e.verdict->chain.empty()) continue;
      const std::string& to = e.verdict->chain;
      // service-ips: service-* for a ClusterIP, external-* for an external or LoadBalancer IP.
      std::string kind = nodeports ? "NodePort" : to.starts_with("service-") ? "ClusterIP" : "ExternalIP";
      Service& s = service(name_of(to));
      add_frontend(s, frontend_of(*m, e, kind));
      add_rule(s, e.loc);
      follow(s, to, 0);
    }
  }

  // `local`: reached through the local- chain, the Local traffic policy's
  // choice among the node's own endpoints.
  void follow(Service& s, const std::string& name, int depth, bool local = false) {
    const ir::Chain* c = chains_.find(name);
    local = local || name.starts_with("local-");
    if (!c || depth > 4 || !visited_.insert(s.family + s.name + "|" + name + (local ? "|local" : "")).second) return;
    s.chains.push_back(t_.name + "/" + name);
    if (name.starts_with("local-")) s.external_local = true;
    bool endpoint = name.starts_with("endpoint-");
    for (const auto& r : c->rules) {
      add_rule(s, r.loc);
      if (endpoint) {
        if (auto b = dnat_target(r)) b->local = local, b->chain = t_.name + "/" + name, add_backend(s, *b);
        continue;
      }
      if (r.verdict.chain == "mark-for-masquerade")
        add_masquerade(s, r, name.starts_with("external-") ? "external" : "all");
      if (auto t = recent_seconds(r)) s.affinity_seconds = t;
      if (!r.verdict.chain.empty() && r.verdict.chain != "mark-for-masquerade")
        follow(s, r.verdict.chain, depth + 1, local);
      if (r.vmap)
        if (const ir::Set* vm = rs_.find_set(t_, r.vmap->name))
          for (const auto& e : vm->elements)
            if (e.verdict && !e.verdict->chain.empty()) follow(s, e.verdict->chain, depth + 1, local);
    }
  }

  void no_endpoint(const ir::Set& m, const ir::SetElement& e, bool nodeport) {
    // The element's comment names the service ("default/empty:http").
    if (e.comment.empty()) return;
    Service& s = service(e.comment);
    s.no_endpoints = true;
    Frontend f = frontend_of(m, e, nodeport ? "NodePort" : "ClusterIP");
    add_frontend(s, f);
    add_rule(s, e.loc);
  }

  void firewall(const ir::Set& m, const ir::SetElement& e) {
    const std::string& to = e.verdict->chain;
    Service& s = service(name_of(to));
    add_frontend(s, frontend_of(m, e, "LoadBalancer"));
    add_rule(s, e.loc);
    if (const ir::Chain* c = chains_.find(to))
      for (const auto& r : c->rules) {
        add_rule(s, r.loc);
        for (auto& x : excluded_sources(r)) s.source_ranges.push_back(std::move(x));
      }
  }

  const ir::Ruleset& rs_;
  const ir::Table& t_;
  ir::ChainIndex chains_;  // t_'s
  std::map<std::string, Service>& out_;
  std::set<std::string> visited_;
};

}  // namespace

Recognition recognise(const ir::Ruleset& rs) {
  Recognition out;
  std::map<std::string, Service> found;
  for (const auto& t : rs.tables) {
    if (t.name == "nat" && t.find_chain("KUBE-SERVICES")) {
      const ir::Table* filter = nullptr;
      for (const auto& f : rs.tables)
        if (f.name == "filter" && f.family == t.family) filter = &f;
      IptablesMode(&t, filter, found).run();
      out.mode = "iptables";
    } else if (t.name == "kube-proxy" && t.find_set("service-ips")) {
      NftMode(rs, t, found).run();
      out.mode = "nftables";
    }
  }
  for (auto& entry : found) {
    Service& s = entry.second;  // (not a structured binding: the lambdas below capture it)
    // nftables mode sends a LoadBalancer IP through service-ips to the
    // external chain as it does an external IP: one frontend, a LoadBalancer.
    std::erase_if(s.frontends, [&](const Frontend& f) {
      return f.kind == "ExternalIP" && std::any_of(s.frontends.begin(), s.frontends.end(), [&](const Frontend& o) {
               return o.kind == "LoadBalancer" && o.address == f.address && o.port == f.port &&
                      o.protocol == f.protocol;
             });
    });
    std::sort(s.rules.begin(), s.rules.end(), [](const ir::SourceLoc& a, const ir::SourceLoc& b) {
      return std::tie(a.file, a.line, a.pointer) < std::tie(b.file, b.line, b.pointer);
    });
    out.services.push_back(std::move(s));
  }
  return out;
}

}  // namespace nf2bpf::services
