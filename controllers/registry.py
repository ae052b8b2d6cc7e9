"""A typed name -> factory registry: how the controller finds its actuators, observers and forecasters.

In the manner of Vidur's registries and Dynamo's PlannerConnector: an implementation registers
itself under a name with a decorator; configs and the CLI list and validate their choices from
the registry (`names()`, `help()`), never from a literal list. `discover(package)` imports every
module of a package, so an implementation dropped into `controllers/actuators/` (or observers/)
is registered without any other file changing (the solver runners do the same:
solvers/runners/__init__.py).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

F = TypeVar("F")


@dataclass(frozen=True)
class Entry(Generic[F]):
    """One registered implementation: its name, a few words for help texts, and how to build it."""

    name: str
    summary: str
    factory: F
    options: tuple[str, ...] = ()
    """The keys of its `options` mapping it reads (actuator.options): any other key is refused at config load."""


class Registry(Generic[F]):
    """Implementations of one seam (`what`: 'actuator', 'observer', ...), by name."""

    def __init__(self, what: str, default: str | None = None):
        self.what = what
        self.default = default
        self._entries: dict[str, Entry[F]] = {}

    def register(self, name: str, summary: str, options: tuple[str, ...] = ()) -> Callable[[F], F]:
        """Decorator: register `factory` under `name`, reading the option keys `options`; a name registered twice is
        an error."""

        def deco(factory: F) -> F:
            self.add(name, summary, factory, options)
            return factory

        return deco

    def add(self, name: str, summary: str, factory: F, options: tuple[str, ...] = ()) -> None:
        if name in self._entries:
            raise ValueError(f"{self.what} {name!r} registered twice")
        self._entries[name] = Entry(name, summary, factory, options)

    def remove(self, name: str) -> None:
        """Unregister (tests that register a throw-away implementation clean up with this)."""
        self._entries.pop(name, None)

    def names(self) -> list[str]:
        """Registered names: the default first, then alphabetically."""
        return sorted(self._entries, key=lambda k: (k != self.default, k))

    def get(self, name: str) -> Entry[F]:
        """The entry registered under `name`; ValueError naming the registered ones otherwise."""
        if name not in self._entries:
            raise ValueError(f"{self.what} must be one of {', '.join(self.names())}; got {name!r}")
        return self._entries[name]

    def help(self) -> str:
        """'kubernetes: ... | metrics: ...' for help texts and error messages."""
        return " | ".join(f"{e.name}: {e.summary}" for e in (self._entries[n] for n in self.names()))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[F]]:
        return iter([self._entries[n] for n in self.names()])


def discover(package: str, path: list[str], skip: tuple[str, ...] = ("base",)) -> None:
    """Import every module of `package` (its `__path__` is `path`) except `skip`: each registers itself."""
    for module in pkgutil.iter_modules(path):
        if module.name not in skip:
            importlib.import_module(f"{package}.{module.name}")
