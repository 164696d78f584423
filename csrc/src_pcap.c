/* src_pcap.c -- classic pcap and pcapng walkers (resumable: see src.h).
 *
 * Zero-copy: frames are handed to the pipeline where they lie in the buffer
 * (the mapping of a plain file, or a chunk of a decompressed stream).
 * Record and block headers are hostile input like the frames: a length that
 * runs past the file stops the walk with FH_ERR_SRC_TRUNCATED, one that cannot
 * be right (absurd sizes, pcapng lengths that disagree) with FH_ERR_SRC_BAD_RECORD.
 * Capture timestamps are kept as first/last ns since the epoch. */
#include "src.h"

#define FH_PCAP_MAGIC_US 0xA1B2C3D4u
#define FH_PCAP_MAGIC_NS 0xA1B23C4Du
#define FH_PCAP_HLEN 24
#define FH_PCAP_RLEN 16
#define FH_LINKTYPE_ETHERNET 1
/* No link layer carries frames larger than this (pcap's own MAXIMUM_SNAPLEN). */
#define FH_MAX_FRAME 262144u

FH_INLINE uint32_t rd32(const uint8_t *p, int swap)
{
    uint32_t v = fh_le32(p);
    return swap ? __builtin_bswap32(v) : v;
}
FH_INLINE uint16_t rd16(const uint8_t *p, int swap)
{
    uint16_t v = fh_le16(p);
    return swap ? __builtin_bswap16(v) : v;
}

int fh_src_pcap_walk(fh_src_t *src, fh_lane_t *r, const uint8_t *buf, size_t len, int eof, size_t cap, size_t *used,
                     char *err, size_t errlen)
{
    (void)cap;                      /* a record is at most FH_MAX_FRAME + 16 bytes: any buffer holds one */
    size_t off = 0;
    *used = 0;
    if (!src->started) {
        if (len < FH_PCAP_HLEN) {
            if (!eof) return 0;
            fh_errf(err, errlen, "pcap file header truncated (%zu bytes)", len);
            return -1;
        }
        const uint32_t magic = fh_le32(buf);
        if (magic == FH_PCAP_MAGIC_US || magic == FH_PCAP_MAGIC_NS) src->swap = 0;
        else if (__builtin_bswap32(magic) == FH_PCAP_MAGIC_US || __builtin_bswap32(magic) == FH_PCAP_MAGIC_NS)
            src->swap = 1;
        else {
            fh_errf(err, errlen, "not a pcap file (magic 0x%08x)", magic);
            return -1;
        }
        const int ns = (src->swap ? __builtin_bswap32(magic) : magic) == FH_PCAP_MAGIC_NS;
        const uint32_t linktype = rd32(buf + 20, src->swap) & 0x0FFFFFFu;   /* upper bits: FCS info */
        if (linktype != FH_LINKTYPE_ETHERNET) {
            fh_pipe_src_error(r, FH_ERR_SRC_LINKTYPE);
            fh_errf(err, errlen, "pcap link type %u is not Ethernet (1); only Ethernet captures are supported",
                    linktype);
            return -1;
        }
        src->frac_mul = ns ? 1 : 1000;
        src->started = 1;
        off = FH_PCAP_HLEN;
    }
    const int swap = src->swap;
    const uint64_t frac_mul = src->frac_mul;
    while (off < len) {
        /* A record cut by the end of this buffer: the rest comes with the next. */
        if (!eof && (len - off < FH_PCAP_RLEN || (rd32(buf + off + 8, swap) <= FH_MAX_FRAME &&
                                                  rd32(buf + off + 8, swap) > len - off - FH_PCAP_RLEN)))
            break;
        if (FH_UNLIKELY(++src->poll == FH_POLL_EVERY)) {
            src->poll = 0;
            if (fh_pipe_poll(r, src->pos + off)) {
                *used = off;
                return 0;
            }
        }
        if (FH_UNLIKELY(len - off < FH_PCAP_RLEN)) {
            fh_pipe_src_error(r, FH_ERR_SRC_TRUNCATED);
            fh_errf(err, errlen, "pcap truncated: partial record header at offset %llu",
                    (unsigned long long)(src->pos + off));
            *used = len;
            return 1;
        }
        const uint8_t *rec = buf + off;
        const uint32_t caplen = rd32(rec + 8, swap);
        const uint32_t wirelen = rd32(rec + 12, swap);
        if (FH_UNLIKELY(caplen > FH_MAX_FRAME)) {
            fh_pipe_src_error(r, FH_ERR_SRC_BAD_RECORD);
            fh_errf(err, errlen, "pcap corrupt: record at offset %llu claims %u captured bytes",
                    (unsigned long long)(src->pos + off), caplen);
            *used = len;
            return 1;
        }
        if (FH_UNLIKELY(caplen > len - off - FH_PCAP_RLEN)) {
            fh_pipe_src_error(r, FH_ERR_SRC_TRUNCATED);
            fh_errf(err, errlen, "pcap truncated: record at offset %llu needs %u bytes, %zu left",
                    (unsigned long long)(src->pos + off), caplen, len - off - FH_PCAP_RLEN);
            *used = len;
            return 1;
        }
        if (FH_UNLIKELY(caplen < wirelen)) fh_pipe_src_error(r, FH_ERR_SRC_SNAPPED);
        const uint64_t ts = (uint64_t)rd32(rec, swap) * 1000000000ull + (uint64_t)rd32(rec + 4, swap) * frac_mul;
        fh_pipe_pace(r, ts);
        /* Asked to stop (while paced: mid-wait): this frame is not handled. */
        if (FH_UNLIKELY(fh_pipe_next(r))) {
            (void)fh_pipe_poll(r, src->pos + off);
            *used = off;
            return 0;
        }
        fh_pipe_capture_ts(r, ts);
        fh_pipe_frame(r, rec + FH_PCAP_RLEN, caplen, ts);
        off += FH_PCAP_RLEN + caplen;
    }
    *used = off;
    if (eof) fh_pipe_input_end(r, src->pos + off);
    return 0;
}

