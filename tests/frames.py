"""Byte-level builders for tests: ITCH messages, MoldUDP64 packets, frames and
capture files, written with struct independently of the C core and of the
generator, so that malformed variants can be made precisely."""

from __future__ import annotations

import gzip as _gzip
import struct
from typing import Iterable, List, Optional, Sequence, Tuple

SESSION = b"TESTSESS01"
PORT = 26477
GROUP_A = "233.54.12.111"
GROUP_B = "233.49.196.111"


def ts6(ns: int) -> bytes:
    return ns.to_bytes(6, "big")


def msg_A(ref=1, side=b"B", shares=100, stock=b"AAPL    ", price=1500000, locate=1, tracking=0, ts=34200000000000):
    return struct.pack(">cHH6sQcI8sI", b"A", locate, tracking, ts6(ts), ref, side, shares, stock, price)


def msg_D(ref=1, locate=1, tracking=0, ts=34200000000001):
    return struct.pack(">cHH6sQ", b"D", locate, tracking, ts6(ts), ref)


def msg_S(code=b"O", ts=1000):
    return struct.pack(">cHH6sc", b"S", 0, 0, ts6(ts), code)


def msg_R(locate=1, stock=b"AAPL    ", round_lot=100, ts=1000):
    """ITCH Stock Directory (39 bytes): names the instrument of a locate."""
    return struct.pack(
        ">cHH6s8sccIcc2scccccIc",
        b"R",
        locate,
        0,
        ts6(ts),
        stock,
        b"Q",
        b"N",
        round_lot,
        b"N",
        b"C",
        b"  ",
        b"P",
        b"N",
        b"N",
        b"1",
        b"N",
        0,
        b"N",
    )


def block(m: bytes, length: Optional[int] = None) -> bytes:
    return struct.pack(">H", len(m) if length is None else length) + m


def mold(
    msgs: Sequence[bytes] = (),
    seq: int = 1,
    count: Optional[int] = None,
    session: bytes = SESSION,
    raw_blocks: Optional[bytes] = None,
) -> bytes:
    body = raw_blocks if raw_blocks is not None else b"".join(block(m) for m in msgs)
    return session + struct.pack(">QH", seq, len(msgs) if count is None else count) + body


