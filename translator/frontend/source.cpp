#include "translator/frontend/source.h"

namespace nf2bpf::frontend {

std::vector<std::string_view> Source::lines() const {
  std::vector<std::string_view> out;
  std::string_view t = text;
  size_t pos = 0;
  while (pos < t.size()) {
    size_t nl = t.find('\n', pos);
    size_t end = nl == std::string_view::npos ? t.size() : nl;
    std::string_view l = t.substr(pos, end - pos);
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    out.push_back(l);
    if (nl == std::string_view::npos) break;
    pos = nl + 1;
  }
  return out;
}

}  // namespace nf2bpf::frontend
