"""PCM helpers shared by the processors."""
