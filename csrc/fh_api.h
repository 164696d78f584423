/* fh_api.h -- the C core's public interface.
 *
 * Every function here is one the package itself calls (its Python, the DPDK
 * source): tests/test_abi.py holds it to that.  What only tests, scripts,
 * benchmarks or fuzz harnesses call is a test hook, csrc/probe/probe_api.h.
 *
 * CFFI reads this file verbatim as its cdef, so it holds no preprocessor lines:
 * C files include <stdint.h> and <stddef.h> before it.  Every struct here has an
 * exact, padding-explicit layout; fh_layout.c asserts sizes and offsets with
 * _Static_assert and tests/test_layout.py asserts the same numbers from Python.
 *
 * Units: prices are raw ITCH integers (Price(4) = 1/10000 USD, Price(8) =
 * 1/100000000 USD); timestamps are u64 nanoseconds (ITCH: since midnight;
 * capture: since the Unix epoch); shares are integer counts.
 */

/* ---------------------------------------------------------------- counters */

/* Why a frame, datagram or message was skipped.  Order is part of the ABI of
 * fh_stats_t.errors[]; names come from fh_err_name(). */
enum fh_err {
    FH_ERR_ETH_TRUNCATED = 0,      /* frame shorter than an Ethernet header */
    FH_ERR_VLAN_TRUNCATED = 1,     /* VLAN tag cut short, or more than 2 tags */
    FH_ERR_ARP = 2,                /* ARP frame (not market data) */
    FH_ERR_IPV6 = 3,               /* IPv6 frame (not carried by ITCH feeds) */
    FH_ERR_ETHERTYPE_OTHER = 4,    /* any other ethertype */
    FH_ERR_IP_TRUNCATED = 5,       /* frame ends inside the IPv4 header */
    FH_ERR_IP_BAD_VERSION = 6,     /* version nibble is not 4 */
    FH_ERR_IP_BAD_HDR_LEN = 7,     /* IHL < 5 or past the frame */
    FH_ERR_IP_BAD_TOTAL_LEN = 8,   /* total length < IHL or past the frame */
    FH_ERR_IP_FRAGMENT = 9,        /* MF set or fragment offset != 0 */
    FH_ERR_IP_NOT_UDP = 10,        /* TCP, ICMP, IGMP, ... */
    FH_ERR_UDP_TRUNCATED = 11,     /* IPv4 payload shorter than a UDP header */
    FH_ERR_UDP_BAD_LEN = 12,       /* UDP length < 8 or past the IPv4 payload */
    FH_ERR_MOLD_TRUNCATED = 13,    /* UDP payload shorter than the 20-byte header */
    FH_ERR_MOLD_COUNT_OVERRUN = 14,/* count says more blocks than the datagram holds */
    FH_ERR_MOLD_BLOCK_OVERRUN = 15,/* a block's length runs past the datagram */
    FH_ERR_MOLD_TRAILING = 16,     /* bytes left after the last counted block */
    FH_ERR_MOLD_ZERO_BLOCK = 17,   /* a block of length 0 (skipped) */
    FH_ERR_ITCH_UNKNOWN_TYPE = 18, /* type byte not in ITCH 5.0 (skipped by length) */
    FH_ERR_ITCH_BAD_LENGTH = 19,   /* known type, wrong block length */
    FH_ERR_SRC_TRUNCATED = 20,     /* capture record or block cut short at end of file */
    FH_ERR_SRC_SNAPPED = 21,       /* captured length < wire length (frame still parsed) */
    FH_ERR_SRC_LINKTYPE = 22,      /* capture interface is not Ethernet */
    FH_ERR_SRC_BAD_RECORD = 23,    /* record/block header inconsistent (file resynced or stopped) */
    FH_ERR_STREAM_TABLE_FULL = 24, /* more sessions than the stream table holds (not sequenced) */
    FH_ERR_BINFILE_ZERO_LEN = 25,  /* BinaryFILE record of length 0 */
    FH_ERR_GAP_BUFFER_FULL = 26,   /* no room to hold packets behind a hole: gap declared before its window ended */
    FH_ERR_UNCONFIGURED = 27,      /* UDP datagram to a group:port no configured channel has */
    FH_ERR_RR_TIMEOUT = 28,        /* a re-request the server did not answer in time */
    FH_ERR_RR_FOREIGN = 29,        /* a datagram on the re-request socket not from our server or session: ignored */
    FH_ERR_MOLD_SEQ_IMPLAUSIBLE = 30, /* sequence number that cannot be real: wraps 2^64, or far ahead while the
                                   * stream went on in sequence (corrupt): dropped, not taken as a gap */
    FH_ERR_SNAPSHOT_BAD = 31,      /* a snapshot refused whole: a message that does not decode, a sequence before
                                   * what the stream had or absurdly far ahead, longer than the capacities allow
                                   * (fh_snapshot_max_bytes); nothing of it applied */
    /* Cboe PITCH (Sequenced Unit Header and messages): */
    FH_ERR_PITCH_TRUNCATED = 32,   /* UDP payload shorter than the 8-byte Sequenced Unit Header */
    FH_ERR_PITCH_HDR_LENGTH = 33,  /* Hdr Length != the UDP payload length: dropped whole */
    FH_ERR_PITCH_COUNT_OVERRUN = 34, /* Hdr Count says more messages than the datagram holds */
    FH_ERR_PITCH_MSG_OVERRUN = 35, /* a message's Length byte < 2 or past the datagram: walk stopped */
    FH_ERR_PITCH_TRAILING = 36,    /* bytes left after the last counted message */
    FH_ERR_PITCH_UNKNOWN_TYPE = 37,/* type byte not a PITCH depth-of-book type (skipped by its Length) */
    FH_ERR_PITCH_BAD_LENGTH = 38,  /* known type, wrong Length */
    FH_ERR_PITCH_UNSEQUENCED = 39, /* data with Hdr Sequence 0 on a multicast unit: dropped */
    FH_ERR_PITCH_SEQ_WRAP = 40,    /* Hdr Sequence + Count passes 2^32 - 1: dropped */
    FH_ERR_PITCH_PRICE_RANGE = 41, /* a price above the book's Price(4) range (u32, $429496.7295): the
                                    * message is not applied (a modify to it deletes the order) */
    FH_ERR_PITCH_ID_RANGE = 42,    /* unit outside 1..32, or a unit's 385th symbol: no instrument id */
    /* IEX-TP segments and the TOPS, DEEP and DEEP+ messages in them: */
    FH_ERR_IEX_TRUNCATED = 43,     /* UDP payload shorter than the 40-byte IEX-TP segment header */
    FH_ERR_IEX_HEADER = 44,        /* version not 1, Payload Length != datagram - 40, channel or session 0, a
                                    * negative offset, sequence or send time, or a heartbeat with a payload */
    FH_ERR_IEX_PROTOCOL = 45,      /* Message Protocol ID not TOPS (0x8003), DEEP (0x8004) or DEEP+ (0x8005) */
    FH_ERR_IEX_COUNT_OVERRUN = 46, /* Message Count says more messages than the payload holds: walk stopped */
    FH_ERR_IEX_MSG_OVERRUN = 47,   /* a Message Length of 0 or past the payload: walk stopped */
    FH_ERR_IEX_TRAILING = 48,      /* bytes left after the last counted message */
    FH_ERR_IEX_UNKNOWN_TYPE = 49,  /* type not of the segment's feed (skipped by its length) */
    FH_ERR_IEX_BAD_LENGTH = 50,    /* known type shorter than its length (a longer one is read, the rest ignored) */
    FH_ERR_IEX_PRICE_RANGE = 51,   /* a price below 0 or above the book's Price(4) range (u32): not applied (a
                                    * modify to it deletes the order, an execution at it takes the shares off) */
    FH_ERR_IEX_ID_RANGE = 52,      /* a venue's 12289th symbol: no instrument id */
    FH_ERR__COUNT = 53
};

/* What the order books did.  Every message a book could not apply is counted
 * here by reason; none is dropped silently. */
