"""Latency histograms from the C core (csrc/hist.h): per stage, per core.

Stages, per packet (TSC-stamped in C, nothing allocated while recording):
  rx_to_start      from when the packet was received (DPDK: its burst) or due
                   (paced replay: the capture's clock, so a replay that falls
                   behind shows it: no coordinated omission) to the start of its
                   processing;
  processing       decode, books and publishing of all its messages;
  rx_to_published  receive/due time to its last update published.
"""
from __future__ import annotations

import os
import platform
from typing import Dict, List

from .core import ffi, lib

STAGES = ["rx_to_start", "processing", "rx_to_published"]
PERCENTILES = [50, 90, 99, 99.9, 99.99]


def summary(ffi_, lib_, h) -> dict:
    out = {"count": int(h.count), "overflow": int(h.overflow),
           "min": int(h.min) if h.count else 0, "max": int(h.max),
           "mean": (h.sum / h.count) if h.count else 0.0}
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


def collect(replay, stats: dict) -> dict:
    """The --latency-json document for a finished Replay (or DpdkRun.replay)."""
    f, l = replay._ffi, replay._lib
    stages: Dict[str, dict] = {}
    for i, name in enumerate(STAGES):
        merged = f.new("fh_hist_t *")
        per_core: List[dict] = []
        for lane in replay._lanes:
            h = f.new("fh_hist_t *")
            if l.fh_replay_latency(lane, i, h) != 0:
                raise RuntimeError("latency was not enabled for this replay")
            per_core.append(summary(f, l, h))
            l.fh_hist_merge(merged, h)
        d = summary(f, l, merged)
        d["per_core"] = per_core
        d["distribution"] = distribution(l, merged)
        stages[name] = d
    return {
        "unit": "ns",
        "stages": stages,
        "rate": {"messages": stats["messages"], "packets": stats["packets"], "elapsed_s": stats["elapsed_s"],
                 "msgs_per_s": stats["msgs_per_s"],
                 "packets_per_s": stats["packets"] / stats["elapsed_s"] if stats["elapsed_s"] else 0.0},
        "machine": {"cpu": cpu_model(), "cores_used": replay.cores or [None], "online_cpus": os.cpu_count(),
                    "tsc_hz": int(l.fh_replay_tsc_hz(replay._r))},
    }
