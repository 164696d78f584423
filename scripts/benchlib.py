"""What the benchmark scripts share: how to call the CLI, how to get its
counters back, generated days cached on disk and warmed into the page cache.
Imported by the scripts beside it (`python scripts/bench_X.py` puts this folder
on sys.path); never by the package."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from typing import List, Sequence


def fh() -> List[str]:
    """The feedhandler command of this interpreter's environment."""
    here = os.path.join(os.path.dirname(os.path.abspath(sys.executable)), "feedhandler")
    if os.path.exists(here):
        return [here]
    exe = shutil.which("feedhandler")
    return [exe] if exe else [sys.executable, "-m", "feedhandler"]


def stats_json(argv: Sequence[str], timeout: float = 900, quiet_stderr: bool = False) -> dict:
    """Run a `feedhandler replay|run` command line with --stats-json; its counters."""
    fd, out = tempfile.mkstemp(suffix=".json", prefix="fh-bench-")
    os.close(fd)
    try:
        subprocess.run(list(argv) + ["--stats-json", out], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL if quiet_stderr else None, timeout=timeout)
        with open(out) as f:
            return json.load(f)
    finally:
        os.unlink(out)


def day(prefix: str, gen_args: Sequence[str]) -> dict:
    """Generate PREFIX.{pcap,bin,json} with `feedhandler gen` unless already
    there (days are cached between runs); the day's summary."""
    if not os.path.exists(prefix + ".json"):
        print("generating %s.pcap ..." % prefix, file=sys.stderr)
        os.makedirs(os.path.dirname(prefix) or ".", exist_ok=True)
        subprocess.run(fh() + ["gen", "-q", "--out", prefix] + list(gen_args), check=True, stdout=subprocess.DEVNULL)
    with open(prefix + ".json") as f:
        return json.load(f)


def warm(path: str) -> None:
    """Read a file once, so the runs measure the pipeline, not the disk."""
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass
