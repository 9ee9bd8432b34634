#include "tests/kernel/difftest/testbed.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>

namespace nf2bpf::difftest {

namespace {

int counter = 0;

}  // namespace

// ---- shared by the NAT harness (testbed.h) ----

std::vector<uint8_t> mac_bytes(const char* m) {
  std::vector<uint8_t> b;
  for (int i = 0; i < 6; ++i) b.push_back((uint8_t)std::strtoul(m + 3 * i, nullptr, 16));
  return b;
}

// An outer host observes through its tap and must add no traffic of its own:
// it has no IPv4 address or route (its stack cannot answer anything) and IPv6
// is off on the link.
void silence(const Netns& ns, const std::string& dev) {
  ns.must("sysctl -qw net.ipv6.conf." + dev + ".disable_ipv6=1 && ip link set " + dev + " up");
}

void quiet_sysctls(const Netns& ns) {
  ns.must(
      "sysctl -qw net.ipv4.icmp_ratelimit=0 net.ipv6.icmp.ratelimit=0 net.ipv6.conf.all.accept_dad=0 "
      "net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0 "
      "net.ipv6.conf.default.router_solicitations=0 net.ipv6.conf.all.router_solicitations=0 "
      "net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0");
}

int packet_socket(const Netns& ns, unsigned ifindex) {
  int fd = ns.socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(ETH_P_ALL));
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = (int)ifindex;
  if (bind(fd, (sockaddr*)&sll, sizeof sll) != 0) {
    perror("difftest: bind AF_PACKET");
    exit(2);
  }
  return fd;
}

Addrs address_pool(Mode m, int family) {
  if (m == Mode::Loopback) {  // srv's own addresses: both ends of every packet
    Addrs a = family == 4 ? Addrs{{"127.0.0.1", "127.0.0.2", "10.200.0.2"}, {}} : Addrs{{"::1", "fd00:200::2"}, {}};
    a.server_side = a.client_side;
    return a;
  }
  if (m == Mode::Host)
    return family == 4
               ? Addrs{{"10.200.0.1", "10.200.0.7", "10.200.5.9", "192.0.2.7", "198.51.100.200"}, {"10.200.0.2"}}
               : Addrs{{"fd00:200::1", "fd00:200::7", "fd00:200:0:5::9", "2001:db8::7", "2001:db8:1::200"},
                       {"fd00:200::2"}};
  return family == 4 ? Addrs{{"10.201.1.1", "10.201.1.7", "192.0.2.7"}, {"10.201.2.1", "10.201.2.9", "198.51.100.200"}}
                     : Addrs{{"fd00:201:1::1", "fd00:201:1::7", "2001:db8::7"},
                             {"fd00:201:2::1", "fd00:201:2::9", "2001:db8:1::200"}};
}

