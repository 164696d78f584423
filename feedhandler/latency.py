"""Latency histograms from the C core (csrc/hist.h): per stage, per core.

Stages, per packet that applied messages (TSC-stamped in C, nothing allocated
while recording; a packet is decoded whole, then applied to the books, then
each instrument it touched is published once):
  rx_to_start      from when the packet was received (DPDK: its burst) or due
                   (paced replay: the capture's clock, so a replay that falls
                   behind shows it: no coordinated omission) to the start of its
                   processing: when the lane was done with the packet before it;
  decode           start -> every block decoded;
  book             decoded -> every message applied to the books;
  publish          applied -> slots written and events out in shared memory;
  processing       start -> published (decode + book + publish);
  rx_to_published  receive/due time to its last book update published.
A stamped packet costs one TSC read: its start is the end of the packet before
(the receive time where it came later).  decode, book and publish, which need
two more reads, split the processing of every Nth stamped packet only
(``stages_every``, ReplayConfig.latency_stages, default 8); their counts are
1/N of the others'.
With frames that carry a sender's transmit stamp (``feedhandler send``: a
trailer after the IP datagram, raw TSC ticks on the same host), two more,
present only when some frame had one:
  wire_to_rx        transmit stamp -> received (the wire, the driver, the ring);
  wire_to_published transmit stamp -> last book update published.
Beside them, ``messages_per_packet``: how many messages each of those packets
applied (the same histogram type, values are counts), and ``idle_gaps``: in a
paced replay, every gap over 1 us between two TSC reads of the thread waiting
for the next packet's time: what the machine took from the core (interrupts,
preemption, a hypervisor), measured during the run itself.
"""

from __future__ import annotations

import os
import platform
from typing import TYPE_CHECKING, Dict, List

from .core import lib
from .errors import ReplayError

if TYPE_CHECKING:  # pragma: no cover
    from .replay import Replay

# Histogram index in C (enum fh_lat_stage) -> name, in the order reports show them.
STAGES = ["rx_to_start", "decode", "book", "publish", "processing", "rx_to_published"]
_INDEX = {
    "rx_to_start": lib.FH_LAT_RX_TO_START,
    "processing": lib.FH_LAT_PROCESSING,
    "rx_to_published": lib.FH_LAT_RX_TO_PUBLISHED,
    "decode": lib.FH_LAT_DECODE,
    "book": lib.FH_LAT_BOOK,
    "publish": lib.FH_LAT_PUBLISH,
    "messages_per_packet": lib.FH_LAT_MSGS_PER_PACKET,
    "idle_gaps": lib.FH_LAT_IDLE_GAPS,
    "wire_to_rx": lib.FH_LAT_WIRE_TO_RX,
    "wire_to_published": lib.FH_LAT_WIRE_TO_PUBLISHED,
}
#: Stages reported only when some frame carried a transmit stamp.
WIRE_STAGES = ["wire_to_rx", "wire_to_published"]
#: enum fh_rx_clock -> what the report calls it.
RX_CLOCKS = {
    lib.FH_RX_CLOCK_NONE: "none",
    lib.FH_RX_CLOCK_CAPTURE: "capture",
    lib.FH_RX_CLOCK_TSC_BURST: "tsc_at_burst",
    lib.FH_RX_CLOCK_NIC: "nic_hardware",
}
PERCENTILES = [50, 90, 99, 99.9, 99.99]


def summary(ffi_, lib_, h) -> dict:
    out = {
        "count": int(h.count),
        "overflow": int(h.overflow),
        "min": int(h.min) if h.count else 0,
        "max": int(h.max),
        "mean": (h.sum / h.count) if h.count else 0.0,
    }
    for p in PERCENTILES:
        out["p%s" % (("%g" % p).replace(".", "_"))] = int(lib_.fh_hist_value_at(h, p))
    return out


def distribution(lib_, h, ticks_per_half: int = 5) -> list:
    """HdrHistogram-style percentile distribution: [percentile, value_ns, count
    at or below], ticks closer together towards the tail, up to 100%."""
    out = []
    if not h.count:
        return out
    k = 0
    while True:
        pct = 100.0 * (1.0 - 0.5 ** (k / ticks_per_half))
        seen = min(int(h.count), max(1, int(-(-pct * h.count // 100))))
        out.append([pct, int(lib_.fh_hist_value_at(h, pct)), seen])
        if seen >= h.count or k > 40 * ticks_per_half:
            break
        k += 1
    out.append([100.0, int(h.max), int(h.count)])
    return out


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _histogram(replay: "Replay", name: str) -> dict:
    f, l = replay.ffi, replay.lib
    merged = f.new("fh_hist_t *")
    per_core: List[dict] = []
    for lane in replay.handles:
        h = f.new("fh_hist_t *")
        if l.fh_lane_latency(lane, _INDEX[name], h) != 0:
            raise ReplayError("latency was not enabled for this replay (ReplayConfig.latency)")
        per_core.append(summary(f, l, h))
        l.fh_hist_merge(merged, h)
    d = summary(f, l, merged)
    d["per_core"] = per_core
    d["distribution"] = distribution(l, merged)
    return d


def collect(replay: "Replay", stats: dict) -> dict:
    """The --latency-json document for a finished (not yet closed) Replay (or DpdkRun.replay)."""
    stages: Dict[str, dict] = {name: _histogram(replay, name) for name in STAGES}
    for name in WIRE_STAGES:
        wire = _histogram(replay, name)
        if wire["count"]:
            stages[name] = wire
    mpp = _histogram(replay, "messages_per_packet")
    mpp.pop("overflow", None)
    gaps = _histogram(replay, "idle_gaps")
    tsc_hz = replay.tsc_hz()
    return {
        "unit": "ns",
        "stages": stages,
        "messages_per_packet": mpp,
        "sample_every": int(getattr(replay, "latency_every", 1) or 1),
        # decode, book and publish split the processing of every Nth stamped
        # packet (their counts are 1/N of the others'); the other stages cover
        # every stamped packet.
        "stages_every": int(getattr(replay, "latency_stages_every", 1) or 1),
        # Where each packet's receive time came from: none (a full-speed replay:
        # rx is when the walk got there), capture (paced: when it was due),
        # tsc_at_burst (live: the TSC when the driver's burst returned) or
        # nic_hardware (the port's own receive timestamp, on the TSC clock).
        "rx_clock": RX_CLOCKS.get(max(int(replay.lib.fh_lane_rx_clock(h)) for h in replay.handles), "none"),
        # Paced replay: gaps > 1 us the waiting thread saw between two TSC reads
        # (the machine, not the pipeline, took the core), with the time they cover.
        "idle_gaps": gaps,
        "rate": {
            "messages": stats["messages"],
            "packets": stats["packets"],
            "elapsed_s": stats["elapsed_s"],
            "msgs_per_s": stats["msgs_per_s"],
            "packets_per_s": stats["packets"] / stats["elapsed_s"] if stats["elapsed_s"] else 0.0,
        },
        "machine": {
            "cpu": cpu_model(),
            "cores_used": replay.cores or [None],
            "online_cpus": os.cpu_count(),
            "tsc_hz": tsc_hz,
            # Stamps come from an invariant TSC (calibrated at start-up) or, where
            # the CPU has none, from clock_gettime (slower, ~20 ns a stamp).
            "tsc_invariant": tsc_hz > 0,
            "clock": "tsc" if tsc_hz else "clock_gettime",
        },
    }
