"""Configuration, checked before anything is allocated: the channel config
(TOML) and :class:`ReplayConfig`, everything a replay or a live run is set up
with.

A channel config, as docs/architecture.md specifies::

    [[channel]]
    name = "itch-1"
    line_a = "233.54.12.111:26477"
    line_b = "233.49.196.111:26477"     # optional
    rerequest = "127.0.0.1:26500"       # optional MoldUDP64 re-request server
    snapshot = "127.0.0.1:26600"        # optional GLIMPSE snapshot server (SoupBinTCP)
    core = 0

Every value is checked here, with messages that name the channel (or the
field) and the key.  This module imports neither numpy nor the C core: a
config can be loaded and checked on a machine where the core is not built
(tests/test_package_layout.py holds it to that).
"""

from __future__ import annotations

import dataclasses
import math
import operator
import os
import re
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from .endpoints import Endpoint, EndpointError, parse_endpoint as _parse_endpoint
from .errors import ConfigError, ReplayConfigError

__all__ = [
    "Channel",
    "ConfigError",
    "EndpointError",
    "ReplayConfig",
    "ReplayConfigError",
    "MODE_NAMES",
    "cores_of",
    "load",
    "parse_endpoint",
]

try:  # Python 3.11+
    import tomllib as _toml
except ImportError:  # pragma: no cover - older Pythons
    try:
        import tomli as _toml  # type: ignore
    except ImportError:
        _toml = None


@dataclass(frozen=True)
class Channel:
    """One channel of a config: its lines (multicast group, UDP port), optional
    re-request server, and the core whose thread (lane) handles it."""

    name: str
    line_a: Endpoint
    line_b: Optional[Endpoint]
    rerequest: Optional[Endpoint]
    core: int
    #: GLIMPSE snapshot server (SoupBinTCP) for late join and unrecoverable gaps.
    snapshot: Optional[Endpoint] = None
    #: "itch" (MoldUDP64 / ITCH 5.0), "pitch" (Cboe Multicast PITCH) or "iex"
    #: (IEX-TP: IEX TOPS, DEEP or DEEP+, told from each segment's protocol id).
    protocol: str = "itch"
    #: Venue whose books the channel feeds (books are per venue): at most 7
    #: letters or digits; default XNAS for itch, BATS for pitch, IEXG for iex.
    venue: str = ""

    def venue_name(self) -> str:
        """The venue, or its protocol's default."""
        return self.venue or DEFAULT_VENUE[self.protocol]

    def lines(self) -> List[Endpoint]:
        """Line A, then line B when there is one."""
        return [l for l in (self.line_a, self.line_b) if l]


PROTOCOLS = ("itch", "pitch", "iex")
DEFAULT_VENUE = {"itch": "XNAS", "pitch": "BATS", "iex": "IEXG"}
#: The C core's number for each protocol (fh_lane_set_venue).
PROTOCOL_IDS = {"itch": 0, "pitch": 1, "iex": 2}
#: Instrument id blocks one run may hold (16384 + 12288 * block + rank): a
#: PITCH venue takes one, an IEX venue three (TOPS, DEEP and DEEP+ each have
#: their own instruments).
MAX_PITCH_VENUES = 4
ID_BLOCKS = {"itch": 0, "pitch": 1, "iex": 3}


def venues_of(channels: Sequence["Channel"]) -> List[Tuple[str, str]]:
    """The run's venues as (name, protocol), by index: the ITCH venue first
    (XNAS when no channel is ITCH), then PITCH and IEX venues in config order."""
    itch = [ch.venue_name() for ch in channels if ch.protocol == "itch"]
    out = [(itch[0] if itch else "XNAS", "itch")]
    for ch in channels:
        if ch.protocol != "itch" and (ch.venue_name(), ch.protocol) not in out:
            out.append((ch.venue_name(), ch.protocol))
    return out


