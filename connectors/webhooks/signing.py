"""Signing webhook deliveries, and verifying them on the receiving side (Stripe-like scheme).

Every delivery carries::

    X-Streamscribe-Timestamp: 1767225600                       (Unix seconds when this attempt was sent)
    X-Streamscribe-Signature: sha256=<hex HMAC-SHA256(secret, "{timestamp}.{raw body}")>

Signing the timestamp with the body lets a receiver reject replays of an old delivery: ``verify`` refuses a
timestamp further than ``tolerance_s`` from its clock. The header may hold several comma-separated signatures
(e.g. under an old and a new secret during a rotation); one valid signature is enough.

Only the standard library is used, so receivers can copy this module as it is.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SCHEME = "sha256"
EVENT_HEADER = "X-Streamscribe-Event"
DELIVERY_HEADER = "X-Streamscribe-Delivery"
TIMESTAMP_HEADER = "X-Streamscribe-Timestamp"
SIGNATURE_HEADER = "X-Streamscribe-Signature"
DEFAULT_TOLERANCE_S = 300


def _bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def signed_content(timestamp: int | str, body: str | bytes) -> bytes:
    """What the signature covers: ``b"{timestamp}." + raw body``."""
    return f"{timestamp}.".encode("ascii") + _bytes(body)


def sign(secret: str | bytes, timestamp: int | str, body: str | bytes) -> str:
    """The ``X-Streamscribe-Signature`` value for ``body`` sent at ``timestamp``: ``sha256=<hex>``."""
    digest = hmac.new(_bytes(secret), signed_content(timestamp, body), hashlib.sha256).hexdigest()
    return f"{SCHEME}={digest}"


def verify(secret: str | bytes, timestamp: int | str | None, body: str | bytes, signature: str | None, *,
           tolerance_s: float | None = DEFAULT_TOLERANCE_S, now: float | None = None) -> bool:
    """True if ``signature`` (the header value) signs ``body`` at ``timestamp`` (the header value) under
    ``secret``, and the timestamp is within ``tolerance_s`` of ``now`` (None: do not check the age).

    ``body`` must be the raw request body, byte for byte, not re-serialized JSON.
    """
    if not timestamp or not signature:
        return False
    ts = str(timestamp).strip()
    if not ts.isdigit() or len(ts) > 12:
        return False
    if tolerance_s is not None and abs((time.time() if now is None else now) - int(ts)) > tolerance_s:
        return False
    expected = sign(secret, ts, body)
    candidates = [part.strip() for part in signature.split(",")]
    # compare against every candidate (no early exit) so timing says nothing about which one matched
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(candidate.encode("ascii", "replace"), expected.encode("ascii"))
    return matched


def delivery_headers(secret: str | bytes, body: str | bytes, *, event_type: str, delivery_id: str,
                     timestamp: int | None = None) -> dict[str, str]:
    """The headers of one delivery attempt (each attempt is signed afresh with its own timestamp)."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "Content-Type": "application/json",
        EVENT_HEADER: event_type,
        DELIVERY_HEADER: delivery_id,
        TIMESTAMP_HEADER: str(ts),
        SIGNATURE_HEADER: sign(secret, ts, body),
    }
