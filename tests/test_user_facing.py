"""What a user sees (docs/robustness.md, "What a user sees"): the replay summary
counts what the books dropped, hostile symbol bytes never reach the terminal
raw, unknown words and out-of-range values are refused with one short message
instead of a traceback or a silent default, and damaged or foreign inputs are
reported as such."""

import os
import struct
import subprocess
import sys

import pytest

import frames as F
from feedhandler.cli import argtypes, main
from feedhandler.config import ConfigError, load
from feedhandler.replay import Replay, ReplayError
from feedhandler.shm import attach, text_of

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PITCH_SAMPLE = os.path.join(ROOT, "pcaps", "sample_pitch.pcap")
SMALL = dict(max_orders=1 << 12, max_levels=1 << 14, max_instruments=64)
SMALL_ARGS = ["--max-orders", "4096", "--max-levels", "16384", "--max-instruments", "64", "-q"]
T0 = 1_764_000_000_000_000_000
HOSTILE = b"\x1b]0;X\x07"  # an xterm "set title" sequence as a symbol


def msg_R(locate, stock: bytes):
    return struct.pack(
        ">cHH6s8sccIcc2scccccIc",
        b"R",
        locate,
        0,
        b"\0" * 6,
        stock.ljust(8),
        b"Q",
        b"N",
        100,
        b"N",
        b"C",
        b"  ",
        b"P",
        b"N",
        b"N",
        b"1",
        b"N",
        0,
        b"N",
    )


def capture(msgs, per_packet=10):
    recs = []
    for k in range(0, len(msgs), per_packet):
        recs.append((T0 + k, F.frame(F.mold(msgs[k : k + per_packet], seq=1 + k))))
    return F.pcap_bytes(recs)


# ------------------------------------------------------- the replay summary


def test_summary_shows_book_drops_and_says_none_only_when_nothing_dropped(tmp_path, capsys):
    """All 75 adds on stock locate 0 are dropped by the books (locate_range)
    and the 68 deletes then name unknown references: the summary used to say
    "errors none"."""
    bad = tmp_path / "locate0.pcap"
    bad.write_bytes(
        capture([F.msg_A(ref=i + 1, locate=0) for i in range(75)] + [F.msg_D(ref=i + 1, locate=0) for i in range(68)])
    )
    assert main(["replay", str(bad), "--mode", "book"] + SMALL_ARGS) == 0
    out = capsys.readouterr().out
    assert "errors        none" not in out
    assert "errors (skipped, by reason):" in out
    rows = {l.split()[0]: l.split()[1] for l in out.splitlines() if l.startswith("    book.")}
    assert rows == {"book.locate_range": "75", "book.unknown_ref": "68"}, out
    # The existing lines are all still there.
    for head in ("packets", "mold packets", "  where they went", "messages", "gaps ", "elapsed"):
        assert any(l.startswith(head) for l in out.splitlines()), head

    good = tmp_path / "clean.pcap"
    good.write_bytes(
        capture([F.msg_A(ref=i + 1, locate=1) for i in range(5)] + [F.msg_D(ref=i + 1, locate=1) for i in range(5)])
    )
    assert main(["replay", str(good), "--mode", "book"] + SMALL_ARGS) == 0
    out = capsys.readouterr().out
    assert "errors        none" in out and "book." not in out


# ------------------------------------------------ segments: symbols, dead


@pytest.fixture
def dead_segment(name, tmp_path):
    """A segment whose writer published a book for locate 5, named by an ESC
    sequence in its stock directory, then died (no finish)."""
    cap = tmp_path / "hostile.pcap"
    cap.write_bytes(capture([msg_R(5, HOSTILE), F.msg_A(ref=1, locate=5, stock=HOSTILE.ljust(8))]))
    code = (
        "import os; from feedhandler.replay import Replay; r = Replay(shm=%r, max_orders=4096, "
        "max_levels=16384, max_instruments=64); res = r.run_file(%r, progress=False); "
        "assert res.ok, res.error; os._exit(0)" % (name, str(cap))
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)
    return name


