"""``clv campaign``: plan, send, analyse, list and show campaigns.

A plan is stored in the platform database (:mod:`clv.store`) with its rendered messages in the
outbox; sending claims from the outbox, so a rerun sends nothing new; the analysis compares each
variant with the holdout through the experiments engine and stores the measured uplift, which the
next plan's targeting starts from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

if TYPE_CHECKING:
    import pandas as pd

    from clv.campaigns.definition import CampaignDefinition

campaign_app = typer.Typer(
    name="campaign",
    help="Plan a budgeted, holdout-controlled campaign, send it exactly once, measure its ROI.",
    no_args_is_help=True,
)

INPUT_ERROR_EXIT = 2
_ADDRESS = {"email": "email", "sms": "phone", "in_app": "app_user_id"}


def _cli() -> Any:
    from clv import cli

    return cli


def _fail(message: str) -> typer.Exit:
    exit_: typer.Exit = _cli()._fail(message)
    return exit_


def _read(uri: str, role: str) -> pd.DataFrame:
    """A CSV or Parquet table with ``customer_id`` read as text."""
    import pandas as pd

    from clv.data.io import display_name, local_copy

    name = display_name(uri)
    lower = name.lower()
    try:
        with local_copy(uri) as path:
            if lower.endswith((".csv", ".csv.gz")):
                frame = pd.read_csv(path, dtype={"customer_id": str}, low_memory=False)
            elif lower.endswith((".parquet", ".pq")):
                frame = pd.read_parquet(path)
            else:
                raise _fail(f"{name}: the {role} must be a .csv or .parquet file")
    except OSError as err:
        raise _fail(str(err) if name in str(err) else f"{name}: {err}") from None
    except (ValueError, TypeError) as err:
        raise _fail(f"{name}: cannot be read ({str(err).splitlines()[0]})") from None
    if "customer_id" not in frame.columns:
        raise _fail(f"{name}: the {role} need a customer_id column")
    return frame.assign(customer_id=frame["customer_id"].astype(str))


def _messages(
    definition: CampaignDefinition, plan: pd.DataFrame, fields: pd.DataFrame, contacts: Any
) -> pd.DataFrame:
    """One rendered message per contacted customer, with the recipient from the contacts."""
    import pandas as pd

    from clv.campaigns.definition import HOLDOUT, render_preview
    from clv.campaigns.errors import CampaignError

    contacted = plan[plan["group"] != HOLDOUT]
    context = fields.set_index("customer_id")
    book = contacts.set_index("customer_id") if contacts is not None else None
    rows = []
    for row in contacted.itertuples(index=False):
        kind = definition.channels[str(row.channel)].kind
        column = _ADDRESS[kind]
        if book is None or column not in book.columns:
            raise CampaignError(
                f"channel {row.channel!r} ({kind}) needs the customers' {column}: pass "
                f"--contacts with a {column} column"
            )
        values = {str(k): v for k, v in context.loc[row.customer_id].to_dict().items()}
        rendered = render_preview(definition, str(row.group), str(row.channel), values)
        rows.append(
            (
                row.customer_id,
                row.channel,
                str(book.at[row.customer_id, column]),
                rendered.get("subject"),
                rendered["body"],
            )
        )
    return pd.DataFrame(rows, columns=["customer_id", "channel", "recipient", "subject", "body"])


@campaign_app.command("plan")
def plan_command(
    definition_path: Annotated[
        Path, typer.Argument(help="The campaign's YAML file.", show_default=False)
    ],
    transactions: Annotated[str, typer.Option(help="Contract transactions (history, habits).")],
    customers: Annotated[str, typer.Option(help="Contract customers (opt-in, region).")],
    out: Annotated[Path, typer.Option(help="Folder for plan.parquet and summary.json.")],
    scores: Annotated[
        str | None, typer.Option(help="Scores file from `clv score` (default: --latest).")
    ] = None,
    latest: Annotated[
        bool, typer.Option("--latest", help="Use the newest scores stored by `clv score`.")
    ] = False,
    contacts: Annotated[
        str | None,
        typer.Option(help="customer_id with email / phone / app_user_id, first_name, opt_out_*."),
    ] = None,
    suppress: Annotated[
        str | None, typer.Option(help="A file of customer ids never to contact.")
    ] = None,
    dask_address: Annotated[
        str | None,
        typer.Option(
            "--dask-address",
            help="Dask scheduler, e.g. tcp://10.0.0.5:8786 (default: CLV_DASK_ADDRESS; neither: "
            "this machine alone). The transactions (a file, or a folder of Parquet files) are "
            "read and summarised per customer on the cluster; the plan is the same.",
        ),
    ] = None,
) -> None:
    """Choose who gets which variant on which channel when, under the budget, with a holdout."""
    from clv.campaigns import service
    from clv.campaigns.errors import CampaignError
    from clv.data.validation import ContractError
    from clv.store import StoreError

    if scores is not None and latest:
        raise typer.BadParameter("give --scores or --latest, not both", param_hint="--scores")
    try:
        with (
            _cli().err_console.status("reading, validating and planning ..."),
            _cli()._training_on_dask(dask_address),
        ):
            planned = service.plan(
                definition_path,
                transactions=transactions,
                customers=customers,
                out=out,
                scores=scores,
                contacts=contacts,
                suppress=suppress,
            )
    except CampaignError as err:
        raise _refused(str(err)) from None
    except (ContractError, FileNotFoundError, ValueError, OSError, StoreError) as err:
        raise _fail(str(err)) from None
    info, summary = planned.info, planned.summary
    console = _cli().console
    table = Table(title=f"campaign {info.campaign_id} ({info.status})")
    table.add_column("group")
    table.add_column("customers", justify="right")
    for group, count in summary["groups"].items():
        table.add_row(group, f"{count:,}")
    console.print(table)
    excluded = ", ".join(f"{r}: {n:,}" for r, n in summary["excluded"].items() if n)
    console.print(
        f"audience {summary['audience']:,}, eligible {summary['eligible']:,}"
        + (f" (excluded — {excluded})" if excluded else "")
    )
    console.print(
        f"cost {summary['total_cost']:,.2f} of budget {summary['budget']:,.2f}; "
        f"expected incremental margin {summary['expected_incremental_value']:,.2f}"
    )
    console.print(f"written: {planned.paths['plan']}")
    typer.echo(info.campaign_id)


def _refused(message: str) -> typer.Exit:
    from rich.text import Text

    _cli().err_console.print(Text(message, style="bold red"), soft_wrap=True)
    return typer.Exit(code=INPUT_ERROR_EXIT)


def _campaign_id(target: str) -> str:
    """A campaign id, or a plan folder holding summary.json."""
    folder = Path(target)
    summary = folder / "summary.json"
    if folder.is_dir():
        if not summary.is_file():
            raise _fail(f"{target}: no summary.json here; give a campaign id or a plan folder")
        return str(json.loads(summary.read_text())["campaign_id"])
    return target


@campaign_app.command("send")
def send_command(
    target: Annotated[
        str, typer.Argument(help="The plan folder (or campaign id).", show_default=False)
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Write the messages to a preview file only.")
    ] = False,
    limit: Annotated[int | None, typer.Option(help="Send at most N messages (a canary).")] = None,
) -> None:
    """Send a planned campaign's messages exactly once (a rerun sends nothing new)."""
    from clv.campaigns import service
    from clv.campaigns.channels import ChannelConfigError
    from clv.campaigns.errors import CampaignError
    from clv.store import StoreError

    campaign_id = _campaign_id(target)
    try:
        if dry_run:
            folder = Path(target) if Path(target).is_dir() else Path()
            written = service.preview(campaign_id, folder / "preview.jsonl", limit=limit)
            _cli().console.print(f"dry run: {written:,} messages in {folder / 'preview.jsonl'}")
            return
        report = service.send(campaign_id, limit=limit)
    except (CampaignError, ChannelConfigError) as err:
        raise _refused(str(err)) from None
    except StoreError as err:
        raise _fail(str(err)) from None
    console = _cli().console
    console.print(
        f"campaign {campaign_id}: {report.sent:,} sent, {report.failed:,} failed, "
        f"{report.deferred:,} waiting for a retry"
    )
    console.print("outbox: " + ", ".join(f"{s} {n:,}" for s, n in report.outbox.items() if n))
    if report.stopped_because:
        console.print(f"stopped: {report.stopped_because}")


