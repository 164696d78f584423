"""The core's ABI is the product's: every function feedhandler._core exposes
(its cdef, csrc/fh_api.h) is called by the package itself -- its Python
modules (feedhandler/, feedhandler/cli/) or the DPDK source (csrc/dpdk/).
What only tests, scripts, benchmarks or fuzz harnesses call is a test hook in
feedhandler._probe (csrc/probe/probe_api.h, implemented in csrc/probe/), so
that a function added to fh_api.h for a test fails here.  Also: what
fh_build_info / feedhandler.core.build_features() and `feedhandler --version`
say about the build."""

import ast
import os
import re
import subprocess
import sys

import pytest

import feedhandler._core as core
import feedhandler._probe as probe
from feedhandler.core import build_features, build_info

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Taken out of fh_api.h (issue 21, item 8): called only by tests, scripts or
# fuzzing, now test hooks in feedhandler._probe.
MOVED_TO_PROBE = {
    "fh_hist_max_ns",
    "fh_hist_record_n",
    "fh_hist_bucket_low",
    "fh_hist_bucket_high",  # histogram helpers
    "fh_shm_read_slot",
    "fh_shm_read_slots",
    "fh_shm_poll_events",  # raw (unwidened) shared-memory readers
    "fh_pitch_decode",
    "fh_pitch_walk_unit",
    "fh_pitch_msg_len",
    "fh_pitch_err_name",  # PITCH reference decoder
}
# Deleted: fh_hist_reset was never called; fh_input_have_zstd became fh_build_info
# (feedhandler.core.build_features()["zstd"]).
DELETED = {"fh_hist_reset", "fh_input_have_zstd"}

# Functions of fh_api.h that are public API for users although the package
# itself never calls them: name -> why.  Keep it small; every entry must be
# in the core and really unused (test_allowlist_is_current).
ALLOWED_UNUSED = {}

MOVE_HINT = (
    "a function only tests, scripts, benchmarks or fuzz harnesses call belongs in feedhandler._probe: "
    "declare it in csrc/probe/probe_api.h and implement it in csrc/probe/ (calling the core's internal "
    "functions through csrc/ headers, the core file added to CORE_SOURCES in cffi_build/build_probe.py), "
    "not in csrc/fh_api.h.  If it is public API for users, add it to ALLOWED_UNUSED in tests/test_abi.py "
    "with the reason"
)


def functions(lib):
    """The functions an extension's lib exposes (its own cdef's, not included ones)."""
    return {n for n in dir(lib) if callable(getattr(lib, n))}


def _python_sources():
    top = os.path.join(ROOT, "feedhandler")
    for dirpath, dirnames, names in os.walk(top):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for n in sorted(names):
            if n.endswith(".py"):
                yield os.path.join(dirpath, n)


C_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
C_CALL = re.compile(r"\b(fh_\w+)\s*\(")


def package_uses():
    """Every fh_* name the package uses: an attribute access (lib.fh_x,
    self._lib.fh_x, ...) in its Python, a call in the DPDK C (comments left out)."""
    used = set()
    for path in _python_sources():
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        used |= {
            node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr.startswith("fh_")
        }
    dpdk = os.path.join(ROOT, "csrc", "dpdk")
    for n in sorted(os.listdir(dpdk)):
        if n.endswith(".c"):
            with open(os.path.join(dpdk, n)) as f:
                used |= set(C_CALL.findall(C_COMMENT.sub(" ", f.read())))
    return used


def test_moved_functions_are_not_in_the_core_abi():
    leaked = sorted((MOVED_TO_PROBE | DELETED) & set(dir(core.lib)))
    assert not leaked, "back in the core's ABI (csrc/fh_api.h): %s; %s" % (", ".join(leaked), MOVE_HINT)


def test_moved_functions_are_probe_hooks():
    missing = sorted(MOVED_TO_PROBE - functions(probe.lib))
    assert not missing, "not in feedhandler._probe: %s" % ", ".join(missing)
    assert not DELETED & set(dir(probe.lib))
    # The PITCH decoder's types went with it.
    for t in ("fh_pitch_msg_t", "fh_pitch_unit_t"):
        with pytest.raises(Exception):
            core.ffi.sizeof(t)
        assert probe.ffi.sizeof(t) > 0


