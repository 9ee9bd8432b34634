// nf2bpf status: what is live in this network namespace, and its counters.
#include <spdlog/spdlog.h>

#include <ctime>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "ops/coverage.h"
#include "ops/deploy.h"
#include "ops/tc_order.h"

namespace nf2bpf::cli {

std::unique_ptr<loader::Dataplane> loaded_dataplane(const std::string& pin_dir, int& exit) {
  auto dp = ops::find_dataplane(pin_dir);
  if (!dp) {
    exit = fail(kSystem, dp.error().message());
    return nullptr;
  }
  if (!*dp) {
    text() << "nf2bpf: no dataplane is loaded in this network namespace\n";
    if (ui().json) emit_json({{"result", "not-loaded"}, {"loaded", false}}, kRejected);
    exit = kRejected;
    return nullptr;
  }
  return std::move(*dp);
}

namespace {

std::string when(int64_t t) {
  if (!t) return "?";
  char buf[64];
  time_t tt = (time_t)t;
  strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", gmtime(&tt));
  return buf;
}

std::string attach_text(const nlohmann::json& a) {
  std::string s;
  for (const auto& e : a) {
    s += (s.empty() ? "" : ", ") + e.value("name", "?") + " (tc ingress, tc egress" +
         (e.value("xdp", false) ? ", xdp" : "") + ")";
  }
  return s.empty() ? "nothing" : s;
}

}  // namespace

Command add_status(CLI::App& app) {
  struct Args {
    std::string format = "text", pin_dir;
    bool all = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* sub = app.add_subcommand("status", "Show the live generation, its source, attachments and counters");
  sub->add_option("--format", a->format, "Output format (default text)")
      ->check(CLI::IsMember({"text", "json"}))
      ->option_text("text|json");
  sub->add_option("--pin-dir", a->pin_dir, "bpffs directory of nf2bpf's pins (default: per namespace)")
      ->option_text("DIR");
  sub->add_flag("--all", a->all, "List counters of rules that matched no packet too");
  sub->footer("Exit status: 0 a dataplane is loaded, 1 none is, 2 usage or system error.");
  return {sub, [a]() -> int {
            ui().json = a->format == "json";
            int exit = kOk;
            auto dp = loaded_dataplane(a->pin_dir, exit);
            if (!dp) return exit;
            auto st = dp->status(true);
            if (!st) return fail(kSystem, st.error().message());
            const auto& s = *st;
            // Up interfaces no program sees: their traffic meets no rule.
            std::vector<loader::Interface> left;
            if (auto all = loader::list_interfaces()) left = ops::uncovered(*all, s.attach, s.excluded);
            nlohmann::json unattached = nlohmann::json::array();
            for (const auto& i : left) unattached.push_back(i.name);
            if (!left.empty())
              spdlog::warn(
                  "not attached to {} (up): no rule sees {} traffic; `nf2bpf attach` covers it, `nf2bpf attach "
                  "--follow` covers interfaces as they appear",
                  ops::names(left), left.size() == 1 ? "its" : "their");
            std::vector<std::string> warnings = ops::foreign_filters_before(s.attach);
            if (ui().json) {
              nlohmann::json j = {{"result", "loaded"},
                                  {"loaded", true},
                                  {"generation", s.generation},
                                  {"live_slot", s.live_slot},
                                  {"live", s.live},
                                  {"previous", s.previous.is_null() ? nlohmann::json(nullptr) : s.previous},
                                  {"attached", s.attach},
                                  {"unattached", unattached},
                                  {"excluded", s.excluded},
                                  {"pin_dir", s.pin_dir},
                                  {"conntrack_entries", s.ct_entries},
                                  {"warnings", warnings}};
              auto& c = j["counters"] = nlohmann::json::array();
              for (const auto& rc : s.counters)
                c.push_back({{"index", rc.index},
                             {"chain", rc.chain},
                             {"line", rc.line},
                             {"policy", rc.policy},
                             {"packets", rc.packets},
                             {"bytes", rc.bytes}});
              emit_json(j, kOk);
              return kOk;
            }
            for (const auto& w : warnings) std::cerr << "nf2bpf: warning: " << w << "\n";
            const auto& live = s.live;
            text() << "generation " << s.generation << " live";
            if (!s.previous.is_null())
              text() << "; generation " << s.previous.value("generation", 0) << " kept for rollback";
            text() << "\n";
            if (!live.value("valid", false)) {
              detail() << "no valid generation in the live slot\n";
              return kOk;
            }
            std::string src = live.value("source", "?");
            std::ostream& out = detail();
            out << "source:    " << src << " (" << live.value("format", "?") << ")\n"
                << "checksum:  " << live.value("checksum", "?") << "\n"
                << "applied:   " << when(live.value("applied", (int64_t)0)) << "\n"
                << "rules:     " << live.value("rules", 0) << " source rules (" << live.value("unsupported", 0)
                << " left in netfilter), " << live.value("compiled_rules", 0) << " compiled rules, "
                << live.value("entries", 0) << " classifier entries, " << live.value("tuples", 0) << " tuples\n"
                << (live.contains("services") && live["services"].is_array() && !live["services"].empty()
                        ? "services:  " + std::to_string(live["services"].size()) +
                              " load-balancing chains in the service maps (nf2bpf services --live)\n"
                        : std::string())
                << "attached:  " << attach_text(s.attach) << "\n"
                << "conntrack: " << s.ct_entries << (s.ct_entries == 1 ? " connection\n" : " connections\n");
            std::string base = src.substr(src.find_last_of('/') + 1);
            out << "counters:\n";
            char line[1024];
            std::snprintf(line, sizeof line, "  %-28s %-24s %12s %14s\n", "rule", "chain", "packets", "bytes");
            out << line;
            size_t shown = 0;
            for (const auto& rc : s.counters) {
              if (!a->all && rc.packets == 0) continue;
              std::string where = rc.policy ? "policy" : base + ":" + std::to_string(rc.line);
              std::snprintf(line, sizeof line, "  %-28s %-24s %12llu %14llu\n", where.c_str(), rc.chain.c_str(),
                            (unsigned long long)rc.packets, (unsigned long long)rc.bytes);
              out << line;
              ++shown;
            }
            if (!shown) out << "  (no packet matched yet; --all lists every rule)\n";
            return kOk;
          }};
}

}  // namespace nf2bpf::cli
