"""The platform database: segment versions, assignment history, approvals and scores.

The one module that speaks SQL (SQLAlchemy Core). SQLite under ``$CLV_HOME/clv.db`` by default,
PostgreSQL in production (``CLV_DATABASE_URL=postgresql+psycopg://user@host/db``); the schema is
created and upgraded by the Alembic migrations in ``clv/store_migrations`` on first use.

Segment versions go ``pending → active → superseded`` (or ``pending → rejected``); at most one is
active. A version's assignments are valid from its activation until the next activation
(``valid_from`` / ``valid_to`` are the version's ``activated_at`` / ``deactivated_at``), so a
customer's segment on any past instant is one indexed query (:meth:`Store.segment_of`).

Every write is one transaction: a failure leaves nothing of a new version visible and the active
version as it was. Writing the same version or the same scores twice stores them once (they are
identified by a SHA-256 of their content). Times are stored as naive UTC and returned as
timezone-aware UTC ``datetime`` objects.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

MIGRATIONS = Path(__file__).parent / "store_migrations"
#: Statuses of a segment version.
PENDING, ACTIVE, SUPERSEDED, REJECTED = "pending", "active", "superseded", "rejected"
#: Per-customer columns kept with each assignment (the inputs its segment was chosen from).
ASSIGNMENT_COLUMNS = (
    "predicted_clv",
    "churn_probability",
    "eco_spend_share",
    "eco_engagement_score",
    "r_score",
    "f_score",
    "m_score",
    "rfm_segment",
)
#: Per-customer columns of a stored scoring run.
SCORE_COLUMNS = (
    "predicted_clv",
    "predicted_clv_lower",
    "predicted_clv_upper",
    "churn_probability",
    "days_since_last_purchase",
    "purchase_days",
    "avg_purchase_day_value",
    "eco_spend_share",
    "eco_engagement_score",
)
_INSERT_CHUNK = 20_000

metadata = sa.MetaData()
versions_table = sa.Table(
    "segment_versions",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("method", sa.String(16)),
    sa.Column("status", sa.String(16)),
    sa.Column("created_at", sa.DateTime),
    sa.Column("scores_as_of", sa.DateTime),
    sa.Column("source", sa.Text),
    sa.Column("content_hash", sa.String(64)),
    sa.Column("config", sa.Text),
    sa.Column("model", sa.Text),
    sa.Column("n_customers", sa.Integer),
    sa.Column("n_segments", sa.Integer),
    sa.Column("rules_passed", sa.Boolean),
    sa.Column("activated_at", sa.DateTime),
    sa.Column("deactivated_at", sa.DateTime),
    sa.Column("decided_by", sa.Text),
    sa.Column("decided_at", sa.DateTime),
    sa.Column("reason", sa.Text),
    sa.Column("automatic", sa.Boolean),
)
segments_table = sa.Table(
    "segments",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("segment_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.Text),
    sa.Column("description", sa.Text),
    sa.Column("profile", sa.Text),
    sa.Column("new", sa.Boolean),
    sa.Column("matched_from", sa.String(64)),
)
assignments_table = sa.Table(
    "segment_assignments",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("customer_id", sa.String(128), primary_key=True),
    sa.Column("segment_id", sa.String(64)),
    *(
        sa.Column(c, sa.Integer if c.endswith("_score") and c[0] in "rfm" else sa.Float)
        for c in ASSIGNMENT_COLUMNS
        if c != "rfm_segment"
    ),
    sa.Column("rfm_segment", sa.Text),
)
rules_table = sa.Table(
    "rule_results",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("version", sa.Integer),
    sa.Column("segment", sa.Text),
    sa.Column("rule", sa.String(64)),
    sa.Column("passed", sa.Boolean),
    sa.Column("value", sa.Float),
    sa.Column("threshold", sa.Float),
    sa.Column("message", sa.Text),
)
runs_table = sa.Table(
    "scoring_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("content_hash", sa.String(64)),
    sa.Column("created_at", sa.DateTime),
    sa.Column("as_of", sa.DateTime),
    sa.Column("horizon_days", sa.Integer),
    sa.Column("model_name", sa.Text),
    sa.Column("model_version", sa.Text),
    sa.Column("source", sa.Text),
    sa.Column("n_customers", sa.Integer),
)
scores_table = sa.Table(
    "scores",
    metadata,
    sa.Column("run_id", sa.Integer, primary_key=True),
    sa.Column("customer_id", sa.String(128), primary_key=True),
    *(sa.Column(c, sa.Float) for c in SCORE_COLUMNS),
)


class StoreError(Exception):
    """A request the platform database cannot satisfy; the message says what to do instead."""


@dataclass(frozen=True)
class VersionInfo:
    """One segment version (see the module docstring for the statuses)."""

    version: int
    method: str
    status: str
    created_at: dt.datetime
    scores_as_of: dt.datetime | None
    source: str
    content_hash: str
    n_customers: int
    n_segments: int
    rules_passed: bool
    activated_at: dt.datetime | None
    deactivated_at: dt.datetime | None
    decided_by: str | None
    decided_at: dt.datetime | None
    reason: str | None
    automatic: bool
    config: dict[str, Any]
    model: str | None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _naive_utc(value: Any) -> dt.datetime | None:
    """Naive UTC for storage (aware values are converted; naive ones are taken as UTC)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    stamp = pd.Timestamp(value)
    if pd.isna(stamp):
        return None
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp.to_pydatetime()


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _info(row: Any) -> VersionInfo:
    return VersionInfo(
        version=int(row["version"]),
        method=row["method"],
        status=row["status"],
        created_at=_aware(row["created_at"]),  # type: ignore[arg-type]
        scores_as_of=_aware(row["scores_as_of"]),
        source=row["source"],
        content_hash=row["content_hash"],
        n_customers=int(row["n_customers"]),
        n_segments=int(row["n_segments"]),
        rules_passed=bool(row["rules_passed"]),
        activated_at=_aware(row["activated_at"]),
        deactivated_at=_aware(row["deactivated_at"]),
        decided_by=row["decided_by"],
        decided_at=_aware(row["decided_at"]),
        reason=row["reason"],
        automatic=bool(row["automatic"]),
        config=json.loads(row["config"]),
        model=row["model"],
    )