Testbed::Testbed(Mode mode, Engine engine, const std::string& bin) : mode_(mode), engine_(engine), bin_(bin) {
  std::string tag = engine == Engine::Netfilter ? "nf" : "bpf";
  cli_ = std::make_unique<Netns>("cli-" + tag);
  srv_ = std::make_unique<Netns>("srv-" + tag);
  for (const Netns* ns : {cli_.get(), srv_.get()}) quiet_sysctls(*ns);
  if (host_like(mode)) {
    run("ip link add c0 netns " + cli_->name() + " address " + kMacC0 + " type veth peer name s0 netns " +
        srv_->name() + " address " + kMacS0);
    srv_->must("ip addr add 10.200.0.2/16 dev s0 && ip -6 addr add fd00:200::2/64 dev s0 nodad && ip link set s0 up");
    srv_->must("ip route add default via 10.200.0.1 && ip -6 route add default via fd00:200::1");
    for (int fam : {4, 6}) {
      auto pool = address_pool(mode, fam);
      for (const auto& a : pool.client_side) {
        bool onlink = fam == 4 ? a.rfind("10.200.", 0) == 0 : a.rfind("fd00:200::", 0) == 0;
        if (onlink) srv_->must("ip neigh replace " + a + " lladdr " + kMacC0 + " dev s0 nud permanent");
      }
    }
    srv_->must(std::string("ip neigh replace 10.200.0.1 lladdr ") + kMacC0 + " dev s0 nud permanent");
    srv_->must(std::string("ip -6 neigh replace fd00:200::1 lladdr ") + kMacC0 + " dev s0 nud permanent");
    silence(*cli_, "c0");
    c0_ = cli_->ifindex("c0");
    cli_packet_ = packet_socket(*cli_, c0_);
    srv_raw4_ = srv_->socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
    srv_raw6_ = srv_->socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
    for (int p : {(int)IPPROTO_TCP, (int)IPPROTO_UDP, (int)IPPROTO_ICMP})
      srv_obs_.push_back(srv_->socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, p));
    for (int p : {(int)IPPROTO_TCP, (int)IPPROTO_UDP, (int)IPPROTO_ICMPV6})
      srv_obs_.push_back(srv_->socket(AF_INET6, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, p));
  } else {
    rtr_ = std::make_unique<Netns>("rtr-" + tag);
    quiet_sysctls(*rtr_);
    run("ip link add c0 netns " + cli_->name() + " address " + kMacC0 + " type veth peer name r0 netns " +
        rtr_->name() + " address " + kMacR0);
    run("ip link add r1 netns " + rtr_->name() + " address " + kMacR1 + " type veth peer name s0 netns " +
        srv_->name() + " address " + kMacS0);
    rtr_->must(
        "ip addr add 10.201.1.254/24 dev r0 && ip -6 addr add fd00:201:1::fe/64 dev r0 nodad && ip link set r0 up");
    rtr_->must(
        "ip addr add 10.201.2.254/24 dev r1 && ip -6 addr add fd00:201:2::fe/64 dev r1 nodad && ip link set r1 up");
    rtr_->must("sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1");
    rtr_->must("ip route add 192.0.2.0/24 via 10.201.1.1 && ip route add 198.51.100.0/24 via 10.201.2.1");
    rtr_->must("ip -6 route add 2001:db8::/64 via fd00:201:1::1 && ip -6 route add 2001:db8:1::/64 via fd00:201:2::1");
    for (int fam : {4, 6}) {
      auto pool = address_pool(mode, fam);
      for (const auto& a : pool.client_side)
        if (a.find("10.201.1.") == 0 || a.find("fd00:201:1::") == 0)
          rtr_->must("ip neigh replace " + a + " lladdr " + kMacC0 + " dev r0 nud permanent");
      for (const auto& a : pool.server_side)
        if (a.find("10.201.2.") == 0 || a.find("fd00:201:2::") == 0)
          rtr_->must("ip neigh replace " + a + " lladdr " + kMacS0 + " dev r1 nud permanent");
    }
    silence(*cli_, "c0");
    silence(*srv_, "s0");
    c0_ = cli_->ifindex("c0");
    s0_ = srv_->ifindex("s0");
    cli_packet_ = packet_socket(*cli_, c0_);
    srv_packet_ = packet_socket(*srv_, s0_);
  }
}

Testbed::~Testbed() {
  for (int fd : {cli_packet_, srv_packet_, srv_raw4_, srv_raw6_})
    if (fd >= 0) close(fd);
  for (int fd : srv_obs_) close(fd);
}

const Netns& Testbed::filter_ns() const { return host_like(mode_) ? *srv_ : *rtr_; }

std::string Testbed::load(const std::string& ruleset, int family, Reference ref) {
  std::string path = "/tmp/nf2bpf-dt-" + std::to_string(getpid()) + "-" + std::to_string(counter++) + ".rules";
  std::ofstream(path) << ruleset;
  std::string out;
  int rc;
  if (engine_ == Engine::Netfilter) {
    if (ref == Reference::Nft)
      rc = filter_ns().sh("nft -f " + path, &out);
    else
      rc = filter_ns().sh(std::string(family == 4 ? "iptables-restore" : "ip6tables-restore") + " < " + path, &out);
  } else {
    // (lo is always attached too)
    std::string ifs = host_like(mode_) ? " --iface s0" : " --iface r0 --iface r1";
    rc = filter_ns().sh(bin_ + " apply" + ifs + " " + path, &out);
  }
  unlink(path.c_str());
  return rc == 0 ? "" : out.empty() ? "exit " + std::to_string(rc) : out;
}

