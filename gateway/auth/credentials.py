"""Secrets: password hashes (argon2), API keys and refresh tokens (random, stored as SHA-256), JWTs (joserfc,
the JOSE implementation of the authlib project, which deprecates its older ``authlib.jose``).

API keys look like ``ssk_<key id>_<secret>`` and refresh tokens ``ssr_<token id>_<secret>``: the id finds the
row, the secret is compared in constant time with its stored hash. Both secrets have 256 bits of entropy, so
a fast hash is enough; passwords, which people choose, get argon2.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

_hasher = PasswordHasher()
ISSUER = "streamscribe"
KEY_PREFIX = "ssk"
REFRESH_PREFIX = "ssr"
_CLAIMS = jwt.JWTClaimsRegistry(iss={"essential": True, "value": ISSUER}, exp={"essential": True})


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, stored: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except VerificationError:
        return False


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Minted:
    token: str  # shown once to the caller
    token_id: str
    secret_hash: str


def mint(prefix: str) -> Minted:
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return Minted(f"{prefix}_{token_id}_{secret}", token_id, _digest(secret))


def split(token: str, prefix: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed token with this prefix, else None."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != prefix or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(_digest(secret), stored_hash)


class TokenError(Exception):
    pass


def encode_access(secret: str, claims: dict[str, Any], ttl: int) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "iat": now, "exp": now + ttl, "typ": "access", **claims}
    return jwt.encode({"alg": "HS256"}, body, OctKey.import_key(secret))


def decode_access(secret: str, token: str) -> dict[str, Any]:
    try:
        decoded = jwt.decode(token, OctKey.import_key(secret), algorithms=["HS256"])
        _CLAIMS.validate(decoded.claims)
    except (JoseError, ValueError) as exc:
        raise TokenError(str(exc)) from exc
    if decoded.claims.get("typ") != "access":
        raise TokenError("not an access token")
    return dict(decoded.claims)
