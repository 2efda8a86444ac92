"""Ways in and out of the pipeline, each a subpackage:

- ``ingest``: decoding stored recordings (any container and codec FFmpeg reads) into 16 kHz PCM chunks;
- ``storage``: object storage for recordings (claim checks), encrypted at rest, on a local directory or S3;
- ``producer``: the Python library that produces ``audio.chunks`` straight to Kafka, for sources that skip the
  gateway;
- ``telephony``: telephony media-stream protocols (Twilio Media Streams) turned into pipeline audio;
- ``webhooks``: outbound webhooks, signed and retried notifications of job events to subscribers.
"""
