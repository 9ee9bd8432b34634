// nf2bpf attach: cover the interfaces the live dataplane is not attached to
// yet (created after apply), once or, with --follow, as they appear.
#include <spdlog/spdlog.h>

#include <atomic>
#include <csignal>
#include <ctime>
#include <iostream>

#include "cli/command.h"
#include "common/json_text.h"
#include "ops/deploy.h"
#include "ops/follow.h"

namespace nf2bpf::cli {

namespace {

std::atomic<bool> g_stop{false};

void on_signal(int) { g_stop = true; }

std::string stamp() {
  char buf[32];
  time_t t = time(nullptr);
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
  return buf;
}

int follow(const std::string& pin_dir) {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  ops::FollowOptions o;
  o.pin_dir = pin_dir;
  o.stop = &g_stop;
  // One line per event on stdout, flushed: a service manager's log.
  o.log = [](const std::string& line) {
    if (ui().json)
      std::cout << dump_utf8({{"time", stamp()}, {"event", line}}) << std::endl;
    else
      std::cout << stamp() << " " << line << std::endl;
  };
  auto dp = ops::find_dataplane(pin_dir);
  if (!dp) return fail(kSystem, dp.error().message());
  if (!*dp) return fail(kRejected, "no dataplane is loaded in this network namespace", "apply a policy first");
  text() << "following interfaces (SIGINT or SIGTERM ends)\n" << std::flush;
  if (auto r = ops::follow(o); !r) return fail(r.error().code ? kSystem : kRejected, r.error().message());
  return kOk;
}

}  // namespace

Command add_attach(CLI::App& app) {
  struct Args {
    std::string pin_dir, format = "text";
    bool follow = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* sub = app.add_subcommand(
      "attach", "Attach the live policy to interfaces it does not cover yet (--follow: as they appear)");
  sub->add_flag("--follow", a->follow,
                "Keep running: attach to each interface as it appears or comes up (rtnetlink link notifications)");
  sub->add_option("--pin-dir", a->pin_dir, "bpffs directory of nf2bpf's pins (default: per namespace)")
      ->option_text("DIR");
  sub->add_option("--format", a->format, "Output format (default text)")
      ->check(CLI::IsMember({"text", "json"}))
      ->option_text("text|json");
  sub->footer(
      "Covers every up interface the live generation is not attached to, except those apply left out\n"
      "with --exclude-iface, with the live policy (no new generation). --follow does so at start and\n"
      "after every link notification, logging one line per interface, until SIGINT or SIGTERM.\n"
      "Exit status: 0 done (or stopped), 1 no dataplane is loaded, 2 usage or system error.");
  return {sub, [a]() -> int {
            ui().json = a->format == "json";
            if (a->follow) return follow(a->pin_dir);
            auto r = ops::cover_uncovered(a->pin_dir);
            if (!r) return fail(r.error().code ? kSystem : kRejected, r.error().message());
            nlohmann::json names = *r;
            std::string list;
            for (const auto& n : *r) list += (list.empty() ? "" : ", ") + n;
            text() << (r->empty() ? "every up interface is covered already\n" : "attached to " + list + "\n");
            if (ui().json) emit_json({{"result", r->empty() ? "covered" : "attached"}, {"attached_now", names}}, kOk);
            return kOk;
          }};
}

}  // namespace nf2bpf::cli
