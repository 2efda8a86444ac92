"""Prepare a production deployment's Kafka topics, as ``streamscribe up`` does on the embedded stack.

``streamscribe topics create [--partitions N] [--timeout 300]`` runs ``provision_topics``: it reads the usual
settings (``STREAMSCRIBE_KAFKA__*``: bootstrap servers, security, prefix, partitions, replication factor) and
makes every catalogued topic as the catalogue says (``streams.kafka.admin.ensure_topics``: missing topics
created; on Apache Kafka, topics grown to the configured partition count and their configs set and checked).
It retries until the cluster answers or the timeout passes, so it can start with the brokers. The Compose
``topics`` service and the Helm migration Job run it (unless Strimzi manages the topics).
"""

from __future__ import annotations

import time

from foundation.logs import get_logger
from foundation.settings import Settings
from streams.kafka.admin import TopicConfigMismatch, TopicsReport, ensure_topics
from streams.kafka.clients import KafkaAuthenticationError
from streams.stages.registry import state_groups

log = get_logger(__name__)


def provision_topics(settings: Settings, timeout: float = 300) -> TopicsReport:
    """``ensure_topics`` retried while the cluster is unreachable; refused credentials and configs that cannot
    be set fail at once (waiting does not cure them)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return ensure_topics(settings.kafka, state_groups(), timeout=30)
        except (KafkaAuthenticationError, TopicConfigMismatch):
            raise
        except Exception as exc:  # the cluster may still be starting
            if time.monotonic() > deadline:
                raise
            log.warning("kafka not ready for the topics yet; retrying", error=str(exc),
                        bootstrap=settings.kafka.bootstrap_servers)
            time.sleep(2)
