#!/usr/bin/env bash
# Coverage-guided fuzzing of the C core with libFuzzer (clang-14).
#
#   scripts/fuzz.sh [SECONDS_PER_HARNESS] [HARNESS...]     (default: 60 s, every harness)
#
# Builds fuzz/<harness>.c against csrc/*.c with ASan + UBSan into build/fuzz/,
# then runs each harness, one after the other, for SECONDS_PER_HARNESS on a
# work copy of its committed seed corpus (tests/fuzz/corpus/<harness>/; the
# committed corpus is never written).  Prints per harness the executions,
# exec/s, final corpus size, coverage (edges and features) and crashes.  A
# crash, timeout, leak or sanitizer report leaves its input in
# build/fuzz/artifacts/<harness>/ and makes the script exit 1 after printing
# the command that reproduces it.  Without clang-14 and libFuzzer it says
# what is missing and exits 3 (scripts/test.sh fails on that where the
# platform promises them); a harness that ran no input, or a harness missing
# from the summary, fails the script too: a fuzz step never passes unrun.
#
#   scripts/fuzz.sh --check      exit 0 if clang-14 can build a harness here
#   scripts/fuzz.sh --list       every harness, one a line (each file in fuzz/)
#
# Environment: FUZZ_JOBS is not supported on purpose (harnesses run one at a
# time: CI machines have 2 cores); FUZZ_KEEP_CORPUS=1 keeps the work corpora
# (build/fuzz/corpus/<harness>/) from the last run instead of starting from
# the seeds; FUZZ_EXTRA_ARGS are passed to every libFuzzer run;
# FUZZ_BUILD_ONLY=1 builds the harnesses and stops (scripts/test.sh builds
# them beside the optimised test run, then fuzzes after the ASan run).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CHECK_ONLY=0
if [ "${1:-}" = --check ]; then CHECK_ONLY=1; shift; fi
ALL=(fuzz_frames fuzz_sources fuzz_rerequest fuzz_soup fuzz_snapshot fuzz_pitch fuzz_iex)
# A harness added to fuzz/ without being listed here would never run.
mapfile -t present < <(cd fuzz && ls fuzz_*.c | sed 's/\.c$//' | sort)
if [ "$CHECK_ONLY" = 0 ] && [ "${present[*]}" != "$(printf '%s\n' "${ALL[@]}" | sort | xargs)" ]; then
    echo "fuzz: fuzz/ holds ${present[*]}; this script knows ${ALL[*]}: list every harness in ALL" >&2
    exit 2
