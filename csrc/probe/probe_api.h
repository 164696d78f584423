/* probe_api.h -- test and measurement hooks (feedhandler._probe), kept out of
 * the production core feedhandler._core and its ABI.
 *
 * Built by cffi_build/build_probe.py from csrc/probe/ plus the core sources
 * these need (tsc.c); its FFI includes the core's (ffi.include), so
 * fh_hist_t and the shared-memory types are the core's own: a histogram made
 * with feedhandler.core.ffi can be passed here.  CFFI reads this file verbatim
 * as the extension's cdef, so it holds no preprocessor lines: C files include
 * fh_api.h (through fh_common.h) before it, and include it once. */

/* Torture writer for the torn-read test (tests/test_shm.py): updates of slot
 * `locate` for k = first_k .. first_k + iterations - 1, every level field
 * derived from k (bid_price[i] = k + i, ask_price[i] = k + 1000 + i, shares =
 * k * (i + 1), orders = k ^ i; updates = exch_ts = last_trade_price = k), plus
 * one event per update on lane 0's ring with price1 = k, qty1 = k * 3,
 * qty2 = ~k & INT64_MAX (a reader sees int64 quantities), exch_ts = k.  `base` is a whole segment the core created
 * (fh_replay_shm). */
void fh_shm_torture(uint8_t *base, uint32_t locate, uint64_t first_k, uint64_t iterations);

/* Machine jitter ("hiccups"): spin on the calling thread for duration_ns,
 * reading the TSC back to back, and record every gap between two reads longer
 * than threshold_ns into out (interrupts, preemption, SMIs, a hypervisor
 * stealing the CPU).  What no code running on this core can do better than.
 * touch_bytes > 0: also read one new cache line of a buffer that size per
 * iteration (allocated and written before the clock starts), to see what
 * memory traffic costs on this machine.  Returns the total ns lost to such
 * gaps, or UINT64_MAX if the buffer cannot be allocated.
 * (tests/test_latency.py, scripts/bench_latency.py) */
uint64_t fh_hiccups(uint64_t duration_ns, uint64_t threshold_ns, size_t touch_bytes, fh_hist_t *out);
