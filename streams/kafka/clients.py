"""Every Kafka client of the platform is made here, from the typed connection settings.

``connection_config`` is the one place where ``KafkaSettings`` (bootstrap servers, TLS, SASL, extra properties)
become librdkafka properties. Each kind of client has one factory, which adds the properties of its role and
wires the error callback and librdkafka's own log lines into the structured log once:

- ``stage_producer``: a pipeline stage's outputs and changelogs (idempotent, ``acks=all``; transactional under
  exactly-once);
- ``stage_consumer``: a stage's input topics, as the stage's consumer group (offsets committed by hand, or sent
  in the stage's transaction);
- ``restore_consumer``: reads a stage's state changelog back on assignment;
- ``reader_consumer``: tools and readers outside the stages (lag probes, ``tail``, group moves, the gateway's
  live results, subscribers, tests);
- ``publisher_producer``: events produced outside the stages (the gateway's asyncio publisher, the audio
  producer library and CLI, tests);
- ``admin_client``: topic creation, metadata and group offsets;
- ``faust_app``: a faust-streaming app (its aiokafka consumer and producer) for a faust-hosted stage.

Every consumer reads with ``isolation.level=read_committed``: what an aborted transaction wrote is never seen, and
what an open one is writing only once it commits (on a broker without transactions in use, this changes nothing).

``check_connection`` asks the cluster for its metadata with a deadline, so that a worker started with a wrong
password or an unreachable bootstrap server stops at once with a clear error instead of waiting forever.
"""

from __future__ import annotations

import ssl
import threading
import time
from pathlib import Path
from typing import Any

import faust
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from foundation.logs import get_logger
from foundation.settings import KafkaSettings

log = get_logger(__name__)

# librdkafka properties that only the typed settings may set (a second way to set them would make it unclear
# which one a deployment uses)
CONNECTION_PROPERTIES = frozenset({
    "bootstrap.servers", "security.protocol", "sasl.mechanism", "sasl.mechanisms", "sasl.username",
    "sasl.password", "ssl.ca.location", "ssl.certificate.location", "ssl.key.location", "ssl.key.password",
    "ssl.endpoint.identification.algorithm",
})
# errors that waiting will not cure: the cluster refused the credentials or the TLS handshake failed
_FATAL_AT_CONNECT = (KafkaError._AUTHENTICATION, KafkaError._SSL, KafkaError.SASL_AUTHENTICATION_FAILED)


class KafkaConnectionError(RuntimeError):
    """The cluster could not be reached, or refused this client."""


class KafkaAuthenticationError(KafkaConnectionError):
    """The cluster refused the client's credentials or certificate (waiting will not help)."""


def connection_config(kafka: KafkaSettings) -> dict[str, Any]:
    """The librdkafka properties that connect to the cluster: bootstrap servers, TLS, SASL, and the extra
    properties of ``client_config``. The only place secrets are unwrapped."""
    clash = sorted(CONNECTION_PROPERTIES & set(kafka.client_config))
    if clash:
        raise ValueError(f"client_config sets {', '.join(clash)}: use the typed Kafka settings for these "
                         "(STREAMSCRIBE_KAFKA__BOOTSTRAP_SERVERS, __SECURITY_PROTOCOL, __SASL_*, __SSL_*)")
    config: dict[str, Any] = {"bootstrap.servers": kafka.bootstrap_servers,
                              "security.protocol": kafka.security_protocol.lower()}
    if kafka.uses_sasl:
        config.update({"sasl.mechanism": kafka.sasl_mechanism, "sasl.username": kafka.sasl_username,
                       "sasl.password": kafka.sasl_password.get_secret_value()})
    if kafka.uses_tls:
        config["ssl.endpoint.identification.algorithm"] = kafka.ssl_endpoint_identification
        optional = {"ssl.ca.location": kafka.ssl_ca_location,
                    "ssl.certificate.location": kafka.ssl_certificate_location,
                    "ssl.key.location": kafka.ssl_key_location,
                    "ssl.key.password": kafka.ssl_key_password.get_secret_value()}
        config.update({k: v for k, v in optional.items() if v})
    return {**config, **kafka.client_config}


def describe(kafka: KafkaSettings) -> dict[str, str]:
    """The connection settings that are safe to log (never a secret)."""
    out = {"bootstrap_servers": kafka.bootstrap_servers, "security_protocol": kafka.security_protocol}
    if kafka.uses_sasl:
        out.update(sasl_mechanism=str(kafka.sasl_mechanism), sasl_username=kafka.sasl_username)
    return out


