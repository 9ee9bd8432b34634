// nf2bpf-bench: the in-process half of `make bench`.
//
//   nf2bpf-bench gen FAMILY N e2e|classifier DIR   write one ruleset for every engine
//   nf2bpf-bench classifier OUTDIR                 ns/packet (BPF_PROG_TEST_RUN) and map memory
//   nf2bpf-bench control OUTDIR                    translate / compile / install / swap times
//   nf2bpf-bench nat OUTDIR                        NAT ns/packet: first packet, established, filter-only
//
// classifier and control move themselves into a private network namespace
// (unshare(CLONE_NEWNET)) holding only lo and a veth pair, and use a
// private, unpinned, unattached Dataplane: nothing outside the process sees
// them, and the namespace disappears with the process.
//
// Environment: BENCH_QUICK=1 (a short subset), BENCH_REPEAT (test-run
// repeat count), BENCH_REPS (medians over this many measurements),
// BENCH_NAT_SIZES, BENCH_NAT_FLOWS (new connections measured per point).
//
// Nothing here is a pass/fail test: it measures and writes tables.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <dirent.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "bench/rulesets.h"
#include "loader/dataplane.h"
#include "loader/host.h"
#include "translator/frontend/ipset/ipset_save.h"
#include "translator/policy/compile.h"
#include "translator/translate.h"
#include "verify/builder.h"

using namespace nf2bpf;
using bench::Family;
using bench::Mode;

namespace {

bool quick() {
  const char* q = std::getenv("BENCH_QUICK");
  return q && *q && std::string(q) != "0";
}
long env_num(const char* name, long dflt) {
  const char* v = std::getenv(name);
  return v && *v ? std::atol(v) : dflt;
}

std::vector<size_t> env_sizes(const char* name, std::vector<size_t> dflt) {
  const char* v = std::getenv(name);
  if (!v || !*v) return dflt;
  std::vector<size_t> out;
  std::istringstream in(v);
  for (size_t n; in >> n;) out.push_back(n);
  return out.empty() ? dflt : out;
}
std::vector<Family> env_families(const char* name, std::vector<Family> dflt) {
  const char* v = std::getenv(name);
  if (!v || !*v) return dflt;
  std::vector<Family> out;
  std::istringstream in(v);
  for (std::string w; in >> w;) {
    Family f;
    if (bench::parse_family(w, f)) out.push_back(f);
  }
  return out.empty() ? dflt : out;
}

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

template <typename T>
T median(std::vector<T> v) {
  if (v.empty()) return T{};
  std::sort(v.begin(), v.end());
  size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

std::string fmt(double v, int prec = 1) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", prec, v);
  return b;
}
std::string thousands(uint64_t v) {
  std::string s = std::to_string(v), out;
  int c = 0;
  for (auto it = s.rbegin(); it != s.rend(); ++it) {
    if (c && c % 3 == 0) out.insert(out.begin(), ',');
    out.insert(out.begin(), *it);
    ++c;
  }
  return out;
}

[[noreturn]] void die(const std::string& what) {
  std::cerr << "nf2bpf-bench: " << what << "\n";
  std::exit(2);
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  if (!f) die("cannot write " + path);
  f << text;
}

// ---- compiling a ruleset -------------------------------------------------------

struct Compiled {
  double translate_ms = 0, compile_ms = 0;
  Translation tr;
  policy::Policy pol;
  std::string errors;
};

Compiled compile_ruleset(const bench::Ruleset& rs) {
  Compiled c;
  double t0 = now_ms();
  std::vector<ir::Set> sets;
  diag::Diagnostics sd;
  if (rs.family == Family::DenySet) sets = frontend::parse_ipset_save({"bench.ipsets", rs.ipset_save}, sd);
  TranslateOptions opt;
  opt.from = "iptables";
  c.tr = translate_source({"bench.rules", rs.iptables}, opt, sets);
  double t1 = now_ms();
  diag::Diagnostics cd;
  if (!c.tr.diags.has_errors() && !sd.has_errors()) c.pol = policy::compile(c.tr, cd);
  double t2 = now_ms();
  c.translate_ms = t1 - t0;
  c.compile_ms = t2 - t1;
  for (const auto* d : {&sd, &c.tr.diags, &cd})
    for (const auto& x : d->all())
      if (x.severity == diag::Severity::Error) c.errors += diag::render(x) + "\n";
  if (c.errors.empty() && c.tr.count(caps::Fidelity::Unsupported))
    c.errors = std::to_string(c.tr.count(caps::Fidelity::Unsupported)) + " rules unsupported";
  return c;
}

// ---- the private namespace ---------------------------------------------------------

struct Env {
  std::unique_ptr<loader::Dataplane> dp;
  std::vector<loader::Interface> ifaces;
  std::vector<loader::AddrTypeEntry> addrtypes;
  uint32_t ifindex = 0;
  uint64_t mac = 0;
};

void sh(const std::string& cmd) {
  if (std::system(cmd.c_str()) != 0) die("failed: " + cmd);
}

Env make_env() {
  if (unshare(CLONE_NEWNET) != 0) die(std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno) + " (run as root)");
  // Only this process (and the commands it starts) lives in this namespace.
  sh("ip link set lo up");
  // A veth pair, both ends in this namespace (not every kernel has dummy).
  sh("ip link add bx1 type veth peer name bx0");
  sh("ip link set bx0 up");
  sh("ip link set bx1 address 02:00:00:00:00:02 up");
  sh("ip addr add 198.18.0.2/24 dev bx1");
  // kube-proxy makes service VIPs local (DNAT); here the VIP range is routed
  // locally so the services' packets take the INPUT path.
  sh("ip route add local 10.96.0.0/12 dev lo table local");
  Env e;
  auto ifs = loader::list_interfaces();
  auto types = loader::address_types();
  if (!ifs || !types) die("read the private namespace: " + (!ifs ? ifs.error() : types.error()).message());
  e.ifaces = *ifs;
  e.addrtypes = *types;
  // The local route above, as the loader's address-type table sees it.
  e.addrtypes.push_back({ir::v4_to_u128(0x0A600000), 96 + 12, ir::kAddrLocal});
  e.ifindex = if_nametoindex("bx1");
  e.mac = 0x020000000002ULL;
  auto dp = loader::Dataplane::create("");
  if (!dp) die("create a private dataplane: " + dp.error().message());
  e.dp = std::move(*dp);
  return e;
}

