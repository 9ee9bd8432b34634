#!/usr/bin/env python3
"""The layering test: every `#include "..."` in the product code points down.

    cli -> ops -> {verify, loader, cutover} -> translator -> common

`bpf/include/` (the ABI with userspace) may be included by every layer; the
rest of `bpf/` is the BPF side and is included by nothing in userspace except
the generated skeleton, which only loader/ loads. tests/ and bench/ may include
anything. Among the middle layers only `verify/kernel/` (the kernel verdict
engine, its own library) reaches into loader/. The matrix is ALLOWED below and
is documented in docs/architecture.md ("Layering").

The oracle rule is checked on the transitive includes: the reference evaluator
and its conntrack (verify/reference.*, verify/conntrack.*) are an independent
oracle and must reach none of the BPF side, the userspace model of it, the
policy engine or the compiled policy; the model must not reach the oracle.

    tests/layering.py [SOURCE_DIR]    exit 0 when clean, 1 on a violation
    tests/layering.py --self-test     checks that the checker catches bad includes
"""

import os
import re
import subprocess
import sys
import tempfile

SOURCE_DIRS = ["bench", "bpf", "cli", "common", "cutover", "loader", "ops", "tests", "translator", "verify"]
EXTENSIONS = (".c", ".cpp", ".h")
# Headers made by the build, and the layer they belong to.
GENERATED = {"nf2bpf.skel.h": "bpf/skeleton"}
# The -I folders of the BPF programs' build (cmake/BpfObject.cmake); userspace uses the root.
BPF_INCLUDE_DIRS = ["bpf", "bpf/include"]

_BELOW_OPS = {"verify", "loader", "cutover", "translator", "common", "bpf/include"}
ALLOWED = {
    "common": {"common"},
    "translator": {"translator", "common", "bpf/include"},
    "verify": {"verify", "translator", "common", "bpf/include"},
    "verify/kernel": {"verify/kernel", "verify", "loader", "translator", "common", "bpf/include"},
    "loader": {"loader", "translator", "common", "bpf/include", "bpf/skeleton"},
    "cutover": {"cutover", "translator", "common", "bpf/include"},
    "ops": {"ops", "verify/kernel"} | _BELOW_OPS,
    "cli": {"cli", "ops", "verify/kernel"} | _BELOW_OPS,
    "bpf": {"bpf", "bpf/include"},
    "bpf/include": {"bpf/include"},
}
UNRESTRICTED = {"tests", "bench"}

# The oracle rule: (files it applies to, what they must not reach, why).
ORACLE_RULES = [
    (re.compile(r"^verify/(reference|conntrack)\.(h|cpp)$"),
     re.compile(r"^(bpf/|nf2bpf\.skel\.h$|verify/model\.|verify/policy_engine\.|translator/policy/)"),
     "the reference evaluator is an independent oracle: it shares no code with the BPF programs, "
     "their model or the compiled policy"),
    (re.compile(r"^verify/model\.(h|cpp)$"),
     re.compile(r"^verify/(reference|conntrack)\."),
     "the model mirrors bpf/, not the oracle it is checked against"),
]

INCLUDE_RE = re.compile(r'^\s*#\s*include\s*"([^"]+)"')


def layer_of(path):
    """The layer a repository path belongs to, or None outside the source folders."""
    parts = path.split("/")
    top = parts[0]
    if path in GENERATED:
        return GENERATED[path]
    if top == "verify" and len(parts) > 2 and parts[1] == "kernel":
        return "verify/kernel"
    if top == "bpf" and len(parts) > 2 and parts[1] == "include":
        return "bpf/include"
    if top in ALLOWED or top in UNRESTRICTED:
        return top
    return None


