"""Reading and writing tables on local paths and ``s3://`` URIs, atomically.

S3 goes through boto3 so that any S3-compatible store works: set ``CLV_S3_ENDPOINT_URL`` (MinIO,
Ceph, a local moto server...). Credentials come from the usual boto3 chain.

Writes never leave half a file: locally the data goes to a temporary file in the destination folder
and is renamed into place; on S3 an object only appears once its upload is complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from clv.data.validation import OnDuplicate


_MISSING_CODES = frozenset({"404", "NoSuchKey", "NoSuchBucket"})


class StorageError(OSError):
    """An input or output location cannot be reached (S3 credentials, endpoint, access)."""


@contextlib.contextmanager
def _s3_errors(uri: str) -> Iterator[None]:
    """Turn boto3's errors into messages naming the URI and what to do."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    try:
        yield
    except (NoCredentialsError, PartialCredentialsError):
        raise StorageError(
            f"{uri}: no S3 credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "(or AWS_PROFILE), and CLV_S3_ENDPOINT_URL for MinIO or another S3-compatible store"
        ) from None
    except EndpointConnectionError as err:
        raise StorageError(
            f"{uri}: cannot reach the S3 endpoint ({err}); check CLV_S3_ENDPOINT_URL and the "
            "network"
        ) from None
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code", "")
        if code in _MISSING_CODES:
            raise FileNotFoundError(f"no such S3 object: {uri}") from None
        raise StorageError(f"{uri}: S3 refused the request ({code or err}); check access") from None


def _local_file(uri: str | os.PathLike[str]) -> Path:
    path = Path(uri)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not a file; give a CSV or Parquet file")
    return path


@dataclass(frozen=True)
class S3Location:
    """A parsed ``s3://bucket/key`` URI."""

    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> S3Location:
        """Parse ``s3://bucket/key``; raise ValueError with the reason when malformed."""
        if not uri.startswith("s3://"):
            raise ValueError(f"{uri!r} is not an s3:// URI")
        rest = uri[len("s3://") :]
        bucket, _, key = rest.partition("/")
        if not bucket or not key:
            raise ValueError(f"{uri!r} must look like s3://bucket/path/to/file.parquet")
        return cls(bucket, key)

    @property
    def name(self) -> str:
        """The object's base name."""
        return self.key.rsplit("/", 1)[-1]


def is_s3(uri: str | os.PathLike[str]) -> bool:
    """Whether ``uri`` names an S3 object."""
    return str(uri).startswith("s3://")


def s3_client(endpoint_url: str | None = None, region: str | None = None) -> S3Client:
    """Return a boto3 S3 client configured from the settings (endpoint URL, region)."""
    import boto3
    from botocore.config import Config

    from clv.settings import get_settings

    settings = get_settings()
    # A fresh session each time: boto3's default session caches the credentials it found first,
    # so a process whose environment changed (or a test) would keep using stale ones.
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url or settings.s3_endpoint_url,
        region_name=region or settings.s3_region,
        config=Config(retries={"max_attempts": 3, "mode": "standard"}),
    )


def display_name(uri: str | os.PathLike[str]) -> str:
    """Short name of a file or object for messages."""
    return S3Location.parse(str(uri)).name if is_s3(uri) else Path(uri).name


def _suffix(name: str) -> str:
    lower = name.lower()
    for suffix in (".csv.gz", ".parquet", ".pq", ".csv", ".txt"):
        if lower.endswith(suffix):
            return suffix
    return Path(lower).suffix


@contextlib.contextmanager
def local_copy(uri: str | os.PathLike[str], *, client: S3Client | None = None) -> Iterator[Path]:
    """Yield a local path for ``uri``; S3 objects are downloaded to a temporary file first.

    Raises
    ------
    FileNotFoundError
        When the local file or the S3 object does not exist (the message names it).
    """
    if not is_s3(uri):
        yield _local_file(uri)
        return
    loc = S3Location.parse(str(uri))
    client = client or s3_client()
    with tempfile.TemporaryDirectory(prefix="clv-s3-") as tmp:
        target = Path(tmp) / (loc.name or "object")
        with _s3_errors(str(uri)):
            client.download_file(loc.bucket, loc.key, str(target))
        yield target


