"""Object storage for uploaded recordings (claim checks)."""
