#include "verify/report.h"

#include <cmath>
#include <cstdio>
#include <ctime>
#include <map>

#include "common/strings.h"
#include "verify/parse.h"

namespace nf2bpf::verify {

namespace {

std::string hook_of(const Decision& d) { return hook_name(d.hook); }

std::string rule_loc(const Decision& d) { return d.rule.location.empty() ? "-" : d.rule.location; }

std::vector<std::string> path_names(const std::vector<ir::Hook>& hooks) {
  std::vector<std::string> out;
  for (auto h : hooks)
    if (h != ir::Hook::Ingress && h != ir::Hook::Egress) out.push_back(hook_name(h));
  return out;
}

std::string pad(std::string s, size_t w) {
  if (s.size() < w) s.append(w - s.size(), ' ');
  return s;
}

std::string rpad(const std::string& s, size_t w) { return s.size() < w ? std::string(w - s.size(), ' ') + s : s; }

// Hits per side, labelled "expected: FILE" / "actual: FILE".
struct SideHits {
  std::string label, name, side;
  std::vector<const RuleHits*> hits;
};
std::vector<SideHits> by_side(const DiffReport& r) {
  std::vector<SideHits> out;
  auto add = [&](const char* side, const std::string& name, const std::string& engine,
                 const std::vector<RuleHits>& hits) {
    SideHits s;
    s.side = side;
    s.name = name;
    s.label = std::string(side) + ": " + name + (engine.empty() ? "" : ", " + engine);
    for (const auto& h : hits) s.hits.push_back(&h);
    out.push_back(std::move(s));
  };
  add("expected", r.expected_name, r.expected_engine, r.expected_hits);
  add("actual", r.actual_name, r.actual_engine, r.actual_hits);
  return out;
}

nlohmann::json side_json(const Decision& d) {
  nlohmann::json j;
  j["verdict"] = to_string(d.verdict);
  if (!d.reject_with.empty()) j["reject_with"] = d.reject_with;
  j["rule"] = d.rule.location.empty() ? nlohmann::json(nullptr) : nlohmann::json(d.rule.location);
  j["text"] = d.rule.text;
  j["policy"] = d.rule.policy;
  if (!d.rule.chain.empty()) j["chain"] = d.rule.chain;
  if (!d.rule.via.empty()) j["via"] = d.rule.via;
  j["hook"] = hook_of(d);
  if (!d.ct_state.empty()) j["ct_state"] = d.ct_state;
  if (!d.note.empty()) j["note"] = d.note;
  if (d.nat) {
    const NatTuple& n = *d.nat;
    auto range = [](auto lo, auto hi, auto fmt) {
      return lo == hi ? nlohmann::json(fmt(lo)) : nlohmann::json::array({fmt(lo), fmt(hi)});
    };
    auto addr = [](ir::u128 a) { return ir::format_addr(a); };
    auto port = [](uint16_t p) { return p; };
    auto& nj = j["nat"];
    nj["src"] = range(n.src_lo, n.src_hi, addr);
    nj["dst"] = range(n.dst_lo, n.dst_hi, addr);
    if (n.has_ports) {
      nj["sport"] = range(n.sport_lo, n.sport_hi, port);
      nj["dport"] = range(n.dport_lo, n.dport_hi, port);
    }
  }
  if (!d.events.empty()) {
    auto& ev = j["events"] = nlohmann::json::array();
    for (const auto& e : d.events) ev.push_back({{"what", e.what}, {"rule", e.location}});
  }
  return j;
}

nlohmann::json packet_json(const PacketReport& p) {
  nlohmann::json t;
  t["family"] = p.family == 4 ? "ipv4" : "ipv6";
  const char* proto = l4_name(p.l4proto);
  t["proto"] = proto ? nlohmann::json(proto) : nlohmann::json(p.l4proto);
  t["src"] = ir::format_addr(p.saddr);
  t["dst"] = ir::format_addr(p.daddr);
  if (p.has_ports) {
    t["sport"] = p.sport;
    t["dport"] = p.dport;
  }
  if (p.is_icmp) {
    t["icmp_type"] = p.icmp_type;
    t["icmp_code"] = p.icmp_code;
  }
  t["text"] = p.tuple;
  nlohmann::json j;
  j["packet"] = p.number;
  j["time"] = p.time;
  j["tuple"] = t;
  j["hook"] = hook_of(p.expected);
  j["path"] = path_names(p.expected.path);
  if (!p.iif.empty()) j["iif"] = p.iif;
  if (!p.oif.empty()) j["oif"] = p.oif;
  j["expected"] = side_json(p.expected);
  j["actual"] = side_json(p.actual);
  return j;
}

std::string md_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '|')
      o += "\\|";
    else if (c == '`')
      o += "'";
    else if (c == '\n')
      o += ' ';
    else
      o += c;
  }
  return o;
}

