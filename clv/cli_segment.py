"""``clv segment``: run, review, approve and serve customer segmentations.

Each run is a *version* stored in the platform database (:mod:`clv.store`) as ``pending``; an
expert reviews it (``clv segment review``: profiles, business rules, migration from the active
version and an HTML report) and approves or rejects it, as for model promotion. Only the active
version is served (``clv segment show``, ``clv segment export``, the API).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    import pandas as pd

    from clv.segmentation.runs import Segmentation
    from clv.store import Store, VersionInfo

segment_app = typer.Typer(
    name="segment",
    help="Segment customers from their scores; review, approve and serve segment versions.",
    no_args_is_help=True,
)


def _cli() -> Any:
    from clv import cli

    return cli


def _fail(message: str) -> typer.Exit:
    exit_: typer.Exit = _cli()._fail(message)
    return exit_


def _store() -> Store:
    from clv.store import Store

    return Store()


def _pct(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "–"
    return "–" if number != number else f"{number:.1%}"


def _money(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "–"
    return "–" if number != number else f"{number:,.2f}"


def _profile_table(title: str, profiles: pd.DataFrame) -> Table:
    table = Table(title=title)
    table.add_column("segment", justify="left", min_width=16, overflow="fold")
    # Short headers: the table must fit an 80-column terminal (the caption says what they are).
    for column in ("customers", "share", "CLV %", "mean CLV", "churn", "eco"):
        table.add_column(column, justify="right", no_wrap=True)
    with_change = "change" in profiles.columns
    if with_change:
        table.add_column("change", justify="right", no_wrap=True)
    table.caption = (
        "share: of customers; CLV %: of predicted CLV; churn: mean churn probability; eco: mean "
        "eco share of spend"
        + ("; change: customers since the compared version" if with_change else "")
    )
    for name, row in profiles.iterrows():
        cells = [
            str(name),
            f"{int(row['customers']):,}",
            _pct(row["share"]),
            _pct(row["clv_share"]),
            _money(row["mean_clv"]),
            _pct(row["mean_churn"]),
            _pct(row.get("eco_share")),
        ]
        if with_change:
            change = float(row.get("change", float("nan")))
            cells.append("new" if change != change else f"{int(change):+,}")
        table.add_row(*cells)
    return table


def _print_profiles(title: str, profiles: pd.DataFrame) -> None:
    """The profile table, then each segment's RFM mix on its own line (it is long text)."""
    console = _cli().console
    console.print(_profile_table(title, profiles))
    if "rfm_mix" in profiles.columns:
        console.print(Text("RFM mix:"))
        for name, mix in profiles["rfm_mix"].items():
            console.print(Text(f"  {name}: {mix}"))


def _rules_lines(rules: pd.DataFrame) -> list[Text]:
    failed = rules[~rules["passed"].astype(bool)]
    if failed.empty:
        return [Text(f"business rules: all {len(rules)} passed", style="green")]
    lines = [Text(f"business rules: {len(failed)} of {len(rules)} failed", style="bold red")]
    lines += [Text(f"  ✗ {m}", style="red") for m in failed["message"]]
    return lines


