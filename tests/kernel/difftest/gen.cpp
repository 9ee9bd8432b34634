#include "tests/kernel/difftest/gen.h"

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

#include "verify/builder.h"

namespace nf2bpf::difftest {

namespace {

// The DSCPs packets carry and rules test: 0, AF11, EF.
const std::vector<int> kDscps = {0, 10, 46};

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
  bool reject = false;  // some terminal rules REJECT (--reject-with of every kind)

  // A REJECT target for a rule (tcp-reset only where the rule is -p tcp,
  // which iptables requires).
  std::string reject_target(bool tcp) {
    static const std::vector<std::string> w4 = {"",
                                                "icmp-net-unreachable",
                                                "icmp-host-unreachable",
                                                "icmp-port-unreachable",
                                                "icmp-proto-unreachable",
                                                "icmp-net-prohibited",
                                                "icmp-host-prohibited",
                                                "icmp-admin-prohibited"};
    static const std::vector<std::string> w6 = {"", "icmp6-no-route", "icmp6-adm-prohibited", "icmp6-addr-unreachable",
                                                "icmp6-port-unreachable"};
    std::string w = tcp && chance(r, 0.4) ? "tcp-reset" : pick(r, fam == 4 ? w4 : w6);
    return " -j REJECT" + (w.empty() ? "" : " --reject-with " + w);
  }

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
    if (mode == Mode::Loopback)
      in_ifs = out_ifs = {"lo", "lo", "l+", "s0"};
    else if (mode == Mode::Host)
      in_ifs = out_ifs = {"s0", "s+", "lo", "eth9"};
    else
      in_ifs = out_ifs = {"r0", "r1", "r+", "eth9"};
    if ((base == "INPUT" || base == "FORWARD") && chance(r, 0.2))
      o << (chance(r, 0.25) ? " ! -i " : " -i ") << pick(r, in_ifs);
    if ((base == "OUTPUT" || base == "FORWARD") && chance(r, 0.2))
      o << (chance(r, 0.25) ? " ! -o " : " -o ") << pick(r, out_ifs);

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
        if (k < 3)
          o << m << (chance(r, 0.2) ? " ! --dport " : " --dport ") << port_spec();
        else if (k < 4)
          o << m << " --sport " << port_spec();
        else if (k < 5)
          o << " -m multiport --dports " << port_spec() << "," << port_spec();
        else if (k < 6)
          o << " -m multiport --ports 53,443,40000";
        if (proto == "tcp") {
          int f = range(r, 0, 9);
          if (f == 0)
            o << " -m tcp --syn";
          else if (f == 1)
            o << " -m tcp ! --syn";
          else if (f == 2)
            o << " -m tcp --tcp-flags SYN,ACK,FIN,RST ACK";
        }
      } else {
        static const std::vector<std::string> t4 = {"echo-request", "echo-reply", "destination-unreachable", "3/3",
                                                    "any"};
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
      if (chance(r, 0.5))
        o << " -m conntrack" << (chance(r, 0.15) ? " !" : "") << " --ctstate " << list;
      else
        o << " -m state --state " << list;
    }
    if (chance(r, 0.08)) o << " -m mark" << (chance(r, 0.3) ? " !" : "") << " --mark 0x1/0x1";
    if (chance(r, 0.05)) o << " -m length --length " << range(r, 40, 80) << ":" << range(r, 81, 200);
    if (chance(r, 0.05)) o << (fam == 4 ? " -m ttl --ttl-gt " : " -m hl --hl-gt ") << range(r, 1, 100);
    // The packets' DSCP is 0, AF11 (10) or EF (46), their ECN any (base()).
    if (chance(r, 0.03)) o << " -m dscp" << (chance(r, 0.3) ? " !" : "") << " --dscp " << pick(r, kDscps);
    if (chance(r, 0.02)) o << " -m dscp --dscp-class " << (chance(r, 0.5) ? "EF" : "af11");
    if (chance(r, 0.03)) {
      static const int masks[] = {0xff, 0x3f, 0xfc, 0x03};
      int mask = masks[range(r, 0, 3)], tos = pick(r, kDscps) << 2 | range(r, 0, 3);
      o << " -m tos" << (chance(r, 0.3) ? " !" : "") << " --tos 0x" << std::hex << (tos & mask) << "/0x" << mask
        << std::dec;
    }
    if (fam == 4 && chance(r, 0.04)) o << " -m iprange --src-range 10.200.0.1-10.200.0.9";
    if (fam == 4 && host_like(mode) && chance(r, 0.05))
      o << " -m addrtype --dst-type " << (chance(r, 0.5) ? "LOCAL" : "UNICAST");
    if (chance(r, 0.05)) o << " -m comment --comment \"rule " << range(r, 1, 999) << "\"";

