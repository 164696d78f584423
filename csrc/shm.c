/* shm.c -- segment creation and the reader side of the sequence lock and ring.
 * Creation is start-up work; the readers run in other processes, on a
 * read-only mapping, and never write anything. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "shm.h"
#include "tsc.h"

_Static_assert(sizeof(fh_shm_header_t) == FH_SHM_HEADER_SIZE, "header size");
_Static_assert(offsetof(fh_shm_header_t, ring_head) == 256, "ring heads on their own cache lines");
_Static_assert(sizeof(((fh_shm_header_t *)0)->ring_head) / sizeof(fh_shm_lane_head_t) == FH_SHM_MAX_LANES, "lanes");
_Static_assert(sizeof(fh_shm_slot_t) == FH_SHM_SLOT_FIXED, "slot fixed part");
_Static_assert(sizeof(fh_shm_event_t) == FH_SHM_EVENT_SIZE, "event size");
_Static_assert(FH_SHM_SLOT_FIXED % 64 == 0, "slots cache aligned");
_Static_assert(sizeof(fh_read_slot_t) == FH_SHM_SLOT_FIXED, "reader slot fixed part");
_Static_assert(sizeof(fh_read_event_t) == 72, "reader event");
_Static_assert(offsetof(fh_read_event_t, price1) == 32 && offsetof(fh_shm_event_t, locate) == 32 &&
               offsetof(fh_read_event_t, type) == offsetof(fh_read_event_t, locate) + 2 &&
               offsetof(fh_read_event_t, aux) == offsetof(fh_read_event_t, locate) + 3 &&
               offsetof(fh_shm_event_t, type) == 34 && offsetof(fh_shm_event_t, aux) == 35,
               "widen_event copies the timestamps and locate/type/aux as blocks");

#define FH_COUNTERS_SEQ_PAD 64

uint32_t fh_shm_slot_size(uint32_t depth)
{
    const uint32_t raw = FH_SHM_SLOT_FIXED + depth * 2u * (4u + 4u + 8u);
    return (raw + 63u) & ~63u;
}

static uint64_t counters_size(void) { return (FH_COUNTERS_SEQ_PAD + sizeof(fh_stats_t) + 63u) & ~(uint64_t)63u; }

uint64_t fh_shm_total_size(uint32_t n_slots, uint32_t depth, uint64_t ring_capacity, uint32_t n_lanes)
{
    return FH_SHM_HEADER_SIZE + n_lanes * counters_size() + (uint64_t)n_slots * fh_shm_slot_size(depth)
           + n_lanes * ring_capacity * FH_SHM_EVENT_SIZE + (uint64_t)FH_SHM_CBBO_ENTRIES * sizeof(fh_shm_cbbo_t);
}

static int name_ok(const char *n)
{
    size_t i = 0;
    for (; n[i]; i++) {
        const char c = n[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '-' || c == '.'))
            return 0;
    }
    return i > 0 && i < 200 && n[0] != '.';
}

/* A segment whose writer finished or no longer runs may be replaced; one
 * whose writer is alive and writing may not.  Anything that is not a
 * feedhandler segment is replaced only if it is a plain file we own (shm_open
 * with O_NOFOLLOW refuses symlinks). */
/* /proc/PID/stat: the process's state letter and start time (field 22).
 * Returns 0, or -1 when there is no such process (or no /proc). */
static int proc_stat(int64_t pid, char *state, uint64_t *start)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%lld/stat", (long long)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    const size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    /* The command name (field 2) may hold spaces and ')': fields resume after the last ')'. */
    const char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ') return -1;
    *state = p[2];
    p += 2;
    for (int field = 3; field < 22 && p; field++) {          /* p points at field `field` */
        p = strchr(p, ' ');
        if (p) p++;
    }
    *start = p ? strtoull(p, NULL, 10) : 0;
    return 0;
}

static uint64_t self_start(void)
{
    char st;
    uint64_t start = 0;
    return proc_stat(getpid(), &st, &start) == 0 ? start : 0;
}

