"""The verify core: key format, the decision, cache, restrictions, limits, plans and meter.

Nothing here knows HTTP or a database driver (docs/architecture.md)."""
