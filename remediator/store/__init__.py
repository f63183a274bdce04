"""The durable decision record: an interface and its backends."""

from remediator.clock import SYSTEM, Clock
from remediator.config import StateSettings
from remediator.store.base import Fenced, SliceTaken, Store, StoreUnavailable
from remediator.store.postgres import PostgresStore, SchemaTooNew
from remediator.store.sqlite import SQLiteStore


def make_store(settings: StateSettings, clock: Clock = SYSTEM) -> Store:
    """The backend the settings name (raises ConfigError when its DSN file cannot be read)."""
    if settings.backend == "postgres":
        return PostgresStore(
            settings.dsn_value(),
            pool_min=settings.pool_min,
            pool_max=settings.pool_max,
            clock=clock,
        )
    return SQLiteStore(settings.path, synchronous=settings.synchronous, clock=clock)


__all__ = [
    "Fenced",
    "PostgresStore",
    "SQLiteStore",
    "SchemaTooNew",
    "SliceTaken",
    "Store",
    "StoreUnavailable",
    "make_store",
]
