/* iex.h -- IEX-TP v1 and the IEX TOPS, DEEP and DEEP+ messages: wire helpers
 * for the pipeline (iex_pipe.c) and routing: the type table, the segment
 * header's checks, the message walk, protocol detection and the checksum fold.
 *
 * Every field is little-endian (the opposite of MoldUDP64 and ITCH).  A UDP
 * datagram is one segment: the 40-byte header, then Message Count blocks of a
 * u16 Message Length and that many bytes of message, the type byte first.
 * The spec lets IEX add types and lengthen messages at their end: an unknown
 * type is skipped by its length (counted), a longer message is read and its
 * extra bytes ignored, a shorter one is rejected (counted).  Layouts:
 * iex_spec.h, docs/iex.md. */
#ifndef FH_IEX_H
#define FH_IEX_H

#include "fh_common.h"
#include "iex_spec.h"

/* The feeds, as a stream's `unit` (session.h). */
enum fh_iex_feed { FH_IEX_FEED_NONE = 0, FH_IEX_FEED_TOPS = 1, FH_IEX_FEED_DEEP = 2, FH_IEX_FEED_DEEPPLUS = 3 };

/* Instrument ids: an IEX venue takes one block of PITCH-venue size (pitch.h)
 * per feed, in a fixed order -- DEEP+ first, then DEEP, then TOPS -- so each
 * feed has its own instruments (a DEEP level book and a DEEP+ order book of
 * one symbol never mix), and a feed's ids never depend on when another
 * feed's packets arrive.  Within a feed, symbols rank in order of first
 * appearance in sequence order. */
#define FH_IEX_BLOCKS 3u
FH_INLINE uint32_t fh_iex_block(uint32_t venue_rank, uint32_t feed) { return venue_rank + FH_IEX_FEED_DEEPPLUS - feed; }

/* Per type byte: the feeds carrying it (FH_IEX_IN_*) << 8 | its length; 0 =
 * no IEX type.  Built in iex.c from FH_IEX_MESSAGES (iex_spec.h). */
extern const uint16_t fh_iex_type_table[256];

/* The feed of a Message Protocol ID, FH_IEX_FEED_NONE for any other. */
FH_INLINE uint32_t fh_iex_feed_of(uint32_t proto)
{
    return proto - FH_IEX_PROTO_TOPS <= FH_IEX_PROTO_DEEPPLUS - FH_IEX_PROTO_TOPS ? proto - FH_IEX_PROTO_TOPS + 1
                                                                                  : FH_IEX_FEED_NONE;
}

/* The header fields, at their offsets from the start of the UDP payload. */
FH_INLINE uint32_t fh_iex_proto(const uint8_t *p) { return fh_le16(p + 2); }
FH_INLINE uint32_t fh_iex_payload_len(const uint8_t *p) { return fh_le16(p + 12); }
FH_INLINE uint32_t fh_iex_count(const uint8_t *p) { return fh_le16(p + 14); }
FH_INLINE uint64_t fh_iex_first_seq(const uint8_t *p) { return fh_le64(p + 24); }

/* The header is sound: version 1, Payload Length the rest of the datagram,
 * channel and session not 0, stream offset, first sequence and send time not
 * negative as the signed integers IEX declares them, and a heartbeat (count
 * 0) carries no payload.  len >= FH_IEX_HLEN checked by the caller. */
FH_INLINE int fh_iex_header_ok(const uint8_t *p, size_t len)
{
    const uint64_t top = fh_le64(p + 16) | fh_le64(p + 24) | fh_le64(p + 32);
    return p[0] == 1 && fh_iex_payload_len(p) == len - FH_IEX_HLEN && fh_le32(p + 4) != 0 && fh_le32(p + 8) != 0 &&
           (top >> 63) == 0 && (fh_iex_count(p) != 0 || fh_iex_payload_len(p) == 0);
}

/* A stream's key: channel id, session id (header bytes 4..11) and protocol
 * id, 10 bytes, so a new session of a line is a new stream (and a session
 * change), and a second feed on one port another stream. */
FH_INLINE void fh_iex_stream_key(uint8_t key[10], const uint8_t *p)
{
    memcpy(key, p + 4, 8);
    memcpy(key + 8, p + 2, 2);
}

/* Walk the messages of a segment whose header passed fh_iex_header_ok:
 * messages [0, skip) are counted as duplicates, the rest go to sink(ctx,
 * message, its Message Length).  Returns how many messages were whole. */
typedef void (*fh_iex_sink_fn)(void *ctx, const uint8_t *msg, size_t len);
FH_INLINE uint32_t fh_iex_walk(const uint8_t *p, size_t len, uint32_t count, uint32_t skip, fh_iex_sink_fn sink,
                               void *ctx, fh_stats_t *st)
{
    size_t off = FH_IEX_HLEN;
    uint32_t i = 0;
    for (; i < count; i++) {
        if (FH_UNLIKELY(off + 2 > len)) {
            st->errors[FH_ERR_IEX_COUNT_OVERRUN]++;
            return i;
        }
        const size_t ml = fh_le16(p + off);
        off += 2;
        if (FH_UNLIKELY(ml == 0 || ml > len - off)) {
            st->errors[FH_ERR_IEX_MSG_OVERRUN]++;
            return i;
        }
        if (FH_UNLIKELY(i < skip)) st->duplicates++;
        else sink(ctx, p + off, ml);
        off += ml;
    }
    if (FH_UNLIKELY(off != len)) st->errors[FH_ERR_IEX_TRAILING]++;
    return i;
}

/* A datagram is an IEX-TP segment: a sound header of one of the three feeds
 * and Message Count blocks that fill it exactly.  Used to tell a UDP stream's
 * protocol from its first packets, before PITCH and MoldUDP64 (a MoldUDP64
 * session of ASCII bytes never starts with the byte 1; a PITCH unit's Hdr
 * Length is the datagram's, 40 bytes here would be a 1-byte length). */
FH_INLINE int fh_iex_looks_like(const uint8_t *p, size_t len)
{
    if (len < FH_IEX_HLEN || !fh_iex_header_ok(p, len) || fh_iex_feed_of(fh_iex_proto(p)) == FH_IEX_FEED_NONE) return 0;
    size_t off = FH_IEX_HLEN;
    for (uint32_t i = 0, n = fh_iex_count(p); i < n; i++) {
        if (off + 2 > len) return 0;
        const size_t ml = fh_le16(p + off);
        off += 2;
        if (ml == 0 || ml > len - off) return 0;
        off += ml;
    }
    return off == len;
}

/* An 8-byte symbol as a word (space padded on the wire). */
FH_INLINE uint64_t fh_iex_sym(const uint8_t *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
}

/* A fold of a message's bytes for the replay checksum (equal inputs, equal
 * sums): type and flags, timestamp, and the message's last 8 bytes. */
FH_INLINE uint64_t fh_iex_fold(const uint8_t *p, size_t len)
{
    uint64_t h = ((uint64_t)p[0] << 56 | (uint64_t)p[1] << 48) ^ fh_le64(p + 2) * 0x9E3779B97F4A7C15ull;
    if (len >= 18) h ^= fh_le64(p + len - 8) * 0xC2B2AE3D27D4EB4Full;
    return h;
}

#endif
