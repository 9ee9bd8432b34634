// The NAT testbeds and the run loop of the NAT modes (nat.h).
//
// Router mode: cli and srv are silent taps (no IPv4 address, IPv6 off, like
// the filter modes): packets are injected and observed with AF_PACKET at c0
// and s0, so what arrives is exactly what rtr forwarded.
//
// Host mode: srv is a real stack, so it would answer probes itself (TCP RST,
// ICMP port unreachable, echo replies), and those answers would go through
// conntrack and NAT and change the connections under test. Its main routing
// table therefore has no route to the clients (addresses with
// noprefixroute, no default route): the kernel's own answers find no route
// and are never sent. The harness's replies are sent from a raw socket with
// SO_MARK 0x100, which an `ip rule` sends to table 100, where the routes
// are. What srv received is read with raw sockets after INPUT (after the
// INPUT nat hook): IPv4 with its header, IPv6 with the header rebuilt from
// the source address, IPV6_PKTINFO and IPV6_HOPLIMIT.
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <tuple>

#include "tests/kernel/difftest/nat.h"
#include "tests/kernel/difftest/natpool.h"
#include "translator/ir/values.h"
#include "verify/builder.h"

namespace nf2bpf::difftest {

namespace {

const int kReplyMark = 0x100;

// n addresses from lo up (the last byte or group counted up): the secondary
// router addresses, and every address a DNAT range may pick (rtr needs a
// neighbour entry for each).
std::vector<std::string> span(const std::string& lo, int n) {
  std::vector<std::string> v;
  size_t cut = lo.find_last_of(".:") + 1;
  int base = std::stoi(lo.substr(cut), nullptr, lo.find(':') != std::string::npos ? 16 : 10);
  for (int i = 0; i < n; ++i) {
    char b[16];
    snprintf(b, sizeof b, lo.find(':') != std::string::npos ? "%x" : "%d", base + i);
    v.push_back(lo.substr(0, cut) + b);
  }
  return v;
}

int counter = 0;

// Whether an IP packet is an ICMP message other than echo request/reply.
bool is_error(const std::vector<uint8_t>& b) {
  if (b.empty()) return false;
  size_t l4 = (b[0] >> 4) == 4 ? (size_t)(b[0] & 0xf) * 4 : 40;
  uint8_t proto = (b[0] >> 4) == 4 ? b[9] : b.size() > 6 ? b[6] : 0;
  if (b.size() <= l4 || (proto != 1 && proto != 58)) return false;
  uint8_t t = b[l4];
  return proto == 1 ? t != 0 && t != 8 : t != 128 && t != 129;
}
// An ICMP redirect (IPv4 type 5, ICMPv6 137): the router's own message when
// a packet leaves by the interface it came in by (a hairpin DNAT), sent by
// the kernel's forwarding path under its per-peer rate limit in both
// testbeds alike, never the error a responder sent.
bool is_redirect(const std::vector<uint8_t>& b) {
  if (b.empty()) return false;
  size_t l4 = (b[0] >> 4) == 4 ? (size_t)(b[0] & 0xf) * 4 : 40;
  uint8_t proto = (b[0] >> 4) == 4 ? b[9] : b.size() > 6 ? b[6] : 0;
  return b.size() > l4 && ((proto == 1 && b[l4] == 5) || (proto == 58 && b[l4] == 137));
}

struct Obs {
  Side side;
  std::vector<uint8_t> ip;  // from the IP header on
};

class NatBed {
 public:
  NatBed(NatMode mode, const std::string& tag) : mode_(mode), tag_(tag) {
    cli_ = std::make_unique<Netns>("cli-" + tag);
    srv_ = std::make_unique<Netns>("srv-" + tag);
    quiet_sysctls(*cli_);
    quiet_sysctls(*srv_);
    if (mode == NatMode::Host)
      host();
    else
      router();
  }
  ~NatBed() {
    for (int fd : {cli_packet_, srv_packet_, srv_raw4_, srv_raw6_})
      if (fd >= 0) close(fd);
    for (int fd : srv_obs_) close(fd);
  }

  const Netns& filter_ns() const { return mode_ == NatMode::Host ? *srv_ : *rtr_; }

  std::string load(const std::string& ruleset, int family, Reference ref, bool nf2bpf, const std::string& bin) {
    std::string path = "/tmp/nf2bpf-dtnat-" + std::to_string(getpid()) + "-" + std::to_string(counter++) + ".rules";
    std::ofstream(path) << ruleset;
    std::string out;
    int rc;
    if (!nf2bpf)
      rc = ref == Reference::Nft
               ? filter_ns().sh("nft -f " + path, &out)
               : filter_ns().sh(std::string(family == 4 ? "iptables-restore" : "ip6tables-restore") + " < " + path,
                                &out);
    else
      rc = filter_ns().sh(
          bin + " apply" + (mode_ == NatMode::Host ? " --iface s0" : " --iface r0 --iface r1") + " " + path, &out);
    unlink(path.c_str());
    return rc == 0 ? "" : out.empty() ? "exit " + std::to_string(rc) : out;
  }

