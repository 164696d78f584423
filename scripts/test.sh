#!/usr/bin/env bash
# Set up everything, then run the whole test suite twice: against the optimised
# C core (-O3 -Werror), and against a copy built with AddressSanitizer + UBSan;
# then fuzz each libFuzzer harness for 5-20 s (scripts/fuzz.sh; the harnesses
# build beside the optimised run).
#
#   scripts/test.sh              the full suite (CI, the README's command)
#   scripts/test.sh --quick      the optimised build and every test not marked
#                                slow: the loop while working (< 3 min on 2 cores)
#   scripts/test.sh [--quick] PYTEST_ARGS...   a subset (no floor on the count)
#
# A run never passes with an area untested: before any test, what this
# platform promises (on Debian 12 as root: zstd and DPDK in the build, clang-14
# with libFuzzer, tshark, network namespaces) must be there
# (scripts/check_run.py expect names what is missing); after each pytest pass,
# its junit XML may hold only the skips tests/expected_skips.toml allows on
# this machine, and at least the number of tests it keeps as a floor; every
# fuzz harness must run.  Before the tests, scripts/lint.sh: ruff and
# clang-format find nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
QUICK=0
if [ "${1:-}" = --quick ]; then QUICK=1; shift; fi
# With arguments, pytest gets exactly them (pyproject.toml's testpaths when
# none of them is a path); without, the whole of tests/.
FLOOR=()
TESTS=(tests)
if [ $# -gt 0 ]; then FLOOR=(--no-floor); TESTS=(); fi
start=$SECONDS
bash scripts/setup.sh
PY=$ROOT/.venv/bin/python
"$PY" scripts/check_run.py expect
mkdir -p build
# Lint and formatting (seconds), before any test: a finding fails the run, --quick too.
echo "== lint and format (scripts/lint.sh; scripts/lint.sh --fix applies the formatting)"
bash scripts/lint.sh

if [ "$QUICK" = 1 ]; then
    echo "== tests (optimised build, quick: not marked slow)"
    rm -f build/junit-quick.xml
    rc=0
    "$PY" -m pytest -q -m "not slow" --junitxml="$ROOT/build/junit-quick.xml" "$@" "${TESTS[@]}" || rc=$?
    "$PY" scripts/check_run.py junit quick "${FLOOR[@]}" build/junit-quick.xml || rc=1
    [ "$rc" = 0 ] || exit "$rc"
    echo "== quick tests passed in $((SECONDS - start)) s (the full run: scripts/test.sh)"
    exit 0
fi

# The fuzzing harnesses (clang, instrumented) build beside the optimised test
# run: a CI machine's second core is otherwise mostly idle there.
mkdir -p build
FUZZ_BUILD_ONLY=1 bash scripts/fuzz.sh >build/fuzz-build.log 2>&1 &
fuzz_build=$!

# The sanitized copy (AddressSanitizer + UBSan) builds beside the optimised
# test run too (about a minute of compiling that is otherwise on the critical path).
ASAN_TREE=$(mktemp -d /tmp/feedhandler-asan.XXXXXX)
trap 'rm -rf "$ASAN_TREE"' EXIT
# pyproject.toml joins the tree after the builds: CFFI's compile() parses a
# pyproject.toml in its directory with the venv's setuptools, and one older than
# the SPDX `license = "MIT"` (setuptools < 77; pip builds in its own, newer one)
# rejects the file.
cp -r csrc cffi_build feedhandler tests scripts docs fuzz setup.py README.md "$ASAN_TREE"/
[ -d pcaps ] && cp -r pcaps "$ASAN_TREE"/
# Every extension the tests load, sanitized: the core, the generator and the
# test/probe hooks (the generator and the probes compile core sources too).
rm -f "$ASAN_TREE"/feedhandler/_core*.so "$ASAN_TREE"/feedhandler/_gen*.so "$ASAN_TREE"/feedhandler/_probe*.so
# The sanitized core streams compressed and piped inputs through small buffers
# (300 kB, read 4 093 bytes at a time), so that every test replaying a .gz or
# a .zst crosses many buffer boundaries under ASan.  It has zstd where the
# optimised build has (checked below).
(cd "$ASAN_TREE" && for b in build_core build_gen build_probe; do
     FEEDHANDLER_SANITIZE=1 FEEDHANDLER_CFLAGS="-DFH_STREAM_BUF=300000 -DFH_STREAM_IN=4093" \
         "$PY" "cffi_build/$b.py" || exit 1
 done >build.log 2>&1) &
asan_build=$!

echo "== tests (optimised build)"
rm -f build/junit-*.xml
"$PY" -m pytest -q --junitxml="$ROOT/build/junit-optimised.xml" "$@" "${TESTS[@]}"
"$PY" scripts/check_run.py junit optimised "${FLOOR[@]}" build/junit-optimised.xml

echo "== tests (AddressSanitizer + UBSan build)"
wait "$asan_build" || { cat "$ASAN_TREE/build.log"; exit 1; }
cp pyproject.toml "$ASAN_TREE"/
ASAN_LIB=$(gcc -print-file-name=libasan.so)
# Leak checking is off: CPython itself keeps memory alive at exit.  PYTHONMALLOC=malloc
# puts every bytes object in its own malloc block, so ASan sees reads past a frame.
asan() {
    (cd "$ASAN_TREE" && \
        PYTHONPATH="$ASAN_TREE" LD_PRELOAD="$ASAN_LIB" \
        ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:allocator_may_return_null=1 \
        UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        PYTHONMALLOC=malloc FEEDHANDLER_SANITIZED=1 "$@")
}
asan "$PY" -c 'import sys, feedhandler.core as c, feedhandler._gen as g, feedhandler._probe as p
for m in (c, g, p): assert m.__file__.startswith(sys.argv[1]), m.__file__
f = c.build_features()
assert f["sanitize"], f
assert f["zstd"] == bool(int(sys.argv[2])), ("the sanitized build must read zstd as the optimised one does", f)' \
    "$ASAN_TREE" "$("$PY" -c 'from feedhandler.core import build_features as b; print(int(b()["zstd"]))')"
if [ $# -gt 0 ]; then
    asan "$PY" -m pytest -q -p no:cacheprovider --junitxml="$ROOT/build/junit-sanitized.xml" "$@"
    "$PY" scripts/check_run.py junit sanitized "${FLOOR[@]}" build/junit-sanitized.xml
else
    # The sanitized suite is CPU-bound (ASan costs 2-3x): two halves at once,
    # one per core, each with its own temporary directory.  tests/test_dpdk.py
    # and tests/test_send.py are left out here: the DPDK build (feedhandler._dpdk)
    # is not sanitized, so they would run the optimised run's tests again.
    # The halves are balanced by each file's time in an earlier sanitized run
    # (tests/data/sanitized_weights.json; ASan slows some files 25 times more
    # than others, so the optimised run's times split them badly), a file not
    # recorded there by its optimised time (scripts/split_suite.py).  Each run
    # writes its own times to build/sanitized_weights.json: copy that file to
    # tests/data/ when the halves drift apart.
    mapfile -t files < <(cd "$ASAN_TREE" && ls tests/test_*.py | grep -v -e '^tests/test_dpdk.py$' -e '^tests/test_send.py$')
    mapfile -t split < <("$PY" scripts/split_suite.py --recorded tests/data/sanitized_weights.json \
        "$ROOT/build/junit-optimised.xml" "${files[@]}")
    read -r -a half <<<"${split[0]}"
    read -r -a other <<<"${split[1]}"
    asan "$PY" -m pytest -q -p no:cacheprovider --basetemp="$ASAN_TREE/.tmp-a" --junitxml="$ROOT/build/junit-sanitized-a.xml" "${half[@]}" >"$ASAN_TREE/a.log" 2>&1 &
    pa=$!
    asan "$PY" -m pytest -q -p no:cacheprovider --basetemp="$ASAN_TREE/.tmp-b" --junitxml="$ROOT/build/junit-sanitized-b.xml" "${other[@]}" >"$ASAN_TREE/b.log" 2>&1 &
    pb=$!
    ra=0; rb=0
    wait "$pa" || ra=$?
    wait "$pb" || rb=$?
    cat "$ASAN_TREE/a.log" "$ASAN_TREE/b.log"
    if [ "$ra" != 0 ] || [ "$rb" != 0 ]; then echo "sanitized tests failed (halves: $ra, $rb)"; exit 1; fi
    "$PY" scripts/check_run.py junit sanitized build/junit-sanitized-a.xml build/junit-sanitized-b.xml
    "$PY" scripts/split_suite.py --record build/sanitized_weights.json build/junit-sanitized-a.xml build/junit-sanitized-b.xml
fi
# Coverage-guided fuzzing of the C core, 5-10 s per harness (built above).
# Every harness fuzz.sh knows (and it knows every file in fuzz/) runs. Where
# the platform promises clang-14/libFuzzer, `check_run.py expect` has already
# failed the run without them; so fuzz.sh's "cannot fuzz" (exit 3) here means
# a machine that is allowed to lack them.
LONG=(fuzz_frames fuzz_sources fuzz_rerequest)
SHORT=(fuzz_soup fuzz_snapshot fuzz_pitch)
# IEX instrument ids start at 16384 (three blocks of 12288, one per feed), so
# each run of this harness sets up and reads back some 41 000 instrument
# slots: ~15 runs a second under the sanitizers, hence 20 s.
SLOW=(fuzz_iex)
if [ "$(bash scripts/fuzz.sh --list | sort | xargs)" != "$(printf '%s\n' "${LONG[@]}" "${SHORT[@]}" "${SLOW[@]}" | sort | xargs)" ]; then
    echo "test.sh: fuzz.sh has harnesses this script does not fuzz: add them to LONG, SHORT or SLOW" >&2
    exit 1
fi
frc=0
wait "$fuzz_build" || frc=$?
if [ "$frc" = 3 ]; then
    echo "== fuzzing NOT RUN: no clang-14/libFuzzer on this machine (allowed off Debian 12/root; apt-get install clang-14 libclang-rt-14-dev)"
else
    [ "$frc" = 0 ] || { cat build/fuzz-build.log; exit 1; }
    echo "== fuzzing (libFuzzer, 10 s per harness; 5 s for the SoupBinTCP framer, the snapshot path and the PITCH walker; 20 s for IEX)"
    bash scripts/fuzz.sh 10 "${LONG[@]}"
    bash scripts/fuzz.sh 5 "${SHORT[@]}"
    bash scripts/fuzz.sh 20 "${SLOW[@]}"
fi
echo "== all tests passed in $((SECONDS - start)) s"
