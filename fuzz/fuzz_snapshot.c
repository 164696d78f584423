/* fuzz_snapshot.c -- libFuzzer harness: a snapshot server's byte stream
 * through the client framing and into a lane (csrc/soup.c, csrc/recovery.c).
 *
 * Byte 0: bit 0 book (else publish) mode; bit 1: the lane's stream already
 * has a book (seq 1-2 applied, then a late packet) instead of joining late;
 * bits 2-3 how many live packets wait for the snapshot (1..4).  The rest is
 * what a GLIMPSE server sends: SoupBinTCP packets, framed as the client does;
 * sequenced data is the snapshot's messages, a valid End of Snapshot gives
 * its sequence (none: the fetch failed).  The snapshot is posted to the lane
 * exactly as the fetching thread would, then the replay is finished.
 * Invariants: the snapshot is applied whole or not at all (a refused one
 * leaves the books as without it: no add counted from it); everything at
 * rest; the counters add up. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const uint8_t opt = data[0];
    fh_lane_cfg_t cfg;
    fuzz_small_cfg(&cfg, (opt & 1u) ? FH_MODE_BOOK : FH_MODE_PUBLISH);
    char err[256];
    fh_lane_t *r = fh_lane_new(&cfg, err, sizeof err);
    FUZZ_CHECK(r != NULL, "fh_lane_new: %s", err);
    FUZZ_CHECK(fh_lane_set_snapshot(r, 1, 0, 1000, err, sizeof err) == 0, "set_snapshot: %s", err);

    /* The server's stream, framed as the client frames it, into blocks. */
    const size_t n = size - 1;
    uint8_t *stream = fuzz_exact(data + 1, n);
    uint8_t *blocks = malloc(n + 1);
    size_t blen = 0, off = 0;
    uint64_t nblocks = 0, eos_seq = 0;
    int have_eos = 0;
    fh_soup_pkt_t pkt;
    long rc;
    while (!have_eos && (rc = fh_soup_frame(stream + off, n - off, 1, &pkt)) > 0) {
        if (pkt.type == 'S' && pkt.len) {
            if (fh_glimpse_end_of_snapshot(pkt.payload, pkt.len, &eos_seq) == 0) have_eos = 1;
            else if (pkt.len <= 0xFFFF - 2) {
                fh_put_be16(blocks + blen, (uint16_t)pkt.len);
                memcpy(blocks + blen + 2, pkt.payload, pkt.len);
                blen += 2 + pkt.len;
                nblocks++;
            }
        }
        off += (size_t)rc;
    }
    uint8_t *exact = fuzz_exact(blocks, blen);
    free(blocks);

    static uint8_t f[42 + 20 + 8 * 38];
    const uint64_t rx = 1700000000000000000ull;
    const int had_book = (opt & 2u) != 0;
    uint64_t next = 5;
    if (had_book) {
        /* A stream from its start: no late join; a hole then waits its window and the snapshot. */
        fh_pipe_frame(r, f, fuzz_mold_adds(f, 1, 2, 1), rx);
        next = 3;
    }
    const uint32_t live = 1 + ((opt >> 2) & 3u);
    for (uint32_t k = 0; k < live; k++)
        fh_pipe_frame(r, f, fuzz_mold_adds(f, 6 + 2 * k, 1, 100 + k), rx + 10000000ull * k);
    (void)next;
    fh_stats_t before;
    fh_lane_stats(r, &before);
    uint32_t group;
    uint16_t port;
    uint8_t session[10];
    uint64_t seq;
    const uint32_t ticket = fh_lane_snapshot_request(r, &group, &port, session, &seq);
    if (ticket) {
        FUZZ_CHECK(port == FUZZ_PORT && group == FUZZ_GROUP_A && memcmp(session, FUZZ_SESSION, 10) == 0,
                   "request for another stream");
        FUZZ_CHECK(fh_lane_snapshot_post(r, ticket, exact, blen, eos_seq, !have_eos) == 0, "post refused");
        FUZZ_CHECK(fh_lane_snapshot_post(r, ticket, exact, blen, eos_seq, 0) == -1, "a second answer taken");
    }
    fh_lane_finish(r);
    fh_stats_t st;
    fh_lane_stats(r, &st);
    if (st.snapshots) {
        FUZZ_CHECK(have_eos && st.snapshot_messages == nblocks, "applied %llu of %llu messages",
                   (unsigned long long)st.snapshot_messages, (unsigned long long)nblocks);
    } else if (ticket) {
        FUZZ_CHECK(st.snapshot_failures >= 1 && st.snapshot_messages == 0, "a refused snapshot applied");
        /* Nothing from it: only the live packets' adds. */
        FUZZ_CHECK(st.book.adds <= (uint64_t)live + (had_book ? 2u : 0u), "%llu adds from a refused snapshot",
                   (unsigned long long)st.book.adds);
    }
    fuzz_check_at_rest(r);
    fuzz_check_segment(r, 1);
    fh_lane_free(r);
    free(exact);
    free(stream);
    return 0;
}
