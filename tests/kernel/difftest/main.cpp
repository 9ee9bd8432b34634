// nf2bpf_difftest: the kernel-differential test. For each seeded random
// ruleset, two identical testbeds are built; one loads the ruleset with
// iptables-restore/ip6tables-restore (or `nft -f` with --reference nft), the
// other with `nf2bpf apply` of the same text; the same
// packets go into both and what each lets through is compared packet by
// packet. Any disagreement fails the run and prints the seed to replay it.
//
//   nf2bpf_difftest --nf2bpf PATH [--seed N] [--cases N] [--packets N]
//                   [--mode host|router|loopback|nat|nat-host] [--family 4|6]
//                   [--reference iptables|nft] [--verbose] [--strict-tcp] [--dump] [--ruleset FILE]
//                   [--nat-ranges] [--mutate] [--reject]
// --strict-tcp counts a stray TCP segment on a flow the case already opened
// as a disagreement when the engines differ on it (by default it is printed
// as KNOWN: the kernel judges it by window tracking, issue 14).
// --reject: some rules REJECT (every --reject-with), and the answers the
// sender gets (ICMP errors, TCP RSTs) are compared byte for byte as well,
// apart from the fields the kernel fills at random (IPv4 ID, IPv6 flow label).
// --dump prints the generated rulesets (one per case) and exits; --ruleset FILE
// replaces each generated ruleset with FILE (same packets), to minimise one.
// --mode nat / nat-host: NAT rulesets and flows with replies (nat.h); what
// arrives is compared header by header. --nat-ranges adds address/port ranges
// and --random/--persistent flags, compared loosely (inside the rule's range).
// Hidden, to prove the harness: --self-check makes both testbeds netfilter;
// --mutate makes the second one load the ruleset with one DNAT/REDIRECT port
// changed (it must report DIFFs).
// NF2BPF_DIFFTEST_SCALE=N (the nightly run) multiplies --cases by N.
// Exit: 0 no disagreement, 1 disagreements, 2 harness error, 77 not root.
#include <arpa/inet.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <set>
#include <string>

#include "tests/kernel/difftest/gen.h"
#include "tests/kernel/difftest/nat.h"
#include "tests/kernel/difftest/testbed.h"

using namespace nf2bpf::difftest;

namespace {

struct Options {
  std::string bin;
  uint64_t seed = 0;
  int cases = 10;
  int packets = 200;
  Mode mode = Mode::Host;
  int family = 4;
  Reference ref = Reference::Iptables;
  bool verbose = false;
  bool strict_tcp = false;  // count stray segments on tracked flows (window tracking) as disagreements
  bool dump = false;        // print the generated rulesets and stop
  bool reject = false;      // REJECT rules; answers compared
  std::string ruleset;      // use this ruleset file instead of generated ones (to minimise a finding)
  bool nat = false;         // --mode nat / nat-host
  NatMode nat_mode = NatMode::Router;
  bool nat_ranges = false, self_check = false, mutate = false, icmp_errors = true, output_nat = true;
};

int usage() {
  fprintf(stderr,
          "usage: nf2bpf_difftest --nf2bpf PATH [--seed N] [--cases N] [--packets N] "
          "[--mode host|router|loopback|nat|nat-host] [--family 4|6] [--reference iptables|nft] [--verbose] "
          "[--strict-tcp] [--reject] [--dump] "
          "[--ruleset FILE] [--nat-ranges] [--no-icmp-errors] [--no-output-nat]\n");
  return 2;
}

const char* mode_name(Mode m) { return m == Mode::Host ? "host" : m == Mode::Router ? "router" : "loopback"; }

}  // namespace