typedef struct fh_book_counters {
    uint64_t orders_live;      /* live orders now */
    uint64_t orders_peak;      /* most live orders at once */
    uint64_t adds;             /* A, F and the new half of U applied */
    uint64_t executes;         /* E and C applied */
    uint64_t cancels;          /* X applied */
    uint64_t deletes;          /* D applied */
    uint64_t replaces;         /* U applied */
    uint64_t trades;           /* trade events: E, printable C, P, Q */
    uint64_t breaks;           /* B */
    uint64_t unknown_ref;      /* E/C/X/D/U for a reference not live: ignored */
    uint64_t add_replaced;     /* A/F/U on a live reference: the old order replaced */
    uint64_t exec_clamped;     /* E/C larger than the order: clamped to it */
    uint64_t cancel_clamped;   /* X larger than the order: clamped to it */
    uint64_t zero_rejected;    /* add/replace with zero shares or zero price: rejected */
    uint64_t bad_side;         /* add with a side other than 'B'/'S': rejected */
    uint64_t locate_range;     /* stock locate 0 or above the instrument capacity: ignored */
    uint64_t order_full;       /* add dropped: order capacity exhausted (instrument flagged) */
    uint64_t level_full;       /* add dropped: price-level capacity exhausted (instrument flagged) */
    uint64_t publishes;        /* instrument slots written to shared memory */
    uint64_t events;           /* events written to the ring */
} fh_book_counters_t;

/* Everything one replay counted.  All fields are totals since the start. */
typedef struct fh_stats {
    uint64_t packets;          /* frames (pcap) or messages (BinaryFILE) read */
    uint64_t bytes;            /* bytes of those frames/messages */
    uint64_t mold_packets;     /* UDP datagrams parsed as MoldUDP64 */
    uint64_t heartbeats;       /* MoldUDP64 datagrams with count 0; PITCH units with Hdr Count 0 */
    uint64_t end_of_session;   /* MoldUDP64 datagrams with count 0xFFFF (a PITCH End of Session is a message:
                                * its datagram is applied, its unit's stream ended) */
    uint64_t messages;         /* ITCH messages decoded and delivered */
    uint64_t gaps;             /* messages missing from sequence (not recovered) */
    uint64_t recovered;        /* messages recovered by re-request */
    uint64_t duplicates;       /* messages seen again (A/B copy, retransmit) */
    uint64_t checksum;         /* fold of decoded fields; equal inputs give equal sums */
    uint64_t first_ts_ns;      /* capture time of the first frame, ns since epoch (0 for BinaryFILE) */
    uint64_t last_ts_ns;       /* capture time of the last frame */
    uint64_t elapsed_ns;       /* wall time inside the decode loops, monotonic clock */
    uint64_t streams;          /* distinct (UDP port, MoldUDP64 session) streams seen */
    uint64_t errors[64];       /* indexed by enum fh_err */
    uint64_t by_type[256];     /* ITCH messages delivered, indexed by type byte */
    fh_book_counters_t book;   /* what the books did with those messages */
    uint64_t session_changes;  /* a line (group:port) started carrying another MoldUDP64 session */
    uint64_t silences;         /* a stream went quiet (no packet, not even a heartbeat) past its timeout */
    uint64_t nic_imissed;      /* DPDK port: packets the NIC dropped, RX ring full (lane 0 of a port) */
    uint64_t nic_ierrors;      /* DPDK port: erroneous packets */
    uint64_t nic_rx_nombuf;    /* DPDK port: no mbuf to receive into */
    /* The packet ledger: every frame counted in `packets` (BinaryFILE: every
     * record) ends in exactly one place, so nothing is lost silently:
     *   packets == pkt_rejected + heartbeats + end_of_session
     *              + pkt_applied + pkt_duplicate + pkt_held + pkt_late
     * (re-request replies are not received frames: they count in `recovered`). */
    uint64_t pkt_applied;      /* datagrams (records) whose new messages went to the decoder and books */
    uint64_t pkt_duplicate;    /* datagrams wholly applied before (the other line's copy, a retransmission) */
    uint64_t pkt_rejected;     /* frames dropped before sequencing, reason in errors: not IPv4/UDP/MoldUDP64,
                                * malformed, unconfigured group; BinaryFILE records of length 0 */
    uint64_t pkt_held;         /* datagrams held behind a hole now (0 once an input is finished) */
    uint64_t rx_time_back;     /* frames stamped earlier than the frame before (merged or stepped captures):
                                * taken as received at that frame's time, so windows and timeouts never
                                * run backwards */
    /* Snapshot recovery (GLIMPSE): late join and unrecoverable gaps. */
    uint64_t snapshots;        /* snapshots applied */
    uint64_t snapshot_messages; /* ITCH messages applied from snapshots (not in `messages`) */
    uint64_t snapshot_failures; /* snapshots asked for and not applied: fetch failed or timed out, or refused
                                * (errors.snapshot_rejected) */
    uint64_t snapshot_buffered; /* datagrams held while a snapshot was awaited */
    uint64_t snapshot_contained; /* of those, datagrams wholly below the snapshot's sequence: dropped as
                                * already in it (in the ledger as pkt_duplicate) */
    uint64_t snapshot_recover_ns; /* the last snapshot: from asking for it to the books consistent (ns) */
    uint64_t pitch_packets;    /* UDP datagrams parsed as Cboe PITCH sequenced units */
    uint64_t unit_clears;      /* PITCH Unit Clear messages applied (the unit's books emptied) */
    uint64_t cbbo_full;        /* instruments left out of the consolidated BBO: its table (16384 symbols) was full */
    uint64_t pkt_late;         /* datagrams (in the ledger) that came after their sequence range was given up
                                * (counted in gaps): never applied -- a copy of what was applied is a duplicate */
    uint64_t late;             /* messages in those datagrams */
    uint64_t iex_packets;      /* UDP datagrams parsed as IEX-TP segments (heartbeats included) */
    uint64_t iex_clears;       /* IEX DEEP+ Clear Book messages applied (the symbol's orders removed) */
} fh_stats_t;

const char *fh_err_name(int err);
const char *fh_version(void);
/* What this core was built with, as space-separated key=value words (values
 * hold no spaces; keys may be added, none removed): zstd (1: zstd inputs are
 * read, libzstd was found at build time), sanitize (1: AddressSanitizer
 * compiled in, FEEDHANDLER_SANITIZE=1), exact_buffers (1: inputs read into
 * exact-size heap buffers instead of mapped), stream_buf and stream_in (bytes:
 * the streaming buffer of compressed and piped inputs, and what one read(2)
 * asks for), compiler.  Writes at most len bytes, NUL-terminated; returns the
 * length of the whole text (as snprintf: retry with more room if >= len).
 * Python: feedhandler.core.build_features(). */
int fh_build_info(char *out, size_t len);

/* ------------------------------------------------------------- ITCH 5.0 */

/* One struct per message type, fields in wire order, named as in the spec
 * (snake_case).  stock/mpid fields keep their space padding, not NUL-terminated.
 * The common header (type, stock_locate, tracking_number, timestamp) lives in
 * fh_book_op_t. */
