// nf2bpf conntrack: the connections the dataplane tracks, with their NAT
// translation, as `conntrack -L` lists the kernel's.
#include <arpa/inet.h>

#include <algorithm>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "ops/deploy.h"

namespace nf2bpf::cli {

namespace {

struct Tuple {
  std::string src, dst;
  uint16_t sport = 0, dport = 0;
};

const char* proto_name(uint8_t p) {
  switch (p) {
    case 6: return "tcp";
    case 17: return "udp";
    case 1: return "icmp";
    case 58: return "icmpv6";
    case 132: return "sctp";
    case 136: return "udplite";
    case 33: return "dccp";
  }
  return "unknown";
}

const char* tcp_state(uint8_t s) {
  static const char* kNames[] = {"NONE",       "SYN_SENT", "SYN_RECV",  "ESTABLISHED", "FIN_WAIT",
                                 "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE",       "SYN_SENT2"};
  return s < 10 ? kNames[s] : "NONE";
}

// The connection's tuples: stored with it when NAT applies to its family,
// else the key's endpoints in the original direction.
std::pair<Tuple, Tuple> tuples_of(const loader::Connection& c) {
  const nf_ct_val& v = c.val;
  static const uint8_t kZero[16] = {};
  bool stored = !std::equal(kZero, kZero + 16, v.orig.src) || !std::equal(kZero, kZero + 16, v.orig.dst);
  Tuple o, r;
  if (stored) {
    o = {loader::ct_addr_text(v.orig.src), loader::ct_addr_text(v.orig.dst), v.orig.sport, v.orig.dport};
    r = {loader::ct_addr_text(v.reply.src), loader::ct_addr_text(v.reply.dst), v.reply.sport, v.reply.dport};
    return {o, r};
  }
  bool a_first = c.key.pad[0] || (v.flags & NF_CT_ORIG_IS_A);  // ICMP flows are keyed from the requester
  o = a_first ? Tuple{loader::ct_addr_text(c.key.a), loader::ct_addr_text(c.key.b), c.key.pa, c.key.pb}
              : Tuple{loader::ct_addr_text(c.key.b), loader::ct_addr_text(c.key.a), c.key.pb, c.key.pa};
  r = {o.dst, o.src, o.dport, o.sport};
  return {o, r};
}

nlohmann::json tuple_json(const Tuple& t, bool icmp) {
  nlohmann::json j = {{"src", t.src}, {"dst", t.dst}};
  if (icmp)
    j["id"] = t.sport;
  else
    j["sport"] = t.sport, j["dport"] = t.dport;
  return j;
}

std::string tuple_text(const Tuple& t, bool icmp, uint8_t type) {
  std::string s = "src=" + t.src + " dst=" + t.dst;
  if (icmp) return s + " type=" + std::to_string(type) + " code=0 id=" + std::to_string(t.sport);
  return s + " sport=" + std::to_string(t.sport) + " dport=" + std::to_string(t.dport);
}

// The reply type of an ICMP request type (echo 8 -> 0, timestamp 13 -> 14 ...).
uint8_t icmp_reply_type(uint8_t req) { return req == 8 ? 0 : req == 128 ? 129 : (uint8_t)(req + 1); }

}  // namespace

Command add_conntrack(CLI::App& app) {
  struct Args {
    std::string format = "text", pin_dir;
  };
  auto a = std::make_shared<Args>();
  CLI::App* sub = app.add_subcommand(
      "conntrack", "List the connections the dataplane tracks, with their NAT translation (like conntrack -L)");
  sub->add_option("--format", a->format, "Output format (default text)")
      ->check(CLI::IsMember({"text", "json"}))
      ->option_text("text|json");
  sub->add_option("--pin-dir", a->pin_dir, "bpffs directory of nf2bpf's pins (default: per namespace)")
      ->option_text("DIR");
  sub->footer(
      "One line per connection: protocol, seconds left, TCP state, the original tuple, the reply tuple\n"
      "(the answer to the translated packet: it differs from the original's inverse when NAT applies),\n"
      "then [UNREPLIED], [SNAT], [DNAT] and the connection mark. These are nf2bpf's own connections:\n"
      "the kernel's table (conntrack -L) does not hold them.\n"
      "Exit status: 0 a dataplane is loaded, 1 none is, 2 usage or system error.");
  return {sub, [a]() -> int {
            ui().json = a->format == "json";
            int exit = kOk;
            auto dp = loaded_dataplane(a->pin_dir, exit);
            if (!dp) return exit;
            auto conns = dp->connections();
            if (!conns) return fail(kSystem, conns.error().message());
            std::sort(conns->begin(), conns->end(), [](const loader::Connection& x, const loader::Connection& y) {
              return x.expires_in_ns > y.expires_in_ns;
            });
            nlohmann::json list = nlohmann::json::array();
            for (const auto& c : *conns) {
              auto [o, r] = tuples_of(c);
              uint8_t proto = c.key.proto;
              bool icmp = proto == 1 || proto == 58;
              bool snat = c.val.flags & NF_CT_SNAT, dnat = c.val.flags & NF_CT_DNAT;
              bool replied = c.val.flags & NF_CT_SEEN_REPLY;
              uint64_t secs = c.expires_in_ns / 1000000000ULL;
              if (ui().json) {
                nlohmann::json j = {{"proto", proto_name(proto)},
                                    {"timeout", secs},
                                    {"original", tuple_json(o, icmp)},
                                    {"reply", tuple_json(r, icmp)},
                                    {"seen_reply", replied},
                                    {"snat", snat},
                                    {"dnat", dnat},
                                    {"mark", c.val.mark}};
                if (proto == 6) j["state"] = tcp_state(c.val.tcp_state);
                list.push_back(j);
                continue;
              }
              std::string line =
                  std::string(proto_name(proto)) + " " + std::to_string(proto) + " " + std::to_string(secs) + " ";
              if (proto == 6) line += std::string(tcp_state(c.val.tcp_state)) + " ";
              line += tuple_text(o, icmp, c.key.pad[0]);
              if (!replied) line += " [UNREPLIED]";
              line += " " + tuple_text(r, icmp, icmp_reply_type(c.key.pad[0]));
              if (snat) line += " [SNAT]";
              if (dnat) line += " [DNAT]";
              line += " mark=" + std::to_string(c.val.mark);
              text() << line << "\n";
            }
            // As conntrack -L: the count on stderr, so stdout holds only the list.
            if (!ui().quiet && !ui().json)
              std::cerr << "nf2bpf: " << conns->size() << (conns->size() == 1 ? " connection" : " connections")
                        << " listed\n";
            if (ui().json) emit_json({{"result", "ok"}, {"connections", list}}, kOk);
            return kOk;
          }};
}

}  // namespace nf2bpf::cli
