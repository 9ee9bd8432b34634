// nf2bpf diff: replay recorded traffic through two verdict engines and list
// every packet whose verdict differs, with the deciding rule on each side.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>

#include "cli/command.h"
#include "translator/policy/compile.h"
#include "translator/policy/input.h"
#include "translator/translate.h"
#include "verify/diff.h"
#include "verify/kernel/kernel_engine.h"
#include "verify/pcap_reader.h"
#include "verify/policy_engine.h"
#include "verify/reference.h"
#include "verify/report.h"
#include "verify/synthesize.h"

namespace nf2bpf::cli {

namespace {

struct DiffArgs {
  std::string file, against, pcap, synthesize;
  bool kernel = false;
  std::string format = "text";
  std::string iface;
  std::vector<std::string> local_addrs, routes, ifindexes;
  TranslateOptions topt;
};

std::optional<ir::IntervalSet> parse_any_cidr(const std::string& s, std::string& err) {
  auto fam = s.find(':') != std::string::npos ? ir::AddrFamily::V6 : ir::AddrFamily::V4;
  return ir::parse_cidr(s, fam, err);
}

const CLI::Validator kCidr(
    [](std::string& s) -> std::string {
      std::string err;
      if (!parse_any_cidr(s, err)) return "invalid address or CIDR '" + s + "': " + err;
      return {};
    },
    "CIDR");

const CLI::Validator kRoute(
    [](std::string& s) -> std::string {
      auto eq = s.find('=');
      if (eq == std::string::npos || eq + 1 == s.size()) return "write CIDR=INTERFACE, e.g. 10.0.0.0/8=eth1";
      std::string err, net = s.substr(0, eq);
      if (net == "default") return {};
      if (!parse_any_cidr(net, err)) return "invalid CIDR '" + net + "': " + err;
      if (s.size() - eq - 1 > 15) return "interface name longer than 15 characters";
      return {};
    },
    "CIDR=IF");

const CLI::Validator kIfindex(
    [](std::string& s) -> std::string {
      auto eq = s.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == s.size()) return "write INDEX=NAME, e.g. 2=eth0";
      for (size_t i = 0; i < eq; ++i)
        if (!std::isdigit((unsigned char)s[i])) return "interface index must be a number";
      return {};
    },
    "N=NAME");

std::string display_name(const std::string& path) { return path == "-" ? "<stdin>" : path; }

void print_errors(const diag::Diagnostics& ds) { std::cerr << diag::render_errors(ds, stderr_color()); }

// FILE: the ruleset for the reference evaluator. Input problems are printed
// like a compiler's; like an unreadable file, they are trouble (2), never
// "differences found". A policy file has no rule semantics to replay.
std::optional<Translation> load(const std::string& path, const TranslateOptions& opt, int& status) {
  auto in = policy::read_ruleset_or_policy(path, opt);
  if (!in) {
    status = fail(kTrouble, in.error().message());
    return std::nullopt;
  }
  if (in->is_policy) {
    status = fail(kTrouble,
                  in->name +
                      " is a compiled policy (`nf2bpf translate -o`): it holds map contents, not the "
                      "ruleset's semantics, so it cannot be the expected side of a diff",
                  "give the ruleset it was translated from, and the policy after --against: nf2bpf diff --pcap "
                  "CAPTURE RULES --against " +
                      in->name);
    return std::nullopt;
  }
  if (in->translation->diags.has_errors()) {
    print_errors(in->translation->diags);
    status =
        fail(kTrouble, display_name(path) + ": the ruleset has errors; nothing was compared", "fix the errors above");
    return std::nullopt;
  }
  return std::move(*in->translation);
}

// FILE2 (--against): a second ruleset, or a policy file judged by the
// userspace model of the BPF programs.
struct Against {
  std::optional<Translation> tr;
  std::optional<policy::Policy> pol;
};
std::optional<Against> load_against(const std::string& path, const TranslateOptions& opt, int& status) {
  auto in = policy::read_ruleset_or_policy(path, opt);
  if (!in) {
    status = fail(kTrouble, in.error().message());
    return std::nullopt;
  }
  if (in->is_policy) {
    if (!in->policy) {
      print_errors(in->policy_diags);
      status = fail(kTrouble, in->name + ": not a policy nf2bpf can load; nothing was compared");
      return std::nullopt;
    }
    return Against{std::nullopt, std::move(in->policy)};
  }
  if (in->translation->diags.has_errors()) {
    print_errors(in->translation->diags);
    status =
        fail(kTrouble, display_name(path) + ": the ruleset has errors; nothing was compared", "fix the errors above");
    return std::nullopt;
  }
  return Against{std::move(in->translation), std::nullopt};
}

verify::HostOptions host_options(const DiffArgs& a) {
  verify::HostOptions o;
  o.iface = a.iface;
  std::string err;
  for (const auto& l : a.local_addrs) o.local.push_back(*parse_any_cidr(l, err));
  for (const auto& r : a.routes) {
    auto eq = r.find('=');
    std::string net = r.substr(0, eq);
    ir::IntervalSet s;
    if (net == "default") {
      // Both families; the more specific IPv4 space wins for IPv4 destinations.
      s = ir::family_space(ir::AddrFamily::V4);
      o.routes.emplace_back(ir::family_space(ir::AddrFamily::V6), r.substr(eq + 1));
    } else {
      s = *parse_any_cidr(net, err);
    }
    o.routes.emplace_back(s, r.substr(eq + 1));
  }
  for (const auto& x : a.ifindexes) {
    auto eq = x.find('=');
    o.ifindex_names[(uint32_t)std::stoul(x.substr(0, eq))] = x.substr(eq + 1);
  }
  return o;
}

// Copies `path` to standard output.
Result<void> copy_to_stdout(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return sys_error("open " + path);
  std::cout << in.rdbuf();
  std::cout.flush();
  if (!std::cout) return sys_error("write the capture to standard output");
  return {};
}

int synthesize(const DiffArgs& a) {
  int status = kOk;
  auto tr = load(a.file, a.topt, status);
  if (!tr) return status;
  // "-": standard output. The capture is written to a temporary file first
  // (synthesize reads it back to count the rules it exercises), then copied;
  // the summary goes to stderr.
  bool to_stdout = a.synthesize == "-";
  if (to_stdout && ui().json)
    return fail(kUsage, "--synthesize - writes the capture to standard output, where --format json writes too",
                "give --synthesize a file");
  if (to_stdout && isatty(1)) {
    return fail(kUsage, "--synthesize - writes a binary capture to standard output, which is a terminal",
                "redirect it (> probe.pcapng, | tcpdump -r -) or give a file");
  }
  std::string path = a.synthesize;
  if (to_stdout) {
    const char* dir = getenv("TMPDIR");
    std::string tmpl = std::string(dir && *dir ? dir : "/tmp") + "/nf2bpf-synth.XXXXXX";
    int fd = mkstemp(tmpl.data());
    if (fd < 0) {
      return fail(kTrouble,
                  sys_error("create a temporary file in " + std::string(dir && *dir ? dir : "/tmp")).message());
    }
    close(fd);
    path = tmpl;
  }
  struct Remove {
    std::string path;
    ~Remove() {
      if (!path.empty()) unlink(path.c_str());
    }
  } remove{to_stdout ? path : std::string()};
  auto res = verify::synthesize(tr->ruleset, tr->pipeline, path);
  if (!res) {
    return fail(kTrouble, res.error().message());
  }
  end_progress();
  if (to_stdout)
    if (auto c = copy_to_stdout(path); !c) {
      return fail(kTrouble, c.error().message());
    }
  if (ui().json) {
    emit_json({{"result", "written"},
               {"output", a.synthesize},
               {"packets", res->packets},
               {"rules_exercised", res->rules_covered},
               {"rules_total", res->rules_total},
               {"boundary_probes", res->boundary_packets},
               {"notes", res->notes}},
              kOk);
    return kOk;
  }
  std::ostream& out = to_stdout ? std::cerr : std::cout;
  out << "wrote " << res->packets << " packets to " << (to_stdout ? "standard output" : a.synthesize)
      << " (pcapng): " << res->rules_covered << " of " << res->rules_total << " rules exercised, "
      << res->boundary_packets << " boundary probes\n";
  if (!ui().quiet) {
    for (const auto& n : res->notes) out << "  note: " << n << "\n";
    if (!to_stdout) out << "check it with: nf2bpf diff --pcap " << a.synthesize << " " << a.file << "\n";
  }
  return kOk;
}

int run(const DiffArgs& a) {
  if (!one_stdin({{"FILE", a.file}, {"--pcap", a.pcap}, {"--against", a.against}, {"--ipsets", a.topt.ipsets_path}}))
    return kUsage;
  if (!a.synthesize.empty()) return synthesize(a);
  if (a.pcap.empty()) {
    return fail(kUsage, "diff needs a capture",
                "give --pcap CAPTURE, or --synthesize OUT.pcap to make one from the rules");
  }
  int status = kOk;
  auto expected = load(a.file, a.topt, status);
  if (!expected) return status;
  const std::string name = display_name(a.file);
  std::optional<Translation> actual;
  policy::Policy pol;
  bool policy_file = false;  // FILE2 is a policy file: pol, judged by the model
  if (!a.against.empty()) {
    auto other = load_against(a.against, a.topt, status);
    if (!other) return status;
    actual = std::move(other->tr);
    if (other->pol) pol = std::move(*other->pol), policy_file = true;
  } else {
    diag::Diagnostics cd;
    pol = policy::compile(*expected, cd);
    if (cd.has_errors()) {
      std::cerr << diag::render_errors(cd, stderr_color());
      return fail(kTrouble, name + ": the ruleset does not compile to a policy; nothing was compared");
    }
  }
  auto cap = verify::CaptureReader::open(a.pcap);
  if (!cap) {
    return fail(kTrouble, cap.error().message(), "diff reads pcap and pcapng captures (tcpdump -w, dumpcap, tshark)");
  }
  verify::HostModel host(host_options(a));
  verify::ReferenceEngine e(expected->ruleset, expected->pipeline, host);
  std::unique_ptr<verify::VerdictEngine> x;
  verify::KernelEngine* kernel = nullptr;
  if (actual) {
    x = std::make_unique<verify::ReferenceEngine>(actual->ruleset, actual->pipeline, host);
  } else if (a.kernel) {
    auto k = verify::KernelEngine::create(pol, host, name);
    if (!k) {
      return fail(kTrouble, k.error().message(),
                  "without --kernel the compiled policy is judged by its userspace model");
    }
    kernel = k->get();
    x = std::move(*k);
  } else {
    x = std::make_unique<verify::PolicyEngine>(pol, host, policy_file ? display_name(a.against) : name);
  }
  verify::DiffReport rep = verify::run_diff(**cap, host, e, *x);
  rep.expected_engine = "reference evaluator";
  rep.actual_engine = actual        ? "reference evaluator"
                      : kernel      ? "compiled policy (BPF programs run with BPF_PROG_TEST_RUN in a private namespace)"
                      : policy_file ? "policy file (userspace model of the BPF programs)"
                                    : "compiled policy (userspace model of the BPF programs)";
  if (kernel) {
    rep.notes.push_back("--kernel: connection timeouts follow the replay's clock, not the capture's timestamps");
    if (!kernel->error().empty() && rep.error.empty()) {
      rep.error = "--kernel: " + kernel->error();
      rep.engine_error = true;
    }
  }
  if (!actual) {  // the compiled policy, or a policy file compiled from FILE
    size_t left_out = expected->count(caps::Fidelity::Unsupported);
    rep.left_in_netfilter = left_out;
    if (left_out)
      rep.notes.push_back(std::to_string(left_out) +
                          " rules are unsupported by the dataplane and not in the compiled policy (they stay in "
                          "netfilter): the policy alone is not equivalent to the ruleset; packets those rules "
                          "decide show up as differences, what they change without deciding (NAT) does not");
    size_t approx = expected->count(caps::Fidelity::Approximate);
    if (approx)
      rep.notes.push_back(std::to_string(approx) +
                          " rules are translated with a stated difference (nf2bpf translate "
                          "lists them)");
  }

  end_progress();
  if (a.format == "json") {
    print_json(verify::render_json(rep));
  } else if (a.format == "markdown")
    std::cout << verify::render_markdown(rep);
  else if (ui().quiet)
    std::cout << "result: " << verify::result_line(rep) << "\n";
  else
    std::cout << verify::render_text(rep, stdout_color());
  std::cout.flush();
  if (!rep.error.empty()) {
    return fail(kTrouble, rep.error, "the packets before it were compared; the report above covers them");
  }
  return rep.equivalent() ? kOk : kDiffers;
}

}  // namespace