std::vector<uint8_t> frame_of(const bench::TestPacket& t, const Env& e) {
  verify::PacketSpec s;
  s.family = 4;
  s.saddr = ir::v4_to_u128(t.saddr);
  s.daddr = ir::v4_to_u128(t.daddr);
  s.proto = t.proto;
  s.sport = t.sport;
  s.dport = t.dport;
  s.tcp_flags = 0x02;  // SYN
  s.payload.assign(18, 0x5a);
  return verify::wrap_ethernet(verify::build_ip(s), 0x020000000001ULL, e.mac);
}

// ---- map memory ------------------------------------------------------------------

struct MapMem {
  uint64_t inner = 0;        // the live generation's own maps
  uint64_t fixed_share = 0;  // its half of the per-slot arrays (field classes, hooks, settings)
  std::map<std::string, uint64_t> by_map;
};

std::map<std::string, std::string> fdinfo(int fd) {
  std::map<std::string, std::string> m;
  std::ifstream f("/proc/self/fdinfo/" + std::to_string(fd));
  std::string line;
  while (std::getline(f, line)) {
    auto c = line.find(':');
    if (c == std::string::npos) continue;
    std::string k = line.substr(0, c), v = line.substr(c + 1);
    v.erase(0, v.find_first_not_of(" \t"));
    m[k] = v;
  }
  return m;
}

// Every BPF map this process holds a descriptor for (the private dataplane's
// outer and global maps), then the live slot's inner maps through the outers.
MapMem map_memory() {
  MapMem mm;
  std::vector<int> fds;
  for (const auto& de : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    auto target = std::filesystem::read_symlink(de.path(), ec);
    if (ec || target.string() != "anon_inode:bpf-map") continue;
    fds.push_back(std::stoi(de.path().filename().string()));
  }
  uint32_t live = 0;
  std::vector<std::pair<int, std::string>> outers;
  std::set<uint32_t> seen;  // a map can be open more than once (skeleton + loader)
  for (int fd : fds) {
    bpf_map_info info{};
    uint32_t len = sizeof info;
    if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) continue;
    if (!seen.insert(info.id).second) continue;
    std::string name = info.name;
    if (name == "nf_control") {
      uint32_t zero = 0;
      nf2bpf_control c{};
      if (bpf_map_lookup_elem(fd, &zero, &c) == 0) live = c.live & 1;
    }
    if (info.type == BPF_MAP_TYPE_ARRAY_OF_MAPS) outers.push_back({fd, name});
    if (name == "nf_small" || name == "nf_hooks" || name == "nf_cfg") {
      auto fi = fdinfo(fd);
      uint64_t b = std::stoull(fi.count("memlock") ? fi["memlock"] : "0");
      mm.fixed_share += b / 2;
    }
  }
  for (auto& [fd, name] : outers) {
    uint32_t id = 0;
    if (bpf_map_lookup_elem(fd, &live, &id) != 0 || !id) continue;
    int ifd = bpf_map_get_fd_by_id(id);
    if (ifd < 0) continue;
    auto fi = fdinfo(ifd);
    uint64_t b = std::stoull(fi.count("memlock") ? fi["memlock"] : "0");
    mm.by_map[name] = b;
    mm.inner += b;
    close(ifd);
  }
  return mm;
}

// ---- test runs ------------------------------------------------------------------------

struct RunResult {
  double ns = 0;  // median of the kernel's mean ns/run
  uint32_t retval = 0;
  std::string decided;  // "line L" or "policy", from the per-rule counters
  std::string error;
};

std::map<std::pair<bool, uint32_t>, uint64_t> counters(loader::Dataplane& dp) {
  std::map<std::pair<bool, uint32_t>, uint64_t> out;
  auto st = dp.status(true);
  if (!st) return out;
  for (const auto& c : st->counters) out[{c.policy, c.policy ? c.index : c.line}] += c.packets;
  return out;
}

RunResult measure(Env& e, loader::Prog prog, const std::vector<uint8_t>& frame, uint32_t repeat, int reps,
                  bool with_counters) {
  RunResult r;
  // A clean tracker, then a warm-up: an accepted packet creates its
  // connection here, so every measured run sees the same (established in
  // the tracker, still NEW to the rules: no reply was ever seen) state.
  (void)e.dp->flush_conntrack();
  loader::TestCtx ctx{e.ifindex, 0, 0, 1000};
  auto w = e.dp->test_run(prog, frame, ctx);
  if (!w) {
    r.error = w.error().message();
    return r;
  }
  auto before = with_counters ? counters(*e.dp) : decltype(counters(*e.dp)){};
  std::vector<double> ns;
  ctx.repeat = repeat;
  for (int i = 0; i < reps; ++i) {
    auto x = e.dp->test_run(prog, frame, ctx);
    if (!x) {
      r.error = x.error().message();
      return r;
    }
    ns.push_back(x->duration_ns);
    r.retval = x->retval;
  }
  r.ns = median(ns);
  if (with_counters) {
    auto after = counters(*e.dp);
    uint64_t best = 0;
    for (const auto& [k, v] : after) {
      uint64_t d = v - (before.count(k) ? before[k] : 0);
      if (d > best) {
        best = d;
        r.decided = k.first ? "policy" : "line " + std::to_string(k.second);
      }
    }
  }
  return r;
}

// Many packets, each matching a different rule, once each: the per-run time
// when the lookups' cache lines are not hot from the previous run.
double measure_spread(Env& e, const bench::Ruleset& rs, int& wrong) {
  std::vector<double> ns;
  (void)e.dp->flush_conntrack();
  wrong = 0;
  for (const auto& t : rs.spread) {
    auto x = e.dp->test_run(loader::Prog::Ingress, frame_of(t, e), loader::TestCtx{e.ifindex, 0, 0, 1});
    if (!x) continue;
    ns.push_back(x->duration_ns);
    if ((x->retval == 0) != t.accept) ++wrong;
  }
  double sum = 0;
  for (double v : ns) sum += v;
  return ns.empty() ? 0 : sum / (double)ns.size();
}

const char* tc_verdict(uint32_t rv) { return rv == 0 ? "ACCEPT" : rv == 2 ? "DROP" : "?"; }