def parse_endpoint(value, what: str, multicast: bool = False) -> Endpoint:
    """An ``IPv4:PORT`` config value as (address, port); see :func:`feedhandler.endpoints.parse_endpoint`.
    Raises :class:`EndpointError` (a :class:`ConfigError`) naming ``what``."""
    return _parse_endpoint(value, what, multicast=multicast)


def load(path: str, cores: Optional[Sequence[int]] = None) -> List[Channel]:
    """Read and check a channel config.  `cores` (from --cores) bounds the
    cores channels may name; without it, any CPU of this machine."""
    if _toml is None:
        raise ConfigError("reading TOML needs Python 3.11+ or `pip install tomli`")
    try:
        with open(path, "rb") as f:
            doc = _toml.load(f)
    except OSError as exc:
        raise ConfigError("cannot read config %s: %s" % (path, exc.strerror))
    except _toml.TOMLDecodeError as exc:
        raise ConfigError("config %s is not valid TOML: %s" % (path, exc))
    except UnicodeDecodeError as exc:
        raise ConfigError("config %s is not UTF-8 text (byte %d): TOML files are UTF-8" % (path, exc.start))
    except RecursionError:
        raise ConfigError("config %s nests arrays or tables too deeply to read" % path)
    unknown = set(doc) - {"channel"}
    if unknown:
        raise ConfigError(
            "config %s: unknown top-level key(s) %s (expected [[channel]] tables)" % (path, ", ".join(sorted(unknown)))
        )
    raw = doc.get("channel")
    if not isinstance(raw, list) or not raw:
        raise ConfigError("config %s: no [[channel]] tables" % path)
    ncpu = os.cpu_count() or 1
    channels, seen_lines, names = [], {}, set()
    for i, ch in enumerate(raw):
        where = "config %s, channel %d" % (path, i + 1)
        if not isinstance(ch, dict):
            raise ConfigError("%s: not a table" % where)
        extra = set(ch) - {"name", "line_a", "line_b", "rerequest", "snapshot", "core", "protocol", "venue"}
        if extra:
            raise ConfigError("%s: unknown key(s) %s" % (where, ", ".join(sorted(extra))))
        name = ch.get("name", "channel-%d" % (i + 1))
        if not isinstance(name, str) or not name:
            raise ConfigError("%s: name must be a non-empty string" % where)
        where = "config %s, channel %r" % (path, name)
        if name in names:
            raise ConfigError("%s: duplicate channel name" % where)
        names.add(name)
        if "line_a" not in ch:
            raise ConfigError("%s: line_a is required" % where)
        a = parse_endpoint(ch["line_a"], where + ", line_a", multicast=True)
        b = parse_endpoint(ch["line_b"], where + ", line_b", multicast=True) if "line_b" in ch else None
        rr = parse_endpoint(ch["rerequest"], where + ", rerequest") if "rerequest" in ch else None
        snap = parse_endpoint(ch["snapshot"], where + ", snapshot") if "snapshot" in ch else None
        protocol = ch.get("protocol", "itch")
        if protocol not in PROTOCOLS:
            raise ConfigError('%s: protocol must be "itch", "pitch" or "iex", not %r' % (where, protocol))
        venue = ch.get("venue", "")
        if not isinstance(venue, str) or (venue and not (venue.isascii() and venue.isalnum() and len(venue) <= 7)):
            raise ConfigError(
                '%s: venue must be 1 to 7 letters or digits (a MIC such as "XNAS"), not %r' % (where, venue)
            )
        venue = venue.upper()
        if protocol != "itch" and (rr or snap):
            raise ConfigError(
                "%s: %s is a MoldUDP64/GLIMPSE server; a %s channel recovers from its A/B lines "
                "(%s not supported)"
                % (
                    where,
                    "rerequest" if rr else "snapshot",
                    protocol.upper(),
                    "Cboe's GRP and Spin are" if protocol == "pitch" else "IEX's gap fill and SNAP are",
                )
            )
        core = ch.get("core", 0)
        if isinstance(core, bool) or not isinstance(core, int):
            raise ConfigError("%s: core must be an integer" % where)
        if cores is not None and core not in cores:
            raise ConfigError("%s: core %d is not in --cores %s" % (where, core, ",".join(map(str, cores))))
        if not 0 <= core < ncpu:
            raise ConfigError("%s: core %d does not exist (this machine has CPUs 0-%d)" % (where, core, ncpu - 1))
        for line in (a, b):
            if line is None:
                continue
            if line in seen_lines:
                raise ConfigError(
                    "%s: line %s:%d is already channel %r's" % (where, line[0], line[1], seen_lines[line])
                )
            seen_lines[line] = name
        channels.append(
            Channel(
                name=name, line_a=a, line_b=b, rerequest=rr, core=core, snapshot=snap, protocol=protocol, venue=venue
            )
        )
    if len(seen_lines) > 64:
        raise ConfigError("config %s: %d lines; at most 64 are supported" % (path, len(seen_lines)))
    check_venues(channels, "config %s" % path)
    return channels


