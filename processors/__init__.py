"""Domain work, free of Kafka: VAD, ASR, post-processing and the PostgreSQL projection."""
