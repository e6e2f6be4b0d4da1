"""``clv campaign simulate``: the known response of generated customers to a planned campaign.

Generated data only: the generator's latent parameters (``truth.json`` and the truth table in the
folder ``clv generate`` wrote) say how each customer buys, so the window's transactions can be drawn
for treated and holdout customers alike, with a true uplift for the treated, and the true
incremental revenue is known. ``clv campaign analyze`` on the simulated transactions then has to
recover it (:mod:`clv.campaigns.simulation`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from clv.cli_campaign import _campaign_id, _cli, _fail, _refused, campaign_app


def _window(campaign_id: str, summary: dict[str, Any]) -> int | None:
    """The attribution window of the stored campaign (or of its plan summary)."""
    from clv.store import Store, StoreError

    try:
        info = Store().campaign(campaign_id)
    except StoreError:
        window = summary.get("attribution_window_days")
        return int(window) if window is not None else None
    return int(info.definition["attribution_window_days"])


@campaign_app.command("simulate")
def simulate_command(
    target: Annotated[
        str, typer.Argument(help="The plan folder `clv campaign plan` wrote.", show_default=False)
    ],
    data: Annotated[Path, typer.Option(help="The folder `clv generate` wrote (with truth.json).")],
    out: Annotated[Path, typer.Option(help="Folder for transactions.parquet and truth.json.")],
    uplift: Annotated[
        float | None,
        typer.Option(
            help="True relative purchase-rate uplift of every treated customer (default 0.2)."
        ),
    ] = None,
    uplift_file: Annotated[
        Path | None,
        typer.Option(help="YAML: default uplift and rules by variant, segment, channel."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed of the simulated response.")] = 0,
    window: Annotated[
        int | None, typer.Option(help="Attribution window in days (default: the campaign's).")
    ] = None,
) -> None:
    """Draw the window's transactions of a plan's customers from the generator's latent truth."""
    import pandas as pd

    from clv.campaigns.errors import CampaignError
    from clv.campaigns.simulation import (
        UpliftSpec,
        load_generated,
        load_uplift_spec,
        simulate_campaign,
        write_simulation,
    )
    from clv.config import ConfigError

    folder = Path(target)
    plan_path = folder / "plan.parquet"
    if not plan_path.is_file():
        raise _fail(f"{target}: no plan.parquet here; give the folder `clv campaign plan` wrote")
    campaign_id = _campaign_id(target)
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    window_days = window if window is not None else _window(campaign_id, summary)
    if window_days is None:
        raise _fail(f"campaign {campaign_id} is not in the database: pass --window")
    if uplift_file is not None and uplift is not None:
        raise typer.BadParameter("give --uplift or --uplift-file, not both", param_hint="--uplift")
    try:
        spec = (
            load_uplift_spec(uplift_file)
            if uplift_file is not None
            else UpliftSpec.model_validate({"default": 0.2 if uplift is None else uplift})
        )
    except ConfigError as err:
        raise _refused(str(err)) from None
    except ValueError as err:  # pydantic: an uplift out of range
        raise _refused(f"--uplift {uplift}: {_first_error(err)}") from None
    try:
        plan = pd.read_parquet(plan_path)
        with _cli().err_console.status("reading the generated data ..."):
            world = load_generated(data)
        with _cli().err_console.status("simulating the response ..."):
            result = simulate_campaign(plan, world, window_days=window_days, spec=spec, seed=seed)
        paths = write_simulation(result, out)
    except CampaignError as err:
        raise _refused(str(err)) from None
    except OSError as err:
        raise _fail(str(err)) from None
    truth = result.truth
    table = Table(title=f"campaign {campaign_id}: the true response (seed {seed})")
    for column in ("", "treated", "holdout", "true incremental revenue"):
        table.add_column(column, justify="right" if column else "left")
    table.add_row(
        "all",
        f"{truth['n_treated']:,}",
        f"{truth['n_holdout']:,}",
        f"{truth['incremental_revenue']:,.2f}",
    )
    for kind in ("per_variant", "per_segment"):
        for name, part in truth[kind].items():
            table.add_row(
                f"{kind[4:]} {name}",
                f"{part['n_treated']:,}",
                f"{part['n_holdout']:,}",
                f"{part['incremental_revenue']:,.2f}",
            )
    console = _cli().console
    console.print(table)
    console.print(f"written: {paths['transactions']} and {paths['truth']}")
    console.print(
        f"next: clv campaign analyze {campaign_id} --transactions {paths['transactions']}"
    )


def _first_error(err: ValueError) -> str:
    errors = getattr(err, "errors", None)
    if callable(errors):
        return str(errors()[0]["msg"])
    return str(err).splitlines()[0]
