"""A progress bar on stderr for long C calls run in a worker thread.

The C call runs in a thread (CFFI releases the GIL); the calling thread polls a
(done, total) source every 100 ms and draws a bar once the work has taken more
than a second, and only when stderr is a terminal.  Ctrl-C in the calling
thread is passed to the worker through `on_interrupt`.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Callable, Optional, Tuple


def run_with_progress(
    work: Callable[[], object],
    poll: Callable[[], Tuple[int, int]],
    label: str,
    enabled: Optional[bool] = None,
    on_interrupt: Optional[Callable[[], None]] = None,
    unit: str = "B",
):
    """Run ``work()`` in a thread; return its result (or re-raise its exception)."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    box: dict = {}
    # Completion is an Event the worker sets, not Thread.join()/is_alive(): a
    # KeyboardInterrupt landing inside Thread.join() can leave the Thread marked
    # stopped while it still runs (CPython's bpo-45274 handling), and the caller
    # would then free the pipeline under the worker's feet.
    done = threading.Event()

    def target():
        try:
            box["result"] = work()
        except BaseException as exc:  # handed to the caller below
            box["exc"] = exc
        finally:
            done.set()

    t = threading.Thread(target=target, name="feedhandler-" + label, daemon=True)
    start = time.monotonic()
    drawn = False
    interrupted = False
    t.start()
    try:
        while True:
            try:
                finished = done.wait(0.1)
            except KeyboardInterrupt:
                if on_interrupt is None or interrupted:
                    raise
                interrupted = True
                on_interrupt()
                continue
            if finished:
                break
            if enabled and time.monotonic() - start > 1.0:
                done_bytes, total = poll()
                _draw(label, done_bytes, total, time.monotonic() - start, unit)
                drawn = True
    finally:
        # Whatever ends this loop early (a second Ctrl-C, an interrupt landing
        # between two statements), the work is told to stop and waited for:
        # nothing may go on touching the pipeline behind the caller's back.
        if not done.is_set() and on_interrupt is not None:
            on_interrupt()
            wait_uninterrupted(done, on_interrupt)
    if drawn:
        done_bytes, total = poll()
        _draw(label, total or done_bytes, total, time.monotonic() - start, unit)
        sys.stderr.write("\n")
        sys.stderr.flush()
    if "exc" in box:
        raise box["exc"]
    if interrupted:
        raise KeyboardInterrupt
    return box.get("result")


def wait_uninterrupted(event: threading.Event, on_interrupt: Optional[Callable[[], None]] = None) -> None:
    """Wait for ``event``; a Ctrl-C meanwhile calls ``on_interrupt`` again and keeps waiting."""
    while True:
        try:
            if event.wait(0.1):
                return
        except KeyboardInterrupt:
            if on_interrupt is not None:
                on_interrupt()


def _draw(label: str, done: int, total: int, elapsed: float, unit: str) -> None:
    width = 30
    frac = min(1.0, done / total) if total else 0.0
    bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
    rate = done / elapsed if elapsed > 0 else 0.0
    eta = (total - done) / rate if rate > 0 and total else 0.0
    scale = 1e6 if unit == "B" else 1e6
    sys.stderr.write(
        "\r%-8s [%s] %5.1f%%  %8.1f M%s/s  eta %5.1fs " % (label, bar, 100 * frac, rate / scale, unit, eta)
    )
    sys.stderr.flush()
