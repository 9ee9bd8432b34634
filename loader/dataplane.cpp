#include "loader/dataplane.h"

#include <arpa/inet.h>

#include <net/if.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <linux/pkt_cls.h>
#include <spdlog/spdlog.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/time.h>
#include <sys/timex.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "bpf/include/abi.h"
#include "bpf/include/ct_abi.h"
#include "common/json_text.h"
#include "common/progress.h"
#include "nf2bpf.skel.h"

namespace nf2bpf::loader {

namespace fs = std::filesystem;

namespace {

constexpr uint32_t kTcHandle = 0x2bf;  // "nf2bpf" filters on clsact, found and removed by these
constexpr uint32_t kTcPriority = 0x2bf;
constexpr uint32_t kBpffsMagic = 0xcafe4a11;
constexpr size_t kStateBlob = 16384;
// Room in each generation's interface map for interfaces that appear after
// it was installed (Dataplane::cover).
constexpr size_t kSpareIfaces = 256;

// Outer maps in a fixed order; the loader creates one inner map per kind.
enum Outer { kStages, kTuples, kRules, kStmts, kLimits, kNat, kCounters, kEntries, kLpm, kIfaces, kNth, kOuterCount };
const char* kOuterNames[kOuterCount] = {"nf_stages",   "nf_tuples",  "nf_rules", "nf_stmts",  "nf_limits", "nf_nat",
                                        "nf_counters", "nf_entries", "nf_lpm",   "nf_ifaces", "nf_nth"};

struct AddrtypeKey {
  uint32_t prefixlen;
  uint8_t addr[16];
};

void to_bytes(const ir::u128& v, uint8_t* out) {
  for (int i = 0; i < 16; ++i) out[i] = (uint8_t)(v >> (8 * (15 - i)));
}

ir::u128 from_bytes(const uint8_t* b) {
  ir::u128 v = 0;
  for (int i = 0; i < 16; ++i) v = (v << 8) | b[i];
  return v;
}

// Deletes the entries of a hash map whose key `drop` selects.
void delete_keys(int fd, const std::function<bool(const void* key)>& drop) {
  bpf_map_info info{};
  uint32_t len = sizeof info;
  if (fd < 0 || bpf_obj_get_info_by_fd(fd, &info, &len)) return;
  std::vector<uint8_t> k(info.key_size), next(info.key_size);
  std::vector<std::vector<uint8_t>> doomed;
  void* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, next.data()) == 0) {
    if (drop(next.data())) doomed.push_back(next);
    k = next;
    prev = k.data();
  }
  for (auto& d : doomed) bpf_map_delete_elem(fd, d.data());
}

Error bpf_err(const std::string& what, int rc) { return Error{rc < 0 ? -rc : errno, what}; }

// libbpf warns about every failed netlink request, including the ones nf2bpf
// makes expecting them to fail: a query on an interface without a clsact
// qdisc ("Parent Qdisc doesn't exists"), creating a clsact that is already
// there ("Exclusivity flag on, cannot modify"), detaching what is gone. While
// such a probe runs, libbpf's warnings are debug detail (-vv), not -v noise.
thread_local int t_probing = 0;
struct Probe {
  Probe() { ++t_probing; }
  ~Probe() { --t_probing; }
  Probe(const Probe&) = delete;
  Probe& operator=(const Probe&) = delete;
};

// What is to be detached is already gone: the filter (ENOENT), the interface
// (ENODEV), or the clsact qdisc together with its filters (EINVAL: "parent
// qdisc doesn't exist", or "invalid handle" when removing the qdisc itself).
// An interface nf2bpf recorded may have been deleted, or its qdiscs flushed,
// since it attached; then there is nothing left to undo.
bool already_gone(int rc) { return rc == -ENOENT || rc == -ENODEV || rc == -EINVAL; }

Result<void> detach_xdp(const std::string& name, uint32_t ifindex) {
  Probe probe;
  if (int rc = bpf_xdp_detach((int)ifindex, 0, nullptr); rc && !already_gone(rc))
    return bpf_err("detach xdp on " + name, rc);
  return {};
}

// Takes nf2bpf off one interface of the namespace state's "ifaces" list: its
// TC filters, its XDP program when it attached one, and the clsact qdisc when
// it created it.
Result<void> detach(const nlohmann::json& entry) {
  Probe probe;
  std::string name = entry.value("name", "");
  uint32_t ifindex = entry.value("ifindex", 0u);
  for (auto point : {BPF_TC_INGRESS, BPF_TC_EGRESS}) {
    bpf_tc_hook h{};
    h.sz = sizeof h;
    h.ifindex = (int)ifindex;
    h.attach_point = point;
    bpf_tc_opts o{};
    o.sz = sizeof o;
    o.handle = kTcHandle;
    o.priority = kTcPriority;
    if (int rc = bpf_tc_detach(&h, &o); rc && !already_gone(rc))
      return bpf_err(std::string("detach tc ") + (point == BPF_TC_INGRESS ? "ingress" : "egress") + " on " + name, rc);
  }
  if (entry.value("xdp", false))
    if (auto r = detach_xdp(name, ifindex); !r) return r;
  spdlog::debug("detached from {}", name);
  if (entry.value("created_clsact", false)) {
    bpf_tc_hook h{};
    h.sz = sizeof h;
    h.ifindex = (int)ifindex;
    h.attach_point = (bpf_tc_attach_point)(BPF_TC_INGRESS | BPF_TC_EGRESS);
    if (int rc = bpf_tc_hook_destroy(&h); rc && !already_gone(rc))
      return bpf_err("remove the clsact qdisc from " + name, rc);
  }
  return {};
}

struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(Fd&& o) noexcept : fd(o.fd) { o.fd = -1; }
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd = o.fd;
      o.fd = -1;
    }
    return *this;
  }
  ~Fd() { reset(); }
  void reset() {
    if (fd >= 0) close(fd);
    fd = -1;
  }
};

}  // namespace

struct Dataplane::Fds {
  Fd control, cfg, hooks, small, state, ct, natsrc, addrtype, ifaddr, events, recent, recent_tab, hashlimit, connlimit,
      svc, svc_be, svc_conns, host_cfg, icmp_global, icmp_peers;
  std::array<Fd, kOuterCount> outer;
  Fd ingress, egress, xdp;

  // Every map the programs share, by its name in the BPF object: how a
  // found dataplane's maps are adopted, checked and reused.
  std::vector<std::pair<const char*, Fd*>> maps() {
    std::vector<std::pair<const char*, Fd*>> v = {
        {"nf_control", &control},      {"nf_cfg", &cfg},           {"nf_hooks", &hooks},
        {"nf_small", &small},          {"nf_state", &state},       {"nf_ct", &ct},
        {"nf_nat_src", &natsrc},       {"nf_addrtype", &addrtype}, {"nf_ifaddr", &ifaddr},
        {"nf_events", &events},        {"nf_recent", &recent},     {"nf_recent_tab", &recent_tab},
        {"nf_hashlimit", &hashlimit},  {"nf_svc", &svc},           {"nf_svc_be", &svc_be},
        {"nf_svc_conns", &svc_conns},  {"nf_host_cfg", &host_cfg}, {"nf_icmp_global", &icmp_global},
        {"nf_icmp_peers", &icmp_peers}};
    for (int i = 0; i < kOuterCount; ++i) v.emplace_back(kOuterNames[i], &outer[i]);
    return v;
  }
};

namespace {

// The program at nf2bpf's filter (handle, priority) on one TC hook of an
// interface; 0: none.
uint32_t tc_prog_id(uint32_t ifindex, bpf_tc_attach_point point) {
  bpf_tc_hook hook{};
  hook.sz = sizeof hook;
  hook.ifindex = (int)ifindex;
  hook.attach_point = point;
  bpf_tc_opts opts{};
  opts.sz = sizeof opts;
  opts.handle = kTcHandle;
  opts.priority = kTcPriority;
  return bpf_tc_query(&hook, &opts) == 0 ? opts.prog_id : 0;
}

// Whether program `fd` is named `name` (nf2bpf_ingress, nf2bpf_xdp ...; a
// prefix when `prefix`).
bool prog_named(int fd, std::string_view name, bool prefix = false) {
  bpf_prog_info info{};
  uint32_t len = sizeof info;
  if (fd < 0 || bpf_obj_get_info_by_fd(fd, &info, &len) != 0) return false;
  return prefix ? std::string_view(info.name).starts_with(name) : std::string_view(info.name) == name;
}

}  // namespace

Dataplane::~Dataplane() {
  fds_.reset();
  if (skel_) nf2bpf_bpf__destroy(static_cast<nf2bpf_bpf*>(skel_));
}

// libbpf's own messages are operational detail (nf2bpf reports failures
// itself with context): -v shows its warnings (the verifier log of a program
// that failed to load among them), -vv its information and the warnings of
// probes expected to fail, -vvv its debug output.
static int libbpf_log(enum libbpf_print_level level, const char* fmt, va_list args) {
  char buf[4096];
  vsnprintf(buf, sizeof buf, fmt, args);
  size_t n = strlen(buf);
  while (n && buf[n - 1] == '\n') buf[--n] = 0;
  std::string_view msg(buf, n);
  if (msg.starts_with("libbpf: ")) msg.remove_prefix(8);  // libbpf names itself; so does the log line
  spdlog::level::level_enum lv = level == LIBBPF_WARN   ? (t_probing ? spdlog::level::debug : spdlog::level::info)
                                 : level == LIBBPF_INFO ? spdlog::level::debug
                                                        : spdlog::level::trace;
  spdlog::log(lv, "libbpf: {}", msg);
  return 0;
}

