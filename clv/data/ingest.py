"""Ingest: validate an input once and keep a typed, content-addressed copy in the warehouse.

The warehouse (``$CLV_HOME/warehouse``) holds one Parquet file per distinct input content, named
by the SHA-256 of the source bytes, and a ``manifest.json`` listing them. Ingesting the same bytes
again (same file, a copy elsewhere, the same object on S3) is a no-op that returns the existing
record, so re-running an ingest is idempotent.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from clv.data.contract import TableKind
from clv.data.io import display_name, read_table, sha256_of, write_atomic, write_table

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from clv.data.validation import OnDuplicate

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class IngestRecord:
    """What the warehouse knows about one ingested input.

    Attributes
    ----------
    sha256 : str
        Hash of the source bytes; the identity of the input.
    kind : str
        Table kind in the contract.
    source : str
        Where it was first ingested from.
    path : str
        The typed Parquet copy, relative to the warehouse.
    rows : int
        Number of rows.
    ingested_at : str
        UTC time of the first ingest (ISO 8601).
    """

    sha256: str
    kind: str
    source: str
    path: str
    rows: int
    ingested_at: str


def _variant(on_duplicate: str, columns: Mapping[str, str] | None) -> str:
    """Suffix of the typed copy's name when read options change its content ("" otherwise)."""
    if on_duplicate != "drop" and not columns:
        return ""
    text = json.dumps(
        {"drop": on_duplicate == "drop", "columns": dict(columns or {})}, sort_keys=True
    )
    return "-" + hashlib.sha256(text.encode()).hexdigest()[:12]


def read_manifest(warehouse: Path) -> list[IngestRecord]:
    """Return the records of every input ingested into ``warehouse`` (oldest first)."""
    path = warehouse / MANIFEST
    if not path.exists():
        return []
    return [IngestRecord(**item) for item in json.loads(path.read_text(encoding="utf-8"))]


def ingest(
    uri: str | os.PathLike[str],
    kind: TableKind = "transactions",
    *,
    warehouse: Path | None = None,
    allow_extra_columns: bool = False,
    client: S3Client | None = None,
    on_duplicate: OnDuplicate = "warn",
    columns: Mapping[str, str] | None = None,
    future_tolerance_days: float | None = None,
) -> tuple[IngestRecord, bool]:
    """Validate ``uri`` and store its typed copy in the warehouse, once per content.

    Parameters
    ----------
    uri : str or PathLike
        Local path or ``s3://`` URI of a CSV or Parquet file.
    kind : {"transactions", "customers", "sustainability"}
        Table kind in the contract.
    warehouse : Path, optional
        Target folder (default: ``$CLV_HOME/warehouse``).
    allow_extra_columns : bool
        Drop columns outside the contract instead of rejecting the file.
    client : S3Client, optional
        boto3 client for S3 sources.
    on_duplicate, columns, future_tolerance_days
        As in :func:`clv.data.io.read_table`. Options that change the typed table (dropping
        duplicates, a column mapping) give it its own copy beside the plain one.

    Returns
    -------
    (IngestRecord, bool)
        The record and whether this call added it (``False``: the content was already there).

    Raises
    ------
    clv.data.validation.ContractError
        When the input breaks the contract; nothing is written then.
    """
    if warehouse is None:
        from clv.settings import get_settings

        warehouse = get_settings().warehouse
    warehouse = Path(warehouse)
    digest = sha256_of(uri, client=client)
    variant = _variant(on_duplicate, columns)
    relative = f"{kind}/{digest}{variant}.parquet"
    records = read_manifest(warehouse)
    for record in records:
        if (
            record.sha256 == digest
            and record.kind == kind
            and record.path == relative
            and (warehouse / record.path).exists()
        ):
            return record, False
    frame = read_table(
        uri,
        kind,
        allow_extra_columns=allow_extra_columns,
        client=client,
        on_duplicate=on_duplicate,
        columns=columns,
        future_tolerance_days=future_tolerance_days,
    )
    write_table(frame, warehouse / relative)
    record = IngestRecord(
        sha256=digest,
        kind=kind,
        source=str(uri) if str(uri).startswith("s3://") else str(Path(uri).resolve()),
        path=relative,
        rows=len(frame),
        ingested_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    kept = [r for r in records if not (r.sha256 == digest and r.path == relative)]
    payload = json.dumps([asdict(r) for r in [*kept, record]], indent=2)
    write_atomic(warehouse / MANIFEST, lambda p: p.write_text(payload, encoding="utf-8"))
    return record, True


def describe(record: IngestRecord) -> str:
    """One line about a record, for CLIs."""
    return f"{display_name(record.source)} -> {record.path} ({record.rows} rows)"
