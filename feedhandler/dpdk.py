"""Kernel-bypass receive through DPDK: `feedhandler run --dpdk "EAL ARGS"`.

The EAL, the ports and the burst loop are C (csrc/dpdk/src_dpdk.c, in the
feedhandler._dpdk extension built where `pkg-config libdpdk` answers); the loop
feeds the same pipeline as replay mode, with the GIL released, and Python is
never called per packet.  The EAL can be initialised once per process, and it
re-pins the calling thread: this module restores the thread's CPU affinity.

    from feedhandler.dpdk import DpdkRun
    with DpdkRun("-l 0 --vdev=net_pcap0,rx_pcap=day.pcap", mode="book") as run:
        run.run()
        print(run.stats())
"""

from __future__ import annotations

import os
import threading
from typing import Any, List, Optional, Sequence

from .config import ReplayConfig
from .endpoints import ipv4_to_int
from .errors import ERR_LEN, DpdkError, c_error
from .progress import wait_uninterrupted
from .replay import Replay

__all__ = ["DpdkError", "DpdkRun", "available", "backend"]


def backend() -> Any:
    """The DPDK extension module, or a DpdkError saying why there is none."""
    try:
        from . import _dpdk  # type: ignore[attr-defined]
    except ImportError as exc:
        raise DpdkError(
            "this install has no DPDK support: feedhandler._dpdk was not built (install "
            "libdpdk-dev so that `pkg-config libdpdk` works, then reinstall the package)"
            " [%s]" % exc
        )
    return _dpdk


def available() -> bool:
    """Whether this install has DPDK support (feedhandler._dpdk)."""
    try:
        backend()
        return True
    except DpdkError:
        return False


