"""Build the configured object store and its keyring from plain settings values.

Settings hold the master keys as one string, ``"k1:BASE64KEY,k2:BASE64KEY"`` (each key 32 random bytes in
base64), plus the id of the key that wraps new objects. Keeping old ids in the string is what lets objects
written before a rotation stay readable.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from connectors.storage.base import ObjectStore
from connectors.storage.crypto import KEY_SIZE, SEGMENT_SIZE, Keyring, KeyringError, check_key_id
from connectors.storage.local import LocalObjectStore
from connectors.storage.s3 import DEFAULT_PART_SIZE, S3ObjectStore
from foundation.settings import Settings

BACKENDS = ("local", "s3")


def new_master_key() -> str:
    """A fresh master key, base64-encoded as the keyring string expects (for operators and tests)."""
    return base64.b64encode(os.urandom(KEY_SIZE)).decode("ascii")


def parse_keyring(spec: str, current_id: str) -> Keyring:
    """``"k1:BASE64,k2:BASE64"`` and the current id -> a validated ``Keyring``.

    Errors name the key id but never echo key material, since they end up in logs.
    """
    keys: dict[str, bytes] = {}
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        key_id, sep, encoded = item.partition(":")
        key_id = check_key_id(key_id.strip())
        if not sep:
            raise KeyringError(f"keyring entry for {key_id!r} has no ':' between id and key")
        if key_id in keys:
            raise KeyringError(f"master key id {key_id!r} appears twice in the keyring")
        keys[key_id] = _decode_key(key_id, encoded.strip())
    if not keys:
        raise KeyringError("no master keys configured: set the keyring to 'id:BASE64KEY' "
                           "(generate one with connectors.storage.factory.new_master_key())")
    return Keyring(keys, current_id.strip())


def _decode_key(key_id: str, encoded: str) -> bytes:
    """Standard or URL-safe base64, padded or not; exactly 32 bytes."""
    padded = encoded + "=" * (-len(encoded) % 4)
    try:
        alphabet = b"-_" if ("-" in padded or "_" in padded) else None
        key = base64.b64decode(padded, altchars=alphabet, validate=True)
    except (binascii.Error, ValueError):
        raise KeyringError(f"master key {key_id!r} is not valid base64") from None
    if len(key) != KEY_SIZE:
        raise KeyringError(f"master key {key_id!r} decodes to {len(key)} bytes; AES-256 needs {KEY_SIZE}")
    return key


def make_store(*, backend: str = "local", keys: str, current_key_id: str, root: str | Path = "",
               s3_endpoint_url: str = "", s3_region: str = "us-east-1", s3_bucket: str = "",
               s3_access_key: str = "", s3_secret_key: str = "", s3_create_bucket: bool = True,
               s3_part_size: int = DEFAULT_PART_SIZE, segment_size: int = SEGMENT_SIZE) -> ObjectStore:
    """The object store for ``backend`` ("local" or "s3"), encrypting under the parsed keyring.

    Configuration mistakes fail here, at start-up, rather than on the first upload.
    """
    keyring = parse_keyring(keys, current_key_id)
    if backend == "local":
        if not str(root):
            raise ValueError("the local object store needs a root directory")
        return LocalObjectStore(Path(root), keyring, segment_size=segment_size)
    if backend == "s3":
        if not s3_bucket:
            raise ValueError("the s3 object store needs a bucket")
        return S3ObjectStore(bucket=s3_bucket, keyring=keyring, endpoint_url=s3_endpoint_url or None,
                             region=s3_region, access_key=s3_access_key or None,
                             secret_key=s3_secret_key or None, create_bucket=s3_create_bucket,
                             segment_size=segment_size, part_size=s3_part_size)
    raise ValueError(f"unknown storage backend {backend!r}; expected one of {', '.join(BACKENDS)}")



def store_from_settings(settings: Settings) -> ObjectStore:
    """The deployment's object store (``settings.storage``), encrypted under its master keyring."""
    keys, current = settings.storage_keys()
    s = settings.storage
    return make_store(backend=s.backend, keys=keys, current_key_id=current, root=settings.storage_root,
                      s3_endpoint_url=s.s3_endpoint_url, s3_region=s.s3_region, s3_bucket=s.s3_bucket,
                      s3_access_key=s.s3_access_key, s3_secret_key=s.s3_secret_key)
