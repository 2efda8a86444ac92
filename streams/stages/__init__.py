"""The pipeline stages: each a thin adapter from its input topics to a pure processor and back to topics."""
