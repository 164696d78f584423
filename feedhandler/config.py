"""Channel configuration (TOML), as docs/architecture.md specifies:

    [[channel]]
    name = "itch-1"
    line_a = "233.54.12.111:26477"
    line_b = "233.49.196.111:26477"     # optional
    rerequest = "127.0.0.1:26500"       # optional MoldUDP64 re-request server
    snapshot = "127.0.0.1:26600"        # optional GLIMPSE snapshot server (SoupBinTCP)
    core = 0

Every value is checked here, with messages that name the channel and the key,
before anything is allocated.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from .endpoints import Endpoint, EndpointError, parse_endpoint as _parse_endpoint
from .errors import ConfigError

__all__ = ["Channel", "ConfigError", "EndpointError", "cores_of", "load", "parse_endpoint"]

try:                                    # Python 3.11+
    import tomllib as _toml
except ImportError:                     # pragma: no cover - older Pythons
    try:
        import tomli as _toml           # type: ignore
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
    #: "itch" (MoldUDP64 / ITCH 5.0) or "pitch" (Cboe Multicast PITCH).
    protocol: str = "itch"
    #: Venue whose books the channel feeds (books are per venue): at most 7
    #: letters or digits; default XNAS for itch, BATS for pitch.
    venue: str = ""

    def venue_name(self) -> str:
        """The venue, or its protocol's default."""
        return self.venue or DEFAULT_VENUE[self.protocol]

    def lines(self) -> List[Endpoint]:
        """Line A, then line B when there is one."""
        return [l for l in (self.line_a, self.line_b) if l]


PROTOCOLS = ("itch", "pitch")
DEFAULT_VENUE = {"itch": "XNAS", "pitch": "BATS"}
#: PITCH venues one run may hold (each has its own range of instrument ids).
MAX_PITCH_VENUES = 4


def venues_of(channels: Sequence["Channel"]) -> List[Tuple[str, str]]:
    """The run's venues as (name, protocol), by index: the ITCH venue first
    (XNAS when no channel is ITCH), then PITCH venues in config order."""
    itch = [ch.venue_name() for ch in channels if ch.protocol == "itch"]
    out = [(itch[0] if itch else "XNAS", "itch")]
    for ch in channels:
        if ch.protocol == "pitch" and (ch.venue_name(), "pitch") not in out:
            out.append((ch.venue_name(), "pitch"))
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
        raise ConfigError("config %s: unknown top-level key(s) %s (expected [[channel]] tables)"
                          % (path, ", ".join(sorted(unknown))))
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
            raise ConfigError("%s: protocol must be \"itch\" or \"pitch\", not %r" % (where, protocol))
        venue = ch.get("venue", "")
        if not isinstance(venue, str) or (venue and not (venue.isascii() and venue.isalnum() and len(venue) <= 7)):
            raise ConfigError("%s: venue must be 1 to 7 letters or digits (a MIC such as \"XNAS\"), not %r"
                              % (where, venue))
        venue = venue.upper()
        if protocol == "pitch" and (rr or snap):
            raise ConfigError("%s: %s is a MoldUDP64/GLIMPSE server; a PITCH channel recovers from its A/B lines "
                              "(Cboe's GRP and Spin are not supported)" % (where, "rerequest" if rr else "snapshot"))
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
                raise ConfigError("%s: line %s:%d is already channel %r's" % (where, line[0], line[1],
                                                                              seen_lines[line]))
            seen_lines[line] = name
        channels.append(Channel(name=name, line_a=a, line_b=b, rerequest=rr, core=core, snapshot=snap,
                                protocol=protocol, venue=venue))
    if len(seen_lines) > 64:
        raise ConfigError("config %s: %d lines; at most 64 are supported" % (path, len(seen_lines)))
    check_venues(channels, "config %s" % path)
    return channels


def check_venues(channels: Sequence["Channel"], where: str) -> None:
    """One protocol per venue, one ITCH venue (its stock locates are the
    instrument ids), at most MAX_PITCH_VENUES PITCH venues."""
    proto = {}
    for ch in channels:
        v = ch.venue_name()
        if proto.setdefault(v, ch.protocol) != ch.protocol:
            raise ConfigError("%s: venue %s has both itch and pitch channels" % (where, v))
    itch = sorted(v for v, p in proto.items() if p == "itch")
    if len(itch) > 1:
        raise ConfigError("%s: %d ITCH venues (%s); one run holds one ITCH venue" % (where, len(itch), ", ".join(itch)))
    pitch = [v for v, p in proto.items() if p == "pitch"]
    if len(pitch) > MAX_PITCH_VENUES:
        raise ConfigError("%s: %d PITCH venues; at most %d per run" % (where, len(pitch), MAX_PITCH_VENUES))


def cores_of(channels: Sequence[Channel], cores: Optional[Sequence[int]] = None) -> List[int]:
    """The cores to run: --cores if given, else those the channels name."""
    return list(cores) if cores else sorted({c.core for c in channels})
