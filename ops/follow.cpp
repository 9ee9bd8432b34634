#include "ops/follow.h"

#include <libmnl/libmnl.h>
#include <linux/rtnetlink.h>
#include <poll.h>

#include <vector>

#include "ops/deploy.h"

namespace nf2bpf::ops {

Result<std::vector<std::string>> cover_uncovered(const std::string& pin_dir) {
  auto dp = find_dataplane(pin_dir);
  if (!dp) return dp.error();
  if (!*dp) return Error{0, "no dataplane is loaded in this network namespace"};
  auto left = uncovered_now(**dp);
  if (!left) return left.error();
  std::vector<std::string> out;
  if (left->empty()) {
    // Interfaces removed since: attaching to the rest forgets them.
    if (auto gone = gone_now(**dp); gone && !gone->empty())
      if (auto r = cover(**dp, {}); !r) return r.error();
    return out;
  }
  if (auto r = cover(**dp, *left); !r) return r.error();
  for (const auto& i : *left) out.push_back(i.name);
  return out;
}

namespace {

// Whether the datagram holds a link notification (new, changed or gone).
bool link_event(const char* buf, ssize_t n) {
  bool any = false;
  for (auto* h = (const nlmsghdr*)buf; mnl_nlmsg_ok(h, (int)n); h = mnl_nlmsg_next(h, (int*)&n))
    any |= h->nlmsg_type == RTM_NEWLINK || h->nlmsg_type == RTM_DELLINK;
  return any;
}

void pass(const FollowOptions& o) {
  auto r = cover_uncovered(o.pin_dir);
  if (!r) {
    o.log("could not cover new interfaces: " + r.error().message());
    return;
  }
  for (const auto& n : *r) o.log("attached to " + n);
}

}  // namespace

Result<void> follow(const FollowOptions& o) {
  // Subscribe first: an interface that appears during the first pass is
  // still heard of.
  mnl_socket* nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (!nl) return sys_error("open a rtnetlink socket");
  if (mnl_socket_bind(nl, RTMGRP_LINK, MNL_SOCKET_AUTOPID) < 0) {
    auto e = sys_error("subscribe to link notifications");
    mnl_socket_close(nl);
    return e;
  }
  if (auto first = find_dataplane(o.pin_dir); !first || !*first) {
    mnl_socket_close(nl);
    if (!first) return first.error();
    return Error{0, "no dataplane is loaded in this network namespace: apply a policy first"};
  }
  pass(o);
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  while (!o.stop || !o.stop->load()) {
    pollfd p{mnl_socket_get_fd(nl), POLLIN, 0};
    int rc = poll(&p, 1, 200);
    if (rc <= 0) continue;  // timeout or EINTR: look at `stop`
    bool changed = false;
    for (;;) {
      ssize_t n = mnl_socket_recvfrom(nl, buf.data(), buf.size());
      if (n < 0) {
        // ENOBUFS: notifications were lost; a pass finds what they said.
        if (errno == ENOBUFS) changed = true;
        break;
      }
      changed |= link_event(buf.data(), n);
    }
    if (changed) pass(o);
  }
  mnl_socket_close(nl);
  return {};
}

}  // namespace nf2bpf::ops
