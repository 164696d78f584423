"""CFFI build script for the test and measurement hooks, feedhandler._probe (API mode, out-of-line).

What only tests, scripts, benchmarks and fuzzing call -- the shared-memory
torture writer (tests/test_shm.py), the machine-jitter probe
(tests/test_latency.py, scripts/bench_latency.py), histogram helpers, the raw
(unwidened) shared-memory readers, the Cboe PITCH reference decoder and the
DPDK source's hardware-timestamp arithmetic (csrc/dpdk/hw_clock.h, header
only: tests/test_hw_clock.py) -- lives here, not in the production core feedhandler._core or its ABI
(tests/test_abi.py).  The cdef is csrc/probe/probe_api.h read verbatim; its FFI
includes the core's (ffi.include), so the types (fh_hist_t, ...) are the
core's own and importing feedhandler._probe imports feedhandler._core.
Sources: csrc/probe/*.c plus the core files they need (CORE_SOURCES), with the
core's flags (build_core._flags(): -Werror, and AddressSanitizer with
FEEDHANDLER_SANITIZE=1).
"""

import os

from cffi import FFI

from build_core import (  # noqa: E402  (same directory when run by setuptools)
    CSRC,
    _flags,
    c_sources,
    ffibuilder as core_ffibuilder,  # noqa: E402
)

PROBE = os.path.join(CSRC, "probe")
# The core files the probes call into: fh_tsc_calibrate; the raw readers
# fh_shm_read_slot(s) and fh_shm_poll_events; fh_pitch_len_table.
CORE_SOURCES = ["tsc.c", "shm.c", "pitch.c"]


def _sources():
    # setuptools wants paths relative to the project root (setup.py's directory).
    rel = os.path.relpath(CSRC, os.getcwd())
    return c_sources("probe") + [os.path.join(rel, f) for f in CORE_SOURCES]


ffibuilder = FFI()
ffibuilder.include(core_ffibuilder)
with open(os.path.join(PROBE, "probe_api.h")) as f:
    ffibuilder.cdef(f.read())

_cflags, _ldflags = _flags()
ffibuilder.set_source(
    "feedhandler._probe",
    '#include <stdint.h>\n#include <stddef.h>\n#include "fh_api.h"\n#include "probe/probe_api.h"\n',
    sources=_sources(),
    include_dirs=[CSRC],
    extra_compile_args=_cflags,
    extra_link_args=_ldflags,
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
