// nf2bpf restore: put back what `apply --cutover` removed, in one nftables
// transaction, then unload the eBPF policy.
#include <iostream>

#include "cli/command.h"
#include "ops/restore.h"

namespace nf2bpf::cli {

namespace {

int run(const ops::RestoreOptions& o) {
  ops::RestoreOutcome r = ops::run_restore(o);
  using Dataplane = ops::RestoreOutcome::Dataplane;
  if (o.dry_run && r.kind == ops::Kind::ok) {
    std::cout << "dry run: would send " << r.messages << " messages in one transaction:\n";
    for (const auto& d : r.planned) detail() << "  " << d << "\n";
    return kOk;
  }
  if (r.restored) {
    std::cout << "restored: " << r.rules << " rules and " << r.chains << " chains put back in one transaction ("
              << r.messages << " messages)\n";
    if (!r.moved_to.empty()) detail() << "  backup:  moved to " << r.moved_to << "\n";
    if (r.dataplane == Dataplane::kept) detail() << "  eBPF policy left loaded (--keep-dataplane)\n";
    if (r.dataplane == Dataplane::none) detail() << "  no eBPF dataplane was loaded\n";
    if (r.dataplane == Dataplane::unloaded)
      detail() << "  eBPF policy unloaded (detached from " << (r.detached.empty() ? "no interface" : r.detached)
                << ")\n";
  }
  if (r.kind != ops::Kind::ok) {
    for (const auto& p : r.problems) std::cerr << "  " << p << "\n";
    print_error(r.message, r.hint);
  }
  return exit_status(r.kind);
}

}  // namespace

Command add_restore(CLI::App& app) {
  auto a = std::make_shared<ops::RestoreOptions>();
  CLI::App* sub = app.add_subcommand(
      "restore", "Put back the netfilter rules `apply --cutover` removed (one transaction), then unload the eBPF policy");
  sub->add_option("--backup", a->backup,
                  "The cut-over backup (default: /var/lib/nf2bpf/netns-<inode>/cutover-backup.json)")
      ->option_text("FILE");
  sub->add_option("--pin-dir", a->pin_dir, "bpffs directory of nf2bpf's pins (default: per namespace)")
      ->option_text("DIR");
  sub->add_flag("--keep-dataplane", a->keep_dataplane, "Leave the eBPF policy loaded");
  sub->add_flag("--dry-run", a->dry_run, "List the transaction's messages, change nothing");
  sub->footer("Every removed chain and rule comes back as the kernel had it (the backup keeps the exact netlink\n"
              "messages), in its old place among the rules that stayed, with its counters; base chain policies\n"
              "the cut-over set to accept are set back. Nothing is changed if the ruleset no longer fits the\n"
              "backup (a deleted chain exists again, a rule that stayed is gone).\n"
              "Exit status: 0 restored, 1 no backup in this namespace or it does not fit the ruleset, 2 the\n"
              "--backup FILE cannot be read, a usage error or a system error.");
  return {sub, [a]() -> int {
            if (a->backup == "-") {
              print_error("--backup must be a file: restore renames it once it is used", "give its path");
              return kUsage;
            }
            return run(*a);
          }};
}

}  // namespace nf2bpf::cli