    // Target. Jumps only forward (to later user chains): no loops.
    std::vector<std::string> later;
    for (size_t i = chain_index; i < user_chains.size(); ++i) later.push_back(user_chains[i]);
    int t = range(r, 0, 99);
    if (terminal_only_list) t = t % 65;
    bool tcp = o.str().find(" -p tcp") != std::string::npos && o.str().find("! -p tcp") == std::string::npos;
    if (reject && !base.empty() && chance(r, 0.3))
      o << reject_target(tcp);
    else if (reject && base.empty() && chance(r, 0.2))  // a user chain reached from INPUT, FORWARD or OUTPUT
      o << reject_target(tcp);
    else if (t < 35)
      o << " -j ACCEPT";
    else if (t < 65)
      o << " -j DROP";
    else if (t < 72)
      o << " -j LOG --log-prefix \"dt \"";
    else if (t < 77)
      o << " -j MARK --set-xmark 0x1/0x1";
    else if (t < 84 && !base.empty())
      o << " -j ACCEPT";
    else if (t < 84)
      o << " -j RETURN";
    else if (!later.empty() && t < 95)
      o << " -j " << pick(r, later);
    else if (!later.empty())
      o << " -g " << pick(r, later);
    else
      o << " -j DROP";
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
    std::vector<std::string> bases =
        host_like(mode) ? std::vector<std::string>{"INPUT", "OUTPUT"} : std::vector<std::string>{"FORWARD"};
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

// ---- nft rulesets ------------------------------------------------------------
//
// Random nftables rulesets in `nft -f` syntax: ip/ip6/inet tables, several
// base chains per hook at distinct priorities, regular chains reached by
// jump/goto (forward only, so no loops), named and anonymous sets (intervals,
// concatenations), verdict maps, ct state, interface names, marks, counters.
// Interval elements never overlap (nft refuses overlapping intervals in a set
// and the order of overlapping map elements would be undefined).

struct NftGen {
  Rng& r;
  Mode mode;
  int fam;
  bool reject = false;  // some rules of input/forward/output chains reject (every `reject with`)

  // A reject statement for a table of `family` (tcp reset only where the
  // rule matches TCP). In an inet table `reject with icmp(v6) type` carries
  // an implicit `meta nfproto` match, which nft places just before it: after
  // the rule's statements, where nf2bpf refuses a match (`effects`: there
  // are some).
  std::string reject_stmt(const std::string& family, bool tcp, bool effects) {
    static const std::vector<std::string> icmp = {"host-unreachable", "net-unreachable", "prot-unreachable",
                                                  "port-unreachable", "net-prohibited",  "host-prohibited",
                                                  "admin-prohibited"};
    static const std::vector<std::string> icmpv6 = {"no-route",         "admin-prohibited", "addr-unreachable",
                                                    "port-unreachable", "policy-fail",      "reject-route"};
    static const std::vector<std::string> icmpx = {"port-unreachable", "admin-prohibited", "no-route",
                                                   "host-unreachable"};
    if (tcp && chance(r, 0.35)) return " reject with tcp reset";
    int k = range(r, 0, 3);
    if (k == 0) return " reject";
    if (family == "inet" && (k == 1 || effects)) return " reject with icmpx type " + pick(r, icmpx);
    bool v4 = family == "ip" || (family == "inet" && fam == 4);  // (inet: the rule's addresses are fam's)
    return v4 ? " reject with icmp type " + pick(r, icmp) : " reject with icmpv6 type " + pick(r, icmpv6);
  }

  struct Iv {
    ir::u128 lo, hi;
  };
  struct NamedSet {
    std::string name;
    enum Kind { Addr, Port, Concat, AddrMap, PortMap } kind;
    int min_target = 1 << 20;  // lowest regular-chain index its verdicts jump to
  };
  struct Table {
    std::string family, name;
    int nregular = 0;
    std::vector<NamedSet> sets;
  };

  std::string ipk() const { return fam == 4 ? "ip" : "ip6"; }
  std::string icmpk() const { return fam == 4 ? "icmp" : "icmpv6"; }
  unsigned width() const { return fam == 4 ? 32 : 128; }

  static bool overlaps(const std::vector<Iv>& have, Iv x) {
    for (const auto& h : have)
      if (!(x.hi < h.lo || h.hi < x.lo)) return true;
    return false;
  }

  ir::u128 addr(const std::string& s) const {
    return *ir::parse_addr(s, fam == 4 ? ir::AddrFamily::V4 : ir::AddrFamily::V6);
  }

  std::vector<std::string> all_addrs() const {
    auto pool = address_pool(mode, fam);
    std::vector<std::string> all = pool.client_side;
    all.insert(all.end(), pool.server_side.begin(), pool.server_side.end());
    return all;
  }

