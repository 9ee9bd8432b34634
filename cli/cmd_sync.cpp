// nf2bpf sync: keep the live eBPF policy in step with a source of truth, from
// cron or a systemd timer. Unchanged source: nothing happens. Changed: the
// new policy is verified against the source on witness traffic, compared
// with the live one (change guard), then swapped in atomically.
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/syslog_sink.h>
#include <spdlog/spdlog.h>
#include <syslog.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <set>

#include "cli/command.h"
#include "common/atomic_file.h"
#include "ops/deploy.h"
#include "ops/state_store.h"
#include "ops/witness.h"
#include "translator/policy/compile.h"
#include "translator/report/report.h"
#include "translator/translate.h"

namespace nf2bpf::cli {

namespace {

namespace fs = std::filesystem;
using namespace nf2bpf::ops;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

struct SyncArgs {
  std::string source;
  TranslateOptions opt;
  std::vector<std::string> ifaces;
  double max_change = -1;  // < 0: no guard
  bool force = false, self_test = false, dry_run = false, xdp = false, syslog = false;
  std::string state_dir, format = "text", config, pin_dir, capture;
  double lock_timeout = 30;
  // Which options the command line gave (they override the config file).
  std::set<std::string> given;
};

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

std::string short_sum(const std::string& s) { return s.substr(0, 16); }

std::string pct(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f%%", v);
  return b;
}

// ---- configuration file -----------------------------------------------------------

// Reads --config into `a`; options given on the command line win. Problems
// are located ("sync.yaml:3:5: ...") and returned, never thrown.
std::string read_config(SyncArgs& a) {
  const std::string& path = a.config;
  auto text = read_input(path);
  if (!text) return text.error().message();
  fs::path base = fs::absolute(path).parent_path();
  auto rel = [&](const std::string& p) { return p.empty() || p[0] == '/' ? p : (base / p).string(); };
  auto where = [&](const YAML::Node& n) {
    return path + ":" + std::to_string(n.Mark().line + 1) + ":" + std::to_string(n.Mark().column + 1);
  };
  try {
    YAML::Node root = YAML::Load(*text);
    if (root.IsNull()) return {};
    if (!root.IsMap()) return where(root) + ": error: the configuration must be a mapping (key: value)";
    static const std::set<std::string> known = {"source", "from",          "interfaces", "max_change", "capture",
                                                "allow_partial", "ipsets", "xdp",        "state_dir",  "lock_timeout",
                                                "pin_dir"};
    for (const auto& kv : root) {
      std::string key = kv.first.as<std::string>();
      const YAML::Node& v = kv.second;
      if (!known.count(key))
        return where(kv.first) + ": error: unknown setting '" + key +
               "'\n  hint: settings are source, from, interfaces, max_change, capture, allow_partial, ipsets, xdp, "
               "state_dir, lock_timeout, pin_dir";
      if (a.given.count(key)) continue;
      try {
        if (key == "source") a.source = rel(v.as<std::string>());
        else if (key == "from") {
          a.opt.from = v.as<std::string>();
          static const std::set<std::string> ok = {"auto", "iptables", "ip6tables", "nft", "nft-json", "kernel"};
          if (!ok.count(a.opt.from))
            return where(v) + ": error: from must be one of auto, iptables, ip6tables, nft, nft-json, kernel";
        } else if (key == "interfaces") {
          if (v.IsScalar()) a.ifaces = {v.as<std::string>()};
          else a.ifaces = v.as<std::vector<std::string>>();
        } else if (key == "max_change") {
          a.max_change = v.as<double>();
          if (a.max_change < 0 || a.max_change > 100) return where(v) + ": error: max_change is a percentage, 0 to 100";
        } else if (key == "capture") a.capture = rel(v.as<std::string>());
        else if (key == "allow_partial") a.opt.allow_partial = v.as<bool>();
        else if (key == "ipsets") a.opt.ipsets_path = rel(v.as<std::string>());
        else if (key == "xdp") a.xdp = v.as<bool>();
        else if (key == "state_dir") a.state_dir = rel(v.as<std::string>());
        else if (key == "pin_dir") a.pin_dir = v.as<std::string>();
        else if (key == "lock_timeout") {
          a.lock_timeout = v.as<double>();
          if (a.lock_timeout < 0) return where(v) + ": error: lock_timeout is in seconds, 0 or more";
        }
      } catch (const YAML::Exception&) {
        return where(v) + ": error: wrong type for '" + key + "'";
      }
    }
  } catch (const YAML::Exception& e) {
    return path + ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1) +
           ": error: not valid YAML: " + e.msg;
  }
  return {};
}

// ---- one run -----------------------------------------------------------------------

class Run {
 public:
  explicit Run(const SyncArgs& a) : a_(a), t0_(Clock::now()) {
    out_ = {{"result", "error"}, {"dry_run", a.dry_run}};
    if (a_.syslog) {
      log_ = spdlog::syslog_logger_mt("nf2bpf-sync", "nf2bpf", LOG_PID, LOG_DAEMON);
      log_->set_pattern("sync: %v");
    } else {
      log_ = spdlog::stderr_logger_mt("nf2bpf-sync");
      log_->set_pattern("nf2bpf sync: %v");
    }
    log_->set_level(spdlog::level::info);
  }
  ~Run() { spdlog::drop("nf2bpf-sync"); }

