/* fh_common.h -- internal helpers shared by every C module (never seen by CFFI).
 *
 * Big-endian reads go through memcpy + bswap: no unaligned loads, no aliasing UB,
 * and the compiler turns each into one load + bswap (movbe where available). */
#ifndef FH_COMMON_H
#define FH_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <stdio.h>
#include <stdarg.h>
#include <unistd.h>

#include "fh_api.h"

#define FH_LIKELY(x) __builtin_expect(!!(x), 1)
#define FH_UNLIKELY(x) __builtin_expect(!!(x), 0)
/* Forced inlining makes the per-frame path one function (pipeline.h).  The
 * libFuzzer build (FH_FUZZ_BUILD, scripts/fuzz.sh) lets the compiler choose:
 * the same code, and its sanitized, instrumented compile of every source's
 * walk loops stays minutes shorter. */
#ifdef FH_FUZZ_BUILD
#define FH_INLINE static inline
#else
#define FH_INLINE static inline __attribute__((always_inline))
#endif
#define FH_CACHELINE 64

/* Spin-wait hint for retry loops (readers only; the hot path never waits). */
#if defined(__x86_64__) || defined(__i386__)
#define FH_CPU_RELAX() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define FH_CPU_RELAX() __asm__ volatile("yield")
#else
#define FH_CPU_RELAX() ((void)0)
#endif

FH_INLINE uint16_t fh_be16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return __builtin_bswap16(v);
}
FH_INLINE uint32_t fh_be32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return __builtin_bswap32(v);
}
FH_INLINE uint64_t fh_be64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return __builtin_bswap64(v);
}
/* ITCH timestamps are 6 bytes: read exactly 6, never 8. */
FH_INLINE uint64_t fh_be48(const uint8_t *p)
{
    uint16_t hi;
    uint32_t lo;
    memcpy(&hi, p, 2);
    memcpy(&lo, p + 2, 4);
    return ((uint64_t)__builtin_bswap16(hi) << 32) | __builtin_bswap32(lo);
}
FH_INLINE uint16_t fh_le16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}
FH_INLINE uint32_t fh_le32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
FH_INLINE uint64_t fh_le64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

FH_INLINE void fh_put_be16(uint8_t *p, uint16_t v)
{
    v = __builtin_bswap16(v);
    memcpy(p, &v, 2);
}
FH_INLINE void fh_put_be32(uint8_t *p, uint32_t v)
{
    v = __builtin_bswap32(v);
    memcpy(p, &v, 4);
}
FH_INLINE void fh_put_be64(uint8_t *p, uint64_t v)
{
    v = __builtin_bswap64(v);
    memcpy(p, &v, 8);
}
FH_INLINE void fh_put_be48(uint8_t *p, uint64_t v)
{
    fh_put_be16(p, (uint16_t)(v >> 32));
    fh_put_be32(p + 2, (uint32_t)v);
}

/* Cold path only: format an error message into a caller's buffer. */
__attribute__((format(printf, 3, 4))) static inline void fh_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Write every page of a start-up allocation, so the hot path never takes the
 * page fault of a first touch (calloc'ed memory is often untouched zero pages;
 * a volatile store per page cannot be optimised away). */
static inline void fh_prefault(void *p, size_t n)
{
    volatile uint8_t *v = p;
    for (size_t i = 0; i < n; i += 4096) v[i] = 0;
    if (n) v[n - 1] = 0;
}

/* Start-up only: will `reserve` bytes of address space backed on demand, of
 * which `touch` are written now, fit this machine?  Capacities come from the
 * command line and config: one too large must be a clear error here, not an
 * OOM kill (or minutes of swapping) while the memory is faulted in.  Memory
 * free now is MemAvailable (page cache counts as free: it is given back). */
static inline int fh_mem_check(uint64_t reserve, uint64_t touch, const char *what, char *err, size_t errlen)
{
    const long pg = sysconf(_SC_PAGESIZE), phys = sysconf(_SC_PHYS_PAGES);
    if (pg <= 0 || phys <= 0) return 0;                /* unknown: the allocation decides */
    const uint64_t total = (uint64_t)phys * (uint64_t)pg;
    uint64_t avail = 0;
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        char line[128];
        unsigned long long kb;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
                avail = (uint64_t)kb * 1024u;
                break;
            }
        fclose(f);
    }
    if (!avail) {
        const long av = sysconf(_SC_AVPHYS_PAGES);
        avail = av > 0 ? (uint64_t)av * (uint64_t)pg : total;
    }
    const double gib = 1024.0 * 1024.0 * 1024.0;
    if (reserve > total) {
        fh_errf(err, errlen,
                "%s would need %.2f GiB of memory, more than this machine has (%.2f GiB): "
                "reduce the capacities",
                what, (double)reserve / gib, (double)total / gib);
        return -1;
    }
    /* Leave the rest of the system some room: a tenth of what is free, at most 1 GiB. */
    const uint64_t room = avail / 10 < (1ull << 30) ? avail / 10 : (1ull << 30);
    if (touch > avail - room) {
        fh_errf(err, errlen,
                "%s must fault in %.2f GiB at start-up, more than the %.2f GiB available now: "
                "reduce the capacities",
                what, (double)touch / gib, (double)avail / gib);
        return -1;
    }
    return 0;
}

#endif