class _LibrdkafkaLog:
    """librdkafka's own log lines (``logger`` property) as structured log events instead of raw stderr."""

    def __init__(self, client: str) -> None:
        self.client = client

    def log(self, level: int, fmt: str, *args: object) -> None:
        if len(args) == 3:  # confluent-kafka calls log(level, "%s [%s] %s", facility, handle, message)
            facility, handle, message = args
            log.log(level, "librdkafka", client=self.client, handle=handle, facility=facility, message=message)
        else:
            log.log(level, "librdkafka", client=self.client, message=fmt % args)


def _on_error(client: str) -> Any:
    def report(err: KafkaError) -> None:
        fields = {"client": client, "code": err.name(), "error": err.str(), "fatal": err.fatal()}
        if err.fatal() or err.code() in _FATAL_AT_CONNECT:
            log.error("kafka client error", **fields)
        else:  # transient (a broker restarting, a connection reset): librdkafka retries on its own
            log.warning("kafka client error", **fields)

    return report


def _wired(kafka: KafkaSettings, client: str, role: dict[str, Any]) -> dict[str, Any]:
    """Connection + role properties + the error callback and logger every client gets."""
    return {**connection_config(kafka), **role, "client.id": client, "error_cb": _on_error(client),
            "logger": _LibrdkafkaLog(client)}


def _producer_role(kafka: KafkaSettings) -> dict[str, Any]:
    return {"enable.idempotence": True, "acks": "all", "linger.ms": 5, "compression.type": "none",
            "message.max.bytes": kafka.max_message_bytes,
            "topic.metadata.refresh.interval.ms": kafka.metadata_refresh_ms}


def _consumer_role(kafka: KafkaSettings) -> dict[str, Any]:
    return {"isolation.level": "read_committed", "fetch.wait.max.ms": kafka.fetch_wait_max_ms,
            "fetch.message.max.bytes": kafka.max_message_bytes,
            "topic.metadata.refresh.interval.ms": kafka.metadata_refresh_ms}


def transactional_id(kafka: KafkaSettings, group: str, instance: str) -> str:
    """The transactional.id of one worker of a stage: unique in the cluster (deployment prefix, consumer group,
    worker instance) and the same after the worker restarts, so that the new process's ``init_transactions``
    fences the old one and aborts what it left open. Brokers from 2.5 on (KIP-447) fence zombies by the consumer
    group's generation sent with the offsets, so the id need not be tied to the input partitions the worker
    holds: one transactional producer per worker serves every partition the group assigns it."""
    return f"{kafka.topic_prefix}{group}.{instance}"


def stage_producer(kafka: KafkaSettings, client_id: str, transactional: str | None = None) -> Producer:
    """A stage's producer: outputs, dead letters and state changelogs, confirmed by the checkpoint
    (``streams.runtime.checkpoint``) before offsets are committed. Idempotent with ``acks=all``, so a retried
    send is not written twice. With ``transactional`` (a ``transactional_id``) it is the transactional producer
    of the exactly-once checkpoint."""
    role = _producer_role(kafka)
    if transactional:
        role.update({"transactional.id": transactional, "transaction.timeout.ms": kafka.transaction_timeout_ms})
    return Producer(_wired(kafka, client_id, role))


def publisher_producer(kafka: KafkaSettings, client_id: str) -> Producer:
    """A producer for events made outside the stages: the gateway's asyncio publisher, the audio producer
    library and CLI, tests. Same durability as a stage's (idempotent, ``acks=all``); callers flush or wait for
    delivery reports themselves."""
    return Producer(_wired(kafka, client_id, _producer_role(kafka)))


