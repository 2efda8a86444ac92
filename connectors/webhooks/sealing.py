"""Webhook secrets at rest: the platform must read a secret back to sign with it (it is a shared HMAC key,
not a password to hash), so it is stored encrypted (AES-256-GCM) under the storage master keyring.

The encryption key is derived from a master key with HKDF-SHA256 (purpose-bound, never the master key
itself); the subscription id is the associated data, so a sealed secret copied onto another subscription
does not open. Format: ``v1:<master key id>:<base64url(nonce || ciphertext || tag)>``. Master keys keep
their ids; a secret sealed under an older key opens as long as the keyring still holds it.
"""

from __future__ import annotations

import base64
import os
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from connectors.storage.crypto import CryptoError, Keyring

VERSION = "v1"
INFO = b"streamscribe webhook secret v1"
SECRET_PREFIX = "whsec_"


class SealError(ValueError):
    """A sealed secret that cannot be opened (tampered, other subscription, unknown master key)."""


def generate_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _key(master: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=INFO).derive(master)


def seal(keyring: Keyring, secret: str, subscription_id: str) -> str:
    nonce = os.urandom(12)
    box = AESGCM(_key(keyring.current_key)).encrypt(nonce, secret.encode("utf-8"), subscription_id.encode())
    return f"{VERSION}:{keyring.current_id}:{base64.urlsafe_b64encode(nonce + box).decode('ascii')}"


def unseal(keyring: Keyring, sealed: str, subscription_id: str) -> str:
    try:
        version, key_id, blob = sealed.split(":", 2)
        if version != VERSION:
            raise SealError(f"unknown sealed-secret version {version!r}")
        raw = base64.urlsafe_b64decode(blob.encode("ascii"))
        plain = AESGCM(_key(keyring.key(key_id))).decrypt(raw[:12], raw[12:], subscription_id.encode())
    except SealError:
        raise
    except (ValueError, InvalidTag, LookupError, CryptoError) as exc:
        raise SealError(f"the webhook secret cannot be opened: {type(exc).__name__}") from None
    return plain.decode("utf-8")


def hint(secret: str) -> str:
    """What may be shown of a secret after creation: its prefix and last four characters."""
    return (SECRET_PREFIX if secret.startswith(SECRET_PREFIX) else "") + "..." + secret[-4:]