typedef struct { uint8_t event_code; } fh_itch_S_t;                    /* System Event, 12 B */
typedef struct {                                                        /* Stock Directory, 39 B */
    char     stock[8];
    uint8_t  market_category;
    uint8_t  financial_status_indicator;
    uint8_t  round_lots_only;
    uint8_t  issue_classification;
    uint32_t round_lot_size;
    char     issue_sub_type[2];
    uint8_t  authenticity;
    uint8_t  short_sale_threshold_indicator;
    uint8_t  ipo_flag;
    uint8_t  luld_reference_price_tier;
    uint8_t  etp_flag;
    uint8_t  inverse_indicator;
    uint32_t etp_leverage_factor;
} fh_itch_R_t;
typedef struct {                                                        /* Stock Trading Action, 25 B */
    char     stock[8];
    uint8_t  trading_state;
    uint8_t  reserved;
    char     reason[4];
} fh_itch_H_t;
typedef struct { char stock[8]; uint8_t reg_sho_action; } fh_itch_Y_t;  /* Reg SHO, 20 B */
typedef struct {                                                        /* Market Participant Position, 26 B */
    char     mpid[4];
    char     stock[8];
    uint8_t  primary_market_maker;
    uint8_t  market_maker_mode;
    uint8_t  market_participant_state;
} fh_itch_L_t;
typedef struct { uint64_t level_1; uint64_t level_2; uint64_t level_3; } fh_itch_V_t; /* MWCB Decline Level, 35 B, Price(8) */
typedef struct { uint8_t breached_level; } fh_itch_W_t;                 /* MWCB Status, 12 B */
typedef struct {                                                        /* IPO Quoting Period Update, 28 B */
    char     stock[8];
    uint32_t ipo_quotation_release_time;   /* seconds since midnight */
    uint32_t ipo_price;                    /* Price(4) */
    uint8_t  ipo_quotation_release_qualifier;
    uint8_t  _pad[3];
} fh_itch_K_t;
typedef struct {                                                        /* LULD Auction Collar, 35 B */
    char     stock[8];
    uint32_t auction_collar_reference_price;
    uint32_t upper_auction_collar_price;
    uint32_t lower_auction_collar_price;
    uint32_t auction_collar_extension;
} fh_itch_J_t;
typedef struct {                                                        /* Operational Halt, 21 B */
    char     stock[8];
    uint8_t  market_code;
    uint8_t  operational_halt_action;
} fh_itch_h_t;
typedef struct {                                                        /* Add Order (A 36 B) / Add Order MPID (F 40 B) */
    uint64_t order_reference_number;
    uint32_t shares;
    uint32_t price;                        /* Price(4) */
    char     stock[8];
    uint8_t  buy_sell_indicator;           /* 'B' or 'S' */
    char     attribution[4];               /* F only; zeros for A */
    uint8_t  _pad[3];
} fh_itch_A_t;
typedef struct {                                                        /* Order Executed, 31 B */
    uint64_t order_reference_number;
    uint64_t match_number;
    uint32_t executed_shares;
    uint32_t _pad;
} fh_itch_E_t;
typedef struct {                                                        /* Order Executed With Price, 36 B */
    uint64_t order_reference_number;
    uint64_t match_number;
    uint32_t executed_shares;
    uint32_t execution_price;              /* Price(4) */
    uint8_t  printable;
    uint8_t  _pad[7];
} fh_itch_C_t;
typedef struct { uint64_t order_reference_number; uint32_t cancelled_shares; uint32_t _pad; } fh_itch_X_t; /* Order Cancel, 23 B */
typedef struct { uint64_t order_reference_number; } fh_itch_D_t;       /* Order Delete, 19 B */
typedef struct {                                                        /* Order Replace, 35 B */
    uint64_t original_order_reference_number;
    uint64_t new_order_reference_number;
    uint32_t shares;
    uint32_t price;
} fh_itch_U_t;
typedef struct {                                                        /* Trade (non-cross), 44 B */
    uint64_t order_reference_number;
    uint64_t match_number;
    uint32_t shares;
    uint32_t price;
    char     stock[8];
    uint8_t  buy_sell_indicator;
    uint8_t  _pad[7];
} fh_itch_P_t;
typedef struct {                                                        /* Cross Trade, 40 B */
    uint64_t shares;
    uint64_t match_number;
    char     stock[8];
    uint32_t cross_price;
    uint8_t  cross_type;
    uint8_t  _pad[3];
} fh_itch_Q_t;
typedef struct { uint64_t match_number; } fh_itch_B_t;                 /* Broken Trade, 19 B */
typedef struct {                                                        /* NOII, 50 B */
    uint64_t paired_shares;
    uint64_t imbalance_shares;
    char     stock[8];
    uint32_t far_price;
    uint32_t near_price;
    uint32_t current_reference_price;
    uint8_t  imbalance_direction;
    uint8_t  cross_type;
    uint8_t  price_variation_indicator;
    uint8_t  _pad;
} fh_itch_I_t;
typedef struct { char stock[8]; uint8_t interest_flag; } fh_itch_N_t;  /* RPII, 20 B */
typedef struct {                                                        /* DLCR Price Discovery, 48 B */
    char     stock[8];
    uint64_t near_execution_time;          /* u64 as on the wire (spec gives no unit) */
    uint32_t minimum_allowable_price;
    uint32_t maximum_allowable_price;
    uint32_t near_execution_price;
    uint32_t lower_price_range_collar;
    uint32_t upper_price_range_collar;
    uint8_t  open_eligibility_status;
    uint8_t  _pad[3];
} fh_itch_O_t;

/* Book operations with no ITCH message behind them (IEX): their type bytes
 * are not ITCH letters.  FH_OP_LEVEL: a DEEP Price Level Update sets a level
 * to a size; FH_OP_QUOTE: a TOPS Quote Update is the whole top of book;
 * FH_OP_OFFICIAL: an official opening or closing price; FH_OP_SEC_EVENT: a
 * security event (opening or closing process complete). */
enum fh_op_type {
    FH_OP_LEVEL = 1,
    FH_OP_QUOTE = 2,
    FH_OP_OFFICIAL = 3,
    FH_OP_SEC_EVENT = 4
};
typedef struct {                                                        /* FH_OP_LEVEL */
    uint32_t shares;                       /* the level's new size; 0 removes it */
    uint32_t price;                        /* Price(4) */
    uint8_t  side;                         /* 'B' or 'S' */
    uint8_t  event_done;                   /* 1: the last update of its event (publish now), 0: more follow */
    uint8_t  _pad[6];
} fh_op_level_t;
typedef struct {                                                        /* FH_OP_QUOTE */
    uint32_t bid_shares;                   /* 0 (or bid_price 0): no bid */
    uint32_t bid_price;
    uint32_t ask_shares;                   /* 0 (or ask_price 0): no ask */
    uint32_t ask_price;
} fh_op_quote_t;
typedef struct {                                                        /* FH_OP_OFFICIAL, FH_OP_SEC_EVENT */
    uint32_t price;                        /* FH_OP_OFFICIAL: Price(4) */
    uint8_t  kind;                         /* the price type ('Q' opening, 'M' closing) or the event ('O', 'C') */
    uint8_t  _pad[3];
} fh_op_mark_t;

/* A decoded ITCH 5.0 message: the common header and one body per type.
 * The body member to read is the one named by `type` (A and F share `A`). */
typedef struct fh_book_op {
    uint8_t  type;
    uint8_t  venue;                        /* the books' venue (0 for ITCH; PITCH decodes set theirs):
                                            * order references are unique per venue only */
    uint16_t stock_locate;
    uint16_t tracking_number;
    uint16_t _pad1;
    uint64_t timestamp;                    /* ITCH, PITCH: ns since midnight; IEX: ns since the Unix epoch */
    union {
        fh_itch_S_t S; fh_itch_R_t R; fh_itch_H_t H; fh_itch_Y_t Y; fh_itch_L_t L;
        fh_itch_V_t V; fh_itch_W_t W; fh_itch_K_t K; fh_itch_J_t J; fh_itch_h_t h;
        fh_itch_A_t A; fh_itch_E_t E; fh_itch_C_t C; fh_itch_X_t X; fh_itch_D_t D;
        fh_itch_U_t U; fh_itch_P_t P; fh_itch_Q_t Q; fh_itch_B_t B; fh_itch_I_t I;
        fh_itch_N_t N; fh_itch_O_t O;
        fh_op_level_t level; fh_op_quote_t quote; fh_op_mark_t mark;  /* the FH_OP_* operations */
    } u;
} fh_book_op_t;

/* Result of decoding one message block. */
enum fh_decode_result {
    FH_DECODE_OK = 0,
    FH_DECODE_UNKNOWN_TYPE = 1,
    FH_DECODE_BAD_LENGTH = 2,
    FH_DECODE_EMPTY = 3
};

/* Wire length of a type's message, including the type byte; 0 if unknown.
 * The one ITCH 5.0 length table (csrc/itch_spec.h), shared by the decoder,
 * the generator and Python (feedhandler.core.MSG_LENGTHS). */
uint32_t fh_itch_msg_len(uint8_t type);

/* Decode one ITCH message of exactly `len` bytes (type byte first). */
int fh_itch_decode(const uint8_t *p, size_t len, fh_book_op_t *out);

/* Parse one Ethernet frame down to its ITCH messages, with no session state
 * (no gap or duplicate tracking).  Writes at most `cap` messages to `out`,
 * returns how many were decoded (more may have been counted in `st`).
 * Every skip is counted in `st`.  For tests and tools, not the hot path. */
size_t fh_decode_frame(const uint8_t *frame, size_t len, fh_book_op_t *out, size_t cap,
                       fh_stats_t *st);

/* A MoldUDP64 re-request datagram (Session, Alpha(10); Sequence Number, u64
 * BE; Requested Message Count, u16 BE): 0 with its fields out, or -1 when it
 * is not exactly 20 bytes (what a rewind server ignores as malformed). */
int fh_mold_parse_request(const uint8_t *p, size_t n, uint8_t session[10], uint64_t *seq, uint32_t *count);

/* ---------------------------------------------------------------- replay */

enum fh_format {
    FH_FMT_UNKNOWN = 0,
    FH_FMT_PCAP_US = 1,
    FH_FMT_PCAP_NS = 2,
    FH_FMT_PCAPNG = 3,
    FH_FMT_BINFILE = 4
};