void Testbed::inject(const Probe& p) {
  // Drop anything left over, so only this probe's arrival is looked for.
  bool from_client = p.dir == Dir::ToServer;
  if ((mode_ == Mode::Host && !from_client) || mode_ == Mode::Loopback) {
    int fd = p.family == 4 ? srv_raw4_ : srv_raw6_;
    sockaddr_storage ss{};
    socklen_t len;
    if (p.family == 4) {
      auto* sin = (sockaddr_in*)&ss;
      sin->sin_family = AF_INET;
      std::memcpy(&sin->sin_addr, p.ip.data() + 16, 4);
      len = sizeof(sockaddr_in);
    } else {
      auto* sin6 = (sockaddr_in6*)&ss;
      sin6->sin6_family = AF_INET6;
      std::memcpy(&sin6->sin6_addr, p.ip.data() + 24, 16);
      len = sizeof(sockaddr_in6);
    }
    // EPERM is the OUTPUT chain dropping it: that is an observation, not an error.
    (void)sendto(fd, p.ip.data(), p.ip.size(), 0, (sockaddr*)&ss, len);
    return;
  }
  int fd = from_client ? cli_packet_ : srv_packet_;
  std::vector<uint8_t> frame;
  auto dst = mac_bytes(from_client ? (mode_ == Mode::Host ? kMacS0 : kMacR0) : kMacR1);
  auto src = mac_bytes(from_client ? kMacC0 : kMacS0);
  frame.insert(frame.end(), dst.begin(), dst.end());
  frame.insert(frame.end(), src.begin(), src.end());
  uint16_t type = p.family == 4 ? ETH_P_IP : ETH_P_IPV6;
  frame.push_back((uint8_t)(type >> 8));
  frame.push_back((uint8_t)type);
  frame.insert(frame.end(), p.ip.begin(), p.ip.end());
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_ifindex = (int)(from_client ? c0_ : s0_);
  sll.sll_halen = 6;
  std::memcpy(sll.sll_addr, dst.data(), 6);
  if (sendto(fd, frame.data(), frame.size(), 0, (sockaddr*)&sll, sizeof sll) < 0) {
    perror("difftest: inject");
    exit(2);
  }
}

void Testbed::drain(int fd, bool packet_socket, std::vector<std::vector<uint8_t>>& out, std::vector<int>* fam,
                    int family_hint) {
  uint8_t buf[65536];
  for (;;) {
    sockaddr_ll sll{};
    socklen_t sl = sizeof sll;
    ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (sockaddr*)&sll, &sl);
    if (n <= 0) return;
    if (packet_socket) {
      if (sll.sll_pkttype == PACKET_OUTGOING || n < 14) continue;
      out.emplace_back(buf + 14, buf + n);
      if (fam) fam->push_back(0);
    } else {
      out.emplace_back(buf, buf + n);
      if (fam) fam->push_back(family_hint);
    }
  }
}

bool Testbed::match(const Probe& p, const std::vector<uint8_t>& got, bool l4_only) const {
  size_t l4 = 0;
  if (!l4_only) {
    if (got.empty()) return false;
    int v = got[0] >> 4;
    if (v != p.family) return false;
    if (v == 4) {
      if (got.size() < 20 || got[9] != p.proto) return false;
      l4 = (got[0] & 0xf) * 4;
    } else {
      if (got.size() < 40 || got[6] != p.proto) return false;
      l4 = 40;
    }
  }
  size_t pl4 = p.family == 4 ? (size_t)(p.ip[0] & 0xf) * 4 : 40;
  if (got.size() < l4 + p.token_off + 8 || p.ip.size() < pl4 + 4) return false;
  if (std::memcmp(got.data() + l4, p.ip.data() + pl4, 2) != 0) return false;  // ports or ICMP type/code
  if (p.proto != IPPROTO_ICMP && p.proto != IPPROTO_ICMPV6 &&
      std::memcmp(got.data() + l4 + 2, p.ip.data() + pl4 + 2, 2) != 0)
    return false;
  const auto tok = token_bytes(p.token);
  return std::memcmp(got.data() + l4 + p.token_off, tok.data(), 8) == 0;
}

