"""Create the platform's Kafka topics on a production cluster, as ``streamscribe up`` does on the embedded one.

    python -m streamscribe.provision [--timeout 300]

Reads the usual settings (``STREAMSCRIBE_KAFKA__*``: bootstrap servers, prefix, partitions, replication factor)
and creates every catalogued topic that does not exist yet (``streams.kafka.admin.ensure_topics``); existing
topics are left as they are. Retries until the cluster answers or ``--timeout`` passes, so it can start with
the brokers. Run by the Compose ``topics`` service and by the Helm migration Job when Strimzi does not manage
the topics.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from foundation.logs import configure, get_logger
from foundation.settings import Settings
from streams.kafka.admin import ensure_topics
from streams.stages.registry import state_groups


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Create the platform's Kafka topics.")
    ap.add_argument("--timeout", type=float, default=300, help="give up after this many seconds")
    args = ap.parse_args(argv)
    settings = Settings()
    configure(settings.log_level, settings.log_format, component="provision")
    log = get_logger(__name__)
    deadline = time.monotonic() + args.timeout
    while True:
        try:
            created = ensure_topics(settings.kafka, state_groups(), timeout=30)
            break
        except Exception as exc:  # the cluster may still be starting
            if time.monotonic() > deadline:
                log.error("topics not created", error=str(exc), bootstrap=settings.kafka.bootstrap_servers)
                return 1
            log.warning("kafka not reachable yet; retrying", error=str(exc))
            time.sleep(2)
    print(json.dumps({"created": created}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
