/* dump.c -- the books as CSV (--dump-books): the end of a replay, cold path.
 *
 * Columns: locate,symbol,side,level,price,shares,orders (then venue when the
 * run holds more than one); prices in ITCH Price(4) units; levels 1..depth
 * per side, best first. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "pipeline.h"

uint32_t fh_lane_venues_held(const fh_lane_t *r)
{
    if (r->mode == FH_MODE_DECODE) return 0;
    uint32_t mask = 0;
    const fh_book_t *b = &r->book;
    for (uint32_t loc = 1; loc <= b->n_instr; loc++) {
        const fh_instr_t *in = &b->instr[loc];
        if (in->applied) mask |= 1u << (in->venue & 31);
    }
    return mask;
}

/* The CSV into f, which is closed; `what` names it in an error. */
static int dump_to(fh_lane_t *r, FILE *f, const char *what, uint32_t depth, int with_venue, char *err, size_t errlen)
{
    const fh_book_t *b = &r->book;
    fputs(with_venue ? "locate,symbol,side,level,price,shares,orders,venue\n"
                     : "locate,symbol,side,level,price,shares,orders\n",
          f);
    for (uint32_t loc = 1; loc <= b->n_instr; loc++) {
        const fh_instr_t *in = &b->instr[loc];
        if (!in->side[0].n && !in->side[1].n) continue;
        /* The symbol as R gave it, trailing spaces off; bytes that would break
         * the CSV are replaced. */
        char sym[9];
        size_t n = 8;
        while (n && (in->symbol[n - 1] == ' ' || in->symbol[n - 1] == 0)) n--;
        for (size_t i = 0; i < n; i++) {
            const char ch = in->symbol[i];
            sym[i] = (ch > 32 && ch < 127 && ch != ',' && ch != '"') ? ch : '?';
        }
        sym[n] = 0;
        for (int side = 0; side < 2; side++) {
            for (uint32_t i = 0; i < in->side[side].n && i < depth; i++) {
                uint32_t price, orders;
                uint64_t shares;
                fh_book_level(b, loc, side, i, &price, &shares, &orders);
                fprintf(f, "%u,%s,%c,%u,%u,%llu,%u%s%s\n", loc, sym, side == 0 ? 'B' : 'S', i + 1, price,
                        (unsigned long long)shares, orders, with_venue ? "," : "",
                        with_venue ? r->route.venue_names[in->venue < 8 ? in->venue : 0] : "");
            }
        }
    }
    const int bad = ferror(f);
    const int saved = errno;
    if (fclose(f) != 0 || bad) {
        fh_errf(err, errlen, "error writing %s: %s", what, strerror(bad ? saved : errno));
        return -1;
    }
    return 0;
}

int fh_lane_dump_books(fh_lane_t *r, const char *path, uint32_t depth, int with_venue, char *err, size_t errlen)
{
    if (r->mode == FH_MODE_DECODE) {
        fh_errf(err, errlen, "no books in decode-only mode");
        return -1;
    }
    FILE *f = fopen(path, "w");
    if (!f) {
        fh_errf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    return dump_to(r, f, path, depth, with_venue, err, errlen);
}

int fh_lane_dump_books_fd(fh_lane_t *r, int fd, uint32_t depth, int with_venue, char *err, size_t errlen)
{
    if (r->mode == FH_MODE_DECODE) {
        fh_errf(err, errlen, "no books in decode-only mode");
        return -1;
    }
    /* A duplicate: closing the stream leaves the caller's descriptor open. */
    const int dup_fd = fd >= 0 ? dup(fd) : -1;
    FILE *f = dup_fd >= 0 ? fdopen(dup_fd, "w") : NULL;
    if (!f) {
        fh_errf(err, errlen, "cannot write descriptor %d: %s", fd, strerror(errno));
        if (dup_fd >= 0) close(dup_fd);
        return -1;
    }
    return dump_to(r, f, "the books file", depth, with_venue, err, errlen);
}
