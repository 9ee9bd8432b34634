// The loader: the only code that calls libbpf. Loads the fixed programs,
// finds an existing dataplane in this network namespace (through its pins or
// through the programs attached to interfaces), writes compiled policies
// into a spare generation and makes them live with one map update.
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "loader/host.h"
#include "bpf/include/ct_abi.h"
#include "translator/policy/policy.h"

namespace nf2bpf::loader {

enum class Prog { Ingress, Egress, Xdp };

// What `status` reports.
struct StatusInfo {
  uint32_t live_slot = 0;
  uint64_t generation = 0;
  nlohmann::json live;                // metadata of the live generation (source, checksum ...)
  nlohmann::json previous;            // of the other slot, when it holds a valid generation
  nlohmann::json attach;              // interfaces and hooks
  std::vector<std::string> excluded;  // interfaces left out on purpose (apply --exclude-iface)
  std::string pin_dir;
  struct RuleCounter {
    uint32_t index;
    std::string chain;
    uint32_t line;
    uint64_t packets, bytes;
    bool policy;
  };
  std::vector<RuleCounter> counters;
  size_t ct_entries = 0;
};

struct TestResult {
  uint32_t retval = 0;       // TC_ACT_* or XDP_*
  uint32_t mark = 0;         // skb mark after the program
  uint32_t duration_ns = 0;  // mean time per run, as the kernel measured it
  // TC programs: what decided (from skb->cb, see nf_tc). `decided` is false
  // when the program let the packet pass before any rule could see it
  // (no policy, not IP, VLAN-tagged).
  bool decided = false;
  uint8_t action = 0;           // NF_ACT_*
  uint32_t rule = UINT32_MAX;   // deciding rule index or a stage's policy counter, UINT32_MAX: none
  uint32_t stage = UINT32_MAX;  // stage of that rule, UINT32_MAX: no stage ran
  uint8_t ctstate = 0;          // NF_CT_STATE_* the rules saw
  uint32_t forwarded_to = 0;    // ingress: the device it was routed on to (FORWARD), 0: to this host
  std::vector<uint8_t> data;    // the frame as the program left it (NAT rewrites it)
};

// One tracked connection as the BPF programs keep it (bpf/include/ct_abi.h).
struct Connection {
  nf_ct_key key;
  nf_ct_val val;
  uint64_t expires_in_ns = 0;
};

// An element of an nft set the packet path writes (NF_LIMIT_SET), in the
// live generation's set `set`; expires_in_ns 0: it has no timeout.
struct SetElement {
  std::string set;  // "nft inet t knock"
  uint32_t parts;   // the key's parts: NF_HL_* bits
  nf2bpf_hashlimit_key key;
  nf2bpf_hashlimit_val val;
  uint64_t expires_in_ns = 0;
};

// An nf_ct address (IPv4 mapped into ::ffff:0:0/96) as text: "10.0.0.1", "2001:db8::1".
std::string ct_addr_text(const uint8_t* a);

struct TestCtx {
  uint32_t ifindex = 0;          // the device the program runs on
  uint32_t ingress_ifindex = 0;  // egress: where a forwarded packet came in
  uint32_t mark = 0;
  uint32_t repeat = 1;  // runs of the program on this packet (benchmarks)
};

// nf_svc_conns of one backend: connections bound to it (and their first
// packets' bytes) since its service's generation was installed.
struct ServiceConnections {
  uint32_t service = 0;  // index into the policy's services
  ir::u128 addr = 0;
  uint16_t port = 0;
  uint64_t connections = 0, bytes = 0;
};

class Dataplane {
 public:
  ~Dataplane();
  Dataplane(const Dataplane&) = delete;
  Dataplane& operator=(const Dataplane&) = delete;

  // The default per-namespace pin directory: /sys/fs/bpf/nf2bpf/netns-<inode>
  // (mounting bpffs on /sys/fs/bpf when nothing is mounted there).
  static Result<std::string> default_pin_dir();

  // Finds the dataplane of this namespace: pins in `pin_dir` first, then the
  // programs attached to its interfaces. Returns nullptr when there is none.
  // A dataplane another nf2bpf version loaded (other maps, map sizes or ABI)
  // is an error, unless `any_version`: then only unload() may be used on it
  // (foreign() says why it is foreign).
  static Result<std::unique_ptr<Dataplane>> find(const std::string& pin_dir, bool any_version = false);
  const std::string& foreign() const { return foreign_; }

  // Loads the programs and creates every map; pins them in `pin_dir` unless
  // it is empty (private instances for BPF_PROG_TEST_RUN are never pinned).
  static Result<std::unique_ptr<Dataplane>> create(const std::string& pin_dir);

  // Writes `p` into the spare generation, then makes it live with a single
  // update of the control map. The live generation is untouched on failure.
  // `meta` is stored with the generation (source, checksum ...).
  Result<uint64_t> install(const policy::Policy& p, const std::vector<Interface>& ifaces,
                           const std::vector<AddrTypeEntry>& addrtypes, nlohmann::json meta);

