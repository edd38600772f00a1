"""Running a study's units on Dask (``pip install losslab[dask]``).

``DaskExecutor(workers=N)`` starts a ``LocalCluster`` of N worker processes (one thread each) on
this machine; ``DaskExecutor(scheduler="tcp://host:port")`` connects to a running cluster
(dask-jobqueue on SLURM, dask-kubernetes, ``dask scheduler`` + ``dask worker`` by hand).

Workers only compute: each task is ``execute_unit(kind, payload)`` and returns a plain dict
of numpy arrays; the client writes the store (see :mod:`losslab.experiments.runner` for why).
A worker that dies mid-task loses nothing: the scheduler reruns its tasks on another worker
(up to ``allowed_failures`` times), and the client writes each unit's record once, under the
unit's deterministic id.

With GPUs, run one worker per GPU (``workers = torch.cuda.device_count()`` by default when
CUDA is available); a unit with ``train.device = "auto"`` or ``"cuda"`` on worker i uses GPU
i mod n (LocalCluster names its workers 0..N-1).
"""
from __future__ import annotations

from typing import Iterator


def _require_dask():
    try:
        import distributed  # noqa: F401
    except ImportError:  # pragma: no cover - the extra is installed in tests
        raise ImportError("distributed execution needs Dask: pip install 'losslab[dask]' "
                          "(dask[distributed])") from None


class DaskExecutor:
    """Submit units to a Dask cluster and hand back results as they complete."""

    name = "dask"

    def __init__(self, *, workers: int | None = None, scheduler: str | None = None, client=None,
                 threads_per_worker: int = 1, processes: bool = True, memory_limit: str | None = "auto",
                 allowed_failures: int | None = None):
        _require_dask()
        import dask
        from distributed import Client, LocalCluster

        if sum(x is not None for x in (workers, scheduler, client)) > 1:
            raise ValueError("give at most one of workers=N (a local cluster), scheduler=ADDRESS or client=")
        if allowed_failures is not None:
            dask.config.set({"distributed.scheduler.allowed-failures": int(allowed_failures)})
        self.cluster = None
        self._own_client = client is None
        if client is not None:
            self.client = client
        elif scheduler is not None:
            if not isinstance(scheduler, str) or "://" not in scheduler and ":" not in scheduler:
                raise ValueError(f"--scheduler must be an address like tcp://HOST:PORT, got {scheduler!r}")
            try:
                self.client = Client(scheduler, timeout="20s")
            except OSError as e:
                raise ValueError(f"cannot reach the Dask scheduler at {scheduler} ({e}); start one with "
                                 f"`dask scheduler` or pass --workers N for a local cluster") from None
        else:
            if workers is None:
                workers = _default_workers()
            if not isinstance(workers, int) or workers < 1:
                raise ValueError(f"workers must be a positive integer, got {workers!r}")
            self.cluster = LocalCluster(n_workers=workers, threads_per_worker=threads_per_worker, processes=processes,
                                        memory_limit=memory_limit, dashboard_address=":0")
            self.client = Client(self.cluster)
        from distributed import as_completed

        self.threads = threads_per_worker
        self._ac = as_completed([], with_results=False)
        self._futures: dict[str, object] = {}

    @property
    def n_workers(self) -> int:
        return len(self.client.scheduler_info(n_workers=-1)["workers"]) if hasattr(self.client, "scheduler_info") else 0

    def submit(self, key: str, kind: str, payload: dict):
        from .units import execute_unit

        fut = self.client.submit(execute_unit, kind, payload, self.threads, key=f"losslab-{kind}-{key}", pure=False)
        self._futures[fut.key] = (key, fut)
        self._ac.add(fut)
        return fut

    def wait_any(self) -> Iterator[tuple[str, dict | None, BaseException | None]]:
        fut = next(self._ac)
        key, _ = self._futures.pop(fut.key)
        try:
            res = fut.result()
        except Exception as e:  # the unit raised (or its workers kept dying: KilledWorker)
            return iter([(key, None, e)])
        finally:
            fut.release()
        return iter([(key, res, None)])

    def pending(self) -> int:
        return len(self._futures)

    def cancel_all(self) -> None:
        futs = [f for _, f in self._futures.values()]
        self._futures.clear()
        if futs:
            self.client.cancel(futs)

    def worker_pids(self) -> dict[str, int]:
        """{worker address: process id} (tests kill one to check that nothing is lost)."""
        import os

        return self.client.run(os.getpid)

    def close(self) -> None:
        if self._own_client:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _default_workers() -> int:
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.device_count()
    except Exception:  # pragma: no cover
        pass
    import os

    return max(1, min(4, os.cpu_count() or 1))