/* Pipeline stages a replay runs (benchmarks turn the later ones off). */
enum fh_mode {
    FH_MODE_PUBLISH = 0,       /* decode + books + shared memory (the default) */
    FH_MODE_BOOK = 1,          /* decode + books, nothing published */
    FH_MODE_DECODE = 2         /* decode only */
};

typedef struct fh_lane_cfg {
    uint32_t max_streams;      /* (UDP port, MoldUDP64 session or PITCH unit) streams tracked; default 256 */
    uint32_t mode;             /* enum fh_mode */
    uint32_t max_orders;       /* live orders; default 2097152 */
    uint32_t max_instruments;  /* instrument slots = highest stock locate; default 10000 */
    uint32_t max_levels;       /* price levels, all instruments and sides; default 4194304 */
    uint32_t depth;            /* levels per side published; default 10, 1..64 */
    uint32_t ring_events;      /* event ring capacity, power of two; default 1048576 */
    uint32_t shm_mode;         /* permission bits of a named segment; default 0600 */
    uint32_t gap_window_us;    /* how long (receive time) a hole waits for the other line; default 1000 */
    uint32_t gap_buffer;       /* packets held behind holes, all streams; default 4096 */
    uint32_t lanes;            /* writer threads sharing the work (one per core); default 1 */
    uint32_t silence_ms;       /* a stream with no packet for this long (receive time) is silent; default 3000 */
    double   speed;            /* pacing: 0 = as fast as possible; 1 = the capture's own clock; 2 = twice as fast */
    const char *shm_name;      /* segment name under /dev/shm; NULL or "" = private memory */
} fh_lane_cfg_t;

typedef struct fh_lane fh_lane_t;

/* Create a replay context: lane 0 of cfg->lanes.  Returns NULL with a message
 * in err on failure.
 *
 * Several lanes split one input between threads, as NIC steering splits a
 * feed between cores: every lane walks the whole input, and each frame is
 * processed by exactly one lane (MoldUDP64 streams go to lanes by order of
 * first appearance; BinaryFILE messages by stock locate; frames that cannot
 * be attributed to lane 0).  Instruments therefore live on one lane each, so
 * books, counters and the dump are the same whatever the lane count. */
fh_lane_t *fh_lane_new(const fh_lane_cfg_t *cfg, char *err, size_t errlen);

/* Lane `lane` (1 .. lanes-1) of the replay `first` (its lane 0), with the same
 * configuration and the same shared-memory segment.  Free lanes before `first`. */
fh_lane_t *fh_lane_new_peer(fh_lane_t *first, uint32_t lane, char *err, size_t errlen);

/* Channels from a config: datagrams to group:port (host byte order) belong
 * to `lane`; with any channel added, datagrams to other groups are skipped
 * and counted (FH_ERR_UNCONFIGURED).  Add the same channels to every lane,
 * before any input.  0, or -1 when the table (64 lines) is full. */
int fh_lane_add_line(fh_lane_t *r, uint32_t group, uint16_t port, uint32_t lane, uint32_t rr_ip,
                       uint16_t rr_port);

/* Venues (index 0..7): a name (at most 7 characters) and the protocol its
 * channels speak (0 MoldUDP64/ITCH 5.0, 1 Cboe PITCH, 2 IEX-TP: TOPS, DEEP,
 * DEEP+).  Without a config venue 0 is "XNAS" (ITCH) and 1 "BATS" (PITCH,
 * told from the data), and "IEXG" joins when IEX-TP is first seen.  Instrument
 * id blocks: one per PITCH venue, three per IEX venue (one per feed), at most
 * 4 in all.  Set them on every lane, then each line's protocol and
 * venue (line: its index in the order added).  0, or -1 when invalid. */
int fh_lane_set_venue(fh_lane_t *r, uint32_t venue, const char *name, uint32_t proto);
int fh_lane_set_line_proto(fh_lane_t *r, uint32_t line, uint32_t proto, uint32_t venue);
uint32_t fh_lane_n_venues(const fh_lane_t *r);
/* Publish mode: the consolidated BBO across venues (its table in the segment,
 * FH_EV_CBBO events).  on: 0 never; 1 once streams of two venues are seen (a
 * run without a config: until then a single venue costs nothing), each lane
 * then writing every instrument's top once and keeping it up; 2 from the start
 * (a config naming several venues).  On every lane, before any input.  0, or
 * -1 with a message. */
int fh_lane_set_consolidate(fh_lane_t *r, int on, char *err, size_t errlen);
const char *fh_lane_venue_name(const fh_lane_t *r, uint32_t venue);

/* MoldUDP64 re-request server (IPv4, host byte order) for streams whose line
 * names none (rr_ip 0 above); 0, or -1 with a message (socket failure).  A
 * hole still open when its gap window ends is re-requested (up to 3 tries of
 * timeout_ms each, replay paused meanwhile) before it is counted as a gap;
 * what comes back is counted in `recovered`.  Only replies from that address
 * and for the stream's session are used. */
int fh_lane_set_rerequest(fh_lane_t *r, uint32_t ip, uint16_t port, uint32_t timeout_ms, char *err,
                            size_t errlen);

/* This lane's frames are already steered to it (its own NIC queue): it keeps
 * every frame it is given instead of taking its share of a common input. */
void fh_lane_own_all(fh_lane_t *r);

/* Pin the calling thread to one CPU (0, or -1 with errno set). */
int fh_pin_thread(int cpu);
void fh_lane_free(fh_lane_t *r);

/* Open, detect and decode one input, adding to the context's counters.  A
 * plain file is mapped; gzip and zstd inputs, pipes and "-" (standard input,
 * one lane only) are streamed through a bounded buffer.  Blocks until done or
 * stopped; returns 0, 1 when the input was corrupt or truncated part-way
 * (everything before the damage is applied; err says where), or -1 with a
 * message in err (unreadable, empty, unknown format).  `format_out` (may be
 * NULL) receives the detected enum fh_format. */
int fh_lane_replay_file(fh_lane_t *r, const char *path, int *format_out, char *err, size_t errlen);
/* The compression of an input's first bytes: 0 none, 1 gzip, 2 zstd (whether
 * this build reads zstd: fh_build_info). */
int fh_input_compression(const uint8_t *head, size_t len);
/* The compression (0 none, 1 gzip, 2 zstd) of the last input fh_lane_replay_file opened. */
int fh_lane_input_compression(const fh_lane_t *r);

/* Decode an in-memory capture/BinaryFILE (same detection, no gzip). */
int fh_lane_buffer(fh_lane_t *r, const uint8_t *buf, size_t len, int *format_out,
                     char *err, size_t errlen);

/* Ask a running fh_lane_replay_file to stop before its next frame (a paced replay
 * also stops waiting for it); safe from any thread and from a signal handler
 * (one relaxed atomic store).  The flag stays set: later inputs stop at once,
 * and fh_lane_finish marks the segment stopped, not finished. */
void fh_lane_stop(fh_lane_t *r);

/* Snapshot of the counters (safe while a replay runs: plain copy, may be a few
 * frames stale). */
void fh_lane_stats(const fh_lane_t *r, fh_stats_t *out);

/* Write the books as the --dump-books CSV (top `depth` levels per side); with_venue
 * adds the venue column (a run holding more than one venue). */
int fh_lane_dump_books(fh_lane_t *r, const char *path, uint32_t depth, int with_venue, char *err, size_t errlen);
/* The same, written to an open file descriptor (the caller keeps it; opened
 * before the replay so that an unwritable path fails before the work). */
int fh_lane_dump_books_fd(fh_lane_t *r, int fd, uint32_t depth, int with_venue, char *err, size_t errlen);
/* The venues (bit i: venue i) this lane's instruments belong to. */
uint32_t fh_lane_venues_held(const fh_lane_t *r);

/* End of all inputs: final counters into shared memory, segment marked
 * finished -- or stopped when fh_lane_stop was called on this lane. */
void fh_lane_finish(fh_lane_t *r);

/* Memory held by the book structures and by the shared-memory segment (bytes). */
void fh_lane_memory(const fh_lane_t *r, uint64_t *book_bytes, uint64_t *shm_bytes);

/* Flags of an instrument's book (enum fh_slot_flags), 0 if out of range. */
uint32_t fh_lane_instrument_flags(const fh_lane_t *r, uint32_t locate);

/* Bytes of the current input consumed so far and its total size. */
void fh_lane_progress(const fh_lane_t *r, uint64_t *done, uint64_t *total);