bool Testbed::observed(const Probe& p, int wait_ms) {
  bool to_server = p.dir == Dir::ToServer || mode_ == Mode::Loopback;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  for (;;) {
    auto& seen = to_server ? seen_server_ : seen_client_;
    for (size_t i = 0; i < seen.size(); ++i) {
      bool l4_only = to_server && host_like(mode_) && seen_server_family_[i] == 6;
      if (match(p, seen[i], l4_only)) {
        seen.erase(seen.begin() + (long)i);
        if (to_server) seen_server_family_.erase(seen_server_family_.begin() + (long)i);
        return true;
      }
    }
    int left =
        (int)std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) return false;
    std::vector<pollfd> fds;
    if (to_server && host_like(mode_)) {
      for (int fd : srv_obs_) fds.push_back({fd, POLLIN, 0});
    } else {
      fds.push_back({to_server ? srv_packet_ : cli_packet_, POLLIN, 0});
    }
    if (poll(fds.data(), fds.size(), left) <= 0) return false;
    if (to_server && host_like(mode_)) {
      for (size_t i = 0; i < srv_obs_.size(); ++i)
        drain(srv_obs_[i], false, seen_server_, &seen_server_family_, i < 3 ? 4 : 6);
    } else if (to_server) {
      drain(srv_packet_, true, seen_server_, &seen_server_family_, 0);
    } else {
      drain(cli_packet_, true, seen_client_, nullptr, 0);
    }
  }
}

// The kernel sends its RSTs with the TCP checksum left to the device
// (CHECKSUM_PARTIAL: the field holds the pseudo-header's sum), and a veth
// hands them on so, the peer trusting them; a tap sees the partial sum. A
// TCP packet whose field holds exactly that gets the full checksum, so both
// engines' answers compare; any other wrong checksum stays as it is.
static void complete_tcp_checksum(std::vector<uint8_t>& ip) {
  int v = ip.empty() ? 0 : ip[0] >> 4;
  size_t hl = v == 4 ? (size_t)(ip[0] & 15) * 4 : 40;
  if ((v != 4 && v != 6) || ip.size() < hl + 20 || (v == 4 ? ip[9] : ip[6]) != 6) return;
  auto sum = [](const uint8_t* b, size_t n, uint32_t s) {
    for (size_t i = 0; i + 1 < n; i += 2) s += (uint32_t)(b[i] << 8 | b[i + 1]);
    if (n & 1) s += (uint32_t)b[n - 1] << 8;
    return s;
  };
  auto fold = [](uint32_t s) {
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return (uint16_t)s;
  };
  size_t len = ip.size() - hl;
  uint32_t ph = v == 4 ? sum(ip.data() + 12, 8, 0) : sum(ip.data() + 8, 32, 0);
  ph += 6 + (uint32_t)len;
  uint16_t field = (uint16_t)(ip[hl + 16] << 8 | ip[hl + 17]);
  ip[hl + 16] = ip[hl + 17] = 0;
  uint16_t full = (uint16_t)~fold(sum(ip.data() + hl, len, ph));
  bool partial = field == fold(ph);
  uint16_t put = partial ? full : field;
  ip[hl + 16] = (uint8_t)(put >> 8);
  ip[hl + 17] = (uint8_t)put;
}

// An IPv4 ICMP error quoting a packet srv sent itself quotes the IP ID the
// kernel gave it (at random, as to any raw packet with ID 0): the quoted ID
// and header checksum are cleared and the ICMP checksum recomputed, when it
// was right to begin with (a wrong one stays wrong).
static void clear_quoted_id(std::vector<uint8_t>& ip) {
  if (ip.size() < 20 + 8 + 20 || ip[9] != 1 || (ip[0] & 15) != 5) return;
  auto csum = [](const std::vector<uint8_t>& b, size_t from) {
    uint32_t s = 0;
    for (size_t i = from; i + 1 < b.size(); i += 2) s += (uint32_t)(b[i] << 8 | b[i + 1]);
    if ((b.size() - from) & 1) s += (uint32_t)b.back() << 8;
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return (uint16_t)~s;
  };
  if (csum(ip, 20) != 0) return;
  ip[28 + 4] = ip[28 + 5] = ip[28 + 10] = ip[28 + 11] = 0;
  ip[22] = ip[23] = 0;
  uint16_t c = csum(ip, 20);
  ip[22] = (uint8_t)(c >> 8);
  ip[23] = (uint8_t)c;
}