std::string code(const std::string& s) { return "`" + md_escape(s) + "`"; }

std::string short_time(double t) {
  std::string s = format_time(t);
  return s.size() > 11 ? s.substr(11) : s;  // the time of day; the date is in the summary
}

std::string summary_line(const DiffReport& r) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "packets %llu, agreed %llu, differed %llu, indeterminate %llu, skipped %llu",
                (unsigned long long)r.packets, (unsigned long long)r.agreed, (unsigned long long)r.differed,
                (unsigned long long)r.indeterminate, (unsigned long long)r.skipped);
  return buf;
}

}  // namespace

std::string result_line(const DiffReport& r) {
  if (!r.error.empty())
    return std::string(r.engine_error ? "incomplete: the actual side failed ("
                                      : "incomplete: the capture broke off (") +
           std::to_string(r.differed) + " differences before it)";
  std::string partial;
  if (r.left_in_netfilter)
    partial = std::to_string(r.left_in_netfilter) + (r.left_in_netfilter == 1 ? " rule stays" : " rules stay") +
              " in netfilter, not in the compiled policy";
  if (r.differed == 0 && partial.empty())
    return r.indeterminate ? "no differences on the packets both sides could decide" : "equivalent on this capture";
  if (r.differed == 0)
    return "not equivalent: " + partial + " (no packet of this capture differed" +
           (r.indeterminate ? " among those both sides could decide)" : ")");
  std::string s = std::to_string(r.differed) + (r.differed == 1 ? " packet differs" : " packets differ");
  return partial.empty() ? s : s + "; " + partial;
}

