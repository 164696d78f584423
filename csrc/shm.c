/* shm.c -- segment creation and the reader side of the sequence lock and ring.
 * Creation is start-up work; the readers run in other processes, on a
 * read-only mapping, and never write anything. */
#define _GNU_SOURCE                 /* F_OFD_SETLK, F_OFD_GETLK, dup3 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/file.h>
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
    return FH_SHM_HEADER_SIZE + n_lanes * counters_size() + (uint64_t)n_slots * fh_shm_slot_size(depth) +
           n_lanes * ring_capacity * FH_SHM_EVENT_SIZE + (uint64_t)FH_SHM_CBBO_ENTRIES * sizeof(fh_shm_cbbo_t);
}

static int name_ok(const char *n)
{
    size_t i = 0;
    for (; n[i]; i++) {
        const char c = n[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
              c == '.'))
            return 0;
    }
    return i > 0 && i < 200 && n[0] != '.';
}

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

/* ------------------------------------------------------------ ownership
 *
 * A live writer holds an OFD write lock (fcntl F_OFD_SETLK) on its segment
 * from before it trusts a byte of it until fh_shm_close: that lock, not the
 * header, says the name is taken.  It belongs to the open file, so the kernel
 * drops it the moment the writer dies (killed, a zombie: its files are
 * closed before it waits to be reaped), whatever its pid does afterwards and
 * in whatever PID namespace a reader runs.  An OFD lock conflicts with every
 * other open of the file, also in the same process (two Replays with one
 * name), and with classic fcntl/lockf locks; closing some other descriptor of
 * the file (a reader in the writer's process) does not drop it, as it would a
 * classic one.  Readers test it without taking it (F_OFD_GETLK:
 * fh_shm_writer_locked), so a reader never stands in a writer's way.
 *
 * A forked child shares the open file -- through the descriptor and through
 * the mapping, which holds the file too -- and so would keep the lock after
 * its parent died.  An atfork handler gives the child its own open file:
 * the mapping is replaced, in place, by one of the same file reopened
 * through /proc/self/fd (same pages, so a child reading Replay.segment()
 * sees what it saw), and the descriptor is pointed at /dev/null. */

#define FH_SHM_LOCKS_TRACKED 64
static struct tracked_lock {
    int fd_plus1;              /* 0 free, -1 being filled, else the lock's descriptor + 1 */
    void *base;
    uint64_t size;
} tracked_locks[FH_SHM_LOCKS_TRACKED];
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* "/proc/self/fd/N" without snprintf (the child of a threaded process may
 * only call async-signal-safe functions). */
static void proc_fd_path(char *out, int fd)
{
    static const char pre[] = "/proc/self/fd/";
    char digits[16];
    int n = 0;
    do {
        digits[n++] = (char)('0' + fd % 10);
        fd /= 10;
    } while (fd && n < (int)sizeof digits);
    memcpy(out, pre, sizeof pre - 1);
    for (int i = 0; i < n; i++) out[sizeof pre - 1 + i] = digits[n - 1 - i];
    out[sizeof pre - 1 + n] = 0;
}

static void drop_locks_in_child(void)
{
    for (int i = 0; i < FH_SHM_LOCKS_TRACKED; i++) {
        struct tracked_lock *t = &tracked_locks[i];
        const int fd = __atomic_load_n(&t->fd_plus1, __ATOMIC_ACQUIRE) - 1;
        if (fd < 0) continue;
        char path[40];
        proc_fd_path(path, fd);
        const int again = open(path, O_RDWR | O_CLOEXEC);
        if (again < 0) continue;               /* no /proc: the child keeps the lock until it exits */
        mmap(t->base, t->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, again, 0);
        close(again);
        /* The descriptor number stays valid (now /dev/null), so that the
         * child's fh_shm_close, if it ever runs, closes nothing else. */
        const int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (nul >= 0 && nul != fd) {
            dup3(nul, fd, O_CLOEXEC);
            close(nul);
        }
    }
}

static void register_atfork(void) { pthread_atfork(NULL, NULL, drop_locks_in_child); }

