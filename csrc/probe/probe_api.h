/* probe_api.h -- test and measurement hooks (feedhandler._probe), kept out of
 * the production core feedhandler._core and its ABI: what only tests,
 * scripts, benchmarks or fuzz harnesses call belongs here, not in fh_api.h
 * (tests/test_abi.py holds every function of fh_api.h to a use by the
 * package itself).
 *
 * Built by cffi_build/build_probe.py from csrc/probe/ plus the core sources
 * these need (tsc.c, shm.c, pitch.c); its FFI includes the core's
 * (ffi.include), so fh_hist_t and the shared-memory types are the core's own:
 * a histogram made with feedhandler.core.ffi can be passed here.  CFFI reads
 * this file verbatim as the extension's cdef, so it holds no preprocessor
 * lines: C files include fh_api.h (through fh_common.h) before it, and
 * include it once. */

/* Torture writer for the torn-read test (tests/test_shm.py): updates of slot
 * `locate` for k = first_k .. first_k + iterations - 1, every level field
 * derived from k (bid_price[i] = k + i, ask_price[i] = k + 1000 + i, shares =
 * k * (i + 1), orders = k ^ i; updates = exch_ts = last_trade_price = k), plus
 * one event per update on lane 0's ring with price1 = k, qty1 = k * 3,
 * qty2 = ~k & INT64_MAX (a reader sees int64 quantities), exch_ts = k.  `base` is a whole segment the core created
 * (fh_lane_shm). */
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

/* ------------------------------------------------------------ histograms
 * (tests/test_latency.py, scripts/bench_latency.py, scripts/reader_latency.py) */

uint64_t fh_hist_max_ns(void);    /* 2^35 - 1 ns (34 s): larger values count as overflow, recorded as it */
/* Record n values, as the pipeline records each (hist.h fh_hist_record). */
void fh_hist_record_n(fh_hist_t *h, const uint64_t *values, size_t n);
/* Lowest and highest value that share bucket `index`. */
uint64_t fh_hist_bucket_low(uint32_t index);
uint64_t fh_hist_bucket_high(uint32_t index);

/* ------------------------------------------------ raw shared-memory reads
 *
 * The core's reader side before widening (csrc/shm.c, declared for the core
 * in shm.h): slots and events as the writer laid them out (fh_shm_slot_t and
 * its u32/u64 level arrays, fh_shm_event_t).  The package reads through the
 * widened readers of fh_api.h (fh_shm_read_book(s), fh_shm_read_events); these
 * let tests compare the two (tests/test_reader_api.py), and the fuzz harnesses
 * call them through shm.h. */

/* Consistent copy of slot `locate` (slot_size bytes into out); returns as
 * fh_shm_read_book. */
int fh_shm_read_slot(const uint8_t *base, uint32_t locate, uint8_t *out, uint32_t max_spins);
/* Consistent copies of slots [first, first+n) into out; returns how many were
 * copied (stops at the first one that stays busy). */
uint32_t fh_shm_read_slots(const uint8_t *base, uint32_t first, uint32_t n, uint8_t *out, uint32_t max_spins);
/* As fh_shm_read_events, into raw ring events. */
uint32_t fh_shm_poll_events(const uint8_t *base, uint32_t lane, uint64_t *cursor, fh_shm_event_t *out, uint32_t max,
                            uint64_t *lapped);

/* ---------------------------------------- Cboe Multicast PITCH decoder */

/* Cboe US Equities Multicast PITCH (docs/pitch-spec-notes.md): a reference
 * decoder (csrc/probe/pitch_decode.c) that the tests check the spec notes,
 * the generator and the scapy layers against, and that fuzz/fuzz_pitch.c
 * fuzzes.  The replay pipeline does not use it: csrc/pitch_pipe.c reads each
 * message straight into book operations, with the same length table
 * (fh_pitch_len_table, pitch.c).  Every one of the 20 message
 * types (csrc/pitch_spec.h) decodes into this one normalized struct; a field
 * a type does not carry is 0 (symbol: 8 spaces).  Which field holds what:
 *   side                 Side Indicator 'B'/'S' (Add x3, Trade x3)
 *   flags                Add Flags (Add x3), Modify Flags (Modify x2)
 *   status               Trading Status (0x31)
 *   reg_sho_action       Reg SHO Action (0x31)
 *   auction_type         Auction Type (0x95, 0x96)
 *   customer_indicator   Customer Indicator (Add Expanded)
 *   reserved[2]          Trading Status Reserved 1 and 2 (0x31)
 *   time_offset_ns       Time Offset: ns since the unit's last Time (all but Time)
 *   seconds              Time: seconds since midnight, Eastern (0x20)
 *   order_id             Order ID (Add x3, Executed x2, Reduce x2, Modify x2, Delete, Trade x3)
 *   exec_id              Execution ID (Executed x2, Trade x3, Trade Break)
 *   qty                  Quantity (Add, Trade; Modify: the new size), Executed
 *                        Quantity (0x23, 0x24), Canceled Quantity (Reduce),
 *                        Buy Shares (0x95), Shares (0x96); short u16 widened
 *   remaining            Remaining Quantity (0x24)
 *   sell_qty             Sell Shares (0x95)
 *   price                Price (Add, Modify, Trade, 0x24 execution price, 0x96),
 *                        Reference Price (0x95)
 *   indicative_price     Indicative Price (0x95)
 *   auction_only_price   Auction Only Price (0x95)
 *   participant_id       Participant ID (Add Expanded), space-padded
 *   symbol               6- (Long/Short) or 8-byte (Expanded, 0x31, 0x95,
 *                        0x96) symbol, space-padded to 8, not NUL-terminated
 * Prices are ALWAYS 4 implied decimals (1/10000 USD, ITCH Price(4) units) in
 * 64 bits: long prices as sent (never truncated), short prices (2 implied
 * decimals) multiplied by 100. */