  void send(Side from, const std::vector<uint8_t>& ip) {
    int fam = ip[0] >> 4;
    if (from == Side::Srv && mode_ == NatMode::Host) {
      sockaddr_storage ss{};
      socklen_t len;
      if (fam == 4) {
        auto* sin = (sockaddr_in*)&ss;
        sin->sin_family = AF_INET;
        std::memcpy(&sin->sin_addr, ip.data() + 16, 4);
        len = sizeof(sockaddr_in);
      } else {
        auto* sin6 = (sockaddr_in6*)&ss;
        sin6->sin6_family = AF_INET6;
        std::memcpy(&sin6->sin6_addr, ip.data() + 24, 16);
        len = sizeof(sockaddr_in6);
      }
      // EPERM is the OUTPUT chain dropping it: an observation, not an error.
      (void)sendto(fam == 4 ? srv_raw4_ : srv_raw6_, ip.data(), ip.size(), 0, (sockaddr*)&ss, len);
      return;
    }
    bool cli = from == Side::Cli;
    auto dst = mac_bytes(cli ? (mode_ == NatMode::Host ? kMacS0 : kMacR0) : kMacR1);
    auto src = mac_bytes(cli ? kMacC0 : kMacS0);
    std::vector<uint8_t> frame = dst;
    frame.insert(frame.end(), src.begin(), src.end());
    uint16_t type = fam == 4 ? ETH_P_IP : ETH_P_IPV6;
    frame.push_back((uint8_t)(type >> 8));
    frame.push_back((uint8_t)type);
    frame.insert(frame.end(), ip.begin(), ip.end());
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_ifindex = (int)(cli ? c0_ : s0_);
    sll.sll_halen = 6;
    std::memcpy(sll.sll_addr, dst.data(), 6);
    if (sendto(cli ? cli_packet_ : srv_packet_, frame.data(), frame.size(), 0, (sockaddr*)&sll, sizeof sll) < 0) {
      perror("difftest: inject");
      exit(2);
    }
  }

  // The packet that carries the 8-byte marker of `token`, wherever it
  // arrived (a DNAT to a client address sends it back to the client side).
  // ICMP messages the kernel makes about a probe quote its marker too (rtr's
  // redirect when a DNAT sends a packet back out of the interface it came
  // in by): only an ICMP error other than a redirect is looked for when one
  // is expected, and no ICMP message but echo otherwise. (Whether a redirect
  // goes out depends on the kernel's per-peer token bucket, which the two
  // testbeds fill at their own pace: seed 71683586 packet 199 met one in
  // one testbed and not in the other.)
  std::optional<Obs> observe(uint32_t token, bool want_error, int wait_ms) {
    const auto tok = token_bytes(token);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
    for (;;) {
      for (size_t i = 0; i < seen_.size(); ++i) {
        const auto& b = seen_[i].ip;
        if (std::search(b.begin(), b.end(), tok.begin(), tok.end()) != b.end() && is_error(b) == want_error &&
            !is_redirect(b)) {
          Obs o = seen_[i];
          seen_.erase(seen_.begin() + (long)i);
          return o;
        }
      }
      int left = (int)std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now())
                     .count();
      if (left <= 0) return std::nullopt;
      std::vector<pollfd> fds = {{cli_packet_, POLLIN, 0}};
      if (srv_packet_ >= 0) fds.push_back({srv_packet_, POLLIN, 0});
      for (int fd : srv_obs_) fds.push_back({fd, POLLIN, 0});
      if (poll(fds.data(), fds.size(), left) <= 0) return std::nullopt;
      drain_packet(cli_packet_, Side::Cli);
      if (srv_packet_ >= 0) drain_packet(srv_packet_, Side::Srv);
      for (size_t i = 0; i < srv_obs_.size(); ++i) drain_raw(srv_obs_[i], i < 3 ? 4 : 6, srv_obs_proto_[i]);
    }
  }

 private:
  NatMode mode_;
  std::string tag_;
  std::unique_ptr<Netns> cli_, rtr_, srv_;
  int cli_packet_ = -1, srv_packet_ = -1, srv_raw4_ = -1, srv_raw6_ = -1;
  std::vector<int> srv_obs_, srv_obs_proto_;
  unsigned c0_ = 0, s0_ = 0;
  std::vector<Obs> seen_;

