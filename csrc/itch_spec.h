/* itch_spec.h -- the ITCH 5.0 message types and their wire lengths, once.
 *
 * The single source of the length table: the decoder (itch.h/itch.c) builds
 * fh_itch_len_table[] from it, the generator (gen/gen.c) writes every message
 * with these lengths, and Python reads them through fh_itch_msg_len() in the
 * core (feedhandler.core.MSG_LENGTHS, feedhandler/rewind.py).
 * tests/test_itch_spec.py checks them against the specification's numbers.
 *
 * FH_ITCH_MESSAGES(FH_X) expands FH_X(type, tag, length, name) once per type
 * (the parameter is not called X: X is a tag):
 *   type    the type byte, a char constant ('A')
 *   tag     the same letter as a token, for names (FH_ITCH_LEN_A)
 *   length  wire length in bytes, type byte included (ITCH 5.0: one fixed
 *           length per type)
 *   name    the specification's name of the message
 * Plain C, no code: include it anywhere.  Lengths are compile-time constants
 * (enum FH_ITCH_LEN_<tag>), so a table or switch built from them is folded. */
#ifndef FH_ITCH_SPEC_H
#define FH_ITCH_SPEC_H

#define FH_ITCH_MESSAGES(FH_X)                                                \
    FH_X('S', S, 12, "System Event")                                          \
    FH_X('R', R, 39, "Stock Directory")                                       \
    FH_X('H', H, 25, "Stock Trading Action")                                  \
    FH_X('Y', Y, 20, "Reg SHO Short Sale Price Test Restricted Indicator")    \
    FH_X('L', L, 26, "Market Participant Position")                           \
    FH_X('V', V, 35, "MWCB Decline Level")                                    \
    FH_X('W', W, 12, "MWCB Status")                                           \
    FH_X('K', K, 28, "IPO Quoting Period Update")                             \
    FH_X('J', J, 35, "LULD Auction Collar")                                   \
    FH_X('h', h, 21, "Operational Halt")                                      \
    FH_X('A', A, 36, "Add Order (No MPID Attribution)")                       \
    FH_X('F', F, 40, "Add Order with MPID Attribution")                       \
    FH_X('E', E, 31, "Order Executed")                                        \
    FH_X('C', C, 36, "Order Executed With Price")                             \
    FH_X('X', X, 23, "Order Cancel")                                          \
    FH_X('D', D, 19, "Order Delete")                                          \
    FH_X('U', U, 35, "Order Replace")                                         \
    FH_X('P', P, 44, "Trade (Non-Cross)")                                     \
    FH_X('Q', Q, 40, "Cross Trade")                                           \
    FH_X('B', B, 19, "Broken Trade")                                          \
    FH_X('I', I, 50, "Net Order Imbalance Indicator (NOII)")                  \
    FH_X('N', N, 20, "Retail Price Improvement Indicator (RPII)")             \
    FH_X('O', O, 48, "Direct Listing with Capital Raise Price Discovery")

/* FH_ITCH_LEN_A == 36, FH_ITCH_LEN_h == 21, ... */
#define FH_ITCH_SPEC_LEN_ENUM(type, tag, len, name) FH_ITCH_LEN_##tag = (len),
enum fh_itch_spec_len { FH_ITCH_MESSAGES(FH_ITCH_SPEC_LEN_ENUM) };
#undef FH_ITCH_SPEC_LEN_ENUM

/* The longest message (NOII), for buffers sized at compile time. */
#define FH_ITCH_MAX_LEN 50

#endif
