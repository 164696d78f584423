"""The GLIMPSE 5.0 snapshot itself (:class:`Snapshot`) and what the builder,
the client and the server share of the protocol: End of Snapshot's message
type, SoupBinTCP's heartbeat interval, the reasons a snapshot is refused."""

from __future__ import annotations

import dataclasses
from typing import List

__all__ = ["Snapshot", "END_OF_SNAPSHOT", "EOS_LEN", "HEARTBEAT_S", "REASONS"]

END_OF_SNAPSHOT = b"G"
EOS_LEN = 21  # 'G' + Numeric(20)
HEARTBEAT_S = 1.0  # SoupBinTCP: a side sends a heartbeat after 1 s without sending

#: SnapshotError.reason values (counters are keyed by them).
REASONS = ("input", "connect", "rejected", "timeout", "closed", "corrupt", "too_long", "bad_message", "no_end")


@dataclasses.dataclass
class Snapshot:
    """A GLIMPSE snapshot: ``blocks`` holds its ITCH 5.0 messages, each after its
    u16 big-endian length (MoldUDP64 block / BinaryFILE framing), without the End
    of Snapshot message; ``sequence`` is End of Snapshot's sequence number (the
    first message the live feed must supply); ``messages`` how many messages
    ``blocks`` holds; ``session`` the MoldUDP64 / SoupBinTCP session name."""

    blocks: bytes
    sequence: int
    messages: int
    session: str
    instruments: int = 0  # Stock Directory messages
    orders: int = 0  # Add Order messages (live orders)
    #: messages of the session before ``sequence`` the capture did not hold (its
    #: own gaps): the snapshot is then incomplete.  Not sent over the wire.
    missing: int = dataclasses.field(default=0, compare=False)
    #: ITCH timestamp (ns since midnight) its messages carry.
    timestamp_ns: int = dataclasses.field(default=0, compare=False)

    def messages_list(self) -> List[bytes]:
        """The messages, one bytes each (tests, tools; not for a full day)."""
        out, b, off = [], self.blocks, 0
        while off + 2 <= len(b):
            n = int.from_bytes(b[off : off + 2], "big")
            out.append(b[off + 2 : off + 2 + n])
            off += 2 + n
        return out
