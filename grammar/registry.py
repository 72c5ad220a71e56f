"""Named registries: task families, model kinds, search methods, schedules.

A new kind is one `register` call; an unknown name is an error that lists the known ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from nlic.grammar.errors import Loc, SpecError, did_you_mean

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """A mapping from names to values (builders, strategies) with helpful lookup errors."""

    def __init__(self, what: str):
        self.what = what
        self._items: dict[str, T] = {}

    def register(self, name: str, value: T | None = None) -> Callable[[T], T] | T:
        """Register `value` under `name`; without `value`, return a decorator."""

        def add(v: T) -> T:
            if name in self._items:
                raise KeyError(f"{self.what} '{name}' is registered twice")
            self._items[name] = v
            return v

        if value is None:
            return add
        return add(value)

    def get(self, name: str, *, loc: Loc | None = None) -> T:
        """The value registered as `name`; a `SpecError` listing the known names otherwise."""
        try:
            return self._items[name]
        except KeyError:
            raise SpecError(
                f"unknown {self.what} '{name}'", loc=loc, hint=did_you_mean(name, self._items)
            ) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))
