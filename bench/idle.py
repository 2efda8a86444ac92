"""What an idle embedded stack burns: CPU per process over a minute with nothing to do (issue 15, target 5).

    .venv/bin/python bench/idle.py [--home DIR] [--seconds 60] [--settle 120] [--out idle.json]

Without ``--home`` it starts a stack (``streamscribe up --detach`` in a temporary home, what users run) and
stops it at the end; with ``--home`` it measures the stack running there. It waits until the stack has settled
(two consecutive 5-second windows under ``--quiet`` of a core in total, at most ``--settle`` seconds after the
stack is up), then reads the CPU seconds (user + system, a process's descendants and reaped children included,
``psutil``) of every process ``stack.json`` names: the supervisor, each stage worker, the gateway, maintenance,
the broker, PostgreSQL, SeaweedFS; and prints each one's share of one core over ``--seconds``, the total, the
machine and the date. CPU seconds do not depend much on the machine's other load (wall times do).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.stack_run import cpu_delta, cpu_seconds, down, machine, up
from streamscribe.stack.state import read_stack


def supervisor_seconds(home: Path) -> float:
    """The supervisor's own CPU seconds (``cpu_seconds`` counts each child under its own name)."""
    info = read_stack(home) or {}
    try:
        t = psutil.Process(int(info["supervisor_pid"])).cpu_times()
        return t.user + t.system
    except (KeyError, psutil.NoSuchProcess):
        return 0.0


def reading(home: Path) -> dict[str, float]:
    return {**cpu_seconds(home), "supervisor": supervisor_seconds(home)}


def settle(home: Path, quiet: float, limit: float) -> float:
    """Wait until two consecutive 5 s windows use under ``quiet`` of a core in total; returns the seconds waited."""
    started = time.monotonic()
    calm = 0
    while calm < 2 and time.monotonic() - started < limit:
        before = reading(home)
        time.sleep(5)
        used = sum(cpu_delta(before, reading(home)).values()) / 5
        calm = calm + 1 if used < quiet else 0
    return time.monotonic() - started


def measure(home: Path, seconds: float) -> dict[str, float]:
    """Each process's CPU as a fraction of one core over ``seconds``."""
    before = reading(home)
    time.sleep(seconds)
    used = cpu_delta(before, reading(home))
    return {name: used[name] / seconds for name in sorted(used, key=lambda n: -used[n])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, help="measure the stack running in this home (else start one)")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--settle", type=float, default=120.0, help="longest wait for the stack to settle")
    parser.add_argument("--quiet", type=float, default=0.15, help="settled: under this much of a core in total")
    parser.add_argument("--kafka", default="tansu", help="broker of a stack this starts (tansu or apache)")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()

    own = args.home is None
    home = Path(tempfile.mkdtemp(prefix="streamscribe-idle-")) if own else args.home
    try:
        if own:
            up(home, args.kafka)
        waited = settle(home, args.quiet, args.settle)
        shares = measure(home, args.seconds)
    finally:
        if own:
            down(home)
    total = sum(shares.values())
    stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    print(f"# idle stack, {len(shares)} processes, {args.seconds:g} s after settling {waited:.0f} s; {stamp}; "
          f"{machine()}")
    print(f"{'process':<24} {'% of one core':>14}")
    for name, share in shares.items():
        print(f"{name:<24} {100 * share:>13.2f}%")
    print(f"{'total':<24} {100 * total:>13.2f}%   (target <= 3%)")
    if args.out:
        args.out.write_text(json.dumps({"date": stamp, "machine": machine(), "seconds": args.seconds,
                                        "settled_after_s": round(waited, 1), "total_core": round(total, 4),
                                        "per_process_core": {k: round(v, 4) for k, v in shares.items()}},
                                       indent=1))


if __name__ == "__main__":
    main()
