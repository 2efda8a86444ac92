"""S3-compatible object storage (AWS S3, MinIO, SeaweedFS, Ceph ...) on aiobotocore, encrypted client-side.

Objects have exactly the byte layout of the local backend (``connectors.storage.crypto``), so a bucket can be
copied to a directory or back with any S3 tool and still be read. Encryption happens here, before upload: the
storage service only ever sees ciphertext, whatever its own server-side encryption settings.

Memory stays bounded for multi-GB recordings: uploads go in multipart parts of ``part_size`` (encrypted as the
file is read), downloads are decrypted as they stream. Key rotation rewrites only the header: the first part
is uploaded anew and the rest of the body is copied server-side (UploadPartCopy), so rotating a 4 GB object
moves about ``part_size`` bytes through this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import ClientError

from connectors.storage.base import ObjectNotFound, check_key, check_prefix
from connectors.storage.crypto import (
    MAX_HEADER_SIZE,
    SEGMENT_SIZE,
    DecryptionError,
    Decryptor,
    Keyring,
    iter_encrypted,
    parse_header,
    rewrap,
)

MIN_PART_SIZE = 5 << 20  # S3's floor for every multipart part but the last
DEFAULT_PART_SIZE = 16 << 20
COPY_PART_SIZE = 1 << 30  # server-side copy ranges during rotation (S3 allows up to 5 GiB)
DELETE_BATCH = 1000  # DeleteObjects limit
_MISSING = {"404", "NoSuchKey", "NotFound"}
_CHANGED = {"412", "PreconditionFailed"}


class S3ObjectStore:
    """The S3 backend of ``ObjectStore``. One instance belongs to one event loop (that of its first call).

    ``access_key``/``secret_key`` empty means botocore's default credential chain (environment, profile,
    instance or pod role). ``endpoint_url`` empty means AWS itself. The bucket is created on first use when
    ``create_bucket`` is set and it does not exist.
    """

    def __init__(self, *, bucket: str, keyring: Keyring, endpoint_url: str | None = None,
                 region: str = "us-east-1", access_key: str | None = None, secret_key: str | None = None,
                 create_bucket: bool = True, segment_size: int = SEGMENT_SIZE,
                 part_size: int = DEFAULT_PART_SIZE, path_style: bool = True) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (S3's multipart minimum)")
        self.bucket = bucket
        self.keyring = keyring
        self.endpoint_url = endpoint_url or None
        self.region = region
        self._access_key = access_key or None
        self._secret_key = secret_key or None
        self.create_bucket = create_bucket
        self.segment_size = segment_size
        self.part_size = part_size
        self.path_style = path_style
        self._client_obj: Any = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._init_lock: asyncio.Lock | None = None

    def __repr__(self) -> str:
        return f"S3ObjectStore(bucket={self.bucket!r}, endpoint_url={self.endpoint_url!r})"

    # -- client ---------------------------------------------------------------------------------------

    async def _client(self) -> Any:
        """The aiobotocore client, created (and the bucket ensured) on first use."""
        if self._client_obj is not None:
            return self._client_obj
        if self._init_lock is None:
            self._init_lock = asyncio.Lock()
        async with self._init_lock:
            if self._client_obj is None:
                stack = contextlib.AsyncExitStack()
                client = await stack.enter_async_context(self._create_client())
                try:
                    if self.create_bucket:
                        await self._ensure_bucket(client)
                except BaseException:
                    await stack.aclose()
                    raise
                self._stack, self._client_obj = stack, client
        return self._client_obj

    def _create_client(self) -> Any:
        config = Config(
            s3={"addressing_style": "path" if self.path_style else "auto"},
            retries={"max_attempts": 5, "mode": "standard"},
            # GCM already authenticates every byte; CRC trailers only break S3-compatible servers without them.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        return get_session().create_client(
            "s3", endpoint_url=self.endpoint_url, region_name=self.region, aws_access_key_id=self._access_key,
            aws_secret_access_key=self._secret_key, config=config)

    async def _ensure_bucket(self, client: Any) -> None:
        try:
            await client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if _code(exc) not in {"404", "NoSuchBucket", "NotFound"}:
                raise
        extra: dict[str, Any] = {}
        if self.region != "us-east-1":
            extra["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            await client.create_bucket(Bucket=self.bucket, **extra)
        except ClientError as exc:
            if _code(exc) != "BucketAlreadyOwnedByYou":  # another process won the race
                raise

    async def close(self) -> None:
        if self._stack is not None:
            stack, self._stack, self._client_obj = self._stack, None, None
            await stack.aclose()

    # -- writes -----------------------------------------------------------------------------------------

    async def put_file(self, key: str, source: Path, content_type: str | None = None) -> None:
        """Encrypt ``source`` while uploading it: one PUT if it fits in a part, else a multipart upload."""
        check_key(key)
        client = await self._client()
        extra = {"ContentType": content_type} if content_type else {}
        with open(source, "rb") as src:
            chunks = iter_encrypted(src, self.keyring, self.segment_size, chunk_size=self.part_size)
            first = await asyncio.to_thread(next, chunks)
            second = await asyncio.to_thread(next, chunks, None)
            if second is None:
                await client.put_object(Bucket=self.bucket, Key=key, Body=first, **extra)
            else:
                await self._multipart(client, key, itertools.chain((first, second), chunks), extra)

    async def _multipart(self, client: Any, key: str, chunks: Iterator[bytes], extra: dict[str, Any]) -> None:
        """Upload ``chunks`` (produced in a worker thread, one at a time) as the parts of one object."""
        upload_id = (await client.create_multipart_upload(Bucket=self.bucket, Key=key, **extra))["UploadId"]
        try:
            parts = []
            for number in itertools.count(1):
                chunk = await asyncio.to_thread(next, chunks, None)
                if chunk is None:
                    break
                resp = await client.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                                PartNumber=number, Body=chunk)
                parts.append({"ETag": resp["ETag"], "PartNumber": number})
            await client.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                                   MultipartUpload={"Parts": parts})
        except BaseException:
            await _abort(client, self.bucket, key, upload_id)
            raise

    # -- reads ------------------------------------------------------------------------------------------

    async def get_to_file(self, key: str, dest: Path) -> None:
        """Stream-decrypt the object into a temporary file beside ``dest``, renamed once authentic."""
        check_key(key)
        client = await self._client()
        try:
            resp = await client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            raise _not_found(exc, key) from None
        body = resp["Body"]
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                dec = Decryptor(self.keyring)
                async for chunk in body.iter_chunks(1 << 20):
                    await asyncio.to_thread(_write_through, dec, chunk, fh)
                fh.write(dec.finalize())
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        finally:
            body.close()

    async def open_encrypted(self, key: str, spool: Path) -> BinaryIO:
        """The object's ciphertext, downloaded into an unlinked file of ``spool`` (gone when closed or on a crash)."""
        check_key(key)
        client = await self._client()
        try:
            resp = await client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            raise _not_found(exc, key) from None
        body = resp["Body"]
        spool.mkdir(parents=True, exist_ok=True, mode=0o700)
        fh = tempfile.TemporaryFile(dir=spool)  # noqa: SIM115 - handed to the caller, who closes it
        try:
            async for chunk in body.iter_chunks(1 << 20):
                await asyncio.to_thread(fh.write, chunk)
            fh.seek(0)
        except BaseException:
            fh.close()
            raise
        finally:
            body.close()
        return fh

    async def exists(self, key: str) -> bool:
        check_key(key)
        client = await self._client()
        try:
            await client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return False
            raise
        return True

    async def list_keys(self, prefix: str = "") -> list[str]:
        check_prefix(prefix)
        client = await self._client()
        keys: list[str] = []
        async for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            keys.extend(obj["Key"] for obj in page.get("Contents", ()))
        return sorted(keys)

    # -- deletes ----------------------------------------------------------------------------------------

    async def delete(self, key: str) -> None:
        check_key(key)
        client = await self._client()
        await client.delete_object(Bucket=self.bucket, Key=key)

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix`` in batches of 1000; an empty prefix is refused."""
        if not check_prefix(prefix):
            raise ValueError("delete_prefix needs a non-empty prefix")
        client = await self._client()
        keys = await self.list_keys(prefix)
        for start in range(0, len(keys), DELETE_BATCH):
            batch = [{"Key": k} for k in keys[start:start + DELETE_BATCH]]
            resp = await client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            if errors := resp.get("Errors"):
                raise RuntimeError(f"S3 refused to delete {len(errors)} objects, e.g. {errors[0]}")
        return len(keys)

    # -- rotation ---------------------------------------------------------------------------------------

    async def rotate(self, key: str) -> bool:
        """Re-wrap the object's data key under the current master key without re-encrypting its body.

        Every read is conditional on the ETag seen first, so an object replaced meanwhile is not overwritten
        with its old body: the rotation starts over (a fresh put is already under the current key).
        """
        check_key(key)
        client = await self._client()
        for _ in range(3):
            try:
                return await self._rotate_once(client, key)
            except ClientError as exc:
                if _code(exc) not in _CHANGED:
                    raise _not_found(exc, key) from None
        raise RuntimeError(f"object {key!r} kept changing during rotation")

    async def _rotate_once(self, client: Any, key: str) -> bool:
        try:
            head = await client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            raise _not_found(exc, key) from None
        size, etag = head["ContentLength"], head["ETag"]
        parsed = parse_header(await self._range(client, key, 0, min(size, MAX_HEADER_SIZE), etag))
        if parsed is None:
            raise DecryptionError("truncated header")
        header, header_len = parsed
        rewrapped = rewrap(header, self.keyring)
        if rewrapped is None:
            return False
        extra: dict[str, Any] = {"Metadata": head.get("Metadata", {})}
        if head.get("ContentType"):
            extra["ContentType"] = head["ContentType"]
        first_end = min(size, header_len + self.part_size)
        first = rewrapped.to_bytes() + await self._range(client, key, header_len, first_end, etag)
        if first_end == size:
            await client.put_object(Bucket=self.bucket, Key=key, Body=first, **extra)
        else:
            await self._copy_with_new_head(client, key, first, first_end, size, etag, extra)
        return True

    async def _copy_with_new_head(self, client: Any, key: str, first: bytes, start: int, size: int, etag: str,
                                  extra: dict[str, Any]) -> None:
        """Multipart rewrite: part 1 uploaded (new header + body start), the rest copied server-side."""
        upload_id = (await client.create_multipart_upload(Bucket=self.bucket, Key=key, **extra))["UploadId"]
        try:
            resp = await client.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=1,
                                            Body=first)
            parts = [{"ETag": resp["ETag"], "PartNumber": 1}]
            for number, offset in enumerate(range(start, size, COPY_PART_SIZE), start=2):
                end = min(offset + COPY_PART_SIZE, size)
                resp = await client.upload_part_copy(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number,
                    CopySource={"Bucket": self.bucket, "Key": key}, CopySourceRange=f"bytes={offset}-{end - 1}",
                    CopySourceIfMatch=etag)
                parts.append({"ETag": resp["CopyPartResult"]["ETag"], "PartNumber": number})
            await client.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                                   MultipartUpload={"Parts": parts})
        except BaseException:
            await _abort(client, self.bucket, key, upload_id)
            raise

    async def _range(self, client: Any, key: str, start: int, end: int, etag: str) -> bytes:
        """Bytes ``[start, end)`` of the object, only if it still has ``etag``."""
        if end <= start:
            return b""
        resp = await client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes={start}-{end - 1}",
                                       IfMatch=etag)
        body = resp["Body"]
        try:
            data: bytes = await body.read()
        finally:
            body.close()
        if len(data) != end - start:
            raise DecryptionError(f"short read of {key!r}: {len(data)} of {end - start} bytes")
        return data


def _write_through(dec: Decryptor, chunk: bytes, fh: BinaryIO) -> None:
    fh.write(dec.update(chunk))


def _code(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code or str(status or "")


def _not_found(exc: ClientError, key: str) -> Exception:
    """``ObjectNotFound`` for a missing object, the original error otherwise."""
    return ObjectNotFound(key) if _code(exc) in _MISSING else exc


async def _abort(client: Any, bucket: str, key: str, upload_id: str) -> None:
    """Abort a failed multipart upload so its parts do not linger (and bill) in the bucket."""
    with contextlib.suppress(Exception):
        await client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
