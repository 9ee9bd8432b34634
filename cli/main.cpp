// nf2bpf: migrate netfilter rulesets to hash-map-backed eBPF, and prove it.
#include <spdlog/spdlog.h>

#include <vector>

#include "cli/command.h"
#include "cli/usage.h"

int main(int argc, char** argv) {
  using namespace nf2bpf::cli;
  log_to_stderr();
  CLI::App app{"nf2bpf: migrate iptables/nftables rulesets to eBPF (TC/XDP) and prove the migration", "nf2bpf"};
  // Subcommands copy these when they are added: set them first.
  app.formatter(std::make_shared<HelpFormatter>());
  app.get_formatter()->label("SUBCOMMAND", "COMMAND");
  // -v and -q after the command too (nf2bpf apply -v FILE).
  app.fallthrough();
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("nf2bpf ") + NF2BPF_VERSION);
  app.add_flag("-v,--verbose", ui().verbose,
               "More operational logging on stderr (-v info, -vv debug, -vvv libbpf's debug output too)");
  app.add_flag("-q,--quiet", ui().quiet, "Print only the command's result line (errors still go to stderr)");
  app.add_option("--color", ui().color,
                 "Colour: auto (the default: on a terminal, unless NO_COLOR is set or TERM=dumb), always, never")
      ->check(CLI::IsMember({"auto", "always", "never"}))
      ->option_text("WHEN");
  app.footer(
      "Exit status: 0 success, 1 input rejected, 2 usage or system error (a file that cannot be read);\n"
      "diff: 0 no differences, 1 differences, 2 trouble. See nf2bpf(8) for every command.");

  std::vector<Command> commands = {add_translate(app), add_apply(app),  add_status(app),       add_rollback(app),
                                   add_unload(app),    add_diff(app),   add_capabilities(app), add_sync(app),
                                   add_restore(app),   add_attach(app), add_conntrack(app),    add_services(app),
                                   add_sets(app)};
  for (auto& c : commands) c.app->group("Commands");

  std::vector<std::string> args(argv + 1, argv + argc);
  // A usage error is reported as JSON too when --format json was asked for.
  for (size_t i = 0; i < args.size(); ++i)
    if (args[i] == "--format=json" || (args[i] == "--format" && i + 1 < args.size() && args[i + 1] == "json"))
      ui().json = true;
  if (auto p = check_usage(app, args)) return fail(kUsage, p->message, p->hint);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    UsageProblem p = explain(e, find_command(app, args));
    return fail(kUsage, p.message, p.hint);
  }
  spdlog::set_level(ui().quiet          ? spdlog::level::err
                    : ui().verbose >= 3 ? spdlog::level::trace
                    : ui().verbose >= 2 ? spdlog::level::debug
                    : ui().verbose == 1 ? spdlog::level::info
                                        : spdlog::level::warn);
  spdlog::set_pattern("nf2bpf: %l: %v");
  start_progress();

  for (auto& c : commands)
    if (c.app->parsed()) {
      ui().command = c.app->get_name();
      try {
        int status = c.run();
        end_progress();
        return status;
      } catch (const std::exception& e) {
        return fail(kSystem, std::string("internal error: ") + e.what(),
                    "please report this with the input that caused it");
      }
    }
  return kRejected;
}
