"""Deterministic mutation test: bit flips, truncations, duplications,
reordering and garbage over real captures (the fixtures: pcap, A/B pcap,
pcapng, BinaryFILE), each mutant replayed through the whole pipeline (books
and publishing).  Every mutant must complete -- ok, or stopped with a clear
error where the file structure itself is broken -- with the packet ledger
balanced and the counters consistent.  A crash here (or an ASan/UBSan report
in the sanitizer pass of scripts/test.sh) is a bug.

Seeds are fixed: the same mutants every run."""

import gzip
import os
import random

import pytest

import frames as F
from feedhandler.core import ledger
from feedhandler.replay import Replay

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = dict(max_orders=1 << 14, max_levels=1 << 16, max_instruments=64, ring_events=1 << 12, gap_buffer=64)
MUTANTS = 12  # per (input, kind)


def _read(name):
    with open(os.path.join(ROOT, "pcaps", name), "rb") as f:
        data = f.read()
    return gzip.decompress(data) if name.endswith(".gz") else data


@pytest.fixture(scope="module")
def inputs():
    pcap = _read("sample.pcap")
    recs = F.parse_pcap(pcap)[:3000]
    return {
        "pcap": F.pcap_bytes(recs),
        "ab": F.pcap_bytes(F.parse_pcap(_read("sample_ab.pcap"))[:3000]),
        "pcapng": F.pcapng_bytes(recs[:1500]),
        "bin": _records_prefix(_read("sample.bin.gz"), 200_000),
    }


def _records_prefix(data, limit):
    """The BinaryFILE's whole records within its first `limit` bytes."""
    off = 0
    while off + 2 <= len(data):
        n = 2 + int.from_bytes(data[off : off + 2], "big")
        if off + n > limit:
            break
        off += n
    return data[:off]


def replay(data, **kw):
    r = Replay(**{**SMALL, **kw})
    res = r.run_buffer(data)
    r.finish()
    st = r.stats()
    lg = ledger(st)
    assert lg["unaccounted"] == 0 and lg["pkt_held"] == 0, lg
    assert st["messages"] == sum(st["by_type"].values())
    b = st["book"]
    assert b["orders_live"] <= b["orders_peak"]
    return res, st


def flip_bits(rnd, data):
    b = bytearray(data)
    for _ in range(rnd.randint(1, 64)):
        i = rnd.randrange(len(b))
        b[i] ^= 1 << rnd.randrange(8)
    return bytes(b)


def truncate(rnd, data):
    return data[: rnd.randrange(len(data))]


def duplicate_ranges(rnd, data):
    b = data
    for _ in range(rnd.randint(1, 8)):
        i = rnd.randrange(len(b))
        n = rnd.randint(1, 4096)
        j = rnd.randrange(len(b))
        b = b[:j] + b[i : i + n] + b[j:]
    return b


def frame_level(rnd, data, how):
    """Mutate frames inside an intact pcap: flips, cuts, copies, swaps, garbage."""
    recs = F.parse_pcap(data)
    out = []
    for t, fr in recs:
        x = rnd.random()
        if how == "frame_flips" and x < 0.05:
            fr = flip_bits(rnd, fr)
        elif how == "frame_cuts" and x < 0.05:
            fr = fr[: rnd.randrange(len(fr) + 1)]
        elif how == "frame_copies" and x < 0.05:
            out.append((t, fr))
        elif how == "garbage" and x < 0.02:
            out.append((t, bytes(rnd.randrange(256) for _ in range(rnd.randint(0, 200)))))
        out.append((t, fr))
    if how == "reorder":
        # Frames arrive out of order; the capture clock still runs forwards.
        times = [t for t, _ in out]
        for _ in range(40):
            i = rnd.randrange(len(out) - 8)
            seg = out[i : i + 8]
            rnd.shuffle(seg)
            out[i : i + 8] = seg
        out = [(t, fr) for t, (_, fr) in zip(times, out)]
    return F.pcap_bytes(out)


FILE_KINDS = {"flip": flip_bits, "truncate": truncate, "duplicate": duplicate_ranges}
FRAME_KINDS = ["frame_flips", "frame_cuts", "frame_copies", "garbage", "reorder"]


@pytest.mark.parametrize("name", ["pcap", "ab", "pcapng", "bin"])
@pytest.mark.parametrize("kind", sorted(FILE_KINDS))
def test_file_mutants_complete_with_counters(inputs, name, kind):
    rnd = random.Random("%s/%s" % (name, kind))
    base_res, base = replay(inputs[name])
    assert base_res.ok
    for _ in range(MUTANTS):
        res, st = replay(FILE_KINDS[kind](rnd, inputs[name]))
        if not res.ok:
            assert res.error  # a clear message, counters up to the damage
        if kind == "truncate" and res.ok and name != "bin":
            assert st["messages"] <= base["messages"]


@pytest.mark.parametrize("name", ["pcap", "ab"])
@pytest.mark.parametrize("how", FRAME_KINDS)
def test_frame_mutants_complete_with_counters(inputs, name, how):
    rnd = random.Random("%s/%s" % (name, how))
    # The fixture's quiet minutes are longer than the default gap window: give
    # a late copy all the time it needs, so sequencing alone decides.
    kw = dict(gap_window_us=600_000_000)
    _, base = replay(inputs[name], **kw)
    for _ in range(MUTANTS // 2):
        res, st = replay(frame_level(rnd, inputs[name], how), **kw)
        assert res.ok, res.error  # the file structure is intact: only frames are damaged
        if how in ("frame_copies", "reorder"):
            # Copies are duplicates and reordering is undone by sequencing
            # (held packets), so nothing is lost and the books match.
            assert st["messages"] + st["gaps"] == base["messages"] + base["gaps"]
            # Every hole has its own window: a reordered packet behind a young
            # hole is applied even when an older hole (lost on both lines of
            # the lossy A/B capture) is given up meanwhile.
            assert st["gaps"] == base["gaps"], (st["gaps"], base["gaps"])
            assert st["messages"] == base["messages"]
            assert st["checksum"] == base["checksum"]
        if how == "garbage":
            assert st["pkt_rejected"] > base["pkt_rejected"] or st["packets"] == base["packets"]
