// nf2bpf restore: put back what `apply --cutover` removed, in one nftables
// transaction, then unload the eBPF policy.
#include <filesystem>
#include <iostream>

#include "cli/command.h"
#include "cutover/cutover.h"
#include "loader/host.h"
#include "ops/deploy.h"
#include "ops/state_store.h"

namespace nf2bpf::cli {

namespace {

namespace co = nf2bpf::cutover;

struct RestoreArgs {
  std::string backup, pin_dir;
  bool keep_dataplane = false;
  bool dry_run = false;
};

int run(const RestoreArgs& a) {
  std::string path = a.backup;
  if (path.empty()) {
    auto dir = ops::default_state_dir();
    if (!dir) {
      print_error(dir.error().message());
      return kSystem;
    }
    path = ops::default_backup_path(*dir);
  }
  if (!std::filesystem::exists(path)) {
    print_error("no cut-over backup at " + path,
                "`nf2bpf apply --cutover` writes one; give --backup FILE if it was written elsewhere");
    return kRejected;
  }
  auto doc = co::read_backup(path);
  if (!doc) {
    print_error(doc.error().message());
    return doc.error().code == EINVAL ? kRejected : kSystem;
  }
  if (auto ns = loader::netns_id(); ns && doc->value("netns", (uint64_t)0) && doc->value("netns", (uint64_t)0) != *ns) {
    print_error(path + " was made in another network namespace (inode " +
                    std::to_string(doc->value("netns", (uint64_t)0)) + "; this one is " + std::to_string(*ns) + ")",
                "run restore inside the namespace the cut-over ran in (ip netns exec NAME nf2bpf restore)");
    return kRejected;
  }
  auto ids = co::backup_tables(*doc);
  if (!ids) {
    print_error(path + ": " + ids.error().message());
    return kRejected;
  }
  auto sock = co::NftSocket::open();
  if (!sock) {
    print_error(sock.error().message(), "restore needs root (CAP_NET_ADMIN)");
    return kSystem;
  }
  co::Batch batch;
  for (int attempt = 1;; ++attempt) {
    auto snap = co::read_snapshot(**sock, *ids);
    if (!snap) {
      print_error(snap.error().message());
      return kSystem;
    }
    std::vector<std::string> problems;
    auto b = co::restore_batch(*doc, *snap, problems);
    if (!b) {
      print_error(path + ": " + b.error().message());
      return kRejected;
    }
    if (!problems.empty()) {
      for (const auto& p : problems) std::cerr << "  " << p << "\n";
      print_error("restore refused: the netfilter ruleset changed since the cut-over; nothing was changed",
                  "the saved rules are readable in the backup's \"listing\"; put them back by hand, or undo the "
                  "changes listed above and run restore again");
      return kRejected;
    }
    batch = std::move(*b);
    if (a.dry_run) {
      std::cout << "dry run: would send " << batch.count() << " messages in one transaction:\n";
      for (const auto& d : batch.descriptions()) std::cout << "  " << d << "\n";
      return kOk;
    }
    auto done = (*sock)->commit(batch, snap->genid);
    if (done) break;
    if (done.error().code == ERESTART && attempt < 5) continue;
    print_error("restore: " + done.error().message(), "the transaction was refused as a whole: nothing was changed");
    return kSystem;
  }
  auto summary = doc->value("summary", nlohmann::json::object());
  std::cout << "restored: " << summary.value("rules_removed", 0) << " rules and " << summary.value("chains_deleted", 0)
            << " chains put back in one transaction (" << batch.count() << " messages)\n";
  std::string done_path = path + ".restored";
  std::error_code ec;
  std::filesystem::rename(path, done_path, ec);
  if (!ec) std::cout << "  backup:  moved to " << done_path << "\n";
  if (a.keep_dataplane) {
    std::cout << "  eBPF policy left loaded (--keep-dataplane)\n";
    return kOk;
  }
  auto dp = ops::find_dataplane(a.pin_dir);
  if (!dp) {
    print_error("the netfilter rules are back, but finding the eBPF dataplane failed: " + dp.error().message(),
                "run `nf2bpf unload`");
    return kSystem;
  }
  if (!*dp) {
    std::cout << "  no eBPF dataplane was loaded\n";
    return kOk;
  }
  auto st = (*dp)->status(false);
  if (auto r = (*dp)->unload(); !r) {
    print_error("the netfilter rules are back, but unloading the eBPF policy failed: " + r.error().message(),
                "run `nf2bpf unload`");
    return kSystem;
  }
  std::string names;
  if (st)
    for (const auto& e : st->attach) names += (names.empty() ? "" : ", ") + e.value("name", "?");
  std::cout << "  eBPF policy unloaded (detached from " << (names.empty() ? "no interface" : names) << ")\n";
  return kOk;
}

}  // namespace

Command add_restore(CLI::App& app) {
  auto a = std::make_shared<RestoreArgs>();
  CLI::App* sub = app.add_subcommand(
      "restore", "Put back the netfilter rules `apply --cutover` removed (one transaction), then unload the eBPF policy");
  sub->add_option("--backup", a->backup,
                  "The cut-over backup (default: /var/lib/nf2bpf/netns-<inode>/cutover-backup.json)");
  sub->add_option("--pin-dir", a->pin_dir, "bpffs directory of nf2bpf's pins (default: per namespace)");
  sub->add_flag("--keep-dataplane", a->keep_dataplane, "Leave the eBPF policy loaded");
  sub->add_flag("--dry-run", a->dry_run, "List the transaction's messages, change nothing");
  sub->footer("Every removed chain and rule comes back as the kernel had it (the backup keeps the exact netlink\n"
              "messages), in its old place among the rules that stayed, with its counters; base chain policies\n"
              "the cut-over set to accept are set back. Nothing is changed if the ruleset no longer fits the\n"
              "backup (a deleted chain exists again, a rule that stayed is gone).\n"
              "Exit status: 0 restored, 1 no backup or it does not fit the ruleset, 2 system error.");
  return {sub, [a]() -> int { return run(*a); }};
}

}  // namespace nf2bpf::cli
