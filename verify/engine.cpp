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

std::string Decision::verdict_text() const {
  std::string s = to_string(verdict);
  if (verdict == Verdict::Reject && !reject_with.empty()) s += " (" + reject_with + ")";
  return s;
}

}  // namespace nf2bpf::verify
