"""Operator tools on the Kafka layer: consumer-group offset moves (``groups``), tailing a topic (``tail``)."""
