"""Arguments of a small, fast ``clv backtest`` on generated data, shared by the CLI tests."""

from __future__ import annotations

from pathlib import Path

from clv.data.generator import GeneratorConfig, generate, write_synthetic


def backtest_args(tmp_path: Path, out: Path) -> list[str]:
    """Write 800 generated customers as CSV under ``tmp_path``; LightGBM only, 3 windows.

    The as-of is 2025-09-30 and the horizon 60 days; ``--out`` comes last, so callers can cut
    it off (``args[:-2]``) or extend the list.
    """
    write_synthetic(generate(GeneratorConfig(n_customers=800), seed=2), tmp_path / "d", fmt="csv")
    return [
        "backtest",
        "--transactions",
        str(tmp_path / "d" / "transactions.csv"),
        "--horizon-days",
        "60",
        "--as-of",
        "2025-09-30",
        "--families",
        "lightgbm",
        "--windows",
        "3",
        "--out",
        str(out),
    ]
