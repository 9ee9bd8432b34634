// nf2bpf translate: parse a ruleset, check it, print the per-rule report.
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "cli/command.h"
#include "translator/ir/dump.h"
#include "translator/policy/compile.h"
#include "translator/policy/yaml.h"
#include "translator/report/report.h"
#include "translator/translate.h"

namespace nf2bpf::cli {

namespace {
struct TranslateArgs {
  TranslateOptions opt;
  std::string format = "text";
  std::string file;
  bool dump_ir = false;
  std::string output;  // -o: policy YAML
};

// -o: the compiled policy, written only when the translation is accepted and
// compiles; an existing file is replaced atomically or left as it was. "-"
// is standard output (the report then goes to stderr).
int write_policy(const Translation& tr, const std::string& path, bool rejected) {
  if (rejected) {
    return fail(kRejected, path + " was not written: the ruleset has errors or unsupported rules",
                "fix them, or pass --allow-partial to leave unsupported rules in netfilter");
  }
  diag::Diagnostics d;
  policy::Policy pol = policy::compile(tr, d);
  for (const auto& x : d.all()) std::cerr << diag::render(x, stderr_color());
  if (d.has_errors()) {
    return fail(kRejected, path + " was not written: the ruleset cannot be compiled to a policy");
  }
  if (path == "-") {
    std::cout << policy::to_yaml(pol);
    return kOk;
  }
  if (auto w = policy::write_yaml_file(pol, path); !w) {
    return fail(kSystem, w.error().message());
  }
  return kOk;
}
// The report; with -q only its summary line, and the errors on stderr.
void print_report(const Translation& tr, std::ostream& out) {
  bool color = &out == &std::cout ? stdout_color() : stderr_color();
  if (!ui().quiet) {
    out << report::text(tr, color);
    return;
  }
  std::cerr << diag::render_errors(tr.diags, stderr_color());
  out << report::summary_line(tr) << "\n";
}
}  // namespace

Command add_translate(CLI::App& app) {
  auto args = std::make_shared<TranslateArgs>();
  CLI::App* sub =
      app.add_subcommand("translate", "Translate a ruleset and report, per rule, how faithfully it maps to eBPF");
  sub->add_option("--from", args->opt.from,
                  "Input format: auto (the default: looks at the text), iptables, ip6tables, nft, nft-json, "
                  "kernel (the running ruleset)")
      ->check(CLI::IsMember({"auto", "iptables", "ip6tables", "nft", "nft-json", "kernel"}))
      ->option_text("FORMAT");
  sub->add_option("--format", args->format, "Report format (default text)")
      ->check(CLI::IsMember({"text", "json"}))
      ->option_text("text|json");
  sub->add_flag("--allow-partial", args->opt.allow_partial,
                "Report unsupported rules but exit 0 (they stay in netfilter)");
  sub->add_option("--ipsets", args->opt.ipsets_path,
                  "`ipset save` output with the sets that -m set rules name, or - for stdin")
      ->option_text("FILE");
  sub->add_option("-o,--output", args->output,
                  "Also write the compiled policy as reviewable YAML to this file (`nf2bpf apply` loads it), or - "
                  "for stdout (the report then goes to stderr); not written when the ruleset is rejected")
      ->option_text("POLICY.yaml");
  sub->add_flag("--dump-ir", args->dump_ir, "Print the parsed IR and the decision lists instead of the report");
  sub->add_option("FILE", args->file,
                  "iptables-save / ip6tables-save / nft list ruleset (text or -j JSON) output, or - for stdin; "
                  "none with --from kernel");
  sub->footer(
      "Exit status: 0 every rule translates (exact or approximate), 1 unsupported rules or input\n"
      "errors (0 with --allow-partial when the only problems are unsupported rules), 2 a file cannot be\n"
      "read, a usage error or a system error.");

  return {sub, [args]() -> int {
            ui().json = args->format == "json" && !args->dump_ir;
            if (args->file.empty() && args->opt.from != "kernel") {
              return fail(kUsage, "translate needs a FILE (or - for stdin)",
                          "or read the running ruleset with --from kernel");
            }
            if (!args->file.empty() && args->opt.from == "kernel") {
              return fail(kUsage, "--from kernel reads the running ruleset and takes no FILE",
                          "drop '" + args->file + "', or use --from nft|nft-json for a file");
            }
            if (!one_stdin({{"FILE", args->file}, {"--ipsets", args->opt.ipsets_path}})) return kUsage;
            bool yaml_to_stdout = args->output == "-";
            if (yaml_to_stdout && (args->format == "json" || args->dump_ir)) {
              return fail(kUsage,
                          std::string("-o - writes the policy to standard output, where ") +
                              (args->dump_ir ? "--dump-ir" : "--format json") + " writes too",
                          "give -o a file");
            }
            auto tr = translate_file(args->file, args->opt);
            if (!tr) {
              return fail(kSystem, tr.error().message());
            }
            end_progress();
            if (args->dump_ir) {
              for (const auto& d : tr->diags.all()) std::cerr << diag::render(d);
              std::cout << ir::dump(tr->ruleset) << "== decision lists\n" << ir::dump(tr->pipeline, tr->ruleset);
            } else if (args->format == "json") {
              print_json(report::json(*tr));
            } else {
              print_report(*tr, yaml_to_stdout ? std::cerr : std::cout);
            }
            bool rejected = tr->rejected(args->opt.allow_partial);
            if (!args->output.empty()) return write_policy(*tr, args->output, rejected);
            return rejected ? kRejected : kOk;
          }};
}

}  // namespace nf2bpf::cli
