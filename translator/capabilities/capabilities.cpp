#include "translator/capabilities/capabilities.h"

#include <unordered_map>

namespace nf2bpf::caps {

const char* to_string(Fidelity f) {
  switch (f) {
    case Fidelity::Exact: return "exact";
    case Fidelity::Approximate: return "approximate";
    case Fidelity::Unsupported: return "unsupported";
  }
  return "?";
}

namespace {
const std::vector<Capability>& all() {
  static const std::vector<Capability> kTable = [] {
    std::vector<Capability> t = iptables_capabilities();
    const auto& n = nft_capabilities();
    t.insert(t.end(), n.begin(), n.end());
    return t;
  }();
  return kTable;
}
}  // namespace

const std::vector<Capability>& table() { return all(); }

const Capability* find(std::string_view frontend, std::string_view name) {
  static const auto index = [] {
    std::unordered_map<std::string, const Capability*> m;
    for (const auto& c : all()) m.emplace(std::string(c.frontend) + "\x1f" + std::string(c.name), &c);
    return m;
  }();
  auto it = index.find(std::string(frontend) + "\x1f" + std::string(name));
  return it == index.end() ? nullptr : it->second;
}

Counts count(std::string_view frontend) {
  Counts c;
  for (const auto& cap : all()) {
    if (cap.frontend != frontend) continue;
    if (cap.fidelity == Fidelity::Exact) ++c.exact;
    if (cap.fidelity == Fidelity::Approximate) ++c.approximate;
    if (cap.fidelity == Fidelity::Unsupported) ++c.unsupported;
  }
  return c;
}

}  // namespace nf2bpf::caps
