/* model.c -- what the day is made of, apart from the order flow's messages.
 *
 *   instruments   distinct tickers (famous names first, then random ones;
 *                 PITCH adds preferred shares), sorted so that locates follow
 *                 the alphabet; starting prices; activity ranks weighted
 *                 Zipf-like, drawn through Vose's alias table
 *   schedule      everything that is not order flow (system events, stock
 *                 directory, trading actions, Reg SHO, market makers, MWCB,
 *                 IPO, LULD pauses, halts, RPII, NOII imbalances, crosses, a
 *                 broken trade), built up front and sorted by time
 *   intraday rate a per-second intensity (U-shaped session, thin pre-market
 *                 and after-hours) and its CDF, which the run loop inverts to
 *                 place bursts of order flow
 *   flat rate     fh_gen_rate_map: the normal day's times in a compressed one
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

const fh_gen_famous_t fh_gen_famous[] = {
    {"AAPL", 2345600, 0, 0, 0},  {"NVDA", 1382500, 0, 0, 0}, {"TSLA", 3421700, 0, 0, 0}, {"MSFT", 4187300, 0, 0, 0},
    {"AMZN", 2014500, 0, 0, 0},  {"QQQ", 5073200, 1, 1, 0},  {"META", 5789000, 0, 0, 0}, {"AMD", 1419300, 0, 0, 0},
    {"GOOGL", 1712400, 0, 0, 0}, {"TQQQ", 781500, 1, 3, 0},  {"SQQQ", 74200, 1, 3, 1},   {"AVGO", 1689000, 0, 0, 0},
    {"INTC", 219800, 0, 0, 0},   {"NFLX", 7055000, 0, 0, 0}, {"COST", 8912300, 0, 0, 0}, {"PLTR", 412500, 0, 0, 0},
    {"CSCO", 572100, 0, 0, 0},   {"PEP", 1654000, 0, 0, 0},  {"SIRI", 23100, 0, 0, 0},   {"MARA", 188400, 0, 0, 0},
    {"SOFI", 124300, 0, 0, 0},   {"ADBE", 5121000, 0, 0, 0}, {"SNDL", 19700, 0, 0, 0},   {"MULN", 4300, 0, 0, 0},
};

const char fh_gen_mpids[][5] = {
    "GSCO", "MSCO", "JPMS", "CDRG", "VIRT", "UBSS", "CITD", "NITE",
    "SUSQ", "JANE", "HRTF", "TMBR", "BOFA", "DBAB", "BARD", "XTXM",
};
_Static_assert(sizeof fh_gen_famous / sizeof fh_gen_famous[0] == FH_GEN_NFAMOUS, "update FH_GEN_NFAMOUS (model.h)");
_Static_assert(sizeof fh_gen_mpids / sizeof fh_gen_mpids[0] == FH_GEN_NMPID, "update FH_GEN_NMPID (model.h)");

/* ------------------------------------------------------------ instruments */

static int fh_gen_cmp_stock(const void *a, const void *b)
{
    return memcmp(((const fh_gen_sym_t *)a)->stock, ((const fh_gen_sym_t *)b)->stock, 8);
}

double fh_gen_sqrt(double x)
{
    if (!(x > 0)) return 0;
    double r = x > 1 ? x : 1;
    for (int i = 0; i < 64; i++) {
        double n = 0.5 * (r + x / r);
        if (n >= r) break;
        r = n;
    }
    return r;
}

/* Distinct tickers (famous first, then 1-5 random letters), sorted so that
 * locates follow the alphabet as NASDAQ assigns them; Zipf weights by rank. */
