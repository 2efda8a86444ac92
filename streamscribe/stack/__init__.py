"""The embedded stack: broker, PostgreSQL, object storage, workers and gateway on one machine."""