  void router() {
    rtr_ = std::make_unique<Netns>("rtr-" + tag_);
    quiet_sysctls(*rtr_);
    run("ip link add c0 netns " + cli_->name() + " address " + kMacC0 + " type veth peer name r0 netns " +
        rtr_->name() + " address " + kMacR0);
    run("ip link add r1 netns " + rtr_->name() + " address " + kMacR1 + " type veth peer name s0 netns " +
        srv_->name() + " address " + kMacS0);
    const Netns& r = *rtr_;
    r.must("ip addr add 10.201.1.254/24 dev r0 && ip -6 addr add fd00:201:1::fe/64 dev r0 nodad && ip link set r0 up");
    // The primary address of r1 first: MASQUERADE picks it.
    r.must("ip addr add 10.201.2.254/24 dev r1 && ip -6 addr add fd00:201:2::fe/64 dev r1 nodad");
    for (const auto& a : span("10.201.2.250", 4)) r.must("ip addr add " + a + "/24 dev r1");
    for (const auto& a : span("fd00:201:2::fa", 4)) r.must("ip -6 addr add " + a + "/64 dev r1 nodad");
    r.must("ip link set r1 up && sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1");
    r.must("ip route add 192.0.2.0/24 via 10.201.1.1 && ip route add 198.51.100.0/24 via 10.201.2.1");
    r.must("ip -6 route add 2001:db8::/64 via fd00:201:1::1 && ip -6 route add 2001:db8:1::/64 via fd00:201:2::1");
    // Service addresses that no rule rewrites go on to srv's side (and are
    // seen there unchanged).
    r.must("ip route add 10.201.9.0/24 via 10.201.2.1 && ip -6 route add fd00:201:9::/64 via fd00:201:2::1");
    for (const auto& a : {"10.201.1.1", "10.201.1.7", "fd00:201:1::1", "fd00:201:1::7"})
      r.must(std::string("ip neigh replace ") + a + " lladdr " + kMacC0 + " dev r0 nud permanent");
    for (const auto& a : span("10.201.2.1", 9))
      r.must("ip neigh replace " + a + " lladdr " + kMacS0 + " dev r1 nud permanent");
    for (const auto& a : span("fd00:201:2::1", 9))
      r.must("ip neigh replace " + a + " lladdr " + kMacS0 + " dev r1 nud permanent");
    // NETMAP onto 10.201.2.0/24 keeps host bits: 198.51.100.200 becomes .200.
    for (const auto& a : {"10.201.2.200", "fd00:201:2::200"})
      r.must(std::string("ip neigh replace ") + a + " lladdr " + kMacS0 + " dev r1 nud permanent");
    silence(*cli_, "c0");
    silence(*srv_, "s0");
    c0_ = cli_->ifindex("c0");
    s0_ = srv_->ifindex("s0");
    cli_packet_ = packet_socket(*cli_, c0_);
    srv_packet_ = packet_socket(*srv_, s0_);
  }

