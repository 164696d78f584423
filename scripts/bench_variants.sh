#!/usr/bin/env bash
# Build variants of the C core that differ only in compiler flags (tuning
# constants such as -DFH_PF_ORDER=16, or -march=native) and measure them
# alternately, run by run, on one input, pinned to one core: the way to compare
# builds on a machine whose speed drifts (docs/performance.md).
#
#   scripts/bench_variants.sh INPUT MODE RUNS NAME="FLAGS" [NAME="FLAGS" ...]
#   e.g. scripts/bench_variants.sh /tmp/day.bin book 5 base="" pf16="-DFH_PF_ORDER=16"
#
# Each variant is built once into /tmp/fh-variant-NAME (a copy of this tree),
# reused while its flags and csrc/ are unchanged.  Prints each run and the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-$ROOT/.venv/bin/python}
CPU=${CPU:-1}
[ $# -ge 4 ] || { sed -n '2,12p' "$0"; exit 2; }
INPUT=$1 MODE=$2 RUNS=$3
shift 3
names=()
for spec in "$@"; do
    name=${spec%%=*} flags=${spec#*=}
    dir=/tmp/fh-variant-$name
    sig=$(printf "%s\n" "$flags"; cat csrc/*.[ch] cffi_build/build_core.py | sha1sum)
    if [ ! -f "$dir/.sig" ] || [ "$(cat "$dir/.sig")" != "$sig" ]; then
        rm -rf "$dir" && mkdir -p "$dir"
        cp -r csrc cffi_build feedhandler "$dir"/
        rm -f "$dir"/feedhandler/_core*.so
        echo "building $name ($flags)" >&2
        (cd "$dir" && FEEDHANDLER_CFLAGS="$flags" "$PY" cffi_build/build_core.py >build.log 2>&1) \
            || { cat "$dir/build.log"; exit 1; }
        printf '%s' "$sig" >"$dir/.sig"
    fi
    names+=("$name")
done
cat "$INPUT" >/dev/null
out=$(mktemp)
trap 'rm -f "$out" "$out.json"' EXIT
for r in $(seq "$RUNS"); do
    for name in "${names[@]}"; do
        PYTHONPATH=/tmp/fh-variant-$name taskset -c "$CPU" "$PY" -m feedhandler replay -q "$INPUT" --mode "$MODE" \
            --stats-json "$out.json" >/dev/null
        v=$("$PY" -c 'import json,sys; print("%.3f" % (json.load(open(sys.argv[1]))["msgs_per_s"] / 1e6))' "$out.json")
        echo "$name $v" | tee -a "$out"
    done
done
echo "medians (M msgs/s, $MODE, $RUNS runs, CPU $CPU):"
for name in "${names[@]}"; do
    grep "^$name " "$out" | awk '{print $2}' | sort -n | awk -v n="$name" '{a[NR]=$1} END {printf "  %-12s %s\n", n, (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'
done