int fh_gen_symbols(fh_gen_t *g)
{
    uint32_t n = g->nsym;
    fh_gen_sym_t *s = aligned_alloc(64, ((size_t)n + 1) * sizeof *s);   /* a multiple of 64 */
    if (s) memset(s, 0, ((size_t)n + 1) * sizeof *s);
    uint32_t hcap = 1;
    while (hcap < 2 * n + 64) hcap <<= 1;
    uint64_t *hash = calloc(hcap, sizeof *hash);      /* 0 = empty slot */
    double *ptab = malloc(1200 * sizeof *ptab);
    if (!s || !hash || !ptab) {
        free(s);
        free(hash);
        free(ptab);
        return -1;
    }
    g->sym = s;

    /* Starting prices: log-spaced $0.20 .. ~$1000, picked triangular (median ~$14). */
    double p = 2000.0;
    for (int k = 0; k < 1200; k++) {
        ptab[k] = p;
        p *= 1.00712;
    }

    fh_gen_sym_t *v = s + 1;           /* fill v[0..n-1], sort, locate = index + 1 */
    uint32_t i = 0;
    while (i < n) {
        char name[8];
        memset(name, ' ', 8);
        uint32_t price;
        uint8_t famous = 0;
        if (i < FH_GEN_NFAMOUS) {
            memcpy(name, fh_gen_famous[i].name, strlen(fh_gen_famous[i].name));
            price = fh_gen_famous[i].price;
            famous = (uint8_t)(i + 1);
        } else {
            uint32_t r = fh_gen_below(&g->rng_sched, 100);
            uint32_t len = r < 2 ? 1 : r < 10 ? 2 : r < 40 ? 3 : r < 95 ? 4 : 5;
            for (uint32_t k = 0; k < len; k++) name[k] = (char)('A' + fh_gen_below(&g->rng_sched, 26));
            if (g->pitch && (i - FH_GEN_NFAMOUS) % FH_GEN_PITCH_LONG_SYM_EVERY == 5) {
                /* PITCH: a preferred share, "ABC.PRA" / "ABCD.PRB" (7-8 characters) */
                uint32_t root = 3 + fh_gen_below(&g->rng_sched, 2);
                memset(name, ' ', 8);
                for (uint32_t k = 0; k < root; k++) name[k] = (char)('A' + fh_gen_below(&g->rng_sched, 26));
                memcpy(name + root, ".PR", 3);
                name[root + 3] = (char)('A' + fh_gen_below(&g->rng_sched, 26));
            }
            uint32_t k = (fh_gen_below(&g->rng_sched, 600) + fh_gen_below(&g->rng_sched, 600));
            double d = ptab[k];
            price = d >= 10000.0 ? (uint32_t)(d / 100.0) * 100u : (uint32_t)d;
        }
        uint64_t key;
        memcpy(&key, name, 8);
        uint32_t h = (uint32_t)((key * 0x9e3779b97f4a7c15ULL) >> 40) & (hcap - 1);
        int dup = 0;
        while (hash[h]) {
            if (hash[h] == key) {
                dup = 1;
                break;
            }
            h = (h + 1) & (hcap - 1);
        }
        if (dup) continue;             /* famous names are distinct, so only randoms retry */
        hash[h] = key;
        memcpy(v[i].stock, name, 8);
        v[i].open = v[i].mid = price;
        v[i].famous = famous;
        v[i].rank = (uint16_t)i;
        i++;
    }
    free(hash);
    free(ptab);
    qsort(v, n, sizeof *v, fh_gen_cmp_stock);
    for (i = 0; i < n; i++) v[i].xsym = v[i].stock[6] != ' ';
    return 0;
}

/* Zipf activity weight by rank: 1 / (rank + 8)^1.25 (see FH_GEN_ZIPF_OFFSET). */
double fh_gen_weight(const fh_gen_sym_t *s)
{
    double x = (double)s->rank + FH_GEN_ZIPF_OFFSET;
    return 1.0 / (x * fh_gen_sqrt(fh_gen_sqrt(x)));
}