static void setup_libbpf() {
  static bool done = false;
  if (done) return;
  done = true;
  libbpf_set_print(libbpf_log);
}

Result<std::string> Dataplane::default_pin_dir() {
  auto id = netns_id();
  if (!id) return id.error();
  const char* base = "/sys/fs/bpf";
  struct statfs sfs {};
  if (statfs(base, &sfs) != 0 || sfs.f_type != kBpffsMagic) {
    // `ip netns exec` gives a fresh /sys without bpffs: mount one. Pins made
    // here last as long as this mount namespace; the attached programs stay
    // the way back to the dataplane either way.
    if (mkdir(base, 0700) != 0 && errno != EEXIST) return sys_error(std::string("create ") + base);
    if (mount("bpf", base, "bpf", 0, "mode=0700") != 0) return sys_error(std::string("mount bpffs on ") + base);
  }
  return std::string(base) + "/nf2bpf/netns-" + std::to_string(*id);
}

Result<void> Dataplane::adopt_maps(int prog_fd) {
  bpf_prog_info info{};
  uint32_t len = sizeof info;
  std::vector<uint32_t> ids(64);
  info.nr_map_ids = (uint32_t)ids.size();
  info.map_ids = (uint64_t)(uintptr_t)ids.data();
  if (int rc = bpf_obj_get_info_by_fd(prog_fd, &info, &len)) return bpf_err("read program info", rc);
  ids.resize(std::min<size_t>(info.nr_map_ids, ids.size()));
  std::map<std::string, Fd*> want;
  for (auto [name, fd] : fds_->maps()) want[name] = fd;
  for (uint32_t id : ids) {
    int fd = bpf_map_get_fd_by_id(id);
    if (fd < 0) return bpf_err("open map " + std::to_string(id), fd);
    bpf_map_info mi{};
    uint32_t ml = sizeof mi;
    if (bpf_obj_get_info_by_fd(fd, &mi, &ml) == 0 && want.count(mi.name)) {
      *want[mi.name] = Fd(fd);
      continue;
    }
    close(fd);
  }
  for (auto& [name, fd] : want)
    if (fd->fd < 0 && name != "nf_events" && foreign_.empty()) foreign_ = "its programs have no map " + name;
  return {};
}

// Whether the adopted maps are the ones this build's programs use: every
// map, with this build's key and value sizes, and a live generation (if
// any) written for this ABI. "" or what differs.
std::string Dataplane::check_version() {
  if (!foreign_.empty()) return foreign_;
  nf2bpf_bpf* skel = nf2bpf_bpf__open();
  if (!skel) return "";
  std::string why;
  auto& f = *fds_;
  for (auto [name, fd] : f.maps()) {
    const bpf_map* m = bpf_object__find_map_by_name(skel->obj, name);
    bpf_map_info mi{};
    uint32_t ml = sizeof mi;
    if (!m || bpf_obj_get_info_by_fd(fd->fd, &mi, &ml) != 0) continue;
    if (mi.key_size != bpf_map__key_size(m) || mi.value_size != bpf_map__value_size(m)) {
      why = std::string("its map ") + name + " has " + std::to_string(mi.key_size) + "/" +
            std::to_string(mi.value_size) + "-byte keys/values, this version's " +
            std::to_string(bpf_map__key_size(m)) + "/" + std::to_string(bpf_map__value_size(m));
      break;
    }
  }
  nf2bpf_bpf__destroy(skel);
  if (!why.empty()) return why;
  uint32_t zero = 0;
  nf2bpf_control c{};
  if (bpf_map_lookup_elem(f.control.fd, &zero, &c) == 0 && c.abi != 0 && c.abi != NF2BPF_ABI_VERSION)
    return "its live generation is in the format of ABI " + std::to_string(c.abi) + ", this version's is ABI " +
           std::to_string(NF2BPF_ABI_VERSION);
  return "";
}

// Loads the programs again on top of the maps this dataplane already has, so
// every program (ingress, egress, XDP) shares one set of maps. Used when a
// later run needs a program it cannot reach from the kernel (e.g. XDP was
// never attached).
Result<void> Dataplane::reload_programs() {
  nf2bpf_bpf* skel = nf2bpf_bpf__open();
  if (!skel) return sys_error("open the nf2bpf BPF object");
  auto& f = *fds_;
  for (auto [name, fd] : f.maps()) {
    bpf_map* m = bpf_object__find_map_by_name(skel->obj, name);
    if (m && fd->fd >= 0)
      if (int rc = bpf_map__reuse_fd(m, fd->fd)) {
        nf2bpf_bpf__destroy(skel);
        return bpf_err(std::string("reuse map ") + name, rc);
      }
  }
  if (int rc = nf2bpf_bpf__load(skel)) {
    nf2bpf_bpf__destroy(skel);
    return bpf_err("load the nf2bpf BPF programs", rc);
  }
  auto dupfd = [](int fd) { return Fd(fcntl(fd, F_DUPFD_CLOEXEC, 3)); };
  f.ingress = dupfd(bpf_program__fd(skel->progs.nf2bpf_ingress));
  f.egress = dupfd(bpf_program__fd(skel->progs.nf2bpf_egress));
  f.xdp = dupfd(bpf_program__fd(skel->progs.nf2bpf_xdp));
  if (f.events.fd < 0) f.events = dupfd(bpf_map__fd(skel->maps.nf_events));
  if (skel_) nf2bpf_bpf__destroy(static_cast<nf2bpf_bpf*>(skel_));
  skel_ = skel;
  return {};
}

// This build's BPF programs, by a hash (FNV-1a) of the object they are
// loaded from: the namespace state records whose programs are attached.
std::string Dataplane::program_identity() {
  size_t n = 0;
  const auto* b = static_cast<const unsigned char*>(nf2bpf_bpf__elf_bytes(&n));
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ULL;
  char out[17];
  snprintf(out, sizeof out, "%016llx", (unsigned long long)h);
  return out;
}

namespace {

// Every interface an nf2bpf program (of any version) is attached to, as the
// namespace state lists them, for unloading a dataplane whose state cannot
// be read. Its clsact qdiscs are left: who created them is not known.
Result<nlohmann::json> attached_interfaces() {
  Probe probe;
  auto ifs = list_interfaces();
  if (!ifs) return ifs.error();
  auto named = [](uint32_t id, const char* prefix) {
    return id && prog_named(Fd(bpf_prog_get_fd_by_id(id)).fd, prefix, true);
  };
  nlohmann::json out = nlohmann::json::array();
  for (const auto& i : *ifs) {
    bool tc = named(tc_prog_id(i.ifindex, BPF_TC_INGRESS), "nf2bpf_") ||
              named(tc_prog_id(i.ifindex, BPF_TC_EGRESS), "nf2bpf_");
    uint32_t xid = 0;
    bool xdp = bpf_xdp_query_id((int)i.ifindex, 0, &xid) == 0 && xid && named(xid, "nf2bpf_xdp");
    if (tc || xdp) out.push_back({{"name", i.name}, {"ifindex", i.ifindex}, {"xdp", xdp}});
  }
  return out;
}

}  // namespace

Result<std::unique_ptr<Dataplane>> Dataplane::find(const std::string& pin_dir, bool any_version) {
  auto found = find_any(pin_dir);
  if (!found || !*found) return found;
  std::string why = (*found)->check_version();
  if (why.empty()) return found;
  if (!any_version)
    return Error{0, "the nf2bpf dataplane in this network namespace was loaded by another version of nf2bpf (" + why +
                        "); it goes on filtering as it was loaded, and this version leaves it alone. "
                        "Take it out with this version's `nf2bpf unload` (or `nf2bpf restore` after a "
                        "cut-over), then apply again"};
  (*found)->foreign_ = why;
  return found;
}

Result<std::unique_ptr<Dataplane>> Dataplane::find_any(const std::string& pin_dir) {
  setup_libbpf();
  std::unique_ptr<Dataplane> dp(new Dataplane);
  dp->fds_ = std::make_unique<Fds>();
  dp->pin_dir_ = pin_dir;
  // 1. Pins.
  if (!pin_dir.empty() && fs::exists(pin_dir + "/prog_ingress")) {
    int fd = bpf_obj_get((pin_dir + "/prog_ingress").c_str());
    if (fd >= 0) {
      Fd prog(fd);
      if (auto r = dp->adopt_maps(prog.fd); !r) return r.error();
      dp->fds_->ingress = std::move(prog);
      dp->fds_->egress = Fd(bpf_obj_get((pin_dir + "/prog_egress").c_str()));
      dp->fds_->xdp = Fd(bpf_obj_get((pin_dir + "/prog_xdp").c_str()));
      spdlog::debug("found the dataplane through its pins in {}", pin_dir);
      return dp;
    }
  }
  // 2. Programs attached to this namespace's interfaces.
  Probe probe;
  auto ifs = list_interfaces();
  if (!ifs) return ifs.error();
  for (const auto& i : *ifs) {
    uint32_t id = tc_prog_id(i.ifindex, BPF_TC_INGRESS);
    if (!id) continue;
    int fd = bpf_prog_get_fd_by_id(id);
    if (fd < 0) continue;
    Fd prog(fd);
    if (!prog_named(prog.fd, "nf2bpf_ingress")) continue;
    if (auto r = dp->adopt_maps(prog.fd); !r) return r.error();
    dp->fds_->ingress = std::move(prog);
    spdlog::debug("found the dataplane through its program attached to {}", i.name);
    if (uint32_t eid = tc_prog_id(i.ifindex, BPF_TC_EGRESS)) dp->fds_->egress = Fd(bpf_prog_get_fd_by_id(eid));
    uint32_t xid = 0;
    for (const auto& j : *ifs)
      if (!xid && bpf_xdp_query_id((int)j.ifindex, 0, &xid) == 0 && xid) {
        Fd x(bpf_prog_get_fd_by_id(xid));
        if (prog_named(x.fd, "nf2bpf_xdp"))
          dp->fds_->xdp = std::move(x);
        else
          xid = 0;
      }
    return dp;
  }
  return std::unique_ptr<Dataplane>();
}

