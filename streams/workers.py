"""Build and run one pipeline stage as its own process and consumer group."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from connectors.storage.factory import store_from_settings
from connectors.storage.spool import process_dir
from foundation.logs import configure, get_logger
from foundation.settings import Settings
from processors.diarization.identify import Profile
from streams.runtime.runner import Stage, StageRunner

STAGES = ("ingest", "vad", "asr", "diarization", "post", "materializer", "webhooks")


def build_stage(name: str, settings: Settings) -> tuple[Stage, int]:
    """The stage object and its batch size."""
    if name == "ingest":
        from connectors.storage.base import SyncStore
        from streams.stages.ingest import IngestStage

        return IngestStage(SyncStore(store_from_settings(settings)), process_dir(settings.spool_root, name),
                           settings.chunk_seconds), 1
    if name == "vad":
        from streams.stages.vad import VadStage

        return VadStage(settings.vad), 200
    if name == "asr":
        from processors.asr.models import ModelRegistry
        from processors.asr.transcriber import Transcriber
        from streams.stages.asr import AsrStage

        a = settings.asr
        transcriber = Transcriber(ModelRegistry(a.model_paths), compute_type=a.compute_type,
                                  cpu_threads=a.cpu_threads, batch_size=a.batch_size, max_loaded=a.loaded_models)
        transcriber.warm_up(a.default_model)  # load and warm the default model once per worker, not per job
        return AsrStage(a, transcriber, settings.pipeline_version), a.consume_batch
    if name == "diarization":
        import psycopg

        from connectors.storage.base import SyncStore
        from processors.diarization.senko_backend import SenkoBackend, numba_cache_dir
        from streams.stages.diarization import DiarizationStage

        numba_cache_dir(str(settings.home))
        return DiarizationStage(SenkoBackend(), profile_source(settings.database_url),
                                SyncStore(store_from_settings(settings)), process_dir(settings.spool_root, name),
                                settings.diarization.identify_threshold,
                                transient=(psycopg.OperationalError,)), 2
    if name == "post":
        from streams.stages.post import PostStage

        return PostStage(), 200
    if name == "materializer":
        from streams.stages.materializer import MaterializerStage

        return MaterializerStage(settings.database_url), 500
    if name == "webhooks":
        from streams.stages.webhooks import WebhookStage

        return WebhookStage.from_settings(settings), 500
    raise ValueError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")


def serve_health(port: int, stage: str, runner: StageRunner) -> ThreadingHTTPServer:
    """/health (ready once the worker holds its group membership) and /metrics (Prometheus)."""

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

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True, name="health").start()
    return server


def run_worker(name: str, settings: Settings, metrics_port: int | None = None) -> None:
    configure(settings.log_level, settings.log_format, component=name)
    log = get_logger(__name__)
    stage, batch = build_stage(name, settings)
    runner = StageRunner(stage, settings, max_batch=batch)
    if metrics_port:
        serve_health(metrics_port, name, runner)
    log.info("worker starting", stage=name, batch=batch)
    runner.run()


def state_groups() -> tuple[str, ...]:
    from streams.stages.diarization import DiarizationStage
    from streams.stages.post import PostStage
    from streams.stages.vad import VadStage

    return (VadStage.name, DiarizationStage.name, PostStage.name)


def profile_source(database_url: str) -> Callable[[str], list[Profile]]:
    """Enrolled voice profiles of an organisation, read from PostgreSQL when a stream is diarized."""
    import numpy as np
    import psycopg

    def load(org_id: str) -> list[Profile]:
        with psycopg.connect(database_url, connect_timeout=5) as conn:
            rows = conn.execute(
                "SELECT profile_id, name, embedding FROM speaker_profiles WHERE org_id = %s AND status = 'ready'",
                (org_id,),
            ).fetchall()
        return [Profile(pid, name, np.asarray(emb, dtype=np.float32)) for pid, name, emb in rows if emb]

    return load


def build_stage_classes() -> list[type[Stage]]:
    """The stage classes in data-flow order (for status and admin tooling; nothing is constructed)."""
    from streams.stages.asr import AsrStage
    from streams.stages.diarization import DiarizationStage
    from streams.stages.ingest import IngestStage
    from streams.stages.materializer import MaterializerStage
    from streams.stages.post import PostStage
    from streams.stages.vad import VadStage
    from streams.stages.webhooks import WebhookStage

    return [IngestStage, VadStage, AsrStage, DiarizationStage, PostStage, MaterializerStage, WebhookStage]
