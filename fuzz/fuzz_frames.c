/* fuzz_frames.c -- libFuzzer harness: captured frames through the whole pipeline.
 *
 * frame -> net (Ethernet/VLAN/IPv4/UDP) -> MoldUDP64 or PITCH units (protocol
 * detection, streams, A/B arbitration, holes, gap buffer, silence, session
 * changes) -> ITCH or PITCH decode ->
 * books -> publish, then what fh_lane_finish does (holes given up), then the
 * shared-memory segment read back as a reader would.
 *
 * Input:
 *   byte 0       options: bits 0-1 mode (0 publish, 1 book, 2 decode, 3 publish),
 *                bit 2 channel config (the A and B lines of tests/frames.py, port
 *                26477, so that other groups are unconfigured), bit 3 two lanes
 *                (each frame goes to both, as in a two-core replay), bit 4
 *                latency stamps on every packet, bit 5 channel config of Cboe
 *                PITCH lines (the generator's groups, port 30001; venue BATS),
 *                bits 6-7 with latency on, the stage split on every (1 + N)th
 *                stamped packet
 *   then frames: u16 little-endian length, u8 receive-time step (x 10 us),
 *                that many bytes (the last frame may be cut short: it is what
 *                is left)
 * Each frame is copied into its own exact-size heap block, so ASan catches a
 * read one byte past it.  Invariants: counters never go down, at the end every
 * hole is closed and every held packet is back in the pool, by_type adds up
 * to messages, and the segment checks out and reads back. */
#include "fuzz_common.h"

#define GROUP_A 0xE9360C6Fu   /* 233.54.12.111 */
#define GROUP_B 0xE931C46Fu   /* 233.49.196.111 */
#define PORT 26477
#define PITCH_A 0xE0003E02u   /* 224.0.62.2 */
#define PITCH_B 0xE9130302u   /* 233.19.3.2 */
#define PITCH_PORT 30001

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const uint8_t opt = data[0];
    uint32_t mode = opt & 3u;
    if (mode == 3) mode = FH_MODE_PUBLISH;
    const uint32_t lanes = (opt & 8u) ? 2 : 1;
    fh_lane_cfg_t cfg;
    fuzz_small_cfg(&cfg, mode);
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
        uint32_t n_lines = 0;
        if (opt & 4u) {
            FUZZ_CHECK(fh_lane_add_line(r[l], GROUP_A, PORT, 0, 0, 0) == 0, "add_line A");
            FUZZ_CHECK(fh_lane_add_line(r[l], GROUP_B, PORT, lanes - 1, 0, 0) == 0, "add_line B");
            n_lines = 2;
        }
        if (opt & 32u) {
            FUZZ_CHECK(fh_lane_set_venue(r[l], 1, "BATS", 1) == 0, "venue");
            FUZZ_CHECK(fh_lane_add_line(r[l], PITCH_A, PITCH_PORT, lanes - 1, 0, 0) == 0, "add_line PITCH A");
            FUZZ_CHECK(fh_lane_add_line(r[l], PITCH_B, PITCH_PORT, 0, 0, 0) == 0, "add_line PITCH B");
            FUZZ_CHECK(fh_lane_set_line_proto(r[l], n_lines, 1, 1) == 0, "line proto");
            FUZZ_CHECK(fh_lane_set_line_proto(r[l], n_lines + 1, 1, 1) == 0, "line proto");
        }
        if (mode == FH_MODE_PUBLISH)
            FUZZ_CHECK(fh_lane_set_consolidate(r[l], 1, err, sizeof err) == 0, "consolidate: %s", err);
        if (opt & 16u)
            FUZZ_CHECK(fh_lane_enable_latency(r[l], 1, 1 + (opt >> 6 & 3u), err, sizeof err) == 0, "latency: %s", err);
    }

    fh_stats_t prev[2];
    memset(prev, 0, sizeof prev);
    uint64_t rx = 1700000000000000000ull;
    size_t off = 1;
    while (off < size) {
        size_t len = 0;
        uint32_t step = 0;
        if (size - off >= 3) {
            len = (size_t)data[off] | (size_t)data[off + 1] << 8;
            step = data[off + 2];
            off += 3;
        } else {
            off = size;                             /* a cut length prefix: nothing left */
        }
        if (len > size - off) len = size - off;
        rx += (uint64_t)step * 10000u;
        uint8_t *f = fuzz_exact(data + off, len);
        for (uint32_t l = 0; l < lanes; l++) {
            fh_pipe_frame(r[l], f, len, rx);
            fh_stats_t now;
            fh_lane_stats(r[l], &now);
            if (getenv("FUZZ_TRACE"))
                fprintf(stderr, "lane %u frame at %zu (%zu B): next_seq %llu gaps %llu holes %u\n", l, off, len,
                        r[l]->session.streams.n ? (unsigned long long)r[l]->session.streams.v[0].next_seq : 0ull,
                        (unsigned long long)now.gaps, r[l]->session.holes);
            fuzz_check_monotonic(&prev[l], &now);
            prev[l] = now;
        }
        free(f);
        off += len;
    }
    for (uint32_t l = 0; l < lanes; l++) {
        if (getenv("FUZZ_TRACE"))
            for (uint32_t i = 0; i < r[l]->session.streams.n; i++) {
                const fh_stream_t *s = &r[l]->session.streams.v[i];
                fprintf(stderr, "stream %u next %llu hole_since %llu hole_end %llu held:", i,
                        (unsigned long long)s->next_seq, (unsigned long long)s->hole_since,
                        (unsigned long long)s->hole_end);
                for (uint32_t k = s->held_head; k; k = r[l]->session.held[k - 1].next)
                    fprintf(stderr, " %llu+%u", (unsigned long long)r[l]->session.held[k - 1].seq,
                            r[l]->session.held[k - 1].count);
                fputc('\n', stderr);
            }
        fh_pipe_poll_slow(r[l], size);
        if (getenv("FUZZ_TRACE"))
            fprintf(stderr, "lane %u after poll: gaps %llu holes %u\n", l, (unsigned long long)r[l]->st.gaps,
                    r[l]->session.holes);
    }
    for (uint32_t l = lanes; l-- > 0;) {
        fh_lane_finish(r[l]);
        fh_stats_t now;
        fh_lane_stats(r[l], &now);
        fuzz_check_monotonic(&prev[l], &now);
        fuzz_check_at_rest(r[l]);
        if (mode != FH_MODE_DECODE)
            for (uint32_t loc = 0; loc <= 65; loc++) (void)fh_lane_instrument_flags(r[l], loc);
    }
    if (mode == FH_MODE_PUBLISH) fuzz_check_segment(r[0], lanes);
    if (mode != FH_MODE_DECODE)
        FUZZ_CHECK(fh_lane_dump_books(r[0], "/dev/null", 5, 1, err, sizeof err) == 0, "dump: %s", err);
    if (r[1]) fh_lane_free(r[1]);
    fh_lane_free(r[0]);
    return 0;
}
