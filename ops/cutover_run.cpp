#include "ops/cutover_run.h"

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "common/atomic_file.h"
#include "common/json_text.h"
#include "cutover/cutover.h"
#include "loader/host.h"
#include "ops/state_store.h"
#include "ops/witness.h"
#include "translator/passes/flatten.h"
#include "translator/policy/compile.h"

namespace nf2bpf::ops {

namespace {

namespace co = nf2bpf::cutover;

// Attempts when the netfilter ruleset changes between reading it and
// committing the transaction.
constexpr int kAttempts = 5;

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
// evaluator on witness packets of each. Returns why not, or "" and `how`.
std::string prove_live_is_source(const Translation& tr, const policy::Policy& pol, const Translation& live,
                                 std::string& how) {
  if (live.diags.has_errors()) {
    for (const auto& d : live.diags.all())
      if (d.severity == diag::Severity::Error) return "the live ruleset does not read back cleanly (" + d.message + ")";
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

CutoverOutcome ended(Kind kind, const std::string& message, const std::string& hint = {},
                     std::vector<std::string> problems = {}) {
  CutoverOutcome c;
  c.kind = kind;
  c.message = message;
  c.hint = hint;
  c.problems = std::move(problems);
  return c;
}

// Where the backup goes: --backup, or the state directory's.
Result<std::string> backup_path(const CutoverOptions& o) {
  if (!o.backup.empty()) return o.backup;
  auto dir = default_state_dir();
  if (!dir) return dir.error();
  return default_backup_path(*dir);
}

// The backup document: everything the plan removes or changes.
nlohmann::json backup_doc(const co::Plan& plan, const co::Snapshot& snap, const Translation& tr,
                          const policy::Policy& pol, const CutoverOptions& o) {
  co::BackupInfo info;
  info.source = o.source;
  info.format = tr.input_format;
  info.policy_checksum = pol.checksum;
  if (auto ns = loader::netns_id()) info.netns = *ns;
  if (auto c = loader::netns_cookie()) info.netns_cookie = *c;
  info.boot_id = loader::boot_id();
  return co::make_backup(plan, snap, info);
}

}  // namespace

co::Plan plan_cutover(const Translation& tr, const policy::Policy& pol, const co::Snapshot& snap,
                      const LegacyTables& legacy) {
  co::Plan plan = co::make_plan(tr, pol, snap);
  for (const auto& id : co::source_tables(tr)) {
    if (snap.find(id)) continue;
    auto names = legacy(id.family);
    if (std::find(names.begin(), names.end(), id.name) != names.end())
      plan.problems.insert(plan.problems.begin(), "table " + id.str() +
                                                      " is an iptables-legacy (x_tables) table, which an nftables "
                                                      "transaction cannot touch");
  }
  return plan;
}

std::string plan_refusal_hint(const co::Plan& plan) {
  bool legacy = !plan.problems.empty() && plan.problems.front().find("iptables-legacy") != std::string::npos;
  return legacy ? "move the rules to iptables-nft (iptables-legacy-save | iptables-nft-restore), or remove "
                  "them with iptables-legacy yourself; the eBPF policy is live either way"
                : "translate what is live: nf2bpf apply --from kernel --cutover, or save it again "
                  "(iptables-save, nft list ruleset) and apply that";
}

CutoverOutcome run_cutover(const Translation& tr, const policy::Policy& pol, const CutoverOptions& o) {
  auto sock = co::NftSocket::open();
  if (!sock) return ended(Kind::error, "cut-over: " + sock.error().message(), "cut-over needs root (CAP_NET_ADMIN)");
  std::vector<co::TableId> ids = co::source_tables(tr);
  auto backup = backup_path(o);
  if (!backup) return ended(Kind::error, "cut-over: " + backup.error().message());
  if (!o.dry_run && !o.check_only) prune_gone_state();
  if (!o.dry_run && std::filesystem::exists(*backup))
    return ended(Kind::refused, "cut-over refused: a backup from an earlier cut-over is at " + *backup,
                 "run `nf2bpf restore` to put it back first, or give another --backup FILE");

  for (int attempt = 1;; ++attempt) {
    auto snap = co::read_snapshot(**sock, ids);
    if (!snap) return ended(Kind::error, "cut-over: " + snap.error().message());
    co::Plan plan = plan_cutover(tr, pol, *snap, co::legacy_tables);
    if (!plan.problems.empty())
      return ended(Kind::refused,
                   "cut-over refused: the live netfilter ruleset is not the one that was translated; nothing was "
                   "removed",
                   plan_refusal_hint(plan), plan.problems);
    auto live = translate_file("", TranslateOptions{"kernel", true, {}});
    if (!live) return ended(Kind::error, "cut-over: " + live.error().message());
    auto gen = (*sock)->generation();
    if (!gen) return ended(Kind::error, "cut-over: " + gen.error().message());
    if (*gen != snap->genid) {
      if (attempt < kAttempts) continue;
      return ended(Kind::error, "cut-over: the netfilter ruleset keeps changing; nothing was removed",
                   "try again when it is quiet");
    }
    CutoverOutcome c;
    std::string why = prove_live_is_source(tr, pol, live_subset(*live, ids), c.how);
    if (!why.empty())
      return ended(Kind::refused, "cut-over refused: " + why + "; nothing was removed",
                   "translate what is live: nf2bpf apply --from kernel --cutover");
    auto unrepro = co::check_plan_reproducible(plan, *snap);
    if (!unrepro.empty())
      return ended(Kind::refused,
                   "cut-over refused: the backup could not put every removed rule back exactly; nothing was removed",
                   {}, unrepro);
    c.genid = snap->genid;
    c.backup = *backup;
    if (!o.check_only && !o.dry_run) {
      if (auto r = make_dirs(std::filesystem::path(*backup).parent_path().string()); !r)
        return ended(Kind::error, "cut-over: " + r.error().message());
      nlohmann::json doc = backup_doc(plan, *snap, tr, pol, o);
      if (auto r = write_file_atomic(*backup, dump_utf8(doc, 1) + "\n", 0600); !r)
        return ended(Kind::error, "cut-over: save the backup: " + r.error().message(), "nothing was removed");
      co::Batch batch = co::cutover_batch(plan, *snap);
      auto done = (*sock)->commit(batch, snap->genid);
      if (!done) {
        std::filesystem::remove(*backup);  // nothing was removed: nothing to restore
        if (done.error().code == ERESTART && attempt < kAttempts) continue;
        return ended(Kind::error, "cut-over: " + done.error().message(),
                     "the transaction was refused as a whole: nothing was removed");
      }
      c.messages = batch.count();
    }
    c.plan = std::move(plan);
    return c;
  }
}

}  // namespace nf2bpf::ops
