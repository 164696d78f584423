/* rerequest.c -- the MoldUDP64 re-request client (cold path: syscalls). */
#define _GNU_SOURCE
#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <string.h>
#include <unistd.h>

#include "rerequest.h"

void fh_rr_init(fh_rr_client_t *c)
{
    c->fd = -1;
    c->timeout_ms = 20;
}

int fh_rr_open(fh_rr_client_t *c, char *err, size_t errlen)
{
    if (c->fd >= 0) return 0;
    c->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        fh_errf(err, errlen, "cannot open a UDP socket for re-requests: %s", strerror(errno));
        return -1;
    }
    return 0;
}

void fh_rr_close(fh_rr_client_t *c)
{
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
}

int fh_rr_request(fh_rr_client_t *c, uint32_t ip, uint16_t port, const uint8_t *session, uint64_t seq, uint16_t count,
                  fh_rr_reply_fn reply, void *ctx, uint64_t *foreign)
{
    if (c->fd < 0) return -1;
    struct sockaddr_in srv;
    memset(&srv, 0, sizeof srv);
    srv.sin_family = AF_INET;
    srv.sin_addr.s_addr = htonl(ip);
    srv.sin_port = htons(port);
    uint8_t req[FH_MOLD_HLEN];
    memcpy(req, session, FH_MOLD_SESSION_LEN);
    fh_put_be64(req + 10, seq);
    fh_put_be16(req + 18, count);
    if (sendto(c->fd, req, sizeof req, 0, (const struct sockaddr *)&srv, sizeof srv) != (ssize_t)sizeof req) return -1;
    uint8_t buf[65536];
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    while (poll(&pfd, 1, (int)c->timeout_ms) > 0) {
        struct sockaddr_in from;
        socklen_t fl = sizeof from;
        const ssize_t n = recvfrom(c->fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
        if (n < 0) break;
        /* Only our server. */
        if (from.sin_addr.s_addr != srv.sin_addr.s_addr || from.sin_port != srv.sin_port) {
            (*foreign)++;
            continue;
        }
        if (reply(ctx, buf, (size_t)n)) return 1;
    }
    return 0;
}
