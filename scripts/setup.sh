#!/usr/bin/env bash
# One-step set-up on a fresh Debian 12 machine (as root) or a laptop:
#   - system packages where we can install them (apt, as root): compiler, Python
#     headers and venv, zlib; libzstd-dev and zstd (.zst inputs), libdpdk-dev (the
#     kernel-bypass source), tshark (capture checks), clang-14 +
#     libclang-rt-14-dev (libFuzzer) where the machine's apt sources have them
#   - a virtual environment in .venv with the package built (CFFI compiles csrc/)
#     and its Python dependencies (cffi, numpy, scapy, pytest; ruff and clang-format
#     at the versions pyproject.toml pins, for scripts/lint.sh).
# Idempotent and quiet when everything is already there.
#
# apt: a package the machine's apt sources do not have ("no such package") is
# reported and skipped; any other apt failure (a download that fails after
# retries, a broken dpkg state) stops set-up with apt's own error.  A dpkg or
# apt-lists lock held by another apt is waited for (FEEDHANDLER_APT_LOCK_S,
# default 600 s), never taken for a missing package.
#
# The build is stamped with its sources and with what the machine offered it
# (libzstd, libdpdk, and the FEEDHANDLER_NO_* switches): it is rebuilt whenever
# either changed, e.g. libdpdk-dev installed after a first build without it.
# .venv/.feedhandler-features says what the installed build has.
#
# For tests of this script (tests/test_setup.py): FEEDHANDLER_SETUP_ONLY=apt
# stops after the packages, FEEDHANDLER_SETUP_ONLY=stamp prints the build's
# stamp and stops; FEEDHANDLER_APT_RETRY_S is the wait between lock retries.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${FEEDHANDLER_VENV:-$ROOT/.venv}
LOCK_S=${FEEDHANDLER_APT_LOCK_S:-600}

need_apt=()
command -v gcc >/dev/null 2>&1 || need_apt+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
[ -e /usr/include/zlib.h ] || need_apt+=(zlib1g-dev)
python3 -c 'import sysconfig,os,sys; sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_paths()["include"],"Python.h")) else 1)' 2>/dev/null || need_apt+=(python3-dev)
python3 -c 'import ensurepip, venv' 2>/dev/null || need_apt+=(python3-venv)
# What the full test run expects on Debian 12 (scripts/test.sh checks that each is there).
optional_apt=()
pkg-config --exists libzstd 2>/dev/null || optional_apt+=(libzstd-dev)
command -v zstd >/dev/null 2>&1 || optional_apt+=(zstd)
pkg-config --exists libdpdk 2>/dev/null || optional_apt+=(libdpdk-dev)
command -v tshark >/dev/null 2>&1 || optional_apt+=(tshark)
command -v clang-14 >/dev/null 2>&1 || optional_apt+=(clang-14)
[ -n "$(ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-*.a 2>/dev/null)" ] || optional_apt+=(libclang-rt-14-dev)

APT_OPTS=(-o "DPkg::Lock::Timeout=$LOCK_S" -o Acquire::Retries=3 -o APT::Get::Assume-Yes=true -qq)
apt_log=$(mktemp /tmp/feedhandler-apt.XXXXXX)
trap 'rm -f "$apt_log"' EXIT

# apt-get with its lock waited for: DPkg::Lock::Timeout covers dpkg's frontend
# lock; the lists lock of `apt-get update` (and any lock message apt gives
# instead of waiting) is retried here until LOCK_S has passed.  Any other
# failure prints apt's output and returns apt's status.
apt_run() {
    local deadline=$((SECONDS + LOCK_S)) rc
    while :; do
        rc=0
        apt-get "${APT_OPTS[@]}" "$@" >"$apt_log" 2>&1 || rc=$?
        [ "$rc" = 0 ] && return 0
        if grep -qE 'Could not get lock|Unable to lock|is held by process|Unable to acquire the dpkg frontend lock' "$apt_log" \
                && [ "$SECONDS" -lt "$deadline" ]; then
            echo "setup: apt is busy (another apt or dpkg holds its lock); waiting" >&2
            sleep "${FEEDHANDLER_APT_RETRY_S:-5}"
            continue
        fi
        echo "setup: apt-get $* failed (exit $rc):" >&2
        sed 's/^/    /' "$apt_log" >&2
        return "$rc"
    done
}

