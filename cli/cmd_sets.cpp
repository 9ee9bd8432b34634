// nf2bpf sets: the elements of the nft sets the packet path writes (add,
// update, delete @set, meters), as the dataplane holds them: what `nft list
// set` shows of the kernel's.
#include <arpa/inet.h>

#include <algorithm>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "ops/deploy.h"

namespace nf2bpf::cli {

namespace {

// An address of a key (IPv4: its last four bytes).
std::string addr_text(const uint8_t* a, uint8_t family) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(family == 4 ? AF_INET : AF_INET6, family == 4 ? a + 12 : a, buf, sizeof buf);
  return buf;
}

// The element's key, its parts in the order saddr, daddr, sport, dport.
std::vector<std::string> key_parts(const loader::SetElement& e) {
  std::vector<std::string> out;
  if (e.parts & NF_HL_SIP) out.push_back(addr_text(e.key.src, e.key.family));
  if (e.parts & NF_HL_DIP) out.push_back(addr_text(e.key.dst, e.key.family));
  if (e.parts & NF_HL_SPT) out.push_back(std::to_string(ntohs(e.key.sport)));
  if (e.parts & NF_HL_DPT) out.push_back(std::to_string(ntohs(e.key.dport)));
  return out;
}

std::vector<std::string> part_names(uint32_t parts) {
  std::vector<std::string> out;
  for (auto [bit, n] :
       {std::pair{NF_HL_SIP, "saddr"}, {NF_HL_DIP, "daddr"}, {NF_HL_SPT, "sport"}, {NF_HL_DPT, "dport"}})
    if (parts & bit) out.push_back(n);
  return out;
}

std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : sep) + x;
  return s;
}

}  // namespace

Command add_sets(CLI::App& app) {
  struct Args {
    std::string format = "text", pin_dir, name;
  };
  auto a = std::make_shared<Args>();
  CLI::App* sub = app.add_subcommand(
      "sets",
      "List the elements of the nft sets the packet path writes (add/update/delete @set, meters), like nft "
      "list set");
  sub->add_option("SET", a->name, "Only this set: its name (\"knock\") or full name (\"nft inet t knock\")");
  sub->add_option("--format", a->format, "Output format (default text)")
      ->check(CLI::IsMember({"text", "json"}))
      ->option_text("text|json");
  sub->add_option("--pin-dir", a->pin_dir, "bpffs directory of nf2bpf's pins (default: per namespace)")
      ->option_text("DIR");
  sub->footer(
      "Per set of the live policy that its rules write: a line with the set's name (family, table, set) and\n"
      "its key's parts (saddr, daddr, sport, dport), then one line per element: the key's values joined by\n"
      "' . ', the time left before it runs out (none: it has no timeout). These are nf2bpf's own elements:\n"
      "the kernel's set (nft list set) does not hold them. A set of a policy applied from a policy file is\n"
      "named by its table number.\n"
      "Exit status: 0 a dataplane is loaded, 1 none is (or no such set), 2 usage or system error.");
  return {sub, [a]() -> int {
            ui().json = a->format == "json";
            int exit = kOk;
            auto dp = loaded_dataplane(a->pin_dir, exit);
            if (!dp) return exit;
            auto elems = dp->set_elements();
            if (!elems) return fail(kSystem, elems.error().message());
            auto sets = dp->set_names();
            if (!sets) return fail(kSystem, sets.error().message());
            auto wanted = [&](const std::string& set) {
              return a->name.empty() || set == a->name || set.ends_with(" " + a->name);
            };
            std::map<std::string, std::vector<const loader::SetElement*>> by_set;
            std::map<std::string, uint32_t> parts;
            for (const auto& e : *elems)
              if (wanted(e.set)) by_set[e.set].push_back(&e), parts[e.set] = e.parts;
            for (const auto& [name, p] : *sets)
              if (wanted(name)) by_set[name], parts[name] = p;
            if (!a->name.empty() && by_set.empty())
              return fail(kRejected, "no set '" + a->name + "' is written by the live policy's rules",
                          "nf2bpf sets (no name) lists every one");
            nlohmann::json list = nlohmann::json::array();
            for (auto& [name, es] : by_set) {
              std::sort(es.begin(), es.end(), [](const loader::SetElement* x, const loader::SetElement* y) {
                return key_parts(*x) < key_parts(*y);
              });
              nlohmann::json jes = nlohmann::json::array();
              if (!ui().json)
                text() << name << " (key " << join(part_names(parts[name]), " . ") << "): " << es.size()
                       << (es.size() == 1 ? " element\n" : " elements\n");
              for (const auto* e : es) {
                auto k = key_parts(*e);
                if (ui().json) {
                  nlohmann::json j = {{"key", k}};
                  if (e->expires_in_ns) j["expires_ms"] = e->expires_in_ns / 1000000;
                  jes.push_back(j);
                  continue;
                }
                text() << "  " << join(k, " . ");
                if (e->expires_in_ns) text() << " expires " << e->expires_in_ns / 1000000 << "ms";
                text() << "\n";
              }
              if (ui().json) list.push_back({{"name", name}, {"key", part_names(parts[name])}, {"elements", jes}});
            }
            if (ui().json) emit_json({{"result", "ok"}, {"sets", list}}, kOk);
            return kOk;
          }};
}

}  // namespace nf2bpf::cli
