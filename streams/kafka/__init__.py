"""Kafka plumbing every other part uses: client construction (``clients``), the topic catalogue and lanes
(``topics``, ``lanes``), Avro serde and the schema registry (``serde``, ``schema_registry``), admin (``admin``)."""
