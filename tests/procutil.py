"""Helpers for tests that run a server command in a subprocess."""
import queue
import threading
import time


def read_line_until(proc, needle, deadline_s=30.0):
    """Lines of proc's stdout up to the first holding needle (a reader thread,
    so a server that never prints it cannot hang the test)."""
    q = queue.Queue()

    def pump():
        for line in proc.stdout:
            q.put(line)
        q.put(None)
    threading.Thread(target=pump, daemon=True).start()
    seen = []
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            line = q.get(timeout=max(0.01, end - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        if needle in line:
            return line, seen, q
    raise AssertionError("no %r line; got %r" % (needle, seen))
