#include "ops/sync.h"

#include "ops/coverage.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "common/atomic_file.h"
#include "ops/deploy.h"
#include "ops/service_conntrack.h"
#include "ops/state_store.h"
#include "ops/witness.h"
#include "translator/policy/compile.h"

namespace nf2bpf::ops {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

std::string short_sum(const std::string& s) { return s.substr(0, 16); }

// How the JSON names the new policy's witness packets: their file is a
// scratch file (kept, under generations/, only when the policy goes live).
constexpr const char* kNewWitness = "witness packets synthesized from the source";

// Shown with a refusal: enough to see what differs, short enough to read.
constexpr size_t kShowDifferences = 10;

// Removes a file when the run ends, unless told to keep it.
struct RemoveOnExit {
  std::string path;
  ~RemoveOnExit() {
    std::error_code ec;
    if (!path.empty()) fs::remove(path, ec);
  }
};

// One run. Each step returns false when it ended the run (the outcome is
// then complete), true to go on.
class Run {
 public:
  explicit Run(const SyncOptions& o) : o_(o), t0_(Clock::now()) {
    out_.doc = {{"result", "error"}, {"dry_run", o.dry_run}, {"started", utc_time(time(nullptr))}};
  }

  SyncOutcome go();

 private:
  bool finish(Kind kind, const std::string& result, const std::string& line);
  bool refuse(const std::string& line, const std::string& hint = {}) {
    if (!hint.empty()) {
      out_.hint = hint;
      out_.doc["hint"] = hint;
    }
    return finish(Kind::refused, "refused", line);
  }
  bool fail(const std::string& line) { return finish(Kind::error, "error", line); }
  void note(const std::string& n) { out_.notes.push_back(n); }

  bool open_state();
  bool translate_source();
  bool look_at_live();
  bool when_in_sync(const SyncDecision& d);
  bool verify(const std::string& witness);
  bool witness_and_verify();
  bool change_guard();
  bool services_only();
  bool swap();
  bool record_live(uint64_t generation, const char* by);
  const policy::Policy* live_policy();

