"""C layouts seen from Python: the same sizes and offsets csrc/layout.c asserts
with _Static_assert, so a change on one side fails on the other."""
from feedhandler.core import ffi, lib


def test_msg_layout():
    assert ffi.sizeof("fh_itch_msg_t") == 56
    assert ffi.offsetof("fh_itch_msg_t", "type") == 0
    assert ffi.offsetof("fh_itch_msg_t", "stock_locate") == 2
    assert ffi.offsetof("fh_itch_msg_t", "tracking_number") == 4
    assert ffi.offsetof("fh_itch_msg_t", "timestamp") == 8
    assert ffi.offsetof("fh_itch_msg_t", "u") == 16
    assert ffi.sizeof("fh_itch_A_t") == 32
    assert ffi.sizeof("fh_itch_R_t") == 28
    assert ffi.sizeof("fh_itch_O_t") == 40
    assert ffi.sizeof("fh_itch_I_t") == 40


def test_stats_layout():
    assert ffi.sizeof("fh_stats_t") == 8 * (14 + 32 + 256)
    assert ffi.offsetof("fh_stats_t", "errors") == 8 * 14
    assert ffi.offsetof("fh_stats_t", "by_type") == 8 * (14 + 32)
    assert lib.FH_ERR__COUNT <= 32


def test_cfg_layouts():
    assert ffi.sizeof("fh_replay_cfg_t") == 8
    assert ffi.sizeof("fh_gen_cfg_t") == 64


def test_every_error_has_a_name():
    names = [ffi.string(lib.fh_err_name(i)).decode() for i in range(lib.FH_ERR__COUNT)]
    assert "unknown" not in names and len(set(names)) == len(names)
    assert ffi.string(lib.fh_err_name(lib.FH_ERR__COUNT)) == b"unknown"