/* ------------------------------------------------------------------ pcapng */

#define FH_PCAPNG_SHB 0x0A0D0D0Au
#define FH_PCAPNG_IDB 1u
#define FH_PCAPNG_SPB 3u
#define FH_PCAPNG_EPB 6u
#define FH_PCAPNG_BOM 0x1A2B3C4Du

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
    ifc->mul = 1000;
    ifc->div = 1;
    ifc->shift = 0;
    ifc->offset_s = 0;  /* default: microseconds */
    while (n >= 4) {
        const uint16_t code = rd16(o, swap), olen = rd16(o + 2, swap);
        const size_t padded = ((size_t)olen + 3u) & ~(size_t)3u;
        if (code == 0 || padded > n - 4) return;
        if (code == 9 && olen >= 1) {
            const uint8_t v = o[4];
            if (v & 0x80) {
                const uint32_t e = v & 0x7F;
                if (e >= 1 && e <= 63) {
                    ifc->shift = e;
                }
            } else if (v <= 18) {
                uint64_t p10 = 1;
                for (uint32_t i = 0; i < v; i++) p10 *= 10;
                if (v <= 9) {
                    ifc->mul = 1000000000ull / p10;
                    ifc->div = 1;
                } else {
                    ifc->mul = 1;
                    ifc->div = p10 / 1000000000ull;
                }
            }
        } else if (code == 14 && olen == 8) {
            uint64_t v;
            memcpy(&v, o + 4, 8);
            const int64_t sec = (int64_t)(swap ? __builtin_bswap64(v) : v);
            /* Hostile offsets must not overflow the ns conversion: beyond
             * +-100 years it is corrupt, ignore it. */
            if (sec > -3155760000ll && sec < 3155760000ll) ifc->offset_s = sec;
        }
        o += 4 + padded;
        n -= 4 + padded;
    }
}

