// The writer half of the policy YAML (yaml.h): a person reads it first, the
// reader (yaml_reader.cpp) loads it back field for field.
#include <yaml-cpp/yaml.h>

#include <arpa/inet.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstring>

#include "common/atomic_file.h"
#include "common/strings.h"
#include "translator/policy/yaml.h"
#include "translator/policy/yaml_schema.h"

namespace nf2bpf::policy {

using namespace yaml_schema;

namespace {

// Words a YAML 1.1 reader would take for booleans or null if left plain.
bool yaml_keyword(std::string_view s) {
  std::string l;
  for (char c : s) l += (char)std::tolower((unsigned char)c);
  for (const char* k : {"y", "n", "yes", "no", "true", "false", "on", "off", "null"})
    if (l == k) return true;
  return false;
}

// A YAML scalar for any byte string: plain when it is a simple word or
// phrase (names, actions), single-quoted when every character is printable,
// double-quoted with escapes otherwise, and base64 (!!binary) when the bytes
// are not UTF-8 (YAML text must be).
std::string yq(std::string_view s, bool allow_plain = true) {
  if (allow_plain && !s.empty() && std::isalpha((unsigned char)s[0]) && s.back() != ' ' && !yaml_keyword(s) &&
      s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./+- ") ==
          std::string_view::npos)
    return std::string(s);
  bool plain_ok = true;
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = 0;
    size_t n = utf8_seq(s, i, cp);
    if (n == 0) {
      std::vector<unsigned char> bytes(s.begin(), s.end());
      return "!!binary \"" + YAML::EncodeBase64(bytes.data(), bytes.size()) + "\"";
    }
    if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f) || cp == 0xfeff) plain_ok = false;
    i += n;
  }
  std::string out;
  if (plain_ok) {
    out = "'";
    for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
    return out + "'";
  }
  out = "\"";
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = 0;
    size_t n = utf8_seq(s, i, cp);
    char b[12];
    if (cp == '"' || cp == '\\')
      out += '\\', out += (char)cp;
    else if (cp == '\n')
      out += "\\n";
    else if (cp == '\t')
      out += "\\t";
    else if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f))
      std::snprintf(b, sizeof b, "\\x%02x", cp), out += b;
    else if (cp == 0xfeff)
      out += "\\ufeff";
    else
      out.append(s.substr(i, n));
    i += n;
  }
  return out + "\"";
}

// "10.0.0.0/8" for the IPv4-mapped range, "2001:db8::/32" otherwise.
std::string cidr_text(u128 addr, unsigned len) {
  char buf[INET6_ADDRSTRLEN];
  if (ir::is_v4_mapped(addr) && len >= 96) {
    in_addr x{};
    x.s_addr = htonl((uint32_t)addr);
    inet_ntop(AF_INET, &x, buf, sizeof buf);
    return std::string(buf) + "/" + std::to_string(len - 96);
  }
  in6_addr x{};
  for (int i = 15; i >= 0; --i, addr >>= 8) x.s6_addr[i] = (uint8_t)(addr & 0xff);
  inet_ntop(AF_INET6, &x, buf, sizeof buf);
  return std::string(buf) + "/" + std::to_string(len);
}

void write_origin(std::string& o, const Origin& g, const char* indent, const char* text_key) {
  o += indent, o += "at: " + yq(g.location) + "\n";
  if (g.table.find('/') == std::string::npos) {
    o += indent, o += "chain: " + yq(g.table + "/" + g.chain) + "\n";
  } else {
    o += indent, o += "table: " + yq(g.table) + "\n";
    o += indent, o += "chain: " + yq(g.chain) + "\n";
  }
  o += indent, o += text_key, o += ": " + yq(g.text) + "\n";
  if (line_of_location(g.location) != g.source_line) o += indent, o += "line: " + std::to_string(g.source_line) + "\n";
}

// What a rule's spelled-out form determines (the loader's view), so the
// writer can add `raw:` for whatever it does not.
nf2bpf_rule derive_rule(const Policy& p, const ChainIndex& chains, const Origin& g, const std::string& action,
                        const std::vector<std::string>& checks, uint32_t stmt_first, uint32_t stmt_count) {
  nf2bpf_rule r{};
  parse_action(action, p, r);
  for (const auto& c : checks) parse_check(c, p, r);
  r.stmt_first = stmt_first, r.stmt_count = (uint16_t)stmt_count;
  int64_t ci = chain_index(chains, g);
  r.src_chain = ci < 0 ? 0 : (uint32_t)ci;
  r.src_line = g.source_line;
  return r;
}

