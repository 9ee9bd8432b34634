#include "tests/kernel/difftest/gen.h"

#include <algorithm>
#include <sstream>

#include "verify/builder.h"

namespace nf2bpf::difftest {

namespace {

using Rng = std::mt19937_64;

bool chance(Rng& r, double p) { return std::uniform_real_distribution<double>(0, 1)(r) < p; }
template <typename T>
const T& pick(Rng& r, const std::vector<T>& v) {
  return v[std::uniform_int_distribution<size_t>(0, v.size() - 1)(r)];
}
int range(Rng& r, int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(r); }

// ---- rulesets ----------------------------------------------------------------

struct RuleGen {
  Rng& r;
  Mode mode;
  int fam;
  std::vector<std::string> user_chains;

  std::string cidr(const std::string& a) {
    if (fam == 4) {
      static const std::vector<std::string> lens = {"/32", "/24", "/16", "/8"};
      return a + pick(r, lens);
    }
    static const std::vector<std::string> lens = {"/128", "/64", "/48", "/16"};
    return a + pick(r, lens);
  }

  std::string port_spec() {
    static const std::vector<int> ports = {22, 53, 80, 443, 1000, 1500, 2000, 2001, 5353, 40000};
    if (chance(r, 0.35)) {
      int a = pick(r, ports), b = pick(r, ports);
      if (a > b) std::swap(a, b);
      if (a == b) return std::to_string(a);  // iptables' multiport refuses "N:N"
      return std::to_string(a) + ":" + std::to_string(b);
    }
    return std::to_string(pick(r, ports));
  }