@segment_app.command("run")
def run(
    scores: Annotated[
        str | None,
        typer.Option("--scores", help="Scores file written by `clv score` (local or s3://)."),
    ] = None,
    latest: Annotated[
        bool, typer.Option("--latest", help="Segment the newest scores in the platform database.")
    ] = False,
    transactions: Annotated[
        str | None,
        typer.Option(
            "--transactions",
            help="Transactions, needed only when the scores lack the RFM columns.",
        ),
    ] = None,
    method: Annotated[
        str | None,
        typer.Option(help="rfm, kmeans or both (value segments plus each RFM segment)."),
    ] = None,
    k_min: Annotated[int | None, typer.Option(min=2, help="Smallest k tried.")] = None,
    k_max: Annotated[int | None, typer.Option(min=2, help="Largest k tried.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the sample and of k-means.")] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="YAML settings (config/segmentation.yaml); flags override."),
    ] = None,
    dask_address: Annotated[
        str | None,
        typer.Option(
            "--dask-address",
            help="Dask scheduler, e.g. tcp://10.0.0.5:8786 (default: CLV_DASK_ADDRESS; neither: "
            "this machine alone). RFM scores and segment assignment run on the cluster; k-means "
            "fits here on the seeded sample. --scores may then be a folder of Parquet files.",
        ),
    ] = None,
) -> None:
    """Segment every scored customer and store the result as a pending version.

    The new version is compared with the active one (stable names for matching value segments,
    the migration of customers between them). Review it with `clv segment review VERSION`.
    """
    from clv.config import SegmentationConfig, load_segmentation_config
    from clv.segmentation.inputs import read_scores, scores_as_of, segment_inputs
    from clv.segmentation.rfm import load_rules
    from clv.segmentation.runs import build_segmentation, previous_of, save_version

    if (scores is None) == (not latest):
        raise typer.BadParameter("give exactly one of --scores PATH or --latest")
    file = None if config is None else load_segmentation_config(config)
    settings = (file or SegmentationConfig()).model_dump()
    for key, value in {"method": method, "k_min": k_min, "k_max": k_max, "seed": seed}.items():
        if value is not None:  # a flag given overrides the file
            settings[key] = value
    try:
        chosen = SegmentationConfig.model_validate(settings)
    except ValueError as err:
        raise _fail(f"invalid segmentation settings: {err}") from None
    from clv.distributed.cluster import DaskUnavailableError
    from clv.distributed.cluster import dask_address as scheduler_of

    try:
        address = scheduler_of(dask_address)
    except DaskUnavailableError as err:
        raise _fail(str(err)) from None
    if address is not None and transactions is not None:
        raise typer.BadParameter(
            "not with --dask-address: score again with `clv score`, which writes the RFM inputs",
            param_hint="--transactions",
        )
    store = _store()
    if address is not None:
        _run_on_dask(address, scores=scores, store=store, chosen=chosen)
        return
    err_console = _cli().err_console
    with err_console.status("reading the scores ..."):
        if latest:
            frame = store.latest_scores()
            if frame is None:
                raise _fail(
                    "no scores in the platform database yet; run `clv score` first (it stores "
                    "them) or pass --scores PATH"
                )
            source = "database: latest scoring run"
        else:
            frame = read_scores(str(scores))
            source = str(scores)
        tx = None
        if transactions is not None:
            from clv.data.io import read_table

            tx = read_table(transactions, "transactions")
        rules = load_rules(chosen.rfm_rules) if chosen.rfm_rules else None
        inputs = segment_inputs(frame, source=source, transactions=tx, rules=rules)
    with err_console.status(f"segmenting {len(inputs):,} customers ({chosen.method}) ..."):
        previous = previous_of(store)
        segmentation = build_segmentation(inputs, config=chosen, previous=previous)
        info = save_version(store, segmentation, source=source, scores_as_of=scores_as_of(frame))
    _print_run(segmentation, info)


def _run_on_dask(address: str, *, scores: str | None, store: Store, chosen: Any) -> None:
    """``clv segment run`` on the cluster at ``address`` (``scores`` None: the latest run)."""
    import dask.dataframe as dd

    from clv.distributed.cluster import DaskUnavailableError, connect
    from clv.distributed.segmentation import gather_segmentation, segment_dask
    from clv.segmentation.inputs import read_scores
    from clv.segmentation.rfm import load_rules
    from clv.segmentation.runs import previous_of, save_version

    err_console = _cli().err_console
    try:
        with connect(address) as client, client.as_current():
            partitions = max(1, 2 * sum(client.nthreads().values()))
            with err_console.status("reading the scores ..."):
                if scores is None:
                    frame = store.latest_scores()
                    if frame is None:
                        raise _fail(
                            "no scores in the platform database yet; run `clv score` first (it "
                            "stores them) or pass --scores PATH"
                        )
                    source = "database: latest scoring run"
                    ddf = dd.from_pandas(frame, npartitions=partitions, sort=False)
                elif "://" not in scores and Path(scores).is_dir():  # `clv score` on a cluster
                    source = scores
                    ddf = dd.read_parquet(scores)
                else:
                    source = scores
                    ddf = dd.from_pandas(read_scores(scores), npartitions=partitions, sort=False)
            rules = load_rules(chosen.rfm_rules) if chosen.rfm_rules else None
            with err_console.status(f"segmenting on the cluster ({chosen.method}) ..."):
                previous = previous_of(store)
                result = segment_dask(
                    ddf, config=chosen, source=source, rules=rules, previous=previous
                )
                segmentation = gather_segmentation(result, config=chosen, previous=previous)
                as_of = None
                if "as_of" in ddf.columns:
                    import pandas as pd

                    as_of = pd.Timestamp(ddf["as_of"].min().compute())
                info = save_version(store, segmentation, source=source, scores_as_of=as_of)
    except DaskUnavailableError as err:
        raise _fail(str(err)) from None
    _print_run(segmentation, info)


