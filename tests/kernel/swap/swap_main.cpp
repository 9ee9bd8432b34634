// nf2bpf_swaptest: generations swapped under traffic. A server namespace runs
// nf2bpf; while `nf2bpf apply` swaps in 100 generations, cycling through
// three policies (so each install lands in a slot that held another one, and
// rewrites the field classes that differ), a client keeps sending two kinds
// of probe:
//
//   allowed  UDP to port 5000: accepted by every policy
//   denied   UDP to port 5001: dropped by every policy
//
// The policies decide these packets with different fields (A: source address
// and port, B: port and length, C: source port and a port range), so a
// packet judged by a mix of two (one's settings with another's maps, or
// half-written maps) is dropped, or lets a denied probe through. Passing means every allowed probe arrived and no
// denied probe did: no packet was lost or judged by a mixed policy.
//
//   nf2bpf_swaptest --nf2bpf PATH [--swaps N]
// Exit: 0 pass, 1 a probe was lost or leaked, 2 harness error, 77 not root.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "tests/kernel/difftest/testbed.h"
#include "verify/builder.h"

using namespace nf2bpf;
using namespace nf2bpf::difftest;

namespace {

const char* kPolicyA =
    "*filter\n"
    ":INPUT DROP [0:0]\n"
    ":FORWARD DROP [0:0]\n"
    ":OUTPUT ACCEPT [0:0]\n"
    "-A INPUT -s 10.200.0.1/32 -p udp -m udp --dport 5000 -j ACCEPT\n"
    "COMMIT\n";

const char* kPolicyB =
    "*filter\n"
    ":INPUT DROP [0:0]\n"
    ":FORWARD DROP [0:0]\n"
    ":OUTPUT ACCEPT [0:0]\n"
    "-A INPUT -p udp -m udp ! --dport 5000 -j DROP\n"
    "-A INPUT -p tcp -j DROP\n"
    "-A INPUT -p udp -m length --length 28:1500 -j ACCEPT\n"
    "COMMIT\n";

const char* kPolicyC =
    "*filter\n"
    ":INPUT DROP [0:0]\n"
    ":FORWARD DROP [0:0]\n"
    ":OUTPUT ACCEPT [0:0]\n"
    "-A INPUT -p udp -m udp --sport 40000 --dport 4990:5000 -j ACCEPT\n"
    "COMMIT\n";

Probe udp_probe(uint32_t token, uint16_t dport) {
  verify::PacketSpec s;
  s.family = 4;
  s.saddr = ir::v4_to_u128(0x0AC80001);  // 10.200.0.1
  s.daddr = ir::v4_to_u128(0x0AC80002);  // 10.200.0.2
  s.proto = 17;
  s.sport = 40000;
  s.dport = dport;
  s.payload = {'N',           'F', '2', 'B', (uint8_t)(token >> 24), (uint8_t)(token >> 16), (uint8_t)(token >> 8),
               (uint8_t)token};
  Probe p;
  p.dir = Dir::ToServer;
  p.family = 4;
  p.proto = 17;
  p.token = token;
  p.token_off = 8;
  p.ip = verify::build_ip(s);
  p.what = "udp dport " + std::to_string(dport);
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  std::string bin;
  int swaps = 100;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--nf2bpf" && i + 1 < argc)
      bin = argv[++i];
    else if (a == "--swaps" && i + 1 < argc)
      swaps = std::atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: nf2bpf_swaptest --nf2bpf PATH [--swaps N]\n");
      return 2;
    }
  }
  if (bin.empty()) {
    fprintf(stderr, "usage: nf2bpf_swaptest --nf2bpf PATH [--swaps N]\n");
    return 2;
  }
  if (geteuid() != 0) {
    printf("SKIPPED: the swap test needs root (network namespaces, BPF)\n");
    return 77;
  }
  Testbed tb(Mode::Host, Engine::Nf2bpf, bin);
  if (auto err = tb.load(kPolicyA, 4); !err.empty()) {
    fprintf(stderr, "swaptest: nf2bpf apply of policy A failed:\n%s\n", err.c_str());
    return 2;
  }
  // Both policies must decide the probes as stated before the swapping starts.
  uint32_t token = 1;
  for (const char* pol : {kPolicyB, kPolicyC, kPolicyA}) {
    Probe ok = udp_probe(token++, 5000), no = udp_probe(token++, 5001);
    tb.inject(ok);
    tb.inject(no);
    if (!tb.observed(ok, 500) || tb.observed(no, 50)) {
      fprintf(stderr, "swaptest: the probes are not decided as intended before swapping\n");
      return 2;
    }
    if (auto err = tb.load(pol, 4); !err.empty()) {
      fprintf(stderr, "swaptest: nf2bpf apply failed:\n%s\n", err.c_str());
      return 2;
    }
  }

  std::atomic<bool> done{false};
  std::string swap_error;
  auto t0 = std::chrono::steady_clock::now();
  std::thread swapper([&]() {
    for (int i = 0; i < swaps && swap_error.empty(); ++i) {
      const char* cycle[] = {kPolicyB, kPolicyC, kPolicyA};
      std::string err = tb.load(cycle[i % 3], 4);
      if (!err.empty()) swap_error = "swap " + std::to_string(i + 1) + ": " + err;
    }
    done = true;
  });

  uint64_t allowed = 0, lost = 0, denied = 0;
  std::vector<Probe> denied_probes;
  while (!done) {
    Probe ok = udp_probe(token++, 5000), no = udp_probe(token++, 5001);
    tb.inject(ok);
    tb.inject(no);
    ++allowed;
    if (!tb.observed(ok, 200)) {
      ++lost;
      printf("LOST allowed probe %u (%s)\n", ok.token, ok.what.c_str());
    }
    denied_probes.push_back(no);
  }
  swapper.join();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // One more allowed probe: waiting for it also collects any late arrival.
  Probe last = udp_probe(token++, 5000);
  tb.inject(last);
  ++allowed;
  if (!tb.observed(last, 500)) ++lost;
  uint64_t leaked = 0;
  for (const auto& no : denied_probes) {
    ++denied;
    if (tb.observed(no, 0)) {
      ++leaked;
      printf("LEAKED denied probe %u (%s)\n", no.token, no.what.c_str());
    }
  }
  if (!swap_error.empty()) {
    fprintf(stderr, "swaptest: %s\n", swap_error.c_str());
    return 2;
  }
  printf(
      "swaptest: %d generations swapped in %.1f s under traffic; %llu allowed probes, %llu lost; "
      "%llu denied probes, %llu let through\n",
      swaps, secs, (unsigned long long)allowed, (unsigned long long)lost, (unsigned long long)denied,
      (unsigned long long)leaked);
  return lost || leaked ? 1 : 0;
}
