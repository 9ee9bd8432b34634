// Found by fuzz_policy_yaml: yaml-cpp 0.7's LoadAll never returns (and keeps
// allocating) on a stream such as ", a": its parser reports empty documents
// without consuming anything. The policy reader must refuse such a file with a
// located error. Each case runs in a child process with an alarm, so a
// regression fails the test instead of hanging the suite.
#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "translator/policy/yaml.h"

using namespace nf2bpf;

namespace {

// True when from_yaml(text) returns within `seconds` and refuses the text.
bool refused_in_time(const std::string& text, unsigned seconds = 20) {
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    alarm(seconds);
    diag::Diagnostics d;
    auto p = policy::from_yaml(text, "hang.yaml", d);
    _exit(!p && d.errors() == 1 ? 0 : 1);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

}  // namespace

TEST_CASE("policy YAML: streams that make yaml-cpp's LoadAll loop are refused in time") {
  CHECK(refused_in_time(", a\n"));
  CHECK(refused_in_time(",\n"));
  CHECK(refused_in_time("# comment\n, so change the ruleset\nnf2bpf-policy: 2\n"));
  // A map first, then the looping stream: still one bounded look for a second document.
  CHECK(refused_in_time("nf2bpf-policy: 2\n---\n, a\n"));
}
