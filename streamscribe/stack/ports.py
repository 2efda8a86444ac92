"""Free loopback ports for the embedded stack."""

from __future__ import annotations

import random
import socket

# Below Linux's default ephemeral range (32768-60999), from which outgoing connections take their local
# port: a port picked there could be taken by a client socket before the server that was meant to listen
# on it starts (or restarts). Above the object store's ports and their gRPC twins (``seaweed.PORT_RANGE``),
# which are picked by their own rule and would otherwise collide with a port picked here.
LISTEN_RANGE = (22000, 32000)


def is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def free_port(preferred: int | None = None, host: str = "127.0.0.1") -> int:
    """``preferred`` if it is free, else a free port in LISTEN_RANGE (outside the ephemeral range)."""
    if preferred and is_free(preferred, host):
        return preferred
    for port in random.sample(range(*LISTEN_RANGE), 200):
        if is_free(port, host):
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:  # a crowded range: any port the OS gives
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float, host: str = "127.0.0.1") -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False