def _clean(value: Any) -> Any:
    """A value the database driver accepts (NumPy scalars → Python, NaN → NULL)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _records(frame: pd.DataFrame, columns: Sequence[str], **fixed: Any) -> Iterator[list[dict]]:
    """Rows of ``frame`` as dicts (absent columns NULL), in chunks."""
    present = [c for c in columns if c in frame.columns]
    values = {
        c: [None if pd.isna(v) else v for v in frame[c].astype(object).tolist()] for c in present
    }
    n = len(frame)
    for start in range(0, n, _INSERT_CHUNK):
        chunk = []
        for i in range(start, min(start + _INSERT_CHUNK, n)):
            row = dict(fixed)
            for c in columns:
                row[c] = _clean(values[c][i]) if c in values else None
            chunk.append(row)
        yield chunk


class Store:
    """The platform database.

    Parameters
    ----------
    url : str, optional
        SQLAlchemy URL (default: :attr:`clv.settings.Settings.database`, i.e. ``CLV_DATABASE_URL``
        or SQLite under ``CLV_HOME``). The schema is brought to the newest migration here.
    """

    def __init__(self, url: str | None = None) -> None:
        from clv.settings import get_settings

        self.url = url or get_settings().database
        parsed = sa.engine.make_url(self.url)
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = sa.create_engine(self.url)
        if parsed.get_backend_name() == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        self._postgres = parsed.get_backend_name() == "postgresql"
        self.migrate()

    def migrate(self) -> None:
        """Upgrade the schema to the newest migration (nothing to do when it is there)."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def schema_revision(self) -> str | None:
        """The migration the database is at (``None`` before any)."""
        with self.engine.connect() as connection:
            try:
                row = connection.execute(
                    sa.text("SELECT version_num FROM clv_alembic_version")
                ).first()
            except sa.exc.DBAPIError:
                return None
        return None if row is None else str(row[0])

    # -- segment versions -----------------------------------------------------------------

    def create_version(
        self,
        *,
        method: str,
        segments: pd.DataFrame,
        assignments: pd.DataFrame,
        rules: Sequence[Mapping[str, Any]],
        config: Mapping[str, Any],
        model: str | None,
        scores_as_of: Any,
        source: str,
        content_hash: str,
    ) -> VersionInfo:
        """Store a segmentation run as a pending version, in one transaction.

        Parameters
        ----------
        method : str
            ``rfm``, ``kmeans`` or ``both``.
        segments : DataFrame
            ``segment_id``, ``name``, ``description``, ``new``, ``matched_from`` and ``profile``
            (a dict or JSON text) per segment.
        assignments : DataFrame
            ``customer_id`` and ``segment_id`` per customer, plus any of
            :data:`ASSIGNMENT_COLUMNS`.
        rules : sequence of mappings
            ``segment``, ``rule``, ``passed``, ``value``, ``threshold``, ``message``.
        config : mapping
            The run's settings (JSON-serialisable).
        model : str or None
            The k-means model's JSON.
        scores_as_of : datetime-like or None
            The scores' cut-off.
        source : str
            Where the scores came from.
        content_hash : str
            Identifies the run: a pending or active version with the same hash is returned
            instead of storing a second one.

        Returns
        -------
        VersionInfo
            The new pending version, or the existing one with the same content.

        Raises
        ------
        StoreError
            On duplicate or missing customer ids, or assignments to unknown segments; nothing
            is stored then.
        """
        ids = assignments["customer_id"].astype(str)
        if ids.duplicated().any():
            raise StoreError(
                f"{int(ids.duplicated().sum())} customer(s) are assigned more than once (e.g. "
                f"{ids[ids.duplicated()].iloc[0]!r}); each customer needs exactly one segment"
            )
        unknown = set(assignments["segment_id"].astype(str)) - set(
            segments["segment_id"].astype(str)
        )
        if unknown:
            raise StoreError(f"assignments name unknown segment(s): {sorted(unknown)[:5]}")
        with self.engine.begin() as conn:
            self._lock(conn)
            same = conn.execute(
                sa.select(versions_table)
                .where(versions_table.c.content_hash == content_hash)
                .where(versions_table.c.status.in_([PENDING, ACTIVE]))
            ).first()
            if same is not None:
                return _info(same._mapping)
            latest = conn.execute(sa.select(sa.func.max(versions_table.c.version))).scalar()
            version = int(latest or 0) + 1
            conn.execute(
                versions_table.insert().values(
                    version=version,
                    method=method,
                    status=PENDING,
                    created_at=_now(),
                    scores_as_of=_naive_utc(scores_as_of),
                    source=source,
                    content_hash=content_hash,
                    config=json.dumps(dict(config), sort_keys=True, default=str),
                    model=model,
                    n_customers=len(assignments),
                    n_segments=len(segments),
                    rules_passed=all(bool(r["passed"]) for r in rules),
                    automatic=False,
                )
            )
            seg = segments.copy()
            seg["profile"] = [
                p if isinstance(p, str) else json.dumps(p, sort_keys=True, default=str)
                for p in seg["profile"]
            ]
            seg["new"] = seg["new"].astype(bool)
            for chunk in _records(
                seg,
                ("segment_id", "name", "description", "profile", "new", "matched_from"),
                version=version,
            ):
                conn.execute(segments_table.insert(), chunk)
            frame = assignments.assign(customer_id=ids.to_numpy())
            self._bulk(
                conn,
                assignments_table,
                frame,
                ("customer_id", "segment_id", *ASSIGNMENT_COLUMNS),
                version=version,
            )
            if self._postgres:  # fresh statistics, or the planner misjudges the history query
                conn.execute(sa.text("ANALYZE segment_assignments"))
            if rules:
                conn.execute(
                    rules_table.insert(),
                    [
                        {
                            "version": version,
                            **{k: _clean(r.get(k)) for k in ("segment", "rule", "value")},
                            "threshold": _clean(r.get("threshold")),
                            "passed": bool(r["passed"]),
                            "message": str(r["message"]),
                        }
                        for r in rules
                    ],
                )
            row = conn.execute(
                sa.select(versions_table).where(versions_table.c.version == version)
            ).one()
            return _info(row._mapping)

    def _lock(self, conn: Connection) -> None:
        """Serialise writers of versions (PostgreSQL: a transaction-scoped advisory lock)."""
        if self._postgres:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(4242006)"))

    def _bulk(
        self,
        conn: Connection,
        table: sa.Table,
        frame: pd.DataFrame,
        columns: Sequence[str],
        **fixed: Any,
    ) -> None:
        """Insert many rows: COPY on PostgreSQL, executemany elsewhere."""
        if self._postgres:
            names = [*fixed, *columns]
            raw = conn.connection.driver_connection
            cursor = raw.cursor()  # type: ignore[union-attr]
            statement = f"COPY {table.name} ({', '.join(names)}) FROM STDIN"
            with cursor.copy(statement) as copy:
                for chunk in _records(frame, columns, **fixed):
                    for row in chunk:
                        copy.write_row([row[n] for n in names])
            return
        for chunk in _records(frame, columns, **fixed):
            conn.execute(table.insert(), chunk)

    def versions(self) -> list[VersionInfo]:
        """Every segment version, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(versions_table).order_by(versions_table.c.version))
            return [_info(r._mapping) for r in rows]

    def version(self, version: int) -> VersionInfo:
        """One version.

        Raises
        ------
        StoreError
            When there is no such version (the message lists the ones there are).
        """
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(versions_table).where(versions_table.c.version == int(version))
            ).first()
            if row is None:
                count = conn.execute(sa.select(sa.func.max(versions_table.c.version))).scalar()
        if row is None:
            there = f"the versions are 1–{count}" if count else "there are no versions yet"
            raise StoreError(f"no segment version {version}: {there} (`clv segment list`)")
        return _info(row._mapping)

    def active(self) -> VersionInfo | None:
        """The active version, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(versions_table).where(versions_table.c.status == ACTIVE)
            ).first()
        return None if row is None else _info(row._mapping)

    def segments(self, version: int) -> pd.DataFrame:
        """A version's segments (``profile`` as a dict)."""
        self.version(version)
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(segments_table)
                .where(segments_table.c.version == int(version))
                .order_by(segments_table.c.segment_id)
            ).all()
        frame = pd.DataFrame([dict(r._mapping) for r in rows], columns=segments_table.c.keys())
        frame["profile"] = [json.loads(p) for p in frame["profile"]]
        frame["new"] = frame["new"].astype(bool)
        return frame.drop(columns="version")

    def assignments(self, version: int) -> pd.DataFrame:
        """``customer_id``, ``segment_id``, ``name`` and the stored inputs, by customer."""
        self.version(version)
        a, s = assignments_table, segments_table
        query = (
            sa.select(
                a.c.customer_id, a.c.segment_id, s.c.name, *(a.c[c] for c in ASSIGNMENT_COLUMNS)
            )
            .join(s, sa.and_(s.c.version == a.c.version, s.c.segment_id == a.c.segment_id))
            .where(a.c.version == int(version))
            .order_by(a.c.customer_id)
        )
        with self.engine.connect() as conn:
            frame = pd.read_sql(query, conn)
        return frame.dropna(axis="columns", how="all").reset_index(drop=True)

    def rule_results(self, version: int) -> pd.DataFrame:
        """The business rules' results of a version."""
        self.version(version)
        with self.engine.connect() as conn:
            frame = pd.read_sql(
                sa.select(rules_table)
                .where(rules_table.c.version == int(version))
                .order_by(rules_table.c.id),
                conn,
            )
        frame["passed"] = frame["passed"].astype(bool)
        return frame.drop(columns=["id", "version"])

    def _decide(
        self, version: int, *, to: str, by: str, reason: str, automatic: bool, at: Any
    ) -> VersionInfo:
        with self.engine.begin() as conn:
            self._lock(conn)
            row = conn.execute(
                sa.select(versions_table).where(versions_table.c.version == int(version))
            ).first()
            if row is None:
                raise StoreError(f"no segment version {version} (`clv segment list`)")
            status = row._mapping["status"]
            if status != PENDING:
                raise StoreError(
                    f"version {version} is {status}; only a pending version can be "
                    f"{'approved' if to == ACTIVE else 'rejected'}"
                )
            when = _naive_utc(at) if at is not None else _now()
            values: dict[str, Any] = {
                "status": to,
                "decided_by": by,
                "decided_at": when,
                "reason": reason,
                "automatic": automatic,
            }
            if to == ACTIVE:
                conn.execute(
                    versions_table.update()
                    .where(versions_table.c.status == ACTIVE)
                    .values(status=SUPERSEDED, deactivated_at=when)
                )
                values["activated_at"] = when
            conn.execute(
                versions_table.update()
                .where(versions_table.c.version == int(version))
                .values(**values)
            )
        return self.version(version)

    def approve(
        self,
        version: int,
        *,
        by: str,
        reason: str,
        automatic: bool = False,
        at: dt.datetime | None = None,
    ) -> VersionInfo:
        """Activate a pending version; the active one becomes superseded at the same instant.

        Raises
        ------
        StoreError
            When the version does not exist or is not pending.
        """
        return self._decide(version, to=ACTIVE, by=by, reason=reason, automatic=automatic, at=at)

    def reject(self, version: int, *, by: str, reason: str) -> VersionInfo:
        """Reject a pending version (kept, never served).

        Raises
        ------
        StoreError
            When the version does not exist or is not pending.
        """
        return self._decide(version, to=REJECTED, by=by, reason=reason, automatic=False, at=None)

    def _history_query(self, customer_id: str) -> sa.Select[Any]:
        a, s, v = assignments_table, segments_table, versions_table
        return (
            sa.select(
                a.c.version,
                a.c.segment_id,
                s.c.name,
                v.c.activated_at.label("valid_from"),
                v.c.deactivated_at.label("valid_to"),
            )
            .join(v, v.c.version == a.c.version)
            .join(s, sa.and_(s.c.version == a.c.version, s.c.segment_id == a.c.segment_id))
            .where(a.c.customer_id == str(customer_id))
            .where(v.c.activated_at.is_not(None))
        )

    def segment_of(self, customer_id: str, on: dt.datetime | None = None) -> dict[str, Any] | None:
        """The segment a customer was in at an instant (default: now), or None.

        Returns
        -------
        dict or None
            ``version``, ``segment_id``, ``name``, ``valid_from``, ``valid_to`` (None while
            current).
        """
        when = _naive_utc(on) if on is not None else _now()
        v = versions_table
        query = (
            self._history_query(customer_id)
            .where(v.c.activated_at <= when)
            .where(sa.or_(v.c.deactivated_at.is_(None), v.c.deactivated_at > when))
            .order_by(v.c.activated_at.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        found = dict(row._mapping)
        found["valid_from"] = _aware(found["valid_from"])
        found["valid_to"] = _aware(found["valid_to"])
        return found

    def history(self, customer_id: str) -> pd.DataFrame:
        """Every activated segment of a customer, ``valid_from`` ascending."""
        query = self._history_query(customer_id).order_by(versions_table.c.activated_at)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        frame = pd.DataFrame(
            [dict(r._mapping) for r in rows],
            columns=["version", "segment_id", "name", "valid_from", "valid_to"],
        )
        for column in ("valid_from", "valid_to"):
            frame[column] = pd.to_datetime(frame[column]).dt.tz_localize("UTC")
        return frame

    # -- scores ---------------------------------------------------------------------------

    def write_scores(
        self,
        scores: pd.DataFrame,
        *,
        source: str,
        model_name: str | None,
        model_version: str | None,
    ) -> int:
        """Store a scoring run (once: the same scores again return the same run id).

        Parameters
        ----------
        scores : DataFrame
            What ``clv score`` writes: ``customer_id``, ``predicted_clv`` and any of
            :data:`SCORE_COLUMNS`, ``as_of``, ``horizon_days``.
        source : str
            The scores file.
        model_name, model_version : str or None
            The registered model that scored.

        Returns
        -------
        int
            The scoring run's id.
        """
        frame = scores.copy()
        frame["customer_id"] = frame["customer_id"].astype(str)
        present = ["customer_id", *(c for c in SCORE_COLUMNS if c in frame.columns)]
        digest = hashlib.sha256()
        digest.update(pd.util.hash_pandas_object(frame[present], index=False).to_numpy().tobytes())
        as_of = frame["as_of"].iloc[0] if "as_of" in frame.columns and len(frame) else None
        horizon = (
            int(frame["horizon_days"].iloc[0])
            if "horizon_days" in frame.columns and len(frame)
            else None
        )
        digest.update(f"{as_of}|{horizon}|{model_name}|{model_version}".encode())
        content_hash = digest.hexdigest()
        with self.engine.begin() as conn:
            self._lock(conn)
            found = conn.execute(
                sa.select(runs_table.c.id).where(runs_table.c.content_hash == content_hash)
            ).scalar()
            if found is not None:
                return int(found)
            run_id = conn.execute(
                runs_table.insert()
                .values(
                    content_hash=content_hash,
                    created_at=_now(),
                    as_of=_naive_utc(as_of),
                    horizon_days=horizon,
                    model_name=model_name,
                    model_version=model_version,
                    source=source,
                    n_customers=len(frame),
                )
                .returning(runs_table.c.id)
            ).scalar_one()
            self._bulk(conn, scores_table, frame, ("customer_id", *SCORE_COLUMNS), run_id=run_id)
        return int(run_id)

    def latest_scores(self) -> pd.DataFrame | None:
        """The newest scoring run's scores (with ``as_of`` and ``horizon_days``), or None."""
        with self.engine.connect() as conn:
            run = conn.execute(
                sa.select(runs_table).order_by(runs_table.c.id.desc()).limit(1)
            ).first()
            if run is None:
                return None
            frame = pd.read_sql(
                sa.select(scores_table)
                .where(scores_table.c.run_id == run._mapping["id"])
                .order_by(scores_table.c.customer_id),
                conn,
            )
        frame = frame.drop(columns="run_id").dropna(axis="columns", how="all")
        if run._mapping["as_of"] is not None:
            frame["as_of"] = pd.Timestamp(run._mapping["as_of"])
        if run._mapping["horizon_days"] is not None:
            frame["horizon_days"] = int(run._mapping["horizon_days"])
        return frame


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
