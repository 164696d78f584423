"""Recovery's fetching side: the thread that answers the lanes' requests for
exchange snapshots.

A lane whose stream waits for a snapshot (late join, or a gap neither line nor
the re-request server could fill) posts a request in its C mailbox
(``fh_lane_snapshot_request``).  This thread polls the lanes' mailboxes, fetches
the snapshot from the stream's GLIMPSE server over SoupBinTCP
(:func:`feedhandler.glimpse.fetch_snapshot`), retrying until the request's one
deadline (``fh_lane_snapshot_deadline_ns``: connect, login, every retry and the
receiving all fit in it), and posts the messages back (``fh_lane_snapshot_post``),
or a failure.  A snapshot may be at most the lane's ``fh_lane_snapshot_limit``
bytes (derived from its capacities).  The lane checks the snapshot whole before
applying any of it (csrc/recovery.c).

Every attempt is logged in :attr:`RecoveryService.log` and failures are counted by
reason in :attr:`RecoveryService.errors` (``stats()["snapshot_fetch_errors"]``).

Words: *recovery* is fetching exchange snapshots to repair a lane; a
*snapshot* is the exchange's (GLIMPSE).  ``SnapshotService``, the old name of
:class:`RecoveryService`, still works, with a ``DeprecationWarning``, for one
release."""

from __future__ import annotations

import threading
import time
import warnings
from typing import Any, Callable, Dict, List, Optional

from .endpoints import Endpoint
from .errors import SnapshotError

__all__ = ["RecoveryService", "RETRY_REASONS"]

#: Failures worth another try (the server may come back); others are final.
RETRY_REASONS = ("refused", "timeout", "closed", "connect")


