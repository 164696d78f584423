/* out.c -- buffered file output (out.h): open, flush, close. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "out.h"

#define FH_GEN_OUTBUF (8u << 20)

int fh_gen_out_open(fh_gen_out_t *o, const char *path, char *err, size_t errlen)
{
    o->path = path;
    o->f = fopen(path, "wb");
    if (!o->f) {
        fh_errf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    o->buf = malloc(FH_GEN_OUTBUF + FH_GEN_SLACK);
    o->cap = FH_GEN_OUTBUF;
    if (!o->buf) {
        fh_errf(err, errlen, "out of memory for output buffers");
        return -1;
    }
    return 0;
}

void fh_gen_out_flush(fh_gen_out_t *o)
{
    if (o->pos && !o->err_no && fwrite(o->buf, 1, o->pos, o->f) != o->pos) o->err_no = errno ? errno : EIO;
    o->pos = 0;
}

int fh_gen_out_close(fh_gen_out_t *o, char *err, size_t errlen)
{
    fh_gen_out_flush(o);
    int e = o->err_no;
    if (fclose(o->f) != 0 && !e) e = errno ? errno : EIO;
    o->f = NULL;
    if (e) {
        fh_errf(err, errlen, "write error on %s: %s", o->path, strerror(e));
        return -1;
    }
    return 0;
}