/* Vose's alias method: O(1) weighted pick of a locate. */
int fh_gen_alias(fh_gen_t *g)
{
    uint32_t n = g->nsym;
    g->alias_p = malloc(n * sizeof *g->alias_p);
    g->alias_i = malloc(n * sizeof *g->alias_i);
    uint32_t *small = malloc(n * sizeof *small), *large = malloc(n * sizeof *large);
    double *q = malloc(n * sizeof *q);
    if (!g->alias_p || !g->alias_i || !small || !large || !q) {
        free(small);
        free(large);
        free(q);
        return -1;
    }
    double total = 0;
    for (uint32_t i = 0; i < n; i++) total += fh_gen_weight(&g->sym[i + 1]);
    uint32_t ns = 0, nl = 0;
    for (uint32_t i = 0; i < n; i++) {
        q[i] = fh_gen_weight(&g->sym[i + 1]) * n / total;
        if (q[i] < 1.0) small[ns++] = i;
        else large[nl++] = i;
    }
    while (ns && nl) {
        uint32_t a = small[--ns], b = large[--nl];
        g->alias_p[a] = q[a];
        g->alias_i[a] = b;
        q[b] -= 1.0 - q[a];
        if (q[b] < 1.0) small[ns++] = b;
        else large[nl++] = b;
    }
    while (nl) {
        uint32_t b = large[--nl];
        g->alias_p[b] = 1.0;
        g->alias_i[b] = b;
    }
    while (ns) {
        uint32_t a = small[--ns];
        g->alias_p[a] = 1.0;
        g->alias_i[a] = a;
    }
    free(small);
    free(large);
    free(q);
    return 0;
}

/* ------------------------------------------------------------ schedule */

/* Adds one scheduled message, or only counts it while s->sched is NULL. */
static void fh_gen_at(fh_gen_t *g, uint64_t ts, uint32_t ch, uint8_t type, uint32_t locate, uint8_t arg)
{
    /* PITCH has trading status (H h), auctions (Q I) and trade breaks (B) only:
     * no system events, directory, Reg SHO, market makers, MWCB, IPO, LULD
     * collars or RPII messages */
    if (g->pitch && type != 'H' && type != 'h' && type != 'Q' && type != 'I' && type != 'B') return;
    /* IEX has no MWCB, IPO quoting or market-wide status messages; Clear Book
     * ('c') is IEX's own */
    if (g->iex ? type == 'V' || type == 'K' || type == 'O' || type == 'W' : type == 'c') return;
    if (g->sched) {
        fh_gen_sched_t *e = &g->sched[g->nsched];
        memset(e, 0, sizeof *e);
        e->ts = ts;
        e->idx = (uint32_t)g->nsched;
        e->ch = (uint16_t)ch;
        e->type = type;
        e->locate = (uint16_t)locate;
        e->arg = arg;
    }
    g->nsched++;
}

uint64_t fh_gen_noii_count(uint64_t messages) { return messages / 100; }

/* Everything of the day that is not order flow.  Run twice: to count, to fill.
 * Times per channel c are offset by a few microseconds so channels interleave. */
