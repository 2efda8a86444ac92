"""streamscribe: speech transcription as an event-driven pipeline on Kafka (the top layer: CLI, client and the
embedded-stack supervisor)."""

from foundation.version import __version__

__all__ = ["__version__"]
