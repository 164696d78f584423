"""The Python API around the pipeline: ReplayConfig validation, context managers
(resources released on exit), the endpoint parser, the error hierarchy, scapy as
an optional extra, and "-" (standard input) passed through untouched."""

import dataclasses
import os
import subprocess
import sys

import pytest

import feedhandler
from feedhandler import endpoints, errors
from feedhandler.config import ConfigError, parse_endpoint as config_endpoint
from feedhandler.dpdk import DpdkError
from feedhandler.replay import Replay, ReplayConfig, ReplayError, replay
from feedhandler.shm import STATES, ShmError, attach

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "pcaps", "sample.pcap")
SMALL = dict(max_orders=1 << 16, max_levels=1 << 18, max_instruments=64, ring_events=1 << 16)
NCPU = os.cpu_count() or 1


def shm_name(tag):
    return "fhtest-api-%s-%d" % (tag, os.getpid())


@pytest.fixture
def segment_name(request):
    name = shm_name(request.node.name[:20])
    yield name
    if os.path.exists("/dev/shm/" + name):
        os.unlink("/dev/shm/" + name)


# ------------------------------------------------------------ ReplayConfig
def test_config_defaults_and_normalisation():
    cfg = ReplayConfig()
    assert cfg.mode == "publish" and cfg.shm is None and cfg.depth == 10 and cfg.lanes == 1
    cfg = ReplayConfig(cores=[0], latency=True, speed=2, shm="", depth=0, rerequest="127.0.0.1:26500")
    assert cfg.cores == (0,) and cfg.latency == 1 and cfg.speed == 2.0 and isinstance(cfg.speed, float)
    assert cfg.shm is None and cfg.depth == 10 and cfg.rerequest == ("127.0.0.1", 26500)
    assert ReplayConfig(rerequest=("localhost", 9)).rerequest == ("localhost", 9)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.depth = 5
    assert cfg.replace(depth=5).depth == 5 and cfg.depth == 10


@pytest.mark.parametrize(
    "field,value,needle",
    [
        ("mode", "fast", "mode must be one of publish, book, decode"),
        ("depth", 65, "depth must be 1..64"),
        ("depth", -1, "depth must be 1..64"),
        ("depth", "10", "depth must be"),
        ("ring_events", 1000, "power of two"),
        ("max_orders", -5, "max_orders must be an integer 0..4294967295"),
        ("max_orders", 2**32, "max_orders must be"),
        ("max_levels", 1.5, "max_levels must be"),
        ("max_instruments", 70000, "stock locates are 16-bit"),
        ("max_streams", 70000, "max_streams"),
        ("gap_buffer", True, "gap_buffer must be"),
        ("shm_mode", 0o10000, "permission bits"),
        ("speed", -1, "speed must be 0"),
        ("speed", float("nan"), "speed must be 0"),
        ("speed", "max", "speed must be 0"),
        ("latency", -1, "latency must be 0 (off)"),
        ("shm", "a/b", "bad shared-memory name 'a/b'"),
        ("shm", ".hidden", "must not start with '.'"),
        ("shm", "x" * 300, "at most 199 characters"),
        ("shm", 5, "shm must be a segment name"),
        ("cores", [0, NCPU + 5], "do not exist"),
        ("cores", [0, 0], "twice"),
        ("cores", [-1], "cores must be CPU numbers"),
        ("cores", 3, "a sequence of CPU numbers"),
        ("channels", ["233.54.12.1:1"], "feedhandler.config.Channel"),
        ("rerequest", "127.0.0.1", "HOST:PORT"),
        ("rerequest", "127.0.0.1:0", "port 0 out of range 1..65535"),
    ],
)
def test_config_rejects_with_clear_errors(field, value, needle):
    with pytest.raises(errors.ReplayConfigError) as info:
        ReplayConfig(**{field: value})
    assert needle in str(info.value)
    # the same through Replay(**kwargs), for existing callers catching ReplayError
    with pytest.raises(ReplayError, match=None):
        Replay(**{field: value})