static int writer_alive(int64_t pid, uint64_t start)
{
    if (pid <= 0) return 0;
    char st;
    uint64_t now_start = 0;
    if (proc_stat(pid, &st, &now_start) == 0) {
        if (st == 'Z' || st == 'X') return 0;                /* killed, not yet reaped: dead all the same */
        if (start && now_start && now_start != start) return 0;   /* the pid names another process now */
        return 1;
    }
    if (kill((pid_t)pid, 0) == 0 || errno == EPERM) return -1;   /* exists, but /proc does not say more */
    return errno == ESRCH ? 0 : -1;
}

int fh_shm_writer_alive(const uint8_t *base)
{
    const fh_shm_header_t *h = (const fh_shm_header_t *)base;
    return writer_alive(h->writer_pid, h->writer_start);
}

static int open_fresh(const char *path, uint32_t mode, char *err, size_t errlen)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        const int fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, (mode_t)mode);
        if (fd >= 0) {
            fchmod(fd, (mode_t)mode);   /* not narrowed by the umask */
            return fd;
        }
        if (errno != EEXIST) { fh_errf(err, errlen, "cannot create /dev/shm%s: %s", path, strerror(errno)); return -1; }
        const int old = shm_open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC, 0);
        if (old < 0) { fh_errf(err, errlen, "/dev/shm%s exists and cannot be opened: %s", path, strerror(errno)); return -1; }
        struct stat sb;
        int64_t pid = 0;
        uint64_t start = 0;
        if (fstat(old, &sb) == 0 && (size_t)sb.st_size >= sizeof(fh_shm_header_t)) {
            fh_shm_header_t h;
            if (pread(old, &h, sizeof h, 0) == (ssize_t)sizeof h && memcmp(h.magic, FH_SHM_MAGIC, 8) == 0 &&
                h.state != FH_SHM_FINISHED) {
                pid = h.writer_pid;
                start = h.writer_start;
            }
        }
        close(old);
        /* Only a live writer keeps its name: a dead one's (killed, a zombie,
         * its pid reused) is replaced.  Cannot tell: assume alive, refuse. */
        if (pid > 0 && writer_alive(pid, start) != 0) {
            fh_errf(err, errlen, "/dev/shm%s is in use by a running writer (pid %lld)", path, (long long)pid);
            return -1;
        }
        /* Unlink, not overwrite: readers still mapping the old one keep a
         * consistent (finished) segment instead of one changing under them. */
        shm_unlink(path);
    }
    fh_errf(err, errlen, "cannot create /dev/shm%s: it keeps reappearing", path);
    return -1;
}

