#!/usr/bin/env python3
"""Measure the synthetic trading-day generator: messages generated per second.

    python scripts/bench_gen.py                      # 20M messages into /tmp
    python scripts/bench_gen.py --messages 10000000 --channels 4 --lines ab --repeat 3

Writes PREFIX.pcap/.bin/.json (about 75 bytes of pcap + 30 of BinaryFILE per
message), prints wall time and messages/s per run and the best of the runs, then
removes the outputs unless --keep.  Output on tmpfs (/dev/shm) takes the disk out
of the measurement.  Measurement only: no assertions.
"""

from __future__ import annotations

import os
import sys
import time

import benchlib

sys.path.insert(0, benchlib.ROOT)

from feedhandler.gen import generate  # noqa: E402


def main() -> int:
    ap = benchlib.arguments(__doc__, messages=20_000_000, symbols=8000, seed=1, json=None)
    ap.add_argument("--channels", type=int, default=4)
    ap.add_argument("--lines", choices=["a", "ab"], default="a")
    ap.add_argument("--loss-a", type=float, default=0.0)
    ap.add_argument("--loss-b", type=float, default=0.0)
    ap.add_argument("--out", default="/tmp/fh-bench-gen", help="output prefix (default /tmp/fh-bench-gen)")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    args = ap.parse_args()

    rates = []
    for i in range(args.repeat):
        t0 = time.perf_counter()
        s = generate(
            args.out,
            messages=args.messages,
            symbols=args.symbols,
            channels=args.channels,
            seed=args.seed,
            lines=args.lines,
            loss_a=args.loss_a,
            loss_b=args.loss_b,
            progress=False,
        )
        dt = time.perf_counter() - t0
        rates.append(s["messages"] / dt)
        size = sum(os.path.getsize(args.out + ext) for ext in (".pcap", ".bin"))
        print(
            "run %d: %d messages in %.3f s = %.2f M msgs/s, %.1f MB written, "
            "%d packets (line A), %.2f msgs/packet (max %d), %d heartbeats"
            % (
                i + 1,
                s["messages"],
                dt,
                rates[-1] / 1e6,
                size / 1e6,
                s["packets"]["a"],
                s["messages_per_packet"]["mean"],
                s["messages_per_packet"]["max"],
                s["heartbeats"],
            )
        )
    print("best: %.2f M msgs/s" % (max(rates) / 1e6))
    if not args.keep:
        for ext in (".pcap", ".bin", ".json"):
            try:
                os.remove(args.out + ext)
            except OSError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
