#include "cli/cutover_run.h"

#include <linux/netfilter.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>

#include "cli/command.h"
#include "common/atomic_file.h"
#include "cutover/cutover.h"
#include "loader/host.h"
#include "ops/state_store.h"
#include "ops/witness.h"
#include "translator/passes/flatten.h"
#include "translator/policy/compile.h"

namespace nf2bpf::cli {

namespace {

namespace co = nf2bpf::cutover;
using namespace nf2bpf::ops;

// A scratch directory for witness captures, removed with the object.
struct TempDir {
  std::string path;
  TempDir() {
    std::string t = (getenv("TMPDIR") ? std::string(getenv("TMPDIR")) : "/tmp") + "/nf2bpf-cutover.XXXXXX";
    if (mkdtemp(t.data())) path = t;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path.empty()) std::filesystem::remove_all(path, ec);
  }
};

// The live ruleset's tables that the source has, as a translation of its own.
Translation live_subset(const Translation& live, const std::vector<co::TableId>& ids) {
  Translation k;
  k.input_format = "kernel";
  k.ruleset.source = "kernel";
  k.ruleset.frontend = live.ruleset.frontend;
  for (const auto& t : live.ruleset.tables)
    if (std::find(ids.begin(), ids.end(), co::TableId{co::nfproto_of(t.family), t.name}) != ids.end())
      k.ruleset.tables.push_back(t);
  k.ruleset.global_sets = live.ruleset.global_sets;
  k.pipeline = passes::flatten(k.ruleset, k.diags);
  k.rules = passes::classify(k.ruleset, k.diags, {true});
  return k;
}

// Is the live ruleset (these tables) the one that was translated? The same
// compiled policy settles it; otherwise both are run by the reference
// evaluator on witness packets of each.
std::string prove_live_is_source(const Translation& tr, const policy::Policy& pol, const Translation& live,
                                 std::string& how) {
  if (live.diags.has_errors()) {
    for (const auto& d : live.diags.all())
      if (d.severity == diag::Severity::Error)
        return "the live ruleset does not read back cleanly (" + d.message + ")";
  }
  diag::Diagnostics cd;
  policy::Policy lp = policy::compile(live, cd);
  if (!cd.has_errors() && lp.checksum == pol.checksum) {
    how = "it compiles to the live eBPF policy, checksum " + pol.checksum.substr(0, 16);
    return {};
  }
  TempDir tmp;
  if (tmp.path.empty()) return "cannot create a scratch directory for witness packets";
  Comparison total;
  for (const auto* side : {&tr, &live}) {
    std::string cap = tmp.path + (side == &tr ? "/source.pcapng" : "/live.pcapng");
    auto n = synthesize_witness(*side, cap);
    if (!n) return "cannot write witness packets: " + n.error().message();
    auto c = compare_rulesets(tr, live, cap);
    if (!c) return "cannot compare on witness packets: " + c.error().message();
    total.add(*c);
  }
  if (total.differed) {
    std::string s = std::to_string(total.differed) + " of " + std::to_string(total.packets) +
                    " witness packets are judged differently by the live ruleset";
    for (const auto& d : total.describe(3)) s += "\n    " + d;
    return s;
  }
  how = "the reference evaluator gives the same verdict on all " + std::to_string(total.packets) +
        " witness packets of both";
  return {};
}

void print_plan(const co::Plan& plan) {
  for (const auto& tp : plan.tables) {
    size_t removed = 0, chains = 0;
    for (const auto& cp : tp.chains) removed += cp.removed(), chains += cp.delete_chain;
    std::cout << "  removed: " << tp.id.str() << ": " << removed << " rules";
    if (tp.emptied) std::cout << ", " << chains << " chains (the table stays, empty)";
    std::cout << "\n";
    for (const auto& cp : tp.chains) {
      if (cp.set_policy)
        std::cout << "  policy:  " << tp.id.str() << " " << cp.name
                  << ": drop -> accept (the eBPF policy drops what it dropped)\n";
      for (const auto& rp : cp.rules)
        if (!rp.remove)
          std::cout << "  kept:    " << rp.location << ": " << rp.text << "  (" << rp.why << ")\n";
    }
  }
  if (!plan.untouched.empty()) {
    std::cout << "  untouched (not translated):";
    for (const auto& t : plan.untouched) std::cout << " " << t << (&t == &plan.untouched.back() ? "" : ",");
    std::cout << "\n";
  }
}

}  // namespace

