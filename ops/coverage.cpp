#include "ops/coverage.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>

#include "ops/state_store.h"
#include "translator/policy/compile.h"
#include "translator/policy/yaml.h"
#include "translator/translate.h"

namespace nf2bpf::ops {

std::vector<loader::Interface> uncovered(const std::vector<loader::Interface>& all, const nlohmann::json& attached,
                                         const std::vector<std::string>& excluded) {
  std::vector<loader::Interface> out;
  for (const auto& i : all) {
    if (!i.up || std::find(excluded.begin(), excluded.end(), i.name) != excluded.end()) continue;
    bool on = false;
    for (const auto& e : attached) on |= e.value("name", "") == i.name && e.value("ifindex", 0u) == i.ifindex;
    if (!on) out.push_back(i);
  }
  return out;
}

Result<std::vector<loader::Interface>> uncovered_now(loader::Dataplane& dp) {
  auto st = dp.status(false);
  if (!st) return st.error();
  auto all = loader::list_interfaces();
  if (!all) return all.error();
  return uncovered(*all, st->attach, st->excluded);
}

namespace {

std::string applied_yaml(const std::string& dir, const std::string& checksum);

// A policy YAML file, when it loads and has this checksum.
std::optional<policy::Policy> load_policy_file(const std::string& path, const std::string& checksum) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  diag::Diagnostics d;
  auto p = policy::from_yaml(text, path, d);
  if (!p || d.has_errors() || p->checksum != checksum) return std::nullopt;
  return std::move(*p);
}

}  // namespace

Result<std::vector<std::string>> gone_now(loader::Dataplane& dp) {
  auto st = dp.status(false);
  if (!st) return st.error();
  auto all = loader::list_interfaces();
  if (!all) return all.error();
  std::vector<std::string> out;
  for (const auto& e : st->attach) {
    bool here = std::any_of(all->begin(), all->end(), [&](const loader::Interface& i) {
      return i.name == e.value("name", "") && i.ifindex == e.value("ifindex", 0u);
    });
    if (!here) out.push_back(e.value("name", ""));
  }
  return out;
}

Result<policy::Policy> live_policy(loader::Dataplane& dp) {
  auto st = dp.status(false);
  if (!st) return st.error();
  std::string sum = st->live.value("checksum", ""), source = st->live.value("source", "");
  if (sum.empty()) return Error{0, "no generation is live"};
  if (auto dir = default_state_dir()) {
    if (auto p = load_generation(*dir, sum)) return std::move(*p);
    if (auto p = load_policy_file(applied_yaml(*dir, sum), sum)) return std::move(*p);
  }
  if (source.empty() || source == "<stdin>")
    return Error{0, "the live policy was read from standard input and is not stored: apply it again"};
  TranslateOptions opt;
  opt.allow_partial = true;
  if (source == "kernel") opt.from = "kernel";
  auto tr = translate_file(source, opt);
  if (tr && !tr->diags.has_errors()) {
    diag::Diagnostics cd;
    policy::Policy pol = policy::compile(*tr, cd);
    if (!cd.has_errors() && pol.checksum == sum) return pol;
  }
  return Error{0,
               "the live policy is not stored and its source " + source + " no longer gives it: apply or sync again"};
}

namespace {

// apply's copies live apart from sync's generation store, whose presence
// sync's change guard reads as "made live by sync".
std::string applied_yaml(const std::string& dir, const std::string& checksum) {
  return dir + "/applied/" + checksum + ".yaml";
}

}  // namespace

std::string keep_policy(const policy::Policy& pol) {
  auto dir = default_state_dir();
  if (!dir) return dir.error().message();
  std::error_code ec;
  std::filesystem::create_directories(*dir + "/applied", ec);
  if (ec) return "create " + *dir + "/applied: " + ec.message();
  std::string path = applied_yaml(*dir, pol.checksum);
  // Only the live policy's copy is kept.
  for (const auto& e : std::filesystem::directory_iterator(*dir + "/applied", ec))
    if (e.path().string() != path) std::filesystem::remove(e.path(), ec);
  auto r = policy::write_yaml_file(pol, path);
  return r ? "" : r.error().message();
}

Result<void> cover(loader::Dataplane& dp, const std::vector<loader::Interface>& add) {
  auto addrtypes = loader::address_types();
  if (!addrtypes) return addrtypes.error();
  if (add.empty()) return dp.cover(policy::Policy{}, add, *addrtypes);  // no classes to compute
  auto pol = live_policy(dp);
  if (!pol) return Error{0, "cover " + names(add) + ": " + pol.error().message()};
  return dp.cover(*pol, add, *addrtypes);
}

std::vector<std::string> coverage_notes(const nlohmann::json& attached, const std::vector<std::string>& excluded,
                                        const std::vector<loader::Interface>& ifaces, nlohmann::json& out) {
  std::vector<std::string> notes;
  out = nlohmann::json::array();
  auto all = loader::list_interfaces();
  if (!all) return notes;
  for (const auto& i : uncovered(*all, attached, excluded)) {
    out.push_back(i.name);
    bool now = std::any_of(ifaces.begin(), ifaces.end(),
                           [&](const loader::Interface& x) { return x.name == i.name && x.ifindex == i.ifindex; });
    notes.push_back("nf2bpf was not attached to " + i.name + " (up)" +
                    (now ? ": attached by this run" : ": its traffic meets no rule (not among --iface)"));
  }
  return notes;
}

std::string names(const std::vector<loader::Interface>& v) {
  std::string s;
  for (const auto& i : v) s += (s.empty() ? "" : ", ") + i.name;
  return s;
}

}  // namespace nf2bpf::ops
