/* fuzz_iex.c -- libFuzzer harness: IEX-TP segments (TOPS, DEEP, DEEP+) through
 * the whole pipeline: protocol detection or a channel config, the segment
 * header's checks, streams per (channel, session, protocol), A/B arbitration
 * by message, holes and heartbeats, the message walk, every decoder, the
 * books (orders, DEEP levels held until their event completes, TOPS quotes,
 * Clear Book), publishing, then what fh_lane_finish does, and the segment
 * read back.  fuzz_frames reaches IEX too, but must first build an Ethernet,
 * IPv4 and UDP header; here the fuzzer mutates segments only.
 *
 * Input:
 *   byte 0       options: bits 0-1 mode (0 publish, 1 book, 2 decode, 3 book),
 *                bit 2 a channel config (lines A and B, venue IEXG),
 *                bit 3 two lanes (every frame to both), bit 4 latency stamps
 *   then datagrams: u16 little-endian length, a byte (bit 0: line B, bits
 *                1-7: receive-time step x 10 us), that many bytes of UDP
 *                payload (the last may be cut short: it is what is left),
 *                each sent in its own frame to line A or B, port 10378
 * Each frame is its own exact-size heap block (ASan sees a read past it).
 * Invariants: counters never go down, every IEX-TP datagram is counted as
 * such or rejected, at the end every hole is closed and every held packet is
 * back in the pool, by_type adds up to messages and every IEX message is
 * counted at 0x80 | its type, and the segment checks out and reads back. */
#include "fuzz_common.h"

#define IEX_A 0xE9D71504u   /* 233.215.21.4 */
#define IEX_B 0xE9D71584u   /* 233.215.21.132 */
#define IEX_PORT 10378

/* An Ethernet/IPv4/UDP frame around payload p (n bytes) to group:IEX_PORT. */
static size_t iex_frame(uint8_t *f, uint32_t group, const uint8_t *p, size_t n)
{
    memset(f, 0, 42);
    fh_put_be16(f + 12, 0x0800);
    uint8_t *ip = f + 14;
    ip[0] = 0x45;
    fh_put_be16(ip + 2, (uint16_t)(20 + 8 + n));
    ip[8] = 32;
    ip[9] = 17;
    fh_put_be32(ip + 12, 0x17E29B80u);        /* 23.226.155.128, an IEX source */
    fh_put_be32(ip + 16, group);
    uint8_t *udp = ip + 20;
    fh_put_be16(udp, 10000);
    fh_put_be16(udp + 2, IEX_PORT);
    fh_put_be16(udp + 4, (uint16_t)(8 + n));
    memcpy(f + 42, p, n);
    return 42 + n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const uint8_t opt = data[0];
    uint32_t mode = opt & 3u;
    if (mode == 3) mode = FH_MODE_BOOK;
    const uint32_t lanes = (opt & 8u) ? 2 : 1;
    fh_lane_cfg_t cfg;
    fuzz_small_cfg(&cfg, mode);
    /* IEX ids start past the ITCH locates, a block per feed (iex.h): room for
     * the first 64 symbols of each of the three feeds. */
    cfg.max_instruments = FH_PITCH_ID_BASE + 2 * FH_PITCH_VENUE_IDS + 64;
    cfg.lanes = lanes;
    char err[256];
    fh_lane_t *r[2] = {NULL, NULL};
    r[0] = fh_lane_new(&cfg, err, sizeof err);
    FUZZ_CHECK(r[0] != NULL, "fh_lane_new: %s", err);
    if (lanes == 2) {
        r[1] = fh_lane_new_peer(r[0], 1, err, sizeof err);
        FUZZ_CHECK(r[1] != NULL, "fh_lane_new_peer: %s", err);
    }
    for (uint32_t l = 0; l < lanes; l++) {
        /* IEXG as the first PITCH/IEX venue (its feeds' ids from FH_PITCH_ID_BASE). */
        FUZZ_CHECK(fh_lane_set_venue(r[l], 1, "IEXG", 2) == 0, "venue");
        if (opt & 4u) {
            FUZZ_CHECK(fh_lane_add_line(r[l], IEX_A, IEX_PORT, lanes - 1, 0, 0) == 0, "add_line A");
            FUZZ_CHECK(fh_lane_add_line(r[l], IEX_B, IEX_PORT, lanes - 1, 0, 0) == 0, "add_line B");
            FUZZ_CHECK(fh_lane_set_line_proto(r[l], 0, 2, 1) == 0, "line proto");
            FUZZ_CHECK(fh_lane_set_line_proto(r[l], 1, 2, 1) == 0, "line proto");
        } else {
            r[l]->route.iex_default_venue = 1;
        }
        if (opt & 16u) FUZZ_CHECK(fh_lane_enable_latency(r[l], 1, 1, err, sizeof err) == 0, "latency: %s", err);
    }

    fh_stats_t prev[2];
    memset(prev, 0, sizeof prev);
    uint64_t rx = 1700000000000000000ull;
    static uint8_t fbuf[42 + 65536];
    size_t off = 1;
    while (off < size) {
        size_t len = 0;
        uint32_t ctl = 0;
        if (size - off >= 3) {
            len = (size_t)data[off] | (size_t)data[off + 1] << 8;
            ctl = data[off + 2];
            off += 3;
        } else {
            off = size;
        }
        if (len > size - off) len = size - off;
        if (len > 65535 - 28) len = 65535 - 28;
        rx += (uint64_t)(ctl >> 1) * 10000u;
        const size_t flen = iex_frame(fbuf, ctl & 1 ? IEX_B : IEX_A, data + off, len);
        uint8_t *f = fuzz_exact(fbuf, flen);
        for (uint32_t l = 0; l < lanes; l++) {
            fh_pipe_frame(r[l], f, flen, rx);
            fh_stats_t now;
            fh_lane_stats(r[l], &now);
            fuzz_check_monotonic(&prev[l], &now);
            FUZZ_CHECK(now.iex_packets + now.mold_packets + now.pitch_packets <= now.packets,
                       "more IEX-TP datagrams than frames");
            prev[l] = now;
        }
        free(f);
        off += len;
    }
    for (uint32_t l = 0; l < lanes; l++) fh_pipe_poll_slow(r[l], size);
    for (uint32_t l = lanes; l-- > 0;) {
        fh_lane_finish(r[l]);
        fh_stats_t now;
        fh_lane_stats(r[l], &now);
        fuzz_check_monotonic(&prev[l], &now);
        fuzz_check_at_rest(r[l]);
        /* IEX messages are counted at 0x80 | type only, and every type is one of the spec's. */
        for (uint32_t t = FH_IEX_BY_TYPE; t < 256; t++)
            FUZZ_CHECK(!now.by_type[t] || (fh_iex_type_table[t & 0x7F] != 0), "by_type[0x%x] counted", t);
        if (mode != FH_MODE_DECODE)
            for (uint32_t b = 0; b < FH_IEX_BLOCKS; b++)
                for (uint32_t k = 0; k <= 64; k++)
                    (void)fh_lane_instrument_flags(r[l], FH_PITCH_ID_BASE + b * FH_PITCH_VENUE_IDS + k);
    }
    if (mode == FH_MODE_PUBLISH) fuzz_check_segment(r[0], lanes);
    if (mode != FH_MODE_DECODE)
        FUZZ_CHECK(fh_lane_dump_books(r[0], "/dev/null", 5, 1, err, sizeof err) == 0, "dump: %s", err);
    if (r[1]) fh_lane_free(r[1]);
    fh_lane_free(r[0]);
    return 0;
}
