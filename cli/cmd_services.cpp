// nf2bpf services: the Kubernetes Services kube-proxy's rules make (its
// iptables or nftables mode), like `kubectl get svc -o wide` with endpoints.
#include <iostream>
#include <nlohmann/json.hpp>

#include <sys/stat.h>

#include <ctime>
#include <map>
#include <tuple>

#include "cli/command.h"
#include "ops/deploy.h"
#include "translator/services/kube.h"
#include "translator/translate.h"

namespace nf2bpf::cli {

namespace {

struct ServicesArgs {
  TranslateOptions opt;
  std::string format = "text";
  std::string file, pin_dir;
  bool live = false;
};

// --live: the connections each backend was given by the live generation.
// A service compiled to the service maps counts them per backend
// (nf_svc_conns), keyed by its load-balancing chain; one translated rule by
// rule counts them on its DNAT rule (nat rules run once per connection),
// keyed by the rule's "table/chain" and line ("" for the chain when the
// generation did not keep its chain names: lines alone are unique in one file).
struct LiveCounts {
  std::map<std::pair<std::string, uint32_t>, uint64_t> rules;
  std::map<std::tuple<std::string, std::string, uint16_t>, uint64_t> backends;  // (chain, address, port)
};

uint64_t connections_of(const LiveCounts& c, const services::Service& s, const services::Backend& b) {
  auto it = c.rules.find({b.chain, b.loc.line});
  if (it == c.rules.end()) it = c.rules.find({std::string(), b.loc.line});
  uint64_t n = it == c.rules.end() ? 0 : it->second;
  for (const auto& chain : s.chains)
    if (auto x = c.backends.find({chain, b.address, b.port}); x != c.backends.end()) n += x->second;
  return n;
}

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

void print_text(const services::Recognition& r, const std::string& file, const LiveCounts* live) {
  text() << r.services.size() << " services (kube-proxy " << r.mode << " mode) in " << file << "\n";
  for (const auto& s : r.services) {
    auto& d = detail();
    d << "\n" << s.name << " (" << s.family << ")\n";
    std::string fr;
    for (const auto& f : s.frontends) fr += (fr.empty() ? "" : ", ") + frontend_text(f);
    d << "  frontends:  " << fr << "\n";
    std::string be;
    uint64_t total = 0;
    for (const auto& b : s.backends) {
      be += (be.empty() ? "" : ", ") + endpoint(b.address, b.port) + (b.local ? " (local)" : "");
      if (live) {
        uint64_t n = connections_of(*live, s, b);
        total += n;
        be += " [" + std::to_string(n) + " conn]";
      }
    }
    d << "  backends:   "
      << (s.no_endpoints ? "none (new connections are rejected)"
          : be.empty()   ? "none"
                         : be)
      << "\n";
    if (live) d << "  connections: " << total << " (new connections sent to a backend by this generation)\n";
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

nlohmann::json to_json(const services::Recognition& r, const std::string& file, const LiveCounts* live) {
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
    uint64_t total = 0;
    for (const auto& b : s.backends) {
      j["backends"].push_back(
          {{"address", b.address}, {"port", b.port}, {"local", b.local}, {"location", b.loc.file_line()}});
      if (live) {
        uint64_t n = connections_of(*live, s, b);
        j["backends"].back()["connections"] = n;
        total += n;
      }
    }
    if (live) j["connections"] = total;
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
  sub->add_flag("--live", args->live,
                "The live policy's Services (its source read again), with the connections each backend was given");
  sub->add_option("--pin-dir", args->pin_dir, "With --live: bpffs directory of nf2bpf's pins (default: per namespace)")
      ->option_text("DIR");
  sub->add_option("FILE", args->file,
                  "kube-proxy's rules: iptables-save output (iptables mode) or nft list ruleset / nft -f input "
                  "(nftables mode), or - for stdin; none with --from kernel");
  sub->footer(
      "Services are recognised from kube-proxy's own chains, maps and comments (KUBE-SERVICES, KUBE-SVC-*,\n"
      "KUBE-SEP-* ...; table kube-proxy's service-ips and service-nodeports maps). Exit status: 0 Services\n"
      "were found, 1 the input has no kube-proxy rules or does not parse, 2 a file cannot be read or a\n"
      "usage error. --live reads the live generation's source again (the file it was applied from, or the\n"
      "kernel's ruleset) and adds, per backend, the connections the generation sent to it (counted per\n"
      "backend for a Service in the service maps, else by its DNAT rule, which runs once per connection).");
  return {sub, [args]() -> int {
            ui().json = args->format == "json";
            LiveCounts counts;
            std::string live_note;
            if (args->live) {
              if (!args->file.empty()) return fail(kUsage, "--live reads the live policy's source and takes no FILE");
              auto dp = ops::find_dataplane(args->pin_dir);
              if (!dp) return fail(kSystem, dp.error().message());
              if (!*dp)
                return fail(kRejected, "no dataplane is loaded in this network namespace",
                            "apply kube-proxy's rules first (nf2bpf apply FILE, or sync --from kernel)");
              auto st = (*dp)->status(true);
              if (!st) return fail(kSystem, st.error().message());
              std::string source = st->live.value("source", "");
              if (!st->live.value("valid", false) || source.empty())
                return fail(kRejected, "no valid generation is live", "apply kube-proxy's rules first");
              if (source == "kernel") {
                args->opt.from = "kernel";
              } else {
                args->file = source;
                struct stat sb {};
                if (stat(source.c_str(), &sb) == 0 && sb.st_mtime > st->live.value("applied", (int64_t)0))
                  live_note = source + " changed after generation " + std::to_string(st->generation) +
                              " was applied: counters are matched to its rules by line";
              }
              for (const auto& c : st->counters)
                if (!c.policy) counts.rules[{c.chain, c.line}] += c.packets;
              auto conns = (*dp)->service_connections();
              if (!conns) return fail(kSystem, conns.error().message());
              auto names = st->live.value("services", std::vector<std::string>());
              for (const auto& c : *conns)
                if (c.service < names.size())
                  counts.backends[{names[c.service], ir::format_addr(c.addr), c.port}] += c.connections;
            }
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
            const LiveCounts* live = args->live ? &counts : nullptr;
            if (args->format == "json") {
              auto doc = to_json(r, name, live);
              if (!live_note.empty()) doc["note"] = live_note;
              print_json(doc);
            } else {
              print_text(r, name, live);
              if (!live_note.empty()) detail() << "note: " << live_note << "\n";
            }
            return kOk;
          }};
}

}  // namespace nf2bpf::cli
