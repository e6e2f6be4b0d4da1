"""Reading partitioned Parquet transactions into Dask, validated at the boundary.

The same gate as the single-machine path (:mod:`clv.data.validation`) runs on every partition,
on the workers, so no client ever holds the whole table. A partition is one row group of one
file, so a problem is reported with the file's name and the row counted from
the top of that file, as the single-machine reader would::

    part-1.parquet row 57, column 'timestamp': 'yesterday' is not a date or date-time ...

The columns are checked on the client first (file footers only), so a file without a required
column fails before any worker starts. Then the rows are hash-partitioned on ``customer_id``:
every customer's rows end up in one partition, whichever files they came from, and each feature
family stays a per-customer computation.

S3 goes through boto3 with the settings of :func:`clv.data.io.s3_client` (``CLV_S3_ENDPOINT_URL``,
``CLV_S3_REGION``), resolved on the client and sent to the workers; credentials come from each
worker's own boto3 chain (its environment or instance role), never from the task graph.
"""

from __future__ import annotations

import fnmatch
import functools
import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from clv.data.contract import TRANSACTIONS
from clv.data.validation import (
    PARQUET_SUFFIXES,
    ContractError,
    Problem,
    ValidationReport,
    validate_frame,
)

if TYPE_CHECKING:
    import dask.dataframe as dd
    import pyarrow as pa
    import pyarrow.parquet as pq

__all__ = ["PartitionContractError", "read_transactions", "transactions_meta"]

#: pandas dtype of each contract kind once validated (what :func:`validate_frame` returns).
_DTYPES: dict[str, str] = {
    "string": "object",
    "float": "float64",
    "int": "Int64",
    "bool": "boolean",
    "datetime": "datetime64[ns]",
    "date": "datetime64[ns]",
}


class PartitionContractError(ContractError):
    """A partition broke the data contract; the report names its file, row and column.

    A :class:`~clv.data.validation.ContractError` that survives the trip from a worker to the
    client (the base class cannot be rebuilt from its message alone), so callers that catch
    ``ContractError`` see it unchanged.
    """

    def __reduce__(self) -> tuple[type[PartitionContractError], tuple[ValidationReport]]:
        return (type(self), (self.report,))


@dataclass(frozen=True)
class _S3Settings:
    """Where S3 is (resolved once on the client; the workers may not share its environment)."""

    endpoint_url: str | None
    region: str


@dataclass(frozen=True)
class _Piece:
    """One partition to read: a file, or one row group of it, and its first row in the file."""

    path: str  # local path or s3://bucket/key
    shown: str  # the name in messages
    row_group: int | None
    first_row: int  # 0-based position of the piece's first row in its file


def _is_parquet(name: str) -> bool:
    return name.lower().endswith(PARQUET_SUFFIXES)


def _bookkeeping(relative: str) -> bool:
    """Hidden and underscore files in a folder are writers' bookkeeping (_metadata, .tmp)."""
    return any(part.startswith((".", "_")) for part in relative.split("/"))


def _s3_settings() -> _S3Settings:
    from clv.settings import get_settings

    settings = get_settings()
    return _S3Settings(settings.s3_endpoint_url, settings.s3_region)


def _s3_client(s3: _S3Settings) -> Any:
    from clv.data.io import s3_client

    return s3_client(endpoint_url=s3.endpoint_url, region=s3.region)


def _list_s3(uri: str, s3: _S3Settings) -> list[tuple[str, str]]:
    """``(uri, shown)`` of the Parquet objects an ``s3://`` file, folder or glob names."""
    from clv.data.io import S3Location, _s3_errors

    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"{uri!r} must look like s3://bucket/folder/ or s3://bucket/file.parquet")
    pattern = key if any(ch in key for ch in "*?[") else None
    prefix = key.split("*", 1)[0].split("?", 1)[0].split("[", 1)[0] if pattern else key
    client = _s3_client(s3)
    keys: list[str] = []
    with _s3_errors(uri):
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys += [str(item["Key"]) for item in page.get("Contents", [])]
    if pattern is not None:
        chosen = [k for k in keys if fnmatch.fnmatchcase(k, pattern) and _is_parquet(k)]
        folder = prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""
    elif key in keys and not key.endswith("/"):
        return [(uri, S3Location.parse(uri).name)]
    else:
        folder = key if not key or key.endswith("/") else key + "/"
        chosen = [
            k
            for k in keys
            if k.startswith(folder) and _is_parquet(k) and not _bookkeeping(k[len(folder) :])
        ]
    return [(f"s3://{bucket}/{k}", k[len(folder) :]) for k in sorted(chosen)]


