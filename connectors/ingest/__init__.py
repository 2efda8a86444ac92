"""Decoding stored recordings into audio chunks."""
