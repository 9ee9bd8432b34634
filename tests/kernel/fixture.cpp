#include "tests/kernel/fixture.h"

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <time.h>

#include <cstdio>
#include <sstream>

#include "loader/dataplane.h"
#include "loader/host.h"
#include "tests/kernel/topology.h"
#include "translator/frontend/ipset/ipset_save.h"
#include "translator/policy/compile.h"
#include "verify/model.h"
#include "verify/parse.h"

namespace nf2bpf::ktest {

// ---- packets ----------------------------------------------------------------

namespace {

ir::u128 address(const std::string& s) {
  bool v6 = s.find(':') != std::string::npos;
  auto a = ir::parse_addr(s, v6 ? ir::AddrFamily::V6 : ir::AddrFamily::V4);
  if (!a) throw std::invalid_argument("bad address in a packet case: " + s);
  return *a;
}

Pkt ip_packet(const std::string& src, const std::string& dst, uint8_t proto) {
  Pkt p;
  p.ip.family = src.find(':') != std::string::npos ? 6 : 4;
  p.ip.saddr = address(src);
  p.ip.daddr = address(dst);
  p.ip.proto = proto;
  p.ip.tcp_flags = 0;
  return p;
}

Pkt ported(const std::string& src, uint16_t sport, const std::string& dst, uint16_t dport, uint8_t proto) {
  Pkt p = ip_packet(src, dst, proto);
  p.ip.sport = sport;
  p.ip.dport = dport;
  return p;
}

}  // namespace

Pkt tcp(const std::string& src, uint16_t sport, const std::string& dst, uint16_t dport, uint8_t flags) {
  Pkt p = ported(src, sport, dst, dport, 6);
  p.ip.tcp_flags = flags;
  return p;
}
Pkt udp(const std::string& src, uint16_t sport, const std::string& dst, uint16_t dport) {
  return ported(src, sport, dst, dport, 17);
}
Pkt udplite(const std::string& src, uint16_t sport, const std::string& dst, uint16_t dport) {
  return ported(src, sport, dst, dport, 136);
}
Pkt sctp(const std::string& src, uint16_t sport, const std::string& dst, uint16_t dport) {
  return ported(src, sport, dst, dport, 132);
}
Pkt icmp(const std::string& src, const std::string& dst, uint8_t type, uint8_t code, uint16_t id) {
  Pkt p = ip_packet(src, dst, src.find(':') != std::string::npos ? 58 : 1);
  p.ip.icmp_type = type;
  p.ip.icmp_code = code;
  p.ip.icmp_id = id;
  return p;
}
Pkt icmp_error(const std::string& src, const std::string& dst, uint8_t type, uint8_t code, const Pkt& quoted) {
  Pkt p = icmp(src, dst, type, code, 0);
  p.ip.quote = verify::build_ip(quoted.ip);
  return p;
}
Pkt raw(const std::string& src, const std::string& dst, uint8_t proto) {
  Pkt p = ip_packet(src, dst, proto);
  p.payload(8);
  return p;
}

Step in(const std::string& iif, Pkt p, V expect) {
  Step s;
  s.hook = Hook::In, s.iif = iif, s.pkt = std::move(p), s.expect = expect;
  return s;
}
Step fwd(const std::string& iif, const std::string& oif, Pkt p, V expect) {
  Step s;
  s.hook = Hook::Fwd, s.iif = iif, s.oif = oif, s.pkt = std::move(p), s.expect = expect;
  return s;
}
Step out(const std::string& oif, Pkt p, V expect) {
  Step s;
  s.hook = Hook::Out, s.oif = oif, s.pkt = std::move(p), s.expect = expect;
  return s;
}

// ---- compiling ----------------------------------------------------------------

struct Compiled {
  Translation tr;
  policy::Policy pol;
};

const Translation& translation(const Compiled& c) { return c.tr; }

std::shared_ptr<Compiled> compile_case(const Case& c, std::string& errors) {
  auto out = std::make_shared<Compiled>();
  diag::Diagnostics set_diags, compile_diags;
  std::vector<ir::Set> sets;
  if (!c.ipsets.empty()) sets = frontend::parse_ipset_save({"ipsets.save", c.ipsets}, set_diags);
  TranslateOptions opt;
  opt.from = c.from;
  out->tr = translate_source({c.from == "ip6tables" ? "rules.v6" : "rules.v4", c.rules}, opt, sets);
  if (!out->tr.diags.has_errors() && !set_diags.has_errors()) out->pol = policy::compile(out->tr, compile_diags);
  for (const auto* d : {&set_diags, &out->tr.diags, &compile_diags})
    for (const auto& x : d->all())
      if (x.severity == diag::Severity::Error) errors += diag::render(x) + "\n";
  return out;
}

std::set<std::string> used_capabilities(const Translation& tr) {
  std::set<std::string> u;
  for (const auto& t : tr.ruleset.tables) {
    u.insert("*" + t.name);
    for (const auto& ch : t.chains)
      for (const auto& r : ch.rules) {
        for (const auto& m : r.matches)
          if (!m.cap.empty()) u.insert(m.cap);
        for (const auto& s : r.statements)
          if (!s.cap.empty()) u.insert(s.cap);
        if (!r.verdict.cap.empty()) u.insert(r.verdict.cap);
        if (!r.comment.empty()) u.insert("-m comment --comment");
        if (r.counters) u.insert("-c");
      }
  }
  return u;
}

// ---- the kernel side ------------------------------------------------------------

namespace {

struct Env {
  std::unique_ptr<loader::Dataplane> dp;
  std::vector<loader::Interface> ifaces;
  std::vector<loader::AddrTypeEntry> addrtypes;
  std::string error;

