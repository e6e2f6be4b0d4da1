"""The flows' task runner: a Dask cluster when the run names one, else Prefect's default.

In Prefect 3 a flow's task runner is fixed when the flow is defined, but whether a run should use
a Dask cluster is only known when it starts: from its ``dask_address`` parameter (given by the
caller or a deployment run, ``-p dask_address=tcp://HOST:8786``) or, without one, from
``CLV_DASK_ADDRESS`` (:func:`clv.distributed.cluster.dask_address`; an empty value means none).
:class:`ClusterTaskRunner` is the flows' task runner and defers that choice to the first task the
run submits: then the flow run's parameters are known, and it delegates to
``prefect_dask.DaskTaskRunner(address=...)`` or to
:class:`prefect.task_runners.ThreadPoolTaskRunner` (the default of ``@flow``). The same flow
object therefore serves the CLI, tests and deployments; without an address the flows' tasks run
in that thread pool, one after the other, as before.

Tasks on a cluster run in the Dask workers' processes: the workers need the platform's code and
the same settings and storage as the flow run (in ``k8s/`` and ``docker-compose.yml`` they run the
platform image with the same configuration and ``CLV_HOME`` volume). A task whose library calls
can use the cluster themselves (the tree families' Dask training) wraps them in
:func:`on_this_tasks_cluster`.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator
from typing import Any, Self

from prefect.client.schemas.objects import RunInput
from prefect.futures import PrefectFuture
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner
from prefect.tasks import Task

__all__ = [
    "DASK_ADDRESS_PARAMETER",
    "ClusterTaskRunner",
    "on_this_tasks_cluster",
    "run_dask_address",
]

#: The flow parameter that names a scheduler, as on the command line (``--dask-address``).
DASK_ADDRESS_PARAMETER = "dask_address"


def run_dask_address() -> str | None:
    """The scheduler of the current flow run: its ``dask_address``, else ``CLV_DASK_ADDRESS``.

    Returns
    -------
    str or None
        ``None`` outside a flow run without ``CLV_DASK_ADDRESS``, or when neither is set.

    Raises
    ------
    clv.distributed.cluster.DaskUnavailableError
        When the address given is not a scheduler address.
    """
    from prefect.context import FlowRunContext

    from clv.distributed.cluster import dask_address

    context = FlowRunContext.get()
    parameters = (context.parameters if context is not None else None) or {}
    explicit = parameters.get(DASK_ADDRESS_PARAMETER)
    return dask_address(explicit)


class ClusterTaskRunner(TaskRunner[PrefectFuture[Any]]):
    """Submits to the Dask scheduler the flow run names, or to threads when it names none.

    The delegate is chosen, and started, at the first :meth:`submit` of a run (see the module's
    docstring) and stopped with this runner at the end of the run.
    """

    def __init__(self) -> None:
        super().__init__()
        self._stack: contextlib.ExitStack | None = None
        self._delegate: TaskRunner[Any] | None = None
        #: The scheduler the delegate submits to; ``None``: threads (or not chosen yet).
        self.address: str | None = None

    def duplicate(self) -> Self:
        return type(self)()

    def __enter__(self) -> Self:
        super().__enter__()
        self._stack = contextlib.ExitStack()
        return self

    def __exit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> None:
        try:
            if self._stack is not None:
                self._stack.close()
        finally:
            self._stack, self._delegate = None, None
            super().__exit__(exc_type, exc_value, traceback)

    def _chosen(self) -> TaskRunner[Any]:
        if self._stack is None:
            raise RuntimeError("The task runner must be started before submitting work.")
        if self._delegate is None:
            self.address = run_dask_address()
            if self.address is None:
                runner: TaskRunner[Any] = ThreadPoolTaskRunner()
            else:
                from prefect_dask import DaskTaskRunner

                self.logger.info("submitting tasks to the Dask scheduler at %s", self.address)
                runner = DaskTaskRunner(address=self.address)
            self._delegate = self._stack.enter_context(runner)
        return self._delegate

    def submit(
        self,
        task: Task[Any, Any],
        parameters: dict[str, Any],
        wait_for: Iterable[PrefectFuture[Any]] | None = None,
        dependencies: dict[str, set[RunInput]] | None = None,
    ) -> PrefectFuture[Any]:
        future: PrefectFuture[Any] = self._chosen().submit(
            task, parameters, wait_for=wait_for, dependencies=dependencies
        )
        return future


@contextlib.contextmanager
def on_this_tasks_cluster() -> Iterator[None]:
    """Inside a task that a Dask worker runs, the library's Dask paths use that worker's cluster.

    ``distributed.worker_client`` gives the task a client of its own scheduler and secedes the
    task's thread from the worker's pool while it waits, so that the computations it starts
    (XGBoost's and LightGBM's Dask training want every worker that holds data) are not blocked
    by it; :func:`clv.distributed.training.on_cluster` makes that client the one
    :mod:`clv.training.hpo` tunes and refits on. Outside a worker nothing changes: an enclosing
    ``on_cluster`` (``clv train --dask-address``) still applies, as Prefect's threads run in a
    copy of the flow's context.
    """
    # Not imported: this process is no Dask worker (and the one-machine path stays light).
    if "distributed" not in sys.modules:
        yield
        return
    from distributed import get_worker, worker_client

    try:
        get_worker()
    except ValueError:
        yield
        return
    from clv.distributed.training import on_cluster

    with worker_client() as client, on_cluster(client):
        yield
