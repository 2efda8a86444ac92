"""The foundation layer: settings, logging, version and the event contracts. It imports nothing above it."""
