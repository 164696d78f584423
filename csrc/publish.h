/* publish.h -- books -> shared memory, the stage above the books: each
 * touched instrument's slot once per packet (or BinaryFILE window) under its
 * seqlock, BBO and consolidated-BBO events, STALE/SILENT/recovered flags.
 *
 * The appliers (book.c) write trade and state events themselves
 * (book_events.h) and queue the instruments they touch; the pipeline flushes
 * the queue once per packet (fh_book_flush_pending).  The book reaches this
 * stage only through the two hooks fh_publish_hooks sets. */
#ifndef FH_PUBLISH_H
#define FH_PUBLISH_H

#include "book_events.h"

/* Publish what the messages applied since the last flush changed: each touched
 * instrument's slot once, and a BBO event where its best prices or sizes moved.
 * The pipeline flushes once per packet (what arrived together is published
 * together, and a burst on one instrument costs one slot write), a BinaryFILE
 * after every record. */
void fh_book_flush(fh_book_t *b);
/* The hot-path form: no call when nothing is waiting (decode-only, book mode,
 * messages that changed nothing visible). */
FH_INLINE void fh_book_flush_pending(fh_book_t *b)
{
    if (b->n_touched) fh_book_flush(b);
}
/* Flag an instrument's book as possibly wrong (gap) and publish that. */
void fh_book_mark_stale(fh_book_t *b, uint32_t locate, uint64_t missing);
/* Flag (on = 1) or clear an instrument's SILENT flag and publish that. */
/* A snapshot rebuilt the instrument's book: STALE cleared, event "recovered". */
void fh_book_clear_stale(fh_book_t *b, uint32_t locate);
void fh_book_mark_silent(fh_book_t *b, uint32_t locate, int on);
/* Publish every instrument (start-up, end of input). */
void fh_book_publish_all(fh_book_t *b);
/* Write instrument `locate`'s slot (its top levels from the first changed
 * rank, its other fields when dirty) and, for check_bbo, a BBO event when its
 * best prices or sizes moved since the last one reported. */
void fh_publish_slot(fh_book_t *b, uint32_t locate);
void fh_publish_check_bbo(fh_book_t *b, uint32_t locate);

/* The consolidated table just turned on: every instrument's top into it. */
void fh_publish_cbbo_all(fh_book_t *b);

/* The book's hooks into this stage (fh_book_t.publish_now, .mark_stale),
 * set once its books exist, publishing or not: a STALE flag is the book's
 * state in every mode. */
void fh_publish_hooks(fh_book_t *b);

#endif
