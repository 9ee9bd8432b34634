#include "translator/policy/input.h"

#include "translator/policy/yaml.h"

namespace nf2bpf::policy {

Result<Input> read_ruleset_or_policy(const std::string& path, const TranslateOptions& opt) {
  Input in;
  in.name = path == "-" ? "<stdin>" : path;
  if (opt.from == "kernel") {
    auto tr = translate_file(path, opt);
    if (!tr) return tr.error();
    in.translation = std::move(*tr);
    return in;
  }
  auto text = read_input(path);
  if (!text) return text.error();
  if (looks_like_policy_yaml(*text)) {
    in.is_policy = true;
    in.policy = from_yaml(*text, in.name, in.policy_diags);
    return in;
  }
  auto tr = translate_text(path, std::move(*text), opt);
  if (!tr) return tr.error();
  in.translation = std::move(*tr);
  return in;
}

}  // namespace nf2bpf::policy