static void track_lock(int fd, void *base, uint64_t size)
{
    pthread_once(&atfork_once, register_atfork);
    for (int i = 0; i < FH_SHM_LOCKS_TRACKED; i++) {
        struct tracked_lock *t = &tracked_locks[i];
        int expect = 0;
        if (!__atomic_compare_exchange_n(&t->fd_plus1, &expect, -1, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) continue;
        t->base = base;
        t->size = size;
        __atomic_store_n(&t->fd_plus1, fd + 1, __ATOMIC_RELEASE);
        return;
    }
}

static void untrack_lock(int fd)
{
    for (int i = 0; i < FH_SHM_LOCKS_TRACKED; i++) {
        int expect = fd + 1;
        if (__atomic_compare_exchange_n(&tracked_locks[i].fd_plus1, &expect, 0, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
            return;
    }
}

/* 0 taken, 1 another open file holds a conflicting lock, -1 error (errno). */
static int lock_take(int fd)
{
#ifdef F_OFD_SETLK
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    if (fcntl(fd, F_OFD_SETLK, &fl) == 0) return 0;
#else
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) return 0;
#endif
    return errno == EAGAIN || errno == EACCES || errno == EWOULDBLOCK ? 1 : -1;
}

/* 1 and the holder's pid in *pid (0 when an OFD lock: it has none), 0 free, -1 cannot tell. */
static int lock_probe(int fd, int64_t *pid)
{
    if (pid) *pid = 0;
#ifdef F_OFD_GETLK
    struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    if (fcntl(fd, F_OFD_GETLK, &fl) != 0) return -1;
    if (fl.l_type == F_UNLCK) return 0;
    if (pid && fl.l_pid > 0) *pid = fl.l_pid;
    return 1;
#else
    (void)fd;
    return -1;
#endif
}

int fh_shm_writer_locked(int fd) { return lock_probe(fd, NULL); }

static const char *file_kind(mode_t m)
{
    if (S_ISFIFO(m)) return "a FIFO (named pipe)";
    if (S_ISLNK(m)) return "a symbolic link";
    if (S_ISDIR(m)) return "a directory";
    if (S_ISSOCK(m)) return "a socket";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    return "not a regular file";
}

/* The first bytes of a foreign file, printable, for the refusal. */
static void describe_bytes(const uint8_t *b, size_t n, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 5 < outlen; i++) {
        if (b[i] >= 0x20 && b[i] < 0x7f && b[i] != '\\') out[o++] = (char)b[i];
        else o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", b[i]);
    }
    out[o] = 0;
}

/* Is `fd` still the file at `where` (not unlinked or replaced meanwhile)? */
static int still_named(int fd, const char *where)
{
    struct stat a, b;
    return fstat(fd, &a) == 0 && lstat(where, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino &&
           a.st_nlink > 0;
}

/* Someone holds the lock of `fd`, the file at `where`: say who, for the
 * refusal.  The owner writes its pid (with the creating magic) right after it
 * takes the lock, so a writer that lost a race by microseconds waits up to a
 * second for it; a locked file still carrying a finished or dead writer's
 * header is being replaced by whoever locked it (it will be unlinked, and the
 * refused writer looks again at what is at the name then).  Returns
 * 1 when the file left the name meanwhile (the caller tries again), else 0
 * with the message written.  The header only names the owner here; the lock
 * alone decided that there is one. */
static int refuse_in_use(int fd, const char *where, char *err, size_t errlen)
{
    fh_shm_header_t h;
    int64_t pid = 0, lock_pid = 0;
    int creating = 0;
    for (int i = 0; i < 1000; i++) {
        if (!still_named(fd, where)) return 1;
        if (lock_probe(fd, &lock_pid) == 0) return 1;            /* let go meanwhile: try again */
        if (lock_pid > 0) {
            pid = lock_pid;
            break;
        }            /* a classic lock says who */
        if (pread(fd, &h, sizeof h, 0) == (ssize_t)sizeof h) {
            if (memcmp(h.magic, FH_SHM_MAGIC_CREATING, 8) == 0 && h.writer_pid > 0) {
                pid = h.writer_pid;
                creating = 1;
                break;
            }
            /* A finished segment's writer may well live on (a process that
             * closed its replay): only a running one's header names the owner. */
            if (memcmp(h.magic, FH_SHM_MAGIC, 8) == 0 && (h.state == FH_SHM_STARTING || h.state == FH_SHM_RUNNING) &&
                writer_alive(h.writer_pid, h.writer_start) != 0) {
                pid = h.writer_pid;
                break;
            }
        }
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    char who[48] = "";
    if (pid > 0) snprintf(who, sizeof who, " (pid %lld)", (long long)pid);
    fh_errf(err, errlen,
            "%s is in use by a running writer%s%s: it holds the segment's lock; stop it or pick "
            "another --shm name",
            where, who, creating ? ", still creating it" : "");
    return 0;
}

/* Open /dev/shm/NAME for a new writer and make it ours, race-free against
 * other writers: returns the descriptor, locked, of an empty regular file of
 * this user that is the one at the name; -1 with a message naming what is
 * there otherwise.  See fh_shm_create (shm.h) for what is refused. */
/* An object at the name that is not a regular file of this user: the
 * refusal, naming it (1), or 0 when it is one. */
static int refuse_object(const struct stat *sb, uid_t me, const char *where, char *err, size_t errlen)
{
    if (!S_ISREG(sb->st_mode))
        fh_errf(err, errlen,
                "%s is %s, not a feedhandler segment: refusing to use or remove it "
                "(remove it yourself, or pick another --shm name)",
                where, file_kind(sb->st_mode));
    else if (sb->st_uid != me)
        fh_errf(err, errlen,
                "%s is owned by uid %u, not by this user (uid %u): refusing to use or replace it "
                "(pick another --shm name)",
                where, (unsigned)sb->st_uid, (unsigned)me);
    else return 0;
    return 1;
}

static int claim_segment(const char *where, uint32_t mode, char *err, size_t errlen)
{
    const uid_t me = geteuid();
    for (int attempt = 0; attempt < 8; attempt++) {
        /* O_NONBLOCK: a FIFO (or device) at the name must not hang the open. */
        const int fd = open(where, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, (mode_t)mode);
        struct stat sb;
        if (fd < 0) {
            /* A symbolic link (O_NOFOLLOW), a directory, another user's file. */
            const int e = errno;
            if (lstat(where, &sb) != 0 || !refuse_object(&sb, me, where, err, errlen))
                fh_errf(err, errlen, "%s cannot be opened or created: %s", where, strerror(e));
            return -1;
        }
        if (fstat(fd, &sb) != 0) {
            fh_errf(err, errlen, "%s cannot be examined: %s", where, strerror(errno));
            close(fd);
            return -1;
        }
        if (refuse_object(&sb, me, where, err, errlen)) {
            close(fd);
            return -1;
        }
        const int lk = lock_take(fd);
        if (lk > 0 && refuse_in_use(fd, where, err, errlen) == 1) {
            close(fd);
            continue;
        }
        if (lk != 0) {
            if (lk < 0) fh_errf(err, errlen, "%s cannot be locked: %s", where, strerror(errno));
            close(fd);
            return -1;
        }
        /* Locked: no other writer decides anything about this file now.  It
         * may have been unlinked (and the name reused) between the open and
         * the lock, by a writer that held the lock then: start over, or we
         * would publish into a file no reader can find. */
        if (!still_named(fd, where)) {
            close(fd);
            continue;
        }
        if (fstat(fd, &sb) != 0) {
            fh_errf(err, errlen, "%s cannot be examined: %s", where, strerror(errno));
            close(fd);
            return -1;
        }
        uint8_t head[16] = {0};
        const ssize_t got = sb.st_size > 0 ? pread(fd, head, sizeof head, 0) : 0;
        if (sb.st_size == 0 || (got >= 8 && memcmp(head, FH_SHM_MAGIC_CREATING, 8) == 0)) {
            /* New and empty, or ours left half-made by a writer that died
             * creating it (nobody holds its lock): made here, in place. */
            if (sb.st_size != 0 && ftruncate(fd, 0) != 0) {
                fh_errf(err, errlen, "%s cannot be emptied: %s", where, strerror(errno));
                close(fd);
                return -1;
            }
            fchmod(fd, (mode_t)mode);          /* not narrowed by the umask */
            return fd;
        }
        if (got >= 8 && memcmp(head, FH_SHM_MAGIC, 8) == 0) {
            /* A segment of ours whose writer finished or died (its lock was
             * free).  Unlinked, not overwritten: readers still mapping it keep
             * a consistent, frozen segment instead of one changing under
             * them.  Only ever unlinked while we hold its lock and it is the
             * file at the name (checked above). */
            if (unlink(where) != 0 && errno != ENOENT) {
                fh_errf(err, errlen, "%s (a finished or dead writer's segment) cannot be removed: %s", where,
                        strerror(errno));
                close(fd);
                return -1;
            }
            close(fd);
            continue;
        }
        char shown[80];
        describe_bytes(head, got > 0 ? (size_t)got : 0, shown, sizeof shown);
        fh_errf(err, errlen,
                "%s is not a feedhandler segment (%llu bytes, starting \"%s\"): refusing to use or "
                "remove it (remove it yourself, or pick another --shm name)",
                where, (unsigned long long)sb.st_size, shown);
        close(fd);
        return -1;
    }
    fh_errf(err, errlen, "%s cannot be created: it keeps being replaced by other processes", where);
    return -1;
}

/* A half-made segment of ours: removed (we hold its lock, it is the file at the name). */
static void abandon(int fd, const char *where)
{
    if (still_named(fd, where)) unlink(where);
    close(fd);
}

int fh_shm_create(fh_shm_t *s, const char *name, uint32_t mode, uint32_t n_slots, uint32_t depth,
                  uint64_t ring_capacity, uint32_t n_lanes, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    if (n_lanes < 1 || n_lanes > FH_SHM_MAX_LANES) {
        fh_errf(err, errlen, "%u lanes: 1..%d", n_lanes, FH_SHM_MAX_LANES);
        return -1;
    }
    if (depth < 1 || depth > FH_SHM_MAX_DEPTH) {
        fh_errf(err, errlen, "depth %u out of range 1..%d", depth, FH_SHM_MAX_DEPTH);
        return -1;
    }
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
        char where[sizeof s->name + 16];
        snprintf(s->name, sizeof s->name, "/%s", name);
        snprintf(where, sizeof where, "/dev/shm%s", s->name);
        const int fd = claim_segment(where, mode ? mode : 0600, err, errlen);
        if (fd < 0) return -1;
        /* Ours and empty.  The creating magic and our pid first, before the
         * file grows: should we die from here on, what we leave is known for
         * ours (not foreign bytes), and while we live a writer that finds the
         * name taken can say by whom. */
        {
            fh_shm_header_t h0;
            memset(&h0, 0, sizeof h0);
            memcpy(h0.magic, FH_SHM_MAGIC_CREATING, 8);
            h0.writer_pid = getpid();
            h0.writer_start = self_start();
            h0.created_ns = fh_clock_ns(CLOCK_REALTIME);
            if (pwrite(fd, &h0, sizeof h0, 0) != (ssize_t)sizeof h0) {
                fh_errf(err, errlen, "cannot write %s: %s", where, strerror(errno));
                abandon(fd, where);
                return -1;
            }
        }
        if (ftruncate(fd, (off_t)size) != 0) {
            fh_errf(err, errlen, "cannot size %s to %llu bytes: %s", where, (unsigned long long)size, strerror(errno));
            abandon(fd, where);
            return -1;
        }
        /* Reserve the pages now: a full /dev/shm is an error here, not a
         * SIGBUS on the hot path when a page is first written. */
        const int fa = posix_fallocate(fd, 0, (off_t)size);
        if (fa != 0 && fa != EOPNOTSUPP && fa != EINVAL) {
            fh_errf(err, errlen, "cannot reserve %llu bytes in /dev/shm for %s: %s", (unsigned long long)size, s->name,
                    strerror(fa));
            abandon(fd, where);
            return -1;
        }
        mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (mem == MAP_FAILED) {
            fh_errf(err, errlen, "cannot map %s (%llu bytes): %s", where, (unsigned long long)size, strerror(errno));
            abandon(fd, where);
            return -1;
        }
        /* Every page written once at start-up: the first write to a page
         * of a fresh tmpfs file costs a fault (~100 us seen at p99.9 of the
         * publish stage) that must not happen on a packet.  The header page
         * is faulted in by the header's writes below; prefaulting it would
         * zero the creating magic's first byte. */
        fh_prefault((uint8_t *)mem + FH_SHM_HEADER_SIZE, size - FH_SHM_HEADER_SIZE);
        /* The descriptor stays open, locked, until fh_shm_close: the name is
         * ours for as long as we live. */
        s->lock_fd = fd;
        track_lock(fd, mem, size);
        s->named = 1;
    } else {
        mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (mem == MAP_FAILED) {
            fh_errf(err, errlen, "cannot allocate %llu bytes of book memory: %s", (unsigned long long)size,
                    strerror(errno));
            return -1;
        }
#ifdef MADV_HUGEPAGE
        madvise(mem, size, MADV_HUGEPAGE);
#endif
        memset(mem, 0, size);
        s->lock_fd = -1;
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
    const int locked = s->base && s->owner && s->named && s->lock_fd >= 0;
    if (locked) untrack_lock(s->lock_fd);      /* before the unmap: a fork must not remap a freed range */
    if (s->base && s->owner) munmap(s->base, s->size);
    /* Last: the name is free once the segment says finished (or stopped). */
    if (locked) close(s->lock_fd);
    memset(s, 0, sizeof *s);
    s->lock_fd = -1;
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
    if (size < sizeof(fh_shm_header_t)) {
        fh_errf(err, errlen, "segment too small (%llu bytes) to be a feedhandler segment", (unsigned long long)size);
        return -1;
    }
    const fh_shm_header_t *h = (const fh_shm_header_t *)base;
    if (memcmp(h->magic, FH_SHM_MAGIC_CREATING, 8) == 0) {
        fh_errf(err, errlen, "segment still being created (writer pid %lld)", (long long)h->writer_pid);
        return -1;
    }
    if (memcmp(h->magic, FH_SHM_MAGIC, 8) != 0) {
        fh_errf(err, errlen, "not a feedhandler segment (bad magic)");
        return -1;
    }
    if (h->layout_version != FH_SHM_LAYOUT_VERSION) {
        fh_errf(err, errlen, "segment layout version %u, this reader understands %d: use the feedhandler that wrote it",
                h->layout_version, FH_SHM_LAYOUT_VERSION);
        return -1;
    }
    if (h->header_size != FH_SHM_HEADER_SIZE || h->event_size != FH_SHM_EVENT_SIZE || h->depth < 1 ||
        h->depth > FH_SHM_MAX_DEPTH || h->slot_size != fh_shm_slot_size(h->depth) || h->ring_capacity < 2 ||
        (h->ring_capacity & (h->ring_capacity - 1)) || h->n_lanes < 1 || h->n_lanes > FH_SHM_MAX_LANES ||
        h->counters_stride != counters_size() ||
        h->total_size != fh_shm_total_size(h->n_slots, h->depth, h->ring_capacity, h->n_lanes) ||
        h->counters_offset != FH_SHM_HEADER_SIZE ||
        h->slots_offset != h->counters_offset + h->n_lanes * counters_size() ||
        h->ring_offset != h->slots_offset + (uint64_t)h->n_slots * h->slot_size ||
        h->cbbo_offset != h->ring_offset + (uint64_t)h->n_lanes * h->ring_capacity * FH_SHM_EVENT_SIZE) {
        fh_errf(err, errlen, "segment header is inconsistent (corrupt or a different build)");
        return -1;
    }
    if (h->total_size > size) {
        fh_errf(err, errlen, "segment is %llu bytes but its header says %llu", (unsigned long long)size,
                (unsigned long long)h->total_size);
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
            if (s1 != last) {
                last = s1;
                spins = 0;
                stuck_since = 0;
            }
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
FH_INLINE uint32_t poll_events(const uint8_t *base, uint32_t lane, uint64_t *cursor, void *out, uint32_t max,
                               uint64_t *lapped, const int wide)
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
    const fh_tsc_t t = {.base_tsc = h->tsc_base, .base_ns = h->tsc_base_ns, .mult = h->tsc_mult, .hz = h->tsc_hz};
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