void fh_gen_build_schedule(fh_gen_t *g, uint64_t messages)
{
    fh_gen_rng_t r;
    fh_gen_rng_seed(&r, g->cfg->seed, 7);   /* same draws in both passes */
    g->nsched = 0;
    for (uint32_t c = 0; c < g->nch; c++) {
        fh_gen_chan_t *ch = &g->ch[c];
        uint32_t n = (uint32_t)ch->hi - ch->lo + 1u;
        if (n == 0) continue;              /* a PITCH unit without symbols */
        uint64_t tc = (uint64_t)c * 1700;
        uint64_t t = FH_GEN_HMS(3, 2, 5) + tc * 1000;
        fh_gen_at(g, t, c, 'S', 0, 'O');
        /* start-of-day administration: a burst of directory and state messages */
        t += 1000000;
        for (uint32_t j = 0; j < n; j++, t += 2500) fh_gen_at(g, t, c, 'R', ch->lo + j, 0);
        for (uint32_t j = 0; j < n; j++, t += 2500) fh_gen_at(g, t, c, 'H', ch->lo + j, 'T');
        fh_gen_at(g, t, c, 'V', 0, 0);
        t += 2500;
        for (uint32_t j = 0; j < n; j += 8, t += 2500) fh_gen_at(g, t, c, 'Y', ch->lo + j, 0);
        for (uint32_t j = 0; j < n; j += 4, t += 2500) fh_gen_at(g, t, c, 'L', ch->lo + j, 0);

        fh_gen_at(g, FH_GEN_HMS(4, 0, 0) + tc, c, 'S', 0, 'S');
        fh_gen_at(g, FH_GEN_HMS(9, 30, 0) + tc, c, 'S', 0, 'Q');
        fh_gen_at(g, FH_GEN_HMS(16, 0, 0) + tc, c, 'S', 0, 'M');
        fh_gen_at(g, FH_GEN_HMS(20, 0, 0) + tc, c, 'S', 0, 'E');
        fh_gen_at(g, FH_GEN_HMS(20, 5, 0) + tc, c, 'S', 0, 'C');

        /* opening and closing crosses for every instrument */
        for (uint32_t j = 0; j < n; j++) {
            fh_gen_at(g, FH_GEN_HMS(9, 30, 0) + 50000 + tc + (uint64_t)j * 1000, c, 'Q', ch->lo + j, 'O');
            fh_gen_at(g, FH_GEN_HMS(16, 0, 0) + 50000 + tc + (uint64_t)j * 1000, c, 'Q', ch->lo + j, 'C');
        }
        /* retail price improvement interest through the day */
        for (uint32_t j = 0; j < n; j += 16)
            fh_gen_at(g, FH_GEN_HMS(9, 40, 0) + (uint64_t)j * 7000000 + tc, c, 'N', ch->lo + j, 0);

        /* LULD pauses: halt, quotation period with an auction collar, halt
         * cross, resume -- spread over 10:00-15:00 */
        uint32_t nh = 1 + n / 200;
        for (uint32_t k = 0; k < nh; k++) {
            uint32_t loc = ch->lo + (uint32_t)(((uint64_t)k * n) / nh + (n / nh) / 2);
            uint64_t th = FH_GEN_HMS(10, 0, 0) + (uint64_t)k * (FH_GEN_HMS(5, 0, 0) / nh) + tc * 1000 +
                          fh_gen_below(&r, 1000000000u);
            fh_gen_at(g, th, c, 'H', loc, 'H');
            fh_gen_at(g, th + FH_GEN_HMS(0, 5, 0), c, 'H', loc, 'Q');
            fh_gen_at(g, th + FH_GEN_HMS(0, 5, 0) + 1000000, c, 'J', loc, 0);
            fh_gen_at(g, th + FH_GEN_HMS(0, 5, 5), c, 'Q', loc, 'H');
            fh_gen_at(g, th + FH_GEN_HMS(0, 5, 5) + 1000, c, 'H', loc, 'T');
        }
        /* an operational halt of one instrument, two minutes */
        uint32_t hloc = ch->lo + n / 3;
        fh_gen_at(g, FH_GEN_HMS(11, 0, 0) + tc * 1000, c, 'h', hloc, 'H');
        fh_gen_at(g, FH_GEN_HMS(11, 2, 0) + tc * 1000, c, 'h', hloc, 'T');
        /* a broken trade on the channel's busiest instrument */
        uint32_t best = ch->lo;
        for (uint32_t l = ch->lo; l <= ch->hi; l++)
            if (g->sym[l].rank < g->sym[best].rank) best = l;
        fh_gen_at(g, FH_GEN_HMS(13, 0, 0) + tc * 1000, c, 'B', best, 0);
        /* IEX: the book of the busiest instrument and of one in the middle
         * cleared (Clear Book) */
        fh_gen_at(g, FH_GEN_HMS(12, 30, 0) + tc * 1000, c, 'c', best, 0);
        fh_gen_at(g, FH_GEN_HMS(14, 15, 0) + tc * 1000, c, 'c', ch->lo + n / 2, 0);
    }
    /* market-wide circuit breaker status once, an IPO on channel 0's last
     * instrument: quoting period update before the open, price discovery */
    uint32_t ipo = g->ch[0].hi;
    g->sym[ipo].ipo = 1;
    fh_gen_at(g, FH_GEN_HMS(7, 30, 0), 0, 'K', ipo, 0);
    fh_gen_at(g, FH_GEN_HMS(11, 25, 0), 0, 'O', ipo, 0);
    fh_gen_at(g, FH_GEN_HMS(12, 0, 0), 0, 'W', 0, '1');

    /* NOII imbalances before the crosses: 09:25-09:30 and 15:50-16:00 */
    uint64_t ni = fh_gen_noii_count(messages);
    for (uint64_t k = 0; k < ni; k++) {
        uint32_t loc = fh_gen_pick_locate(g, &r);
        int open = fh_gen_below(&r, 5) < 2;
        uint64_t t0 = open ? FH_GEN_HMS(9, 25, 0) : FH_GEN_HMS(15, 50, 0);
        uint64_t span = open ? FH_GEN_HMS(0, 5, 0) : FH_GEN_HMS(0, 10, 0);
        uint64_t ts = t0 + (uint64_t)(fh_gen_unit(&r) * (double)span);
        fh_gen_at(g, ts, g->sym[loc].ch, 'I', loc, open ? 'O' : 'C');
    }
}

