#include "translator/ir/dump.h"

#include <sstream>

namespace nf2bpf::ir {

namespace {

std::string hex(uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "0x%llx", (unsigned long long)v);
  return b;
}

std::string icmp_set(const IntervalSet& s) {
  std::string out;
  for (const auto& iv : s.intervals()) {
    if (!out.empty()) out += ",";
    unsigned lo = (unsigned)iv.lo, hi = (unsigned)iv.hi;
    if (lo == 0 && hi == 0xffff)
      out += "any";
    else if ((lo & 0xff) == 0 && (hi & 0xff) == 0xff && (lo >> 8) == (hi >> 8))
      out += std::to_string(lo >> 8);
    else if ((lo & 0xff) == 0 && (hi & 0xff) == 0xff)
      out += std::to_string(lo >> 8) + "-" + std::to_string(hi >> 8);
    else if (lo == hi)
      out += std::to_string(lo >> 8) + "/" + std::to_string(lo & 0xff);
    else
      out += std::to_string(lo >> 8) + "/" + std::to_string(lo & 0xff) + "-" + std::to_string(hi >> 8) + "/" +
             std::to_string(hi & 0xff);
  }
  return out.empty() ? "{}" : out;
}

std::string value_set(Field f, const IntervalSet& s) {
  if (s.empty()) return "{}";
  switch (f) {
    case Field::SrcAddr:
    case Field::DstAddr:
    case Field::CtOrigSrc:
    case Field::CtOrigDst:
    case Field::CtReplSrc:
    case Field::CtReplDst: return format_addr_set(s);
    case Field::IcmpType:
    case Field::Icmp6Type: return icmp_set(s);
    case Field::SrcMac:
    case Field::CtState:
    case Field::SrcAddrType:
    case Field::DstAddrType: return format_hex_set(s);
    default: return format_int_set(s);
  }
}

}  // namespace

std::string dump(const Match& m) {
  std::string s = m.negated ? "!" : "";
  s += to_string(m.field);
  if (auto* iv = std::get_if<IntervalSet>(&m.value)) {
    if (m.field == Field::Opaque) {
      std::string out = (m.negated ? "!" : "") + std::string("opaque[") + m.cap;
      for (const auto& [k, v] : m.args) out += " " + k + (v.empty() ? "" : " " + v);
      if (!iv->empty()) out += " values " + format_int_set(*iv);
      return out + "]";
    }
    return s + " " + value_set(m.field, *iv);
  }
  if (auto* mk = std::get_if<Masked>(&m.value)) return s + " & " + hex(mk->mask) + " in " + format_hex_set(mk->values);
  if (auto* ifs = std::get_if<std::vector<IfacePattern>>(&m.value)) {
    std::string out;
    for (const auto& p : *ifs) out += (out.empty() ? "" : ",") + p.name + (p.prefix ? "*" : "");
    return s + " " + out;
  }
  if (auto* r = std::get_if<SetRef>(&m.value)) {
    std::string out = (m.negated ? "!" : "") + std::string("@") + r->name + "(";
    for (size_t i = 0; i < r->key.size(); ++i) out += (i ? "," : "") + std::string(to_string(r->key[i]));
    return out + ")";
  }
  return s;
}

std::string dump(const Statement& st) {
  std::string s = to_string(st.kind);
  switch (st.kind) {
    case StmtKind::Log:
    case StmtKind::Nflog:
      if (!st.text.empty()) s += " prefix \"" + st.text + "\"";
      s += st.kind == StmtKind::Log ? " level " + std::to_string(st.level) : " group " + std::to_string(st.group);
      break;
    case StmtKind::SetMark:
    case StmtKind::SetTos:
    case StmtKind::SetCtMark:
    case StmtKind::SaveMark:
    case StmtKind::RestoreMark: s += " value " + hex(st.value) + " mask " + hex(st.mask); break;
    case StmtKind::Dnat:
    case StmtKind::Snat:
    case StmtKind::Masquerade:
    case StmtKind::Redirect:
    case StmtKind::Netmap:
      if (st.nat.addrs) s += " to " + format_addr_set(*st.nat.addrs);
      if (st.nat.ports)
        s += " ports " + std::to_string(st.nat.ports->first) + "-" + std::to_string(st.nat.ports->second);
      if (st.nat.random) s += " random";
      if (st.nat.fully_random) s += " fully-random";
      if (st.nat.persistent) s += " persistent";
      break;
    default:
      for (const auto& [k, v] : st.args) s += " " + k + (v.empty() ? "" : " " + v);
  }
  if (st.kind != StmtKind::Log && st.kind != StmtKind::Nflog && !st.cap.empty()) s += " (" + st.cap + ")";
  return s;
}

std::string dump(const Ruleset& rs) {
  std::ostringstream o;
  for (const auto& s : rs.global_sets)
    o << "ipset " << s.name << " " << s.origin_type << " (" << s.elements.size() << " elements)\n";
  for (const auto& t : rs.tables) {
    o << "table " << to_string(t.family) << " " << t.name << "\n";
    for (const auto& s : t.sets) o << "  set " << s.name << " (" << s.elements.size() << " elements)\n";
    for (const auto& c : t.chains) {
      o << "  chain " << c.name;
      if (c.base)
        o << " [type " << to_string(c.base->type) << " hook " << to_string(c.base->hook) << " priority "
          << c.base->priority << " policy " << to_string(c.base->policy) << "]";
      if (c.counters) o << " counters " << c.counters->packets << ":" << c.counters->bytes;
      o << "\n";
      for (const auto& r : c.rules) {
        o << "    @" << r.loc.line << ":";
        for (const auto& m : r.matches) o << " " << dump(m) << ";";
        for (const auto& s : r.statements) o << " " << dump(s) << ";";
        if (r.vmap) o << " vmap @" << r.vmap->name << ";";
        o << " " << to_string(r.verdict);
        if (!r.comment.empty()) o << " comment \"" << r.comment << "\"";
        if (r.counters) o << " counters " << r.counters->packets << ":" << r.counters->bytes;
        o << "\n";
      }
    }
  }
  return o.str();
}

std::string dump(const Pipeline& p, const Ruleset& rs) {
  std::ostringstream o;
  for (const auto& s : p.stages) {
    o << "stage " << to_string(s.family) << " " << to_string(s.hook) << " " << s.table << "/" << s.chain << " priority "
      << s.priority << " policy " << to_string(s.policy) << "\n";
    for (size_t i = 0; i < s.rules.size(); ++i) {
      const auto& f = s.rules[i];
      o << "  " << i << " @" << rs.tables[f.origin.table].chains[f.origin.chain].rules[f.origin.rule].loc.line << ":";
      for (const auto& m : f.matches) o << " " << dump(m) << ";";
      for (const auto& st : f.statements) o << " " << dump(st) << ";";
      o << " " << to_string(f.action);
      if (f.action == FlatAction::Skip) o << " " << f.skip_to;
      o << "\n";
    }
  }
  return o.str();
}

}  // namespace nf2bpf::ir
