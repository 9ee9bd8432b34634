#!/usr/bin/env bash
# The C, C++ and BPF C style (root .clang-format) over the project's sources.
#
#   scripts/format.sh [SOURCE_DIR]          rewrite every file in place (make format)
#   scripts/format.sh --check [SOURCE_DIR]  list the files that differ, exit 1 if any
#                                           (make check-format, the ctest test `format`)
#
# Files: in a git checkout the tracked *.c/*.cpp/*.h files plus new ones not yet
# added (untracked and not ignored); elsewhere (a source tarball) the same
# patterns under the source folders. Without clang-format the check exits 77 (a
# skip; scripts/install-deps.sh installs it, and CI fails on any skip).
set -euo pipefail

mode=apply
if [ "${1:-}" = "--check" ]; then
  mode=check
  shift
fi
ROOT=$(cd "${1:-$(dirname "$0")/..}" && pwd -P)
cd "$ROOT"

CLANG_FORMAT=${CLANG_FORMAT:-clang-format}
if ! command -v "$CLANG_FORMAT" >/dev/null; then
  echo "format: $CLANG_FORMAT not found (run scripts/install-deps.sh)" >&2
  [ "$mode" = check ] && exit 77
  exit 2
fi
[ -f .clang-format ] || { echo "format: $ROOT/.clang-format missing" >&2; exit 2; }

list_files() {
  local top
  if top=$(git rev-parse --show-toplevel 2>/dev/null) && [ "$(cd "$top" && pwd -P)" = "$ROOT" ]; then
    git ls-files -z --cached --others --exclude-standard -- '*.c' '*.cpp' '*.h'
  else
    find bench bpf cli common cutover loader ops tests translator verify \
      -type f \( -name '*.c' -o -name '*.cpp' -o -name '*.h' \) -print0 2>/dev/null
  fi
}

files=()
while IFS= read -r -d '' f; do
  [ -f "$f" ] && files+=("$f")  # a tracked file deleted in the work tree is not an error
done < <(list_files | sort -z -u)
if [ ${#files[@]} -eq 0 ]; then
  echo "format: no C/C++ files found under $ROOT" >&2
  exit 2
fi

if [ "$mode" = apply ]; then
  printf '%s\0' "${files[@]}" | xargs -0 -n 50 "$CLANG_FORMAT" -i --style=file
  echo "format: ${#files[@]} files formatted"
  exit 0
fi

# One batched dry run; each difference is reported as "FILE:LINE:COL: warning: ...".
report=$(mktemp)
trap 'rm -f "$report"' EXIT
status=0
printf '%s\0' "${files[@]}" | xargs -0 -n 100 "$CLANG_FORMAT" --dry-run --style=file >"$report" 2>&1 || status=$?
if [ "$status" -ne 0 ]; then
  cat "$report" >&2
  echo "format: $CLANG_FORMAT failed (exit $status)" >&2
  exit 2
fi
bad=()
while IFS= read -r f; do bad+=("$f"); done < <(grep -oE '^[^ :]+:[0-9]+:[0-9]+: (warning|error):' "$report" | cut -d: -f1 | sort -u)
if [ ${#bad[@]} -gt 0 ]; then
  echo "format: ${#bad[@]} of ${#files[@]} files are not formatted ($("$CLANG_FORMAT" --version | head -1)):" >&2
  for f in "${bad[@]}"; do
    echo "  $f" >&2
    # The first few differences, as clang-format reports them (file:line:col).
    grep -E "^$f:[0-9]+:[0-9]+: (warning|error):" "$report" | head -n 3 | sed 's/^/    /' >&2
  done
  echo "format: run 'make format' (or clang-format -i FILE) and commit the result" >&2
  exit 1
fi
echo "format: ${#files[@]} files formatted correctly"