/* ------------------------------------------- snapshot recovery (GLIMPSE 5.0)
 *
 * A stream with snapshot recovery on is synchronised from a snapshot: when it
 * is first seen (late join: its packets are held, nothing is applied) and when
 * a hole cannot be recovered from the lines or the re-request server (its
 * instruments flagged stale, its packets held).  The lane posts a request; the
 * caller (feedhandler.replay's snapshot thread) fetches the snapshot over
 * SoupBinTCP and posts it back; the lane clears the stream's books, applies
 * the snapshot, drops held packets wholly below its sequence (contained),
 * applies the rest in order and clears the stale flags.  A file replay waits
 * for the snapshot (blocking: deterministic, nothing buffered beyond the
 * packet that asked); a live source (DPDK) keeps receiving and holds the
 * stream's packets (up to the gap buffer) until it comes.
 *
 * Turn it on for every stream (all = 1) or only for configured lines (all = 0,
 * then fh_lane_line_snapshot).  timeout_ms (0 = 5000) is one deadline per
 * recovery (a late join or a hole): connect, login, every retry and the
 * receiving all fit in it; the lane itself gives up FH_SNAP_GRACE_MS after it
 * if the fetcher has not answered.  The largest snapshot taken follows from
 * the lane's capacities (fh_snapshot_max_bytes); what holding one costs is
 * checked against this machine's memory here, at start-up (docs/recovery.md).
 * 0, or -1 with a message. */
int fh_lane_set_snapshot(fh_lane_t *r, int all, int blocking, uint32_t timeout_ms, char *err, size_t errlen);

/* Snapshot bounds.  A snapshot holds, per live order, one Add Order (at most
 * 'F', 40 bytes, + its u16 length); per instrument its directory, trading
 * state, Reg SHO, LULD collar, halt and market participant positions (a
 * budget of FH_SNAP_INSTR_BYTES); and a few system messages (the slack).
 * Holding one costs FH_SNAP_COPIES times its size at the worst moment (the
 * fetcher's growing receive buffer, the finished snapshot, the lane's copy). */
enum fh_snapshot_bounds {
    FH_SNAP_ORDER_BYTES = 42,
    FH_SNAP_INSTR_BYTES = 1024,    /* R, H, Y, J, h: 150 bytes; the rest ~30 Market Participant Positions */
    FH_SNAP_SLACK_BYTES = 65536,
    FH_SNAP_COPIES = 3,
    FH_SNAP_GRACE_MS = 1000
};
/* The largest snapshot (bytes of length-prefixed ITCH messages, End of
 * Snapshot left out) a lane with these capacities takes. */
uint64_t fh_snapshot_max_bytes(uint32_t max_orders, uint32_t max_instruments);
/* This lane's (0 when snapshot recovery is off). */
uint64_t fh_lane_snapshot_limit(const fh_lane_t *r);
/* The deadline of request `ticket` (CLOCK_MONOTONIC ns; Python's
 * time.monotonic_ns()): the fetcher answers by then.  0 when `ticket` is not
 * the outstanding request. */
uint64_t fh_lane_snapshot_deadline_ns(const fh_lane_t *r, uint32_t ticket);
/* Snapshot recovery for streams on the configured line group:port; 0, or -1 if no such line. */
int fh_lane_line_snapshot(fh_lane_t *r, uint32_t group, uint16_t port);
/* A snapshot the lane waits for: its ticket (> 0) with the stream's multicast
 * group (host order: the line it was first seen on), UDP port, session (10
 * bytes) and next sequence; 0 when none is outstanding.  Safe from any thread. */
uint32_t fh_lane_snapshot_request(fh_lane_t *r, uint32_t *group, uint16_t *port, uint8_t *session,
                                    uint64_t *next_seq);
/* The answer to request `ticket`: the snapshot's ITCH messages (each after its
 * u16 big-endian length; the End of Snapshot left out) continuing at MoldUDP64
 * sequence `sequence`, or failed != 0 (could not be fetched).  The bytes are
 * copied.  A snapshot longer than fh_lane_snapshot_limit is not copied: it
 * is refused (errors.snapshot_rejected) like one that does not decode.  0, -1
 * when the ticket is not the outstanding one (stale answer: ignored) or out
 * of memory. */
int fh_lane_snapshot_post(fh_lane_t *r, uint32_t ticket, const uint8_t *blocks, size_t len, uint64_t sequence,
                            int failed);

/* ---------------------------------------------------------- shared memory
 *
 * One segment per replay/engine: header | counters | instrument slots | event ring.
 * All integers native-endian (the reader is on the same host).  Every offset is
 * from the segment start.  The layout version changes whenever any of this does. */

enum fh_shm_consts {
    FH_SHM_LAYOUT_VERSION = 6,
    FH_SHM_HEADER_SIZE = 4096,
    FH_SHM_SLOT_FIXED = 192,       /* fixed part of a slot; level arrays follow */
    FH_SHM_EVENT_SIZE = 64,
    FH_SHM_MAX_DEPTH = 64,
    FH_SHM_MAX_LANES = 32,         /* writer threads (cores) per segment */
    FH_SHM_CBBO_ENTRIES = 16384,   /* symbols the consolidated BBO table holds (power of two) */
    FH_SHM_CBBO_VENUES = 5         /* venues per consolidated entry: the ITCH venue and 4 PITCH venues */
};

/* A segment's life: starting -> running -> finished (every input done) or
 * stopped (asked to stop part-way: fh_lane_stop, i.e. SIGINT, SIGTERM or
 * SIGHUP in the CLI; the books hold what was applied until then).  A reader
 * tells "dead" (the writer gone while starting or running) from the writer's
 * liveness, not from a value here. */
enum fh_shm_state { FH_SHM_STARTING = 0, FH_SHM_RUNNING = 1, FH_SHM_FINISHED = 2, FH_SHM_STOPPED = 3 };

/* Each lane's ring head on its own cache line. */
typedef struct fh_shm_lane_head {
    uint64_t head;                 /* events written so far to this lane's ring (next sequence number) */
    uint8_t  _pad[56];
} fh_shm_lane_head_t;

/* Several writer threads ("lanes", one per core) share a segment: every
 * instrument belongs to exactly one lane, which alone writes its slot; each
 * lane has its own event ring and its own counters (readers add them up). */
typedef struct fh_shm_header {
    char     magic[8];             /* "FHBOOKS" NUL */
    uint32_t layout_version;       /* FH_SHM_LAYOUT_VERSION */
    uint32_t header_size;          /* bytes: FH_SHM_HEADER_SIZE */
    uint64_t total_size;           /* bytes of the whole segment */
    uint32_t depth;                /* levels per side in every slot */
    uint32_t n_slots;              /* instrument slots; slot i holds stock locate i (0 unused) */
    uint32_t slot_size;            /* bytes per slot, multiple of 64 */
    uint32_t event_size;           /* bytes per event: FH_SHM_EVENT_SIZE */
    uint64_t ring_capacity;        /* events each lane's ring holds, power of two */
    uint64_t counters_offset;      /* n_lanes counter areas, counters_stride bytes apart */
    uint64_t slots_offset;
    uint64_t ring_offset;          /* n_lanes rings, ring_capacity events each, lane after lane */
    uint64_t created_ns;           /* CLOCK_REALTIME ns since the epoch */
    int64_t  writer_pid;
    uint32_t state;                /* enum fh_shm_state */
    uint8_t  system_event;         /* last S event code ('O','S','Q','M','E','C'), 0 none */
    uint8_t  _pad0[3];
    uint64_t counters_updated_ns;  /* CLOCK_REALTIME ns of the last counters copy */
    uint32_t n_lanes;
    uint32_t counters_stride;      /* bytes: a u64 sequence lock, 64 bytes in an fh_stats_t */
    /* The writer's clock (publish_ts, rx_ts of DPDK): TSC ticks -> ns since the
     * epoch as base_ns + ((tsc - base_tsc) * mult >> 32).  A reader on the same
     * machine reads its own TSC through these (fh_shm_clock_ns) and so measures
     * publish -> seen on the writer's clock, with no calibration error between
     * two clocks.  tsc_hz 0: the writer uses CLOCK_REALTIME (no invariant TSC). */
    uint64_t tsc_base;             /* at offset 112 */
    uint64_t tsc_base_ns;
    uint64_t tsc_mult;             /* ns per tick, 32.32 fixed point */
    uint64_t tsc_hz;
    uint64_t writer_start;         /* at offset 144: the writer process's start time (/proc/PID/stat field
                                    * 22, clock ticks since boot), so a reused pid is not taken for it */
    uint8_t  _pad1[104];
    fh_shm_lane_head_t ring_head[32];  /* at offset 256; FH_SHM_MAX_LANES entries */
    uint32_t n_venues;             /* at offset 2304: venues named below (a slot's venue indexes them) */
    uint32_t cbbo_on;              /* the writers maintain the consolidated BBO table (a run of several venues) */
    char     venue_names[8][8];    /* NUL-padded: "XNAS", "BATS", ... (index 0: the ITCH venue) */
    uint64_t cbbo_offset;          /* at offset 2376: FH_SHM_CBBO_ENTRIES fh_shm_cbbo_t, after the rings */
    uint32_t venues_seen;          /* bit i: a lane has a stream of venue i (the writers turn the consolidated
                                    * table on once two venues are seen) */
    uint8_t  _pad2[1708];
} fh_shm_header_t;