# Whether the machine's apt sources offer a package (after `apt-get update`).
apt_has() {
    local cand
    cand=$(apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: *//p')
    [ -n "$cand" ] && [ "$cand" != "(none)" ]
}

if [ ${#need_apt[@]} -gt 0 ] || [ ${#optional_apt[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        echo "setup: apt-get update" >&2
        apt_run update || { echo "setup: cannot update apt's package lists (above); stopping" >&2; exit 1; }
        install=("${need_apt[@]}")
        for p in "${optional_apt[@]}"; do
            if apt_has "$p"; then
                install+=("$p")
            else
                echo "setup: no package $p in this machine's apt sources; continuing without it" >&2
            fi
        done
        if [ ${#install[@]} -gt 0 ]; then
            echo "setup: apt-get install ${install[*]}" >&2
            apt_run install --no-install-recommends "${install[@]}" || {
                echo "setup: installing ${install[*]} failed (apt's error above); stopping" >&2
                exit 1
            }
        fi
    elif [ ${#need_apt[@]} -gt 0 ]; then
        echo "setup: please install: ${need_apt[*]} (need root/apt for automatic install)" >&2
        exit 1
    else
        echo "setup: not installed (needs root/apt): ${optional_apt[*]}; building without them" >&2
    fi
fi

[ "${FEEDHANDLER_SETUP_ONLY:-}" = apt ] && exit 0

# What this machine offers the build; part of the build's stamp.
offer() {
    local z=no d=no
    [ "${FEEDHANDLER_NO_ZSTD:-0}" != 1 ] && pkg-config --exists libzstd 2>/dev/null && z=yes
    [ "${FEEDHANDLER_NO_DPDK:-0}" != 1 ] && pkg-config --exists libdpdk 2>/dev/null && d=yes
    echo "zstd=$z dpdk=$d"
}
offered=$(offer)
# Rebuild the C extensions (the core, the generator, the test/probe hooks, DPDK)
# whenever csrc/ (with csrc/gen/ and csrc/probe/), a build script, or what the
# machine offers changed since the last install.
stamp="$VENV/.feedhandler-build"
sig=$( { find csrc cffi_build setup.py pyproject.toml -type f -print0 | sort -z | xargs -0 cat; echo "$offered"; } \
      | sha1sum | cut -c1-40)
[ "${FEEDHANDLER_SETUP_ONLY:-}" = stamp ] && { echo "$sig $offered"; exit 0; }

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
fi

if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$sig" ] || ! "$VENV/bin/python" -c 'import feedhandler.core, feedhandler._gen, feedhandler._probe' 2>/dev/null; then
    echo "setup: building feedhandler (C core via CFFI; machine offers $offered) into $VENV" >&2
    rm -f "$stamp"
    "$VENV/bin/python" -m pip install -q -e ".[test]"
    echo "$sig" > "$stamp"
fi
# The linter and formatters scripts/lint.sh runs, at the exact versions pyproject.toml's
# test extra pins (installed with it above): put back when missing or at another version.
lint_pins=$(grep -oE '"(ruff|clang-format)==[^"]+"' pyproject.toml | tr -d '"' | sort | xargs)
lint_have=$("$VENV/bin/python" -c 'import sys, importlib.metadata as m
for p in sys.argv[1:]:
    n = p.split("==")[0]
    try: print("%s==%s" % (n, m.version(n)))
    except m.PackageNotFoundError: pass' $lint_pins | xargs)
if [ "$lint_have" != "$lint_pins" ]; then
    echo "setup: installing $lint_pins" >&2
    "$VENV/bin/python" -m pip install -q $lint_pins
fi
# What the installed build has, read back from the build itself (not assumed
# from what was offered): scripts/test.sh compares it with what it expects.
"$VENV/bin/python" - "$offered" >"$VENV/.feedhandler-features" <<'EOF'
import sys
from feedhandler.core import build_features
have = build_features()
offered = dict(kv.split("=") for kv in sys.argv[1].split())
for k in ("zstd", "dpdk"):
    if offered[k] == "yes" and not have[k]:
        sys.exit("setup: the machine offers %s but the build has none: see the build log (pip install -v -e .)" % k)
print(" ".join("%s=%s" % (k, {True: "yes", False: "no"}.get(v, v) if isinstance(v, bool) else v)
               for k, v in sorted(have.items())))
EOF
