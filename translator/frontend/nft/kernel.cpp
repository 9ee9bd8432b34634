// The ruleset the current network namespace holds, read in-process through
// libnftables (the library `nft` itself uses). Tables iptables-nft wrote with
// xtables matches or targets (the `xt` expressions: -m recent, -m statistic,
// -j DNAT ...) are the one exception: their options are binary blobs only
// iptables-nft-save decodes, so those tables are read from its output.
#include <fcntl.h>
#include <nftables/libnftables.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <future>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <vector>

#include "translator/frontend/iptables/parser.h"
#include "translator/frontend/nft/nft.h"

extern char** environ;

namespace nf2bpf::frontend {

namespace {

// A `list` command through libnftables, as JSON or as text with rule handles.
Result<std::string> nft_list(const char* cmd, bool json) {
  std::unique_ptr<nft_ctx, void (*)(nft_ctx*)> ctx(nft_ctx_new(NFT_CTX_DEFAULT), nft_ctx_free);
  if (!ctx) return Error{ENOMEM, "read the kernel ruleset: nft_ctx_new"};
  nft_ctx_output_set_flags(ctx.get(), json ? NFT_CTX_OUTPUT_JSON : NFT_CTX_OUTPUT_HANDLE);
  if (nft_ctx_buffer_output(ctx.get()) != 0 || nft_ctx_buffer_error(ctx.get()) != 0)
    return Error{ENOMEM, "read the kernel ruleset: buffering libnftables output"};
  int rc = nft_run_cmd_from_buffer(ctx.get(), cmd);
  // Each get_*_buffer call hands the buffer over and rewinds it: call once.
  const char* ob = nft_ctx_get_output_buffer(ctx.get());
  std::string out = ob ? ob : "";
  if (rc != 0) {
    const char* eb = nft_ctx_get_error_buffer(ctx.get());
    std::string err = eb ? eb : "";
    while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
    int code = err.find("Operation not permitted") != std::string::npos ? EPERM : 0;
    return Error{code, std::string("read the kernel ruleset (libnftables: ") + cmd + ")" +
                           (err.empty() || code ? "" : ": " + err)};
  }
  return out;
}
Result<std::string> list_ruleset(bool json) { return nft_list("list ruleset", json); }

// Runs `argv` (found on PATH) and returns its standard output, or an error
// when it cannot be run or fails; `what` names the job in errors.
Result<std::string> run_tool(std::vector<std::string> argv, const std::string& what) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return Error{errno, what + ": pipe"};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  pid_t pid;
  int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  if (rc != 0) {
    close(fds[0]);
    return Error{rc, what + ": " + std::strerror(rc)};
  }
  std::string out;
  char buf[65536];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    out.append(buf, (size_t)n);
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return Error{0, what + ": it failed"};
  return out;
}

// `iptables-nft-save -t TABLE` (or ip6tables-nft-save).
Result<std::string> xtables_save(bool v6, const std::string& table) {
  const char* tool = v6 ? "ip6tables-nft-save" : "iptables-nft-save";
  return run_tool({tool, "-t", table}, std::string("read table ") + (v6 ? "ip6 " : "ip ") + table + " with " + tool);
}

// The (family, table) pairs whose rules hold `xt` expressions.
std::set<std::pair<std::string, std::string>> xt_tables(const nlohmann::json& doc) {
  std::set<std::pair<std::string, std::string>> out;
  if (!doc.is_object() || !doc.contains("nftables") || !doc.at("nftables").is_array()) return out;
  for (const auto& o : doc.at("nftables")) {
    if (!o.contains("rule")) continue;
    const auto& r = o["rule"];
    if (!r.contains("expr") || !r["expr"].is_array()) continue;
    for (const auto& e : r["expr"])
      if (e.is_object() && e.contains("xt")) {
        out.insert({r.value("family", ""), r.value("table", "")});
        break;
      }
  }
  return out;
}

// iptables-nft-save of the tables iptables-nft can have written (ip and ip6
// filter, nat, mangle, raw, security), started on their own threads before
// the slower listing of the whole ruleset, which says which of them hold xt
// expressions: a kube-proxy node's nat table takes about as long to save as
// the whole ruleset takes to list.
using EarlySaves = std::map<std::pair<std::string, std::string>, std::future<Result<std::string>>>;
EarlySaves start_xtables_saves() {
  EarlySaves out;
  auto tables = nft_list("list tables", true);
  if (!tables) return out;
  auto doc = nlohmann::json::parse(*tables, nullptr, false);
  if (!doc.is_object() || !doc.contains("nftables") || !doc.at("nftables").is_array()) return out;
  static const std::set<std::string> kXtables = {"filter", "nat", "mangle", "raw", "security"};
  for (const auto& o : doc.at("nftables")) {
    if (!o.is_object() || !o.contains("table") || !o.at("table").is_object()) continue;
    std::string fam = o.at("table").value("family", ""), name = o.at("table").value("name", "");
    if ((fam == "ip" || fam == "ip6") && kXtables.count(name))
      out[{fam, name}] = std::async(std::launch::async, xtables_save, fam == "ip6", name);
  }
  return out;
}

}  // namespace

Result<ir::Ruleset> read_kernel_ruleset(diag::Diagnostics& diags) {
  EarlySaves early = start_xtables_saves();
  auto js = list_ruleset(true);
  if (!js) return js.error();
  // Tables with xt expressions: read from iptables-nft-save when it is
  // there, and left out of the JSON (most of a kube-proxy node's listing).
  // Without it they are read from the JSON, and the xt rules are reported
  // unsupported with a hint.
  std::vector<ir::Table> saved;
  if (js->find("\"xt\"") != std::string::npos) {
    auto doc = nlohmann::json::parse(*js, nullptr, false);
    std::set<std::pair<std::string, std::string>> replaced;  // (family, table) as the JSON names them
    for (const auto& [fam, table] : xt_tables(doc)) {
      if (fam != "ip" && fam != "ip6") continue;
      bool v6 = fam == "ip6";
      auto e = early.find({fam, table});
      auto text = e != early.end() ? e->second.get() : xtables_save(v6, table);
      if (!text) continue;
      diag::Diagnostics d;
      ir::Ruleset part = parse_iptables(
          {"kernel (" + std::string(v6 ? "ip6" : "ip") + "tables-nft-save -t " + table + ")", std::move(*text)},
          v6 ? ir::AddrFamily::V6 : ir::AddrFamily::V4, {}, d);
      if (d.has_errors()) continue;  // the JSON's own reading reports what is wrong
      for (const auto& w : d.all()) diags.add(w);
      for (auto& t : part.tables)
        if (t.name == table) {
          replaced.insert({fam, table});
          t.iptables_rules = true;
          saved.push_back(std::move(t));
        }
    }
    if (!replaced.empty()) {
      auto& items = doc["nftables"];
      items.erase(std::remove_if(items.begin(), items.end(),
                                 [&](const nlohmann::json& o) {
                                   if (!o.is_object() || o.empty()) return false;
                                   const auto& [kind, v] = *o.items().begin();
                                   if (!v.is_object()) return false;
                                   std::string table = v.value(kind == "table" ? "name" : "table", "");
                                   return replaced.count({v.value("family", ""), table}) > 0;
                                 }),
                  items.end());
      *js = doc.dump();
    }
  }
  // iptables-nft rules left carry xt matches whose options the JSON output
  // leaves out; the text listing translates them. Pair the two by rule handle.
  std::map<NftRuleKey, nft::RuleAst> subs;
  if (js->find("\"xt\"") != std::string::npos) {
    auto text = list_ruleset(false);
    if (text) {
      NftTextOptions topt;
      topt.on_rule = [&](ir::Family f, const std::string& t, const std::string& c, const nft::RuleAst& r) {
        if (r.handle) subs[{f, t, c, *r.handle}] = r;
      };
      diag::Diagnostics scratch;  // problems are reported on the JSON side
      parse_nft_text({"kernel", std::move(*text)}, scratch, topt);
    }
  }
  NftJsonOptions jopt;
  jopt.frontend = ir::Frontend::Kernel;
  jopt.substitutes = &subs;
  ir::Ruleset rs = parse_nft_json({"kernel", std::move(*js)}, diags, jopt);
  for (auto& t : saved) rs.tables.push_back(std::move(t));
  rs.source = "kernel";
  return rs;
}

Result<std::vector<std::string>> read_xtables_chain(bool v6, const std::string& table, const std::string& chain) {
  const char* tool = v6 ? "ip6tables-nft" : "iptables-nft";
  auto text = run_tool({tool, "-w", "-t", table, "-S", chain}, std::string("read chain ") + chain + " of table " +
                                                                   (v6 ? "ip6 " : "ip ") + table + " with " + tool);
  if (!text) return text.error();
  std::vector<std::string> lines;
  std::istringstream in(*text);
  for (std::string line; std::getline(in, line);)
    if (line.rfind("-A ", 0) == 0) lines.push_back(line);
  return lines;
}

}  // namespace nf2bpf::frontend
