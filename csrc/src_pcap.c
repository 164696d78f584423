/* src_pcap.c -- classic pcap and pcapng walkers over a memory-mapped capture.
 *
 * Zero-copy: frames are handed to the pipeline where they lie in the mapping.
 * Record and block headers are hostile input like the frames: a length that
 * runs past the file stops the walk with FH_ERR_SRC_TRUNCATED, one that cannot
 * be right (absurd sizes, pcapng lengths that disagree) with FH_ERR_SRC_BAD_RECORD.
 * Capture timestamps are kept as first/last ns since the epoch. */
#include "engine.h"

#define FH_PCAP_MAGIC_US 0xA1B2C3D4u
#define FH_PCAP_MAGIC_NS 0xA1B23C4Du
#define FH_PCAP_HLEN 24
#define FH_PCAP_RLEN 16
#define FH_LINKTYPE_ETHERNET 1
/* No link layer carries frames larger than this (pcap's own MAXIMUM_SNAPLEN). */
#define FH_MAX_FRAME 262144u

FH_INLINE uint32_t rd32(const uint8_t *p, int swap) { uint32_t v = fh_le32(p); return swap ? __builtin_bswap32(v) : v; }
FH_INLINE uint16_t rd16(const uint8_t *p, int swap) { uint16_t v = fh_le16(p); return swap ? __builtin_bswap16(v) : v; }

static void note_ts(fh_stats_t *st, uint64_t ts)
{
    if (st->first_ts_ns == 0) st->first_ts_ns = ts;
    st->last_ts_ns = ts;
}

int fh_src_pcap_run(fh_replay_t *r, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
    if (len < FH_PCAP_HLEN) { fh_errf(err, errlen, "pcap file header truncated (%zu bytes)", len); return -1; }
    const uint32_t magic = fh_le32(buf);
    int swap, ns;
    if (magic == FH_PCAP_MAGIC_US || magic == FH_PCAP_MAGIC_NS) swap = 0;
    else if (__builtin_bswap32(magic) == FH_PCAP_MAGIC_US || __builtin_bswap32(magic) == FH_PCAP_MAGIC_NS) swap = 1;
    else { fh_errf(err, errlen, "not a pcap file (magic 0x%08x)", magic); return -1; }
    ns = (swap ? __builtin_bswap32(magic) : magic) == FH_PCAP_MAGIC_NS;
    const uint32_t linktype = rd32(buf + 20, swap) & 0x0FFFFFFu;   /* upper bits: FCS info */
    if (linktype != FH_LINKTYPE_ETHERNET) {
        r->src_errors[FH_ERR_SRC_LINKTYPE]++;
        fh_errf(err, errlen, "pcap link type %u is not Ethernet (1); only Ethernet captures are supported", linktype);
        return -1;
    }
    const uint64_t frac_mul = ns ? 1 : 1000;
    size_t off = FH_PCAP_HLEN;
    uint32_t poll = 0;
    while (off < len) {
        if (FH_UNLIKELY(++poll == FH_POLL_EVERY)) {
            poll = 0;
            fh_engine_progress(r, off);
            if (fh_engine_should_stop(r)) return 0;
        }
        if (FH_UNLIKELY(len - off < FH_PCAP_RLEN)) {
            r->src_errors[FH_ERR_SRC_TRUNCATED]++;
            fh_errf(err, errlen, "pcap truncated: partial record header at offset %zu", off);
            return 1;
        }
        const uint8_t *rec = buf + off;
        const uint32_t caplen = rd32(rec + 8, swap);
        const uint32_t wirelen = rd32(rec + 12, swap);
        if (FH_UNLIKELY(caplen > FH_MAX_FRAME)) {
            r->src_errors[FH_ERR_SRC_BAD_RECORD]++;
            fh_errf(err, errlen, "pcap corrupt: record at offset %zu claims %u captured bytes", off, caplen);
            return 1;
        }
        if (FH_UNLIKELY(caplen > len - off - FH_PCAP_RLEN)) {
            r->src_errors[FH_ERR_SRC_TRUNCATED]++;
            fh_errf(err, errlen, "pcap truncated: record at offset %zu needs %u bytes, %zu left",
                    off, caplen, len - off - FH_PCAP_RLEN);
            return 1;
        }
        if (FH_UNLIKELY(caplen < wirelen)) r->src_errors[FH_ERR_SRC_SNAPPED]++;
        const uint64_t ts = (uint64_t)rd32(rec, swap) * 1000000000ull + (uint64_t)rd32(rec + 4, swap) * frac_mul;
        if (FH_UNLIKELY(r->st.first_ts_ns == 0)) r->st.first_ts_ns = ts;
        r->st.last_ts_ns = ts;
        fh_engine_pace(r, ts);
        fh_engine_frame(r, rec + FH_PCAP_RLEN, caplen, ts);
        off += FH_PCAP_RLEN + caplen;
    }
    fh_engine_progress(r, len);
    return 0;
}

