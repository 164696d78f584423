"""follow() / follow_async() never sleep while events keep arriving, and back
off (sleep) only once the stream has gone quiet.

The writer is the test itself: every third poll of the rings publishes one
more packet first, so the reader sees events arrive with empty polls between
them, as a busy-polling reader of a live feed does (a packet every few
microseconds, polled faster than that).  Every sleep is counted, not timed."""

import asyncio
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import frames as F  # noqa: E402
from feedhandler.replay import Replay  # noqa: E402
from feedhandler.shm import EVENT_DTYPE, Lapped  # noqa: E402

SMALL = dict(max_orders=1 << 16, max_levels=1 << 18, max_instruments=64)
PACKETS = 60
EVERY = 3  # polls per packet: two of every three polls find nothing new


def packets():
    """PACKETS packets of 10 adds each (every one moves a top of book: events)."""
    return [
        F.pcap_bytes(
            [
                (
                    1_700_000_000_000_000_000 + i,
                    F.frame(
                        F.mold([F.msg_A(ref=i * 10 + j + 1, price=1_000_000 + j) for j in range(10)], seq=i * 10 + 1)
                    ),
                )
            ]
        )
        for i in range(PACKETS)
    ]


class BusyWriter:
    """Wraps the segment's ring poll: every EVERY-th poll publishes the next
    packet before looking, until all are out; counts polls that found nothing."""

    def __init__(self, replay, seg):
        self.replay, self.todo, self.polls, self.empty = replay, packets(), 0, 0
        real = seg._available

        def poll():
            self.polls += 1
            if self.todo and self.polls % EVERY == 0:
                assert replay.run_buffer(self.todo.pop(0)).ok
            n = real()
            self.empty += n == 0
            return n

        seg._available = poll

    @property
    def busy(self):
        return bool(self.todo)


def expected_events(name, replay_seg):
    """Every event the packets made, read back from the ring afterwards."""
    replay_seg.seek("oldest")
    out = replay_seg.events(1 << 20)
    assert 0 < len(out) == replay_seg.ring_head
    return out


def test_follow_never_sleeps_while_events_arrive_and_sleeps_once_quiet(name, monkeypatch):
    r = Replay(shm=name, **SMALL)
    assert r.run_buffer(F.pcap_bytes([])).ok  # the segment exists, running, no events yet
    seg = r.segment()
    seg.seek("oldest")
    writer = BusyWriter(r, seg)
    sleeps = {"busy": 0, "quiet": 0}
    real_sleep = time.sleep

    def counting_sleep(s):
        sleeps["busy" if writer.busy else "quiet"] += 1
        real_sleep(s)

    monkeypatch.setattr(time, "sleep", counting_sleep)
    got = []
    for b in seg.follow(idle=0.001, heartbeat=0.05):
        assert not isinstance(b, Lapped)
        if len(b):
            got.append(b.copy())
        elif not writer.busy:  # a heartbeat once the packets are out: the stream is quiet
            break
    monkeypatch.setattr(time, "sleep", real_sleep)
    # The reader did poll between packets and found nothing (what made the old
    # loop sleep 50 us+ each time) ...
    assert writer.empty >= PACKETS
    # ... yet never slept while packets kept coming, and did once they stopped.
    assert sleeps["busy"] == 0, sleeps
    assert sleeps["quiet"] > 0, sleeps
    r.finish()
    assert np.array_equal(np.concatenate(got), expected_events(name, seg))


def test_follow_async_never_sleeps_while_events_arrive(name, monkeypatch):
    """The asyncio version yields to the loop between busy polls (sleep(0)),
    never a timed sleep, while packets keep coming; it sleeps once they stop."""
    r = Replay(shm=name, **SMALL)
    assert r.run_buffer(F.pcap_bytes([])).ok
    seg = r.segment()
    seg.seek("oldest")
    writer = BusyWriter(r, seg)
    sleeps = {"busy": 0, "quiet": 0, "yield": 0}
    real_sleep = asyncio.sleep

    async def counting_sleep(s, *a, **kw):
        if s > 0:
            sleeps["busy" if writer.busy else "quiet"] += 1
        else:
            sleeps["yield"] += 1
        return await real_sleep(s, *a, **kw)

    async def main():
        got = []
        async for b in seg.follow_async(idle=0.001, heartbeat=0.05):
            assert not isinstance(b, Lapped)
            if len(b):
                got.append(b.copy())
            elif not writer.busy:
                break
        return got

    monkeypatch.setattr(asyncio, "sleep", counting_sleep)
    try:
        got = asyncio.run(main())
    finally:
        monkeypatch.setattr(asyncio, "sleep", real_sleep)
    assert writer.empty >= PACKETS
    assert sleeps["busy"] == 0, sleeps
    assert sleeps["quiet"] > 0 and sleeps["yield"] > 0, sleeps
    r.finish()
    assert np.array_equal(np.concatenate(got), expected_events(name, seg))


def test_events_empty_polls_are_fresh_empty_arrays(name):
    """An empty poll's result (a view of one shared empty array) is a proper
    empty EVENT_DTYPE array, and what a caller does to it reaches no other."""
    r = Replay(shm=name, **SMALL)
    assert r.run_buffer(F.pcap_bytes([])).ok
    seg = r.segment()
    seg.seek("now")
    a, b = seg.events(), seg.events()
    assert a.dtype == EVENT_DTYPE and a.shape == (0,) and b.shape == (0,)
    assert a is not b
    a.shape = (0, 1)  # reshaping one result leaves the next alone
    assert seg.events().shape == (0,)
    r.finish()
