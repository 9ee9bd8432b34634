// Entry point of nf2bpf_kernel_tests. Kernel tests need root, BPF and a
// network namespace of their own; without them they report SKIPPED and exit
// 77, which ctest shows as skipped (and scripts/run-tests.sh fails CI on).
//
//   nf2bpf_kernel_tests [catch options]   as root: private netns, every test
//   nf2bpf_kernel_tests --meta-only       no root: only the [meta] tests
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <vector>

#include "loader/dataplane.h"
#include "tests/kernel/fixture.h"
#include "tests/kernel/topology.h"

namespace nf2bpf::ktest {

const Device* device(const std::string& name) {
  for (const auto& d : kDevices)
    if (name == d.name) return &d;
  return nullptr;
}

namespace {

std::string mac_text(uint64_t mac) {
  char b[18];
  std::snprintf(b, sizeof b, "%02x:%02x:%02x:%02x:%02x:%02x", (unsigned)(mac >> 40) & 255, (unsigned)(mac >> 32) & 255,
                (unsigned)(mac >> 24) & 255, (unsigned)(mac >> 16) & 255, (unsigned)(mac >> 8) & 255,
                (unsigned)mac & 255);
  return b;
}

std::string sh(const std::string& cmd) {
  std::string full = cmd + " 2>&1";
  FILE* f = popen(full.c_str(), "r");
  if (!f) return cmd + ": " + std::strerror(errno);
  std::string out;
  char buf[256];
  while (size_t n = fread(buf, 1, sizeof buf, f)) out.append(buf, n);
  int st = pclose(f);
  if (st != 0) return cmd + ": " + (out.empty() ? "exit status " + std::to_string(st) : out);
  return "";
}

std::string write_sysctl(const std::string& path, const std::string& value) {
  std::ofstream f(path);
  if (!(f << value << "\n")) return "write " + path + ": " + std::strerror(errno);
  return "";
}

}  // namespace

std::string enter_test_namespace() {
  if (unshare(CLONE_NEWNET) != 0) return std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno);
  // /proc/sys/net and `ip` follow the calling process's namespace, which is
  // now the new, empty one: nothing below reaches the host's.
  std::vector<std::string> cmds = {"ip link set lo up"};
  for (const auto& d : kDevices) {
    // A veth pair whose peer stays here too (dummy devices need a module
    // that is not always available); the peer is up so the link has carrier.
    std::string peer = std::string("p-") + d.name;
    cmds.push_back(std::string("ip link add ") + d.name + " address " + mac_text(d.mac) + " type veth peer name " +
                   peer);
    cmds.push_back("ip link set " + peer + " up");
    cmds.push_back(std::string("ip addr add ") + d.v4 + " brd + dev " + d.name);
    cmds.push_back(std::string("ip -6 addr add ") + d.v6 + " dev " + d.name + " nodad");
    cmds.push_back(std::string("ip link set ") + d.name + " up");
  }
  cmds.push_back("ip route add 198.51.100.0/24 via 10.1.0.2 dev nfk1");
  cmds.push_back("ip route add 203.0.113.0/24 via 10.2.0.2 dev nfw0");
  cmds.push_back("ip -6 route add 2001:db8:51::/64 via fd01::2 dev nfk1");
  cmds.push_back("ip -6 route add 2001:db8:203::/64 via fd02::2 dev nfw0");
  for (const auto& c : cmds)
    if (auto e = sh(c); !e.empty()) return e;
  for (auto [path, v] :
       {std::pair{"/proc/sys/net/ipv4/ip_forward", "1"}, std::pair{"/proc/sys/net/ipv6/conf/all/forwarding", "1"}})
    if (auto e = write_sysctl(path, v); !e.empty()) return e;
  return "";
}

}  // namespace nf2bpf::ktest

int main(int argc, char** argv) {
  using namespace nf2bpf;
  std::vector<char*> args(argv, argv + argc);
  bool meta_only = argc > 1 && std::strcmp(argv[1], "--meta-only") == 0;
  static char meta_tag[] = "[meta]";
  if (meta_only) {
    args.erase(args.begin() + 1);
    args.push_back(meta_tag);
  } else {
    if (geteuid() != 0) {
      std::puts("SKIPPED: needs root (kernel packet tests run BPF programs in a private network namespace)");
      return 77;
    }
    if (auto e = ktest::enter_test_namespace(); !e.empty()) {
      std::fprintf(stderr, "kernel tests: setting up the test namespace failed: %s\n", e.c_str());
      return 2;
    }
    // BPF itself: a kernel or sandbox without it is a skip, anything else a failure.
    auto dp = loader::Dataplane::create("");
    if (!dp) {
      int code = dp.error().code;
      if (code == EPERM || code == ENOSYS || code == EOPNOTSUPP || code == EACCES) {
        std::printf("SKIPPED: needs root with BPF (%s)\n", dp.error().message().c_str());
        return 77;
      }
      std::fprintf(stderr, "kernel tests: loading the BPF programs failed: %s\n", dp.error().message().c_str());
      return 2;
    }
    ktest::use_dataplane(std::move(*dp));
    // One CPU for the whole run: BPF_PROG_TEST_RUN runs on the caller's CPU,
    // and a forwarded packet's ingress and egress runs share per-CPU state the
    // way they do in the kernel, where both run on the CPU that received it.
    cpu_set_t one;
    CPU_ZERO(&one);
    int cpu = sched_getcpu();
    CPU_SET(cpu < 0 ? 0 : cpu, &one);
    if (sched_setaffinity(0, sizeof one, &one) != 0) {
      std::fprintf(stderr, "kernel tests: pinning to CPU %d: %s\n", cpu, std::strerror(errno));
      return 2;
    }
  }
  Catch::Session session;
  int rc = session.applyCommandLine((int)args.size(), args.data());
  if (rc != 0) return rc;
  return session.run();
}