/* Slot flags */
enum fh_slot_flags {
    FH_SLOT_STALE = 1,             /* the book may be wrong (gap not recovered) */
    FH_SLOT_DROPPED = 2,           /* a capacity was exhausted: the book is incomplete */
    FH_SLOT_OP_HALT = 4,           /* operational halt ('h') in force on some market */
    FH_SLOT_DIRECTORY = 8,         /* a stock directory (R) was seen */
    FH_SLOT_SILENT = 16            /* its stream has been silent past its timeout (line down?) */
};

/* One instrument, guarded by a single-writer sequence lock (see shm.h).
 * Followed by depth-sized arrays, best level first, zero past n_bid/n_ask:
 *   uint32_t bid_price[depth]  Price(4)     uint32_t bid_orders[depth]  count
 *   uint64_t bid_shares[depth] shares       then the same three for ask. */
typedef struct fh_shm_slot {
    uint64_t seq;                  /* even: stable; odd: being written */
    uint64_t exch_ts;              /* ns since midnight: ITCH timestamp of the last message applied */
    uint64_t rx_ts;                /* ns since the epoch: capture/receive time of its packet */
    uint64_t publish_ts;           /* ns since the epoch (TSC, calibrated to CLOCK_REALTIME) when published: read once per input packet (per 16 records of a BinaryFILE) */
    uint64_t updates;              /* messages applied to this instrument, as of this publish */
    uint64_t last_trade_shares;
    uint64_t last_trade_match;     /* match number */
    uint64_t last_trade_ts;        /* ns since midnight */
    uint64_t noii_paired_shares;
    uint64_t noii_imbalance_shares;
    uint32_t last_trade_price;     /* Price(4) */
    uint32_t round_lot_size;       /* shares, from R */
    uint32_t n_bid;                /* valid entries in the bid arrays (<= depth) */
    uint32_t n_ask;                /* valid entries in the ask arrays (<= depth) */
    uint32_t luld_reference_price; /* Price(4), from J */
    uint32_t luld_upper_price;
    uint32_t luld_lower_price;
    uint32_t noii_near_price;      /* Price(4), from I */
    uint32_t noii_far_price;
    uint32_t noii_reference_price;
    uint16_t locate;
    char     symbol[8];            /* space padded, from R */
    uint8_t  trading_state;        /* H: 'H' halted, 'P' paused, 'Q' quotation only, 'T' trading; 0 unknown */
    uint8_t  reg_sho_action;       /* Y: '0', '1', '2'; 0 unknown */
    uint8_t  market_category;      /* R */
    uint8_t  noii_imbalance_direction;
    uint8_t  flags;                /* enum fh_slot_flags */
    uint8_t  venue;                /* index in the header's venue_names */
    uint8_t  _pad[56];
} fh_shm_slot_t;

enum fh_event_type {
    FH_EV_BBO = 1,                 /* price1/qty1: best bid, price2/qty2: best ask (0 = empty side) */
    FH_EV_TRADE = 2,               /* price1 Price(4), qty1 shares, qty2 match number, aux = 'E','C','P','Q', or 'B' (break: qty2 only) */
    FH_EV_STATE = 3,               /* aux = 'H' (price1 = trading state), 'h' (price1 = halt action), 'Y' (price1 = Reg SHO
                                    * action), 'E' (IEX security event: price1 = 'O' opening or 'C' closing process
                                    * complete) or 'X' (IEX official price: price1 Price(4), qty1 = 'Q' open or 'M' close) */
    FH_EV_STALE = 4,               /* aux = 1 stale, 0 recovered; qty1 = messages missing */
    FH_EV_SYSTEM = 5,              /* aux = S event code; locate 0 */
    FH_EV_SILENT = 6,              /* aux = 1 the instrument's stream went silent, 0 it is back */
    FH_EV_CBBO = 8,                /* the consolidated BBO of the instrument's symbol moved with this instrument's
                                    * change: price1/qty1 best bid, price2/qty2 best ask across venues (0 = none),
                                    * aux = bid venue | ask venue << 4 (0xF = none) */
    FH_EV_SNAPSHOT = 7             /* locate 0; aux = 0 snapshot_start (qty1 = the stream's next sequence),
                                    * 1 snapshot_done (qty1 = the snapshot's sequence, qty2 = messages applied),
                                    * 2 snapshot_failed (qty1 = the stream's next sequence) */
};

typedef struct fh_shm_event {
    uint64_t seq;                  /* event number + 1; written last (0 while being written) */
    uint64_t exch_ts;              /* ns since midnight */
    uint64_t rx_ts;                /* ns since the epoch */
    uint64_t publish_ts;           /* ns since the epoch */
    uint16_t locate;
    uint8_t  type;                 /* enum fh_event_type */
    uint8_t  aux;
    uint32_t price1;
    uint32_t price2;
    uint32_t lane;                 /* the lane (core) whose ring carried it */
    uint64_t qty1;
    uint64_t qty2;
} fh_shm_event_t;

/* What a reader gets.  The readers (fh_shm_read_book/_books/_events) copy a
 * slot or events consistently and widen them on the way: every price and
 * quantity becomes a signed 64-bit integer, so that arithmetic on them in
 * numpy (b - a, p - q) never wraps.  Timestamps, sequence and match numbers
 * stay unsigned; units are unchanged (prices Price(4)).  A u64 quantity above
 * INT64_MAX -- no exchange sends one; only a corrupt or hostile wire value
 * could make one -- reads as INT64_MAX. */
typedef struct fh_read_slot {
    uint64_t seq;                  /* the slot's sequence-lock value when copied (even) */
    uint64_t exch_ts;
    uint64_t rx_ts;
    uint64_t publish_ts;
    int64_t  updates;
    int64_t  last_trade_shares;
    uint64_t last_trade_match;
    uint64_t last_trade_ts;
    int64_t  noii_paired_shares;
    int64_t  noii_imbalance_shares;
    int64_t  last_trade_price;
    int64_t  round_lot_size;
    int64_t  n_bid;
    int64_t  n_ask;
    int64_t  luld_reference_price;
    int64_t  luld_upper_price;
    int64_t  luld_lower_price;
    int64_t  noii_near_price;
    int64_t  noii_far_price;
    int64_t  noii_reference_price;
    uint16_t locate;
    char     symbol[8];
    uint8_t  trading_state;
    uint8_t  reg_sho_action;
    uint8_t  market_category;
    uint8_t  noii_imbalance_direction;
    uint8_t  flags;
    uint8_t  venue;
    uint8_t  _pad[16];
} fh_read_slot_t;
/* ... followed by int64_t bid_price[depth], bid_orders[depth], bid_shares[depth],
 * then the same three for ask; the record is fh_read_slot_size(depth) bytes. */

typedef struct fh_read_event {
    uint64_t seq;
    uint64_t exch_ts;
    uint64_t rx_ts;
    uint64_t publish_ts;
    int64_t  price1;
    int64_t  price2;
    int64_t  qty1;
    int64_t  qty2;
    uint16_t locate;
    uint8_t  type;
    uint8_t  aux;
    uint32_t lane;
} fh_read_event_t;

/* The consolidated best bid and offer of one symbol across venues.  Each
 * venue's part has one writer (the lane owning that venue's instrument) and its
 * own sequence lock; the entry's symbol is claimed once (compare-and-swap from
 * 0) by whichever lane publishes the symbol first.  Entries are found by
 * hashing the symbol (linear probing, fh_shm_cbbo_find).  A reader takes each
 * venue's part consistently and the best across them (fh_shm_read_cbbo). */
