"""Producing audio straight to Kafka (call-center systems and other sources that skip the gateway)."""