  void host() {
    run("ip link add c0 netns " + cli_->name() + " address " + kMacC0 + " type veth peer name s0 netns " +
        srv_->name() + " address " + kMacS0);
    const Netns& s = *srv_;
    s.must(
        "ip addr add 10.200.0.2/16 dev s0 noprefixroute && ip -6 addr add fd00:200::2/64 dev s0 nodad noprefixroute");
    for (const auto& a : {"10.200.0.3", "10.200.0.4"})
      s.must(std::string("ip addr add ") + a + "/16 dev s0 noprefixroute");
    for (const auto& a : {"fd00:200::3", "fd00:200::4"})
      s.must(std::string("ip -6 addr add ") + a + "/64 dev s0 nodad noprefixroute");
    s.must("ip link set s0 up");
    // A host that does not forward, except on lo: nat OUTPUT's new route
    // for the host's own connection to its own address (its first route:
    // lo) is found by bpf_fib_lookup only where lo forwards
    // (docs/nat-design.md); the kernel's routing is the same either way.
    s.must("sysctl -qw net.ipv4.conf.lo.forwarding=1 net.ipv6.conf.lo.forwarding=1");
    s.must(
        "ip route add 10.200.0.0/16 dev s0 table 100 && ip route add default via 10.200.0.1 dev s0 onlink table 100");
    s.must(
        "ip -6 route add fd00:200::/64 dev s0 table 100 && ip -6 route add default via fd00:200::1 dev s0 onlink table "
        "100");
    s.must("ip rule add fwmark 0x100 lookup 100 && ip -6 rule add fwmark 0x100 lookup 100");
    for (const auto& a : {"10.200.0.1", "10.200.0.7", "10.200.5.5", "10.200.5.6", "10.200.5.7", "10.200.5.8"})
      s.must(std::string("ip neigh replace ") + a + " lladdr " + kMacC0 + " dev s0 nud permanent");
    for (const auto& a :
         {"fd00:200::1", "fd00:200::7", "fd00:200::5:5", "fd00:200::5:6", "fd00:200::5:7", "fd00:200::5:8"})
      s.must(std::string("ip -6 neigh replace ") + a + " lladdr " + kMacC0 + " dev s0 nud permanent");
    silence(*cli_, "c0");
    c0_ = cli_->ifindex("c0");
    cli_packet_ = packet_socket(*cli_, c0_);
    srv_raw4_ = srv_->socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
    srv_raw6_ = srv_->socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
    for (int fd : {srv_raw4_, srv_raw6_})
      if (setsockopt(fd, SOL_SOCKET, SO_MARK, &kReplyMark, sizeof kReplyMark) != 0) {
        perror("difftest: SO_MARK");
        exit(2);
      }
    for (int p : {(int)IPPROTO_TCP, (int)IPPROTO_UDP, (int)IPPROTO_ICMP}) {
      srv_obs_.push_back(srv_->socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, p));
      srv_obs_proto_.push_back(p);
    }
    for (int p : {(int)IPPROTO_TCP, (int)IPPROTO_UDP, (int)IPPROTO_ICMPV6}) {
      int fd = srv_->socket(AF_INET6, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, p);
      int one = 1;
      setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one);
      setsockopt(fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, &one, sizeof one);
      srv_obs_.push_back(fd);
      srv_obs_proto_.push_back(p);
    }
  }

  void drain_packet(int fd, Side side) {
    uint8_t buf[65536];
    for (;;) {
      sockaddr_ll sll{};
      socklen_t sl = sizeof sll;
      ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (sockaddr*)&sll, &sl);
      if (n <= 0) return;
      if (sll.sll_pkttype == PACKET_OUTGOING || n < 14) continue;
      seen_.push_back({side, std::vector<uint8_t>(buf + 14, buf + n)});
    }
  }

  void drain_raw(int fd, int fam, int proto) {
    uint8_t buf[65536];
    for (;;) {
      sockaddr_in6 from{};
      iovec iov{buf, sizeof buf};
      alignas(cmsghdr) char cbuf[256];
      msghdr mh{};
      mh.msg_name = &from;
      mh.msg_namelen = sizeof from;
      mh.msg_iov = &iov;
      mh.msg_iovlen = 1;
      mh.msg_control = cbuf;
      mh.msg_controllen = sizeof cbuf;
      ssize_t n = recvmsg(fd, &mh, 0);
      if (n <= 0) return;
      if (fam == 4) {
        seen_.push_back({Side::Srv, std::vector<uint8_t>(buf, buf + n)});
        continue;
      }
      // IPv6 raw sockets give the payload only: rebuild the header.
      std::vector<uint8_t> ip(40, 0);
      ip[0] = 0x60;
      ip[4] = (uint8_t)(n >> 8);
      ip[5] = (uint8_t)n;
      ip[6] = (uint8_t)proto;
      std::memcpy(ip.data() + 8, &from.sin6_addr, 16);
      for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != IPPROTO_IPV6) continue;
        if (c->cmsg_type == IPV6_PKTINFO) std::memcpy(ip.data() + 24, &((in6_pktinfo*)CMSG_DATA(c))->ipi6_addr, 16);
        if (c->cmsg_type == IPV6_HOPLIMIT) ip[7] = (uint8_t) * (int*)CMSG_DATA(c);
      }
      ip.insert(ip.end(), buf, buf + n);
      seen_.push_back({Side::Srv, ip});
    }
  }
};

// ---- reading what arrived ----------------------------------------------------

struct Hdr {
  int fam = 0;
  uint8_t proto = 0;
  std::string src, dst;
  size_t at = 0, l4 = 0, end = 0;  // IP header, L4 header, end of the packet
  bool cut = false;                // shorter than its IP length says (a quote)
};

std::optional<Hdr> parse(const std::vector<uint8_t>& b, size_t at = 0) {
  Hdr h;
  h.at = at;
  if (b.size() < at + 20) return std::nullopt;
  h.fam = b[at] >> 4;
  char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN];
  size_t declared;
  if (h.fam == 4) {
    h.proto = b[at + 9];
    h.l4 = at + (size_t)(b[at] & 0xf) * 4;
    declared = at + (size_t)((b[at + 2] << 8) | b[at + 3]);
    inet_ntop(AF_INET, b.data() + at + 12, s, sizeof s);
    inet_ntop(AF_INET, b.data() + at + 16, d, sizeof d);
  } else if (h.fam == 6 && b.size() >= at + 40) {
    h.proto = b[at + 6];
    h.l4 = at + 40;
    declared = at + 40 + (size_t)((b[at + 4] << 8) | b[at + 5]);
    inet_ntop(AF_INET6, b.data() + at + 8, s, sizeof s);
    inet_ntop(AF_INET6, b.data() + at + 24, d, sizeof d);
  } else {
    return std::nullopt;
  }
  if (h.l4 + 8 > b.size()) return std::nullopt;
  h.cut = declared > b.size();
  h.end = std::min(declared, b.size());
  h.src = s;
  h.dst = d;
  return h;
}

uint16_t get16(const std::vector<uint8_t>& b, size_t at) { return (uint16_t)((b[at] << 8) | b[at + 1]); }
bool is_icmp(uint8_t p) { return p == 1 || p == 58; }
bool icmp_error_type(uint8_t proto, uint8_t type) { return proto == 1 ? type == 3 || type == 11 : type < 128; }

uint32_t sum(const uint8_t* p, size_t n, uint32_t acc = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) acc += (uint32_t)((p[i] << 8) | p[i + 1]);
  if (n & 1) acc += (uint32_t)(p[n - 1] << 8);
  return acc;
}
bool folds_ok(uint32_t acc) {
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return acc == 0xffff;
}

