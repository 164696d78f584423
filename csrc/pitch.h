/* pitch.h -- Cboe US Equities Multicast PITCH wire helpers for the pipeline
 * (pitch_pipe.c): the length table, little-endian reads, instrument ids, the
 * unit walk, protocol detection and the checksum fold.
 *
 * Lengths are strict: a message's own Length byte must equal the type's
 * length in pitch_spec.h.  The spec lets Cboe lengthen messages; a longer one
 * is skipped and counted, the same rule as ITCH.  Layouts:
 * docs/pitch-spec-notes.md.  The normalized reference decoder the tests and
 * fuzzing use is not in the core: csrc/probe/pitch_decode.c. */
#ifndef FH_PITCH_H
#define FH_PITCH_H

#include "fh_common.h"
#include "pitch_spec.h"

/* Wire length of every PITCH type (Length byte value); 0 = not a PITCH type.
 * Built in pitch.c from FH_PITCH_MESSAGES (pitch_spec.h). */
extern const uint8_t fh_pitch_len_table[256];

FH_INLINE uint64_t fh_pitch_le64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* ------------------------------------------------------ instrument ids
 *
 * PITCH names instruments by symbol; the books index them by a 16-bit id (an
 * ITCH stock locate).  Ids must not depend on the number of cores nor on the
 * order in which units' packets arrive (A/B lines, holes), so a symbol's id
 * is fixed by its venue, its unit and its rank among the symbols of that unit
 * in sequence order -- each unit is sequenced on its own, so that rank is the
 * same whatever else arrives between its packets:
 *
 *   id = FH_PITCH_ID_BASE + venue * FH_PITCH_VENUE_IDS + (unit - 1) * FH_PITCH_UNIT_IDS + rank
 *
 * venue: 0 .. FH_PITCH_MAX_VENUES - 1 among the run's PITCH venues; unit
 * 1 .. FH_PITCH_MAX_UNITS; rank 0 .. FH_PITCH_UNIT_IDS - 1.  ITCH locates keep
 * 1 .. FH_PITCH_ID_BASE - 1.  A symbol past these limits gets no id: its
 * messages are counted (FH_ERR_PITCH_ID_RANGE) and not applied. */
#define FH_PITCH_ID_BASE 16384u
#define FH_PITCH_MAX_VENUES 4u
#define FH_PITCH_MAX_UNITS 32u
#define FH_PITCH_UNIT_IDS 384u
#define FH_PITCH_VENUE_IDS (FH_PITCH_MAX_UNITS * FH_PITCH_UNIT_IDS)
_Static_assert(FH_PITCH_ID_BASE + FH_PITCH_MAX_VENUES * FH_PITCH_VENUE_IDS - 1 <= 65535, "ids are 16-bit");

/* A lane's symbol -> id map (open addressing, linear probing; preallocated:
 * twice the ids there can be, so probes stay short). */
typedef struct fh_pitch_ident {
    uint64_t sym;                  /* 8 symbol bytes, space padded, as a little-endian word */
    uint16_t key;                  /* venue << 8 | unit */
    uint16_t id;                   /* 0 = free entry */
    uint32_t _pad;
} fh_pitch_ident_t;

#define FH_PITCH_IDS_BITS 17u
typedef struct fh_pitch_ids {
    fh_pitch_ident_t *v;           /* 1 << FH_PITCH_IDS_BITS entries */
    uint16_t next[FH_PITCH_MAX_VENUES][FH_PITCH_MAX_UNITS + 1];   /* symbols ranked so far per unit (IEX: unit 0) */
} fh_pitch_ids_t;

/* The id of (venue, unit, symbol): an existing one, or the next of its block
 * [first, first + span) (*fresh set); 0 when it cannot have one.  PITCH
 * ranks symbols per unit, IEX per venue (unit 0, iex_pipe.c). */