// Statements are written inline with their rule when they are laid out the
// way the compiler lays them out: each rule's after the previous rule's.
bool stmts_inline(const Policy& p) {
  uint32_t next = 0;
  for (const auto& r : p.rules) {
    if (r.stmt_first != next) return false;
    next += r.stmt_count;
  }
  return next == p.stmts.size();
}

}  // namespace

// --- Writer -------------------------------------------------------------------

namespace {

std::string num(uint64_t v) { return std::to_string(v); }

// A family mask as the stages spell it.
std::string family_text(uint32_t mask) {
  return mask == NF_FAM_V4 ? "ipv4" : mask == NF_FAM_V6 ? "ipv6" : mask == (NF_FAM_V4 | NF_FAM_V6) ? "inet" : num(mask);
}

std::string stage_flags_comment(uint8_t flags) {
  std::string c;
  for (auto [bit, what] : {std::pair{NF_STAGE_BEFORE_CT, "before conntrack (raw table)"},
                           {NF_STAGE_NAT, "nat chain: a new connection's first packet, at the hook's NAT point"},
                           {NF_STAGE_AFTER_NAT, "after the hook's NAT point: sees the translated packet"}})
    if (flags & bit) c += (c.empty() ? "    # " : "; ") + std::string(what);
  return c;
}

// One entry of `nat:`: spelled out, plus `raw:` for the fields the spelling
// leaves out (an address or ports the flags do not give; never compiler output).
std::string nat_entry_yaml(const nf2bpf_nat& n) {
  std::string o = "{kind: " + yq(nat_kind_name(n.kind));
  std::string to = nat_to_text(n);
  if (!to.empty()) o += ", to: " + yq(to);
  auto flags = nat_flag_names(n.flags);
  if (n.kind == NF_NAT_SERVICE) o += ", service: " + num(n.service);
  if (!flags.empty()) {
    o += ", flags: [";
    for (size_t k = 0; k < flags.size(); ++k) o += (k ? ", " : "") + yq(flags[k]);
    o += "]";
  }
  nf2bpf_nat d{};
  if (!to.empty()) parse_nat_to(to, d);
  std::string raw;
  auto field = [&](const char* name, bool differs, const std::string& value) {
    if (differs) raw += (raw.empty() ? "" : ", ") + std::string(name) + ": " + value;
  };
  field("port_min", d.port_min != n.port_min, num(n.port_min));
  field("port_max", d.port_max != n.port_max, num(n.port_max));
  field("pad", d.pad != n.pad, num(n.pad));
  field("service", n.kind != NF_NAT_SERVICE && n.service != 0, num(n.service));
  field("addr_min", std::memcmp(d.addr_min, n.addr_min, 16) != 0, yq(nat_addr_text(n.addr_min)));
  field("addr_max", std::memcmp(d.addr_max, n.addr_max, 16) != 0, yq(nat_addr_text(n.addr_max)));
  if (!raw.empty()) o += ", raw: {" + raw + "}";
  return o + "}";
}

std::string names_of_bits(uint32_t bits, const char* const* names, size_t n) {
  std::string s = "[";
  for (size_t b = 0; b < 32; ++b)
    if (bits & (1u << b)) s += (s.size() > 1 ? ", " : "") + (b < n ? std::string(names[b]) : num(b));
  return s + "]";
}

// Spelled out when reading the spelling back gives the same statement.
std::string stmt_yaml(const Policy& p, const nf2bpf_stmt& s) {
  std::string t = stmt_text(p, s);
  nf2bpf_stmt back{};
  bool exact = !parse_stmt(t, p, back) && std::memcmp(&back, &s, sizeof s) == 0;
  return exact ? yq(t) : stmt_map(s);
}

void write_header(std::string& o, const Policy& p) {
  o += "# nf2bpf compiled policy. Review the rules and stages; the part after them is what the\n"
       "# loader writes into the BPF maps. `nf2bpf apply` loads this file; edits are refused\n"
       "# (checksums), so change the ruleset and run `nf2bpf translate -o` again instead.\n";
  o += "nf2bpf-policy: " + num(kVersion) + "\n";
  o += "source: " + yq(p.source) + "\n";
  o += "format: " + yq(p.input_format) + "\n";
  o += "checksum: " + yq(p.checksum, false) + "\n";
  o += "notes-checksum: " + yq(notes_checksum(p), false) + "\n";
  o += "counts: {source_rules: " + num(p.rule_count_source) + ", rules: " + num(p.rules.size()) +
       ", stages: " + num(p.stages.size()) + ", statements: " + num(p.stmts.size()) +
       ", limits: " + num(p.limits.size()) + ", nat: " + num(p.nats.size()) + ", services: " + num(p.services.size()) +
       ", tuples: " + num(p.tuples.size()) + ", entries: " + num(p.entries.size()) + ", lpm: " + num(p.lpm.size()) +
       ", chains: " + num(p.chain_names.size()) + ", log_prefixes: " + num(p.log_prefixes.size()) + "}\n";
  o += "config: {slots_used: " + names_of_bits(p.cfg.slots_used, kSlotNames, NF_SLOT_MAX) +
       ", hooks_used: " + names_of_bits(p.cfg.hooks_used, kHookNames, NF_HOOK_MAX) + ", nrules: " + num(p.cfg.nrules) +
       ", max_steps: " + num(p.cfg.max_steps) + ", ct_needed: " + num(p.cfg.ct_needed) +
       ", xdp_stage: " + num(p.cfg.xdp_stage) +
       ", nat_fams: " + (p.cfg.nat_fams ? family_text(p.cfg.nat_fams) : "none") + "}\n";
}

// Rules, in evaluation order.
void write_rules(std::string& o, const Policy& p, bool inline_stmts) {
  o += "\nrules:\n";
  if (p.rules.empty()) o.back() = ' ', o += "[]\n";
  uint32_t next_stmt = 0;
  const ChainIndex chains = chain_index_of(p);
  for (size_t i = 0; i < p.rules.size(); ++i) {
    const nf2bpf_rule& r = p.rules[i];
    Origin none;
    const Origin& g = i < p.origins.size() ? p.origins[i] : none;
    o += "  - index: " + num(i) + "\n";
    write_origin(o, g, "    ", "rule");
    std::string action = action_text(p, r);
    o += "    action: " + yq(action) + "\n";
    auto checks = checks_text(p, r);
    if (!checks.empty()) {
      o += "    checks: [";
      for (size_t k = 0; k < checks.size(); ++k) o += (k ? ", " : "") + yq(checks[k]);
      o += "]\n";
    }
    uint32_t first = 0, count = 0;
    if (inline_stmts) {
      first = next_stmt, count = r.stmt_count;
      next_stmt += r.stmt_count;
      if (count) {
        o += "    do: [";
        for (uint32_t k = 0; k < count; ++k) o += (k ? ", " : "") + stmt_yaml(p, p.stmts[first + k]);
        o += "]\n";
      }
    }
    nf2bpf_rule d = derive_rule(p, chains, g, action, checks, first, count);
    std::string raw;
    for (const auto& f : kRuleFields)
      if (get_field(d, f) != get_field(r, f))
        raw += (raw.empty() ? "" : ", ") + std::string(f.name) + ": " + num(get_field(r, f));
    if (!raw.empty()) o += "    raw: {" + raw + "}\n";
  }
}

void write_stages(std::string& o, const Policy& p) {
  o += "\nstages:\n";
  if (p.stages.empty()) o.back() = ' ', o += "[]\n";
  for (size_t i = 0; i < p.stages.size(); ++i) {
    const nf2bpf_stage& s = p.stages[i];
    o += "  - index: " + num(i) + "\n";
    o += "    hook: " + enum_name(kHookNames, NF_HOOK_MAX, s.hook) + "\n";
    o += "    family: " + family_text(s.family_mask) + "\n";
    o += "    policy: " + enum_name(kActionNames, 2, s.policy) + "\n";
    o += "    rules: [" + num(s.first_rule) + ", " + num(s.end_rule) + "]    # first, end (exclusive)\n";
    o += "    tuples: [" + num(s.tuple_first) + ", " + num(s.tuple_count) + "]    # first, count\n";
    // "none": the XDP early-drop stage, whose no-match passes to TC uncounted.
    o += "    policy_counter: " + (s.policy_counter == UINT32_MAX ? std::string("none") : num(s.policy_counter)) + "\n";
    if (s.flags) o += "    flags: " + num(s.flags) + stage_flags_comment(s.flags) + "\n";
    Origin none;
    write_origin(o, i < p.stage_origins.size() ? p.stage_origins[i] : none, "    ", "text");
  }
}

void write_str_list(std::string& o, const char* key, const std::vector<std::string>& v, const char* comment) {
  o += key, o += ":";
  if (v.empty()) o += " []";
  o += comment, o += "\n";
  for (const auto& s : v) o += "  - " + yq(s) + "\n";
}

// The machine part's tables: hooks, names, limits and (when not inline) statements.
void write_tables(std::string& o, const Policy& p, bool inline_stmts) {
  o += "\n# Everything below is map contents.\n";
  o += "hooks: {";
  for (int h = 0; h < NF_HOOK_MAX; ++h)
    o += std::string(h ? ", " : "") + kHookNames[h] + ": [" + num(p.hooks[h].stage_first) + ", " +
         num(p.hooks[h].stage_count) + "]";
  o += "}    # first stage, count\n";
  write_str_list(o, "chains", p.chain_names, "    # table/chain of the rules (raw src_chain indexes it)");
  write_str_list(o, "log_prefixes", p.log_prefixes, "");
  o += "limits:";
  o += p.limits.empty()
           ? " []"
           : "    # [cost, cap, rate, flags] (abi.h nf2bpf_limit_cfg; flags 1 xt_limit, 2 bytes, 4 over, "
             "8 hashlimit, 16 connlimit, 32 time, 64 set + [table, expire, mode, srcmask, dstmask]; 128: the next is "
             "the rule's too); #0 is unused";
  o += "\n";
  for (size_t i = 0; i < p.limits.size(); ++i) {
    const auto& l = p.limits[i];
    o += "  - [" + num(l.cost) + ", " + num(l.cap) + ", " + num(l.rate) + ", " + num(l.flags);
    if (l.flags & (NF_LIMIT_HASH | NF_LIMIT_CONN | NF_LIMIT_TIME | NF_LIMIT_SET))
      o += ", " + num(l.table) + ", " + num(l.expire) + ", " + num(l.mode) + ", " + num(l.srcmask) + ", " +
           num(l.dstmask);
    o += "]";
    if (i) o += "    # #" + num(i) + ": " + limit_text(p.limits[i]);
    o += "\n";
  }
  o += "nat:";
  o += p.nats.empty() ? " []" : "    # the ranges NAT rules bind ('dnat #N ...'): to ADDR[-ADDR][:PORT[-PORT]]";
  o += "\n";
  for (size_t i = 0; i < p.nats.size(); ++i) o += "  - " + nat_entry_yaml(p.nats[i]) + "    # #" + num(i) + "\n";
  o += "services:";
  o += p.services.empty() ? " []" : "    # load-balancing chains: one backend drawn at random per new connection";
  o += "\n";
  for (size_t i = 0; i < p.services.size(); ++i) {
    const Service& sv = p.services[i];
    o += "  - {name: " + yq(sv.name) + ", family: " + family_text(sv.family == 4 ? NF_FAM_V4 : NF_FAM_V6);
    if (sv.mark_mask) o += ", hairpin_mark: " + yq(hex(sv.mark_value) + "/" + hex(sv.mark_mask));
    o += ", backends: [";
    for (size_t k = 0; k < sv.backends.size(); ++k) o += (k ? ", " : "") + yq(service_backend_text(sv.backends[k]));
    o += "]}    # #" + num(i) + "\n";
  }
  if (!inline_stmts) {
    o += "statements:\n";
    for (const auto& s : p.stmts) o += "  - " + stmt_yaml(p, s) + "\n";
  }
}

// The classifier: tuples, their entries, the address prefixes.
void write_classifier(std::string& o, const Policy& p) {
  o += "tuples:";
  o += p.tuples.empty() ? " []\n" : "    # slots of the key, [min_rule, max_rule]\n";
  for (const auto& t : p.tuples) {
    o += "  - {slots: [";
    for (unsigned k = 0; k < t.nslots && k < NF_MAX_TUPLE_SLOTS; ++k) o += (k ? ", " : "") + slot_name(t.slots[k]);
    o += "], rules: [" + num(t.min_rule) + ", " + num(t.max_rule) + "]}\n";
  }
  o += "entries:";
  o += p.entries.empty() ? " []\n" : "    # tTUPLE sSEQ [class of each slot] -> RULE, '+': entry sSEQ+1 follows\n";
  for (const auto& [k, v] : p.entries) {
    o += "  - \"t" + num(k.tuple) + " s" + num(k.seq) + " [";
    unsigned n = k.tuple < p.tuples.size() ? std::min<unsigned>(p.tuples[k.tuple].nslots, NF_MAX_TUPLE_SLOTS) : 0;
    for (unsigned c = 0; c < n; ++c) o += (c ? ", " : "") + num(k.cls[c]);
    o += "] -> " + num(v.rule) + (v.has_next ? " +" : "") + "\"\n";
  }
  o += "lpm:";
  o += p.lpm.empty() ? " []\n" : "    # slot prefix -> class\n";
  for (const auto& e : p.lpm)
    o += "  - \"" + slot_name(e.slot) + " " + cidr_text(e.addr, e.prefixlen) + " -> " + num(e.cls) + "\"\n";
}

void write_small(std::string& o, const Policy& p) {
  o += "small:    # per slot, runs [first, last, class] over the slot's values; the last value is 'absent'\n";
  for (const auto& ss : kSmall) {
    o += "  " + std::string(kSlotNames[ss.slot]) + ": [";
    uint32_t runs = 0;
    for (uint32_t i = 0; i < ss.size;) {
      uint32_t at = ss.base + i;
      uint32_t cls = at < p.small.size() ? p.small[at] : 0;
      uint32_t j = i;
      while (j + 1 < ss.size && ss.base + j + 1 < p.small.size() && p.small[ss.base + j + 1] == cls) ++j;
      if (runs && runs % 8 == 0)
        o += ",\n    ";
      else if (runs)
        o += ", ";
      o += "[" + num(i) + ", " + num(j) + ", " + num(cls) + "]";
      ++runs;
      i = j + 1;
    }
    o += "]\n";
  }
}

void write_predicate(std::string& o, const IfacePredicate& pr) {
  o += "      - [";
  for (size_t c = 0; c < pr.clauses.size(); ++c) {
    const auto& cl = pr.clauses[c];
    o += c ? ", " : "";
    o += cl.negated ? "{not: [" : "[";
    for (size_t k = 0; k < cl.patterns.size(); ++k) {
      const auto& pat = cl.patterns[k];
      o += k ? ", " : "";
      if (pat.prefix)
        o += yq(pat.name + "+");
      else if (!pat.name.empty() && pat.name.back() == '+')
        o += "{exact: " + yq(pat.name) + "}";
      else
        o += yq(pat.name);
    }
    o += cl.negated ? "]}" : "]";
  }
  o += "]\n";
}

void write_interfaces(std::string& o, const Policy& p) {
  o += "interfaces:    # predicates: clauses that all hold; a clause lists names (+ = prefix), not: none of them;\n"
       "               # classes: [which predicates hold, class]\n";
  for (int w = 0; w < 2; ++w) {
    o += w ? "  oif:\n" : "  iif:\n";
    o += "    predicates:";
    if (p.iface_predicates[w].empty()) o += " []";
    o += "\n";
    for (const auto& pr : p.iface_predicates[w]) write_predicate(o, pr);
    o += "    classes: [";
    size_t k = 0;
    for (const auto& [sig, cls] : p.iface_classes[w]) {
      std::string bits;
      for (bool b : sig) bits += b ? '1' : '0';
      o += (k++ ? ", " : "") + std::string("['") + bits + "', " + num(cls) + "]";  // '' quotes: never a number
    }
    o += "]\n";
  }
}

}  // namespace

std::string to_yaml(const Policy& p) {
  std::string o;
  o.reserve(4096 + p.rules.size() * 256 + p.entries.size() * 32 + p.lpm.size() * 32);
  bool inline_stmts = stmts_inline(p);
  write_header(o, p);
  write_rules(o, p, inline_stmts);
  write_stages(o, p);
  write_tables(o, p, inline_stmts);
  write_classifier(o, p);
  write_small(o, p);
  write_interfaces(o, p);
  return o;
}

Result<void> write_yaml_file(const Policy& p, const std::string& path) {
  std::string text = to_yaml(p);
  auto slash = path.rfind('/');
  if ((slash == std::string::npos ? path : path.substr(slash + 1)).empty())
    return sys_error("write policy to '" + path + "'", EISDIR);
  // Readable as any file the user creates (policies are not secret).
  mode_t mask = umask(0);
  umask(mask);
  return write_file_atomic(path, text, 0666 & ~mask);
}

}  // namespace nf2bpf::policy