  // One address element: an address, a prefix (network address written out)
  // or a range between two pool addresses.
  std::pair<std::string, Iv> addr_elem(bool intervals) {
    auto all = all_addrs();
    ir::u128 a = addr(pick(r, all));
    if (intervals && chance(r, 0.2)) {
      ir::u128 b = addr(pick(r, all));
      if (b < a) std::swap(a, b);
      if (a != b) return {ir::format_addr(a) + "-" + ir::format_addr(b), {a, b}};
    }
    unsigned len = width();
    if (intervals && chance(r, 0.6)) {
      static const std::vector<unsigned> l4 = {24, 16, 8}, l6 = {64, 48, 16};
      len = pick(r, fam == 4 ? l4 : l6);
    }
    if (len == width()) return {ir::format_addr(a), {a, a}};
    ir::u128 host = ((ir::u128)1 << (width() - len)) - 1;
    ir::u128 net = a & ~host;
    return {ir::format_addr(net) + "/" + std::to_string(len), {net, net | host}};
  }

  std::pair<std::string, Iv> port_elem(bool intervals) {
    static const std::vector<int> ports = {22, 53, 80, 443, 1000, 1024, 1500, 2000, 2001, 5353, 40000, 40001};
    int a = pick(r, ports);
    if (intervals && chance(r, 0.3)) {
      int b = pick(r, ports);
      if (a > b) std::swap(a, b);
      if (a != b) return {std::to_string(a) + "-" + std::to_string(b), {(ir::u128)a, (ir::u128)b}};
    }
    return {std::to_string(a), {(ir::u128)a, (ir::u128)a}};
  }

  // Up to n non-overlapping elements (at least one).
  template <typename F>
  std::vector<std::string> elems(int n, F gen) {
    std::vector<Iv> have;
    std::vector<std::string> out;
    for (int tries = 0; tries < 4 * n && (int)out.size() < n; ++tries) {
      auto [text, iv] = gen();
      if (overlaps(have, iv)) continue;
      have.push_back(iv);
      out.push_back(text);
    }
    return out;
  }

  static std::string join(const std::vector<std::string>& v, const std::string& sep = ", ") {
    std::string o;
    for (size_t i = 0; i < v.size(); ++i) o += (i ? sep : "") + v[i];
    return o;
  }

  // Concatenated address . port elements; the port parts never overlap, so
  // neither do the elements.
  std::vector<std::pair<std::string, std::string>> concat_elems(int n, bool intervals) {
    std::vector<Iv> ports;
    std::vector<std::pair<std::string, std::string>> out;
    for (int tries = 0; tries < 4 * n && (int)out.size() < n; ++tries) {
      auto [pt, piv] = port_elem(intervals);
      if (overlaps(ports, piv)) continue;
      ports.push_back(piv);
      out.emplace_back(addr_elem(intervals).first, pt);
    }
    return out;
  }

  // A verdict for a map element, in a map used from chain index `from`.
  std::string map_verdict(const Table& t, int from, int& min_target) {
    int k = range(r, 0, 9);
    if (k < 4) return "accept";
    if (k < 7) return "drop";
    if (k < 8 || from >= t.nregular) return "continue";
    int target = range(r, from + 1, t.nregular);
    min_target = std::min(min_target, target);
    return std::string(chance(r, 0.7) ? "jump" : "goto") + " u" + std::to_string(target);
  }

  std::string set_decl(Table& t, int idx) {
    NamedSet s;
    s.name = "s" + std::to_string(idx);
    std::ostringstream o;
    int k = range(r, 0, 9);
    std::string addr_type = fam == 4 ? "ipv4_addr" : "ipv6_addr";
    bool iv = chance(r, 0.6);
    std::string flags = iv ? " flags interval;" : "";
    if (k < 3) {
      s.kind = NamedSet::Addr;
      o << "set " << s.name << " { " << (chance(r, 0.3) ? "typeof " + ipk() + " saddr;" : "type " + addr_type + ";")
        << flags;
      o << " elements = { " << join(elems(range(r, 1, 4), [&] { return addr_elem(iv); })) << " } }";
    } else if (k < 5) {
      s.kind = NamedSet::Port;
      o << "set " << s.name << " { " << (chance(r, 0.3) ? "typeof tcp dport;" : "type inet_service;") << flags;
      o << " elements = { " << join(elems(range(r, 1, 4), [&] { return port_elem(iv); })) << " } }";
    } else if (k < 7) {
      s.kind = NamedSet::Concat;
      o << "set " << s.name << " { type " << addr_type << " . inet_service;" << flags << " elements = { ";
      std::vector<std::string> es;
      for (auto& [a, p] : concat_elems(range(r, 1, 4), iv)) es.push_back(a + " . " + p);
      o << join(es) << " } }";
    } else if (k < 9) {
      s.kind = NamedSet::AddrMap;
      o << "map " << s.name << " { type " << addr_type << " : verdict;" << flags << " elements = { ";
      std::vector<std::string> es;
      for (auto& e : elems(range(r, 1, 4), [&] { return addr_elem(iv); }))
        es.push_back(e + " : " + map_verdict(t, 0, s.min_target));
      o << join(es) << " } }";
    } else {
      s.kind = NamedSet::PortMap;
      o << "map " << s.name << " { type inet_service : verdict;" << flags << " elements = { ";
      std::vector<std::string> es;
      for (auto& e : elems(range(r, 1, 4), [&] { return port_elem(iv); }))
        es.push_back(e + " : " + map_verdict(t, 0, s.min_target));
      o << join(es) << " } }";
    }
    t.sets.push_back(s);
    return o.str();
  }

