"""The limits of the two test/recovery servers (docs/robustness.md, "The
servers"): glimpse-server's connection cap, login deadline, accept back-off,
credentials (environment, file, constant-time comparison) and wildcard warning;
rewind-server's allow-list and per-client rate limit.  Each test fails on a
server without the limit it checks."""

import contextlib
import os
import resource
import select
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest

import procutil
from feedhandler import glimpse, soup
from feedhandler.cli.glimpse_server import ENV_PASSWORD, ENV_USER
from feedhandler.glimpse import build_snapshot
from feedhandler.rewind import AllowList, RateLimiter, index_capture
from procutil import glimpse_serving, read_line_until, reap, rewind_serving

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "pcaps", "sample.pcap")
HANG_S = 30.0  # only a hung server takes this long


@pytest.fixture(scope="module")
def small_day(tmp_path_factory):
    prefix = str(tmp_path_factory.mktemp("limits") / "day")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "feedhandler",
            "gen",
            "--out",
            prefix,
            "--messages",
            "3000",
            "--symbols",
            "4",
            "--channels",
            "1",
            "--seed",
            "9",
            "-q",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return prefix + ".pcap"


@pytest.fixture(scope="module")
def snap(small_day):
    return build_snapshot(small_day)


serving = glimpse_serving


def wait_for(pred, what, limit=HANG_S):
    return procutil.wait_for(pred, what, limit)


def login(port, user="", password="", host="127.0.0.1"):
    """Log in and read to End of Snapshot (or a reject / close): the packet types
    and the last payload.  Logs out after a snapshot."""
    c = socket.create_connection((host, port), timeout=HANG_S)
    with c:
        c.sendall(soup.login_request(user, password))
        f, types = soup.Framer(), []
        while True:
            d = c.recv(65536)
            if not d:
                return types, None
            for t, payload in f.feed(d):
                types.append(t)
                if t == soup.LOGIN_REJECTED or (t == soup.SEQUENCED and payload[:1] == b"G" and len(payload) == 21):
                    if t == soup.SEQUENCED:
                        c.sendall(soup.packet(soup.LOGOUT))
                    return types, payload


def closed_by_peer(c, timeout):
    """True when the server closes c (EOF or reset) within timeout; None when
    it sent data instead; False when nothing happened."""
    r, _, _ = select.select([c], [], [], timeout)
    if not r:
        return False
    try:
        return True if c.recv(4096) == b"" else None
    except ConnectionResetError:
        return True


def stop(p, rest):
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=HANG_S)
    out = "".join(iter(lambda: rest.get(timeout=HANG_S), None))
    err = p.stderr.read()
    return out, err


