"""The platform image, built once per session for every e2e module that runs it with podman.

``test_image.py`` and ``test_compose_up.py`` both need ``localhost/clv-platform:latest`` built
from this checkout; built here once, it serves both (a second build, even from the layer cache,
only repeats the same work). A skip or failure of either fixture is kept by pytest for the
session: every test that asks for it reports the same reason, and the build is not retried.
"""

from __future__ import annotations

import pytest

from tests.e2e.podman import build_image, install_prerequisites, require_podman


@pytest.fixture(scope="session")
def podman_ready() -> None:
    """Podman installed and configured by ``infra/image/build.sh prerequisites``.

    Where it cannot run: :func:`tests.conftest.missing` (a skip, a failure under ``CI=true``).
    """
    require_podman()
    install_prerequisites()


@pytest.fixture(scope="session")
def image(podman_ready: None, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Build the image with ``infra/image/build.sh`` (podman); return its name."""
    return build_image(tmp_path_factory.mktemp("image") / "build.log")