// An ICMP error whose quote starts with the probe's addresses and contains
// its token, or a TCP RST from the probe's destination to its source with
// the ports swapped. l4_only: `got` starts at the transport header (what an
// IPv6 raw socket receives), the addresses unseen.
bool Testbed::answers_probe(const Probe& p, const std::vector<uint8_t>& got, bool l4_only) const {
  size_t hl = p.family == 4 ? 20 : 40, alen = p.family == 4 ? 4 : 16, at = p.family == 4 ? 12 : 8;
  const uint8_t* psrc = p.ip.data() + at;
  const uint8_t* pdst = psrc + alen;
  size_t pl4 = p.family == 4 ? (size_t)(p.ip[0] & 0xf) * 4 : 40;
  const auto tok = token_bytes(p.token);
  auto rst = [&](const uint8_t* t, size_t n) {
    return p.proto == 6 && n >= 20 && p.ip.size() >= pl4 + 4 && (t[13] & 0x04) &&
           std::memcmp(t, p.ip.data() + pl4 + 2, 2) == 0 && std::memcmp(t + 2, p.ip.data() + pl4, 2) == 0;
  };
  auto unreach = [&](const uint8_t* m, size_t n) {
    if (n < 8 + hl) return false;
    uint8_t type = m[0];
    if (p.family == 4 ? type != 3 : !(type >= 1 && type <= 4)) return false;
    const uint8_t* q = m + 8;
    size_t qn = n - 8;
    return (q[0] >> 4) == p.family && std::memcmp(q + at, psrc, 2 * alen) == 0 &&
           std::search(q, q + qn, tok.begin(), tok.end()) != q + qn;
  };
  if (l4_only) return rst(got.data(), got.size()) || unreach(got.data(), got.size());
  if (got.size() < hl + 8 || (got[0] >> 4) != p.family) return false;
  if (p.family == 4 && (got[0] & 15) != 5) return false;
  if (std::memcmp(got.data() + at + alen, psrc, alen) != 0) return false;  // to the probe's source
  uint8_t proto = p.family == 4 ? got[9] : got[6];
  if (proto == 6) return std::memcmp(got.data() + at, pdst, alen) == 0 && rst(got.data() + hl, got.size() - hl);
  return proto == (p.family == 4 ? 1 : 58) && unreach(got.data() + hl, got.size() - hl);
}

std::vector<std::string> Testbed::answers(const Probe& p, int wait_ms) {
  std::vector<std::string> out;
  // Where the probe's sender sees answers: the client's tap, srv's tap in
  // router mode, srv's raw sockets for what srv sent itself.
  bool local = mode_ == Mode::Loopback || (mode_ == Mode::Host && p.dir == Dir::ToClient);
  auto& seen = p.dir == Dir::ToServer && !local ? seen_client_ : seen_server_;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  for (;;) {
    std::vector<pollfd> fds;
    if (local)
      for (int fd : srv_obs_) fds.push_back({fd, POLLIN, 0});
    else
      fds.push_back({p.dir == Dir::ToServer ? cli_packet_ : srv_packet_, POLLIN, 0});
    int left =
        (int)std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (poll(fds.data(), fds.size(), std::max(left, 0)) > 0) {
      if (local) {
        for (size_t i = 0; i < srv_obs_.size(); ++i)
          drain(srv_obs_[i], false, seen_server_, &seen_server_family_, i < 3 ? 4 : 6);
      } else if (p.dir == Dir::ToServer) {
        drain(cli_packet_, true, seen_client_, nullptr, 0);
      } else {
        drain(srv_packet_, true, seen_server_, &seen_server_family_, 0);
      }
    }
    if (left <= 0) break;
  }
  for (size_t i = 0; i < seen.size();) {
    bool l4_only = local && seen_server_family_[i] == 6;
    if (!answers_probe(p, seen[i], l4_only)) {
      ++i;
      continue;
    }
    std::vector<uint8_t> a = seen[i];
    if (!l4_only) complete_tcp_checksum(a);
    if (p.family == 4) clear_quoted_id(a);
    if (p.family == 4) {
      a[4] = a[5] = a[10] = a[11] = 0;
    } else if (!l4_only) {
      a[1] &= 0xf0;
      a[2] = a[3] = 0;
    }
    static const char* hex = "0123456789abcdef";
    std::string h;
    for (uint8_t b : a) h += hex[b >> 4], h += hex[b & 15];
    out.push_back(h);
    seen.erase(seen.begin() + (long)i);
    if (&seen == &seen_server_) seen_server_family_.erase(seen_server_family_.begin() + (long)i);
  }
  return out;
}

}  // namespace nf2bpf::difftest