Command add_diff(CLI::App& app) {
  auto a = std::make_shared<DiffArgs>();
  a->topt.allow_partial = true;  // rules the dataplane cannot take are still evaluated by the reference
  CLI::App* sub = app.add_subcommand(
      "diff",
      "Replay recorded traffic through a ruleset and its compiled policy (or a new ruleset) and list every "
      "packet whose verdict differs");
  sub->add_option("--pcap", a->pcap,
                  "Recorded traffic (pcap or pcapng: Ethernet, Linux cooked SLL/SLL2, raw IP), or - for stdin")
      ->option_text("CAPTURE");
  auto* kernel = sub->add_flag("--kernel", a->kernel,
                               "Judge the compiled policy with the real BPF programs (BPF_PROG_TEST_RUN in a private, "
                               "unattached instance; needs root) instead of their userspace model");
  sub->add_option("--against", a->against,
                  "Compare FILE (expected) with FILE2 (actual, or - for stdin): the impact of changing FILE into "
                  "FILE2; a policy file (`translate -o`) as FILE2: whether it implements FILE")
      ->excludes(kernel)
      ->option_text("FILE2");
  sub->add_option("--format", a->format, "Report format (default text)")
      ->check(CLI::IsMember({"text", "json", "markdown"}))
      ->option_text("text|json|markdown");
  sub->add_option("--iface", a->iface,
                  "Interface the capture was taken on, when it does not say (pcap without SLL/pcapng names)")
      ->option_text("IF");
  sub->add_option("--local-addr", a->local_addrs,
                  "This host's addresses (address or CIDR, repeatable): decides INPUT vs FORWARD vs OUTPUT")
      ->check(kCidr)
      ->option_text("CIDR");
  sub->add_option("--route", a->routes, "Output interface for a destination, CIDR=IF or default=IF (repeatable)")
      ->check(kRoute)
      ->option_text("CIDR=IF");
  sub->add_option("--ifindex", a->ifindexes, "Name an SLL2 interface index, N=NAME (repeatable)")
      ->check(kIfindex)
      ->option_text("N=NAME");
  sub->add_option("--from", a->topt.from,
                  "Input format of FILE and FILE2: auto (the default: looks at the text), iptables, ip6tables, nft, "
                  "nft-json")
      ->check(CLI::IsMember({"auto", "iptables", "ip6tables", "nft", "nft-json"}))
      ->option_text("FORMAT");
  sub->add_option("--ipsets", a->topt.ipsets_path,
                  "`ipset save` output with the sets -m set rules name, or - for stdin")
      ->option_text("FILE");
  sub->add_option("--synthesize", a->synthesize,
                  "Write a capture (pcapng) exercising every rule and its boundaries to OUT (- for stdout) instead "
                  "of diffing")
      ->option_text("OUT");
  sub->add_option("FILE", a->file,
                  "The ruleset (iptables-save / ip6tables-save / nft output), or - for stdin; not a policy file, "
                  "which has no rule semantics to replay (give it with --against)")
      ->required();
  sub->footer(
      "Without --against, FILE (run by the reference evaluator) is compared with its own compiled policy,\n"
      "judged by the userspace model of the BPF programs.\n"
      "Direction and interfaces come from the capture (SLL/SLL2 packet types, pcapng interface blocks) or\n"
      "from --iface and --local-addr: a packet from a local address goes through OUTPUT, one to a local\n"
      "address through INPUT, anything else through FORWARD. Packets whose verdict depends on what a capture\n"
      "cannot show (rate limits, random sampling, socket owners) are reported as indeterminate, not compared.\n"
      "Exit status (as diff(1)): 0 no differences on this capture, 1 differences found or rules of FILE left\n"
      "in netfilter (not in the compiled policy, which alone is then not the ruleset), 2 trouble: a usage\n"
      "error, a file that cannot be read, a rejected ruleset, a policy file as FILE, an unreadable or\n"
      "truncated capture (the packets before the problem are still reported), a system error.");
  return {sub, [a]() -> int {
            ui().json = a->format == "json";
            return run(*a);
          }};
}

}  // namespace nf2bpf::cli
