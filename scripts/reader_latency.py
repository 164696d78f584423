#!/usr/bin/env python3
"""Publish -> Python reader latency: how long after the C writer published an
event a busy-polling Python reader in another process has it in hand.

    feedhandler replay day.pcap --shm books --speed 100 &
    python scripts/reader_latency.py --shm books [--json OUT]

Follows the event ring as a strategy would (Segment.follow: numpy batches,
polling without sleeping while events keep coming), stamps each batch as it
arrives on the writer's own clock (the TSC read through the calibration the writer
published in the segment header: Segment.clock_ns), and records
now - publish_ts for every event into the same C histogram as the pipeline's
stages.  Both stamps come from one TSC and one calibration, so there is no
error between two clocks (CLOCK_REALTIME against a TSC calibrated over 5 ms
drifts by tens of microseconds within seconds).  Stops when the writer has
finished (or stopped) and the ring is drained, when it died, or after
--duration.

Between two polls the loop does nothing but take the batch: the state of the
writer is read only after an empty poll and whether it lives a few times a
second (both inside follow()); asking Segment.state before every poll costs a
system call (the writer's lock) that delays whatever arrives meanwhile.  Prints percentiles; --json writes them in the
--latency-json stage format (stage "publish_to_reader").
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import feedhandler._probe as probe  # test/measurement hooks: fh_hist_record_n
from feedhandler.core import ffi, lib
from feedhandler.errors import WriterDied
from feedhandler.latency import distribution, summary
from feedhandler.shm import Lapped, ShmError, attach


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shm", required=True)
    ap.add_argument("--duration", type=float, default=0.0)
    ap.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the segment")
    ap.add_argument("--json", help="write the histogram summary here")
    args = ap.parse_args(argv)
    deadline = time.monotonic() + args.wait
    while True:
        try:
            seg = attach(args.shm)
            break
        except ShmError:
            if time.monotonic() > deadline:
                sys.exit("reader_latency: no segment %r" % args.shm)
            time.sleep(0.01)
    seg.seek("now")
    h = ffi.new("fh_hist_t *")
    t0 = time.monotonic()
    n = 0
    clock = seg.clock_ns
    record = probe.lib.fh_hist_record_n
    try:
        # A heartbeat only with --duration: an empty batch lets a quiet stream stop.
        for ev in seg.follow(batch=4096, heartbeat=0.1 if args.duration else None):
            if not isinstance(ev, Lapped) and len(ev):  # a Lapped marker: counted in seg.lapped
                now = clock()  # stamped first: what follows is not part of the latency
                # One numpy operation, so that the next poll comes soon.  Every event
                # was published before it was read, on the same TSC: now is the later
                # by at least the poll itself, so the difference does not wrap (were it
                # to, the histogram would count it as overflow, not as a small value).
                lat = now - ev["publish_ts"]
                record(h, ffi.from_buffer("uint64_t[]", lat), len(lat))
                n += len(ev)
            if args.duration and time.monotonic() - t0 > args.duration:
                break
    except WriterDied as e:
        print("reader_latency: %s (the events read so far are counted)" % e, file=sys.stderr)
    lapped = seg.lapped
    s = summary(ffi, lib, h)
    s["distribution"] = distribution(lib, h)
    s["lapped"] = lapped
    print(
        "publish -> Python reader: %d events, p50 %d ns, p90 %d ns, p99 %d ns, p99.9 %d ns, max %d ns, lapped %d"
        % (s["count"], s["p50"], s["p90"], s["p99"], s["p99_9"], s["max"], lapped)
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "unit": "ns",
                    "stages": {"publish_to_reader": s},
                    "rate": {
                        "messages": n,
                        "packets": n,
                        "elapsed_s": time.monotonic() - t0,
                        "msgs_per_s": 0.0,
                        "packets_per_s": 0.0,
                    },
                },
                f,
                indent=2,
            )


if __name__ == "__main__":
    main()
