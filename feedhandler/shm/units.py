"""What the integers and bytes a reader gets mean, for display: Price(4)
prices (:func:`format_price`, :func:`price_float`) and symbol or venue bytes as
safe text (:func:`text_of`).  numpy only: no C core."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["PRICE_SCALE", "price_float", "format_price", "text_of"]

PRICE_SCALE = 10_000
"""Price(4): an integer price is dollars x 10,000."""


def price_float(price: Any) -> Any:
    """Price(4) integers (a scalar or an array) as float dollars, for display
    and plotting: ``price_float(1234500) == 123.45``.  Compute with the integers
    (exact); convert at the edge."""
    if isinstance(price, np.ndarray):
        return price.astype(np.float64) / PRICE_SCALE
    return int(price) / PRICE_SCALE


def format_price(price: int) -> str:
    """One Price(4) integer as an exact decimal string: ``format_price(1234500) == "123.4500"``."""
    p = int(price)
    sign = "-" if p < 0 else ""
    whole, frac = divmod(abs(p), PRICE_SCALE)
    return "%s%d.%04d" % (sign, whole, frac)


#: Bytes shown as themselves in a symbol or venue name: printable ASCII except
#: the backslash (escaped, so that an escape is never ambiguous).
_PRINTABLE = frozenset(range(0x20, 0x7F)) - {0x5C}


def text_of(raw: bytes) -> str:
    """Symbol or venue bytes from the segment as safe text: trailing spaces and
    NULs dropped, every other byte outside printable ASCII (and the backslash)
    written as ``\\xNN``, so that a hostile feed's control bytes (an ESC
    sequence in a stock directory) never reach a terminal raw."""
    raw = bytes(raw).rstrip(b" \0")
    if all(b in _PRINTABLE for b in raw):
        return raw.decode("ascii")
    return "".join(chr(b) if b in _PRINTABLE else "\\x%02x" % b for b in raw)
