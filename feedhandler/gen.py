"""Synthetic NASDAQ TotalView-ITCH 5.0, Cboe Multicast PITCH and IEX (TOPS, DEEP,
DEEP+) trading days (the C generator in csrc/gen/: gen.c runs the day, flow.c the
order flow).

``protocol="pitch"`` writes a Cboe US Equities Multicast PITCH (depth of book) day of
the same order flow instead: ``PREFIX.pcap`` and ``PREFIX.json`` only (there is no
BinaryFILE for PITCH).  Symbols are split into ``units`` contiguous alphabetical
ranges (default 32, at most 384 symbols per unit); unit ``u`` is sent on group
``(u - 1) % channels`` of each line (A 224.0.62.(2+group), B 233.19.3.(2+group)), all
on UDP port 30001; each datagram is one Sequenced Unit Header and messages of one
unit.  See docs/generator.md ("PITCH") for the mapping and its JSON keys
(``by_type`` keyed "0x21", ``messages`` counting the Time messages too,
``messages_without_time`` = the requested count, ``units``, ``packets_lost.both``).

``protocol="iex-tops"``, ``"iex-deep"`` or ``"iex-deepplus"`` writes the same order
flow as an IEX feed over IEX-TP v1: ``PREFIX.pcap`` and ``PREFIX.json`` only.  One
segment per datagram (40-byte header, little-endian, channel 1), one channel, one
multicast group per line (DEEP 233.215.21.4 / .132 port 10378, DEEP+ .8 / .138 port
10378, TOPS .3 / .131 port 10377).  The three feeds of one seed are the same market:
DEEP+ writes every order (Add Order, Order Modify, Order Delete, Order Executed,
Trade, Clear Book), DEEP the new total size of each price level an event changed
(Event Flags 0x01 on an event's last update), TOPS a Quote Update whenever the top
of book changes; all three the administrative messages, trades and breaks.  Line B
cuts every other segment of two or more messages in two (A and B segments differ;
the messages and their sequence numbers do not).  ``sessions`` (1..16) splits the
day into that many IEX-TP sessions: each ends with its books cleared and System
Event 'C' (End of Messages), the next starts with a new session id at sequence 1.
For IEX, ``messages`` is the model's count; the summary's ``messages`` is what the
feed wrote (``model_messages`` the count asked for), ``by_type`` is keyed "iex_" +
the type character ("iex_Q", "iex_8", "iex_a"), and ``iex``/``sessions`` describe
the feed and its sessions (docs/generator.md "IEX").

``generate(prefix, ...)`` writes ``PREFIX.pcap`` (nanosecond pcap of MoldUDP64 over
UDP/IPv4 multicast, line A and optionally line B), ``PREFIX.bin`` (NASDAQ BinaryFILE
of the same messages, all channels merged in timestamp order) and ``PREFIX.json``
(what was generated), and returns that JSON as a dict.  The day is byte-identical
for a given seed and arguments.

Conventions a reader of the files can rely on (see csrc/gen/, model.c and flow.c, for the model):
  - channel ``c`` (0-based) carries locates ``channels[c]["locates"]`` (contiguous,
    alphabetical like NASDAQ), on 233.54.12.(111+c) (A) / 233.49.196.(111+c) (B),
    UDP port 26477, and stamps tracking_number ``c + 1`` on every message, so the
    merged BinaryFILE can be split back into channels (system events have locate 0);
  - packets are flushed when the next message would overflow ``max_payload`` or
    arrives more than ``batch_ns`` (default 20 us; 2 us with ``rate``) after the
    packet's first message;
  - ``rate`` (messages per second, 0 = off) compresses the whole day into
    ``messages / rate`` seconds at a flat rate: the schedule (system events,
    directory, crosses, halts, imbalances) keeps its order and proportions, order
    flow is uniform in time, so a replay paced to the capture (``--speed realtime``)
    sees a steady rate with no idle hours; the normal day runs 04:00-20:00 with a
    U-shaped rate;
  - heartbeats (count 0) after each idle second, one end-of-session (count 0xFFFF)
    per channel at the end; loss draws are per packet and line, from their own
    random streams, so loss never changes the messages;
  - no instrument's book is ever crossed or locked (best bid < best ask after
    every message): adds and replaces are passive, and E/C execute the oldest
    order at the best price of its side.

Summary keys (PREFIX.json): ``messages`` (exactly as asked), ``by_type``, ``packets``/
``packets_sent``/``packets_lost`` (per line, every kind of packet), ``data_packets``,
``heartbeats`` and ``end_of_session`` (generated, once per channel, not per line),
``messages_per_packet`` (mean, max over data packets), ``rate`` and ``batch_ns`` (as
used), ``first_ts``/``last_ts`` (ITCH ns since midnight of the first and last message),
``first_capture_ns``/``last_capture_ns`` (pcap times), ``channels`` (name, session,
line_a, line_b, locates [lo, hi], tracking_number, counts), ``symbols`` (locate ->
ticker), ``trading_date``, ``midnight_ns``, ``last_order_reference``,
``last_match_number``, ``live_orders_at_end``, ``pool_full_events`` (adds turned into cancels
because an instrument's preallocated book was full; 0 on ordinary days), ``book_stats``
(``peak_live_orders``, ``levels_per_side_mean``/``levels_per_side_p99``, ``top5_share``,
``old_cancel_share``, ``top300_message_share``: what the day's books did, see
docs/generator.md); ``generate`` adds ``elapsed_s``, ``files``.
"""

