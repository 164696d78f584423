"""Captures loaded whole for sending (``feedhandler send``).

A loader of its own, not the C input layer: that layer hands a frame to the
pipeline's parse (and the rewind index only the UDP datagrams of MoldUDP64
frames), never the whole frame to a caller, and it is the receive hot path.
It reads pcap (us or ns, either byte order) and pcapng (Ethernet interfaces),
plain, gzip (the gzip module) or zstd (through the ``zstd`` program), into one
byte array and numpy arrays of offsets, lengths, times and per-frame message
counts and line groups.
"""

from __future__ import annotations

import gzip
import shutil
import struct
import subprocess
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Optional, Sequence, Tuple

import numpy as np

from .errors import CaptureError

__all__ = ["Capture", "CaptureError", "load_capture", "NO_STAMP"]

_VLAN = (0x8100, 0x88A8, 0x9100)
#: A frame with no place for the TX stamp trailer (not IPv4): its stamp offset.
NO_STAMP = 0xFFFFFFFF


@dataclass
class Capture:
    """Every frame of a capture, in one byte array.

    Frame ``i`` is ``blob[off[i]:off[i] + length[i]]``, captured at ``ts_ns[i]``;
    ``ip_end[i]`` is where its IPv4 datagram ends (the Ethernet and VLAN headers
    plus the IP total length; NO_STAMP when it is not a whole IPv4 datagram),
    ``dst[i]`` its destination address (0 when not IPv4) and ``msgs[i]`` its
    messages (a MoldUDP64 datagram's message count, heartbeats and end of
    session 0; a PITCH unit's count; an IEX-TP segment's count; 1 for any
    other frame)."""

    path: str
    format: str
    compression: Optional[str]
    blob: Any
    off: np.ndarray
    length: np.ndarray
    ts_ns: np.ndarray
    ip_end: np.ndarray
    dst: np.ndarray
    msgs: np.ndarray

    @property
    def frames(self) -> int:
        return len(self.off)

    @property
    def messages(self) -> int:
        return int(self.msgs.sum())

    def groups(self) -> Dict[str, int]:
        """Frames per IPv4 destination address."""
        vals, counts = np.unique(self.dst[self.dst != 0], return_counts=True)
        return {_ip(int(v)): int(c) for v, c in zip(vals, counts)}


def _ip(v: int) -> str:
    return "%d.%d.%d.%d" % (v >> 24, (v >> 16) & 255, (v >> 8) & 255, v & 255)


