"""Domain work, free of Kafka, HTTP, storage and SQL: audio conversions, voice activity detection, speech
recognition, diarization and speaker identification, and post-processing of transcripts."""
