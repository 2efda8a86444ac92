"""Benchmarks: one command each, figures recorded in BENCHMARKS.md."""
