"""The PostgreSQL projection of the result topics."""
