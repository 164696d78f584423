"""The `feedhandler` argument parser, assembled from one module per command."""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from . import book, gen, glimpse_server, replay, rewind_server, run, send, stats
from .base import EXIT_OK

__all__ = ["COMMANDS", "build_parser", "main"]

#: The command modules, in the order `feedhandler --help` lists them.  Each has
#: NAME, register(subparsers) (adds its parser, with func=command) and command(args).
COMMANDS = (replay, run, send, book, stats, gen, rewind_server, glimpse_server)


def version_text() -> str:
    """`feedhandler --version`: the version, then what this install was built
    with (feedhandler.core.build_features())."""
    from .. import __version__
    from ..core import build_features

    def word(v):
        return ("yes" if v else "no") if isinstance(v, bool) else str(v)

    built = " ".join("%s=%s" % (k, word(v)) for k, v in build_features().items())
    return "feedhandler %s\nbuilt with: %s" % (__version__, built)


class _VersionAction(argparse.Action):
    """--version, with the build description read only when asked for (it
    imports the DPDK extension where there is one)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        sys.stdout.write(version_text() + "\n")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="feedhandler",
        description="Low-latency feed handler with a C core: NASDAQ TotalView-ITCH 5.0 over MoldUDP64, "
        "Cboe US Equities Multicast PITCH, and IEX TOPS, DEEP and DEEP+ over IEX-TP.",
        epilog="Run `feedhandler COMMAND --help` for each command's options.",
    )
    p.add_argument(
        "--version",
        action=_VersionAction,
        help="show the version and what this install was built with (zstd, DPDK, sanitizers), and exit",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in COMMANDS:
        module.register(sub)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    """Run one command; returns its exit status (docs/architecture.md lists them)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # `feedhandler replay ... | head`
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return EXIT_OK