  // One rule for `chain`; `base` tells which built-in chain (or "" for user chains).
  std::string rule(const std::string& chain, const std::string& base, size_t chain_index) {
    std::ostringstream o;
    o << "-A " << chain;
    auto pool = address_pool(mode, fam);
    std::vector<std::string> all = pool.client_side;
    all.insert(all.end(), pool.server_side.begin(), pool.server_side.end());
    bool terminal_only_list = false;
    if (chance(r, 0.35)) {
      bool neg = chance(r, 0.2);
      bool list = !neg && chance(r, 0.15);
      o << (neg ? " ! -s " : " -s ") << cidr(pick(r, all));
      if (list) o << "," << cidr(pick(r, all)), terminal_only_list = true;
    }
    // iptables refuses any address negation next to an address list.
    if (chance(r, 0.25)) o << (!terminal_only_list && chance(r, 0.2) ? " ! -d " : " -d ") << cidr(pick(r, all));
    // Interfaces only in built-in chains, only where iptables allows them.
    std::vector<std::string> in_ifs, out_ifs;
    if (mode == Mode::Host) in_ifs = out_ifs = {"s0", "s+", "lo", "eth9"};
    else in_ifs = out_ifs = {"r0", "r1", "r+", "eth9"};
    if ((base == "INPUT" || base == "FORWARD") && chance(r, 0.2)) o << (chance(r, 0.25) ? " ! -i " : " -i ") << pick(r, in_ifs);
    if ((base == "OUTPUT" || base == "FORWARD") && chance(r, 0.2)) o << (chance(r, 0.25) ? " ! -o " : " -o ") << pick(r, out_ifs);

    int p = range(r, 0, 9);
    std::string icmp = fam == 4 ? "icmp" : "ipv6-icmp";
    std::string proto = p < 3 ? "" : p < 6 ? "tcp" : p < 8 ? "udp" : icmp;
    if (!proto.empty() && chance(r, 0.08)) {
      o << " ! -p " << proto;
    } else if (!proto.empty()) {
      o << " -p " << proto;
      if (proto == "tcp" || proto == "udp") {
        std::string m = " -m " + proto;
        int k = range(r, 0, 9);
        if (k < 3) o << m << (chance(r, 0.2) ? " ! --dport " : " --dport ") << port_spec();
        else if (k < 4) o << m << " --sport " << port_spec();
        else if (k < 5) o << " -m multiport --dports " << port_spec() << "," << port_spec();
        else if (k < 6) o << " -m multiport --ports 53,443,40000";
        if (proto == "tcp") {
          int f = range(r, 0, 9);
          if (f == 0) o << " -m tcp --syn";
          else if (f == 1) o << " -m tcp ! --syn";
          else if (f == 2) o << " -m tcp --tcp-flags SYN,ACK,FIN,RST ACK";
        }
      } else {
        static const std::vector<std::string> t4 = {"echo-request", "echo-reply", "destination-unreachable", "3/3", "any"};
        static const std::vector<std::string> t6 = {"echo-request", "echo-reply", "destination-unreachable", "1/4"};
        if (chance(r, 0.6))
          o << (fam == 4 ? " -m icmp" : " -m icmp6") << (chance(r, 0.15) ? " !" : "")
            << (fam == 4 ? " --icmp-type " : " --icmpv6-type ") << pick(r, fam == 4 ? t4 : t6);
      }
    }
    if (chance(r, 0.3)) {
      static const std::vector<std::string> states = {"NEW", "ESTABLISHED", "RELATED", "INVALID"};
      std::vector<std::string> chosen;
      for (const auto& s : states)
        if (chance(r, 0.4)) chosen.push_back(s);
      if (chosen.empty()) chosen.push_back(pick(r, states));
      std::string list;
      for (const auto& s : chosen) list += (list.empty() ? "" : ",") + s;
      if (chance(r, 0.5)) o << " -m conntrack" << (chance(r, 0.15) ? " !" : "") << " --ctstate " << list;
      else o << " -m state --state " << list;
    }
    if (chance(r, 0.08)) o << " -m mark" << (chance(r, 0.3) ? " !" : "") << " --mark 0x1/0x1";
    if (chance(r, 0.05)) o << " -m length --length " << range(r, 40, 80) << ":" << range(r, 81, 200);
    if (chance(r, 0.05)) o << (fam == 4 ? " -m ttl --ttl-gt " : " -m hl --hl-gt ") << range(r, 1, 100);
    if (fam == 4 && chance(r, 0.04)) o << " -m iprange --src-range 10.200.0.1-10.200.0.9";
    if (fam == 4 && mode == Mode::Host && chance(r, 0.05)) o << " -m addrtype --dst-type " << (chance(r, 0.5) ? "LOCAL" : "UNICAST");
    if (chance(r, 0.05)) o << " -m comment --comment \"rule " << range(r, 1, 999) << "\"";

    // Target. Jumps only forward (to later user chains): no loops.
    std::vector<std::string> later;
    for (size_t i = chain_index; i < user_chains.size(); ++i) later.push_back(user_chains[i]);
    int t = range(r, 0, 99);
    if (terminal_only_list) t = t % 65;
    if (t < 35) o << " -j ACCEPT";
    else if (t < 65) o << " -j DROP";
    else if (t < 72) o << " -j LOG --log-prefix \"dt \"";
    else if (t < 77) o << " -j MARK --set-xmark 0x1/0x1";
    else if (t < 84 && !base.empty()) o << " -j ACCEPT";
    else if (t < 84) o << " -j RETURN";
    else if (!later.empty() && t < 95) o << " -j " << pick(r, later);
    else if (!later.empty()) o << " -g " << pick(r, later);
    else o << " -j DROP";
    return o.str();
  }

  std::string ruleset() {
    int nuser = range(r, 0, 3);
    for (int i = 0; i < nuser; ++i) user_chains.push_back("U" + std::to_string(i + 1));
    std::ostringstream o;
    o << "# Generated by " << (fam == 4 ? "iptables-save" : "ip6tables-save") << " (nf2bpf difftest)\n*filter\n";
    auto pol = [&] { return chance(r, 0.5) ? "ACCEPT" : "DROP"; };
    o << ":INPUT " << pol() << " [0:0]\n:FORWARD " << pol() << " [0:0]\n:OUTPUT " << pol() << " [0:0]\n";
    for (const auto& u : user_chains) o << ":" << u << " - [0:0]\n";
    std::vector<std::string> bases = mode == Mode::Host ? std::vector<std::string>{"INPUT", "OUTPUT"}
                                                        : std::vector<std::string>{"FORWARD"};
    for (const auto& b : bases) {
      int n = range(r, 2, 10);
      for (int i = 0; i < n; ++i) o << rule(b, b, 0) << "\n";
    }
    for (size_t u = 0; u < user_chains.size(); ++u) {
      int n = range(r, 1, 5);
      for (int i = 0; i < n; ++i) o << rule(user_chains[u], "", u + 1) << "\n";
    }
    o << "COMMIT\n";
    return o.str();
  }
};

// ---- packets -----------------------------------------------------------------

struct FlowGen {
  Rng& r;
  Mode mode;
  int fam;
  uint32_t next_token = 1;

