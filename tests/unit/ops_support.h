// Shared by the ops/ tests: a scratch directory and translated rulesets.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>

#include "translator/policy/compile.h"
#include "translator/translate.h"

namespace nf2bpf::test {

// A directory under the system's temporary directory, removed with the object.
struct ScratchDir {
  std::string path;
  ScratchDir() {
    std::string t = (std::filesystem::temp_directory_path() / "nf2bpf-ops-test.XXXXXX").string();
    if (mkdtemp(t.data())) path = t;
  }
  ~ScratchDir() {
    std::error_code ec;
    if (!path.empty()) std::filesystem::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return path + "/" + name; }
};

inline Translation translate_text(const std::string& text, const std::string& name = "rules.v4",
                                  bool allow_partial = false) {
  TranslateOptions opt;
  opt.allow_partial = allow_partial;
  return translate_source(frontend::Source{name, text}, opt);
}

inline policy::Policy compile_ok(const Translation& tr) {
  diag::Diagnostics d;
  policy::Policy p = policy::compile(tr, d);
  if (d.has_errors()) throw std::runtime_error("the test ruleset does not compile");
  return p;
}

}  // namespace nf2bpf::test
