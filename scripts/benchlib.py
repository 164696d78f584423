"""What the benchmark scripts share, so that each says only what it measures:

  the command line   arguments(): the parser with the flags every script spells
                     the same way (--messages --symbols --seed --runs --cpu --dir
                     --json), count() for sizes written 40e6 or 10_000_000
  the handler        fh(*args): this environment's `feedhandler` command line;
                     Build: another build (a tree or an executable) to run beside
                     it; run_child(): one child process, pinned(), with its wall
                     time and peak RSS, killed at a timeout or on Ctrl-C;
                     replay() / stats_json(): a run and its --stats-json counters
  the days           day(): generated once with `feedhandler gen` and cached;
                     warm(): read into the page cache before measuring
  the machine        busy_cores() / wait_quiet(): how busy it was; MemSampler: a
                     child's peak RssAnon + RssShmem; machine() and git_commit():
                     what a figure was measured on
  the results        median(), mib(), write_json(), run_script() (a sibling
                     script's exit status and JSON)

Imported by the scripts beside it (`python scripts/bench_X.py` puts this folder
on sys.path; bench_book.py, which also runs under `python -P`, adds it itself);
never by the package.  Nothing here imports feedhandler at import time: the
scripts' workers import this module with another build's feedhandler on
PYTHONPATH."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Callable, List, Optional, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


class BenchError(Exception):
    """A measured run failed (exit status, timeout, wrong message count): the
    scripts report it beside the other contenders, or stop with it."""


# ----------------------------------------------------------------- command line


def count(text: str) -> int:
    """A size on the command line: 40e6, 10_000_000 or 3000000 (a positive whole number)."""
    try:
        v = float(str(text).replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError("not a number: %r" % text)
    if v < 1 or v != int(v):
        raise argparse.ArgumentTypeError("not a positive whole number: %r" % text)
    return int(v)


def arguments(
    doc: str,
    *,
    epilog: bool = False,
    messages=None,
    symbols=None,
    seed=None,
    runs=None,
    cpu=None,
    dir=None,
    json="write the results here",
) -> argparse.ArgumentParser:
    """The parser of a benchmark script, its docstring as the description (with
    epilog=True: the first paragraph as description, the whole of it after the
    options), with the common flags it names.  Each is a default, or
    (default, help); left out (None), the flag is not added.  `dir` is a
    folder name under the temp folder (or an absolute path): the cache of
    generated days."""
    if epilog:
        ap = argparse.ArgumentParser(
            description=doc.split("\n\n")[0], epilog=doc, formatter_class=argparse.RawDescriptionHelpFormatter
        )
    else:
        ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)

    def add(flag, spec, kind, what, metavar=None):
        if spec is None:
            return
        default, text = spec if isinstance(spec, tuple) else (spec, None)
        ap.add_argument(
            flag,
            type=kind,
            default=default,
            metavar=metavar,
            help=(text or what) + ("" if text else " (default %s)" % default),
        )

    add("--messages", messages, count, "messages in the generated day", "N")
    add("--symbols", symbols, int, "instruments in the generated day", "N")
    add("--seed", seed, int, "the generator's seed", "N")
    add("--runs", runs, int, "runs per contender; medians", "N")
    add("--cpu", cpu, int, "core to pin every measured process to (-1: no pinning)", "CPU")
    if dir is not None:
        default, text = dir if isinstance(dir, tuple) else (dir, None)
        ap.add_argument(
            "--dir",
            metavar="DIR",
            default=os.path.join(tempfile.gettempdir(), default),
            help=text or "cache for generated days (default %(default)s)",
        )
    if json:
        ap.add_argument("--json", metavar="OUT", help=json)
    return ap


# ----------------------------------------------------------------- the handler


def fh(*args) -> List[str]:
    """The feedhandler command line of this interpreter's environment, args appended."""
    here = os.path.join(os.path.dirname(os.path.abspath(sys.executable)), "feedhandler")
    if os.path.exists(here):
        cmd = [here]
    else:
        exe = shutil.which("feedhandler")
        cmd = [exe] if exe else [sys.executable, "-m", "feedhandler"]
    return cmd + [str(a) for a in args]