Result<void> Dataplane::pin_all() {
  std::error_code ec;
  fs::create_directories(pin_dir_, ec);
  if (ec) return Error{ec.value(), "create " + pin_dir_};
  auto pin = [&](int fd, const std::string& name) -> Result<void> {
    std::string path = pin_dir_ + "/" + name;
    unlink(path.c_str());
    if (int rc = bpf_obj_pin(fd, path.c_str())) return bpf_err("pin " + path, rc);
    return {};
  };
  if (auto r = pin(fds_->ingress.fd, "prog_ingress"); !r) return r;
  if (auto r = pin(fds_->egress.fd, "prog_egress"); !r) return r;
  if (auto r = pin(fds_->xdp.fd, "prog_xdp"); !r) return r;
  if (auto r = pin(fds_->control.fd, "nf_control"); !r) return r;
  if (auto r = pin(fds_->ct.fd, "nf_ct"); !r) return r;
  if (auto r = pin(fds_->events.fd, "nf_events"); !r) return r;
  return {};
}

Result<std::unique_ptr<Dataplane>> Dataplane::create(const std::string& pin_dir) {
  setup_libbpf();
  std::unique_ptr<Dataplane> dp(new Dataplane);
  dp->fds_ = std::make_unique<Fds>();
  dp->pin_dir_ = pin_dir;
  nf2bpf_bpf* skel = nf2bpf_bpf__open();
  if (!skel) return sys_error("open the nf2bpf BPF object");
  dp->skel_ = skel;
  if (int rc = nf2bpf_bpf__load(skel))
    return bpf_err("load the nf2bpf BPF programs (the verifier log is shown with -v)", rc);
  spdlog::debug("loaded the BPF programs (no dataplane was in this namespace)");
  auto dupfd = [](int fd) { return Fd(fcntl(fd, F_DUPFD_CLOEXEC, 3)); };
  auto& f = *dp->fds_;
  f.control = dupfd(bpf_map__fd(skel->maps.nf_control));
  f.cfg = dupfd(bpf_map__fd(skel->maps.nf_cfg));
  f.hooks = dupfd(bpf_map__fd(skel->maps.nf_hooks));
  f.small = dupfd(bpf_map__fd(skel->maps.nf_small));
  f.state = dupfd(bpf_map__fd(skel->maps.nf_state));
  f.ct = dupfd(bpf_map__fd(skel->maps.nf_ct));
  f.natsrc = dupfd(bpf_map__fd(skel->maps.nf_nat_src));
  f.addrtype = dupfd(bpf_map__fd(skel->maps.nf_addrtype));
  f.ifaddr = dupfd(bpf_map__fd(skel->maps.nf_ifaddr));
  f.events = dupfd(bpf_map__fd(skel->maps.nf_events));
  f.recent = dupfd(bpf_map__fd(skel->maps.nf_recent));
  f.recent_tab = dupfd(bpf_map__fd(skel->maps.nf_recent_tab));
  f.hashlimit = dupfd(bpf_map__fd(skel->maps.nf_hashlimit));
  f.connlimit = dupfd(bpf_map__fd(skel->maps.nf_connlimit));
  f.svc = dupfd(bpf_map__fd(skel->maps.nf_svc));
  f.svc_be = dupfd(bpf_map__fd(skel->maps.nf_svc_be));
  f.svc_conns = dupfd(bpf_map__fd(skel->maps.nf_svc_conns));
  f.host_cfg = dupfd(bpf_map__fd(skel->maps.nf_host_cfg));
  f.icmp_global = dupfd(bpf_map__fd(skel->maps.nf_icmp_global));
  f.icmp_peers = dupfd(bpf_map__fd(skel->maps.nf_icmp_peers));
  bpf_map* outers[kOuterCount] = {skel->maps.nf_stages,   skel->maps.nf_tuples,  skel->maps.nf_rules,
                                  skel->maps.nf_stmts,    skel->maps.nf_limits,  skel->maps.nf_nat,
                                  skel->maps.nf_counters, skel->maps.nf_entries, skel->maps.nf_lpm,
                                  skel->maps.nf_ifaces,   skel->maps.nf_nth};
  for (int i = 0; i < kOuterCount; ++i) f.outer[i] = dupfd(bpf_map__fd(outers[i]));
  f.ingress = dupfd(bpf_program__fd(skel->progs.nf2bpf_ingress));
  f.egress = dupfd(bpf_program__fd(skel->progs.nf2bpf_egress));
  f.xdp = dupfd(bpf_program__fd(skel->progs.nf2bpf_xdp));
  nf2bpf_control c{};  // abi 0: the programs pass everything until a generation is live
  uint32_t zero = 0;
  if (int rc = bpf_map_update_elem(f.control.fd, &zero, &c, BPF_ANY)) return bpf_err("initialise control", rc);
  if (!pin_dir.empty())
    if (auto r = dp->pin_all(); !r) return r.error();
  return dp;
}

Result<nlohmann::json> Dataplane::read_state(uint32_t index) {
  std::vector<char> buf(kStateBlob, 0);
  if (int rc = bpf_map_lookup_elem(fds_->state.fd, &index, buf.data())) return bpf_err("read state", rc);
  buf.back() = 0;
  if (!buf[0]) return nlohmann::json::object();
  auto j = nlohmann::json::parse(buf.data(), nullptr, false);
  if (j.is_discarded()) return nlohmann::json::object();
  return j;
}

Result<void> Dataplane::write_state(uint32_t index, const nlohmann::json& j) {
  std::string s = dump_utf8(j);
  if (s.size() >= kStateBlob) return Error{E2BIG, "state record too large (" + std::to_string(s.size()) + " bytes)"};
  std::vector<char> buf(kStateBlob, 0);
  std::memcpy(buf.data(), s.data(), s.size());
  if (int rc = bpf_map_update_elem(fds_->state.fd, &index, buf.data(), BPF_ANY)) return bpf_err("write state", rc);
  return {};
}

bool Dataplane::has_live_generation() {
  uint32_t zero = 0;
  nf2bpf_control c{};
  return bpf_map_lookup_elem(fds_->control.fd, &zero, &c) == 0 && c.abi == NF2BPF_ABI_VERSION;
}