  const SyncOptions& o_;
  Clock::time_point t0_;
  SyncOutcome out_;
  std::string dir_;
  std::optional<StateLock> lock_;
  json state_;
  std::optional<Translation> tr_;
  policy::Policy pol_;
  std::string source_;
  std::vector<loader::Interface> ifaces_;
  std::string pin_dir_;
  json live_meta_;
  LiveView live_;
  std::string reason_;
  std::string witness_;
  RemoveOnExit witness_tmp_;
  std::optional<std::optional<policy::Policy>> live_pol_;  // live_policy()'s, once looked up
};

// The live generation's policy, as the previous watch run left it or as sync
// stored it; nullptr when neither has it (made live by apply).
const policy::Policy* Run::live_policy() {
  if (!live_pol_) {
    if (live_.checksum.empty())
      live_pol_.emplace();
    else if (o_.last && o_.last->checksum == live_.checksum)
      live_pol_.emplace(*o_.last);
    else if (live_.checksum == pol_.checksum)
      live_pol_.emplace(pol_);
    else
      live_pol_.emplace(load_generation(dir_, live_.checksum));
  }
  return *live_pol_ ? &**live_pol_ : nullptr;
}

// An outcome's ending: its kind, result and log line, in the fields and in
// the JSON document, with the time since `t0`.
void complete(SyncOutcome& out, Clock::time_point t0, Kind kind, const std::string& result, const std::string& line) {
  out.kind = kind;
  out.result = result;
  out.message = line;
  out.total_ms = ms_since(t0);
  out.doc["result"] = result;
  out.doc["message"] = line;
  out.doc["notes"] = out.notes;
  out.doc["timings_ms"]["total"] = out.total_ms;
}

bool Run::finish(Kind kind, const std::string& result, const std::string& line) {
  complete(out_, t0_, kind, result, line);
  if (!dir_.empty()) out_.doc["state_dir"] = dir_;
  return false;
}

// 1. State directory and lock: one sync at a time per namespace.
bool Run::open_state() {
  if (!o_.state_dir.empty())
    dir_ = o_.state_dir;
  else {
    auto d = default_state_dir();
    if (!d) return fail(d.error().message());
    dir_ = *d;
  }
  auto lock = StateLock::acquire(dir_, o_.lock_timeout);
  if (!lock) {
    if (lock.error().code == EWOULDBLOCK)
      return refuse("refused: " + lock.error().context,
                    "a sync that takes this long is stuck or the source is huge; "
                    "raise --lock-timeout or look at the other process");
    return fail(lock.error().message());
  }
  lock_.emplace(std::move(*lock));
  remove_leftovers(dir_);
  if (o_.state_dir.empty())
    for (const auto& gone : prune_gone_state()) note("removed the state of a network namespace that is gone: " + gone);
  state_ = read_state(dir_);
  return true;
}

// 2. Translate and compile the source (or take it as prepared).
bool Run::translate_source() {
  auto p = o_.prepared ? o_.prepared : prepare_source(o_);
  auto& tr = p->tr;
  if (!tr) return fail("read the source: " + tr.error().message());
  source_ = source_name(o_.source, o_.opt.from);
  out_.doc["source"] = source_;
  out_.doc["format"] = tr->input_format;
  if (tr->rejected(o_.opt.allow_partial)) {
    auto& e = out_.doc["errors"] = json::array();
    for (const auto& d : tr->diags.all())
      if (d.severity == diag::Severity::Error) e.push_back(d.loc.str() + ": " + d.message);
    bool only_unsupported = !tr->diags.has_errors();
    out_.rejected = std::move(*tr);
    return refuse("refused: " + source_ + " has " + (only_unsupported ? "unsupported rules" : std::string("errors")) +
                      "; the live generation is untouched",
                  only_unsupported ? "pass --allow-partial (allow_partial: true) to leave them in netfilter"
                                   : "fix the source; sync keeps the live policy until it translates cleanly");
  }
  if (p->compile_diags.has_errors()) {
    auto& e = out_.doc["errors"] = json::array();
    for (const auto& d : p->compile_diags.all())
      if (d.severity == diag::Severity::Error) e.push_back((d.loc.file.empty() ? "" : d.loc.str() + ": ") + d.message);
    out_.compile_diags = std::move(p->compile_diags);
    std::string first = e.empty() ? std::string() : ": " + e[0].get<std::string>();
    return refuse("refused: " + source_ + " cannot be compiled" + first + "; the live generation is untouched");
  }
  pol_ = std::move(p->pol);
  tr_ = std::move(*tr);
  out_.doc["checksum"] = pol_.checksum;
  out_.doc["rules"] = tr_->rules.size();
  out_.doc["timings_ms"]["translate_compile"] = p->ms;
  return true;
}

// 3. What is live, and the state file reconciled with it.
bool Run::look_at_live() {
  auto choice = pick_interfaces(o_.ifaces);
  if (!choice) return fail(choice.error().message());
  if (!choice->refused.empty())
    return refuse("refused: " + choice->refused, "see `ip link` for this namespace's interfaces");
  ifaces_ = std::move(choice->ifaces);
  out_.doc["interfaces"] = json::array();
  for (const auto& i : ifaces_) out_.doc["interfaces"].push_back(i.name);
  auto pin_dir = resolve_pin_dir(o_.pin_dir);
  if (!pin_dir) return fail(pin_dir.error().message());
  pin_dir_ = *pin_dir;
  auto found = loader::Dataplane::find(pin_dir_);
  if (!found) return fail(found.error().message());
  json live_attach = json::array();
  uint64_t live_gen = 0;
  if (*found) {
    auto st = (*found)->status(false);
    if (!st) return fail(st.error().message());
    if (st->live.value("valid", false)) live_meta_ = st->live;
    live_attach = st->attach;
    live_gen = st->generation;
  }
  live_ = live_view(live_meta_, live_attach, live_gen);
  if (*found && !live_meta_.empty())  // interfaces created since: covered by this run, or warned about
    if (auto cov = (*found)->status(false))
      for (auto& n : coverage_notes(live_attach, cov->excluded, ifaces_, out_.doc["unattached"])) note(n);
  json before = state_;
  for (auto& n : reconcile(state_, live_meta_)) note(n);
  if (state_ != before)
    if (auto r = write_state(dir_, state_); !r) return fail("write the state: " + r.error().message());
  out_.doc["live_before"] = live_.checksum.empty()
                                ? json(nullptr)
                                : json{{"checksum", live_.checksum},
                                       {"generation", live_.generation},
                                       {"source", live_meta_.value("source", "")},
                                       {"applied", utc_time(live_meta_.value("applied", (int64_t)0))}};
  return true;
}

// 4. Unchanged: nothing to do but the self-test, when asked for.
bool Run::when_in_sync(const SyncDecision& d) {
  if (!d.in_sync) {
    reason_ = d.reason;
    out_.doc["reason"] = reason_;
    return true;
  }
  std::string line = "in sync: generation " + std::to_string(live_.generation) + " is " + source_ + " (checksum " +
                     short_sum(pol_.checksum) + ", " + std::to_string(tr_->rules.size()) + " rules)";
  out_.doc["generation"] = live_.generation;
  if (o_.self_test) {
    std::string tmp = dir_ + "/self-test.pcapng";
    auto n = synthesize_witness(*tr_, tmp);
    if (!n) return fail("write witness packets: " + n.error().message());
    bool go_on = verify(tmp);
    fs::remove(tmp);
    if (!go_on) return false;
    line += "; self-test passed on " + std::to_string(out_.doc["verification"].value("packets", 0)) + " packets";
  }
  return finish(Kind::ok, "in-sync", line);
}

// The new policy against its source on witness packets (and the configured
// capture).
bool Run::verify(const std::string& witness) {
  auto t = Clock::now();
  auto c = check_compiled(*tr_, pol_, witness);
  if (!c) return fail("verification: " + c.error().message());
  Comparison total = *c;
  total.capture = kNewWitness;  // a scratch file, gone when the run ends
  if (!o_.capture.empty()) {
    auto cc = check_compiled(*tr_, pol_, o_.capture);
    if (!cc) return fail("verification on " + o_.capture + ": " + cc.error().message());
    total.add(*cc);
  }
  out_.doc["verification"] = total.json();
  out_.doc["timings_ms"]["verify"] = ms_since(t);
  if (total.excused)
    note(std::to_string(total.excused) + " witness packets are decided by rules left in netfilter (--allow-partial)");
  if (!total.error.empty()) return fail("verification: " + total.error);
  if (total.differed) {
    out_.differs = total.describe(kShowDifferences);
    return refuse("refused: the compiled policy disagrees with " + tr_->ruleset.source + " on " +
                      count_text(total.differed) + " of " + count_text(total.packets) +
                      " witness packets; the live generation is untouched",
                  "nf2bpf diff --synthesize W.pcapng " + o_.source + " && nf2bpf diff --pcap W.pcapng " + o_.source +
                      " shows each one");
  }
  return true;
}

// 5. Witness packets made from the new policy's rules, and the policy
// verified on them.
bool Run::witness_and_verify() {
  if (auto r = make_dirs(dir_ + "/generations"); !r) return fail(r.error().message());
  witness_ = dir_ + "/generations/" + pol_.checksum + ".pcapng.tmp." + std::to_string(getpid());
  witness_tmp_.path = witness_;
  auto t = Clock::now();
  auto n = synthesize_witness(*tr_, witness_);
  if (!n) return fail("write witness packets: " + n.error().message());
  out_.doc["witness_packets"] = *n;
  out_.doc["timings_ms"]["witness"] = ms_since(t);
  return verify(witness_);
}

// 6. The change guard: how many witness packets (of the new rules and of
// the live ones) change verdict?
bool Run::change_guard() {
  const std::string& live_sum = live_.checksum;
  const policy::Policy* old = live_policy();
  Guard g = guard_before(o_.max_change_given, o_.force, !live_sum.empty(), old != nullptr);
  if (g == Guard::off) return true;
  if (g == Guard::skip) {
    note("the change guard was skipped: the live generation (from " + live_meta_.value("source", "?") +
         ") was not made live by sync, so there is no stored copy to compare with; give --max-change to refuse "
         "instead");
    return true;
  }
  if (g == Guard::refuse)
    return refuse("refused: the live generation (checksum " + short_sum(live_sum) + ", from " +
                      live_meta_.value("source", "?") +
                      ") was not made live by sync, so the change guard has nothing to compare with",
                  "check the new policy (nf2bpf diff), then run sync once with --force");
  if (g == Guard::force) {
    note("--force: the change guard was skipped (the live policy is not one sync stored)");
    return true;
  }
  auto t = Clock::now();
  auto c = compare_policies(*old, pol_, witness_);
  if (!c) return fail("change guard: " + c.error().message());
  Comparison total = *c;
  total.capture = kNewWitness;
  std::string old_witness = generation_witness(dir_, live_sum);
  if (live_sum != pol_.checksum && fs::exists(old_witness)) {
    auto c2 = compare_policies(*old, pol_, old_witness);
    if (!c2) return fail("change guard: " + c2.error().message());
    total.add(*c2);
  }
  out_.doc["change"] = total.json();
  out_.doc["timings_ms"]["change_guard"] = ms_since(t);
  out_.doc["change"]["max_change"] = o_.max_change;
  std::vector<std::string> cut_hooks = total.cut_off();
  std::string cut_text;
  for (const auto& h : cut_hooks)
    cut_text += (cut_text.empty() ? "" : ", ") + h + " (" + count_text(total.accepts[h].before) + " packets)";
  Guard cut = guard_cutoff(cut_hooks, o_.force);
  if (cut == Guard::refuse) {
    out_.changes = total.describe(kShowDifferences);
    return refuse("refused: the new policy drops every witness packet the live policy accepts at " + cut_text +
                      " (a truncated or emptied source?); the live generation is untouched",
                  "if cutting that traffic off is meant, run once with --force");
  }
  if (cut == Guard::force)
    note("--force: the new policy drops every witness packet the live policy accepts at " + cut_text);
  g = guard_after(total.percent_changed(), o_.max_change, o_.force);
  if (g == Guard::refuse) {
    out_.changes = total.describe(kShowDifferences);
    return refuse("refused: the new policy changes the verdict of " + percent_text(total.percent_changed()) + " (" +
                      count_text(total.differed) + " of " + count_text(total.packets) +
                      ") witness packets, more than --max-change " + percent_text(o_.max_change) +
                      "; the live generation is untouched",
                  "if the change is meant, run once with --force (nf2bpf diff --against shows it in full)");
  }
  if (g == Guard::force)
    note("--force: " + percent_text(total.percent_changed()) + " of the witness packets change verdict");
  return true;
}

// 4b. A change of service backends alone (kube-proxy adding or removing an
// endpoint): the live generation's service maps change in place, one map
// update per service, instead of a new generation. The rest of the policy
// is byte for byte the one verified when it went live, so there is nothing
// new to verify or guard; the backends are the source's DNAT targets.
// Returns true when this is not such a change (the run goes on).
bool Run::services_only() {
  if (pol_.services.empty() || live_.checksum.empty() || reason_ != "the policy changed") return true;
  auto t = Clock::now();
  const policy::Policy* old = live_policy();
  if (!old) return true;
  auto changed = policy::backend_changes(*old, pol_);
  if (!changed) return true;
  out_.doc["timings_ms"]["compare"] = ms_since(t);
  json names = json::array();
  for (uint32_t id : *changed) names.push_back(pol_.services[id].name);
  out_.doc["services_changed"] = names;
  std::string what = changed->empty() ? std::string("the service backends a watch updated in place (recorded now)")
                                      : std::to_string(changed->size()) +
                                            (changed->size() == 1 ? " service's" : " services'") + " backends";
  if (o_.dry_run) {
    out_.doc["generation"] = live_.generation;
    return finish(Kind::ok, "would-update",
                  "dry run: only " + what + " changed; would update them in generation " +
                      std::to_string(live_.generation) + " (checksum " + short_sum(pol_.checksum) + ")");
  }
  // The stored copy (and the live one's witness packets, which the same
  // rules make) first, so a run killed from here on is understood by the next.
  t = Clock::now();
  std::string witness = dir_ + "/generations/" + pol_.checksum + ".pcapng.tmp." + std::to_string(getpid());
  if (::link(generation_witness(dir_, live_.checksum).c_str(), witness.c_str()) != 0) return true;
  witness_tmp_.path = witness;
  if (auto r = store_generation(dir_, pol_, witness); !r) return fail("store the generation: " + r.error().message());
  witness_tmp_.path.clear();
  out_.doc["timings_ms"]["store"] = ms_since(t);
  t = Clock::now();
  auto dp = find_dataplane(pin_dir_);
  if (!dp) return fail(dp.error().message());
  if (!*dp) return true;
  json meta = {{"source", source_}, {"rules", tr_->rules.size()}, {"applied", (int64_t)time(nullptr)}};
  auto n = (*dp)->update_services(*old, pol_, meta);
  if (!n)
    return fail("update the services of generation " + std::to_string(live_.generation) + ": " + n.error().message());
  out_.doc["timings_ms"]["update"] = ms_since(t);
  if (auto c = clear_stale_service_udp(**dp, tr_->ruleset, &old->services, &pol_.services); c && *c) {
    note("cleared " + std::to_string(*c) + " UDP connection entries to endpoints their Service no longer has");
    out_.doc["stale_udp_cleared"] = *c;
  }
  if (!record_live(live_.generation, "sync (services)")) return false;
  return finish(Kind::ok, "updated",
                "updated: " + what + " in generation " + std::to_string(live_.generation) + ", now " + source_ +
                    " (checksum " + short_sum(pol_.checksum) + ", " + std::to_string(tr_->rules.size()) + " rules)");
}

// The state file's record of what is live, and the stored generations kept.
bool Run::record_live(uint64_t generation, const char* by) {
  if (state_.contains("live") && state_["live"].value("generation", (uint64_t)0) != generation)
    state_["previous"] = state_["live"];
  state_["live"] = {{"checksum", pol_.checksum},  {"generation", generation},
                    {"source", source_},          {"format", tr_->input_format},
                    {"since", time(nullptr)},     {"by", by},
                    {"rules", tr_->rules.size()}, {"interfaces", out_.doc["interfaces"]}};
  if (auto r = write_state(dir_, state_); !r)
    return fail("generation " + std::to_string(generation) +
                " is live, but writing the state failed: " + r.error().message());
  // Kept: the new policy, the one it replaces, and the rollback target
  // (after in-place updates, an older generation than the one replaced).
  std::vector<std::string> keep = {pol_.checksum};
  if (!live_.checksum.empty()) keep.push_back(live_.checksum);
  if (state_.contains("previous")) keep.push_back(state_["previous"].value("checksum", ""));
  prune_generations(dir_, keep);
  out_.doc["generation"] = generation;
  out_.doc["witness"] = generation_witness(dir_, pol_.checksum);  // kept for the next change guard
  return true;
}

// 7. Swap. The stored generation and the pending mark come first, so a run
// killed from here on is understood by the next one.
bool Run::swap() {
  auto t = Clock::now();
  if (auto r = store_generation(dir_, pol_, witness_); !r) return fail("store the generation: " + r.error().message());
  out_.doc["timings_ms"]["store"] = ms_since(t);
  witness_tmp_.path.clear();
  state_["pending"] = {{"checksum", pol_.checksum}, {"source", source_},        {"format", tr_->input_format},
                       {"pid", getpid()},           {"started", time(nullptr)}, {"rules", tr_->rules.size()}};
  if (auto r = write_state(dir_, state_); !r) return fail("write the state: " + r.error().message());
  Deployment d = deploy(pin_dir_, pol_, ifaces_, generation_meta(*tr_, pol_, source_), o_.xdp);
  // A failure before the install touched nothing; the pending mark stays
  // for the next run to settle against the kernel.
  if (!d.installing) return fail(d.message);
  out_.doc["timings_ms"]["install_attach"] = d.install_ms + d.attach_ms;
  if (d.kind != Kind::ok) {
    state_.erase("pending");
    (void)write_state(dir_, state_);
    return fail("swap failed: " + d.message + "; " + describe(d.after));
  }
  state_.erase("pending");
  if (auto n = clear_stale_service_udp_after_install(*d.opened.dp, tr_->ruleset, pol_.services); n && *n) {
    note("cleared " + std::to_string(*n) + " UDP connection entries to endpoints their Service no longer has");
    out_.doc["stale_udp_cleared"] = *n;
  }
  if (!record_live(d.generation, "sync")) return false;
  std::string line = "swapped: generation " + std::to_string(d.generation) + " is " + source_ + " (checksum " +
                     short_sum(pol_.checksum) + ", " + std::to_string(tr_->rules.size()) + " rules; " + reason_;
  if (out_.doc.contains("change"))
    line +=
        ", " + percent_text(out_.doc["change"].value("percent_changed", 0.0)) + " of witness packets change verdict";
  line += ")";
  return finish(Kind::ok, "swapped", line);
}

SyncOutcome Run::go() {
  if (open_state() && translate_source() && look_at_live() &&
      when_in_sync(decide(live_, pol_.checksum, ifaces_, o_.xdp)) && services_only() && witness_and_verify() &&
      change_guard()) {
    if (o_.dry_run) {
      out_.doc["generation"] = live_.generation;
      finish(Kind::ok, "would-swap",
             "dry run: " + reason_ + "; would make " + source_ + " live (checksum " + short_sum(pol_.checksum) + ")");
    } else {
      swap();
    }
  }
  if (out_.kind == Kind::ok && (out_.result == "in-sync" || out_.result == "swapped" || out_.result == "updated")) {
    out_.live_policy = std::make_shared<const policy::Policy>(std::move(pol_));
    if (o_.keep_nat_chains && tr_) out_.nat_chains = nat_chains_of(tr_->ruleset);
  }
  return std::move(out_);
}

}  // namespace

