/* rerequest.h -- the MoldUDP64 re-request client (cold path).
 *
 * When both lines lost the same packets, the session layer asks the stream's
 * re-request server for them: one UDP request (session, first sequence,
 * count), then the replies, each handed to a callback that decides whether it
 * belongs to the hole (the session layer's fh_session_rr_reply).  A syscall
 * per request and reply, bounded by a timeout: taken only on real loss. */
#ifndef FH_REREQUEST_H
#define FH_REREQUEST_H

#include "mold.h"

typedef struct fh_rr_client {
    int fd;                         /* UDP socket, -1 = none opened */
    uint32_t timeout_ms;            /* how long one request waits for its replies */
} fh_rr_client_t;

/* A reply from the server: returns 1 when it was applied, 0 otherwise. */
typedef int (*fh_rr_reply_fn)(void *ctx, const uint8_t *p, size_t n);

void fh_rr_init(fh_rr_client_t *c);
/* Open the socket (idempotent); -1 with err set when it cannot be. */
int fh_rr_open(fh_rr_client_t *c, char *err, size_t errlen);
void fh_rr_close(fh_rr_client_t *c);

/* Send one request for `count` messages from `seq` of `session` to ip:port
 * (host order) and hand every reply from that server to `reply` until one is
 * applied or the timeout passes; datagrams from anyone else are counted in
 * *foreign.  Returns 1 when a reply was applied, 0 on timeout, -1 when the
 * request could not be sent. */
int fh_rr_request(fh_rr_client_t *c, uint32_t ip, uint16_t port, const uint8_t *session, uint64_t seq, uint16_t count,
                  fh_rr_reply_fn reply, void *ctx, uint64_t *foreign);

#endif