  // Changes the backends of the live generation's services in place: `live`
  // is the live policy (checked by checksum), `next` a policy that differs
  // from it in service backends alone (the caller checks that). Each changed
  // service is switched with one map update; the generation's record then
  // carries next's checksum and `meta`'s fields. Returns how many changed.
  Result<size_t> update_services(const policy::Policy& live, const policy::Policy& next, nlohmann::json meta);
  // The same for a few services, without a second whole policy (`sync
  // --watch` changes backends read from kube-proxy's chains): each change is
  // a service's id, its service as live now and as it becomes. The live
  // generation must be `live_checksum`'s; its record keeps that checksum and
  // takes `meta`'s fields.
  struct ServiceChange {
    uint32_t id;
    const policy::Service* before;
    const policy::Service* after;
  };
  Result<size_t> update_service_backends(const std::string& live_checksum, const std::vector<ServiceChange>& changes,
                                         nlohmann::json meta);
  // The live generation's number (0 when none was installed).
  Result<uint64_t> live_generation();
  // Connections bound per service backend in the live generation.
  Result<std::vector<ServiceConnections>> service_connections();
  // The services (name and backends, from its record and the service maps)
  // of the generation kept beside the live one: after an install, the one
  // that was live before. Empty when it has none or its record has no room
  // for their names.
  Result<std::vector<policy::Service>> kept_services();

  // Makes the kept (previous) generation live again and returns its number:
  // generation numbers name installs (each install takes the next number), a
  // rollback only switches, so the generation it left is then the kept one.
  Result<uint64_t> rollback();

  // Attaches to exactly these interfaces (TC ingress+egress, and XDP when
  // asked), detaching from interfaces attached before and not listed now.
  Result<void> attach(const std::vector<Interface>& ifaces, bool xdp);

  // Adds interfaces to the live generation (their classes from `p`, which
  // must be the live policy, and the host's current address types) and
  // attaches to them besides those attached now. Fails when the generation
  // has no room left for more (a new apply or sync makes room).
  Result<void> cover(const policy::Policy& p, const std::vector<Interface>& add,
                     const std::vector<AddrTypeEntry>& addrtypes);

  // Remembers the interfaces left out on purpose (shown by status; not
  // reported as uncovered).
  Result<void> set_excluded(const std::vector<std::string>& names);

  // Detaches from every interface, destroys the clsact qdiscs nf2bpf created
  // and removes its pins. The maps go away with the last reference.
  Result<void> unload();

  Result<StatusInfo> status(bool with_counters);

  // Runs one program on one frame (BPF_PROG_TEST_RUN): for private instances.
  Result<TestResult> test_run(Prog prog, const std::vector<uint8_t>& frame, const TestCtx& ctx);

  // The tracked connections (nf_ct's entries that are not a NATed
  // connection's alias), live ones only.
  Result<std::vector<Connection>> connections();

  // Drops every tracked connection (tests start from a clean tracker).
  Result<void> flush_conntrack();
  // The elements of the live generation's nft sets that the packet path
  // writes (those not run out), by set.
  Result<std::vector<SetElement>> set_elements();
  // The live generation's nft sets that the packet path writes: name, key
  // parts (NF_HL_* bits).
  Result<std::map<std::string, uint32_t>> set_names();
  // Deletes the nf_ct entries (a NATed connection's alias included) whose
  // value `drop` says to; returns how many.
  Result<size_t> delete_connections(const std::function<bool(const nf_ct_key&, const nf_ct_val&)>& drop);

  const std::string& pin_dir() const { return pin_dir_; }
  bool has_live_generation();

 private:
  Dataplane() = default;
  struct Fds;
  static Result<std::unique_ptr<Dataplane>> find_any(const std::string& pin_dir);
  static std::string program_identity();
  Result<void> adopt_maps(int prog_fd);
  void drop_unnamed_tables(const policy::Policy& p, uint64_t live_generation);
  Result<void> write_service(uint32_t sid, const policy::Service& sv, uint32_t slot);
  // update_services and update_service_backends: `live`/`next` (both or
  // neither) also move rules to their new source lines and give the record
  // next's checksum and chains.
  Result<size_t> switch_services(const std::string& live_checksum, const std::vector<ServiceChange>& changes,
                                 const policy::Policy* live, const policy::Policy* next, nlohmann::json meta);
  std::string check_version();
  Result<void> reload_programs();
  Result<std::map<uint32_t, std::pair<std::string, uint32_t>>> live_sets();
  Result<nlohmann::json> read_state(uint32_t index);
  Result<void> write_state(uint32_t index, const nlohmann::json& j);
  Result<void> pin_all();

  std::unique_ptr<Fds> fds_;
  std::string pin_dir_;
  std::string foreign_;   // why another nf2bpf version's dataplane is not this one's ("": it is)
  void* skel_ = nullptr;  // struct nf2bpf_bpf*, when this process loaded the programs
};

}  // namespace nf2bpf::loader