  const NamedSet* find_set(const Table& t, NamedSet::Kind k, int from) {
    std::vector<const NamedSet*> c;
    for (const auto& s : t.sets)
      if (s.kind == k && s.min_target > from) c.push_back(&s);
    return c.empty() ? nullptr : pick(r, c);
  }

  std::string ifaces_match(const std::string& key) {
    std::vector<std::string> names = host_like(mode) ? std::vector<std::string>{"s0", "lo", "eth9", "s*"}
                                                     : std::vector<std::string>{"r0", "r1", "eth9", "r*"};
    int k = range(r, 0, 9);
    if (k < 6) return " " + key + (chance(r, 0.25) ? " != " : " ") + "\"" + pick(r, names) + "\"";
    std::string a = pick(r, names), b = pick(r, names);
    if (a == b) return " " + key + " \"" + a + "\"";
    return " " + key + (chance(r, 0.2) ? " != " : " ") + "{ \"" + a + "\", \"" + b + "\" }";
  }

  // One rule in table t, chain `hook` ("" for regular chain number `idx`).
  std::string rule(const Table& t, const std::string& hook, int idx) {
    std::ostringstream o;
    bool inet = t.family == "inet";
    if (inet && chance(r, 0.05)) {
      // A rule for the other family (no named sets: they hold this family's
      // addresses): it must never match this family's packets.
      Table other = t;
      other.sets.clear();
      NftGen g{r, mode, fam == 4 ? 6 : 4};
      return g.rule(other, hook, idx);
    }
    if (inet && chance(r, 0.06)) o << " meta nfproto " << (fam == 4 ? "ipv4" : "ipv6");
    if (chance(r, 0.35)) {
      std::string f = chance(r, 0.6) ? "saddr" : "daddr";
      int k = range(r, 0, 9);
      bool neg = chance(r, 0.2);
      o << " " << ipk() << " " << f << (neg ? " != " : " ");
      const NamedSet* s = find_set(t, NamedSet::Addr, 1 << 20);
      if (k < 2 && s)
        o << "@" << s->name;
      else if (k < 4)
        o << "{ " << join(elems(range(r, 1, 3), [&] { return addr_elem(true); })) << " }";
      else
        o << addr_elem(true).first;
    }
    bool in_ok = hook.empty() ? false : hook == "input" || hook == "forward" || hook == "prerouting";
    bool out_ok = hook.empty() ? false : hook == "output" || hook == "forward" || hook == "postrouting";
    if (in_ok && chance(r, 0.2)) o << ifaces_match("iifname");
    if (out_ok && chance(r, 0.2)) o << ifaces_match("oifname");

    int p = range(r, 0, 9);
    std::string proto = p < 3 ? "" : p < 6 ? "tcp" : p < 8 ? "udp" : "icmp";
    if (proto == "tcp" || proto == "udp") {
      int k = range(r, 0, 11);
      bool neg = chance(r, 0.15);
      std::string dir = chance(r, 0.75) ? "dport" : "sport";
      if (k < 3)
        o << " " << proto << " " << dir << (neg ? " != " : " ") << port_elem(true).first;
      else if (k < 5)
        o << " " << proto << " " << dir << (neg ? " != " : " ") << "{ "
          << join(elems(range(r, 1, 4), [&] { return port_elem(true); })) << " }";
      else if (k < 6 && find_set(t, NamedSet::Port, 1 << 20))
        o << " " << proto << " " << dir << " @" << find_set(t, NamedSet::Port, 1 << 20)->name;
      else if (k < 7)
        o << " meta l4proto " << proto;
      else if (k < 8)
        o << " meta l4proto { tcp, udp } th " << dir << " " << port_elem(true).first, proto = "th";
      else if (k < 9 && fam == 4)
        o << " ip protocol " << proto;
      else if (k < 10 && find_set(t, NamedSet::Concat, 1 << 20))
        o << " " << ipk() << " " << (chance(r, 0.5) ? "saddr" : "daddr") << " . " << proto << " dport @"
          << find_set(t, NamedSet::Concat, 1 << 20)->name;
      else if (k < 11) {
        std::vector<std::string> es;
        for (auto& [a, pt] : concat_elems(range(r, 1, 3), true)) es.push_back(a + " . " + pt);
        o << " " << ipk() << " " << (chance(r, 0.5) ? "saddr" : "daddr") << " . " << proto << " dport { " << join(es)
          << " }";
      } else
        o << " meta l4proto " << proto;
      if (proto == "tcp") {
        int f = range(r, 0, 11);
        if (f == 0)
          o << " tcp flags & (syn | ack) == syn";
        else if (f == 1)
          o << " tcp flags & (syn | ack) != syn";
        else if (f == 2)
          o << " tcp flags & (fin | syn | rst | ack) == ack";
        else if (f == 3)
          o << " tcp flags syn";
        else if (f == 4)
          o << " tcp flags { syn, ack, fin | ack }";
      }
    } else if (proto == "icmp") {
      static const std::vector<std::string> t4 = {"echo-request", "echo-reply", "destination-unreachable"};
      static const std::vector<std::string> t6 = {"echo-request", "echo-reply", "destination-unreachable"};
      int k = range(r, 0, 9);
      if (k < 4)
        o << " " << icmpk() << " type " << (chance(r, 0.15) ? "!= " : "") << pick(r, fam == 4 ? t4 : t6);
      else if (k < 6)
        o << " " << icmpk() << " type { " << pick(r, t4) << ", " << (chance(r, 0.5) ? "echo-reply" : "echo-request")
          << " }";
      else if (k < 7)
        o << " " << icmpk() << " type destination-unreachable " << icmpk() << " code "
          << (fam == 4 ? "port-unreachable" : "port-unreachable");
      else
        o << " meta l4proto " << (fam == 4 ? "icmp" : "ipv6-icmp");
    }
    if (chance(r, 0.3)) {
      static const std::vector<std::string> states = {"new", "established", "related", "invalid"};
      std::vector<std::string> chosen;
      for (const auto& s : states)
        if (chance(r, 0.4)) chosen.push_back(s);
      if (chosen.empty()) chosen.push_back(pick(r, states));
      int k = range(r, 0, 9);
      if (k < 5)
        o << " ct state " << join(chosen, ",");
      else if (k < 8)
        o << " ct state { " << join(chosen) << " }";
      else
        o << " ct state != " << pick(r, states);
    }
    if (chance(r, 0.08)) {
      int k = range(r, 0, 2);
      o << (k == 0 ? " meta mark 0x1" : k == 1 ? " meta mark != 0x1" : " meta mark & 0x1 == 0x1");
    }
    if (chance(r, 0.04)) o << " meta length " << range(r, 40, 80) << "-" << range(r, 81, 200);
    if (chance(r, 0.04)) o << (fam == 4 ? " ip ttl > " : " ip6 hoplimit > ") << range(r, 1, 100);
    if (chance(r, 0.04))
      o << (fam == 4 ? " ip dscp " : " ip6 dscp ") << (chance(r, 0.3) ? "!= " : "") << pick(r, kDscps);

    // Statements. nf2bpf runs a rule's statements after its matches, and a
    // vmap is a match: only a counter (which changes nothing) goes before one.
    if (chance(r, 0.25)) o << " counter";
    std::string effects;
    if (chance(r, 0.04)) effects += " log prefix \"dt \"";
    if (chance(r, 0.07)) effects += chance(r, 0.5) ? " meta mark set 0x1" : " meta mark set meta mark | 0x1";

    // Verdict. Jumps only forward, to later regular chains: no loops.
    bool regular = hook.empty();
    int later_lo = idx + 1;
    bool has_later = later_lo <= t.nregular;
    int v = range(r, 0, 99);
    bool vmap = v >= 82 || (v >= 62 && !has_later);
    if (!vmap) o << effects;
    if (reject && (hook == "input" || hook == "forward" || hook == "output") && chance(r, 0.3)) {
      std::string b = o.str();
      bool tcp =
          proto == "tcp" && (b.find(" tcp ") != std::string::npos || b.find("l4proto tcp") != std::string::npos ||
                             b.find("protocol tcp") != std::string::npos);
      if (vmap) o << effects;
      o << reject_stmt(t.family, tcp, !effects.empty());
      return o.str().substr(1);
    }
    auto target = [&] { return "u" + std::to_string(range(r, later_lo, t.nregular)); };
    if (v < 25)
      o << " accept";
    else if (v < 45)
      o << " drop";
    else if (v < 50)
      o << " continue";
    else if (v < 56) {
      if (o.str().empty()) o << " counter";  // a rule needs something
    } else if (v < 62)
      o << (regular ? " return" : " accept");
    else if (v < 75 && has_later)
      o << " jump " << target();
    else if (v < 82 && has_later)
      o << " goto " << target();
    else if (v < 100) {
      int min_target = 1 << 20;
      int k = range(r, 0, 4);
      std::vector<std::string> es;
      if (k == 0 && (proto == "tcp" || proto == "udp")) {
        for (auto& e : elems(range(r, 1, 4), [&] { return port_elem(true); }))
          es.push_back(e + " : " + map_verdict(t, idx, min_target));
        o << " " << proto << " dport vmap { " << join(es) << " }";
      } else if (k == 1) {
        static const std::vector<std::string> states = {"new", "established", "related", "invalid"};
        for (const auto& s : states)
          if (chance(r, 0.6)) es.push_back(s + " : " + map_verdict(t, idx, min_target));
        if (es.empty()) es.push_back("established : accept");
        o << " ct state vmap { " << join(es) << " }";
      } else if (k == 2 && proto.empty()) {
        std::vector<std::string> ps = {"tcp", "udp", fam == 4 ? "icmp" : "ipv6-icmp"};
        for (const auto& s : ps)
          if (chance(r, 0.6)) es.push_back(s + " : " + map_verdict(t, idx, min_target));
        if (es.empty()) es.push_back("tcp : drop");
        o << " meta l4proto vmap { " << join(es) << " }";
      } else if (const NamedSet* m = find_set(t, NamedSet::AddrMap, idx); k == 3 && m) {
        o << " " << ipk() << " " << (chance(r, 0.5) ? "saddr" : "daddr") << " vmap @" << m->name;
      } else if (const NamedSet* m = find_set(t, NamedSet::PortMap, idx);
                 k == 4 && m && (proto == "tcp" || proto == "udp")) {
        o << " " << proto << " dport vmap @" << m->name;
      } else {
        for (auto& e : elems(range(r, 1, 3), [&] { return addr_elem(true); }))
          es.push_back(e + " : " + map_verdict(t, idx, min_target));
        o << " " << ipk() << " saddr vmap { " << join(es) << " }";
      }
    } else
      o << " drop";
    return o.str().substr(1);
  }