  int go();

 private:
  // Ends the run: the log line, the JSON document, the exit status.
  int finish(int status, const std::string& result, const std::string& line);
  int refuse(const std::string& line, const std::string& hint = {}) {
    if (!hint.empty()) out_["hint"] = hint;
    return finish(kRejected, "refused", line);
  }
  int fail(const std::string& line) { return finish(kSystem, "error", line); }
  void note(const std::string& n) { notes_.push_back(n); }
  bool text() const { return a_.format == "text"; }

  int verify(const Translation& tr, const policy::Policy& pol, const std::string& witness);
  void reconcile(json& state, const json& live_meta);

  const SyncArgs& a_;
  Clock::time_point t0_;
  std::shared_ptr<spdlog::logger> log_;
  json out_;
  std::vector<std::string> notes_;
  std::string dir_;
};

int Run::finish(int status, const std::string& result, const std::string& line) {
  out_["result"] = result;
  out_["exit"] = status;
  out_["message"] = line;
  out_["notes"] = notes_;
  out_["timings_ms"]["total"] = ms_since(t0_);
  if (!dir_.empty()) out_["state_dir"] = dir_;
  char total[32];
  std::snprintf(total, sizeof total, " (%.0f ms)", ms_since(t0_));
  if (status == kOk) log_->info(line + total);
  else if (status == kRejected) log_->warn(line + total);
  else log_->error(line + total);
  log_->flush();
  if (a_.format == "json") {
    std::cout << out_.dump(2) << "\n";
  } else {
    for (const auto& n : notes_) std::cout << "note: " << n << "\n";
    if (out_.contains("hint")) std::cout << "hint: " << out_["hint"].get<std::string>() << "\n";
  }
  std::cout.flush();
  return status;
}

// The state file against the kernel: the kernel is right.
void Run::reconcile(json& state, const json& live_meta) {
  std::string live_sum = live_meta.is_object() ? live_meta.value("checksum", "") : "";
  if (state.contains("pending")) {
    const json& p = state["pending"];
    if (!live_sum.empty() && p.value("checksum", "") == live_sum) {
      note("an earlier sync (pid " + std::to_string(p.value("pid", 0)) +
           ") was interrupted after its swap; the state file now says so");
      state["live"] = p;
      state["live"]["by"] = "sync";
    } else {
      note("an earlier sync (pid " + std::to_string(p.value("pid", 0)) +
           ") was interrupted before its swap; its policy never went live");
    }
    state.erase("pending");
  }
  std::string state_sum = state.contains("live") ? state["live"].value("checksum", "") : "";
  if (state_sum == live_sum) return;
  if (live_sum.empty()) {
    if (!state_sum.empty()) note("no generation is live any more (unloaded since the last sync)");
    state.erase("live");
    return;
  }
  if (!state_sum.empty())
    note("the live generation changed outside sync (apply, rollback or restore): generation " +
         std::to_string(live_meta.value("generation", 0)) + ", checksum " + short_sum(live_sum));
  state["live"] = {{"checksum", live_sum},
                   {"generation", live_meta.value("generation", 0)},
                   {"source", live_meta.value("source", "")},
                   {"format", live_meta.value("format", "")},
                   {"since", live_meta.value("applied", (int64_t)0)},
                   {"by", "outside sync"}};
}

// The new policy against its source on witness packets (and the configured
// capture). Returns kOk, or the exit status of a refusal.
int Run::verify(const Translation& tr, const policy::Policy& pol, const std::string& witness) {
  auto t = Clock::now();
  auto c = check_compiled(tr, pol, witness);
  if (!c) return fail("verification: " + c.error().message());
  Comparison total = *c;
  if (!a_.capture.empty()) {
    auto cc = check_compiled(tr, pol, a_.capture);
    if (!cc) return fail("verification on " + a_.capture + ": " + cc.error().message());
    total.add(*cc);
  }
  out_["verification"] = total.json();
  out_["timings_ms"]["verify"] = ms_since(t);
  if (total.excused)
    note(std::to_string(total.excused) + " witness packets are decided by rules left in netfilter (--allow-partial)");
  if (!total.error.empty()) return fail("verification: " + total.error);
  if (total.differed) {
    if (text())
      for (const auto& d : total.describe(10)) std::cout << "  differs: " << d << "\n";
    return refuse("refused: the compiled policy disagrees with " + tr.ruleset.source + " on " +
                      std::to_string(total.differed) + " of " + std::to_string(total.packets) +
                      " witness packets; the live generation is untouched",
                  "nf2bpf diff --synthesize W.pcapng " + a_.source + " && nf2bpf diff --pcap W.pcapng " + a_.source +
                      " shows each one");
  }
  return kOk;
}

int Run::go() {
  // 1. State directory and lock: one sync at a time per namespace.
  if (!a_.state_dir.empty()) dir_ = a_.state_dir;
  else {
    auto d = default_state_dir();
    if (!d) return fail(d.error().message());
    dir_ = *d;
  }
  auto lock = StateLock::acquire(dir_, a_.lock_timeout);
  if (!lock) {
    if (lock.error().code == EWOULDBLOCK)
      return refuse("refused: " + lock.error().context, "a sync that takes this long is stuck or the source is huge; "
                                                        "raise --lock-timeout or look at the other process");
    return fail(lock.error().message());
  }
  remove_leftovers(dir_);
  json state = read_state(dir_);

  // 2. Translate and compile the source.
  auto t = Clock::now();
  auto tr = translate_file(a_.source, a_.opt);
  if (!tr) return fail("read the source: " + tr.error().message());
  std::string source = source_name(a_.source, a_.opt.from);
  out_["source"] = source;
  out_["format"] = tr->input_format;
  if (tr->rejected(a_.opt.allow_partial)) {
    if (text()) std::cout << report::text(*tr, stdout_color());
    else {
      auto& e = out_["errors"] = json::array();
      for (const auto& d : tr->diags.all())
        if (d.severity == diag::Severity::Error) e.push_back(d.loc.str() + ": " + d.message);
    }
    bool only_unsupported = !tr->diags.has_errors();
    return refuse("refused: " + source + " has " +
                      (only_unsupported ? "unsupported rules" : std::string("errors")) +
                      "; the live generation is untouched",
                  only_unsupported ? "pass --allow-partial (allow_partial: true) to leave them in netfilter"
                                   : "fix the source; sync keeps the live policy until it translates cleanly");
  }
  diag::Diagnostics cd;
  policy::Policy pol = policy::compile(*tr, cd);
  if (cd.has_errors()) {
    if (text())
      for (const auto& d : cd.all()) std::cout << diag::render(d, stdout_color());
    return refuse("refused: " + source + " cannot be compiled; the live generation is untouched");
  }
  out_["checksum"] = pol.checksum;
  out_["rules"] = tr->rules.size();
  out_["timings_ms"]["translate_compile"] = ms_since(t);

  // 3. What is live.
  auto choice = pick_interfaces(a_.ifaces);
  if (!choice) return fail(choice.error().message());
  if (!choice->refused.empty())
    return refuse("refused: " + choice->refused, "see `ip link` for this namespace's interfaces");
  const auto* ifaces = &choice->ifaces;
  out_["interfaces"] = json::array();
  for (const auto& i : *ifaces) out_["interfaces"].push_back(i.name);
  auto pin_dir = resolve_pin_dir(a_.pin_dir);
  if (!pin_dir) return fail(pin_dir.error().message());
  auto found = loader::Dataplane::find(*pin_dir);
  if (!found) return fail(found.error().message());
  json live_meta, live_attach = json::array();
  uint64_t live_gen = 0;
  if (*found) {
    auto st = (*found)->status(false);
    if (!st) return fail(st.error().message());
    if (st->live.value("valid", false)) live_meta = st->live;
    live_attach = st->attach;
    live_gen = st->generation;
  }
  std::string live_sum = live_meta.is_object() ? live_meta.value("checksum", "") : "";
  json before = state;
  reconcile(state, live_meta);
  if (state != before)
    if (auto r = write_state(dir_, state); !r) return fail("write the state: " + r.error().message());
  out_["live_before"] = live_sum.empty() ? json(nullptr)
                                         : json{{"checksum", live_sum}, {"generation", live_gen},
                                                {"source", live_meta.value("source", "")}};

  // 4. Unchanged: nothing to do (the attachments must match too: the
  // interface classes are part of a generation).
  std::set<std::pair<std::string, uint32_t>> want, have;
  bool xdp_now = false;
  for (const auto& i : *ifaces) want.insert({i.name, i.ifindex});
  for (const auto& e : live_attach) {
    have.insert({e.value("name", ""), e.value("ifindex", 0u)});
    xdp_now |= e.value("xdp", false);
  }
  bool same_policy = !live_sum.empty() && live_sum == pol.checksum;
  bool same_attach = want == have && xdp_now == a_.xdp;
  if (same_policy && same_attach) {
    std::string line = "in sync: generation " + std::to_string(live_gen) + " is " + source + " (checksum " +
                       short_sum(pol.checksum) + ", " + std::to_string(tr->rules.size()) + " rules)";
    out_["generation"] = live_gen;
    if (a_.self_test) {
      std::string tmp = dir_ + "/self-test.pcapng";
      auto n = synthesize_witness(*tr, tmp);
      if (!n) return fail("write witness packets: " + n.error().message());
      int v = verify(*tr, pol, tmp);
      fs::remove(tmp);
      if (v != kOk) return v;
      line += "; self-test passed on " + std::to_string(out_["verification"].value("packets", 0)) + " packets";
    }
    return finish(kOk, "in-sync", line);
  }
  std::string reason = live_sum.empty()          ? "nothing is live yet"
                       : !same_policy            ? "the policy changed"
                                                 : "the interfaces changed";
  out_["reason"] = reason;

  // 5. Verify the new policy on witness packets made from its rules.
  if (auto r = make_dirs(dir_ + "/generations"); !r) return fail(r.error().message());
  std::string witness = dir_ + "/generations/" + pol.checksum + ".pcapng.tmp." + std::to_string(getpid());
  struct Cleanup {
    std::string path;
    ~Cleanup() {
      std::error_code ec;
      if (!path.empty()) fs::remove(path, ec);
    }
  } cleanup{witness};
  t = Clock::now();
  auto n = synthesize_witness(*tr, witness);
  if (!n) return fail("write witness packets: " + n.error().message());
  out_["witness_packets"] = *n;
  out_["timings_ms"]["witness"] = ms_since(t);
  if (int v = verify(*tr, pol, witness); v != kOk) return v;

  // 6. The change guard: how many witness packets (of the new rules and of
  // the live ones) change verdict?
  if (a_.max_change >= 0 && !live_sum.empty()) {
    auto old = live_sum == pol.checksum ? std::optional<policy::Policy>(pol) : load_generation(dir_, live_sum);
    if (!old) {
      if (!a_.force)
        return refuse("refused: the live generation (checksum " + short_sum(live_sum) + ", from " +
                          live_meta.value("source", "?") +
                          ") was not made live by sync, so the change guard has nothing to compare with",
                      "check the new policy (nf2bpf diff), then run sync once with --force");
      note("--force: the change guard was skipped (the live policy is not one sync stored)");
    } else {
      t = Clock::now();
      auto c = compare_policies(*old, pol, witness);
      if (!c) return fail("change guard: " + c.error().message());
      Comparison total = *c;
      std::string old_witness = generation_witness(dir_, live_sum);
      if (live_sum != pol.checksum && fs::exists(old_witness)) {
        auto c2 = compare_policies(*old, pol, old_witness);
        if (!c2) return fail("change guard: " + c2.error().message());
        total.add(*c2);
      }
      out_["change"] = total.json();
      out_["timings_ms"]["change_guard"] = ms_since(t);
      out_["change"]["max_change"] = a_.max_change;
      if (total.percent_changed() > a_.max_change) {
        if (!a_.force) {
          if (text())
            for (const auto& d : total.describe(10)) std::cout << "  changes: " << d << "\n";
          return refuse("refused: the new policy changes the verdict of " + pct(total.percent_changed()) + " (" +
                            std::to_string(total.differed) + " of " + std::to_string(total.packets) +
                            ") witness packets, more than --max-change " + pct(a_.max_change) +
                            "; the live generation is untouched",
                        "if the change is meant, run once with --force (nf2bpf diff --against shows it in full)");
        }
        note("--force: " + pct(total.percent_changed()) + " of the witness packets change verdict");
      }
    }
  }
  if (a_.dry_run) {
    out_["generation"] = live_gen;
    return finish(kOk, "would-swap",
                  "dry run: " + reason + "; would make " + source + " live (checksum " + short_sum(pol.checksum) + ")");
  }

  // 7. Swap. The stored generation and the pending mark come first, so a
  // run killed from here on is understood by the next one.
  t = Clock::now();
  if (auto r = store_generation(dir_, pol, witness); !r) return fail("store the generation: " + r.error().message());
  out_["timings_ms"]["store"] = ms_since(t);
  cleanup.path.clear();
  state["pending"] = {{"checksum", pol.checksum}, {"source", source},       {"format", tr->input_format},
                      {"pid", getpid()},           {"started", time(nullptr)}, {"rules", tr->rules.size()}};
  if (auto r = write_state(dir_, state); !r) return fail("write the state: " + r.error().message());
  Deployment d = deploy(*pin_dir, pol, *ifaces, generation_meta(*tr, pol, source), a_.xdp);
  if (!d.installing) return fail(d.message);
  out_["timings_ms"]["install_attach"] = d.install_ms + d.attach_ms;
  if (d.kind != Kind::ok) {
    state.erase("pending");
    (void)write_state(dir_, state);
    return fail("swap failed: " + d.message + "; " + describe(d.after));
  }
  auto gen = &d.generation;
  state.erase("pending");
  if (state.contains("live")) state["previous"] = state["live"];
  state["live"] = {{"checksum", pol.checksum},  {"generation", *gen},          {"source", source},
                   {"format", tr->input_format}, {"since", time(nullptr)},     {"by", "sync"},
                   {"rules", tr->rules.size()},  {"interfaces", out_["interfaces"]}};
  if (auto r = write_state(dir_, state); !r) return fail("generation " + std::to_string(*gen) +
                                                          " is live, but writing the state failed: " +
                                                          r.error().message());
  std::vector<std::string> keep = {pol.checksum};
  if (!live_sum.empty()) keep.push_back(live_sum);
  prune_generations(dir_, keep);
  out_["generation"] = *gen;
  std::string line = "swapped: generation " + std::to_string(*gen) + " is " + source + " (checksum " +
                     short_sum(pol.checksum) + ", " + std::to_string(tr->rules.size()) + " rules; " + reason;
  if (out_.contains("change"))
    line += ", " + pct(out_["change"].value("percent_changed", 0.0)) + " of witness packets change verdict";
  line += ")";
  return finish(kOk, "swapped", line);
}

}  // namespace

