// nf2bpf apply: translate, compile, load into a spare generation, make it
// live atomically, attach to interfaces.
#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>
#include <iostream>

#include "cli/command.h"
#include "ops/cutover_run.h"
#include "ops/deploy.h"
#include "translator/policy/compile.h"
#include "translator/report/report.h"
#include "translator/translate.h"

namespace nf2bpf::cli {

namespace {

struct ApplyArgs {
  TranslateOptions opt;
  std::vector<std::string> ifaces;
  bool xdp = false;
  bool dry_run = false;
  std::string pin_dir;
  std::string file;
  bool cutover = false;
  std::string backup;
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
        if (!rp.remove)
          out << "  kept:    " << rp.location << ": " << rp.text << "  (" << rp.why << ")\n";
    }
  }
  if (!plan.untouched.empty()) {
    out << "  untouched (not translated):";
    for (const auto& t : plan.untouched) out << " " << t << (&t == &plan.untouched.back() ? "" : ",");
    out << "\n";
  }
}

// --cutover: with the new generation live and attached, retire the
// netfilter rules it replaced (ops/cutover_run.h does the work). Returns the
// exit status; with `check_only`, prints only a refusal.
int cutover_after_apply(const Translation& tr, const policy::Policy& pol, const ApplyArgs& a, bool check_only = false) {
  ops::CutoverOptions o;
  o.backup = a.backup;
  o.dry_run = a.dry_run;
  o.check_only = check_only;
  o.source = a.file == "-" ? "<stdin>" : std::filesystem::absolute(a.file).string();
  ops::CutoverOutcome c = ops::run_cutover(tr, pol, o);
  if (c.kind != ops::Kind::ok) {
    for (const auto& p : c.problems) std::cerr << "  " << p << "\n";
    print_error(c.message, c.hint);
    return exit_status(c.kind);
  }
  if (check_only) return kOk;
  detail() << "cut-over: the live netfilter ruleset (generation " << c.genid << ") is " << tr.ruleset.source << ": "
           << c.how << "\n";
  if (a.dry_run) {
    std::cout << "dry run: would remove " << c.plan->rules_removed() << " rules and " << c.plan->chains_deleted()
              << " chains in one transaction, keep " << c.plan->rules_kept() << " rules\n";
    print_plan(*c.plan);
    return kOk;
  }
  std::cout << "cut-over done: " << c.plan->rules_removed() << " rules and " << c.plan->chains_deleted()
            << " chains removed in one transaction (" << c.messages << " messages), " << c.plan->rules_kept()
            << " rules kept\n";
  print_plan(*c.plan);
  detail() << "  backup:  " << c.backup << " (nf2bpf restore --backup " << c.backup << " puts it back)\n";
  return kOk;
}

}  // namespace

