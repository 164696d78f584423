/* fuzz_sources.c -- libFuzzer harness: a whole input file, as replay reads it.
 *
 * The input is the file: format detection (pcap in us or ns, either byte
 * order; pcapng with its sections, interfaces and options; NASDAQ
 * BinaryFILE), the source walk, then the whole pipeline (net, MoldUDP64,
 * ITCH, books, publish) and what fh_lane_finish does.  A gzip input goes
 * through fh_lane_replay_file on a memfd (fh_lane_buffer does not inflate), so
 * inflating, concatenated members and gzip-in-gzip are covered too; built
 * with FH_EXACT_BUFFERS, the file is read into an exact-size heap block.
 *
 * Invariants: the result is 0, 1 (partial) or -1 with a message; counters
 * never go down across finish; at rest every hole is closed, the gap buffer
 * is whole, the totals add up and the segment reads back. */
#define _GNU_SOURCE
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_common.h"

static int run_gzip(fh_lane_t *r, const uint8_t *data, size_t size, int *fmt, char *err, size_t errlen)
{
    const int fd = memfd_create("fuzz_sources", MFD_CLOEXEC);
    FUZZ_CHECK(fd >= 0, "memfd_create failed");
    size_t off = 0;
    while (off < size) {
        const ssize_t k = write(fd, data + off, size - off);
        FUZZ_CHECK(k > 0, "write to memfd failed");
        off += (size_t)k;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    const int rc = fh_lane_replay_file(r, path, fmt, err, errlen);
    close(fd);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fh_lane_cfg_t cfg;
    fuzz_small_cfg(&cfg, FH_MODE_PUBLISH);
    char err[384];
    fh_lane_t *r = fh_lane_new(&cfg, err, sizeof err);
    FUZZ_CHECK(r != NULL, "fh_lane_new: %s", err);
    int fmt = -1;
    err[0] = 0;
    const int gz = size >= 2 && data[0] == 0x1F && data[1] == 0x8B;
    const int rc = gz ? run_gzip(r, data, size, &fmt, err, sizeof err)
                      : fh_lane_buffer(r, data, size, &fmt, err, sizeof err);
    FUZZ_CHECK(rc == 0 || rc == 1 || rc == -1, "result %d", rc);
    FUZZ_CHECK(memchr(err, 0, sizeof err) != NULL, "error message not terminated");
    FUZZ_CHECK(rc == 0 || err[0] != 0, "result %d without a message", rc);
    FUZZ_CHECK(fmt >= FH_FMT_UNKNOWN && fmt <= FH_FMT_BINFILE, "format %d", fmt);
    fh_stats_t before, after;
    fh_lane_stats(r, &before);
    fh_lane_finish(r);
    fh_lane_stats(r, &after);
    fuzz_check_monotonic(&before, &after);
    fuzz_check_at_rest(r);
    fuzz_check_segment(r, 1);
    fh_lane_free(r);
    return 0;
}
