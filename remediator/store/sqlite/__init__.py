"""The SQLite backend: `Database` (database.py) and one repository per aggregate over it.

Everything dialect-specific (SQL, schema.sql, text timestamps and JSON, rows.py's mapping) is
in this package, so another backend is a sibling package implementing store/protocols.py.
"""

from remediator.store.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore"]