namespace {

// Creates an inner map matching its outer's template.
Result<Fd> make_inner(Outer kind, uint32_t entries) {
  bpf_map_create_opts o{};
  o.sz = sizeof o;
  entries = std::max<uint32_t>(entries, 1);
  bpf_map_type type = BPF_MAP_TYPE_ARRAY;
  uint32_t ks = 4, vs = 0;
  switch (kind) {
    case kStages: vs = sizeof(nf2bpf_stage), o.map_flags = BPF_F_INNER_MAP; break;
    case kTuples: vs = sizeof(nf2bpf_tuple), o.map_flags = BPF_F_INNER_MAP; break;
    case kRules: vs = sizeof(nf2bpf_rule), o.map_flags = BPF_F_INNER_MAP; break;
    case kStmts: vs = sizeof(nf2bpf_stmt), o.map_flags = BPF_F_INNER_MAP; break;
    case kLimits: vs = sizeof(nf2bpf_limit_val), o.map_flags = BPF_F_INNER_MAP; break;
    case kNth: vs = sizeof(nf2bpf_nth_val), o.map_flags = BPF_F_INNER_MAP; break;
    case kNat: vs = sizeof(nf2bpf_nat), o.map_flags = BPF_F_INNER_MAP; break;
    case kCounters: type = BPF_MAP_TYPE_PERCPU_HASH, vs = sizeof(nf2bpf_counter); break;
    case kEntries: type = BPF_MAP_TYPE_HASH, ks = sizeof(nf2bpf_entry_key), vs = sizeof(nf2bpf_entry_val); break;
    case kLpm:
      type = BPF_MAP_TYPE_LPM_TRIE, ks = sizeof(nf2bpf_lpm_key), vs = 4, o.map_flags = BPF_F_NO_PREALLOC;
      break;
    case kIfaces: type = BPF_MAP_TYPE_HASH, ks = sizeof(nf2bpf_iface_key), vs = 4; break;
    default: break;
  }
  int fd = bpf_map_create(type, kOuterNames[kind], ks, vs, entries, &o);
  if (fd < 0)
    return bpf_err(std::string("create map ") + kOuterNames[kind] + " with " + std::to_string(entries) + " entries",
                   fd);
  return Fd(fd);
}

// Batch update; falls back to single updates where a map type has no batch.
Result<void> fill(int fd, const void* keys, size_t ksz, const void* vals, size_t vsz, size_t n, const char* what) {
  if (n == 0) return {};
  constexpr size_t kChunk = 65536;
  for (size_t off = 0; off < n; off += kChunk) {
    uint32_t count = (uint32_t)std::min(kChunk, n - off);
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    int rc = bpf_map_update_batch(fd, (const char*)keys + off * ksz, (const char*)vals + off * vsz, &count, &opts);
    if (rc == 0) continue;
    if (rc != -EINVAL && rc != -ENOTSUP && rc != -EOPNOTSUPP && errno != EINVAL && errno != ENOTSUP)
      return bpf_err(std::string("fill ") + what, rc);
    for (size_t i = off; i < n; ++i)
      if (int r = bpf_map_update_elem(fd, (const char*)keys + i * ksz, (const char*)vals + i * vsz, BPF_ANY))
        return bpf_err(std::string("fill ") + what, r);
    return {};
  }
  return {};
}

// Field classes are rewritten in chunks of this many entries, each only
// when its hash differs from the spare slot's.
constexpr size_t kSmallChunk = 4096;

std::vector<uint64_t> chunk_hashes(const std::vector<uint32_t>& v, size_t chunk) {
  std::vector<uint64_t> out;
  for (size_t lo = 0; lo < v.size(); lo += chunk) {
    uint64_t h = 1469598103934665603ULL;  // FNV-1a over the values' bytes
    for (size_t i = lo; i < v.size() && i < lo + chunk; ++i)
      for (int b = 0; b < 4; ++b) h = (h ^ ((v[i] >> (8 * b)) & 0xff)) * 1099511628211ULL;
    out.push_back(h);
  }
  return out;
}

uint32_t map_id(int fd) {
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  return bpf_obj_get_info_by_fd(fd, &info, &len) == 0 ? info.id : 0;
}

template <typename V>
Result<void> fill_array(int fd, const std::vector<V>& vals, const char* what, uint32_t first = 0) {
  std::vector<uint32_t> keys(vals.size());
  for (size_t i = 0; i < keys.size(); ++i) keys[i] = first + (uint32_t)i;
  return fill(fd, keys.data(), 4, vals.data(), sizeof(V), vals.size(), what);
}

// Whether this kernel gives an IPv6 peer routed by a wider prefix a shorter
// ICMP rate limit (icmpv6_xrlim_allow: the limit >> ((128 - plen) >> 5)).
// Linux dropped that rule (commit 0201eedb69b2, also taken into the stable
// series) in the change that made net.ipv6.icmp.ratelimit's default 100 ms
// instead of 1000: a new network namespace's default tells which rule the
// running kernel follows. Asked once, in a child process (open/read only: the
// parent may have threads).
bool icmp6_prefix_scaled() {
  static const bool scaled = [] {
    pid_t pid = fork();
    if (pid < 0) return false;
    if (pid == 0) {
      if (unshare(CLONE_NEWNET) != 0) _exit(2);
      int fd = open("/proc/sys/net/ipv6/icmp/ratelimit", O_RDONLY);
      char buf[16] = {};
      if (fd < 0 || read(fd, buf, sizeof(buf) - 1) <= 0) _exit(2);
      _exit(std::strncmp(buf, "1000\n", 5) == 0 ? 1 : 0);
    }
    int st = 0;
    if (waitpid(pid, &st, 0) != pid) return false;
    return WIFEXITED(st) && WEXITSTATUS(st) == 1;
  }();
  return scaled;
}

}  // namespace

// The host's facts (struct nf2bpf_host_cfg): REJECT's ICMP rate limits, this
// namespace's sysctls as the kernel would read them now (bpf/lib/reject.h; a
// missing file, IPv6 off, limits nothing), and the clock -m time reads.
Result<void> write_host_cfg(int fd) {
  auto read = [](const char* path, const std::string& dflt) {
    std::ifstream in(path);
    std::string v;
    if (!in || !std::getline(in, v)) return dflt;
    return v;
  };
  auto num = [&](const char* path, uint32_t dflt) {
    std::string v = read(path, "");
    char* end = nullptr;
    unsigned long n = std::strtoul(v.c_str(), &end, 10);
    return v.empty() || end == v.c_str() ? dflt : (uint32_t)n;
  };
  // net.ipv6.icmp.ratemask is a list of types and ranges ("0-1,3-127").
  auto has_type = [](const std::string& list, unsigned t) {
    std::stringstream ss(list);
    std::string part;
    while (std::getline(ss, part, ',')) {
      unsigned a = 0, b = 0;
      int n = std::sscanf(part.c_str(), "%u-%u", &a, &b);
      if ((n == 1 && a == t) || (n == 2 && a <= t && t <= b)) return true;
    }
    return false;
  };
  nf2bpf_host_cfg c{};
  c.valid = 1;
  c.limit4 = (num("/proc/sys/net/ipv4/icmp_ratemask", 0x1818) >> 3) & 1;
  c.limit6 = has_type(read("/proc/sys/net/ipv6/icmp/ratemask", ""), 1);
  c.ratelimit4 = num("/proc/sys/net/ipv4/icmp_ratelimit", 1000);
  c.ratelimit6 = num("/proc/sys/net/ipv6/icmp/ratelimit", 100);
  c.msgs_per_sec = num("/proc/sys/net/ipv4/icmp_msgs_per_sec", 1000);
  c.msgs_burst = num("/proc/sys/net/ipv4/icmp_msgs_burst", 50);
  c.prefix6 = icmp6_prefix_scaled();
  // The clock -m time reads: TAI less this offset is the real time; and the
  // kernel's timezone (sys_tz, set by settimeofday) for --kerneltz.
  timex tx{};
  if (adjtimex(&tx) >= 0) c.tai_offset = tx.tai;
  timeval tv{};
  struct timezone tz {};
  if (gettimeofday(&tv, &tz) == 0) c.tz_minuteswest = tz.tz_minuteswest;
  uint32_t zero = 0;
  if (int rc = bpf_map_update_elem(fd, &zero, &c, BPF_ANY)) return bpf_err("write the ICMP rate limits", rc);
  return {};
}

// The host's address types and each interface's first addresses (REDIRECT).
Result<void> write_host_facts(int addrtype_fd, int ifaddr_fd, const std::vector<AddrTypeEntry>& addrtypes) {
  for (const auto& e : addrtypes) {
    AddrtypeKey k{};
    k.prefixlen = e.prefixlen;
    to_bytes(e.addr, k.addr);
    if (int rc = bpf_map_update_elem(addrtype_fd, &k, &e.type, BPF_ANY)) return bpf_err("write address types", rc);
  }
  auto addrs = interface_addresses();
  if (!addrs) return addrs.error();
  // Under ifindex 0: MASQUERADE's IPv4 address out of lo, as inet_select_addr
  // finds it (lo's 127/8 has host scope): the first address of the first
  // other device that has one (devices in ifindex order).
  const InterfaceAddress* lo_masq = nullptr;
  for (const auto& a : *addrs) {
    uint32_t key[2] = {a.ifindex, a.family};
    uint8_t v[16];
    to_bytes(a.addr, v);
    if (int rc = bpf_map_update_elem(ifaddr_fd, key, v, BPF_ANY)) return bpf_err("write interface addresses", rc);
    if (a.family == 4 && a.ifindex != 1 && (!lo_masq || a.ifindex < lo_masq->ifindex)) lo_masq = &a;
  }
  if (lo_masq) {
    uint32_t key[2] = {0, 4};
    uint8_t v[16];
    to_bytes(lo_masq->addr, v);
    if (int rc = bpf_map_update_elem(ifaddr_fd, key, v, BPF_ANY)) return bpf_err("write interface addresses", rc);
  }
  return {};
}

