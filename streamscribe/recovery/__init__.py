"""The reconciler: no job in flight stays stuck (docs/recovery.md)."""
