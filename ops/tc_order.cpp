#include "ops/tc_order.h"

namespace nf2bpf::ops {

std::string filters_before(const std::string& iface, bool ingress, const std::vector<loader::TcFilter>& filters) {
  std::string list;
  for (const auto& f : filters) {
    if (f.pref >= kNf2bpfTcPref) continue;
    list += (list.empty() ? "" : ", ") + (f.kind.empty() ? std::string("a filter") : f.kind) +
            (f.name.empty() ? "" : " " + f.name) + " (pref " + std::to_string(f.pref) + ")";
  }
  if (list.empty()) return {};
  return iface + (ingress ? " ingress" : " egress") + ": " + list + " runs before nf2bpf's filter (pref " +
         std::to_string(kNf2bpfTcPref) + ") and sees packets first";
}

std::vector<std::string> foreign_filters_before(const nlohmann::json& attach) {
  std::vector<std::string> out;
  for (const auto& e : attach) {
    uint32_t ifindex = e.value("ifindex", 0u);
    if (!ifindex) continue;
    for (bool ingress : {true, false}) {
      auto fl = loader::tc_filters(ifindex, ingress);
      if (!fl) continue;
      if (auto w = filters_before(e.value("name", "?"), ingress, *fl); !w.empty()) out.push_back(w);
    }
  }
  return out;
}

}  // namespace nf2bpf::ops
