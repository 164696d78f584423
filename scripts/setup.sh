#!/usr/bin/env bash
# One-step set-up on a fresh Debian 12 machine (as root) or a laptop:
#   - system packages where we can install them (apt, as root): compiler, Python
#     headers and venv, zlib; tshark/tcpreplay for capture checks where available
#   - a virtual environment in .venv with the package built (CFFI compiles csrc/)
#     and its Python dependencies (cffi, numpy, scapy, pytest).
# Idempotent and quiet when everything is already there.  Source it or run it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${FEEDHANDLER_VENV:-$ROOT/.venv}

need_apt=()
command -v gcc >/dev/null 2>&1 || need_apt+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
[ -e /usr/include/zlib.h ] || need_apt+=(zlib1g-dev)
python3 -c 'import sysconfig,os,sys; sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_paths()["include"],"Python.h")) else 1)' 2>/dev/null || need_apt+=(python3-dev)
python3 -c 'import ensurepip, venv' 2>/dev/null || need_apt+=(python3-venv)
# Optional: DPDK headers for the kernel-bypass source, tshark for checking captures,
# clang-14 with libFuzzer for scripts/fuzz.sh (skipped without them).
optional_apt=()
# zstd-compressed inputs (.pcap.zst): optional, a clear error at run time without it.
pkg-config --exists libzstd 2>/dev/null || optional_apt+=(libzstd-dev)
pkg-config --exists libdpdk 2>/dev/null || optional_apt+=(libdpdk-dev)
command -v tshark >/dev/null 2>&1 || optional_apt+=(tshark)
command -v clang-14 >/dev/null 2>&1 || optional_apt+=(clang-14)
[ -n "$(ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-*.a 2>/dev/null)" ] || optional_apt+=(libclang-rt-14-dev)

if [ ${#need_apt[@]} -gt 0 ] || [ ${#optional_apt[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: apt-get install ${need_apt[*]} ${optional_apt[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null || true
        if [ ${#need_apt[@]} -gt 0 ]; then
            apt-get install -y -qq "${need_apt[@]}" >/dev/null
        fi
        for p in "${optional_apt[@]}"; do
            apt-get install -y -qq "$p" >/dev/null 2>&1 || echo "setup: optional package $p not available, continuing" >&2
        done
    elif [ ${#need_apt[@]} -gt 0 ]; then
        echo "setup: please install: ${need_apt[*]} (need root/apt for automatic install)" >&2
        exit 1
    fi
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
fi
# Rebuild the C extensions (the core, the generator, the test/probe hooks) whenever
# csrc/ (with csrc/gen/ and csrc/probe/) or a build script changed since the last install.
stamp="$VENV/.feedhandler-build"
sig=$(find csrc cffi_build setup.py pyproject.toml -type f -print0 | sort -z | xargs -0 cat | sha1sum | cut -c1-40)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$sig" ] || ! "$VENV/bin/python" -c 'import feedhandler.core, feedhandler._gen, feedhandler._probe' 2>/dev/null; then
    echo "setup: building feedhandler (C core via CFFI) into $VENV" >&2
    "$VENV/bin/python" -m pip install -q -e ".[test]"
    echo "$sig" > "$stamp"
fi