int fh_shm_create(fh_shm_t *s, const char *name, uint32_t mode, uint32_t n_slots, uint32_t depth,
                  uint64_t ring_capacity, uint32_t n_lanes, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    if (n_lanes < 1 || n_lanes > FH_SHM_MAX_LANES) { fh_errf(err, errlen, "%u lanes: 1..%d", n_lanes, FH_SHM_MAX_LANES); return -1; }
    if (depth < 1 || depth > FH_SHM_MAX_DEPTH) { fh_errf(err, errlen, "depth %u out of range 1..%d", depth, FH_SHM_MAX_DEPTH); return -1; }
    if (ring_capacity < 2 || (ring_capacity & (ring_capacity - 1))) {
        fh_errf(err, errlen, "event ring capacity %llu is not a power of two >= 2", (unsigned long long)ring_capacity);
        return -1;
    }
    const uint64_t size = fh_shm_total_size(n_slots, depth, ring_capacity, n_lanes);
    char what[160];
    snprintf(what, sizeof what, "the shared-memory segment (%u slots at depth %u, %u x %llu events)", n_slots, depth,
             n_lanes, (unsigned long long)ring_capacity);
    if (fh_mem_check(size, size, what, err, errlen) != 0) return -1;
    void *mem;
    if (name && name[0]) {
        if (!name_ok(name)) {
            fh_errf(err, errlen, "bad shared-memory name '%s': use letters, digits, '_', '-', '.' (no '/')", name);
            return -1;
        }
        snprintf(s->name, sizeof s->name, "/%s", name);
        const int fd = open_fresh(s->name, mode ? mode : 0600, err, errlen);
        if (fd < 0) return -1;
        if (ftruncate(fd, (off_t)size) != 0) {
            fh_errf(err, errlen, "cannot size /dev/shm%s to %llu bytes: %s", s->name, (unsigned long long)size, strerror(errno));
            close(fd); shm_unlink(s->name); return -1;
        }
        /* Reserve the pages now: a full /dev/shm is an error here, not a
         * SIGBUS on the hot path when a page is first written. */
        const int fa = posix_fallocate(fd, 0, (off_t)size);
        if (fa != 0 && fa != EOPNOTSUPP && fa != EINVAL) {
            fh_errf(err, errlen, "cannot reserve %llu bytes in /dev/shm for %s: %s", (unsigned long long)size,
                    s->name, strerror(fa));
            close(fd); shm_unlink(s->name); return -1;
        }
        mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        close(fd);
        if (mem == MAP_FAILED) {
            fh_errf(err, errlen, "cannot map /dev/shm%s (%llu bytes): %s", s->name, (unsigned long long)size, strerror(errno));
            shm_unlink(s->name); return -1;
        }
        /* Every page written once at start-up: the first write to a page
         * of a fresh tmpfs file costs a fault (~100 us seen at p99.9 of the
         * publish stage) that must not happen on a packet. */
        fh_prefault(mem, size);
        s->named = 1;
    } else {
        mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (mem == MAP_FAILED) {
            fh_errf(err, errlen, "cannot allocate %llu bytes of book memory: %s", (unsigned long long)size, strerror(errno));
            return -1;
        }
#ifdef MADV_HUGEPAGE
        madvise(mem, size, MADV_HUGEPAGE);
#endif
        memset(mem, 0, size);
    }
    s->base = mem;
    s->size = size;
    s->hdr = mem;
    s->depth = depth;
    s->slot_size = fh_shm_slot_size(depth);
    fh_shm_header_t *h = s->hdr;
    h->header_size = FH_SHM_HEADER_SIZE;
    h->total_size = size;
    h->depth = depth;
    h->n_slots = n_slots;
    h->slot_size = s->slot_size;
    h->event_size = FH_SHM_EVENT_SIZE;
    h->ring_capacity = ring_capacity;
    h->n_lanes = n_lanes;
    h->counters_stride = (uint32_t)counters_size();
    h->counters_offset = FH_SHM_HEADER_SIZE;
    h->slots_offset = h->counters_offset + n_lanes * counters_size();
    h->ring_offset = h->slots_offset + (uint64_t)n_slots * s->slot_size;
    h->cbbo_offset = h->ring_offset + (uint64_t)n_lanes * ring_capacity * FH_SHM_EVENT_SIZE;
    h->created_ns = fh_clock_ns(CLOCK_REALTIME);
    h->writer_pid = getpid();
    h->writer_start = self_start();
    h->state = FH_SHM_STARTING;
    s->slots = s->base + h->slots_offset;
    s->ring = (fh_shm_event_t *)(s->base + h->ring_offset);
    s->ring_mask = ring_capacity - 1;
    s->ring_head = &h->ring_head[0].head;
    s->counters = s->base + h->counters_offset;
    s->owner = 1;
    for (uint32_t i = 0; i < n_slots; i++) fh_shm_slot(s, i)->locate = (uint16_t)i;
    /* Readers check the magic and version last-written-first: publish them
     * only once everything they describe is in place. */
    h->layout_version = FH_SHM_LAYOUT_VERSION;
    FH_FENCE_RELEASE();
    memcpy(h->magic, FH_SHM_MAGIC, 8);
    return 0;
}