def check_venues(channels: Sequence["Channel"], where: str) -> None:
    """One protocol per venue, one ITCH venue (its stock locates are the
    instrument ids), at most MAX_PITCH_VENUES instrument id blocks (PITCH and
    IEX venues)."""
    proto = {}
    for ch in channels:
        v = ch.venue_name()
        if proto.setdefault(v, ch.protocol) != ch.protocol:
            raise ConfigError("%s: venue %s has both %s and %s channels" % (where, v, proto[v], ch.protocol))
    itch = sorted(v for v, p in proto.items() if p == "itch")
    if len(itch) > 1:
        raise ConfigError("%s: %d ITCH venues (%s); one run holds one ITCH venue" % (where, len(itch), ", ".join(itch)))
    blocks = sum(ID_BLOCKS[p] for p in proto.values())
    if blocks > MAX_PITCH_VENUES:
        raise ConfigError(
            "%s: %s need %d instrument id blocks (1 per PITCH venue, 3 per IEX venue: one per feed); "
            "at most %d per run"
            % (where, ", ".join(v for v, p in proto.items() if p != "itch"), blocks, MAX_PITCH_VENUES)
        )


def cores_of(channels: Sequence[Channel], cores: Optional[Sequence[int]] = None) -> List[int]:
    """The cores to run: --cores if given, else those the channels name."""
    return list(cores) if cores else sorted({c.core for c in channels})


# ------------------------------------------------------------ ReplayConfig
#: Pipeline stages a replay runs (``ReplayConfig.mode``); their C values are
#: :data:`feedhandler.replay.MODES`.
MODE_NAMES = ("publish", "book", "decode")

_U32 = 2**32
_MAX_DEPTH = 64
_MAX_LANES = 32
_MAX_LINES = 64
_SHM_NAME = re.compile(r"[A-Za-z0-9_.-]+\Z")


def _bad(name: str, want: str, got: Any) -> ReplayConfigError:
    return ReplayConfigError("%s must be %s, got %r" % (name, want, got))


def _uint(name: str, value: Any, want: str, lo: int = 0, hi: int = _U32 - 1) -> int:
    """``value`` as an int in lo..hi (bools refused), else a ReplayConfigError saying ``want``."""
    if isinstance(value, bool):
        raise _bad(name, want, value)
    try:
        v = operator.index(value)
    except TypeError:
        raise _bad(name, want, value) from None
    if not lo <= v <= hi:
        raise _bad(name, want, value)
    return v


