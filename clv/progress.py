"""Progress of long steps, told to whoever is listening (the CLI's spinner; nobody by default).

The training and scoring flows run inside the ``clv`` process that started them, in Prefect tasks
that may run on worker threads, so the listener is process-wide rather than a context variable.
Library code calls :func:`report`; a front end wraps the work in :func:`reporting`::

    with reporting(lambda message: status.update(message)):
        training_flow(...)

A listener that raises is dropped rather than allowed to break the work it describes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_listeners: list[Callable[[str], None]] = []


def report(message: str) -> None:
    """Tell the listeners which step is running (and log it at debug level).

    Parameters
    ----------
    message : str
        A short present-tense description, e.g. ``"tuning xgboost: trial 3 of 10"``.
    """
    logger.debug(message)
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        try:
            listener(message)
        except Exception:  # a broken display must not stop training
            logger.debug("progress listener failed; dropping it", exc_info=True)
            with _lock:
                if listener in _listeners:
                    _listeners.remove(listener)


@contextmanager
def reporting(listener: Callable[[str], None]) -> Iterator[None]:
    """Send every :func:`report` made inside the block to ``listener``.

    Parameters
    ----------
    listener : callable
        Called with each message, from whichever thread reports it.
    """
    with _lock:
        _listeners.append(listener)
    try:
        yield
    finally:
        with _lock:
            if listener in _listeners:
                _listeners.remove(listener)
