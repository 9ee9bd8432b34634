#include "ops/watch.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <poll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <future>
#include <initializer_list>
#include <map>
#include <set>
#include <tuple>
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
// messages name, and whether anything else changed (tables, named sets, ...).
struct Changes {
  ChainChanges chains;
  bool other = false;
  // Anonymous sets created or deleted: each belongs to a rule (nft's `{ ... }`
  // in a rule, such as kube-proxy's numgen verdict map), whose message names
  // its chain, so neither the set nor its elements are a change of their own.
  std::set<std::tuple<uint8_t, std::string, std::string>> anonymous;
};

// The string attributes `want` of an nf_tables message, and its flags
// attribute (0 when absent).
std::map<uint16_t, std::string> attrs(const nlmsghdr* h, std::initializer_list<uint16_t> want, uint16_t flags_attr,
                                      uint32_t* flags) {
  std::map<uint16_t, std::string> out;
  const char* tail = (const char*)mnl_nlmsg_get_payload_tail(h);
  for (auto* a = (const nlattr*)mnl_nlmsg_get_payload_offset(h, sizeof(nfgenmsg));
       mnl_attr_ok(a, (int)(tail - (const char*)a)); a = mnl_attr_next(a)) {
    uint16_t t = mnl_attr_get_type(a);
    if (flags && t == flags_attr && mnl_attr_validate(a, MNL_TYPE_U32) >= 0) *flags = ntohl(mnl_attr_get_u32(a));
    if (std::find(want.begin(), want.end(), t) == want.end()) continue;
    if (mnl_attr_validate(a, MNL_TYPE_NUL_STRING) < 0) continue;
    out[t] = mnl_attr_get_str(a);
  }
  return out;
}

