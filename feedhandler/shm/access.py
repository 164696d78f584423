"""Attaching to a segment by name: what is at /dev/shm/NAME is checked --
its kind, its owner, its header -- before a byte of it is trusted, and only
then mapped read-only as a :class:`Segment`."""

from __future__ import annotations

import mmap
import os
import stat
import time
from typing import Union

from ..core import errbuf, ffi, lib
from ..errors import ShmError
from .segment import Segment

__all__ = ["attach"]


def attach(name: str, wait: float = 0, owner: Union[int, str, None] = None) -> Segment:
    """Map /dev/shm/NAME read-only and check its layout.  ``with attach(name) as seg:``
    unmaps it on exit.

    ``wait=S`` waits up to S seconds for the segment to appear (a strategy
    started before its feed handler), retrying every 50 ms; then the last
    error is raised.

    Anyone can put something at a name in /dev/shm, so what is there is
    checked before it is read: it is opened without following a symbolic link
    and without blocking (a FIFO at the name cannot hang the reader), and must
    be a regular file owned by this user -- or by ``owner`` (a uid or user
    name: the account a feed handler publishing for other users runs as, its
    ``shm_mode`` letting them read) -- whose header is a feedhandler
    segment's.  Anything else raises :class:`ShmError` naming it.  Nothing
    here ever blocks on, locks or changes the writer's segment."""
    if not name or "/" in name or name in (".", ".."):
        raise ShmError("bad segment name %r" % (name,))
    uid = _owner_uid(owner)
    deadline = time.monotonic() + wait
    while True:
        try:
            return _attach(name, uid)
        except ShmError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def _owner_uid(owner: Union[int, str, None]) -> int:
    if owner is None:
        return os.geteuid()
    if isinstance(owner, int) and not isinstance(owner, bool) and owner >= 0:
        return owner
    if isinstance(owner, str):
        import pwd

        try:
            return pwd.getpwnam(owner).pw_uid
        except KeyError:
            raise ShmError("owner %r: no such user" % (owner,)) from None
    raise ShmError("owner must be a uid (int >= 0) or a user name, not %r" % (owner,))


def _user(uid: int) -> str:
    import pwd

    try:
        return "uid %d (%s)" % (uid, pwd.getpwuid(uid).pw_name)
    except KeyError:
        return "uid %d" % uid


def _kind(mode: int) -> str:
    """What a non-regular file at a segment's name is, for a message."""
    for test, what in (
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return what
    return "not a regular file"


def _attach(name: str, uid: int) -> Segment:
    path = os.path.join("/dev/shm", name)
    try:
        # O_NOFOLLOW: a symbolic link is refused, never followed; O_NONBLOCK: a
        # FIFO (or a device) at the name cannot hang the open.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ShmError("no shared-memory segment %r (is a replay running with --shm %s?)" % (name, name))
    except OSError as exc:
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            mode = stat.S_IFREG
        if not stat.S_ISREG(mode):
            raise ShmError("%s is %s, not a feedhandler segment: not attached" % (path, _kind(mode)))
        raise ShmError("cannot open %s: %s" % (path, exc.strerror))
    mm = None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ShmError("%s is %s, not a feedhandler segment: not attached" % (path, _kind(st.st_mode)))
        if st.st_uid != uid:
            raise ShmError(
                "%s is owned by %s, not by %s: not attached (anyone can put a file in /dev/shm; "
                "attach(name, owner=...) trusts another user's segments)"
                % (path, _user(st.st_uid), "this user, " + _user(uid) if uid == os.geteuid() else _user(uid))
            )
        size = st.st_size
        if size == 0:
            raise ShmError("segment %r is empty (still being created?)" % name)
        # The header checked before anything is mapped: a foreign file (a
        # 100 GB sparse one) is refused without mapping it.
        head = os.pread(fd, lib.FH_SHM_HEADER_SIZE, 0)
        err = errbuf()
        hbuf = ffi.from_buffer("uint8_t[]", head)
        if lib.fh_shm_check(hbuf, size if len(head) == lib.FH_SHM_HEADER_SIZE else len(head), err, len(err)) != 0:
            raise ShmError("%s: %s" % (path, ffi.string(err).decode(errors="replace")))
        mm = mmap.mmap(fd, size, prot=mmap.PROT_READ, flags=mmap.MAP_SHARED)
        seg = Segment(mm, size, name=name)
    except BaseException:
        os.close(fd)
        if mm is not None:
            try:
                mm.close()
            except BufferError:  # the failed Segment's buffer export: the OS unmaps at exit
                pass
        raise
    seg._hold_fd(fd)
    return seg
