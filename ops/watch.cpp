#include "ops/watch.h"

#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <poll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <vector>

namespace nf2bpf::ops {

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

// Where change notifications come from: one file descriptor, and a function
// that drains it, counting the events that are changes.
struct Listener {
  int fd = -1;
  mnl_socket* nl = nullptr;
  std::string name;  // inotify: the watched file's name in its directory
  ~Listener() {
    if (nl)
      mnl_socket_close(nl);
    else if (fd >= 0)
      close(fd);
  }
};

Result<void> listen_nftables(Listener& l) {
  l.nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (!l.nl) return sys_error("open a nfnetlink socket");
  if (mnl_socket_bind(l.nl, 0, MNL_SOCKET_AUTOPID) < 0) return sys_error("bind a nfnetlink socket");
  int group = NFNLGRP_NFTABLES;
  if (mnl_socket_setsockopt(l.nl, NETLINK_ADD_MEMBERSHIP, &group, sizeof group) < 0)
    return sys_error("subscribe to nf_tables change notifications");
  // A restore of thousands of rules is thousands of messages: room for them
  // (best effort; a lost notification is ENOBUFS, which also starts a run).
  int size = 8 << 20;
  setsockopt(mnl_socket_get_fd(l.nl), SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size);
  l.fd = mnl_socket_get_fd(l.nl);
  return {};
}

Result<void> listen_file(Listener& l, const std::string& source) {
  namespace fs = std::filesystem;
  fs::path p = fs::absolute(source);
  l.fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (l.fd < 0) return sys_error("inotify_init1");
  // The directory, not the file: an editor or `mv` replaces the file.
  if (inotify_add_watch(l.fd, p.parent_path().c_str(), IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE) < 0)
    return sys_error("watch the directory " + p.parent_path().string());
  l.name = p.filename().string();
  return {};
}

// Reads what is pending; returns the number of change events. `overflow`:
// events were lost.
uint64_t drain(Listener& l, std::vector<char>& buf, bool& overflow) {
  uint64_t n = 0;
  for (;;) {
    ssize_t got = read(l.fd, buf.data(), buf.size());
    if (got < 0) {
      if (errno == ENOBUFS) {
        overflow = true;
        continue;
      }
      return n;  // EAGAIN: drained
    }
    if (got == 0) return n;
    if (l.nl) {
      for (auto* h = (const nlmsghdr*)buf.data(); mnl_nlmsg_ok(h, (int)got); h = mnl_nlmsg_next(h, (int*)&got))
        n += NFNL_SUBSYS_ID(h->nlmsg_type) == NFNL_SUBSYS_NFTABLES;
      continue;
    }
    for (ssize_t off = 0; off + (ssize_t)sizeof(inotify_event) <= got;) {
      const auto* e = (const inotify_event*)(buf.data() + off);
      if (e->mask & IN_Q_OVERFLOW) overflow = true;
      if (e->len && l.name == e->name && (e->mask & (IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE))) ++n;
      off += sizeof(inotify_event) + e->len;
    }
  }
}

}  // namespace

Result<void> watch(const WatchOptions& o, const std::function<void(const SyncOutcome&, const WatchRun&)>& report) {
  bool from_kernel = o.sync.opt.from == "kernel";
  if (!from_kernel && (o.sync.source.empty() || o.sync.source == "-"))
    return Error{0, "--watch needs a ruleset file or --from kernel, not standard input"};
  // Listen first: a change made during the first run is heard.
  Listener l;
  if (auto r = from_kernel ? listen_nftables(l) : listen_file(l, o.sync.source); !r) return r.error();
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE > 65536 ? MNL_SOCKET_BUFFER_SIZE : 65536);
  auto stopped = [&] { return o.stop && o.stop->load(); };

  // Each run hands the next the policy it left live.
  SyncOptions so = o.sync;
  auto sync = [&] {
    SyncOutcome out = run_sync(so);
    if (out.live_policy) so.last = out.live_policy;
    return out;
  };
  WatchRun run;
  run.run = 1;
  report(sync(), run);
  while (!stopped()) {
    pollfd p{l.fd, POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) continue;  // timeout or EINTR: look at `stop`
    bool overflow = false;
    uint64_t n = drain(l, buf, overflow);
    if (!n && !overflow) continue;
    // Debounce: wait until quiet for debounce_ms, at most max_delay_ms.
    Clock::time_point first = Clock::now(), last = first;
    while (!stopped() && ms_since(first) < o.max_delay_ms) {
      double left = o.debounce_ms - ms_since(last);
      if (left <= 0) break;
      pollfd q{l.fd, POLLIN, 0};
      if (poll(&q, 1, (int)std::max(1.0, left)) > 0) {
        uint64_t more = drain(l, buf, overflow);
        if (more) last = Clock::now();
        n += more;
      }
    }
    if (stopped()) break;
    run = WatchRun{run.run + 1, n, overflow, 0};
    SyncOutcome out = sync();
    run.since_change_ms = ms_since(first);
    report(out, run);
  }
  return {};
}

}  // namespace nf2bpf::ops
