"""The durable decision record: an interface and its backends."""

from remediator.clock import SYSTEM, Clock
from remediator.config import StateSettings
from remediator.store.base import Fenced, Store, StoreUnavailable
from remediator.store.sqlite import SQLiteStore


def make_store(settings: StateSettings, clock: Clock = SYSTEM) -> Store:
    return SQLiteStore(settings.path, synchronous=settings.synchronous, clock=clock)


__all__ = ["Fenced", "SQLiteStore", "Store", "StoreUnavailable", "make_store"]
