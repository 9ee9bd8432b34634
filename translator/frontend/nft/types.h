// nftables datatypes: how a value written for a selector ("echo-request",
// "ssh", "10.0.0.0/8", "established") becomes numbers, by the datatype of
// the selector it is compared with. Shared by the text and JSON front-ends.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "translator/ir/values.h"

namespace nf2bpf::frontend::nft {

enum class Type : uint8_t {
  Unknown,
  Ipv4Addr,
  Ipv6Addr,
  EtherAddr,
  InetProto,
  InetService,
  Mark,
  Integer,
  IfName,
  IfIndex,
  CtState,
  CtStatus,
  CtDir,
  TcpFlag,
  IcmpType,
  IcmpCode,
  Icmpv6Type,
  Icmpv6Code,
  IcmpxCode,
  PktType,
  NfProto,
  EtherType,
  FibAddrType,
  Boolean,
  Dscp,
  Verdict,
};

// nft's datatype name ("ipv4_addr") and back; Unknown for names nf2bpf does not model.
const char* type_name(Type t);
Type type_from_name(std::string_view name);
// Width in bits of a value of this type (Integer: given by the selector).
unsigned type_bits(Type t, unsigned integer_bits = 32);
// Bitmask types: a bare value (no operator) tests flags, "a,b" ORs them.
bool is_bitmask(Type t);
// Values that are strings, not numbers.
inline bool is_name_type(Type t) { return t == Type::IfName || t == Type::IfIndex; }

// One symbol or number of type `t` ("ssh", "0x10", "echo-request"). On
// failure returns nullopt and sets `err`.
std::optional<ir::u128> symbol_value(Type t, std::string_view s, unsigned bits, std::string& err);

// The canonical name of a value of type `t` ("" when it has none).
std::string symbol_name(Type t, ir::u128 v);

// A literal as written: a single value, "lo-hi" range or "addr/len" prefix.
std::optional<ir::IntervalSet> literal_value(Type t, std::string_view s, unsigned bits, std::string& err);

// A short "use ..." hint for values of this type.
std::string type_hint(Type t);

// "1h30m", "59m59s992ms", "10s" -> milliseconds; plain numbers are seconds.
std::optional<uint64_t> parse_time_ms(std::string_view s);

// Decimal or 0x hex, at most `max`.
bool parse_number(std::string_view s, uint64_t max, uint64_t& out);

}  // namespace nf2bpf::frontend::nft
