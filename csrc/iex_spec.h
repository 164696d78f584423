/* iex_spec.h -- the IEX TOPS 1.6, DEEP 1.0 and DEEP+ 1.0 message types, their
 * lengths and the feeds that carry them, once (the IEX counterpart of
 * itch_spec.h and pitch_spec.h).
 *
 * Sources (docs/iex.md lists them and marks what only one backs): the IEX
 * DEEP+ specification v1.02 (2025-01-14) for every DEEP+ message and the
 * administrative messages all three feeds share; for TOPS and DEEP the Open
 * Markets Initiative's layouts generated from TOPS v1.66 and DEEP v1.08,
 * checked against MeatPy's DEEP decoder and IEX's own 2014 TOPS dissector.
 *
 * FH_IEX_MESSAGES(FH_X) expands FH_X(type, tag, length, feeds, name) once per
 * type:
 *   type    the Message Type byte
 *   tag     a token for names (FH_IEX_LEN_QUOTE)
 *   length  Message Data length: the value of the block's Message Length for
 *           this version (the type byte included, the 2-byte length not)
 *   feeds   the feeds that carry it (FH_IEX_IN_TOPS | FH_IEX_IN_DEEP | ...)
 *   name    the specification's name of the message
 *
 * Notes where the sources differ: Order Executed is 46 bytes (the DEEP+
 * spec's Trade ID at 38..45; one third-party reader says 38); Security Event
 * 'E' is listed for TOPS only by OMI's 2018 layouts, and accepted there.
 * Plain C, no code: include it anywhere. */
#ifndef FH_IEX_SPEC_H
#define FH_IEX_SPEC_H

#define FH_IEX_IN_TOPS 1u
#define FH_IEX_IN_DEEP 2u
#define FH_IEX_IN_DEEPPLUS 4u
#define FH_IEX_IN_ALL 7u

#define FH_IEX_MESSAGES(FH_X)                                                        \
    FH_X('S', SYSTEM_EVENT, 10, FH_IEX_IN_ALL, "System Event")                       \
    FH_X('D', DIRECTORY, 31, FH_IEX_IN_ALL, "Security Directory")                    \
    FH_X('H', TRADING_STATUS, 22, FH_IEX_IN_ALL, "Trading Status")                   \
    FH_X('I', RETAIL, 18, FH_IEX_IN_ALL, "Retail Liquidity Indicator")               \
    FH_X('O', OP_HALT, 18, FH_IEX_IN_ALL, "Operational Halt Status")                 \
    FH_X('P', SHORT_SALE, 19, FH_IEX_IN_ALL, "Short Sale Price Test Status")         \
    FH_X('E', SECURITY_EVENT, 18, FH_IEX_IN_ALL, "Security Event")                   \
    FH_X('Q', QUOTE, 42, FH_IEX_IN_TOPS, "Quote Update")                             \
    FH_X('8', PLU_BUY, 30, FH_IEX_IN_DEEP, "Price Level Update, Buy Side")           \
    FH_X('5', PLU_SELL, 30, FH_IEX_IN_DEEP, "Price Level Update, Sell Side")         \
    FH_X('T', TRADE, 38, FH_IEX_IN_ALL, "Trade Report")                              \
    FH_X('X', OFFICIAL_PRICE, 26, FH_IEX_IN_TOPS | FH_IEX_IN_DEEP, "Official Price") \
    FH_X('B', TRADE_BREAK, 38, FH_IEX_IN_ALL, "Trade Break")                         \
    FH_X('A', AUCTION, 80, FH_IEX_IN_TOPS | FH_IEX_IN_DEEP, "Auction Information")   \
    FH_X('a', ADD, 38, FH_IEX_IN_DEEPPLUS, "Add Order")                              \
    FH_X('M', MODIFY, 38, FH_IEX_IN_DEEPPLUS, "Order Modify")                        \
    FH_X('R', DELETE, 26, FH_IEX_IN_DEEPPLUS, "Order Delete")                        \
    FH_X('L', EXECUTED, 46, FH_IEX_IN_DEEPPLUS, "Order Executed")                    \
    FH_X('C', CLEAR_BOOK, 18, FH_IEX_IN_DEEPPLUS, "Clear Book")

/* FH_IEX_LEN_QUOTE == 42, ... ; FH_IEX_TYPE_QUOTE == 'Q', ... */
#define FH_IEX_SPEC_LEN_ENUM(type, tag, len, feeds, name) FH_IEX_LEN_##tag = (len),
enum fh_iex_spec_len { FH_IEX_MESSAGES(FH_IEX_SPEC_LEN_ENUM) };
#undef FH_IEX_SPEC_LEN_ENUM
#define FH_IEX_SPEC_TYPE_ENUM(type, tag, len, feeds, name) FH_IEX_TYPE_##tag = (type),
enum fh_iex_spec_type { FH_IEX_MESSAGES(FH_IEX_SPEC_TYPE_ENUM) };
#undef FH_IEX_SPEC_TYPE_ENUM

/* The IEX-TP v1 segment header, and the Message Protocol IDs of the feeds. */
#define FH_IEX_HLEN 40
#define FH_IEX_PROTO_TOPS 0x8003u
#define FH_IEX_PROTO_DEEP 0x8004u
#define FH_IEX_PROTO_DEEPPLUS 0x8005u

/* Message counters: stats by_type[FH_IEX_BY_TYPE | type] (no ITCH letter or
 * PITCH type lands there: every IEX type byte is below 0x80). */
#define FH_IEX_BY_TYPE 0x80u

#endif
