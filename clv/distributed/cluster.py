"""Connecting to a Dask cluster: the one place that makes a ``distributed.Client``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["DaskUnavailableError", "connect", "dask_address"]

#: Seconds to wait for the scheduler to answer before giving up with a message.
CONNECT_TIMEOUT_S = 15.0


class DaskUnavailableError(RuntimeError):
    """The scheduler named by ``--dask-address`` / ``CLV_DASK_ADDRESS`` cannot be reached."""


def dask_address(explicit: str | None = None) -> str | None:
    """The scheduler to use: ``explicit`` if given, else ``CLV_DASK_ADDRESS``, else ``None``.

    Parameters
    ----------
    explicit : str, optional
        An address from the command line or a flow parameter, e.g. ``tcp://10.0.0.5:8786``.

    Returns
    -------
    str or None
        ``None`` means the single-machine path.

    Raises
    ------
    DaskUnavailableError
        When the address is not of the form ``scheme://host:port`` (tcp, tls, ws, wss, inproc).
    """
    from clv.settings import get_settings

    address = explicit if explicit is not None else get_settings().dask_address
    if address is None or not address.strip():
        return None
    address = address.strip()
    scheme, sep, rest = address.partition("://")
    if not sep or scheme not in {"tcp", "tls", "ws", "wss", "inproc"} or not rest:
        raise DaskUnavailableError(
            f"{address!r} is not a Dask scheduler address: use tcp://HOST:PORT "
            "(e.g. tcp://127.0.0.1:8786, as `dask scheduler` prints)"
        )
    return address


@contextlib.contextmanager
def connect(address: str, *, timeout: float | None = None) -> Iterator[Client]:
    """A client of the scheduler at ``address``, closed on exit (the cluster keeps running).

    Parameters
    ----------
    address : str
        From :func:`dask_address`.
    timeout : float, optional
        Seconds to wait for the scheduler (default :data:`CONNECT_TIMEOUT_S`).

    Yields
    ------
    distributed.Client
        Connected, with at least one worker.

    Raises
    ------
    DaskUnavailableError
        When the scheduler does not answer within ``timeout`` or has no worker.
    """
    timeout = CONNECT_TIMEOUT_S if timeout is None else timeout
    from distributed import Client

    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as err:
        raise DaskUnavailableError(
            f"cannot reach the Dask scheduler at {address} within {timeout:g} s ({err}); "
            "is `dask scheduler` running there, and is the port open?"
        ) from None
    try:
        try:
            client.wait_for_workers(1, timeout=timeout)
        except (OSError, TimeoutError):
            raise DaskUnavailableError(
                f"the Dask scheduler at {address} has no worker after {timeout:g} s: "
                "start one with `dask worker " + address + "`"
            ) from None
        yield client
    finally:
        client.close()