void fh_shm_lane_view(const fh_shm_t *first, uint32_t lane, fh_shm_t *out)
{
    *out = *first;
    const fh_shm_header_t *h = first->hdr;
    out->lane = lane;
    out->owner = 0;
    out->ring = (fh_shm_event_t *)(first->base + h->ring_offset) + (size_t)lane * h->ring_capacity;
    out->ring_head = &first->hdr->ring_head[lane].head;
    out->head = 0;
    out->counters = first->base + h->counters_offset + (size_t)lane * h->counters_stride;
}

void fh_shm_close(fh_shm_t *s)
{
    if (s->base && s->owner) munmap(s->base, s->size);
    memset(s, 0, sizeof *s);
}

void fh_shm_publish_counters(fh_shm_t *s, const fh_stats_t *st, uint64_t now_ns)
{
    uint64_t *seq = (uint64_t *)s->counters;
    FH_STORE_RELAXED(seq, *seq + 1);
    FH_FENCE_RELEASE();
    memcpy((uint8_t *)seq + FH_COUNTERS_SEQ_PAD, st, sizeof *st);
    FH_STORE_RELEASE(seq, *seq + 1);
    FH_STORE_RELAXED(&s->hdr->counters_updated_ns, now_ns);
}

/* ------------------------------------------------------------------ reader */

int fh_shm_check(const uint8_t *base, uint64_t size, char *err, size_t errlen)
{
    if (size < sizeof(fh_shm_header_t)) { fh_errf(err, errlen, "segment too small (%llu bytes) to be a feedhandler segment", (unsigned long long)size); return -1; }
    const fh_shm_header_t *h = (const fh_shm_header_t *)base;
    if (memcmp(h->magic, FH_SHM_MAGIC, 8) != 0) { fh_errf(err, errlen, "not a feedhandler segment (bad magic), or still being created"); return -1; }
    if (h->layout_version != FH_SHM_LAYOUT_VERSION) {
        fh_errf(err, errlen, "segment layout version %u, this reader understands %d: use the feedhandler that wrote it",
                h->layout_version, FH_SHM_LAYOUT_VERSION);
        return -1;
    }
    if (h->header_size != FH_SHM_HEADER_SIZE || h->event_size != FH_SHM_EVENT_SIZE || h->depth < 1 ||
        h->depth > FH_SHM_MAX_DEPTH || h->slot_size != fh_shm_slot_size(h->depth) ||
        h->ring_capacity < 2 || (h->ring_capacity & (h->ring_capacity - 1)) ||
        h->n_lanes < 1 || h->n_lanes > FH_SHM_MAX_LANES || h->counters_stride != counters_size() ||
        h->total_size != fh_shm_total_size(h->n_slots, h->depth, h->ring_capacity, h->n_lanes) ||
        h->counters_offset != FH_SHM_HEADER_SIZE ||
        h->slots_offset != h->counters_offset + h->n_lanes * counters_size() ||
        h->ring_offset != h->slots_offset + (uint64_t)h->n_slots * h->slot_size ||
        h->cbbo_offset != h->ring_offset + (uint64_t)h->n_lanes * h->ring_capacity * FH_SHM_EVENT_SIZE) {
        fh_errf(err, errlen, "segment header is inconsistent (corrupt or a different build)");
        return -1;
    }
    if (h->total_size > size) {
        fh_errf(err, errlen, "segment is %llu bytes but its header says %llu", (unsigned long long)size, (unsigned long long)h->total_size);
        return -1;
    }
    return 0;
}

/* The reader's side of the sequence lock.  A writer that keeps the sequence
 * odd and unchanged for a second has died inside an update: -1 (a live writer
 * can be descheduled mid-update for milliseconds, so this is measured in time,
 * checked every 1024 spins; after max_spins spins the reader also yields its
 * CPU, in case the writer is waiting for it).  One that keeps changing it is
 * alive: retry, up to 64 x max_spins copies, so a reader never hangs (-3). */
