// nf2bpf unload: detach and remove everything nf2bpf created, nothing else.
#include <iostream>

#include "cli/command.h"
#include "ops/deploy.h"
#include "ops/tc_order.h"

namespace nf2bpf::cli {

Command add_unload(CLI::App& app) {
  struct Args {
    std::string pin_dir, format = "text";
  };
  auto a = std::make_shared<Args>();
  CLI::App* sub = app.add_subcommand("unload", "Detach nf2bpf from every interface and remove its maps and pins");
  sub->add_option("--pin-dir", a->pin_dir, "bpffs directory of nf2bpf's pins (default: per namespace)")
      ->option_text("DIR");
  sub->add_option("--format", a->format, "Output format (default text)")
      ->check(CLI::IsMember({"text", "json"}))
      ->option_text("text|json");
  sub->footer(
      "Only nf2bpf's own filters, the clsact qdiscs it created and its pins are removed. A dataplane\n"
      "another nf2bpf version loaded is unloaded too (other commands refuse to touch it).\n"
      "Exit status: 0 unloaded (or nothing was loaded), 2 usage or system error.");
  return {
      sub, [a]() -> int {
        ui().json = a->format == "json";
        auto dp = ops::find_dataplane(a->pin_dir, true);
        if (!dp) return fail(kSystem, dp.error().message());
        if (!*dp) {
          text() << "nothing to unload: no dataplane is loaded in this network namespace\n";
          if (ui().json) emit_json({{"result", "nothing-loaded"}, {"detached", nlohmann::json::array()}}, kOk);
          return kOk;
        }
        const std::string foreign = (*dp)->foreign();
        if (!foreign.empty()) {
          // Another version's dataplane: its state is not read, only taken out.
          if (auto r = (*dp)->unload(); !r) return fail(kSystem, r.error().message());
          text() << "unloaded the dataplane another nf2bpf version loaded (" << foreign << ")\n";
          if (ui().json)
            emit_json({{"result", "unloaded"}, {"detached", nlohmann::json::array()}, {"other_version", foreign}}, kOk);
          return kOk;
        }
        auto st = (*dp)->status(false);
        // Said before the filters go: afterwards nothing shows which hook it was.
        std::vector<std::string> warnings;
        if (st) warnings = ops::foreign_filters_before(st->attach);
        if (!ui().json)
          for (const auto& w : warnings) std::cerr << "nf2bpf: warning: " << w << "\n";
        if (auto r = (*dp)->unload(); !r) return fail(kSystem, r.error().message());
        std::string names;
        nlohmann::json detached = nlohmann::json::array();
        if (st)
          for (const auto& e : st->attach) {
            names += (names.empty() ? "" : ", ") + e.value("name", "?");
            detached.push_back(e.value("name", "?"));
          }
        text() << "unloaded: detached from " << (names.empty() ? "no interface" : names) << "\n";
        if (ui().json) emit_json({{"result", "unloaded"}, {"detached", detached}, {"warnings", warnings}}, kOk);
        return kOk;
      }};
}

}  // namespace nf2bpf::cli