class RecoveryService:
    """Polls ``lanes`` (C ``fh_lane_t *``) and answers their snapshot requests.

    ``endpoint_for(group, port)`` gives the GLIMPSE server of a stream first seen on
    multicast group ``group`` (host-order int) and UDP port ``port`` (None: no server:
    the request fails at once).  Each request gets one deadline, the lane's
    (``deadline`` s from when it is read if the lane gives none): tries go on,
    with a growing pause between them, until one succeeds, fails for a reason
    not worth another try, ``tries`` have been made (None: no count), or the
    deadline passes.  ``timeout`` bounds a try's wait for snapshot data.
    ``fetch`` is :func:`feedhandler.glimpse.fetch_snapshot` (tests pass their own)."""

    def __init__(
        self,
        ffi: Any,
        lib: Any,
        lanes: List[Any],
        endpoint_for: Callable[[int, int], Optional[Endpoint]],
        user: str = "",
        password: str = "",
        tries: Optional[int] = 3,
        timeout: float = 5.0,
        deadline: float = 5.0,
        fetch: Optional[Callable[..., Any]] = None,
        poll_s: float = 0.001,
    ):
        self._ffi, self._lib, self._lanes = ffi, lib, list(lanes)
        self.endpoint_for = endpoint_for
        self.user, self.password = user, password
        self.tries, self.timeout, self.deadline = tries, timeout, deadline
        self._fetch = fetch
        self._poll_s = poll_s
        self._stop = threading.Event()
        self.log: List[Dict[str, Any]] = []
        self.errors: Dict[str, int] = {}
        self._thread = threading.Thread(target=self._run, name="feedhandler-snapshots", daemon=True)
        self._thread.start()

    def _fetcher(self) -> Callable[..., Any]:
        if self._fetch is None:
            from .glimpse import fetch_snapshot

            self._fetch = fetch_snapshot
        return self._fetch

    def _run(self) -> None:
        ffi, lib = self._ffi, self._lib
        group = ffi.new("uint32_t *")
        port = ffi.new("uint16_t *")
        session = ffi.new("uint8_t[10]")
        seq = ffi.new("uint64_t *")
        while not self._stop.is_set():
            busy = False
            for lane in self._lanes:
                ticket = lib.fh_lane_snapshot_request(lane, group, port, session, seq)
                if ticket:
                    busy = True
                    self._answer(lane, ticket, int(group[0]), int(port[0]), bytes(ffi.buffer(session, 10)), int(seq[0]))
            if not busy:
                self._stop.wait(self._poll_s)

    def _answer(self, lane: Any, ticket: int, group: int, port: int, session: bytes, next_seq: int) -> None:
        endpoint = self.endpoint_for(group, port)
        entry: Dict[str, Any] = {
            "port": port,
            "session": session.decode("ascii", "replace").strip(),
            "next_seq": next_seq,
            "server": "%s:%d" % endpoint if endpoint else None,
            "attempts": 0,
            "ok": False,
            "reason": None,
            "sequence": None,
            "messages": 0,
        }
        t0 = time.monotonic()
        # One deadline for the whole recovery, the lane's own (CLOCK_MONOTONIC,
        # as time.monotonic): it gives up on its own only a grace after it.
        end_ns = int(self._lib.fh_lane_snapshot_deadline_ns(lane, ticket))
        end = end_ns / 1e9 if end_ns else t0 + self.deadline
        limit = int(self._lib.fh_lane_snapshot_limit(lane)) or None
        snap = None
        if endpoint is None:
            entry["reason"] = "no_server"
        attempt = 0
        while endpoint is not None and (self.tries is None or attempt < self.tries):
            if self._stop.is_set():
                entry["reason"] = "stopped"
                break
            left = end - time.monotonic()
            if left <= 0:
                if attempt == 0:
                    entry["reason"] = "timeout"
                break
            attempt += 1
            entry["attempts"] = attempt
            try:
                snap = self._fetcher()(
                    endpoint[0],
                    endpoint[1],
                    user=self.user,
                    password=self.password,
                    timeout=min(self.timeout, left),
                    deadline=left,
                    max_bytes=limit,
                )
                break
            except SnapshotError as exc:
                entry["reason"] = exc.reason
                entry["error"] = str(exc)
                if exc.reason not in RETRY_REASONS:
                    break
            except OSError as exc:  # a socket error the client did not classify
                entry["reason"] = "connect"
                entry["error"] = str(exc)
            # A pause before the next try (0.1 s, doubling to 1 s), never past the deadline.
            self._stop.wait(max(0.0, min(1.0, 0.1 * 2 ** (attempt - 1), end - time.monotonic())))
        entry["seconds"] = time.monotonic() - t0
        # Logged and counted before the post: once posted, the lane can apply it and the
        # replay return, and whoever then reads the log must find this entry in it.
        if snap is not None:
            entry.update(ok=True, reason=None, sequence=snap.sequence, messages=snap.messages)
        else:
            self.errors[entry["reason"]] = self.errors.get(entry["reason"], 0) + 1
        self.log.append(entry)
        if snap is not None:
            self._lib.fh_lane_snapshot_post(lane, ticket, snap.blocks, len(snap.blocks), snap.sequence, 0)
        else:
            self._lib.fh_lane_snapshot_post(lane, ticket, self._ffi.NULL, 0, 0, 1)

    def stop(self) -> None:
        """Stop polling (a fetch under way ends within its timeout and deadline) and join."""
        self._stop.set()
        self._thread.join()


#: Old name -> new name: the old one works for one release, with a DeprecationWarning.
DEPRECATED = {"SnapshotService": "RecoveryService"}


def __getattr__(name: str) -> Any:
    new = DEPRECATED.get(name)
    if new is None:
        raise AttributeError("module %r has no attribute %r" % (__name__, name))
    warnings.warn(
        "feedhandler.recovery.%s is deprecated: it is feedhandler.recovery.%s now (the old name goes "
        "in the next release)" % (name, new),
        DeprecationWarning,
        stacklevel=2,
    )
    return globals()[new]