std::shared_ptr<PreparedSource> prepare_source(const SyncOptions& o) {
  auto t = Clock::now();
  auto p = std::make_shared<PreparedSource>();
  p->tr = translate_file(o.source, o.opt);
  if (p->tr && !p->tr->rejected(o.opt.allow_partial)) p->pol = policy::compile(*p->tr, p->compile_diags);
  p->ms = ms_since(t);
  return p;
}

SyncOutcome run_sync(const SyncOptions& o) {
  Run run(o);
  return run.go();
}

SyncOutcome run_service_update(const SyncOptions& o, std::shared_ptr<const policy::Policy>& live, const FastUpdate& u) {
  auto t0 = Clock::now();
  SyncOutcome out;
  out.doc = {{"result", "error"},
             {"dry_run", o.dry_run},
             {"started", utc_time(time(nullptr))},
             {"chains_read", u.chains_read}};
  auto finish = [&](Kind kind, const std::string& result, const std::string& line) {
    complete(out, t0, kind, result, line);
    return std::move(out);
  };
  // The changed services as they are live now, and as they become.
  std::vector<policy::Service> was, now;
  json names = json::array();
  for (const auto& [id, backends] : u.services) {
    was.push_back(live->services.at(id));
    now.push_back(was.back());
    now.back().backends = backends;
    names.push_back(was.back().name);
  }
  out.doc["services_changed"] = names;
  std::string what =
      std::to_string(u.services.size()) + (u.services.size() == 1 ? " service's" : " services'") + " backends";
  if (u.services.empty()) {
    out.live_policy = live;
    return finish(Kind::ok, "in-sync", "in sync: the changed chains make the same backends");
  }
  if (o.dry_run) return finish(Kind::ok, "would-update", "dry run: would update " + what + " in place");
  std::string dir = o.state_dir;
  if (dir.empty()) {
    auto d = default_state_dir();
    if (!d) return finish(Kind::error, "error", d.error().message());
    dir = *d;
  }
  auto lock = StateLock::acquire(dir, o.lock_timeout);
  if (!lock) return finish(Kind::refused, "refused", "refused: " + lock.error().message());
  auto dp = find_dataplane(o.pin_dir);
  if (!dp) return finish(Kind::error, "error", dp.error().message());
  if (!*dp) return finish(Kind::error, "error", "nothing is loaded");
  auto t = Clock::now();
  std::vector<loader::Dataplane::ServiceChange> changes;
  for (size_t i = 0; i < was.size(); ++i) changes.push_back({u.services[i].first, &was[i], &now[i]});
  auto n = (*dp)->update_service_backends(live->checksum, changes, {{"applied", (int64_t)time(nullptr)}});
  if (!n) return finish(Kind::error, "error", "update the services in place: " + n.error().message());
  out.doc["timings_ms"]["update"] = ms_since(t);
  std::shared_ptr<policy::Policy> next =
      live.use_count() == 1 ? std::const_pointer_cast<policy::Policy>(live) : std::make_shared<policy::Policy>(*live);
  for (size_t i = 0; i < now.size(); ++i) next->services[u.services[i].first] = std::move(now[i]);
  live = next;
  auto gen = (*dp)->live_generation();
  out.doc["generation"] = gen ? *gen : 0;
  std::set<std::pair<ir::u128, uint16_t>> left;
  for (size_t i = 0; i < was.size(); ++i) {
    std::set<std::pair<ir::u128, uint16_t>> stay;
    for (const auto& b : u.services[i].second) stay.insert({b.addr, b.port});
    for (const auto& b : was[i].backends)
      if (!stay.count({b.addr, b.port})) left.insert({b.addr, b.port});
  }
  if (auto c = clear_udp_to_endpoints(**dp, left); c && *c) {
    out.notes.push_back("cleared " + std::to_string(*c) +
                        " UDP connection entries to endpoints their Service no longer has");
    out.doc["stale_udp_cleared"] = *c;
  }
  out.live_policy = live;
  return finish(Kind::ok, "updated",
                "updated: " + what + " in generation " + std::to_string(gen ? *gen : 0) + ", from " +
                    std::to_string(u.chains_read) + " changed chain" + (u.chains_read == 1 ? "" : "s") +
                    " read alone (checksum " + short_sum(live->checksum) +
                    " until the next full read records the source)");
}

