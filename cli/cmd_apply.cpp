// nf2bpf apply: translate, compile, load into a spare generation, make it
// live atomically, attach to interfaces.
#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>
#include <iostream>

#include "cli/command.h"
#include "ops/coverage.h"
#include "ops/cutover_run.h"
#include "ops/deploy.h"
#include "ops/service_conntrack.h"
#include "translator/policy/compile.h"
#include "translator/policy/input.h"
#include "translator/report/report.h"
#include "translator/translate.h"

namespace nf2bpf::cli {

namespace {

using nlohmann::json;

struct ApplyArgs {
  TranslateOptions opt;
  std::vector<std::string> ifaces;
  std::vector<std::string> exclude;  // --exclude-iface
  bool xdp = false;
  bool dry_run = false;
  std::string pin_dir;
  std::string file;
  bool cutover = false;
  std::string backup;
  std::string format = "text";
};

void print_plan(const cutover::Plan& plan) {
  std::ostream& out = detail();
  for (const auto& tp : plan.tables) {
    size_t removed = 0, chains = 0;
    for (const auto& cp : tp.chains) removed += cp.removed(), chains += cp.delete_chain;
    out << "  removed: " << tp.id.str() << ": " << removed << " rules";
    if (tp.emptied) out << ", " << chains << " chains (the table stays, empty)";
    out << "\n";
    for (const auto& cp : tp.chains) {
      if (cp.set_policy)
        out << "  policy:  " << tp.id.str() << " " << cp.name
            << ": drop -> accept (the eBPF policy drops what it dropped)\n";
      for (const auto& rp : cp.rules)
        if (!rp.remove) out << "  kept:    " << rp.location << ": " << rp.text << "  (" << rp.why << ")\n";
    }
  }
  if (!plan.untouched.empty()) {
    out << "  untouched (not translated):";
    for (const auto& t : plan.untouched) out << " " << t << (&t == &plan.untouched.back() ? "" : ",");
    out << "\n";
  }
}

// The plan as JSON: what print_plan says, per table.
json plan_json(const cutover::Plan& plan) {
  json tables = json::array();
  for (const auto& tp : plan.tables) {
    json t = {{"table", tp.id.str()},
              {"emptied", tp.emptied},
              {"rules_removed", 0},
              {"chains_deleted", 0},
              {"policy_to_accept", json::array()},
              {"kept", json::array()}};
    for (const auto& cp : tp.chains) {
      t["rules_removed"] = t["rules_removed"].get<size_t>() + cp.removed();
      t["chains_deleted"] = t["chains_deleted"].get<size_t>() + (cp.delete_chain ? 1 : 0);
      if (cp.set_policy) t["policy_to_accept"].push_back(cp.name);
      for (const auto& rp : cp.rules)
        if (!rp.remove) t["kept"].push_back({{"location", rp.location}, {"text", rp.text}, {"why", rp.why}});
    }
    tables.push_back(std::move(t));
  }
  return {{"rules_removed", plan.rules_removed()},
          {"chains_deleted", plan.chains_deleted()},
          {"rules_kept", plan.rules_kept()},
          {"tables", tables},
          {"untouched", plan.untouched}};
}

// --cutover: with the new generation live and attached, retire the
// netfilter rules it replaced (ops/cutover_run.h does the work). Returns the
// exit status and fills `doc["cutover"]`; with `check_only`, only a refusal
// is reported (as an error, the caller adds that nothing was applied).
int cutover_after_apply(const Translation& tr, const policy::Policy& pol, const ApplyArgs& a, json& doc,
                        bool check_only = false) {
  ops::CutoverOptions o;
  o.backup = a.backup;
  o.dry_run = a.dry_run;
  o.check_only = check_only;
  o.source = a.file == "-" ? "<stdin>" : std::filesystem::absolute(a.file).string();
  ops::CutoverOutcome c = ops::run_cutover(tr, pol, o);
  if (c.kind != ops::Kind::ok) {
    for (const auto& p : c.problems) std::cerr << "  " << p << "\n";
    print_error(c.message, c.hint);
    doc["result"] = "error";
    doc["message"] = c.message;
    doc["hint"] = c.hint.empty() ? json() : json(c.hint);
    doc["cutover"] = {{"problems", c.problems}};
    return exit_status(c.kind);
  }
  if (check_only) return kOk;
  detail() << "cut-over: the live netfilter ruleset (generation " << c.genid << ") is " << tr.ruleset.source << ": "
           << c.how << "\n";
  json& cj = doc["cutover"] = plan_json(*c.plan);
  cj["netfilter_generation"] = c.genid;
  cj["proof"] = c.how;
  if (a.dry_run) {
    text() << "dry run: would remove " << c.plan->rules_removed() << " rules and " << c.plan->chains_deleted()
           << " chains in one transaction, keep " << c.plan->rules_kept() << " rules\n";
    print_plan(*c.plan);
    return kOk;
  }
  text() << "cut-over done: " << c.plan->rules_removed() << " rules and " << c.plan->chains_deleted()
         << " chains removed in one transaction (" << c.messages << " messages), " << c.plan->rules_kept()
         << " rules kept\n";
  print_plan(*c.plan);
  detail() << "  backup:  " << c.backup << " (nf2bpf restore --backup " << c.backup << " puts it back)\n";
  cj["messages"] = c.messages;
  cj["backup"] = c.backup;
  return kOk;
}

// A cut-over leaves an interface nf2bpf is not attached to with no filter at
// all: refused while an up one is neither chosen nor excluded explicitly.
int cutover_coverage(const std::vector<loader::Interface>& chosen, const std::vector<std::string>& exclude, json& doc) {
  auto all = loader::list_interfaces();
  if (!all) return fail(kSystem, all.error().message());
  json attached = json::array();
  for (const auto& i : chosen) attached.push_back({{"name", i.name}, {"ifindex", i.ifindex}});
  auto left = ops::uncovered(*all, attached, exclude);
  if (left.empty()) return kOk;
  std::string msg = "cut-over refused: nf2bpf would not be attached to " + ops::names(left) +
                    " (up): netfilter's rules are all that filters its traffic";
  std::string hint = "attach to it too (--iface), or leave it out explicitly (--exclude-iface)";
  print_error(msg, hint);
  std::cerr << "  nothing was applied\n";
  doc["result"] = "refused";
  doc["message"] = msg;
  doc["hint"] = hint;
  doc["applied"] = false;
  json names = json::array();
  for (const auto& i : left) names.push_back(i.name);
  doc["unattached"] = names;
  if (ui().json) emit_json(doc, kRejected);
  return kRejected;
}

// What later coverage checks need: the interfaces left out on purpose, and
// the policy (to cover new interfaces with). Best effort: warnings only.
void keep_coverage(ops::Deployment& d, const policy::Policy& pol, const std::vector<std::string>& exclude) {
  if (auto r = d.opened.dp->set_excluded(exclude); !r)
    spdlog::warn("record the excluded interfaces: {}", r.error().message());
  if (auto why = ops::keep_policy(pol); !why.empty()) spdlog::warn("keep a copy of the policy: {}", why);
}

// Located errors of a rejected ruleset: the report on stdout (stderr with
// -q); in JSON mode the error document carries the report instead.
void print_rejection(const Translation& tr) {
  end_progress();
  if (ui().json) return;
  if (ui().quiet) {
    std::cerr << diag::render_errors(tr.diags, stderr_color());
    return;
  }
  std::cout << report::text(tr, stdout_color());
}

// A ruleset FILE: translated, accepted, compiled. Returns kOk or the exit
// status of the refusal (already reported).
int compile_ruleset(const ApplyArgs& a, const Translation& tr, policy::Policy& pol) {
  if (tr.rejected(a.opt.allow_partial)) {
    print_rejection(tr);
    return fail(kRejected, "nothing was applied: the ruleset has errors or unsupported rules",
                "fix them, or pass --allow-partial to leave unsupported rules in netfilter",
                {{"translation", report::json(tr)}});
  }
  diag::Diagnostics cd;
  pol = policy::compile(tr, cd);
  if (cd.has_errors()) {
    json diags = json::array();
    for (const auto& d : cd.all()) {
      if (!ui().json)
        (ui().quiet ? std::cerr : std::cout) << diag::render(d, ui().quiet ? stderr_color() : stdout_color());
      diags.push_back(report::diagnostic_json(d));
    }
    return fail(kRejected, "nothing was applied: the ruleset cannot be compiled", {}, {{"diagnostics", diags}});
  }
  return kOk;
}

// A policy FILE (`translate -o`): loaded as written. It does not say which
// netfilter rules it replaces, so it cannot be cut over.
int load_policy_file(const ApplyArgs& a, policy::Input& in, policy::Policy& pol) {
  if (a.cutover)
    return fail(kUsage,
                in.name +
                    " is a policy file: --cutover needs the ruleset, to check it against the live "
                    "netfilter rules and to know which of them the policy replaces",
                "give the ruleset the policy was translated from: nf2bpf apply --cutover RULES");
  if (!a.opt.ipsets_path.empty())
    return fail(kUsage, "--ipsets is for rulesets: the sets of a policy file are in it already", "drop --ipsets");
  if (!in.policy) {
    json diags = json::array();
    for (const auto& d : in.policy_diags.all()) {
      if (!ui().json) std::cerr << diag::render(d, stderr_color());
      diags.push_back(report::diagnostic_json(d));
    }
    return fail(kRejected, "nothing was applied: " + in.name + " is not a policy nf2bpf can load", {},
                {{"diagnostics", diags}});
  }
  pol = std::move(*in.policy);
  return kOk;
}

// The generation's metadata (what `status` shows) for a policy file.
json policy_file_meta(const policy::Policy& pol, const std::string& source) {
  return {{"source", source},
          {"format", "policy"},
          {"rules", pol.rule_count_source},
          {"compiled_rules", pol.rules.size()},
          {"entries", pol.entries.size()},
          {"tuples", pol.tuples.size()}};
}

int apply(const ApplyArgs& a) {
  if (!one_stdin({{"FILE", a.file}, {"--ipsets", a.opt.ipsets_path}})) return kUsage;
  if (a.backup == "-")
    return fail(kUsage, "--backup must be a file: `nf2bpf restore` reads it back", "give a path, or leave the default");
  auto t0 = std::chrono::steady_clock::now();
  auto in = policy::read_ruleset_or_policy(a.file, a.opt);
  if (!in) return fail(kSystem, in.error().message());
  policy::Policy pol;
  if (int s = in->is_policy ? load_policy_file(a, *in, pol) : compile_ruleset(a, *in->translation, pol); s != kOk)
    return s;
  const Translation* tr = in->translation ? &*in->translation : nullptr;
  auto choice = ops::pick_interfaces(a.ifaces, a.exclude);
  if (!choice) return fail(kSystem, choice.error().message());
  if (!choice->refused.empty())
    return fail(kRejected, choice->refused, "see `ip link` for this namespace's interfaces");
  const auto& ifaces = choice->ifaces;
  auto t_compiled = std::chrono::steady_clock::now();
  if (tr)
    detail() << tr->ruleset.source << ": " << tr->rules.size() << " rules (" << tr->count(caps::Fidelity::Exact)
             << " exact, " << tr->count(caps::Fidelity::Approximate) << " approximate, "
             << tr->count(caps::Fidelity::Unsupported) << " left in netfilter)";
  else
    detail() << in->name << ": policy of " << pol.source << " (" << pol.input_format << "), " << pol.rule_count_source
             << " source rules";
  detail() << " -> " << pol.rules.size() << " compiled rules, " << pol.entries.size() << " classifier entries, "
           << pol.tuples.size() << " tuples\n";
  std::string source = a.file == "-" ? "<stdin>" : std::filesystem::absolute(a.file).string();
  json names = json::array();
  for (const auto& i : ifaces) names.push_back(i.name);
  json rules = {{"total", pol.rule_count_source}};
  if (tr)
    rules = {{"total", tr->rules.size()},
             {"exact", tr->count(caps::Fidelity::Exact)},
             {"approximate", tr->count(caps::Fidelity::Approximate)},
             {"left_in_netfilter", tr->count(caps::Fidelity::Unsupported)}};
  json doc = {
      {"result", a.dry_run ? "would-apply" : "applied"},
      {"source", source},
      {"format", tr ? tr->input_format : "policy"},
      {"rules", rules},
      {"compiled", {{"rules", pol.rules.size()}, {"entries", pol.entries.size()}, {"tuples", pol.tuples.size()}}},
      {"checksum", pol.checksum},
      {"interfaces", names},
      {"xdp", a.xdp}};
  if (!tr) doc["policy_of"] = {{"source", pol.source}, {"format", pol.input_format}};
  // A failure after this point reports what was known.
  auto failed = [&](int status) {
    if (ui().json) emit_json(doc, status);
    return status;
  };
  if (a.cutover)
    if (int c = cutover_coverage(ifaces, a.exclude, doc); c != kOk) return c;
  if (a.dry_run) {
    text() << "dry run: would attach to " << ops::join_ifaces(ifaces) << (a.xdp ? " (tc + xdp)" : " (tc)")
           << "; policy checksum " << pol.checksum << "\n";
    int c = a.cutover ? cutover_after_apply(*tr, pol, a, doc) : kOk;  // tr: a policy file refuses --cutover
    if (ui().json) emit_json(doc, c);
    return c;
  }
  // A cut-over that would be refused (the live ruleset is not FILE, a
  // backup is in the way ...) refuses before anything is loaded; it is
  // checked again, for real, once the policy is live.
  if (a.cutover)
    if (int c = cutover_after_apply(*tr, pol, a, doc, true); c != kOk) {
      std::cerr << "  nothing was applied\n";
      doc["applied"] = false;
      return failed(c);
    }
  ops::Deployment d = ops::deploy(a.pin_dir, pol, ifaces,
                                  tr ? ops::generation_meta(*tr, pol, source) : policy_file_meta(pol, source), a.xdp);
  if (d.kind != ops::Kind::ok) {
    // Failures before the install changed nothing; after it, say what is live.
    if (!d.installing) return fail(kSystem, d.message, d.hint);
    std::string after = ops::describe(d.after);
    bool hint = d.after == ops::LiveAfterFailure::Unchanged || d.after == ops::LiveAfterFailure::RolledBack;
    return fail(kSystem, d.message, hint ? after : std::string(), {{"live_after", after}});
  }
  keep_coverage(d, pol, a.exclude);
  if (tr)
    if (auto n = ops::clear_stale_service_udp_after_install(*d.opened.dp, tr->ruleset, pol.services); n && *n) {
      text() << "cleared " << *n << " UDP connection entries to endpoints their Service no longer has\n";
      doc["stale_udp_cleared"] = *n;
    }
  auto ms = [](auto dt) { return std::chrono::duration<double, std::milli>(dt).count(); };
  text() << "generation " << d.generation << " live, checksum " << pol.checksum.substr(0, 16) << "; attached to "
         << ops::join_ifaces(ifaces) << (a.xdp ? " (tc ingress/egress, xdp)" : " (tc ingress/egress)") << "\n";
  spdlog::info("translate+compile {:.1f} ms, load+swap {:.1f} ms", ms(t_compiled - t0), d.prepare_ms + d.install_ms);
  doc["generation"] = d.generation;
  doc["timings_ms"] = {
      {"translate_compile", ms(t_compiled - t0)}, {"load_swap", d.prepare_ms + d.install_ms}, {"attach", d.attach_ms}};
  if (!a.cutover) {
    if (ui().json) emit_json(doc, kOk);
    return kOk;
  }
  int c = cutover_after_apply(*tr, pol, a, doc);
  if (c == kOk) {
    if (ui().json) emit_json(doc, kOk);
    return kOk;
  }
  // Nothing was removed from netfilter: take the eBPF policy back too, so a
  // failed `apply --cutover` changes nothing.
  const char* after = "";
  switch (ops::take_back(d.opened)) {
    case ops::TakenBack::Unloaded: after = "the eBPF policy was unloaded again: nothing changed"; break;
    case ops::TakenBack::UnloadFailed: after = "unloading the eBPF policy failed too: run `nf2bpf unload`"; break;
    case ops::TakenBack::RolledBack: after = "the previous eBPF generation is live again: nothing changed"; break;
    case ops::TakenBack::RollbackFailed:
      after = "rolling back the eBPF policy failed too: check `nf2bpf status`";
      break;
  }
  std::cerr << "  " << after << "\n";
  doc["taken_back"] = after;
  return failed(c);
}

}  // namespace

Command add_apply(CLI::App& app) {
  auto a = std::make_shared<ApplyArgs>();
  CLI::App* sub = app.add_subcommand("apply", "Load a ruleset as the live eBPF policy of this network namespace");
  sub->add_option("--iface", a->ifaces,
                  "Interface to attach to (repeatable; lo is always added; default: every interface)")
      ->allow_extra_args(false)
      ->option_text("IF");
  sub->add_option("--exclude-iface", a->exclude,
                  "Interface to leave out on purpose (repeatable): not attached, not reported as uncovered, "
                  "and no obstacle to --cutover")
      ->allow_extra_args(false)
      ->option_text("IF");
  sub->add_flag("--xdp", a->xdp, "Also attach the XDP early-drop program");
  sub->add_flag("--dry-run", a->dry_run, "Translate and compile, report what would be loaded, change nothing");
  sub->add_option("--pin-dir", a->pin_dir,
                  "bpffs directory for nf2bpf's pins (default: /sys/fs/bpf/nf2bpf/netns-<inode>)")
      ->option_text("DIR");
  sub->add_option("--from", a->opt.from,
                  "Input format: auto (the default: looks at the text), iptables, ip6tables, nft, nft-json, "
                  "kernel (the running ruleset)")
      ->check(CLI::IsMember({"auto", "iptables", "ip6tables", "nft", "nft-json", "kernel"}))
      ->option_text("FORMAT");
  sub->add_flag("--allow-partial", a->opt.allow_partial,
                "Load the translatable rules; unsupported ones stay in netfilter");
  sub->add_option("--ipsets", a->opt.ipsets_path,
                  "`ipset save` output with the sets that -m set rules name, or - for stdin")
      ->option_text("FILE");
  CLI::Option* cut = sub->add_flag("--cutover", a->cutover,
                                   "Then remove the netfilter rules the policy replaced, in one nftables transaction "
                                   "(`nf2bpf restore` puts them back)");
  sub->add_option(
         "--backup", a->backup,
         "Where --cutover saves what it removes (default: /var/lib/nf2bpf/netns-cookie-<cookie>/cutover-backup.json)")
      ->needs(cut)
      ->option_text("FILE");
  sub->add_option("--format", a->format, "Output format (default text)")
      ->check(CLI::IsMember({"text", "json"}))
      ->option_text("text|json");
  sub->add_option("FILE", a->file,
                  "Ruleset (iptables-save, ip6tables-save, nft), a policy file written by `nf2bpf translate -o`, or - "
                  "for stdin")
      ->required();
  sub->footer(
      "The new policy is written into a spare generation and made live with one map update; the\n"
      "previous generation stays loaded for `nf2bpf rollback`. A failed apply leaves the live\n"
      "generation untouched. With --cutover, once the policy is live the netfilter tables, chains and\n"
      "rules it replaced are saved to a backup and removed in one transaction; rules left in netfilter\n"
      "(--allow-partial) and tables nf2bpf did not translate stay. See docs/sync.md.\n"
      "Exit status: 0 applied, 1 input rejected (unsupported rules, bad interface), 2 a file cannot be read,\n"
      "a usage error or a system error.");

  return {sub, [a]() -> int {
            ui().json = a->format == "json";
            return apply(*a);
          }};
}

}  // namespace nf2bpf::cli
