#include "cli/apply_steps.h"

#include <filesystem>

namespace nf2bpf::cli {

Result<std::vector<loader::Interface>> pick_interfaces(const std::vector<std::string>& names, bool& bad_input,
                                                       std::string& why) {
  auto all = loader::list_interfaces();
  if (!all) return all.error();
  std::vector<loader::Interface> out;
  if (names.empty()) {
    for (const auto& i : *all)
      if (i.name != "lo") out.push_back(i);
    if (out.empty()) {
      bad_input = true;
      why = "this network namespace has no interface besides lo";
    }
    return out;
  }
  for (const auto& n : names) {
    bool found = false;
    for (const auto& i : *all)
      if (i.name == n) out.push_back(i), found = true;
    if (!found) {
      bad_input = true;
      why = "interface '" + n + "' does not exist in this network namespace";
      return out;
    }
  }
  return out;
}

std::string join_ifaces(const std::vector<loader::Interface>& v) {
  std::string s;
  for (const auto& i : v) s += (s.empty() ? "" : ", ") + i.name;
  return s;
}

Result<OpenedDataplane> open_dataplane(const std::string& pin_dir, bool* create_failed) {
  OpenedDataplane d;
  auto found = loader::Dataplane::find(pin_dir);
  if (!found) return found.error();
  d.dp = std::move(*found);
  if (!d.dp) {
    auto created = loader::Dataplane::create(pin_dir);
    if (!created) {
      if (create_failed) *create_failed = true;
      return created.error();
    }
    d.dp = std::move(*created);
    d.fresh = true;
  }
  return d;
}

std::string source_name(const std::string& file, const std::string& from) {
  if (from == "kernel") return "kernel";
  if (file == "-") return "<stdin>";
  return std::filesystem::absolute(file).string();
}

nlohmann::json generation_meta(const Translation& tr, const policy::Policy& pol, const std::string& source) {
  return {{"source", source},
          {"format", tr.input_format},
          {"rules", tr.rules.size()},
          {"unsupported", tr.count(caps::Fidelity::Unsupported)},
          {"compiled_rules", pol.rules.size()},
          {"entries", pol.entries.size()},
          {"tuples", pol.tuples.size()}};
}

Result<uint64_t> install_and_attach(OpenedDataplane& d, const policy::Policy& pol,
                                    const std::vector<loader::Interface>& ifaces,
                                    const std::vector<loader::AddrTypeEntry>& addrtypes, const nlohmann::json& meta,
                                    bool xdp, LiveAfterFailure& after) {
  auto gen = d.dp->install(pol, ifaces, addrtypes, meta);
  if (!gen) {
    after = LiveAfterFailure::Unchanged;
    if (d.fresh) (void)d.dp->unload();
    return gen.error();
  }
  if (auto r = d.dp->attach(ifaces, xdp); !r) {
    if (d.fresh) {
      (void)d.dp->unload();
      after = LiveAfterFailure::Unloaded;
    } else {
      after = d.dp->rollback() ? LiveAfterFailure::RolledBack : LiveAfterFailure::Unknown;
    }
    return r.error();
  }
  return *gen;
}

}  // namespace nf2bpf::cli