  uint32_t ifindex(const std::string& name) const {
    for (const auto& i : ifaces)
      if (i.name == name) return i.ifindex;
    return 0;
  }
  std::string ifname(uint32_t index) const {
    for (const auto& i : ifaces)
      if (i.ifindex == index) return i.name;
    return "ifindex " + std::to_string(index);
  }
};

std::unique_ptr<loader::Dataplane>& given_dataplane() {
  static std::unique_ptr<loader::Dataplane> dp;
  return dp;
}

// One private dataplane for the whole run: every case installs its policy as
// the next generation and starts from an empty connection tracker.
Env& env() {
  static Env e = [] {
    Env x;
    if (given_dataplane()) {
      x.dp = std::move(given_dataplane());
    } else {
      auto dp = loader::Dataplane::create("");
      if (!dp) {
        x.error = "create a private dataplane: " + dp.error().message();
        return x;
      }
      x.dp = std::move(*dp);
    }
    auto ifs = loader::list_interfaces();
    auto types = loader::address_types();
    if (!ifs || !types) {
      x.error = "read the test namespace: " + (!ifs ? ifs.error() : types.error()).message();
      return x;
    }
    x.ifaces = std::move(*ifs);
    x.addrtypes = std::move(*types);
    return x;
  }();
  return e;
}

uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);  // bpf_ktime_get_ns()'s clock
  return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

std::vector<uint8_t> frame_of(const Pkt& p, const Device& dev) {
  uint64_t dst = dev.mac;
  if (p.l2 == Pkt::L2::Broadcast) {
    dst = 0xffffffffffffULL;
  } else if (p.l2 == Pkt::L2::Multicast) {
    dst = p.ip.family == 4 ? 0x01005e000000ULL | (uint64_t)(p.ip.daddr & 0x7fffff)
                           : 0x333300000000ULL | (uint64_t)(p.ip.daddr & 0xffffffff);
  }
  return verify::wrap_ethernet(verify::build_ip(p.ip), p.src_mac, dst);
}

const char* name(V v) { return v == ACCEPT ? "ACCEPT" : "DROP"; }

std::string hex(uint32_t v) {
  char b[16];
  std::snprintf(b, sizeof b, "0x%x", v);
  return b;
}

struct Side {
  bool ran = false;
  V verdict = ACCEPT;
  uint32_t mark = 0;
  std::string error;
  std::vector<uint8_t> frame;  // as the program left it
  uint32_t rerouted_to = 0;    // egress: redirected to this device's egress (nat OUTPUT routed it again)
  bool to_lo = false;          // ingress: handed to lo (INPUT's source NAT made its source local)
};

// ---- NAT expectations ----------------------------------------------------------

struct End {
  ir::u128 addr = 0;
  uint32_t lo = 0, hi = 0xffffffff;  // port (or ICMP id) range; any when absent
};

std::optional<End> parse_end(std::string_view s, int family) {
  End e;
  std::string_view a = s, port;
  if (!s.empty() && s[0] == '[') {
    auto rb = s.find(']');
    if (rb == std::string_view::npos) return std::nullopt;
    a = s.substr(1, rb - 1);
    if (rb + 1 < s.size()) {
      if (s[rb + 1] != ':') return std::nullopt;
      port = s.substr(rb + 2);
    }
  } else if (auto c = s.find(':'); c != std::string_view::npos) {
    a = s.substr(0, c), port = s.substr(c + 1);
  }
  auto addr = ir::parse_addr(a, family == 4 ? ir::AddrFamily::V4 : ir::AddrFamily::V6);
  if (!addr) return std::nullopt;
  e.addr = *addr;
  if (!port.empty()) {
    auto dash = port.find('-');
    e.lo = (uint32_t)std::stoul(std::string(port.substr(0, dash)));
    e.hi = dash == std::string_view::npos ? e.lo : (uint32_t)std::stoul(std::string(port.substr(dash + 1)));
  }
  return e;
}

// The packet's own "port" on each side: TCP/UDP ports, the ICMP echo id.
std::pair<uint32_t, uint32_t> ports_of(const pkt::Packet& p) {
  if (p.has_l4 && (p.l4proto == 1 || p.l4proto == 58)) return {p.icmp_id, p.icmp_id};
  return {p.sport, p.dport};
}

std::string show(const pkt::Packet& p) {
  auto [sp, dp] = ports_of(p);
  auto addr = [&](ir::u128 a) { return p.family == 6 ? "[" + ir::format_addr(a) + "]" : ir::format_addr(a); };
  return addr(p.saddr) + ":" + std::to_string(sp) + " > " + addr(p.daddr) + ":" + std::to_string(dp);
}

// Whether `p` leaves as `want` says; "" or what differs.
std::string check_leaves(const std::string& want, const pkt::Packet& p) {
  auto gt = want.find(" > ");
  if (gt == std::string::npos) return "bad expectation \"" + want + "\"";
  auto src = parse_end(std::string_view(want).substr(0, gt), p.family);
  auto dst = parse_end(std::string_view(want).substr(gt + 3), p.family);
  if (!src || !dst) return "bad expectation \"" + want + "\"";
  auto [sp, dp] = ports_of(p);
  if (p.saddr != src->addr || p.daddr != dst->addr || sp < src->lo || sp > src->hi || dp < dst->lo || dp > dst->hi)
    return show(p);
  return "";
}

// The packet an ICMP error quotes, as a packet (its header only).
pkt::Packet quoted(const pkt::Packet& p) {
  pkt::Packet q;
  q.family = p.family;
  if (!p.inner) return q;
  q.saddr = p.inner->saddr, q.daddr = p.inner->daddr;
  q.l4proto = p.inner->l4proto;
  q.has_l4 = true;
  q.sport = p.inner->sport, q.dport = p.inner->dport;
  q.icmp_id = p.inner->sport;
  return q;
}

uint32_t sum16(const uint8_t* d, size_t n, uint32_t acc = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) acc += (uint32_t)d[i] << 8 | d[i + 1];
  if (n & 1) acc += (uint32_t)d[n - 1] << 8;
  return acc;
}
bool folds_to_ffff(uint32_t acc) {
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return acc == 0xffff;
}

