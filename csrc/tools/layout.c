/* layout.c -- compile-time checks of every struct shared with Python.
 * tests/test_layout.py asserts the same sizes and offsets through CFFI. */
#include "fh_common.h"
#include "hist.h"

#define FH_ASSERT_SIZE(T, n) _Static_assert(sizeof(T) == (n), #T " size changed: update test_layout.py")
#define FH_ASSERT_OFF(T, f, n) _Static_assert(offsetof(T, f) == (n), #T "." #f " moved: update test_layout.py")

FH_ASSERT_SIZE(fh_book_op_t, 56);
FH_ASSERT_OFF(fh_book_op_t, timestamp, 8);
FH_ASSERT_OFF(fh_book_op_t, u, 16);
FH_ASSERT_SIZE(fh_op_level_t, 16);
FH_ASSERT_SIZE(fh_op_quote_t, 16);
FH_ASSERT_SIZE(fh_op_mark_t, 8);
_Static_assert(FH_ERR__COUNT <= 64, "errors[64] holds every reason");
FH_ASSERT_SIZE(fh_itch_A_t, 32);
FH_ASSERT_SIZE(fh_itch_R_t, 28);
FH_ASSERT_SIZE(fh_itch_O_t, 40);
FH_ASSERT_SIZE(fh_itch_I_t, 40);
FH_ASSERT_SIZE(fh_stats_t, 8 * (14 + 64 + 256 + 20 + 23));
FH_ASSERT_OFF(fh_stats_t, pkt_late, 8 * (14 + 64 + 256 + 39));
FH_ASSERT_OFF(fh_stats_t, snapshots, 8 * (14 + 64 + 256 + 20 + 10));
FH_ASSERT_OFF(fh_stats_t, pkt_applied, 8 * (14 + 64 + 256 + 20 + 5));
FH_ASSERT_OFF(fh_stats_t, pitch_packets, 8 * (14 + 64 + 256 + 36));
FH_ASSERT_OFF(fh_stats_t, iex_packets, 8 * (14 + 64 + 256 + 41));
FH_ASSERT_OFF(fh_stats_t, iex_clears, 8 * (14 + 64 + 256 + 42));
FH_ASSERT_OFF(fh_stats_t, book, 8 * (14 + 64 + 256));
FH_ASSERT_SIZE(fh_book_counters_t, 8 * 20);
FH_ASSERT_OFF(fh_stats_t, errors, 8 * 14);
FH_ASSERT_OFF(fh_stats_t, by_type, 8 * (14 + 64));
FH_ASSERT_SIZE(fh_lane_cfg_t, 64);
FH_ASSERT_OFF(fh_lane_cfg_t, speed, 48);
FH_ASSERT_OFF(fh_lane_cfg_t, shm_name, 56);
FH_ASSERT_SIZE(fh_shm_header_t, 4096);
FH_ASSERT_OFF(fh_shm_header_t, layout_version, 8);
FH_ASSERT_OFF(fh_shm_header_t, depth, 24);
FH_ASSERT_OFF(fh_shm_header_t, ring_capacity, 40);
FH_ASSERT_OFF(fh_shm_header_t, counters_offset, 48);
FH_ASSERT_OFF(fh_shm_header_t, tsc_base, 112);
FH_ASSERT_OFF(fh_shm_header_t, tsc_hz, 136);
FH_ASSERT_OFF(fh_shm_header_t, writer_start, 144);
FH_ASSERT_OFF(fh_shm_header_t, created_ns, 72);
FH_ASSERT_OFF(fh_shm_header_t, state, 88);
/* The header's state values readers decode (feedhandler.shm.STATES). */
_Static_assert(FH_SHM_STARTING == 0 && FH_SHM_RUNNING == 1 && FH_SHM_FINISHED == 2 && FH_SHM_STOPPED == 3,
               "enum fh_shm_state changed: update test_layout.py and feedhandler.shm.STATES");
FH_ASSERT_OFF(fh_shm_header_t, n_venues, 2304);
FH_ASSERT_OFF(fh_shm_header_t, venue_names, 2312);
FH_ASSERT_OFF(fh_shm_header_t, cbbo_offset, 2376);
FH_ASSERT_OFF(fh_shm_header_t, venues_seen, 2384);
FH_ASSERT_OFF(fh_shm_header_t, system_event, 92);
FH_ASSERT_OFF(fh_shm_header_t, n_lanes, 104);
FH_ASSERT_OFF(fh_shm_header_t, ring_head, 256);
FH_ASSERT_SIZE(fh_shm_slot_t, 192);
FH_ASSERT_OFF(fh_shm_slot_t, last_trade_price, 80);
FH_ASSERT_OFF(fh_shm_slot_t, n_bid, 88);
FH_ASSERT_OFF(fh_shm_slot_t, locate, 120);
FH_ASSERT_OFF(fh_shm_slot_t, symbol, 122);
FH_ASSERT_OFF(fh_shm_slot_t, flags, 134);
FH_ASSERT_SIZE(fh_shm_event_t, 64);
FH_ASSERT_OFF(fh_shm_event_t, locate, 32);
FH_ASSERT_OFF(fh_shm_event_t, price1, 36);
FH_ASSERT_OFF(fh_shm_event_t, qty1, 48);
FH_ASSERT_SIZE(fh_hist_t, 8 * (5 + FH_HIST_COUNTS));
FH_ASSERT_OFF(fh_hist_t, counts, 40);