static int read_seqlocked(const uint64_t *seqp, const uint8_t *src, uint8_t *dst, size_t n, uint32_t max_spins)
{
    uint64_t last = FH_LOAD_RELAXED(seqp), stuck_since = 0, busy_since = 0;
    uint32_t spins = 0;
    for (uint64_t tries = 0; tries < (uint64_t)max_spins * 64;) {
        const uint64_t s1 = FH_LOAD_ACQUIRE(seqp);
        if (s1 & 1) {
            if (s1 != last) { last = s1; spins = 0; stuck_since = 0; }
            if (++spins % 1024 == 0) {
                const uint64_t now = fh_clock_ns(CLOCK_MONOTONIC);
                if (!stuck_since) stuck_since = now;
                else if (now - stuck_since > 1000000000ull) return -1;
                /* A live writer updating non-stop: bounded too, in time. */
                if (!busy_since) busy_since = now;
                else if (now - busy_since > 5000000000ull) return -3;
                if (spins > max_spins) sched_yield();
            }
            FH_CPU_RELAX();
            continue;
        }
        memcpy(dst, src, n);
        FH_FENCE_ACQUIRE();
        if (FH_LOAD_RELAXED(seqp) == s1) return 0;
        tries++;                                 /* torn: the writer moved while we copied */
        spins = 0;
        stuck_since = 0;
    }
    return -3;
}

int fh_shm_read_slot(const uint8_t *base, uint32_t locate, uint8_t *out, uint32_t max_spins)
{
    const fh_shm_header_t *h = (const fh_shm_header_t *)base;
    if (locate >= h->n_slots) return -2;
    const uint8_t *sl = base + h->slots_offset + (size_t)locate * h->slot_size;
    return read_seqlocked((const uint64_t *)sl, sl, out, h->slot_size, max_spins);
}

uint32_t fh_shm_read_slots(const uint8_t *base, uint32_t first, uint32_t n, uint8_t *out, uint32_t max_spins)
{
    const fh_shm_header_t *h = (const fh_shm_header_t *)base;
    uint32_t i = 0;
    for (; i < n && first + i < h->n_slots; i++)
        if (fh_shm_read_slot(base, first + i, out + (size_t)i * h->slot_size, max_spins) != 0) break;
    return i;
}

int fh_shm_read_counters(const uint8_t *base, uint32_t lane, fh_stats_t *out, uint32_t max_spins)
{
    const fh_shm_header_t *h = (const fh_shm_header_t *)base;
    if (lane >= h->n_lanes) return -2;
    const uint8_t *c = base + h->counters_offset + (size_t)lane * h->counters_stride;
    return read_seqlocked((const uint64_t *)c, c + FH_COUNTERS_SEQ_PAD, (uint8_t *)out, sizeof *out, max_spins);
}

static inline int64_t sat64(uint64_t v) { return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v; }

static void widen_event(fh_read_event_t *o, const fh_shm_event_t *e)
{
    memcpy(o, e, 32);                                /* seq and the three timestamps: the same */
    o->price1 = e->price1;
    o->price2 = e->price2;
    o->qty1 = sat64(e->qty1);
    o->qty2 = sat64(e->qty2);
    memcpy(&o->locate, &e->locate, 4);               /* locate, type, aux: the same */
    o->lane = e->lane;
}

