"""A DPDK transmitter: `feedhandler send CAPTURE --dpdk "EAL ARGS"`.

The frames of a capture go out on a DPDK port at a controlled rate, for testing
a receiver (`feedhandler run`) with real packets: as captured (scaled by
``speed``), re-timed to an even message rate, with microbursts, loss on line A
or B and a lag on line B.  Everything is prepared here before the send: the
capture is loaded into memory once (:func:`load_capture`) and every frame's
due time worked out (:func:`build_schedule`); the send loop itself is C
(csrc/dpdk/tx_dpdk.c), busy-waiting on the TSC, with the GIL released.

The capture is read by :mod:`feedhandler.capture` (a loader of its own: the
C input layer hands frames only to the pipeline's parse).

    from feedhandler.send import Sender, load_capture, build_schedule
    cap = load_capture("day.pcap")
    plan = build_schedule(cap, rate=200_000)
    with Sender("-l 0 --no-huge --vdev=net_af_packet0,iface=veth0") as tx:
        stats = tx.send(cap, plan)
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import numpy as np

from .capture import _VLAN, NO_STAMP, Capture, load_capture
from .core import lib as _core
from .dpdk import backend
from .endpoints import ipv4_to_int
from .errors import ERR_LEN, CaptureError, DpdkError, c_error
from .progress import run_with_progress

__all__ = ["Capture", "CaptureError", "Plan", "Sender", "build_schedule", "load_capture", "parse_burst"]

#: The TX stamp trailer's length (fh_api.h: "FHTS", u32 frame counter, u64 TSC).
STAMP_LEN = int(_core.FH_WIRE_STAMP_LEN)


def parse_burst(text: str) -> Tuple[float, float, float]:
    """``FACTOR:MS:EVERY_S`` -> (factor, ms, every_s); ValueError saying what is wrong."""
    parts = text.split(":")
    if len(parts) != 3:
        raise ValueError("a burst is FACTOR:MS:EVERY_S (e.g. 10:5:1), not %r" % text)
    try:
        factor, ms, every = (float(p) for p in parts)
    except ValueError:
        raise ValueError("a burst is three numbers FACTOR:MS:EVERY_S (e.g. 10:5:1), not %r" % text) from None
    if not factor > 0 or not ms > 0 or not every > 0:
        raise ValueError("burst FACTOR, MS and EVERY_S must all be positive, got %r" % text)
    if ms >= every * 1000:
        raise ValueError("a burst of %g ms does not fit in every %g s" % (ms, every))
    return factor, ms, every


def parse_groups(text: Optional[str], what: str) -> Tuple[int, ...]:
    """A comma-separated list of IPv4 addresses (ConfigError naming ``what``)."""
    if not text:
        return ()
    return tuple(ipv4_to_int(g.strip(), what) for g in text.split(",") if g.strip())


@dataclass
class Plan:
    """The send: frame ``order[i]`` is due ``due_ns[i]`` after the start; what the
    loss injection took out, and how the pacing was chosen."""

    order: np.ndarray
    due_ns: np.ndarray
    paced: bool
    pacing: Dict[str, Any]
    scheduled: int  # frames the schedule would send with no loss injected
    injected: Dict[str, int] = field(default_factory=dict)  # line -> frames dropped on purpose


def _bursty(nominal: np.ndarray, factor: float, ms: float, every_s: float) -> np.ndarray:
    """Nominal send times mapped so that, for the first MS milliseconds of every
    EVERY_S seconds, time runs FACTOR times faster (the rate is FACTOR times)."""
    period = every_s * 1e9
    burst = ms * 1e6
    per = factor * burst + (period - burst)  # nominal time one period covers
    k = np.floor(nominal / per)
    r = nominal - k * per
    return k * period + np.where(r < factor * burst, r / factor, burst + (r - factor * burst))


def build_schedule(
    cap: Capture,
    speed: float = 1.0,
    rate: Optional[float] = None,
    burst: Optional[Tuple[float, float, float]] = None,
    loops: int = 1,
    loss_a: float = 0.0,
    loss_b: float = 0.0,
    a_groups: Sequence[int] = (),
    b_groups: Sequence[int] = (),
    lag_b_us: float = 0.0,
    seed: int = 1,
) -> Plan:
    """Every frame's due time, in send order.

    ``rate`` (msgs/s) re-times the frames so that their messages go out evenly
    (a frame is due when its first message is); otherwise ``speed`` scales the
    capture's clock (0: no pacing, as fast as the port takes them).  ``burst``
    (factor, ms, every_s) speeds the schedule up by factor for ms every every_s.
    ``loops`` passes follow one another (the capture's sequence numbers repeat).
    Each frame to an ``a_groups`` / ``b_groups`` address is dropped with
    probability ``loss_a`` / ``loss_b`` (seeded, so the same arguments drop the
    same frames), and B frames are sent ``lag_b_us`` later."""
    if loops < 1:
        raise ValueError("loops must be at least 1")
    if set(a_groups) & set(b_groups):
        raise ValueError("a group cannot be on line A and line B")
    if (loss_a and not a_groups) or (loss_b and not b_groups):
        raise ValueError("loss on a line needs that line's groups (--a-groups / --b-groups)")
    if lag_b_us and not b_groups:
        raise ValueError("--lag-b needs line B's groups (--b-groups)")
    n = cap.frames
    paced = rate is not None or speed > 0
    if not paced and (burst or lag_b_us):
        raise ValueError("--burst and --lag-b need a paced send (--rate, or --speed above 0)")
    if rate is not None:
        if not rate > 0:
            raise ValueError("the rate must be positive")
        msgs = cap.msgs.astype(np.float64)
        nominal = (np.cumsum(msgs) - msgs) * (1e9 / rate)
        span = float(msgs.sum()) * 1e9 / rate
        pacing: Dict[str, Any] = {"mode": "rate", "rate_msgs_per_s": rate}
    elif speed > 0:
        ts = cap.ts_ns.astype(np.int64)
        rel = np.maximum.accumulate(ts - ts[0]).astype(np.float64)  # a capture stepping back waits for nothing
        nominal = rel / speed
        span = nominal[-1] + (nominal[-1] / (n - 1) if n > 1 else 0.0)
        pacing = {"mode": "speed", "speed": speed}
    else:
        nominal = np.zeros(n)
        span = 0.0
        pacing = {"mode": "max"}
    pacing["loop"] = loops
    pacing["burst"] = {"factor": burst[0], "ms": burst[1], "every_s": burst[2]} if burst else None
    frame = np.tile(np.arange(n, dtype=np.uint32), loops)
    due = (np.repeat(np.arange(loops, dtype=np.float64) * span, n) + np.tile(nominal, loops)) if paced else None
    if due is not None and burst:
        due = _bursty(due, *burst)
    keep = np.ones(len(frame), dtype=bool)
    injected = {"a": 0, "b": 0}
    rng = np.random.default_rng(seed)
    on_a = np.isin(cap.dst, np.array(a_groups, dtype=np.uint32))[frame]
    on_b = np.isin(cap.dst, np.array(b_groups, dtype=np.uint32))[frame]
    draw = rng.random(len(frame))
    for line, mask, p in (("a", on_a, loss_a), ("b", on_b, loss_b)):
        if p:
            lost = mask & (draw < p)
            injected[line] = int(lost.sum())
            keep &= ~lost
    if due is not None and lag_b_us:
        due = due + np.where(on_b, lag_b_us * 1e3, 0.0)
    frame = frame[keep]
    if due is None:
        due_ns = np.zeros(len(frame), dtype=np.uint64)
    else:
        due = due[keep]
        idx = np.argsort(due, kind="stable")
        frame, due_ns = frame[idx], np.round(due[idx]).astype(np.uint64)
    pacing["lag_b_us"] = lag_b_us
    return Plan(
        order=np.ascontiguousarray(frame, dtype=np.uint32),
        due_ns=np.ascontiguousarray(due_ns),
        paced=paced,
        pacing=pacing,
        scheduled=n * loops,
        injected=injected,
    )


class Sender:
    """EAL up and one port started for sending.

    ``Sender(eal_args, port=0, mbufs=8191, data_room=2048)``; :meth:`send` runs
    one plan; :meth:`close` (or leaving ``with``) stops the port and cleans up
    the EAL.  The EAL pins this thread to its first lcore: the send loop's
    thread runs there too (this is a process of its own: nothing is restored)."""

    def __init__(self, eal_args: str, port: int = 0, mbufs: int = 8191, data_room: int = 2048) -> None:
        self.m = backend()
        self.port = port
        self._eal_up = False
        self._closed = False
        ffi, lib = self.m.ffi, self.m.lib
        self._err = ffi.new("char[]", ERR_LEN)
        self._st = ffi.new("fh_tx_stats_t *")
        before = os.sched_getaffinity(0)
        if lib.fh_dpdk_eal_init(eal_args.encode(), self._err, ERR_LEN) != 0:
            raise c_error(DpdkError, ffi, self._err)
        self._eal_up = True
        # The loop's thread keeps the EAL's lcore; the waiting thread may leave it.
        self.lcore_cpus = os.sched_getaffinity(0)
        others = before - self.lcore_cpus
        if others:
            os.sched_setaffinity(0, others)
        try:
            chosen = ffi.new("char[]", ERR_LEN)
            rc = lib.fh_dpdk_tx_port_start(port, mbufs, max(data_room, 2048), 1024, chosen, ERR_LEN, self._err, ERR_LEN)
            if rc != 0:
                raise c_error(DpdkError, ffi, self._err)
            self.chosen = ffi.string(chosen).decode(errors="replace")
            info = ffi.new("fh_dpdk_port_info_t *")
            lib.fh_dpdk_port_info(port, info)
            self.driver = ffi.string(info.driver).decode(errors="replace")
            self.name = ffi.string(info.name).decode(errors="replace")
            self.mtu = int(lib.fh_dpdk_port_mtu(port))
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> "Sender":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def wait_link(self, timeout_s: float, stopped: Optional[Callable[[], bool]] = None) -> bool:
        """Wait up to ``timeout_s`` for the port's link to come up (a memif
        server's comes up when its client connects; frames sent before would
        all be TX drops); True once up.  ``stopped``: checked every 10 ms, an
        early False when it says so."""
        lib = self.m.lib
        end = time.monotonic() + timeout_s
        while True:
            up = lib.fh_dpdk_link_up(self.port)
            if up < 0:
                raise DpdkError("no DPDK port %d" % self.port)
            if up:
                return True
            if time.monotonic() >= end or (stopped is not None and stopped()):
                return False
            time.sleep(0.01)

    def stop(self) -> None:
        """Ask the send in progress to stop after its burst in hand (any thread, signal handlers)."""
        self.m.lib.fh_dpdk_tx_stop()

    def progress(self) -> Tuple[int, int]:
        """(schedule entries handled, frames sent) so far."""
        return int(self._st.done), int(self._st.frames)

    def stamp_offsets(self, cap: Capture) -> np.ndarray:
        """Where each frame's trailer goes: the end of its IPv4 datagram, unless
        the datagram and the trailer would not fit the port's MTU (that frame is
        sent as captured, unstamped)."""
        ok = cap.ip_end != NO_STAMP
        if self.mtu:
            ip_total = cap.ip_end.astype(np.int64) - self._l2_len(cap)
            ok &= ip_total + STAMP_LEN <= self.mtu
        return np.where(ok, cap.ip_end, NO_STAMP).astype(np.uint32)

    @staticmethod
    def _l2_len(cap: Capture) -> np.ndarray:
        """Ethernet header plus VLAN tags, per frame (14 where unknown)."""
        blob = np.frombuffer(cap.blob, dtype=np.uint8)
        out = np.full(cap.frames, 14, dtype=np.int64)
        off = cap.off.astype(np.int64)
        for tag in range(2):
            at = off + 12 + 4 * tag
            inside = at + 2 <= off + cap.length.astype(np.int64)
            idx = np.where(inside, at, 0)
            et = (blob[idx].astype(np.int64) << 8) | blob[idx + 1]
            more = inside & np.isin(et, _VLAN) & (out == 14 + 4 * tag)
            out = np.where(more, out + 4, out)
        return out

    def send(
        self, cap: Capture, plan: Plan, stamp: bool = True, progress: Optional[bool] = None, wait_us: float = 200.0
    ) -> Dict[str, Any]:
        """Send ``plan`` and return its counters.  A burst the port does not take
        is offered again for ``wait_us`` before its frames count as dropped.  The loop runs in a thread with
        the GIL released while this one waits (a progress line on a terminal
        when ``progress`` is None; stop() from a signal handler ends it)."""
        if self._closed:
            raise DpdkError("this Sender is closed")
        ffi, lib = self.m.ffi, self.m.lib
        stamp_at = self.stamp_offsets(cap)
        keep = [cap.off, cap.length, stamp_at, cap.msgs, plan.order, plan.due_ns]
        c = ffi.new("fh_tx_plan_t *")
        c.blob = ffi.from_buffer("uint8_t[]", cap.blob)
        c.off = ffi.from_buffer("uint64_t[]", keep[0])
        c.len = ffi.from_buffer("uint32_t[]", keep[1])
        c.stamp_at = ffi.from_buffer("uint32_t[]", keep[2])
        c.msgs = ffi.from_buffer("uint32_t[]", keep[3])
        c.order = ffi.from_buffer("uint32_t[]", keep[4])
        c.due_ns = ffi.from_buffer("uint64_t[]", keep[5])
        c.n = len(plan.order)
        c.paced = int(plan.paced)
        c.stamp = int(stamp)
        c.wait_ns = max(1, int(wait_us * 1000))
        err = ffi.new("char[]", ERR_LEN)
        box: Dict[str, int] = {}

        def work() -> None:
            os.sched_setaffinity(0, self.lcore_cpus)
            box["rc"] = lib.fh_dpdk_tx_loop(self.port, c, self._st, err, ERR_LEN)

        def poll() -> Tuple[int, int]:
            return int(self._st.done), len(plan.order)

        run_with_progress(work, poll, "send", enabled=progress, on_interrupt=self.stop, unit="frames")
        if box.get("rc", -1) != 0:
            raise c_error(DpdkError, ffi, err, "the send loop failed")
        return self.stats(plan, stamp, int((stamp_at != NO_STAMP).sum()))

    def stats(self, plan: Plan, stamp: bool, stampable: int) -> Dict[str, Any]:
        s = self._st
        elapsed = int(s.elapsed_ns) / 1e9
        frames, messages = int(s.frames), int(s.messages)
        return {
            "frames": frames,
            "messages": messages,
            "bytes": int(s.bytes),
            "tx_dropped": int(s.tx_dropped),
            "nombuf": int(s.nombuf),
            "late": int(s.late),
            "max_late_us": int(s.max_late_ns) / 1e3,
            "bursts": int(s.bursts),
            "scheduled": plan.scheduled,
            "planned": len(plan.order),
            "handled": int(s.done),
            "injected_loss": dict(plan.injected),
            "elapsed_s": elapsed,
            "frames_per_s": frames / elapsed if elapsed > 0 else 0.0,
            "msgs_per_s": messages / elapsed if elapsed > 0 else 0.0,
            "tsc_hz": int(s.tsc_hz),
            "stopped": bool(s.stopped),
            "pacing": dict(plan.pacing),
            "stamp": {"enabled": stamp, "frames_stampable": stampable if stamp else 0},
            "port": {"id": self.port, "driver": self.driver, "name": self.name, "mtu": self.mtu},
        }

    def close(self) -> None:
        """Stop and close the port, clean up the EAL.  Calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        if self._eal_up:
            self.m.lib.fh_dpdk_port_close(self.port)
            self.m.lib.fh_dpdk_cleanup()
