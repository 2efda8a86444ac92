"""Where a command's CPU goes, by kind of process: every process on the machine sampled while the command runs.

    .venv/bin/python bench/suite_cpu.py [--every 10] [--out cpu.json] -- make test-apache

Every ``--every`` seconds it reads the CPU seconds (user + system, ``psutil``) of every process, and at the end
prints, per kind of process, the CPU seconds used while the command ran and the average share of one core: Apache
Kafka nodes, other JVMs, Tansu, SeaweedFS, PostgreSQL, each stage worker, the gateway, ``streamscribe up``/``down``,
pytest itself (which runs the libraries directly for the comparisons some tests make), Chromium. A process is
counted from its start (or from the first sample, if it was running before); one that lives less than ``--every``
seconds between two samples is missed, so the totals are lower bounds. Used for the suite's profile in
BENCHMARKS.md ("The test suite's CPU").
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

WORKERS = ("asr", "vad", "diarization", "post", "materializer", "ingest", "gateway", "analytics", "webhooks",
           "maintenance", "up", "down")


def kind(cmd: str, name: str) -> str:
    """What a process is, from its command line."""
    if "kafka.Kafka" in cmd:
        return "kafka node"
    for needle, label in (("java", "other JVM"), ("tansu", "tansu"), ("weed", "seaweedfs"), ("pytest", "pytest"),
                          ("chrom", "chromium")):
        if needle in cmd:
            return label
    if "postgres" in cmd or name.startswith("postgres"):
        return "postgres"
    if "streamscribe" in cmd:
        for worker in WORKERS:
            if re.search(rf"\b{worker}\b", cmd):
                return f"streamscribe {worker}"
        return "streamscribe other"
    return "python other" if "python" in cmd else "other"


class Sampler:
    def __init__(self) -> None:
        self.started = time.time()
        self.seen: dict[int, list] = {}  # pid -> [kind, CPU seconds at first sight, CPU seconds at last sight]

    def sample(self) -> None:
        for proc in psutil.process_iter():
            try:
                times = proc.cpu_times()
                used = times.user + times.system
                if proc.pid in self.seen:
                    self.seen[proc.pid][2] = used
                    continue
                first = 0.0 if proc.create_time() >= self.started else used
                self.seen[proc.pid] = [kind(" ".join(proc.cmdline()), proc.name()), first, used]
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue

    def totals(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for label, first, last in self.seen.values():
            out[label] = out.get(label, 0.0) + last - first
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--every", type=float, default=10.0)
    parser.add_argument("--out", type=Path)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    sampler = Sampler()
    done = threading.Event()

    def loop() -> None:
        while not done.wait(args.every):
            sampler.sample()

    sampler.sample()
    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    rc = subprocess.call(command)
    done.set()
    thread.join()
    sampler.sample()
    wall = time.time() - sampler.started
    totals = {k: round(v, 1) for k, v in sampler.totals().items() if v >= 1}
    print(f"# {' '.join(command)}: exit {rc}, {wall:.0f} s, {psutil.cpu_count()} CPUs, "
          f"{sum(totals.values()):.0f} CPU seconds counted")
    for label, seconds in totals.items():
        print(f"{label:24s} {seconds:8.1f} CPU s  {seconds / wall:5.2f} of a core")
    if args.out:
        args.out.write_text(json.dumps({"command": command, "exit": rc, "wall_s": wall, "cpu_s": totals}, indent=1))
    sys.exit(rc)


if __name__ == "__main__":
    main()
