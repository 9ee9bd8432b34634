// nf2bpf unload: detach and remove everything nf2bpf created, nothing else.
#include <iostream>

#include "cli/command.h"
#include "ops/deploy.h"

namespace nf2bpf::cli {

Command add_unload(CLI::App& app) {
  auto pin_dir = std::make_shared<std::string>();
  CLI::App* sub = app.add_subcommand("unload", "Detach nf2bpf from every interface and remove its maps and pins");
  sub->add_option("--pin-dir", *pin_dir, "bpffs directory of nf2bpf's pins (default: per namespace)")
      ->option_text("DIR");
  sub->footer("Only nf2bpf's own filters, the clsact qdiscs it created and its pins are removed.\n"
              "Exit status: 0 unloaded (or nothing was loaded), 2 usage or system error.");
  return {sub, [pin_dir]() -> int {
            auto dp = ops::find_dataplane(*pin_dir);
            if (!dp) {
              print_error(dp.error().message());
              return kSystem;
            }
            if (!*dp) {
              std::cout << "nothing to unload: no dataplane is loaded in this network namespace\n";
              return kOk;
            }
            auto st = (*dp)->status(false);
            if (auto r = (*dp)->unload(); !r) {
              print_error(r.error().message());
              return kSystem;
            }
            std::string names;
            if (st)
              for (const auto& e : st->attach) names += (names.empty() ? "" : ", ") + e.value("name", "?");
            std::cout << "unloaded: detached from " << (names.empty() ? "no interface" : names) << "\n";
            return kOk;
          }};
}

}  // namespace nf2bpf::cli
