// Twin testbeds: the same topology twice, one side filtered by the kernel's
// netfilter (iptables-restore / ip6tables-restore), the other by nf2bpf. The
// harness injects the same packets into both and compares what each lets
// through.
//
//   host mode:   cli --veth-- srv          rules on srv: INPUT and OUTPUT
//   router mode: cli --veth-- rtr --veth-- srv   rules on rtr: FORWARD
//   loopback:    the host topology; every packet goes from srv to srv
//                itself (127/8, ::1, its own address): OUTPUT, then INPUT
//                with iif lo
//
// Injection uses AF_PACKET on the outer hosts (and a raw IP socket on srv in
// host mode, so OUTPUT sees a locally generated packet). Observation: raw IP
// sockets on srv in host mode see exactly what passed INPUT; AF_PACKET taps
// on the outer hosts see what left the filtering host. The outer hosts'
// stacks are silenced (tc ingress drop after the tap) so they add no traffic.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tests/kernel/difftest/netns.h"
#include "translator/ir/values.h"

namespace nf2bpf::difftest {

enum class Mode { Host, Router, Loopback };
// Host and loopback mode filter on srv (INPUT and OUTPUT).
inline bool host_like(Mode m) { return m != Mode::Router; }
enum class Engine { Netfilter, Nf2bpf };
enum class Reference { Iptables, Nft };  // how the netfilter side loads its rules
enum class Dir { ToServer, ToClient };   // cli->srv (INPUT or FORWARD), srv->cli (OUTPUT or FORWARD)

struct Addrs {
  std::vector<std::string> client_side;  // sources of ToServer packets
  std::vector<std::string> server_side;  // sources of ToClient packets
};
Addrs address_pool(Mode m, int family);

// The testbeds' fixed MACs (cli c0, srv s0, rtr r0 and r1) and the helpers
// both harnesses (this one and the NAT one) set hosts up with.
inline const char* const kMacC0 = "02:00:00:00:0c:00";
inline const char* const kMacS0 = "02:00:00:00:05:00";
inline const char* const kMacR0 = "02:00:00:00:0a:00";
inline const char* const kMacR1 = "02:00:00:00:0b:00";
std::vector<uint8_t> mac_bytes(const char* m);
// An outer host observes through its tap and adds no traffic of its own.
void silence(const Netns& ns, const std::string& dev);
// No ICMP rate limit, DAD, router advertisements or reverse-path filter.
void quiet_sysctls(const Netns& ns);
// An AF_PACKET socket bound to one interface (exits 2 on failure).
int packet_socket(const Netns& ns, unsigned ifindex);

// The 8-byte marker a probe carries in its L4 payload: "NF2B", then its
// token (big endian).
inline std::array<uint8_t, 8> token_bytes(uint32_t token) {
  return {'N', 'F', '2', 'B', (uint8_t)(token >> 24), (uint8_t)(token >> 16), (uint8_t)(token >> 8), (uint8_t)token};
}

// One packet to inject: the IP bytes and how to recognise it on arrival.
struct Probe {
  Dir dir;
  int family;
  std::vector<uint8_t> ip;  // from the IP header on
  uint8_t proto;
  uint32_t token;    // 8-byte marker "NF2B" + token, inside the L4 payload
  size_t token_off;  // offset of the marker from the start of the L4 header
  std::string what;  // readable description
};

class Testbed {
 public:
  Testbed(Mode mode, Engine engine, const std::string& nf2bpf_bin);
  ~Testbed();

  // Loads the ruleset: iptables-restore/ip6tables-restore (or `nft -f` with
  // Reference::Nft), or `nf2bpf apply`. Returns an empty string on success,
  // else the tool's output.
  std::string load(const std::string& ruleset, int family, Reference ref = Reference::Iptables);

  void inject(const Probe& p);
  // Whether the probe arrived at its observation point (waits briefly).
  bool observed(const Probe& p, int wait_ms);

  // The answers (ICMP errors quoting the probe, TCP RSTs to it) the probe's
  // sender received (waits briefly), in arrival order, as hex with the
  // fields the kernel fills at random cleared (IPv4 ID and header checksum,
  // IPv6 flow label; what srv's IPv6 raw sockets see starts at the transport
  // header).
  std::vector<std::string> answers(const Probe& p, int wait_ms);

  const Netns& filter_ns() const;  // where the rules live

 private:
  Mode mode_;
  Engine engine_;
  std::string bin_;
  std::unique_ptr<Netns> cli_, rtr_, srv_;
  int cli_packet_ = -1;                // AF_PACKET on c0: inject ToServer, observe ToClient
  int srv_packet_ = -1;                // router: AF_PACKET on s0
  int srv_raw4_ = -1, srv_raw6_ = -1;  // host: send ToClient through OUTPUT
  std::vector<int> srv_obs_;           // host: raw sockets per protocol (after INPUT)
  unsigned c0_ = 0, s0_ = 0;
  std::vector<std::vector<uint8_t>> seen_server_, seen_client_;  // L3 (v4) or L4 (v6 raw) bytes
  std::vector<int> seen_server_family_;
  void drain(int fd, bool packet_socket, std::vector<std::vector<uint8_t>>& out, std::vector<int>* fam,
             int family_hint);
  bool match(const Probe& p, const std::vector<uint8_t>& got, bool l4_only) const;
  bool answers_probe(const Probe& p, const std::vector<uint8_t>& got, bool l4_only) const;
};

}  // namespace nf2bpf::difftest
