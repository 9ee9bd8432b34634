// nf2bpf restore: put back what `apply --cutover` removed, in one nftables
// transaction, then unload the eBPF policy.
#include <iostream>

#include "cli/command.h"
#include "ops/restore.h"

namespace nf2bpf::cli {

namespace {

const char* dataplane_word(ops::RestoreOutcome::Dataplane d) {
  using Dataplane = ops::RestoreOutcome::Dataplane;
  switch (d) {
    case Dataplane::kept: return "kept";
    case Dataplane::none: return "none";
    case Dataplane::unloaded: return "unloaded";
    case Dataplane::untouched: break;
  }
  return "untouched";
}

// {"restored", "rules", "chains", "messages", "backup_moved_to", "dataplane", "detached"}
nlohmann::json fields(const ops::RestoreOutcome& r) {
  nlohmann::json detached = nlohmann::json::array();
  for (size_t at = 0; at < r.detached.size();) {
    size_t comma = r.detached.find(", ", at);
    detached.push_back(r.detached.substr(at, comma - at));
    at = comma == std::string::npos ? r.detached.size() : comma + 2;
  }
  return {{"restored", r.restored},
          {"rules", r.rules},
          {"chains", r.chains},
          {"messages", r.messages},
          {"backup_moved_to", r.moved_to.empty() ? nlohmann::json() : nlohmann::json(r.moved_to)},
          {"dataplane", dataplane_word(r.dataplane)},
          {"detached", detached}};
}

int run(const ops::RestoreOptions& o) {
  ops::RestoreOutcome r = ops::run_restore(o);
  using Dataplane = ops::RestoreOutcome::Dataplane;
  if (o.dry_run && r.kind == ops::Kind::ok) {
    text() << "dry run: would send " << r.messages << " messages in one transaction:\n";
    for (const auto& d : r.planned) detail() << "  " << d << "\n";
    if (ui().json) emit_json({{"result", "would-restore"}, {"messages", r.messages}, {"planned", r.planned}}, kOk);
    return kOk;
  }
  if (r.restored) {
    text() << "restored: " << r.rules << " rules and " << r.chains << " chains put back in one transaction ("
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
    nlohmann::json extra = fields(r);
    extra["problems"] = r.problems;
    return fail(exit_status(r.kind), r.message, r.hint, extra);
  }
  if (ui().json) {
    nlohmann::json doc = fields(r);
    doc["result"] = "restored";
    emit_json(doc, kOk);
  }
  return kOk;
}

}  // namespace

Command add_restore(CLI::App& app) {
  auto a = std::make_shared<ops::RestoreOptions>();
  CLI::App* sub = app.add_subcommand(
      "restore",
      "Put back the netfilter rules `apply --cutover` removed (one transaction), then unload the eBPF policy");
  sub->add_option("--backup", a->backup,
                  "The cut-over backup (default: /var/lib/nf2bpf/netns-cookie-<cookie>/cutover-backup.json)")
      ->option_text("FILE");
  sub->add_option("--pin-dir", a->pin_dir, "bpffs directory of nf2bpf's pins (default: per namespace)")
      ->option_text("DIR");
  sub->add_flag("--keep-dataplane", a->keep_dataplane, "Leave the eBPF policy loaded");
  sub->add_flag("--dry-run", a->dry_run, "List the transaction's messages, change nothing");
  auto format = std::make_shared<std::string>("text");
  sub->add_option("--format", *format, "Output format (default text)")
      ->check(CLI::IsMember({"text", "json"}))
      ->option_text("text|json");
  sub->footer(
      "Every removed chain and rule comes back as the kernel had it (the backup keeps the exact netlink\n"
      "messages), in its old place among the rules that stayed, with its counters; base chain policies\n"
      "the cut-over set to accept are set back. Nothing is changed if the ruleset no longer fits the\n"
      "backup (a deleted chain exists again, a rule that stayed is gone).\n"
      "Exit status: 0 restored, 1 no backup in this namespace or it does not fit the ruleset, 2 the\n"
      "--backup FILE cannot be read, a usage error or a system error.");
  return {sub, [a, format]() -> int {
            ui().json = *format == "json";
            if (a->backup == "-")
              return fail(kUsage, "--backup must be a file: restore renames it once it is used", "give its path");
            return run(*a);
          }};
}

}  // namespace nf2bpf::cli