from __future__ import annotations

import json
import os
import time
from typing import Optional

from .errors import GenError
from .progress import run_with_progress

try:
    # The generator is its own extension (feedhandler._gen, csrc/gen/), not part of
    # the feed handler's core.
    from ._gen import ffi, lib  # type: ignore[attr-defined]
except ImportError as exc:  # pragma: no cover - only on a broken install
    raise ImportError(
        "feedhandler's generator extension (feedhandler._gen) is not built: install the package "
        "with `pip install .` (or `pip install -e .`) so CFFI compiles csrc/gen/. Original error: %s" % exc
    ) from exc

LINES = {"a": 1, "ab": 2}
PROTOCOLS = {"itch": 0, "pitch": 1, "iex-tops": 2, "iex-deep": 3, "iex-deepplus": 4}
IEX_PROTOCOLS = ("iex-tops", "iex-deep", "iex-deepplus")
IEX_SESSIONS_MAX = 16
PITCH_UNITS_MAX = 32
PITCH_SYMBOLS_PER_UNIT = 384


def generate(
    out_prefix: str,
    messages: int = 1_000_000,
    symbols: int = 100,
    channels: int = 1,
    seed: int = 1,
    lines: str = "a",
    loss_a: float = 0.0,
    loss_b: float = 0.0,
    batch_ns: int = 0,
    max_payload: int = 0,
    heartbeat_ms: int = 0,
    rate: int = 0,
    progress: Optional[bool] = None,
    protocol: str = "itch",
    units: int = 0,
    sessions: int = 0,
) -> dict:
    """Generate a trading day; return the parsed ``PREFIX.json`` summary.

    ``progress`` draws a bar on stderr after the first second (default: when stderr
    is a terminal).  Raises ``GenError`` (a ``ValueError``) for bad arguments, ``OSError`` when an
    output cannot be written, ``MemoryError`` when the day does not fit in memory.
    """
    if lines not in LINES:
        raise GenError("lines must be 'a' or 'ab', got %r" % (lines,))
    if protocol not in PROTOCOLS:
        raise GenError("protocol must be one of %s, got %r" % (", ".join(map(repr, PROTOCOLS)), protocol))
    if units and protocol != "pitch":
        raise GenError("units is for protocol 'pitch' only")
    if sessions and protocol not in IEX_PROTOCOLS:
        raise GenError("sessions is for the IEX protocols only (%s)" % ", ".join(IEX_PROTOCOLS))
    ints = dict(
        messages=messages,
        symbols=symbols,
        channels=channels,
        seed=seed,
        batch_ns=batch_ns,
        max_payload=max_payload,
        heartbeat_ms=heartbeat_ms,
        rate=rate,
        units=units,
        sessions=sessions,
    )
    for name, v in ints.items():
        if isinstance(v, bool) or not isinstance(v, int):
            raise GenError("%s must be an integer, got %r" % (name, v))
    limits = dict(
        messages=2**64 - 1,
        seed=2**64 - 1,
        symbols=2**32 - 1,
        channels=2**32 - 1,
        batch_ns=2**32 - 1,
        max_payload=2**32 - 1,
        heartbeat_ms=2**32 - 1,
        rate=2**64 - 1,
        units=2**32 - 1,
        sessions=2**32 - 1,
    )
    for name, v in ints.items():
        if not 0 <= v <= limits[name]:
            raise GenError("%s out of range: %r" % (name, v))
    for name, v in (("loss_a", loss_a), ("loss_b", loss_b)):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise GenError("%s must be a number, got %r" % (name, v))
    prefix = os.fspath(out_prefix)
    if not prefix:
        raise GenError("empty output prefix")

    c_prefix = ffi.new("char[]", prefix.encode())
    cfg = ffi.new("fh_gen_cfg_t *")
    cfg.out_prefix = c_prefix
    cfg.messages = messages
    cfg.seed = seed
    cfg.symbols = symbols
    cfg.channels = channels
    cfg.lines = LINES[lines]
    cfg.max_payload = max_payload
    cfg.loss_a = float(loss_a)
    cfg.loss_b = float(loss_b)
    cfg.batch_ns = batch_ns
    cfg.heartbeat_ms = heartbeat_ms
    cfg.rate = rate
    cfg.protocol = PROTOCOLS[protocol]
    # IEX days carry their session count where PITCH days carry their units
    cfg.units = sessions if protocol in IEX_PROTOCOLS else units
    done = ffi.new("uint64_t *")
    err = ffi.new("char[512]")

    def work():
        return lib.fh_gen_run(cfg, done, err, len(err))

    start = time.monotonic()
    rc = run_with_progress(work, lambda: (int(done[0]), messages), "gen", enabled=progress, unit="msg")
    elapsed = time.monotonic() - start
    if rc != 0:
        msg = ffi.string(err).decode(errors="replace")
        if msg.startswith("invalid gen config: "):
            raise GenError(msg[len("invalid gen config: ") :])
        if msg.startswith("out of memory"):
            raise MemoryError(msg)
        raise OSError(msg)
    with open(prefix + ".json") as f:
        summary = json.load(f)
    summary["elapsed_s"] = elapsed
    summary.setdefault("protocol", protocol)
    if protocol == "pitch" or protocol in IEX_PROTOCOLS:
        summary["files"] = {"pcap": prefix + ".pcap", "json": prefix + ".json"}
    else:
        summary["files"] = {"pcap": prefix + ".pcap", "bin": prefix + ".bin", "json": prefix + ".json"}
    return summary