std::string format_time(double t) {
  double sec = std::floor(t);
  time_t s = (time_t)sec;
  long usec = (long)std::llround((t - sec) * 1e6);
  if (usec >= 1000000) s += 1, usec -= 1000000;
  std::tm tm{};
  gmtime_r(&s, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d:%02d.%06ld", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, usec);
  return buf;
}

std::string render_text(const DiffReport& r, bool color) {
  const char* bold = color ? "\033[1m" : "";
  const char* red = color ? "\033[31m" : "";
  const char* green = color ? "\033[32m" : "";
  const char* off = color ? "\033[0m" : "";
  std::string o;
  // Names, rule texts and notes come from the input: control bytes escaped.
  auto e = [](const std::string& x) { return escape_controls(x); };
  o += std::string(bold) + "nf2bpf diff: " + e(r.capture) + off + "\n";
  o += "  expected: " + e(r.expected_name) + (r.expected_engine.empty() ? "" : " (" + r.expected_engine + ")") + "\n";
  o += "  actual:   " + e(r.actual_name) + (r.actual_engine.empty() ? "" : " (" + r.actual_engine + ")") + "\n";
  for (const auto& n : r.notes) o += "  note: " + e(n) + "\n";
  o += "\n" + summary_line(r) + "\n";
  if (!r.skips.empty()) {
    o += "skipped:\n";
    for (const auto& s : r.skips)
      o += "  " + std::to_string(s.count) + " x " + e(s.reason) + " (first: packet " + std::to_string(s.first) + ")\n";
  }
  auto sides = [&](const PacketReport& p) {
    size_t w = std::max(p.expected.verdict_text().size(), p.actual.verdict_text().size());
    size_t lw = std::max(rule_loc(p.expected).size(), rule_loc(p.actual).size());
    std::string s;
    for (int i = 0; i < 2; ++i) {
      const Decision& d = i ? p.actual : p.expected;
      s += std::string("    ") + (i ? "actual   " : "expected ") + pad(d.verdict_text(), w) + "  " +
           pad(e(rule_loc(d)), lw) + "  " + e(d.rule.text) + "\n";
      if (!d.rule.via.empty()) {
        std::string via;
        for (const auto& v : d.rule.via) via += (via.empty() ? "" : ", ") + e(v);
        s += "             via " + via + "\n";
      }
      if (!d.note.empty()) s += "             " + e(d.note) + "\n";
      if (p.expected.nat || p.actual.nat)
        s += "             leaves as " + (d.nat ? d.nat->text() : std::string("(not translated)")) + "\n";
    }
    return s;
  };
  auto head = [&](const PacketReport& p) {
    std::string s = "  packet " + std::to_string(p.number) + "  " + format_time(p.time) + "  " + p.tuple + "  " +
                    hook_of(p.expected);
    if (!p.expected.ct_state.empty()) s += " (ct " + p.expected.ct_state + ")";
    if (!p.iif.empty() || !p.oif.empty())
      s += "  " + (p.iif.empty() ? std::string() : "in " + e(p.iif)) + (p.iif.empty() || p.oif.empty() ? "" : " ") +
           (p.oif.empty() ? std::string() : "out " + e(p.oif));
    return s + "\n";
  };
  if (!r.differences.empty()) {
    o += "\n" + std::string(bold) + "differences (" + std::to_string(r.differences.size()) + "):" + off + "\n";
    for (const auto& p : r.differences) o += head(p) + sides(p);
  }
  if (!r.undecided.empty()) {
    o += "\nindeterminate (" + std::to_string(r.undecided.size()) + "):\n";
    for (const auto& p : r.undecided) o += head(p) + sides(p);
  }
  for (const auto& [label, name, side, hits] : by_side(r)) {
    o += "\nrule hits (" + label + "):\n";
    size_t lw = 0;
    for (const auto* h : hits) lw = std::max(lw, h->location.size());
    std::vector<const RuleHits*> never;
    for (const auto* h : hits) {
      o += "  " + rpad(std::to_string(h->hits), 8) + "  " + pad(e(h->location), lw) + "  " + e(h->text) + "\n";
      if (h->hits == 0 && !h->policy) never.push_back(h);
    }
    o += "never hit (" + side + "): " + std::to_string(never.size()) + (never.empty() ? "" : " rules") + "\n";
    for (const auto* h : never) o += "  " + pad(e(h->location), lw) + "  " + e(h->text) + "\n";
  }
  if (!r.error.empty()) o += "\n" + std::string(red) + "error: " + e(r.error) + off + "\n";
  o += "\nresult: " + std::string(r.equivalent() ? green : red) + result_line(r) + off + "\n";
  return o;
}

nlohmann::json render_json(const DiffReport& r) {
  nlohmann::json j;
  j["capture"] = r.capture;
  j["expected"] = {{"name", r.expected_name}, {"engine", r.expected_engine}};
  j["actual"] = {{"name", r.actual_name}, {"engine", r.actual_engine}};
  j["summary"] = {{"packets", r.packets},
                  {"agreed", r.agreed},
                  {"differed", r.differed},
                  {"skipped", r.skipped},
                  {"indeterminate", r.indeterminate},
                  {"left_in_netfilter", r.left_in_netfilter},
                  {"equivalent", r.equivalent() && r.error.empty()}};
  auto& sk = j["skipped"] = nlohmann::json::array();
  for (const auto& s : r.skips) sk.push_back({{"reason", s.reason}, {"packets", s.count}, {"first", s.first}});
  auto& diffs = j["differences"] = nlohmann::json::array();
  for (const auto& p : r.differences) diffs.push_back(packet_json(p));
  auto& und = j["indeterminate"] = nlohmann::json::array();
  for (const auto& p : r.undecided) und.push_back(packet_json(p));
  auto& rules = j["rules"] = nlohmann::json::array();
  auto& never = j["never_hit"] = nlohmann::json::array();
  for (const auto& [label, name, side, hits] : by_side(r))
    for (const auto* h : hits) {
      rules.push_back({{"rule", h->location},
                       {"hits", h->hits},
                       {"text", h->text},
                       {"chain", h->chain},
                       {"policy", h->policy},
                       {"side", side}});
      if (h->hits == 0 && !h->policy) never.push_back({{"rule", h->location}, {"text", h->text}, {"side", side}});
    }
  auto& notes = j["notes"] = nlohmann::json::array();
  for (const auto& n : r.notes) notes.push_back(n);
  j["error"] = r.error.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.error);
  return j;
}

