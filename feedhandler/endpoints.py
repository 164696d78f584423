"""``HOST:PORT`` endpoints: the one parser every option, config key and API uses.

Two flavours, chosen by the caller:

* ``parse_endpoint(value, what)`` (the default, ``ipv4=True``): an IPv4 address
  literal and a port 1..65535, e.g. ``"233.54.12.111:26477"``: feed lines and
  re-request servers, where a name lookup at start-up would be a surprise.
  ``multicast=True`` also requires a multicast group (224.0.0.0/4).
* ``parse_endpoint(value, what, ipv4=False, allow_port_zero=True)``: any host
  (a name, an IPv4 address, or an IPv6 address in brackets: ``[::1]:26500``),
  e.g. a listening address where port 0 means any free port.

A ``(host, port)`` tuple is accepted too and checked the same way.  Errors are
:class:`~feedhandler.errors.EndpointError` (a ``ConfigError``) whose message
names the setting, the value and what would be valid.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Tuple, Union

from .errors import EndpointError

__all__ = ["Endpoint", "EndpointError", "parse_endpoint", "format_endpoint", "ipv4_to_int"]

#: A parsed endpoint: (host, port).
Endpoint = Tuple[str, int]


def _port(text: str, what: str, value: object, allow_zero: bool) -> int:
    lo = 0 if allow_zero else 1
    if not (text.isascii() and text.isdigit()):
        raise EndpointError(what, value, "port %r is not a number" % text)
    port = int(text)
    if not lo <= port <= 65535:
        raise EndpointError(what, value, "port %d out of range %d..65535" % (port, lo))
    return port


def parse_endpoint(
    value: Union[str, Tuple[str, int]],
    what: str = "endpoint",
    *,
    ipv4: bool = True,
    multicast: bool = False,
    allow_port_zero: bool = False,
) -> Endpoint:
    """Parse ``"HOST:PORT"`` (or check a ``(host, port)`` tuple) into ``(host, port)``.

    ``what`` names the setting in error messages (``--rerequest``, ``config c.toml,
    channel 'x', line_a``).  With ``ipv4`` (default) the host must be an IPv4 address
    literal, returned normalised; ``multicast`` also requires 224.0.0.0/4.  Without
    ``ipv4`` the host may be a name or an IPv6 address in brackets (returned without
    them).  ``allow_port_zero`` accepts port 0 ("any free port", for listening).

    Raises :class:`EndpointError` naming ``what`` and the reason."""
    if isinstance(value, tuple) and len(value) == 2:
        host, port = value
        if not isinstance(host, str) or isinstance(port, bool) or not isinstance(port, int):
            raise EndpointError(what, value, "expected (host: str, port: int), got %r" % (value,))
        text = "%s:%d" % (("[%s]" % host) if ":" in host else host, port)
        return parse_endpoint(text, what, ipv4=ipv4, multicast=multicast, allow_port_zero=allow_port_zero)
    if ipv4:
        if not isinstance(value, str) or value.count(":") != 1:
            raise EndpointError(what, value, 'expected "IPv4:PORT", got %r' % (value,))
        host, port_s = value.split(":")
        try:
            ip = ipaddress.IPv4Address(host)
        except ValueError:
            raise EndpointError(what, value, "%r is not an IPv4 address" % host) from None
        if multicast and not ip.is_multicast:
            raise EndpointError(what, value, "%s is not a multicast group (224.0.0.0/4)" % host)
        return str(ip), _port(port_s, what, value, allow_port_zero)
    if not isinstance(value, str) or ":" not in value:
        raise EndpointError(what, value, 'expected "HOST:PORT", got %r' % (value,))
    if value.startswith("["):
        host, sep, port_s = value[1:].partition("]:")
        if not sep:
            raise EndpointError(what, value, 'expected "[IPv6]:PORT", got %r' % value)
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise EndpointError(what, value, "%r is not an IPv6 address" % host) from None
    else:
        host, _, port_s = value.rpartition(":")  # an unbracketed IPv6 host keeps its colons
    if not host:
        raise EndpointError(what, value, "no host before the port in %r (e.g. 127.0.0.1:%s)" % (value, port_s))
    if multicast:
        try:
            is_group = ipaddress.ip_address(host).is_multicast
        except ValueError:
            is_group = False
        if not is_group:
            raise EndpointError(what, value, "%s is not a multicast group" % host)
    return host, _port(port_s, what, value, allow_port_zero)


def format_endpoint(endpoint: Endpoint) -> str:
    """``(host, port)`` as ``HOST:PORT`` (IPv6 hosts in brackets)."""
    host, port = endpoint
    return "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)


def ipv4_to_int(host: str, what: str = "host", resolve: bool = False) -> int:
    """An IPv4 address as the 32-bit integer the C core takes (network order value).

    With ``resolve`` a host name is looked up first (``gethostbyname``); without, only
    an address literal is accepted.  Raises :class:`EndpointError` naming ``what``."""
    try:
        return int(ipaddress.IPv4Address(host))
    except ValueError:
        if not resolve:
            raise EndpointError(what, host, "%r is not an IPv4 address" % (host,)) from None
    try:
        return int(ipaddress.IPv4Address(socket.gethostbyname(host)))
    except (OSError, UnicodeError, ValueError):
        raise EndpointError(what, host, "cannot resolve %r to an IPv4 address" % (host,)) from None
