#include "verify/kernel/kernel_engine.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <fstream>

#include "loader/host.h"
#include "verify/builder.h"
#include "verify/parse.h"
#include "verify/policy_engine.h"

extern char** environ;

namespace nf2bpf::verify {

namespace {

// Runs `ip ARGS...` (no shell: interface names come from captures).
Result<void> ip(const std::vector<std::string>& args) {
  std::vector<char*> argv{const_cast<char*>("ip")};
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid;
  int rc = posix_spawnp(&pid, "ip", &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  std::string cmd = "ip";
  for (const auto& a : args) cmd += " " + a;
  if (rc != 0) return Error{rc, "run '" + cmd + "' (is iproute2 installed?)"};
  int st = 0;
  waitpid(pid, &st, 0);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) return Error{0, "'" + cmd + "' failed in the private namespace"};
  return {};
}

Result<void> write_sysctl(const std::string& path, const std::string& value) {
  std::ofstream f(path);
  if (!(f << value) || !f.flush()) return Error{errno, "write " + path};
  return {};
}

std::string cidr(const std::pair<ir::u128, unsigned>& p) {
  bool v4 = ir::is_v4_mapped(p.first) && p.second >= 96;
  return ir::format_addr(p.first) + "/" + std::to_string(v4 ? p.second - 96 : p.second);
}

std::vector<std::pair<ir::u128, unsigned>> prefixes(const ir::IntervalSet& s) { return s.to_prefixes(128); }

bool valid_ifname(const std::string& n) {
  if (n.empty() || n.size() >= IFNAMSIZ) return false;
  for (char c : n)
    if (!(isalnum((unsigned char)c) || c == '-' || c == '_' || c == '.' || c == '@' || c == ':')) return false;
  return true;
}

const char* kCatchAll = "nf2bpf-unknown";  // stands for an interface nobody named

// A packet's own address as ip(8) takes it: the IR keeps IPv4 mapped into
// ::ffff:0:0/96, so an IPv6 packet to ::ffff:0.0.0.0 (firewalld rejects those)
// must not be written the IPv4 way.
std::string host_route(const pkt::Packet& p, ir::u128 a) {
  if (p.family == 4) return ir::format_addr(a) + "/32";
  in6_addr x{};
  for (int i = 15; i >= 0; --i, a >>= 8) x.s6_addr[i] = (uint8_t)(a & 0xff);
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(AF_INET6, &x, buf, sizeof buf);
  return std::string(buf) + "/128";
}

}  // namespace

Result<std::unique_ptr<KernelEngine>> KernelEngine::create(const policy::Policy& pol, const HostModel& host,
                                                           std::string name) {
  if (geteuid() != 0)
    return Error{EPERM, "diff --kernel loads BPF programs and needs root (CAP_SYS_ADMIN and CAP_BPF)"};
  // test runs happen on this CPU; nothing else in the process needs others.
  if (unshare(CLONE_NEWNET) != 0) return Error{errno, "create a private network namespace for --kernel"};
  if (auto r = ip({"link", "set", "lo", "up"}); !r) return r.error();
  // Forwarding on before any device exists, so every device inherits it
  // (the FIB lookup that tells INPUT from FORWARD needs it).
  if (auto r = write_sysctl("/proc/sys/net/ipv4/ip_forward", "1"); !r) return r.error();
  if (auto r = write_sysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1"); !r) return r.error();
  std::unique_ptr<KernelEngine> e(new KernelEngine(pol, host, std::move(name)));
  const auto& opt = host.options();
  if (!opt.iface.empty())
    if (auto d = e->device(opt.iface); !d) return d.error();
  bool have_default4 = false, have_default6 = false;
  for (const auto& [net, ifname] : opt.routes) {
    if (auto d = e->device(ifname); !d) return d.error();
    if (net == ir::family_space(ir::AddrFamily::V6)) {
      have_default6 = true;
      if (auto r = ip({"-6", "route", "replace", "default", "dev", ifname}); !r) return r.error();
      continue;
    }
    for (const auto& pre : prefixes(net)) {
      bool v4 = ir::is_v4_mapped(pre.first) && pre.second >= 96;
      if (pre.second == (v4 ? 96u : 0u)) (v4 ? have_default4 : have_default6) = true;
      std::string dst = pre.second == (v4 ? 96u : 0u) ? "default" : cidr(pre);
      if (auto r = ip({v4 ? "-4" : "-6", "route", "replace", dst, "dev", ifname}); !r) return r.error();
    }
  }
  // Destinations no route names leave by the catch-all device, as the diff's
  // host model leaves their output interface unknown.
  if (auto d = e->device(""); !d) return d.error();
  if (!have_default4)
    if (auto r = ip({"-4", "route", "replace", "default", "dev", kCatchAll}); !r) return r.error();
  if (!have_default6)
    if (auto r = ip({"-6", "route", "replace", "default", "dev", kCatchAll}); !r) return r.error();
  auto dp = loader::Dataplane::create("");
  if (!dp) return dp.error();
  e->dp_ = std::move(*dp);
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(sched_getcpu() < 0 ? 0 : sched_getcpu(), &set);
  sched_setaffinity(0, sizeof set, &set);
  if (auto r = e->refresh(); !r) return r.error();
  return e;
}

KernelEngine::~KernelEngine() = default;

Result<KernelEngine::Dev> KernelEngine::device(const std::string& name) {
  std::string dev = name.empty() ? kCatchAll : name;
  if (auto it = devs_.find(dev); it != devs_.end()) return it->second;
  if (!valid_ifname(dev)) return Error{EINVAL, "interface name '" + dev + "' cannot be recreated for --kernel"};
  Dev d;
  if ((d.ifindex = if_nametoindex(dev.c_str()))) {  // lo
    devs_[dev] = d;
    stale_ = true;
    return d;
  }
  d.mac = 0x026e66000000ULL | (devs_.size() + 1);
  char mac[18];
  std::snprintf(mac, sizeof mac, "02:6e:66:%02x:%02x:%02x", (unsigned)(d.mac >> 16) & 255, (unsigned)(d.mac >> 8) & 255,
                (unsigned)d.mac & 255);
  std::string peer = "nfk" + std::to_string(devs_.size());
  if (auto r = ip({"link", "add", dev, "address", mac, "type", "veth", "peer", "name", peer}); !r) return r.error();
  if (auto r = ip({"link", "set", dev, "up"}); !r) return r.error();
  if (auto r = ip({"link", "set", peer, "up"}); !r) return r.error();
  d.ifindex = if_nametoindex(dev.c_str());
  if (!d.ifindex) return Error{errno, "find interface " + dev + " in the private namespace"};
  devs_[dev] = d;
  stale_ = true;
  return d;
}

Result<void> KernelEngine::refresh() {
  const auto& learned = host_.learned();
  for (; learned_seen_ < learned.size(); ++learned_seen_) {
    const auto& l = learned[learned_seen_];
    if (!l.ifname.empty() && valid_ifname(l.ifname)) {
      if (auto d = device(l.ifname); !d) return d.error();
      // The address itself, so the programs see what the kernel would: the
      // interface's address for REDIRECT, the route's source for MASQUERADE.
      bool v4a = ir::is_v4_mapped(l.addr);
      std::string a = ir::format_addr(l.addr) + (v4a ? "/32" : "/128");
      std::vector<std::string> add = {v4a ? "-4" : "-6", "addr", "replace", a, "dev", l.ifname};
      if (!v4a) add.push_back("nodad");
      if (auto r = ip(add); !r) return r.error();
      // The interface's network routes out of it, as the host model routes.
      for (const auto& pre : prefixes(l.net)) {
        bool v4 = ir::is_v4_mapped(pre.first) && pre.second >= 96;
        if (auto r = ip({v4 ? "-4" : "-6", "route", "replace", cidr(pre), "dev", l.ifname}); !r) return r.error();
      }
    }
    stale_ = true;
  }
  if (!stale_) return {};
  auto ifs = loader::list_interfaces();
  if (!ifs) return ifs.error();
  auto types = loader::address_types();
  if (!types) return types.error();
  // This host's addresses as the diff knows them (--local-addr, the capture).
  for (const auto& set : host_.options().local)
    for (const auto& pre : prefixes(set)) types->push_back({pre.first, (uint8_t)pre.second, ir::kAddrLocal});
  for (const auto& l : learned) types->push_back({l.addr, 128, ir::kAddrLocal});
  // A new generation starts its counters at zero: keep what the old one counted.
  if (dp_->has_live_generation()) carried_ = live_counts();
  auto g = dp_->install(pol_, *ifs, *types, {{"source", "nf2bpf diff --kernel"}});
  if (!g) return g.error();
  stale_ = false;
  return {};
}

Result<loader::TestResult> KernelEngine::run(loader::Prog prog, const pkt::Packet& p, const Dev& dev,
                                             uint32_t ingress_ifindex) {
  // The destination MAC decides the packet type the program sees.
  uint64_t dst = dev.mac;
  if (p.has_l2 && p.pkttype == pkt::PktType::Broadcast)
    dst = 0xffffffffffffULL;
  else if (p.has_l2 && p.pkttype == pkt::PktType::Multicast)
    dst = p.family == 4 ? 0x01005e000001ULL : 0x333300000001ULL;
  else if (p.has_l2 && p.pkttype == pkt::PktType::OtherHost)
    dst = 0x026e66ffffffULL;
  uint64_t src = p.has_l2 ? p.src_mac : 0x026e66fffffeULL;
  auto frame = wrap_ethernet(p.l3, src, dst);
  loader::TestCtx ctx;
  ctx.ifindex = dev.ifindex;
  ctx.ingress_ifindex = ingress_ifindex;
  ctx.mark = p.mark;
  return dp_->test_run(prog, frame, ctx);
}

namespace {
// What the program decided, and the packet as it left it (NAT rewrites it).
model::Decision model_decision(const loader::TestResult& r, const policy::Policy& pol, const pkt::Packet& in) {
  model::Decision d;
  d.out = in;
  Captured c;
  if (!r.data.empty() && decode_frame(kDltEthernet, r.data.data(), r.data.size(), c).empty()) {
    const pkt::Packet& q = c.packet;
    d.translated = q.saddr != in.saddr || q.daddr != in.daddr || q.sport != in.sport || q.dport != in.dport ||
                   q.icmp_id != in.icmp_id;
    d.out.saddr = q.saddr, d.out.daddr = q.daddr, d.out.sport = q.sport, d.out.dport = q.dport;
    d.out.icmp_id = q.icmp_id;
    d.out.l3 = q.l3;
  }
  d.action = r.decided ? r.action : (uint8_t)NF_ACT_ACCEPT;
  d.rule = r.rule;
  d.stage = r.stage;
  d.by_policy = r.stage < pol.stages.size() && r.rule == pol.stages[r.stage].policy_counter;
  d.mark = 0;
  d.ctstate = r.ctstate;
  return d;
}
}  // namespace

Decision KernelEngine::decide(const pkt::Packet& p, const Traversal& t) {
  auto fail = [&](const Error& e) {
    if (error_.empty()) error_ = e.message();
    Decision d;
    d.verdict = Verdict::Indeterminate;
    d.note = "kernel: " + e.message();
    d.path = t.hooks;
    return d;
  };
  Decision shadow = shadow_->decide(p, t);  // every packet, so its conntrack and buckets keep pace
  if (!error_.empty()) return fail(Error{0, error_});
  bool forward = std::find(t.hooks.begin(), t.hooks.end(), ir::Hook::Forward) != t.hooks.end();
  auto in = device(t.origin == Origin::Local ? std::string() : p.iif);
  auto out = device(p.oif);
  if (!in) return fail(in.error());
  if (!out) return fail(out.error());
  if (auto r = refresh(); !r) return fail(r.error());
  if (forward && !p.oif.empty()) {
    // The capture (or the options) said where this packet left: make the
    // FIB lookup in the ingress program say the same.
    auto [it, fresh] = routed_.try_emplace(p.daddr, p.oif);
    if (fresh || it->second != p.oif) {
      it->second = p.oif;
      bool v4 = p.family == 4;
      std::string dst = host_route(p, p.daddr);
      if (auto r = ip({v4 ? "-4" : "-6", "route", "replace", dst, "dev", p.oif}); !r) return fail(r.error());
    }
  }
  // Where a program routed the packet on (r.forwarded_to): FORWARD at
  // ingress, or a local packet nat OUTPUT's destination NAT routed again;
  // POSTROUTING is the egress run on that device.
  auto routed_on = [&](const loader::TestResult& r, model::Decision& md, uint32_t iif,
                       bool hop) -> Result<std::optional<Dev>> {
    if (!r.forwarded_to || md.action != NF_ACT_ACCEPT) return std::optional<Dev>();
    pkt::Packet o = md.out;  // with what the program rewrote (NAT)
    o.mark = r.mark;
    if (hop && o.ttl) --o.ttl;  // what leaves a router
    Dev via = *out;
    if (via.ifindex != r.forwarded_to) {
      auto ifs = loader::list_interfaces();
      if (!ifs) return ifs.error();
      for (const auto& i : *ifs)
        if (i.ifindex == r.forwarded_to) {
          auto d = device(i.name);
          if (!d) return d.error();
          via = *d;
        }
    }
    auto post = run(loader::Prog::Egress, o, via, iif);
    if (!post) return post.error();
    md = combine_forward(md, model_decision(*post, pol_, o));
    return std::optional<Dev>(via);
  };
  model::Decision md;
  if (t.origin == Origin::Local) {
    auto r = run(loader::Prog::Egress, p, *out, 0);
    if (!r) return fail(r.error());
    md = model_decision(*r, pol_, p);
    bool to_self = std::find(t.hooks.begin(), t.hooks.end(), ir::Hook::Input) != t.hooks.end();
    auto via = routed_on(*r, md, 0, false);
    if (!via) return fail(via.error());
    auto lo = device("lo");
    if (!lo) return fail(lo.error());
    if (*via) to_self = (*via)->ifindex == lo->ifindex;
    // To this host: back in on lo, as PolicyEngine::decide.
    if (to_self && md.action == NF_ACT_ACCEPT) {
      pkt::Packet back = *via ? md.out : p;
      back.mark = *via ? md.mark : r->mark;
      auto in = run(loader::Prog::Ingress, back, *lo, 0);
      if (!in) return fail(in.error());
      auto looped = model_decision(*in, pol_, back);
      looped.translated |= md.translated;  // as PolicyEngine::decide: the egress run's NAT stands
      if (looped.action != NF_ACT_ACCEPT || looped.stage != UINT32_MAX) md = looped;
    }
  } else {
    auto r = run(loader::Prog::Ingress, p, *in, 0);
    if (!r) return fail(r.error());
    md = model_decision(*r, pol_, p);
    // Destination NAT may have made a packet to this host one to forward
    // (the reference's path is the original destination's).
    auto via = routed_on(*r, md, in->ifindex, true);
    if (!via) return fail(via.error());
  }
  Decision d = describe(pol_, md);
  d.nat = nat_of(p, md);
  d.path = t.hooks;
  if (shadow.verdict == Verdict::Indeterminate && d.verdict != Verdict::Indeterminate) {
    d.note = shadow.note + " (the kernel, its token bucket on the replay's clock, said " + d.verdict_text() + ")";
    d.verdict = Verdict::Indeterminate;
    d.reject_with.clear();
  }
  return d;
}

std::vector<uint64_t> KernelEngine::live_counts() const {
  std::vector<uint64_t> counts = carried_;
  if (auto s = dp_->status(true)) {
    for (const auto& c : s->counters) {
      if (c.index >= counts.size()) counts.resize(c.index + 1);
      counts[c.index] += c.packets;
    }
  }
  return counts;
}

std::vector<RuleHits> KernelEngine::hits() const { return rule_hits(pol_, live_counts()); }

}  // namespace nf2bpf::verify
