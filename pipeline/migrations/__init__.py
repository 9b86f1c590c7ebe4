"""Schema migration tools: the interface the migration activities use (base.py) and
its implementations, one module each, listed in pipeline/catalog.py MIGRATION_TOOLS."""
