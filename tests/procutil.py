"""Helpers for tests that run a server (a command in a subprocess, or a server
object in a thread) and wait on it."""

import contextlib
import queue
import socket
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


def wait_for(pred, what, limit=60.0):
    """Poll pred until it holds; a hang guard of `limit` seconds, not a timing."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError("never: " + what)


@contextlib.contextmanager
def glimpse_serving(snapshot, **kw):
    """A GlimpseServer for `snapshot` on a free loopback port, in a thread."""
    from feedhandler.glimpse import GlimpseServer

    kw.setdefault("poll_s", 0.05)
    srv = GlimpseServer(snapshot, **kw)
    try:
        with srv.in_background(join_s=10):
            yield srv
    finally:
        srv.close()


@contextlib.contextmanager
def rewind_serving(path, join_s=10, **kw):
    """A RewindServer for the capture at `path` on a free loopback port, in a
    thread, and a UDP client socket bound to loopback: (server, client)."""
    from feedhandler.rewind import RewindServer

    srv = RewindServer(path, "127.0.0.1", 0, poll_s=0.05, **kw)
    cli = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    cli.bind(("127.0.0.1", 0))
    try:
        with srv.in_background(join_s=join_s):
            yield srv, cli
    finally:
        srv.close()
        cli.close()


def reap(p):
    """A subprocess the test is done with: killed if it still runs, waited
    for, its pipes closed (the `finally` of every test that starts one)."""
    if p.poll() is None:
        p.kill()
        p.wait(10)
    for f in (p.stdin, p.stdout, p.stderr):
        if f is not None:
            f.close()
