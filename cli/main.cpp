// nf2bpf: migrate netfilter rulesets to hash-map-backed eBPF, and prove it.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <vector>

#include "cli/command.h"

namespace nf2bpf::cli {

void print_error(const std::string& message, const std::string& hint) {
  bool color = isatty(2) && !getenv("NO_COLOR");
  std::fprintf(stderr, "%snf2bpf: error:%s %s\n", color ? "\033[1;31m" : "", color ? "\033[0m" : "",
               message.c_str());
  if (!hint.empty()) std::fprintf(stderr, "  hint: %s\n", hint.c_str());
}

bool stdout_color() { return isatty(1) && !getenv("NO_COLOR"); }

}  // namespace nf2bpf::cli

int main(int argc, char** argv) {
  using namespace nf2bpf::cli;
  CLI::App app{"nf2bpf: migrate iptables/nftables rulesets to eBPF (TC/XDP) and prove the migration",
               "nf2bpf"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("nf2bpf ") + NF2BPF_VERSION);
  int verbose = 0;
  app.add_flag("-v,--verbose", verbose, "More operational logging (-v info, -vv debug)");
  app.footer("Exit status: 0 success, 1 input rejected or differences found, 2 system error.\n"
             "See nf2bpf(8) for every command.");

  std::vector<Command> commands = {add_translate(app), add_apply(app),    add_status(app), add_rollback(app),
                                   add_unload(app),    add_diff(app),     add_capabilities(app),
                                   add_sync(app),      add_restore(app)};

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    print_error(e.what(), "run 'nf2bpf --help' or 'nf2bpf COMMAND --help'");
    return kRejected;
  }
  spdlog::set_level(verbose >= 2 ? spdlog::level::debug : verbose == 1 ? spdlog::level::info : spdlog::level::warn);
  spdlog::set_pattern("nf2bpf: %l: %v");

  for (auto& c : commands)
    if (c.app->parsed()) {
      try {
        return c.run();
      } catch (const std::exception& e) {
        print_error(std::string("internal error: ") + e.what(), "please report this with the input that caused it");
        return kSystem;
      }
    }
  return kRejected;
}
