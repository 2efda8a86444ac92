"""Start and stop time of the local Apache Kafka cluster (streamscribe.stack.kafka_cluster), fresh and re-started.

    .venv/bin/python bench/kafka_cluster_start.py [--runs 3] [--brokers 3] [--sasl]

Each run formats a new cluster in a temporary directory and starts it (fresh: format + start + metadata lists
every broker), stops it, starts it again on the same storage (restart: no format), and stops it. Needs the jars
from `make kafka`. Prints medians for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streamscribe.stack.kafka_cluster import ClusterSpec, KafkaCluster


def one_run(brokers: int, sasl: bool) -> dict[str, float]:
    spec = ClusterSpec(brokers=brokers, replication_factor=min(3, brokers), min_insync_replicas=min(2, brokers),
                       scram_users={"bench": "bench-secret"} if sasl else {})
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="kafka-bench-") as tmp:
        for phase in ("fresh", "restart"):
            cluster = KafkaCluster(Path(tmp), spec)
            t0 = time.perf_counter()
            cluster.start()
            out[f"{phase} start"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            cluster.stop()
            out[f"{phase} stop"] = time.perf_counter() - t0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--brokers", type=int, default=3)
    ap.add_argument("--sasl", action="store_true", help="with SASL_SSL listeners (CA, certificates, SCRAM users)")
    args = ap.parse_args()
    runs = [one_run(args.brokers, args.sasl) for _ in range(args.runs)]
    load = os.getloadavg()[0]
    print(f"# {args.brokers} brokers{' + SASL_SSL' if args.sasl else ''}, {args.runs} runs, {platform.machine()}, "
          f"{os.cpu_count()} CPUs, load average {load:.1f} at the end")
    for key in runs[0]:
        values = [r[key] for r in runs]
        print(f"{key:14s} median {statistics.median(values):6.1f} s  (runs: {', '.join(f'{v:.1f}' for v in values)})")


if __name__ == "__main__":
    main()