def _list_local(uri: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """``(path, shown)`` of the Parquet files a local file, folder or glob names."""
    text = str(uri)
    path = Path(text).expanduser()
    if any(ch in text for ch in "*?["):
        anchor = Path(path.anchor) if path.is_absolute() else Path()
        pattern = str(path.relative_to(anchor)) if path.is_absolute() else text
        found = sorted(p for p in anchor.glob(pattern) if p.is_file() and _is_parquet(p.name))
        return [(str(p), p.name) for p in found]
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file() and _is_parquet(p.name))
        found = [p for p in found if not _bookkeeping(p.relative_to(path).as_posix())]
        return [(str(p), str(p.relative_to(path))) for p in found]
    if path.is_file():
        return [(str(path), path.name)]
    raise FileNotFoundError(f"no such file or folder: {path}")


class _S3RangeFile(io.RawIOBase):
    """A read-only, seekable view of one S3 object that fetches only the byte ranges read.

    Lets pyarrow read a Parquet footer or one row group without downloading the whole object.
    """

    def __init__(self, client: Any, bucket: str, key: str) -> None:
        super().__init__()
        self._client, self._bucket, self._key = client, bucket, key
        self._size = int(client.head_object(Bucket=bucket, Key=key)["ContentLength"])
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        end = min(self._position + len(view), self._size)
        if end <= self._position:
            return 0
        body = self._client.get_object(
            Bucket=self._bucket, Key=self._key, Range=f"bytes={self._position}-{end - 1}"
        )["Body"].read()
        view[: len(body)] = body
        self._position += len(body)
        return len(body)


def _parquet_file(path: str, s3: _S3Settings) -> pq.ParquetFile:
    """Open a local or S3 Parquet file (S3: ranged reads of the parts pyarrow asks for)."""
    import pyarrow.parquet as pq

    if not path.startswith("s3://"):
        return pq.ParquetFile(path)
    from clv.data.io import S3Location, _s3_errors

    loc = S3Location.parse(path)
    with _s3_errors(path):
        raw = _S3RangeFile(_s3_client(s3), loc.bucket, loc.key)
        return pq.ParquetFile(io.BufferedReader(raw, buffer_size=1 << 20))


def _file_problem(shown: str, reason: str, column: str | None = None) -> PartitionContractError:
    report = ValidationReport(source=shown, kind="transactions")
    report.problems = [Problem(shown, None, column, None, reason)]
    report.total_problems = 1
    return PartitionContractError(report)


def _open_footer(path: str, shown: str, s3: _S3Settings) -> pq.ParquetFile:
    import pyarrow as pa

    from clv.data.io import StorageError

    try:
        return _parquet_file(path, s3)
    except (FileNotFoundError, StorageError):
        raise
    except (pa.ArrowInvalid, OSError) as err:
        raise _file_problem(
            shown, f"is not a readable Parquet file (truncated or corrupt?): {err}; re-export it"
        ) from None


def _contract_columns(names: Sequence[str], columns: Mapping[str, str] | None) -> list[str]:
    """The file's column names as the contract calls them (``columns`` maps contract -> file)."""
    back = {file_name: contract for contract, file_name in (columns or {}).items()}
    return [back.get(name, name) for name in names]


def _check_schema(shown: str, names: list[str], first: tuple[str, list[str]] | None) -> None:
    """Required columns present, no unknown column, and the same columns as the first file."""
    for name in TRANSACTIONS.required:
        if name not in names:
            found = ", ".join(repr(c) for c in names) or "no columns"
            raise _file_problem(
                shown, f"required column '{name}' is missing (found {found})", column=name
            )
    unknown = [c for c in names if c not in TRANSACTIONS.names]
    if unknown:
        raise _file_problem(
            shown,
            f"column '{unknown[0]}' is not in the transactions contract; allowed: "
            f"{', '.join(TRANSACTIONS.names)}",
            column=unknown[0],
        )
    if first is not None and set(names) != set(first[1]):
        raise _file_problem(
            shown,
            f"has the columns {sorted(names)} but {first[0]} has {sorted(first[1])}; every file "
            "of one table must have the same columns",
        )


