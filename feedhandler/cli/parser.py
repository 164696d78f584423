"""The `feedhandler` argument parser, assembled from one module per command."""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from . import book, gen, glimpse_server, replay, rewind_server, run, stats
from .base import EXIT_OK

__all__ = ["COMMANDS", "build_parser", "main"]

#: The command modules, in the order `feedhandler --help` lists them.  Each has
#: NAME, register(subparsers) (adds its parser, with func=command) and command(args).
COMMANDS = (replay, run, book, stats, gen, rewind_server, glimpse_server)


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__
    p = argparse.ArgumentParser(
        prog="feedhandler",
        description="Low-latency NASDAQ TotalView-ITCH 5.0 / MoldUDP64 feed handler with a C core.",
        epilog="Run `feedhandler COMMAND --help` for each command's options.")
    p.add_argument("--version", action="version", version="feedhandler " + __version__)
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
