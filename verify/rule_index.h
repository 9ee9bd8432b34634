// A necessary-condition index over one decision list, so the reference
// evaluator need not test every rule of a 100,000-rule chain on every packet.
//
// It picks one field (source or destination address, destination or source
// port) that most rules constrain, cuts that field's value space at every
// rule's interval edges, and lists for each piece the rules whose constraint
// covers it. A rule not listed for a packet's value cannot match it, so
// skipping it changes nothing: evaluation still walks the candidates in rule
// order with first-match, jumps and Skip targets unchanged. Rules whose
// constraint on the field is absent, negated or too wide are candidates for
// every packet. The first rule of every inlined user chain (where the jumps'
// own matches are tested and counted) is a candidate whenever those jumps'
// matches can match: for every packet when they are not known.
#pragma once

#include <cstdint>
#include <vector>

#include "translator/ir/pipeline.h"
#include "verify/packet.h"

namespace nf2bpf::verify {

class RuleIndex {
 public:
  RuleIndex() = default;
  static constexpr size_t kUnknown = SIZE_MAX, kNoEntry = SIZE_MAX - 1;
  // `entry[i]`, where the walk enters an inlined chain at rule i: how many of
  // its leading matches are those of the jumps up to the outermost one it
  // enters (kUnknown: not known); kNoEntry for any other rule. Without it,
  // a rule enters where its path differs from the previous rule's, unknown.
  explicit RuleIndex(const ir::DecisionList& dl, const std::vector<size_t>& entry = {});

  bool enabled() const { return enabled_; }
  ir::Field field() const { return field_; }
  size_t wildcards() const { return wild_.size(); }  // rules that are candidates for every packet
  // The rules that can match `p`, ascending. Only meaningful when enabled().
  void candidates(const pkt::Packet& p, std::vector<uint32_t>& out) const;

 private:
  bool enabled_ = false;
  ir::Field field_ = ir::Field::SrcAddr;
  std::vector<ir::u128> starts_;              // piece i covers [starts_[i], starts_[i+1])
  std::vector<std::vector<uint32_t>> lists_;  // rules covering piece i
  std::vector<uint32_t> wild_;                // rules that are candidates for every packet
};

}  // namespace nf2bpf::verify
