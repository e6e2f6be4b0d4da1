"""Print a requirements list read from ``pyproject.toml``, for the image build (../../Dockerfile).

The build stage turns the dependencies into wheels from ``pyproject.toml`` alone, before any source
is copied, so that a code change reuses that layer. Standard library only: it runs on the bare
base image's Python.

    python3 requirements.py pyproject.toml runtime   # dependencies + the k8s extra
    python3 requirements.py pyproject.toml build     # the build backend (build-system.requires)
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

#: Extras the image carries: ``k8s`` (prefect-kubernetes) lets the same image run the Kubernetes
#: worker (k8s/prefect-worker.yaml), which is started with ``--install-policy never``.
IMAGE_EXTRAS = ("k8s",)


def requirements(pyproject: dict[str, object], kind: str) -> list[str]:
    """The requirement strings of ``kind`` (``runtime`` or ``build``) in a parsed pyproject."""
    if kind == "build":
        build_system = pyproject["build-system"]
        assert isinstance(build_system, dict)
        return list(build_system["requires"])
    project = pyproject["project"]
    assert isinstance(project, dict)
    extras = project.get("optional-dependencies", {})
    return list(project["dependencies"]) + [req for name in IMAGE_EXTRAS for req in extras[name]]


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in {"runtime", "build"}:
        print("usage: requirements.py PYPROJECT {runtime|build}", file=sys.stderr)
        return 2
    with Path(argv[0]).open("rb") as file:
        pyproject = tomllib.load(file)
    print("\n".join(requirements(pyproject, argv[1])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
