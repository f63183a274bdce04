"""`via`: a method of a store that is one of its repositories' methods (both backends'
stores are composed this way: store/sqlite/store.py, store/postgres/store.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Concatenate, Generic, ParamSpec, Self, TypeVar, overload

P = ParamSpec("P")
T = TypeVar("T")


class via(Generic[P, T]):  # lower case: it reads as a declaration, `x = via("runs", ...)`
    """A method of the store that is its repository's method: typed as the repository's, and
    bound once per store (the bound method is cached on the instance)."""

    def __init__(self, repository: str, method: Callable[Concatenate[Any, P], T]) -> None:
        self.repository = repository
        self.name = method.__name__

    @overload
    def __get__(self, store: None, owner: type) -> Self: ...
    @overload
    def __get__(self, store: object, owner: type) -> Callable[P, T]: ...
    def __get__(self, store: object | None, owner: type) -> Self | Callable[P, T]:
        if store is None:
            return self
        bound: Callable[P, T] = getattr(getattr(store, self.repository), self.name)
        store.__dict__[self.name] = bound
        return bound