/* ------------------------------------------------------------------ pcapng */

#define FH_PCAPNG_SHB 0x0A0D0D0Au
#define FH_PCAPNG_IDB 1u
#define FH_PCAPNG_SPB 3u
#define FH_PCAPNG_EPB 6u
#define FH_PCAPNG_BOM 0x1A2B3C4Du
#define FH_PCAPNG_MAX_IF 256

/* Per interface: link type and how to turn its timestamp units into ns. */
typedef struct {
    uint32_t linktype;
    uint32_t snaplen;
    uint64_t mul;          /* ns = units * mul / div, or units * 1e9 >> shift */
    uint64_t div;
    uint32_t shift;        /* non-zero for power-of-two resolutions */
    int64_t  offset_s;     /* if_tsoffset */
} fh_pcapng_if_t;

static uint64_t ts_to_ns(const fh_pcapng_if_t *ifc, uint64_t units)
{
    uint64_t ns;
    if (ifc->shift) ns = (uint64_t)(((unsigned __int128)units * 1000000000u) >> ifc->shift);
    else ns = ifc->div > 1 ? units / ifc->div : units * ifc->mul;
    return ns + (uint64_t)(ifc->offset_s * 1000000000ll);
}

/* Parse an IDB's options (if_tsresol, if_tsoffset); lengths checked. */
static void idb_options(fh_pcapng_if_t *ifc, const uint8_t *o, size_t n, int swap)
{
    ifc->mul = 1000; ifc->div = 1; ifc->shift = 0; ifc->offset_s = 0;  /* default: microseconds */
    while (n >= 4) {
        const uint16_t code = rd16(o, swap), olen = rd16(o + 2, swap);
        const size_t padded = ((size_t)olen + 3u) & ~(size_t)3u;
        if (code == 0 || padded > n - 4) return;
        if (code == 9 && olen >= 1) {
            const uint8_t v = o[4];
            if (v & 0x80) {
                const uint32_t e = v & 0x7F;
                if (e >= 1 && e <= 63) { ifc->shift = e; }
            } else if (v <= 18) {
                uint64_t p10 = 1;
                for (uint32_t i = 0; i < v; i++) p10 *= 10;
                if (v <= 9) { ifc->mul = 1000000000ull / p10; ifc->div = 1; }
                else { ifc->mul = 1; ifc->div = p10 / 1000000000ull; }
            }
        } else if (code == 14 && olen == 8) {
            uint64_t v; memcpy(&v, o + 4, 8);
            const int64_t sec = (int64_t)(swap ? __builtin_bswap64(v) : v);
            /* Hostile offsets must not overflow the ns conversion: beyond
             * +-100 years it is corrupt, ignore it. */
            if (sec > -3155760000ll && sec < 3155760000ll) ifc->offset_s = sec;
        }
        o += 4 + padded; n -= 4 + padded;
    }
}

