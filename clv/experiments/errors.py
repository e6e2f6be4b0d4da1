"""The one error the experiments package raises for input a user can fix."""

from __future__ import annotations

__all__ = ["ExperimentInputError"]


class ExperimentInputError(ValueError):
    """Input to an experiment function is unusable; the message says what and where.

    The CLI prints the message and exits with status 2; it never shows a traceback.
    """
