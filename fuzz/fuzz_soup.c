/* fuzz_soup.c -- libFuzzer harness: SoupBinTCP 4.0 framing and fields (csrc/soup.c).
 *
 * Byte 0: bit 0 the direction (server / client); bits 1-3 a segmentation
 * seed.  The rest is a TCP byte stream.  It is framed twice: in one buffer,
 * and arriving in pieces (sizes from the seed) gathered into an exact-size
 * heap copy of what has arrived, as a reader keeps it.  Invariants: both
 * give the same packets and stop at the same point; a packet never reaches
 * past the bytes given; fixed-size packets have their size; the field
 * parsers never read past their field. */
#include "fuzz_common.h"

typedef struct {
    uint8_t type;
    uint32_t len;
    size_t off;
} seen_t;

static size_t frame_all(const uint8_t *p, size_t n, int server, seen_t *out, size_t cap, long *end)
{
    size_t off = 0, k = 0;
    fh_soup_pkt_t pkt;
    for (;;) {
        const long rc = fh_soup_frame(p + off, n - off, server, &pkt);
        *end = rc;
        if (rc <= 0) break;
        FUZZ_CHECK((size_t)rc <= n - off, "packet of %ld bytes past the %zu given", rc, n - off);
        FUZZ_CHECK(pkt.payload == p + off + 3 && pkt.len + 3 == (uint32_t)rc, "payload misplaced");
        if (pkt.type == 'A') {
            FUZZ_CHECK(pkt.len == 30, "login accepted of %u bytes", pkt.len);
            uint64_t v;
            (void)fh_soup_numeric(pkt.payload + 10, 20, &v);
        }
        if (pkt.type == 'S' && pkt.len) {
            uint64_t v;
            (void)fh_glimpse_end_of_snapshot(pkt.payload, pkt.len, &v);
        }
        if (k < cap) out[k] = (seen_t){pkt.type, pkt.len, off};
        k++;
        off += (size_t)rc;
    }
    return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const int server = data[0] & 1;
    uint32_t seed = (data[0] >> 1) & 7;
    const uint8_t *p = data + 1;
    const size_t n = size - 1;
    static seen_t a[4096], b[4096];
    long end_a = 0, end_b = 0;
    uint8_t *whole = malloc(n ? n : 1);
    if (n) memcpy(whole, p, n);
    const size_t na = frame_all(whole, n, server, a, 4096, &end_a);
    /* In pieces: what has arrived so far, re-framed from the last packet boundary. */
    size_t nb = 0, arrived = 0, done = 0;
    while (arrived < n) {
        seed = seed * 1103515245u + 12345u;
        size_t piece = 1 + (seed >> 16) % 7;
        if (piece > n - arrived) piece = n - arrived;
        arrived += piece;
        uint8_t *copy = malloc(arrived - done ? arrived - done : 1);
        memcpy(copy, p + done, arrived - done);
        fh_soup_pkt_t pkt;
        size_t off = 0;
        long rc;
        while ((rc = fh_soup_frame(copy + off, arrived - done - off, server, &pkt)) > 0) {
            if (nb < 4096) b[nb] = (seen_t){pkt.type, pkt.len, done + off};
            nb++;
            off += (size_t)rc;
        }
        end_b = rc;
        free(copy);
        done += off;
        if (rc < 0) break;
    }
    FUZZ_CHECK(na == nb, "%zu packets in one buffer, %zu in pieces", na, nb);
    for (size_t i = 0; i < na && i < 4096; i++)
        FUZZ_CHECK(a[i].type == b[i].type && a[i].len == b[i].len && a[i].off == b[i].off, "packet %zu differs", i);
    FUZZ_CHECK((end_a < 0) == (end_b < 0), "one buffer ended %ld, pieces %ld", end_a, end_b);
    free(whole);
    return 0;
}