Command add_sync(CLI::App& app) {
  auto a = std::make_shared<SyncArgs>();
  CLI::App* sub = app.add_subcommand(
      "sync", "Make the live eBPF policy follow a ruleset (cron/systemd): swap only when it changed, verified first");
  // Command-line options that override a setting of the --config file.
  auto keys = std::make_shared<std::vector<std::pair<CLI::Option*, std::string>>>();
  auto opt = [&](CLI::Option* o, const char* key) {
    keys->push_back({o, key});
    return o;
  };
  opt(sub->add_option("--from", a->opt.from, "Input format of SOURCE; kernel: the live netfilter ruleset")
          ->check(CLI::IsMember({"auto", "iptables", "ip6tables", "nft", "nft-json", "kernel"})),
      "from");
  opt(sub->add_option("--iface", a->ifaces, "Interface to attach to (repeatable; default: every interface but lo)")
          ->type_name("IF")
          ->allow_extra_args(false),
      "interfaces");
  opt(sub->add_option("--max-change", a->max_change,
                      "Refuse a policy that changes the verdict of more than PCT% of the witness packets")
          ->type_name("PCT")
          ->check(CLI::Range(0.0, 100.0)),
      "max_change");
  sub->add_flag("--force", a->force, "Swap even when the change guard refuses");
  sub->add_flag("--self-test", a->self_test,
                "Verify the live policy against SOURCE on witness packets even when nothing changed");
  sub->add_flag("--dry-run", a->dry_run, "Translate, verify and guard, but do not swap");
  opt(sub->add_option("--state-dir", a->state_dir, "Sync's state (default: /var/lib/nf2bpf/netns-<inode>)")
          ->type_name("DIR"),
      "state_dir");
  sub->add_option("--format", a->format, "What to print: text, or json for scripts")
      ->check(CLI::IsMember({"text", "json"}))
      ->default_str("text");
  sub->add_option("--config", a->config, "YAML settings (source, from, interfaces, max_change, capture ...); options given here win")
      ->type_name("FILE")
      ->check(CLI::ExistingFile);
  sub->add_flag("--syslog", a->syslog, "Send the run's log line to syslog (the journal) instead of stderr");
  opt(sub->add_flag("--allow-partial", a->opt.allow_partial, "Load the translatable rules; others stay in netfilter"),
      "allow_partial");
  opt(sub->add_option("--ipsets", a->opt.ipsets_path, "`ipset save` output with the sets -m set rules name"),
      "ipsets");
  opt(sub->add_option("--capture", a->capture, "A recorded capture to verify the new policy on, too")->type_name("PCAP"), "capture");
  opt(sub->add_flag("--xdp", a->xdp, "Also attach the XDP early-drop program"), "xdp");
  opt(sub->add_option("--pin-dir", a->pin_dir, "bpffs directory for nf2bpf's pins (default: per namespace)"),
      "pin_dir");
  opt(sub->add_option("--lock-timeout", a->lock_timeout, "Seconds to wait for another sync to finish (default 30), then exit 1")
          ->type_name("SEC")
          ->check(CLI::NonNegativeNumber),
      "lock_timeout");
  opt(sub->add_option("SOURCE", a->source, "Ruleset file (or -); with --from kernel, none"), "source");
  sub->footer(
      "Unchanged (the compiled policy's checksum equals the live generation's): nothing happens. Changed: the new\n"
      "policy is checked against SOURCE on witness packets synthesized from its rules (and --capture), the change\n"
      "guard compares it with the live policy on the witness packets of both, then it is written into the spare\n"
      "generation and made live with one map update; the previous one stays for `nf2bpf rollback`. One sync runs\n"
      "at a time (flock in the state directory). Killed at any point, the live generation is the old or the new\n"
      "one, whole; the next run reconciles its state file with the kernel. One log line per run.\n"
      "Exit status: 0 in sync or swapped, 1 refused (bad source, verification, change guard, lock), 2 system error.");
  return {sub, [a, keys]() -> int {
            for (const auto& [o, key] : *keys)
              if (o->count()) a->given.insert(key);
            if (!a->config.empty()) {
              std::string err = read_config(*a);
              if (!err.empty()) {
                std::cerr << err << "\n";
                print_error("sync: the configuration " + a->config + " is not usable; nothing was done");
                return kRejected;
              }
            }
            if (a->source.empty() && a->opt.from != "kernel") {
              print_error("sync needs a SOURCE", "give a ruleset file, `source:` in --config, or --from kernel");
              return kRejected;
            }
            Run run(*a);
            return run.go();
          }};
}

}  // namespace nf2bpf::cli
