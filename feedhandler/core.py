"""Loads the CFFI-built C core and checks it matches this Python package."""

from __future__ import annotations

from . import __version__
from .errors import ERR_LEN, c_message

try:
    from ._core import ffi, lib  # type: ignore[attr-defined]
except ImportError as exc:  # pragma: no cover - only on a broken install
    raise ImportError(
        "feedhandler's C core (feedhandler._core) is not built: install the package with "
        "`pip install .` (or `pip install -e .`) so CFFI compiles csrc/. Original error: %s" % exc
    ) from exc

_core_version = ffi.string(lib.fh_version()).decode()
if _core_version != __version__:  # a stale in-place build next to a newer checkout
    raise ImportError(
        "feedhandler C core version %s does not match the Python package %s: rebuild with "
        "`pip install -e .`" % (_core_version, __version__)
    )

ERR_NAMES = [ffi.string(lib.fh_err_name(i)).decode() for i in range(lib.FH_ERR__COUNT)]

# fh_build_info's on/off keys (the others are numbers or words).
_BUILD_FLAGS = ("zstd", "sanitize", "exact_buffers")


def build_info() -> str:
    """What the C core was built with, as the core says it: space-separated
    ``key=value`` words (fh_api.h, fh_build_info)."""
    buf = ffi.new("char[]", 256)
    n = lib.fh_build_info(buf, len(buf))
    if n >= len(buf):
        buf = ffi.new("char[]", n + 1)
        lib.fh_build_info(buf, len(buf))
    return ffi.string(buf).decode()


def build_features() -> dict:
    """What this install was built with::

        {"zstd": True,            # zstd inputs are read (libzstd found at build time)
         "sanitize": False,       # AddressSanitizer compiled in (FEEDHANDLER_SANITIZE=1)
         "exact_buffers": False,  # inputs read into exact-size heap buffers, not mapped
         "stream_buf": 8388608,   # bytes: the streaming buffer of compressed/piped inputs
         "stream_in": 1048576,    # bytes asked of each read(2) of them
         "compiler": "gcc-12.2.0",
         "dpdk": False}           # feedhandler._dpdk imports (`feedhandler run` works)

    Every key but ``dpdk`` comes from the core itself (:func:`build_info`)."""
    out: dict = {}
    for word in build_info().split():
        key, _, value = word.partition("=")
        if key in _BUILD_FLAGS:
            out[key] = value == "1"
        elif value.isdigit():
            out[key] = int(value)
        else:
            out[key] = value
    from .dpdk import available  # imports replay, which imports this module

    out["dpdk"] = available()
    return out


def errbuf():
    """A buffer for the C core's error messages (``char[ERR_LEN]``)."""
    return ffi.new("char[]", ERR_LEN)


def errstr(buf) -> str:
    """The message the C core wrote into ``buf``; to raise it, use
    :func:`feedhandler.errors.c_error`."""
    return c_message(ffi, buf)


# ------------------------------------------------------------------ decoding
# Field lists per ITCH type, read from the C structs themselves so Python can
# never drift from the layout.  Every 1-byte ITCH field is Alpha(1): it comes
# back as a 1-char str; char[N] fields as the N wire bytes.
_BODY_MEMBER = {t: t for t in "SRHYLVWKJhAEXCDUPQBINO"}
_BODY_MEMBER["F"] = "A"


def _fields_of(member: str):
    ctype = ffi.typeof("fh_itch_%s_t" % member)
    out = []
    for name, field in ctype.fields:
        if name.startswith("_"):
            continue
        t = field.type
        if t.kind == "array":
            out.append((name, "bytes", t.length))
        elif t.cname == "uint8_t":
            out.append((name, "char", 1))
        else:
            out.append((name, "int", 0))
    return out


_FIELDS = {t: _fields_of(m) for t, m in _BODY_MEMBER.items()}
_FIELDS["A"] = [f for f in _FIELDS["A"] if f[0] != "attribution"]

#: ITCH 5.0 message types and their wire lengths (type byte included).
MSG_LENGTHS = {t: lib.fh_itch_msg_len(ord(t)) for t in _BODY_MEMBER}


def msg_to_dict(m) -> dict:
    """A decoded ``fh_book_op_t`` as a dict named like the C struct fields."""
    t = chr(m.type)
    body = getattr(m.u, _BODY_MEMBER[t])
    d = {"type": t, "stock_locate": m.stock_locate, "tracking_number": m.tracking_number, "timestamp": m.timestamp}
    for name, kind, n in _FIELDS[t]:
        v = getattr(body, name)
        if kind == "bytes":
            d[name] = bytes(ffi.buffer(v, n))
        elif kind == "char":
            d[name] = chr(v)
        else:
            d[name] = int(v)
    return d


def decode_message(data: bytes) -> dict:
    """Decode one ITCH 5.0 message (type byte first, exact length) with the C decoder."""
    m = ffi.new("fh_book_op_t *")
    rc = lib.fh_itch_decode(data, len(data), m)
    if rc == lib.FH_DECODE_UNKNOWN_TYPE:
        raise ValueError("unknown ITCH message type %r" % data[:1])
    if rc == lib.FH_DECODE_BAD_LENGTH:
        raise ValueError(
            "ITCH %r message of %d bytes, expected %d" % (chr(data[0]), len(data), lib.fh_itch_msg_len(data[0]))
        )
    if rc != lib.FH_DECODE_OK:
        raise ValueError("empty ITCH message")
    return msg_to_dict(m)


BOOK_COUNTERS = [name for name, _ in ffi.typeof("fh_book_counters_t").fields]


