"""CFFI build script for the DPDK extension, feedhandler._dpdk (API mode, out-of-line).

Built only where `pkg-config libdpdk` answers (setup.py checks): the whole C core
plus every csrc/dpdk/*.c (src_dpdk.c: receive, tx_dpdk.c: `feedhandler send`),
linked against DPDK, so the burst loops run without a call through Python.  The
cdef is csrc/fh_api.h followed by csrc/dpdk/fh_dpdk.h.  DPDK's own headers are included
as system headers, so -Werror applies to our code only.
"""

import os
import shlex
import subprocess

from cffi import FFI

from build_core import CSRC, _flags, _sources, _zstd  # noqa: E402  (same directory when run by setuptools)


def have_dpdk() -> bool:
    try:
        return subprocess.run(["pkg-config", "--exists", "libdpdk"]).returncode == 0
    except OSError:
        return False


def _pkg(flag):
    return shlex.split(
        subprocess.run(["pkg-config", flag, "libdpdk"], capture_output=True, text=True, check=True).stdout
    )


def _dpdk_cflags():
    out = []
    args = _pkg("--cflags")
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("-I"):
            out += ["-isystem", a[2:]]
        elif a == "-include":
            out += [a, args[i + 1]]
            i += 1
        elif a.startswith("-march") and os.environ.get("FEEDHANDLER_NATIVE") == "1":
            pass
        else:
            out.append(a)
        i += 1
    return out


ffibuilder = FFI()
with open(os.path.join(CSRC, "fh_api.h")) as f:
    _cdef = f.read()
with open(os.path.join(CSRC, "dpdk", "fh_dpdk.h")) as f:
    _cdef += "\n" + f.read()
ffibuilder.cdef(_cdef)

if have_dpdk():
    _cflags, _ldflags = _flags()
    _zflags, _zlibs = _zstd()
    _rel = os.path.relpath(os.path.join(CSRC, "dpdk"), os.getcwd())
    _DPDK_C = sorted(n for n in os.listdir(os.path.join(CSRC, "dpdk")) if n.endswith(".c"))
    ffibuilder.set_source(
        "feedhandler._dpdk",
        '#include <stdint.h>\n#include <stddef.h>\n#include "fh_api.h"\n#include "dpdk/fh_dpdk.h"\n',
        sources=_sources() + [os.path.join(_rel, n) for n in _DPDK_C],
        include_dirs=[CSRC],
        libraries=["z", "pthread"] + _zlibs,
        extra_compile_args=_dpdk_cflags() + _cflags + _zflags,
        extra_link_args=_pkg("--libs") + _ldflags,
    )

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
