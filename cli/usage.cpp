#include "cli/usage.h"

#include <algorithm>
#include <cctype>

namespace nf2bpf::cli {

namespace {

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::vector<std::string> option_names(const CLI::App& a) {
  std::vector<std::string> v;
  for (const CLI::Option* o : a.get_options()) {
    for (const auto& n : o->get_lnames()) v.push_back("--" + n);
    for (const auto& n : o->get_snames()) v.push_back("-" + n);
  }
  return v;
}

std::vector<std::string> command_names(const CLI::App& app) {
  std::vector<std::string> v;
  for (const CLI::App* s : app.get_subcommands({})) v.push_back(s->get_name());
  return v;
}

const CLI::App* find_sub(const CLI::App& app, const std::string& name) {
  for (const CLI::App* s : app.get_subcommands({}))
    if (s->get_name() == name) return s;
  return nullptr;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

// "-x", "--long", "--long=value"; not "-" (stdin), not "-5" (a value).
bool is_option(const std::string& t) {
  if (t.size() < 2 || t[0] != '-') return false;
  if (t[1] == '-') return t.size() > 2;
  return std::isalpha((unsigned char)t[1]);
}

// Flags expect no value (add_flag sets expected(0)).
bool takes_value(const CLI::Option* o) { return o && o->get_expected_max() != 0; }

const CLI::Option* find_option(const CLI::App& a, const std::string& name) { return a.get_option_no_throw(name); }

// Checks one option token against `app` (and, for a command, the global
// options of its parent). Returns the unknown option's name, "" when known;
// sets `value_follows` when the option's value is the next token.
std::string unknown_in(const CLI::App& app, const std::string& tok, bool& value_follows) {
  value_follows = false;
  auto known = [&](const std::string& name) -> const CLI::Option* {
    if (auto* o = find_option(app, name)) return o;
    if (app.get_parent()) return find_option(*app.get_parent(), name);
    return nullptr;
  };
  if (tok[1] == '-') {
    auto eq = tok.find('=');
    std::string name = tok.substr(0, eq);
    const CLI::Option* o = known(name);
    if (!o) return name;
    value_follows = eq == std::string::npos && takes_value(o);
    return {};
  }
  // A cluster of short options (-vv); one that takes a value ends it.
  for (size_t i = 1; i < tok.size(); ++i) {
    std::string name = std::string("-") + tok[i];
    const CLI::Option* o = known(name);
    if (!o) return name;
    if (takes_value(o)) {
      value_follows = i + 1 == tok.size();
      break;
    }
  }
  return {};
}

UsageProblem unknown_option(const std::string& name, const CLI::App& where, const std::string& command) {
  std::vector<std::string> names = option_names(where);
  if (where.get_parent())
    for (auto& n : option_names(*where.get_parent())) names.push_back(n);
  UsageProblem p;
  p.message = "unknown option '" + name + "'" + (command.empty() ? "" : " for " + command);
  std::string near = closest(name, names);
  std::string help = command.empty() ? "nf2bpf --help" : "nf2bpf " + command + " --help";
  p.hint = near.empty() ? "'" + help + "' lists the options"
                        : "did you mean '" + near + "'? ('" + help + "' lists the options)";
  return p;
}

}  // namespace

std::string closest(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = SIZE_MAX;
  for (const auto& c : candidates) {
    size_t d = edit_distance(word, c);
    // A prefix ("trans" for translate) is as good as one typo.
    if (word.size() >= 3 && c.size() > word.size() && c.compare(0, word.size(), word) == 0) d = std::min<size_t>(d, 1);
    if (d < best_d) best_d = d, best = c;
  }
  std::string bare = word.substr(word.find_first_not_of('-') == std::string::npos ? 0 : word.find_first_not_of('-'));
  size_t allowed = std::max<size_t>(1, bare.size() / 3);
  return best_d <= allowed ? best : std::string();
}

std::string find_command(const CLI::App& app, const std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    const auto& t = args[i];
    if (t == "--") return {};
    if (is_option(t)) {
      bool value_follows = false;
      if (unknown_in(app, t, value_follows).empty() && value_follows) ++i;
      continue;
    }
    for (const auto& c : command_names(app))
      if (c == t) return c;
    return {};
  }
  return {};
}

std::optional<UsageProblem> check_usage(const CLI::App& app, const std::vector<std::string>& args) {
  size_t i = 0;
  for (; i < args.size(); ++i) {
    const auto& t = args[i];
    if (t == "--") break;
    if (!is_option(t)) break;
    bool value_follows = false;
    std::string bad = unknown_in(app, t, value_follows);
    if (bad.empty()) {
      if (value_follows) ++i;
      continue;
    }
    // A command's option before the command: say where it goes.
    // Its value, if it takes one, may be the next word: the command is the
    // first later word that names one.
    std::string command;
    for (size_t k = i + 1; k < args.size() && command.empty(); ++k)
      if (find_sub(app, args[k])) command = args[k];
    if (!command.empty())
      if (const CLI::App* sub = find_sub(app, command); sub && find_option(*sub, bad))
        return UsageProblem{"'" + bad + "' is an option of " + command + ", not of nf2bpf itself",
                            "put it after the command: nf2bpf " + command + " " + t + " ..."};
    return unknown_option(bad, app, "");
  }
  // Help and version need no command.
  for (size_t k = 0; k < i && k < args.size(); ++k)
    if (args[k] == "-h" || args[k] == "--help" || args[k] == "--version") return std::nullopt;
  if (i >= args.size() || args[i] == "--")
    return UsageProblem{"no command given", "commands: " + join(command_names(app)) + "; 'nf2bpf --help' says more"};
  const std::string& word = args[i];
  const CLI::App* sub = find_sub(app, word);
  if (!sub) {
    std::string near = closest(word, command_names(app));
    return UsageProblem{"unknown command '" + word + "'",
                        near.empty() ? "commands: " + join(command_names(app))
                                     : "did you mean '" + near + "'? (commands: " + join(command_names(app)) + ")"};
  }
  for (size_t k = i + 1; k < args.size(); ++k) {
    const auto& t = args[k];
    if (t == "--") break;
    if (!is_option(t)) continue;
    bool value_follows = false;
    std::string bad = unknown_in(*sub, t, value_follows);
    if (!bad.empty()) return unknown_option(bad, *sub, word);
    if (value_follows) ++k;
  }
  return std::nullopt;
}

UsageProblem explain(const CLI::ParseError& e, const std::string& command) {
  std::string m = e.what();
  // "--iface: 1 required IF missing" (CLI11's ArgumentMismatch).
  if (auto r = m.find(" required ");
      r != std::string::npos && m.size() > 8 && m.compare(m.size() - 8, 8, " missing") == 0)
    m = m.substr(0, m.find(':')) + " needs a value";
  const std::string extra = "The following argument was not expected: ";
  const std::string extras = "The following arguments were not expected: ";
  if (m.rfind(extra, 0) == 0)
    m = "unexpected argument '" + m.substr(extra.size()) + "'";
  else if (m.rfind(extras, 0) == 0)
    m = "unexpected arguments: " + m.substr(extras.size());
  if (!m.empty() && std::isupper((unsigned char)m[0]) && !std::isupper((unsigned char)m[1]))
    m[0] = (char)std::tolower((unsigned char)m[0]);
  std::string help = command.empty() ? "nf2bpf --help" : "nf2bpf " + command + " --help";
  return {m, "'" + help + "' lists the options"};
}

std::string HelpFormatter::make_option_opts(const CLI::Option* opt) const {
  if (opt->get_positional() || !takes_value(opt)) return {};
  std::string t = opt->get_option_text();
  if (t.empty()) t = opt->get_type_name().substr(0, opt->get_type_name().find(':'));
  if (opt->get_expected_max() == CLI::detail::expected_max_vector_size) t += " ...";
  return " " + t;
}

}  // namespace nf2bpf::cli
