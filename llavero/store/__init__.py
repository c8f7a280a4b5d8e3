"""Storage: SQLAlchemy 2 on SQLite (default) or PostgreSQL, schema by Alembic migrations."""

from llavero.store.db import Database, DatabaseTimeouts

__all__ = ["Database", "DatabaseTimeouts"]