// The checksum problems of one IP packet (empty when all are right). A
// quoted packet that is cut short gets only its IPv4 header checked.
std::string check_sums(const std::vector<uint8_t>& b, const Hdr& h) {
  std::string bad;
  if (h.fam == 4 && !folds_ok(sum(b.data() + h.at, h.l4 - h.at))) bad += " ip-header";
  if (h.cut) return bad;
  size_t len = h.end - h.l4;
  uint32_t acc = 0;
  bool pseudo = h.proto == 6 || h.proto == 17 || h.proto == 58;
  if (pseudo) {
    size_t alen = h.fam == 4 ? 4 : 16;
    acc = sum(b.data() + h.at + (h.fam == 4 ? 12 : 8), 2 * alen);
    acc += h.proto + (uint32_t)(len & 0xffff) + (uint32_t)(len >> 16);
  }
  if (h.proto == 17 && h.fam == 4 && get16(b, h.l4 + 6) == 0) return bad;  // no UDP checksum
  if ((pseudo || h.proto == 1) && !folds_ok(sum(b.data() + h.l4, len, acc)))
    bad += h.proto == 6 ? " tcp" : h.proto == 17 ? " udp" : " icmp";
  return bad;
}

// What is compared of an arrival: where, the addresses, ports or ICMP
// type/id, and for an ICMP error the quoted packet's addresses and ports.
std::string describe(const Obs& o, std::string* sums) {
  auto h = parse(o.ip);
  if (!h) return "unparsable";
  std::string d = std::string(o.side == Side::Cli ? "at cli: " : "at srv: ");
  auto l4 = [&](const Hdr& x) {
    const auto& b = o.ip;
    if (x.proto == 6 || x.proto == 17)
      return std::string(x.proto == 6 ? "tcp " : "udp ") + x.src + " " + std::to_string(get16(b, x.l4)) + " > " +
             x.dst + " " + std::to_string(get16(b, x.l4 + 2));
    if (is_icmp(x.proto))
      return "icmp " + x.src + " > " + x.dst + " type " + std::to_string(b[x.l4]) + " code " +
             std::to_string(b[x.l4 + 1]) +
             (icmp_error_type(x.proto, b[x.l4]) ? "" : " id " + std::to_string(get16(b, x.l4 + 4)));
    return "proto " + std::to_string(x.proto) + " " + x.src + " > " + x.dst;
  };
  d += l4(*h);
  *sums = check_sums(o.ip, *h);
  if (is_icmp(h->proto) && icmp_error_type(h->proto, o.ip[h->l4])) {
    if (auto in = parse(o.ip, h->l4 + 8)) {
      d += " quoting [" + l4(*in) + "]";
      std::string ib = check_sums(o.ip, *in);
      if (!ib.empty()) *sums += " quoted" + ib;
    } else {
      d += " quoting garbage";
    }
  }
  return d;
}

ir::u128 addr_of(const std::vector<uint8_t>& b, size_t at, int fam) {
  if (fam == 4) return ir::v4_to_u128(((uint32_t)b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]);
  ir::u128 a = 0;
  for (int i = 0; i < 16; ++i) a = (a << 8) | b[at + (size_t)i];
  return a;
}

ir::u128 parse_text(const std::string& s, int fam) {
  return *ir::parse_addr(s, fam == 4 ? ir::AddrFamily::V4 : ir::AddrFamily::V6);
}

std::vector<uint8_t> token_bytes(uint32_t t) {
  return {'N', 'F', '2', 'B', (uint8_t)(t >> 24), (uint8_t)(t >> 16), (uint8_t)(t >> 8), (uint8_t)t};
}

// The initiator's packet of a step: fixed, the same in both testbeds.
std::vector<uint8_t> init_packet(const NatFlow& f, const NatStep& st, int fam) {
  verify::PacketSpec s;
  s.family = (uint8_t)fam;
  s.saddr = parse_text(f.src, fam);
  s.daddr = parse_text(f.dst, fam);
  s.proto = f.proto;
  s.sport = f.sport;
  s.dport = f.dport;
  s.tcp_flags = st.tcp_flags;
  s.seq = st.seq;
  s.ack = st.ack;
  s.icmp_type = fam == 4 ? 8 : 128;
  s.icmp_id = f.icmp_id;
  s.icmp_seq = (uint16_t)st.seq;
  s.payload = token_bytes(st.token);
  return verify::build_ip(s);
}

