"""Running a server (rewind-server, glimpse-server) from a thread for the
duration of a ``with`` block: tests and embedding."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any, Callable, Iterator, Sequence


@contextlib.contextmanager
def in_background(
    server: Any, name: str, join_s: float = 10.0, workers: Callable[[], Sequence[threading.Thread]] = lambda: ()
) -> Iterator[Any]:
    """Serve ``server.serve_forever()`` from a daemon thread; on the way out
    ``server.stop()``, then join it and the threads ``workers()`` lists (one per
    client, say) within join_s in all; RuntimeError if any is still running."""
    t = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    t.start()
    threads: Sequence[threading.Thread] = ()
    try:
        yield server
    finally:
        server.stop()
        end = time.monotonic() + join_s
        t.join(join_s)
        threads = workers()
        for c in threads:
            c.join(max(0.0, end - time.monotonic()))
    if t.is_alive() or any(c.is_alive() for c in threads):
        raise RuntimeError("%s did not stop within %.1f s" % (name, join_s))