Result<uint64_t> Dataplane::install(const policy::Policy& p, const std::vector<Interface>& ifaces,
                                    const std::vector<AddrTypeEntry>& addrtypes, nlohmann::json meta) {
  progress::report("loading the policy into the maps");
  auto& f = *fds_;
  uint32_t zero = 0;
  nf2bpf_control ctrl{};
  if (int rc = bpf_map_lookup_elem(f.control.fd, &zero, &ctrl)) return bpf_err("read control", rc);
  bool fresh = ctrl.abi != NF2BPF_ABI_VERSION;
  uint32_t spare = fresh ? 0 : (ctrl.live ^ 1) & 1;
  // Generation numbers name installs: each install takes the next number
  // after every one still held (a rollback makes a kept number live again,
  // so the live one need not be the highest).
  uint64_t gen = 1;
  if (!fresh) {
    gen = ctrl.generation + 1;
    for (uint32_t slot : {0u, 1u})
      if (auto st = read_state(slot); st && st->value("valid", false))
        gen = std::max<uint64_t>(gen, st->value("generation", (uint64_t)0) + 1);
  }

  // What the spare slot's field classes hold, as its record says: only the
  // chunks that differ are written again (the whole array is about 262,000
  // entries a slot, 78 ms to write). Trusted only from a valid record of
  // this very map.
  const uint32_t small_id = map_id(f.small.fd);
  const std::vector<uint64_t> small_chunks = chunk_hashes(p.small, kSmallChunk);
  std::vector<uint64_t> spare_chunks;
  if (auto st = fresh ? std::nullopt : std::optional(read_state(spare));
      st && *st && (*st)->value("valid", false) && small_id && (*st)->value("small_map", 0u) == small_id)
    spare_chunks = (*st)->value("small_chunks", std::vector<uint64_t>{});

  // The spare slot stops being a valid rollback target before we touch it.
  if (auto r = write_state(spare, nlohmann::json::object()); !r) return r.error();

  // Inner maps of the new generation.
  std::array<Fd, kOuterCount> inner;
  uint32_t sizes[kOuterCount] = {(uint32_t)p.stages.size(),
                                 (uint32_t)p.tuples.size(),
                                 (uint32_t)p.rules.size(),
                                 (uint32_t)p.stmts.size(),
                                 (uint32_t)p.limits.size(),
                                 (uint32_t)p.nats.size(),
                                 p.counter_count(),
                                 (uint32_t)p.entries.size(),
                                 (uint32_t)p.lpm.size(),
                                 (uint32_t)(2 * (ifaces.size() + kSpareIfaces) + 4),
                                 p.nth_slots()};
  for (int k = 0; k < kOuterCount; ++k) {
    auto m = make_inner((Outer)k, sizes[k]);
    if (!m) return m.error();
    inner[k] = std::move(*m);
  }
  if (auto r = fill_array(inner[kStages].fd, p.stages, "stages"); !r) return r.error();
  if (auto r = fill_array(inner[kTuples].fd, p.tuples, "tuples"); !r) return r.error();
  if (auto r = fill_array(inner[kRules].fd, p.rules, "rules"); !r) return r.error();
  if (auto r = fill_array(inner[kStmts].fd, p.stmts, "statements"); !r) return r.error();
  {
    std::vector<nf2bpf_limit_val> lv(p.limits.size());
    for (size_t i = 0; i < lv.size(); ++i) lv[i].cfg = p.limits[i];
    if (auto r = fill_array(inner[kLimits].fd, lv, "limits"); !r) return r.error();
  }
  if (auto r = fill_array(inner[kNat].fd, p.nats, "NAT ranges"); !r) return r.error();
  {
    int ncpu = libbpf_num_possible_cpus();
    if (ncpu <= 0) return bpf_err("count CPUs", ncpu);
    uint32_t n = p.counter_count();
    std::vector<uint32_t> keys(n);
    for (uint32_t i = 0; i < n; ++i) keys[i] = i;
    std::vector<nf2bpf_counter> zeros((size_t)n * ncpu);
    if (auto r = fill(inner[kCounters].fd, keys.data(), 4, zeros.data(), sizeof(nf2bpf_counter) * ncpu, n, "counters");
        !r)
      return r.error();
  }
  {
    std::vector<nf2bpf_entry_key> keys;
    std::vector<nf2bpf_entry_val> vals;
    keys.reserve(p.entries.size());
    vals.reserve(p.entries.size());
    for (const auto& [k, v] : p.entries) keys.push_back(k), vals.push_back(v);
    if (auto r = fill(inner[kEntries].fd, keys.data(), sizeof(nf2bpf_entry_key), vals.data(), sizeof(nf2bpf_entry_val),
                      keys.size(), "classifier entries");
        !r)
      return r.error();
  }
  {
    std::vector<nf2bpf_lpm_key> keys(p.lpm.size(), nf2bpf_lpm_key{});
    std::vector<uint32_t> vals(p.lpm.size());
    for (size_t i = 0; i < p.lpm.size(); ++i) {
      keys[i].prefixlen = 8 + p.lpm[i].prefixlen;
      keys[i].slot = p.lpm[i].slot;
      to_bytes(p.lpm[i].addr, keys[i].addr);
      vals[i] = p.lpm[i].cls;
    }
    if (auto r =
            fill(inner[kLpm].fd, keys.data(), sizeof(nf2bpf_lpm_key), vals.data(), 4, keys.size(), "address classes");
        !r)
      return r.error();
  }
  {
    std::vector<nf2bpf_iface_key> keys;
    std::vector<uint32_t> vals;
    for (uint32_t w = 0; w < 2; ++w) {
      uint32_t slot = w == 0 ? NF_SLOT_IIF : NF_SLOT_OIF;
      keys.push_back({slot, 0}), vals.push_back(p.iface_class(w, ""));
      keys.push_back({slot, 0xffffffffu}), vals.push_back(p.iface_class(w, "\x7f\x7f"));
      for (const auto& i : ifaces) keys.push_back({slot, i.ifindex}), vals.push_back(p.iface_class(w, i.name));
    }
    if (auto r =
            fill(inner[kIfaces].fd, keys.data(), sizeof(nf2bpf_iface_key), vals.data(), 4, keys.size(), "interfaces");
        !r)
      return r.error();
  }
  // Fixed-size per-generation data.
  if (int rc = bpf_map_update_elem(f.cfg.fd, &spare, &p.cfg, BPF_ANY)) return bpf_err("write settings", rc);
  {
    std::vector<nf2bpf_hook_desc> hooks(p.hooks.begin(), p.hooks.end());
    if (auto r = fill_array(f.hooks.fd, hooks, "hooks", spare * NF_HOOK_MAX); !r) return r.error();
  }
  for (size_t c = 0; c < small_chunks.size(); ++c) {
    if (spare_chunks.size() == small_chunks.size() && spare_chunks[c] == small_chunks[c]) continue;
    size_t lo = c * kSmallChunk, hi = std::min(p.small.size(), lo + kSmallChunk);
    std::vector<uint32_t> part(p.small.begin() + (ptrdiff_t)lo, p.small.begin() + (ptrdiff_t)hi);
    if (auto r = fill_array(f.small.fd, part, "field classes", spare * NF_SMALL_TOTAL + (uint32_t)lo); !r)
      return r.error();
  }
  // Host facts are shared by both generations.
  if (auto r = write_host_facts(f.addrtype.fd, f.ifaddr.fd, addrtypes); !r) return r.error();
  if (auto r = write_host_cfg(f.host_cfg.fd); !r) return r.error();
  // Services: the spare generation's entries start over.
  for (int fd : {f.svc.fd, f.svc_be.fd, f.svc_conns.fd})
    delete_keys(fd, [&](const void* k) { return *(const uint32_t*)k >> 31 == spare; });
  for (uint32_t id = 0; id < p.services.size(); ++id)
    if (auto r = write_service(NF_SVC_SID(spare, id), p.services[id], 0); !r) return r.error();
  // Each update of a map-in-map waits for an RCU grace period before it
  // returns (the kernel's maybe_wait_bpf_programs, about 16 ms here). Made
  // at once, the outer maps' updates wait for the same grace period: one
  // wait, not one per map.
  std::array<int, kOuterCount> rcs{};
  {
    std::vector<std::thread> installs;
    for (int k = 0; k < kOuterCount; ++k)
      installs.emplace_back([&, k] {
        int ifd = inner[k].fd;
        rcs[k] = bpf_map_update_elem(f.outer[k].fd, &spare, &ifd, BPF_ANY);
      });
    for (auto& t : installs) t.join();
  }
  for (int k = 0; k < kOuterCount; ++k)
    if (rcs[k]) return bpf_err(std::string("install ") + kOuterNames[k], rcs[k]);
  meta["valid"] = true;
  meta["small_map"] = small_id;
  meta["small_chunks"] = small_chunks;
  meta["generation"] = gen;
  meta["checksum"] = p.checksum;
  meta["applied"] = (int64_t)time(nullptr);
  // Names for status's counters, each list as far as the record holds it
  // (a kube-proxy node has thousands of chains): without one, counters are
  // shown without chain names.
  std::vector<std::string> stages;
  for (const auto& o : p.stage_origins) stages.push_back(o.table + "/" + o.chain);
  auto if_room = [&](const char* key, const std::vector<std::string>& v) {
    nlohmann::json m = meta;
    m[key] = v;
    if (dump_utf8(m).size() < kStateBlob - 256) meta = std::move(m);
  };
  if_room("stages", stages);
  if_room("chains", p.chain_names);
  if_room("log_prefixes", p.log_prefixes);
  std::vector<std::string> services;
  for (const auto& sv : p.services) services.push_back(sv.name);
  if_room("services", services);
  nlohmann::json sets = nlohmann::json::object();
  for (const auto& l : p.limits) {  // each set: its name and key's parts (NF_HL_* bits)
    if (!(l.flags & NF_LIMIT_SET)) continue;
    auto name = p.set_names.find(l.table);
    char num[16];
    std::snprintf(num, sizeof num, "0x%08x", l.table);
    sets[std::to_string(l.table)] = {name != p.set_names.end() ? name->second : "table " + std::string(num), l.mode};
  }
  if (dump_utf8(meta).size() + dump_utf8(sets).size() + 8 < kStateBlob - 256) meta["sets"] = std::move(sets);
  if (auto r = write_state(spare, meta); !r) return r.error();

  spdlog::debug("generation {} written into slot {}: {} rules, {} classifier entries, {} tuples, {} stages", gen, spare,
                p.rules.size(), p.entries.size(), p.tuples.size(), p.stages.size());
  // The switch: one update of one value.
  nf2bpf_control next{};
  next.live = spare;
  next.abi = NF2BPF_ABI_VERSION;
  next.generation = gen;
  if (int rc = bpf_map_update_elem(f.control.fd, &zero, &next, BPF_ANY)) return bpf_err("switch generation", rc);
  drop_unnamed_tables(p, gen);
  return gen;
}