// "" when the IPv4 header checksum and the transport checksum (TCP, UDP,
// ICMP, ICMPv6) of an IP packet of n bytes hold, else which does not; for
// an ICMP error also those of the packet it quotes, where it is whole.
std::string bad_ip_checksums(const uint8_t* ip, size_t n, const std::string& what = "") {
  if (n < 20) return "";
  int v = ip[0] >> 4;
  size_t l4;
  uint8_t proto;
  uint32_t pseudo = 0;
  if (v == 4) {
    l4 = (size_t)(ip[0] & 15) * 4;
    if (!folds_to_ffff(sum16(ip, l4))) return what + "IPv4 header checksum";
    proto = ip[9];
    size_t total = (size_t)ip[2] << 8 | ip[3];
    n = std::min(n, total);
    pseudo = sum16(ip + 12, 8) + proto + (uint32_t)(n - l4);
  } else {
    l4 = 40;
    proto = ip[6];
    pseudo = sum16(ip + 8, 32) + proto + (uint32_t)(n - l4);
  }
  if (n <= l4) return "";
  const uint8_t* t = ip + l4;
  size_t len = n - l4;
  if (proto == 17 && v == 4 && len >= 8 && t[6] == 0 && t[7] == 0) return "";  // no UDP checksum
  bool ok = proto == 1                                   ? folds_to_ffff(sum16(t, len))
            : (proto == 6 || proto == 17 || proto == 58) ? folds_to_ffff(sum16(t, len, pseudo))
                                                         : true;
  if (!ok) return what + (proto == 1 ? "ICMP checksum" : "L4 checksum");
  bool error = len >= 8 + 20 && ((proto == 1 && (t[0] == 3 || t[0] == 4 || t[0] == 5 || t[0] == 11 || t[0] == 12)) ||
                                 (proto == 58 && t[0] >= 1 && t[0] <= 4));
  if (!error || !what.empty()) return "";
  const uint8_t* in = t + 8;
  size_t whole = (in[0] >> 4) == 4 ? ((size_t)in[2] << 8 | in[3]) : ((size_t)in[4] << 8 | in[5]) + 40;
  if ((in[0] >> 4) == 4 && !folds_to_ffff(sum16(in, (size_t)(in[0] & 15) * 4))) return "quoted IPv4 header checksum";
  return whole == len - 8 ? bad_ip_checksums(in, whole, "quoted ") : "";
}

