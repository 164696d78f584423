"""The segment's layout as numpy sees it: the slot and event dtypes, the event
types, the slot flags and the header states.

The segment keeps the compact unsigned layout of csrc/fh_api.h
(:func:`slot_dtype`, ``SHM_EVENT_DTYPE``); the C readers widen while they copy
(:func:`book_dtype`, ``EVENT_DTYPE``: every price and quantity int64).
tests/test_layout.py asserts every offset of both against the C structs.
"""

from __future__ import annotations

from typing import List, Tuple

import numpy as np

from ..core import lib

__all__ = [
    "SLOT_FIXED",
    "SLOT_FIELDS",
    "BOOK_FIELDS",
    "slot_dtype",
    "book_dtype",
    "EVENT_DTYPE",
    "SHM_EVENT_DTYPE",
    "EV_BBO",
    "EV_TRADE",
    "EV_STATE",
    "EV_STALE",
    "EV_SYSTEM",
    "EV_SILENT",
    "EV_SNAPSHOT",
    "EV_CBBO",
    "EVENT_NAMES",
    "SNAPSHOT_START",
    "SNAPSHOT_DONE",
    "SNAPSHOT_FAILED",
    "SNAPSHOT_PHASES",
    "FLAG_STALE",
    "FLAG_DROPPED",
    "FLAG_OP_HALT",
    "FLAG_DIRECTORY",
    "FLAG_SILENT",
    "STATES",
]

SLOT_FIXED = lib.FH_SHM_SLOT_FIXED

#: Fixed part of an instrument slot (fh_shm_slot_t); level arrays follow.
SLOT_FIELDS = [
    ("seq", "<u8", 0),
    ("exch_ts", "<u8", 8),
    ("rx_ts", "<u8", 16),
    ("publish_ts", "<u8", 24),
    ("updates", "<u8", 32),
    ("last_trade_shares", "<u8", 40),
    ("last_trade_match", "<u8", 48),
    ("last_trade_ts", "<u8", 56),
    ("noii_paired_shares", "<u8", 64),
    ("noii_imbalance_shares", "<u8", 72),
    ("last_trade_price", "<u4", 80),
    ("round_lot_size", "<u4", 84),
    ("n_bid", "<u4", 88),
    ("n_ask", "<u4", 92),
    ("luld_reference_price", "<u4", 96),
    ("luld_upper_price", "<u4", 100),
    ("luld_lower_price", "<u4", 104),
    ("noii_near_price", "<u4", 108),
    ("noii_far_price", "<u4", 112),
    ("noii_reference_price", "<u4", 116),
    ("locate", "<u2", 120),
    ("symbol", "S8", 122),
    ("trading_state", "u1", 130),
    ("reg_sho_action", "u1", 131),
    ("market_category", "u1", 132),
    ("noii_imbalance_direction", "u1", 133),
    ("flags", "u1", 134),
    ("venue", "u1", 135),
]

#: An event as the segment's rings hold it (fh_shm_event_t, 64 bytes).
SHM_EVENT_DTYPE = np.dtype(
    {
        "names": [
            "seq",
            "exch_ts",
            "rx_ts",
            "publish_ts",
            "locate",
            "type",
            "aux",
            "price1",
            "price2",
            "lane",
            "qty1",
            "qty2",
        ],
        "formats": ["<u8", "<u8", "<u8", "<u8", "<u2", "u1", "u1", "<u4", "<u4", "<u4", "<u8", "<u8"],
        "offsets": [0, 8, 16, 24, 32, 34, 35, 36, 40, 44, 48, 56],
        "itemsize": lib.FH_SHM_EVENT_SIZE,
    }
)

#: An event as :meth:`Segment.events` returns it (fh_read_event_t): prices and
#: quantities int64, the rest as in the ring.
EVENT_DTYPE = np.dtype(
    {
        "names": [
            "seq",
            "exch_ts",
            "rx_ts",
            "publish_ts",
            "price1",
            "price2",
            "qty1",
            "qty2",
            "locate",
            "type",
            "aux",
            "lane",
        ],
        "formats": ["<u8", "<u8", "<u8", "<u8", "<i8", "<i8", "<i8", "<i8", "<u2", "u1", "u1", "<u4"],
        "offsets": [0, 8, 16, 24, 32, 40, 48, 56, 64, 66, 67, 68],
        "itemsize": 72,
    }
)

