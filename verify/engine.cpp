#include "verify/engine.h"

#include "translator/policy/policy.h"

namespace nf2bpf::verify {

const char* to_string(Verdict v) {
  switch (v) {
    case Verdict::Accept: return "ACCEPT";
    case Verdict::Drop: return "DROP";
    case Verdict::Reject: return "REJECT";
    case Verdict::Queue: return "QUEUE";
    case Verdict::Indeterminate: return "INDETERMINATE";
  }
  return "?";
}

bool Decision::same_verdict(const Decision& o) const {
  if (verdict != o.verdict) return false;
  if (verdict != Verdict::Reject) return true;
  // The answer sent, not its spelling (policy::reject_code knows them all).
  uint8_t a = policy::reject_code(reject_with), b = policy::reject_code(o.reject_with);
  if (a == policy::kRejectUnknown || b == policy::kRejectUnknown) return reject_with == o.reject_with;
  return a == b;
}

bool Decision::same_outcome(const Decision& o) const {
  if (!same_verdict(o)) return false;
  if (verdict != Verdict::Accept) return true;  // a dropped packet leaves with nothing
  if (nat.has_value() != o.nat.has_value()) return false;
  return !nat || nat->allows(*o.nat);
}

NatTuple NatTuple::exact(ir::u128 src, ir::u128 dst, uint16_t sport, uint16_t dport, bool has_ports) {
  NatTuple t;
  t.src_lo = t.src_hi = src;
  t.dst_lo = t.dst_hi = dst;
  t.sport_lo = t.sport_hi = sport;
  t.dport_lo = t.dport_hi = dport;
  t.has_ports = has_ports;
  return t;
}

bool NatTuple::allows(const NatTuple& a) const {
  auto in = [](auto v, auto lo, auto hi) { return lo <= v && v <= hi; };
  if (!in(a.src_lo, src_lo, src_hi) || !in(a.src_hi, src_lo, src_hi)) return false;
  if (!in(a.dst_lo, dst_lo, dst_hi) || !in(a.dst_hi, dst_lo, dst_hi)) return false;
  if (has_ports != a.has_ports) return false;
  if (!has_ports) return true;
  return in(a.sport_lo, sport_lo, sport_hi) && in(a.sport_hi, sport_lo, sport_hi) &&
         in(a.dport_lo, dport_lo, dport_hi) && in(a.dport_hi, dport_lo, dport_hi);
}

std::string NatTuple::text() const {
  auto addr = [](ir::u128 lo, ir::u128 hi) {
    return lo == hi ? ir::format_addr(lo) : "[" + ir::format_addr(lo) + "-" + ir::format_addr(hi) + "]";
  };
  auto port = [&](uint16_t lo, uint16_t hi) -> std::string {
    if (!has_ports) return "";
    return ":" + (lo == hi ? std::to_string(lo) : "[" + std::to_string(lo) + "-" + std::to_string(hi) + "]");
  };
  return addr(src_lo, src_hi) + port(sport_lo, sport_hi) + " -> " + addr(dst_lo, dst_hi) + port(dport_lo, dport_hi);
}

std::string Decision::verdict_text() const {
  std::string s = to_string(verdict);
  if (verdict == Verdict::Reject && !reject_with.empty()) s += " (" + reject_with + ")";
  return s;
}

}  // namespace nf2bpf::verify
