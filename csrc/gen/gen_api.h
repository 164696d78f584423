/* gen_api.h -- the synthetic trading-day generator's interface (feedhandler._gen).
 *
 * The generator is a tool, not the feed handler: it is its own CFFI extension,
 * built by cffi_build/build_gen.py from csrc/gen/ only, and none of it is in
 * the production core feedhandler._core.  CFFI reads this file verbatim as the
 * extension's cdef, so it holds no preprocessor lines: C files include
 * <stdint.h> and <stddef.h> before it (gen.h does), and include it once.
 * gen.c asserts the struct's layout; tests/test_layout.py asserts it from Python. */

typedef struct fh_gen_cfg {
    const char *out_prefix;    /* writes PREFIX.pcap, PREFIX.bin (ITCH only), PREFIX.json */
    uint64_t messages;         /* messages in the day, all channels together (PITCH: not
                                  counting the Time messages the units add; IEX: the
                                  model's messages, which each feed writes as it does) */
    uint64_t seed;
    uint32_t symbols;
    uint32_t channels;         /* ITCH: channels; PITCH: multicast groups per line; IEX: 1 */
    uint32_t lines;            /* 1 = line A only, 2 = lines A and B */
    uint32_t max_payload;      /* max UDP payload bytes per datagram; default 1358 */
    double loss_a;           /* probability a packet is dropped on line A */
    double loss_b;
    uint32_t batch_ns;         /* packetiser flush window; 0 = default */
    uint32_t heartbeat_ms;     /* heartbeat after this much idle time; 0 = 1000 (MoldUDP64 norm) */
    uint64_t rate;             /* messages per second: 0 = the normal day (04:00-20:00, U-shaped
                                  rate); 1000..100000000 = the whole day compressed into
                                  messages / rate seconds at that flat rate, for benchmarks
                                  replayed at the capture's pace */
    uint32_t protocol;         /* 0 = NASDAQ ITCH 5.0 (MoldUDP64), 1 = Cboe Multicast PITCH,
                                  2 = IEX TOPS 1.6, 3 = IEX DEEP 1.0, 4 = IEX DEEP+ 1.0 (IEX-TP v1) */
    uint32_t units;            /* PITCH units (1..32); 0 = 32.  IEX: sessions in the day
                                  (1..16); 0 = 1.  Ignored for ITCH */
} fh_gen_cfg_t;

/* Generate a synthetic trading day.  Returns 0, or -1 with a message in err.
 * `progress` (may be NULL) is updated with messages generated so far. */
int fh_gen_run(const fh_gen_cfg_t *cfg, volatile uint64_t *progress, char *err, size_t errlen);