FH_INLINE uint32_t fh_sym_id(fh_pitch_ids_t *m, uint32_t venue, uint32_t unit, uint64_t sym, uint32_t first,
                             uint32_t span, int *fresh)
{
    const uint16_t key = (uint16_t)(venue << 8 | unit);
    uint64_t h = (sym ^ ((uint64_t)key << 48)) * 0x9E3779B97F4A7C15ull;
    const uint64_t mask = (1u << FH_PITCH_IDS_BITS) - 1;
    uint64_t i = h >> (64 - FH_PITCH_IDS_BITS);
    for (;; i = (i + 1) & mask) {
        fh_pitch_ident_t *e = &m->v[i];
        if (FH_LIKELY(e->id != 0)) {
            if (e->sym == sym && e->key == key) return e->id;
            continue;
        }
        if (FH_UNLIKELY(venue >= FH_PITCH_MAX_VENUES || unit > FH_PITCH_MAX_UNITS)) return 0;
        const uint32_t rank = m->next[venue][unit];
        if (FH_UNLIKELY(rank >= span)) return 0;
        m->next[venue][unit] = (uint16_t)(rank + 1);
        e->sym = sym;
        e->key = key;
        e->id = (uint16_t)(first + rank);
        *fresh = 1;
        return e->id;
    }
}

/* The id of a PITCH (venue, unit, symbol); units are 1..FH_PITCH_MAX_UNITS. */
FH_INLINE uint32_t fh_pitch_id(fh_pitch_ids_t *m, uint32_t venue, uint32_t unit, uint64_t sym, int *fresh)
{
    return fh_sym_id(m, venue, unit, sym,
                     FH_PITCH_ID_BASE + venue * FH_PITCH_VENUE_IDS + (unit - 1) * FH_PITCH_UNIT_IDS,
                     unit >= 1 ? FH_PITCH_UNIT_IDS : 0, fresh);
}

/* A symbol field (6 or 8 bytes) as the map's word: space padded to 8. */
FH_INLINE uint64_t fh_pitch_sym_word(const uint8_t *p, size_t n)
{
    uint8_t b[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
    memcpy(b, p, n);
    uint64_t w;
    memcpy(&w, b, 8);
    return w;
}

/* Walk the messages of one sequenced unit (payload after the 8-byte header
 * checked by the caller: Hdr Length == len): messages [0, skip) are counted
 * as duplicates, the rest go to sink(ctx, message, its Length).  Returns how
 * many messages were whole.  The MoldUDP64 walker's PITCH twin (mold.h). */
typedef void (*fh_pitch_sink_fn)(void *ctx, const uint8_t *msg, size_t len);
FH_INLINE uint32_t fh_pitch_walk(const uint8_t *p, size_t len, uint32_t count, uint32_t skip, fh_pitch_sink_fn sink,
                                 void *ctx, fh_stats_t *st)
{
    size_t off = FH_PITCH_UNIT_HLEN;
    uint32_t i = 0;
    for (; i < count; i++) {
        if (FH_UNLIKELY(off + 2 > len)) {
            st->errors[FH_ERR_PITCH_COUNT_OVERRUN]++;
            return i;
        }
        const size_t ml = p[off];
        if (FH_UNLIKELY(ml < 2 || ml > len - off)) {
            st->errors[FH_ERR_PITCH_MSG_OVERRUN]++;
            return i;
        }
        if (FH_UNLIKELY(i < skip)) st->duplicates++;
        else sink(ctx, p + off, ml);
        off += ml;
    }
    if (FH_UNLIKELY(off != len)) st->errors[FH_ERR_PITCH_TRAILING]++;
    return i;
}

/* A datagram is a PITCH sequenced unit: its Hdr Length is the payload's
 * length and Hdr Count messages, each framed by its Length byte, fill it
 * exactly.  Used to tell a UDP stream's protocol from its first packets (a
 * MoldUDP64 header starts with 10 ASCII session bytes: its first two read as
 * a length equal to the datagram's and a walk that ends exactly is not a
 * coincidence a real feed produces). */
FH_INLINE int fh_pitch_looks_like(const uint8_t *p, size_t len)
{
    if (len < FH_PITCH_UNIT_HLEN || fh_le16(p) != len) return 0;
    size_t off = FH_PITCH_UNIT_HLEN;
    for (uint32_t i = 0; i < p[2]; i++) {
        if (off + 2 > len || p[off] < 2 || p[off] > len - off) return 0;
        off += p[off];
    }
    return off == len;
}

/* A fold of a message's bytes for the replay checksum (equal inputs, equal sums). */
FH_INLINE uint64_t fh_pitch_fold(const uint8_t *p, size_t len)
{
    uint64_t h = (uint64_t)p[1] << 56 ^ (uint64_t)fh_le32(p + 2) * 0x9E3779B97F4A7C15ull;
    if (len >= 14) h ^= fh_pitch_le64(p + 6) * 0xC2B2AE3D27D4EB4Full;
    if (len >= 16) h ^= fh_pitch_le64(p + len - 8) * 0x165667B19E3779F9ull;
    return h;
}

#endif
