"""Where a study's units run: the executor interface and the in-process executor.

An executor takes units (``submit(key, kind, payload)``) and hands back results as they finish
(``wait_any()`` yields ``(key, result dict or None, exception or None)``); ``pending()``,
``cancel_all()`` and ``close()`` complete the interface. :class:`LocalExecutor` runs units one
at a time in this process (the sequential reference); ``distributed.DaskExecutor`` runs them on
a Dask cluster. Both call :func:`losslab.experiments.units.execute_unit`.
"""
from __future__ import annotations

import traceback
from typing import Any, Iterator, Protocol

from .units import execute_unit


class Executor(Protocol):
    """What the runner needs from an executor (LocalExecutor, DaskExecutor, or your own)."""

    name: str

    def submit(self, key: str, kind: str, payload: dict): ...

    def wait_any(self) -> Iterator[tuple[str, dict | None, BaseException | None]]: ...

    def pending(self) -> int: ...

    def cancel_all(self) -> None: ...

    def close(self) -> None: ...


class LocalExecutor:
    """Runs units one at a time in this process (the sequential reference)."""

    name = "local"

    def __init__(self, *, threads: int | None = None):
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
        self.threads = threads
        self._queue: list[tuple[Any, str, dict]] = []

    def submit(self, key: str, kind: str, payload: dict):
        self._queue.append((key, kind, payload))
        return key

    def wait_any(self) -> Iterator[tuple[str, dict | None, BaseException | None]]:
        key, kind, payload = self._queue.pop(0)
        try:
            res = execute_unit(kind, payload, self.threads)
        except KeyboardInterrupt:
            raise
        except Exception as e:  # a failing unit is recorded; the study goes on
            e.__losslab_tb__ = traceback.format_exc(limit=3)  # type: ignore[attr-defined]
            return iter([(key, None, e)])
        return iter([(key, res, None)])

    def pending(self) -> int:
        return len(self._queue)

    def cancel_all(self) -> None:
        self._queue.clear()

    def close(self) -> None:
        pass