std::string bad_checksums(const std::vector<uint8_t>& frame) {
  if (frame.size() < 14 + 20) return "";
  return bad_ip_checksums(frame.data() + 14, frame.size() - 14);
}

// The frame the kernel forwards after the ingress program: TTL / hop limit
// one less (IPv4 header checksum fixed), new link layer.
std::vector<uint8_t> forwarded(const std::vector<uint8_t>& in, uint64_t dst_mac) {
  std::vector<uint8_t> ip(in.begin() + 14, in.end());
  if ((ip[0] >> 4) == 4) {
    if (ip[8]) --ip[8];
    ip[10] = ip[11] = 0;
    uint32_t acc = sum16(ip.data(), (size_t)(ip[0] & 15) * 4);
    while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
    ip[10] = (uint8_t)(~acc >> 8), ip[11] = (uint8_t)~acc;
  } else if (ip[7]) {
    --ip[7];
  }
  return verify::wrap_ethernet(ip, kPeerMac, dst_mac);
}

Side bpf_run(Env& e, loader::Prog prog, const std::vector<uint8_t>& frame, uint32_t ifindex, uint32_t ingress_ifindex,
             uint32_t mark) {
  Side s;
  s.ran = true;
  auto r = e.dp->test_run(prog, frame, loader::TestCtx{ifindex, ingress_ifindex, mark});
  if (!r) {
    s.error = r.error().message();
    return s;
  }
  if (r->decided && r->action == NF_ACT_REJECT && (r->retval == TC_ACT_SHOT || r->retval == TC_ACT_REDIRECT))
    s.verdict = DROP;  // the packet goes no further (REDIRECT: its answer, lib/reject.h, is sent instead)
  else if (r->retval == TC_ACT_OK)
    s.verdict = ACCEPT;
  else if (r->retval == TC_ACT_REDIRECT && prog == loader::Prog::Egress && r->forwarded_to)
    s.verdict = ACCEPT, s.rerouted_to = r->forwarded_to;  // a local packet routed again
  else if (r->retval == TC_ACT_REDIRECT && prog == loader::Prog::Ingress && !r->forwarded_to)
    s.verdict = ACCEPT, s.to_lo = true;
  else if (r->retval == TC_ACT_SHOT)
    s.verdict = DROP;
  else
    s.error = "unexpected TC return value " + std::to_string(r->retval);
  s.mark = r->mark;
  s.frame = std::move(r->data);
  return s;
}

