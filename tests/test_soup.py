"""SoupBinTCP 4.0 framing and fields (csrc/soup.c through feedhandler.soup): whole
packets out of a TCP stream however it is segmented (down to 1-byte reads),
every length checked, the login request's padding, Numeric fields, GLIMPSE's
End of Snapshot."""

import random

import pytest

from feedhandler import soup
from feedhandler.soup import Framer, SoupError, packet


def server_stream():
    return [
        (b"+", b"hello"),
        (b"A", b"  SESSION1" + b"1".rjust(20)),
        (b"S", b"R" + bytes(38)),
        (b"S", b""),
        (b"H", b""),
        (b"U", bytes(range(256)) * 3),
        (b"S", b"G" + b"123456".rjust(20)),
        (b"Z", b""),
    ]


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 10_000])
def test_framing_whatever_the_segmentation(chunk):
    pkts = server_stream()
    wire = b"".join(packet(t, p) for t, p in pkts)
    f = Framer(from_server=True)
    got = []
    for i in range(0, len(wire), chunk):
        got += f.feed(wire[i : i + chunk])
    assert got == pkts and f.pending == 0


def test_framing_random_segmentation():
    rng = random.Random(7)
    pkts = server_stream() * 20
    wire = b"".join(packet(t, p) for t, p in pkts)
    f, got, i = Framer(), [], 0
    while i < len(wire):
        k = rng.randint(1, 40)
        got += f.feed(wire[i : i + k])
        i += k
    assert got == pkts


@pytest.mark.parametrize(
    "wire,why",
    [
        (b"\x00\x00", "length"),  # length 0: no type byte
        (b"\x00\x01X", "type"),  # unknown type
        (b"\x00\x01L", "type"),  # a client's packet from a server
        (b"\x00\x05A1234", "length"),  # login accepted must be 30 + 1
        (b"\x00\x02H!", "length"),  # heartbeat with a payload
        (b"\x00\x03J", "length"),  # rejected: 1-byte reason
    ],
)
def test_corrupt_streams_are_refused_before_reading_the_payload(wire, why):
    with pytest.raises(SoupError, match=why):
        Framer(from_server=True).feed(wire)


def test_client_direction():
    f = Framer(from_server=False)
    req = soup.login_request("u", "p")
    assert f.feed(req + packet(b"R") + packet(b"O")) == [(b"L", req[3:]), (b"R", b""), (b"O", b"")]
    with pytest.raises(SoupError):
        Framer(from_server=False).feed(packet(b"S", b"x"))  # a server's packet from a client


def test_login_request_layout():
    req = soup.login_request("alice", "secret", "SESS01", 1234)
    assert len(req) == 49 and req[:3] == b"\x00\x2fL"
    assert req[3:9] == b"alice "  # Alpha: right-padded
    assert req[9:19] == b"secret    "
    assert req[19:29] == b"    SESS01"  # the session: left-padded
    assert req[29:49] == b"1234".rjust(20)  # Numeric: left-padded with spaces
    blank = soup.login_request()
    assert blank[3:29] == b" " * 26 and blank[29:49] == b"0".rjust(20)
    for bad in (dict(user="toolong!"), dict(password="x" * 11), dict(session="x" * 11)):
        with pytest.raises(SoupError):
            soup.login_request(**bad)


@pytest.mark.parametrize(
    "field,value",
    [
        (b" " * 20, 0),
        (b"0".rjust(20), 0),
        (b"18446744073709551615".rjust(20), 2**64 - 1),
        (b"42", 42),
    ],
)
def test_numeric(field, value):
    assert soup.numeric(field) == value


@pytest.mark.parametrize(
    "field", [b"18446744073709551616".rjust(20), b"12 34".rjust(20), b"-1".rjust(20), b"1a".rjust(20), b"1 ".rjust(20)]
)
def test_numeric_rejects(field):
    with pytest.raises(SoupError):
        soup.numeric(field)


def test_login_accepted_and_end_of_snapshot():
    assert soup.login_accepted(b"  SESSION1" + b"77".rjust(20)) == ("SESSION1", 77)
    assert soup.end_of_snapshot(b"G" + b"1000001".rjust(20)) == 1_000_001
    for bad in (b"G" + b"1".rjust(19), b"H" + b"1".rjust(20), b"G" + b"x".rjust(20), b""):
        with pytest.raises(SoupError):
            soup.end_of_snapshot(bad)


def test_scapy_layers_agree_with_the_c_framer():
    pytest.importorskip("scapy")
    from feedhandler.scapy_layers import (
        EndOfSnapshot,
        SoupBinTCP,
        SoupLoginAccepted,
        SoupLoginRejected,
        SoupLoginRequest,
    )

    req = bytes(
        SoupBinTCP(type="L")
        / SoupLoginRequest(username="alice", password="secret", requested_session="SESS01", requested_sequence=1234)
    )
    assert req == soup.login_request("alice", "secret", "SESS01", 1234)
    acc = bytes(SoupBinTCP(type="A") / SoupLoginAccepted(session="SESSION1", sequence=77))
    eos = bytes(SoupBinTCP(type="S") / EndOfSnapshot(sequence=1_000_001))
    rej = bytes(SoupBinTCP(type="J") / SoupLoginRejected(reason="S"))
    got = Framer(from_server=True).feed(acc + eos + rej)
    assert [t for t, _ in got] == [b"A", b"S", b"J"]
    assert soup.login_accepted(got[0][1]) == ("SESSION1", 77)
    assert soup.end_of_snapshot(got[1][1]) == 1_000_001
    # And back: dissecting the wire bytes.
    p = SoupBinTCP(eos)
    assert p.length == 22 and p[EndOfSnapshot].sequence == 1_000_001
    assert SoupBinTCP(req)[SoupLoginRequest].requested_sequence == 1234
