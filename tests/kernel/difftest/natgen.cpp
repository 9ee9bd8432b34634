// Random NAT rulesets (iptables `*nat` + `*filter`, or nft nat chains plus a
// filter chain) and the flows that exercise them; see nat.h.
#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "tests/kernel/difftest/nat.h"
#include "tests/kernel/difftest/natpool.h"

namespace nf2bpf::difftest {

namespace {

using Rng = std::mt19937_64;

bool chance(Rng& r, double p) { return std::uniform_real_distribution<double>(0, 1)(r) < p; }
template <typename T>
const T& pick(Rng& r, const std::vector<T>& v) {
  return v[std::uniform_int_distribution<size_t>(0, v.size() - 1)(r)];
}
int range(Rng& r, int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(r); }

// The placeholder of the mutable port (the first DNAT/REDIRECT port): the
// ruleset gets its value, the mutant the value + 1.
const char* kMutPort = "@MUTPORT@";

// Destination ports of new flows, and the targets rules send them to.
const std::vector<int> kDports = {22, 53, 80, 443, 8080};
const std::vector<int> kToPorts = {80, 2222, 8080, 3128};

// Kernel hooks of a nat rule and what it may do there.
enum class Hook { Pre, In, Out, Post };

struct NatGen {
  Rng& r;
  const NatOptions& o;
  NatCase& c;
  const NatPool& pool;
  bool mutable_used = false;

  bool v6() const { return o.family == 6; }
  bool host() const { return o.mode == NatMode::Host; }
  bool ipt() const { return o.ref == Reference::Iptables; }

  // An address with brackets where a port follows it (IPv6).
  std::string hostport(const std::string& a, const std::string& ports) const {
    if (ports.empty()) return a;
    return (v6() ? "[" + a + "]" : a) + ":" + ports;
  }

  std::string cidr(const std::string& a) {
    static const std::vector<std::string> l4 = {"/32", "/32", "/24"}, l6 = {"/128", "/128", "/64"};
    std::string len = pick(r, v6() ? l6 : l4);
    if (len == "/24") return a.substr(0, a.rfind('.')) + ".0/24";
    if (len == "/64") return a.substr(0, a.find("::") + 2) + "/64";
    return a + len;
  }

  // A port (or range) for a DNAT/REDIRECT target; the first one is the
  // mutable one. Ranges in the exact mode: a DNAT port search starts at the
  // range's low end (no hash, no random start), so its outcome is fixed.
  std::string to_ports() {
    int k = range(r, 0, 9);
    std::string p;
    if (k < 7) {
      int v = pick(r, kToPorts);
      if (!mutable_used) {
        mutable_used = true;
        c.port_ranges.push_back({v, v});
        return kMutPort + std::string("=") + std::to_string(v);
      }
      c.port_ranges.push_back({v, v});
      return std::to_string(v);
    }
    c.port_ranges.push_back({8000, 8010});
    return "8000-8010";
  }

  // Source port ranges for SNAT/MASQUERADE. Exact mode: ranges that hold
  // every source port the flows use (40000-41999), so the kernel keeps the
  // port; --nat-ranges adds ranges that force a port search.
  std::string src_ports() {
    std::vector<std::pair<int, int>> rs = {{1024, 65535}, {32768, 60999}, {40000, 42000}};
    // Wider than the flows of a case: an exhausted range drops new
    // connections, and which ones depends on the kernel's random picks.
    if (o.ranges) rs.push_back({2000, 2099}), rs.push_back({5000, 5127});
    auto pr = pick(r, rs);
    c.port_ranges.push_back(pr);
    return std::to_string(pr.first) + "-" + std::to_string(pr.second);
  }