def _ip_checksum(h: bytes) -> int:
    s = sum(struct.unpack(">%dH" % (len(h) // 2), h))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ip_aton(a: str) -> bytes:
    return bytes(int(x) for x in a.split("."))


def frame(
    payload: bytes,
    dst: str = GROUP_A,
    dport: int = PORT,
    vlans: Sequence[int] = (),
    vlan_tpid: Sequence[int] = (),
    ip_options: bytes = b"",
    proto: int = 17,
    flags_frag: int = 0,
    version: int = 4,
    ihl: Optional[int] = None,
    ip_total: Optional[int] = None,
    udp_len: Optional[int] = None,
    ethertype: int = 0x0800,
    src: str = "10.0.0.1",
    sport: int = 40000,
) -> bytes:
    mac = bytes([0x01, 0x00, 0x5E]) + ip_aton(dst)[1:]
    mac = bytes([mac[0], mac[1], mac[2], mac[3] & 0x7F, mac[4], mac[5]])
    eth = mac + b"\x02\x00\x00\x00\x00\x01"
    for i, vid in enumerate(vlans):
        tpid = vlan_tpid[i] if i < len(vlan_tpid) else (0x88A8 if (len(vlans) > 1 and i == 0) else 0x8100)
        eth += struct.pack(">HH", tpid, vid)
    eth += struct.pack(">H", ethertype)
    udp = struct.pack(">HHHH", sport, dport, 8 + len(payload) if udp_len is None else udp_len, 0) + payload
    hl = 20 + len(ip_options)
    assert hl % 4 == 0
    total = hl + len(udp) if ip_total is None else ip_total
    hdr = (
        struct.pack(
            ">BBHHHBBH4s4s",
            (version << 4) | ((hl // 4) if ihl is None else ihl),
            0,
            total,
            7,
            flags_frag,
            32,
            proto,
            0,
            ip_aton(src),
            ip_aton(dst),
        )
        + ip_options
    )
    hdr = hdr[:10] + struct.pack(">H", _ip_checksum(hdr)) + hdr[12:]
    return eth + hdr + udp


Record = Tuple[int, bytes]  # (capture time ns since epoch, frame)


def pcap_bytes(
    records: Iterable[Record], ns: bool = True, swap: bool = False, linktype: int = 1, snaplen: int = 65535
) -> bytes:
    e = ">" if swap else "<"
    magic = 0xA1B23C4D if ns else 0xA1B2C3D4
    out = [struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for ts, f in records:
        sec, frac = divmod(ts, 1_000_000_000)
        if not ns:
            frac //= 1000
        out.append(struct.pack(e + "IIII", sec, frac, len(f), len(f)))
        out.append(f)
    return b"".join(out)


def _pad4(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def _block(e: str, btype: int, body: bytes) -> bytes:
    body = _pad4(body)
    n = 12 + len(body)
    return struct.pack(e + "II", btype, n) + body + struct.pack(e + "I", n)


def pcapng_bytes(
    records: Sequence[Record], interfaces: int = 2, tsresol: int = 9, swap: bool = False, simple: bool = False
) -> bytes:
    """pcapng with `interfaces` IDBs; packets spread over them round-robin (EPB),
    or all as Simple Packet Blocks on interface 0 when `simple`."""
    e = ">" if swap else "<"
    out = [_block(e, 0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1))]
    for i in range(interfaces):
        res = tsresol if i % 2 == 0 else 6
        opts = struct.pack(e + "HH", 9, 1) + _pad4(bytes([res])) + struct.pack(e + "HH", 0, 0)
        out.append(_block(e, 1, struct.pack(e + "HHI", 1, 0, 0) + opts))
    out.append(_block(e, 4, struct.pack(e + "HH", 0, 0)))  # name resolution block: no frames
    for k, (ts, f) in enumerate(records):
        if simple:
            out.append(_block(e, 3, struct.pack(e + "I", len(f)) + f))
            continue
        ifid = k % interfaces
        res = tsresol if ifid % 2 == 0 else 6
        units = ts // (10 ** (9 - res))
        out.append(_block(e, 6, struct.pack(e + "IIIII", ifid, units >> 32, units & 0xFFFFFFFF, len(f), len(f)) + f))
    return b"".join(out)


def parse_pcap(data: bytes) -> List[Record]:
    magic = struct.unpack("<I", data[:4])[0]
    e = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    ns = struct.unpack(e + "I", data[:4])[0] == 0xA1B23C4D
    off, out = 24, []
    while off + 16 <= len(data):
        sec, frac, cap, _ = struct.unpack(e + "IIII", data[off : off + 16])
        out.append((sec * 1_000_000_000 + (frac if ns else frac * 1000), data[off + 16 : off + 16 + cap]))
        off += 16 + cap
    return out


def mold_messages(f: bytes) -> List[bytes]:
    """The ITCH messages of one well-formed generated frame (plain Ethernet/IPv4/UDP)."""
    ihl = (f[14] & 15) * 4
    p = f[14 + ihl + 8 :]
    count = struct.unpack(">H", p[18:20])[0]
    if count in (0, 0xFFFF):
        return []
    off, out = 20, []
    for _ in range(count):
        n = struct.unpack(">H", p[off : off + 2])[0]
        out.append(p[off + 2 : off + 2 + n])
        off += 2 + n
    return out


def binfile_bytes(msgs: Iterable[bytes]) -> bytes:
    return b"".join(struct.pack(">H", len(m)) + m for m in msgs)


def gz(data: bytes) -> bytes:
    return _gzip.compress(data, compresslevel=1, mtime=0)


# ---------------------------------------------------------------- IEX-TP (struct, no scapy)
# Layouts: docs/iex.md (IEX-TP v1, TOPS 1.6, DEEP 1.0, DEEP+ 1.0); every field little-endian.

IEX_T0 = 1_700_000_000 * 10**9
IEX_TOPS, IEX_DEEP, IEX_DEEPPLUS = 0x8003, 0x8004, 0x8005


def iex_segment(proto, session, seq, msgs, offset=0, send_time=IEX_T0, channel=1, version=1, count=None, paylen=None):
    """An IEX-TP segment (a UDP payload): the 40-byte header, then each message
    after its u16 LE length.  ``seq`` is the wire's First Message Sequence Number."""
    body = b"".join(struct.pack("<H", len(m)) + m for m in msgs)
    return (
        struct.pack(
            "<BBHIIHHqqq",
            version,
            0,
            proto,
            channel,
            session,
            len(body) if paylen is None else paylen,
            len(msgs) if count is None else count,
            offset,
            seq,
            send_time,
        )
        + body
    )


def iex_sym(s: str) -> bytes:
    return s.encode().ljust(8)


def iex_system(code, ts=IEX_T0):
    return struct.pack("<cBq", b"S", ord(code), ts)


def iex_add(ref, side, shares, price, sym="ZIEXT", ts=IEX_T0):
    """DEEP+ Add Order; side '8' buy, '5' sell."""
    return struct.pack("<cBq8sqIq", b"a", ord(side), ts, iex_sym(sym), ref, shares, price)


def iex_modify(ref, shares, price, sym="ZIEXT", ts=IEX_T0, flags=1):
    return struct.pack("<cBq8sqIq", b"M", flags, ts, iex_sym(sym), ref, shares, price)


def iex_delete(ref, sym="ZIEXT", ts=IEX_T0):
    return struct.pack("<cBq8sq", b"R", 0, ts, iex_sym(sym), ref)


def iex_executed(ref, shares, price, trade_id, sym="ZIEXT", ts=IEX_T0):
    return struct.pack("<cBq8sqIqq", b"L", 0, ts, iex_sym(sym), ref, shares, price, trade_id)


def iex_clear(sym="ZIEXT", ts=IEX_T0):
    return struct.pack("<cBq8s", b"C", 0, ts, iex_sym(sym))


def iex_plu(side, flags, shares, price, sym="MSFT", ts=IEX_T0):
    """DEEP Price Level Update: side b'8' buy, b'5' sell; flags 1 = event complete."""
    return struct.pack("<cBq8sIq", side, flags, ts, iex_sym(sym), shares, price)


def iex_quote(bid_size, bid, ask, ask_size, sym="SPY", ts=IEX_T0, flags=0):
    return struct.pack("<cBq8sIqqI", b"Q", flags, ts, iex_sym(sym), bid_size, bid, ask, ask_size)


def iex_trade(shares, price, trade_id, sym="SPY", ts=IEX_T0, kind=b"T", flags=0):
    """Trade Report 'T' (or Trade Break, kind b'B')."""
    return struct.pack("<cBq8sIqq", kind, flags, ts, iex_sym(sym), shares, price, trade_id)


def iex_status(code, sym="ZIEXT", ts=IEX_T0, reason=b"    "):
    return struct.pack("<cBq8s4s", b"H", ord(code), ts, iex_sym(sym), reason)


def iex_official(kind, price, sym="ZIEXT", ts=IEX_T0):
    return struct.pack("<cBq8sq", b"X", ord(kind), ts, iex_sym(sym), price)


def iex_security_event(code, sym="ZIEXT", ts=IEX_T0):
    return struct.pack("<cBq8s", b"E", ord(code), ts, iex_sym(sym))