/* One lane's events from *cursor on, into raw (wide 0) or widened (wide 1) records. */
FH_INLINE uint32_t poll_events(const uint8_t *base, uint32_t lane, uint64_t *cursor, void *out,
                                   uint32_t max, uint64_t *lapped, const int wide)
{
    const fh_shm_header_t *h = (const fh_shm_header_t *)base;
    if (lapped) *lapped = 0;
    if (lane >= h->n_lanes) return 0;
    const fh_shm_event_t *ring = (const fh_shm_event_t *)(base + h->ring_offset) + (size_t)lane * h->ring_capacity;
    const uint64_t *headp = &h->ring_head[lane].head;
    const uint64_t cap = h->ring_capacity, mask = cap - 1;
    uint64_t c = *cursor, lost = 0, head = FH_LOAD_ACQUIRE(headp);
    uint32_t k = 0;
    while (k < max) {
        if (c >= head) break;
        if (head - c > cap) {                        /* already overwritten */
            lost += head - cap - c;
            c = head - cap;
        }
        const fh_shm_event_t *e = &ring[c & mask];
        const uint64_t s1 = FH_LOAD_ACQUIRE(&e->seq);
        /* Straight into the output (a torn copy is overwritten by the next). */
        if (wide) widen_event((fh_read_event_t *)out + k, e);
        else memcpy((fh_shm_event_t *)out + k, e, sizeof *e);
        FH_FENCE_ACQUIRE();
        const uint64_t s2 = FH_LOAD_RELAXED(&e->seq);
        if (FH_UNLIKELY(s1 != c + 1 || s2 != s1)) {
            /* The writer is overwriting this entry: skip ahead of it, with one
             * event of margin, and count what was lost. */
            head = FH_LOAD_ACQUIRE(headp);
            const uint64_t next = head >= cap ? head - cap + 1 : c + 1;
            lost += next > c ? next - c : 1;
            c = next > c ? next : c + 1;
            continue;
        }
        k++;
        c++;
        if (c == head) head = FH_LOAD_ACQUIRE(headp);
    }
    *cursor = c;
    if (lapped) *lapped = lost;
    return k;
}

uint32_t fh_shm_poll_events(const uint8_t *base, uint32_t lane, uint64_t *cursor, fh_shm_event_t *out, uint32_t max,
                            uint64_t *lapped)
{
    return poll_events(base, lane, cursor, out, max, lapped, 0);
}

uint32_t fh_shm_read_events(const uint8_t *base, uint32_t lane, uint64_t *cursor, fh_read_event_t *out, uint32_t max,
                            uint64_t *lapped)
{
    return poll_events(base, lane, cursor, out, max, lapped, 1);
}

uint32_t fh_read_slot_size(uint32_t depth)
{
    const uint32_t raw = (uint32_t)sizeof(fh_read_slot_t) + depth * 6u * 8u;
    return (raw + 63u) & ~63u;
}

/* Widen one consistent slot copy (`s`, depth levels) into a reader record. */
static void widen_slot(uint8_t *out, const fh_shm_slot_t *s, uint32_t depth)
{
    fh_read_slot_t *o = (fh_read_slot_t *)out;
    memset(o, 0, sizeof *o);
    o->seq = s->seq;
    o->exch_ts = s->exch_ts;
    o->rx_ts = s->rx_ts;
    o->publish_ts = s->publish_ts;
    o->updates = sat64(s->updates);
    o->last_trade_shares = sat64(s->last_trade_shares);
    o->last_trade_match = s->last_trade_match;
    o->last_trade_ts = s->last_trade_ts;
    o->noii_paired_shares = sat64(s->noii_paired_shares);
    o->noii_imbalance_shares = sat64(s->noii_imbalance_shares);
    o->last_trade_price = s->last_trade_price;
    o->round_lot_size = s->round_lot_size;
    o->n_bid = s->n_bid;
    o->n_ask = s->n_ask;
    o->luld_reference_price = s->luld_reference_price;
    o->luld_upper_price = s->luld_upper_price;
    o->luld_lower_price = s->luld_lower_price;
    o->noii_near_price = s->noii_near_price;
    o->noii_far_price = s->noii_far_price;
    o->noii_reference_price = s->noii_reference_price;
    o->locate = s->locate;
    memcpy(o->symbol, s->symbol, sizeof o->symbol);
    o->trading_state = s->trading_state;
    o->reg_sho_action = s->reg_sho_action;
    o->market_category = s->market_category;
    o->noii_imbalance_direction = s->noii_imbalance_direction;
    o->flags = s->flags;
    o->venue = s->venue;
    const uint8_t *in = (const uint8_t *)(s + 1);
    int64_t *dst = (int64_t *)(o + 1);
    for (int side = 0; side < 2; side++) {
        const uint8_t *px = in, *od = in + 4u * depth, *sh = in + 8u * depth;
        for (uint32_t i = 0; i < depth; i++) {
            uint32_t p, n;
            uint64_t q;
            memcpy(&p, px + 4u * i, 4);
            memcpy(&n, od + 4u * i, 4);
            memcpy(&q, sh + 8u * i, 8);
            dst[i] = p;
            dst[depth + i] = n;
            dst[2u * depth + i] = sat64(q);
        }
        in += 16u * depth;
        dst += 3u * depth;
    }
    memset(dst, 0, fh_read_slot_size(depth) - (sizeof *o + 48u * depth));   /* the record's tail padding */
}

