"""The Python package split by concern: configuration needs
no C core, every name the one-module reader, GLIMPSE and rewind modules had is
still importable where it was, the renamed reader and recovery names keep
their old names as deprecated aliases for one release, and no module grows
back into a mix of concerns."""

import os
import pathlib
import subprocess
import sys
import textwrap
import warnings

import pytest

import feedhandler

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "pcaps", "sample.pcap")
SMALL = dict(max_orders=1 << 16, max_levels=1 << 18, max_instruments=64, ring_events=1 << 16)

# --------------------------------------------------- configuration alone
NO_CORE = textwrap.dedent(r"""
    import os, sys, tempfile

    class NoCore:
        '''As on a machine where the C core was never built.'''
        def find_spec(self, name, path=None, target=None):
            if name == "feedhandler._core":
                raise ImportError("No module named 'feedhandler._core' (hidden by the test)")

    sys.meta_path.insert(0, NoCore())
    import feedhandler.config as config
    from feedhandler.errors import ConfigError, ReplayConfigError

    cfg = config.ReplayConfig(mode="book", depth=5, cores=[0], rerequest="127.0.0.1:26500")
    assert cfg.depth == 5 and cfg.cores == (0,) and cfg.rerequest == ("127.0.0.1", 26500)
    assert cfg.replace(depth=7).depth == 7 and cfg.lanes == 1
    assert __import__("feedhandler").ReplayConfig is config.ReplayConfig      # the package's lazy name too

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "channels.toml")
        with open(path, "w") as f:
            f.write('[[channel]]\nname = "itch-1"\nline_a = "233.54.12.111:26477"\n'
                    'snapshot = "127.0.0.1:26600"\ncore = 0\n')
        channels = config.load(path)
        assert [ch.name for ch in channels] == ["itch-1"] and channels[0].snapshot == ("127.0.0.1", 26600)
        cfg = config.ReplayConfig(channels=channels)
        assert cfg.lane_cores == [0] and cfg.channels == tuple(channels)
        with open(path, "w") as f:
            f.write('[[channel]]\nline_a = "10.0.0.1:26477"\n')
        try:
            config.load(path)
        except ConfigError as exc:
            assert "is not a multicast group" in str(exc), exc
        else:
            raise AssertionError("a unicast line_a loaded")

    for bad, needle in ((dict(depth=99), "depth must be 1..64"), (dict(mode="fast"), "mode must be one of"),
                        (dict(snapshot="127.0.0.1:1", mode="decode"), "not with mode 'decode'")):
        try:
            config.ReplayConfig(**bad)
        except ReplayConfigError as exc:
            assert needle in str(exc), (bad, exc)
        else:
            raise AssertionError("accepted %r" % (bad,))

    loaded = sorted(m for m in sys.modules if m.startswith("feedhandler"))
    assert "feedhandler.core" not in loaded and "feedhandler._core" not in loaded, loaded
    assert "numpy" not in sys.modules, "configuration imported numpy"
    try:
        import feedhandler.replay               # what does need the core says so
    except ImportError as exc:
        assert "feedhandler._core" in str(exc), exc
    else:
        raise AssertionError("feedhandler.replay imported without the C core: the test blocks nothing")
    print("ok", " ".join(loaded))
""")


