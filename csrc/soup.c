/* soup.c -- SoupBinTCP 4.0 framing and fields, GLIMPSE 5.0 End of Snapshot
 * (soup.h).  Stateless: the caller keeps the bytes a TCP read returned and
 * calls fh_soup_frame() until it asks for more. */
#include "soup.h"

#define FH_SOUP_HLEN 3             /* u16 length + type */
#define FH_SOUP_LOGIN_LEN 46       /* username 6, password 10, session 10, sequence 20 */
#define FH_SOUP_ACCEPT_LEN 30      /* session 10, sequence 20 */

/* The payload length a type must have: -1 any, else exactly that. */
static int fixed_len(uint8_t type, int from_server)
{
    if (from_server) {
        switch (type) {
        case '+':
        case 'S':
        case 'U':
            return -1;
        case 'A':
            return FH_SOUP_ACCEPT_LEN;
        case 'J':
            return 1;
        case 'H':
        case 'Z':
            return 0;
        default:
            return -2;
        }
    }
    switch (type) {
    case '+':
    case 'U':
        return -1;
    case 'L':
        return FH_SOUP_LOGIN_LEN;
    case 'R':
    case 'O':
        return 0;
    default:
        return -2;
    }
}

long fh_soup_frame(const uint8_t *p, size_t n, int from_server, fh_soup_pkt_t *out)
{
    if (n < 2) return FH_SOUP_NEED_MORE;
    const uint32_t plen = fh_be16(p);
    if (plen == 0) return FH_SOUP_BAD_LENGTH;
    if (n < FH_SOUP_HLEN) return FH_SOUP_NEED_MORE;
    const uint8_t type = p[2];
    const int want = fixed_len(type, from_server != 0);
    if (want == -2) return FH_SOUP_BAD_TYPE;
    if (want >= 0 && plen - 1 != (uint32_t)want) return FH_SOUP_BAD_LENGTH;
    if (n - 2 < plen) return FH_SOUP_NEED_MORE;
    out->type = type;
    out->len = plen - 1;
    out->payload = p + FH_SOUP_HLEN;
    return (long)plen + 2;
}

static int pad_right(uint8_t *dst, size_t n, const char *s)
{
    const size_t l = s ? strlen(s) : 0;
    if (l > n) return -1;
    memset(dst, ' ', n);
    if (l) memcpy(dst, s, l);
    return 0;
}

static int pad_left(uint8_t *dst, size_t n, const char *s)
{
    const size_t l = s ? strlen(s) : 0;
    if (l > n) return -1;
    memset(dst, ' ', n);
    if (l) memcpy(dst + n - l, s, l);
    return 0;
}

int fh_soup_login_request(uint8_t *out, const char *user, const char *password, const char *session, uint64_t sequence)
{
    char seq[21];
    snprintf(seq, sizeof seq, "%llu", (unsigned long long)sequence);
    fh_put_be16(out, 1 + FH_SOUP_LOGIN_LEN);
    out[2] = 'L';
    if (pad_right(out + 3, 6, user) || pad_right(out + 9, 10, password) || pad_left(out + 19, 10, session) ||
        pad_left(out + 29, 20, seq))
        return -1;
    return FH_SOUP_HLEN + FH_SOUP_LOGIN_LEN;
}

int fh_soup_numeric(const uint8_t *p, size_t n, uint64_t *value)
{
    size_t i = 0;
    while (i < n && p[i] == ' ') i++;
    uint64_t v = 0;
    for (; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return -1;
        const uint64_t d = (uint64_t)(p[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    *value = v;
    return 0;
}

int fh_glimpse_end_of_snapshot(const uint8_t *msg, size_t len, uint64_t *sequence)
{
    if (!msg || len != 21 || msg[0] != 'G') return -1;
    return fh_soup_numeric(msg + 1, 20, sequence);
}

/* The data phase of a snapshot, in bulk: a client hands over what it has
 * received and gets the messages out, checked, without a call per message. */
long fh_glimpse_collect(const uint8_t *p, size_t n, uint8_t *out, size_t cap, fh_glimpse_acc_t *acc)
{
    size_t off = 0;
    acc->status = FH_GLIMPSE_NEED_MORE;
    for (;;) {
        fh_soup_pkt_t pkt;
        const long rc = fh_soup_frame(p + off, n - off, 1, &pkt);
        if (rc == FH_SOUP_NEED_MORE) break;
        if (rc < 0) {
            acc->status = FH_GLIMPSE_CORRUPT;
            break;
        }
        if (pkt.type == 'H' || pkt.type == '+') {
            off += (size_t)rc;
            continue;
        }
        if (pkt.type == 'U') {
            acc->unsequenced++;
            off += (size_t)rc;
            continue;
        }
        if (pkt.type != 'S') {
            acc->status = FH_GLIMPSE_OTHER;
            break;
        }      /* the caller's: at p + return */
        if (pkt.len && pkt.payload[0] == 'G') {
            if (fh_glimpse_end_of_snapshot(pkt.payload, pkt.len, &acc->sequence) != 0) {
                acc->status = FH_GLIMPSE_BAD_MESSAGE;
                break;
            }
            off += (size_t)rc;
            acc->status = FH_GLIMPSE_END;
            break;
        }
        if (!pkt.len || fh_itch_msg_len(pkt.payload[0]) != pkt.len) {
            acc->status = FH_GLIMPSE_BAD_MESSAGE;
            break;
        }
        if (cap - acc->used < 2 + (size_t)pkt.len) {
            acc->status = FH_GLIMPSE_FULL;
            break;
        }
        fh_put_be16(out + acc->used, (uint16_t)pkt.len);
        memcpy(out + acc->used + 2, pkt.payload, pkt.len);
        acc->used += 2 + (size_t)pkt.len;
        acc->messages++;
        if (pkt.payload[0] == 'R') acc->instruments++;
        else if (pkt.payload[0] == 'A' || pkt.payload[0] == 'F') acc->orders++;
        acc->last_ts = fh_be48(pkt.payload + 5);
        off += (size_t)rc;
    }
    return (long)off;
}
