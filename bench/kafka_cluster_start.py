"""Start and stop time, and CPU, of the local Apache Kafka cluster (streamscribe.stack.kafka_cluster).

    .venv/bin/python bench/kafka_cluster_start.py [--runs 3] [--brokers 3] [--sasl] [--idle 60] [--compare]

Each run formats a new cluster in a temporary directory and starts it (fresh: format + start + metadata lists
every broker), optionally leaves it idle for ``--idle`` seconds, stops it, starts it again on the same storage
(restart: no format), and stops it. Besides wall times it prints the CPU seconds the nodes used (user + system,
``psutil``) for each start and, with ``--idle``, the share of one core the nodes use with nothing to do. CPU seconds
depend little on what else the machine runs; wall times do.

``--compare`` runs every configuration in turn within each run: the cluster's JVM settings (client compiler,
serial collector, the class archive of ``make kafka``) and the JVM's defaults for a server (tiered compilation up
to the server compiler, G1, no class archive), so that the ratio comes from the same machine at the same time.
Needs the jars (and the archive) from `make kafka`. Prints medians for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streamscribe.stack.kafka_cluster import ClusterSpec, KafkaCluster

# JVM options given after the cluster's own: the last of each wins, turning them back into the JVM's defaults
SERVER_JVM = ("-XX:TieredStopAtLevel=4", "-XX:-UseSerialGC", "-XX:+UseG1GC", "-Xshare:off")
CONFIGS = {"cluster JVM settings": (), "JVM server defaults": SERVER_JVM}


def node_cpu(cluster: KafkaCluster) -> float:
    total = 0.0
    for node in cluster.nodes.values():
        if node.proc is not None:
            t = psutil.Process(node.proc.pid).cpu_times()
            total += t.user + t.system
    return total


def one_run(brokers: int, sasl: bool, idle: float, jvm: tuple[str, ...]) -> dict[str, float]:
    spec = ClusterSpec(brokers=brokers, replication_factor=min(3, brokers), min_insync_replicas=min(2, brokers),
                       scram_users={"bench": "bench-secret"} if sasl else {}, jvm_options=jvm)
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="kafka-bench-") as tmp:
        for phase in ("fresh", "restart"):
            cluster = KafkaCluster(Path(tmp), spec)
            t0 = time.perf_counter()
            cluster.start()
            out[f"{phase} start s"] = time.perf_counter() - t0
            out[f"{phase} start CPU s"] = node_cpu(cluster)
            if idle and phase == "fresh":
                time.sleep(10)  # the start's last work (leaders, coordinators) is done
                before = node_cpu(cluster)
                time.sleep(idle)
                out["idle, cores"] = (node_cpu(cluster) - before) / idle
            t0 = time.perf_counter()
            cluster.stop()
            out[f"{phase} stop s"] = time.perf_counter() - t0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--brokers", type=int, default=3)
    ap.add_argument("--sasl", action="store_true", help="with SASL_SSL listeners (CA, certificates, SCRAM users)")
    ap.add_argument("--idle", type=float, default=0.0, help="seconds of idle CPU to measure after the fresh start")
    ap.add_argument("--compare", action="store_true", help="also run with the JVM's server defaults, in turn")
    args = ap.parse_args()
    configs = CONFIGS if args.compare else {"cluster JVM settings": ()}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in configs}
    for _ in range(args.runs):
        for name, jvm in configs.items():
            runs[name].append(one_run(args.brokers, args.sasl, args.idle, jvm))
    load = os.getloadavg()[0]
    print(f"# {args.brokers} brokers{' + SASL_SSL' if args.sasl else ''}, {args.runs} runs, {platform.machine()}, "
          f"{os.cpu_count()} CPUs, load average {load:.1f} at the end, {datetime.date.today()}")
    for name, results in runs.items():
        print(f"## {name}")
        for key in results[0]:
            values = [r[key] for r in results]
            print(f"{key:18s} median {statistics.median(values):7.2f}  (runs: {', '.join(f'{v:.2f}' for v in values)})")


if __name__ == "__main__":
    main()