def type_key(t: int) -> str:
    """A message type as stats-json's ``by_type`` keys it: the ITCH type letter
    ("A"), a Cboe PITCH type as "0x" and two lowercase hex digits ("0x21"), an
    IEX type (counted at 0x80 | its type byte) as "iex_" and its character
    ("iex_Q", "iex_8", "iex_a").  They never share a counter: every ITCH type
    is a letter below 0x80, every PITCH type is below 0xA0 and no letter, and
    every IEX type byte is a letter or digit, so 0x80 | it is 0xB0 or above."""
    if t >= IEX_BY_TYPE_MIN:
        return "iex_" + chr(t & 0x7F)
    return chr(t) if chr(t).isascii() and chr(t).isalpha() else "0x%02x" % t


#: The lowest ``by_type`` index an IEX type is counted at (0x80 | '0').
IEX_BY_TYPE_MIN = 0xB0


def stats_to_dict(st) -> dict:
    """An ``fh_stats_t`` as the stats-json contract's fields (plus extras)."""
    by_type = {type_key(i): int(st.by_type[i]) for i in range(256) if st.by_type[i]}
    errors = {ERR_NAMES[i]: int(st.errors[i]) for i in range(lib.FH_ERR__COUNT) if st.errors[i]}
    elapsed = st.elapsed_ns / 1e9
    return {
        "packets": int(st.packets),
        "messages": int(st.messages),
        "by_type": by_type,
        "gaps": int(st.gaps),
        "recovered": int(st.recovered),
        "duplicates": int(st.duplicates),
        "errors": errors,
        "elapsed_s": elapsed,
        "msgs_per_s": (st.messages / elapsed) if elapsed > 0 else 0.0,
        "bytes": int(st.bytes),
        "mold_packets": int(st.mold_packets),
        "pitch_packets": int(st.pitch_packets),
        "unit_clears": int(st.unit_clears),
        "iex_packets": int(st.iex_packets),
        "iex_clears": int(st.iex_clears),
        "cbbo_full": int(st.cbbo_full),
        "heartbeats": int(st.heartbeats),
        "end_of_session": int(st.end_of_session),
        "streams": int(st.streams),
        "checksum": "%016x" % st.checksum,
        "first_ts_ns": int(st.first_ts_ns),
        "last_ts_ns": int(st.last_ts_ns),
        "book": {name: int(getattr(st.book, name)) for name in BOOK_COUNTERS},
        "session_changes": int(st.session_changes),
        "silences": int(st.silences),
        "nic_imissed": int(st.nic_imissed),
        "nic_ierrors": int(st.nic_ierrors),
        "nic_rx_nombuf": int(st.nic_rx_nombuf),
        "pkt_applied": int(st.pkt_applied),
        "pkt_duplicate": int(st.pkt_duplicate),
        "pkt_rejected": int(st.pkt_rejected),
        "pkt_held": int(st.pkt_held),
        "pkt_late": int(st.pkt_late),
        "late": int(st.late),
        "rx_time_back": int(st.rx_time_back),
        "snapshots": int(st.snapshots),
        "snapshot_messages": int(st.snapshot_messages),
        "snapshot_failures": int(st.snapshot_failures),
        "snapshot_buffered": int(st.snapshot_buffered),
        "snapshot_contained": int(st.snapshot_contained),
        "snapshot_recover_ns": int(st.snapshot_recover_ns),
    }


LEDGER_PARTS = ("pkt_rejected", "heartbeats", "end_of_session", "pkt_applied", "pkt_duplicate", "pkt_held", "pkt_late")


def ledger(stats: dict) -> dict:
    """The packet ledger of a stats dict: where every packet (frame, or
    BinaryFILE record) went.  ``unaccounted`` is packets minus the parts: 0
    always (a test checks it after every chaos and mutation run)."""
    parts = {k: int(stats.get(k, 0)) for k in LEDGER_PARTS}
    return dict(packets=int(stats["packets"]), **parts, unaccounted=int(stats["packets"]) - sum(parts.values()))


def decode_frame(frame: bytes, cap: int = 1024):
    """Parse one Ethernet frame down to its ITCH messages (no session state).

    Returns ``(messages, stats)``: a list of dicts (see :func:`msg_to_dict`) and
    the stats dict of what was counted (errors by reason included)."""
    out = ffi.new("fh_book_op_t[]", cap)
    st = ffi.new("fh_stats_t *")
    n = lib.fh_decode_frame(frame, len(frame), out, cap, st)
    return [msg_to_dict(out[i]) for i in range(n)], stats_to_dict(st)


def merge_stats(parts) -> dict:
    """Counters of several lanes (threads) as one: sums, except the elapsed
    time (the lanes ran at the same time: the longest), capture time span (min
    first, max last) and the checksum (a sum modulo 2**64).  Note that
    book.orders_peak becomes the sum of the lanes' peaks (an upper bound)."""
    parts = list(parts)
    if len(parts) == 1:
        return parts[0]
    out = {}
    for k in parts[0]:
        vals = [p[k] for p in parts]
        if k in ("by_type", "errors", "book"):
            d = {}
            for v in vals:
                for kk, n in v.items():
                    d[kk] = d.get(kk, 0) + n
            out[k] = {kk: n for kk, n in d.items() if n or k == "book"}
        elif k == "elapsed_s":
            out[k] = max(vals)
        elif k == "first_ts_ns":
            nz = [v for v in vals if v]
            out[k] = min(nz) if nz else 0
        elif k in ("last_ts_ns", "counters_updated_ns", "snapshot_recover_ns"):
            out[k] = max(vals)
        elif k == "checksum":
            out[k] = "%016x" % (sum(int(v, 16) for v in vals) & (2**64 - 1))
        elif isinstance(vals[0], (int, float)):
            out[k] = sum(vals)
        else:
            out[k] = vals[0]
    out["msgs_per_s"] = out["messages"] / out["elapsed_s"] if out.get("elapsed_s") else 0.0
    return out
