// Shared by the iptables rule parser and the per-module handlers: the rule
// being built, where its words are, and how to report problems with them.
#pragma once

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "translator/diag/diagnostics.h"
#include "translator/frontend/iptables/lexer.h"
#include "translator/ir/ir.h"

namespace nf2bpf::frontend::ipt {

struct RuleCtx {
  diag::Diagnostics& diag;
  const std::string& file;
  uint32_t line;
  std::string_view line_text;
  ir::AddrFamily fam;
  ir::Rule& rule;
  const std::vector<ir::Set>& ipsets;  // from --ipsets, may be empty
  uint8_t proto = 0;                   // -p value when given positively, else 0
  bool proto_negated = false;
  bool failed = false;
  // --reject-with tcp-reset: the kernel (reject_tg_check) wants -p tcp
  // anywhere in the rule, so it is checked once the rule is read.
  const Token* needs_tcp = nullptr;

  ir::SourceLoc loc(const Token& t) const;
  void error(const Token& t, std::string msg, std::string hint = {});
  void warning(const Token& t, std::string msg, std::string hint = {});
  ir::Match& add_match(ir::Field f, bool negated, ir::MatchValue v, std::string cap, const Token& at,
                       std::string_view module);
  ir::Statement& add_stmt(ir::StmtKind k, std::string cap, const Token& at);
};

// The words after an option (at most a few): kept inline, no allocation per option.
class Args {
 public:
  void push_back(const Token* t) { v_[n_++] = t; }
  const Token* operator[](size_t i) const { return v_[i]; }
  size_t size() const { return n_; }
  bool empty() const { return n_ == 0; }
  const Token* const* begin() const { return v_.data(); }
  const Token* const* end() const { return v_.data() + n_; }
  static constexpr size_t kMax = 4;

 private:
  std::array<const Token*, kMax> v_{};
  size_t n_ = 0;
};
using OptFn = void (*)(RuleCtx&, bool negated, const Token& opt, const Args& args);

struct OptSpec {
  std::string_view name;  // "--dport"
  int nargs;              // words after the option
  bool negatable;
  OptFn fn;
  std::string_view cap;  // capability name; empty: "<module> <name>"
};

struct ModuleSpec {
  std::string_view name;
  std::vector<OptSpec> options;
  // Protocols the module needs `-p` to name (tcp: {6}); empty = any.
  std::vector<uint8_t> protos;
};

// nullptr for modules nf2bpf does not know: their options are skipped with a
// generic rule and the match is reported unsupported.
const ModuleSpec* find_match_module(std::string_view name);

struct TargetSpec {
  std::string_view name;
  std::vector<OptSpec> options;
  void (*init)(RuleCtx&, const Token& target);  // sets the verdict / adds the statement
  // An option the target cannot do without (iptables refuses the rule:
  // `DNAT: option "--to-destination" must be specified`); empty: none.
  std::string_view required = {};
};
const TargetSpec* find_target(std::string_view name);

// Value helpers shared by handlers (all report their own errors).
bool parse_uint(std::string_view s, uint64_t max, uint64_t& out);          // decimal or 0x hex
bool dscp_class_value(std::string_view name, uint64_t& v);                 // CS0-CS7, BE, AF11-AF43, EF
bool tos_value_mask(std::string_view t, uint64_t& value, uint64_t& mask);  // VALUE[/MASK] or a name
bool parse_port(RuleCtx& c, const Token& t, std::string_view s, uint16_t& out);
bool parse_port_range(RuleCtx& c, const Token& t, std::string_view s, ir::IntervalSet& out);
std::optional<uint8_t> protocol_number(std::string_view name, ir::AddrFamily fam);
bool parse_value_mask(RuleCtx& c, const Token& t, uint64_t& value, uint64_t& mask);
// "ADDR/ffff:ffff::" -> "ADDR/32" in `out` (left empty when `s` has no such
// mask); false with `err` when the mask is not a prefix.
// A diagnostic message with an overlong quoted word shortened in the middle.
std::string bounded(std::string s);
bool ipv6_mask_to_len(std::string_view s, std::string& out, std::string& err);

}  // namespace nf2bpf::frontend::ipt
