#!/usr/bin/env bash
# Lint and format checks of the Python and C sources, with the ruff and
# clang-format that scripts/setup.sh installs into .venv (exact versions, pinned
# in pyproject.toml's test extra, so that every machine formats alike):
#   ruff check              pyproject.toml's [tool.ruff.lint]
#   ruff format --check     pyproject.toml's [tool.ruff.format]
#   clang-format            .clang-format; .clang-format-ignore lists the files it
#     --dry-run --Werror    leaves as written
#
#   scripts/lint.sh          check; exits 1 naming what to fix (scripts/test.sh runs it)
#   scripts/lint.sh --fix    apply: ruff's safe fixes, ruff format, clang-format -i;
#                            then checks again and reports what is left to fix by hand
#
# The files are those git lists (tracked, and new ones not yet added), never what
# .gitignore ignores: build output and .venv are never checked.
set -euo pipefail
cd "$(dirname "$0")/.."
FIX=0
case "${1:-}" in
    --fix) FIX=1 ;;
    "") ;;
    *) echo "usage: scripts/lint.sh [--fix]" >&2; exit 2 ;;
esac
BIN=${FEEDHANDLER_VENV:-$PWD/.venv}/bin
RUFF=$BIN/ruff
CLANG_FORMAT=$BIN/clang-format

# The tools must be the pinned ones: another version formats differently.
pin() { grep -oE "\"$1==[^\"]+\"" pyproject.toml | head -1 | tr -d '"' | sed 's/.*==//'; }
have_ruff=$("$RUFF" --version 2>/dev/null | awk '{print $2}') || true
have_cf=$("$CLANG_FORMAT" --version 2>/dev/null | sed -n 's/.*clang-format version \([^ ]*\).*/\1/p') || true
for t in "ruff $(pin ruff) ${have_ruff:-}" "clang-format $(pin clang-format) ${have_cf:-}"; do
    read -r name want got <<<"$t"
    if [ -z "$want" ]; then
        echo "lint: pyproject.toml's test extra pins no $name version (\"$name==X\")" >&2; exit 2
    fi
    if [ "${got:-}" != "$want" ]; then
        echo "lint: $name $want (pyproject.toml's pin) is not in $BIN (found: ${got:-none}): run scripts/setup.sh" >&2
        exit 2
    fi
done

git rev-parse --is-inside-work-tree >/dev/null 2>&1 \
    || { echo "lint: $PWD is not a git checkout (lint.sh lists the files with git ls-files)" >&2; exit 2; }
# Tracked files and new ones not ignored; a tracked file deleted in the working tree is skipped.
list() {
    local f
    while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\n' "$f"; done \
        < <(git ls-files -z --cached --others --exclude-standard -- "$@" | sort -zu)
}
mapfile -t PY_FILES < <(list '*.py')
mapfile -t C_FILES < <(list '*.c' '*.h')

if [ "$FIX" = 1 ]; then
    if [ ${#PY_FILES[@]} -gt 0 ]; then
        "$RUFF" check --fix-only --quiet -- "${PY_FILES[@]}"
        "$RUFF" format --quiet -- "${PY_FILES[@]}"
    fi
    [ ${#C_FILES[@]} -eq 0 ] || "$CLANG_FORMAT" -i -- "${C_FILES[@]}"
    echo "lint --fix: applied ruff's safe fixes, ruff format and clang-format to ${#PY_FILES[@]} Python and ${#C_FILES[@]} C files; checking again"
fi

failed=()
out=$(mktemp /tmp/feedhandler-lint.XXXXXX)
trap 'rm -f "$out"' EXIT
if [ ${#PY_FILES[@]} -gt 0 ]; then
    if ! "$RUFF" check --output-format concise --quiet -- "${PY_FILES[@]}" >"$out" 2>&1; then
        cat "$out"
        failed+=("ruff check: $(grep -cE '^[^ ]+:[0-9]+:[0-9]+: ' "$out" || true) finding(s) (the [*] ones --fix applies; the rest by hand)")
    fi
    # One line per file (what would change: .venv/bin/ruff format --diff FILE).
    if ! "$RUFF" format --check --output-format concise -- "${PY_FILES[@]}" >"$out" 2>&1; then
        cat "$out"
        failed+=("ruff format: $(grep -c ': unformatted: ' "$out" || true) Python file(s) not formatted")
    fi
fi
if [ ${#C_FILES[@]} -gt 0 ]; then
    if ! "$CLANG_FORMAT" --dry-run --Werror -- "${C_FILES[@]}" >"$out" 2>&1; then
        # One line per file, then the first places it would change (all of them: .venv/bin/clang-format --dry-run FILE).
        mapfile -t bad < <(sed -n 's/^\([^ :]*\):[0-9]*:[0-9]*: error: .*clang-format-violations.*/\1/p' "$out" | uniq | sort -u)
        for f in "${bad[@]}"; do echo "Would reformat: $f"; done
        head -n 30 "$out"
        [ "$(wc -l <"$out")" -le 30 ] || echo "... ($(wc -l <"$out") lines of clang-format output in all)"
        failed+=("clang-format: ${#bad[@]} C file(s) not formatted")
    fi
fi
if [ ${#failed[@]} -gt 0 ]; then
    echo "lint: FAILED" >&2
    for f in "${failed[@]}"; do echo "  - $f" >&2; done
    echo "  scripts/lint.sh --fix formats every file and applies ruff's safe fixes; what ruff check reports after it is fixed by hand" >&2
    exit 1
fi
echo "lint: ruff check, ruff format and clang-format clean (${#PY_FILES[@]} Python, ${#C_FILES[@]} C files)"