def test_config_works_without_the_c_core():
    p = subprocess.run([sys.executable, "-c", NO_CORE], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("ok "), p.stdout


def test_replay_config_is_the_config_modules():
    from feedhandler import config, replay

    assert replay.ReplayConfig is config.ReplayConfig is feedhandler.ReplayConfig
    assert replay.ReplayConfigError is config.ReplayConfigError
    assert list(replay.MODES) == list(config.MODE_NAMES)


# ------------------------------------------------ names where they were
# The public names each module defined before the split (imports of its own
# helpers, ffi / lib and the like, were never its names).
OLD_NAMES = {
    "shm": [
        "ShmError",
        "WriterDied",
        "SLOT_FIXED",
        "MAX_SPINS",
        "SLOT_FIELDS",
        "SHM_EVENT_DTYPE",
        "EVENT_DTYPE",
        "EV_BBO",
        "EV_TRADE",
        "EV_STATE",
        "EV_STALE",
        "EV_SYSTEM",
        "EV_SILENT",
        "EV_SNAPSHOT",
        "EV_CBBO",
        "EVENT_NAMES",
        "SNAPSHOT_START",
        "SNAPSHOT_DONE",
        "SNAPSHOT_FAILED",
        "SNAPSHOT_PHASES",
        "FLAG_STALE",
        "FLAG_DROPPED",
        "FLAG_OP_HALT",
        "FLAG_DIRECTORY",
        "FLAG_SILENT",
        "STATES",
        "slot_dtype",
        "BOOK_FIELDS",
        "book_dtype",
        "PRICE_SCALE",
        "price_float",
        "format_price",
        "text_of",
        "Lapped",
        "Segment",
        "to_pandas",
        "attach",
    ],
    "glimpse": [
        "SnapshotError",
        "END_OF_SNAPSHOT",
        "DEFAULT_MAX_ORDERS",
        "DEFAULT_MAX_INSTRUMENTS",
        "EOS_LEN",
        "HEARTBEAT_S",
        "IDLE_TIMEOUT_S",
        "LOGIN_TIMEOUT_S",
        "MAX_CLIENTS",
        "ACCEPT_BACKOFF_S",
        "REASONS",
        "Snapshot",
        "build_snapshot",
        "describe_snapshot",
        "fetch_snapshot",
        "REJECT_KEYS",
        "GlimpseServer",
        "stats_json",
        "write_stats_json",
    ],
    "rewind": [
        "RewindError",
        "MOLD_HEADER",
        "REQUEST_LEN",
        "DEFAULT_MAX_DATAGRAM",
        "MAX_UDP_PAYLOAD",
        "IGNORE_REASONS",
        "DEFAULT_ALLOW",
        "MAX_TRACKED_CLIENTS",
        "SessionIndex",
        "CaptureIndex",
        "index_capture",
        "parse_request",
        "AllowList",
        "RateLimiter",
        "RewindServer",
        "describe_index",
        "stats_json",
        "write_stats_json",
    ],
    "replay": [
        "FORMAT_NAMES",
        "MODES",
        "STDIN",
        "InputResult",
        "ReplayResult",
        "ReplayConfig",
        "ReplayConfigError",
        "ReplayError",
        "Replay",
        "replay",
    ],
    "recovery": ["RETRY_REASONS", "RecoveryService"],
}


@pytest.mark.parametrize("module", sorted(OLD_NAMES))
def test_every_old_name_is_still_there(module):
    import importlib

    mod = importlib.import_module("feedhandler." + module)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # none of these is a deprecated alias
        missing = [n for n in OLD_NAMES[module] if not hasattr(mod, n)]
        assert missing == []
        ns = {}
        exec("from feedhandler.%s import *" % module, ns)  # and __all__ names only what exists, warning-free
    assert set(getattr(mod, "__all__", ())) <= set(ns)


def test_all_lists_name_what_the_modules_hold():
    import importlib

    pkg = pathlib.Path(feedhandler.__file__).parent
    for path in sorted(pkg.rglob("*.py")):
        rel = path.relative_to(pkg.parent).with_suffix("")
        name = ".".join(p for p in rel.parts if p != "__init__")
        if name.endswith("__main__") or "scapy" in name:  # scapy is an optional extra
            continue
        mod = importlib.import_module(name)
        for n in getattr(mod, "__all__", ()):
            assert hasattr(mod, n), "%s.__all__ names %s, which it does not hold" % (name, n)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for n in feedhandler.__all__:
            getattr(feedhandler, n)


def test_subpackages_are_installed():
    """pyproject.toml lists packages by name: a subpackage missing there would be
    missing from the wheel (the editable install would not show it)."""
    try:
        import tomllib
    except ImportError:  # pragma: no cover - Python < 3.11
        tomllib = pytest.importorskip("tomli")
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        listed = set(tomllib.load(f)["tool"]["setuptools"]["packages"])
    pkg = pathlib.Path(feedhandler.__file__).parent
    found = {
        ".".join(p.parent.relative_to(pkg.parent).parts)
        for p in pkg.rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    assert found == listed


# ------------------------------------------------------- deprecated names
def test_book_copy_and_its_old_name(name):
    from feedhandler import shm
    from feedhandler.replay import Replay

    with Replay(shm=name, **SMALL) as r:
        r.run_file(SAMPLE, progress=False)
    with shm.attach(name) as seg:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the new names warn about nothing
            book = seg.book("AAPL")
            books = seg.copy_books()
        assert type(book) is shm.BookCopy and repr(book).startswith("<BookCopy AAPL ")
        assert books[book.rec["locate"]]["bid_price"][0] == book.bids[0][0]

        with pytest.warns(
            DeprecationWarning,
            match=r"feedhandler\.shm\.Snapshot is deprecated: it is "
            r"feedhandler\.shm\.BookCopy",
        ):
            old = shm.Snapshot
        assert old is shm.BookCopy and isinstance(book, old)
        with pytest.warns(DeprecationWarning, match=r"feedhandler\.shm\.Snapshot is deprecated"):
            from feedhandler.shm import Snapshot
        assert Snapshot is shm.BookCopy
        with pytest.warns(
            DeprecationWarning,
            match=r"feedhandler\.Snapshot is deprecated: it is "
            r"feedhandler\.BookCopy",
        ):
            assert feedhandler.Snapshot is shm.BookCopy
        assert feedhandler.BookCopy is shm.BookCopy

        with pytest.warns(
            DeprecationWarning,
            match=r"Segment\.snapshot_all\(\) is deprecated: it is "
            r"Segment\.copy_books\(\)",
        ):
            same = seg.snapshot_all()
        assert (same == seg.copy_books()).all()
        pd = pytest.importorskip("pandas")
        with pytest.warns(DeprecationWarning, match="snapshot_all"):
            df = seg.snapshot_all(df=True, prices="float")
        assert isinstance(df, pd.DataFrame) and df.equals(seg.copy_books(df=True, prices="float"))
    for missing in ("snapshot", "Snap"):
        with pytest.raises(AttributeError):
            getattr(shm, missing)
        with pytest.raises(AttributeError):
            getattr(feedhandler, missing)


def test_recovery_service_and_its_old_name():
    from feedhandler import recovery

    with pytest.warns(
        DeprecationWarning,
        match=r"feedhandler\.recovery\.SnapshotService is deprecated: it is "
        r"feedhandler\.recovery\.RecoveryService",
    ):
        old = recovery.SnapshotService
    assert old is recovery.RecoveryService
    with pytest.warns(DeprecationWarning, match="SnapshotService"):
        from feedhandler.recovery import SnapshotService
    assert SnapshotService is recovery.RecoveryService
    with pytest.raises(AttributeError):
        recovery.SnapshotServer


def test_exchange_snapshot_names_are_unchanged():
    """'snapshot' keeps its one meaning, the exchange's: GLIMPSE's Snapshot and
    the recovery phases' event constants are not renamed (nor deprecated)."""
    from feedhandler import glimpse, shm

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert glimpse.Snapshot.__module__ == "feedhandler.glimpse.snapshot"
        assert shm.EVENT_NAMES[shm.EV_SNAPSHOT] == "snapshot"
        assert shm.SNAPSHOT_PHASES == {0: "snapshot_start", 1: "snapshot_done", 2: "snapshot_failed"}


# ------------------------------------------------------------ sizes
#: A module stays under this many lines (as formatted by ruff); past it, split
#: it by concern.
MAX_LINES = 560
#: Modules that hold one concern and are longer, each with what that concern
#: is; they stay under ONE_CONCERN_MAX.  A module added here needs the reason.
ONE_CONCERN = {
    "scapy_layers.py": "the scapy layers of MoldUDP64 and every ITCH 5.0 message: one field table per message type",
    "replay.py": "the Replay class (lanes, inputs, results) and replay(), its one-call form",
    "shm/segment.py": "Segment, the reader of one shared-memory segment",
}
ONE_CONCERN_MAX = 800


def test_no_module_grows_past_one_concern():
    pkg = pathlib.Path(feedhandler.__file__).parent
    big = [
        "%s: %d lines" % (rel, n)
        for p in sorted(pkg.rglob("*.py"))
        for rel in [p.relative_to(pkg).as_posix()]
        for n in [len(p.read_text().splitlines())]
        if n > (ONE_CONCERN_MAX if rel in ONE_CONCERN else MAX_LINES)
    ]
    assert big == [], "split these by concern (tests/test_package_layout.py)"
    assert all((pkg / rel).exists() for rel in ONE_CONCERN), "a module named in ONE_CONCERN is gone"