// Source line of the last rule in the generated iptables text.
uint32_t last_rule_line(const bench::Ruleset& rs) {
  uint32_t line = 0, last = 0;
  std::istringstream in(rs.iptables);
  std::string l;
  while (std::getline(in, l)) {
    ++line;
    if (l.rfind("-A ", 0) == 0) last = line;
  }
  return last;
}

// ---- classifier ---------------------------------------------------------------------

struct Row {
  Family fam;
  size_t n;
  size_t rules = 0, entries = 0, tuples = 0, lpm = 0;
  bool xdp_stage = false;
  double translate_ms = 0, compile_ms = 0, install_ms = 0;
  RunResult match, nomatch, xdp;
  double spread_ns = 0;
  int spread_wrong = 0;
  bool match_ok = false, nomatch_ok = false;
  std::string expect_match, expect_nomatch;
  MapMem mem;
  std::string error;
};

int cmd_classifier(const std::string& out) {
  std::filesystem::create_directories(out);
  const bool q = quick();
  const uint32_t repeat = (uint32_t)env_num("BENCH_REPEAT", q ? 50000 : 200000);
  const int reps = (int)env_num("BENCH_REPS", q ? 3 : 5);
  std::vector<size_t> sizes =
      env_sizes("BENCH_CLASSIFIER_SIZES",
                q ? std::vector<size_t>{10, 1000, 100000} : std::vector<size_t>{10, 100, 1000, 10000, 100000});
  std::vector<Family> fams =
      env_families("BENCH_CLASSIFIER_FAMILIES", {Family::Kube, Family::HostFw, Family::Deny, Family::DenySet});
  Env e = make_env();
  std::vector<Row> rows;
  // Baseline: no rules at all (policy ACCEPT): parse, route, program overhead.
  double base_ns = 0;
  {
    auto rs = bench::generate(Family::Deny, 0, Mode::Classifier);
    auto c = compile_ruleset(rs);
    if (!c.errors.empty()) die("empty ruleset: " + c.errors);
    if (auto g = e.dp->install(c.pol, e.ifaces, e.addrtypes, {{"source", "bench-empty"}}); !g)
      die("install: " + g.error().message());
    base_ns = measure(e, loader::Prog::Ingress, frame_of(rs.nomatch, e), repeat, reps, false).ns;
  }
  for (Family f : fams) {
    for (size_t n : sizes) {
      Row r;
      r.fam = f;
      r.n = n;
      std::cerr << "classifier: " << bench::family_name(f) << " " << n << " rules\n";
      auto rs = bench::generate(f, n, Mode::Classifier, 4096);
      auto c = compile_ruleset(rs);
      r.translate_ms = c.translate_ms;
      r.compile_ms = c.compile_ms;
      if (!c.errors.empty()) {
        r.error = "does not compile: " + c.errors.substr(0, 300);
        rows.push_back(r);
        continue;
      }
      r.rules = c.pol.rules.size();
      r.entries = c.pol.entries.size();
      r.tuples = c.pol.tuples.size();
      r.lpm = c.pol.lpm.size();
      r.xdp_stage = c.pol.cfg.xdp_stage != 0;
      double t0 = now_ms();
      auto g = e.dp->install(c.pol, e.ifaces, e.addrtypes, {{"source", "bench"}});
      r.install_ms = now_ms() - t0;
      if (!g) {
        r.error = "install: " + g.error().message();
        rows.push_back(r);
        continue;
      }
      r.mem = map_memory();
      r.match = measure(e, loader::Prog::Ingress, frame_of(rs.match, e), repeat, reps, true);
      r.nomatch = measure(e, loader::Prog::Ingress, frame_of(rs.nomatch, e), repeat, reps, true);
      r.xdp = measure(e, loader::Prog::Xdp, frame_of(rs.match, e), repeat, reps, false);
      if (!rs.spread.empty()) r.spread_ns = measure_spread(e, rs, r.spread_wrong);
      uint32_t last = last_rule_line(rs);
      r.expect_match = rs.match.accept ? "ACCEPT" : "DROP";
      r.expect_nomatch = rs.nomatch.accept ? "ACCEPT" : "DROP";
      r.match_ok = r.match.error.empty() && tc_verdict(r.match.retval) == r.expect_match &&
                   r.match.decided == "line " + std::to_string(last);
      r.nomatch_ok =
          r.nomatch.error.empty() && tc_verdict(r.nomatch.retval) == r.expect_nomatch && r.nomatch.decided == "policy";
      rows.push_back(r);
    }
  }

  // ---- tables
  std::ostringstream md, tsv, mem;
  md << "## Classifier cost (BPF_PROG_TEST_RUN, TC ingress, ns/packet)\n\n"
     << "Median of " << reps << " runs of `repeat = " << repeat << "`; the kernel's mean time per run. "
     << "Baseline with no rules at all (parse, route, program overhead): **" << fmt(base_ns) << " ns**.\n"
     << "*match*: a packet decided by the last rule; *no match*: a packet no rule matches (the chain "
        "policy decides). *rotating*: 4,096 packets each matching a random rule, run once each "
        "(caches not warmed by the previous identical run; includes the timer's own overhead). "
        "*xdp*: the XDP program on the matching packet (*pass-only*: the compiled policy has no XDP "
        "early-drop stage, so XDP hands every packet to TC). Verdicts and the deciding rule are checked "
        "against the per-rule counters: ✓ means the expected rule (or the policy) decided.\n\n"
     << "| family | rules | compiled rules | entries | tuples | LPM prefixes | match ns | no match ns | rotating ns | "
        "xdp ns | verdicts |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n";
  tsv << "family\tn\trules\tentries\ttuples\tlpm\tmatch_ns\tnomatch_ns\tspread_ns\txdp_ns\ttranslate_ms\tcompile_ms\t"
         "install_ms\tmem_inner\tmem_fixed\tok\txdp_stage\n";
  for (const auto& r : rows) {
    std::string fam = bench::family_name(r.fam);
    if (!r.error.empty()) {
      md << "| " << fam << " | " << thousands(r.n) << " | not measured: " << r.error << " ||||||||\n";
      tsv << fam << "\t" << r.n << "\tNA\tNA\tNA\tNA\tNA\tNA\tNA\tNA\t" << fmt(r.translate_ms) << "\t"
          << fmt(r.compile_ms) << "\tNA\tNA\tNA\t0\n";
      continue;
    }
    std::string v =
        std::string(r.match_ok ? "✓" : "✗ ") +
        (r.match_ok ? "" : std::string(tc_verdict(r.match.retval)) + " by " + r.match.decided) + " / " +
        (r.nomatch_ok ? "✓" : "✗ " + std::string(tc_verdict(r.nomatch.retval)) + " by " + r.nomatch.decided);
    if (r.spread_wrong) v += " (rotating: " + std::to_string(r.spread_wrong) + " wrong verdicts)";
    md << "| " << fam << " | " << thousands(r.n) << " | " << thousands(r.rules) << " | " << thousands(r.entries)
       << " | " << r.tuples << " | " << thousands(r.lpm) << " | " << fmt(r.match.ns) << " | " << fmt(r.nomatch.ns)
       << " | " << (r.spread_ns ? fmt(r.spread_ns) : "–") << " | " << fmt(r.xdp.ns)
       << (r.xdp_stage ? "" : " (pass-only)") << " | " << v << " |\n";
    tsv << fam << "\t" << r.n << "\t" << r.rules << "\t" << r.entries << "\t" << r.tuples << "\t" << r.lpm << "\t"
        << fmt(r.match.ns) << "\t" << fmt(r.nomatch.ns) << "\t" << (r.spread_ns ? fmt(r.spread_ns) : "NA") << "\t"
        << fmt(r.xdp.ns) << "\t" << fmt(r.translate_ms) << "\t" << fmt(r.compile_ms) << "\t" << fmt(r.install_ms)
        << "\t" << r.mem.inner << "\t" << r.mem.fixed_share << "\t" << (r.match_ok && r.nomatch_ok && !r.spread_wrong)
        << "\t" << r.xdp_stage << "\n";
  }
  // Ratios: largest size over smallest.
  md << "\n### Flatness: ns(" << thousands(sizes.back()) << " rules) ÷ ns(" << sizes.front()
     << " rules), target ≤ 1.25\n\n| family | match | no match | rotating |\n|---|---:|---:|---:|\n";
  std::ostringstream ratios;
  for (Family f : fams) {
    const Row *lo = nullptr, *hi = nullptr;
    for (const auto& r : rows)
      if (r.fam == f && r.error.empty()) {
        if (r.n == sizes.front()) lo = &r;
        if (r.n == sizes.back()) hi = &r;
      }
    std::string fam = bench::family_name(f);
    if (!lo || !hi) {
      md << "| " << fam << " | not measured | | |\n";
      ratios << fam << "\tNA\tNA\tNA\n";
      continue;
    }
    double a = hi->match.ns / lo->match.ns, b = hi->nomatch.ns / lo->nomatch.ns;
    double s = lo->spread_ns > 0 ? hi->spread_ns / lo->spread_ns : 0;
    auto mark = [](double x) { return fmt(x, 2) + (x <= 1.25 ? "" : " ✗"); };
    md << "| " << fam << " | " << mark(a) << " | " << mark(b) << " | " << (s ? mark(s) : "–") << " |\n";
    ratios << fam << "\t" << fmt(a, 3) << "\t" << fmt(b, 3) << "\t" << (s ? fmt(s, 3) : "NA") << "\n";
  }

  // Memory.
  mem << "## BPF map memory per rule\n\n"
      << "Bytes the kernel charges (`memlock` in the maps' fdinfo) for the live generation's own maps "
         "(rule-entry hash, LPM trie, rules, tuples, per-CPU counters, stages, interfaces, "
         "statements, limits), divided by the number of source rules (for denyset: set entries). "
         "Fixed per generation whatever the ruleset (field-class arrays, hook table, settings): "
      << (rows.empty() ? std::string("?") : thousands(rows.front().mem.fixed_share)) << " bytes. "
      << "The previous generation, kept for rollback, costs as much again.\n\n"
      << "| family | rules | generation maps (bytes) | bytes/rule | rule entries (hash) | LPM trie | "
         "counters (per-CPU) | rules | other |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& r : rows) {
    if (!r.error.empty()) continue;
    uint64_t named = 0;
    auto get = [&](const char* k) {
      if (!r.mem.by_map.count(k)) return std::string("?");
      named += r.mem.by_map.at(k);
      return thousands(r.mem.by_map.at(k));
    };
    mem << "| " << bench::family_name(r.fam) << " | " << thousands(r.n) << " | " << thousands(r.mem.inner) << " | "
        << (r.n ? fmt((double)r.mem.inner / (double)r.n, 0) : "–") << " | " << get("nf_entries") << " | "
        << get("nf_lpm") << " | " << get("nf_counters") << " | " << get("nf_rules") << " | ";
    mem << thousands(r.mem.inner - named) << " |\n";
  }
  write_file(out + "/classifier.md", md.str());
  write_file(out + "/classifier.tsv", tsv.str());
  write_file(out + "/classifier-ratios.tsv", ratios.str());
  write_file(out + "/memory.md", mem.str());
  write_file(out + "/classifier-baseline.txt", fmt(base_ns) + "\n");
  std::cout << md.str() << "\n" << mem.str();
  return 0;
}

