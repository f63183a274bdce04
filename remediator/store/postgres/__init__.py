"""The PostgreSQL backend: `Database` (database.py: the asyncpg pool, transactions, errors as
StoreUnavailable), versioned migrations (migrate.py, migrations/NNNN_name.sql) and one
repository per aggregate over it, with the names and semantics of store/sqlite/'s.

Replicas sharing one database coordinate through it (leases, claims, fencing): their SQL
comes as later migrations and modules of this package.
"""

from remediator.store.postgres.migrate import SchemaTooNew
from remediator.store.postgres.store import PostgresStore

__all__ = ["PostgresStore", "SchemaTooNew"]