@campaign_app.command("analyze")
def analyze_command(
    campaign_id: Annotated[str, typer.Argument(help="The campaign id.", show_default=False)],
    transactions: Annotated[str, typer.Option(help="Transactions covering the window.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    report: Annotated[
        Path | None,
        typer.Option(help="Folder for report.md, report.html and the PNGs."),
    ] = None,
) -> None:
    """Measure a sent campaign against its holdout: incremental revenue and ROI with CIs."""
    from clv.campaigns import service
    from clv.campaigns.errors import CampaignError
    from clv.data.io import read_table
    from clv.data.validation import ContractError
    from clv.store import Store, StoreError

    written: dict[str, Path] = {}
    try:
        tx = read_table(transactions, "transactions")
        store = Store()
        result = service.analyze(campaign_id, transactions=tx, store=store)
        if report is not None:
            from clv.campaigns.report import write_report

            info = store.campaign(campaign_id)
            plan = store.campaign_plan(campaign_id).rename(columns={"group_name": "group"})
            written = write_report(
                result,
                plan,
                tx,
                report,
                window_days=int(info.definition["attribution_window_days"]),
            )
    except (ContractError, FileNotFoundError, ValueError, OSError) as err:
        raise _fail(str(err)) from None
    except CampaignError as err:
        raise _refused(str(err)) from None
    except StoreError as err:
        raise _fail(str(err)) from None
    if as_json:
        typer.echo(json.dumps(result.to_dict(), default=str))
        return
    console = _cli().console
    inc, roi = result.incremental_revenue, result.roi
    console.print(
        f"campaign {campaign_id}: incremental revenue {inc['estimate']:,.2f} "
        f"(95% CI {inc['ci_low']:,.2f} to {inc['ci_high']:,.2f}) for a cost of {result.cost:,.2f}"
    )
    if roi["estimate"] is not None:
        console.print(
            f"ROI {roi['estimate']:+.1%} (95% CI {roi['ci_low']:+.1%} to {roi['ci_high']:+.1%})"
        )
    console.print(f"verdict: {result.winner or 'no winner'} — {result.reason}")
    table = Table(title="all treated against the holdout")
    for column in ("metric", "treated mean", "difference (95% CI)", "p"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for entry in result.metrics:
        if "error" in entry:
            table.add_row(entry["metric"], "", entry["error"], "")
            continue
        a = entry["absolute"]
        table.add_row(
            entry["metric"] + (" (primary)" if entry["primary"] else ""),
            f"{entry['mean']:,.4g}",
            f"{a['estimate']:+,.4g} ({a['ci_low']:+,.4g} to {a['ci_high']:+,.4g})",
            f"{a['p_value']:.3g}",
        )
    console.print(table)
    if result.engagement:
        total = result.engagement["total"]
        rates = ", ".join(
            f"{name.replace('_', ' ')} {total[name]:.1%}"
            for name in ("open_rate", "click_rate", "conversion_rate")
            if total.get(name) is not None
        )
        console.print(f"engagement of {total['sent']:,} messages: {rates}")
    if written:
        console.print(f"report: {written['html']} (and {written['markdown'].name}, PNGs)")


@campaign_app.command("list")
def list_command() -> None:
    """Every campaign, oldest first, with its status and counts."""
    from clv.store import Store

    table = Table(title="campaigns")
    for column in ("campaign", "status", "planned", "targeted", "holdout", "cost"):
        table.add_column(column)
    store = Store()
    store.migrate()
    for info in store.campaigns():
        table.add_row(
            info.campaign_id,
            info.status,
            f"{info.planned_at:%Y-%m-%d %H:%M}",
            f"{info.n_targeted:,}",
            f"{info.n_holdout:,}",
            f"{info.total_cost:,.2f}",
        )
    _cli().console.print(table)


@campaign_app.command("show")
def show_command(
    campaign_id: Annotated[str, typer.Argument(help="The campaign id.", show_default=False)],
) -> None:
    """One campaign: its summary and the outbox's state."""
    from clv.store import Store, StoreError

    store = Store()
    try:
        info = store.campaign(campaign_id)
        counts = store.outbox_counts(campaign_id)
    except StoreError as err:
        raise _fail(str(err)) from None
    console = _cli().console
    console.print(f"campaign {info.campaign_id} ({info.name}): {info.status}")
    console.print(json.dumps(info.summary, indent=2, default=str))
    console.print("outbox: " + ", ".join(f"{s} {n:,}" for s, n in counts.items()))