def transactions_meta(columns: Sequence[str]) -> pd.DataFrame:
    """An empty frame shaped like the validated transactions with ``columns`` (contract names).

    Columns come in contract order with the dtypes :func:`clv.data.validation.validate_frame`
    gives them.
    """
    present = [c for c in TRANSACTIONS.columns if c.name in set(columns)]
    return pd.DataFrame({c.name: pd.Series(dtype=_DTYPES[c.kind]) for c in present})


def _shifted(report: ValidationReport, first_row: int) -> ValidationReport:
    """``report`` with row numbers counted from the top of the file, not of the piece."""
    if first_row == 0:
        return report
    problems = [p if p.row is None else replace(p, row=p.row + first_row) for p in report.problems]
    return replace(report, problems=problems)


def _read_piece(
    piece: _Piece, *, renames: Mapping[str, str] | None, s3: _S3Settings, meta_columns: list[str]
) -> pd.DataFrame:
    """Read and validate one piece on a worker; raise :class:`PartitionContractError`.

    No parameter is called ``columns``: ``dd.from_map`` would pass a column projection in it
    (``frame[["customer_id", "timestamp"]]``), and every piece is validated whole.
    """
    parquet = _open_footer(piece.path, piece.shown, s3)
    table: pa.Table = (
        parquet.read() if piece.row_group is None else parquet.read_row_group(piece.row_group)
    )
    try:
        frame = validate_frame(
            table.to_pandas(), "transactions", source=piece.shown, columns=renames
        )
    except ContractError as err:
        raise PartitionContractError(_shifted(err.report, piece.first_row)) from None
    return frame[meta_columns]


def read_transactions(
    uri: str | Path,
    *,
    npartitions: int | None = None,
    columns: Mapping[str, str] | None = None,
) -> dd.DataFrame:
    """Validated transactions from partitioned Parquet, hash-partitioned by ``customer_id``.

    Parameters
    ----------
    uri : str or Path
        A folder of Parquet files (searched recursively, hidden and ``_`` files skipped), a glob
        (``data/part-*.parquet``) or one file; local or ``s3://bucket/prefix``.
    npartitions : int, optional
        Partitions after the shuffle on ``customer_id`` (default: one per piece read, i.e. per
        row group of each file).
    columns : mapping, optional
        The files' own column names, ``{contract name: file name}``, as for
        :func:`clv.data.io.read_table`.

    Returns
    -------
    dask.dataframe.DataFrame
        Lazy; every customer's rows in one partition. Validation runs when it is computed, on
        the workers, partition by partition.

    Raises
    ------
    clv.data.validation.ContractError
        Here, when a file's columns break the contract (the message names the file and the
        column); on compute, when a value does (file, row counted from 1 in the file, column).
    FileNotFoundError
        When ``uri`` names nothing, or no Parquet file.
    ValueError
        When ``npartitions`` is not positive.
    """
    import dask.dataframe as dd

    if npartitions is not None and npartitions < 1:
        raise ValueError(f"npartitions must be at least 1, got {npartitions}")
    text = str(uri)
    s3 = _s3_settings()
    files = _list_s3(text, s3) if text.startswith("s3://") else _list_local(uri)
    if not files:
        raise FileNotFoundError(f"no Parquet file (.parquet, .pq) at {text}")
    pieces: list[_Piece] = []
    first: tuple[str, list[str]] | None = None
    for path, shown in files:
        parquet = _open_footer(path, shown, s3)
        names = _contract_columns(parquet.schema_arrow.names, columns)
        _check_schema(shown, names, first)
        first = first or (shown, names)
        meta_data = parquet.metadata
        if meta_data.num_row_groups <= 1:
            if meta_data.num_rows > 0:
                pieces.append(_Piece(path, shown, None, 0))
            continue
        start = 0
        for group in range(meta_data.num_row_groups):
            rows = meta_data.row_group(group).num_rows
            if rows > 0:
                pieces.append(_Piece(path, shown, group, start))
            start += rows
    if first is None or not pieces:
        raise _file_problem(files[0][1], "has no data rows")
    meta = transactions_meta(first[1])
    # A partial, not keyword arguments: from_map reads ``columns`` as a column projection.
    read = functools.partial(
        _read_piece,
        renames=dict(columns) if columns else None,
        s3=s3,
        meta_columns=list(meta.columns),
    )
    frame = dd.from_map(read, pieces, meta=meta, label="read-transactions", enforce_metadata=False)
    return frame.shuffle(on="customer_id", npartitions=npartitions or len(pieces))
