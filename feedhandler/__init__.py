"""feedhandler: kernel-bypass, low-latency market-data feed handler (NASDAQ
TotalView-ITCH 5.0 over MoldUDP64, Cboe PITCH), with A/B arbitration, gap
recovery and snapshots, order books published in shared memory.

The decoding, sessions and books run in a C core built through CFFI
(``feedhandler._core``); this package is the thin Python around it.

    import feedhandler
    cfg = feedhandler.ReplayConfig(mode="publish", shm="books")
    with feedhandler.Replay(cfg) as r:
        r.run_file("day.pcap")
    with feedhandler.attach("books") as seg:
        print(seg.book("AAPL"))

Errors derive from :class:`feedhandler.FeedhandlerError` (see :mod:`feedhandler.errors`).
"""

from typing import Any

from .errors import (
    ConfigError,
    DpdkError,
    EndpointError,
    FeedhandlerError,
    ReplayConfigError,
    ReplayError,
    ShmError,
    ShmNameError,
    WriterDied,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "attach",
    "Replay",
    "ReplayConfig",
    "Segment",
    "BookCopy",
    "FeedhandlerError",
    "ConfigError",
    "EndpointError",
    "ReplayError",
    "ReplayConfigError",
    "ShmError",
    "ShmNameError",
    "WriterDied",
    "DpdkError",
    "Lapped",
    "to_pandas",
]

# Imported on first use, so that the CLI does not pay for numpy and the C core
# before it needs them (docs/architecture.md: `feedhandler.attach(name)`), and
# so that `import feedhandler.config` (ReplayConfig, channel configs) works
# where the C core is not built.
_LAZY = {
    "attach": "shm",
    "Segment": "shm",
    "BookCopy": "shm",
    "Lapped": "shm",
    "to_pandas": "shm",
    "Replay": "replay",
    "ReplayConfig": "config",
}
# (The function replay() stays feedhandler.replay.replay: the name feedhandler.replay
# is the submodule once it is imported.)

#: Old name -> new name: the old one works for one release, with a DeprecationWarning.
_DEPRECATED = {"Snapshot": "BookCopy"}


def __getattr__(name: str) -> Any:
    new = _DEPRECATED.get(name)
    if new is not None:
        import warnings

        warnings.warn(
            "feedhandler.%s is deprecated: it is feedhandler.%s now (the old name goes in the next "
            "release)" % (name, new),
            DeprecationWarning,
            stacklevel=2,
        )
        name = new
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError("module 'feedhandler' has no attribute %r" % name)
    from importlib import import_module

    return getattr(import_module("." + module, __name__), name)
