"""The identity of the code that is running: package version plus a hash of its source.

Training fingerprints and the feature cache key include it, so a fixed bug (a changed source byte
anywhere under ``clv/``) trains and builds features afresh instead of reusing what the old code
produced. The version alone does not change between commits.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

#: The package folder whose ``*.py`` files are hashed.
PACKAGE_ROOT = Path(__file__).resolve().parent


def source_hash(root: Path) -> str:
    """SHA-256 over every ``*.py`` file under ``root``, sorted by relative path.

    Each file contributes its relative POSIX path and its bytes, so renaming or moving a module
    changes the hash as well as editing one. Byte-compiled caches are not read.

    Parameters
    ----------
    root : Path
        The package folder.

    Returns
    -------
    str
        Hex digest.
    """
    digest = hashlib.sha256()
    files = sorted(
        (p for p in Path(root).rglob("*.py") if "__pycache__" not in p.parts),
        key=lambda p: p.relative_to(root).as_posix(),
    )
    for path in files:
        relative = path.relative_to(root).as_posix().encode()
        content = path.read_bytes()
        # Length-prefixed so that no two different trees give the same byte stream.
        digest.update(f"{len(relative)}:".encode() + relative)
        digest.update(f"{len(content)}:".encode() + content)
    return digest.hexdigest()


@lru_cache(maxsize=1)
def code_identity() -> str:
    """``<version>+<first 16 hex digits of the source hash>`` of the installed ``clv`` package.

    Computed once per process (reading ~100 small files), then cached.

    Returns
    -------
    str
        E.g. ``"0.1.0+3f2a9c0d1e4b5a6f"``.
    """
    import clv

    return f"{clv.__version__}+{source_hash(PACKAGE_ROOT)[:16]}"
