// nf2bpf rollback: make the previous generation live again.
#include <iostream>

#include "cli/command.h"
#include "ops/deploy.h"

namespace nf2bpf::cli {

Command add_rollback(CLI::App& app) {
  auto pin_dir = std::make_shared<std::string>();
  CLI::App* sub = app.add_subcommand("rollback", "Make the previous generation live again (one atomic switch)");
  sub->add_option("--pin-dir", *pin_dir, "bpffs directory of nf2bpf's pins (default: per namespace)")
      ->option_text("DIR");
  sub->footer("Exit status: 0 switched, 1 nothing to roll back to, 2 usage or system error.");
  return {sub, [pin_dir]() -> int {
            auto dp = ops::find_dataplane(*pin_dir);
            if (!dp) {
              print_error(dp.error().message());
              return kSystem;
            }
            if (!*dp) {
              print_error("no dataplane is loaded in this network namespace");
              return kRejected;
            }
            auto gen = (*dp)->rollback();
            if (!gen) {
              if (gen.error().code == ENOENT) {
                print_error(gen.error().context, "rollback needs two applies: the previous generation is the one before the last apply");
                return kRejected;
              }
              print_error(gen.error().message());
              return kSystem;
            }
            auto st = (*dp)->status(false);
            std::cout << "rolled back: generation " << *gen << " is live";
            if (st) std::cout << " (" << st->live.value("source", "?") << ", checksum "
                              << st->live.value("checksum", "?").substr(0, 16) << ")";
            std::cout << "\n";
            return kOk;
          }};
}

}  // namespace nf2bpf::cli