int fh_shm_read_book(const uint8_t *base, uint32_t locate, uint8_t *out, uint32_t max_spins)
{
    const fh_shm_header_t *h = (const fh_shm_header_t *)base;
    if (locate >= h->n_slots) return -2;
    _Alignas(64) uint8_t copy[FH_SHM_SLOT_FIXED + FH_SHM_MAX_DEPTH * 32 + 64];
    if (h->slot_size > sizeof copy) return -2;       /* fh_shm_check refuses such a segment */
    const uint8_t *sl = base + h->slots_offset + (size_t)locate * h->slot_size;
    const int rc = read_seqlocked((const uint64_t *)sl, sl, copy, h->slot_size, max_spins);
    if (rc == 0) widen_slot(out, (const fh_shm_slot_t *)copy, h->depth);
    return rc;
}

uint32_t fh_shm_read_books(const uint8_t *base, uint32_t first, uint32_t n, uint8_t *out, uint32_t max_spins)
{
    const fh_shm_header_t *h = (const fh_shm_header_t *)base;
    const size_t rec = fh_read_slot_size(h->depth);
    uint32_t i = 0;
    for (; i < n && first + i < h->n_slots; i++)
        if (fh_shm_read_book(base, first + i, out + (size_t)i * rec, max_spins) != 0) break;
    return i;
}

uint64_t fh_shm_clock_ns(const uint8_t *base)
{
    const fh_shm_header_t *h = (const fh_shm_header_t *)base;
    const fh_tsc_t t = { .base_tsc = h->tsc_base, .base_ns = h->tsc_base_ns, .mult = h->tsc_mult, .hz = h->tsc_hz };
    return fh_tsc_ns(&t);
}

int fh_shm_read_cbbo(const uint8_t *base, const char *symbol, fh_cbbo_t *out, uint32_t max_spins)
{
    const fh_shm_header_t *h = (const fh_shm_header_t *)base;
    memset(out, 0, sizeof *out);
    out->bid_venue = out->ask_venue = -1;
    if (!FH_LOAD_ACQUIRE(&h->cbbo_on)) return 1;
    uint64_t sym;
    memcpy(&sym, symbol, 8);
    const fh_shm_cbbo_t *e = fh_shm_cbbo_find((fh_shm_cbbo_t *)(uintptr_t)(base + h->cbbo_offset), sym, 0);
    if (!e) return 1;
    for (uint32_t v = 0; v < FH_SHM_CBBO_VENUES; v++) {
        const fh_shm_cbbo_venue_t *cv = &e->v[v];
        fh_shm_cbbo_venue_t copy;
        uint32_t spins = 0;
        for (;;) {
            const uint64_t s0 = FH_LOAD_ACQUIRE(&cv->seq);
            if (!(s0 & 1)) {
                memcpy(&copy, cv, sizeof copy);
                FH_FENCE_ACQUIRE();
                if (FH_LOAD_RELAXED(&cv->seq) == s0) break;
            }
            if (++spins > max_spins) return -1;
            FH_CPU_RELAX();
        }
        if (!copy.seq) continue;
        out->venues |= 1u << v;
        out->v_bid_price[v] = copy.bid_price;
        out->v_ask_price[v] = copy.ask_price;
        out->v_bid_shares[v] = copy.bid_shares;
        out->v_ask_shares[v] = copy.ask_shares;
    }
    fh_cbbo_best(out);
    return 0;
}
