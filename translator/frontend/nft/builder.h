// Applies nftables commands (add/insert/delete/flush of tables, chains, sets,
// elements and rules) to an IR ruleset, lowering each rule's syntax tree to
// IR matches, statements and a verdict. The text and JSON parsers both drive
// this one class, so the same ruleset yields the same IR from either.
#pragma once

#include <functional>
#include <map>
#include <string_view>
#include <unordered_map>
#include <set>
#include <string>
#include <vector>

#include "translator/diag/diagnostics.h"
#include "translator/frontend/nft/ast.h"
#include "translator/frontend/nft/types.h"
#include "translator/ir/ir.h"

namespace nf2bpf::frontend::nft {

// Where `add rule` / `insert rule` put the rule.
struct RulePos {
  enum class Kind : uint8_t { Append, Prepend, Index, Handle } kind = Kind::Append;
  uint64_t n = 0;     // index (0-based) or handle
  bool after = true;  // for Handle: add = after, insert = before
  ir::SourceLoc loc;
};

// How a packet selector (the left side of a match) maps onto the IR.
enum class Xform : uint8_t { None, IcmpType, IcmpCode, EtherToNfProto };

struct Selector {
  ir::Field field = ir::Field::Opaque;
  Type type = Type::Unknown;
  unsigned bits = 32;
  Xform xform = Xform::None;
  bool masked = false;         // the IR value is Masked (marks, flags, ct status)
  bool supported = false;      // false: an opaque match naming `cap`
  std::string cap;             // capability row
  std::string text;            // how it reads ("tcp dport")
  int nfproto = 0;             // 2 / 10: only meaningful for that family
  int l4proto = -1;            // the transport protocol it implies
  bool any_transport = false;  // th sport/dport
  ir::SourceLoc loc;
};

class Builder {
 public:
  using LineFn = std::function<std::string(const ir::SourceLoc&)>;
  Builder(ir::Ruleset& rs, diag::Diagnostics& d, LineFn line_of);

  void error(const ir::SourceLoc& loc, std::string msg, std::string hint = {});
  void warning(const ir::SourceLoc& loc, std::string msg, std::string hint = {});

  // Tables. `create` refuses an existing table (nft `create`).
  ir::Table* add_table(ir::Family fam, const std::string& name, const ir::SourceLoc& loc, bool create = false);
  ir::Table* find_table(ir::Family fam, const std::string& name, const ir::SourceLoc& loc, bool report = true);
  void delete_table(ir::Family fam, const std::string& name, const ir::SourceLoc& loc, bool must_exist);
  void flush_table(ir::Table& t);
  void flush_ruleset();
  void set_dormant(ir::Table& t, const ir::SourceLoc& loc);

  // Chains. A spec with a hook makes (or checks) a base chain.
  ir::Chain* add_chain(ir::Table& t, const std::string& name, const ir::SourceLoc& loc, const ChainSpec* spec,
                       bool create = false);
  ir::Chain* find_chain(ir::Table& t, const std::string& name, const ir::SourceLoc& loc);
  // By name, without reporting (nullptr when there is none); the set may be
  // anonymous. Through the builder's indexes, not a scan.
  ir::Chain* chain_named(ir::Table& t, std::string_view name);
  ir::Set* set_named(ir::Table& t, std::string_view name);
  void delete_chain(ir::Table& t, const std::string& name, const ir::SourceLoc& loc, bool must_exist);
  void flush_chain(ir::Chain& c);

  // Sets and maps.
  void add_set(ir::Table& t, const SetDecl& decl, bool create = false);
  void delete_set(ir::Table& t, const std::string& name, const ir::SourceLoc& loc, bool must_exist);
  void flush_set(ir::Table& t, const std::string& name, const ir::SourceLoc& loc);
  void add_elements(ir::Table& t, const std::string& set, const std::vector<Expr>& elems, const ir::SourceLoc& loc,
                    bool remove = false);

  // Rules.
  void add_rule(ir::Table& t, const std::string& chain, const RuleAst& rule, const RulePos& pos,
                const ir::SourceLoc& chain_loc);
  void delete_rule(ir::Table& t, const std::string& chain, uint64_t handle, const ir::SourceLoc& loc);

  // Checks references (jump targets, sets), names anonymous sets, resolves
  // interface-name sets. Call once, after the last command.
  void finish();

  // Describes a selector expression (also used for `typeof` set declarations).
  Selector describe(const Expr& e, ir::Family fam);

  ir::Ruleset& ruleset() { return rs_; }
  diag::Diagnostics& diags() { return diag_; }

 private:
  friend struct RuleLowering;
  struct SetInfo {
    std::vector<Type> types;  // per key component
    std::vector<unsigned> bits;
    std::vector<Selector> sels;  // when declared with typeof
    Type data = Type::Unknown;
    bool names = false;  // interface-name keys
    size_t wild = 0;     // catch-all elements (kept last)
  };

  bool parse_element(ir::Table& t, ir::Set& s, const SetInfo& info, const Expr& e, ir::SetElement& out,
                     std::vector<ir::IfacePattern>* names_out, bool& wildcard);
  std::string anon_name();
  std::string key_of(const ir::Table& t) const;
  // finish(), per table.
  void check_references(ir::Table& t, const std::string& tk);
  bool bad_target(ir::Table& t, const std::string& tk, const ir::Verdict& v);
  bool broken_rule(ir::Table& t, const std::string& tk, ir::Rule& r, std::set<std::string>& checked_maps);
  bool bad_set_ref(ir::Table& t, const std::string& tk, ir::Match& m);
  void name_anonymous_sets(ir::Table& t);
  void dynamic_sets(ir::Table& t);

  ir::Ruleset& rs_;
  diag::Diagnostics& diag_;
  LineFn line_of_;
  // Per table (family/name) and set: what its elements are.
  std::map<std::string, std::map<std::string, SetInfo>> set_info_;
  // Interface-name sets' elements (the IR's interval sets cannot hold names).
  std::map<std::string, std::map<std::string, std::vector<ir::IfacePattern>>> name_sets_;
  std::set<std::string> dormant_;
  // Position of each chain and set by name, per table (family/name): a
  // kube-proxy ruleset has tens of thousands, and every rule looks some up.
  // Appends are indexed when next looked up; whatever erases chains or sets
  // forgets the table's index (forget_chains, forget_sets).
  struct NameIndex {
    std::unordered_map<std::string, size_t> pos;
    size_t known = 0;  // [0, known) are in pos
  };
  std::map<std::string, NameIndex> chain_ix_, set_ix_;
  void forget_chains(const ir::Table& t) { chain_ix_.erase(key_of(t)); }
  void forget_sets(const ir::Table& t) { set_ix_.erase(key_of(t)); }
  uint64_t anon_seq_ = 0;
  uint64_t next_handle_ = 1;
};

// Renders syntax trees back to nft's text syntax (rule text for JSON input,
// option values in reports).
std::string render(const Expr& e);
std::string render(const Stmt& s);
std::string render(const RuleAst& r);

std::optional<ir::Family> family_from_name(std::string_view s);
// Standard priority names ("filter", "dstnat" ...) for a family and hook.
std::optional<int> priority_from_name(std::string_view name, ir::Family fam, std::optional<ir::Hook> hook);

}  // namespace nf2bpf::frontend::nft