std::vector<std::string> reconcile(json& state, const json& live_meta) {
  std::vector<std::string> notes;
  std::string live_sum = live_meta.is_object() ? live_meta.value("checksum", "") : "";
  if (state.contains("pending")) {
    const json& p = state["pending"];
    if (!live_sum.empty() && p.value("checksum", "") == live_sum) {
      notes.push_back("an earlier sync (pid " + std::to_string(p.value("pid", 0)) +
                      ") was interrupted after its swap; the state file now says so");
      state["live"] = p;
      state["live"]["by"] = "sync";
    } else {
      notes.push_back("an earlier sync (pid " + std::to_string(p.value("pid", 0)) +
                      ") was interrupted before its swap; its policy never went live");
    }
    state.erase("pending");
  }
  std::string state_sum = state.contains("live") ? state["live"].value("checksum", "") : "";
  if (state_sum == live_sum) return notes;
  if (live_sum.empty()) {
    if (!state_sum.empty()) notes.push_back("no generation is live any more (unloaded since the last sync)");
    state.erase("live");
    return notes;
  }
  if (!state_sum.empty())
    notes.push_back("the live generation changed outside sync (apply, rollback or restore): generation " +
                    std::to_string(live_meta.value("generation", 0)) + ", checksum " + short_sum(live_sum));
  state["live"] = {{"checksum", live_sum},
                   {"generation", live_meta.value("generation", 0)},
                   {"source", live_meta.value("source", "")},
                   {"format", live_meta.value("format", "")},
                   {"since", live_meta.value("applied", (int64_t)0)},
                   {"by", "outside sync"}};
  return notes;
}