Command add_apply(CLI::App& app) {
  auto a = std::make_shared<ApplyArgs>();
  CLI::App* sub = app.add_subcommand("apply", "Load a ruleset as the live eBPF policy of this network namespace");
  sub->add_option("--iface", a->ifaces, "Interface to attach to (repeatable; default: every interface but lo)")
      ->allow_extra_args(false)
      ->option_text("IF");
  sub->add_flag("--xdp", a->xdp, "Also attach the XDP early-drop program");
  sub->add_flag("--dry-run", a->dry_run, "Translate and compile, report what would be loaded, change nothing");
  sub->add_option("--pin-dir", a->pin_dir, "bpffs directory for nf2bpf's pins (default: /sys/fs/bpf/nf2bpf/netns-<inode>)")
      ->option_text("DIR");
  sub->add_option("--from", a->opt.from,
                  "Input format: auto (the default: looks at the text), iptables, ip6tables, nft, nft-json, "
                  "kernel (the running ruleset)")
      ->check(CLI::IsMember({"auto", "iptables", "ip6tables", "nft", "nft-json", "kernel"}))
      ->option_text("FORMAT");
  sub->add_flag("--allow-partial", a->opt.allow_partial, "Load the translatable rules; unsupported ones stay in netfilter");
  sub->add_option("--ipsets", a->opt.ipsets_path,
                  "`ipset save` output with the sets that -m set rules name, or - for stdin")
      ->option_text("FILE");
  CLI::Option* cut = sub->add_flag("--cutover", a->cutover,
                                    "Then remove the netfilter rules the policy replaced, in one nftables transaction "
                                    "(`nf2bpf restore` puts them back)");
  sub->add_option("--backup", a->backup,
                  "Where --cutover saves what it removes (default: /var/lib/nf2bpf/netns-<inode>/cutover-backup.json)")
      ->needs(cut)
      ->option_text("FILE");
  sub->add_option("FILE", a->file, "Ruleset (iptables-save, ip6tables-save, nft) or - for stdin")->required();
  sub->footer("The new policy is written into a spare generation and made live with one map update; the\n"
              "previous generation stays loaded for `nf2bpf rollback`. A failed apply leaves the live\n"
              "generation untouched. With --cutover, once the policy is live the netfilter tables, chains and\n"
              "rules it replaced are saved to a backup and removed in one transaction; rules left in netfilter\n"
              "(--allow-partial) and tables nf2bpf did not translate stay. See docs/sync.md.\n"
              "Exit status: 0 applied, 1 input rejected (unsupported rules, bad interface), 2 a file cannot be read,\n"
              "a usage error or a system error.");

  return {sub, [a]() -> int {
            if (!one_stdin({{"FILE", a->file}, {"--ipsets", a->opt.ipsets_path}})) return kUsage;
            if (a->backup == "-") {
              print_error("--backup must be a file: `nf2bpf restore` reads it back", "give a path, or leave the default");
              return kUsage;
            }
            auto t0 = std::chrono::steady_clock::now();
            auto tr = translate_file(a->file, a->opt);
            if (!tr) {
              print_error(tr.error().message());
              return kSystem;
            }
            if (tr->rejected(a->opt.allow_partial)) {
              if (ui().quiet) {
                for (const auto& d : tr->diags.all())
                  if (d.severity == diag::Severity::Error) std::cerr << diag::render(d, stderr_color());
              } else {
                std::cout << report::text(*tr, stdout_color());
              }
              print_error("nothing was applied: the ruleset has errors or unsupported rules",
                          "fix them, or pass --allow-partial to leave unsupported rules in netfilter");
              return kRejected;
            }
            diag::Diagnostics cd;
            policy::Policy pol = policy::compile(*tr, cd);
            if (cd.has_errors()) {
              for (const auto& d : cd.all())
                (ui().quiet ? std::cerr : std::cout) << diag::render(d, ui().quiet ? stderr_color() : stdout_color());
              print_error("nothing was applied: the ruleset cannot be compiled");
              return kRejected;
            }
            auto choice = ops::pick_interfaces(a->ifaces);
            if (!choice) {
              print_error(choice.error().message());
              return kSystem;
            }
            if (!choice->refused.empty()) {
              print_error(choice->refused, "see `ip link` for this namespace's interfaces");
              return kRejected;
            }
            const auto& ifaces = choice->ifaces;
            auto t_compiled = std::chrono::steady_clock::now();
            detail() << tr->ruleset.source << ": " << tr->rules.size() << " rules ("
                      << tr->count(caps::Fidelity::Exact) << " exact, " << tr->count(caps::Fidelity::Approximate)
                      << " approximate, " << tr->count(caps::Fidelity::Unsupported) << " left in netfilter) -> "
                      << pol.rules.size() << " compiled rules, " << pol.entries.size() << " classifier entries, "
                      << pol.tuples.size() << " tuples\n";
            if (a->dry_run) {
              std::cout << "dry run: would attach to " << ops::join_ifaces(ifaces) << (a->xdp ? " (tc + xdp)" : " (tc)")
                        << "; policy checksum " << pol.checksum << "\n";
              if (a->cutover) return cutover_after_apply(*tr, pol, *a);
              return kOk;
            }
            // A cut-over that would be refused (the live ruleset is not
            // FILE, a backup is in the way ...) refuses before anything is
            // loaded; it is checked again, for real, once the policy is live.
            if (a->cutover)
              if (int c = cutover_after_apply(*tr, pol, *a, true); c != kOk) {
                std::cerr << "  nothing was applied\n";
                return c;
              }
            std::string source = a->file == "-" ? "<stdin>" : std::filesystem::absolute(a->file).string();
            ops::Deployment d = ops::deploy(a->pin_dir, pol, ifaces, ops::generation_meta(*tr, pol, source), a->xdp);
            if (d.kind != ops::Kind::ok) {
              if (!d.installing) print_error(d.message, d.hint);
              else if (d.after == ops::LiveAfterFailure::Unchanged) print_error(d.message, ops::describe(d.after));
              else print_error(d.message);
              if (d.after == ops::LiveAfterFailure::RolledBack) std::cerr << "  " << ops::describe(d.after) << "\n";
              return kSystem;
            }
            auto ms = [](auto dt) { return std::chrono::duration<double, std::milli>(dt).count(); };
            std::cout << "generation " << d.generation << " live, checksum " << pol.checksum.substr(0, 16) << "; attached to "
                      << ops::join_ifaces(ifaces) << (a->xdp ? " (tc ingress/egress, xdp)" : " (tc ingress/egress)")
                      << "\n";
            spdlog::info("translate+compile {:.1f} ms, load+swap {:.1f} ms", ms(t_compiled - t0),
                         d.prepare_ms + d.install_ms);
            if (a->cutover) {
              int c = cutover_after_apply(*tr, pol, *a);
              if (c == kOk) return kOk;
              // Nothing was removed from netfilter: take the eBPF policy
              // back too, so a failed `apply --cutover` changes nothing.
              switch (ops::take_back(d.opened)) {
                case ops::TakenBack::Unloaded: std::cerr << "  the eBPF policy was unloaded again: nothing changed\n"; break;
                case ops::TakenBack::UnloadFailed: std::cerr << "  unloading the eBPF policy failed too: run `nf2bpf unload`\n"; break;
                case ops::TakenBack::RolledBack: std::cerr << "  the previous eBPF generation is live again: nothing changed\n"; break;
                case ops::TakenBack::RollbackFailed: std::cerr << "  rolling back the eBPF policy failed too: check `nf2bpf status`\n"; break;
              }
              return c;
            }
            return kOk;
          }};
}

}  // namespace nf2bpf::cli
