"""An independent reference L3 order book for the book-correctness tests.

Plain dicts, fed ITCH 5.0 messages as raw bytes and parsed here with struct: it
shares no code with the C core, the generator or the scapy layers.  The rules
are those of docs/architecture.md ("Book rules") as spelled out for the C book:

- orders are keyed by order reference number; A/F add (ref, side, shares,
  price, locate of the message header);
- E and C reduce the order (C at its own price: the book does not care), an
  execute larger than the order clamps to it (exec_clamped); an order at 0
  shares is removed; X likewise (cancel_clamped); D removes;
- U: the original must be live (else unknown_ref and the message is ignored);
  the original is removed, then the new order is added with the original's side
  and locate (new ref live -> replaced, add_replaced; zero shares or price ->
  zero_rejected, nothing added, the original stays removed);
- E/C/X/D/U on a reference that is not live: unknown_ref, ignored;
- A/F on a live reference replaces it (add_replaced); zero shares or zero price
  -> zero_rejected; side not 'B'/'S' -> bad_side;
- a message for an instrument whose stock locate is 0 or > max_instruments is
  ignored (locate_range): the per-instrument types the books keep state for,
  A F P Q H h Y R J I (S, V, W carry locate 0 by design and are not counted;
  L, K, N, O, B touch no book and are not counted either); E/X/D/C/U act on the
  order's stored locate, not the header's;
- at max_orders live orders an add is dropped (order_full) and its instrument
  flagged "dropped";
- halts change nothing for the books.

Not modelled: the price-level capacity (--max-levels).  The C book keeps
levels in an arena of power-of-two blocks per instrument side, so which add
finds it full is an implementation matter; the tests only check that running
out is survived and counted (level_full).

Order of checks for an add (A/F, and the new half of U): locate, side, zero,
live reference (replace), capacity.  So a replace never fails for capacity,
because the old order is removed first.
"""

from __future__ import annotations

import struct
from typing import Dict, Iterable, Iterator, List, Tuple

ITCH_LEN = {
    "S": 12,
    "R": 39,
    "H": 25,
    "Y": 20,
    "L": 26,
    "V": 35,
    "W": 12,
    "K": 28,
    "J": 35,
    "h": 21,
    "A": 36,
    "F": 40,
    "E": 31,
    "C": 36,
    "X": 23,
    "D": 19,
    "U": 35,
    "P": 44,
    "Q": 40,
    "B": 19,
    "I": 50,
    "N": 20,
    "O": 48,
}

DEFAULT_MAX_ORDERS = 2097152
DEFAULT_MAX_INSTRUMENTS = 65535  # ITCH locates and PITCH instrument ids share the 16-bit space

# Per-instrument messages checked against the instrument capacity.
LOCATE_TYPES = frozenset("AFPQHhYRJI")

# The fields of fh_book_counters_t this book computes (publishes/events are
# shared-memory matters, not book matters).
COUNTER_KEYS = (
    "orders_live",
    "orders_peak",
    "adds",
    "executes",
    "cancels",
    "deletes",
    "replaces",
    "trades",
    "breaks",
    "unknown_ref",
    "add_replaced",
    "exec_clamped",
    "cancel_clamped",
    "zero_rejected",
    "bad_side",
    "locate_range",
    "order_full",
    "level_full",
)  # level_full stays 0

# The counters whose meaning the brief pins down exactly (compared strictly).
STRICT_KEYS = (
    "adds",
    "executes",
    "cancels",
    "deletes",
    "replaces",
    "unknown_ref",
    "add_replaced",
    "exec_clamped",
    "cancel_clamped",
    "zero_rejected",
    "bad_side",
    "locate_range",
    "order_full",
    "orders_live",
)

CSV_HEADER = "locate,symbol,side,level,price,shares,orders"

_HDR = struct.Struct(">cHH6s")
_A = struct.Struct(">QcI8sI")  # after the 11-byte header
_E = struct.Struct(">QIQ")
_C = struct.Struct(">QIQcI")
_X = struct.Struct(">QI")
_D = struct.Struct(">Q")
_U = struct.Struct(">QQII")


