"""CFFI build script for the C core (API mode, out-of-line).

Run by setuptools through ``cffi_modules`` (``pip install .`` / ``pip install -e .``).
The cdef is ``csrc/fh_api.h`` read verbatim, so that header holds no preprocessor lines.

Environment switches (all opt-in; the default build is portable ``-O3``):
  FEEDHANDLER_NATIVE=1    add ``-march=native``
  FEEDHANDLER_SANITIZE=1  build with AddressSanitizer + UBSan (``-O1 -g``), for CI
  FEEDHANDLER_CFLAGS=...  extra compiler flags, e.g. ``-DFH_PF_ORDER=16`` to measure a
                          variant of a tuning constant (scripts/compare_builds.py flags)
  FEEDHANDLER_NO_ZSTD=1   build without zstd input support even where libzstd is installed
"""

import glob
import os

from cffi import FFI

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CSRC = os.path.join(ROOT, "csrc")

# Our C is held to -Werror (CFFI's generated glue happens to pass it too).
STRICT = ["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-Wshadow", "-Wstrict-prototypes"]


def _flags():
    cflags = list(STRICT)
    ldflags = []
    if os.environ.get("FEEDHANDLER_SANITIZE") == "1":
        cflags += [
            "-O1",
            "-g",
            "-fno-omit-frame-pointer",
            "-fsanitize=address,undefined",
            "-fno-sanitize-recover=all",
            # Inputs are read into exact-size heap buffers instead of being
            # mapped, so ASan sees a read one byte past any input's end.
            "-DFH_EXACT_BUFFERS=1",
        ]
        ldflags += ["-fsanitize=address,undefined"]
    else:
        # Hidden visibility: calls between our C files are direct, not through the
        # GOT (the module's only export is CFFI's PyInit).
        # No loop-to-memmove rewriting: the book's level shifts move ~2 entries,
        # where a libc call costs more than the copy.
        cflags += ["-O3", "-fno-plt", "-fvisibility=hidden", "-fno-tree-loop-distribute-patterns"]
    if os.environ.get("FEEDHANDLER_NATIVE") == "1":
        cflags += ["-march=native"]
    cflags += os.environ.get("FEEDHANDLER_CFLAGS", "").split()
    return cflags, ldflags


def _zstd():
    """zstd input support where libzstd's headers are installed (pkg-config libzstd);
    without them a zstd input is a clear error at run time."""
    if os.environ.get("FEEDHANDLER_NO_ZSTD") == "1":
        return [], []
    try:
        import subprocess

        out = subprocess.run(["pkg-config", "--cflags", "--libs", "libzstd"], capture_output=True, text=True)
    except OSError:
        return [], []
    if out.returncode != 0:
        return [], []
    flags = out.stdout.split()
    return ["-DFH_HAVE_ZSTD"] + [f for f in flags if f.startswith("-I")], [f[2:] for f in flags if f.startswith("-l")]


def c_sources(subdir=""):
    """The .c files of csrc/ (or of one of its folders), relative to the project
    root (setuptools wants paths relative to setup.py's directory)."""
    here = os.path.join(CSRC, subdir)
    rel = os.path.relpath(here, os.getcwd())
    return sorted(os.path.join(rel, os.path.basename(p)) for p in glob.glob(os.path.join(here, "*.c")))


def _sources():
    # The pipeline's stages (csrc/) and the tools built on it (csrc/tools/: CSV
    # dump, layout checks, GLIMPSE builder, capture index, frame decode).
    return c_sources() + c_sources("tools")


ffibuilder = FFI()
with open(os.path.join(CSRC, "fh_api.h")) as f:
    ffibuilder.cdef(f.read())

_cflags, _ldflags = _flags()
_zflags, _zlibs = _zstd()
ffibuilder.set_source(
    "feedhandler._core",
    '#include <stdint.h>\n#include <stddef.h>\n#include "fh_api.h"\n',
    sources=_sources(),
    include_dirs=[CSRC],
    libraries=["z", "pthread"] + _zlibs,
    extra_compile_args=_cflags + _zflags,
    extra_link_args=_ldflags,
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
