// The nftables front-end's syntax tree: what the text parser and the JSON
// parser both produce, so one lowering (lower.cpp) turns either into IR and
// the same ruleset written either way yields the same IR.
//
// It stays close to nft's own model (libnftables JSON schema): expressions
// are payload/meta/ct/fib selectors and values; statements are matches,
// verdicts and the non-terminal actions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "translator/ir/ir.h"

namespace nf2bpf::frontend::nft {

struct Expr {
  enum class Kind : uint8_t {
    Payload,    // a = protocol ("ip", "tcp" ...), b = field ("saddr")
    Meta,       // a = key
    Ct,         // a = key, b = direction ("original"/"reply"/""), c = family ("ip"/"ip6"/"")
    Fib,        // a = result ("type", "oif" ...), flags = {"saddr", "iif" ...}
    Other,      // known by name only: a = capability name ("numgen", "jhash", "socket" ...), b = detail
    Concat,     // kids: components
    Binop,      // a = "&", "|", "^", "<<", ">>"; kids = {left, right}
    Literal,    // a = the symbol/number/address as written; quoted = came from "..."
    Number,     // num (JSON numbers)
    Bool,       // num 0/1 (JSON true/false)
    Range,      // kids = {lo, hi}
    Prefix,     // kids = {addr}, num = prefix length
    Mask,       // "value / mask" (tcp flags listing form): kids = {value, mask}
    List,       // comma list "a,b": bitmask OR
    Set,        // anonymous set: kids = elements (values, Elem or MapEntry)
    SetRef,     // a = set name, without '@'
    Elem,       // set element with options: kids = {value}; timeout_ms/expires_ms/comment
    MapEntry,   // kids = {key, data}
    Verdict,    // a = accept/drop/continue/return/jump/goto/queue, b = chain
    MapLookup,  // kids = {key, map (Set or SetRef)}
    Wildcard,   // '*' (catch-all map element)
  };
  Kind kind = Kind::Literal;
  std::string a, b, c;
  std::vector<std::string> flags;
  uint64_t num = 0;
  bool quoted = false;
  std::optional<uint64_t> timeout_ms, expires_ms;
  std::string comment;
  std::vector<Expr> kids;
  ir::SourceLoc loc;

  bool is_value() const {
    return kind == Kind::Literal || kind == Kind::Number || kind == Kind::Bool || kind == Kind::Range ||
           kind == Kind::Prefix || kind == Kind::List || kind == Kind::Set || kind == Kind::SetRef ||
           kind == Kind::Mask || kind == Kind::Wildcard || kind == Kind::Elem;
  }
};

// One option of a statement (log prefix, limit rate ...): the value as text
// and where it was written.
struct Opt {
  std::string key, value;
  ir::SourceLoc loc;
};

struct Stmt {
  enum class Kind : uint8_t {
    Match,    // lhs op rhs. op: == != < > <= >= and "in" (implicit: flag test on bitmasks)
    Verdict,  // name: accept drop continue return jump goto; target
    Queue,    // opts: num, flags
    Counter,  // opts: packets, bytes, or name (named counter object)
    Log,      // opts: prefix level group snaplen queue-threshold flags
    Limit,    // opts: rate per burst rate_unit burst_unit inv
    Reject,   // opts: type (icmp icmpv6 icmpx "tcp reset"), code
    Nat,      // name: dnat snat masquerade redirect; lhs = address expr, rhs = port expr; opts: family flags
    Notrack,
    Mangle,     // lhs set rhs (meta mark set ..., ct mark set ...)
    Vmap,       // lhs = key, rhs = Set of MapEntry or SetRef
    SetUpdate,  // name: add update delete; target = set name; lhs = element expr; opts: timeout (ms),
                // meter (its size, for `meter NAME { ... }`); elem: the element's statements
    Comment,    // target = the comment
    Other,      // recognised, not implemented: name = capability ("tproxy", "xt match recent" ...)
  };
  Kind kind = Kind::Match;
  std::string name, op, target;
  Expr lhs, rhs;
  std::vector<Opt> opts;
  std::vector<Stmt> elem;  // SetUpdate: limit, counter, ct count for each element
  ir::SourceLoc loc;

  const Opt* opt(std::string_view key) const {
    for (const auto& o : opts)
      if (o.key == key) return &o;
    return nullptr;
  }
};

struct RuleAst {
  std::vector<Stmt> stmts;
  std::string text;       // as written (text input) or rendered (JSON input)
  std::string line_text;  // the source line for caret display (text input)
  ir::SourceLoc loc;
  std::optional<uint64_t> handle;
  std::optional<std::string> comment;
};

struct ChainSpec {
  std::optional<ir::ChainType> type;
  std::optional<ir::Hook> hook;
  std::string hook_name;
  std::optional<int> priority;
  std::optional<ir::VerdictKind> policy;
  std::string device;
  ir::SourceLoc type_loc, hook_loc, priority_loc, policy_loc;
};

struct SetDecl {
  std::string name;
  bool is_map = false;
  std::vector<std::string> key_types;  // datatype names ("ipv4_addr", "inet_service" ...)
  std::vector<Expr> typeof_key;        // `typeof` selectors, when given that way
  std::string data_type;               // maps: "verdict", "ipv4_addr" ...
  std::optional<Expr> typeof_data;
  std::vector<std::string> flags;  // constant interval timeout dynamic
  std::optional<uint64_t> timeout_ms;
  bool has_elements = false;
  std::vector<Expr> elements;
  ir::SourceLoc loc, type_loc;
};

}  // namespace nf2bpf::frontend::nft