// One nf_tables message: a rule or chain change goes into `c.chains`
// (family 4/6, 0 for the others; DELCHAIN marks the chain gone, anything
// later about it brings it back), a new generation or an anonymous set is no
// change of its own, anything else is `other`.
void note_message(const nlmsghdr* h, Changes& c) {
  uint16_t type = NFNL_MSG_TYPE(h->nlmsg_type);
  if (type == NFT_MSG_NEWGEN) return;
  const auto* g = (const nfgenmsg*)mnl_nlmsg_get_payload(h);
  uint8_t fam = g->nfgen_family == NFPROTO_IPV4 ? 4 : g->nfgen_family == NFPROTO_IPV6 ? 6 : 0;
  if (type == NFT_MSG_NEWSET || type == NFT_MSG_DELSET) {
    uint32_t flags = 0;
    auto a = attrs(h, {NFTA_SET_TABLE, NFTA_SET_NAME}, NFTA_SET_FLAGS, &flags);
    // A deletion names the set only (no flags, since Linux 6.x); nft names
    // anonymous sets __set%d and __map%d, and deletes one only with the rule
    // that holds it, whose own message names its chain.
    bool anonymous = type == NFT_MSG_NEWSET ? (flags & NFT_SET_ANONYMOUS) != 0 : a[NFTA_SET_NAME].rfind("__", 0) == 0;
    if (!anonymous || a.size() != 2) {
      c.other = true;
      return;
    }
    c.anonymous.insert({fam, a[NFTA_SET_TABLE], a[NFTA_SET_NAME]});
    return;
  }
  if (type == NFT_MSG_NEWSETELEM || type == NFT_MSG_DELSETELEM) {
    auto a = attrs(h, {NFTA_SET_ELEM_LIST_TABLE, NFTA_SET_ELEM_LIST_SET}, 0, nullptr);
    if (a.size() != 2 || !c.anonymous.count({fam, a[NFTA_SET_ELEM_LIST_TABLE], a[NFTA_SET_ELEM_LIST_SET]}))
      c.other = true;
    return;
  }
  bool rule = type == NFT_MSG_NEWRULE || type == NFT_MSG_DELRULE;
  bool chain = type == NFT_MSG_NEWCHAIN || type == NFT_MSG_DELCHAIN;
  if (!rule && !chain) {
    c.other = true;
    return;
  }
  // NFTA_RULE_TABLE/NFTA_CHAIN_TABLE, then the chain's name.
  uint16_t name_attr = rule ? (uint16_t)NFTA_RULE_CHAIN : (uint16_t)NFTA_CHAIN_NAME;
  auto a = attrs(h, {NFTA_RULE_TABLE, name_attr}, 0, nullptr);
  if (a.size() != 2) {
    c.other = true;
    return;
  }
  c.chains[{fam, a[NFTA_RULE_TABLE], a[name_attr]}] = type == NFT_MSG_DELCHAIN;
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
      no_chains = "the last full read had no ip or ip6 table";
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
  // a millisecond a chain at 10,000 Services); in a table iptables-nft wrote,
  // with iptables-nft -S where the reader refuses a rule.
  auto read_chain = [](uint8_t fam, const std::string& table, const std::string& c, bool nft) {
    return nft ? frontend::read_nft_chain(fam, table, c) : frontend::read_xtables_chain(fam == 6, table, c);
  };
  WatchRun run;
  run.run = 1;
  report(sync(), run);
  // A full run is due after updates from the chains alone: reconcile_ms
  // after the last one, and at the latest 10 x reconcile_ms after the first.
  std::optional<Clock::time_point> reconcile_at;
  Clock::time_point first_update{};
  auto ms = [](double v) { return std::chrono::milliseconds((int64_t)v); };
  // A reconcile reads, translates and compiles in the background (seconds
  // at 10,000 Services), so the watch goes on answering changes meanwhile.
  // What it read is used only when no notification came after it began;
  // otherwise the reconcile is due again once changes pause.
  std::future<std::shared_ptr<PreparedSource>> reading;
  uint64_t heard = 0, heard_at_read = 0;  // notifications (and overflows) so far
  bool read_whole = false;                // a full run made it live since the read began
  while (!stopped()) {
    int wait_ms = 200;
    if (reconcile_at) wait_ms = (int)std::clamp(-ms_since(*reconcile_at), 0.0, 200.0);
    if (reading.valid()) wait_ms = std::min(wait_ms, 20);
    pollfd p{l.fd, POLLIN, 0};
    int ready = poll(&p, 1, wait_ms);
    if (reading.valid() && reading.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
      auto prepared = reading.get();
      if (heard == heard_at_read && !stopped()) {
        run = WatchRun{run.run + 1, 0, false, 0};
        run.reconcile = true;
        SyncOptions ro = so;
        ro.prepared = std::move(prepared);
        SyncOutcome out = run_sync(ro);
        take(out);
        report(out, run);
      } else if (!reconcile_at && !read_whole) {
        reconcile_at = Clock::now() + ms(o.reconcile_ms);  // still due, once changes pause
      }
    }
    if (ready <= 0) {  // timeout or EINTR: look at `stop`, and at a reconcile that is due
      if (reconcile_at && ms_since(*reconcile_at) >= 0 && !stopped() && !reading.valid()) {
        reconcile_at.reset();
        heard_at_read = heard;
        read_whole = false;
        reading = std::async(std::launch::async, [ro = so] { return prepare_source(ro); });
      }
      continue;
    }
    bool overflow = false;
    Changes changes;
    uint64_t n = drain(l, buf, overflow, changes);
    if (!n && !overflow) continue;
    heard += n + (overflow ? 1 : 0);
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
    // One full read at a time: libnftables (and the libxtables it loads) is
    // not safe on two threads at once. What the reconcile read is dropped.
    if (reading.valid()) reading.wait();
    SyncOutcome out = sync();
    if (out.kind == Kind::ok) reconcile_at.reset(), read_whole = true;  // this run read everything
    run.since_change_ms = ms_since(first);
    report(out, run);
  }
  return {};
}

}  // namespace nf2bpf::ops