  // Matches of a nat rule at `hook`, iptables syntax; proto forced when a
  // port target needs one.
  std::string ipt_matches(Hook h, bool need_l4, std::string* proto_out) {
    std::ostringstream m;
    if (chance(r, 0.3)) m << (chance(r, 0.15) ? " ! -s " : " -s ") << cidr(pick(r, pool.sources(h == Hook::Out)));
    if (chance(r, 0.45)) m << " -d " << cidr(pick(r, pool.all));
    // Docker's and kube-proxy's way to catch the host's own connections to
    // its own addresses.
    if (h == Hook::Out && chance(r, 0.2)) m << " -m addrtype --dst-type LOCAL";
    const auto& ifs = pool.ifaces;
    if ((h == Hook::Pre || h == Hook::In) && chance(r, 0.2)) m << (chance(r, 0.2) ? " ! -i " : " -i ") << pick(r, ifs);
    if ((h == Hook::Post || h == Hook::Out) && chance(r, 0.2))
      m << (chance(r, 0.2) ? " ! -o " : " -o ") << pick(r, ifs);
    int p = range(r, 0, 9);
    std::string proto = p < 4 ? "tcp" : p < 7 ? "udp" : p < 8 ? (v6() ? "ipv6-icmp" : "icmp") : "";
    if (need_l4 && (proto.empty() || proto.find("icmp") != std::string::npos)) proto = chance(r, 0.6) ? "tcp" : "udp";
    if (!proto.empty()) {
      m << " -p " << proto;
      if ((proto == "tcp" || proto == "udp") && chance(r, 0.5)) {
        if (chance(r, 0.2))
          m << " -m multiport --dports " << pick(r, kDports) << "," << pick(r, kDports);
        else
          m << " -m " << proto << (chance(r, 0.15) ? " ! --dport " : " --dport ") << pick(r, kDports);
      }
    }
    if (chance(r, 0.05)) m << " -m comment --comment \"nat " << range(r, 1, 99) << "\"";
    *proto_out = proto;
    return m.str();
  }

  // DNAT targets of rules the nat OUTPUT hook may reach (its own, and user
  // chains in host mode): not this host's own non-loopback addresses. The
  // dataplane sends such a packet back in over lo with a route that is not
  // the kernel's local one (docs/nat-design.md), so a closed port gets no
  // TCP reset.
  bool out_targets(Hook h, bool user_chain) const { return h == Hook::Out || (user_chain && host() && o.output_nat); }

  std::string ipt_target(Hook h, const std::vector<std::string>& user, bool in_user, bool* need_l4) {
    int t = range(r, 0, 99);
    *need_l4 = false;
    if (t < 10) return in_user ? " -j RETURN" : " -j ACCEPT";
    if (t < 22 && !user.empty()) return " -j " + pick(r, user);
    if (t < 22) return " -j LOG --log-prefix \"nat \"";
    if (h == Hook::Pre || h == Hook::Out) {
      if (host() && h == Hook::Pre && t < 45) {
        std::string ports = chance(r, 0.8) ? " --to-ports " + to_ports() : "";
        *need_l4 = !ports.empty();
        return ports.empty() ? " -j REDIRECT" : " -j REDIRECT" + ports;
      }
      if (!pool.netmap_dst.empty() && h == Hook::Pre && t < 32) return " -j NETMAP --to " + pool.netmap_dst;
      std::string to = pick(r, out_targets(h, in_user) ? pool.out_dnat_to : pool.dnat_to);
      c.addr_ranges.push_back({to, to});
      if (o.ranges && h == Hook::Pre && chance(r, 0.3)) {
        to = pool.dnat_range.first + "-" + pool.dnat_range.second;
        c.addr_ranges.push_back(pool.dnat_range);
      }
      std::string ports = chance(r, 0.7) ? to_ports() : "";
      *need_l4 = !ports.empty();
      std::string flags = o.ranges && chance(r, 0.2) ? (chance(r, 0.5) ? " --random" : " --persistent") : "";
      if (ports.empty()) return " -j DNAT --to-destination " + to + flags;
      return " -j DNAT --to-destination " +
             (to.find('-') != std::string::npos && v6()
                  ? "[" + pool.dnat_range.first + "-" + pool.dnat_range.second + "]:" + ports
                  : hostport(to, ports)) +
             flags;
    }
    // Source NAT (POSTROUTING, INPUT).
    std::string flags;
    if (o.ranges && chance(r, 0.3)) {
      static const std::vector<std::string> fl = {" --random", " --random-fully", " --persistent"};
      flags = pick(r, fl);
    }
    if (h == Hook::Post && t < 55) {
      std::string ports = chance(r, 0.3) ? " --to-ports " + src_ports() : "";
      *need_l4 = !ports.empty();
      c.addr_ranges.push_back({pool.masq_addr, pool.masq_addr});
      return " -j MASQUERADE" + ports + (flags == " --persistent" ? "" : flags);
    }
    if (!pool.netmap_src.empty() && h == Hook::Post && t < 63) return " -j NETMAP --to " + pool.netmap_src;
    if (!pool.snat_keep.first.empty() && h == Hook::Post && t < 70)
      return " -j SNAT --to-source " + pool.snat_keep.first + "-" + pool.snat_keep.second;
    std::string to = pick(r, pool.snat_to);
    c.addr_ranges.push_back({to, to});
    std::string lo = to, hi = to;
    if (o.ranges && chance(r, 0.4)) {
      lo = pool.snat_range.first, hi = pool.snat_range.second;
      c.addr_ranges.push_back(pool.snat_range);
    }
    std::string ports = chance(r, 0.4) ? src_ports() : "";
    *need_l4 = !ports.empty();
    std::string text;
    if (lo == hi)
      text = hostport(lo, ports);
    else if (ports.empty())
      text = lo + "-" + hi;
    else
      text = v6() ? "[" + lo + "-" + hi + "]:" + ports : lo + "-" + hi + ":" + ports;
    return " -j SNAT --to-source " + text + flags;
  }