// ---- NAT ------------------------------------------------------------------------------
//
// What the kernel does with NAT depends on the connection, not only on the
// rules: the nat rules run for a connection's first packet only, later
// packets reuse the binding stored with it. So three costs per ruleset size:
//   first   every measured packet opens a new connection through the DNAT
//           rule: a different source (port, then address) per run, one
//           BPF_PROG_TEST_RUN with repeat = 1 each (`repeat` would run the
//           same packet again, which is then no longer first). The tracker
//           is flushed (untimed) after every batch of flows, so it never
//           holds more than one batch and never evicts.
//   est     the same flow again after its first packet.
//   filter  the same N matches as filter rules (-j ACCEPT, no NAT).
// repeat = 1 includes the kernel timer's own cost per run, so est and
// filter are measured that way too (same method: differences are the
// packet's own) and with `repeat` (hot, no timer overhead per packet).

// Destination address and port of an IPv4 UDP/TCP frame.
bool frame_dest(const std::vector<uint8_t>& f, uint32_t& daddr, uint16_t& dport) {
  if (f.size() < 14 + 20 + 4 || f[12] != 0x08 || f[13] != 0x00) return false;
  const uint8_t* ip = f.data() + 14;
  size_t ihl = (size_t)(ip[0] & 15) * 4;
  if (ihl < 20 || f.size() < 14 + ihl + 4) return false;
  daddr = (uint32_t)ip[16] << 24 | (uint32_t)ip[17] << 16 | (uint32_t)ip[18] << 8 | ip[19];
  dport = (uint16_t)(ip[ihl + 2] << 8 | ip[ihl + 3]);
  return true;
}

