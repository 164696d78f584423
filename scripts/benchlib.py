"""What the benchmark scripts share: how to call the CLI, how to get its
counters back, generated days cached on disk and warmed into the page cache,
how to run a sibling script and read its JSON, and the commit and machine a
figure was measured on.  Imported by the scripts beside it (`python scripts/bench_X.py` puts this folder
on sys.path); never by the package."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from typing import List, Optional, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


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


def run_script(script: str, args: Sequence[str], out: str, stdout=None, timeout: Optional[float] = None):
    """Run scripts/SCRIPT with this interpreter, `--json OUT` appended; (exit
    status, the JSON it wrote or None).  A script may write its JSON and still
    exit non-zero (a target missed): both are returned so the caller decides."""
    cmd = [sys.executable, os.path.join(HERE, script)] + [str(a) for a in args] + ["--json", out]
    try:
        rc = subprocess.run(cmd, stdout=stdout, timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        rc = 124
    doc = None
    if os.path.exists(out):
        try:
            with open(out) as f:
                doc = json.load(f)
        except ValueError:
            doc = None
    return rc, doc


def git_commit(root: str = ROOT) -> str:
    """`git rev-parse --short HEAD` of the checkout, "+dirty" when a tracked file
    differs from it; "unknown" outside a git checkout."""
    try:
        head = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=30)
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def machine() -> dict:
    """CPU model, cores and whether a hypervisor is underneath, with one line for reports."""
    from feedhandler.latency import cpu_model
    vm = False
    try:
        with open("/proc/cpuinfo") as f:
            vm = any(line.startswith("flags") and " hypervisor" in line for line in f)
    except OSError:
        pass
    cores = os.cpu_count() or 1
    return {"cpu": cpu_model(), "cores": cores, "vm": vm,
            "text": "%s, %d cores%s" % (cpu_model(), cores, ", VM" if vm else "")}
