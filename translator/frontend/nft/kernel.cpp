// The ruleset the current network namespace holds, read in-process through
// libnftables (the library `nft` itself uses). Tables iptables-nft wrote with
// xtables matches or targets (the `xt` expressions: -m recent, -m statistic,
// -j DNAT ...) are the one exception: their options are binary blobs the JSON
// leaves out, so those tables are read as iptables rules — over netlink by
// translator/frontend/iptables/nft_rules, or from iptables-nft-save's output
// when a rule holds something that reader does not print.
#include <fcntl.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
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

#include "common/nft_netlink.h"
#include "translator/frontend/iptables/nft_rules.h"
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

// The (family, name) of every table, from a netlink dump: libnftables'
// `list tables` fills its whole cache first, rules included (over two
// minutes of kernel time for a kube-proxy node's nat table of 10,000
// Services).
std::vector<std::pair<std::string, std::string>> list_tables() {
  std::vector<std::pair<std::string, std::string>> out;
  auto sock = nfnl::NftSocket::open();
  if (!sock) return out;
  auto msgs = (*sock)->dump(NFT_MSG_GETTABLE, NFPROTO_UNSPEC);
  if (!msgs) return out;
  for (const auto& m : *msgs) {
    std::unique_ptr<nftnl_table, void (*)(const nftnl_table*)> t(nftnl_table_alloc(), nftnl_table_free);
    if (!t || nftnl_table_nlmsg_parse(reinterpret_cast<const nlmsghdr*>(m.data()), t.get()) < 0) continue;
    const char* name = nftnl_table_get_str(t.get(), NFTNL_TABLE_NAME);
    if (name) out.push_back({nfnl::family_name((uint8_t)nftnl_table_get_u32(t.get(), NFTNL_TABLE_FAMILY)), name});
  }
  return out;
}

// The listing of the whole ruleset, or, when `skip` is not empty, of every
// table but those (one `list table` each, joined into one document): a kube-proxy
// node's nat table, already read over netlink, is most of the listing's time.
Result<std::string> list_except(const std::vector<std::pair<std::string, std::string>>& all,
                                const std::set<std::pair<std::string, std::string>>& skip, bool json) {
  if (skip.empty()) return list_ruleset(json);
  std::string text;
  nlohmann::json items = nlohmann::json::array();
  for (const auto& t : all) {
    if (skip.count(t)) continue;
    auto part = nft_list(("list table " + t.first + " " + t.second).c_str(), json);
    if (!part) return part.error();
    if (!json) {
      text += *part;
      continue;
    }
    auto doc = nlohmann::json::parse(*part, nullptr, false);
    if (!doc.is_object() || !doc.contains("nftables") || !doc.at("nftables").is_array()) continue;
    for (auto& o : doc["nftables"])  // one metainfo object, the first
      if (!(o.is_object() && o.contains("metainfo") && !items.empty())) items.push_back(std::move(o));
  }
  return json ? nlohmann::json{{"nftables", std::move(items)}}.dump() : text;
}

bool is_xtables_table(const std::pair<std::string, std::string>& t) {
  static const std::set<std::string> kXtables = {"filter", "nat", "mangle", "raw", "security"};
  return (t.first == "ip" || t.first == "ip6") && kXtables.count(t.second);
}

ir::Ruleset parse_saved(bool v6, std::string text, const std::string& how, diag::Diagnostics& d) {
  return parse_iptables({"kernel (" + how + ")", std::move(text)}, v6 ? ir::AddrFamily::V6 : ir::AddrFamily::V4, {}, d);
}

}  // namespace

Result<ir::Ruleset> read_kernel_ruleset(diag::Diagnostics& diags) {
  // Tables iptables-nft wrote with xt expressions (-m recent, -j DNAT ...)
  // are read as iptables rules: first over netlink (their rules printed as
  // iptables-nft-save prints them), else from iptables-nft-save itself,
  // started on its own thread while the rest is listed. Without either, they
  // are read from the JSON, and the xt rules are reported unsupported with a
  // hint.
  auto all = list_tables();
  std::vector<ir::Table> saved;
  std::set<std::pair<std::string, std::string>> replaced;  // (family, table) as the JSON names them
  auto take = [&](const std::pair<std::string, std::string>& ft, ir::Ruleset part, diag::Diagnostics& d) {
    for (const auto& w : d.all()) diags.add(w);
    for (auto& t : part.tables)
      if (t.name == ft.second) {
        replaced.insert(ft);
        t.iptables_rules = true;
        saved.push_back(std::move(t));
      }
  };
  std::map<std::pair<std::string, std::string>, std::future<Result<std::string>>> saves;
  for (const auto& ft : all) {
    if (!is_xtables_table(ft)) continue;
    bool v6 = ft.first == "ip6";
    auto nl = read_xtables_table_netlink(v6, ft.second);
    if (!nl) {  // something it does not print exactly: the tool prints it
      saves[ft] = std::async(std::launch::async, xtables_save, v6, ft.second);
      continue;
    }
    if (!nl->has_xt) continue;  // plain nf_tables expressions: the JSON describes them fully
    diag::Diagnostics d;
    ir::Ruleset part = parse_saved(v6, std::move(nl->text), "netlink, as iptables-nft-save -t " + ft.second, d);
    if (!d.has_errors()) take(ft, std::move(part), d);
  }
  auto js = list_except(all, replaced, true);
  if (!js) return js.error();
  if (js->find("\"xt\"") != std::string::npos) {
    auto doc = nlohmann::json::parse(*js, nullptr, false);
    std::set<std::pair<std::string, std::string>> more;
    for (const auto& [fam, table] : xt_tables(doc)) {
      if (fam != "ip" && fam != "ip6") continue;
      bool v6 = fam == "ip6";
      auto e = saves.find({fam, table});
      auto text = e != saves.end() ? e->second.get() : xtables_save(v6, table);
      if (!text) continue;
      diag::Diagnostics d;
      ir::Ruleset part =
          parse_saved(v6, std::move(*text), std::string(v6 ? "ip6" : "ip") + "tables-nft-save -t " + table, d);
      if (d.has_errors()) continue;  // the JSON's own reading reports what is wrong
      size_t before = replaced.size();
      take({fam, table}, std::move(part), d);
      if (replaced.size() > before) more.insert({fam, table});
    }
    if (!more.empty()) {
      auto& items = doc["nftables"];
      items.erase(std::remove_if(items.begin(), items.end(),
                                 [&](const nlohmann::json& o) {
                                   if (!o.is_object() || o.empty()) return false;
                                   const auto& [kind, v] = *o.items().begin();
                                   if (!v.is_object()) return false;
                                   std::string table = v.value(kind == "table" ? "name" : "table", "");
                                   return more.count({v.value("family", ""), table}) > 0;
                                 }),
                  items.end());
      *js = doc.dump();
    }
  }
  // iptables-nft rules left carry xt matches whose options the JSON output
  // leaves out; the text listing translates them. Pair the two by rule handle.
  std::map<NftRuleKey, nft::RuleAst> subs;
  if (js->find("\"xt\"") != std::string::npos) {
    auto text = list_except(all, replaced, false);
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
  auto nl = read_xtables_chain_netlink(v6, table, chain);
  if (nl || nl.error().code != EOPNOTSUPP) return nl;
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
