// nf2bpf translate: parse a ruleset, check it, print the per-rule report.
#include <cstdio>
#include <iostream>

#include "cli/command.h"
#include "translator/report/report.h"
#include "translator/translate.h"

namespace nf2bpf::cli {

namespace {
struct TranslateArgs {
  TranslateOptions opt;
  std::string format = "text";
  std::string file;
};
}  // namespace

Command add_translate(CLI::App& app) {
  auto args = std::make_shared<TranslateArgs>();
  CLI::App* sub = app.add_subcommand("translate", "Translate a ruleset and report, per rule, how faithfully it maps to eBPF");
  sub->add_option("--from", args->opt.from, "Input format")
      ->check(CLI::IsMember({"auto", "iptables", "ip6tables"}))
      ->default_str("auto");
  sub->add_option("--format", args->format, "Report format")
      ->check(CLI::IsMember({"text", "json"}))
      ->default_str("text");
  sub->add_flag("--allow-partial", args->opt.allow_partial,
                "Report unsupported rules but exit 0 (they stay in netfilter)");
  sub->add_option("--ipsets", args->opt.ipsets_path, "`ipset save` output with the sets that -m set rules name")
      ->check(CLI::ExistingFile);
  sub->add_option("FILE", args->file, "iptables-save / ip6tables-save output, or - for stdin")->required();
  sub->footer("Exit status: 0 every rule translates (exact or approximate), 1 unsupported rules or input\n"
              "errors (0 with --allow-partial when the only problems are unsupported rules), 2 system error.");

  return {sub, [args]() -> int {
            auto tr = translate_file(args->file, args->opt);
            if (!tr) {
              print_error(tr.error().message());
              return kSystem;
            }
            if (args->format == "json")
              std::cout << report::json(*tr).dump(2) << "\n";
            else
              std::cout << report::text(*tr, stdout_color());
            return tr->rejected(args->opt.allow_partial) ? kRejected : kOk;
          }};
}

}  // namespace nf2bpf::cli
