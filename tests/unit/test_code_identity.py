"""The code's identity is part of the training fingerprint and of the feature cache key."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

import clv
from clv import _code
from clv.training.dataset import cache_key
from clv.training.pipeline import TrainConfig, fingerprint
from clv.training.windows import plan_windows

HASHES = {"transactions": "ab" * 32}


def _plan() -> object:
    return plan_windows(
        pd.Timestamp("2024-01-01"),
        as_of=pd.Timestamp("2024-12-31 23:59:59.999999"),
        horizon_days=30,
    )


def _copy_of_the_package(tmp_path: Path) -> Path:
    copy = tmp_path / "clv"
    shutil.copytree(_code.PACKAGE_ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_a_changed_source_byte_changes_the_source_hash(tmp_path: Path) -> None:
    copy = _copy_of_the_package(tmp_path)
    before = _code.source_hash(copy)
    assert _code.source_hash(copy) == before  # deterministic
    target = copy / "features" / "rfm.py"
    content = bytearray(target.read_bytes())
    content[-1:] = b" " if content[-1:] != b" " else b"\n"
    target.write_bytes(bytes(content))
    assert _code.source_hash(copy) != before


def test_renaming_a_module_changes_the_source_hash(tmp_path: Path) -> None:
    copy = _copy_of_the_package(tmp_path)
    before = _code.source_hash(copy)
    (copy / "settings.py").rename(copy / "settings_renamed.py")
    assert _code.source_hash(copy) != before


def test_byte_compiled_files_do_not_count(tmp_path: Path) -> None:
    copy = _copy_of_the_package(tmp_path)
    before = _code.source_hash(copy)
    (copy / "__pycache__").mkdir(exist_ok=True)
    (copy / "__pycache__" / "stale.py").write_text("x = 1\n")
    (copy / "notes.txt").write_text("not code\n")
    assert _code.source_hash(copy) == before


def test_the_identity_is_the_version_plus_the_installed_sources_hash() -> None:
    identity = _code.code_identity()
    version, digest = identity.split("+")
    assert version == clv.__version__
    assert digest == _code.source_hash(_code.PACKAGE_ROOT)[:16]


@pytest.mark.parametrize("key", [cache_key, None], ids=["cache_key", "fingerprint"])
def test_changed_code_changes_the_fingerprint_and_the_cache_key(
    monkeypatch: pytest.MonkeyPatch, key: object
) -> None:
    plan = _plan()
    config = TrainConfig(horizon_days=30)

    def compute() -> str:
        if key is None:
            return fingerprint(HASHES, plan, config)  # type: ignore[arg-type]
        return cache_key(HASHES, plan)  # type: ignore[arg-type]

    monkeypatch.setattr(_code, "code_identity", lambda: "0.1.0+aaaaaaaaaaaaaaaa")
    first = compute()
    assert compute() == first  # same code, same key
    monkeypatch.setattr(_code, "code_identity", lambda: "0.1.0+aaaaaaaaaaaaaaab")
    assert compute() != first