int run_cutover(const Translation& tr, const policy::Policy& pol, const CutoverOptions& o) {
  auto sock = co::NftSocket::open();
  if (!sock) {
    print_error("cut-over: " + sock.error().message(), "cut-over needs root (CAP_NET_ADMIN)");
    return kSystem;
  }
  std::vector<co::TableId> ids = co::source_tables(tr);
  std::string backup = o.backup;
  if (backup.empty()) {
    auto dir = default_state_dir();
    if (!dir) {
      print_error("cut-over: " + dir.error().message());
      return kSystem;
    }
    backup = default_backup_path(*dir);
  }
  if (!o.dry_run && std::filesystem::exists(backup)) {
    print_error("cut-over refused: a backup from an earlier cut-over is at " + backup,
                "run `nf2bpf restore` to put it back first, or give another --backup FILE");
    return kRejected;
  }

  for (int attempt = 1;; ++attempt) {
    auto snap = co::read_snapshot(**sock, ids);
    if (!snap) {
      print_error("cut-over: " + snap.error().message());
      return kSystem;
    }
    co::Plan plan = co::make_plan(tr, pol, *snap);
    // Tables iptables-legacy holds are out of an nftables transaction's reach.
    for (const auto& id : ids) {
      if (snap->find(id)) continue;
      auto legacy = co::legacy_tables(id.family);
      if (std::find(legacy.begin(), legacy.end(), id.name) != legacy.end())
        plan.problems.insert(plan.problems.begin(),
                             "table " + id.str() + " is an iptables-legacy (x_tables) table, which an nftables "
                             "transaction cannot touch");
    }
    if (!plan.problems.empty()) {
      for (const auto& p : plan.problems) std::cerr << "  " << p << "\n";
      bool legacy = plan.problems.front().find("iptables-legacy") != std::string::npos;
      print_error("cut-over refused: the live netfilter ruleset is not the one that was translated; nothing was removed",
                  legacy ? "move the rules to iptables-nft (iptables-legacy-save | iptables-nft-restore), or remove "
                           "them with iptables-legacy yourself; the eBPF policy is live either way"
                         : "translate what is live: nf2bpf apply --from kernel --cutover, or save it again "
                           "(iptables-save, nft list ruleset) and apply that");
      return kRejected;
    }
    auto live = translate_file("", TranslateOptions{"kernel", true, {}});
    if (!live) {
      print_error("cut-over: " + live.error().message());
      return kSystem;
    }
    auto gen = (*sock)->generation();
    if (!gen) {
      print_error("cut-over: " + gen.error().message());
      return kSystem;
    }
    if (*gen != snap->genid) {
      if (attempt < 5) continue;
      print_error("cut-over: the netfilter ruleset keeps changing; nothing was removed", "try again when it is quiet");
      return kSystem;
    }
    std::string how;
    std::string why = prove_live_is_source(tr, pol, live_subset(*live, ids), how);
    if (!why.empty()) {
      print_error("cut-over refused: " + why + "; nothing was removed",
                  "translate what is live: nf2bpf apply --from kernel --cutover");
      return kRejected;
    }
    auto unrepro = co::check_plan_reproducible(plan, *snap);
    if (!unrepro.empty()) {
      for (const auto& p : unrepro) std::cerr << "  " << p << "\n";
      print_error("cut-over refused: the backup could not put every removed rule back exactly; nothing was removed");
      return kRejected;
    }
    if (o.check_only) return kOk;
    std::cout << "cut-over: the live netfilter ruleset (generation " << snap->genid << ") is " << tr.ruleset.source
              << ": " << how << "\n";
    if (o.dry_run) {
      std::cout << "dry run: would remove " << plan.rules_removed() << " rules and " << plan.chains_deleted()
                << " chains in one transaction, keep " << plan.rules_kept() << " rules\n";
      print_plan(plan);
      return kOk;
    }
    co::BackupInfo info;
    info.source = o.source;
    info.format = tr.input_format;
    info.policy_checksum = pol.checksum;
    if (auto ns = loader::netns_id()) info.netns = *ns;
    nlohmann::json doc = co::make_backup(plan, *snap, info);
    if (auto r = make_dirs(std::filesystem::path(backup).parent_path().string()); !r) {
      print_error("cut-over: " + r.error().message());
      return kSystem;
    }
    if (auto r = write_file_atomic(backup, doc.dump(1) + "\n", 0600); !r) {
      print_error("cut-over: save the backup: " + r.error().message(), "nothing was removed");
      return kSystem;
    }
    co::Batch batch = co::cutover_batch(plan, *snap);
    auto done = (*sock)->commit(batch, snap->genid);
    if (!done) {
      std::filesystem::remove(backup);  // nothing was removed: nothing to restore
      if (done.error().code == ERESTART && attempt < 5) continue;
      print_error("cut-over: " + done.error().message(), "the transaction was refused as a whole: nothing was removed");
      return kSystem;
    }
    std::cout << "cut-over done: " << plan.rules_removed() << " rules and " << plan.chains_deleted()
              << " chains removed in one transaction (" << batch.count() << " messages), " << plan.rules_kept()
              << " rules kept\n";
    print_plan(plan);
    std::cout << "  backup:  " << backup << " (nf2bpf restore --backup " << backup << " puts it back)\n";
    return kOk;
  }
}

}  // namespace nf2bpf::cli