int main(int argc, char** argv) {
  Options o;
  o.seed = (uint64_t)std::chrono::system_clock::now().time_since_epoch().count() % 1000000007ULL;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (a == "--nf2bpf" && (v = next()))
      o.bin = v;
    else if (a == "--seed" && (v = next()))
      o.seed = std::strtoull(v, nullptr, 10);
    else if (a == "--cases" && (v = next()))
      o.cases = std::atoi(v);
    else if (a == "--packets" && (v = next()))
      o.packets = std::atoi(v);
    else if (a == "--mode" && (v = next()) && (std::string(v) == "nat" || std::string(v) == "nat-host"))
      o.nat = true, o.nat_mode = std::string(v) == "nat" ? NatMode::Router : NatMode::Host;
    else if (a == "--mode" && v &&
             (std::string(v) == "host" || std::string(v) == "router" || std::string(v) == "loopback"))
      o.mode = std::string(v) == "router" ? Mode::Router : std::string(v) == "loopback" ? Mode::Loopback : Mode::Host;
    else if (a == "--nat-ranges")
      o.nat_ranges = true;
    else if (a == "--no-icmp-errors")
      o.icmp_errors = false;
    else if (a == "--no-output-nat")
      o.output_nat = false;
    else if (a == "--self-check")
      o.self_check = true;
    else if (a == "--mutate")
      o.mutate = true;
    else if (a == "--family" && (v = next()))
      o.family = std::atoi(v) == 6 ? 6 : 4;
    else if (a == "--reference" && (v = next()) && (std::string(v) == "nft" || std::string(v) == "iptables"))
      o.ref = std::string(v) == "nft" ? Reference::Nft : Reference::Iptables;
    else if (a == "--verbose")
      o.verbose = true;
    else if (a == "--strict-tcp")
      o.strict_tcp = true;
    else if (a == "--dump")
      o.dump = true;
    else if (a == "--reject")
      o.reject = true;
    else if (a == "--ruleset" && (v = next()))
      o.ruleset = v;
    else
      return usage();
  }
  // The nightly run (`make nightly`) multiplies every case count.
  if (const char* scale = std::getenv("NF2BPF_DIFFTEST_SCALE"); scale && std::atoi(scale) > 1)
    o.cases *= std::atoi(scale);
  NatOptions no{o.nat_mode, o.family, o.ref, o.nat_ranges, o.icmp_errors, o.output_nat};
  if (o.dump && o.nat) {
    for (int c = 0; c < o.cases; ++c)
      printf("%s", random_nat_case(o.seed + (uint64_t)c, no, o.packets).ruleset.c_str());
    return 0;
  }
  if (o.dump) {
    for (int c = 0; c < o.cases; ++c)
      printf("%s", random_case(o.seed + (uint64_t)c, o.mode, o.family, o.packets, o.ref, o.reject).ruleset.c_str());
    return 0;
  }
  if (o.bin.empty() && !o.self_check) return usage();
  if (geteuid() != 0) {
    printf("SKIPPED: the kernel-differential test needs root (network namespaces, iptables, BPF)\n");
    return 77;
  }
  bool nft = o.ref == Reference::Nft;
  if (nft && run("command -v nft") != 0) {
    printf("SKIPPED: nft is not installed (scripts/install-deps.sh installs it)\n");
    return 77;
  }
  if (!nft && run("command -v iptables-restore ip6tables-restore") != 0) {
    printf("SKIPPED: iptables-restore is not installed (scripts/install-deps.sh installs it)\n");
    return 77;
  }
  if (o.nat) {
    const char* mode = o.nat_mode == NatMode::Router ? "nat" : "nat-host";
    printf("difftest: mode %s%s%s, IPv%d, reference %s, %d rulesets x %d packets, seed %llu\n", mode,
           o.self_check ? " (self-check: netfilter on both sides)" : "", o.mutate ? " (second side mutated)" : "",
           o.family, nft ? "nft" : "iptables", o.cases, o.packets, (unsigned long long)o.seed);
    printf(
        "replay: %s --nf2bpf %s --mode %s --family %d --reference %s --packets %d --cases %d --seed %llu%s%s%s%s%s\n",
        argv[0], o.bin.empty() ? "-" : o.bin.c_str(), mode, o.family, nft ? "nft" : "iptables", o.packets, o.cases,
        (unsigned long long)o.seed, o.nat_ranges ? " --nat-ranges" : "", o.self_check ? " --self-check" : "",
        o.mutate ? " --mutate" : "", o.icmp_errors ? "" : " --no-icmp-errors", o.output_nat ? "" : " --no-output-nat");
    fflush(stdout);
    NatRun r{o.bin, o.seed, o.cases, o.packets, o.verbose, o.self_check, o.mutate, o.ruleset};
    int d = run_nat(no, r);
    return d < 0 ? 2 : d ? 1 : 0;
  }
  printf("difftest: mode %s, IPv%d, reference %s, %d rulesets x %d packets, seed %llu\n", mode_name(o.mode), o.family,
         nft ? "nft" : "iptables", o.cases, o.packets, (unsigned long long)o.seed);
  printf("replay: %s --nf2bpf %s --mode %s --family %d --reference %s --packets %d --cases %d --seed %llu%s\n", argv[0],
         o.bin.c_str(), mode_name(o.mode), o.family, nft ? "nft" : "iptables", o.packets, o.cases,
         (unsigned long long)o.seed, o.reject ? " --reject" : "");
  fflush(stdout);

  // A stray TCP segment on a flow an earlier packet of the case opened: the
  // kernel judges it by its TCP window tracking (sequence and ack numbers),
  // which nf2bpf's conntrack does not implement yet (issue 14); such a
  // disagreement is reported as known, not counted. Strays on a fresh flow
  // (no entry: loose pickup, SYN+FIN, RST) are judged as any packet.
  int disagreements = 0, total = 0, passed_a = 0, window_known = 0, answered = 0, answered_local = 0;
  auto flow_of = [](const Probe& p) {
    size_t l4 = p.family == 4 ? (size_t)(p.ip[0] & 15) * 4 : 40, alen = p.family == 4 ? 4 : 16;
    size_t at = p.family == 4 ? 12 : 8;
    std::string a(p.ip.begin() + at, p.ip.begin() + at + alen),
        b(p.ip.begin() + at + alen, p.ip.begin() + at + 2 * alen);
    std::string pa, pb;
    if (p.ip.size() >= l4 + 4)
      pa.assign(p.ip.begin() + l4, p.ip.begin() + l4 + 2), pb.assign(p.ip.begin() + l4 + 2, p.ip.begin() + l4 + 4);
    a += pa, b += pb;
    return std::to_string(p.proto) + (a < b ? a + b : b + a);
  };
  for (int c = 0; c < o.cases; ++c) {
    uint64_t seed = o.seed + (uint64_t)c;
    Case cs = random_case(seed, o.mode, o.family, o.packets, o.ref, o.reject);
    if (!o.ruleset.empty()) {
      std::ifstream in(o.ruleset);
      if (!in) {
        fprintf(stderr, "difftest: cannot read %s\n", o.ruleset.c_str());
        return 2;
      }
      cs.ruleset.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    Testbed a(o.mode, Engine::Netfilter, o.bin), b(o.mode, Engine::Nf2bpf, o.bin);
    if (auto err = a.load(cs.ruleset, o.family, o.ref); !err.empty()) {
      fprintf(stderr, "difftest: case seed %llu: %s rejected the generated ruleset:\n%s\n%s", (unsigned long long)seed,
              nft             ? "nft -f"
              : o.family == 4 ? "iptables-restore"
                              : "ip6tables-restore",
              err.c_str(), cs.ruleset.c_str());
      return 2;
    }
    if (auto err = b.load(cs.ruleset, o.family, o.ref); !err.empty()) {
      fprintf(stderr, "FAIL case seed %llu: nf2bpf apply failed:\n%s\nruleset:\n%s", (unsigned long long)seed,
              err.c_str(), cs.ruleset.c_str());
      ++disagreements;
      continue;
    }
    int case_diffs = 0;
    std::set<std::string> flows;  // TCP flows an earlier packet of this case opened
    for (size_t k = 0; k < cs.probes.size(); ++k) {
      const Probe& p = cs.probes[k];
      bool tracked = p.proto == 6 && !flows.insert(flow_of(p)).second;
      a.inject(p);
      b.inject(p);
      bool got_a = a.observed(p, 3), got_b = b.observed(p, 3);
      if (got_a != got_b) {  // rule out a slow delivery before calling it a difference
        got_a = got_a || a.observed(p, 100);
        got_b = got_b || b.observed(p, 100);
      }
      ++total;
      passed_a += got_a;
      if (got_a != got_b && tracked && p.what.find("stray tcp") != std::string::npos && !o.strict_tcp) {
        ++window_known;
        printf(
            "KNOWN case seed %llu packet %zu (%s): netfilter %s, nf2bpf %s: a stray segment on a tracked flow, "
            "judged by TCP window tracking in the kernel (not in nf2bpf yet, issue 14; --strict-tcp counts it)\n",
            (unsigned long long)seed, k + 1, p.what.c_str(), got_a ? "passed" : "dropped",
            got_b ? "passed" : "dropped");
      } else if (got_a != got_b) {
        ++case_diffs;
        ++disagreements;
        printf("DIFF case seed %llu packet %zu (%s, %s): netfilter %s, nf2bpf %s\n", (unsigned long long)seed, k + 1,
               p.dir == Dir::ToServer ? "client->server" : "server->client", p.what.c_str(),
               got_a ? "passed" : "dropped", got_b ? "passed" : "dropped");
        printf("  packet: ");
        for (uint8_t byte : p.ip) printf("%02x", byte);
        printf("\n");
      } else if (o.reject && !got_a) {
        auto ans_a = a.answers(p, 3), ans_b = b.answers(p, 3);
        if (ans_a != ans_b) {  // a slow answer?
          for (auto& x : a.answers(p, 100)) ans_a.push_back(x);
          for (auto& x : b.answers(p, 100)) ans_b.push_back(x);
        }
        answered += !ans_a.empty();
        answered_local +=
            !ans_a.empty() && (o.mode == Mode::Loopback || (o.mode == Mode::Host && p.dir == Dir::ToClient));
        if (ans_a != ans_b) {
          ++case_diffs;
          ++disagreements;
          printf("DIFF case seed %llu packet %zu (%s, %s): both dropped it; the sender got different answers\n",
                 (unsigned long long)seed, k + 1, p.dir == Dir::ToServer ? "client->server" : "server->client",
                 p.what.c_str());
          printf("  packet: ");
          for (uint8_t byte : p.ip) printf("%02x", byte);
          printf("\n");
          for (const auto& x : ans_a) printf("  netfilter answered: %s\n", x.c_str());
          for (const auto& x : ans_b) printf("  nf2bpf answered:    %s\n", x.c_str());
        } else if (o.verbose) {
          printf("  ok %zu %s %s: dropped, %zu answers ", k + 1, p.dir == Dir::ToServer ? "c>s" : "s>c", p.what.c_str(),
                 ans_a.size());
          for (uint8_t byte : p.ip) printf("%02x", byte);
          printf("\n");
        }
      } else if (o.verbose) {
        printf("  ok %zu %s %s: %s ", k + 1, p.dir == Dir::ToServer ? "c>s" : "s>c", p.what.c_str(),
               got_a ? "passed" : "dropped");
        for (uint8_t byte : p.ip) printf("%02x", byte);
        printf("\n");
      }
    }
    if (case_diffs)
      printf("ruleset of case seed %llu:\n%s\n", (unsigned long long)seed, cs.ruleset.c_str());
    else if (o.verbose)
      printf("case seed %llu: %zu packets agree\n", (unsigned long long)seed, cs.probes.size());
    fflush(stdout);
  }
  printf("difftest: %d rulesets, %d packets, %d passed netfilter, %d disagreements, %d known (seed %llu)\n", o.cases,
         total, passed_a, disagreements, window_known, (unsigned long long)o.seed);
  if (o.reject)
    printf(
        "difftest: %d packets answered by netfilter's REJECT, %d of them sent by srv (each answer compared with "
        "nf2bpf's)\n",
        answered, answered_local);
  return disagreements ? 1 : 0;
}
