#!/usr/bin/env python3
"""Regenerate the committed fixtures in pcaps/ and their expected counts.

    python scripts/make_fixtures.py

Each fixture is made by `feedhandler gen` with the arguments recorded in
pcaps/expected.json; the expected per-type counts are the generator's own
accounting (PREFIX.json), which tests/test_fixtures.py checks the C decoder
against.  Run it (and commit the result) whenever the generator changes.
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
}


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
            expected[name] = entry
    with open(os.path.join(PCAPS, "expected.json"), "w") as f:
        json.dump(expected, f, indent=2, sort_keys=True)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(PCAPS, p)) for p in os.listdir(PCAPS))
    print("pcaps/: %.2f MB in all" % (total / 1e6))


def _sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    return h.hexdigest()


if __name__ == "__main__":
    main()