  // The target decides whether the rule needs a transport protocol, so draw
  // the target first and let the matches add one.
  std::string ipt_rule(const std::string& chain, Hook h, const std::vector<std::string>& user, bool in_user) {
    bool need_l4 = false;
    std::string target = ipt_target(h, user, in_user, &need_l4);
    std::string proto;
    std::string m = ipt_matches(h, need_l4, &proto);
    // MASQUERADE mostly out of r1, the way to the servers.
    if (target.find("MASQUERADE") != std::string::npos && !host() && m.find(" -o ") == std::string::npos &&
        chance(r, 0.6))
      m += " -o r1";
    return "-A " + chain + m + target;
  }

  std::string ipt_filter_rule(const std::string& chain) {
    std::string v = chance(r, 0.5) ? " -j ACCEPT" : " -j DROP";
    std::string svc = pick(r, pool.services);
    switch (range(r, 0, 11)) {
      case 0: return "-A " + chain + " -m conntrack --ctstate INVALID -j DROP";
      case 1: return "-A " + chain + " -m conntrack --ctstate DNAT" + (chance(r, 0.5) ? " -p tcp" : "") + v;
      // Conntrack tuple matches: the connection's tuples, which NAT made
      // differ from the packet's.
      case 8: return "-A " + chain + " -m conntrack --ctorigdst " + svc + v;
      case 9:
        return "-A " + chain + " -m conntrack --ctorigdstport " + std::to_string(pick(r, kDports)) +
               " --ctdir ORIGINAL -m conntrack ! --ctorigsrc " + pick(r, pool.clients) + v;
      case 10: return "-A " + chain + " -m conntrack --ctreplsrc " + pick(r, pool.dnat_to) + v;
      case 11: return "-A " + chain + " -m conntrack --ctrepldst " + pick(r, pool.snat_to) + v;
      case 2: return "-A " + chain + " -m conntrack --ctstate DNAT -d " + svc + v;
      case 3: return "-A " + chain + " -m conntrack --ctstate SNAT" + v;
      case 4:
        return "-A " + chain + " -m conntrack --ctstate NEW -p udp -m udp --dport " + std::to_string(pick(r, kDports)) +
               v;
      case 5: return "-A " + chain + " -m state --state ESTABLISHED,RELATED -j ACCEPT";
      case 6: return "-A " + chain + " -m conntrack --ctstate RELATED" + v;
      default: return "-A " + chain + " -m conntrack --ctstate SNAT,DNAT" + v;
    }
  }

