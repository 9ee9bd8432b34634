// Private to the nftables front-end: lowering one rule's syntax tree to IR.
// matches.cpp handles the match statements, statements.cpp everything else.
#pragma once

#include <optional>
#include <string>

#include "translator/frontend/nft/builder.h"

namespace nf2bpf::frontend::nft {

// The selector a set's datatype stands for (elements of an `ipv4_addr` set
// are addresses compared as saddr/daddr, `icmp_type` elements are encoded
// like IcmpType ...).
Selector selector_for_type(Type t, unsigned bits);

struct RuleLowering {
  Builder& b;
  ir::Table& table;
  ir::Rule& rule;
  bool failed = false;

  bool have_verdict = false;
  bool stmt_pending = false;  // a statement other than counter has been lowered
  ir::SourceLoc stmt_pending_loc;

  void error(const ir::SourceLoc& loc, std::string msg, std::string hint = {});

  // Adds a match; an NfProto/L4Proto test identical to an earlier one is
  // dropped (nft hides the dependencies it adds, so both spellings agree).
  void add_match(ir::Match m);
  void add_deps(const Selector& s, const ir::SourceLoc& loc);
  void opaque(const Selector& s, const std::string& op, const Expr* rhs, const ir::SourceLoc& loc);

  void lower_match(const Stmt& s);
  void lower_stmt(const Stmt& s);
  void lower_vmap(const Stmt& s);
  // Match statements by their left-hand side, a single selector by its
  // right-hand side (matches.cpp).
  void lower_bitwise_match(const Stmt& s);
  bool frag_off_match(const Stmt& s, Selector& sel);
  bool random_match(const Stmt& s);
  void lower_concat_match(const Stmt& s);
  void concat_components(const std::vector<Selector>& sels, const Expr& rhs);
  void lower_selector_match(const Stmt& s);
  void match_set_ref(const Stmt& s, const Selector& sel, ir::Match m);
  void match_names(const Stmt& s, const Selector& sel, ir::Match m);
  void match_none_of(const Stmt& s, const Selector& sel, ir::Match m);
  void match_flags(const Stmt& s, const Selector& sel, ir::Match m);
  void match_value_mask(const Stmt& s, const Selector& sel, ir::Match m);
  void match_values(const Stmt& s, const Selector& sel, ir::Match m);
  // One per statement kind (statements.cpp).
  void lower_verdict(const Stmt& s);
  void lower_counter(const Stmt& s);
  void lower_log(const Stmt& s);
  void lower_limit(const Stmt& s);
  std::optional<ir::Match> limit_match(const Stmt& s);
  void lower_reject(const Stmt& s);
  void lower_nat(const Stmt& s);
  bool lower_nat_map(const Stmt& st, ir::Statement& nat, Type addr_type, bool was_pending);
  void lower_mangle(const Stmt& s);
  void lower_set_update(const Stmt& s);
  void lower_other(const Stmt& s);
  // Appends an IR statement; any but a counter makes later matches follow a statement.
  ir::Statement& push_stmt(const Stmt& at, ir::StmtKind k, std::string cap);
  void set_verdict(ir::VerdictKind k, std::string cap, const ir::SourceLoc& loc, std::string chain = {});
  void finish_rule();

  // Values. `raw` is over the selector's own datatype; to_ir applies the
  // field encoding (ICMP type<<8|code, ethertype -> nfproto ...).
  std::optional<ir::u128> scalar(const Selector& s, const Expr& v);
  std::optional<ir::IntervalSet> raw(const Selector& s, const Expr& v);
  bool names(const Selector& s, const Expr& v, std::vector<ir::IfacePattern>& out);
  ir::IntervalSet to_ir(const Selector& s, const ir::IntervalSet& raw) const;
  ir::IntervalSet domain(const Selector& s) const;

  // An anonymous set for a concatenation or a verdict map; returns its name.
  std::string make_anon_set(const std::vector<Selector>& key, const Expr& set, bool vmap, const ir::SourceLoc& loc,
                            bool& ok);
  bool element_key(const std::vector<Selector>& key, const Expr& e, std::vector<ir::IntervalSet>& out);
};

// Shared by the builder (named sets) and rule lowering (anonymous sets).
std::optional<ir::Verdict> verdict_of(const Expr& e);

// Orders elements by key. Elements of a set never overlap (nft refuses
// overlapping intervals), so their order has no meaning; a fixed one makes
// the same set read from text, JSON or the kernel (hash order) identical.
// The first `n - wild` elements are sorted; catch-all (`*`) ones stay last.
void sort_elements(std::vector<ir::SetElement>& elems, size_t wild = 0);
// Inserts one element where sort_elements would put it (after equal ones).
void insert_sorted(std::vector<ir::SetElement>& elems, size_t wild, ir::SetElement el);
// Interface-name alternatives, likewise in a fixed order.
void sort_patterns(std::vector<ir::IfacePattern>& p);

// Combines "icmp type . icmp code" components into one IcmpType component.
void merge_icmp_components(std::vector<ir::Field>& key, std::vector<ir::SetElement>& elems);

// "ip", "tcp", "vlan" ...: protocols nft knows (their unknown fields are unsupported, not errors).
bool is_known_protocol(std::string_view p);

bool parse_ifname_pattern(std::string_view s, ir::IfacePattern& out, std::string& err);

}  // namespace nf2bpf::frontend::nft