def _atomic_local_write(path: Path, writer: Callable[[Path], object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        writer(tmp)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_folder_atomic(path: str | os.PathLike[str], writer: Callable[[Path], object]) -> Path:
    """Fill a local folder through ``writer(tmp_folder)``; replace ``path`` only when complete.

    Readers see the old folder or the whole new one (the swap itself is a rename; between
    removing the old folder and the rename there is a moment with no folder at all). On any
    error the temporary folder is removed and ``path`` is left as it was.

    Returns
    -------
    Path
        ``path``.
    """
    import shutil

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        writer(tmp)
        if target.exists():
            shutil.rmtree(target)
        tmp.replace(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def write_atomic(
    uri: str | os.PathLike[str],
    writer: Callable[[Path], object],
    *,
    client: S3Client | None = None,
) -> None:
    """Write a file through ``writer(tmp_path)`` and move it into place only when complete.

    Parameters
    ----------
    uri : str or PathLike
        Local path or ``s3://bucket/key``.
    writer : callable
        Writes the whole content to the temporary path it is given.
    client : S3Client, optional
        boto3 client for S3 destinations (default: :func:`s3_client`).
    """
    if not is_s3(uri):
        _atomic_local_write(Path(uri), writer)
        return
    loc = S3Location.parse(str(uri))
    with tempfile.TemporaryDirectory(prefix="clv-s3-") as tmp:
        local = Path(tmp) / (loc.name or "object")
        writer(local)
        # An S3 PUT is atomic: readers see the old object or the whole new one, never a part.
        (client or s3_client()).upload_file(str(local), loc.bucket, loc.key)


def write_table(
    frame: pd.DataFrame,
    uri: str | os.PathLike[str],
    *,
    client: S3Client | None = None,
    **options: Any,
) -> None:
    """Write ``frame`` as CSV or Parquet (chosen by extension), atomically, locally or on S3.

    Parquet files are written without the pandas index and with deterministic metadata, so the
    same frame gives the same bytes.
    """
    suffix = _suffix(str(uri))

    def writer(path: Path) -> None:
        if suffix in (".parquet", ".pq"):
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(frame, preserve_index=False)
            table = table.replace_schema_metadata(None)  # drop pandas metadata: stable bytes
            pq.write_table(table, path, compression=options.get("compression", "zstd"))
        elif suffix in (".csv", ".csv.gz", ".txt"):
            frame.to_csv(
                path,
                index=False,
                compression="gzip" if suffix == ".csv.gz" else None,
                date_format=options.get("date_format"),
                lineterminator="\n",
            )
        else:
            raise ValueError(f"cannot write {uri}: use a .csv, .csv.gz or .parquet name")

    write_atomic(uri, writer, client=client)


def read_table(
    uri: str | os.PathLike[str],
    kind: str = "transactions",
    *,
    allow_extra_columns: bool = False,
    client: S3Client | None = None,
    on_duplicate: OnDuplicate = "warn",
    columns: Mapping[str, str] | None = None,
    future_tolerance_days: float | None = None,
) -> pd.DataFrame:
    """Read a CSV or Parquet table from a local path or S3 and validate it against the contract.

    Parameters
    ----------
    uri : str or PathLike
        Local path or ``s3://bucket/key``.
    kind : {"transactions", "customers", "sustainability"}
        Table kind in the contract.
    allow_extra_columns : bool
        Drop columns outside the contract instead of refusing the file.
    client : S3Client, optional
        boto3 client for S3 sources.
    on_duplicate : {"warn", "error", "drop"}
        Exact duplicate transactions without ``order_id``: kept with a
        :class:`~clv.data.validation.DataWarning` (default), refused, or dropped with a warning.
    columns : mapping, optional
        The file's own column names, ``{contract name: file name}``.
    future_tolerance_days : float, optional
        Dates after now plus this many days are refused (default: the settings', 1 day).

    Returns
    -------
    DataFrame
        The typed table.

    Raises
    ------
    clv.data.validation.ContractError
        When the table breaks the contract (the message locates every problem).
    FileNotFoundError, IsADirectoryError, StorageError
        When the input cannot be read at all.
    """
    from clv.data.validation import ContractError, emit_warnings, validate_file

    with local_copy(uri, client=client) as path:
        report = validate_file(
            path,
            kind,  # type: ignore[arg-type]
            allow_extra_columns=allow_extra_columns,
            source=display_name(uri),
            on_duplicate=on_duplicate,
            columns=columns,
            future_tolerance_days=future_tolerance_days,
        )
    if not report.ok or report.frame is None:
        raise ContractError(report)
    emit_warnings(report)
    return report.frame


def sha256_of(uri: str | os.PathLike[str], *, client: S3Client | None = None) -> str:
    """Content hash of a local file or S3 object (streamed; constant memory)."""
    digest = hashlib.sha256()
    if is_s3(uri):
        loc = S3Location.parse(str(uri))
        with _s3_errors(str(uri)):
            body = (client or s3_client()).get_object(Bucket=loc.bucket, Key=loc.key)["Body"]
            for chunk in iter(lambda: body.read(1 << 20), b""):
                digest.update(chunk)
    else:
        with _local_file(uri).open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()
