"""Argument types: argparse ``type=`` callables that parse and check one option value.

Each raises ``argparse.ArgumentTypeError`` with a message naming the value and
what would be valid; argparse prints it as ``argument --OPTION: MESSAGE`` (exit 2).
"""

from __future__ import annotations

import argparse
import os
from typing import List

__all__ = ["probability", "positive", "nonneg", "speed", "cpulist", "depth", "pow2"]


def probability(s: str) -> float:
    """A probability in [0, 1)."""
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError("not a number: %r" % s)
    if not 0.0 <= v < 1.0:
        raise argparse.ArgumentTypeError("a probability in [0, 1) is needed, got %s" % s)
    return v


def positive(s: str) -> int:
    """An integer > 0 (``_`` separators and 0x/0o/0b prefixes allowed)."""
    try:
        v = int(s.replace("_", ""), 0)
    except ValueError:
        raise argparse.ArgumentTypeError("not an integer: %r" % s)
    if v <= 0:
        raise argparse.ArgumentTypeError("must be positive, got %s" % s)
    return v


def nonneg(s: str) -> int:
    """An integer >= 0."""
    try:
        v = int(s.replace("_", ""), 0)
    except ValueError:
        raise argparse.ArgumentTypeError("not an integer: %r" % s)
    if v < 0:
        raise argparse.ArgumentTypeError("must not be negative, got %s" % s)
    return v


#: The pacing factors --speed accepts (the C core's own bounds: beyond them
#: a capture's time gaps scaled by 1/speed leave the range of its clock).
SPEED_MIN, SPEED_MAX = 1e-6, 1e6


def speed(s: str) -> float:
    """``max`` (0.0), ``realtime`` (1.0) or a factor in SPEED_MIN..SPEED_MAX."""
    if s == "max":
        return 0.0
    if s == "realtime":
        return 1.0
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError("speed is max, realtime or a positive factor, not %r" % s)
    if not SPEED_MIN <= v <= SPEED_MAX:
        raise argparse.ArgumentTypeError(
            "speed factor must be between %g and %g (or max, realtime), got %s" % (SPEED_MIN, SPEED_MAX, s)
        )
    return v


def cpulist(s: str) -> List[int]:
    """A CPU list such as ``0,1`` or ``2-5``: CPUs of this machine, each once, at most 32."""
    cpus: List[int] = []
    ncpu = os.cpu_count() or 1
    try:
        for part in s.split(","):
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                if hi < lo:
                    raise ValueError
            else:
                lo = hi = int(part)
            # Checked per part, before expanding it: `0-100000` is one short
            # message, not a list of every CPU it names.
            if lo < 0 or hi >= ncpu:
                raise argparse.ArgumentTypeError(
                    "CPU %s does not exist: this machine has CPUs 0-%d" % (_short(str(hi)).strip("'"), ncpu - 1)
                )
            cpus.extend(range(lo, hi + 1))
    except ValueError:
        raise argparse.ArgumentTypeError("not a CPU list (e.g. 0,1 or 2-5): %s" % _short(s))
    if len(set(cpus)) != len(cpus):
        raise argparse.ArgumentTypeError("a CPU is listed twice: %r" % s)
    if len(cpus) > 32:
        raise argparse.ArgumentTypeError("at most 32 cores")
    return cpus


def _short(s: str, limit: int = 40) -> str:
    """``s`` for an error message: repr'd, cut to about ``limit`` characters."""
    return repr(s) if len(s) <= limit else repr(s[:limit]) + "... (%d characters)" % len(s)


def depth(s: str) -> int:
    """Price levels per side, 1..64."""
    v = positive(s)
    if v > 64:
        raise argparse.ArgumentTypeError("depth must be 1..64, got %s" % s)
    return v


def pow2(s: str) -> int:
    """A power of two >= 2."""
    v = positive(s)
    if v < 2 or v & (v - 1):
        raise argparse.ArgumentTypeError("must be a power of two >= 2, got %s" % s)
    return v