uint32_t ct_map_size() {
  uint32_t size = 0;
  for (const auto& de : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    if (std::filesystem::read_symlink(de.path(), ec).string() != "anon_inode:bpf-map" || ec) continue;
    bpf_map_info info{};
    uint32_t len = sizeof info;
    if (bpf_obj_get_info_by_fd(std::stoi(de.path().filename().string()), &info, &len) == 0 &&
        std::string(info.name) == "nf_ct")
      size = info.max_entries;
  }
  return size;
}

struct Series {
  double median = 0, mean = 0;
  size_t runs = 0, wrong = 0;  // wrong: verdict or destination not the expected one
  size_t max_conns = 0;        // tracked connections at the end of a batch (largest)
  std::string error;
};

// `flows` packets, one run each: new connections (a different source per
// packet) when `vary`, else the same packet after one untimed first run.
Series run_once_each(Env& e, const bench::TestPacket& base, size_t flows, bool vary, uint32_t want_daddr,
                     uint16_t want_dport) {
  Series s;
  const size_t batch = 4096;
  std::vector<double> ns;
  ns.reserve(flows);
  loader::TestCtx ctx{e.ifindex, 0, 0, 1};
  auto check = [&](const loader::TestResult& x) {
    uint32_t d = 0;
    uint16_t p = 0;
    if (x.retval != 0 || !frame_dest(x.data, d, p) || d != want_daddr || p != want_dport) ++s.wrong;
  };
  auto fixed = frame_of(base, e);
  for (size_t done = 0; done < flows && s.error.empty();) {
    (void)e.dp->flush_conntrack();
    if (!vary) {
      auto w = e.dp->test_run(loader::Prog::Ingress, fixed, ctx);
      if (!w) s.error = w.error().message();
    }
    std::vector<std::vector<uint8_t>> frames;
    size_t nb = std::min(batch, flows - done);
    for (size_t i = 0; i < nb && vary; ++i) {
      bench::TestPacket t = base;
      size_t k = done + i;
      t.sport = (uint16_t)(1024 + k % 64000);
      t.saddr = base.saddr + (uint32_t)(k / 64000);
      frames.push_back(frame_of(t, e));
    }
    for (size_t i = 0; i < nb && s.error.empty(); ++i) {
      auto x = e.dp->test_run(loader::Prog::Ingress, vary ? frames[i] : fixed, ctx);
      if (!x) {
        s.error = x.error().message();
        break;
      }
      ns.push_back(x->duration_ns);
      check(*x);
    }
    if (auto c = e.dp->connections()) s.max_conns = std::max(s.max_conns, c->size());
    done += nb;
  }
  s.runs = ns.size();
  s.median = median(ns);
  double sum = 0;
  for (double v : ns) sum += v;
  s.mean = ns.empty() ? 0 : sum / (double)ns.size();
  return s;
}

struct NatRow {
  size_t n = 0;
  size_t nats = 0;  // NAT ranges in the compiled policy
  std::string fidelity, error;
  Series first, est1, nomatch, filter1, base1;
  RunResult est, filter;
  size_t est_wrong = 0;
};

