#include "ops/deploy.h"

#include <algorithm>
#include <chrono>
#include <filesystem>

namespace nf2bpf::ops {

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

}  // namespace

InterfaceChoice choose_interfaces(const std::vector<loader::Interface>& all, const std::vector<std::string>& names,
                                  const std::vector<std::string>& exclude) {
  InterfaceChoice c;
  auto excluded = [&](const std::string& n) { return std::find(exclude.begin(), exclude.end(), n) != exclude.end(); };
  for (const auto& n : names)
    if (excluded(n)) {
      c.refused = "interface '" + n + "' is both named and excluded";
      return c;
    }
  for (const auto& n : names)
    if (std::none_of(all.begin(), all.end(), [&](const loader::Interface& i) { return i.name == n; })) {
      c.refused = "interface '" + n + "' does not exist in this network namespace";
      return c;
    }
  // lo carries every packet from this host to itself: it is always covered
  // (unless excluded), so that INPUT and OUTPUT rules see local traffic.
  for (const auto& i : all) {
    bool named = names.empty() || i.name == "lo" || std::find(names.begin(), names.end(), i.name) != names.end();
    if (named && !excluded(i.name)) c.ifaces.push_back(i);
  }
  if (c.ifaces.empty()) c.refused = "no interface of this network namespace is left to attach to";
  return c;
}

Result<InterfaceChoice> pick_interfaces(const std::vector<std::string>& names,
                                        const std::vector<std::string>& exclude) {
  auto all = loader::list_interfaces();
  if (!all) return all.error();
  return choose_interfaces(*all, names, exclude);
}

std::string join_ifaces(const std::vector<loader::Interface>& v) {
  std::string s;
  for (const auto& i : v) s += (s.empty() ? "" : ", ") + i.name;
  return s;
}

Result<std::string> resolve_pin_dir(const std::string& option) {
  if (!option.empty()) return option;
  return loader::Dataplane::default_pin_dir();
}

Result<std::unique_ptr<loader::Dataplane>> find_dataplane(const std::string& pin_dir_option, bool any_version) {
  auto dir = resolve_pin_dir(pin_dir_option);
  if (!dir) return dir.error();
  return loader::Dataplane::find(*dir, any_version);
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

const char* describe(LiveAfterFailure after) {
  switch (after) {
    case LiveAfterFailure::Unchanged: return "the previously live generation is still live";
    case LiveAfterFailure::RolledBack: return "the previous generation is live again";
    case LiveAfterFailure::Unloaded: return "nothing was loaded";
    case LiveAfterFailure::Unknown: break;
  }
  return "rolling back failed too: check `nf2bpf status`";
}

Deployment deploy(const std::string& pin_dir_option, const policy::Policy& pol,
                  const std::vector<loader::Interface>& ifaces, const nlohmann::json& meta, bool xdp) {
  Deployment d;
  auto fail = [&](const Error& e) {
    d.kind = Kind::error;
    d.message = e.message();
    return std::move(d);
  };
  auto t = Clock::now();
  auto addrtypes = loader::address_types();
  if (!addrtypes) return fail(addrtypes.error());
  auto pin_dir = resolve_pin_dir(pin_dir_option);
  if (!pin_dir) return fail(pin_dir.error());
  bool create_failed = false;
  auto opened = open_dataplane(*pin_dir, &create_failed);
  if (!opened) {
    if (create_failed) d.hint = "nf2bpf needs root (CAP_BPF, CAP_NET_ADMIN) and a BPF-enabled kernel";
    return fail(opened.error());
  }
  d.opened = std::move(*opened);
  d.prepare_ms = ms_since(t);
  d.installing = true;
  // Timed apart: apply logs the install's time.
  t = Clock::now();
  auto gen = d.opened.dp->install(pol, ifaces, *addrtypes, meta);
  d.install_ms = ms_since(t);
  if (!gen) {
    d.after = LiveAfterFailure::Unchanged;
    if (d.opened.fresh) (void)d.opened.dp->unload();
    return fail(gen.error());
  }
  t = Clock::now();
  auto r = d.opened.dp->attach(ifaces, xdp);
  d.attach_ms = ms_since(t);
  if (!r) {
    if (d.opened.fresh) {
      (void)d.opened.dp->unload();
      d.after = LiveAfterFailure::Unloaded;
    } else {
      d.after = d.opened.dp->rollback() ? LiveAfterFailure::RolledBack : LiveAfterFailure::Unknown;
    }
    return fail(r.error());
  }
  d.generation = *gen;
  return d;
}

TakenBack take_back(OpenedDataplane& d) {
  if (d.fresh) return d.dp->unload() ? TakenBack::Unloaded : TakenBack::UnloadFailed;
  return d.dp->rollback() ? TakenBack::RolledBack : TakenBack::RollbackFailed;
}

}  // namespace nf2bpf::ops
