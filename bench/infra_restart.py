"""How long the embedded stack takes to bring back a killed broker, PostgreSQL or object store.

    .venv/bin/python bench/infra_restart.py [--repeat 2] [--gap 61]

Starts a stack (``streamscribe up --detach`` in a temporary home), then ``kill -9``s each infrastructure
process ``--repeat`` times, idle, and measures from the kill to the supervisor's record of the new process as
ready (``stack.json``) and to ``/health/detailed`` answering ``ok`` again. Kills are ``--gap`` seconds apart,
more than the minute after which the supervisor's backoff resets, so each is a first restart (0.5 s backoff).
Prints one JSON line per service. The machine may be shared: figures are indicative.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streamscribe.client import Client
from streamscribe.stack.ports import free_port
from streamscribe.stack.state import read_stack

CLI = [sys.executable, "-m", "streamscribe.cli"]


async def _ok(url: str) -> bool:
    try:
        async with Client(url) as client:
            return (await client.health(detailed=True)).get("status") == "ok"
    except Exception:
        return False


def _measure(home: Path, url: str, service: str) -> tuple[float, float]:
    before = read_stack(home)["infra"][service]  # type: ignore[index]
    killed = time.monotonic()
    os.kill(before["pid"], signal.SIGKILL)
    ready = healthy = 0.0
    while not ready:
        now = read_stack(home)["infra"][service]  # type: ignore[index]
        if now["restarts"] > before["restarts"]:
            ready = time.monotonic() - killed
        time.sleep(0.05)
    while not asyncio.run(_ok(url)):
        time.sleep(0.1)
    healthy = time.monotonic() - killed
    return ready, healthy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--gap", type=float, default=61)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-restart-") as tmp:
        home, port = Path(tmp), free_port()
        env = {**os.environ, "STREAMSCRIBE_HOME": tmp}
        subprocess.run([*CLI, "up", "--detach", "--home", tmp, "--port", str(port)], check=True, env=env)
        url = f"http://127.0.0.1:{port}"
        os.environ["STREAMSCRIBE_API_KEY"] = json.loads((home / "secrets" / "credentials.json").read_text())["api_key"]
        try:
            for service in ("broker", "postgres", "objectstore"):
                runs = []
                for _ in range(args.repeat):
                    runs.append(_measure(home, url, service))
                    time.sleep(args.gap)
                print(json.dumps({"service": service, "ready_s": [round(r, 2) for r, _ in runs],
                                  "healthy_s": [round(h, 2) for _, h in runs],
                                  "median_ready_s": round(statistics.median(r for r, _ in runs), 2),
                                  "median_healthy_s": round(statistics.median(h for _, h in runs), 2)}), flush=True)
        finally:
            subprocess.run([*CLI, "down", "--home", tmp], env=env, capture_output=True)


if __name__ == "__main__":
    main()
