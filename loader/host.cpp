#include <algorithm>
#include "loader/host.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <fcntl.h>
#include <sched.h>
#include <linux/netlink.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <thread>

#include "translator/ir/ir.h"

namespace nf2bpf::loader {

Result<std::vector<Interface>> list_interfaces() {
  struct if_nameindex* ni = if_nameindex();
  if (!ni) return sys_error("list network interfaces");
  std::vector<Interface> out;
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  for (auto* p = ni; p->if_index != 0; ++p) {
    Interface i{p->if_name, p->if_index};
    ifreq r{};
    std::snprintf(r.ifr_name, sizeof r.ifr_name, "%s", p->if_name);
    if (fd >= 0 && ioctl(fd, SIOCGIFFLAGS, &r) == 0) i.up = (r.ifr_flags & IFF_UP) != 0;
    out.push_back(i);
  }
  if (fd >= 0) close(fd);
  if_freenameindex(ni);
  return out;
}

static ir::u128 from_sockaddr(const sockaddr* sa) {
  if (sa->sa_family == AF_INET) return ir::v4_to_u128(ntohl(((const sockaddr_in*)sa)->sin_addr.s_addr));
  ir::u128 v = 0;
  const auto* b = ((const sockaddr_in6*)sa)->sin6_addr.s6_addr;
  for (int i = 0; i < 16; ++i) v = (v << 8) | b[i];
  return v;
}

Result<std::vector<AddrTypeEntry>> address_types() {
  std::vector<AddrTypeEntry> out = {
      {ir::v4_to_u128(0), 96 + 8, ir::kAddrBroadcast},           // 0.0.0.0/8 (zeronet)
      {ir::v4_to_u128(0xffffffff), 128, ir::kAddrBroadcast},     // limited broadcast
      {ir::v4_to_u128(0xe0000000), 96 + 4, ir::kAddrMulticast},  // 224.0.0.0/4
      {(ir::u128)0xff << 120, 8, ir::kAddrMulticast},            // ff00::/8
      {0, 128, ir::kAddrUnspec},                                 // ::
  };
  struct ifaddrs* ifa = nullptr;
  if (getifaddrs(&ifa) != 0) return sys_error("list interface addresses");
  std::vector<ir::u128> locals;
  for (auto* p = ifa; p; p = p->ifa_next) {
    if (!p->ifa_addr || (p->ifa_addr->sa_family != AF_INET && p->ifa_addr->sa_family != AF_INET6)) continue;
    ir::u128 a = from_sockaddr(p->ifa_addr);
    bool v4 = p->ifa_addr->sa_family == AF_INET;
    if (v4 && (p->ifa_flags & IFF_LOOPBACK) && p->ifa_netmask) {
      // The local table routes the whole loopback subnet (127/8) as local.
      uint32_t mask = ntohl(((sockaddr_in*)p->ifa_netmask)->sin_addr.s_addr);
      unsigned len = (unsigned)__builtin_popcount(mask);
      out.push_back({a & ~((ir::u128)0xffffffff >> len), (uint8_t)(96 + len), ir::kAddrLocal});
    }
    locals.push_back(a);
    // getifaddrs reports the address itself as "broadcast" when none was
    // configured; the local table has a broadcast route only for a real one.
    if (v4 && (p->ifa_flags & IFF_BROADCAST) && p->ifa_broadaddr) {
      ir::u128 b = from_sockaddr(p->ifa_broadaddr);
      if (b != a && b != ir::v4_to_u128(0)) out.push_back({b, 128, ir::kAddrBroadcast});
    }
  }
  freeifaddrs(ifa);
  // Local addresses last: a host's own address is LOCAL whatever else claims it.
  for (const auto& a : locals) out.push_back({a, 128, ir::kAddrLocal});
  return out;
}

Result<std::vector<InterfaceAddress>> interface_addresses() {
  struct ifaddrs* ifa = nullptr;
  if (getifaddrs(&ifa) != 0) return sys_error("list interface addresses");
  std::vector<InterfaceAddress> out;
  for (auto* p = ifa; p; p = p->ifa_next) {
    if (!p->ifa_addr || (p->ifa_addr->sa_family != AF_INET && p->ifa_addr->sa_family != AF_INET6)) continue;
    uint32_t ifindex = if_nametoindex(p->ifa_name);
    uint8_t fam = p->ifa_addr->sa_family == AF_INET ? 4 : 6;
    ir::u128 a = from_sockaddr(p->ifa_addr);
    if (fam == 6 && (a >> 118) == 0x3fa) continue;  // fe80::/10
    bool seen = std::any_of(out.begin(), out.end(),
                            [&](const InterfaceAddress& x) { return x.ifindex == ifindex && x.family == fam; });
    if (ifindex && !seen) out.push_back({ifindex, fam, a});
  }
  freeifaddrs(ifa);
  return out;
}

uint32_t addrtype_of(const std::vector<AddrTypeEntry>& entries, const ir::u128& a) {
  int best = -1;
  uint32_t type = ir::kAddrUnicast;
  for (const auto& e : entries) {
    ir::u128 mask = e.prefixlen == 0 ? 0 : (e.prefixlen >= 128 ? ir::kU128Max : ~(ir::kU128Max >> e.prefixlen));
    if ((a & mask) == (e.addr & mask) && (int)e.prefixlen > best) {
      best = e.prefixlen;
      type = e.type;
    }
  }
  return type;
}

Result<uint64_t> netns_id() {
  struct stat st {};
  if (stat("/proc/self/ns/net", &st) != 0) return sys_error("stat /proc/self/ns/net");
  return (uint64_t)st.st_ino;
}

namespace {

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

Result<uint64_t> cookie_here() {
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return sys_error("create a socket to read the network namespace cookie");
  uint64_t cookie = 0;
  socklen_t len = sizeof cookie;
  int rc = getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len);
  int e = errno;
  close(fd);
  if (rc != 0) return Error{e, "read the network namespace cookie (SO_NETNS_COOKIE needs Linux 5.14)"};
  return cookie;
}

}  // namespace

