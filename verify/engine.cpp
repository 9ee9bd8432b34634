#include "verify/engine.h"

namespace nf2bpf::verify {

const char* to_string(Verdict v) {
  switch (v) {
    case Verdict::Accept: return "ACCEPT";
    case Verdict::Drop: return "DROP";
    case Verdict::Reject: return "REJECT";
    case Verdict::Queue: return "QUEUE";
    case Verdict::Indeterminate: return "INDETERMINATE";
  }
  return "?";
}

namespace {

// iptables and ip6tables accept short aliases for the reject types; compare
// what is sent, not how it was spelled.
std::string canonical_reject(const std::string& w) {
  static const std::pair<const char*, const char*> kAliases[] = {
      {"net-unreach", "icmp-net-unreachable"},   {"host-unreach", "icmp-host-unreachable"},
      {"proto-unreach", "icmp-proto-unreachable"}, {"net-prohib", "icmp-net-prohibited"},
      {"host-prohib", "icmp-host-prohibited"},   {"admin-prohib", "icmp-admin-prohibited"},
      {"no-route", "icmp6-no-route"},            {"adm-prohibited", "icmp6-adm-prohibited"},
      {"addr-unreach", "icmp6-addr-unreachable"},
  };
  for (const auto& [a, c] : kAliases)
    if (w == a) return c;
  return w;
}

}  // namespace

bool Decision::same_verdict(const Decision& o) const {
  if (verdict != o.verdict) return false;
  if (verdict != Verdict::Reject) return true;
  std::string a = canonical_reject(reject_with), b = canonical_reject(o.reject_with);
  // "port-unreach" is the v4 or v6 port unreachable depending on the family.
  auto port = [](const std::string& s) {
    return s == "port-unreach" || s == "icmp-port-unreachable" || s == "icmp6-port-unreachable" || s.empty();
  };
  if (port(a) && port(b)) return true;
  return a == b;
}

std::string Decision::verdict_text() const {
  std::string s = to_string(verdict);
  if (verdict == Verdict::Reject && !reject_with.empty()) s += " (" + reject_with + ")";
  return s;
}

}  // namespace nf2bpf::verify
