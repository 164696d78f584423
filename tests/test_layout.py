"""C layouts seen from Python: the same sizes and offsets csrc/tools/layout.c asserts
with _Static_assert, and every numpy dtype in feedhandler.shm checked field by
field against the C structs through CFFI, so a change on one side fails here."""

import numpy as np
import pytest

import feedhandler._probe as probe
from feedhandler import _gen, shm
from feedhandler.core import ffi, lib


def test_msg_layout():
    assert ffi.sizeof("fh_book_op_t") == 56
    assert ffi.offsetof("fh_book_op_t", "type") == 0
    assert ffi.offsetof("fh_book_op_t", "stock_locate") == 2
    assert ffi.offsetof("fh_book_op_t", "tracking_number") == 4
    assert ffi.offsetof("fh_book_op_t", "timestamp") == 8
    assert ffi.offsetof("fh_book_op_t", "u") == 16
    assert ffi.sizeof("fh_itch_A_t") == 32
    assert ffi.sizeof("fh_itch_R_t") == 28
    assert ffi.sizeof("fh_itch_O_t") == 40
    assert ffi.sizeof("fh_itch_I_t") == 40


def test_pitch_layout():
    """The PITCH reference decoder's structs (a test hook: feedhandler._probe;
    csrc/probe/pitch_decode.c asserts the same numbers)."""
    ffi, lib = probe.ffi, probe.lib
    assert ffi.sizeof("fh_pitch_msg_t") == 88
    assert [
        ffi.offsetof("fh_pitch_msg_t", f)
        for f in ("type", "side", "flags", "status", "reg_sho_action", "auction_type", "customer_indicator")
    ] == list(range(7))
    assert [
        ffi.offsetof("fh_pitch_msg_t", f)
        for f in (
            "time_offset_ns",
            "seconds",
            "order_id",
            "exec_id",
            "qty",
            "remaining",
            "price",
            "indicative_price",
            "auction_only_price",
            "sell_qty",
            "participant_id",
            "symbol",
            "reserved",
        )
    ] == [8, 12, 16, 24, 32, 36, 40, 48, 56, 64, 68, 72, 80]
    assert ffi.sizeof("fh_pitch_unit_t") == 8
    assert [ffi.offsetof("fh_pitch_unit_t", f) for f in ("length", "count", "unit", "sequence")] == [0, 2, 3, 4]
    names = [ffi.string(lib.fh_pitch_err_name(i)).decode() for i in range(lib.FH_PITCH_ERR__COUNT)]
    assert "unknown" not in names and len(set(names)) == len(names)
    assert ffi.string(lib.fh_pitch_err_name(lib.FH_PITCH_ERR__COUNT)) == b"unknown"


def test_stats_layout():
    assert ffi.sizeof("fh_book_counters_t") == 8 * 20
    assert ffi.sizeof("fh_stats_t") == 8 * (14 + 64 + 256 + 20 + 23)
    assert [
        ffi.offsetof("fh_stats_t", f)
        for f in (
            "snapshots",
            "snapshot_messages",
            "snapshot_failures",
            "snapshot_buffered",
            "snapshot_contained",
            "snapshot_recover_ns",
        )
    ] == [8 * (14 + 64 + 256 + 30 + i) for i in range(6)]
    assert [
        ffi.offsetof("fh_stats_t", f)
        for f in ("pkt_applied", "pkt_duplicate", "pkt_rejected", "pkt_held", "rx_time_back")
    ] == [8 * (14 + 64 + 256 + 20 + 5 + i) for i in range(5)]
    assert [
        ffi.offsetof("fh_stats_t", f) for f in ("pitch_packets", "unit_clears", "cbbo_full", "pkt_late", "late")
    ] == [8 * (14 + 64 + 256 + 36 + i) for i in range(5)]
    assert ffi.offsetof("fh_stats_t", "nic_imissed") == 8 * (14 + 64 + 256 + 20 + 2)
    assert ffi.offsetof("fh_stats_t", "session_changes") == 8 * (14 + 64 + 256 + 20)
    assert ffi.offsetof("fh_stats_t", "errors") == 8 * 14
    assert ffi.offsetof("fh_stats_t", "by_type") == 8 * (14 + 64)
    assert ffi.offsetof("fh_stats_t", "book") == 8 * (14 + 64 + 256)
    assert [ffi.offsetof("fh_stats_t", f) for f in ("iex_packets", "iex_clears")] == [
        8 * (14 + 64 + 256 + 41 + i) for i in range(2)
    ]
    assert lib.FH_ERR__COUNT <= 64  # errors[64]


def test_cfg_layouts():
    assert ffi.sizeof("fh_lane_cfg_t") == 64
    assert ffi.offsetof("fh_lane_cfg_t", "speed") == 48
    assert ffi.offsetof("fh_lane_cfg_t", "shm_name") == 56
    # The generator's config is in its own extension (csrc/gen/gen.c asserts the same).
    assert _gen.ffi.sizeof("fh_gen_cfg_t") == 80
    assert _gen.ffi.offsetof("fh_gen_cfg_t", "rate") == 64
    assert _gen.ffi.offsetof("fh_gen_cfg_t", "protocol") == 72
    assert _gen.ffi.offsetof("fh_gen_cfg_t", "units") == 76