// Writes a service's backends into backend slot `slot`, then makes that slot
// live with one update of its nf_svc value (abi.h: old set or new, never a
// mix). Entries past the new count that an older update left in the slot
// are deleted.
Result<void> Dataplane::write_service(uint32_t sid, const policy::Service& sv, uint32_t slot) {
  auto& f = *fds_;
  uint32_t n = (uint32_t)sv.backends.size();
  if (n == 0 || n > NF_SVC_BACKENDS_MAX) return Error{EINVAL, "service " + sv.name + ": backend count out of range"};
  for (uint32_t i = 0; i < n; ++i) {
    nf2bpf_svc_be_key k{sid, (slot << 31) | i};
    nf2bpf_svc_be_val v{};
    to_bytes(sv.backends[i].addr, v.addr);
    v.port = sv.backends[i].port;
    if (int rc = bpf_map_update_elem(f.svc_be.fd, &k, &v, BPF_ANY))
      return bpf_err("write the backends of " + sv.name, rc);
  }
  for (uint32_t i = n;; ++i) {
    nf2bpf_svc_be_key k{sid, (slot << 31) | i};
    if (bpf_map_delete_elem(f.svc_be.fd, &k)) break;
  }
  nf2bpf_svc_val v{n, slot, sv.mark_mask, sv.mark_value};
  if (int rc = bpf_map_update_elem(f.svc.fd, &sid, &v, BPF_ANY))
    return bpf_err("switch the backends of " + sv.name, rc);
  return {};
}

Result<size_t> Dataplane::update_services(const policy::Policy& live, const policy::Policy& next, nlohmann::json meta) {
  if (live.services.size() != next.services.size() || live.rules.size() != next.rules.size())
    return Error{EINVAL, "the two policies are not the same but for their services' backends"};
  std::vector<ServiceChange> changes;
  for (uint32_t id = 0; id < next.services.size(); ++id)
    if (!(live.services[id] == next.services[id])) changes.push_back({id, &live.services[id], &next.services[id]});
  return switch_services(live.checksum, changes, &live, &next, std::move(meta));
}

Result<size_t> Dataplane::update_service_backends(const std::string& live_checksum,
                                                  const std::vector<ServiceChange>& changes, nlohmann::json meta) {
  return switch_services(live_checksum, changes, nullptr, nullptr, std::move(meta));
}

Result<size_t> Dataplane::switch_services(const std::string& live_checksum, const std::vector<ServiceChange>& changes,
                                          const policy::Policy* live, const policy::Policy* next, nlohmann::json meta) {
  auto& f = *fds_;
  uint32_t zero = 0;
  nf2bpf_control ctrl{};
  if (int rc = bpf_map_lookup_elem(f.control.fd, &zero, &ctrl)) return bpf_err("read control", rc);
  auto st = read_state(ctrl.live & 1);
  if (!st) return st.error();
  if (ctrl.abi != NF2BPF_ABI_VERSION || st->value("checksum", "") != live_checksum)
    return Error{ESTALE, "the live generation is not the policy the service update was computed against"};
  if (live && next) {
    // Rules that moved to other source lines or chains (only userspace reads
    // those fields: the bytes the programs read are rewritten unchanged).
    uint32_t slot = ctrl.live & 1, rid = 0;
    if (int rc = bpf_map_lookup_elem(f.outer[kRules].fd, &slot, &rid)) return bpf_err("find the rule map", rc);
    Fd rm(bpf_map_get_fd_by_id(rid));
    if (rm.fd < 0) return Error{errno, "open the live generation's rule map"};
    for (uint32_t i = 0; i < next->rules.size(); ++i) {
      const nf2bpf_rule &a = live->rules[i], &b = next->rules[i];
      if (a.src_line == b.src_line && a.src_chain == b.src_chain) continue;
      if (int rc = bpf_map_update_elem(rm.fd, &i, &b, BPF_ANY)) return bpf_err("write rule " + std::to_string(i), rc);
    }
  }
  for (const auto& c : changes) {
    const policy::Service &a = *c.before, &b = *c.after;
    uint32_t sid = NF_SVC_SID(ctrl.live & 1, c.id);
    nf2bpf_svc_val cur{};
    if (int rc = bpf_map_lookup_elem(f.svc.fd, &sid, &cur)) return bpf_err("read service " + a.name, rc);
    if (auto r = write_service(sid, b, (cur.slot ^ 1) & 1); !r) return r.error();
    // Connection counts of backends that left go with them.
    std::set<std::pair<ir::u128, uint16_t>> stay;
    for (const auto& be : b.backends) stay.insert({be.addr, be.port});
    for (const auto& be : a.backends) {
      if (stay.count({be.addr, be.port})) continue;
      nf2bpf_svc_conn_key k{sid, be.port, 0, {}};
      to_bytes(be.addr, k.addr);
      bpf_map_delete_elem(f.svc_conns.fd, &k);
    }
  }
  if (next) {
    (*st)["checksum"] = next->checksum;
    if (st->contains("chains")) (*st)["chains"] = next->chain_names;
  }
  for (auto& [k, v] : meta.items()) (*st)[k] = v;
  if (dump_utf8(*st).size() >= kStateBlob - 256) st->erase("chains");
  if (auto r = write_state(ctrl.live & 1, *st); !r) return r.error();
  return changes.size();
}

Result<std::vector<ServiceConnections>> Dataplane::service_connections() {
  auto& f = *fds_;
  uint32_t zero = 0;
  nf2bpf_control ctrl{};
  if (int rc = bpf_map_lookup_elem(f.control.fd, &zero, &ctrl)) return bpf_err("read control", rc);
  int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return bpf_err("count CPUs", ncpu);
  std::vector<ServiceConnections> out;
  std::vector<nf2bpf_counter> per(ncpu);
  nf2bpf_svc_conn_key k{}, next{};
  void* prev = nullptr;
  while (bpf_map_get_next_key(f.svc_conns.fd, prev, &next) == 0) {
    k = next;
    prev = &k;
    if (k.sid >> 31 != (ctrl.live & 1)) continue;
    if (bpf_map_lookup_elem(f.svc_conns.fd, &k, per.data())) continue;
    ServiceConnections c{k.sid & 0x7fffffffu, from_bytes(k.addr), k.port, 0, 0};
    for (const auto& x : per) c.connections += x.packets, c.bytes += x.bytes;
    out.push_back(c);
  }
  return out;
}

Result<uint64_t> Dataplane::live_generation() {
  uint32_t zero = 0;
  nf2bpf_control ctrl{};
  if (int rc = bpf_map_lookup_elem(fds_->control.fd, &zero, &ctrl)) return bpf_err("read control", rc);
  return (uint64_t)ctrl.generation;
}

Result<std::vector<policy::Service>> Dataplane::kept_services() {
  auto& f = *fds_;
  uint32_t zero = 0;
  nf2bpf_control ctrl{};
  if (int rc = bpf_map_lookup_elem(f.control.fd, &zero, &ctrl)) return bpf_err("read control", rc);
  uint32_t kept = (ctrl.live & 1) ^ 1;
  auto st = read_state(kept);
  if (!st) return st.error();
  std::vector<policy::Service> out;
  if (!st->contains("services") || !(*st)["services"].is_array()) return out;
  auto names = (*st)["services"].get<std::vector<std::string>>();
  for (uint32_t id = 0; id < names.size(); ++id) {
    uint32_t sid = NF_SVC_SID(kept, id);
    nf2bpf_svc_val v{};
    if (bpf_map_lookup_elem(f.svc.fd, &sid, &v)) return std::vector<policy::Service>{};  // not this record's
    policy::Service sv;
    sv.name = names[id];
    for (uint32_t i = 0; i < v.count; ++i) {
      nf2bpf_svc_be_key k{sid, ((v.slot & 1) << 31) | i};
      nf2bpf_svc_be_val b{};
      if (bpf_map_lookup_elem(f.svc_be.fd, &k, &b)) return std::vector<policy::Service>{};
      sv.backends.push_back({from_bytes(b.addr), b.port});
    }
    out.push_back(std::move(sv));
  }
  return out;
}

// -m recent and -m hashlimit tables and the elements of nft sets the packet
// path writes live across generations, as the kernel's live while a rule
// names them (a set: as `nft -f` of a file without `flush ruleset` keeps it): after a switch, the tables of names
// the new policy does not use are emptied (the kernel frees a table with its
// last rule). -m connlimit lists belong to their rules: only the live
// generation's stay (a reloaded ruleset's rules count afresh).
void Dataplane::drop_unnamed_tables(const policy::Policy& p, uint64_t live_generation) {
  auto& f = *fds_;
  std::set<uint32_t> recent, hashlimit;
  for (const auto& r : p.rules)
    if (r.residual & NF_RES_RECENT) recent.insert(r.recent_table);
  for (const auto& l : p.limits)
    if (l.flags & (NF_LIMIT_HASH | NF_LIMIT_SET)) hashlimit.insert(l.table);
  auto unused = [](const std::set<uint32_t>& keep) {
    return [&keep](const void* key) {
      uint32_t table;
      std::memcpy(&table, key, sizeof table);  // every key starts with the table
      return !keep.count(table);
    };
  };
  delete_keys(f.recent.fd, unused(recent));
  delete_keys(f.recent_tab.fd, unused(recent));
  delete_keys(f.hashlimit.fd, unused(hashlimit));
  delete_keys(f.connlimit.fd, [live_generation](const void* key) {
    uint64_t g;
    std::memcpy(&g, key, sizeof g);  // nf2bpf_connlimit_key starts with it
    return g != live_generation;
  });
}