def list_files(root):
    """Tracked and new (not ignored) sources in a git checkout; a walk elsewhere."""
    try:
        top = subprocess.run(["git", "-C", root, "rev-parse", "--show-toplevel"], capture_output=True, text=True,
                             check=True).stdout.strip()
        if os.path.realpath(top) == os.path.realpath(root):
            out = subprocess.run(["git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                                 capture_output=True, check=True).stdout.decode()
            return sorted({f for f in out.split("\0")
                           if f.endswith(EXTENSIONS) and os.path.isfile(os.path.join(root, f))})
    except (OSError, subprocess.CalledProcessError):
        pass
    found = []
    for d in SOURCE_DIRS:
        for dirpath, _, names in os.walk(os.path.join(root, d)):
            for n in names:
                if n.endswith(EXTENSIONS):
                    found.append(os.path.relpath(os.path.join(dirpath, n), root))
    return sorted(found)


def resolve(root, including, name):
    """Repository path of a quoted include, searched as the compilers do: beside the including file, then the
    root (userspace) or the -I folders of the BPF build (cmake/BpfObject.cmake)."""
    dirs = [os.path.dirname(including)] + (BPF_INCLUDE_DIRS if including.startswith("bpf/") else [""])
    for d in dirs:
        candidate = os.path.normpath(os.path.join(d, name))
        if os.path.isfile(os.path.join(root, candidate)):
            return candidate
    if name in GENERATED:
        return name
    return None


def scan(root, files):
    """{file: [(line number, include text, resolved path or None)]}"""
    graph = {}
    for f in files:
        edges = []
        with open(os.path.join(root, f), encoding="utf-8", errors="replace") as fh:
            for no, line in enumerate(fh, 1):
                m = INCLUDE_RE.match(line)
                if m:
                    edges.append((no, m.group(1), resolve(root, f, m.group(1))))
        graph[f] = edges
    return graph


def direct_violations(graph):
    out = []
    for f, edges in graph.items():
        src = layer_of(f)
        if src is None or src in UNRESTRICTED:
            continue
        for no, name, target in edges:
            if target is None:
                out.append(f'{f}:{no}: #include "{name}" does not resolve to a file of the tree')
                continue
            dst = layer_of(target)
            if dst not in ALLOWED[src]:
                out.append(f'{f}:{no}: #include "{name}": {src}/ must not include {dst}/ '
                           f"(allowed: {', '.join(sorted(ALLOWED[src]))})")
    return out


def reach(graph, start):
    """Every file reachable from start through quoted includes, with one include path to it."""
    seen = {start: [start]}
    todo = [start]
    while todo:
        f = todo.pop()
        for _, _, target in graph.get(f, []):
            if target is not None and target not in seen:
                seen[target] = seen[f] + [target]
                todo.append(target)
    return seen


def oracle_violations(graph):
    out = []
    for who, forbidden, why in ORACLE_RULES:
        for f in sorted(graph):
            if not who.match(f):
                continue
            for target, path in sorted(reach(graph, f).items()):
                if target != f and forbidden.match(target):
                    out.append(f"{f}: reaches {target} ({' -> '.join(path)}): {why}")
    return out


def check(root):
    files = list_files(root)
    if not files:
        print(f"layering: no sources under {root}", file=sys.stderr)
        return 2
    graph = scan(root, files)
    problems = direct_violations(graph) + oracle_violations(graph)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"layering: {len(problems)} violation(s); the allowed matrix is in docs/architecture.md "
              "(Layering): move the code to the right layer rather than widening the rule", file=sys.stderr)
        return 1
    edges = sum(len(e) for e in graph.values())
    print(f"layering: {len(files)} files, {edges} quoted includes, all along the layering")
    return 0


def self_test():
    """A tiny tree with one good include and each kind of bad one: the checker must flag exactly the bad ones."""
    tree = {
        "common/a.h": "",
        "translator/t.h": '#include "common/a.h"\n#include "bpf/include/abi.h"\n',
        "bpf/include/abi.h": "",
        "bpf/lib/ct.h": '#include "../include/abi.h"\n#include "abi.h"\n',
        "verify/packet.h": "",
        "verify/model.h": '#include "bpf/include/abi.h"\n',
        "verify/conntrack.h": '#include "verify/packet.h"\n',
        "verify/reference.h": '#include "verify/conntrack.h"\n#include "verify/helper.h"\n',
        "verify/helper.h": '#include "verify/model.h"\n',  # oracle reaches the model through a helper
        "loader/l.h": '#include "translator/t.h"\n',
        "cutover/c.h": '#include "loader/l.h"\n',  # sideways
        "ops/o.h": '#include "cutover/c.h"\n',
        "translator/bad.h": '#include "ops/o.h"\n',  # upwards
        "common/typo.h": '#include "common/missing.h"\n',  # does not resolve
        "verify/uses_bpf.h": '#include "bpf/lib/ct.h"\n',  # the BPF side from userspace
        "tests/t.cpp": '#include "cli/x.h"\n#include "ops/o.h"\n',
    }
    with tempfile.TemporaryDirectory() as root:
        for path, text in tree.items():
            os.makedirs(os.path.join(root, os.path.dirname(path)), exist_ok=True)
            with open(os.path.join(root, path), "w") as fh:
                fh.write(text)
        graph = scan(root, list_files(root))
        direct = {p.split(":")[0] for p in direct_violations(graph)}
        oracle = {p.split(":")[0] for p in oracle_violations(graph)}
    want_direct = {"cutover/c.h", "translator/bad.h", "common/typo.h", "verify/uses_bpf.h"}
    want_oracle = {"verify/reference.h"}
    ok = direct == want_direct and oracle == want_oracle
    print(f"layering self-test: direct {sorted(direct)}, oracle {sorted(oracle)}: {'ok' if ok else 'WRONG'}")
    if not ok:
        print(f"layering self-test: wanted direct {sorted(want_direct)}, oracle {sorted(want_oracle)}",
              file=sys.stderr)
    return 0 if ok else 1


def main(argv):
    if len(argv) > 1 and argv[1] == "--self-test":
        return self_test()
    root = argv[1] if len(argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    return check(os.path.realpath(root))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
