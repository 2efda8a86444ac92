"""Run one pipeline stage of the registry as its own process and consumer group, with /health and /metrics: a
``StageSpec`` under ``StageRunner``, a ``FaustStageSpec`` under ``FaustWorker``."""

from __future__ import annotations

import gc
import json
import os
import sys
import threading
from collections.abc import Set
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from foundation.logs import configure, get_logger
from foundation.settings import Settings
from streams.kafka.admin import wait_for_topics
from streams.kafka.clients import check_connection, describe
from streams.runtime.checkpoint import ProducerWedged
from streams.runtime.faust_stage import FaustStageSpec, FaustWorker
from streams.runtime.runner import StageRunner
from streams.stages.registry import spec_of

# The exit status of a worker whose transactional producer wedged (EX_TEMPFAIL): the supervisor restarts it
# like any crashed worker; the code tells the two apart in its log.
WEDGED_EXIT_CODE = 75


class Worker(Protocol):
    """What /health reports on: ``StageRunner`` or ``FaustWorker``."""

    @property
    def ready(self) -> threading.Event: ...

    @property
    def partitions(self) -> Set[tuple[str, int]]: ...

    def run(self) -> None: ...


def serve_health(port: int, stage: str, runner: Worker, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """/health (ready once the worker holds its group membership) and /metrics (Prometheus), on ``host``
    (settings: ``worker.health_host``; 0.0.0.0 where probes come from outside, e.g. a pod's kubelet)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/metrics"):
                body, ctype, code = generate_latest(), CONTENT_TYPE_LATEST, 200
            elif self.path.startswith("/health"):
                ready = runner.ready.is_set()
                body = json.dumps({"stage": stage, "status": "ready" if ready else "starting",
                                   "partitions": sorted(runner.partitions)}).encode()
                ctype, code = "application/json", 200 if ready else 503
            else:
                body, ctype, code = b"not found", "text/plain", 404
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True, name="health").start()
    return server


def run_worker(name: str, settings: Settings, metrics_port: int | None = None) -> None:
    """Build the stage ``name`` from the registry and run it until SIGTERM. Raises ``UnknownStage`` for a name
    the registry does not have, and ``KafkaConnectionError`` when the cluster does not answer or refuses the
    credentials (before the stage loads its models)."""
    spec = spec_of(name)
    configure(settings.log_level, settings.log_format, component=name)
    log = get_logger(__name__)
    brokers = check_connection(settings.kafka)
    log.info("kafka reachable", brokers=brokers, **describe(settings.kafka))
    runner: Worker
    try:
        if isinstance(spec, FaustStageSpec):
            # faust assigns nothing for a topic it does not see at its first rebalance
            wait_for_topics(settings.kafka, [settings.kafka.topic_prefix + t for t in (*spec.inputs, *spec.changelogs)])
            runner = FaustWorker(spec, spec.build(settings), settings)
        else:
            runner = StageRunner.connect(spec, spec.build(settings), settings)  # exactly-once: init_transactions
        if metrics_port:
            serve_health(metrics_port, name, runner, settings.worker.health_host)
        # What exists now (modules, models, clients) lives as long as the worker: the garbage collector need not
        # look at it again. Without this a full collection (streams.runtime.memory) walked the diarization
        # worker's 310 000 startup objects, 0.2 s of CPU alone and over a second beside a busy recogniser.
        gc.freeze()
        log.info("worker starting", stage=name, group=spec.group, batch=spec.batch_size(settings))
        runner.run()
    except ProducerWedged as exc:
        # a thread is stuck inside librdkafka: a normal exit would wait for it (and for the clients' close) forever
        log.error("kafka producer wedged; the worker exits at once to be started again", stage=name, error=str(exc))
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(WEDGED_EXIT_CODE)
