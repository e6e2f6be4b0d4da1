"""Keep TensorFlow's start-up chatter off the terminal without hiding its real errors.

TensorFlow prints notices that look like failures to a newcomer: the oneDNN notice and absl's
"All log messages before absl::InitializeLog()" line (both written by native code at load time,
before ``TF_CPP_MIN_LOG_LEVEL`` is read), and an ``E0000 ... node_def_util.cc`` line about the
``use_unbounded_threadpool`` attribute that TensorFlow's own tf.data rewrite produces on every
Keras ``fit`` (harmless: the attribute is ignored). ``TF_CPP_MIN_LOG_LEVEL=2`` hides the native
INFO and WARNING lines but keeps errors; the three lines above are dropped by name from the
process's standard error while Keras loads, fits and predicts. Every other line passes through.

``TF_ENABLE_ONEDNN_OPTS`` is left alone: turning oneDNN off could change the numbers, and hiding
its notice is enough.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
from collections.abc import Iterator

#: Set only where the user has not chosen: 2 hides native INFO and WARNING, keeps ERROR.
TF_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "2"}

#: Lines TensorFlow writes to fd 2 that are not the user's problem (each pattern names its line).
HARMLESS_LINES = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|port\.cc:\d+\] oneDNN custom operations are on"
    r"|node_def_util\.cc:\d+\] NodeDef mentions attribute use_unbounded_threadpool"
)

_lock = threading.Lock()
_depth = 0
_target_fd = 2
_saved_fd: int | None = None
_pump: threading.Thread | None = None


def quiet_environment() -> None:
    """Set TensorFlow's and absl's log levels where the user has not set them.

    Must run before TensorFlow is imported: the native library reads the environment once.
    """
    for name, value in TF_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    # absl's Python logger (used by TensorFlow and Keras) follows the ``absl`` logging logger.
    absl_logger = logging.getLogger("absl")
    if absl_logger.level == logging.NOTSET:
        absl_logger.setLevel(logging.ERROR)


def _copy_lines(read_fd: int, write_fd: int) -> None:
    """Copy ``read_fd`` to ``write_fd`` line by line, dropping the harmless TensorFlow lines."""
    pending = b""
    with os.fdopen(read_fd, "rb", buffering=0) as source:
        while chunk := source.read(65536):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            kept = [
                line + b"\n"
                for line in lines
                if not HARMLESS_LINES.search(line.decode("utf-8", "replace"))
            ]
            if kept:
                os.write(write_fd, b"".join(kept))
    if pending and not HARMLESS_LINES.search(pending.decode("utf-8", "replace")):
        os.write(write_fd, pending)


@contextlib.contextmanager
def filtered_stderr() -> Iterator[None]:
    """Drop the harmless TensorFlow lines from fd 2 while the block runs; keep everything else.

    Re-entrant and safe across threads: the first block to enter installs the filter, the last to
    leave removes it and waits until every line written meanwhile has been passed on.
    """
    global _depth, _target_fd, _saved_fd, _pump
    with _lock:
        if _depth == 0:
            _target_fd = _stderr_fd()
            sys.stderr.flush()
            _saved_fd = os.dup(_target_fd)
            read_fd, write_fd = os.pipe()
            os.dup2(write_fd, _target_fd)
            os.close(write_fd)
            _pump = threading.Thread(
                target=_copy_lines, args=(read_fd, _saved_fd), name="tf-stderr", daemon=True
            )
            _pump.start()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved_fd is not None and _pump is not None:
                with contextlib.suppress(Exception):
                    sys.stderr.flush()
                # Putting the saved fd back closes the pipe's last writer: the pump drains and ends.
                os.dup2(_saved_fd, _target_fd)
                _pump.join(timeout=10)
                os.close(_saved_fd)
                _saved_fd, _pump = None, None


def _stderr_fd() -> int:
    """The process's standard error file descriptor (2 unless Python's stderr says otherwise)."""
    try:
        return sys.__stderr__.fileno() if sys.__stderr__ is not None else 2
    except (AttributeError, OSError, ValueError):
        return 2