class Build:
    """A build of feedhandler to run, from its spec:

      None   this interpreter's feedhandler (`python -P -m feedhandler`, what it
             imports with the environment as it is)
      DIR    a tree whose feedhandler/ holds its own compiled core (a checkout,
             `git worktree add DIR REV` and its build, or a copy):
             `python -P -m feedhandler` with DIR first on PYTHONPATH
      EXE    a feedhandler executable (another checkout's .venv/bin/feedhandler,
             or a wrapper script), run as it is

    Every command runs from the temp folder (`python -m` would put the working
    directory first on sys.path)."""

    def __init__(self, spec: Optional[str] = None, label: Optional[str] = None):
        self.spec = os.path.abspath(spec) if spec else None
        if self.spec and not os.path.exists(self.spec):
            raise SystemExit("%s: no such build (a tree with feedhandler/ or a feedhandler executable)" % spec)
        self.tree = bool(self.spec) and os.path.isdir(self.spec)
        if self.tree and not os.path.isdir(os.path.join(self.spec, "feedhandler")):
            raise SystemExit("%s: has no feedhandler/ package" % spec)
        if self.spec and not self.tree and not os.access(self.spec, os.X_OK):
            raise SystemExit("%s: not an executable file" % spec)
        self.label = label or (os.path.basename(self.spec.rstrip("/")) if self.spec else "this build")
        self.cwd = tempfile.gettempdir()

    @property
    def python(self) -> bool:
        """Whether it runs as `python -P -m feedhandler` (this interpreter or a tree)."""
        return not self.spec or self.tree

    def argv(self, *args) -> List[str]:
        head = [sys.executable, "-P", "-m", "feedhandler"] if self.python else [self.spec]
        return head + [str(a) for a in args]

    def env(self) -> dict:
        env = dict(os.environ)
        if self.tree:
            env["PYTHONPATH"] = self.spec + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        return env

    def __repr__(self):
        return "Build(%r)" % (self.spec,)


def pinned(argv: Sequence[str], cpu: Optional[int]) -> List[str]:
    """argv run on core `cpu` (taskset -c), or as it is for None, -1 or without taskset."""
    if cpu is not None and cpu >= 0 and shutil.which("taskset"):
        return ["taskset", "-c", str(cpu)] + list(argv)
    return list(argv)


def tmpfile(suffix: str = ".json", prefix: str = "fh-bench-") -> str:
    """A new empty temporary file's path (the caller removes it)."""
    fd, path = tempfile.mkstemp(suffix=suffix, prefix=prefix)
    os.close(fd)
    return path


def run_child(
    argv: Sequence[str],
    timeout: float,
    capture: bool = True,
    on_start: Optional[Callable[[int], Callable[[], None]]] = None,
    env: Optional[dict] = None,
    cwd: Optional[str] = None,
):
    """Run argv; return (rc, stdout, stderr, wall_s, maxrss_bytes).  Never hangs:
    the child's process group is killed at the timeout (BenchError) and on any
    exception here (Ctrl-C).  Peak RSS comes from wait4 on that very child
    (taskset execs into it, so it is the measured program).  on_start(pid), when
    given, is called right after the child starts and returns a function called
    (no arguments) once it has exited, before it is reaped (so /proc/PID still
    names it): MemSampler is one."""
    t0 = time.perf_counter()
    p = subprocess.Popen(
        list(argv),
        stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env=env,
        cwd=cwd,
    )
    on_exit = None
    # Drain pipes on threads so a chatty child cannot block on a full pipe.
    bufs = {"out": b"", "err": b""}

    def drain(stream, key):
        if stream is not None:
            bufs[key] = stream.read()

    threads = [
        threading.Thread(target=drain, args=(p.stdout, "out"), daemon=True),
        threading.Thread(target=drain, args=(p.stderr, "err"), daemon=True),
    ]
    for t in threads:
        t.start()
    try:
        on_exit = on_start(p.pid) if on_start else None
        deadline = t0 + timeout
        while True:
            if on_exit:
                # Wait for the exit without reaping, so the sampler can stop while
                # /proc/PID is still this child (not a recycled pid).
                info = os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
                if info is not None:
                    on_exit()
                    on_exit = None
            pid, status, rusage = os.wait4(p.pid, os.WNOHANG)
            if pid == p.pid:
                if on_exit:
                    # It exited between the two waits (reaped before the sampler saw
                    # it go): stop the sampler now all the same.
                    on_exit()
                    on_exit = None
                break
            if time.perf_counter() > deadline:
                raise BenchError("timed out after %ds: %s" % (timeout, " ".join(argv)))
            time.sleep(0.002)
    except BaseException:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except OSError:
            pass
        if on_exit:
            on_exit()
        try:
            os.wait4(p.pid, 0)
        except ChildProcessError:
            pass
        p.returncode = -9
        for t in threads:
            t.join(5)
        raise
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    for t in threads:
        t.join(10)
    return (
        p.returncode,
        bufs["out"].decode(errors="replace"),
        bufs["err"].decode(errors="replace"),
        wall,
        rusage.ru_maxrss * 1024,
    )