def test_config_error_is_both_replay_and_config_error():
    with pytest.raises(ReplayError):
        ReplayConfig(depth=99)
    with pytest.raises(ConfigError):
        ReplayConfig(depth=99)
    with pytest.raises(ValueError):
        ReplayConfig(depth=99)


def test_channel_core_outside_cores():
    from feedhandler.config import Channel

    ch = Channel(name="c", line_a=("233.54.12.1", 1), line_b=None, rerequest=None, core=0)
    assert ReplayConfig(channels=[ch]).lane_cores == [0]
    if NCPU > 1:
        with pytest.raises(errors.ReplayConfigError, match="channel 'c' is on core 0, which is not in cores 1"):
            ReplayConfig(channels=[ch], cores=[1])


def test_unknown_keyword_and_no_public_backend():
    with pytest.raises(TypeError, match="unknown Replay option.*depht.*valid: mode"):
        Replay(depht=5)
    from feedhandler import _core

    with pytest.raises(TypeError, match="backend.*DpdkRun"):
        Replay(backend=_core, **SMALL)
    with pytest.raises(TypeError, match="ReplayConfig or keyword arguments"):
        Replay("book")


def test_replay_takes_config_or_kwargs_alike():
    cfg = ReplayConfig(mode="book", **SMALL)
    with Replay(cfg) as a:
        assert a.config is cfg and a.mode == "book"
        a.run_file(SAMPLE, progress=False)
    with Replay(mode="book", **SMALL) as b:
        assert b.config == cfg
        b.run_file(SAMPLE, progress=False)
    with Replay(cfg, depth=5) as c:  # a config with changes
        assert c.depth == 5 and c.config.mode == "book"
    with Replay(config=cfg) as d:
        assert d.config is cfg
    sa, sb = a.stats(), b.stats()
    for k in ("messages", "by_type", "checksum", "book"):
        assert sa[k] == sb[k]
    res = replay([SAMPLE], progress=False, config=cfg)
    assert res.ok and res.stats["checksum"] == sa["checksum"]


# ------------------------------------------------------- context managers
def test_replay_context_finishes_releases_and_keeps_counters(segment_name):
    with Replay(shm=segment_name, **SMALL) as r:
        assert not r.closed
        r.run_file(SAMPLE, progress=False)
        seg = r.segment()
        with attach(segment_name) as reader:
            assert reader.state == "running"
    assert r.closed
    # The segment stays for readers, marked finished, with the final counters.
    with attach(segment_name) as reader:
        assert reader.state == "finished" and reader.counters()["messages"] == 40000
    # The replay's memory is gone, its counters are not.
    assert r.stats()["messages"] == 40000 and r.memory()["shm_bytes"] > 0
    with pytest.raises(ReplayError, match="closed"):
        r.run_file(SAMPLE, progress=False)
    with pytest.raises(ReplayError, match="closed"):
        r.segment()
    with pytest.raises(ReplayError, match="closed"):
        r.dump_books(os.devnull)
    # the in-process segment it handed out is closed with it: an error, never freed memory read
    assert seg.closed
    with pytest.raises(ShmError, match="closed"):
        seg.book(1)
    with pytest.raises(ShmError, match="closed"):
        seg.state
    r.close()  # idempotent
    r.finish()
    r.stop()
    # the name is free again: a new writer may take it
    with Replay(shm=segment_name, **SMALL):
        pass


def test_replay_context_closes_on_error(segment_name):
    with pytest.raises(RuntimeError):
        with Replay(shm=segment_name, **SMALL) as r:
            raise RuntimeError("boom")
    assert r.closed
    with attach(segment_name) as seg:
        assert seg.state == "finished"


def test_failed_replay_frees_its_segment_at_once(segment_name):
    # latency=... passes the config; a bad re-request host fails after the segment exists
    with pytest.raises(ReplayError, match="cannot resolve"):
        Replay(shm=segment_name, rerequest=("no-such-host.invalid", 9), **SMALL)
    with attach(segment_name) as seg:
        assert seg.state == "finished"  # not "running" until garbage collection
    Replay(shm=segment_name, **SMALL).close()