Result<uint64_t> Dataplane::rollback() {
  uint32_t zero = 0;
  nf2bpf_control ctrl{};
  if (int rc = bpf_map_lookup_elem(fds_->control.fd, &zero, &ctrl)) return bpf_err("read control", rc);
  if (ctrl.abi != NF2BPF_ABI_VERSION) return Error{ENOENT, "no generation is live"};
  uint32_t prev = (ctrl.live ^ 1) & 1;
  auto st = read_state(prev);
  if (!st) return st.error();
  if (!st->value("valid", false)) return Error{ENOENT, "there is no previous generation to roll back to"};
  // The kept generation goes live under its own number: a rollback makes no
  // new generation, it switches back to one (status and events name it so).
  nf2bpf_control next = ctrl;
  next.live = prev;
  next.generation = st->value("generation", ctrl.generation + 1);
  if (int rc = bpf_map_update_elem(fds_->control.fd, &zero, &next, BPF_ANY)) return bpf_err("switch generation", rc);
  return next.generation;
}

Result<void> Dataplane::attach(const std::vector<Interface>& ifaces, bool xdp) {
  auto& f = *fds_;
  auto ns = read_state(2);
  if (!ns) return ns.error();
  // Programs another build of the same ABI loaded (a fixed or extended
  // dataplane with the same maps) are replaced: loaded again over these maps
  // and attached in their place below, interface by interface.
  const std::string mine = program_identity();
  bool stale = !skel_ && ns->value("programs", "") != mine;
  if (stale) spdlog::info("replacing the BPF programs another nf2bpf build loaded (the maps and policy stay)");
  if (stale || f.ingress.fd < 0 || f.egress.fd < 0 || (xdp && f.xdp.fd < 0))
    if (auto r = reload_programs(); !r) return r;
  nlohmann::json prev = ns->value("ifaces", nlohmann::json::array());
  nlohmann::json now = nlohmann::json::array();
  // Keep what we already own so unload can undo exactly that.
  auto prev_entry = [&](const std::string& name) -> nlohmann::json {
    for (const auto& e : prev)
      if (e.value("name", "") == name) return e;
    return nlohmann::json::object();
  };
  for (const auto& i : ifaces) {
    nlohmann::json e = prev_entry(i.name);
    bool created = e.value("created_clsact", false);
    bpf_tc_hook hook{};
    hook.sz = sizeof hook;
    hook.ifindex = (int)i.ifindex;
    hook.attach_point = (bpf_tc_attach_point)(BPF_TC_INGRESS | BPF_TC_EGRESS);
    int rc;
    {
      Probe probe;  // EEXIST when the qdisc is there: expected
      rc = bpf_tc_hook_create(&hook);
    }
    if (rc == 0)
      created = true;
    else if (rc != -EEXIST)
      return bpf_err("create clsact qdisc on " + i.name, rc);
    for (auto [point, prog] : {std::pair{BPF_TC_INGRESS, f.ingress.fd}, std::pair{BPF_TC_EGRESS, f.egress.fd}}) {
      bpf_tc_hook h{};
      h.sz = sizeof h;
      h.ifindex = (int)i.ifindex;
      h.attach_point = point;
      bpf_tc_opts o{};
      o.sz = sizeof o;
      o.prog_fd = prog;
      o.handle = kTcHandle;
      o.priority = kTcPriority;
      o.flags = BPF_TC_F_REPLACE;
      if (int r = bpf_tc_attach(&h, &o))
        return bpf_err(std::string("attach tc ") + (point == BPF_TC_INGRESS ? "ingress" : "egress") + " on " + i.name,
                       r);
    }
    bool xdp_on = false;
    // lo's packets are this host's own, judged at lo's TC egress and
    // ingress; the INPUT early-drop stage has nothing to do there.
    if (xdp && i.name != "lo") {
      if (f.xdp.fd < 0) return Error{ENOENT, "the loaded dataplane has no XDP program"};
      uint32_t cur = 0;
      {
        Probe probe;
        bpf_xdp_query_id((int)i.ifindex, 0, &cur);
      }
      bpf_prog_info pi{};
      uint32_t pl = sizeof pi;
      bpf_obj_get_info_by_fd(f.xdp.fd, &pi, &pl);
      if (cur && cur != pi.id && !prog_named(Fd(bpf_prog_get_fd_by_id(cur)).fd, "nf2bpf_xdp"))
        return Error{EBUSY,
                     "attach xdp on " + i.name + ": another XDP program (id " + std::to_string(cur) + ") is attached"};
      if (int r = bpf_xdp_attach((int)i.ifindex, f.xdp.fd, 0, nullptr)) return bpf_err("attach xdp on " + i.name, r);
      xdp_on = true;
    } else if (e.value("xdp", false)) {
      if (auto r = detach_xdp(i.name, i.ifindex); !r) return r;
    }
    now.push_back({{"name", i.name}, {"ifindex", i.ifindex}, {"created_clsact", created}, {"xdp", xdp_on}});
    spdlog::debug("attached to {} (tc ingress, tc egress{}; clsact qdisc {})", i.name, xdp_on ? ", xdp" : "",
                  rc == 0   ? "created now"
                  : created ? "created earlier"
                            : "someone else's");
  }
  // Interfaces attached before and not listed now: detach. One that fails
  // stays recorded, so that unload (or the next attach) tries again.
  std::optional<Error> failed;
  for (const auto& e : prev) {
    std::string name = e.value("name", "");
    bool listed = false;
    for (const auto& i : ifaces) listed |= i.name == name;
    if (listed) continue;
    if (auto r = detach(e); !r) {
      now.push_back(e);
      if (!failed) failed = r.error();
    }
  }
  (*ns)["ifaces"] = now;
  (*ns)["pin_dir"] = pin_dir_;
  (*ns)["programs"] = mine;
  if (auto w = write_state(2, *ns); !w) return w;
  if (failed) return *failed;
  return {};
}

Result<void> Dataplane::cover(const policy::Policy& p, const std::vector<Interface>& add,
                              const std::vector<AddrTypeEntry>& addrtypes) {
  uint32_t zero = 0;
  nf2bpf_control ctrl{};
  if (int rc = bpf_map_lookup_elem(fds_->control.fd, &zero, &ctrl)) return bpf_err("read control", rc);
  if (ctrl.abi != NF2BPF_ABI_VERSION) return Error{ENOENT, "no generation is live"};
  uint32_t slot = ctrl.live & 1, id = 0;
  if (int rc = bpf_map_lookup_elem(fds_->outer[kIfaces].fd, &slot, &id)) return bpf_err("find the interface map", rc);
  Fd m(bpf_map_get_fd_by_id(id));
  if (m.fd < 0) return Error{errno, "open the live generation's interface map"};
  for (const auto& i : add)
    for (uint32_t w = 0; w < 2; ++w) {
      nf2bpf_iface_key k{w == 0 ? (uint32_t)NF_SLOT_IIF : (uint32_t)NF_SLOT_OIF, i.ifindex};
      uint32_t cls = p.iface_class(w, i.name);
      if (int rc = bpf_map_update_elem(m.fd, &k, &cls, BPF_ANY))
        return bpf_err("add " + i.name + " to the live generation" +
                           (rc == -E2BIG ? std::string(" (no room left: apply or sync again)") : ""),
                       rc);
    }
  if (auto r = write_host_facts(fds_->addrtype.fd, fds_->ifaddr.fd, addrtypes); !r) return r.error();
  if (auto r = write_host_cfg(fds_->host_cfg.fd); !r) return r.error();
  auto ns = read_state(2);
  if (!ns) return ns.error();
  std::vector<Interface> all;
  bool xdp = false;
  for (const auto& e : ns->value("ifaces", nlohmann::json::array())) {
    // Interfaces gone since (or whose name is now another's) are left to
    // attach(), which forgets them.
    char name[IF_NAMESIZE] = {};
    uint32_t idx = e.value("ifindex", 0u);
    if (!if_indextoname(idx, name) || e.value("name", "") != name) continue;
    all.push_back({name, idx});
    xdp |= e.value("xdp", false);
  }
  for (const auto& i : add) all.push_back(i);
  return attach(all, xdp);
}

Result<void> Dataplane::set_excluded(const std::vector<std::string>& names) {
  auto ns = read_state(2);
  if (!ns) return ns.error();
  (*ns)["excluded"] = names;
  return write_state(2, *ns);
}

Result<void> Dataplane::unload() {
  // Where it is attached: the namespace state's list; for another version's
  // dataplane, every interface its programs are found on.
  nlohmann::json ifaces = nlohmann::json::array();
  if (foreign_.empty() || fds_->state.fd >= 0) {
    auto ns = read_state(2);
    if (!ns && foreign_.empty()) return ns.error();
    if (ns) ifaces = ns->value("ifaces", nlohmann::json::array());
  }
  if (!foreign_.empty() && ifaces.empty()) {
    auto all = attached_interfaces();
    if (!all) return all.error();
    ifaces = *all;
  }
  // Every interface is tried; on a failure the pins stay, so that the
  // dataplane can still be found and unload run again.
  std::optional<Error> failed;
  for (const auto& e : ifaces)
    if (auto r = detach(e); !r && !failed) failed = r.error();
  if (failed) return *failed;
  if (!pin_dir_.empty() && fs::exists(pin_dir_)) {
    std::error_code ec;
    fs::remove_all(pin_dir_, ec);
    if (ec) return Error{ec.value(), "remove " + pin_dir_};
  }
  return {};
}