def stats_json_run(
    argv: Sequence[str],
    timeout: float = 900,
    quiet_stderr: bool = False,
    cpu: Optional[int] = None,
    on_start=None,
    env: Optional[dict] = None,
    cwd: Optional[str] = None,
):
    """Run a `feedhandler replay|run` command line with --stats-json, pinned to
    `cpu`; (its counters, wall s, peak RSS bytes).  BenchError when it fails;
    its stderr is passed on unless quiet_stderr."""
    out = tmpfile()
    argv = pinned(list(argv) + ["--stats-json", out], cpu)
    try:
        rc, _, err, wall, rss = run_child(argv, timeout, on_start=on_start, env=env, cwd=cwd)
        if rc != 0:
            raise BenchError("%s exited %d: %s" % (" ".join(argv), rc, err.strip()[-2000:]))
        if err.strip() and not quiet_stderr:
            sys.stderr.write(err)
        with open(out) as f:
            return json.load(f), wall, rss
    finally:
        os.unlink(out)


def stats_json(argv: Sequence[str], timeout: float = 900, quiet_stderr: bool = False, **kw) -> dict:
    """stats_json_run's counters alone."""
    return stats_json_run(argv, timeout, quiet_stderr, **kw)[0]


def replay(path: str, *args, build: Optional[Build] = None, **kw) -> dict:
    """`feedhandler replay -q PATH ARGS...` of this environment (or of `build`);
    its --stats-json counters.  Keywords as stats_json_run's (cpu, timeout, ...).
    A build runs from the temp folder: a relative PATH is taken from here."""
    if build is not None:
        argv = build.argv("replay", "-q", os.path.abspath(path) if path != "-" else path, *args)
        kw.setdefault("env", build.env())
        kw.setdefault("cwd", build.cwd)
    else:
        argv = fh("replay", "-q", path, *args)
    return stats_json(argv, **kw)


# ----------------------------------------------------------------- days


def day(prefix: str, gen_args: Sequence[str], need: Sequence[str] = ()) -> dict:
    """Generate PREFIX.{pcap,bin,json} with `feedhandler gen` unless already
    there (days are cached between runs); the day's summary.  `need`: the
    files (".bin", ".pcap") a run uses; a cached day missing one (half written,
    or cleaned up) is made again."""
    if os.path.exists(prefix + ".json") and any(not os.path.exists(prefix + ext) for ext in need):
        os.unlink(prefix + ".json")
    if not os.path.exists(prefix + ".json"):
        print("generating %s.pcap ..." % prefix, file=sys.stderr)
        os.makedirs(os.path.dirname(prefix) or ".", exist_ok=True)
        subprocess.run(fh("gen", "-q", "--out", prefix, *gen_args), check=True, stdout=subprocess.DEVNULL)
    with open(prefix + ".json") as f:
        return json.load(f)


def warm(*paths: str) -> None:
    """Read files once, so the runs measure the pipeline, not the disk."""
    for path in paths:
        with open(path, "rb") as f:
            while f.read(1 << 24):
                pass


# ----------------------------------------------------------------- the machine


def busy_cores(interval: float = 0.5) -> Optional[float]:
    """Cores' worth of CPU time other processes used over `interval` (from /proc/stat):
    the benchmark shares the machine, so say how quiet it was."""

    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        idle = v[3] + (v[4] if len(v) > 4 else 0)
        return sum(v), idle

    try:
        t0, i0 = sample()
        time.sleep(interval)
        t1, i1 = sample()
    except (OSError, ValueError):
        return None
    total = t1 - t0
    return (total - (i1 - i0)) / total * os.cpu_count() if total > 0 else None


def wait_quiet(max_wait: float, limit: float = 0.3) -> Optional[float]:
    """Wait (up to max_wait s) until under `limit` cores are busy; returns the last reading."""
    deadline = time.monotonic() + max_wait
    b = busy_cores()
    while b is not None and b > limit and time.monotonic() < deadline:
        b = busy_cores(1.0)
    return b