class RefBook:
    def __init__(self, max_orders: int = DEFAULT_MAX_ORDERS, max_instruments: int = DEFAULT_MAX_INSTRUMENTS):
        self.max_orders = max_orders
        self.max_instruments = max_instruments
        self.orders: Dict[int, list] = {}  # ref -> [locate, side, shares, price]
        self.levels: Dict[Tuple[int, str], Dict[int, list]] = {}  # (locate, side) -> price -> [shares, orders]
        self.n_levels = 0
        self.symbols: Dict[int, str] = {}
        self.dropped = set()  # locates flagged: a capacity was exhausted
        self.halted: Dict[int, str] = {}  # locate -> last H trading state (informational)
        self.counters = {k: 0 for k in COUNTER_KEYS}

    # ------------------------------------------------------------ order store

    def _level_add(self, locate: int, side: str, price: int, shares: int) -> None:
        book = self.levels.setdefault((locate, side), {})
        lv = book.get(price)
        if lv is None:
            book[price] = [shares, 1]
            self.n_levels += 1
        else:
            lv[0] += shares
            lv[1] += 1

    def _level_sub(self, locate: int, side: str, price: int, shares: int, remove_order: bool) -> None:
        book = self.levels[(locate, side)]
        lv = book[price]
        lv[0] -= shares
        if remove_order:
            lv[1] -= 1
        assert lv[0] >= 0 and lv[1] >= 0
        if lv[1] == 0:
            assert lv[0] == 0, "level with no orders but shares"
            del book[price]
            self.n_levels -= 1

    def _remove(self, ref: int) -> None:
        locate, side, shares, price = self.orders.pop(ref)
        self._level_sub(locate, side, price, shares, True)
        self.counters["orders_live"] = len(self.orders)

    def _reduce(self, ref: int, n: int) -> bool:
        """Take n shares (n <= the order's) off; True if the order went to 0 and was removed."""
        o = self.orders[ref]
        if n >= o[2]:
            self._remove(ref)
            return True
        o[2] -= n
        self._level_sub(o[0], o[1], o[3], n, False)
        return False

    def _add(self, ref: int, locate: int, side: str, shares: int, price: int) -> bool:
        c = self.counters
        if side not in ("B", "S"):
            c["bad_side"] += 1
            return False
        if shares == 0 or price == 0:
            c["zero_rejected"] += 1
            return False
        if ref in self.orders:
            c["add_replaced"] += 1
            self._remove(ref)
        if len(self.orders) >= self.max_orders:
            c["order_full"] += 1
            self.dropped.add(locate)
            return False
        self.orders[ref] = [locate, side, shares, price]
        self._level_add(locate, side, price, shares)
        c["adds"] += 1
        c["orders_live"] = len(self.orders)
        if c["orders_live"] > c["orders_peak"]:
            c["orders_peak"] = c["orders_live"]
        return True

    def _locate_ok(self, locate: int) -> bool:
        return 1 <= locate <= self.max_instruments

    # ------------------------------------------------------------ messages

    def apply(self, m: bytes) -> None:
        t = chr(m[0])
        n = ITCH_LEN.get(t)
        if n is None or n != len(m):
            return  # the decoder skips these; so does the book
        locate = (m[1] << 8) | m[2]
        c = self.counters
        if t in LOCATE_TYPES and not self._locate_ok(locate):
            c["locate_range"] += 1
            return
        if t == "A" or t == "F":
            ref, side, shares, _stock, price = _A.unpack_from(m, 11)
            self._add(ref, locate, side.decode("latin-1"), shares, price)
        elif t == "E":
            ref, shares, _match = _E.unpack_from(m, 11)
            if ref not in self.orders:
                c["unknown_ref"] += 1
                return
            if shares > self.orders[ref][2]:
                c["exec_clamped"] += 1
            self._reduce(ref, shares)
            c["executes"] += 1
            c["trades"] += 1
        elif t == "C":
            ref, shares, _match, printable, _price = _C.unpack_from(m, 11)
            if ref not in self.orders:
                c["unknown_ref"] += 1
                return
            if shares > self.orders[ref][2]:
                c["exec_clamped"] += 1
            self._reduce(ref, shares)
            c["executes"] += 1
            if printable == b"Y":
                c["trades"] += 1
        elif t == "X":
            ref, shares = _X.unpack_from(m, 11)
            if ref not in self.orders:
                c["unknown_ref"] += 1
                return
            if shares > self.orders[ref][2]:
                c["cancel_clamped"] += 1
            self._reduce(ref, shares)
            c["cancels"] += 1
        elif t == "D":
            (ref,) = _D.unpack_from(m, 11)
            if ref not in self.orders:
                c["unknown_ref"] += 1
                return
            self._remove(ref)
            c["deletes"] += 1
        elif t == "U":
            old, new, shares, price = _U.unpack_from(m, 11)
            if old not in self.orders:
                c["unknown_ref"] += 1
                return
            o_locate, o_side = self.orders[old][0], self.orders[old][1]
            self._remove(old)
            c["replaces"] += 1
            self._add(new, o_locate, o_side, shares, price)
        elif t == "R":
            self.symbols[locate] = m[11:19].decode("latin-1").rstrip(" ")
        elif t == "H":
            self.halted[locate] = chr(m[19])
        elif t == "P" or t == "Q":
            c["trades"] += 1
        elif t == "B":
            c["breaks"] += 1

    def feed(self, msgs: Iterable[bytes]) -> "RefBook":
        for m in msgs:
            self.apply(m)
        return self

    def feed_binfile(self, data: bytes) -> "RefBook":
        return self.feed(iter_binfile(data))

    # ------------------------------------------------------------ views

    def depth(self, locate: int, side: str, depth: int = 1 << 30) -> List[Tuple[int, int, int]]:
        """[(price, shares, orders)] best first."""
        book = self.levels.get((locate, side), {})
        prices = sorted(book, reverse=(side == "B"))[:depth]
        return [(p, book[p][0], book[p][1]) for p in prices]

    def dump_csv(self, depth: int) -> str:
        out = [CSV_HEADER]
        locates = sorted({loc for (loc, _s), b in self.levels.items() if b})
        for loc in locates:
            sym = self.symbols.get(loc, "")
            for side in ("B", "S"):
                for i, (p, sh, n) in enumerate(self.depth(loc, side, depth), 1):
                    out.append("%d,%s,%s,%d,%d,%d,%d" % (loc, sym, side, i, p, sh, n))
        return "\n".join(out) + "\n"

    def book_counters(self, keys: Iterable[str] = COUNTER_KEYS) -> Dict[str, int]:
        return {k: self.counters[k] for k in keys}

    def check_invariants(self) -> None:
        """The level view equals a from-scratch aggregation of the orders."""
        agg: Dict[Tuple[int, str], Dict[int, list]] = {}
        for loc, side, sh, p in self.orders.values():
            lv = agg.setdefault((loc, side), {}).setdefault(p, [0, 0])
            lv[0] += sh
            lv[1] += 1
            assert sh > 0 and p > 0 and side in ("B", "S") and 1 <= loc <= self.max_instruments
        assert {k: v for k, v in self.levels.items() if v} == agg
        assert self.n_levels == sum(len(v) for v in agg.values())
        assert len(self.orders) <= self.max_orders


def iter_binfile(data: bytes) -> Iterator[bytes]:
    pos, end = 0, len(data)
    while pos + 2 <= end:
        n = (data[pos] << 8) | data[pos + 1]
        yield data[pos + 2 : pos + 2 + n]
        pos += 2 + n


def book_from_binfile(path: str, **kw) -> RefBook:
    with open(path, "rb") as f:
        return RefBook(**kw).feed_binfile(f.read())