Result<StatusInfo> Dataplane::status(bool with_counters) {
  StatusInfo s;
  uint32_t zero = 0;
  nf2bpf_control ctrl{};
  if (int rc = bpf_map_lookup_elem(fds_->control.fd, &zero, &ctrl)) return bpf_err("read control", rc);
  s.live_slot = ctrl.live & 1;
  s.generation = ctrl.generation;
  s.pin_dir = pin_dir_;
  auto live = read_state(s.live_slot);
  if (!live) return live.error();
  s.live = *live;
  auto prev = read_state(s.live_slot ^ 1);
  if (prev && prev->value("valid", false)) s.previous = *prev;
  auto ns = read_state(2);
  if (ns) s.attach = ns->value("ifaces", nlohmann::json::array());
  if (ns) s.excluded = ns->value("excluded", std::vector<std::string>{});
  // Connections (a NATed one's alias entry is not another connection).
  if (auto conns = connections()) s.ct_entries = conns->size();
  if (!with_counters || ctrl.abi != NF2BPF_ABI_VERSION) return s;
  uint32_t slot = s.live_slot;
  uint32_t cid = 0, rid = 0;
  if (bpf_map_lookup_elem(fds_->outer[kCounters].fd, &slot, &cid) != 0 ||
      bpf_map_lookup_elem(fds_->outer[kRules].fd, &slot, &rid) != 0)
    return s;
  Fd cm(bpf_map_get_fd_by_id(cid)), rm(bpf_map_get_fd_by_id(rid));
  if (cm.fd < 0 || rm.fd < 0) return Error{errno, "open the live generation's counters"};
  bpf_map_info ri{};
  uint32_t rl = sizeof ri;
  bpf_obj_get_info_by_fd(rm.fd, &ri, &rl);
  bpf_map_info ci{};
  uint32_t cl = sizeof ci;
  bpf_obj_get_info_by_fd(cm.fd, &ci, &cl);
  int ncpu = libbpf_num_possible_cpus();
  std::vector<nf2bpf_counter> per(ncpu > 0 ? ncpu : 1);
  auto chains = s.live.value("chains", std::vector<std::string>{});
  uint32_t nrules = ri.max_entries;
  nf2bpf_gen_cfg cfg{};
  if (bpf_map_lookup_elem(fds_->cfg.fd, &slot, &cfg) == 0) nrules = cfg.nrules;
  for (uint32_t i = 0; i < ci.max_entries; ++i) {
    if (bpf_map_lookup_elem(cm.fd, &i, per.data()) != 0) continue;
    StatusInfo::RuleCounter rc{i, "", 0, 0, 0, i >= nrules};
    auto stages = s.live.value("stages", std::vector<std::string>{});
    if (i >= nrules && i - nrules < stages.size()) rc.chain = stages[i - nrules];
    for (const auto& c : per) rc.packets += c.packets, rc.bytes += c.bytes;
    if (i < nrules) {
      nf2bpf_rule r{};
      if (bpf_map_lookup_elem(rm.fd, &i, &r) == 0) {
        rc.line = r.src_line;
        if (r.src_chain < chains.size()) rc.chain = chains[r.src_chain];
      }
    }
    s.counters.push_back(rc);
  }
  return s;
}

Result<TestResult> Dataplane::test_run(Prog prog, const std::vector<uint8_t>& frame, const TestCtx& ctx) {
  int fd = prog == Prog::Ingress ? fds_->ingress.fd : prog == Prog::Egress ? fds_->egress.fd : fds_->xdp.fd;
  TestResult out;
  std::vector<uint8_t> data_out(frame.size() + 256);
  if (prog == Prog::Xdp) {
    xdp_md in{};
    in.ingress_ifindex = ctx.ifindex;
    LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame.data(), .data_out = data_out.data(),
                .data_size_in = (uint32_t)frame.size(), .data_size_out = (uint32_t)data_out.size(), .ctx_in = &in,
                .ctx_size_in = sizeof in, .repeat = (int)std::max<uint32_t>(ctx.repeat, 1));
    if (int rc = bpf_prog_test_run_opts(fd, &o)) return bpf_err("run the XDP program on a test packet", rc);
    out.retval = o.retval;
    out.duration_ns = o.duration;
    return out;
  }
  __sk_buff in{}, outctx{};
  in.ifindex = ctx.ifindex;
  in.ingress_ifindex = ctx.ingress_ifindex;
  in.mark = ctx.mark;
  LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame.data(), .data_out = data_out.data(),
              .data_size_in = (uint32_t)frame.size(), .data_size_out = (uint32_t)data_out.size(), .ctx_in = &in,
              .ctx_out = &outctx, .ctx_size_in = sizeof in, .ctx_size_out = sizeof outctx,
              .repeat = (int)std::max<uint32_t>(ctx.repeat, 1));
  if (int rc = bpf_prog_test_run_opts(fd, &o)) return bpf_err("run the TC program on a test packet", rc);
  out.retval = o.retval;
  out.mark = outctx.mark;
  out.duration_ns = o.duration;
  out.decided = (outctx.cb[0] & 0x100) != 0;
  out.action = (uint8_t)(outctx.cb[0] & 0xff);
  out.rule = outctx.cb[1];
  out.stage = outctx.cb[2];
  out.ctstate = (uint8_t)(outctx.cb[3] & 0xff);
  out.forwarded_to = outctx.cb[4];
  data_out.resize(std::min<size_t>(o.data_size_out, data_out.size()));
  out.data = std::move(data_out);
  return out;
}

std::string ct_addr_text(const uint8_t* a) {
  char buf[INET6_ADDRSTRLEN];
  static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::equal(kMapped, kMapped + 12, a)) return inet_ntop(AF_INET, a + 12, buf, sizeof buf);
  return inet_ntop(AF_INET6, a, buf, sizeof buf);
}

Result<std::vector<Connection>> Dataplane::connections() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);  // bpf_ktime_get_ns()'s clock
  uint64_t now = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
  std::vector<Connection> out;
  nf_ct_key key{}, next{};
  void* cur = nullptr;
  while (bpf_map_get_next_key(fds_->ct.fd, cur, &next) == 0) {
    key = next;
    cur = &key;
    Connection c{key, {}, 0};
    if (bpf_map_lookup_elem(fds_->ct.fd, &key, &c.val) != 0) continue;  // gone meanwhile
    if ((c.val.flags & NF_CT_ALIAS) || c.val.expires_ns <= now) continue;
    c.expires_in_ns = c.val.expires_ns - now;
    out.push_back(c);
  }
  return out;
}

// The live generation's record of its sets (install's "sets"): by table,
// the name and key parts (NF_HL_*).
Result<std::map<uint32_t, std::pair<std::string, uint32_t>>> Dataplane::live_sets() {
  uint32_t zero = 0;
  nf2bpf_control ctrl{};
  if (int rc = bpf_map_lookup_elem(fds_->control.fd, &zero, &ctrl)) return bpf_err("read control", rc);
  auto st = read_state(ctrl.live & 1);
  if (!st) return st.error();
  std::map<uint32_t, std::pair<std::string, uint32_t>> names;
  if (st->contains("sets") && (*st)["sets"].is_object())
    for (const auto& [k, v] : (*st)["sets"].items())
      if (v.is_array() && v.size() == 2 && v[0].is_string() && v[1].is_number_unsigned())
        names[(uint32_t)std::strtoul(k.c_str(), nullptr, 10)] = {v[0].get<std::string>(), v[1].get<uint32_t>()};
  return names;
}

Result<std::map<std::string, uint32_t>> Dataplane::set_names() {
  auto sets = live_sets();
  if (!sets) return sets.error();
  std::map<std::string, uint32_t> out;
  for (const auto& [table, n] : *sets) out[n.first] = n.second;
  return out;
}

Result<std::vector<SetElement>> Dataplane::set_elements() {
  auto& f = *fds_;
  auto sets = live_sets();
  if (!sets) return sets.error();
  const auto& names = *sets;
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);  // bpf_ktime_get_ns()'s clock
  uint64_t now = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
  std::vector<SetElement> out;
  nf2bpf_hashlimit_key key{}, next{};
  void* cur = nullptr;
  while (bpf_map_get_next_key(f.hashlimit.fd, cur, &next) == 0) {
    key = next;
    cur = &key;
    auto name = names.find(key.table);
    if (name == names.end()) continue;  // a -m hashlimit bucket, or a set no longer named
    SetElement e{name->second.first, name->second.second, key, {}};
    if (bpf_map_lookup_elem(f.hashlimit.fd, &key, &e.val) != 0) continue;  // gone meanwhile
    if (e.val.cap && e.val.cap <= now) continue;                           // run out
    e.expires_in_ns = e.val.cap ? e.val.cap - now : 0;
    out.push_back(e);
  }
  return out;
}

Result<void> Dataplane::flush_conntrack() {
  if (auto n = delete_connections([](const nf_ct_key&, const nf_ct_val&) { return true; }); !n) return n.error();
  return {};
}

Result<size_t> Dataplane::delete_connections(const std::function<bool(const nf_ct_key&, const nf_ct_val&)>& drop) {
  std::vector<nf_ct_key> doomed;
  nf_ct_key key{}, next{};
  void* cur = nullptr;
  while (bpf_map_get_next_key(fds_->ct.fd, cur, &next) == 0) {
    key = next;
    cur = &key;
    nf_ct_val v{};
    if (bpf_map_lookup_elem(fds_->ct.fd, &key, &v) == 0 && drop(key, v)) doomed.push_back(key);
  }
  size_t n = 0;
  for (const auto& k : doomed) n += bpf_map_delete_elem(fds_->ct.fd, &k) == 0;
  return n;
}

}  // namespace nf2bpf::loader
