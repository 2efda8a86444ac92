"""A stack for a benchmark (``streamscribe up --detach --kafka KIND`` in a temporary home, what users run), and the
CPU time each of its processes has used (``psutil``; a process's reaped children included, e.g. PostgreSQL's
backends)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import aiohttp
import psutil
from prometheus_client.parser import text_string_to_metric_families

from streamscribe.stack.ports import free_port
from streamscribe.stack.state import read_stack

CLI = [sys.executable, "-m", "streamscribe.cli"]


def up(home: Path, kafka: str, env: dict[str, str] | None = None, brokers: int | None = None) -> str:
    """Start the stack (``brokers``: Apache Kafka nodes, else the CLI's default); returns the gateway's URL and
    sets the admin's API key for the client."""
    port = free_port()
    nodes = ["--brokers", str(brokers)] if brokers else []
    subprocess.run([*CLI, "up", "--detach", "--home", str(home), "--port", str(port), "--kafka", kafka, *nodes],
                   check=True, env={**os.environ, **(env or {})})
    os.environ["STREAMSCRIBE_API_KEY"] = json.loads((home / "secrets" / "credentials.json").read_text())["api_key"]
    return f"http://127.0.0.1:{port}"


def down(home: Path) -> None:
    subprocess.run([*CLI, "down", "--home", str(home)], check=True)


def processes(home: Path) -> dict[str, int]:
    """Every process of the stack by name (workers, gateway, brokers, PostgreSQL, object store): its pid."""
    info = read_stack(home) or {}
    procs = {**info.get("infra", {}), **info.get("children", {})}
    return {name: int(p["pid"]) for name, p in procs.items() if isinstance(p, dict) and p.get("pid")}


def cpu_seconds(home: Path) -> dict[str, float]:
    """User + system CPU seconds used so far by each process of the stack and its descendants."""
    used: dict[str, float] = {}
    for name, pid in processes(home).items():
        try:
            proc = psutil.Process(pid)
            family = [proc, *proc.children(recursive=True)]
            total = 0.0
            for p in family:
                t = p.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
            used[name] = total
        except psutil.NoSuchProcess:
            continue
    return used


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds used between two readings, per process (a process restarted in between is left out)."""
    return {k: round(after[k] - before[k], 2) for k in after if k in before and after[k] >= before[k]}


def machine() -> str:
    model = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{platform.machine()}, {model}, {len(os.sched_getaffinity(0))} cores, load average {load}"


async def stage_metrics(home: Path) -> dict[str, dict[str, float]]:
    """Per stage: batches, mean seconds per batch, mean event age (production to handling)."""
    out: dict[str, dict[str, float]] = {}
    children = (read_stack(home) or {})["children"]
    async with aiohttp.ClientSession() as http:
        for child in children.values():
            if not child.get("metrics_port"):
                continue
            async with http.get(f"http://127.0.0.1:{child['metrics_port']}/metrics") as resp:
                text = await resp.text()
            for family in text_string_to_metric_families(text):
                if family.name not in ("streamscribe_stage_batch_seconds", "streamscribe_stage_event_age_seconds"):
                    continue
                for s in family.samples:
                    stage = s.labels.get("stage", "?").removeprefix("streamscribe-")
                    key = {"streamscribe_stage_batch_seconds_count": "batches",
                           "streamscribe_stage_batch_seconds_sum": "batch_s",
                           "streamscribe_stage_event_age_seconds_count": "events",
                           "streamscribe_stage_event_age_seconds_sum": "age_s"}.get(s.name)
                    if key:
                        out.setdefault(stage, {})[key] = out.setdefault(stage, {}).get(key, 0.0) + s.value
    return out


def stage_delta(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    result = {}
    for stage, a in after.items():
        b = before.get(stage, {})
        d = {k: a.get(k, 0.0) - b.get(k, 0.0) for k in ("batches", "batch_s", "events", "age_s")}
        if d["batches"] > 0:
            result[stage] = {"batches": int(d["batches"]), "mean_batch_s": round(d["batch_s"] / d["batches"], 3),
                             "events": int(d["events"]),
                             "mean_event_age_s": round(d["age_s"] / d["events"], 3) if d["events"] else 0.0}
    return result


class Steal:
    """The share of the machine's CPU time the hypervisor took (``steal`` in ``/proc/stat``) since it was made: on a
    shared virtual machine, figures taken while it is high are slower for reasons of their own."""

    def __init__(self) -> None:
        self.started = self._read()

    @staticmethod
    def _read() -> tuple[float, float]:
        fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return fields[7], sum(fields[:8])  # steal, and all of user .. steal

    def share(self) -> float:
        steal, total = self._read()
        return round((steal - self.started[0]) / max(total - self.started[1], 1.0), 3)