def _print_run(segmentation: Segmentation, info: VersionInfo) -> None:
    console = _cli().console
    compared = segmentation.previous
    title = f"segment version {info.version} ({segmentation.method}, {info.status})"
    if compared is not None:
        title += f" against active version {compared.version}"
    _print_profiles(title, segmentation.profiles)
    for note in segmentation.notes:
        console.print(Text(f"note: {note}"))
    new = segmentation.segments.loc[segmentation.segments["new"], "name"].tolist()
    if compared is not None:
        console.print(
            Text(
                f"{segmentation.migration_share or 0:.1%} of customers changed segment; "
                + (f"new segment(s): {', '.join(new)}" if new else "every segment matched")
            )
        )
    import pandas as pd

    rules = pd.DataFrame([r.__dict__ for r in segmentation.rules])
    for line in _rules_lines(rules):
        console.print(line)
    if info.status == "pending":
        console.print(
            Text(
                f"review it: clv segment review {info.version}; then "
                f"clv segment approve {info.version} --reason '...'"
            )
        )
    else:
        console.print(Text(f"version {info.version} is {info.status} (same content as before)"))


@segment_app.command("list")
def list_versions(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines' array.")] = False,
) -> None:
    """List segment versions, oldest first, with their status."""
    versions = _store().versions()
    console = _cli().console
    if as_json:
        rows = [
            {
                "version": v.version,
                "status": v.status,
                "method": v.method,
                "created_at": _iso(v.created_at),
                "customers": v.n_customers,
                "segments": v.n_segments,
                "rules_passed": v.rules_passed,
                "activated_at": _iso(v.activated_at),
                "decided_by": v.decided_by,
                "reason": v.reason,
                "automatic": v.automatic,
            }
            for v in versions
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    if not versions:
        console.print(Text("no segment versions yet: run `clv segment run --scores PATH`"))
        return
    table = Table(title="segment versions")
    for column in ("version", "status", "method", "created", "customers", "segments", "rules"):
        table.add_column(column)
    table.add_column("decided", overflow="fold")
    for v in versions:
        decided = ""
        if v.decided_by:
            decided = f"{v.decided_by}{' (automatic)' if v.automatic else ''}: {v.reason or ''}"
        table.add_row(
            str(v.version),
            v.status,
            v.method,
            f"{v.created_at:%Y-%m-%d %H:%M}",
            f"{v.n_customers:,}",
            str(v.n_segments),
            "passed" if v.rules_passed else "FAILED",
            decided,
        )
    console.print(table)


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _version_or_default(store: Store, version: int | None) -> VersionInfo:
    from clv.store import StoreError

    if version is not None:
        return store.version(version)
    versions = store.versions()
    pending = [v for v in versions if v.status == "pending"]
    if pending:
        return pending[-1]
    active = store.active()
    if active is not None:
        return active
    raise StoreError("no segment versions yet: run `clv segment run --scores PATH`")


@segment_app.command("review")
def review(
    version: Annotated[
        int | None,
        typer.Argument(help="Version to review (default: the newest pending, else the active)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Folder of the HTML report (default: $CLV_HOME/segments/vN/review)."),
    ] = None,
) -> None:
    """Show a version's segment profiles, rule results and migration; write the HTML report."""
    import pandas as pd

    from clv.segmentation.profiles import migration_matrix, migration_share
    from clv.segmentation.report import write_review_report
    from clv.segmentation.values import ValueModel
    from clv.settings import get_settings

    store = _store()
    info = _version_or_default(store, version)
    console = _cli().console
    with _cli().err_console.status(f"reading version {info.version} ..."):
        segments = store.segments(info.version)
        assigned = store.assignments(info.version)
        rules = store.rule_results(info.version)
        active = store.active()
        compare = active if active is not None and active.version != info.version else None
        if compare is None and info.config.get("compared_with"):
            compare = store.version(int(info.config["compared_with"]))
        labels = pd.Series(
            assigned["name"].astype(str).to_numpy(),
            index=pd.Index(assigned["customer_id"].astype(str), name="customer_id"),
            name="segment",
        )
        profiles = pd.DataFrame(
            [dict(p) for p in segments["profile"]], index=pd.Index(segments["name"], name="segment")
        ).sort_values("clv_share", ascending=False)
        migration = share = None
        if compare is not None:
            before = store.assignments(compare.version)
            old = pd.Series(
                before["name"].astype(str).to_numpy(),
                index=pd.Index(before["customer_id"].astype(str), name="customer_id"),
            )
            migration = migration_matrix(old, labels)
            share = migration_share(old, labels)
        inputs = assigned.set_index("customer_id").drop(columns=["segment_id", "name"])
        centroids = None
        if info.model is not None:
            model = ValueModel.from_json(info.model)
            frame = model.centroid_frame()
            names = dict(zip(model.segment_ids, model.names, strict=True))
            centroids = frame.rename(index=names)
        folder = out or get_settings().home / "segments" / f"v{info.version}" / "review"
        path = write_review_report(
            folder,
            version=info.version,
            method=info.method,
            status=info.status,
            profiles=profiles,
            inputs=inputs,
            labels=labels,
            centroids=centroids,
            migration=migration,
            rules=rules,
            compared_with=None if compare is None else compare.version,
        )
    title = f"segment version {info.version} ({info.method}, {info.status})"
    if compare is not None:
        title += f": change since version {compare.version} ({compare.status})"
    _print_profiles(title, profiles)
    if migration is not None:
        table = Table(title=f"customers from version {compare.version} (rows) to {info.version}")  # type: ignore[union-attr]
        table.add_column("from \\ to")
        for column in migration.columns:
            table.add_column(str(column), justify="right")
        for name, row in migration.iterrows():
            table.add_row(str(name), *(f"{int(v):,}" for v in row))
        console.print(table)
        console.print(Text(f"{share:.1%} of customers in both versions changed segment"))
    for line in _rules_lines(rules):
        console.print(line)
    console.print(Text(f"report: {path}"))
    console.print(Text(f"CSV: {path.parent}"))
    if info.status == "pending":
        console.print(
            Text(f"approve: clv segment approve {info.version} --reason '...'; or reject it")
        )


@segment_app.command("approve")
def approve(
    version: Annotated[
        int | None,
        typer.Argument(help="Pending version to activate (default: the newest pending one)."),
    ] = None,
    reason: Annotated[str, typer.Option(help="Why (recorded with the approval).")] = "",
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    override_rules: Annotated[
        bool,
        typer.Option(
            "--override-rules", help="Activate although business rules failed (give the reason)."
        ),
    ] = False,
    reviewer: Annotated[
        str | None, typer.Option(help="Who approves (default: the current user).")
    ] = None,
) -> None:
    """Make a pending version the active one (the previous active version is superseded)."""
    import getpass

    store = _store()
    if version is None:
        pending = [v for v in store.versions() if v.status == "pending"]
        if not pending:
            raise _fail("no pending segment version; run `clv segment run` first")
        version = pending[-1].version
    info = store.version(version)
    if info.status != "pending":
        raise _fail(
            f"version {version} is {info.status}; only a pending version can be approved "
            "(`clv segment list` shows them)"
        )
    if not reason.strip():
        raise typer.BadParameter("say why: --reason TEXT", param_hint="--reason")
    rules = store.rule_results(version)
    failed = rules[~rules["passed"].astype(bool)]
    if len(failed) and not override_rules:
        lines = "\n".join(f"  {m}" for m in failed["message"])
        raise _fail(
            f"version {version}: {len(failed)} business rule(s) failed:\n{lines}\n"
            "fix the settings and run again, or activate anyway with --override-rules "
            "--reason '...'"
        )
    active = store.active()
    question = f"Activate segment version {version}" + (
        f" (superseding version {active.version})?" if active is not None else "?"
    )
    if not yes and not typer.confirm(question):
        raise typer.Exit(code=1)
    why = reason if not len(failed) else f"{reason} [business rules overridden: {len(failed)}]"
    done = store.approve(version, by=reviewer or getpass.getuser(), reason=why)
    _cli().console.print(Text(f"segment version {done.version} is now active"))


@segment_app.command("reject")
def reject(
    version: Annotated[int, typer.Argument(help="Pending version to reject.")],
    reason: Annotated[str, typer.Option(help="Why (recorded).")],
    reviewer: Annotated[
        str | None, typer.Option(help="Who rejects (default: the current user).")
    ] = None,
) -> None:
    """Reject a pending version (it is kept, never served)."""
    import getpass

    if not reason.strip():
        raise typer.BadParameter("say why: --reason TEXT", param_hint="--reason")
    done = _store().reject(version, by=reviewer or getpass.getuser(), reason=reason)
    _cli().console.print(Text(f"segment version {done.version} is rejected"))


@segment_app.command("show")
def show(
    customer_id: Annotated[str, typer.Argument(help="The customer.")],
    on: Annotated[
        str | None,
        typer.Option(help="Date YYYY-MM-DD (end of that day, UTC) or ISO time; default now."),
    ] = None,
) -> None:
    """The customer's active segment now, or on a past date."""
    import pandas as pd

    when = None
    if on is not None:
        try:
            stamp = pd.Timestamp(on)
        except ValueError:
            raise typer.BadParameter(
                f"not a date: {on!r} (use YYYY-MM-DD)", param_hint="--on"
            ) from None
        if len(on.strip()) == 10:
            stamp = stamp + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
        when = stamp.to_pydatetime()
    found = _store().segment_of(customer_id, on=when)
    console = _cli().console
    if found is None:
        moment = "now" if on is None else f"on {on}"
        raise _fail(f"customer {customer_id!r} was in no active segment version {moment}")
    valid_to = found.get("valid_to")
    console.print(
        Text(
            f"{customer_id}: {found['name']} ({found['segment_id']}), version {found['version']}, "
            f"valid from {found['valid_from']:%Y-%m-%d %H:%M} UTC"
            + (f" to {valid_to:%Y-%m-%d %H:%M} UTC" if valid_to is not None else " (current)")
        )
    )


@segment_app.command("export")
def export(
    version: Annotated[
        int | None, typer.Argument(help="Version to export (default: the active one).")
    ] = None,
    out: Annotated[str, typer.Option(help="A .csv, .csv.gz or .parquet file (or s3://).")] = "",
) -> None:
    """Write a version's assignments (customer_id, segment, segment_id, version, profile inputs)."""
    from clv.data.io import write_table

    if not out.lower().endswith((".csv", ".csv.gz", ".parquet", ".pq")):
        raise typer.BadParameter("give --out NAME.csv, .csv.gz or .parquet", param_hint="--out")
    store = _store()
    if version is None:
        active = store.active()
        if active is None:
            raise _fail("no active segment version; give a VERSION or approve one first")
        version = active.version
    frame = store.assignments(version).rename(columns={"name": "segment"})
    frame.insert(3, "version", version)
    front = ["customer_id", "segment", "segment_id", "version"]
    frame = frame[front + [c for c in frame.columns if c not in front]]
    write_table(frame, out)
    _cli().console.print(Text(f"{len(frame):,} customers of version {version}: {out}"))
