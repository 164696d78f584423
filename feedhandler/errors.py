"""The exceptions feedhandler raises, and the one way a C error becomes one.

Every error the package raises on purpose derives from :class:`FeedhandlerError`,
so an application can catch them all in one place::

    FeedhandlerError
    +-- ConfigError (also ValueError)     a setting is wrong: config file, option, endpoint
    |   +-- EndpointError                 a HOST:PORT that does not parse or is out of range
    +-- ReplayError                       an input could not be replayed, or the pipeline set up
    |   +-- ReplayConfigError             (also a ConfigError) a ReplayConfig field is invalid
    |   +-- ShmNameError                  the segment name is taken by a live writer, or holds
    |                                     something that is not this user's segment (refused, left there)
    +-- ShmError                          a shared-memory segment cannot be read
    |   +-- WriterDied                    its writer was killed mid-run (Segment.follow)
    +-- DpdkError                         DPDK is missing, or the EAL / a port could not be set up
    +-- RewindError                       a capture the rewind server cannot serve
    +-- SnapshotError                     no usable GLIMPSE snapshot (``reason`` says why)
    +-- SoupError                         a SoupBinTCP stream that cannot be right
    +-- GenError (also ValueError)        generator arguments out of range

The classes are re-exported where they were first defined (``feedhandler.replay.ReplayError``,
``feedhandler.shm.ShmError``, ``feedhandler.dpdk.DpdkError``, ``feedhandler.config.ConfigError``,
``feedhandler.rewind.RewindError``, ``feedhandler.glimpse.SnapshotError``,
``feedhandler.soup.SoupError``), so existing ``except`` clauses keep working; ``GenError`` is
a ``ValueError``, what the generator raised before.

This module imports neither numpy nor the C core: the CLI and ``import feedhandler``
can use it before either is loaded.
"""

from __future__ import annotations

from typing import Any, Type, TypeVar

__all__ = [
    "FeedhandlerError",
    "ConfigError",
    "EndpointError",
    "ReplayError",
    "ReplayConfigError",
    "ShmNameError",
    "ShmError",
    "WriterDied",
    "DpdkError",
    "RewindError",
    "SnapshotError",
    "SoupError",
    "CaptureError",
    "GenError",
    "c_message",
    "c_error",
    "ERR_LEN",
]

#: Size of the error buffers handed to the C core (``char err[ERR_LEN]``).
ERR_LEN = 512


class FeedhandlerError(Exception):
    """Base class of every error feedhandler raises on purpose."""


class ConfigError(FeedhandlerError, ValueError):
    """A setting is wrong (config file, option, endpoint); the message says which and why."""


class EndpointError(ConfigError):
    """A ``HOST:PORT`` endpoint that does not parse, or whose host or port is not valid.

    ``what`` names the setting (e.g. ``--rerequest``), ``value`` is what was given and
    ``reason`` why it was refused (the message is ``"WHAT: REASON"``)."""

    def __init__(self, what: str, value: Any, reason: str):
        super().__init__("%s: %s" % (what, reason))
        self.what = what
        self.value = value
        self.reason = reason


class ReplayError(FeedhandlerError):
    """An input could not be replayed (unreadable, empty, corrupt, unknown format), or the
    pipeline could not be set up (capacities, shared memory, cores)."""


class ReplayConfigError(ReplayError, ConfigError):
    """A :class:`feedhandler.replay.ReplayConfig` field is invalid; the message names the
    field, the value given and what would be valid."""


class ShmNameError(ReplayError):
    """A writer cannot have its ``shm`` name: a live writer holds the segment's
    lock (two replays with one ``--shm``: exactly one runs), or what is at
    /dev/shm/NAME is not this user's feedhandler segment (a FIFO, a symbolic
    link, another user's file, bytes of some other program).  Nothing there is
    changed or removed; the message names the object and what it is."""


class ShmError(FeedhandlerError):
    """No segment, or one this reader cannot read (other layout version, corrupt, closed)."""


class WriterDied(ShmError):
    """A segment's writer process is gone while the segment says it is still
    starting or running (killed): its books are frozen where it stopped and must
    not be traded on.  Raised by ``Segment.follow()`` once the events already
    in the ring have been handed out."""


class DpdkError(FeedhandlerError):
    """DPDK is missing, or the EAL / a port could not be set up; the message says why."""


class RewindError(FeedhandlerError):
    """The input cannot be served (unreadable, not a capture, no MoldUDP64 messages)."""


class SnapshotError(FeedhandlerError):
    """No usable snapshot: the input cannot be made into one, or the server
    refused, broke the protocol, sent a message that is not ITCH 5.0, went
    quiet, closed, or never finished.  ``reason`` is a short key (one of
    ``feedhandler.glimpse.REASONS``); nothing of a snapshot that raised this is used."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


class SoupError(FeedhandlerError):
    """A SoupBinTCP stream that cannot be right: the connection must be dropped."""


class CaptureError(FeedhandlerError):
    """A capture that cannot be sent (``feedhandler send``): unreadable, not
    pcap/pcapng, not Ethernet, corrupt."""


class GenError(FeedhandlerError, ValueError):
    """Generator arguments out of range or of the wrong kind (``feedhandler gen``,
    ``feedhandler.gen.generate``)."""


E = TypeVar("E", bound=FeedhandlerError)


def c_message(ffi: Any, err: Any) -> str:
    """The text the C core wrote into the error buffer ``err`` (a ``char[]`` of ``ffi``)."""
    return ffi.string(err).decode(errors="replace")


def c_error(cls: Type[E], ffi: Any, err: Any, default: str = "the C core reported an error") -> E:
    """An exception of class ``cls`` carrying the C core's message from ``err``.

    ``raise c_error(ReplayError, ffi, err)`` is the one way a failed C call becomes a
    Python exception; ``default`` is used when the C side left the buffer empty."""
    return cls(c_message(ffi, err) or default)
