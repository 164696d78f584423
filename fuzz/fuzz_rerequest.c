/* fuzz_rerequest.c -- libFuzzer harness: both ends of MoldUDP64 re-requests.
 *
 * Byte 0 picks the side:
 *   bit 0 set: the server side.  The rest is one request datagram for
 *     fh_mold_parse_request (what the rewind server parses): it must be
 *     accepted exactly when it is 20 bytes, and then give back its fields.
 *   bit 0 clear: the client side.  A stream (session TESTSESS01, port 26477)
 *     is set up through the pipeline with a hole: seq 1-2 applied, then
 *     (bits 1-3) 0..7 packets held behind the hole (seq 6, 8, ...), or with
 *     none a heartbeat saying the stream reached seq 6; bits 4-5 the mode
 *     (0 publish, 1 book, 2 decode, 3 publish).  The rest is the server's
 *     replies, u16 little-endian length + bytes each (the last may be cut),
 *     handed to fh_session_rr_reply as hole_recover does, while the hole is
 *     open; then fh_lane_finish gives up what is left.
 * Each reply is copied into its own exact-size heap block (hole_recover reads
 * into a 64 KiB stack buffer, where ASan could not see a read past the reply).
 * Invariants: a reply is either applied or counted foreign, never both; the
 * stream's next sequence never goes back; counters never go down; at rest
 * everything is closed and adds up. */
#include "fuzz_common.h"

static void server_side(const uint8_t *data, size_t size)
{
    uint8_t *req = fuzz_exact(data, size);
    uint8_t session[10];
    uint64_t seq = 0;
    uint32_t count = 0;
    const int rc = fh_mold_parse_request(req, size, session, &seq, &count);
    FUZZ_CHECK(rc == (size == 20 ? 0 : -1), "parse of %zu bytes gave %d", size, rc);
    if (rc == 0) {
        uint8_t back[20];
        memcpy(back, session, 10);
        fh_put_be64(back + 10, seq);
        fh_put_be16(back + 18, (uint16_t)count);
        FUZZ_CHECK(count <= 0xFFFF && memcmp(back, req, 20) == 0, "fields do not give the request back");
    }
    free(req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const uint8_t opt = data[0];
    if (opt & 1u) {
        server_side(data + 1, size - 1);
        return 0;
    }
    uint32_t mode = (opt >> 4) & 3u;
    if (mode == 3) mode = FH_MODE_PUBLISH;
    fh_lane_cfg_t cfg;
    fuzz_small_cfg(&cfg, mode);
    char err[256];
    fh_lane_t *r = fh_lane_new(&cfg, err, sizeof err);
    FUZZ_CHECK(r != NULL, "fh_lane_new: %s", err);

    static uint8_t f[42 + 20 + 8 * 38];
    const uint64_t rx = 1700000000000000000ull;
    fh_pipe_frame(r, f, fuzz_mold_adds(f, 1, 2, 1), rx);
    const uint32_t held = (opt >> 1) & 7u;
    for (uint32_t k = 0; k < held; k++) fh_pipe_frame(r, f, fuzz_mold_adds(f, 6 + 2 * k, 1, 100 + k), rx);
    if (!held) fh_pipe_frame(r, f, fuzz_mold_adds(f, 6, 0, 0), rx);
    FUZZ_CHECK(r->session.streams.n == 1, "%u streams set up", r->session.streams.n);
    fh_stream_t *s = &r->session.streams.v[0];
    FUZZ_CHECK(s->hole_since && s->next_seq == 3, "no hole at seq 3 (next %llu)", (unsigned long long)s->next_seq);

    fh_stats_t prev, now;
    fh_lane_stats(r, &prev);
    size_t off = 1;
    while (off < size && s->hole_since) {
        size_t len = 0;
        if (size - off >= 2) {
            len = (size_t)data[off] | (size_t)data[off + 1] << 8;
            off += 2;
        } else {
            off = size;
        }
        if (len > size - off) len = size - off;
        uint8_t *reply = fuzz_exact(data + off, len);
        const uint64_t next = s->next_seq;
        const int applied = fh_session_rr_reply(&r->session, s, reply, len);
        free(reply);
        fh_lane_stats(r, &now);
        fuzz_check_monotonic(&prev, &now);
        FUZZ_CHECK(applied == 0 || applied == 1, "fh_session_rr_reply gave %d", applied);
        FUZZ_CHECK(now.errors[FH_ERR_RR_FOREIGN] - prev.errors[FH_ERR_RR_FOREIGN] == (uint64_t)!applied,
                   "a reply %s but foreign went up by %llu", applied ? "applied" : "refused",
                   (unsigned long long)(now.errors[FH_ERR_RR_FOREIGN] - prev.errors[FH_ERR_RR_FOREIGN]));
        FUZZ_CHECK(s->next_seq >= next, "next sequence went back from %llu to %llu", (unsigned long long)next,
                   (unsigned long long)s->next_seq);
        FUZZ_CHECK(applied || s->next_seq == next, "a refused reply moved the stream");
        FUZZ_CHECK(now.recovered - prev.recovered <= s->next_seq - next, "recovered more than the stream advanced");
        prev = now;
        off += len;
    }
    fh_lane_finish(r);
    fh_lane_stats(r, &now);
    fuzz_check_monotonic(&prev, &now);
    fuzz_check_at_rest(r);
    if (mode == FH_MODE_PUBLISH) fuzz_check_segment(r, 1);
    fh_lane_free(r);
    return 0;
}