fi
if [ "${1:-}" = --list ]; then printf '%s\n' "${ALL[@]}"; exit 0; fi
SECS=${1:-60}
shift || true
if [ $# -gt 0 ]; then HARNESSES=("$@"); else HARNESSES=("${ALL[@]}"); fi
CC=${FUZZ_CC:-clang-14}
OUT=$ROOT/build/fuzz

if ! command -v "$CC" >/dev/null 2>&1; then
    echo "fuzz: cannot fuzz: $CC not found (apt-get install clang-14 libclang-rt-14-dev)" >&2
    exit 3
fi
probe=$(mktemp -d /tmp/feedhandler-fuzzprobe.XXXXXX)
trap 'rm -rf "$probe"' EXIT
printf '#include <stdint.h>\n#include <stddef.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' >"$probe/p.c"
if ! "$CC" -fsanitize=fuzzer,address,undefined "$probe/p.c" -o "$probe/p" >/dev/null 2>&1; then
    echo "fuzz: cannot fuzz: $CC cannot link -fsanitize=fuzzer,address,undefined (libFuzzer missing: apt-get install libclang-rt-14-dev)" >&2
    exit 3
fi
[ "$CHECK_ONLY" = 1 ] && exit 0

mkdir -p "$OUT/obj"
# The package's C sources, less tsc.c (fuzz/fuzz_common.h supplies a
# calibration that does not spend 5 ms per context; see there), compiled
# once with coverage instrumentation and linked into every harness.
CFLAGS=(-std=gnu11 -g -O1 -fno-omit-frame-pointer -fno-sanitize-recover=undefined -DFH_EXACT_BUFFERS=1 -DFH_FUZZ_BUILD=1
        -Icsrc -Wall -Wextra -Werror -Wno-unused-function)
OBJS=()
JOBS=$(nproc 2>/dev/null || echo 2)
pids=()
# Compiles run $JOBS at a time (the sanitized, instrumented build is most of
# this script's time in CI).
wait_some() {
    while [ "$(jobs -rp | wc -l)" -ge "$1" ]; do wait -n || { echo "fuzz: build failed" >&2; exit 2; }; done
}
for f in csrc/*.c csrc/tools/*.c; do
    [ "$f" = csrc/tsc.c ] && continue
    o=$OUT/obj/$(basename "${f%.c}").o
    if [ ! -f "$o" ] || [ -n "$(find csrc -newer "$o" -name '*.[ch]' -print -quit)" ]; then
        echo "fuzz: compiling $f"
        wait_some "$JOBS"
        "$CC" "${CFLAGS[@]}" -fsanitize=fuzzer-no-link,address,undefined -c "$f" -o "$o" &
    fi
    OBJS+=("$o")
done
wait_some 1
for h in "${HARNESSES[@]}"; do
    [ -f "fuzz/$h.c" ] || { echo "fuzz: no harness fuzz/$h.c" >&2; exit 2; }
    if [ ! -x "$OUT/$h" ] || [ -n "$(find fuzz csrc -newer "$OUT/$h" -name '*.[ch]' -print -quit)" ]; then
        echo "fuzz: building $OUT/$h"
        wait_some "$JOBS"
        "$CC" "${CFLAGS[@]}" -fsanitize=fuzzer,address,undefined "fuzz/$h.c" "${OBJS[@]}" -lz -lpthread -o "$OUT/$h" &
    fi
done
wait_some 1
if [ "${FUZZ_BUILD_ONLY:-0}" = 1 ]; then
    echo "fuzz: built ${HARNESSES[*]}"
    exit 0
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
failed=()
summary=()
for h in "${HARNESSES[@]}"; do
    seeds=$ROOT/tests/fuzz/corpus/$h
    regress=$ROOT/tests/fuzz/regressions/$h
    work=$OUT/corpus/$h
    art=$OUT/artifacts/$h
    log=$OUT/$h.log
    if [ "${FUZZ_KEEP_CORPUS:-0}" != 1 ] || [ ! -d "$work" ]; then
        rm -rf "$work"
        mkdir -p "$work"
        [ -d "$seeds" ] && cp "$seeds"/* "$work"/ 2>/dev/null || true
    fi
    # Past crashes first: a fix that regressed shows up in the first second.
    [ -d "$regress" ] && cp "$regress"/* "$work"/ 2>/dev/null || true
    rm -rf "$art"
    mkdir -p "$art"
    echo "fuzz: $h for ${SECS}s (corpus $(ls "$work" | wc -l) files)"
    rc=0
    # shellcheck disable=SC2086
    "$OUT/$h" "$work" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 -artifact_prefix="$art/" ${FUZZ_EXTRA_ARGS:-} >"$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    files=$(ls "$work" | wc -l)
    crashes=$(ls "$art" | wc -l)
    line=$(printf '%-15s %10s execs %7s exec/s  corpus %5s  cov %5s  ft %6s  crashes %s' "$h" "${execs:-?}" \
        "${eps:-?}" "$files" "${cov:-?}" "${ft:-?}" "$crashes")
    summary+=("$line")
    echo "  $line"
    if [ "$rc" -eq 0 ] && [ "$crashes" -eq 0 ] && ! [ "${execs:-0}" -gt 0 ] 2>/dev/null; then
        # libFuzzer exited cleanly without running a single input: not a pass.
        echo "    $h ran no input (see $log)"
        failed+=("$h")
    elif [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
        failed+=("$h")
        grep -E 'ERROR: (AddressSanitizer|libFuzzer|LeakSanitizer)|runtime error|fuzz invariant|SUMMARY' "$log" | head -5 | sed 's/^/    /'
        for a in "$art"/*; do
            [ -e "$a" ] || continue
            echo "    reproduce: $OUT/$h $a        (log: $log)"
        done
    fi
done
echo "fuzz: summary"
for l in "${summary[@]}"; do echo "  $l"; done
if [ ${#summary[@]} -ne ${#HARNESSES[@]} ]; then
    echo "fuzz: FAILED: ${#summary[@]} of ${#HARNESSES[@]} harnesses ran" >&2
    exit 1
fi
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]} (artifacts in $OUT/artifacts/)"
    exit 1
fi
echo "fuzz: no crashes"
