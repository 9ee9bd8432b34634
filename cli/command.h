// Each command lives in one file: its options and its handler side by side.
// A command registers a CLI11 subcommand and returns the function to run
// when the user picks it; that function returns the process exit status.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <string>

#include "cli/ui.h"
#include "ops/outcome.h"

namespace nf2bpf::loader {
class Dataplane;
}

namespace nf2bpf::cli {

// Exit statuses (nf2bpf(8), EXIT STATUS). Every command: 0 success, 1 input
// rejected (refused), 2 a system error or a usage error. diff follows diff(1):
// 0 no differences, 1 differences, 2 trouble (usage, unreadable or rejected
// input, system error). A file that cannot be read is 2 whichever option named it.
enum Exit : int { kOk = 0, kRejected = 1, kSystem = 2, kUsage = 2, kDiffers = 1, kTrouble = 2 };

inline int exit_status(ops::Kind k) { return k == ops::Kind::ok ? kOk : k == ops::Kind::refused ? kRejected : kSystem; }

using Handler = std::function<int()>;

// The namespace's loaded dataplane, for the commands that list what it holds
// (status, conntrack, sets); nullptr once it has said there is none (JSON:
// result "not-loaded") or reported the error, with `exit` the status to
// return. (Defined in cmd_status.cpp.)
std::unique_ptr<loader::Dataplane> loaded_dataplane(const std::string& pin_dir, int& exit);

struct Command {
  CLI::App* app = nullptr;
  Handler run;
};

Command add_translate(CLI::App& app);
Command add_capabilities(CLI::App& app);
Command add_diff(CLI::App& app);
Command add_apply(CLI::App& app);
Command add_status(CLI::App& app);
Command add_rollback(CLI::App& app);
Command add_unload(CLI::App& app);
Command add_sync(CLI::App& app);
Command add_restore(CLI::App& app);
Command add_attach(CLI::App& app);
Command add_conntrack(CLI::App& app);
Command add_sets(CLI::App& app);
Command add_services(CLI::App& app);

}  // namespace nf2bpf::cli
