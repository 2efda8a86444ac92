"""Post-processing: turn recognised segments into a readable transcript and render it."""