  Probe probe(Dir dir, verify::PacketSpec s, const std::string& what) {
    Probe p;
    p.dir = dir;
    p.family = fam;
    p.proto = s.proto;
    p.token = next_token++;
    std::vector<uint8_t> tok = {'N', 'F', '2', 'B', (uint8_t)(p.token >> 24), (uint8_t)(p.token >> 16),
                                (uint8_t)(p.token >> 8), (uint8_t)p.token};
    bool icmp_error = (s.proto == 1 && s.icmp_type == 3) || (s.proto == 58 && s.icmp_type == 1);
    if (icmp_error) {
      s.quote.insert(s.quote.end(), tok.begin(), tok.end());
      p.token_off = 8 + s.quote.size() - 8;
    } else {
      s.payload = tok;
      p.token_off = s.proto == 6 ? 20 : 8;
    }
    p.ip = verify::build_ip(s);
    p.what = what;
    return p;
  }

  verify::PacketSpec base(const std::string& src, const std::string& dst, uint8_t proto) {
    verify::PacketSpec s;
    s.family = (uint8_t)fam;
    s.saddr = *ir::parse_addr(src, fam == 4 ? ir::AddrFamily::V4 : ir::AddrFamily::V6);
    s.daddr = *ir::parse_addr(dst, fam == 4 ? ir::AddrFamily::V4 : ir::AddrFamily::V6);
    s.proto = proto;
    s.ttl = (uint8_t)(chance(r, 0.1) ? range(r, 2, 20) : 64);
    return s;
  }

