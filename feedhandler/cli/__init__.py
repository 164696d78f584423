"""The `feedhandler` command line (docs/architecture.md gives the contract).

One module per command (:mod:`.replay`, :mod:`.run`, :mod:`.send`, :mod:`.book`, :mod:`.stats`,
:mod:`.gen`, :mod:`.rewind_server`, :mod:`.glimpse_server`), each with ``register(subparsers)`` and
``command(args)``; shared: :mod:`.argtypes` (argument types), :mod:`.options`
(the pipeline option group and the one ReplayConfig built from it),
:mod:`.output` (printing and JSON files), :mod:`.base` (exit statuses),
:mod:`.parser` (the parser and :func:`main`, the ``feedhandler`` entry point).

Nothing here imports numpy or the C core until a command needs it.
"""

from __future__ import annotations

from .base import EXIT_INPUT, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from .output import print_stats
from .parser import build_parser, main

__all__ = ["main", "build_parser", "print_stats", "EXIT_OK", "EXIT_INPUT", "EXIT_USAGE", "EXIT_INTERRUPTED"]