std::string describe(const policy::Policy& pol, const model::Decision& d) {
  if (d.stage == UINT32_MAX) return "no chain on this path";
  if (d.by_policy) {
    const auto& o = pol.stage_origins.at(d.stage);
    return "the policy of " + o.table + "/" + o.chain;
  }
  const auto& o = pol.origins.at(d.rule);
  return o.location + ": " + o.text + "  (" + o.table + "/" + o.chain + ")";
}

// The 1-based line of the one rule in `rules` containing `text`, 0 when
// there is none, -1 when there are several.
int line_of(const std::string& rules, const std::string& text, bool nft) {
  std::istringstream in(rules);
  std::string line;
  int n = 0, found = 0;
  while (std::getline(in, line)) {
    ++n;
    bool rule = nft || line.find("-A ") != std::string::npos;  // "-A ..." or "[p:b] -A ..."
    if (rule && line.find(text) != std::string::npos) found = found ? -1 : n;
  }
  return found;
}

const char* hook_name(Hook h) { return h == Hook::In ? "in" : h == Hook::Fwd ? "fwd" : "out"; }

}  // namespace

// The host facts the model needs for NAT, read from the test namespace as
// the BPF programs read them (routes through the kernel, addresses from the
// topology).
model::ModelEnv model_env(const Env& e) {
  model::ModelEnv m;
  m.addrtype = [&e](const ir::u128& a) { return loader::addrtype_of(e.addrtypes, a); };
  auto route_get = [](uint8_t fam, const ir::u128& dst, const std::string& oif) {
    std::string cmd = std::string("ip -") + (fam == 4 ? "4" : "6") + " -o route get " + ir::format_addr(dst) +
                      (oif.empty() ? "" : " oif " + oif) + " 2>/dev/null";
    std::string out;
    if (FILE* f = popen(cmd.c_str(), "r")) {
      char buf[512];
      while (fgets(buf, sizeof buf, f)) out += buf;
      pclose(f);
    }
    return out;
  };
  auto word_after = [](const std::string& s, const std::string& w) -> std::string {
    auto i = s.find(" " + w + " ");
    if (i == std::string::npos) return "";
    i += w.size() + 2;
    return s.substr(i, s.find(' ', i) - i);
  };
  m.route = [=](uint8_t fam, const ir::u128& dst) -> std::optional<std::string> {
    std::string r = route_get(fam, dst, "");
    if (r.empty()) return std::nullopt;
    if (r.rfind("local ", 0) == 0) return std::string();
    return word_after(r, "dev");
  };
  m.source_address = [=](uint8_t fam, const std::string& oif, const ir::u128& dst) -> std::optional<ir::u128> {
    std::string src = word_after(route_get(fam, dst, oif), "src");
    return ir::parse_addr(src, fam == 4 ? ir::AddrFamily::V4 : ir::AddrFamily::V6);
  };
  m.iface_address = [](uint8_t fam, const std::string& ifname) -> std::optional<ir::u128> {
    const Device* d = device(ifname.empty() ? "nfk0" : ifname);  // "": the first device after lo
    if (!d) return std::nullopt;
    std::string a = fam == 4 ? d->v4 : d->v6;
    return ir::parse_addr(a.substr(0, a.find('/')), fam == 4 ? ir::AddrFamily::V4 : ir::AddrFamily::V6);
  };
  return m;
}

