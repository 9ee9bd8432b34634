#include "ops/watch.h"

#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <poll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <vector>

#include "ops/fast_update.h"
#include "translator/frontend/nft/nft.h"

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

// What a batch of notifications changed: the chains rule and chain
// messages name, and whether anything else changed (tables, sets, ...).
struct Changes {
  ChainChanges chains;
  bool other = false;
};

// One nf_tables message: a rule or chain change goes into `c.chains`
// (family 4/6, 0 for the others; DELCHAIN marks the chain gone, anything
// later about it brings it back), a new generation is no change of its own,
// anything else is `other`.
void note_message(const nlmsghdr* h, Changes& c) {
  uint16_t type = NFNL_MSG_TYPE(h->nlmsg_type);
  if (type == NFT_MSG_NEWGEN) return;
  bool rule = type == NFT_MSG_NEWRULE || type == NFT_MSG_DELRULE;
  bool chain = type == NFT_MSG_NEWCHAIN || type == NFT_MSG_DELCHAIN;
  if (!rule && !chain) {
    c.other = true;
    return;
  }
  const auto* g = (const nfgenmsg*)mnl_nlmsg_get_payload(h);
  uint8_t fam = g->nfgen_family == NFPROTO_IPV4 ? 4 : g->nfgen_family == NFPROTO_IPV6 ? 6 : 0;
  // NFTA_RULE_TABLE/NFTA_CHAIN_TABLE, then the chain's name.
  uint16_t name_attr = rule ? (uint16_t)NFTA_RULE_CHAIN : (uint16_t)NFTA_CHAIN_NAME;
  std::string table, name;
  const char* tail = (const char*)mnl_nlmsg_get_payload_tail(h);
  for (auto* a = (const nlattr*)mnl_nlmsg_get_payload_offset(h, sizeof(nfgenmsg));
       mnl_attr_ok(a, (int)(tail - (const char*)a)); a = mnl_attr_next(a)) {
    uint16_t t = mnl_attr_get_type(a);
    if (t != NFTA_RULE_TABLE && t != name_attr) continue;
    if (mnl_attr_validate(a, MNL_TYPE_NUL_STRING) < 0) continue;
    (t == NFTA_RULE_TABLE ? table : name) = mnl_attr_get_str(a);
  }
  if (table.empty() || name.empty()) {
    c.other = true;
    return;
  }
  c.chains[{fam, table, name}] = type == NFT_MSG_DELCHAIN;
}

// Reads what is pending; returns the number of change events. `overflow`:
// events were lost.
uint64_t drain(Listener& l, std::vector<char>& buf, bool& overflow, Changes& changes) {
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
        if (NFNL_SUBSYS_ID(h->nlmsg_type) == NFNL_SUBSYS_NFTABLES) {
          ++n;
          note_message(h, changes);
        }
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

  // Each run hands the next the policy it left live (and, from the kernel,
  // the nat chains it read).
  SyncOptions so = o.sync;
  so.keep_nat_chains = from_kernel && o.fast;
  std::shared_ptr<NatChains> chains;
  std::string no_chains = "no full read to compare with";  // why `chains` is null
  auto take = [&](SyncOutcome& out) {
    if (out.live_policy) so.last = out.live_policy;
    if (out.live_policy && out.nat_chains) {
      chains = std::move(out.nat_chains);
      index_services(*chains, *out.live_policy);
    } else if (out.live_policy) {
      chains.reset();
      no_chains = "the last full read had no nat table iptables-nft wrote (nftables rulesets are read whole)";
    } else {
      chains.reset();  // the live policy is not the one read: read all next time
      no_chains = "the last run did not make what it read live";
    }
  };
  auto sync = [&] {
    SyncOutcome out = run_sync(so);
    take(out);
    return out;
  };
  // A chain a change names, read when the planner asks for it, after it has
  // checked what it can without reading: over netlink in-process (well under
  // a millisecond a chain at 10,000 Services), iptables-nft -S where the
  // reader refuses a rule.
  auto read_chain = [](uint8_t fam, const std::string& c) { return frontend::read_xtables_chain(fam == 6, "nat", c); };
  WatchRun run;
  run.run = 1;
  report(sync(), run);
  // A full run is due after updates from the chains alone: reconcile_ms
  // after the last one, and at the latest 10 x reconcile_ms after the first.
  std::optional<Clock::time_point> reconcile_at;
  Clock::time_point first_update{};
  while (!stopped()) {
    int wait_ms = 200;
    if (reconcile_at) wait_ms = (int)std::clamp(-ms_since(*reconcile_at), 0.0, 200.0);
    pollfd p{l.fd, POLLIN, 0};
    int ready = poll(&p, 1, wait_ms);
    if (ready <= 0) {  // timeout or EINTR: look at `stop`, and at a reconcile that is due
      if (reconcile_at && ms_since(*reconcile_at) >= 0 && !stopped()) {
        reconcile_at.reset();
        run = WatchRun{run.run + 1, 0, false, 0};
        run.reconcile = true;
        report(sync(), run);
      }
      continue;
    }
    bool overflow = false;
    Changes changes;
    uint64_t n = drain(l, buf, overflow, changes);
    if (!n && !overflow) continue;
    // Debounce: wait until quiet for debounce_ms, at most max_delay_ms.
    Clock::time_point first = Clock::now(), last = first;
    while (!stopped() && ms_since(first) < o.max_delay_ms) {
      double left = o.debounce_ms - ms_since(last);
      if (left <= 0) break;
      pollfd q{l.fd, POLLIN, 0};
      if (poll(&q, 1, (int)std::max(1.0, left)) > 0) {
        uint64_t more = drain(l, buf, overflow, changes);
        if (more) last = Clock::now();
        n += more;
      }
    }
    if (stopped()) break;
    run = WatchRun{run.run + 1, n, overflow, 0};
    // A change of service chains alone: from those chains.
    if (from_kernel && o.fast && !changes.chains.empty()) {
      std::string why;
      if (overflow)
        why = "notifications were lost";
      else if (changes.other)
        why = "more than chains and rules changed";
      else if (!chains || !so.last)
        why = no_chains;
      else {
        auto t = Clock::now();
        auto plan = plan_fast_update(*chains, changes.chains, *so.last, read_chain);
        if (auto* u = std::get_if<FastUpdate>(&plan)) {
          double read_ms = ms_since(t);
          SyncOutcome out = run_service_update(so, so.last, *u);
          out.doc["timings_ms"]["read"] = read_ms;
          out.total_ms += read_ms;
          out.doc["timings_ms"]["total"] = out.total_ms;
          if (out.kind == Kind::ok && out.live_policy) {
            so.last = out.live_policy;
            apply_chains(*chains, *u);
            if (out.result == "updated") {
              auto now = Clock::now();
              if (!reconcile_at) first_update = now;
              auto ms = [](double v) { return std::chrono::milliseconds((int64_t)v); };
              reconcile_at = std::min(now + ms(o.reconcile_ms), first_update + ms(10 * o.reconcile_ms));
            }
          } else {
            chains.reset();  // read everything next time
            no_chains = "the last update from changed chains failed";
          }
          run.read = "chains";
          run.since_change_ms = ms_since(first);
          report(out, run);
          continue;
        }
        why = std::get<std::string>(plan);
      }
      run.full_read_reason = why;
    }
    SyncOutcome out = sync();
    if (out.kind == Kind::ok) reconcile_at.reset();  // this run read everything
    run.since_change_ms = ms_since(first);
    report(out, run);
  }
  return {};
}

}  // namespace nf2bpf::ops