Result<uint64_t> netns_cookie() { return cookie_here(); }

Result<uint64_t> netns_cookie_of(const std::string& path) {
  int nsfd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (nsfd < 0) return sys_error("open " + path);
  // setns changes the calling thread's namespace only: a thread of its own
  // looks, and ends.
  Result<uint64_t> out = Error{EINVAL, "read the cookie of " + path};
  std::thread t([&] {
    if (setns(nsfd, CLONE_NEWNET) != 0) {
      out = sys_error("enter the network namespace " + path);
      return;
    }
    out = cookie_here();
  });
  t.join();
  close(nsfd);
  return out;
}

std::string boot_id() {
  int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  char buf[64] = {};
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  std::string s = n > 0 ? std::string(buf, (size_t)n) : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

Result<std::vector<TcFilter>> tc_filters(uint32_t ifindex, bool ingress) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return sys_error("open a netlink socket");
  struct {
    nlmsghdr nh;
    tcmsg tc;
  } req{};
  req.nh.nlmsg_len = sizeof req;
  req.nh.nlmsg_type = RTM_GETTFILTER;
  req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  req.nh.nlmsg_seq = 1;
  req.tc.tcm_family = AF_UNSPEC;
  req.tc.tcm_ifindex = (int)ifindex;
  req.tc.tcm_parent = TC_H_MAKE(TC_H_CLSACT, ingress ? TC_H_MIN_INGRESS : TC_H_MIN_EGRESS);
  std::string what =
      std::string("list the tc ") + (ingress ? "ingress" : "egress") + " filters of ifindex " + std::to_string(ifindex);
  if (send(fd, &req, sizeof req, 0) < 0) {
    auto e = sys_error(what);
    close(fd);
    return e;
  }
  std::vector<TcFilter> out;
  std::vector<char> buf(1 << 16);
  for (bool done = false; !done;) {
    ssize_t n = recv(fd, buf.data(), buf.size(), 0);
    if (n < 0) {
      auto e = sys_error(what);
      close(fd);
      return e;
    }
    for (auto* nh = (nlmsghdr*)buf.data(); NLMSG_OK(nh, (size_t)n); nh = NLMSG_NEXT(nh, n)) {
      if (nh->nlmsg_type == NLMSG_DONE) {
        done = true;
        break;
      }
      if (nh->nlmsg_type == NLMSG_ERROR) {
        int err = -((nlmsgerr*)NLMSG_DATA(nh))->error;
        close(fd);
        if (err == EINVAL || err == ENOENT) return out;  // no clsact qdisc: no filters
        return Error{err, what};
      }
      if (nh->nlmsg_type != RTM_NEWTFILTER) continue;
      auto* tc = (tcmsg*)NLMSG_DATA(nh);
      TcFilter f;
      f.pref = TC_H_MAJ(tc->tcm_info) >> 16;
      f.handle = tc->tcm_handle;
      int len = (int)nh->nlmsg_len - (int)NLMSG_LENGTH(sizeof *tc);
      for (auto* a = (rtattr*)((char*)tc + NLMSG_ALIGN(sizeof *tc)); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
        if (a->rta_type == TCA_KIND) f.kind = (const char*)RTA_DATA(a);
        if (a->rta_type == TCA_OPTIONS) {
          int ol = (int)RTA_PAYLOAD(a);
          for (auto* o = (rtattr*)RTA_DATA(a); RTA_OK(o, ol); o = RTA_NEXT(o, ol))
            if (o->rta_type == TCA_BPF_NAME && f.kind == "bpf") f.name = (const char*)RTA_DATA(o);
        }
      }
      // A dump lists each filter's chain head too (no handle): skip it.
      if (f.handle) out.push_back(std::move(f));
    }
  }
  close(fd);
  return out;
}

}  // namespace nf2bpf::loader