// The responder's packet: built from what it received (addresses and ports
// swapped), so each testbed answers what it actually delivered.
std::vector<uint8_t> reply_packet(const NatFlow& f, const NatStep& st, const Obs& got) {
  auto h = *parse(got.ip);
  verify::PacketSpec s;
  s.family = (uint8_t)h.fam;
  s.saddr = addr_of(got.ip, h.at + (h.fam == 4 ? 16 : 24), h.fam);
  s.daddr = addr_of(got.ip, h.at + (h.fam == 4 ? 12 : 8), h.fam);
  if (f.icmp_error) {
    s.proto = h.fam == 4 ? 1 : 58;
    s.icmp_type = h.fam == 4 ? 3 : 1;
    s.icmp_code = h.fam == 4 ? 3 : 4;
    s.quote = got.ip;
    return verify::build_ip(s);
  }
  s.proto = h.proto;
  if (is_icmp(h.proto)) {
    s.icmp_type = h.fam == 4 ? 0 : 129;
    s.icmp_id = get16(got.ip, h.l4 + 4);
    s.icmp_seq = get16(got.ip, h.l4 + 6);
  } else {
    s.sport = get16(got.ip, h.l4 + 2);
    s.dport = get16(got.ip, h.l4);
  }
  s.tcp_flags = st.tcp_flags;
  s.seq = st.seq;
  s.ack = st.ack;
  s.payload = token_bytes(st.token);
  return verify::build_ip(s);
}

// --nat-ranges: a rewritten field may differ between the testbeds when both
// values lie in one range some rule of the case can pick from.
bool in_some_range(const NatCase& c, const std::string& a, const std::string& b, int fam) {
  ir::u128 x = parse_text(a, fam), y = parse_text(b, fam);
  for (const auto& [lo, hi] : c.addr_ranges) {
    ir::u128 l = parse_text(lo, fam), h = parse_text(hi, fam);
    if (l <= x && x <= h && l <= y && y <= h) return true;
  }
  return false;
}
bool port_in_some_range(const NatCase& c, int a, int b) {
  for (const auto& [lo, hi] : c.port_ranges)
    if (lo <= a && a <= hi && lo <= b && b <= hi) return true;
  return false;
}

// Loose equality of two arrivals of an initiator's packet, for
// --nat-ranges: same place and protocol; each address, port and ICMP id
// equal, or else rewritten on both sides (neither kept what was sent) to
// values inside one NAT range (ids: any). Replies are never loose: reverse
// NAT restores what the initiator sent, the same on both sides.
bool loosely_equal(const NatCase& c, const NatFlow& f, const Obs& x, const Obs& y) {
  if (x.side != y.side) return false;
  auto a = parse(x.ip), b = parse(y.ip);
  if (!a || !b || a->proto != b->proto || a->fam != b->fam) return false;
  if (a->src != b->src && (a->src == f.src || b->src == f.src || !in_some_range(c, a->src, b->src, a->fam)))
    return false;
  if (a->dst != b->dst && (a->dst == f.dst || b->dst == f.dst || !in_some_range(c, a->dst, b->dst, a->fam)))
    return false;
  if (a->proto == 6 || a->proto == 17)
    for (auto [off, sent] : {std::pair{(size_t)0, (int)f.sport}, std::pair{(size_t)2, (int)f.dport}}) {
      int pa = get16(x.ip, a->l4 + off), pb = get16(y.ip, b->l4 + off);
      if (pa != pb && (pa == sent || pb == sent || !port_in_some_range(c, pa, pb))) return false;
    }
  if (is_icmp(a->proto)) {
    if (x.ip[a->l4] != y.ip[b->l4]) return false;
    int ia = get16(x.ip, a->l4 + 4), ib = get16(y.ip, b->l4 + 4);
    if (!icmp_error_type(a->proto, x.ip[a->l4]) && ia != ib && (ia == f.icmp_id || ib == f.icmp_id)) return false;
  }
  return true;
}

// Exact mode: two arrivals that differ only in a source port the kernel
// had to search for: the port sent (`sent_a`, `sent_b`) lies outside a source
// port range of the case and both arrivals' ports inside it. The kernel's
// search starts at a hashed or random offset (nf_nat_l4proto_unique_tuple),
// so any free port of the range is its answer. (The generator keeps the
// flows' own ports inside every source range; a reply that starts a
// connection of its own, from a responder's port, does not.)
bool searched_sport(const NatCase& c, const Obs& x, const Obs& y, int sent_a, int sent_b) {
  auto a = parse(x.ip), b = parse(y.ip);
  if (x.side != y.side || !a || !b || a->proto != b->proto || (a->proto != 6 && a->proto != 17)) return false;
  if (a->src != b->src || a->dst != b->dst || get16(x.ip, a->l4 + 2) != get16(y.ip, b->l4 + 2)) return false;
  int pa = get16(x.ip, a->l4), pb = get16(y.ip, b->l4);
  for (const auto& [lo, hi] : c.port_ranges)
    if (lo <= pa && pa <= hi && lo <= pb && pb <= hi && (sent_a < lo || sent_a > hi) && (sent_b < lo || sent_b > hi))
      return true;
  return false;
}

bool martian_at_cli(const Obs& o) {
  auto h = parse(o.ip);
  if (o.side != Side::Cli || !h) return false;
  auto loopback = [&](const std::string& a) { return h->fam == 6 ? a == "::1" : a.rfind("127.", 0) == 0; };
  return loopback(h->src) || loopback(h->dst);
}

