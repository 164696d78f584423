/* summary.h -- PREFIX.json, and the book statistics gathered for it
 * (summary.c). */
#ifndef FH_GEN_SUMMARY_H
#define FH_GEN_SUMMARY_H

#include <stddef.h>

#include "gen.h"

/* Levels per non-empty book side, every instrument, into the histogram. */
void fh_gen_sample_levels(fh_gen_t *g);
/* Write PREFIX.json; -1 with a message in err. */
int fh_gen_json(fh_gen_t *g, const char *path, char *err, size_t errlen);

#endif
