#!/usr/bin/env python3
"""Write the libFuzzer seed corpora into tests/fuzz/corpus/<harness>/.

    python scripts/make_fuzz_corpus.py [--out DIR]

Seeds are small on purpose (the fuzzer mutates them; a seed of a few KB runs
in microseconds): frames from pcaps/sample.pcap and from tiny generated days
(feedhandler.gen.generate: few messages, A/B lines with loss, heartbeats, end
of session), hand-made edge cases from tests/frames.py, small pcap / pcapng /
BinaryFILE / gzip files, and valid and edge re-requests and replies.  Input
formats are those the harnesses read (fuzz/fuzz_*.c).  Deterministic: the
same tree writes the same bytes.  The whole corpus stays well under 2 MB.
"""

import argparse
import os
import shutil
import struct
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

import frames as F  # noqa: E402  (tests/frames.py: byte-level builders)
from feedhandler.gen import generate  # noqa: E402

GROUP_B = F.GROUP_B


# ------------------------------------------------------------ input formats


def frames_input(records, opt=0):
    """fuzz_frames: option byte, then (u16 LE length, u8 receive step x 10 us, frame) per frame."""
    out = [bytes([opt])]
    prev = records[0][0] if records else 0
    for ts, f in records:
        step = max(0, min(255, (ts - prev) // 10000))
        prev = ts
        out.append(struct.pack("<HB", len(f), step) + f)
    return b"".join(out)


def rerequest_input(opt, replies):
    """fuzz_rerequest, client side: option byte, then (u16 LE length, reply) per reply."""
    return bytes([opt]) + b"".join(struct.pack("<H", len(r)) + r for r in replies)


def gen_day(tmp, name, **kw):
    prefix = os.path.join(tmp, name)
    generate(prefix, progress=False, **kw)
    with open(prefix + ".pcap", "rb") as f:
        pcap = f.read()
    binfile = b""
    if os.path.exists(prefix + ".bin"):
        with open(prefix + ".bin", "rb") as f:
            binfile = f.read()
    return F.parse_pcap(pcap), binfile


def binfile_head(data, n):
    off = 0
    for _ in range(n):
        if off + 2 > len(data):
            break
        off += 2 + struct.unpack(">H", data[off : off + 2])[0]
    return data[:off]


def iex_input(datagrams, opt=0):
    """fuzz_iex: option byte, then (u16 LE length, u8 line | step << 1, UDP payload) per datagram."""
    return bytes([opt]) + b"".join(struct.pack("<HB", len(p), ctl) + p for ctl, p in datagrams)


# ------------------------------------------------------------------- seeds


def iex_seeds():
    """Hand-made IEX-TP segments of the three feeds (layouts: docs/iex.md)."""
    seg, add, sysev, plu, trade = F.iex_segment, F.iex_add, F.iex_system, F.iex_plu, F.iex_trade
    mod, exe, dele, clear, status, quote = (
        F.iex_modify,
        F.iex_executed,
        F.iex_delete,
        F.iex_clear,
        F.iex_status,
        F.iex_quote,
    )
    dp = [
        seg(0x8005, 7, 0, [sysev("O"), status("T"), add(1, "8", 100, 990500), add(2, "5", 200, 991000)]),
        seg(0x8005, 7, 4, [], offset=200),
        seg(0x8005, 7, 4, [mod(1, 150, 990600), exe(2, 50, 991000, 77), add(3, "8", 10, 990000, "AAPL")]),
        seg(0x8005, 7, 7, [dele(3, "AAPL"), clear(), add(4, "5", 5, -1), sysev("C")]),
    ]
    deep = [
        seg(0x8004, 9, 0, [plu(b"8", 1, 100, 500000), plu(b"5", 0, 300, 500100), plu(b"8", 0, 50, 500200)]),
        seg(0x8004, 9, 3, [plu(b"8", 1, 0, 500200), trade(10, 500100, 5, "MSFT", flags=0x80)]),
    ]
    tops = [
        seg(
            0x8003,
            11,
            0,
            [
                quote(100, 1500000, 1500100, 200),
                trade(100, 1500000, 9, flags=0x80),
                trade(100, 1500000, 9, kind=b"B", flags=0x80),
            ],
        )
    ]
    return {
        "iex_deepplus": iex_input([(2, p) for p in dp]),
        "iex_deepplus_ab": iex_input([(2 | i % 2, p) for i, p in enumerate(dp + dp[1:3])], opt=4),
        "iex_deepplus_hole": iex_input([(2, dp[0]), (2, dp[2]), (200, dp[1]), (2, dp[3])], opt=1),
        "iex_deep": iex_input([(2, p) for p in deep]),
        "iex_deep_lanes": iex_input([(2, p) for p in deep + dp], opt=8),
        "iex_tops": iex_input([(2, p) for p in tops], opt=16),
        "iex_sessions": iex_input([(2, p) for p in dp[:2]] + [(2, seg(0x8005, 8, 0, [add(9, "8", 1, 1)]))]),
        "iex_decode": iex_input([(2, p) for p in dp + deep + tops], opt=2),
    }


def pitch_frame_seeds(pday, sample):
    """Cboe PITCH through the same harness: a small generated day (2 units, A/B
    lines with loss), with a config (option bit 5: its lines are PITCH), on two
    lanes, and mixed with ITCH frames."""
    s = {}
    s["pitch_ab_loss"] = frames_input(pday[:60])
    s["pitch_ab_loss_config"] = frames_input(pday[:40], opt=32)
    s["pitch_ab_loss_lanes"] = frames_input(pday[:40], opt=8)
    s["pitch_end"] = frames_input(pday[:8] + pday[-8:], opt=1)
    mixed = sorted(sample[:16] + [(sample[0][0] + (ts - pday[0][0]), f) for ts, f in pday[:16]], key=lambda r: r[0])
    s["pitch_itch_mixed"] = frames_input(mixed)
    s["pitch_itch_mixed_config"] = frames_input(mixed, opt=4 | 32 | 8)
    return s


def frame_seeds(sample, day_ab, day_hb):
    t0 = 34200 * 10**9
    A = [F.msg_A(ref=i + 1, price=1500000 + i * 100, side=b"BS"[i & 1 : (i & 1) + 1], ts=t0 + i) for i in range(6)]
    D = [F.msg_D(ref=i + 1, ts=t0 + 100 + i) for i in range(6)]

    def pkt(seq, msgs, dst=F.GROUP_A, session=F.SESSION, **kw):
        return F.frame(F.mold(msgs, seq=seq, session=session), dst=dst, **kw)

    ts = lambda k: 1700000000 * 10**9 + k * 20000  # 20 us apart  # noqa: E731
    s = {}
    s["sample_head"] = frames_input(sample[:48])
    s["sample_mid"] = frames_input(sample[4000:4032])
    s["sample_head_book"] = frames_input(sample[:24], opt=1)
    s["sample_head_decode"] = frames_input(sample[:24], opt=2)
    s["gen_ab_loss"] = frames_input(day_ab[:80])
    s["gen_ab_loss_config"] = frames_input(day_ab[:40], opt=4)
    s["gen_ab_loss_lanes"] = frames_input(day_ab[:40], opt=8)
    s["gen_heartbeats_end"] = frames_input(day_hb[:12] + day_hb[-12:])
    s["gen_latency"] = frames_input(day_ab[:16], opt=16)
    # A/B: the B copy is a duplicate; a hole filled by B; a hole never filled.
    s["ab_duplicate"] = frames_input(
        [
            (ts(0), pkt(1, A[:2])),
            (ts(1), pkt(1, A[:2], dst=GROUP_B)),
            (ts(2), pkt(3, D[:2])),
            (ts(3), pkt(3, D[:2], dst=GROUP_B)),
        ]
    )
    s["hole_filled_by_b"] = frames_input(
        [
            (ts(0), pkt(1, A[:2])),
            (ts(1), pkt(5, A[4:6])),
            (ts(2), pkt(3, A[2:4], dst=GROUP_B)),
            (ts(3), pkt(5, A[4:6], dst=GROUP_B)),
        ]
    )
    s["hole_expires"] = frames_input([(ts(0), pkt(1, A[:1])), (ts(1), pkt(4, A[3:4])), (ts(100), pkt(5, A[4:5]))])
    s["hole_heartbeat"] = frames_input(
        [(ts(0), pkt(1, A[:1])), (ts(1), F.frame(F.mold([], seq=9))), (ts(2), pkt(2, A[1:3]))]
    )
    s["gap_buffer_full"] = frames_input(
        [(ts(0), pkt(1, A[:1]))] + [(ts(1 + k), pkt(3 + k, [F.msg_S(ts=k)])) for k in range(12)]
    )
    s["end_of_session"] = frames_input([(ts(0), pkt(1, A[:2])), (ts(1), F.frame(F.mold([], seq=3, count=0xFFFF)))])
    s["silence_then_alive"] = frames_input([(ts(0), pkt(1, A[:2])), (ts(400), pkt(3, D[:2]))])
    s["session_change"] = frames_input([(ts(0), pkt(1, A[:2])), (ts(1), pkt(1, D[:2], session=b"TESTSESS02"))])
    s["stream_table_full"] = frames_input([(ts(k), pkt(1, A[k : k + 1], session=b"SESSION%03d" % k)) for k in range(6)])
    s["overlap_retransmit"] = frames_input([(ts(0), pkt(1, A[:3])), (ts(1), pkt(2, A[1:5]))])
    s["vlan_qinq"] = frames_input([(ts(0), pkt(1, A[:1], vlans=[100])), (ts(1), pkt(2, A[1:2], vlans=[10, 20]))])
    s["malformed_mix"] = frames_input(
        [
            (ts(0), pkt(1, A[:1])[:10]),  # Ethernet cut short
            (ts(1), F.frame(b"", ethertype=0x0806)),  # ARP
            (ts(2), F.frame(b"", ethertype=0x86DD)),  # IPv6
            (ts(3), F.frame(F.mold(A[:1], seq=1), flags_frag=0x2000)),  # fragment
            (ts(4), F.frame(F.mold(A[:1], seq=1), proto=6)),  # TCP
            (ts(5), F.frame(F.mold(A[:1], seq=1), udp_len=4)),  # bad UDP length
            (ts(6), F.frame(F.mold(A[:1], seq=1), ip_options=b"\x01\x01\x01\x00")),
            (ts(7), F.frame(F.SESSION + b"\0" * 5)),  # MoldUDP64 cut short
            (ts(8), F.frame(F.mold(A[:1], seq=1, count=3))),  # count overrun
            (ts(9), F.frame(F.mold([], seq=2, count=1, raw_blocks=F.block(A[1], length=200)))),  # block overrun
            (ts(10), F.frame(F.mold([b"Z" * 9, A[2][:20], b""], seq=2))),  # unknown type, bad length, empty
            (ts(11), F.frame(F.mold([], seq=5) + b"xx")),  # heartbeat with trailing bytes
        ]
    )
    s["empty"] = b"\0"
    return s


def source_seeds(sample_pcap_bytes, sample, day_ab, binfile):
    recs = sample[:20]
    s = {}
    s["pcap_ns_le"] = F.pcap_bytes(recs, ns=True)
    s["pcap_us_le"] = F.pcap_bytes(recs, ns=False)
    s["pcap_ns_be"] = F.pcap_bytes(recs, ns=True, swap=True)
    s["pcap_us_be"] = F.pcap_bytes(recs, ns=False, swap=True)
    s["pcap_gen_ab"] = F.pcap_bytes(day_ab[:40], ns=True)
    s["pcap_truncated"] = F.pcap_bytes(recs[:6])[:-7]
    s["pcap_snapped"] = F.pcap_bytes(recs[:4], snaplen=64)[:24] + b"".join(
        struct.pack("<IIII", t // 10**9, t % 10**9, 60, len(f)) + f[:60] for t, f in recs[:4]
    )
    s["pcap_linktype"] = F.pcap_bytes(recs[:2], linktype=101)
    s["pcap_header_only"] = F.pcap_bytes([])
    s["pcapng_ns"] = F.pcapng_bytes(recs, tsresol=9)
    s["pcapng_us_swap"] = F.pcapng_bytes(recs[:10], tsresol=6, swap=True)
    s["pcapng_simple"] = F.pcapng_bytes(recs[:10], interfaces=1, simple=True)
    s["pcapng_two_sections"] = F.pcapng_bytes(recs[:5]) + F.pcapng_bytes(recs[5:10], swap=True)
    s["pcapng_truncated"] = F.pcapng_bytes(recs[:6])[:-9]
    s["binfile"] = binfile_head(binfile, 120)
    s["binfile_truncated"] = binfile_head(binfile, 20)[:-3]
    s["gzip_pcap"] = F.gz(F.pcap_bytes(recs[:10]))
    s["gzip_binfile"] = F.gz(binfile_head(binfile, 60))
    s["gzip_two_members"] = F.gz(F.pcap_bytes(recs[:4])) + F.gz(b"")
    s["gzip_truncated"] = F.gz(F.pcap_bytes(recs[:10]))[:-12]
    s["gzip_in_gzip"] = F.gz(F.gz(F.pcap_bytes(recs[:2])))
    s["unknown_format"] = b"not a capture at all"
    return s


def rerequest_seeds():
    t0 = 34200 * 10**9
    A = [F.msg_A(ref=200 + i, price=1500000 + i * 100, side=b"BS"[i & 1 : (i & 1) + 1], ts=t0 + i) for i in range(8)]
    s = {}
    # Server side (option bit 0): the request datagram itself.
    req = F.SESSION + struct.pack(">QH", 3, 3)
    s["request_valid"] = b"\x01" + req
    s["request_max_count"] = b"\x01" + F.SESSION + struct.pack(">QH", 2**64 - 1, 0xFFFF)
    s["request_short"] = b"\x01" + req[:19]
    s["request_long"] = b"\x01" + req + b"\0"
    s["request_empty"] = b"\x01"
    # Client side: stream at next seq 3, hole to seq 6 (held packets at 6, 8, ... or a heartbeat).
    fill = F.mold(A[:3], seq=3)
    for held in (0, 1, 3, 7):
        s["reply_fills_held%d" % held] = rerequest_input(held << 1, [fill])
    s["reply_fills_book"] = rerequest_input(0x12, [fill])
    s["reply_fills_decode"] = rerequest_input(0x22, [fill])
    s["reply_in_parts"] = rerequest_input(0x02, [F.mold(A[:1], seq=3), F.mold(A[1:2], seq=4), F.mold(A[2:4], seq=5)])
    s["reply_overlap"] = rerequest_input(0x04, [F.mold(A[:5], seq=1)])
    s["reply_foreign"] = rerequest_input(
        0x02,
        [
            F.mold(A[:3], seq=3, session=b"OTHERSESS1"),  # other session
            F.mold([], seq=3),  # heartbeat
            F.mold([], seq=3, count=0xFFFF),  # end of session
            F.mold(A[:1], seq=4),  # past the hole
            fill[:19],  # shorter than a header
            b"",  # empty datagram
            fill,
        ],
    )
    s["reply_malformed_blocks"] = rerequest_input(
        0x02,
        [
            F.mold(A[:1], seq=3, count=3),  # count overrun
            F.mold([], seq=3, count=1, raw_blocks=F.block(A[0], length=300)),  # block overrun
            F.mold([b"Z" * 7, b""], seq=3),  # unknown type, empty block
            fill + b"trailing",
        ],
    )
    s["reply_nothing_new"] = rerequest_input(0x02, [F.mold(A[:2], seq=1)])
    return s


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fuzz", "corpus"))
    args = ap.parse_args()
    with open(os.path.join(ROOT, "pcaps", "sample.pcap"), "rb") as f:
        sample_bytes = f.read()
    sample = F.parse_pcap(sample_bytes)
    tmp = tempfile.mkdtemp(prefix="fuzz-corpus-")
    try:
        day_ab, binfile = gen_day(
            tmp,
            "ab",
            messages=1100,
            symbols=3,
            channels=1,
            seed=7,
            lines="ab",
            loss_a=0.1,
            loss_b=0.1,
            heartbeat_ms=60000,
        )
        day_hb, _ = gen_day(tmp, "hb", messages=1100, symbols=2, channels=2, seed=8, heartbeat_ms=1000)
        pday, _ = gen_day(
            tmp,
            "pitch",
            messages=1100,
            symbols=6,
            units=2,
            seed=9,
            lines="ab",
            loss_a=0.1,
            loss_b=0.1,
            heartbeat_ms=60000,
            protocol="pitch",
        )
    finally:
        shutil.rmtree(tmp)
    corpora = {
        "fuzz_frames": {**frame_seeds(sample, day_ab, day_hb), **pitch_frame_seeds(pday, sample)},
        "fuzz_sources": source_seeds(sample_bytes, sample, day_ab, binfile),
        "fuzz_rerequest": rerequest_seeds(),
        "fuzz_iex": iex_seeds(),
    }
    total = 0
    for harness, seeds in corpora.items():
        d = os.path.join(args.out, harness)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        for name, data in sorted(seeds.items()):
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
            total += len(data)
        print("%-15s %3d seeds, %7d bytes" % (harness, len(seeds), sum(map(len, seeds.values()))))
    print("total %d bytes in %s" % (total, args.out))


if __name__ == "__main__":
    main()