int fh_src_pcapng_walk(fh_src_t *src, fh_lane_t *r, const uint8_t *buf, size_t len, int eof, size_t cap, size_t *used,
                       char *err, size_t errlen)
{
    fh_pcapng_if_t *ifs = src->ifs;
    uint32_t n_if = src->n_if;
    int swap = src->swap, have_shb = src->have_shb;
    uint64_t last_ts = src->last_ts;
    size_t off = 0;
    int rc = 0;
    *used = 0;
    while (off < len) {
        /* A block cut by the end of this buffer: the rest comes with the next
         * (a block longer than a whole buffer is corrupt, below). */
        if (!eof) {
            if (len - off < 12) break;
            const uint32_t bt0 = fh_le32(buf + off);
            const int sw = bt0 == FH_PCAPNG_SHB ? fh_le32(buf + off + 8) != FH_PCAPNG_BOM : swap;
            const uint32_t bl = rd32(buf + off + 4, sw);
            if (bl >= 12 && !(bl & 3u) && bl > len - off && bl <= cap) break;
        }
        if (FH_UNLIKELY(++src->poll == FH_POLL_EVERY)) {
            src->poll = 0;
            if (fh_pipe_poll(r, src->pos + off)) goto out;
        }
        if (FH_UNLIKELY(len - off < 12)) {
            fh_pipe_src_error(r, FH_ERR_SRC_TRUNCATED);
            fh_errf(err, errlen, "pcapng truncated: partial block header at offset %llu",
                    (unsigned long long)(src->pos + off));
            rc = have_shb ? 1 : -1;
            off = len;
            goto out;
        }
        const uint8_t *b = buf + off;
        const uint32_t btype = fh_le32(b);
        if (btype == FH_PCAPNG_SHB) {
            /* A new section: its own byte order and its own interfaces. */
            const uint32_t bom = fh_le32(b + 8);
            if (bom == FH_PCAPNG_BOM) swap = 0;
            else if (__builtin_bswap32(bom) == FH_PCAPNG_BOM) swap = 1;
            else {
                fh_pipe_src_error(r, FH_ERR_SRC_BAD_RECORD);
                fh_errf(err, errlen, "pcapng corrupt: bad byte-order magic at offset %llu",
                        (unsigned long long)(src->pos + off));
                rc = have_shb ? 1 : -1;
                off = len;
                goto out;
            }
            have_shb = 1;
            n_if = 0;
        } else if (!have_shb) {
            fh_errf(err, errlen, "pcapng corrupt: first block is not a section header");
            rc = -1;
            off = len;
            goto out;
        }
        const uint32_t blen = rd32(b + 4, swap);
        if (FH_UNLIKELY(blen < 12 || (blen & 3u))) {
            fh_pipe_src_error(r, FH_ERR_SRC_BAD_RECORD);
            fh_errf(err, errlen, "pcapng corrupt: block at offset %llu has length %u",
                    (unsigned long long)(src->pos + off), blen);
            rc = 1;
            off = len;
            goto out;
        }
        if (FH_UNLIKELY(blen > len - off)) {
            if (!eof) {
                /* Longer than a whole buffer of a streamed input: no capture has such blocks. */
                fh_pipe_src_error(r, FH_ERR_SRC_BAD_RECORD);
                fh_errf(err, errlen,
                        "pcapng corrupt: block at offset %llu claims %u bytes, more than a %zu-byte "
                        "streaming buffer",
                        (unsigned long long)(src->pos + off), blen, cap);
            } else {
                fh_pipe_src_error(r, FH_ERR_SRC_TRUNCATED);
                fh_errf(err, errlen, "pcapng truncated: block at offset %llu needs %u bytes, %zu left",
                        (unsigned long long)(src->pos + off), blen, len - off);
            }
            rc = 1;
            off = len;
            goto out;
        }
        if (FH_UNLIKELY(rd32(b + blen - 4, swap) != blen)) {
            fh_pipe_src_error(r, FH_ERR_SRC_BAD_RECORD);
            fh_errf(err, errlen, "pcapng corrupt: block at offset %llu: trailing length differs",
                    (unsigned long long)(src->pos + off));
            rc = 1;
            off = len;
            goto out;
        }
        const uint8_t *body = b + 8;
        const size_t body_len = blen - 12;
        const uint32_t bt = swap && btype != FH_PCAPNG_SHB ? __builtin_bswap32(btype) : btype;
        if (bt == FH_PCAPNG_EPB) {
            if (FH_UNLIKELY(body_len < 20)) goto bad;
            const uint32_t ifid = rd32(body, swap);
            const uint32_t caplen = rd32(body + 12, swap), wirelen = rd32(body + 16, swap);
            if (FH_UNLIKELY(ifid >= n_if || caplen > body_len - 20)) goto bad;
            if (FH_UNLIKELY(ifs[ifid].linktype != FH_LINKTYPE_ETHERNET)) {
                fh_pipe_src_error(r, FH_ERR_SRC_LINKTYPE);
                goto next;
            }
            if (FH_UNLIKELY(caplen < wirelen)) fh_pipe_src_error(r, FH_ERR_SRC_SNAPPED);
            const uint64_t units = ((uint64_t)rd32(body + 4, swap) << 32) | rd32(body + 8, swap);
            const uint64_t ts = ts_to_ns(&ifs[ifid], units);
            fh_pipe_pace(r, ts);
            if (FH_UNLIKELY(fh_pipe_next(r))) {
                (void)fh_pipe_poll(r, src->pos + off);
                goto out;
            }
            last_ts = ts;
            fh_pipe_capture_ts(r, last_ts);
            fh_pipe_frame(r, body + 20, caplen, last_ts);
        } else if (bt == FH_PCAPNG_SPB) {
            /* Simple packets: interface 0, no timestamp, captured = min(wire, snaplen, room). */
            if (FH_UNLIKELY(body_len < 4 || n_if == 0)) goto bad;
            if (FH_UNLIKELY(ifs[0].linktype != FH_LINKTYPE_ETHERNET)) {
                fh_pipe_src_error(r, FH_ERR_SRC_LINKTYPE);
                goto next;
            }
            const uint32_t wirelen = rd32(body, swap);
            size_t caplen = body_len - 4;
            if (wirelen < caplen) caplen = wirelen;
            if (ifs[0].snaplen && ifs[0].snaplen < caplen) caplen = ifs[0].snaplen;
            if (FH_UNLIKELY(fh_pipe_next(r))) {
                (void)fh_pipe_poll(r, src->pos + off);
                goto out;
            }
            if (caplen < wirelen) fh_pipe_src_error(r, FH_ERR_SRC_SNAPPED);
            fh_pipe_capture_ts(r, last_ts);
            fh_pipe_frame(r, body + 4, caplen, last_ts);
        } else if (bt == FH_PCAPNG_IDB) {
            if (FH_UNLIKELY(body_len < 8 || n_if == FH_PCAPNG_MAX_IF)) goto bad;
            fh_pcapng_if_t *ifc = &ifs[n_if++];
            ifc->linktype = rd16(body, swap);
            ifc->snaplen = rd32(body + 4, swap);
            idb_options(ifc, body + 8, body_len - 8, swap);
        }
        /* Other blocks (name resolution, statistics, custom, ...) carry no frames. */
        goto next;
    bad:
        /* A block whose own fields disagree (a captured length past its body,
         * an interface never described): its framing is sound, so the walk
         * goes on past it, but the input is reported damaged at its end, as a
         * pcap record with the same fault is. */
        fh_pipe_src_error(r, FH_ERR_SRC_BAD_RECORD);
        if (src->bad_blocks++ == 0) src->first_bad = src->pos + off;
    next:
        off += blen;
    }
    if (eof) {
        fh_pipe_input_end(r, src->pos + off);
        if (src->bad_blocks && rc == 0) {
            fh_errf(err, errlen,
                    "pcapng corrupt: %llu inconsistent block(s) skipped, the first at offset %llu "
                    "(the rest was decoded)",
                    (unsigned long long)src->bad_blocks, (unsigned long long)src->first_bad);
            rc = 1;
        }
    }
out:
    src->n_if = n_if;
    src->swap = swap;
    src->have_shb = have_shb;
    src->last_ts = last_ts;
    *used = off;
    return rc;
}