static int fh_gen_cmp_sched(const void *a, const void *b)
{
    const fh_gen_sched_t *x = a, *y = b;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

void fh_gen_sort_schedule(fh_gen_t *g)
{
    qsort(g->sched, g->nsched, sizeof *g->sched, fh_gen_cmp_sched);
    /* compressed after sorting by the normal day's times: where the map
     * makes times equal, they keep that day's order */
    if (g->rate)
        for (size_t i = 0; i < g->nsched; i++) g->sched[i].ts = fh_gen_rate_map(g, g->sched[i].ts);
}

/* ------------------------------------------------------- intraday shape */

/* Relative message rate at second-of-day s: thin pre-market rising into the
 * open, U-shaped regular session with spikes in its first and last minutes,
 * after-hours decaying to a trickle. */
static double fh_gen_intensity(uint32_t s)
{
    const double open = 9.5 * 3600, close = 16 * 3600;
    double x = s;
    if (x < 8 * 3600) return 0.010;
    if (x < open) return 0.010 + 0.09 * (x - 8 * 3600) / (open - 8 * 3600);
    if (x < close) {
        double m = (x - open) / (close - open) * 2 - 1;      /* -1 .. 1 */
        double v = 0.45 + 1.6 * m * m;
        if (x < open + 300) v *= 2.5;
        if (x >= close - 300) v *= 2.0;
        return v;
    }
    if (x < 16.5 * 3600) return 0.12;
    if (x < 18 * 3600) return 0.03;
    return 0.004;
}

int fh_gen_cdf(fh_gen_t *g)
{
    g->cdf = malloc((FH_GEN_FLOW_SECS + 1) * sizeof *g->cdf);
    if (!g->cdf) return -1;
    double acc = 0;
    g->cdf[0] = 0;
    for (uint32_t k = 0; k < FH_GEN_FLOW_SECS; k++) {
        acc += fh_gen_intensity(4 * 3600 + k);
        g->cdf[k + 1] = acc;
    }
    for (uint32_t k = 1; k <= FH_GEN_FLOW_SECS; k++) g->cdf[k] /= acc;
    g->cdf[FH_GEN_FLOW_SECS] = 1.0;
    return 0;
}

/* ------------------------------------------------------------ flat rate */

/* Flat-rate mode: where a time of the normal day lands in the compressed one.
 * Linear over the normal flow window (04:00:00.001-19:59:59.999, where the
 * crosses, halts, imbalances and the flow are), onto [flow_t0, flow_t1], so
 * the day keeps its proportions and its order.  The off-hours blocks outside
 * it -- start of messages and the start-of-day directory before 04:00, end of
 * system hours and end of messages after 20:00 -- are pinned to the window's
 * edges (1 ns past the end), since a linear map would stretch their idle hour
 * before 04:00 and five minutes after 20:00 into 6% and 0.5% of the capture
 * with nothing in it.  So the directory still comes before the first order
 * and the end of messages after the last.  Monotone, so sorted stays sorted;
 * the identity on a normal day. */
uint64_t fh_gen_rate_map(const fh_gen_t *g, uint64_t t)
{
    if (!g->rate) return t;
    if (t > FH_GEN_FLOW_END) return g->flow_t1 + 1;
    if (t < FH_GEN_FLOW_START) t = FH_GEN_FLOW_START;
    uint64_t d = (uint64_t)((double)(t - FH_GEN_FLOW_START) * g->rate_k), w = g->flow_t1 - g->flow_t0;
    return g->flow_t0 + (d < w ? d : w);
}