  std::string ruleset() {
    std::ostringstream o;
    std::ostringstream tail;  // one-line `add rule` / `insert rule` commands after the tables
    o << "#!/usr/sbin/nft -f\n# nf2bpf difftest\n";
    if (chance(r, 0.5)) o << "flush ruleset\n";
    std::vector<std::string> hooks =
        host_like(mode) ? std::vector<std::string>{"input", "output"} : std::vector<std::string>{"forward"};
    std::vector<std::string> extra = {"prerouting", "postrouting"};
    // Distinct priorities per hook across all tables, by number and by name.
    struct Prio {
      int value;
      std::string text;
    };
    std::vector<Prio> prios = {{-150, "mangle"},    {-140, "mangle + 10"}, {-100, "-100"}, {-10, "-10"},
                               {-5, "filter - 5"},  {0, "filter"},         {0, "0"},       {5, "5"},
                               {10, "filter + 10"}, {50, "security"},      {100, "100"}};
    std::map<std::string, std::set<int>> used;
    int ntables = range(r, 1, 3);
    std::vector<Table> tables;
    for (int i = 0; i < ntables; ++i) {
      Table t;
      t.family = chance(r, 0.5) ? "inet" : ipk();
      t.name = "t" + std::to_string(i);
      t.nregular = range(r, 0, 3);
      tables.push_back(t);
    }
    for (size_t ti = 0; ti < tables.size(); ++ti) {
      Table& t = tables[ti];
      o << "table " << t.family << " " << t.name << " {\n";
      int nsets = range(r, 0, 3);
      for (int i = 0; i < nsets; ++i) o << "\t" << set_decl(t, i) << "\n";
      auto emit_chain = [&](const std::string& name, const std::string& hook, int idx) {
        o << "\tchain " << name << " {\n";
        if (!hook.empty()) {
          std::vector<Prio> free;
          for (const auto& p : prios)
            if (!used[hook].count(p.value)) free.push_back(p);
          Prio p = pick(r, free);
          used[hook].insert(p.value);
          o << "\t\ttype filter hook " << hook << " priority " << p.text << "; policy "
            << (chance(r, 0.7) ? "accept" : "drop") << ";\n";
        }
        int n = hook.empty() ? range(r, 1, 5) : range(r, 2, 8);
        for (int i = 0; i < n; ++i) {
          std::string body = rule(t, hook, idx);
          if (chance(r, 0.08)) {
            tail << (chance(r, 0.5) ? "add" : "insert") << " rule " << t.family << " " << t.name << " " << name << " "
                 << body << "\n";
          } else {
            o << "\t\t" << body << "\n";
          }
        }
        o << "\t}\n";
      };
      // Regular chains first (last first): a jump's target is declared before it.
      for (int u = t.nregular; u >= 1; --u) emit_chain("u" + std::to_string(u), "", u);
      bool first = ti == 0;
      for (const auto& h : hooks)
        if (first || chance(r, 0.6)) emit_chain("c_" + h, h, 0);
      for (const auto& h : extra)
        if (chance(r, 0.12)) emit_chain("c_" + h, h, 0);
      o << "}\n";
    }
    // A table of the other family changes nothing for this family's packets.
    if (chance(r, 0.15)) {
      o << "table " << (fam == 4 ? "ip6" : "ip") << " other {\n\tchain c {\n\t\ttype filter hook "
        << (host_like(mode) ? "input" : "forward") << " priority -20; policy drop;\n\t}\n}\n";
    }
    o << tail.str();
    return o.str();
  }
};

// ---- packets -----------------------------------------------------------------

struct FlowGen {
  Rng& r;
  Mode mode;
  int fam;
  bool reject = false;  // some packets carry a DSCP/ECN (REJECT's answers quote it)
  uint32_t next_token = 1;
  // When set, a TCP flow never reuses the address/port pair of an earlier
  // one. A second SYN on the tuple of an unfinished connection is judged by
  // the kernel's TCP window tracking (a SYN whose sequence number is not
  // after the first one's does not reopen the window, so its SYN/ACK is
  // INVALID), which nf2bpf's tracker does not do yet (docs/design.md,
  // "Connection tracking"; issue 14). Both references stay clear of that
  // known difference until it is implemented.
  bool fresh_tcp_tuples = true;
  std::set<std::string> tcp_tuples;