  std::string iptables() {
    std::ostringstream out;
    out << "# Generated by " << (v6() ? "ip6tables-save" : "iptables-save") << " (nf2bpf difftest, nat)\n*nat\n";
    out << ":PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n";
    // User chains: D* reached from the DNAT hooks, S* from the SNAT hooks
    // (a DNAT target is only valid in PREROUTING/OUTPUT and their callees).
    std::vector<std::string> dch, sch;
    for (int i = range(r, 0, 2); i > 0; --i) dch.push_back("D" + std::to_string(i));
    for (int i = range(r, 0, 1); i > 0; --i) sch.push_back("S" + std::to_string(i));
    for (const auto& u : dch) out << ":" << u << " - [0:0]\n";
    for (const auto& u : sch) out << ":" << u << " - [0:0]\n";
    std::vector<std::pair<std::string, Hook>> bases = {{"PREROUTING", Hook::Pre}, {"POSTROUTING", Hook::Post}};
    if (host()) bases.push_back({"INPUT", Hook::In});
    if (host() && o.output_nat) bases.push_back({"OUTPUT", Hook::Out});
    std::vector<std::string> body;
    for (auto& [name, h] : bases) {
      bool dst = h == Hook::Pre || h == Hook::Out;
      int n = range(r, dst ? 2 : 1, dst ? 6 : 4);
      // No S* chains from INPUT: they may hold MASQUERADE (POSTROUTING only).
      for (int i = 0; i < n; ++i)
        body.push_back(ipt_rule(name, h, dst ? dch : h == Hook::Post ? sch : std::vector<std::string>{}, false));
    }
    // User chains jump only to later ones: no loops.
    for (size_t i = 0; i < dch.size(); ++i)
      for (int k = range(r, 1, 4); k > 0; --k)
        body.push_back(
            ipt_rule(dch[i], Hook::Pre, std::vector<std::string>(dch.begin() + (long)i + 1, dch.end()), true));
    for (size_t i = 0; i < sch.size(); ++i)
      for (int k = range(r, 1, 3); k > 0; --k)
        body.push_back(
            ipt_rule(sch[i], Hook::Post, std::vector<std::string>(sch.begin() + (long)i + 1, sch.end()), true));
    for (const auto& l : body) out << l << "\n";
    out << "COMMIT\n*filter\n";
    bool drop = chance(r, 0.15);
    std::vector<std::string> fch =
        host() ? std::vector<std::string>{"INPUT", "OUTPUT"} : std::vector<std::string>{"FORWARD"};
    for (const char* ch : {"INPUT", "FORWARD", "OUTPUT"}) {
      bool filtered = std::find(fch.begin(), fch.end(), ch) != fch.end();
      out << ":" << ch << " " << (filtered && drop ? "DROP" : "ACCEPT") << " [0:0]\n";
    }
    for (const auto& ch : fch) {
      if (drop) out << "-A " << ch << " -m conntrack --ctstate NEW,ESTABLISHED,RELATED -p tcp -j ACCEPT\n";
      for (int n = range(r, 0, 3); n > 0; --n) out << ipt_filter_rule(ch) << "\n";
    }
    out << "COMMIT\n";
    return out.str();
  }

  // ---- nft ----

  std::string nft_matches(Hook h, bool inet, bool need_l4) {
    std::ostringstream m;
    std::string ip = v6() ? "ip6" : "ip";
    if (inet && chance(r, 0.1)) m << " meta nfproto " << (v6() ? "ipv6" : "ipv4");
    if (chance(r, 0.3))
      m << " " << ip << " saddr" << (chance(r, 0.15) ? " != " : " ") << cidr(pick(r, pool.sources(h == Hook::Out)));
    if (chance(r, 0.45)) {
      if (chance(r, 0.2))
        m << " " << ip << " daddr { " << pick(r, pool.all) << ", " << pick(r, pool.services) << " }";
      else
        m << " " << ip << " daddr " << cidr(pick(r, pool.all));
    }
    if (h == Hook::Out && chance(r, 0.2)) m << " fib daddr type local";
    if ((h == Hook::Pre || h == Hook::In) && chance(r, 0.2))
      m << " iifname" << (chance(r, 0.2) ? " != " : " ") << "\"" << pick(r, pool.nft_ifaces) << "\"";
    if ((h == Hook::Post || h == Hook::Out) && chance(r, 0.2))
      m << " oifname" << (chance(r, 0.2) ? " != " : " ") << "\"" << pick(r, pool.nft_ifaces) << "\"";
    int p = range(r, 0, 9);
    std::string proto = p < 4 ? "tcp" : p < 7 ? "udp" : p < 8 ? "icmp" : "";
    if (need_l4 && (proto.empty() || proto == "icmp")) proto = chance(r, 0.6) ? "tcp" : "udp";
    if (proto == "icmp")
      m << " meta l4proto " << (v6() ? "ipv6-icmp" : "icmp");
    else if (!proto.empty()) {
      int k = range(r, 0, 5);
      if (k < 2)
        m << " " << proto << " dport" << (chance(r, 0.15) ? " != " : " ") << pick(r, kDports);
      else if (k < 3)
        m << " " << proto << " dport { " << pick(r, kDports) << ", " << pick(r, kDports) << " }";
      else if (k < 4)
        m << " meta l4proto " << proto << " th dport " << pick(r, kDports);
      else
        m << " meta l4proto " << proto;
    }
    return m.str();
  }

