// The policy checksum hashes the map structs byte for byte, so none of them
// may have implicit padding: its bytes are whatever the memory held, and the
// same policy got different checksums from run to run (found by fuzz_nft_text:
// a policy written with `translate -o` was refused as edited when loaded back,
// because nf2bpf_rule had 4 bytes of padding before `mac`).
#include <catch2/catch.hpp>

#include <type_traits>

#include "translator/policy/policy.h"

TEST_CASE("policy checksum: the structs it hashes have no padding") {
  CHECK(std::has_unique_object_representations_v<nf2bpf_gen_cfg>);
  CHECK(std::has_unique_object_representations_v<nf2bpf_hook_desc>);
  CHECK(std::has_unique_object_representations_v<nf2bpf_stage>);
  CHECK(std::has_unique_object_representations_v<nf2bpf_tuple>);
  CHECK(std::has_unique_object_representations_v<nf2bpf_rule>);
  CHECK(std::has_unique_object_representations_v<nf2bpf_stmt>);
  CHECK(std::has_unique_object_representations_v<nf2bpf_limit_cfg>);
  CHECK(std::has_unique_object_representations_v<nf2bpf_entry_key>);
  CHECK(std::has_unique_object_representations_v<nf2bpf_entry_val>);
}