int fh_src_pcapng_run(fh_replay_t *r, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
    fh_pcapng_if_t ifs[FH_PCAPNG_MAX_IF];
    uint32_t n_if = 0;
    int swap = 0, have_shb = 0;
    uint64_t last_ts = 0;
    size_t off = 0;
    uint32_t poll = 0;
    while (off < len) {
        if (FH_UNLIKELY(++poll == FH_POLL_EVERY)) {
            poll = 0;
            fh_engine_progress(r, off);
            if (fh_engine_should_stop(r)) return 0;
        }
        if (FH_UNLIKELY(len - off < 12)) {
            r->src_errors[FH_ERR_SRC_TRUNCATED]++;
            fh_errf(err, errlen, "pcapng truncated: partial block header at offset %zu", off);
            return have_shb ? 1 : -1;
        }
        const uint8_t *b = buf + off;
        const uint32_t btype = fh_le32(b);
        if (btype == FH_PCAPNG_SHB) {
            /* A new section: its own byte order and its own interfaces. */
            const uint32_t bom = fh_le32(b + 8);
            if (bom == FH_PCAPNG_BOM) swap = 0;
            else if (__builtin_bswap32(bom) == FH_PCAPNG_BOM) swap = 1;
            else {
                r->src_errors[FH_ERR_SRC_BAD_RECORD]++;
                fh_errf(err, errlen, "pcapng corrupt: bad byte-order magic at offset %zu", off);
                return have_shb ? 1 : -1;
            }
            have_shb = 1;
            n_if = 0;
        } else if (!have_shb) {
            fh_errf(err, errlen, "pcapng corrupt: first block is not a section header");
            return -1;
        }
        const uint32_t blen = rd32(b + 4, swap);
        if (FH_UNLIKELY(blen < 12 || (blen & 3u))) {
            r->src_errors[FH_ERR_SRC_BAD_RECORD]++;
            fh_errf(err, errlen, "pcapng corrupt: block at offset %zu has length %u", off, blen);
            return 1;
        }
        if (FH_UNLIKELY(blen > len - off)) {
            r->src_errors[FH_ERR_SRC_TRUNCATED]++;
            fh_errf(err, errlen, "pcapng truncated: block at offset %zu needs %u bytes, %zu left", off, blen, len - off);
            return 1;
        }
        if (FH_UNLIKELY(rd32(b + blen - 4, swap) != blen)) {
            r->src_errors[FH_ERR_SRC_BAD_RECORD]++;
            fh_errf(err, errlen, "pcapng corrupt: block at offset %zu: trailing length differs", off);
            return 1;
        }
        const uint8_t *body = b + 8;
        const size_t body_len = blen - 12;
        const uint32_t bt = swap && btype != FH_PCAPNG_SHB ? __builtin_bswap32(btype) : btype;
        if (bt == FH_PCAPNG_EPB) {
            if (FH_UNLIKELY(body_len < 20)) { r->src_errors[FH_ERR_SRC_BAD_RECORD]++; goto next; }
            const uint32_t ifid = rd32(body, swap);
            const uint32_t caplen = rd32(body + 12, swap), wirelen = rd32(body + 16, swap);
            if (FH_UNLIKELY(ifid >= n_if || caplen > body_len - 20)) { r->src_errors[FH_ERR_SRC_BAD_RECORD]++; goto next; }
            if (FH_UNLIKELY(ifs[ifid].linktype != FH_LINKTYPE_ETHERNET)) { r->src_errors[FH_ERR_SRC_LINKTYPE]++; goto next; }
            if (FH_UNLIKELY(caplen < wirelen)) r->src_errors[FH_ERR_SRC_SNAPPED]++;
            const uint64_t units = ((uint64_t)rd32(body + 4, swap) << 32) | rd32(body + 8, swap);
            last_ts = ts_to_ns(&ifs[ifid], units);
            note_ts(&r->st, last_ts);
            fh_engine_pace(r, last_ts);
            fh_engine_frame(r, body + 20, caplen, last_ts);
        } else if (bt == FH_PCAPNG_SPB) {
            /* Simple packets: interface 0, no timestamp, captured = min(wire, snaplen, room). */
            if (FH_UNLIKELY(body_len < 4 || n_if == 0)) { r->src_errors[FH_ERR_SRC_BAD_RECORD]++; goto next; }
            if (FH_UNLIKELY(ifs[0].linktype != FH_LINKTYPE_ETHERNET)) { r->src_errors[FH_ERR_SRC_LINKTYPE]++; goto next; }
            const uint32_t wirelen = rd32(body, swap);
            size_t caplen = body_len - 4;
            if (wirelen < caplen) caplen = wirelen;
            if (ifs[0].snaplen && ifs[0].snaplen < caplen) caplen = ifs[0].snaplen;
            if (caplen < wirelen) r->src_errors[FH_ERR_SRC_SNAPPED]++;
            note_ts(&r->st, last_ts);
            fh_engine_frame(r, body + 4, caplen, last_ts);
        } else if (bt == FH_PCAPNG_IDB) {
            if (FH_UNLIKELY(body_len < 8 || n_if == FH_PCAPNG_MAX_IF)) { r->src_errors[FH_ERR_SRC_BAD_RECORD]++; goto next; }
            fh_pcapng_if_t *ifc = &ifs[n_if++];
            ifc->linktype = rd16(body, swap);
            ifc->snaplen = rd32(body + 4, swap);
            idb_options(ifc, body + 8, body_len - 8, swap);
        }
        /* Other blocks (name resolution, statistics, custom, ...) carry no frames. */
    next:
        off += blen;
    }
    fh_engine_progress(r, len);
    return 0;
}
