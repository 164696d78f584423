"""feedhandler: kernel-bypass, low-latency NASDAQ TotalView-ITCH 5.0 feed handler.

The decoding, sessions and books run in a C core built through CFFI
(``feedhandler._core``); this package is the thin Python around it.
"""
__version__ = "0.1.0"