int cmd_nat(const std::string& out) {
  std::filesystem::create_directories(out);
  const bool q = quick();
  const uint32_t repeat = (uint32_t)env_num("BENCH_REPEAT", q ? 50000 : 200000);
  const int reps = (int)env_num("BENCH_REPS", q ? 3 : 5);
  const size_t flows = (size_t)env_num("BENCH_NAT_FLOWS", q ? 8192 : 32768);
  std::vector<size_t> sizes =
      env_sizes("BENCH_NAT_SIZES", q ? std::vector<size_t>{10, 10000} : std::vector<size_t>{10, 1000, 10000, 100000});
  Env e = make_env();
  const uint32_t ct_size = ct_map_size();
  std::vector<NatRow> rows;
  // The repeat = 1 method's floor: no rules at all, a new source each run.
  Series floor1;
  {
    auto rs = bench::generate(Family::Deny, 0, Mode::Classifier);
    auto c = compile_ruleset(rs);
    if (!c.errors.empty()) die("empty ruleset: " + c.errors);
    if (auto g = e.dp->install(c.pol, e.ifaces, e.addrtypes, {{"source", "bench-empty"}}); !g)
      die("install: " + g.error().message());
    floor1 = run_once_each(e, rs.nomatch, flows, true, rs.nomatch.daddr, rs.nomatch.dport);
  }
  for (size_t n : sizes) {
    NatRow r;
    r.n = n;
    std::cerr << "nat: " << n << " rules\n";
    auto rs = bench::generate(Family::Nat, n, Mode::Classifier);
    auto c = compile_ruleset(rs);
    if (!c.errors.empty()) {
      r.error = "does not compile: " + c.errors.substr(0, 300);
      rows.push_back(r);
      continue;
    }
    // Every nat rule must run in the dataplane, not stay in netfilter.
    size_t exact = c.tr.count(caps::Fidelity::Exact);
    r.fidelity = std::to_string(exact) + "/" + std::to_string(n) + " exact";
    if (exact != n) {
      r.error = "not all nat rules translate exactly: " + r.fidelity;
      rows.push_back(r);
      continue;
    }
    r.nats = c.pol.nats.size();
    if (auto g = e.dp->install(c.pol, e.ifaces, e.addrtypes, {{"source", "bench-nat"}}); !g) {
      r.error = "install: " + g.error().message();
      rows.push_back(r);
      continue;
    }
    r.first = run_once_each(e, rs.match, flows, true, rs.nat_daddr, rs.nat_dport);
    r.est1 = run_once_each(e, rs.match, flows, false, rs.nat_daddr, rs.nat_dport);
    r.nomatch = run_once_each(e, rs.nomatch, flows, true, rs.nomatch.daddr, rs.nomatch.dport);
    r.est = measure(e, loader::Prog::Ingress, frame_of(rs.match, e), repeat, reps, false);
    {
      // measure() leaves the flow established; one more run shows the frame it leaves.
      auto x = e.dp->test_run(loader::Prog::Ingress, frame_of(rs.match, e), loader::TestCtx{e.ifindex, 0, 0, 1});
      uint32_t d = 0;
      uint16_t p = 0;
      if (!x || x->retval != 0 || !frame_dest(x->data, d, p) || d != rs.nat_daddr || p != rs.nat_dport) r.est_wrong = 1;
    }
    bench::Ruleset fo = rs;
    fo.iptables = rs.iptables_filter;
    auto cf = compile_ruleset(fo);
    if (!cf.errors.empty()) {
      r.error = "filter-only twin does not compile: " + cf.errors.substr(0, 300);
      rows.push_back(r);
      continue;
    }
    if (auto g = e.dp->install(cf.pol, e.ifaces, e.addrtypes, {{"source", "bench-nat-filter"}}); !g) {
      r.error = "install filter-only: " + g.error().message();
      rows.push_back(r);
      continue;
    }
    r.filter1 = run_once_each(e, rs.match, flows, true, rs.match.daddr, rs.match.dport);
    r.filter = measure(e, loader::Prog::Ingress, frame_of(rs.match, e), repeat, reps, false);
    rows.push_back(r);
  }

  std::ostringstream md, tsv;
  auto ok = [](const Series& s) {
    return s.error.empty() ? (s.wrong ? "✗ " + std::to_string(s.wrong) + " wrong" : std::string("✓")) : "✗ " + s.error;
  };
  md << "## NAT cost (BPF_PROG_TEST_RUN, TC ingress, ns/packet)\n\n"
     << "Ruleset: N kube-proxy-like DNAT rules in nat PREROUTING (`-d VIP -p tcp|udp --dport P -j DNAT "
        "--to-destination BACKEND:PORT`), backends local, no filter rules; the packet is UDP and matches "
        "the last rule. *first*: every packet opens a new connection (source port, then source address, "
        "differs per packet), so the nat rules run and a binding is made; "
     << thousands(flows)
     << " packets, one `BPF_PROG_TEST_RUN` each (`repeat = 1`), median (mean in brackets). "
        "*no nat match*: the same, for a packet no nat rule matches (the identity binding). "
        "*established*: the same flow after its first packet (its binding reused, no rule runs), "
        "measured the same way and with `repeat = "
     << repeat << "` (median of " << reps
     << " runs). *filter-only*: the same N matches as filter rules (`-j ACCEPT`, policy DROP, no nat "
        "table), the same packet, both ways. With `repeat = 1` the kernel's timer is read around every "
        "single run: the *floor* (no rules at all, a new source per packet) is **"
     << fmt(floor1.median) << " ns** (mean " << fmt(floor1.mean)
     << "), so differences between the `repeat = 1` columns are the packets' own costs. "
        "Conntrack: nf2bpf's tracker is an LRU hash of "
     << thousands(ct_size)
     << " entries (a NATed connection takes two: the connection and its reply-tuple alias); it is "
        "flushed, untimed, after every 4,096 new connections, so it never evicts "
        "(*conns* is the most it held). ✓: every packet accepted and leaving with the DNAT target as "
        "destination (read from the frame the program returns); for *no nat match* and *filter-only* "
        "the destination unchanged.\n\n"
     << "| nat rules | first ns | no nat match ns | established ns | established ns (repeat) | filter-only ns | "
        "filter-only ns (repeat) | first − established | conns | checks |\n"
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n";
  tsv << "n\tfirst_ns\tfirst_mean_ns\tnomatch_ns\test_ns\test_mean_ns\test_repeat_ns\tfilter_ns\tfilter_mean_ns\t"
         "filter_repeat_ns\tfloor_ns\tflows\tconns\tct_size\tok\n";
  auto both = [](const Series& s) { return fmt(s.median) + " (" + fmt(s.mean) + ")"; };
  for (const auto& r : rows) {
    if (!r.error.empty()) {
      md << "| " << thousands(r.n) << " | not measured: " << r.error << " |||||||||\n";
      tsv << r.n << "\tNA\tNA\tNA\tNA\tNA\tNA\tNA\tNA\tNA\t" << fmt(floor1.median) << "\t" << flows << "\tNA\t"
          << ct_size << "\t0\n";
      continue;
    }
    bool all = r.first.error.empty() && !r.first.wrong && r.est1.error.empty() && !r.est1.wrong &&
               r.nomatch.error.empty() && !r.nomatch.wrong && r.filter1.error.empty() && !r.filter1.wrong &&
               r.est.error.empty() && r.filter.error.empty() && !r.est_wrong;
    std::string checks = all ? "✓ (" + r.fidelity + ")"
                             : "first " + ok(r.first) + ", est " + ok(r.est1) + (r.est_wrong ? " (repeat ✗)" : "") +
                                   ", no match " + ok(r.nomatch) + ", filter " + ok(r.filter1) +
                                   (r.est.error.empty() ? "" : ", " + r.est.error) +
                                   (r.filter.error.empty() ? "" : ", " + r.filter.error);
    md << "| " << thousands(r.n) << " | " << both(r.first) << " | " << both(r.nomatch) << " | " << both(r.est1) << " | "
       << fmt(r.est.ns) << " | " << both(r.filter1) << " | " << fmt(r.filter.ns) << " | "
       << fmt(r.first.median - r.est1.median) << " | " << thousands(r.first.max_conns) << " | " << checks << " |\n";
    tsv << r.n << "\t" << fmt(r.first.median) << "\t" << fmt(r.first.mean) << "\t" << fmt(r.nomatch.median) << "\t"
        << fmt(r.est1.median) << "\t" << fmt(r.est1.mean) << "\t" << fmt(r.est.ns) << "\t" << fmt(r.filter1.median)
        << "\t" << fmt(r.filter1.mean) << "\t" << fmt(r.filter.ns) << "\t" << fmt(floor1.median) << "\t" << flows
        << "\t" << r.first.max_conns << "\t" << ct_size << "\t" << all << "\n";
  }
  write_file(out + "/nat-classifier.md", md.str());
  write_file(out + "/nat-classifier.tsv", tsv.str());
  std::cout << md.str();
  return 0;
}

