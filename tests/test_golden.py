"""Books and counters do not change when the book's internals do.

The digests in tests/data/golden.json were recorded by the build before the
full-day-scale book rewrite (order window + per-side level arrays + prefetching
apply windows): for two committed days (a BinaryFILE day, and a two-channel A/B
capture with losses on both lines, so gaps and STALE flags too), with one and
two lanes, in publish and book mode, they fix

  - the --dump-books CSV (every level of every book, byte for byte),
  - every counter of --stats-json but the timings and the memory reserved,
  - every field of every shared-memory slot at the end, but the per-write
    sequence number and the two wall-clock stamps.

Publishing is conflated (a touched instrument is published once per packet, a
BinaryFILE once per window of records), so how many times a BinaryFILE
instrument was published (`book.publishes`, `book.events`) is not fixed; what
it was published as at the end is.

Re-record (only when a change is meant to change books or counters, and say
so in the commit):  python tests/test_golden.py --record
"""

import hashlib
import json
import os
import sys

import numpy as np
import pytest

from feedhandler import shm

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
GOLDEN = os.path.join(DATA, "golden.json")
INPUTS = ["golden_day.bin.gz", "golden_ab.pcap.gz"]
LANES = [[0], [0, 1]]
MODES = ["publish", "book"]
UNFIXED = {"elapsed_s", "msgs_per_s", "memory", "inputs"}
UNFIXED_SLOT = {"seq", "publish_ts", "rx_ts"}


def _cases():
    for name in INPUTS:
        for cores in LANES:
            for mode in MODES:
                yield name, cores, mode


def _key(name, cores, mode):
    return "%s cores=%s %s" % (name, ",".join(map(str, cores)), mode)


def digest(name, cores, mode, tmpdir):
    from feedhandler.replay import Replay

    if len(cores) > (os.cpu_count() or 1):
        pytest.skip("needs %d CPUs" % len(cores))
    r = Replay(mode=mode, cores=cores, silence_ms=120000)
    res = r.run_file(os.path.join(DATA, name), progress=False)
    assert res.ok, res.error
    r.finish()
    dump = os.path.join(tmpdir, "books.csv")
    r.dump_books(dump)
    with open(dump, "rb") as f:
        csv = f.read()
    stats = {k: v for k, v in r.stats().items() if k not in UNFIXED}
    if name.endswith(".bin.gz") and mode == "publish":
        stats["book"] = {k: v for k, v in stats["book"].items() if k not in ("publishes", "events")}
    out = {
        "dump_sha256": hashlib.sha256(csv).hexdigest(),
        "dump_rows": csv.count(b"\n") - 1,
        "stats": json.loads(json.dumps(stats)),
    }
    if mode == "publish":
        a = r.segment().copy_books()
        # Hashed at the segment's own widths (the reader widens prices and
        # quantities to int64; the values, and so the hash, are the layout's).
        layout = shm.slot_dtype(r.segment().depth)
        h = hashlib.sha256()
        for field in layout.names:
            if field not in UNFIXED_SLOT:
                h.update(field.encode())
                h.update(np.ascontiguousarray(a[field]).astype(layout.fields[field][0].base).tobytes())
        out["slots_sha256"] = h.hexdigest()
    return out


@pytest.mark.parametrize("name,cores,mode", list(_cases()), ids=[_key(*c) for c in _cases()])
def test_books_and_counters_as_recorded(name, cores, mode, tmp_path):
    with open(GOLDEN) as f:
        want = json.load(f)[_key(name, cores, mode)]
    got = digest(name, cores, mode, str(tmp_path))
    assert got["stats"] == want["stats"]
    assert got["dump_rows"] == want["dump_rows"]
    assert got["dump_sha256"] == want["dump_sha256"]
    assert got.get("slots_sha256") == want.get("slots_sha256")


def test_golden_days_are_not_trivial():
    """The recorded days exercise what the rewrite touched: live books, every
    order operation, gaps (STALE) on the A/B capture, and both lane counts."""
    with open(GOLDEN) as f:
        g = json.load(f)
    day = g[_key("golden_day.bin.gz", [0], "book")]
    ab = g[_key("golden_ab.pcap.gz", [0, 1], "publish")]
    assert day["dump_rows"] > 200 and ab["dump_rows"] > 50
    for k in ("adds", "deletes", "executes", "cancels", "replaces"):
        assert day["stats"]["book"][k] > 0
    assert day["stats"]["book"]["orders_peak"] > 500
    assert ab["stats"]["gaps"] > 0


if __name__ == "__main__":
    if sys.argv[1:] != ["--record"]:
        raise SystemExit(__doc__)
    import tempfile

    rec = {}
    with tempfile.TemporaryDirectory() as d:
        for c in _cases():
            rec[_key(*c)] = digest(*c, d)
            print(_key(*c), rec[_key(*c)]["dump_sha256"][:16])
    with open(GOLDEN, "w") as f:
        json.dump(rec, f, indent=1, sort_keys=True)
        f.write("\n")
