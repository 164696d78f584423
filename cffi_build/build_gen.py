"""CFFI build script for the trading-day generator, feedhandler._gen (API mode, out-of-line).

The generator (csrc/gen/) is a tool, not part of the feed handler: it is its own
extension so that none of it is in the production core feedhandler._core or its
ABI.  Every .c file of csrc/gen/ is compiled (one file per concern, see
docs/generator.md "Source layout"); the cdef is csrc/gen/gen_api.h read
verbatim.  It shares the core's headers (fh_common.h for the byte-order
helpers, itch_spec.h and pitch_spec.h for the message tables) but no object
code, and is built with the core's flags (build_core._flags(): -Werror, and
AddressSanitizer with FEEDHANDLER_SANITIZE=1).
"""

import os

from cffi import FFI

from build_core import CSRC, _flags, c_sources  # noqa: E402  (same directory when run by setuptools)

GEN = os.path.join(CSRC, "gen")


ffibuilder = FFI()
with open(os.path.join(GEN, "gen_api.h")) as f:
    ffibuilder.cdef(f.read())

_cflags, _ldflags = _flags()
ffibuilder.set_source(
    "feedhandler._gen",
    '#include <stdint.h>\n#include <stddef.h>\n#include "gen/gen_api.h"\n',
    sources=c_sources("gen"),
    include_dirs=[CSRC],
    extra_compile_args=_cflags,
    extra_link_args=_ldflags,
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