// ---- control plane --------------------------------------------------------------------

// Two costs every install pays whatever the ruleset, measured on scratch
// maps with the same kernel operations the loader performs: putting a new
// inner map into a generation slot of an ARRAY_OF_MAPS (the loader does it
// once per per-generation map), and filling one generation's half of the
// field-class array (NF_SMALL_TOTAL u32 entries, batches of 65,536).
struct Anatomy {
  double outer_update_ms = -1, small_fill_ms = -1;
  int outers = 0;
};

Anatomy install_anatomy(int reps) {
  Anatomy a;
  a.outers = 9;  // nf_stages, nf_tuples, nf_rules, nf_stmts, nf_limits, nf_counters, nf_entries, nf_lpm, nf_ifaces
  bpf_map_create_opts io{};
  io.sz = sizeof io;
  io.map_flags = BPF_F_INNER_MAP;
  int tmpl = bpf_map_create(BPF_MAP_TYPE_ARRAY, "bench_tmpl", 4, 4, 1, &io);
  bpf_map_create_opts oo{};
  oo.sz = sizeof oo;
  oo.inner_map_fd = tmpl;
  int outer = tmpl >= 0 ? bpf_map_create(BPF_MAP_TYPE_ARRAY_OF_MAPS, "bench_outer", 4, 4, 2, &oo) : -1;
  if (outer >= 0) {
    std::vector<double> t;
    for (int i = 0; i < reps * 2 + 1; ++i) {
      int inner = bpf_map_create(BPF_MAP_TYPE_ARRAY, "bench_inner", 4, 4, 16, &io);
      if (inner < 0) break;
      uint32_t k = (uint32_t)(i & 1);
      double t0 = now_ms();
      int rc = bpf_map_update_elem(outer, &k, &inner, BPF_ANY);
      double t1 = now_ms();
      close(inner);
      if (rc == 0) t.push_back(t1 - t0);
    }
    if (!t.empty()) a.outer_update_ms = median(t);
    close(outer);
  }
  if (tmpl >= 0) close(tmpl);
  bpf_map_create_opts so{};
  so.sz = sizeof so;
  int small = bpf_map_create(BPF_MAP_TYPE_ARRAY, "bench_small", 4, 4, 2 * NF_SMALL_TOTAL, &so);
  if (small >= 0) {
    std::vector<uint32_t> keys(NF_SMALL_TOTAL), vals(NF_SMALL_TOTAL, 1);
    std::vector<double> t;
    for (int r = 0; r < reps; ++r) {
      uint32_t base = (uint32_t)(r & 1) * NF_SMALL_TOTAL;
      for (uint32_t i = 0; i < NF_SMALL_TOTAL; ++i) keys[i] = base + i;
      double t0 = now_ms();
      bool ok = true;
      for (size_t off = 0; off < keys.size() && ok; off += 65536) {
        uint32_t count = (uint32_t)std::min<size_t>(65536, keys.size() - off);
        LIBBPF_OPTS(bpf_map_batch_opts, bo);
        ok = bpf_map_update_batch(small, keys.data() + off, vals.data() + off, &count, &bo) == 0;
      }
      double t1 = now_ms();
      if (ok) t.push_back(t1 - t0);
    }
    if (!t.empty()) a.small_fill_ms = median(t);
    close(small);
  }
  return a;
}

