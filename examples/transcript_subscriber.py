"""A downstream service: subscribe to finished transcripts on Kafka, as its own consumer group.

    .venv/bin/python examples/transcript_subscriber.py [--group my-service] [--bootstrap HOST:PORT]

Reads ``transcripts`` (key = stream_id): SEGMENT events carry finished segments (with speakers when the job
was diarized), COMPLETED closes a revision with its speakers, FAILED with the reason. It prints each
transcript when it completes. Offsets are committed after each event is handled (at-least-once), and
segment ids are stable, so a restarted subscriber can simply overwrite what it saw before.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from typing import Any

from foundation.settings import Settings
from streams.kafka.clients import reader_consumer
from streams.kafka.schema_registry import make_registry
from streams.kafka.serde import AvroSerde
from streams.kafka.topics import TRANSCRIPTS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--group", default="example-transcript-subscriber")
    parser.add_argument("--bootstrap", default=None, help="Kafka bootstrap servers (default: settings)")
    args = parser.parse_args()
    settings = Settings()
    if args.bootstrap:
        settings.kafka.bootstrap_servers = args.bootstrap
    serde = AvroSerde(make_registry(settings.schema_registry.url, settings.schema_registry_file))
    consumer = reader_consumer(settings.kafka, args.group, "example-transcript-subscriber")
    consumer.subscribe([TRANSCRIPTS])
    open_streams: dict[tuple[str, int], dict[str, dict[str, Any]]] = defaultdict(dict)
    try:
        while True:
            msg = consumer.poll(1.0)
            if msg is None or msg.error():
                continue
            event = serde.deserialize(TRANSCRIPTS, msg.value())
            key = (event["stream_id"], event["revision"])
            if event["kind"] == "SEGMENT":
                open_streams[key][event["segment"]["id"]] = event["segment"]  # redelivery overwrites
            elif event["kind"] == "COMPLETED":
                names = {s["id"]: s["name"] or s["label"] for s in event["speakers"]}
                segments = sorted(open_streams.pop(key, {}).values(), key=lambda s: s["start"])
                print(json.dumps({"stream_id": key[0], "revision": key[1], "language": event["language"],
                                  "speakers": list(names.values()),
                                  "lines": [f"{names.get(s['speaker'], s['speaker'] or '')}: {s['text']}"
                                            for s in segments]}, indent=1))
            else:
                open_streams.pop(key, None)
                print(json.dumps({"stream_id": key[0], "failed": event["error"]}))
            consumer.commit(message=msg, asynchronous=False)
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()


if __name__ == "__main__":
    main()