LiveView live_view(const json& live_meta, const json& attach, uint64_t generation) {
  LiveView v;
  v.checksum = live_meta.is_object() ? live_meta.value("checksum", "") : "";
  v.generation = generation;
  for (const auto& e : attach) {
    v.attached.insert({e.value("name", ""), e.value("ifindex", 0u)});
    v.xdp |= e.value("xdp", false);
  }
  return v;
}

SyncDecision decide(const LiveView& live, const std::string& checksum, const std::vector<loader::Interface>& want,
                    bool xdp) {
  std::set<std::pair<std::string, uint32_t>> wanted;
  for (const auto& i : want) wanted.insert({i.name, i.ifindex});
  bool same_policy = !live.checksum.empty() && live.checksum == checksum;
  bool same_attach = wanted == live.attached && live.xdp == xdp;
  if (same_policy && same_attach) return {true, {}};
  return {false, live.checksum.empty() ? "nothing is live yet"
                 : !same_policy        ? "the policy changed"
                                       : "the interfaces changed"};
}

Guard guard_before(bool max_change_given, bool force, bool live, bool stored) {
  if (!live) return Guard::off;
  if (stored) return Guard::compare;
  if (force) return Guard::force;
  return max_change_given ? Guard::refuse : Guard::skip;
}

Guard guard_cutoff(const std::vector<std::string>& cut_off, bool force) {
  if (cut_off.empty()) return Guard::pass;
  return force ? Guard::force : Guard::refuse;
}

std::string percent_text(double v) {
  char b[64];
  if (v <= 0) return "0%";
  if (v >= 100) return "100%";
  if (v >= 1) {
    std::snprintf(b, sizeof b, "%.1f%%", v);
    return b;
  }
  // Two significant digits, spelled out: 0.0005% (8 of 1,600,018), never 0.0% or 5e-04%.
  int decimals = std::min(12, 1 - (int)std::floor(std::log10(v)));
  std::snprintf(b, sizeof b, "%.*f", decimals, v);
  std::string s = b;
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s + "%";
}

std::string count_text(uint64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

Guard guard_after(double percent_changed, double max_change, bool force) {
  if (percent_changed <= max_change) return Guard::pass;
  return force ? Guard::force : Guard::refuse;
}

}  // namespace nf2bpf::ops