typedef struct fh_pitch_msg {
    uint8_t type;                 /* message type byte (0x20 ...) */
    uint8_t side;
    uint8_t flags;
    uint8_t status;
    uint8_t reg_sho_action;
    uint8_t auction_type;
    uint8_t customer_indicator;
    uint8_t _pad0;
    uint32_t time_offset_ns;
    uint32_t seconds;
    uint64_t order_id;
    uint64_t exec_id;
    uint32_t qty;
    uint32_t remaining;
    uint64_t price;
    uint64_t indicative_price;
    uint64_t auction_only_price;
    uint32_t sell_qty;
    char participant_id[4];
    char symbol[8];
    uint8_t reserved[2];
    uint8_t _pad1[6];
} fh_pitch_msg_t;

/* The 8-byte Sequenced Unit Header in front of every PITCH datagram. */
typedef struct fh_pitch_unit {
    uint16_t length;               /* Hdr Length: whole payload, this header included */
    uint8_t count;                /* Hdr Count: messages that follow; 0 = heartbeat */
    uint8_t unit;                 /* Hdr Unit */
    uint32_t sequence;             /* Hdr Sequence: of the first message; 0 = unsequenced */
} fh_pitch_unit_t;

/* Why fh_pitch_walk_unit skipped part of a unit: indexes of its errors[]
 * array (its own numbering, apart from enum fh_err).  Names: fh_pitch_err_name(). */
enum fh_pitch_err {
    FH_PITCH_ERR_TRUNCATED = 0,     /* payload shorter than the 8-byte unit header: nothing walked */
    FH_PITCH_ERR_HDR_LENGTH = 1,    /* Hdr Length != payload length (walked within the payload) */
    FH_PITCH_ERR_COUNT_OVERRUN = 2, /* Hdr Count says more messages than the payload holds: walk stopped */
    FH_PITCH_ERR_ZERO_LENGTH = 3,   /* a message Length byte < 2 (cannot hold its type): walk stopped */
    FH_PITCH_ERR_MSG_OVERRUN = 4,   /* a message's Length runs past the payload: walk stopped */
    FH_PITCH_ERR_UNKNOWN_TYPE = 5,  /* type not in pitch_spec.h: skipped by its Length */
    FH_PITCH_ERR_BAD_LENGTH = 6,    /* known type, Length != the type's length: skipped by its Length */
    FH_PITCH_ERR_TRAILING = 7,      /* bytes left after the last counted message */
    FH_PITCH_ERR_OUT_FULL = 8,      /* decoded but not stored: out[] was full */
    FH_PITCH_ERR__COUNT = 9
};

const char *fh_pitch_err_name(int err);

/* Wire length of a PITCH type's message (Length and Type bytes included);
 * 0 if the type is not one of the 20 (csrc/pitch_spec.h). */
uint32_t fh_pitch_msg_len(uint8_t type);

/* Decode one PITCH message of exactly `len` bytes (its Length byte first):
 * enum fh_decode_result.  The Length byte must equal len and the type's length. */
int fh_pitch_decode(const uint8_t *p, size_t len, fh_pitch_msg_t *out);

/* Walk one PITCH datagram payload: the unit header into *hdr (may be NULL),
 * then up to Hdr Count messages, each decoded into out[0..cap).  Returns how
 * many were stored; every skip is counted in errors[FH_PITCH_ERR__COUNT]
 * (may be NULL).  Never reads past payload + len. */
size_t fh_pitch_walk_unit(const uint8_t *payload, size_t len, fh_pitch_unit_t *hdr, fh_pitch_msg_t *out, size_t cap,
                          uint64_t *errors);

/* ------------------------------------ hardware receive timestamps
 *
 * The DPDK source's conversion of a port's receive timestamps (device ticks)
 * to the TSC clock (csrc/dpdk/hw_clock.h), testable without a NIC
 * (tests/test_hw_clock.py). */

/* The scale fh_hw_clock_scale sets from `ticks` device ticks measured over
 * `ns` ns: ns per tick, 32.32 fixed point; 0 when the interval gives none. */
uint64_t fh_hw_clock_probe_scale(uint64_t ticks, uint64_t ns);
/* A device stamp in TSC ns since the epoch (fh_hw_clock_ns) for the scale
 * `mult` and the anchor (dev0 device ticks, ns0 TSC ns). */
uint64_t fh_hw_clock_probe_ns(uint64_t mult, uint64_t dev0, uint64_t ns0, uint64_t stamp);
