"""streamscribe: speech transcription as an event-driven pipeline on Kafka."""

__version__ = "0.1.0"
