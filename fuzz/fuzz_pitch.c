/* fuzz_pitch.c -- libFuzzer harness: the Cboe PITCH reference decoder and its
 * unit walker (csrc/probe/pitch_decode.c: the test hook the tests hold the
 * generator and the scapy layers to; the pipeline's own PITCH path is fuzzed
 * by fuzz_frames).  scripts/fuzz.sh compiles the top level of csrc/ only, so
 * the decoder is compiled in here.
 *
 * Byte 0 picks the out[] capacity (0..15).  The rest is one UDP payload, in
 * an exact-size heap copy so ASan sees a read one byte past it.  Invariants:
 * no more messages stored than the capacity, nor than the header's count;
 * every stored message re-decodes alone from the bytes it came from (the
 * walker and fh_pitch_decode agree) to the same fields; the walk's skips are
 * counted; a payload shorter than the header is counted truncated and walks
 * nothing. */
#include "fuzz_common.h"
#include "probe/pitch_decode.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const size_t cap = data[0] & 15u;
    uint8_t *p = fuzz_exact(data + 1, size - 1);
    const size_t n = size - 1;
    fh_pitch_unit_t hdr;
    static fh_pitch_msg_t out[16];
    uint64_t errors[FH_PITCH_ERR__COUNT];
    memset(errors, 0, sizeof errors);
    const size_t got = fh_pitch_walk_unit(p, n, &hdr, cap ? out : NULL, cap, errors);
    FUZZ_CHECK(got <= cap, "%zu messages stored in %zu", got, cap);
    if (n < 8) {
        FUZZ_CHECK(got == 0 && errors[FH_PITCH_ERR_TRUNCATED] == 1, "a %zu-byte payload walked", n);
    } else {
        FUZZ_CHECK(got <= hdr.count, "%zu messages stored, the header counts %u", got, hdr.count);
        FUZZ_CHECK((hdr.length != n) == (errors[FH_PITCH_ERR_HDR_LENGTH] != 0), "header length %u vs %zu", hdr.length,
                   n);
        /* Walk again by hand: every message the walker stored is a whole,
         * known, exact-length message inside the payload, in order. */
        size_t off = 8, k = 0;
        for (uint32_t i = 0; i < hdr.count && off < n && k < got; i++) {
            const uint8_t len = p[off];
            if (len < 2 || len > n - off) break;
            fh_pitch_msg_t m;
            if (fh_pitch_decode(p + off, len, &m) == FH_DECODE_OK) {
                FUZZ_CHECK(memcmp(&m, &out[k], sizeof m) == 0, "message %zu differs from its own decode", k);
                k++;
            }
            off += len;
        }
        FUZZ_CHECK(k == got, "%zu stored, %zu found again", got, k);
    }
    free(p);
    return 0;
}