  Probe probe(Dir dir, verify::PacketSpec s, const std::string& what) {
    Probe p;
    p.dir = dir;
    p.family = fam;
    p.proto = s.proto;
    p.token = next_token++;
    const auto tok = token_bytes(p.token);
    bool icmp_error = (s.proto == 1 && s.icmp_type == 3) || (s.proto == 58 && s.icmp_type == 1);
    if (icmp_error) {
      s.quote.insert(s.quote.end(), tok.begin(), tok.end());
      p.token_off = 8 + s.quote.size() - 8;
    } else {
      s.payload.assign(tok.begin(), tok.end());
      p.token_off = s.proto == 6 ? 20 : 8;
    }
    p.ip = verify::build_ip(s);
    p.what = what + (s.bad_checksum ? " (bad checksum)" : "");
    return p;
  }

  // Now and then a packet arrives with a wrong transport checksum (conntrack
  // calls it INVALID at PREROUTING, REJECT answers nothing: lib/csum.h). A
  // TCP segment is then sent again intact, as its sender would retransmit
  // it: a segment missing for good would be a question of TCP window
  // tracking, which nf2bpf does not do (docs/design.md).
  void push(std::vector<Probe>& out, Dir dir, verify::PacketSpec s, const std::string& what) {
    bool plain = s.frag_offset == 0 && !s.more_fragments && !s.ipv6_hop_by_hop && !s.ipv6_fragment_header;
    if (plain && chance(r, 0.04)) {
      verify::PacketSpec bad = s;
      bad.bad_checksum = true;
      out.push_back(probe(dir, bad, what));
      if (s.proto != 6) return;
    }
    out.push_back(probe(dir, s, what));
  }