  // `ip saddr map { K1 : A1, K2 : A2 }` (nft address-map NAT): keys drawn
  // from `keys` (a prefix sometimes), each with an address of `to`.
  std::string nft_addr_map(const std::string& field, const std::vector<std::string>& keys,
                           const std::vector<std::string>& to) {
    std::vector<std::string> ks = keys;
    std::shuffle(ks.begin(), ks.end(), r);
    ks.resize(std::min<size_t>(ks.size(), (size_t)range(r, 1, 3)));
    std::ostringstream m;
    m << (v6() ? "ip6 " : "ip ") << field << " map { ";
    for (size_t i = 0; i < ks.size(); ++i) {
      std::string a = pick(r, to);
      c.addr_ranges.push_back({a, a});
      m << (i ? ", " : "") << ks[i] << " : " << a;
    }
    m << " }";
    return m.str();
  }

  std::string nft_stmt(Hook h, bool inet, bool regular, int nregular, int idx, bool* need_l4) {
    std::string fam = inet ? (v6() ? " ip6" : " ip") : "";
    int t = range(r, 0, 99);
    *need_l4 = false;
    if (t < 10) return regular ? " return" : " accept";
    if (t < 26 && idx < nregular)
      return (chance(r, 0.7) ? " jump n" : " goto n") + std::to_string(range(r, idx + 1, nregular));
    if (t < 22) return " counter";
    if (h == Hook::Pre || h == Hook::Out) {
      if (host() && h == Hook::Pre && t < 45) {
        if (chance(r, 0.2)) return " redirect";
        *need_l4 = true;
        return " redirect to :" + to_ports();
      }
      if (!pool.netmap_dst.empty() && h == Hook::Pre && t < 32) return " dnat" + fam + " prefix to " + pool.netmap_dst;
      if (chance(r, 0.15))
        return " dnat" + fam + " to " +
               nft_addr_map("saddr", pool.sources(h == Hook::Out),
                            out_targets(h, regular) ? pool.out_dnat_to : pool.dnat_to);
      std::string to = pick(r, out_targets(h, regular) ? pool.out_dnat_to : pool.dnat_to);
      c.addr_ranges.push_back({to, to});
      std::string lo = to, hi = to;
      if (o.ranges && h == Hook::Pre && chance(r, 0.3)) {
        lo = pool.dnat_range.first, hi = pool.dnat_range.second;
        c.addr_ranges.push_back(pool.dnat_range);
      }
      std::string ports = chance(r, 0.7) ? to_ports() : "";
      *need_l4 = !ports.empty();
      std::string flags = o.ranges && chance(r, 0.2) ? (chance(r, 0.5) ? " random" : " persistent") : "";
      std::string addr = lo == hi ? lo : lo + "-" + hi;
      if (!ports.empty())
        addr = v6() ? (lo == hi ? "[" + lo + "]" : "[" + lo + "]-[" + hi + "]") + ":" + ports : addr + ":" + ports;
      return " dnat" + fam + " to " + addr + flags;
    }
    std::string flags;
    if (o.ranges && chance(r, 0.3)) {
      static const std::vector<std::string> fl = {" random", " fully-random", " persistent"};
      flags = pick(r, fl);
    }
    if (h == Hook::Post && t < 55) {
      c.addr_ranges.push_back({pool.masq_addr, pool.masq_addr});
      std::string ports;
      if (chance(r, 0.3)) ports = " to :" + src_ports(), *need_l4 = true;
      return " masquerade" + ports + (flags == " persistent" ? "" : flags);
    }
    if (!pool.netmap_src.empty() && h == Hook::Post && t < 63) return " snat" + fam + " prefix to " + pool.netmap_src;
    if (!pool.snat_keep.first.empty() && h == Hook::Post && t < 70)
      return " snat" + fam + " to " + pool.snat_keep.first + "-" + pool.snat_keep.second;
    if (chance(r, 0.15)) return " snat" + fam + " to " + nft_addr_map("daddr", pool.all, pool.snat_to);
    std::string to = pick(r, pool.snat_to);
    c.addr_ranges.push_back({to, to});
    std::string lo = to, hi = to;
    if (o.ranges && chance(r, 0.4)) {
      lo = pool.snat_range.first, hi = pool.snat_range.second;
      c.addr_ranges.push_back(pool.snat_range);
    }
    std::string ports = chance(r, 0.4) ? src_ports() : "";
    *need_l4 = !ports.empty();
    std::string addr = lo == hi ? lo : lo + "-" + hi;
    if (!ports.empty())
      addr = v6() ? (lo == hi ? "[" + lo + "]" : "[" + lo + "]-[" + hi + "]") + ":" + ports : addr + ":" + ports;
    return " snat" + fam + " to " + addr + flags;
  }