@contextlib.contextmanager
def server_process(args, env=None, preexec_fn=None):
    p = subprocess.Popen(
        [sys.executable, "-m", "feedhandler", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=preexec_fn,
    )
    try:
        yield p
    finally:
        reap(p)


def cpu_s(pid):
    """utime + stime of a process, in seconds (/proc/PID/stat fields 14 and 15)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ----------------------------------------------------------- glimpse-server


@pytest.mark.slow
def test_glimpse_accept_emfile_backs_off_and_recovers(small_day):
    """Out of descriptors (RLIMIT_NOFILE 64, 100 connections), accept() fails
    with EMFILE while the connections stay queued: the server must pause, not
    spin a core, count the errors, and serve a legitimate client once the flood
    has gone."""

    def low_fds():
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    with server_process(
        [
            "glimpse-server",
            small_day,
            "--listen",
            "127.0.0.1:0",
            "--max-clients",
            "1000",
            "--login-timeout",
            "120",
            "-q",
        ],
        preexec_fn=low_fds,
    ) as p:
        line, _, rest = read_line_until(p, "listening on")
        port = int(line.split()[3].rsplit(":", 1)[1])
        flood = []
        try:
            for _ in range(100):
                flood.append(socket.create_connection(("127.0.0.1", port), timeout=HANG_S))
            fd_dir = "/proc/%d/fd" % p.pid
            wait_for(lambda: len(os.listdir(fd_dir)) >= 62, "the server out of descriptors")
            time.sleep(0.3)  # well into the failing accepts
            t0, c0 = time.monotonic(), cpu_s(p.pid)
            time.sleep(2.0)
            used = (cpu_s(p.pid) - c0) / (time.monotonic() - t0)
        finally:
            for c in flood:
                c.close()
        # The spin this guards against is a whole core.
        assert used < 0.5, "server used %.0f%% of a core while out of descriptors" % (100 * used)
        types, eos = login(port)
        assert types[0] == soup.LOGIN_ACCEPTED and soup.end_of_snapshot(eos) >= 1
        out, err = stop(p, rest)
    assert p.returncode == 0 and "Traceback" not in err, err
    limits = [x for x in out.splitlines() if x.startswith("limits:")]
    assert limits and "accept errors 0," not in limits[0], out
    assert "no credentials" in err  # and warned about it


def test_glimpse_connection_cap_refuses_and_counts(snap):
    """max_clients at once: the next connection is closed at once and counted;
    a slot that frees is served again."""
    with serving(snap, max_clients=2, login_timeout_s=60) as srv:
        a = socket.create_connection(srv.address, timeout=HANG_S)
        b = socket.create_connection(srv.address, timeout=HANG_S)
        with a, b:
            wait_for(lambda: srv.stats()["active"] == 2, "two clients held")
            with socket.create_connection(srv.address, timeout=HANG_S) as c:
                assert closed_by_peer(c, HANG_S) is True
            wait_for(lambda: srv.stats()["refused_connections"] == 1, "refusal counted")
            assert srv.stats()["active"] == 2
        wait_for(lambda: srv.stats()["active"] == 0, "slots freed")
        types, _ = login(srv.address[1])
        assert types[0] == soup.LOGIN_ACCEPTED
        st = srv.stats()
    assert st["refused_connections"] == 1 and st["snapshots_served"] == 1 and st["connections"] == 4


def test_glimpse_login_deadline_is_not_extended_by_bytes(snap):
    """A login trickled a byte every 0.2 s (49 bytes: ~10 s) is cut at the
    1 s login deadline, counted, and never accepted."""
    with serving(snap, login_timeout_s=1.0) as srv:
        req = soup.login_request()
        with socket.create_connection(srv.address, timeout=HANG_S) as c:
            closed = False
            for i in range(len(req)):
                try:
                    c.sendall(req[i : i + 1])
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                    break
                state = closed_by_peer(c, 0.2)
                assert state is not None, "the server answered a trickled login"
                if state:
                    closed = True
                    break
            assert closed and i < len(req) - 1, "the whole login went through: bytes extended the deadline"
        wait_for(lambda: srv.stats()["login_timeouts"] == 1, "login timeout counted")
        assert srv.stats()["logins_accepted"] == 0


def test_glimpse_stray_bytes_after_snapshot_do_not_keep_a_client(snap):
    """After the snapshot only whole packets count as hearing from a client:
    the start of a packet that never completes does not reset the idle timer."""
    with serving(snap, idle_timeout_s=0.5, heartbeat_s=0.1) as srv:
        with socket.create_connection(srv.address, timeout=HANG_S) as c:
            c.sendall(soup.login_request())
            wait_for(lambda: srv.stats()["snapshots_served"] == 1, "snapshot served")
            c.sendall(b"\x10\x00U")  # a 4 KiB unsequenced packet announced...
            for _ in range(int(HANG_S / 0.1)):
                if srv.stats()["client_timeouts"]:
                    break
                try:
                    c.sendall(b"x")  # ...and trickled
                except OSError:
                    break
                time.sleep(0.1)
        wait_for(lambda: srv.stats()["client_timeouts"] == 1, "trickling client dropped")
        assert srv.stats()["client_protocol_errors"] == 0


def test_glimpse_credentials_compared_in_constant_time(snap, monkeypatch):
    """Both fields go through hmac.compare_digest, whole and always (a wrong
    username still costs the password comparison)."""
    calls = []
    real = glimpse.server.hmac.compare_digest

    def spy(a, b):
        calls.append((bytes(a), bytes(b)))
        return real(a, b)

    monkeypatch.setattr(glimpse.server.hmac, "compare_digest", spy)
    with serving(snap, user="alice", password="s3cret") as srv:
        types, payload = login(srv.address[1], "bob", "s3cret")
        assert types == [soup.LOGIN_REJECTED] and payload == b"A"
        assert calls == [(b"bob   ", b"alice "), (b"s3cret    ", b"s3cret    ")]
        types, _ = login(srv.address[1], "alice", "s3cret")
        assert types[0] == soup.LOGIN_ACCEPTED
        types, payload = login(srv.address[1], "alice", "s3cre")
        assert types == [soup.LOGIN_REJECTED] and payload == b"A"
        wait_for(lambda: srv.stats()["logins_rejected"]["not_authorized"] == 2, "bad logins counted")


@pytest.mark.slow
def test_glimpse_cli_credentials_from_env_and_file_not_in_ps(small_day, tmp_path):
    """Credentials from the environment or a file work, wrong ones are
    refused and counted, and neither shows in the process's command line
    (what ps prints).  A wildcard --listen is warned about."""
    env = dict(os.environ, **{ENV_USER: "envusr", ENV_PASSWORD: "Env-Secret"})
    cred = tmp_path / "cred"
    cred.write_text("filusr:File-Secr\n")
    cred.chmod(0o600)
    cases = [
        (["--listen", "127.0.0.1:0"], env, ("envusr", "Env-Secret")),
        (["--listen", "0.0.0.0:0", "--credentials-file", str(cred)], None, ("filusr", "File-Secr")),
    ]
    for args, env_, (user, password) in cases:
        with server_process(["glimpse-server", small_day, "-q", *args], env=env_) as p:
            line, _, rest = read_line_until(p, "listening on")
            port = int(line.split()[3].rsplit(":", 1)[1])
            with open("/proc/%d/cmdline" % p.pid, "rb") as f:
                cmdline = f.read()
            assert password.encode() not in cmdline and user.encode() not in cmdline
            # ps without the sanitizer runtime the ASan pass preloads (procps
            # under a preloaded libasan can deadlock at start-up), and bounded.
            ps_env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS")}
            ps = subprocess.run(
                ["ps", "-ww", "-o", "args=", "-p", str(p.pid)],
                capture_output=True,
                text=True,
                env=ps_env,
                timeout=HANG_S,
            )
            assert ps.returncode != 0 or (small_day in ps.stdout and password not in ps.stdout)
            assert login(port, user, password)[0][0] == soup.LOGIN_ACCEPTED
            assert login(port, user, password[:-1])[0] == [soup.LOGIN_REJECTED]
            assert login(port)[0] == [soup.LOGIN_REJECTED]
            out, err = stop(p, rest)
        assert p.returncode == 0 and "Traceback" not in err, err
        assert "not_authorized 2" in out and "snapshots served 1" in out, out
        assert "no credentials" not in err and "--password is visible" not in err
        assert ("every interface" in err) == ("0.0.0.0:0" in args), err


def test_glimpse_cli_credential_usage_errors(small_day, tmp_path):
    """A file with no USER:PASSWORD line, or a file and --password at once: usage errors."""
    bad = tmp_path / "bad"
    bad.write_text("justapassword\n")
    for extra in (
        ["--credentials-file", str(bad)],
        ["--credentials-file", str(bad), "--password", "p"],
        ["--credentials-file", str(tmp_path / "missing")],
    ):
        r = subprocess.run(
            [sys.executable, "-m", "feedhandler", "glimpse-server", small_day, "--listen", "127.0.0.1:0", *extra],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 2 and "credentials" in r.stderr and "Traceback" not in r.stderr, r.stderr


# ------------------------------------------------------------ rewind-server


def test_allow_list_filter():
    default = AllowList()
    assert default.allows("127.0.0.1") and default.allows("127.9.9.9") and default.allows("::1")
    assert not default.allows("10.1.2.3") and not default.allows("192.168.1.1") and not default.allows("fe80::1")
    ten = AllowList(["10.0.0.0/8"])
    assert ten.allows("10.1.2.3") and ten.allows("::ffff:10.1.2.3")  # dual-stack socket
    assert not ten.allows("127.0.0.1") and not ten.allows("::ffff:127.0.0.1") and not ten.allows("garbage")
    assert AllowList(["0.0.0.0/0"]).allows("203.0.113.7")
    for bad in (["nonsense"], ["10.0.0.0/33"], []):
        with pytest.raises(ValueError):
            AllowList(bad)


def test_rate_limiter_token_bucket():
    now = [0.0]
    lim = RateLimiter(rate=1000, burst=3000, max_clients=2, clock=lambda: now[0])
    assert [lim.take("a", 1000) for _ in range(4)] == [True, True, True, False]
    assert lim.take("b", 3000) and not lim.take("b", 1)  # per address
    assert not lim.take("c", 1)  # no room for a third address
    now[0] = 1.0  # 1000 bytes back each
    assert lim.take("a", 1000) and not lim.take("a", 1)
    assert not lim.take("c", 1)  # a and b not refilled yet
    now[0] = 10.0
    assert lim.take("c", 3000)  # refilled buckets made room
    with pytest.raises(ValueError):
        RateLimiter(rate=0, burst=10)


def request_for(session, seq=1, count=1000):
    return struct.pack(">10sQH", session, seq, count)


def rewind(**kw):
    return rewind_serving(SAMPLE, **kw)


def replies(cli, n, quiet_s=0.3):
    """Datagrams received: waits up to HANG_S for the first n, then quiet_s for
    any more (a late extra one could only hide a bug)."""
    got = []
    cli.settimeout(HANG_S)
    try:
        while len(got) < n:
            got.append(cli.recv(65536))
        cli.settimeout(quiet_s)
        while True:
            got.append(cli.recv(65536))
    except socket.timeout:
        return got


def test_rewind_ignores_a_source_outside_the_allow_list():
    session = sorted(index_capture(SAMPLE).sessions)[0]
    with rewind(allow=["10.0.0.0/8"]) as (srv, cli):
        cli.sendto(request_for(session), srv.address)
        wait_for(lambda: srv.stats["ignored"]["not_allowed"] == 1, "refusal counted")
        assert replies(cli, 0) == []
        st = srv.stats
    assert st["requests"] == 1 and st["replies"] == 0 and st["bytes_sent"] == 0


def test_rewind_rate_limit_bounds_the_amplification():
    """20 requests of 20 bytes in a burst, each asking for ~1,400 bytes: what
    goes out is bounded by the bucket (burst + rate x time), the rest counted."""
    session = sorted(index_capture(SAMPLE).sessions)[0]
    burst, n = 3 * 1400, 20
    t0 = time.monotonic()
    with rewind(rate_limit=1.0, burst=burst) as (srv, cli):
        for i in range(n):
            cli.sendto(request_for(session, seq=1 + i), srv.address)
        wait_for(lambda: srv.stats["requests"] == n, "all requests handled")
        st = srv.stats
        got = replies(cli, st["replies"])
    elapsed = time.monotonic() - t0
    assert 1 <= st["replies"] <= 3 and len(got) == st["replies"]
    assert st["ignored"]["rate_limited"] == n - st["replies"]
    assert st["bytes_sent"] == sum(map(len, got)) <= burst + elapsed * 1.0
    # Unlimited, the same burst is answered whole: the limit is what dropped them.
    with rewind() as (srv, cli):
        for i in range(n):
            cli.sendto(request_for(session, seq=1 + i), srv.address)
        assert len(replies(cli, n)) == n


@pytest.mark.slow
def test_rewind_cli_allow_list_wildcard_warning_and_counters(tmp_path):
    with server_process(
        ["rewind-server", SAMPLE, "--listen", "0.0.0.0:0", "--allow", "10.0.0.0/8", "--rate-limit", "50000", "-q"]
    ) as p:
        line, seen, rest = read_line_until(p, "listening on")
        assert any("answering 10.0.0.0/8; rate limit 50,000 bytes/s" in s for s in seen), seen
        port = int(line.split()[3].rsplit(":", 1)[1])
        session = sorted(index_capture(SAMPLE).sessions)[0]
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with c:
            c.sendto(request_for(session), ("127.0.0.1", port))
            c.settimeout(0.5)
            with pytest.raises(socket.timeout):
                c.recv(65536)
        out, err = stop(p, rest)
    assert p.returncode == 0 and "Traceback" not in err, err
    assert "every interface" in err
    assert "requests 1, replies 0" in out and "not_allowed 1" in out and "rate_limited 0" in out, out
    for bad in (["--allow", "10.0.0.0/40"], ["--burst", "100"], ["--rate-limit", "0", "--burst", "5000"]):
        r = subprocess.run(
            [sys.executable, "-m", "feedhandler", "rewind-server", SAMPLE, "--listen", "127.0.0.1:0", *bad],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 2 and "Traceback" not in r.stderr, (bad, r.stderr)
