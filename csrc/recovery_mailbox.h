/* recovery_mailbox.h -- a lane's mailbox to the thread that fetches exchange
 * snapshots (fh_lane_t.recovery).
 *
 * The lane (recovery.c) posts one request at a time: which stream, its
 * group/port/session and the sequence it needs; the fetching thread (Python,
 * feedhandler.recovery) takes it with fh_lane_snapshot_request and answers
 * with fh_lane_snapshot_post.  ticket and posted are written with release and
 * read with acquire; everything else is written before them by its one
 * writer.  The pipeline itself reads only `asked` (is a request outstanding)
 * when it polls. */
#ifndef FH_RECOVERY_MAILBOX_H
#define FH_RECOVERY_MAILBOX_H

#include "mold.h"

typedef struct fh_recovery_mailbox {
    uint32_t blocking;              /* a file replay: wait for the snapshot in place */
    uint64_t timeout_ns;            /* one deadline per request: t0 + this (fetch, retries and all) */
    uint64_t max_bytes;             /* the largest snapshot taken (fh_snapshot_max_bytes of the capacities) */
    uint32_t ticket;                /* last request posted (0 = none yet) */
    uint32_t claimed;               /* ticket answered (by the poster) or given up (by the lane) */
    uint32_t posted;                /* ticket of the answer in buf/len/seq/failed */
    uint32_t stream;                /* index of the stream the request is for */
    uint32_t asked;                 /* a request is outstanding */
    uint32_t finishing;             /* the input is over: no snapshot will come */
    uint16_t port;
    uint8_t session[FH_MOLD_SESSION_LEN];
    uint32_t group;
    uint64_t next_seq;              /* the stream's next sequence when asked: the snapshot may not be older */
    uint64_t t0;                    /* when it was asked (CLOCK_MONOTONIC ns) */
    uint8_t *buf;                   /* the answer's messages (malloc'd by the poster, freed by the lane) */
    size_t len;
    uint64_t seq;
    int failed;
    int too_big;               /* the answer was longer than max_bytes: refused, not copied */
} fh_recovery_mailbox_t;

#endif