class DpdkRun:
    """EAL up, one port started, a Replay pipeline to feed from it.

    ``DpdkRun(eal_args, port=0, mbufs=8191, config=ReplayConfig(...))`` or with the
    ReplayConfig fields as keywords (``DpdkRun(eal_args, mode="book", shm="books")``);
    the RX queues are the config's cores (one each; its channels' cores without).

    A context manager: leaving ``with DpdkRun(...) as run:`` calls :meth:`close`
    (replay finished and freed, port stopped, EAL cleaned up); so does a failure
    while it is being set up."""

    def __init__(
        self,
        eal_args: str,
        port: int = 0,
        cores: Optional[Sequence[int]] = None,
        mbufs: int = 8191,
        config: Optional[ReplayConfig] = None,
        **replay_options: Any,
    ) -> None:
        if cores is not None:
            replay_options["cores"] = cores
        config = config.replace(**replay_options) if config else ReplayConfig.from_kwargs(**replay_options)
        self.m = backend()
        self.port = port
        self.replay: Optional[Replay] = None
        self._closed = False
        self._eal_up = False
        self._final_port: Optional[dict] = None  # port_stats() as it was at close
        self.queues = 1
        self.ours: List[Any] = []
        ffi, lib = self.m.ffi, self.m.lib
        err = ffi.new("char[]", ERR_LEN)
        affinity = os.sched_getaffinity(0)
        rc = lib.fh_dpdk_eal_init(eal_args.encode(), err, len(err))
        os.sched_setaffinity(0, affinity)  # rte_eal_init pinned this thread: give it back
        if rc != 0:
            raise c_error(DpdkError, ffi, err)
        self._eal_up = True
        try:
            self._start(config, mbufs)
        except BaseException:
            self.close()
            raise

    def _start(self, config: ReplayConfig, mbufs: int) -> None:
        ffi, lib = self.m.ffi, self.m.lib
        err = ffi.new("char[]", ERR_LEN)
        port = self.port
        channels = config.channels
        self.cores: Optional[List[int]] = config.lane_cores
        self.queues = config.lanes
        chosen = ffi.new("char[]", ERR_LEN)
        if lib.fh_dpdk_port_start(port, self.queues, mbufs, chosen, len(chosen), err, len(err)) != 0:
            raise c_error(DpdkError, ffi, err)
        self.chosen = ffi.string(chosen).decode(errors="replace")
        # Exact steering where the device supports rte_flow: each channel's
        # groups to the queue of its core; otherwise the RSS set up above.
        if channels and self.queues > 1:
            assert self.cores is not None
            flows = unsupported = 0
            for ch in channels:
                q = self.cores.index(ch.core)
                for host, udp in ch.lines():
                    group = ipv4_to_int(host, "channel %r line" % ch.name)
                    rc = lib.fh_dpdk_flow_steer(port, group, udp, q, err, len(err))
                    if rc < 0:
                        raise c_error(DpdkError, ffi, err)
                    flows += rc == 0
                    unsupported += rc == 1
            self.chosen += (
                "; rte_flow: %d rule(s) steer each channel's groups to its core's queue" % flows
                if not unsupported
                else "; rte_flow not supported by this device: channels follow RSS"
            )
        # One lane (pinned thread) per RX queue; the NIC (or the PMD) has steered
        # each queue's frames already, so every lane keeps all it receives.
        self.replay = Replay.on_backend(self.m, config, live=True)
        if self.queues > 1:
            for lane in self.replay.handles:
                lib.fh_lane_own_all(lane)
        self.ours = [ffi.new("fh_dpdk_stats_t *") for _ in range(self.queues)]
        self._rc: List[Optional[int]] = [None] * self.queues

    def __enter__(self) -> "DpdkRun":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def run(self, duration_s: float = 0.0, stop_on_eos: bool = True) -> None:
        """Busy-poll until Ctrl-C, `duration_s`, or every stream's end of session."""
        if self._closed or self.replay is None:
            raise DpdkError("this DpdkRun is closed")
        ffi, lib = self.m.ffi, self.m.lib
        replay = self.replay
        handles = replay.handles
        errs = [ffi.new("char[]", ERR_LEN) for _ in range(self.queues)]
        finished = [threading.Event() for _ in range(self.queues)]

        def work(q: int) -> None:
            try:
                replay.pin_lane(q)
                self._rc[q] = lib.fh_dpdk_rx_loop(
                    handles[q],
                    self.port,
                    q,
                    int(duration_s * 1e9),
                    int(stop_on_eos),
                    self.ours[q],
                    errs[q],
                    len(errs[q]),
                )
            finally:
                finished[q].set()

        threads = [
            threading.Thread(target=work, args=(q,), name="feedhandler-dpdk-q%d" % q, daemon=True)
            for q in range(self.queues)
        ]
        for t in threads:
            t.start()
        # Events, not Thread.join(): see feedhandler.progress (a Ctrl-C inside join()
        # can mark a running thread stopped, and finish() must not race the loops).
        try:
            for ev in finished:
                while not ev.wait(0.1):
                    pass
        except KeyboardInterrupt:
            replay.stop()
            for ev in finished:
                wait_uninterrupted(ev, replay.stop)
            raise
        finally:
            replay.finish()
        for q, rc in enumerate(self._rc):
            if rc != 0:
                raise c_error(DpdkError, ffi, errs[q])

    def port_stats(self) -> dict:
        """The port's counters (ipackets, imissed, ...) and the burst loop's (polls, bursts)."""
        if self._final_port is not None:
            return dict(self._final_port)
        ffi, lib = self.m.ffi, self.m.lib
        s = ffi.new("fh_dpdk_stats_t *")
        lib.fh_dpdk_port_stats(self.port, s)
        return {
            "ipackets": int(s.ipackets),
            "ibytes": int(s.ibytes),
            "imissed": int(s.imissed),
            "ierrors": int(s.ierrors),
            "rx_nombuf": int(s.rx_nombuf),
            "queues": self.queues,
            "polls": sum(int(o.polls) for o in self.ours),
            "bursts": sum(int(o.bursts) for o in self.ours),
            "multiseg_skipped": sum(int(o.multiseg) for o in self.ours),
        }

    def stats(self) -> dict:
        """The replay's counters with the port's under ``dpdk``."""
        if self.replay is None:
            raise DpdkError("this DpdkRun has no pipeline (it failed to start)")
        st = self.replay.stats()
        st["dpdk"] = self.port_stats()
        return st

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self._closed

    def close(self) -> None:
        """Finish and free the replay, stop and close the port, clean up the EAL; the
        counters (:meth:`stats`, :meth:`port_stats`) stay readable.  Calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.replay is not None:
                self.replay.close()
        finally:
            if self._eal_up:
                if self.replay is not None:
                    self._final_port = self.port_stats()
                self.m.lib.fh_dpdk_port_close(self.port)
                self.m.lib.fh_dpdk_cleanup()