  std::string nft_rule(Hook h, bool inet, bool regular, int nregular, int idx) {
    bool need_l4 = false;
    std::string stmt = nft_stmt(h, inet, regular, nregular, idx, &need_l4);
    std::string m = nft_matches(h, inet, need_l4);
    if (stmt.find("masquerade") != std::string::npos && !host() && m.find("oifname") == std::string::npos &&
        chance(r, 0.6))
      m += " oifname \"r1\"";
    if (m.empty() && stmt == " counter") return "counter";
    return (m + stmt).substr(1);
  }

  std::string nft_filter_rule() {
    std::string ip = v6() ? "ip6" : "ip";
    std::string v = chance(r, 0.5) ? " accept" : " drop";
    switch (range(r, 0, 11)) {
      case 0: return "ct state invalid drop";
      case 1: return std::string("ct status dnat") + (chance(r, 0.5) ? " meta l4proto tcp" : "") + v;
      case 8: return "ct original " + ip + " daddr " + pick(r, pool.services) + v;
      case 9: return "ct direction original ct original " + ip + " saddr != " + pick(r, pool.clients) + v;
      case 10: return "ct reply " + ip + " saddr " + pick(r, pool.dnat_to) + v;
      case 11: return "ct reply " + ip + " daddr " + pick(r, pool.snat_to) + v;
      case 2: return "ct status dnat " + ip + " daddr " + pick(r, pool.services) + v;
      case 3: return "ct status snat" + v;
      case 4: return "ct state new udp dport " + std::to_string(pick(r, kDports)) + v;
      case 5: return "ct state established,related accept";
      case 6: return "ct state related" + v;
      default: return "ct status snat,dnat" + v;
    }
  }

  std::string nft() {
    std::ostringstream out;
    out << "#!/usr/sbin/nft -f\n# nf2bpf difftest (nat)\n";
    if (chance(r, 0.5)) out << "flush ruleset\n";
    // Distinct priorities per hook across tables: the first nat chain that
    // binds a connection wins, so their order must be fixed.
    std::map<std::string, std::vector<std::string>> prios = {
        {"prerouting", {"dstnat", "dstnat - 10", "-90", "dstnat + 20"}},
        {"output", {"-100", "-110", "-90"}},
        {"postrouting", {"srcnat", "srcnat - 10", "110", "srcnat + 20"}},
        {"input", {"100", "90", "110"}}};
    for (auto& [h, v] : prios) std::shuffle(v.begin(), v.end(), r);
    std::vector<std::pair<std::string, Hook>> hooks = {{"prerouting", Hook::Pre}, {"postrouting", Hook::Post}};
    if (host()) hooks.push_back({"input", Hook::In});
    if (host() && o.output_nat) hooks.push_back({"output", Hook::Out});
    int ntables = range(r, 1, 2);
    for (int ti = 0; ti < ntables; ++ti) {
      bool inet = chance(r, 0.4);
      out << "table " << (inet ? "inet" : v6() ? "ip6" : "ip") << " nat" << ti << " {\n";
      int nreg = range(r, 0, 2);
      // Regular chains: each for one manip type (a dnat statement is only
      // valid in chains reached from prerouting/output).
      Hook reg_hook = chance(r, 0.6) ? Hook::Pre : Hook::Post;
      for (int u = nreg; u >= 1; --u) {
        out << "\tchain n" << u << " {\n";
        for (int k = range(r, 1, 3); k > 0; --k) out << "\t\t" << nft_rule(reg_hook, inet, true, nreg, u) << "\n";
        out << "\t}\n";
      }
      for (auto& [hook, h] : hooks) {
        if (ti > 0 && chance(r, 0.4)) continue;
        std::string prio = prios[hook][(size_t)ti];
        out << "\tchain " << hook << " {\n\t\ttype nat hook " << hook << " priority " << prio << "; policy accept;\n";
        // Not from input: a regular chain of the source-NAT kind may hold a
        // masquerade (postrouting only).
        bool may_jump = h == Hook::In ? false : (h == Hook::Pre || h == Hook::Out) == (reg_hook == Hook::Pre);
        bool dst = h == Hook::Pre || h == Hook::Out;
        for (int k = range(r, dst ? 2 : 1, dst ? 5 : 3); k > 0; --k)
          out << "\t\t" << nft_rule(h, inet, false, may_jump ? nreg : 0, 0) << "\n";
        out << "\t}\n";
      }
      out << "}\n";
    }
    bool drop = chance(r, 0.15);
    out << "table " << (v6() ? "ip6" : "ip") << " filt {\n";
    std::vector<std::string> fch =
        host() ? std::vector<std::string>{"input", "output"} : std::vector<std::string>{"forward"};
    for (const auto& ch : fch) {
      out << "\tchain " << ch << " {\n\t\ttype filter hook " << ch << " priority filter; policy "
          << (drop ? "drop" : "accept") << ";\n";
      if (drop) out << "\t\tct state new,established,related meta l4proto tcp accept\n";
      for (int n = range(r, 0, 3); n > 0; --n) out << "\t\t" << nft_filter_rule() << "\n";
      out << "\t}\n";
    }
    out << "}\n";
    return out.str();
  }

