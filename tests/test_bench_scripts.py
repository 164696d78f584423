"""The benchmark scripts are run by hand (numbers, not assertions), so a broken
import or option would only show when someone measures: each must at least
load and explain itself."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = ["bench.py", "bench_book.py", "bench_decode.py", "bench_dpdk.py", "bench_engine.py", "bench_gen.py",
           "bench_latency.py", "latency_report.py", "reader_latency.py"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_loads_and_has_help(script):
    p = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", script), "--help"], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "usage:" in p.stdout
