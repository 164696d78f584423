/* pitch_spec.h -- the Cboe US Equities Multicast PITCH message types and their
 * wire lengths, once (the PITCH counterpart of itch_spec.h).
 *
 * Source: docs/pitch-spec-notes.md (section 4, "Summary table"), itself from
 * the Cboe Multicast PITCH specification v2.41.x as read through [OMI], [FN]
 * and [FPGA].  pitch.c builds fh_pitch_len_table[] from it (the pipeline's
 * and the reference decoder's, csrc/probe/pitch_decode.c);
 * tests/test_pitch_decode.py checks it against the notes' numbers.
 *
 * FH_PITCH_MESSAGES(FH_X) expands FH_X(type, tag, length, name) once per type:
 *   type    the type byte (0x20 ...)
 *   tag     a token for names (FH_PITCH_LEN_ADD_LONG)
 *   length  wire length in bytes, the Length and Type bytes included (the value
 *           the message's own Length byte carries)
 *   name    the specification's name of the message
 *
 * Add Order Expanded (0x2F): the sources differ, 41 in the current spec
 * (v2.41.64 [OMI], v2.41.82 [FN], [FPGA]; ends with the 1-byte Customer
 * Indicator) against 40 in the older BATS-era spec ([JB], no Customer
 * Indicator).  We take the current spec's 41.
 * Plain C, no code: include it anywhere. */
#ifndef FH_PITCH_SPEC_H
#define FH_PITCH_SPEC_H

#define FH_PITCH_MESSAGES(FH_X)                                               \
    FH_X(0x20, TIME,            6, "Time")                                    \
    FH_X(0x97, UNIT_CLEAR,      6, "Unit Clear")                              \
    FH_X(0x21, ADD_LONG,       34, "Add Order Long")                          \
    FH_X(0x22, ADD_SHORT,      26, "Add Order Short")                         \
    FH_X(0x2F, ADD_EXPANDED,   41, "Add Order Expanded") /* 40 in older specs */ \
    FH_X(0x23, EXECUTED,       26, "Order Executed")                          \
    FH_X(0x24, EXECUTED_PRICE, 38, "Order Executed at Price/Size")            \
    FH_X(0x25, REDUCE_LONG,    18, "Reduce Size Long")                        \
    FH_X(0x26, REDUCE_SHORT,   16, "Reduce Size Short")                       \
    FH_X(0x27, MODIFY_LONG,    27, "Modify Order Long")                       \
    FH_X(0x28, MODIFY_SHORT,   19, "Modify Order Short")                      \
    FH_X(0x29, DELETE,         14, "Delete Order")                            \
    FH_X(0x2A, TRADE_LONG,     41, "Trade Long")                              \
    FH_X(0x2B, TRADE_SHORT,    33, "Trade Short")                             \
    FH_X(0x30, TRADE_EXPANDED, 43, "Trade Expanded")                          \
    FH_X(0x2C, TRADE_BREAK,    14, "Trade Break")                             \
    FH_X(0x2D, END_OF_SESSION,  6, "End of Session")                          \
    FH_X(0x31, TRADING_STATUS, 18, "Trading Status")                          \
    FH_X(0x95, AUCTION_UPDATE, 47, "Auction Update")                          \
    FH_X(0x96, AUCTION_SUMMARY, 27, "Auction Summary")

/* FH_PITCH_LEN_ADD_LONG == 34, ... ; FH_PITCH_TYPE_ADD_LONG == 0x21, ... */
#define FH_PITCH_SPEC_LEN_ENUM(type, tag, len, name) FH_PITCH_LEN_##tag = (len),
enum fh_pitch_spec_len { FH_PITCH_MESSAGES(FH_PITCH_SPEC_LEN_ENUM) };
#undef FH_PITCH_SPEC_LEN_ENUM
#define FH_PITCH_SPEC_TYPE_ENUM(type, tag, len, name) FH_PITCH_TYPE_##tag = (type),
enum fh_pitch_spec_type { FH_PITCH_MESSAGES(FH_PITCH_SPEC_TYPE_ENUM) };
#undef FH_PITCH_SPEC_TYPE_ENUM

/* The longest message (Auction Update), and the Sequenced Unit Header. */
#define FH_PITCH_MAX_LEN 47
#define FH_PITCH_UNIT_HLEN 8

#endif