  verify::PacketSpec base(const std::string& src, const std::string& dst, uint8_t proto) {
    verify::PacketSpec s;
    s.family = (uint8_t)fam;
    s.saddr = *ir::parse_addr(src, fam == 4 ? ir::AddrFamily::V4 : ir::AddrFamily::V6);
    s.daddr = *ir::parse_addr(dst, fam == 4 ? ir::AddrFamily::V4 : ir::AddrFamily::V6);
    s.proto = proto;
    s.ttl = (uint8_t)(chance(r, 0.1) ? range(r, 2, 20) : 64);
    if (reject && chance(r, 0.2)) s.dscp = (uint8_t)range(r, 1, 63);
    if (chance(r, 0.25)) s.dscp = (uint8_t)pick(r, kDscps);
    if (chance(r, 0.25)) s.ecn = (uint8_t)range(r, 0, 3);
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
    if (mode == Mode::Loopback) fwd = rev = Dir::ToServer;  // sent and received by srv
    static const std::vector<int> client_ports = {40000, 40001, 1024, 5353, 53};
    static const std::vector<int> server_ports = {22, 53, 80, 443, 1000, 1500, 2000, 2001, 5353};
    uint16_t pa = (uint16_t)pick(r, client_ports), pb = (uint16_t)pick(r, server_ports);
    // Loopback: never a flow from an address and port to the same address and
    // port. Both directions would share one tuple, which a real socket only
    // has when it connects to itself (one sequence space); two random ones
    // make netfilter's TCP window tracking, which nf2bpf does not have, call
    // the packets INVALID.
    while (mode == Mode::Loopback && a == b && pa == pb) pb = (uint16_t)pick(r, server_ports);
    std::vector<Probe> out;
    int kind = range(r, 0, 9);
    if (kind < 4 && fresh_tcp_tuples) {
      auto key = [&] {
        return a < b ? a + "|" + b + "|" + std::to_string(pa) + "|" + std::to_string(pb)
                     : b + "|" + a + "|" + std::to_string(pb) + "|" + std::to_string(pa);
      };
      for (int i = 0; i < 20 && tcp_tuples.count(key()); ++i) {
        pa = (uint16_t)pick(r, client_ports);
        pb = (uint16_t)pick(r, server_ports);
      }
      if (tcp_tuples.count(key()))
        kind = 4;  // UDP instead
      else
        tcp_tuples.insert(key());
    }
    uint8_t icmp_proto = fam == 4 ? 1 : 58;
    std::string tag = std::string(from_client ? "c>s " : "s>c ");
    if (kind < 4) {  // TCP with consistent sequence numbers
      uint32_t sa = (uint32_t)r(), sb = (uint32_t)r();
      const uint32_t len = 8;  // every segment carries the 8-byte marker
      struct Step {
        bool forward;
        uint8_t flags;
      };
      std::vector<Step> steps = {{true, 0x02},  {false, 0x12}, {true, 0x10},  {true, 0x18},
                                 {false, 0x10}, {true, 0x11},  {false, 0x11}, {true, 0x10}};
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
        if (st.forward)
          na += adv;
        else
          nb += adv, b_started = true;
        (void)b_started;
        char what[64];
        snprintf(what, sizeof what, "tcp flags 0x%02x", st.flags);
        push(out, st.forward ? fwd : rev, s, tag + what);
      }
    } else if (kind < 6) {  // UDP request/reply
      int n = range(r, 1, 3);
      for (int i = 0; i < n; ++i) {
        bool f = i % 2 == 0;
        verify::PacketSpec s = base(f ? a : b, f ? b : a, 17);
        s.sport = f ? pa : pb;
        s.dport = f ? pb : pa;
        push(out, f ? fwd : rev, s, tag + "udp");
      }
    } else if (kind < 8) {  // ICMP echo, maybe an error about a UDP flow
      uint16_t id = (uint16_t)range(r, 1, 65000);
      verify::PacketSpec rq = base(a, b, icmp_proto);
      rq.icmp_type = fam == 4 ? 8 : 128;
      rq.icmp_id = id;
      push(out, fwd, rq, tag + "echo request");
      if (chance(r, 0.7)) {
        verify::PacketSpec rp = base(b, a, icmp_proto);
        rp.icmp_type = fam == 4 ? 0 : 129;
        rp.icmp_id = id;
        push(out, rev, rp, tag + "echo reply");
      }
    } else if (kind < 9) {  // UDP, then an ICMP port unreachable quoting it
      verify::PacketSpec s = base(a, b, 17);
      s.sport = pa;
      s.dport = pb;
      push(out, fwd, s, tag + "udp");
      verify::PacketSpec q = s;
      q.payload = {};
      auto inner = verify::build_ip(q);
      size_t keep = (fam == 4 ? 20 : 40) + 8;
      inner.resize(std::min(inner.size(), keep));
      verify::PacketSpec e = base(b, a, icmp_proto);
      e.icmp_type = fam == 4 ? 3 : 1;
      e.icmp_code = fam == 4 ? 3 : 4;
      e.quote = inner;
      push(out, rev, e, tag + "icmp port unreachable");
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
      push(out, fwd, s, tag + what);
    }
    return out;
  }
};

}  // namespace

Case random_case(uint64_t seed, Mode mode, int family, int packets, Reference ref, bool reject) {
  Rng r(seed);
  Case c{mode, family, "", {}};
  if (ref == Reference::Nft) {
    NftGen ng{r, mode, family, reject};
    c.ruleset = ng.ruleset();
  } else {
    RuleGen rg{r, mode, family, {}, reject};
    c.ruleset = rg.ruleset();
  }
  FlowGen fg{r, mode, family, reject};
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
