// nf2bpf rollback: make the previous generation live again.
#include <iostream>

#include "cli/command.h"
#include "ops/deploy.h"

namespace nf2bpf::cli {

Command add_rollback(CLI::App& app) {
  struct Args {
    std::string pin_dir, format = "text";
  };
  auto a = std::make_shared<Args>();
  CLI::App* sub = app.add_subcommand("rollback", "Make the previous generation live again (one atomic switch)");
  sub->add_option("--pin-dir", a->pin_dir, "bpffs directory of nf2bpf's pins (default: per namespace)")
      ->option_text("DIR");
  sub->add_option("--format", a->format, "Output format (default text)")
      ->check(CLI::IsMember({"text", "json"}))
      ->option_text("text|json");
  sub->footer("Exit status: 0 switched, 1 nothing to roll back to, 2 usage or system error.");
  return {sub, [a]() -> int {
            ui().json = a->format == "json";
            auto dp = ops::find_dataplane(a->pin_dir);
            if (!dp) return fail(kSystem, dp.error().message());
            if (!*dp) return fail(kRejected, "no dataplane is loaded in this network namespace");
            auto gen = (*dp)->rollback();
            if (!gen) {
              if (gen.error().code == ENOENT)
                return fail(kRejected, gen.error().context,
                            "rollback needs two applies: the previous generation is the one before the last apply");
              return fail(kSystem, gen.error().message());
            }
            auto st = (*dp)->status(false);
            text() << "rolled back: generation " << *gen << " is live";
            if (st)
              text() << " (" << st->live.value("source", "?") << ", checksum "
                     << st->live.value("checksum", "?").substr(0, 16) << ")";
            text() << "\n";
            if (ui().json) {
              nlohmann::json doc = {{"result", "rolled-back"}, {"generation", *gen}};
              if (st) {
                doc["source"] = st->live.value("source", "");
                doc["checksum"] = st->live.value("checksum", "");
              }
              emit_json(doc, kOk);
            }
            return kOk;
          }};
}

}  // namespace nf2bpf::cli
