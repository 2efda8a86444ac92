"""Which URLs a webhook subscription may name.

The platform sends requests to these URLs from inside its own network, so an unchecked URL would let a
tenant probe or call internal services (server-side request forgery). Two layers guard against it:

- ``check_url`` when a subscription is created or changed: http(s) only, a host, no credentials in the
  URL, and (unless private targets are allowed) no loopback, private, link-local or otherwise non-global IP
  literal and no obviously internal name (``localhost``, ``*.local``, ``*.internal`` ...);
- ``blocked_address`` at delivery time, on every address the host name resolves to (a public name can
  point at 127.0.0.1, or change to it later), used by the delivery loop's resolver.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit, urlunsplit

MAX_URL_LENGTH = 2048
INTERNAL_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain", ".home.arpa", ".lan", ".intranet")
INTERNAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback", "metadata",
                  "metadata.google.internal")


class TargetError(ValueError):
    """The URL cannot be a webhook target; the message says why (safe to show to the caller)."""


def blocked_address(address: str) -> bool:
    """True for an address a webhook must not reach: anything not globally routable (loopback, private,
    link-local, carrier-grade NAT, reserved, documentation, unspecified) and multicast."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return True
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def _ip_literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]").split("%", 1)[0]))
    except ValueError:
        return None


def check_url(url: object, *, allow_private: bool = False) -> str:
    """The URL, normalized (scheme and host lower-case, no fragment), if it may be a webhook target;
    else ``TargetError``."""
    if not isinstance(url, str) or not url.strip():
        raise TargetError("url must be a non-empty string")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise TargetError(f"url must be at most {MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise TargetError("url must not contain whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetError(f"url is not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise TargetError("url must be an http:// or https:// URL")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise TargetError("url must name a host")
    if parts.username is not None or parts.password is not None:
        raise TargetError("url must not carry credentials; deliveries are authenticated by their signature")
    if port == 0:
        raise TargetError("url must not use port 0")
    literal = _ip_literal(host)
    if not allow_private:
        if literal is not None and blocked_address(literal):
            raise TargetError(f"url points at a non-public address ({literal})")
        if literal is None and (host in INTERNAL_NAMES or host.endswith(INTERNAL_SUFFIXES) or "." not in host):
            raise TargetError(f"url points at an internal host name ({host})")
    return urlunsplit((scheme, parts.netloc.lower(), parts.path or "/", parts.query, ""))
