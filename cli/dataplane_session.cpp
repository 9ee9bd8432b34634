#include "cli/dataplane_session.h"

namespace nf2bpf::cli {

Result<std::string> resolve_pin_dir(const std::string& option) {
  if (!option.empty()) return option;
  return loader::Dataplane::default_pin_dir();
}

Result<std::unique_ptr<loader::Dataplane>> find_dataplane(const std::string& pin_dir_option) {
  auto dir = resolve_pin_dir(pin_dir_option);
  if (!dir) return dir.error();
  return loader::Dataplane::find(*dir);
}

}  // namespace nf2bpf::cli