int cmd_control(const std::string& out) {
  std::filesystem::create_directories(out);
  const bool q = quick();
  const int reps = (int)env_num("BENCH_REPS", q ? 3 : 5);
  std::vector<size_t> sizes =
      env_sizes("BENCH_CONTROL_SIZES", q ? std::vector<size_t>{1000, 10000} : std::vector<size_t>{1000, 10000, 100000});
  Env e = make_env();
  std::ostringstream md, tsv;
  md << "## Control plane (in process)\n\n"
     << "Median of " << reps
     << " runs. *translate*: parse iptables-save text and run the passes "
        "(`translate_source`); *compile*: IR → Policy (`policy::compile`); *install*: create and fill "
        "the spare generation's maps and switch it live (`Dataplane::install`, private unattached "
        "instance); *swap*: make the other generation live (`Dataplane::rollback`: one map update "
        "plus reading its metadata).\n\n"
     << "| family | rules | translate ms | compile ms | install (load + swap) ms | swap ms |\n"
        "|---|---:|---:|---:|---:|---:|\n";
  tsv << "family\tn\ttranslate_ms\tcompile_ms\tinstall_ms\tswap_ms\n";
  auto fams = env_families("BENCH_CONTROL_FAMILIES", {Family::Kube, Family::HostFw, Family::Deny});
  for (Family f : fams) {
    for (size_t n : sizes) {
      std::cerr << "control: " << bench::family_name(f) << " " << n << " rules\n";
      auto rs = bench::generate(f, n, Mode::Classifier);
      std::vector<double> tr, co, in, sw;
      std::string err;
      for (int i = 0; i < reps && err.empty(); ++i) {
        auto c = compile_ruleset(rs);
        if (!c.errors.empty()) {
          err = c.errors.substr(0, 200);
          break;
        }
        tr.push_back(c.translate_ms);
        co.push_back(c.compile_ms);
        double t0 = now_ms();
        auto g = e.dp->install(c.pol, e.ifaces, e.addrtypes, {{"source", "bench"}});
        double t1 = now_ms();
        if (!g) {
          err = g.error().message();
          break;
        }
        in.push_back(t1 - t0);
        if (i > 0) {  // a previous generation exists
          double s0 = now_ms();
          auto rb = e.dp->rollback();
          double s1 = now_ms();
          if (rb) sw.push_back(s1 - s0);
          (void)e.dp->rollback();  // back to the new one
        }
      }
      std::string fam = bench::family_name(f);
      if (!err.empty()) {
        md << "| " << fam << " | " << thousands(n) << " | not measured: " << err << " ||||\n";
        tsv << fam << "\t" << n << "\tNA\tNA\tNA\tNA\n";
        continue;
      }
      md << "| " << fam << " | " << thousands(n) << " | " << fmt(median(tr)) << " | " << fmt(median(co)) << " | "
         << fmt(median(in)) << " | " << fmt(median(sw), 3) << " |\n";
      tsv << fam << "\t" << n << "\t" << fmt(median(tr), 2) << "\t" << fmt(median(co), 2) << "\t" << fmt(median(in), 2)
          << "\t" << fmt(median(sw), 4) << "\n";
    }
  }
  // One-rule change in a 10,000-rule policy: nf2bpf has no incremental
  // path, so the change costs a full translate + compile + install.
  std::ostringstream ch;
  ch << "family\tn\ttranslate_ms\tcompile_ms\tinstall_ms\ttotal_ms\n";
  md << "\n### One-rule change in a 10,000-rule policy (nf2bpf, in process)\n\n"
     << "The rule in the middle of the ruleset changes (kube: a service gets a new port; hostfw: a "
        "rule is replaced; deny: a prefix is replaced). nf2bpf re-translates, re-compiles and writes a "
        "whole new generation (there is no incremental update path); median of "
     << reps << " changes, alternating between the two versions.\n\n"
     << "| family | translate ms | compile ms | install ms | total ms |\n|---|---:|---:|---:|---:|\n";
  for (Family f : fams) {
    auto rs = bench::generate(f, 10000, Mode::Classifier);
    bench::Ruleset changed = rs;
    changed.iptables = rs.iptables_changed;
    std::vector<double> tr, co, in, tot;
    std::string err;
    for (int i = 0; i < reps + 1 && err.empty(); ++i) {
      double t0 = now_ms();
      auto c = compile_ruleset(i % 2 ? changed : rs);
      if (!c.errors.empty()) {
        err = c.errors.substr(0, 200);
        break;
      }
      auto g = e.dp->install(c.pol, e.ifaces, e.addrtypes, {{"source", "bench"}});
      double t1 = now_ms();
      if (!g) {
        err = g.error().message();
        break;
      }
      if (i == 0) continue;  // the first install sets the baseline
      tr.push_back(c.translate_ms);
      co.push_back(c.compile_ms);
      in.push_back(t1 - t0 - c.translate_ms - c.compile_ms);
      tot.push_back(t1 - t0);
    }
    std::string fam = bench::family_name(f);
    if (!err.empty()) {
      md << "| " << fam << " | not measured: " << err << " |||\n";
      ch << fam << "\t10000\tNA\tNA\tNA\tNA\n";
      continue;
    }
    md << "| " << fam << " | " << fmt(median(tr)) << " | " << fmt(median(co)) << " | " << fmt(median(in)) << " | "
       << fmt(median(tot)) << " |\n";
    ch << fam << "\t10000\t" << fmt(median(tr), 2) << "\t" << fmt(median(co), 2) << "\t" << fmt(median(in), 2) << "\t"
       << fmt(median(tot), 2) << "\n";
  }
  Anatomy an = install_anatomy(reps);
  md << "\n### Fixed costs inside every install\n\n"
     << "Measured on scratch maps with the kernel operations the loader performs (median of " << reps
     << "): an install puts " << an.outers << " new inner maps into generation slots of ARRAY_OF_MAPS "
     << "outers (the kernel waits for an RCU grace period after each such update) and fills "
     << thousands(NF_SMALL_TOTAL) << " field-class entries.\n\n"
     << "| operation | ms |\n|---|---:|\n"
     << "| one ARRAY_OF_MAPS slot update | " << (an.outer_update_ms < 0 ? "not measured" : fmt(an.outer_update_ms, 2))
     << " |\n"
     << "| × " << an.outers << " per install | "
     << (an.outer_update_ms < 0 ? "not measured" : fmt(an.outer_update_ms * an.outers, 1)) << " |\n"
     << "| field-class array fill (" << thousands(NF_SMALL_TOTAL) << " entries) | "
     << (an.small_fill_ms < 0 ? "not measured" : fmt(an.small_fill_ms, 1)) << " |\n";
  write_file(out + "/install-anatomy.tsv", "outer_update_ms\touters\tsmall_fill_ms\n" + fmt(an.outer_update_ms, 3) +
                                               "\t" + std::to_string(an.outers) + "\t" + fmt(an.small_fill_ms, 2) +
                                               "\n");
  write_file(out + "/control-nf2bpf.md", md.str());
  write_file(out + "/control-nf2bpf.tsv", tsv.str());
  write_file(out + "/change-nf2bpf.tsv", ch.str());
  std::cout << md.str();
  return 0;
}

// ---- gen ------------------------------------------------------------------------------

int cmd_gen(const std::string& family, const std::string& n, const std::string& mode, const std::string& dir) {
  Family f;
  if (!bench::parse_family(family, f)) die("unknown family " + family);
  Mode m = mode == "e2e" ? Mode::E2E : Mode::Classifier;
  auto rs = bench::generate(f, std::stoul(n), m);
  std::filesystem::create_directories(dir);
  write_file(dir + "/iptables.rules", rs.iptables);
  write_file(dir + "/nft.nft", rs.nft_plain);
  if (!rs.nft_set.empty()) write_file(dir + "/nft-set.nft", rs.nft_set);
  if (!rs.iptables_set.empty()) write_file(dir + "/iptables-set.rules", rs.iptables_set);
  if (!rs.iptables_filter.empty()) write_file(dir + "/iptables-filter.rules", rs.iptables_filter);
  if (!rs.ipset_save.empty()) write_file(dir + "/ipset.save", rs.ipset_save);
  if (!rs.iptables_changed.empty()) {
    write_file(dir + "/iptables-changed.rules", rs.iptables_changed);
    write_file(dir + "/nft-changed.nft", rs.nft_plain_changed);
    write_file(dir + "/changed-pos", std::to_string(rs.changed_pos) + "\n");
    write_file(dir + "/changed-rule", rs.changed_rule_ipt + "\n");
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> a(argv + 1, argv + argc);
  if (a.size() == 5 && a[0] == "gen") return cmd_gen(a[1], a[2], a[3], a[4]);
  if (a.size() == 2 && a[0] == "classifier") return cmd_classifier(a[1]);
  if (a.size() == 2 && a[0] == "control") return cmd_control(a[1]);
  if (a.size() == 2 && a[0] == "nat") return cmd_nat(a[1]);
  std::cerr << "usage: nf2bpf-bench gen FAMILY N e2e|classifier DIR\n"
               "       nf2bpf-bench classifier OUTDIR\n"
               "       nf2bpf-bench control OUTDIR\n"
               "       nf2bpf-bench nat OUTDIR\n";
  return 2;
}
