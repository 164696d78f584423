"""Kernel-bypass receive through DPDK: `feedhandler run --dpdk "EAL ARGS"`.

The EAL, the ports and the burst loop are C (csrc/dpdk/src_dpdk.c, in the
feedhandler._dpdk extension built where `pkg-config libdpdk` answers); the loop
feeds the same pipeline as replay mode, with the GIL released, and Python is
never called per packet.  The EAL can be initialised once per process, and it
re-pins the calling thread: this module restores the thread's CPU affinity.
"""
from __future__ import annotations

import os
import threading

from .replay import Replay


class DpdkError(Exception):
    """DPDK is missing, or the EAL / a port could not be set up; the message says why."""


def backend():
    """The DPDK extension module, or a DpdkError saying why there is none."""
    try:
        from . import _dpdk  # type: ignore[attr-defined]
    except ImportError as exc:
        raise DpdkError("this install has no DPDK support: feedhandler._dpdk was not built (install "
                        "libdpdk-dev so that `pkg-config libdpdk` works, then reinstall the package)"
                        " [%s]" % exc)
    return _dpdk


def available() -> bool:
    try:
        backend()
        return True
    except DpdkError:
        return False


class DpdkRun:
    """EAL up, one port started, a Replay pipeline to feed from it."""

    def __init__(self, eal_args: str, port: int = 0, cores=None, mbufs: int = 8191, **replay_kw):
        self.m = backend()
        ffi, lib = self.m.ffi, self.m.lib
        err = ffi.new("char[512]")
        affinity = os.sched_getaffinity(0)
        rc = lib.fh_dpdk_eal_init(eal_args.encode(), err, len(err))
        os.sched_setaffinity(0, affinity)      # rte_eal_init pinned this thread: give it back
        if rc != 0:
            raise DpdkError(ffi.string(err).decode(errors="replace"))
        self.port = port
        channels = replay_kw.get("channels") or []
        if channels and not cores:
            from .config import cores_of
            cores = cores_of(channels)
        self.cores = list(cores) if cores else None
        self.queues = len(self.cores) if self.cores else 1
        chosen = ffi.new("char[512]")
        if lib.fh_dpdk_port_start(port, self.queues, mbufs, chosen, len(chosen), err, len(err)) != 0:
            raise DpdkError(ffi.string(err).decode(errors="replace"))
        self.chosen = ffi.string(chosen).decode(errors="replace")
        # Exact steering where the device supports rte_flow: each channel's
        # groups to the queue of its core; otherwise the RSS set up above.
        if channels and self.queues > 1:
            flows = unsupported = 0
            for ch in channels:
                q = self.cores.index(ch.core)
                for host, udp in ch.lines():
                    group = int.from_bytes(bytes(int(x) for x in host.split(".")), "big")
                    rc = lib.fh_dpdk_flow_steer(port, group, udp, q, err, len(err))
                    if rc < 0:
                        raise DpdkError(ffi.string(err).decode(errors="replace"))
                    flows += rc == 0
                    unsupported += rc == 1
            self.chosen += ("; rte_flow: %d rule(s) steer each channel's groups to its core's queue" % flows
                            if not unsupported else
                            "; rte_flow not supported by this device: channels follow RSS")
        # One lane (pinned thread) per RX queue; the NIC (or the PMD) has steered
        # each queue's frames already, so every lane keeps all it receives.
        self.replay = Replay(backend=self.m, cores=self.cores, **replay_kw)
        if self.queues > 1:
            for lane in self.replay._lanes:
                lib.fh_replay_own_all(lane)
        self.ours = [ffi.new("fh_dpdk_stats_t *") for _ in range(self.queues)]
        self._rc = [None] * self.queues

    def run(self, duration_s: float = 0.0, stop_on_eos: bool = True) -> None:
        """Busy-poll until Ctrl-C, `duration_s`, or every stream's end of session."""
        ffi, lib = self.m.ffi, self.m.lib
        errs = [ffi.new("char[512]") for _ in range(self.queues)]

        def work(q):
            self.replay._pin(q)
            self._rc[q] = lib.fh_dpdk_rx_loop(self.replay._lanes[q], self.port, q, int(duration_s * 1e9),
                                              int(stop_on_eos), self.ours[q], errs[q], len(errs[q]))

        threads = [threading.Thread(target=work, args=(q,), name="feedhandler-dpdk-q%d" % q, daemon=True)
                   for q in range(self.queues)]
        for t in threads:
            t.start()
        try:
            while any(t.is_alive() for t in threads):
                for t in threads:
                    t.join(0.1)
        except KeyboardInterrupt:
            self.replay.stop()
            for t in threads:
                t.join(10)
            raise
        finally:
            self.replay.finish()
        for q, rc in enumerate(self._rc):
            if rc != 0:
                raise DpdkError(ffi.string(errs[q]).decode(errors="replace"))

    def port_stats(self) -> dict:
        ffi, lib = self.m.ffi, self.m.lib
        s = ffi.new("fh_dpdk_stats_t *")
        lib.fh_dpdk_port_stats(self.port, s)
        return {"ipackets": int(s.ipackets), "ibytes": int(s.ibytes), "imissed": int(s.imissed),
                "ierrors": int(s.ierrors), "rx_nombuf": int(s.rx_nombuf), "queues": self.queues,
                "polls": sum(int(o.polls) for o in self.ours), "bursts": sum(int(o.bursts) for o in self.ours),
                "multiseg_skipped": sum(int(o.multiseg) for o in self.ours)}

    def stats(self) -> dict:
        st = self.replay.stats()
        st["dpdk"] = self.port_stats()
        return st

    def close(self) -> None:
        self.m.lib.fh_dpdk_port_close(self.port)
        self.m.lib.fh_dpdk_cleanup()
