"""Registries, not if-chains: a name -> object map whose unknown-name error lists the valid names."""
from __future__ import annotations

import difflib
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


def _norm(name: str) -> str:
    """Names are case-insensitive and '-' equals '_' (so `random-search` finds `random_search`)."""
    return name.strip().lower().replace("-", "_")


class UnknownNameError(KeyError, ValueError):
    """An unknown registry name. Subclasses KeyError and ValueError so either can be caught."""

    def __str__(self) -> str:  # KeyError would quote the message otherwise
        return str(self.args[0]) if self.args else ""


class Registry(Generic[T]):
    """A named collection of factories (datasets, models, losses, optimizers, ...)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._docs: dict[str, str] = {}

    def register(self, name: str, obj: T | None = None, *, doc: str | None = None):
        """Register ``obj`` under ``name``; usable as a decorator when ``obj`` is omitted."""

        key = _norm(name)

        def _add(o: T) -> T:
            if key in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[key] = o
            self._docs[key] = (doc or (getattr(o, "__doc__", None) or "")).strip().split("\n")[0]
            return o

        return _add(obj) if obj is not None else _add

    def get(self, name: str) -> T:
        if not isinstance(name, str):
            raise TypeError(f"{self.kind} name must be a string, got {type(name).__name__}")
        key = _norm(name)
        if key in self._items:
            return self._items[key]
        close = difflib.get_close_matches(key, list(self._items), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownNameError(
            f"unknown {self.kind} {name!r}. Valid {self.kind} names: {', '.join(sorted(self._items))}.{hint}"
        )

    def names(self) -> list[str]:
        return sorted(self._items)

    def describe(self) -> dict[str, str]:
        return {k: self._docs[k] for k in self.names()}

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and _norm(name) in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


def call_with_options(kind: str, name: str, factory: Callable, options: dict):
    """Call ``factory(**options)``, turning an unexpected keyword into a clear error."""
    import inspect

    sig = inspect.signature(factory)
    accepts_kwargs = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    if not accepts_kwargs:
        P = inspect.Parameter
        valid = [n for n, p in sig.parameters.items() if p.kind in (P.POSITIONAL_OR_KEYWORD, P.KEYWORD_ONLY)]
        bad = [k for k in options if k not in valid]
        if bad:
            raise TypeError(
                f"{kind} {name!r} got unknown option(s) {', '.join(map(repr, bad))}; "
                f"valid options: {', '.join(valid) or '(none)'}"
            )
    return factory(**options)
