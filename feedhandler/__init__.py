"""feedhandler: kernel-bypass, low-latency NASDAQ TotalView-ITCH 5.0 feed handler.

The decoding, sessions and books run in a C core built through CFFI
(``feedhandler._core``); this package is the thin Python around it.
"""
__version__ = "0.1.0"


def __getattr__(name):
    # `feedhandler.attach(name)` (docs/architecture.md), imported on first use so the CLI
    # does not pay for numpy and the C core before it needs them.
    if name == "attach":
        from .shm import attach
        return attach
    raise AttributeError("module 'feedhandler' has no attribute %r" % name)