def test_every_core_function_is_used_by_the_package():
    used = package_uses()
    assert "fh_lane_new" in used and "fh_build_info" in used  # the scan itself works
    unused = sorted(functions(core.lib) - used - set(ALLOWED_UNUSED))
    assert not unused, (
        "csrc/fh_api.h declares functions the package itself (feedhandler/*.py, "
        "feedhandler/cli/*.py, csrc/dpdk/*.c) never calls: %s; %s" % (", ".join(unused), MOVE_HINT)
    )


def test_allowlist_is_current():
    used = package_uses()
    for name, why in ALLOWED_UNUSED.items():
        assert why.strip(), name
        assert name in functions(core.lib), "%s is allowed unused but is not in the core" % name
        assert name not in used, "%s is used by the package now: take it out of ALLOWED_UNUSED" % name


def test_dpdk_abi_is_the_cores_plus_its_own():
    """feedhandler._dpdk reads fh_api.h too (followed by csrc/dpdk/fh_dpdk.h)."""
    dpdk = pytest.importorskip("feedhandler._dpdk", reason="no DPDK extension in this install")
    own = functions(dpdk.lib) - functions(core.lib)
    assert functions(core.lib) <= functions(dpdk.lib)
    assert own and all(n.startswith("fh_dpdk_") for n in own), sorted(own)
    unused = sorted(own - package_uses())
    assert not unused, "csrc/dpdk/fh_dpdk.h declares functions the package never calls: %s" % ", ".join(unused)


def test_build_features():
    f = build_features()
    for key in ("zstd", "sanitize", "exact_buffers", "dpdk"):
        assert isinstance(f[key], bool), (key, f)
    assert isinstance(f["stream_buf"], int) and isinstance(f["stream_in"], int), f
    assert 0 < f["stream_in"] and 0 < f["stream_buf"], f
    assert f["compiler"] and " " not in f["compiler"], f
    # scripts/test.sh runs its second pass against a FEEDHANDLER_SANITIZE=1 build,
    # libasan preloaded: a core built with ASan cannot load without it, and only
    # that pass preloads it.
    with open("/proc/self/maps") as maps:
        asan_loaded = "libasan" in maps.read()
    assert f["sanitize"] == asan_loaded, f
    if f["sanitize"]:
        assert f["exact_buffers"], f  # build_core._flags(): -DFH_EXACT_BUFFERS=1 with ASan
    try:
        import feedhandler._dpdk  # noqa: F401

        have_dpdk = True
    except ImportError:
        have_dpdk = False
    assert f["dpdk"] == have_dpdk
    # The C text: key=value words, each key once.
    words = build_info().split()
    keys = [w.partition("=")[0] for w in words]
    assert all("=" in w for w in words) and len(set(keys)) == len(keys), words
    assert set(keys) == set(f) - {"dpdk"}


def test_build_info_truncates_as_snprintf():
    need = core.lib.fh_build_info(core.ffi.NULL, 0)
    assert need == len(build_info().encode())
    small = core.ffi.new("char[]", 8)
    assert core.lib.fh_build_info(small, 8) == need
    assert core.ffi.string(small) == build_info().encode()[:7]


def test_version_says_what_the_install_was_built_with():
    from feedhandler import __version__

    p = subprocess.run(
        [sys.executable, "-m", "feedhandler", "--version"], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "feedhandler " + __version__
    f = build_features()
    built = dict(w.split("=", 1) for w in lines[1].split(": ", 1)[1].split())
    assert lines[1].startswith("built with: ")
    assert built["zstd"] == ("yes" if f["zstd"] else "no") and built["dpdk"] == ("yes" if f["dpdk"] else "no")
    assert built["sanitize"] == ("yes" if f["sanitize"] else "no")
    assert built["stream_buf"] == str(f["stream_buf"])
