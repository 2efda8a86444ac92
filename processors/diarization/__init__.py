"""Speaker diarization and identification: who spoke when, and whose voice it is."""
