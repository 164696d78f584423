#!/usr/bin/env python3
"""Regenerate the committed fixtures in pcaps/ and their expected counts.

    python scripts/make_fixtures.py

Each fixture is made by `feedhandler gen` with the arguments recorded in
pcaps/expected.json; the expected per-type counts are the generator's own
accounting (PREFIX.json), which tests/test_fixtures.py checks the C decoder
against.  For the IEX fixtures it also records the replay's counters and a
digest of its books, once tests/iexref.py agrees with them.  Run it (and commit
the result) whenever the generator changes.
"""

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PCAPS = os.path.join(ROOT, "pcaps")

FIXTURES = {
    # name: gen arguments
    "sample": [
        "--messages",
        "40000",
        "--symbols",
        "24",
        "--channels",
        "2",
        "--seed",
        "2026",
        "--heartbeat-ms",
        "60000",
    ],
    "sample_ab": [
        "--messages",
        "12000",
        "--symbols",
        "8",
        "--channels",
        "1",
        "--seed",
        "15",
        "--lines",
        "ab",
        "--loss-a",
        "0.05",
        "--loss-b",
        "0.05",
        "--heartbeat-ms",
        "60000",
    ],
    # Cboe PITCH: 4 units, A/B lines, loss on line A only (so every message arrives once).
    "sample_pitch": [
        "--protocol",
        "pitch",
        "--messages",
        "10000",
        "--symbols",
        "24",
        "--units",
        "4",
        "--seed",
        "2027",
        "--lines",
        "ab",
        "--loss-a",
        "0.05",
        "--heartbeat-ms",
        "60000",
    ],
    # IEX DEEP+ over IEX-TP: 2 sessions, A/B lines with loss on each; the seed is
    # one where line B covers every message lost on A and the reverse (0 gaps).
    "sample_iex_deepplus": [
        "--protocol",
        "iex-deepplus",
        "--messages",
        "2000",
        "--symbols",
        "12",
        "--seed",
        "2027",
        "--sessions",
        "2",
        "--lines",
        "ab",
        "--loss-a",
        "0.03",
        "--loss-b",
        "0.03",
        "--heartbeat-ms",
        "600000",
    ],
    # IEX DEEP: A/B lines, events of several Price Level Updates, and a few
    # messages lost on both lines (real gaps).
    "sample_iex_deep": [
        "--protocol",
        "iex-deep",
        "--messages",
        "2000",
        "--symbols",
        "12",
        "--seed",
        "2030",
        "--lines",
        "ab",
        "--loss-a",
        "0.04",
        "--loss-b",
        "0.04",
        "--heartbeat-ms",
        "600000",
    ],
    # IEX TOPS: line A only, no loss.
    "sample_iex_tops": [
        "--protocol",
        "iex-tops",
        "--messages",
        "3000",
        "--symbols",
        "12",
        "--seed",
        "2029",
        "--heartbeat-ms",
        "600000",
    ],
}

# Fixtures also committed gzip-compressed as NAME.pcap.gz (the real IEX HIST files
# are .pcap.gz); mtime 0 so the bytes do not depend on when they were made.
PCAP_GZ = {"sample_iex_deepplus"}

# Depth of the books digest recorded for the IEX fixtures (--dump-books --depth).
BOOKS_DEPTH = 10


def main():
    expected = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, gen_args in FIXTURES.items():
            prefix = os.path.join(tmp, name)
            subprocess.run(
                [sys.executable, "-m", "feedhandler", "gen", "-q", "--out", prefix] + gen_args,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            with open(prefix + ".json") as f:
                day = json.load(f)
            shutil.copy(prefix + ".pcap", os.path.join(PCAPS, name + ".pcap"))
            entry = {
                "gen_args": gen_args,
                "messages": day["messages"],
                "by_type": day["by_type"],
                "packets_line_a": day["packets"]["a"],
                "packets_line_b": day["packets"]["b"],
                "heartbeats": day["heartbeats"],
                "end_of_session": day["end_of_session"],
                "pcap_sha256": _sha(prefix + ".pcap"),
            }
            if name == "sample":
                with open(prefix + ".bin", "rb") as f, open(os.path.join(PCAPS, name + ".bin.gz"), "wb") as out:
                    out.write(gzip.compress(f.read(), compresslevel=9, mtime=0))
                entry["bin_sha256"] = _sha(prefix + ".bin")
            if day.get("protocol", "").startswith("iex"):
                entry.update(_iex_entry(name, prefix + ".pcap", day))
            if name in PCAP_GZ:
                with open(prefix + ".pcap", "rb") as f, open(os.path.join(PCAPS, name + ".pcap.gz"), "wb") as out:
                    out.write(gzip.compress(f.read(), compresslevel=9, mtime=0))
            expected[name] = entry
    with open(os.path.join(PCAPS, "expected.json"), "w") as f:
        json.dump(expected, f, indent=2, sort_keys=True)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(PCAPS, p)) for p in os.listdir(PCAPS))
    print("pcaps/: %.2f MB in all" % (total / 1e6))


def _iex_entry(name, pcap, day):
    """What an IEX fixture must replay to, beyond the generator's accounting:
    the C replay's counters and a digest of its books, both checked here
    against the independent Python reference (tests/iexref.py) so that a
    disagreement stops the regeneration instead of being recorded."""
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from feedhandler.replay import Replay
    from iexref import IexRef

    r = Replay(max_orders=1 << 16, max_levels=1 << 18, ring_events=1 << 16)
    res = r.run_file(pcap, progress=False)
    if not res.ok:
        raise SystemExit("%s: replay failed: %s" % (name, res.error))
    r.finish()
    st = r.stats()
    with tempfile.TemporaryDirectory() as tmp:
        r.dump_books(os.path.join(tmp, "books.csv"), BOOKS_DEPTH)
        with open(os.path.join(tmp, "books.csv")) as f:
            books = f.read()
    with open(pcap, "rb") as f:
        ref = IexRef().feed_pcap(f.read())
    rs = ref.stats()
    for key in ("messages", "by_type", "gaps", "duplicates", "heartbeats", "iex_packets", "iex_clears"):
        if st[key] != rs[key]:
            raise SystemExit("%s: replay and tests/iexref.py disagree on %s: %r != %r" % (name, key, st[key], rs[key]))
    if books != ref.dump_csv(BOOKS_DEPTH):
        raise SystemExit("%s: replay's --dump-books differs from tests/iexref.py's books" % name)
    keys = ("packets", "iex_packets", "messages", "by_type", "gaps", "duplicates", "heartbeats", "session_changes")
    replay = {k: st[k] for k in keys + ("streams", "iex_clears", "checksum", "errors")}
    return {
        "packets_lost": day["packets_lost"],
        "iex": {k: day["iex"][k] for k in ("sessions", "multi_level_events", "straddling_events", "sweeps")},
        "replay": replay,
        "books_depth": BOOKS_DEPTH,
        "books_rows": books.count("\n") - 1,
        "books_sha256": hashlib.sha256(books.encode()).hexdigest(),
    }


def _sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    return h.hexdigest()


if __name__ == "__main__":
    main()