@dataclass(frozen=True)
class ReplayConfig:
    """Everything a :class:`~feedhandler.replay.Replay` (and ``feedhandler replay`` / ``feedhandler run``)
    is set up with.  Capacities are preallocated when the replay is created, never
    later; 0 means the C core's default (given with each field).

    Every field is checked when the config is made: a bad value raises
    :class:`~feedhandler.errors.ReplayConfigError` (a ``ReplayError`` and a
    ``ConfigError``) naming the field, the value and what would be valid.  Sequences
    are stored as tuples and ``rerequest`` as ``(host, port)``; the config is frozen
    (``dataclasses.replace(cfg, depth=5)`` makes a changed copy)."""

    #: Pipeline stages: "publish" = decode + books + shared memory; "book" = no
    #: publishing; "decode" = decode only (for benchmarks).
    mode: str = "publish"
    #: Segment name under /dev/shm (letters, digits, '_', '-', '.'; not starting with
    #: '.'); None: private memory, readable only through :meth:`feedhandler.replay.Replay.segment`.
    shm: Optional[str] = None
    #: Price levels per side published and dumped, 1..64 (0: the default, 10).
    depth: int = 10
    #: Live-order capacity (default 2097152).
    max_orders: int = 0
    #: Instrument capacity = highest stock locate accepted, 1..65535 (default 65535: every locate).
    max_instruments: int = 0
    #: Price-level capacity over all instruments and sides (default 4194304).
    max_levels: int = 0
    #: Event ring capacity, a power of two >= 2 (default 1048576).
    ring_events: int = 0
    #: (UDP port, MoldUDP64 session or PITCH unit) streams tracked, up to 65536 (default 256).
    max_streams: int = 0
    #: Permission bits of a named segment (default 0o600).
    shm_mode: int = 0o600
    #: A/B arbitration: how long (receive time) a hole waits for the other line's
    #: copy before its messages count as gaps, in us (default 1000).
    gap_window_us: int = 0
    #: Packets that can be held behind holes, all streams (default 4096).
    gap_buffer: int = 0
    #: CPUs to run on, one pinned thread (lane) each, at most 32; None: one lane on
    #: the calling thread's CPUs (or the cores the channels name).
    cores: Optional[Tuple[int, ...]] = None
    #: Pacing: 0 = as fast as possible; 1 = the capture's own clock (BinaryFILE: its
    #: ITCH timestamps); 2.0 = twice as fast, 0.5 = half.
    speed: float = 0.0
    #: Channels from :func:`load`: datagrams go to the lane of their
    #: channel's core, others are skipped (counted ``unconfigured_group``).  Empty:
    #: every (UDP port, MoldUDP64 session) is a channel.
    channels: Tuple[Channel, ...] = ()
    #: MoldUDP64 re-request server, (host, port) or "HOST:PORT", for streams whose
    #: channel names none (a host name is resolved when the replay is created).
    rerequest: Optional[Endpoint] = None
    #: Wait per re-request try, 3 tries (default 20 ms).
    rerequest_timeout_ms: int = 0
    #: A stream silent this long (receive time) is flagged silent (default 3000 ms).
    silence_ms: int = 0
    #: Latency stamping: 0 off; 1 every packet; N every Nth packet (True = 1).
    latency: int = 0
    #: With latency on, split the processing into decode, book and publish on every
    #: Nth stamped packet (1: every one; the split costs two more TSC reads a packet).
    latency_stages: int = 8
    #: GLIMPSE 5.0 snapshot server (SoupBinTCP 4.0), (host, port) or "HOST:PORT", for
    #: streams whose channel names none: each stream starts from a snapshot (late
    #: join) and a gap the lines and the re-request server cannot fill is repaired
    #: from one.  None: no snapshot recovery (unless a channel names a server).
    snapshot: Optional[Endpoint] = None
    #: SoupBinTCP login: username (<= 6 characters) and password (<= 10).
    snapshot_user: str = ""
    snapshot_password: str = ""
    #: One deadline per recovery (a late join or a hole): connect, login, every retry
    #: and the receiving fit in it; past it the stream goes on without a snapshot
    #: (gap counted, instruments STALE).  Default 5000 ms.
    snapshot_timeout_ms: int = 0

    def __post_init__(self) -> None:
        def set_(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        if self.mode not in MODE_NAMES:
            raise ReplayConfigError("mode must be one of %s, got %r" % (", ".join(MODE_NAMES), self.mode))
        shm = self.shm or None
        if shm is not None:
            if not isinstance(shm, str):
                raise _bad("shm", "a segment name (str) or None", shm)
            if not _SHM_NAME.match(shm):
                raise ReplayConfigError("bad shared-memory name %r: use letters, digits, '_', '-', '.' (no '/')" % shm)
            if shm.startswith(".") or len(shm) >= 200:
                raise ReplayConfigError(
                    "bad shared-memory name %r: it must not start with '.' and has at "
                    "most 199 characters" % (shm if len(shm) < 60 else shm[:57] + "...")
                )
        set_("shm", shm)
        depth = _uint("depth", self.depth, "1..%d (price levels per side; 0: default 10)" % _MAX_DEPTH, hi=_MAX_DEPTH)
        set_("depth", depth or 10)
        for name, default in (
            ("max_orders", "2097152"),
            ("max_levels", "4194304"),
            ("gap_window_us", "1000"),
            ("gap_buffer", "4096"),
            ("rerequest_timeout_ms", "20"),
            ("silence_ms", "3000"),
        ):
            set_(name, _uint(name, getattr(self, name), "an integer 0..%d (0: default %s)" % (_U32 - 1, default)))
        set_(
            "max_instruments",
            _uint(
                "max_instruments",
                self.max_instruments,
                "0 (default: 65535) or 1..65535 (stock locates are 16-bit)",
                hi=65535,
            ),
        )
        set_("max_streams", _uint("max_streams", self.max_streams, "0 (default 256) or 1..65536", hi=65536))
        set_("shm_mode", _uint("shm_mode", self.shm_mode, "permission bits 0..0o7777 (0: default 0o600)", hi=0o7777))
        ring = _uint("ring_events", self.ring_events, "0 (default 1048576) or a power of two >= 2")
        if ring and (ring < 2 or ring & (ring - 1)):
            raise _bad("ring_events", "0 (default 1048576) or a power of two >= 2", self.ring_events)
        set_("ring_events", ring)
        speed = self.speed
        if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not math.isfinite(speed) or speed < 0:
            raise _bad("speed", "0 (as fast as possible) or a positive factor (1: the capture's own pace)", speed)
        set_("speed", float(speed))
        latency = self.latency
        if isinstance(latency, bool):
            latency = int(latency)
        set_("latency", _uint("latency", latency, "0 (off), 1 (every packet) or N (every Nth packet)"))
        set_(
            "latency_stages",
            _uint("latency_stages", self.latency_stages, "1 (every stamped packet) or N (every Nth)", lo=1),
        )
        set_("channels", self._check_channels(self.channels))
        set_("cores", self._check_cores(self.cores))
        if self.rerequest is not None:
            try:
                set_("rerequest", _parse_endpoint(self.rerequest, "rerequest", ipv4=False))
            except EndpointError as exc:
                raise ReplayConfigError(str(exc)) from None
        if self.snapshot is not None:
            try:
                set_("snapshot", _parse_endpoint(self.snapshot, "snapshot", ipv4=False))
            except EndpointError as exc:
                raise ReplayConfigError(str(exc)) from None
        for name, most in (("snapshot_user", 6), ("snapshot_password", 10)):
            v = getattr(self, name)
            if not isinstance(v, str) or len(v) > most or not v.isascii() or not v.isprintable():
                raise _bad(name, "printable ASCII, at most %d characters (SoupBinTCP login)" % most, v)
        set_(
            "snapshot_timeout_ms",
            _uint("snapshot_timeout_ms", self.snapshot_timeout_ms, "an integer 0..%d (0: default 5000)" % (_U32 - 1)),
        )
        if (self.snapshot or any(ch.snapshot for ch in self.channels)) and self.mode == "decode":
            raise ReplayConfigError("snapshot recovery rebuilds books: not with mode 'decode'")

    @staticmethod
    def _check_channels(channels: Optional[Iterable[Channel]]) -> Tuple[Channel, ...]:
        if channels is None:
            return ()
        try:
            chans = tuple(channels)
        except TypeError:
            raise _bad("channels", "a sequence of feedhandler.config.Channel (from config.load)", channels) from None
        for ch in chans:
            if not isinstance(ch, Channel):
                raise _bad("channels", "a sequence of feedhandler.config.Channel (from config.load)", ch)
        n_lines = sum(len(ch.lines()) for ch in chans)
        if n_lines > _MAX_LINES:
            raise ReplayConfigError("channels have %d lines; at most %d are supported" % (n_lines, _MAX_LINES))
        for ch in chans:
            if ch.protocol not in PROTOCOLS:
                raise _bad("channels", 'channels whose protocol is "itch", "pitch" or "iex"', ch.protocol)
        try:
            check_venues(chans, "channels")
        except Exception as exc:
            raise ReplayConfigError(str(exc)) from None
        return chans

    def _check_cores(self, cores: Optional[Iterable[int]]) -> Optional[Tuple[int, ...]]:
        if cores is None:
            given = None
        else:
            try:
                given = tuple(_uint("cores", c, "CPU numbers (non-negative integers)", hi=_U32) for c in cores)
            except TypeError:
                raise _bad("cores", "a sequence of CPU numbers, e.g. [0, 1]", cores) from None
            given = given or None
        lanes = cores_of(self.channels, given) if self.channels else list(given or ())
        if lanes:
            ncpu = os.cpu_count() or 1
            bad = [c for c in lanes if c >= ncpu]
            if bad:
                raise ReplayConfigError(
                    "cores %s do not exist (this machine has CPUs 0..%d)" % (",".join(map(str, bad)), ncpu - 1)
                )
            if len(set(lanes)) != len(lanes):
                raise ReplayConfigError("a core is listed twice in %s" % list(lanes))
            if len(lanes) > _MAX_LANES:
                raise ReplayConfigError("%d cores: at most %d" % (len(lanes), _MAX_LANES))
            for ch in self.channels:
                if ch.core not in lanes:
                    raise ReplayConfigError(
                        "channel %r is on core %d, which is not in cores %s"
                        % (ch.name, ch.core, ",".join(map(str, lanes)))
                    )
        return given

    @property
    def lane_cores(self) -> Optional[List[int]]:
        """The CPUs the lanes run on: ``cores``, else the cores the channels name;
        None: one lane, not pinned."""
        if self.channels:
            return cores_of(self.channels, self.cores)
        return list(self.cores) if self.cores else None

    @property
    def lanes(self) -> int:
        """How many lanes (pinned threads) the pipeline runs."""
        cores = self.lane_cores
        return len(cores) if cores else 1

    @classmethod
    def field_names(cls) -> List[str]:
        """The names of the fields (the keyword arguments ``Replay(**kwargs)`` accepts)."""
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> "ReplayConfig":
        """A config from keyword arguments, with a clear TypeError for an unknown one."""
        cls._check_names(kwargs)
        return cls(**kwargs)

    def replace(self, **changes: Any) -> "ReplayConfig":
        """A copy with some fields changed (checked again)."""
        self._check_names(changes)
        return dataclasses.replace(self, **changes)

    @classmethod
    def _check_names(cls, kwargs: Dict[str, Any]) -> None:
        unknown = sorted(set(kwargs) - set(cls.field_names()))
        if unknown:
            hint = "; the DPDK build of the pipeline is feedhandler.dpdk.DpdkRun" if "backend" in unknown else ""
            raise TypeError(
                "unknown Replay option(s) %s; valid: %s%s" % (", ".join(unknown), ", ".join(cls.field_names()), hint)
            )
