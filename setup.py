# The C core is built by CFFI (API mode, out-of-line); everything else is in pyproject.toml.
# Beside it, two extensions that are not the feed handler: the trading-day generator
# (feedhandler._gen, csrc/gen/) and the test/measurement hooks (feedhandler._probe,
# csrc/probe/).  The DPDK extension is built only where DPDK is installed (pkg-config libdpdk).
import os
import subprocess
import sys

from setuptools import setup

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "cffi_build"))


def have_dpdk():
    if os.environ.get("FEEDHANDLER_NO_DPDK") == "1":
        return False
    try:
        return subprocess.run(["pkg-config", "--exists", "libdpdk"]).returncode == 0
    except OSError:
        return False


modules = [
    "cffi_build/build_core.py:ffibuilder",
    "cffi_build/build_gen.py:ffibuilder",
    "cffi_build/build_probe.py:ffibuilder",
]
if have_dpdk():
    modules.append("cffi_build/build_dpdk.py:ffibuilder")

setup(cffi_modules=modules)