def stage_consumer(kafka: KafkaSettings, group: str, client_id: str, instance: str | None = None) -> Consumer:
    """A stage's consumer: member of the group ``topic_prefix + group``; offsets are committed only by the
    checkpoint, never automatically. With ``kafka.static_membership`` and an ``instance`` name it is a static
    member (``group.instance.id``): restarted under the same name, it gets its partitions back without a
    rebalance."""
    role: dict[str, Any] = {
        **_consumer_role(kafka),
        "group.id": kafka.topic_prefix + group,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": kafka.session_timeout_ms,
        "heartbeat.interval.ms": max(500, kafka.session_timeout_ms // 6),
        "max.partition.fetch.bytes": kafka.max_message_bytes,
        # ASR batches can take tens of seconds on two cores; the group must not evict the worker meanwhile.
        "max.poll.interval.ms": 600_000,
        "partition.assignment.strategy": "range",
    }
    if kafka.static_membership and instance:
        role["group.instance.id"] = instance
    return Consumer(_wired(kafka, client_id, role))


def restore_consumer(kafka: KafkaSettings, group: str, client_id: str) -> Consumer:
    """Reads a stage's state changelog partitions from the beginning (assigned, never subscribed), reporting
    the end of each partition. Read committed: state changes of an aborted batch are not restored."""
    return Consumer(_wired(kafka, client_id, {
        **_consumer_role(kafka),
        "group.id": f"{kafka.topic_prefix}{group}.restore",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
    }))


def reader_consumer(kafka: KafkaSettings, group: str, client_id: str = "streamscribe-reader", *,
                    read_committed: bool = True, partition_eof: bool = False) -> Consumer:
    """A consumer for tools and readers outside the stages, in the consumer group ``group`` exactly as given
    (a throwaway name for probes). Offsets are committed only when the caller commits; a subscription with no
    committed offset starts at the beginning of the log. ``read_committed=False`` also shows what open and
    aborted transactions wrote (for diagnosis and tests; never for results). ``partition_eof`` reports the end
    of each partition (a ``_PARTITION_EOF`` error event), for a probe that must not wait for events that will
    not come."""
    role: dict[str, Any] = {
        **_consumer_role(kafka),
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": kafka.session_timeout_ms,
        "heartbeat.interval.ms": max(500, kafka.session_timeout_ms // 6),
    }
    if not read_committed:
        role["isolation.level"] = "read_uncommitted"
    if partition_eof:
        role["enable.partition.eof"] = True
    return Consumer(_wired(kafka, client_id, role))


def admin_client(kafka: KafkaSettings, client_id: str = "streamscribe-admin", *, quiet: bool = False) -> AdminClient:
    """An admin client. ``quiet`` silences its connection errors and librdkafka's log, for a probe that expects
    refusals while a broker starts (the caller reports what finally went wrong)."""
    if quiet:
        silent: dict[str, Any] = {**connection_config(kafka), "client.id": client_id, "log_level": 0,
                                  "error_cb": lambda _err: None}
        return AdminClient(silent)
    return AdminClient(_wired(kafka, client_id, {}))


def check_connection(kafka: KafkaSettings, timeout: float | None = None) -> int:
    """Wait until the cluster answers a metadata request; returns how many brokers it has. Raises
    ``KafkaAuthenticationError`` as soon as the cluster refuses the credentials or the TLS handshake fails,
    and ``KafkaConnectionError`` when nothing answered within ``timeout`` (default ``connect_timeout_s``)."""
    errors: list[KafkaError] = []
    lock = threading.Lock()

    def collect(err: KafkaError) -> None:
        with lock:
            errors.append(err)

    config: dict[str, Any] = {**connection_config(kafka), "client.id": "streamscribe-connection-check",
                              "error_cb": collect, "logger": _LibrdkafkaLog("streamscribe-connection-check")}
    admin = AdminClient(config)
    deadline = time.monotonic() + (kafka.connect_timeout_s if timeout is None else timeout)
    last = "no answer"
    while True:
        try:
            return len(admin.list_topics(timeout=max(0.1, min(1.0, deadline - time.monotonic()))).brokers)
        except KafkaException as exc:
            last = str(exc.args[0].str() if exc.args and isinstance(exc.args[0], KafkaError) else exc)
        admin.poll(0)  # serves the error callback
        with lock:
            refused = [e for e in errors if e.code() in _FATAL_AT_CONNECT]
            # the reason a broker is down says more than "all brokers are down"
            said = [e for e in errors if e.code() != KafkaError._ALL_BROKERS_DOWN] or errors
            if said:
                last = said[-1].str()
        if refused:
            raise KafkaAuthenticationError(_refusal(kafka, refused[-1]))
        if time.monotonic() >= deadline:
            raise KafkaConnectionError(f"Kafka at {kafka.bootstrap_servers} ({kafka.security_protocol}) did not "
                                       f"answer within {timeout if timeout is not None else kafka.connect_timeout_s}"
                                       f" s: {last}")


def _refusal(kafka: KafkaSettings, err: KafkaError) -> str:
    if err.code() == KafkaError._SSL:
        ca = kafka.ssl_ca_location or "the system CAs"
        return f"the TLS handshake with Kafka at {kafka.bootstrap_servers} failed (trusting {ca}): {err.str()}"
    who = f" as {kafka.sasl_username!r} ({kafka.sasl_mechanism})" if kafka.uses_sasl else ""
    return f"Kafka at {kafka.bootstrap_servers} refused the connection{who}: {err.str()}"


def end_offsets(consumer: Consumer, partitions: list[TopicPartition],
                timeout: float = 10.0) -> dict[tuple[str, int], int]:
    """The current end of log of each partition, from the high watermark a fetch returns (not from ListOffsets,
    which the embedded broker answers wrongly): works the same on Apache Kafka and on Tansu. ``consumer`` is
    reassigned; partitions given with an offset are fetched from there (less to read than from the start)."""
    consumer.assign([TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING)
                     for tp in partitions])
    ends: dict[tuple[str, int], int] = {}
    deadline = time.monotonic() + timeout
    while len(ends) < len(partitions) and time.monotonic() < deadline:
        consumer.consume(500, 0.1)
        for tp in partitions:
            _, hi = consumer.get_watermark_offsets(tp, cached=True)
            if hi >= 0:
                ends[(tp.topic, tp.partition)] = hi
    return ends


def assign_at_end(consumer: Consumer, partitions: list[TopicPartition], timeout: float = 10.0) -> None:
    """Assign ``partitions`` positioned at their current end of log (see ``end_offsets``)."""
    ends = end_offsets(consumer, partitions, timeout)
    consumer.assign([TopicPartition(tp.topic, tp.partition, ends.get((tp.topic, tp.partition), 0))
                     for tp in partitions])


def _faust_credentials(kafka: KafkaSettings) -> faust.types.auth.CredentialsT | None:
    """The TLS and SASL settings as faust (aiokafka) takes them."""
    context: ssl.SSLContext | None = None
    if kafka.uses_tls:
        context = ssl.create_default_context(cafile=kafka.ssl_ca_location or None)
        if kafka.ssl_endpoint_identification == "none":
            context.check_hostname = False
        if kafka.ssl_certificate_location:
            context.load_cert_chain(kafka.ssl_certificate_location, kafka.ssl_key_location,
                                    kafka.ssl_key_password.get_secret_value() or None)
    if kafka.uses_sasl:
        return faust.SASLCredentials(username=kafka.sasl_username, password=kafka.sasl_password.get_secret_value(),
                                     mechanism=str(kafka.sasl_mechanism), ssl_context=context)
    return faust.SSLCredentials(context) if context is not None else None


def faust_app(kafka: KafkaSettings, group: str, client_id: str, datadir: Path, *, max_poll_records: int) -> faust.App:
    """A faust-streaming app for a faust-hosted stage: its consumer group is ``topic_prefix + group`` (the app
    id), it connects with the typed connection settings (bootstrap servers, TLS, SASL; librdkafka's
    ``client_config`` does not apply to aiokafka) and it creates no topic: every topic, table changelogs
    included, is created from the catalogue (``streams.kafka.admin.ensure_topics``). Tables live in memory and
    are rebuilt from their changelogs when partitions are assigned. The producer sends batches of at most
    ``faust_producer_max_batch_size`` bytes (the embedded broker needs single-record batches for faust's table
    recovery) and is not idempotent: aiokafka cannot start an idempotent producer against the embedded broker,
    so a faust-hosted stage makes its own writes idempotent (docs/analytics.md)."""
    return faust.App(
        kafka.topic_prefix + group,
        broker=[f"kafka://{server.strip()}" for server in kafka.bootstrap_servers.split(",")],
        broker_credentials=_faust_credentials(kafka),
        broker_client_id=client_id,
        broker_session_timeout=kafka.session_timeout_ms / 1000,
        broker_heartbeat_interval=max(0.5, kafka.session_timeout_ms / 6000),
        broker_max_poll_records=max_poll_records,
        broker_max_poll_interval=600.0,
        consumer_auto_offset_reset="earliest",
        consumer_metadata_max_age_ms=30_000,  # a topic missing from one broker's metadata is looked for again soon
        consumer_max_fetch_size=kafka.max_message_bytes,
        producer_acks=-1,
        producer_max_request_size=kafka.max_message_bytes,
        producer_max_batch_size=kafka.faust_producer_max_batch_size,
        producer_linger=0.005,
        topic_allow_declare=False,
        topic_disable_leader=True,
        topic_partitions=kafka.partitions,
        topic_replication_factor=kafka.replication_factor,
        table_standby_replicas=0,
        store="memory://",
        web_enabled=False,
        datadir=str(datadir),
        processing_guarantee="at_least_once",
    )