def _read(path: str) -> Tuple[bytes, Optional[str]]:
    """The capture's bytes, decompressed; and its compression."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise CaptureError("%s: cannot read the capture: %s" % (path, exc.strerror or exc))
    if data[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(data), "gzip"
        except (OSError, EOFError, ValueError) as exc:
            raise CaptureError("%s: corrupt gzip: %s" % (path, exc))
    if data[:4] == b"\x28\xb5\x2f\xfd":
        exe = shutil.which("zstd")
        if exe is None:
            raise CaptureError("%s: a zstd capture, and no `zstd` program on PATH to decompress it" % path)
        p = subprocess.run([exe, "-dcq", path], capture_output=True)
        if p.returncode != 0:
            raise CaptureError("%s: zstd failed: %s" % (path, p.stderr.decode(errors="replace").strip()))
        return p.stdout, "zstd"
    return data, None


def load_capture(path: str) -> Capture:
    """Load a pcap or pcapng capture (plain, gzip or zstd) into memory."""
    data, compression = _read(path)
    if len(data) < 4:
        raise CaptureError("%s: not a pcap or pcapng capture (%d bytes)" % (path, len(data)))
    magic = struct.unpack_from("<I", data)[0]
    if magic in (0xA1B2C3D4, 0xA1B23C4D, 0xD4C3B2A1, 0x4D3CB2A1):
        fmt, recs = "pcap", _pcap_records(path, data)
    elif magic == 0x0A0D0D0A:
        fmt, recs = "pcapng", _pcapng_records(path, data)
    else:
        raise CaptureError(
            "%s: not a pcap or pcapng capture (plain, gzip or zstd); first bytes %s" % (path, data[:4].hex())
        )
    off, length, ts = [], [], []
    for o, n, t in recs:
        off.append(o)
        length.append(n)
        ts.append(t)
    if not off:
        raise CaptureError("%s: the capture holds no frame" % path)
    ip_end, dst, msgs = _classify(data, off, length)
    return Capture(
        path=path,
        format=fmt,
        compression=compression,
        blob=data,
        off=np.array(off, dtype=np.uint64),
        length=np.array(length, dtype=np.uint32),
        ts_ns=np.array(ts, dtype=np.uint64),
        ip_end=np.array(ip_end, dtype=np.uint32),
        dst=np.array(dst, dtype=np.uint32),
        msgs=np.array(msgs, dtype=np.uint32),
    )


def _pcap_records(path: str, data: bytes) -> Iterable[Tuple[int, int, int]]:
    magic = struct.unpack_from("<I", data)[0]
    e = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    frac = 1 if magic in (0xA1B23C4D, 0x4D3CB2A1) else 1000
    if len(data) < 24:
        raise CaptureError("%s: pcap file header cut short" % path)
    linktype = struct.unpack_from(e + "I", data, 20)[0] & 0x0FFFFFFF
    if linktype != 1:
        raise CaptureError("%s: link type %d: only Ethernet captures (link type 1) can be sent" % (path, linktype))
    rec = struct.Struct(e + "IIII")
    pos, end = 24, len(data)
    while pos < end:
        if pos + 16 > end:
            raise CaptureError("%s: record header cut short at byte %d" % (path, pos))
        sec, sub, caplen, _ = rec.unpack_from(data, pos)
        if pos + 16 + caplen > end:
            raise CaptureError("%s: record at byte %d runs past the end of the capture" % (path, pos))
        yield pos + 16, caplen, sec * 1_000_000_000 + sub * frac
        pos += 16 + caplen


def _pcapng_records(path: str, data: bytes) -> Iterable[Tuple[int, int, int]]:
    pos, end = 0, len(data)
    e = "<"
    ifs: list = []  # per interface: (linktype, ns per unit numerator, denominator, offset ns)
    last_ts = 0
    while pos < end:
        if pos + 12 > end:
            raise CaptureError("%s: pcapng block header cut short at byte %d" % (path, pos))
        btype = struct.unpack_from(e + "I", data, pos)[0]
        if btype == 0x0A0D0D0A:
            bom = data[pos + 8 : pos + 12]
            if bom == b"\x4d\x3c\x2b\x1a":
                e = "<"
            elif bom == b"\x1a\x2b\x3c\x4d":
                e = ">"
            else:
                raise CaptureError("%s: pcapng section header at byte %d has no byte-order magic" % (path, pos))
            ifs = []
        blen = struct.unpack_from(e + "I", data, pos + 4)[0]
        if blen < 12 or blen % 4 or pos + blen > end:
            raise CaptureError("%s: pcapng block at byte %d has a bad length %d" % (path, pos, blen))
        body, bend = pos + 8, pos + blen - 4
        if btype == 1:  # interface description
            linktype = struct.unpack_from(e + "H", data, body)[0]
            num, den, offset = 1000, 1, 0  # microseconds unless if_tsresol says otherwise
            o = body + 8
            while o + 4 <= bend:
                code, olen = struct.unpack_from(e + "HH", data, o)
                if code == 0:
                    break
                if code == 9 and olen >= 1:
                    r = data[o + 4]
                    units = 2 ** (r & 0x7F) if r & 0x80 else 10**r
                    num, den = 1_000_000_000, units
                elif code == 14 and olen >= 8:
                    offset = struct.unpack_from(e + "q", data, o + 4)[0] * 1_000_000_000
                o += 4 + ((olen + 3) & ~3)
            ifs.append((linktype, num, den, offset))
        elif btype in (6, 2, 3):  # enhanced, obsolete, simple packet blocks
            if btype == 3:
                ifid, caplen, start = 0, min(struct.unpack_from(e + "I", data, body)[0], bend - body - 4), body + 4
                ts = None
            elif btype == 6:
                ifid, hi, lo, caplen = struct.unpack_from(e + "IIII", data, body)
                start, ts = body + 20, (hi << 32) | lo
            else:
                ifid, _, hi, lo, caplen = struct.unpack_from(e + "HHIII", data, body)
                start, ts = body + 20, (hi << 32) | lo
            if ifid >= len(ifs):
                raise CaptureError("%s: packet block at byte %d names interface %d, not described" % (path, pos, ifid))
            linktype, num, den, offset = ifs[ifid]
            if linktype != 1:
                raise CaptureError(
                    "%s: interface %d has link type %d: only Ethernet captures can be sent" % (path, ifid, linktype)
                )
            if start + caplen > bend:
                raise CaptureError("%s: packet block at byte %d: its frame runs past the block" % (path, pos))
            if ts is not None:
                last_ts = ts * num // den + offset
            yield start, caplen, last_ts
        pos += blen


def _classify(data: bytes, offs: Sequence[int], lens: Sequence[int]) -> Tuple[list, list, list]:
    """Per frame: where its IPv4 datagram ends, its destination, its messages."""
    ip_end, dst, msgs = [], [], []
    be16 = struct.Struct(">H").unpack_from
    be32 = struct.Struct(">I").unpack_from
    for o, n in zip(offs, lens):
        end, d, m = NO_STAMP, 0, 1
        if n >= 14:
            l2 = 12
            et = be16(data, o + l2)[0]
            l2 += 2
            tags = 0
            while et in _VLAN and tags < 2 and n >= l2 + 4:
                et = be16(data, o + l2 + 2)[0]
                l2 += 4
                tags += 1
            if et == 0x0800 and n >= l2 + 20 and data[o + l2] >> 4 == 4:
                ihl = (data[o + l2] & 15) * 4
                tot = be16(data, o + l2 + 2)[0]
                if 20 <= ihl <= tot and l2 + tot <= n:
                    end, d = l2 + tot, be32(data, o + l2 + 16)[0]
                    if data[o + l2 + 9] == 17 and tot - ihl >= 8:
                        u = o + l2 + ihl
                        plen = min(be16(data, u + 4)[0], tot - ihl) - 8
                        p = u + 8
                        if (
                            plen >= 40
                            and data[p] == 1
                            and 0x8003 <= (data[p + 2] | data[p + 3] << 8) <= 0x8005
                            and data[p + 12] | data[p + 13] << 8 == plen - 40
                        ):
                            m = data[p + 14] | data[p + 15] << 8  # an IEX-TP segment: its count (0 heartbeat)
                        elif plen >= 8 and data[p] | data[p + 1] << 8 == plen:
                            m = data[p + 2]  # a PITCH sequenced unit: its count
                        elif plen >= 20:
                            c = be16(data, p + 18)[0]  # MoldUDP64: 0 heartbeat, 0xFFFF end of session
                            m = 0 if c == 0xFFFF else c
        ip_end.append(end)
        dst.append(d)
        msgs.append(m)
    return ip_end, dst, msgs