  // ---- flows ----

  void flows(int packets) {
    uint16_t next_port = 40000, next_id = 1000;
    uint32_t token = 1;
    std::vector<std::vector<NatStep>> active;
    std::set<std::string> tuples;  // original tuples of the flows so far
    auto key = [](const NatFlow& f) {
      return f.src + "|" + f.dst + "|" + std::to_string(f.proto) + "|" +
             std::to_string(f.proto == 1 || f.proto == 58 ? f.icmp_id : f.sport) + "|" + std::to_string(f.dport);
    };
    auto new_flow = [&] {
      NatFlow f;
      bool from_cli = chance(r, 0.75);
      f.init = from_cli ? Side::Cli : Side::Srv;
      if (from_cli) {
        f.src = pick(r, pool.clients);
        f.dst = chance(r, 0.55) ? pick(r, pool.services) : pick(r, pool.cli_targets);
      } else {
        f.src = pick(r, pool.srv_sources);
        f.dst = pick(r, pool.clients);
        // Host mode: the host's own flow to its own address, which nat
        // OUTPUT may DNAT to a client (the replies get a local source back).
        if (host() && chance(r, 0.3)) f.dst = f.src;
      }
      // Unique source ports and ICMP ids: no two flows can clash on a NAT
      // tuple, so the kernel keeps ports (a clash would make it search,
      // from a random start for source NAT).
      f.sport = next_port++;
      f.dport = (uint16_t)pick(r, kDports);
      f.icmp_id = next_id++;
      f.isn_init = (uint32_t)r();
      f.isn_resp = (uint32_t)r();
      int k = range(r, 0, 19);
      f.proto = k < 8 ? 6 : k < 13 ? 17 : k < 17 ? (v6() ? 58 : 1) : 17;
      // Not TCP to this host's own address: the host's stack answers a
      // reply nothing listens for with a reset, which the kernel routes back
      // to itself; a packet handed to lo has no local route, so the kernel
      // does not reset (docs/nat-design.md), and conntrack states part.
      if (f.init == Side::Srv && f.dst == f.src && f.proto == 6) f.proto = 17;
      // Nor an ICMP error back to the host's own flow to itself: one that
      // comes back over lo after NAT (a flow SNATed out of lo, its error
      // DNATed home again) is lost in nf2bpf (docs/nat-design.md, not yet).
      f.icmp_error = o.icmp_errors && k >= 17 && !(f.init == Side::Srv && f.dst == f.src);
      // --nat-ranges: sometimes the tuple of an earlier client flow from
      // another client, so that source NAT to one address clashes and the
      // kernel searches a port (or ICMP id).
      if (o.ranges && !c.flows.empty() && chance(r, 0.3)) {
        const NatFlow& p = pick(r, c.flows);
        std::vector<std::string> others;
        for (const auto& a : pool.clients)
          if (a != p.src) others.push_back(a);
        // Never the very tuple of an earlier flow: that is one connection
        // (a second SYN on it is judged by TCP window tracking).
        NatFlow q = p;
        q.src = pick(r, others);
        q.isn_init = f.isn_init, q.isn_resp = f.isn_resp;
        if (p.init == Side::Cli && !tuples.count(key(q))) f = q;
      }
      tuples.insert(key(f));
      int fi = (int)c.flows.size();
      c.flows.push_back(f);
      std::vector<NatStep> steps;
      auto step = [&](bool init, uint8_t flags, uint32_t seq, uint32_t ack, const std::string& what) {
        steps.push_back({fi, init, flags, seq, ack, token++, what});
      };
      if (f.proto == 6) {
        struct S {
          bool init;
          uint8_t flags;
        };
        std::vector<S> script = {{true, 0x02},  {false, 0x12}, {true, 0x10},  {true, 0x18},
                                 {false, 0x10}, {true, 0x11},  {false, 0x11}, {true, 0x10}};
        int n = range(r, 1, (int)script.size());
        uint32_t ni = f.isn_init, nr = f.isn_resp;
        for (int i = 0; i < n; ++i) {
          auto s = script[(size_t)i];
          uint32_t seq = s.init ? ni : nr, ack = (s.flags & 0x10) ? (s.init ? nr : ni) : 0;
          uint32_t adv = 8 + ((s.flags & 0x03) ? 1 : 0);
          (s.init ? ni : nr) += adv;
          char what[48];
          snprintf(what, sizeof what, "tcp %s 0x%02x", s.init ? "init" : "reply", s.flags);
          step(s.init, s.flags, seq, ack, what);
        }
      } else if (f.icmp_error) {
        step(true, 0, 0, 0, "udp init");
        step(false, 0, 0, 0, "icmp port unreachable reply");
      } else if (f.proto == 17) {
        for (int i = 0, n = range(r, 1, 4); i < n; ++i)
          step(i % 2 == 0, 0, 0, 0, i % 2 == 0 ? "udp init" : "udp reply");
      } else {
        for (int i = 0, n = range(r, 1, 4); i < n; ++i)
          step(i % 2 == 0, 0, (uint32_t)(i / 2 + 1), 0, i % 2 == 0 ? "echo request" : "echo reply");
      }
      std::reverse(steps.begin(), steps.end());
      active.push_back(std::move(steps));
    };
    while ((int)c.steps.size() < packets) {
      if (active.empty() || (active.size() < 4 && chance(r, 0.4))) new_flow();
      size_t i = std::uniform_int_distribution<size_t>(0, active.size() - 1)(r);
      c.steps.push_back(active[i].back());
      active[i].pop_back();
      if (active[i].empty()) active.erase(active.begin() + (long)i);
    }
  }
};

std::string replace_mut(std::string s, bool mutant) {
  for (size_t at; (at = s.find(kMutPort)) != std::string::npos;) {
    size_t eq = at + std::string(kMutPort).size();
    size_t end = s.find_first_not_of("0123456789", eq + 1);
    int v = std::atoi(s.c_str() + eq + 1);
    s.replace(at, end - at, std::to_string(mutant ? v + 1 : v));
  }
  return s;
}

}  // namespace

NatCase random_nat_case(uint64_t seed, const NatOptions& o, int packets) {
  Rng r(seed);
  NatCase c;
  NatPool pool = nat_pool(o.mode, o.family);
  NatGen g{r, o, c, pool};
  std::string text = o.ref == Reference::Nft ? g.nft() : g.iptables();
  // A source port search without a range stays in its class (1024-65535
  // for the flows' ports); ICMP ids are not compared in this mode.
  if (o.ranges) c.port_ranges.push_back({1024, 65535});
  c.ruleset = replace_mut(text, false);
  c.mutant = replace_mut(text, true);
  // With ranges the mutant also maps every address range to its first
  // address: the spread check must notice.
  if (o.ranges)
    for (const auto& [lo, hi] : {pool.dnat_range, pool.snat_range})
      for (const auto& [from, to] :
           {std::pair{"[" + lo + "]-[" + hi + "]", "[" + lo + "]"},
            std::pair{"[" + lo + "-" + hi + "]", "[" + lo + "]"}, std::pair{lo + "-" + hi, lo}})
        for (size_t at; (at = c.mutant.find(from)) != std::string::npos;) c.mutant.replace(at, from.size(), to);
  g.flows(packets);
  return c;
}

}  // namespace nf2bpf::difftest
