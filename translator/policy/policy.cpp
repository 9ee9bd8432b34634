#include "translator/policy/policy.h"

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "common/sha256.h"

namespace nf2bpf::policy {

bool IfacePredicate::matches(std::string_view name) const {
  for (const auto& c : clauses) {
    bool any = false;
    for (const auto& p : c.patterns) any |= p.matches(name);
    if (any == c.negated) return false;
  }
  return true;
}

uint32_t Policy::iface_class(int which, std::string_view name) const {
  const auto& preds = iface_predicates[which];
  std::vector<bool> sig(preds.size());
  for (size_t i = 0; i < preds.size(); ++i) sig[i] = preds[i].matches(name);
  auto it = iface_classes[which].find(sig);
  return it == iface_classes[which].end() ? 0 : it->second;
}

size_t EntryKeyHash::operator()(const nf2bpf_entry_key& k) const {
  uint64_t h = 1469598103934665603ULL;
  const unsigned char* p = reinterpret_cast<const unsigned char*>(&k);
  for (size_t i = 0; i < sizeof k; ++i) h = (h ^ p[i]) * 1099511628211ULL;
  return h;
}

bool EntryKeyEq::operator()(const nf2bpf_entry_key& a, const nf2bpf_entry_key& b) const {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

std::pair<uint64_t, uint64_t> xt_rate(uint32_t avg) {
  static const uint64_t kSecs[] = {86400, 3600, 60, 1};
  size_t i = 1;
  for (; i < 4; ++i) {
    uint64_t m = kSecs[i] * 10000;
    if (avg > m || m / avg < m % avg) break;
  }
  return {kSecs[i - 1] * 10000 / avg, kSecs[i - 1]};
}

namespace {
template <typename T>
void put(std::string& out, const T& v) {
  // Every byte is hashed: a type with padding would hash whatever its padding
  // held, and the same policy would get different checksums (and a written
  // policy file could be refused as edited when loaded back).
  static_assert(std::has_unique_object_representations_v<T>, "hashed type has padding: make it an explicit field");
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}
void put_str(std::string& out, const std::string& s) {
  put(out, (uint32_t)s.size());
  out += s;
}
}  // namespace

std::string serialize(const Policy& p) {
  std::string out = "nf2bpf-policy-v1";
  put(out, p.cfg);
  for (const auto& h : p.hooks) put(out, h);
  put(out, (uint32_t)p.stages.size());
  for (const auto& s : p.stages) put(out, s);
  put(out, (uint32_t)p.tuples.size());
  for (const auto& t : p.tuples) put(out, t);
  put(out, (uint32_t)p.rules.size());
  for (const auto& r : p.rules) put(out, r);
  put(out, (uint32_t)p.stmts.size());
  for (const auto& s : p.stmts) put(out, s);
  put(out, (uint32_t)p.limits.size());
  for (const auto& l : p.limits) put(out, l);
  put(out, (uint32_t)p.nats.size());
  for (const auto& n : p.nats) put(out, n);
  put(out, (uint32_t)p.services.size());
  for (const auto& sv : p.services) {
    put(out, (uint32_t)sv.name.size());
    out += sv.name;
    put(out, sv.family), put(out, sv.mark_mask), put(out, sv.mark_value);
    put(out, (uint32_t)sv.backends.size());
    for (const auto& b : sv.backends) put(out, b.addr), put(out, b.port);
  }
  auto entries = p.entries;
  std::sort(entries.begin(), entries.end(),
            [](const auto& a, const auto& b) { return std::memcmp(&a.first, &b.first, sizeof a.first) < 0; });
  put(out, (uint32_t)entries.size());
  for (const auto& [k, v] : entries) put(out, k), put(out, v);
  auto lpm = p.lpm;
  std::sort(lpm.begin(), lpm.end(), [](const auto& a, const auto& b) {
    return std::tie(a.slot, a.addr, a.prefixlen) < std::tie(b.slot, b.addr, b.prefixlen);
  });
  put(out, (uint32_t)lpm.size());
  for (const auto& e : lpm) put(out, e.slot), put(out, e.addr), put(out, e.prefixlen), put(out, e.cls);
  out.append(reinterpret_cast<const char*>(p.small.data()), p.small.size() * sizeof(uint32_t));
  for (int w = 0; w < 2; ++w) {
    put(out, (uint32_t)p.iface_predicates[w].size());
    for (const auto& pr : p.iface_predicates[w]) {
      put(out, (uint32_t)pr.clauses.size());
      for (const auto& c : pr.clauses) {
        put(out, c.negated);
        put(out, (uint32_t)c.patterns.size());
        for (const auto& pat : c.patterns) put_str(out, pat.name), put(out, pat.prefix);
      }
    }
    for (const auto& [sig, cls] : p.iface_classes[w]) {
      for (bool b : sig) out.push_back(b ? '1' : '0');
      put(out, cls);
    }
  }
  put(out, (uint32_t)p.log_prefixes.size());
  for (const auto& s : p.log_prefixes) put_str(out, s);
  return out;
}

std::string compute_checksum(const Policy& p) { return sha256_hex(serialize(p)); }

std::optional<std::vector<uint32_t>> backend_changes(const Policy& a, const Policy& b) {
  if (a.services.size() != b.services.size() || a.rules.size() != b.rules.size()) return std::nullopt;
  std::vector<uint32_t> changed;
  for (uint32_t i = 0; i < a.services.size(); ++i)
    if (a.services[i].backends != b.services[i].backends) changed.push_back(i);
  auto shape = [](const Policy& p) {
    Policy s;
    s.cfg = p.cfg, s.hooks = p.hooks, s.stages = p.stages, s.tuples = p.tuples, s.rules = p.rules;
    s.stmts = p.stmts, s.limits = p.limits, s.nats = p.nats, s.services = p.services, s.entries = p.entries;
    s.lpm = p.lpm, s.small = p.small, s.iface_predicates = p.iface_predicates, s.iface_classes = p.iface_classes;
    s.log_prefixes = p.log_prefixes;
    for (auto& r : s.rules) r.src_line = 0, r.src_chain = 0;
    for (auto& sv : s.services) sv.backends.clear();
    return serialize(s);
  };
  if (shape(a) != shape(b)) return std::nullopt;
  return changed;
}

namespace {
const char* const kRejectNames[] = {"port-unreachable",  "tcp-reset",      "net-unreachable", "host-unreachable",
                                    "proto-unreachable", "net-prohibited", "host-prohibited", "admin-prohibited",
                                    "policy-fail",       "reject-route"};
}  // namespace

uint8_t reject_code(std::string_view w) {
  if (w.empty() || w == "tcp reset" || w == "tcp-reset") return w.empty() ? 0 : 1;
  for (std::string_view pre : {"icmpv6 ", "icmpx ", "icmp ", "icmp6-", "icmp-"})
    if (w.substr(0, pre.size()) == pre) {
      w.remove_prefix(pre.size());
      break;
    }
  static const std::pair<std::string_view, uint8_t> kNames[] = {
      {"port-unreachable", 0}, {"port-unreach", 0},     {"net-unreachable", 2},   {"net-unreach", 2},
      {"no-route", 2},         {"host-unreachable", 3}, {"host-unreach", 3},      {"addr-unreachable", 3},
      {"addr-unreach", 3},     {"prot-unreachable", 4}, {"proto-unreachable", 4}, {"proto-unreach", 4},
      {"net-prohibited", 5},   {"net-prohib", 5},       {"host-prohibited", 6},   {"host-prohib", 6},
      {"admin-prohibited", 7}, {"admin-prohib", 7},     {"adm-prohibited", 7},    {"policy-fail", 8},
      {"reject-route", 9}};
  for (const auto& [n, c] : kNames)
    if (w == n) return c;
  return kRejectUnknown;
}

const char* reject_name(uint8_t code) { return code < std::size(kRejectNames) ? kRejectNames[code] : "unknown"; }

}  // namespace nf2bpf::policy