std::string render_markdown(const DiffReport& r) {
  std::string o;
  o += "## nf2bpf diff: " + code(r.capture) + "\n\n";
  o += "| side | ruleset | evaluated by |\n|---|---|---|\n";
  o += "| expected | " + code(r.expected_name) + " | " + md_escape(r.expected_engine) + " |\n";
  o += "| actual | " + code(r.actual_name) + " | " + md_escape(r.actual_engine) + " |\n\n";
  o += "**Result: " + result_line(r) + "**\n\n";
  o += "| packets | agreed | differed | indeterminate | skipped |\n|---:|---:|---:|---:|---:|\n";
  o += "| " + std::to_string(r.packets) + " | " + std::to_string(r.agreed) + " | " + std::to_string(r.differed) +
       " | " + std::to_string(r.indeterminate) + " | " + std::to_string(r.skipped) + " |\n\n";
  if (!r.error.empty()) o += "> **Error:** " + md_escape(r.error) + "\n\n";
  for (const auto& n : r.notes) o += "> Note: " + md_escape(n) + "\n\n";
  if (!r.skips.empty()) {
    o += "<details><summary>Skipped packets</summary>\n\n| packets | first | reason |\n|---:|---:|---|\n";
    for (const auto& s : r.skips)
      o += "| " + std::to_string(s.count) + " | " + std::to_string(s.first) + " | " + md_escape(s.reason) + " |\n";
    o += "\n</details>\n\n";
  }
  auto table = [&](const std::vector<PacketReport>& list) {
    std::string t = "| # | time (UTC) | packet | hook | expected | actual |\n|---:|---|---|---|---|---|\n";
    for (const auto& p : list) {
      auto side = [](const Decision& d) {
        return "**" + md_escape(d.verdict_text()) + "** " + (d.rule.location.empty() ? "" : code(d.rule.location));
      };
      std::string hook = hook_of(p.expected) + (p.expected.ct_state.empty() ? "" : " (" + p.expected.ct_state + ")");
      t += "| " + std::to_string(p.number) + " | " + short_time(p.time) + " | " + code(p.tuple) + " | " + hook + " | " +
           side(p.expected) + " | " + side(p.actual) + " |\n";
    }
    t += "\n";
    for (const auto& p : list) {
      t += "- **#" + std::to_string(p.number) + "** expected: " + code(p.expected.rule.text);
      if (!p.expected.note.empty()) t += " — " + md_escape(p.expected.note);
      t += "; actual: " + code(p.actual.rule.text);
      if (!p.actual.note.empty()) t += " — " + md_escape(p.actual.note);
      t += "\n";
    }
    return t + "\n";
  };
  if (!r.differences.empty()) o += "### Differences\n\n" + table(r.differences);
  if (!r.undecided.empty()) o += "### Indeterminate\n\n" + table(r.undecided);
  o += "### Rule hits\n\n";
  for (const auto& [label, name, side, hits] : by_side(r)) {
    o += "<details><summary>" + md_escape(label) + "</summary>\n\n| hits | rule | text |\n|---:|---|---|\n";
    for (const auto* h : hits)
      o += "| " + std::to_string(h->hits) + " | " + code(h->location) + " | " + code(h->text) + " |\n";
    o += "\n</details>\n\n";
  }
  o += "### Never hit\n\n";
  bool any = false;
  for (const auto& [label, name, side, hits] : by_side(r))
    for (const auto* h : hits)
      if (h->hits == 0 && !h->policy) {
        o += "- " + side + " " + code(h->location) + " " + code(h->text) + "\n";
        any = true;
      }
  if (!any) o += "Every rule matched at least one packet.\n";
  return escape_controls(o);  // names and rule texts come from the input
}

}  // namespace nf2bpf::verify