def test_segment_context_and_idempotent_close(segment_name):
    with Replay(shm=segment_name, **SMALL) as r:
        r.run_file(SAMPLE, progress=False)
    with attach(segment_name) as seg:
        assert seg.book("AAPL").symbol == "AAPL"
        assert seg.state in STATES.values()
    assert seg.closed
    for read in (lambda: seg.book(1), seg.counters, seg.copy_books, seg.events, lambda: seg.writer_pid, seg.clock_ns):
        with pytest.raises(ShmError, match="closed"):
            read()
    seg.close()
    assert "closed" in repr(seg)


# ---------------------------------------------------------------- endpoints
def test_endpoint_parser():
    P = endpoints.parse_endpoint
    assert P("233.54.12.111:26477", "x", multicast=True) == ("233.54.12.111", 26477)
    assert P(("127.0.0.1", 80)) == ("127.0.0.1", 80)
    assert P("localhost:0", ipv4=False, allow_port_zero=True) == ("localhost", 0)
    assert P("[::1]:26500", ipv4=False) == ("::1", 26500)
    assert P(("::1", 5), ipv4=False) == ("::1", 5)
    assert endpoints.format_endpoint(("::1", 5)) == "[::1]:5" and endpoints.format_endpoint(("h", 5)) == "h:5"
    assert endpoints.ipv4_to_int("1.2.3.4") == 0x01020304
    assert endpoints.ipv4_to_int("localhost", resolve=True) == 0x7F000001
    cases = [
        (lambda: P("1.2.3.4", "--x"), "--x: expected \"IPv4:PORT\", got '1.2.3.4'"),
        (lambda: P("1.2.3.400:5", "--x"), "--x: '1.2.3.400' is not an IPv4 address"),
        (lambda: P("10.0.0.1:5", "--x", multicast=True), "--x: 10.0.0.1 is not a multicast group"),
        (lambda: P("1.2.3.4:http", "--x"), "--x: port 'http' is not a number"),
        (lambda: P("1.2.3.4:-1", "--x"), "--x: port '-1' is not a number"),
        (lambda: P("1.2.3.4:70000", "--x"), "--x: port 70000 out of range 1..65535"),
        (lambda: P("1.2.3.4:0", "--x"), "--x: port 0 out of range 1..65535"),
        (lambda: P(":80", "--l", ipv4=False), "--l: no host before the port"),
        (lambda: P("host", "--l", ipv4=False), '--l: expected "HOST:PORT"'),
        (lambda: P("[::1:80", "--l", ipv4=False), '--l: expected "[IPv6]:PORT"'),
        (lambda: P("[nope]:80", "--l", ipv4=False), "--l: 'nope' is not an IPv6 address"),
        (lambda: P(("1.2.3.4", "80"), "--x"), "--x: expected (host: str, port: int)"),
        (lambda: endpoints.ipv4_to_int("example", "grp"), "grp: 'example' is not an IPv4 address"),
    ]
    for call, message in cases:
        with pytest.raises(endpoints.EndpointError) as info:
            call()
        assert str(info.value).startswith(message), (str(info.value), message)
        assert isinstance(info.value, ConfigError) and isinstance(info.value, ValueError)
    # config.parse_endpoint is the same parser
    with pytest.raises(ConfigError, match="not a multicast group"):
        config_endpoint("10.0.0.1:1", "line_a", multicast=True)