def test_shm_header_layout():
    assert ffi.sizeof("fh_shm_header_t") == lib.FH_SHM_HEADER_SIZE == 4096
    assert ffi.offsetof("fh_shm_header_t", "ring_head") == 256  # each lane's head on its own cache line
    assert ffi.sizeof("fh_shm_lane_head_t") == 64
    assert ffi.offsetof("fh_shm_header_t", "n_lanes") == 104
    assert [
        ffi.offsetof("fh_shm_header_t", f) for f in ("tsc_base", "tsc_base_ns", "tsc_mult", "tsc_hz", "writer_start")
    ] == [112, 120, 128, 136, 144]
    assert ffi.offsetof("fh_shm_header_t", "magic") == 0
    assert ffi.offsetof("fh_shm_header_t", "state") == 88


def test_shm_states_match_c():
    # csrc/tools/layout.c asserts the same values; a reader decodes the header's state with shm.STATES.
    from feedhandler import shm

    assert shm.STATES == {
        lib.FH_SHM_STARTING: "starting",
        lib.FH_SHM_RUNNING: "running",
        lib.FH_SHM_FINISHED: "finished",
        lib.FH_SHM_STOPPED: "stopped",
    }
    assert (lib.FH_SHM_STARTING, lib.FH_SHM_RUNNING, lib.FH_SHM_FINISHED, lib.FH_SHM_STOPPED) == (0, 1, 2, 3)


def _check_dtype(dtype, cstruct, skip=()):
    for name, field in ffi.typeof(cstruct).fields:
        if name.startswith("_") or name in skip:
            continue
        assert name in dtype.names, (cstruct, name)
        off = dtype.fields[name][1]
        assert off == field.offset, (cstruct, name, off, field.offset)
        assert dtype.fields[name][0].itemsize == ffi.sizeof(field.type), (cstruct, name)


@pytest.mark.parametrize("depth", [1, 5, 10, 64])
def test_slot_dtype_matches_c(depth):
    assert ffi.sizeof("fh_shm_slot_t") == lib.FH_SHM_SLOT_FIXED == 192
    dt = shm.slot_dtype(depth)
    _check_dtype(dt, "fh_shm_slot_t")
    # Level arrays follow the fixed part in the order fh_api.h documents.
    off = lib.FH_SHM_SLOT_FIXED
    for side in ("bid", "ask"):
        for name, width in (("price", 4), ("orders", 4), ("shares", 8)):
            f = dt.fields["%s_%s" % (side, name)]
            assert f[1] == off and f[0].shape == (depth,) and f[0].base.itemsize == width
            off += width * depth
    assert dt.itemsize == (off + 63) // 64 * 64


def test_event_dtype_matches_c():
    assert ffi.sizeof("fh_shm_event_t") == lib.FH_SHM_EVENT_SIZE == shm.SHM_EVENT_DTYPE.itemsize == 64
    _check_dtype(shm.SHM_EVENT_DTYPE, "fh_shm_event_t")


@pytest.mark.parametrize("depth", [1, 5, 10, 64])
def test_reader_slot_dtype_matches_c(depth):
    """What book()/copy_books() return: fh_read_slot_t, then six int64[depth] arrays."""
    assert ffi.sizeof("fh_read_slot_t") == lib.FH_SHM_SLOT_FIXED
    dt = shm.book_dtype(depth)
    _check_dtype(dt, "fh_read_slot_t")
    off = lib.FH_SHM_SLOT_FIXED
    for side in ("bid", "ask"):
        for name in ("price", "orders", "shares"):
            f = dt.fields["%s_%s" % (side, name)]
            assert f[1] == off and f[0].shape == (depth,) and f[0].base == np.dtype("<i8")
            off += 8 * depth
    assert dt.itemsize == (off + 63) // 64 * 64 == lib.fh_read_slot_size(depth)
    # Every price and quantity is signed 64-bit; only timestamps, seq and match numbers are unsigned.
    for name in dt.names:
        base = dt.fields[name][0].base
        if base.kind in "iu" and base.itemsize == 8:
            assert (base.kind == "u") == (
                name in ("seq", "exch_ts", "rx_ts", "publish_ts", "last_trade_match", "last_trade_ts")
            ), name


def test_reader_event_dtype_matches_c():
    assert ffi.sizeof("fh_read_event_t") == shm.EVENT_DTYPE.itemsize == 72
    _check_dtype(shm.EVENT_DTYPE, "fh_read_event_t")
    for name in ("price1", "price2", "qty1", "qty2"):
        assert shm.EVENT_DTYPE.fields[name][0] == np.dtype("<i8")


def test_every_error_has_a_name():
    names = [ffi.string(lib.fh_err_name(i)).decode() for i in range(lib.FH_ERR__COUNT)]
    assert "unknown" not in names and len(set(names)) == len(names)
    assert ffi.string(lib.fh_err_name(lib.FH_ERR__COUNT)) == b"unknown"
