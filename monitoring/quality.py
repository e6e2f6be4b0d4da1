"""Data-quality report: Evidently's data summary of each table, as one HTML file per table.

``make data-quality`` runs the contract (``clv validate``) and then this module on the demo data::

    python -m monitoring.quality --out $CLV_HOME/monitoring/reports transactions.parquet ...

Each table gets ``quality-<file stem>.html`` (column types, missing values, ranges, most common
values). Evidently is imported on first use, as in :mod:`monitoring.drift`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from clv.data.io import write_atomic


def data_quality_report(frame: pd.DataFrame, report_path: Path) -> Path:
    """Write Evidently's data-summary report of ``frame`` to ``report_path`` (HTML, atomically).

    Parameters
    ----------
    frame : DataFrame
        Any table with at least one row.
    report_path : Path
        Where the HTML report goes; its folder is created.

    Returns
    -------
    Path
        ``report_path``, once written and not empty.

    Raises
    ------
    ValueError
        When ``frame`` has no rows (the message names the report).
    RuntimeError
        When Evidently writes an empty report.
    """
    if frame.empty:
        raise ValueError(f"no rows to summarise for {report_path.name}: the table is empty")
    from evidently import Dataset, Report  # type: ignore[import-untyped]
    from evidently.presets import DataSummaryPreset  # type: ignore[import-untyped]

    snapshot = Report([DataSummaryPreset()]).run(current_data=Dataset.from_pandas(frame))
    report_path.parent.mkdir(parents=True, exist_ok=True)
    # str: Snapshot.save_html silently writes nothing when given a Path.
    write_atomic(report_path, lambda tmp: snapshot.save_html(str(tmp)))
    if not report_path.exists() or report_path.stat().st_size == 0:
        raise RuntimeError(f"Evidently wrote an empty HTML report to {report_path}")
    return report_path


def _read(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".csv":
        return pd.read_csv(path)
    raise ValueError(f"{path}: expected a .parquet or .csv file")


def main(argv: list[str] | None = None) -> int:
    """Write one data-quality report per table file; print each report's path.

    Parameters
    ----------
    argv : list of str, optional
        ``--out FOLDER`` and the table files (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 when every report was written, 2 when an input could not be read.
    """
    parser = argparse.ArgumentParser(prog="python -m monitoring.quality", description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="Folder for the HTML reports.")
    parser.add_argument("tables", type=Path, nargs="+", help="CSV or Parquet table files.")
    args = parser.parse_args(argv)
    for table in args.tables:
        try:
            frame = _read(table)
            path = data_quality_report(frame, args.out / f"quality-{table.stem}.html")
        except (OSError, ValueError) as err:
            print(f"error: {table}: {err}", file=sys.stderr)
            return 2
        print(f"data-quality report of {table.name} ({len(frame):,} rows): {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
