"""The serving API: ``create_app()`` builds it, ``clv serve`` runs it (see :mod:`clv.api.app`)."""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    # FastAPI is imported only when the API is used, never by `import clv`.
    if name == "create_app":
        from clv.api.app import create_app

        return create_app
    raise AttributeError(name)
