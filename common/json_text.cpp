#include "common/json_text.h"

#include "common/strings.h"

namespace nf2bpf {

nlohmann::json utf8_json(const nlohmann::json& doc) {
  if (doc.is_string()) return utf8_or_latin1(doc.get_ref<const std::string&>());
  if (doc.is_array()) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& x : doc) out.push_back(utf8_json(x));
    return out;
  }
  if (doc.is_object()) {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& [k, v] : doc.items()) out[utf8_or_latin1(k)] = utf8_json(v);
    return out;
  }
  return doc;
}

std::string dump_utf8(const nlohmann::json& doc, int indent) { return utf8_json(doc).dump(indent); }

}  // namespace nf2bpf
