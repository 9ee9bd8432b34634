#include "cutover/cutover.h"

#include <linux/netfilter.h>
#include <nftables/libnftables.h>

#include <ctime>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>

#include "translator/translate.h"

namespace nf2bpf::cutover {

using nlohmann::json;

namespace {

const KRule* find_rule(const KChain& c, uint64_t handle) {
  for (const auto& r : c.rules)
    if (r.handle == handle) return &r;
  return nullptr;
}

Result<Bytes> hex_field(const json& j, const char* key, const std::string& where) {
  if (!j.contains(key) || !j[key].is_string())
    return Error{EINVAL, "the backup has no " + std::string(key) + " for " + where};
  auto b = from_hex(j[key].get<std::string>());
  if (!b || b->size() < 20) return Error{EINVAL, "the backup's " + std::string(key) + " for " + where + " is damaged"};
  return *b;
}

}  // namespace

std::vector<std::string> check_plan_reproducible(const Plan& plan, const Snapshot& snap) {
  std::vector<std::string> problems;
  for (const auto& tp : plan.tables) {
    const KTable* kt = snap.find(tp.id);
    if (!kt) continue;
    for (const auto& cp : tp.chains) {
      const KChain* kc = kt->find_chain(cp.name);
      if (!kc) continue;
      for (const auto& rp : cp.rules) {
        if (!rp.remove) continue;
        const KRule* kr = find_rule(*kc, rp.handle);
        if (!kr) continue;
        std::string why = check_reproducible(*kr);
        if (!why.empty())
          problems.push_back(rp.location + ": rule " + tp.id.str() + " " + cp.name + " handle " +
                             std::to_string(rp.handle) + " could not be restored exactly: " + why);
      }
    }
  }
  return problems;
}

json make_backup(const Plan& plan, const Snapshot& snap, const BackupInfo& info) {
  json b = {{"nf2bpf-backup", kBackupVersion},
            {"created", (int64_t)time(nullptr)},
            {"netns", info.netns},
            {"netns_cookie", info.netns_cookie},
            {"boot_id", info.boot_id},
            {"source", info.source},
            {"format", info.format},
            {"policy_checksum", info.policy_checksum},
            {"generation_before", snap.genid},
            {"summary",
             {{"rules_removed", plan.rules_removed()},
              {"rules_kept", plan.rules_kept()},
              {"chains_deleted", plan.chains_deleted()}}}};
  json tables = json::array();
  std::vector<TableId> ids;
  for (const auto& tp : plan.tables) {
    const KTable* kt = snap.find(tp.id);
    if (!kt) continue;
    ids.push_back(tp.id);
    json t = {{"family", family_name(tp.id.family)}, {"name", tp.id.name}, {"emptied", tp.emptied}};
    json chains = json::array();
    std::set<std::string> sets_used;
    for (const auto& cp : tp.chains) {
      const KChain* kc = kt->find_chain(cp.name);
      if (!kc) continue;
      json c = {{"name", cp.name},
                {"base", cp.base},
                {"deleted", cp.delete_chain},
                {"policy", cp.old_policy},
                {"policy_changed", cp.set_policy.has_value()},
                {"chain", to_hex(kc->msg)}};
      json rules = json::array();
      for (const auto& rp : cp.rules) {
        json r = {{"handle", rp.handle}, {"removed", rp.remove}, {"location", rp.location}, {"text", rp.text}};
        if (rp.remove) {
          if (const KRule* kr = find_rule(*kc, rp.handle)) {
            r["rule"] = to_hex(kr->msg);
            for (const auto& s : kr->anon_sets) sets_used.insert(s);
            if (!kr->anon_sets.empty()) r["anonymous_sets"] = kr->anon_sets;
          }
        } else {
          r["why"] = rp.why;
        }
        rules.push_back(std::move(r));
      }
      c["rules"] = std::move(rules);
      chains.push_back(std::move(c));
    }
    t["chains"] = std::move(chains);
    json sets = json::array();
    for (const auto& s : kt->anon_sets) {
      if (!sets_used.count(s.name)) continue;
      json e = json::array();
      for (const auto& m : s.elems) e.push_back(to_hex(m));
      sets.push_back({{"name", s.name}, {"set", to_hex(s.msg)}, {"elements", std::move(e)}});
    }
    t["anonymous_sets"] = std::move(sets);
    tables.push_back(std::move(t));
  }
  b["tables"] = std::move(tables);
  b["untouched"] = plan.untouched;
  b["listing"] = list_tables(ids);
  return b;
}

Batch cutover_batch(const Plan& plan, const Snapshot& snap) {
  Batch b;
  for (const auto& tp : plan.tables) {
    const KTable* kt = snap.find(tp.id);
    if (!kt) continue;
    if (tp.emptied) {
      // Rules first: a chain can go only once no rule jumps to it.
      for (const auto& cp : tp.chains)
        if (const KChain* kc = kt->find_chain(cp.name); kc && !kc->rules.empty()) add_flush_chain(b, *kt, *kc);
      for (const auto& cp : tp.chains)
        if (const KChain* kc = kt->find_chain(cp.name); kc && cp.delete_chain) add_delete_chain(b, *kt, *kc);
      continue;
    }
    for (const auto& cp : tp.chains) {
      const KChain* kc = kt->find_chain(cp.name);
      if (!kc) continue;
      for (const auto& rp : cp.rules)
        if (rp.remove)
          if (const KRule* kr = find_rule(*kc, rp.handle)) add_delete_rule(b, *kt, *kc, *kr, rp.location);
      if (cp.set_policy) add_chain_policy(b, *kt, *kc, *cp.set_policy);
    }
  }
  return b;
}

Result<std::vector<TableId>> backup_tables(const json& backup) {
  std::vector<TableId> ids;
  for (const auto& t : backup.value("tables", json::array())) {
    auto fam = family_from_name(t.value("family", ""));
    if (!fam || t.value("name", "").empty()) return Error{EINVAL, "the backup names a table it cannot identify"};
    ids.push_back({*fam, t.value("name", "")});
  }
  return ids;
}

Result<Batch> restore_batch(const json& backup, const Snapshot& now, std::vector<std::string>& problems) {
  Batch b;
  uint32_t next_set_id = 1;
  for (const auto& t : backup.value("tables", json::array())) {
    TableId id{family_from_name(t.value("family", "")).value_or(0), t.value("name", "")};
    const KTable* kt = now.find(id);
    if (!kt) {
      problems.push_back("table " + id.str() + " is gone: restore puts back chains and rules, not whole tables");
      continue;
    }
    // Saved chains as objects the message builders take.
    struct Saved {
      KChain chain;
      bool deleted = false, policy_changed = false;
      json rules;
    };
    std::vector<Saved> saved;
    for (const auto& c : t.value("chains", json::array())) {
      Saved s;
      s.chain.name = c.value("name", "");
      s.deleted = c.value("deleted", false);
      s.policy_changed = c.value("policy_changed", false);
      s.chain.policy = c.value("policy", (uint32_t)NF_ACCEPT);
      s.chain.base = c.value("base", false);
      auto msg = hex_field(c, "chain", "chain " + id.str() + " " + s.chain.name);
      if (!msg) return msg.error();
      s.chain.msg = std::move(*msg);
      s.rules = c.value("rules", json::array());
      const KChain* live = kt->find_chain(s.chain.name);
      if (s.deleted && live) {
        problems.push_back("chain " + id.str() + " " + s.chain.name +
                           " exists again (created after the cut-over?); restore will not merge into it");
      } else if (!s.deleted && !live) {
        problems.push_back("chain " + id.str() + " " + s.chain.name + " was kept at the cut-over but is gone now");
      } else if (!s.deleted) {
        for (const auto& r : s.rules)
          if (!r.value("removed", false) && !find_rule(*live, r.value("handle", (uint64_t)0)))
            problems.push_back("rule " + id.str() + " " + s.chain.name + " handle " +
                               std::to_string(r.value("handle", (uint64_t)0)) + " (" + r.value("location", "") +
                               ") stayed at the cut-over but is gone now: the removed rules around it have no place");
      }
      saved.push_back(std::move(s));
    }
    if (!problems.empty()) continue;
    KTable table;
    table.family = id.family;
    table.name = id.name;
    // 1. Chains, all before any rule (rules jump to them).
    for (const auto& s : saved)
      if (s.deleted)
        if (auto r = add_create_chain(b, table, s.chain); !r) return r.error();
    // 2. Policies the eBPF policy had taken over.
    for (const auto& s : saved)
      if (!s.deleted && s.policy_changed) add_chain_policy(b, table, s.chain, s.chain.policy);
    // 3. Anonymous sets of the rules coming back.
    std::vector<std::pair<std::string, uint32_t>> set_ids;
    for (const auto& st : t.value("anonymous_sets", json::array())) {
      KSet ks;
      ks.name = st.value("name", "");
      auto msg = hex_field(st, "set", "set " + ks.name);
      if (!msg) return msg.error();
      ks.msg = std::move(*msg);
      for (const auto& e : st.value("elements", json::array())) {
        auto eb = e.is_string() ? from_hex(e.get<std::string>()) : std::nullopt;
        if (!eb) return Error{EINVAL, "the backup's elements of set " + ks.name + " are damaged"};
        ks.elems.push_back(std::move(*eb));
      }
      uint32_t sid = next_set_id++;
      if (auto r = add_create_anon_set(b, table, ks, sid); !r) return r.error();
      set_ids.push_back({ks.name, sid});
    }
    // 4. Rules, each before the next rule that stayed, or at the end.
    for (const auto& s : saved) {
      const auto& rules = s.rules;
      for (size_t i = 0; i < rules.size(); ++i) {
        if (!rules[i].value("removed", false)) continue;
        std::optional<uint64_t> before;
        if (!s.deleted)
          for (size_t j = i + 1; j < rules.size() && !before; ++j)
            if (!rules[j].value("removed", false)) before = rules[j].value("handle", (uint64_t)0);
        KRule kr;
        kr.handle = rules[i].value("handle", (uint64_t)0);
        auto msg = hex_field(rules[i], "rule", "a rule of chain " + id.str() + " " + s.chain.name);
        if (!msg) return msg.error();
        kr.msg = std::move(*msg);
        if (auto r = add_create_rule(b, table, s.chain, kr, before, set_ids); !r) return r.error();
      }
    }
  }
  return b;
}

std::string list_tables(const std::vector<TableId>& tables) {
  std::unique_ptr<nft_ctx, void (*)(nft_ctx*)> ctx(nft_ctx_new(NFT_CTX_DEFAULT), nft_ctx_free);
  if (!ctx) return {};
  if (nft_ctx_buffer_output(ctx.get()) != 0 || nft_ctx_buffer_error(ctx.get()) != 0) return {};
  std::string out;
  for (const auto& t : tables) {
    std::string cmd = "list table " + std::string(family_name(t.family)) + " " + t.name;
    if (nft_run_cmd_from_buffer(ctx.get(), cmd.c_str()) != 0) continue;
    const char* ob = nft_ctx_get_output_buffer(ctx.get());
    if (ob) out += ob;
  }
  return out;
}

std::vector<std::string> legacy_tables(uint8_t family) {
  std::vector<std::string> out;
  const char* path = family == NFPROTO_IPV4   ? "/proc/net/ip_tables_names"
                     : family == NFPROTO_IPV6 ? "/proc/net/ip6_tables_names"
                                              : nullptr;
  if (!path) return out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(line);
  return out;
}

Result<json> read_backup(const std::string& path) {
  auto text = read_input(path);
  if (!text) return text.error();
  json j = json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("nf2bpf-backup"))
    return Error{EINVAL, path + " is not an nf2bpf cut-over backup"};
  if (j.value("nf2bpf-backup", 0) != kBackupVersion)
    return Error{EINVAL, path + " is a backup of format version " + std::to_string(j.value("nf2bpf-backup", 0)) +
                             "; this nf2bpf reads version " + std::to_string(kBackupVersion)};
  return j;
}

}  // namespace nf2bpf::cutover