struct FlowState {
  std::optional<Obs> last;  // the responder's last arrival of this flow
  uint32_t last_token = 0;
};

void print_hex(const std::vector<uint8_t>& b) {
  for (uint8_t byte : b) printf("%02x", byte);
  printf("\n");
}

}  // namespace

int run_nat(const NatOptions& o, const NatRun& run) {
  int disagreements = 0, total = 0, arrived = 0, replies = 0, loose = 0;
  // What netfilter's arrivals show was exercised: initiator packets whose
  // destination / source was rewritten, ICMP errors delivered.
  int dnated = 0, snated = 0, errors = 0;
  for (int ci = 0; ci < run.cases; ++ci) {
    uint64_t seed = run.seed + (uint64_t)ci;
    NatCase cs = random_nat_case(seed, o, run.packets);
    if (!run.ruleset.empty()) {
      std::ifstream in(run.ruleset);
      if (!in) {
        fprintf(stderr, "difftest: cannot read %s\n", run.ruleset.c_str());
        return -1;
      }
      cs.ruleset.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      cs.mutant = cs.ruleset;
    }
    bool b_nf = run.self_check;
    NatBed a(o.mode, "nf"), b(o.mode, b_nf ? "nf2" : "bpf");
    if (auto err = a.load(cs.ruleset, o.family, o.ref, false, run.bin); !err.empty()) {
      fprintf(stderr, "difftest: case seed %llu: netfilter rejected the generated ruleset:\n%s\n%s",
              (unsigned long long)seed, err.c_str(), cs.ruleset.c_str());
      return -1;
    }
    const std::string& rb = run.mutate ? cs.mutant : cs.ruleset;
    if (auto err = b.load(rb, o.family, o.ref, !b_nf, run.bin); !err.empty()) {
      printf("FAIL case seed %llu: %s failed:\n%s\nruleset:\n%s", (unsigned long long)seed,
             b_nf ? "loading the second netfilter testbed" : "nf2bpf apply", err.c_str(), rb.c_str());
      ++disagreements;
      continue;
    }
    const char* na = "netfilter";
    const char* nb = b_nf ? (run.mutate ? "netfilter (mutant)" : "netfilter (twin)") : "nf2bpf";
    std::vector<FlowState> fa(cs.flows.size()), fb(cs.flows.size());
    int case_diffs = 0;
    // --nat-ranges: the addresses each side picked inside each multi-address
    // range, for a loose look at the spread (below).
    std::map<std::pair<std::string, std::string>, std::array<std::set<std::string>, 2>> picks;
    std::map<std::pair<std::string, std::string>, int> picks_a;
    for (size_t k = 0; k < cs.steps.size(); ++k) {
      const NatStep& st = cs.steps[k];
      const NatFlow& f = cs.flows[(size_t)st.flow];
      // Send in each testbed; a reply only where its responder got something.
      auto send = [&](NatBed& bed, FlowState& fs) -> std::optional<uint32_t> {
        if (st.from_init) {
          bed.send(f.init, init_packet(f, st, o.family));
          return st.token;
        }
        if (!fs.last) return std::nullopt;
        bed.send(fs.last->side, reply_packet(f, st, *fs.last));
        return f.icmp_error ? fs.last_token : st.token;  // an ICMP error is found by the packet it quotes
      };
      auto ta = send(a, fa[(size_t)st.flow]);
      auto tb = send(b, fb[(size_t)st.flow]);
      std::optional<Obs> oa, ob;
      bool err = !st.from_init && f.icmp_error;
      if (ta) oa = a.observe(*ta, err, 3);
      if (tb) ob = b.observe(*tb, err, 3);
      if (ta && tb && oa.has_value() != ob.has_value()) {  // rule out a slow delivery
        if (!oa) oa = a.observe(*ta, err, 100);
        if (!ob) ob = b.observe(*tb, err, 100);
      }
      // A loopback address on the wire: the client's stack drops it as a
      // martian before any socket sees it (netfilter lets a reply to a flow
      // redirected to ::1 out that way), so it did not arrive.
      for (auto* x : {&oa, &ob})
        if (*x && martian_at_cli(**x)) x->reset();
      ++total;
      replies += !st.from_init;
      arrived += oa.has_value();
      if (oa && st.from_init)
        if (auto h = parse(oa->ip)) {
          bool l4 = h->proto == 6 || h->proto == 17;
          dnated += h->dst != f.dst || (l4 && get16(oa->ip, h->l4 + 2) != f.dport);
          snated += h->src != f.src || (l4 && get16(oa->ip, h->l4) != f.sport);
        }
      errors += oa && err;
      if (st.from_init) {
        if (oa) fa[(size_t)st.flow].last = oa, fa[(size_t)st.flow].last_token = st.token;
        if (ob) fb[(size_t)st.flow].last = ob, fb[(size_t)st.flow].last_token = st.token;
      }
      std::string sa, sb, da, db;
      if (oa) da = describe(*oa, &sa);
      if (ob) db = describe(*ob, &sb);
      auto what = [&](const std::optional<uint32_t>& t, const std::optional<Obs>& ob_, const std::string& d) {
        return !t     ? std::string("not sent (the responder had received nothing of the flow)")
               : !ob_ ? std::string("did not arrive")
                      : d;
      };
      bool same = ta.has_value() == tb.has_value() && oa.has_value() == ob.has_value() && (!oa || da == db);
      if (!same && oa && ob && o.ranges && st.from_init && loosely_equal(cs, f, *oa, *ob)) {
        same = true;
        ++loose;
        if (run.verbose) printf("  loose %zu: %s | %s\n", k + 1, da.c_str(), db.c_str());
      }
      if (!same && oa && ob && !o.ranges) {
        // The source port each side sent: the flow's, or for a reply the
        // port its responder received on.
        auto sent = [&](const FlowState& fs) {
          if (st.from_init || !fs.last) return (int)f.sport;
          auto h = parse(fs.last->ip);
          return h ? get16(fs.last->ip, h->l4 + 2) : -1;
        };
        if (searched_sport(cs, *oa, *ob, sent(fa[(size_t)st.flow]), sent(fb[(size_t)st.flow]))) {
          same = true;
          ++loose;
          if (run.verbose) printf("  port search %zu: %s | %s\n", k + 1, da.c_str(), db.c_str());
        }
      }
      std::string label = std::string(f.init == Side::Cli ? "flow from cli" : "flow from srv") + " " + f.src + " > " +
                          f.dst + ", " + st.what;
      if (!same) {
        ++case_diffs;
        printf("DIFF case seed %llu packet %zu (%s):\n  %s: %s\n  %s: %s\n", (unsigned long long)seed, k + 1,
               label.c_str(), na, what(ta, oa, da).c_str(), nb, what(tb, ob, db).c_str());
      }
      for (auto [name, bad, obs] : {std::tuple{na, sa, &oa}, std::tuple{nb, sb, &ob}}) {
        if (bad.empty()) continue;
        ++case_diffs;
        printf("DIFF case seed %llu packet %zu (%s): bad checksum (%s) in what %s delivered: ",
               (unsigned long long)seed, k + 1, label.c_str(), bad.c_str() + 1, name);
        print_hex((*obs)->ip);
      }
      // Only addresses a NAT rewrote count (an initiator's packet whose
      // source or destination changed on the way).
      if (o.ranges && oa && ob && same && st.from_init) {
        auto ha = parse(oa->ip), hb = parse(ob->ip);
        for (const auto& rg : cs.addr_ranges) {
          if (rg.first == rg.second || !ha || !hb) continue;
          NatCase one{.addr_ranges = {rg}};
          for (auto [x, y, sent] : {std::tuple{ha->src, hb->src, f.src}, std::tuple{ha->dst, hb->dst, f.dst}}) {
            if (x != sent && in_some_range(one, x, x, o.family)) picks[rg][0].insert(x), ++picks_a[rg];
            if (y != sent && in_some_range(one, y, y, o.family)) picks[rg][1].insert(y);
          }
        }
      }
      if (same && run.verbose) printf("  ok %zu %s: %s\n", k + 1, label.c_str(), what(ta, oa, da).c_str());
    }
    // Loose spread check: where netfilter used several addresses of a range
    // over enough packets, the other side must not have used only one.
    for (const auto& [rg, sets] : picks)
      if (picks_a[rg] >= 4 && sets[0].size() >= 2 && sets[1].size() < 2) {
        ++case_diffs;
        printf("DIFF case seed %llu: %s used %zu addresses of %s-%s over %d packets, %s only %s\n",
               (unsigned long long)seed, na, sets[0].size(), rg.first.c_str(), rg.second.c_str(), picks_a[rg], nb,
               sets[1].empty() ? "(none rewritten)" : sets[1].begin()->c_str());
      }
    disagreements += case_diffs;
    if (case_diffs) {
      printf("ruleset of case seed %llu:\n%s\n", (unsigned long long)seed, cs.ruleset.c_str());
      if (run.mutate) printf("mutant loaded by the second testbed:\n%s\n", cs.mutant.c_str());
    } else if (run.verbose) {
      printf("case seed %llu: %zu packets agree\n", (unsigned long long)seed, cs.steps.size());
    }
    fflush(stdout);
  }
  printf(
      "difftest nat: %d rulesets, %d packets (%d replies), %d arrived in netfilter (%d with destination NAT, %d with "
      "source NAT, %d ICMP errors), ",
      run.cases, total, replies, arrived, dnated, snated, errors);
  if (o.ranges)
    printf("%d differed inside a NAT range, ", loose);
  else if (loose)
    printf("%d differed only in a source port the kernel searched for, ", loose);
  printf("%d disagreements (seed %llu)\n", disagreements, (unsigned long long)run.seed);
  return disagreements;
}

}  // namespace nf2bpf::difftest
