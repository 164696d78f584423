"""Channel config (TOML): steering by group to the channel's core, and clear
errors for every kind of bad config."""

import json
import os
import subprocess
import sys

import pytest

from feedhandler.config import ConfigError, load
from feedhandler.replay import Replay

NCPU = os.cpu_count() or 1

TWO = """
[[channel]]
name = "itch-1"
line_a = "233.54.12.111:26477"
line_b = "233.49.196.111:26477"
core = 0

[[channel]]
name = "itch-2"
line_a = "233.54.12.112:26477"
line_b = "233.49.196.112:26477"
rerequest = "127.0.0.1:26500"
core = %d
""" % (1 if NCPU > 1 else 0)


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    d = tmp_path_factory.mktemp("cfg")
    prefix = str(d / "day")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "feedhandler",
            "gen",
            "-q",
            "--out",
            prefix,
            "--messages",
            "120000",
            "--symbols",
            "45",
            "--channels",
            "3",
            "--seed",
            "8",
            "--lines",
            "ab",
            "--loss-a",
            "0.03",
            "--loss-b",
            "0.03",
        ],
        check=True,
        timeout=120,
    )
    return prefix


def write(tmp_path, text, name="c.toml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_configured_channels_steer_and_filter(day, tmp_path):
    chans = load(write(tmp_path, TWO))
    assert [c.name for c in chans] == ["itch-1", "itch-2"] and chans[1].rerequest == ("127.0.0.1", 26500)
    small = dict(mode="book", max_orders=1 << 16, max_levels=1 << 17, max_instruments=64)
    r = Replay(channels=chans, **small)
    assert r.run_file(day + ".pcap", progress=False).ok
    r.finish()
    st = r.stats()
    assert st["errors"]["unconfigured_group"] > 0  # the third channel's frames
    r.dump_books(str(tmp_path / "cfg.csv"), 10)
    full = Replay(**small)
    assert full.run_file(day + ".pcap", progress=False).ok
    full.finish()
    full.dump_books(str(tmp_path / "full.csv"), 10)
    with open(day + ".json") as f:
        meta = json.load(f)
    owned = set()
    for ch in meta["channels"][:2]:
        lo, hi = ch["locates"]
        owned |= set(range(lo, hi + 1))
    want = [l for l in (tmp_path / "full.csv").read_text().splitlines()[1:] if int(l.split(",")[0]) in owned]
    got = (tmp_path / "cfg.csv").read_text().splitlines()[1:]
    assert got == want and len(got) > 50
    if NCPU > 1:
        assert st["lanes"] == 2 and all(p["messages"] for p in r.lane_stats())


def test_cli_config(day, tmp_path):
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "feedhandler",
            "replay",
            "-q",
            day + ".pcap",
            "--config",
            write(tmp_path, TWO),
            "--mode",
            "decode",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    assert "itch-2" in p.stderr and "re-request server 127.0.0.1:26500" in p.stderr and "unconfigured_group" in p.stdout


BAD = {
    "no_channels": ("x = 1\n", "unknown top-level"),
    "empty": ("", r"no \[\[channel\]\]"),
    "not_toml": ("[[channel]\nname=", "not valid TOML"),
    "no_line_a": ('[[channel]]\nname="a"\n', "line_a is required"),
    "bad_ip": ('[[channel]]\nline_a="233.54.12.300:1"\n', "not an IPv4 address"),
    "not_multicast": ('[[channel]]\nline_a="10.0.0.1:26477"\n', "not a multicast group"),
    "bad_port": ('[[channel]]\nline_a="233.54.12.1:70000"\n', "out of range"),
    "no_port": ('[[channel]]\nline_a="233.54.12.1"\n', "IPv4:PORT"),
    "unknown_key": ('[[channel]]\nline_a="233.54.12.1:1"\nspeed=3\n', "unknown key"),
    "dup_name": (
        '[[channel]]\nname="a"\nline_a="233.54.12.1:1"\n[[channel]]\nname="a"\nline_a="233.54.12.2:1"\n',
        "duplicate channel name",
    ),
    "dup_line": ('[[channel]]\nline_a="233.54.12.1:1"\n[[channel]]\nline_a="233.54.12.1:1"\n', "already channel"),
    "core_missing": ('[[channel]]\nline_a="233.54.12.1:1"\ncore=%d\n' % (NCPU + 3), "does not exist"),
    "core_type": ('[[channel]]\nline_a="233.54.12.1:1"\ncore="0"\n', "core must be an integer"),
    "bad_rerequest": ('[[channel]]\nline_a="233.54.12.1:1"\nrerequest="localhost"\n', "rerequest"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_configs(tmp_path, case):
    text, needle = BAD[case]
    with pytest.raises(ConfigError, match=needle):
        load(write(tmp_path, text))
    p = subprocess.run(
        [sys.executable, "-m", "feedhandler", "replay", "x.pcap", "--config", write(tmp_path, text, "cli.toml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 2 and "Traceback" not in p.stderr and p.stderr.strip()


def test_missing_config_and_core_outside_cores(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load(str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="not in --cores"):
        load(write(tmp_path, '[[channel]]\nline_a="233.54.12.1:1"\ncore=0\n'), cores=[5])


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--max-orders", "1000000000"], "the books"),
        (["--ring-events", str(1 << 30)], "shared-memory segment"),
        (["--gap-buffer", "100000000"], "gap buffer"),
    ],
)
def test_capacities_that_do_not_fit_in_memory(args, needle):
    """A capacity too large for this machine is a clear error at start-up,
    not an OOM kill or minutes of paging while it is faulted in."""
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = subprocess.run(
        [sys.executable, "-m", "feedhandler", "replay", "-q", os.path.join(root, "pcaps", "sample.pcap")] + args,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert needle in p.stderr and "GiB" in p.stderr and "reduce the capacities" in p.stderr
