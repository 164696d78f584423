/* layout.c -- compile-time checks of every struct shared with Python.
 * tests/test_layout.py asserts the same sizes and offsets through CFFI. */
#include "fh_common.h"

#define FH_ASSERT_SIZE(T, n) _Static_assert(sizeof(T) == (n), #T " size changed: update test_layout.py")
#define FH_ASSERT_OFF(T, f, n) _Static_assert(offsetof(T, f) == (n), #T "." #f " moved: update test_layout.py")

FH_ASSERT_SIZE(fh_itch_msg_t, 56);
FH_ASSERT_OFF(fh_itch_msg_t, timestamp, 8);
FH_ASSERT_OFF(fh_itch_msg_t, u, 16);
FH_ASSERT_SIZE(fh_itch_A_t, 32);
FH_ASSERT_SIZE(fh_itch_R_t, 28);
FH_ASSERT_SIZE(fh_itch_O_t, 40);
FH_ASSERT_SIZE(fh_itch_I_t, 40);
FH_ASSERT_SIZE(fh_stats_t, 8 * (14 + 32 + 256));
FH_ASSERT_OFF(fh_stats_t, errors, 8 * 14);
FH_ASSERT_OFF(fh_stats_t, by_type, 8 * (14 + 32));
FH_ASSERT_SIZE(fh_replay_cfg_t, 8);
FH_ASSERT_SIZE(fh_gen_cfg_t, 64);