  // A flow: its packets in order (the caller interleaves flows).
  std::vector<Probe> flow() {
    auto pool = address_pool(mode, fam);
    bool from_client = chance(r, mode == Mode::Host ? 0.6 : 0.5);
    std::string a = from_client ? pick(r, pool.client_side) : pick(r, pool.server_side);
    std::string b = from_client ? pick(r, pool.server_side) : pick(r, pool.client_side);
    Dir fwd = from_client ? Dir::ToServer : Dir::ToClient;
    Dir rev = from_client ? Dir::ToClient : Dir::ToServer;
    static const std::vector<int> client_ports = {40000, 40001, 1024, 5353, 53};
    static const std::vector<int> server_ports = {22, 53, 80, 443, 1000, 1500, 2000, 2001, 5353};
    uint16_t pa = (uint16_t)pick(r, client_ports), pb = (uint16_t)pick(r, server_ports);
    std::vector<Probe> out;
    int kind = range(r, 0, 9);
    uint8_t icmp_proto = fam == 4 ? 1 : 58;
    std::string tag = std::string(from_client ? "c>s " : "s>c ");
    if (kind < 4) {  // TCP with consistent sequence numbers
      uint32_t sa = (uint32_t)r(), sb = (uint32_t)r();
      const uint32_t len = 8;  // every segment carries the 8-byte marker
      struct Step {
        bool forward;
        uint8_t flags;
      };
      std::vector<Step> steps = {{true, 0x02}, {false, 0x12}, {true, 0x10}, {true, 0x18},
                                 {false, 0x10}, {true, 0x11}, {false, 0x11}, {true, 0x10}};
      int n = range(r, 1, (int)steps.size());
      uint32_t na = sa, nb = sb;  // next sequence number of each side
      bool b_started = false;
      for (int i = 0; i < n; ++i) {
        auto st = steps[i];
        verify::PacketSpec s = base(st.forward ? a : b, st.forward ? b : a, 6);
        s.sport = st.forward ? pa : pb;
        s.dport = st.forward ? pb : pa;
        s.tcp_flags = st.flags;
        s.seq = st.forward ? na : nb;
        s.ack = (st.flags & 0x10) ? (st.forward ? nb : na) : 0;
        uint32_t adv = len + ((st.flags & 0x02) ? 1 : 0) + ((st.flags & 0x01) ? 1 : 0);
        if (st.forward) na += adv;
        else nb += adv, b_started = true;
        (void)b_started;
        char what[64];
        snprintf(what, sizeof what, "tcp flags 0x%02x", st.flags);
        out.push_back(probe(st.forward ? fwd : rev, s, tag + what));
      }
    } else if (kind < 6) {  // UDP request/reply
      int n = range(r, 1, 3);
      for (int i = 0; i < n; ++i) {
        bool f = i % 2 == 0;
        verify::PacketSpec s = base(f ? a : b, f ? b : a, 17);
        s.sport = f ? pa : pb;
        s.dport = f ? pb : pa;
        out.push_back(probe(f ? fwd : rev, s, tag + "udp"));
      }
    } else if (kind < 8) {  // ICMP echo, maybe an error about a UDP flow
      uint16_t id = (uint16_t)range(r, 1, 65000);
      verify::PacketSpec rq = base(a, b, icmp_proto);
      rq.icmp_type = fam == 4 ? 8 : 128;
      rq.icmp_id = id;
      out.push_back(probe(fwd, rq, tag + "echo request"));
      if (chance(r, 0.7)) {
        verify::PacketSpec rp = base(b, a, icmp_proto);
        rp.icmp_type = fam == 4 ? 0 : 129;
        rp.icmp_id = id;
        out.push_back(probe(rev, rp, tag + "echo reply"));
      }
    } else if (kind < 9) {  // UDP, then an ICMP port unreachable quoting it
      verify::PacketSpec s = base(a, b, 17);
      s.sport = pa;
      s.dport = pb;
      out.push_back(probe(fwd, s, tag + "udp"));
      verify::PacketSpec q = s;
      q.payload = {};
      auto inner = verify::build_ip(q);
      size_t keep = (fam == 4 ? 20 : 40) + 8;
      inner.resize(std::min(inner.size(), keep));
      verify::PacketSpec e = base(b, a, icmp_proto);
      e.icmp_type = fam == 4 ? 3 : 1;
      e.icmp_code = fam == 4 ? 3 : 4;
      e.quote = inner;
      out.push_back(probe(rev, e, tag + "icmp port unreachable"));
    } else {  // strays: unsolicited SYN-ACK, bare ACK (loose pickup), RST, SYN+FIN
      static const std::vector<uint8_t> flags = {0x12, 0x10, 0x04, 0x03, 0x11};
      verify::PacketSpec s = base(a, b, 6);
      s.sport = pa;
      s.dport = pb;
      s.tcp_flags = pick(r, flags);
      s.seq = (uint32_t)r();
      s.ack = (s.tcp_flags & 0x10) ? (uint32_t)r() : 0;
      char what[64];
      snprintf(what, sizeof what, "stray tcp flags 0x%02x", s.tcp_flags);
      out.push_back(probe(fwd, s, tag + what));
    }
    return out;
  }
};

}  // namespace

Case random_case(uint64_t seed, Mode mode, int family, int packets) {
  Rng r(seed);
  Case c{mode, family, "", {}};
  RuleGen rg{r, mode, family, {}};
  c.ruleset = rg.ruleset();
  FlowGen fg{r, mode, family};
  std::vector<std::vector<Probe>> active;
  while ((int)c.probes.size() < packets) {
    if (active.empty() || (active.size() < 4 && chance(r, 0.4))) {
      auto f = fg.flow();
      std::reverse(f.begin(), f.end());
      active.push_back(std::move(f));
    }
    size_t i = std::uniform_int_distribution<size_t>(0, active.size() - 1)(r);
    c.probes.push_back(active[i].back());
    active[i].pop_back();
    if (active[i].empty()) active.erase(active.begin() + (long)i);
  }
  return c;
}

}  // namespace nf2bpf::difftest
