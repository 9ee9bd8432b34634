// nf2bpf sync: keep the live eBPF policy in step with a source of truth, from
// cron or a systemd timer. Unchanged source: nothing happens. Changed: the
// new policy is verified against the source on witness traffic, compared
// with the live one (change guard), then swapped in atomically. The run is
// ops/sync.h; here: the options, the --config file and the output.
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/syslog_sink.h>
#include <spdlog/spdlog.h>
#include <syslog.h>
#include <yaml-cpp/yaml.h>

#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <set>

#include "cli/command.h"
#include "common/json_text.h"
#include "loader/privileges.h"
#include "ops/sync.h"
#include "ops/watch.h"
#include "translator/report/report.h"
#include "translator/translate.h"

namespace nf2bpf::cli {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct SyncArgs {
  ops::SyncOptions run;
  std::string format = "text", config;
  bool syslog = false, watch = false;
  double debounce_ms = 20;
  double reconcile_s = 30;
  // Which options the command line gave (they override the config file).
  std::set<std::string> given;
};

// ---- configuration file -----------------------------------------------------------

// Reads --config into `a`; options given on the command line win. Problems
// are located ("sync.yaml:3:5: ...") and returned, never thrown.
std::string read_config(SyncArgs& a, bool& unreadable) {
  const std::string& path = a.config;
  auto text = read_input(path);
  unreadable = !text;
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
    static const std::set<std::string> known = {"source",    "from",          "interfaces", "max_change",
                                                "capture",   "allow_partial", "ipsets",     "xdp",
                                                "state_dir", "lock_timeout",  "pin_dir"};
    for (const auto& kv : root) {
      std::string key = kv.first.as<std::string>();
      const YAML::Node& v = kv.second;
      if (!known.count(key))
        return where(kv.first) + ": error: unknown setting '" + key +
               "'\n  hint: settings are source, from, interfaces, max_change, capture, allow_partial, ipsets, xdp, "
               "state_dir, lock_timeout, pin_dir";
      if (a.given.count(key)) continue;
      try {
        if (key == "source")
          a.run.source = rel(v.as<std::string>());
        else if (key == "from") {
          a.run.opt.from = v.as<std::string>();
          static const std::set<std::string> ok = {"auto", "iptables", "ip6tables", "nft", "nft-json", "kernel"};
          if (!ok.count(a.run.opt.from))
            return where(v) + ": error: from must be one of auto, iptables, ip6tables, nft, nft-json, kernel";
        } else if (key == "interfaces") {
          if (v.IsScalar())
            a.run.ifaces = {v.as<std::string>()};
          else
            a.run.ifaces = v.as<std::vector<std::string>>();
        } else if (key == "max_change") {
          a.run.max_change = v.as<double>();
          a.run.max_change_given = true;
          if (a.run.max_change < 0 || a.run.max_change > 100)
            return where(v) + ": error: max_change is a percentage, 0 to 100";
        } else if (key == "capture")
          a.run.capture = rel(v.as<std::string>());
        else if (key == "allow_partial")
          a.run.opt.allow_partial = v.as<bool>();
        else if (key == "ipsets")
          a.run.opt.ipsets_path = rel(v.as<std::string>());
        else if (key == "xdp")
          a.run.xdp = v.as<bool>();
        else if (key == "state_dir")
          a.run.state_dir = rel(v.as<std::string>());
        else if (key == "pin_dir")
          a.run.pin_dir = v.as<std::string>();
        else if (key == "lock_timeout") {
          a.run.lock_timeout = v.as<double>();
          if (a.run.lock_timeout < 0) return where(v) + ": error: lock_timeout is in seconds, 0 or more";
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

// ---- output ------------------------------------------------------------------------

// The run's outcome: in text, what it was refused on, then one log line (to
// stderr or syslog), then notes and hint; in json, the document (with
// --watch, one per line, with what started the run). Returns the exit status.
int render(const SyncArgs& a, const ops::SyncOutcome& r, const ops::WatchRun* w = nullptr) {
  std::shared_ptr<spdlog::logger> log;
  if (a.syslog) {
    log = spdlog::syslog_logger_mt("nf2bpf-sync", "nf2bpf", LOG_PID, LOG_DAEMON);
    log->set_pattern("sync: %v");
  } else {
    log = spdlog::stderr_logger_mt("nf2bpf-sync");
    log->set_pattern("nf2bpf sync: %v");
  }
  log->set_level(spdlog::level::info);
  end_progress();
  bool text = a.format == "text";
  if (text) {
    if (r.rejected && ui().quiet) {
      for (const auto& d : r.rejected->diags.all())
        if (d.severity == diag::Severity::Error) std::cerr << diag::render(d, stderr_color());
    } else if (r.rejected) {
      std::cout << report::text(*r.rejected, stdout_color());
    }
    for (const auto& d : r.compile_diags.all())
      (ui().quiet ? std::cerr : std::cout) << diag::render(d, ui().quiet ? stderr_color() : stdout_color());
    for (const auto& d : r.differs) detail() << "  differs: " << d << "\n";
    for (const auto& d : r.changes) detail() << "  changes: " << d << "\n";
  }
  int status = exit_status(r.kind);
  std::string hint = r.hint;
  if (status == kSystem)
    if (std::string h = loader::privilege_hint("sync", r.message); !h.empty()) hint = h;
  char total[96];
  if (w && w->notifications)
    std::snprintf(total, sizeof total, " (%.0f ms; %.0f ms after %llu change notification%s)", r.total_ms,
                  w->since_change_ms, (unsigned long long)w->notifications, w->notifications == 1 ? "" : "s");
  else
    std::snprintf(total, sizeof total, " (%.0f ms)", r.total_ms);
  std::string line = r.message + total;
  if (w && w->reconcile) line = "reconcile: " + line;
  if (w && !w->full_read_reason.empty()) line += "; read everything: " + w->full_read_reason;
  if (status == kOk)
    log->info(line);
  else if (status == kRejected)
    log->warn(line);
  else
    log->error(line);
  log->flush();
  spdlog::drop("nf2bpf-sync");
  if (text) {
    for (const auto& n : r.notes) detail() << "note: " << n << "\n";
    if (!hint.empty()) detail() << "hint: " << hint << "\n";
  } else {
    json doc = r.doc;
    if (!hint.empty()) doc["hint"] = hint;
    if (w) {
      doc["watch"] = {{"run", w->run},           {"notifications", w->notifications},
                      {"overflow", w->overflow}, {"since_change_ms", std::round(w->since_change_ms * 10) / 10},
                      {"read", w->read},         {"reconcile", w->reconcile}};
      if (!w->full_read_reason.empty()) doc["watch"]["full_read_reason"] = w->full_read_reason;
      doc["exit"] = status;
      std::cout << dump_utf8(doc) << "\n";
    } else {
      emit_json(doc, status);
    }
  }
  std::cout.flush();
  return status;
}

std::atomic<bool> g_stop{false};

void on_signal(int) { g_stop = true; }

// --watch: sync at start and after every change until SIGINT or SIGTERM.
// A refused or failed run is reported and the watch goes on (the live policy
// is untouched; the next change is tried again).
int watch(const SyncArgs& a) {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  ops::WatchOptions o;
  o.sync = a.run;
  o.debounce_ms = a.debounce_ms;
  o.reconcile_ms = a.reconcile_s * 1000;
  o.stop = &g_stop;
  auto r = ops::watch(o, [&](const ops::SyncOutcome& out, const ops::WatchRun& w) { render(a, out, &w); });
  if (!r) return fail(r.error().code ? kSystem : kUsage, "sync --watch: " + r.error().message());
  return kOk;
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
  opt(sub->add_option("--from", a->run.opt.from,
                      "Input format of SOURCE: auto (the default), iptables, ip6tables, nft, nft-json, kernel (the "
                      "live netfilter ruleset)")
          ->check(CLI::IsMember({"auto", "iptables", "ip6tables", "nft", "nft-json", "kernel"}))
          ->option_text("FORMAT"),
      "from");
  opt(sub->add_option("--iface", a->run.ifaces,
                      "Interface to attach to (repeatable; lo is always added; default: every interface)")
          ->allow_extra_args(false)
          ->option_text("IF"),
      "interfaces");
  opt(sub->add_option("--max-change", a->run.max_change,
                      "Refuse a policy that changes the verdict of more than PCT% of the witness packets (default "
                      "10)")
          ->check(CLI::Range(0.0, 100.0))
          ->option_text("PCT"),
      "max_change");
  sub->add_flag("--force", a->run.force,
                "Swap even when the change guard refuses (too large a change, or a policy that accepts none of what "
                "the live one accepts)");
  sub->add_flag("--self-test", a->run.self_test,
                "Verify the live policy against SOURCE on witness packets even when nothing changed");
  sub->add_flag("--dry-run", a->run.dry_run, "Translate, verify and guard, but do not swap");
  CLI::Option* watch_opt =
      sub->add_flag("--watch", a->watch,
                    "Keep running: sync at start and whenever the source changes (--from kernel: nf_tables change "
                    "notifications; a file: its writes); one outcome per run, until SIGINT or SIGTERM");
  sub->add_option("--debounce", a->debounce_ms,
                  "With --watch: milliseconds of quiet after a change before the run (default 20; at most 1 s "
                  "while changes keep coming)")
      ->check(CLI::Range(0.0, 10000.0))
      ->needs(watch_opt)
      ->option_text("MS");
  sub->add_option("--reconcile", a->reconcile_s,
                  "With --watch --from kernel: seconds without a change, after service backends were updated from "
                  "the changed chains alone, before a full read records the policy (default 30)")
      ->check(CLI::Range(0.0, 86400.0))
      ->needs(watch_opt)
      ->option_text("SEC");
  opt(sub->add_option("--state-dir", a->run.state_dir, "Sync's state (default: /var/lib/nf2bpf/netns-cookie-<cookie>)")
          ->option_text("DIR"),
      "state_dir");
  sub->add_option("--format", a->format, "What to print: text (the default), or json for scripts")
      ->check(CLI::IsMember({"text", "json"}))
      ->option_text("text|json");
  sub->add_option("--config", a->config,
                  "YAML settings (source, from, interfaces, max_change, capture ...); options given here win")
      ->option_text("FILE");
  sub->add_flag("--syslog", a->syslog, "Send the run's log line to syslog (the journal) instead of stderr");
  opt(sub->add_flag("--allow-partial", a->run.opt.allow_partial,
                    "Load the translatable rules; others stay in netfilter"),
      "allow_partial");
  opt(sub->add_option("--ipsets", a->run.opt.ipsets_path, "`ipset save` output with the sets -m set rules name")
          ->option_text("FILE"),
      "ipsets");
  opt(sub->add_option("--capture", a->run.capture, "A recorded capture to verify the new policy on, too")
          ->option_text("PCAP"),
      "capture");
  opt(sub->add_flag("--xdp", a->run.xdp, "Also attach the XDP early-drop program"), "xdp");
  opt(sub->add_option("--pin-dir", a->run.pin_dir, "bpffs directory for nf2bpf's pins (default: per namespace)")
          ->option_text("DIR"),
      "pin_dir");
  opt(sub->add_option("--lock-timeout", a->run.lock_timeout,
                      "Seconds to wait for another sync to finish (default 30), then exit 1")
          ->check(CLI::NonNegativeNumber)
          ->option_text("SEC"),
      "lock_timeout");
  opt(sub->add_option("SOURCE", a->run.source, "Ruleset file (or -); with --from kernel, none"), "source");
  sub->footer(
      "Unchanged (the compiled policy's checksum equals the live generation's): nothing happens. Changed: the new\n"
      "policy is checked against SOURCE on witness packets synthesized from its rules (and --capture), the change\n"
      "guard compares it with the live policy on the witness packets of both (at most --max-change, default 10%,\n"
      "change verdict, and some of what the live policy accepts must still be accepted; --force overrides both),\n"
      "then it is written into the spare\n"
      "generation and made live with one map update; the previous one stays for `nf2bpf rollback`. One sync runs\n"
      "at a time (flock in the state directory). Killed at any point, the live generation is the old or the new\n"
      "one, whole; the next run reconciles its state file with the kernel. One log line per run.\n"
      "When only the backends of services (load-balancing chains such as kube-proxy's) changed, they are updated\n"
      "in place in the live generation instead (\"updated\"; JSON \"services_changed\"): no new generation, and\n"
      "nothing new to verify.\n"
      "--watch keeps running and syncs after each change: nf_tables notifications with --from kernel (what\n"
      "iptables-nft, nft and kube-proxy write; iptables-legacy sends none), inotify on SOURCE otherwise. A burst\n"
      "of notifications (one restore) is one run, --debounce ms after the last; a change made during a run is\n"
      "answered by the next. With --from kernel, a change that only rewrites kube-proxy's load-balancing and\n"
      "endpoint chains (iptables or nftables mode) is read from those chains alone and applied in place\n"
      "(\"updated\", JSON \"watch\": {\"read\": \"chains\"}); a full read follows once changes pause for\n"
      "--reconcile seconds, in the background (dropped and run again when a change came meanwhile).\n"
      "--format json prints one object per run and line, with \"watch\": {run, notifications, overflow,\n"
      "since_change_ms, read (chains or all), reconcile, full_read_reason}; a refused run leaves the live policy\n"
      "and the watch goes on.\n"
      "Exit status: 0 in sync, swapped or updated, 1 refused (bad source, verification, change guard, lock), 2 a file\n"
      "cannot be read, a usage error or a system error. With --watch: 0 when stopped by SIGINT or SIGTERM,\n"
      "2 when it cannot listen for changes.");
  return {sub, [a, keys]() -> int {
            ui().json = a->format == "json";
            for (const auto& [o, key] : *keys)
              if (o->count()) a->given.insert(key);
            a->run.max_change_given = a->given.count("max_change") > 0;
            if (!one_stdin({{"SOURCE", a->run.source},
                            {"--config", a->config},
                            {"--ipsets", a->run.opt.ipsets_path},
                            {"--capture", a->run.capture}}))
              return kUsage;
            if (!a->config.empty()) {
              bool unreadable = false;
              std::string err = read_config(*a, unreadable);
              if (unreadable) {
                return fail(kSystem, err);
              }
              if (!err.empty()) {
                std::cerr << err << "\n";
                return fail(kRejected, "sync: the configuration " + a->config + " is not usable; nothing was done", {},
                            {{"errors", {err}}});
              }
            }
            if (a->run.source.empty() && a->run.opt.from != "kernel") {
              return fail(kUsage, "sync needs a SOURCE",
                          "give a ruleset file, `source:` in --config, or --from kernel");
            }
            if (a->watch) return watch(*a);
            return render(*a, ops::run_sync(a->run));
          }};
}

}  // namespace nf2bpf::cli