typedef struct fh_shm_cbbo_venue {
    uint64_t seq;                  /* even: stable; odd: being written; 0: the venue never quoted it */
    uint64_t bid_shares;
    uint64_t ask_shares;
    uint32_t bid_price;            /* Price(4); 0 = no bid */
    uint32_t ask_price;            /* Price(4); 0 = no ask */
    uint64_t exch_ts;              /* ns since midnight: the change */
    uint16_t locate;               /* the venue's instrument id */
    uint8_t  _pad[6];
} fh_shm_cbbo_venue_t;

typedef struct fh_shm_cbbo {
    uint64_t symbol;               /* the 8 space-padded symbol bytes as one word; 0 = free entry */
    uint8_t  _pad[8];
    fh_shm_cbbo_venue_t v[5];      /* FH_SHM_CBBO_VENUES, by venue index */
} fh_shm_cbbo_t;

/* A consolidated BBO as read (fh_shm_read_cbbo). */
typedef struct fh_cbbo {
    uint64_t bid_shares;           /* at the best bid, on bid_venue */
    uint64_t ask_shares;
    uint32_t bid_price;            /* Price(4); 0 = no bid on any venue */
    uint32_t ask_price;
    int32_t  bid_venue;            /* venue index, -1 = none */
    int32_t  ask_venue;
    uint32_t venues;               /* bit i: venue i quotes (or quoted) the symbol */
    uint32_t _pad;
    uint32_t v_bid_price[5];       /* each venue's top, FH_SHM_CBBO_VENUES */
    uint32_t v_ask_price[5];
    uint64_t v_bid_shares[5];
    uint64_t v_ask_shares[5];
} fh_cbbo_t;

/* Read the consolidated BBO of `symbol` (8 space-padded bytes) from a mapped
 * segment: 0, 1 when the table holds no such symbol (or the run is not
 * consolidating: header cbbo_on 0), -1 when a writer died mid-update.  The
 * best price wins; at equal prices the larger size, then the lower venue. */
int fh_shm_read_cbbo(const uint8_t *base, const char *symbol, fh_cbbo_t *out, uint32_t max_spins);

/* Reader side: base is a mapping of the whole segment (read-only is enough). */
int fh_shm_check(const uint8_t *base, uint64_t size, char *err, size_t errlen);
/* Consistent copy of one lane's counters (the writer refreshes them every few
 * thousand frames and at the end).  A counters area is a u64 sequence lock
 * followed, 64 bytes in, by an fh_stats_t.  Returns as fh_shm_read_book. */
int fh_shm_read_counters(const uint8_t *base, uint32_t lane, fh_stats_t *out, uint32_t max_spins);
/* Copy up to `max` events of one lane's ring from *cursor on, widened into
 * reader events.  Returns how many; advances *cursor.  If the writer lapped
 * the reader, *lapped gets the number of events lost and the cursor jumps to
 * the oldest event still in the ring. */
uint32_t fh_shm_read_events(const uint8_t *base, uint32_t lane, uint64_t *cursor, fh_read_event_t *out, uint32_t max,
                            uint64_t *lapped);
/* Size of one widened slot record (fh_read_slot_t and its level arrays) at this depth. */
uint32_t fh_read_slot_size(uint32_t depth);
/* Consistent, widened copy of slot `locate` into out (fh_read_slot_size bytes).
 * 0; -1 if the writer left it mid-update for a second (it died there); -2 for
 * a locate out of range; -3 if a live writer kept changing it for 64 x
 * max_spins copies (the reader never hangs). */
int fh_shm_read_book(const uint8_t *base, uint32_t locate, uint8_t *out, uint32_t max_spins);
/* Widened copies of slots [first, first+n); how many (stops at the first busy one). */
uint32_t fh_shm_read_books(const uint8_t *base, uint32_t first, uint32_t n, uint8_t *out, uint32_t max_spins);

/* Writer side: the replay's segment base and size (Replay.segment(): the
 * writer's process reading its own segment). */
uint8_t *fh_lane_shm(const fh_lane_t *r, uint64_t *size);
/* Is the segment's writer process alive?  1 yes, 0 no (gone, a zombie, or
 * its pid now names another process), -1 cannot tell (no /proc, another PID
 * namespace).  Readers use it, after fh_shm_writer_locked, to tell a dead
 * writer's frozen segment from a live one; writers decide by the lock alone. */
int fh_shm_writer_alive(const uint8_t *base);
/* Does a writer hold the segment open as its own?  `fd`: the reader's
 * descriptor of the segment (read-only will do).  Tests the lock a live
 * writer holds for its whole life without taking it, so it never gets in a
 * writer's way: 1 held (a live writer owns it), 0 free (its writer finished,
 * stopped or is gone), -1 cannot tell (no OFD locks here). */
int fh_shm_writer_locked(int fd);

/* Now, in ns since the epoch, on the clock of the segment's writer (see
 * fh_shm_header_t.tsc_*): comparable with publish_ts to the nanosecond. */
uint64_t fh_shm_clock_ns(const uint8_t *base);

/* ------------------------------------------------------------- latency */

enum fh_hist_consts {
    FH_HIST_COUNTS = 26624,        /* (34 - 10 + 2) x 1024 buckets: 1 ns .. 2^35 ns at 3 significant digits */
    FH_HIST_STAGES = 10            /* histograms per lane: enum fh_lat_stage */
};

/* Per packet that applied messages, TSC-stamped: rx (DPDK: burst return;
 * paced replay: when the packet was due; full-speed replay: when the walk
 * reached it), start of its work, decode done (all blocks), books applied,
 * published (slots written, events out).  Durations in ns, except the last
 * histogram, which counts the messages each packet applied. */
enum fh_lat_stage {
    FH_LAT_RX_TO_START = 0,        /* rx -> start of work (queueing, pacing lateness) */
    FH_LAT_PROCESSING = 1,         /* start -> published */
    FH_LAT_RX_TO_PUBLISHED = 2,    /* rx -> last book update published */
    FH_LAT_DECODE = 3,             /* start -> every block decoded */
    FH_LAT_BOOK = 4,               /* decoded -> applied to the books */
    FH_LAT_PUBLISH = 5,            /* applied -> published to shared memory */
    FH_LAT_MSGS_PER_PACKET = 6,    /* not a time: messages applied per packet */
    FH_LAT_IDLE_GAPS = 7,          /* paced replay: gaps > 1 us between two TSC reads of the thread
                                    * waiting for the next packet (the machine took the core away) */
    FH_LAT_WIRE_TO_RX = 8,         /* a sender's transmit stamp (frame trailer) -> rx: the wire, the driver */
    FH_LAT_WIRE_TO_PUBLISHED = 9   /* a sender's transmit stamp -> last book update published */
};

/* The transmit stamp `feedhandler send` appends to a frame, right after its IP
 * datagram (where Ethernet padding goes, so parsers that follow the IPv4 total
 * length never see it): u32 LE magic, u32 LE frame counter, u64 LE raw TSC
 * ticks read before the frame's burst was handed to the port.  Sender and
 * handler on one host share the invariant TSC, so the handler converts the
 * ticks with its own calibration. */
enum fh_wire_stamp {
    FH_WIRE_STAMP_MAGIC = 0x53544846,   /* "FHTS" */
    FH_WIRE_STAMP_LEN = 16
};

/* Which clock a lane's receive times came from (its latency report says). */
enum fh_rx_clock {
    FH_RX_CLOCK_NONE = 0,          /* full-speed replay: no receive time, rx is when the walk got there */
    FH_RX_CLOCK_CAPTURE = 1,       /* paced replay: when the capture's clock said the packet was due */
    FH_RX_CLOCK_TSC_BURST = 2,     /* live: the TSC when the poll-mode driver's burst returned */
    FH_RX_CLOCK_NIC = 3            /* live: the port's hardware receive timestamp, converted to the TSC clock */
};

typedef struct fh_hist {
    uint64_t count;                /* values recorded */
    uint64_t overflow;             /* of which above 2^35 - 1 ns, 34 s (recorded as that value) */
    uint64_t min, max;             /* ns */
    uint64_t sum;                  /* ns */
    uint64_t counts[26624];        /* FH_HIST_COUNTS buckets */
} fh_hist_t;

void fh_hist_merge(fh_hist_t *into, const fh_hist_t *from);
/* Lowest value v such that `pct` percent of the recorded values are <= v
 * (the bucket's highest equivalent value, as HdrHistogram reports it). */
uint64_t fh_hist_value_at(const fh_hist_t *h, double pct);

