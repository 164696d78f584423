/* mold.c -- MoldUDP64 stream table allocation (start-up only). */
#include <stdlib.h>

#include "mold.h"

int fh_mold_table_init(fh_mold_table_t *t, uint32_t cap)
{
    memset(t, 0, sizeof *t);
    t->v = calloc(cap ? cap : 1, sizeof *t->v);
    if (!t->v) return -1;
    t->cap = cap ? cap : 1;
    return 0;
}

void fh_mold_table_free(fh_mold_table_t *t)
{
    free(t->v);
    memset(t, 0, sizeof *t);
}