def test_listen_error_says_why():
    p = subprocess.run(
        [sys.executable, "-m", "feedhandler", "rewind-server", SAMPLE, "--listen", "127.0.0.1:70000"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 2 and "--listen needs HOST:PORT, got '127.0.0.1:70000' (port 70000 out of range" in p.stderr


# ------------------------------------------------------------------ errors
def test_error_hierarchy():
    base = errors.FeedhandlerError
    for cls in (
        errors.ConfigError,
        errors.EndpointError,
        errors.ReplayError,
        errors.ReplayConfigError,
        errors.ShmError,
        errors.DpdkError,
    ):
        assert issubclass(cls, base)
    assert issubclass(errors.EndpointError, errors.ConfigError)
    assert issubclass(errors.ReplayConfigError, errors.ReplayError)
    assert issubclass(errors.ReplayConfigError, errors.ConfigError)
    assert issubclass(errors.ConfigError, ValueError)
    # the names they always had are the same classes
    import feedhandler.config
    import feedhandler.dpdk
    import feedhandler.replay
    import feedhandler.shm

    assert feedhandler.replay.ReplayError is errors.ReplayError is feedhandler.ReplayError
    assert feedhandler.shm.ShmError is errors.ShmError
    assert feedhandler.dpdk.DpdkError is errors.DpdkError is DpdkError
    assert feedhandler.config.ConfigError is errors.ConfigError
    with pytest.raises(base, match="no shared-memory segment"):
        attach("fhtest-api-never-there")


def test_c_error_carries_the_c_message():
    from feedhandler.core import ffi

    err = ffi.new("char[]", errors.ERR_LEN)
    assert str(errors.c_error(errors.ReplayError, ffi, err)) == "the C core reported an error"
    err[0:5] = b"oops!"
    e = errors.c_error(errors.ShmError, ffi, err)
    assert isinstance(e, errors.ShmError) and str(e) == "oops!"


# ------------------------------------------------------------------- stdin
def test_inputs_are_opened_by_the_c_core_only(monkeypatch):
    """Python never opens an input (standard input's bytes belong to the C core);
    the compression it reports comes from the C side's look at the first bytes."""
    import builtins

    from feedhandler import replay as R

    real_open = builtins.open
    path = os.path.join(ROOT, "pcaps", "sample.bin.gz")

    def no_input_open(p, *a, **k):
        assert p not in ("-", path), "Python opened an input: %r" % (p,)
        return real_open(p, *a, **k)

    monkeypatch.setattr(builtins, "open", no_input_open)
    assert R.STDIN == "-"
    with R.Replay(mode="book", max_instruments=1024) as r:
        res = r.run_file(path, progress=False)
    assert res.ok and res.compression == "gzip" and res.gzip


# ------------------------------------------------------------ scapy optional
NO_SCAPY = """
import sys
class _NoScapy:
    def find_spec(self, name, path=None, target=None):
        if name == "scapy" or name.startswith("scapy."):
            raise ImportError("No module named %r (hidden by the test)" % name)
sys.meta_path.insert(0, _NoScapy())
for m in [m for m in sys.modules if m == "scapy" or m.startswith("scapy.")]:
    del sys.modules[m]
import feedhandler, feedhandler.replay, feedhandler.shm, feedhandler.cli, feedhandler.config
import feedhandler.dpdk, feedhandler.gen, feedhandler.rewind, feedhandler.latency, feedhandler.endpoints
assert feedhandler.cli.build_parser().parse_args(["stats", "--shm", "x"]).command == "stats"
try:
    import feedhandler.scapy_layers
except ImportError as exc:
    print("IMPORT-ERROR:", exc)
else:
    print("imported?!")
assert not any(m == "scapy" or m.startswith("scapy.") for m in sys.modules), "something imported scapy"
"""


def test_everything_but_scapy_layers_works_without_scapy():
    p = subprocess.run([sys.executable, "-c", NO_SCAPY], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    assert "IMPORT-ERROR:" in p.stdout and "pip install feedhandler[scapy]" in p.stdout, p.stdout


def test_commands_run_without_scapy(tmp_path):
    # sys.modules["scapy"] = None makes every `import scapy...` fail, as when it is not installed
    prelude = "import sys; sys.modules['scapy'] = None; from feedhandler.cli import main; sys.exit(main(sys.argv[1:]))"
    p = subprocess.run(
        [sys.executable, "-c", prelude, "replay", "-q", SAMPLE, "--mode", "decode"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert p.returncode == 0 and "messages              40,000" in p.stdout, p.stderr
    p = subprocess.run(
        [
            sys.executable,
            "-c",
            prelude.replace(
                "from feedhandler.cli import main; sys.exit(main(sys.argv[1:]))", "import feedhandler.scapy_layers"
            ),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert p.returncode == 1 and "pip install feedhandler[scapy]" in p.stderr


def test_package_exports():
    assert feedhandler.Replay is Replay and feedhandler.ReplayConfig is ReplayConfig
    assert feedhandler.attach is attach
    with pytest.raises(AttributeError):
        feedhandler.nope


DPDK_CONTEXT = """
import os, sys
from feedhandler.dpdk import DpdkError, DpdkRun
from feedhandler.replay import ReplayConfig
from feedhandler.shm import attach
cfg = ReplayConfig(max_orders=65536, max_levels=131072, max_instruments=128, ring_events=65536, shm=sys.argv[2])
with DpdkRun(sys.argv[1], config=cfg) as run:
    with attach(sys.argv[2]) as seg:
        assert seg.state == "running"
    run.run()
    assert not run.closed
assert run.closed and run.replay.closed
with attach(sys.argv[2]) as seg:
    assert seg.state == "finished" and seg.counters()["messages"] == 40000
st = run.stats()                      # kept from close
assert st["messages"] == 40000 and st["dpdk"]["ipackets"] == 8324, st["dpdk"]
run.close()                           # idempotent
try:
    run.run()
except DpdkError as exc:
    assert "closed" in str(exc)
else:
    raise AssertionError("run() after close")
print("ok")
"""


@pytest.mark.skipif(not __import__("feedhandler.dpdk").dpdk.available(), reason="no DPDK support in this install")
def test_dpdk_run_context_manager():
    name = shm_name("dpdk")
    eal = "-l 0 --no-huge --no-pci -m 512 --file-prefix fhtest-api-%d --log-level=error --vdev=net_pcap0,rx_pcap=%s" % (
        os.getpid(),
        SAMPLE,
    )
    try:
        p = subprocess.run(
            [sys.executable, "-c", DPDK_CONTEXT, eal, name], capture_output=True, text=True, timeout=120, cwd=ROOT
        )
        assert p.returncode == 0 and p.stdout.strip().endswith("ok"), p.stderr
    finally:
        if os.path.exists("/dev/shm/" + name):
            os.unlink("/dev/shm/" + name)


def test_every_exception_is_in_the_one_tree():
    """Every exception class the package defines lives in feedhandler.errors
    and derives from FeedhandlerError (one ``except`` catches them all); the
    modules that first defined them re-export the same class."""
    import ast
    import pathlib

    from feedhandler import errors, gen, glimpse, rewind, soup

    pkg = pathlib.Path(errors.__file__).parent
    elsewhere = []
    for path in sorted(pkg.rglob("*.py")):
        if path.name == "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.ClassDef)
                and not node.name.startswith("_")
                and any(getattr(b, "id", getattr(b, "attr", "")).endswith(("Error", "Exception")) for b in node.bases)
            ):
                elsewhere.append("%s: %s" % (path.relative_to(pkg), node.name))
    assert elsewhere == []
    tree = [getattr(errors, n) for n in errors.__all__ if isinstance(getattr(errors, n), type)]
    assert all(issubclass(c, errors.FeedhandlerError) for c in tree), tree
    assert (rewind.RewindError, glimpse.SnapshotError, soup.SoupError) == (
        errors.RewindError,
        errors.SnapshotError,
        errors.SoupError,
    )
    with pytest.raises(errors.GenError) as e:
        gen.generate("/tmp/never", lines="abc")
    assert isinstance(e.value, ValueError) and isinstance(e.value, errors.FeedhandlerError)
