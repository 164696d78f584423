"""Transmit stamps (the trailer `feedhandler send` appends after each IP
datagram) give the latency report its wire stages, and change nothing else: the
same books and counters with or without them, no wire stages without them, and
the report says which clock the receive times came from."""

import json
import os
import struct
import subprocess
import sys

import frames as F
from feedhandler.core import lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "pcaps", "sample.pcap")
#: The sample's packets that apply messages (test_dpdk's latency test counts the same).
APPLYING = 7079


def fh(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "feedhandler", *args], capture_output=True, text=True, timeout=timeout)


def stamped(tmp_path, magic=lib.FH_WIRE_STAMP_MAGIC, name="stamped.pcap"):
    """The sample with a 16-byte transmit stamp after every IP datagram (the
    IPv4 total length unchanged: parsers see it as Ethernet padding)."""
    out = []
    for i, (ts, fr) in enumerate(F.parse_pcap(open(SAMPLE, "rb").read())):
        ip_end = 14 + struct.unpack(">H", fr[16:18])[0]
        out.append((ts, fr[:ip_end] + struct.pack("<IIQ", magic, i, 12345 + i)))
    path = tmp_path / name
    path.write_bytes(F.pcap_bytes(out))
    return str(path)


def replay(path, tmp_path, tag, *extra):
    dump, stats, lat = (tmp_path / ("%s.%s" % (tag, x)) for x in ("csv", "json", "lat.json"))
    p = fh(
        "replay", "-q", path, "--dump-books", str(dump), "--stats-json", str(stats), "--latency-json", str(lat), *extra
    )
    assert p.returncode == 0, p.stderr
    st = json.loads(stats.read_text())
    for k in ("elapsed_s", "msgs_per_s", "memory", "inputs"):
        st.pop(k, None)
    return dump.read_text(), st, json.loads(lat.read_text())


def test_stamps_change_no_book_and_no_counter(tmp_path):
    plain = replay(SAMPLE, tmp_path, "plain")
    stamp = replay(stamped(tmp_path), tmp_path, "stamped")
    assert stamp[0] == plain[0]
    # Bytes received count whole frames: 16 more each; every other counter the same.
    assert stamp[1].pop("bytes") - plain[1].pop("bytes") == 16 * stamp[1]["packets"]
    assert stamp[1] == plain[1]
    # Without stamps the report has no wire stage; full speed has no receive clock.
    assert not {"wire_to_rx", "wire_to_published"} & set(plain[2]["stages"])
    assert plain[2]["rx_clock"] == "none"


def test_stamped_frames_give_wire_to_published(tmp_path):
    _, _, lat = replay(stamped(tmp_path), tmp_path, "stamped")
    s = lat["stages"]
    # Every stamped frame that applied messages; a full-speed replay has no
    # receive time, so no wire -> rx.
    assert s["wire_to_published"]["count"] == s["processing"]["count"] == APPLYING
    assert "wire_to_rx" not in s


def test_a_trailer_without_the_magic_is_not_a_stamp(tmp_path):
    _, _, lat = replay(stamped(tmp_path, magic=0x12345678, name="other.pcap"), tmp_path, "other")
    assert not {"wire_to_rx", "wire_to_published"} & set(lat["stages"])


def test_paced_replay_reports_the_capture_clock_and_wire_to_rx(tmp_path):
    # The sample spans about 17 hours of capture time: paced 200 000x faster (0.3 s).
    _, _, lat = replay(stamped(tmp_path), tmp_path, "paced", "--speed", "200000")
    assert lat["rx_clock"] == "capture"
    assert lat["stages"]["wire_to_rx"]["count"] == APPLYING