/* Per-packet latency stages, TSC-stamped, recorded per lane (start-up
 * allocation).  rx is the receive stamp (DPDK: the burst; paced replay: the
 * time the packet was due, so falling behind shows as latency rather than
 * hiding it; full-speed replay: when the walk reached it).  every: stamp
 * every frame (1) or every Nth.  A stamped frame costs one TSC read (its
 * start is the end of the frame before, when that one was stamped too) and
 * 5-7 histogram updates; stages_every: split the processing into decode,
 * book and publish on every stamped packet (1) or every Nth (the split costs
 * two more TSC reads). */
int fh_lane_enable_latency(fh_lane_t *r, uint32_t every, uint32_t stages_every, char *err, size_t errlen);
/* Copy histogram `stage` (enum fh_lat_stage) out; -1 if latency is not
 * enabled. */
int fh_lane_latency(const fh_lane_t *r, uint32_t stage, fh_hist_t *out);
/* The clock the lane's receive times came from (enum fh_rx_clock; a live
 * source sets it per burst, pacing per packet: the last one used). */
uint32_t fh_lane_rx_clock(const fh_lane_t *r);
uint64_t fh_lane_tsc_hz(const fh_lane_t *r);

/* ------------------------------------------------- capture index (rewind)
 *
 * The re-request ("rewind") server's index of a capture (feedhandler/rewind.py):
 * the input is read by the replay's own input layer and walkers (pcap, pcapng,
 * gzip, zstd, pipes, "-"), frames by the same net parse and MoldUDP64 block
 * walk, with the same counters (fh_index_stats); only what happens to a
 * datagram differs: each message block is copied, as its wire block (u16 BE
 * length + message), into per-session storage by sequence number.  The first
 * copy of a (session, sequence) is kept; later ones count as duplicates.
 * Start-up work, not the hot path: it allocates as it goes. */
typedef struct fh_index fh_index_t;

fh_index_t *fh_index_new(char *err, size_t errlen);
/* Index one input (as fh_lane_replay_file): 0, 1 when the input was corrupt or
 * truncated part-way (what came before is indexed; err says where), -1 with a
 * message (unreadable, empty, unknown format, a BinaryFILE, out of memory),
 * -2 when stopped by fh_index_stop.  format_out: enum fh_format. */
int fh_index_file(fh_index_t *ix, const char *path, int *format_out, char *err, size_t errlen);
/* Ask a running fh_index_file to stop soon; safe from any thread. */
void fh_index_stop(fh_index_t *ix);
/* The counters of the walk, as fh_lane_stats (packets, errors[], ...). */
void fh_index_stats(const fh_index_t *ix, fh_stats_t *out);
/* Message blocks read (every copy), copies of a (session, sequence) already
 * kept, and of those the ones whose length differs from the kept copy. */
void fh_index_counts(const fh_index_t *ix, uint64_t *blocks, uint64_t *duplicates, uint64_t *duplicate_mismatch);
/* Sessions with at least one message, in byte order of their names. */
uint32_t fh_index_sessions(const fh_index_t *ix);
/* Session k: its 10-byte name, its n messages by ascending unique sequence
 * number (seqs[n]), and their blocks: message i is blob[offsets[i] + 2,
 * offsets[i + 1]) after its u16 BE length (offsets[n + 1], offsets[0] = 0,
 * offsets[n] = blob bytes).  Pointers stay valid until fh_index_free.
 * 0, or -1 when k is out of range. */
int fh_index_session(const fh_index_t *ix, uint32_t k, uint8_t *name, uint64_t *n, const uint64_t **seqs,
                     const int64_t **offsets, const uint8_t **blob);
void fh_index_free(fh_index_t *ix);

/* ------------------------------------------------------- SoupBinTCP 4.0 */

/* One logical packet found at the front of a TCP byte stream (csrc/soup.c). */
typedef struct fh_soup_pkt {
    uint8_t type;              /* '+', 'A', 'J', 'S', 'U', 'H', 'Z' (server); 'L', 'R', 'O' (client) */
    uint8_t _pad[3];
    uint32_t len;              /* payload bytes (the packet's length field minus the type byte) */
    const uint8_t *payload;    /* into the caller's bytes */
} fh_soup_pkt_t;

enum fh_soup_status {
    FH_SOUP_NEED_MORE = 0,     /* not a whole packet yet: read more and call again */
    FH_SOUP_BAD_LENGTH = -1,   /* a length of 0, or one that does not fit the packet's type */
    FH_SOUP_BAD_TYPE = -2      /* a type this direction does not send */
};

/* Frame the first packet of p[0, n) sent by a server (from_server = 1) or a
 * client (0): > 0 the bytes it takes (header included), with *out filled;
 * FH_SOUP_NEED_MORE, or a negative enum fh_soup_status: the stream is corrupt
 * (drop the connection). */
long fh_soup_frame(const uint8_t *p, size_t n, int from_server, fh_soup_pkt_t *out);

/* A login request packet (49 bytes, header included) into out: username up to
 * 6, password up to 10 bytes (right-padded with spaces), requested session up
 * to 10 (left-padded; empty = the current session), requested sequence number
 * (0 = from the newest).  Returns 49, or -1 when a field is too long. */
int fh_soup_login_request(uint8_t *out, const char *user, const char *password, const char *session,
                          uint64_t sequence);
/* A Numeric(n) field: ASCII digits left-padded with spaces (all spaces = 0).
 * 0 with *value set, -1 when it is not one or does not fit 64 bits. */
int fh_soup_numeric(const uint8_t *p, size_t n, uint64_t *value);
/* GLIMPSE 5.0 End of Snapshot ('G', Sequence Number Numeric(20)): the
 * MoldUDP64 sequence at which the live feed continues the snapshot.  0 with
 * *sequence set, -1 when the message is not one (length, type, digits). */
int fh_glimpse_end_of_snapshot(const uint8_t *msg, size_t len, uint64_t *sequence);

/* A snapshot's data phase in bulk (after Login Accepted): the whole packets of
 * p[0, n) are taken in order.  Sequenced data is checked (an ITCH 5.0 type and
 * its exact length) and appended to out[acc->used, cap) with its u16 BE
 * length; server heartbeats and debug packets are skipped, unsequenced data
 * counted.  Stops at End of Snapshot (taken, status END, sequence set), at a
 * packet it leaves to the caller (status OTHER: login, end of session), at a
 * bad message or corrupt framing, when out is full (FULL: nothing of that
 * packet taken), or at the end of the whole packets (NEED_MORE).  Returns
 * the bytes of p taken. */
enum fh_glimpse_status {
    FH_GLIMPSE_NEED_MORE = 0, FH_GLIMPSE_END = 1, FH_GLIMPSE_OTHER = 2, FH_GLIMPSE_FULL = 3,
    FH_GLIMPSE_BAD_MESSAGE = 4, FH_GLIMPSE_CORRUPT = 5
};
typedef struct fh_glimpse_acc {
    uint64_t used;             /* bytes of out filled */
    uint64_t messages, instruments, orders, unsequenced;
    uint64_t last_ts;          /* ITCH timestamp of the last message */
    uint64_t sequence;         /* End of Snapshot's, once status is END */
    int32_t  status;           /* enum fh_glimpse_status of the last call */
    uint32_t _pad;
} fh_glimpse_acc_t;
long fh_glimpse_collect(const uint8_t *p, size_t n, uint8_t *out, size_t cap, fh_glimpse_acc_t *acc);

/* ------------------------------------------------ GLIMPSE snapshot builder
 *
 * A GLIMPSE 5.0 snapshot of a replay's books (csrc/tools/glimpse.c): the ITCH 5.0
 * messages that rebuild them from empty, each as a u16 BE length + message
 * (MoldUDP64 block / BinaryFILE record framing), every timestamp ts_ns (ns
 * since midnight).  For every instrument with a directory, in locate order:
 * Stock Directory 'R', then 'H', 'Y', 'J' (LULD collar) and 'h' (operational
 * halt) where the book knows one; then every live order as Add Order 'A', in
 * increasing reference number (time priority).  Tracking numbers 0.  Cold
 * path (one allocation for the sort).  A multi-lane replay: one lane's books.
 * 0 with *len bytes and *messages messages written; -1 when cap is too small
 * (nothing past cap written; *len = bytes needed, *messages = messages in
 * them); -2 when r has no books (decode-only or index mode); -3 out of memory. */
int fh_glimpse_build(const fh_lane_t *r, uint64_t ts_ns, uint8_t *out, size_t cap, size_t *len,
                     uint64_t *messages);
