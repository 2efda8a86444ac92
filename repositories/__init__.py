"""All SQL of the platform, one module per aggregate, and the schema migrations (``migrations/``)."""
