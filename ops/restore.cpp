#include "ops/restore.h"

#include <filesystem>

#include "cutover/cutover.h"
#include "loader/host.h"
#include "ops/deploy.h"
#include "ops/state_store.h"

namespace nf2bpf::ops {

namespace {

namespace co = nf2bpf::cutover;

// Attempts when the netfilter ruleset changes between reading it and
// committing the transaction.
constexpr int kAttempts = 5;

RestoreOutcome& end(RestoreOutcome& r, Kind kind, const std::string& message, const std::string& hint = {}) {
  r.kind = kind;
  r.message = message;
  r.hint = hint;
  return r;
}

// After the rules are back: the eBPF policy goes, unless it is to stay.
void unload_dataplane(RestoreOutcome& r, const RestoreOptions& o) {
  if (o.keep_dataplane) {
    r.dataplane = RestoreOutcome::Dataplane::kept;
    return;
  }
  auto dp = find_dataplane(o.pin_dir, true);
  if (!dp) {
    end(r, Kind::error, "the netfilter rules are back, but finding the eBPF dataplane failed: " + dp.error().message(),
        "run `nf2bpf unload`");
    return;
  }
  if (!*dp) {
    r.dataplane = RestoreOutcome::Dataplane::none;
    return;
  }
  auto st = (*dp)->foreign().empty() ? (*dp)->status(false) : Result<loader::StatusInfo>(Error{0, ""});
  if (auto u = (*dp)->unload(); !u) {
    end(r, Kind::error, "the netfilter rules are back, but unloading the eBPF policy failed: " + u.error().message(),
        "run `nf2bpf unload`");
    return;
  }
  r.dataplane = RestoreOutcome::Dataplane::unloaded;
  if (st)
    for (const auto& e : st->attach) r.detached += (r.detached.empty() ? "" : ", ") + e.value("name", "?");
}

}  // namespace

RestoreOutcome run_restore(const RestoreOptions& o) {
  RestoreOutcome r;
  std::string path = o.backup;
  if (path.empty()) {
    auto dir = default_state_dir();
    if (!dir) return end(r, Kind::error, dir.error().message());
    path = default_backup_path(*dir);
  }
  // The default backup missing means nothing to restore; a --backup FILE
  // that is not there is a file that cannot be read, like any other.
  if (!std::filesystem::exists(path)) {
    std::string legacy = o.backup.empty() ? legacy_backup_path() : std::string();
    return end(r, o.backup.empty() ? Kind::refused : Kind::error, "no cut-over backup at " + path,
               legacy.empty()
                   ? "`nf2bpf apply --cutover` writes one; give --backup FILE if it was written elsewhere"
                   : "an older nf2bpf kept a backup under this namespace's inode number, " + legacy +
                         "; inode numbers are reused, so it may be a namespace's that is gone: if it is this "
                         "one's, run `nf2bpf restore --backup " +
                         legacy + "` (it is checked against the live ruleset first)");
  }
  auto doc = co::read_backup(path);
  if (!doc) return end(r, doc.error().code == EINVAL ? Kind::refused : Kind::error, doc.error().message());
  uint64_t made_in = doc->value("netns", (uint64_t)0);
  uint64_t cookie = doc->value("netns_cookie", (uint64_t)0);
  auto here = loader::netns_cookie();
  auto inode_here = loader::netns_id();
  bool host = made_in == loader::kInitNetnsInode && inode_here && *inode_here == made_in;  // survives reboots
  if (!host && cookie && here && (cookie != *here || doc->value("boot_id", "") != loader::boot_id()))
    return end(r, Kind::refused,
               path + " was made in another network namespace (cookie " + std::to_string(cookie) +
                   (doc->value("boot_id", "") != loader::boot_id() ? ", before a reboot" : "") + "; this one is " +
                   std::to_string(*here) + ")",
               "run restore inside the namespace the cut-over ran in (ip netns exec NAME nf2bpf restore)");
  if (auto ns = loader::netns_id(); !cookie && ns && made_in && made_in != *ns)
    return end(r, Kind::refused,
               path + " was made in another network namespace (inode " + std::to_string(made_in) + "; this one is " +
                   std::to_string(*ns) + ")",
               "run restore inside the namespace the cut-over ran in (ip netns exec NAME nf2bpf restore)");
  auto ids = co::backup_tables(*doc);
  if (!ids) return end(r, Kind::refused, path + ": " + ids.error().message());
  auto sock = co::NftSocket::open();
  if (!sock) return end(r, Kind::error, sock.error().message(), "restore needs root (CAP_NET_ADMIN)");
  for (int attempt = 1;; ++attempt) {
    auto snap = co::read_snapshot(**sock, *ids);
    if (!snap) return end(r, Kind::error, snap.error().message());
    auto b = co::restore_batch(*doc, *snap, r.problems);
    if (!b) return end(r, Kind::refused, path + ": " + b.error().message());
    if (!r.problems.empty())
      return end(r, Kind::refused,
                 "restore refused: the netfilter ruleset changed since the cut-over; nothing was changed",
                 "the saved rules are readable in the backup's \"listing\"; put them back by hand, or undo the "
                 "changes listed above and run restore again");
    r.messages = b->count();
    if (o.dry_run) {
      r.planned = b->descriptions();
      return r;
    }
    auto done = (*sock)->commit(*b, snap->genid);
    if (done) break;
    if (done.error().code == ERESTART && attempt < kAttempts) continue;
    return end(r, Kind::error, "restore: " + done.error().message(),
               "the transaction was refused as a whole: nothing was changed");
  }
  r.restored = true;
  auto summary = doc->value("summary", nlohmann::json::object());
  r.rules = summary.value("rules_removed", 0);
  r.chains = summary.value("chains_deleted", 0);
  std::string done_path = path + ".restored";
  std::error_code ec;
  std::filesystem::rename(path, done_path, ec);
  if (!ec) r.moved_to = done_path;
  unload_dataplane(r, o);
  return r;
}

}  // namespace nf2bpf::ops