void use_dataplane(std::unique_ptr<loader::Dataplane> dp) { given_dataplane() = std::move(dp); }

CaseReport run_case(const Case& c) {
  CaseReport rep;
  Env& e = env();
  if (!e.error.empty()) {
    rep.failures.push_back(e.error);
    return rep;
  }
  std::string errors;
  auto comp = compile_case(c, errors);
  if (!errors.empty()) {
    rep.failures.push_back("the ruleset does not translate and compile cleanly:\n" + errors);
    return rep;
  }
  const policy::Policy& pol = comp->pol;
  if (auto g = e.dp->install(pol, e.ifaces, e.addrtypes, {{"source", c.name}}); !g) {
    rep.failures.push_back("install the policy: " + g.error().message());
    return rep;
  }
  if (auto r = e.dp->flush_conntrack(); !r) {
    rep.failures.push_back("flush the connection tracker: " + r.error().message());
    return rep;
  }
  model::ModelEnv menv = model_env(e);
  model::Model model(pol, menv);

  for (size_t i = 0; i < c.steps.size(); ++i) {
    const Step& s = c.steps[i];
    ++rep.packets;
    std::ostringstream head;
    head << "step " << (i + 1) << "/" << c.steps.size() << " " << hook_name(s.hook);
    if (!s.iif.empty()) head << " iif " << s.iif;
    if (!s.oif.empty()) head << " oif " << s.oif;
    std::vector<std::string> problems;

    const Device* idev = s.iif.empty() ? nullptr : device(s.iif);
    const Device* odev = s.oif.empty() ? nullptr : device(s.oif);
    if ((s.hook != Hook::Out && !idev) || (s.hook != Hook::In && !odev)) {
      rep.failures.push_back(head.str() + ": the step names a device the test namespace does not have");
      continue;
    }
    auto frame = frame_of(s.pkt, s.hook == Hook::Out ? *odev : *idev);
    verify::Captured cap;
    if (auto err = verify::decode_frame(verify::kDltEthernet, frame.data(), frame.size(), cap); !err.empty()) {
      rep.failures.push_back(head.str() + ": the test frame does not decode: " + err);
      continue;
    }
    pkt::Packet mp = cap.packet;
    mp.iif = s.iif;
    mp.oif = s.oif;
    mp.mark = s.mark_in;
    head << ": " << verify::format_tuple(mp);
    if (s.mark_in) head << " mark " << hex(s.mark_in);

    Side bpf, bpf2, mod, mod2;
    model::Decision d1, d2;
    uint32_t iif = s.iif.empty() ? 0 : e.ifindex(s.iif), oif = s.oif.empty() ? 0 : e.ifindex(s.oif);
    if (s.hook == Hook::Out) {
      bpf = bpf_run(e, loader::Prog::Egress, frame, oif, 0, s.mark_in);
      d1 = model.decide(mp, model::Path::Output, now_ns());
      // nat OUTPUT changed the destination: POSTROUTING is the egress run
      // on the device the packet was redirected to.
      if (bpf.ran && bpf.error.empty() && bpf.rerouted_to) {
        std::string to = e.ifname(bpf.rerouted_to);
        const Device* rdev = device(to);
        head << " (routed again out of " << to << ")";
        if (to != "lo" && !rdev)
          bpf2.error = "redirected to " + to + ", a device the test namespace does not have";
        else  // (the kernel's neighbour output gives it a new Ethernet header; the rules do not see it)
          bpf2 = bpf_run(e, loader::Prog::Egress, bpf.frame, bpf.rerouted_to, 0, bpf.mark);
      }
      if (d1.action == NF_ACT_ACCEPT && d1.forwarded) {
        if (!bpf.rerouted_to)
          problems.push_back("the model routed the packet again out of " + d1.out.oif + ", BPF did not");
        pkt::Packet mp2 = d1.out;
        mp2.mark = d1.mark;
        d2 = model.decide(mp2, model::Path::PostForward, now_ns());
        mod2.ran = true;
        mod2.verdict = d2.action == NF_ACT_ACCEPT ? ACCEPT : DROP;
        mod2.mark = d2.mark;
        if (bpf.rerouted_to && e.ifname(bpf.rerouted_to) != d1.out.oif)
          problems.push_back("routed again out of: BPF " + e.ifname(bpf.rerouted_to) + ", model " + d1.out.oif);
      } else if (bpf.rerouted_to) {
        problems.push_back("BPF routed the packet again out of " + e.ifname(bpf.rerouted_to) + ", the model did not");
      }
    } else {
      // XDP runs first on a real device; it may only drop what netfilter drops.
      // What it drops never reaches TC.
      auto x = e.dp->test_run(loader::Prog::Xdp, frame, loader::TestCtx{iif, 0, 0});
      if (!x)
        problems.push_back("XDP test run failed: " + x.error().message());
      else if (x->retval == XDP_DROP && s.expect == ACCEPT)
        problems.push_back("XDP dropped a packet netfilter accepts");
      if (x && x->retval == XDP_DROP) {
        bpf.ran = true;
        bpf.verdict = DROP;
        ++rep.xdp_drops;
      } else {
        bpf = bpf_run(e, loader::Prog::Ingress, frame, iif, iif, s.mark_in);
      }
      d1 = model.decide(mp, s.hook == Hook::In ? model::Path::Input : model::Path::Forward, now_ns());
      if (bpf.ran && bpf.error.empty() && bpf.to_lo != d1.to_lo)
        problems.push_back(std::string("handed to lo: BPF ") + (bpf.to_lo ? "yes" : "no") + ", model " +
                           (d1.to_lo ? "yes" : "no"));
      if (s.to_lo && !bpf.to_lo) problems.push_back("expected the packet to be handed to lo");
    }
    mod.ran = true;
    mod.verdict = d1.action == NF_ACT_ACCEPT ? ACCEPT : DROP;
    mod.mark = d1.mark;
    if (s.hook == Hook::Fwd) {
      // The routed packet leaves through oif one hop later: TTL decremented,
      // with whatever the ingress program rewrote (NAT).
      if (bpf.ran && bpf.error.empty() && bpf.verdict == ACCEPT)
        bpf2 = bpf_run(e, loader::Prog::Egress, forwarded(bpf.frame, odev->mac), oif, iif, bpf.mark);
      if (mod.verdict == ACCEPT) {
        pkt::Packet mp2 = d1.out;
        mp2.iif = s.iif;
        mp2.oif = s.oif;
        mp2.mark = d1.mark;
        d2 = model.decide(mp2, model::Path::PostForward, now_ns());
        mod2.ran = true;
        mod2.verdict = d2.action == NF_ACT_ACCEPT ? ACCEPT : DROP;
        mod2.mark = d2.mark;
      }
    }
    // Final outcome of each side.
    auto final_of = [](const Side& a, const Side& b) { return b.ran ? b : a; };
    Side fb = final_of(bpf, bpf2), fm = final_of(mod, mod2);
    const model::Decision& decider = (mod2.ran && mod2.verdict == DROP) ? d2 : d1;

    if (!bpf.error.empty()) problems.push_back("BPF test run failed: " + bpf.error);
    if (!bpf2.error.empty()) problems.push_back("BPF egress test run failed: " + bpf2.error);
    if (bpf.error.empty() && bpf2.error.empty()) {
      if (fb.verdict != s.expect || fm.verdict != fb.verdict)
        problems.push_back(std::string("expected ") + name(s.expect) + ", BPF " + name(fb.verdict) +
                           (bpf2.ran ? " (ingress ACCEPT, egress " + std::string(name(bpf2.verdict)) + ")" : "") +
                           ", model " + name(fm.verdict));
      if (fb.verdict == ACCEPT && fm.verdict == ACCEPT && fb.mark != fm.mark)
        problems.push_back("skb mark: BPF " + hex(fb.mark) + ", model " + hex(fm.mark));
      if (s.mark_out && fb.verdict == ACCEPT && fb.mark != *s.mark_out)
        problems.push_back("skb mark: expected " + hex(*s.mark_out) + ", BPF " + hex(fb.mark));
    }
    if (!s.by.empty()) {
      int line = line_of(c.rules, s.by, c.from == "nft");
      if (line <= 0)
        problems.push_back("the step's rule \"" + s.by + "\" is " + (line ? "not unique" : "not") + " in the ruleset");
      else if (decider.by_policy || decider.rule >= pol.origins.size() ||
               (int)pol.origins[decider.rule].source_line != line)
        problems.push_back("expected the rule on line " + std::to_string(line) + " (\"" + s.by + "\") to decide");
    }
    if (s.by_policy && !decider.by_policy) problems.push_back("expected the chain policy to decide");
    // NAT: the header each side's packet leaves with, and its checksums.
    if (fb.verdict == ACCEPT && fm.verdict == ACCEPT && bpf.error.empty() && bpf2.error.empty()) {
      verify::Captured got;
      const std::vector<uint8_t>& bf = fb.frame;
      if (auto err = verify::decode_frame(verify::kDltEthernet, bf.data(), bf.size(), got); !err.empty()) {
        problems.push_back("the frame BPF left does not decode: " + err);
      } else {
        const pkt::Packet& mo = mod2.ran ? d2.out : d1.out;
        int tos = s.tos_out >= 0 ? s.tos_out : mp.tos;
        if (got.packet.tos != tos || mo.tos != tos)
          problems.push_back("leaves with TOS " + hex((uint32_t)tos) + " expected, BPF " + hex(got.packet.tos) +
                             ", model " + hex(mo.tos));
        std::string want = s.leaves.empty() ? show(mp) : s.leaves;
        if (auto d = check_leaves(want, got.packet); !d.empty())
          problems.push_back("leaves as " + want + " expected, BPF: " + d);
        if (auto d = check_leaves(want, mo); !d.empty())
          problems.push_back("leaves as " + want + " expected, model: " + d);
        if (want.find('-') == std::string::npos && show(mo) != show(got.packet))
          problems.push_back("leaves as: BPF " + show(got.packet) + ", model " + show(mo));
        if (auto c = bad_checksums(bf); !c.empty() && !s.pkt.ip.bad_checksum)  // (it came with one)
          problems.push_back("BPF's frame has a wrong " + c);
        if (!s.quotes.empty()) {
          if (auto d = check_leaves(s.quotes, quoted(got.packet)); !d.empty())
            problems.push_back("quotes " + s.quotes + " expected, BPF: " + d);
          if (auto d = check_leaves(s.quotes, quoted(mo)); !d.empty())
            problems.push_back("quotes " + s.quotes + " expected, model: " + d);
        }
      }
    }
    if (!problems.empty()) {
      std::string msg = "case \"" + c.name + "\", " + head.str();
      for (const auto& p : problems) msg += "\n    " + p;
      msg += "\n    model's deciding rule: " + describe(pol, decider);
      rep.failures.push_back(msg);
    }
  }
  return rep;
}

}  // namespace nf2bpf::ktest