EV_BBO, EV_TRADE, EV_STATE, EV_STALE, EV_SYSTEM, EV_SILENT = (
    lib.FH_EV_BBO,
    lib.FH_EV_TRADE,
    lib.FH_EV_STATE,
    lib.FH_EV_STALE,
    lib.FH_EV_SYSTEM,
    lib.FH_EV_SILENT,
)
EV_SNAPSHOT = lib.FH_EV_SNAPSHOT
#: The consolidated BBO of the event's instrument's symbol moved (a symbol
#: quoted on several venues): price1/qty1 best bid, price2/qty2 best ask,
#: aux = bid venue | ask venue << 4 (0xF: none); venue names: Segment.venues().
EV_CBBO = lib.FH_EV_CBBO
EVENT_NAMES = {
    EV_BBO: "bbo",
    EV_TRADE: "trade",
    EV_STATE: "state",
    EV_STALE: "stale",
    EV_SYSTEM: "system",
    EV_SILENT: "silent",
    EV_SNAPSHOT: "snapshot",
    EV_CBBO: "cbbo",
}
#: EV_SNAPSHOT's aux (locate 0): a stream asked for a snapshot (qty1 = its next
#: sequence), applied one (qty1 = the snapshot's sequence, qty2 = messages), or
#: went on without one (qty1 = its next sequence; its instruments stay STALE).
SNAPSHOT_START, SNAPSHOT_DONE, SNAPSHOT_FAILED = 0, 1, 2
SNAPSHOT_PHASES = {SNAPSHOT_START: "snapshot_start", SNAPSHOT_DONE: "snapshot_done", SNAPSHOT_FAILED: "snapshot_failed"}
FLAG_STALE, FLAG_DROPPED, FLAG_OP_HALT, FLAG_DIRECTORY, FLAG_SILENT = (
    lib.FH_SLOT_STALE,
    lib.FH_SLOT_DROPPED,
    lib.FH_SLOT_OP_HALT,
    lib.FH_SLOT_DIRECTORY,
    lib.FH_SLOT_SILENT,
)
#: The header's state (csrc/fh_api.h enum fh_shm_state; tests/test_layout.py
#: checks the values).  "stopped": the writer was asked to stop part-way
#: (SIGINT, SIGTERM, SIGHUP, Replay.stop): its books and counters are
#: consistent but hold only what it applied before it stopped.
STATES = {0: "starting", 1: "running", 2: "finished", 3: "stopped"}


def _record_dtype(fixed: List[Tuple[str, str, int]], levels: Tuple[Tuple[str, str, int], ...], depth: int) -> np.dtype:
    """A slot record: the `fixed` fields, then for bid and ask each of `levels`
    (name, format, width) as a [depth] array, the whole rounded up to 64 bytes."""
    names, formats, offsets = [], [], []
    for n, f, o in fixed:
        names.append(n)
        formats.append(f)
        offsets.append(o)
    off = SLOT_FIXED
    for side in ("bid", "ask"):
        for n, f, w in levels:
            names.append("%s_%s" % (side, n))
            formats.append((f, (depth,)))
            offsets.append(off)
            off += w * depth
    size = (off + 63) & ~63
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": size})


def slot_dtype(depth: int) -> np.dtype:
    """The numpy dtype of one slot as the segment stores it (fh_shm_slot_t and
    its level arrays: unsigned, compact).  Readers get :func:`book_dtype`."""
    return _record_dtype(SLOT_FIELDS, (("price", "<u4", 4), ("orders", "<u4", 4), ("shares", "<u8", 8)), depth)


#: The fixed part of a reader's slot record (fh_read_slot_t): every price and
#: quantity int64; timestamps, the sequence and match numbers u64.
BOOK_FIELDS = [
    ("seq", "<u8", 0),
    ("exch_ts", "<u8", 8),
    ("rx_ts", "<u8", 16),
    ("publish_ts", "<u8", 24),
    ("updates", "<i8", 32),
    ("last_trade_shares", "<i8", 40),
    ("last_trade_match", "<u8", 48),
    ("last_trade_ts", "<u8", 56),
    ("noii_paired_shares", "<i8", 64),
    ("noii_imbalance_shares", "<i8", 72),
    ("last_trade_price", "<i8", 80),
    ("round_lot_size", "<i8", 88),
    ("n_bid", "<i8", 96),
    ("n_ask", "<i8", 104),
    ("luld_reference_price", "<i8", 112),
    ("luld_upper_price", "<i8", 120),
    ("luld_lower_price", "<i8", 128),
    ("noii_near_price", "<i8", 136),
    ("noii_far_price", "<i8", 144),
    ("noii_reference_price", "<i8", 152),
    ("locate", "<u2", 160),
    ("symbol", "S8", 162),
    ("trading_state", "u1", 170),
    ("reg_sho_action", "u1", 171),
    ("market_category", "u1", 172),
    ("noii_imbalance_direction", "u1", 173),
    ("flags", "u1", 174),
    ("venue", "u1", 175),
]


def book_dtype(depth: int) -> np.dtype:
    """The numpy dtype of one slot as a reader gets it (:meth:`Segment.book`,
    :meth:`Segment.copy_books`): the fixed part (BOOK_FIELDS), then
    ``bid_price``, ``bid_orders``, ``bid_shares``, ``ask_price``, ``ask_orders``,
    ``ask_shares``, each ``int64[depth]``, best level first, zero past
    ``n_bid``/``n_ask``."""
    return _record_dtype(BOOK_FIELDS, (("price", "<i8", 8), ("orders", "<i8", 8), ("shares", "<i8", 8)), depth)
