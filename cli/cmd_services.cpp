// nf2bpf services: the Kubernetes Services kube-proxy's rules make (its
// iptables or nftables mode), like `kubectl get svc -o wide` with endpoints.
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "translator/services/kube.h"
#include "translator/translate.h"

namespace nf2bpf::cli {

namespace {

struct ServicesArgs {
  TranslateOptions opt;
  std::string format = "text";
  std::string file;
};

std::string endpoint(const std::string& addr, uint16_t port) {
  std::string a = addr.find(':') != std::string::npos ? "[" + addr + "]" : addr;
  return port ? a + ":" + std::to_string(port) : a;
}

std::string frontend_text(const services::Frontend& f) {
  return f.kind + " " + endpoint(f.address.empty() ? "*" : f.address, f.port) + "/" + f.protocol;
}

std::string lines(const std::vector<ir::SourceLoc>& locs) {
  std::string out;
  std::string file;
  for (const auto& l : locs) {
    if (!out.empty()) out += ", ";
    if (l.file != file) {
      out += l.file_line();
      file = l.file;
    } else {
      out += std::to_string(l.line);
    }
  }
  return out;
}

void print_text(const services::Recognition& r, const std::string& file) {
  text() << r.services.size() << " services (kube-proxy " << r.mode << " mode) in " << file << "\n";
  for (const auto& s : r.services) {
    auto& d = detail();
    d << "\n" << s.name << " (" << s.family << ")\n";
    std::string fr;
    for (const auto& f : s.frontends) fr += (fr.empty() ? "" : ", ") + frontend_text(f);
    d << "  frontends:  " << fr << "\n";
    std::string be;
    for (const auto& b : s.backends)
      be += (be.empty() ? "" : ", ") + endpoint(b.address, b.port) + (b.local ? " (local)" : "");
    d << "  backends:   "
      << (s.no_endpoints ? "none (new connections are rejected)"
          : be.empty()   ? "none"
                         : be)
      << "\n";
    d << "  affinity:   "
      << (s.affinity_seconds ? "ClientIP, " + std::to_string(*s.affinity_seconds) + " s" : std::string("none")) << "\n";
    if (s.external_local) d << "  external traffic policy: Local\n";
    if (!s.source_ranges.empty()) {
      std::string sr;
      for (const auto& x : s.source_ranges) sr += (sr.empty() ? "" : ", ") + x;
      d << "  source ranges: " << sr << "\n";
    }
    if (!s.masquerade.empty()) d << "  masquerade: " << s.masquerade << "\n";
    d << "  rules:      " << lines(s.rules) << "\n";
  }
}

nlohmann::json to_json(const services::Recognition& r, const std::string& file) {
  nlohmann::json out = {{"source", file}, {"mode", r.mode}, {"services", nlohmann::json::array()}};
  for (const auto& s : r.services) {
    nlohmann::json j = {{"name", s.name},
                        {"family", s.family},
                        {"frontends", nlohmann::json::array()},
                        {"backends", nlohmann::json::array()},
                        {"affinity_seconds", s.affinity_seconds ? nlohmann::json(*s.affinity_seconds) : nullptr},
                        {"external_traffic_policy", s.external_local ? "Local" : "Cluster"},
                        {"source_ranges", s.source_ranges},
                        {"masquerade", s.masquerade},
                        {"no_endpoints", s.no_endpoints},
                        {"rules", nlohmann::json::array()}};
    for (const auto& f : s.frontends)
      j["frontends"].push_back({{"kind", f.kind},
                                {"address", f.address.empty() ? nlohmann::json(nullptr) : nlohmann::json(f.address)},
                                {"protocol", f.protocol},
                                {"port", f.port},
                                {"location", f.loc.file_line()}});
    for (const auto& b : s.backends)
      j["backends"].push_back(
          {{"address", b.address}, {"port", b.port}, {"local", b.local}, {"location", b.loc.file_line()}});
    for (const auto& l : s.rules) j["rules"].push_back(l.file_line());
    out["services"].push_back(std::move(j));
  }
  return out;
}

}  // namespace

Command add_services(CLI::App& app) {
  auto args = std::make_shared<ServicesArgs>();
  CLI::App* sub = app.add_subcommand(
      "services", "List the Kubernetes Services kube-proxy's rules make: frontends, backends, affinity, policies");
  sub->add_option("--from", args->opt.from,
                  "Input format: auto (the default: looks at the text), iptables, ip6tables, nft, nft-json, "
                  "kernel (the running ruleset)")
      ->check(CLI::IsMember({"auto", "iptables", "ip6tables", "nft", "nft-json", "kernel"}))
      ->option_text("FORMAT");
  sub->add_option("--format", args->format, "Output format (default text)")
      ->check(CLI::IsMember({"text", "json"}))
      ->option_text("text|json");
  sub->add_option("FILE", args->file,
                  "kube-proxy's rules: iptables-save output (iptables mode) or nft list ruleset / nft -f input "
                  "(nftables mode), or - for stdin; none with --from kernel");
  sub->footer(
      "Services are recognised from kube-proxy's own chains, maps and comments (KUBE-SERVICES, KUBE-SVC-*,\n"
      "KUBE-SEP-* ...; table kube-proxy's service-ips and service-nodeports maps). Exit status: 0 Services\n"
      "were found, 1 the input has no kube-proxy rules or does not parse, 2 a file cannot be read or a\n"
      "usage error.");
  return {sub, [args]() -> int {
            ui().json = args->format == "json";
            if (args->file.empty() && args->opt.from != "kernel")
              return fail(kUsage, "services needs a FILE (or - for stdin)",
                          "or read the running ruleset with --from kernel");
            if (!args->file.empty() && args->opt.from == "kernel")
              return fail(kUsage, "--from kernel reads the running ruleset and takes no FILE",
                          "drop '" + args->file + "'");
            args->opt.allow_partial = true;
            auto tr = translate_file(args->file, args->opt);
            if (!tr) return fail(kSystem, tr.error().message());
            end_progress();
            std::string name = args->file.empty() ? "the running ruleset" : args->file;
            if (tr->rejected(true)) {
              std::cerr << diag::render_errors(tr->diags, stderr_color());
              return fail(kRejected, name + " does not parse: its Services cannot be read");
            }
            services::Recognition r = services::recognise(tr->ruleset);
            if (r.mode.empty())
              return fail(kRejected, name + " has no kube-proxy rules",
                          "kube-proxy's iptables mode writes the nat chain KUBE-SERVICES, its nftables mode the table "
                          "kube-proxy with the map service-ips");
            if (args->format == "json")
              print_json(to_json(r, name));
            else
              print_text(r, name);
            return kOk;
          }};
}

}  // namespace nf2bpf::cli