def test_book_escapes_symbol_bytes_and_marks_a_dead_writer(dead_segment, capsys):
    assert main(["book", "5", "--shm", dead_segment, "--once"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert out.startswith("\\x1b]0;X\\x07 (locate 5)"), out
    assert "DEAD: the writer" in out and "frozen" in out
    with attach(dead_segment) as seg:
        assert seg.state == "dead"
        assert seg.symbols() == {5: "\\x1b]0;X\\x07"}
        assert seg.book(5).symbol == "\\x1b]0;X\\x07"


def test_book_of_a_finished_writer_has_no_dead_marker(name, tmp_path, capsys):
    r = Replay(shm=name, **SMALL)
    assert r.run_buffer(capture([msg_R(5, b"AAPL"), F.msg_A(ref=1, locate=5)])).ok
    r.finish()
    assert main(["book", "AAPL", "--shm", name, "--once"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("AAPL (locate 5)") and "DEAD" not in out
    r.close()


def test_text_of_keeps_plain_symbols_and_escapes_the_rest():
    assert text_of(b"AAPL    ") == "AAPL"
    assert text_of(b"BRK A\0\0\0") == "BRK A"
    assert text_of(b"A\\B\xff\x00Z") == "A\\x5cB\\xff\\x00Z"


def test_seek_rejects_unknown_words(name):
    r = Replay(shm=name, **SMALL)
    with attach(name) as seg:
        for word in ("NOW", "latest", ""):
            with pytest.raises(ValueError, match="'now' or 'oldest'"):
                seg.seek(word)
        seg.seek("oldest")
        seg.seek("now")
    r.close()


@pytest.mark.parametrize("cmd", [["stats", "--shm", "."], ["stats", "--shm", ".."], ["book", "X", "--shm", "."]])
def test_shm_dot_is_a_message_not_a_traceback(cmd, capsys):
    assert main(cmd) == 1
    err = capsys.readouterr().err
    assert "bad segment name" in err and "Traceback" not in err


def test_shm_directory_is_a_message_not_a_traceback(name, capsys):
    os.mkdir("/dev/shm/" + name)
    try:
        for cmd in (["stats", "--shm", name], ["book", "X", "--shm", name]):
            assert main(cmd) == 1
            err = capsys.readouterr().err
            assert name in err and "Traceback" not in err
    finally:
        os.rmdir("/dev/shm/" + name)


# ------------------------------------------------------------ configs


@pytest.mark.parametrize(
    "body,needle",
    [
        (b"\xff\xfe[[channel]]\n", "not UTF-8"),
        (b"a = " + b"[" * 5000 + b"]" * 5000 + b"\n", "too deeply"),
        (b"x = {" * 3000 + b"}" * 3000 + b"\n", "too deeply"),
    ],
)
def test_unreadable_config_is_a_message_naming_the_file(tmp_path, body, needle):
    p = tmp_path / "bad.toml"
    p.write_bytes(body)
    with pytest.raises(ConfigError, match=needle) as exc:
        load(str(p))
    assert str(p) in str(exc.value)


# ------------------------------------------------------ option values


@pytest.mark.parametrize("value", ["1e-20", "1e-7", "2e6", "nan", "inf", "-1", "0"])
def test_speed_out_of_range_refused(value):
    with pytest.raises(Exception, match="between 1e-06 and 1e\\+06"):
        argtypes.speed(value)


def test_speed_range_edges_and_the_api():
    assert argtypes.speed("1e-6") == 1e-6 and argtypes.speed("1e6") == 1e6 and argtypes.speed("max") == 0.0
    # The C core enforces the same range for API users (the cast it guards is there).
    with pytest.raises(ReplayError, match="1e-06..1e\\+06"):
        Replay(speed=1e-20, **SMALL)


def test_cores_error_is_short():
    with pytest.raises(Exception) as exc:
        argtypes.cpulist("0-100000")
    assert "CPU 100000 does not exist" in str(exc.value) and len(str(exc.value)) < 120
    with pytest.raises(Exception) as exc:
        argtypes.cpulist("0-" + "9" * 4000)
    assert len(str(exc.value)) < 200


# --------------------------------------------------------------- inputs


def test_pcapng_inconsistent_caplen_is_partial_like_pcap(tmp_path):
    """An EPB whose captured length runs past its block: skipped, the rest
    decoded, and the input reported damaged (a pcap with the same fault is)."""
    recs = [(T0 + k, F.frame(F.mold([F.msg_A(ref=k + 1)], seq=k + 1))) for k in range(4)]
    data = bytearray(F.pcapng_bytes(recs, interfaces=1))
    epb = data.index(struct.pack("<I", 6))  # the first Enhanced Packet Block
    data[epb + 8 + 12 : epb + 8 + 16] = struct.pack("<I", 5000)  # caplen > its body
    r = Replay(mode="decode")
    res = r.run_buffer(bytes(data))
    st = r.stats()
    assert res.partial and not res.ok and "pcapng corrupt" in res.error, res.error
    assert st["errors"]["capture_bad_record"] == 1 and st["packets"] == 3
    p = tmp_path / "bad.pcapng"
    p.write_bytes(bytes(data))
    assert main(["replay", str(p), "--mode", "decode", "-q"]) == 1


def test_gen_out_directory_refused(tmp_path, capsys):
    for out in (str(tmp_path) + "/", str(tmp_path) + "/."):
        assert main(["gen", "--out", out, "--messages", "2000", "--symbols", "1", "-q"]) == 2
        assert "prefix" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(not os.path.exists(PITCH_SAMPLE), reason="pcaps/sample_pitch.pcap not present")
def test_servers_refuse_a_pitch_capture():
    """Both servers build on index_capture: a PITCH capture used to be indexed
    as thousands of garbage MoldUDP64 sessions and served."""
    from feedhandler.glimpse import SnapshotError, build_snapshot
    from feedhandler.rewind import RewindError, index_capture

    with pytest.raises(RewindError, match="is a Cboe PITCH capture"):
        index_capture(PITCH_SAMPLE)
    with pytest.raises(SnapshotError, match="is a Cboe PITCH capture"):
        build_snapshot(PITCH_SAMPLE)


def test_index_skips_pitch_units_beside_mold(tmp_path):
    """A capture with both protocols: the MoldUDP64 session is indexed, the
    PITCH units are counted as not served (not turned into sessions)."""
    from feedhandler.rewind import index_capture

    with open(PITCH_SAMPLE, "rb") as f:
        pitch = F.parse_pcap(f.read())[:50]
    mold = [(T0 + k, F.frame(F.mold([F.msg_A(ref=k + 1)], seq=k + 1))) for k in range(5)]
    p = tmp_path / "mixed.pcap"
    p.write_bytes(F.pcap_bytes(mold + pitch))
    idx = index_capture(str(p))
    assert list(idx.sessions) == [F.SESSION]
    assert idx.skipped.get("unconfigured_group", 0) > 0