def _proc_stat_cpu():
    """(all ticks, busy ticks, number of CPUs) from /proc/stat; steal counts as busy."""
    with open("/proc/stat") as f:
        lines = f.read().splitlines()
    v = [int(x) for x in lines[0].split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    # guest time is already inside user/nice
    total = sum(v[:8])
    ncpu = sum(1 for ln in lines[1:] if ln.startswith("cpu"))
    return total, total - idle, max(1, ncpu)


def _child_ticks(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return int(rest[11]) + int(rest[12])  # utime + stime
    except (OSError, IndexError, ValueError):
        return None


class MemSampler:
    """on_start hook for run_child: samples the child's /proc/PID/status every
    `interval` s on a thread; peak of RssAnon + RssShmem (what the process holds
    itself: a mapped input file is RssFile, not counted) and the parts at that
    peak, and how many cores other processes kept busy while it ran."""

    def __init__(self, interval=0.02):
        self.interval = interval
        self.peak = None

    def __call__(self, pid):
        self.pid = pid
        self.peak = None
        self.at_peak = {}
        self.samples = 0
        self.ticks = 0
        self.other_cores = None  # set by stop()
        self._stop = threading.Event()
        self._cpu0 = _proc_stat_cpu()
        self._t = threading.Thread(target=self._loop, daemon=True)
        self._t.start()
        return self.stop

    def _sample(self):
        try:
            with open("/proc/%d/status" % self.pid) as f:
                text = f.read()
        except OSError:
            return
        kb = {}
        for line in text.splitlines():
            if line.startswith(("RssAnon:", "RssShmem:", "RssFile:")):
                k, v = line.split(":", 1)
                kb[k] = int(v.split()[0]) * 1024
        if "RssAnon" not in kb:  # exiting (zombie): no memory lines
            return
        self.samples += 1
        v = kb["RssAnon"] + kb.get("RssShmem", 0)
        if self.peak is None or v > self.peak:
            self.peak = v
            self.at_peak = {"anon": kb["RssAnon"], "shmem": kb.get("RssShmem", 0), "file": kb.get("RssFile", 0)}
        t = _child_ticks(self.pid)
        if t is not None:
            self.ticks = t

    def _loop(self):
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def stop(self):
        self._stop.set()
        self._t.join()
        t = _child_ticks(self.pid)  # the zombie's final CPU time
        if t is not None:
            self.ticks = t
        total0, busy0, _ = self._cpu0
        total1, busy1, ncpu = _proc_stat_cpu()
        wall = (total1 - total0) / ncpu
        self.other_cores = max(0.0, (busy1 - busy0 - self.ticks) / wall) if wall > 0 else None

    def result(self):
        return {
            "peak_mem_bytes": self.peak,
            "peak_mem_parts": self.at_peak,
            "mem_samples": self.samples,
            "other_busy_cores": self.other_cores,
        }


def git_commit(root: str = ROOT) -> str:
    """`git rev-parse --short HEAD` of the checkout, "+dirty" when a tracked file
    differs from it; "unknown" outside a git checkout."""
    try:
        head = subprocess.run(
            ["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=30
        )
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            ["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def machine() -> dict:
    """CPU model, cores, whether a hypervisor is underneath, the platform and
    Python, with one line for reports."""
    import platform

    from feedhandler.latency import cpu_model

    vm = False
    try:
        with open("/proc/cpuinfo") as f:
            vm = any(line.startswith("flags") and " hypervisor" in line for line in f)
    except OSError:
        pass
    cores = os.cpu_count() or 1
    return {
        "cpu": cpu_model(),
        "cores": cores,
        "vm": vm,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "text": "%s, %d cores%s" % (cpu_model(), cores, ", VM" if vm else ""),
    }


# ----------------------------------------------------------------- results


def median(xs, key: Optional[str] = None):
    """The median of xs (of x[key] for each, with key); None for none."""
    xs = [x[key] for x in xs] if key is not None else list(xs)
    return statistics.median(xs) if xs else None


def mib(x) -> str:
    return "%.1f MiB" % (x / 2**20) if x is not None else "-"


def write_json(path: Optional[str], doc, indent: int = 2) -> None:
    """Write doc to path (nothing without one); anything json cannot write as str."""
    if path:
        with open(path, "w") as f:
            json.dump(doc, f, indent=indent, default=str)


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
