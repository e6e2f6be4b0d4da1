"""docs/data_dictionary.md names exactly the columns the code reads and writes.

The dictionary's tables are parsed (``| `name` | type | unit | definition |``) and compared with
what the code produces on a small generated data set: the features of
:func:`clv.features.build_features` with and without the optional columns and tables, the
contract's columns, the training frame's bookkeeping columns, the scores file and the generator's
truth table. A failure lists the names that are missing from the page or no longer produced.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clv.data.contract import TABLES
from clv.data.generator import GeneratorConfig, SyntheticData, generate
from clv.data.validation import validate_frame
from clv.features import build_features, future_targets, training_set
from clv.training.dataset import NON_FEATURES, TARGET
from clv.training.scoring import SCORE_COLUMNS
from clv.training.windows import end_of_day

ROOT = Path(__file__).resolve().parents[2]
DICTIONARY = ROOT / "docs" / "data_dictionary.md"
HORIZON = 90
#: A cut-off with more than a year of history before it (so the seasonal features are defined)
#: and a whole horizon of data after it.
CUTOFF = end_of_day(pd.Timestamp("2024-09-30"))
REQUIRED = ["customer_id", "timestamp", "amount"]
NEEDS = re.compile(r"\*\*Needs\*\*\s+((?:`[^`]+`(?:,\s*)?)+)")


@dataclass(frozen=True)
class Row:
    """One documented column: its name (possibly a ``<...>`` pattern), type and definition."""

    name: str
    type: str
    definition: str

    @property
    def pattern(self) -> re.Pattern[str]:
        """The name as a regular expression: each ``<...>`` stands for one or more characters."""
        parts = re.split(r"<[^>]+>", self.name)
        return re.compile(".+".join(re.escape(p) for p in parts))

    @property
    def needs(self) -> set[str]:
        """``table.column`` inputs the definition says the column needs (empty: always made)."""
        found = NEEDS.search(self.definition)
        return set(re.findall(r"`([^`]+)`", found.group(1))) if found else set()


def _sections(level: str) -> dict[str, str]:
    """Body of every heading of ``level`` (``"##"`` or ``"###"``), by heading text."""
    text = DICTIONARY.read_text(encoding="utf-8")
    pieces = re.split(rf"^{level} (.+)$", text, flags=re.MULTILINE)
    return {title.strip(): body for title, body in zip(pieces[1::2], pieces[2::2], strict=True)}


def _rows(body: str) -> list[Row]:
    rows = []
    for line in body.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == 4, (
            f"a dictionary row needs 4 cells (column|type|unit|definition): {line}"
        )
        rows.append(Row(cells[0].strip("`"), cells[1], cells[3]))
    return rows


def _table(title: str) -> list[Row]:
    sections = _sections("###")
    assert title in sections, f"docs/data_dictionary.md has no '### {title}' section"
    rows = _rows(sections[title])
    assert rows, f"the '### {title}' section of docs/data_dictionary.md has no table rows"
    return rows


def _feature_rows() -> list[Row]:
    body = _sections("##")["Features"]
    rows = _rows(body)
    names = [r.name for r in rows]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    assert not duplicated, f"features documented twice: {duplicated}"
    return rows


def _match(produced: list[str], documented: list[Row]) -> tuple[list[str], list[str]]:
    """Produced columns no documented row matches, and documented rows no column matches."""
    undocumented = [c for c in produced if not any(r.pattern.fullmatch(c) for r in documented)]
    unproduced = [r.name for r in documented if not any(r.pattern.fullmatch(c) for c in produced)]
    return undocumented, unproduced


def _assert_same(produced: list[str], documented: list[Row], what: str) -> None:
    undocumented, unproduced = _match(produced, documented)
    assert not undocumented and not unproduced, (
        f"{what}: produced but not in docs/data_dictionary.md: {undocumented}; "
        f"documented but not produced: {unproduced}"
    )


@pytest.fixture(scope="module")
def data() -> SyntheticData:
    config = GeneratorConfig(n_customers=300, start=date(2023, 1, 1), end=date(2024, 12, 31))
    return generate(config, seed=5)


@pytest.fixture(scope="module")
def tables(data: SyntheticData) -> dict[str, pd.DataFrame]:
    """The generated tables, typed by the contract's gate as every command reads them."""
    return {
        kind: validate_frame(data.frame(kind), kind)
        for kind in ("transactions", "customers", "sustainability")
    }


def _available(transactions: pd.DataFrame, optional: dict[str, pd.DataFrame]) -> set[str]:
    frames = {"transactions": transactions, **optional}
    return {f"{kind}.{column}" for kind, frame in frames.items() for column in frame.columns}


@pytest.mark.parametrize(
    ("columns", "optional_tables"),
    [
        (None, ("customers", "sustainability")),
        (None, ()),
        (REQUIRED, ()),
    ],
    ids=["all-columns-and-tables", "all-columns-no-tables", "required-columns-only"],
)
def test_documented_features_are_exactly_the_features_built(
    tables: dict[str, pd.DataFrame], columns: list[str] | None, optional_tables: tuple[str, ...]
) -> None:
    transactions = tables["transactions"] if columns is None else tables["transactions"][columns]
    optional = {kind: tables[kind] for kind in optional_tables}
    features = build_features(
        transactions,
        cutoff=CUTOFF,
        horizon_days=HORIZON,
        **optional,  # type: ignore[arg-type]
    )
    available = _available(transactions, optional)
    expected = [r for r in _feature_rows() if r.needs <= available]
    _assert_same(
        list(features.columns),
        expected,
        f"features (tables: transactions, {', '.join(optional) or 'no others'})",
    )


def test_every_feature_needs_only_inputs_of_the_contract() -> None:
    known = {f"{kind}.{name}" for kind, spec in TABLES.items() for name in spec.names}
    unknown = {r.name: sorted(r.needs - known) for r in _feature_rows() if r.needs - known}
    assert not unknown, f"'Needs' names columns the contract does not have: {unknown}"


def test_every_feature_is_a_float_as_documented(tables: dict[str, pd.DataFrame]) -> None:
    features = build_features(
        tables["transactions"],
        cutoff=CUTOFF,
        horizon_days=HORIZON,
        customers=tables["customers"],
        sustainability=tables["sustainability"],
    )
    not_float = [c for c in features.columns if features[c].dtype != np.float64]
    documented_otherwise = [r.name for r in _feature_rows() if r.type != "float"]
    assert not not_float, f"features that are not float64: {not_float}"
    assert not documented_otherwise, (
        f"features documented with a type other than float: {documented_otherwise}"
    )


@pytest.mark.parametrize("kind", list(TABLES))
def test_input_tables_list_the_contracts_columns_and_types(kind: str) -> None:
    spec = TABLES[kind]  # type: ignore[index]
    rows = _table(kind)
    assert [r.name for r in rows] == spec.names, f"{kind}: columns differ from the contract"
    wrong = {
        r.name: (r.type, spec.column(r.name).kind)
        for r in rows
        if r.type != spec.column(r.name).kind
    }
    assert not wrong, f"{kind}: documented type vs contract type: {wrong}"


def test_training_frame_table_lists_the_non_feature_columns(
    tables: dict[str, pd.DataFrame],
) -> None:
    rows = training_set(tables["transactions"], cutoffs=[CUTOFF], horizon_days=HORIZON)
    features = set(
        build_features(tables["transactions"], cutoff=CUTOFF, horizon_days=HORIZON).columns
    )
    bookkeeping = [c for c in rows.columns if c not in features]
    documented = [r.name for r in _table("training frame")]
    assert sorted(bookkeeping) == sorted(documented), "training frame: documented columns differ"
    assert documented == list(NON_FEATURES), "training frame: order differs from NON_FEATURES"


def _score_frame(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Scores from a real (small) spend bundle and churn bundle, trained at an earlier cut-off."""
    from clv.models.baselines import BTYDReference
    from clv.models.churn import ChurnModel
    from clv.models.intervals import BinnedRatioInterval
    from clv.training.bundle import ChurnBundle, SpendBundle
    from clv.training.scoring import score_customers

    transactions = tables["transactions"]
    train_cutoff = CUTOFF - pd.Timedelta(days=HORIZON)
    features = build_features(transactions, cutoff=train_cutoff, horizon_days=HORIZON)
    targets = future_targets(transactions, cutoff=train_cutoff, horizon_days=HORIZON)
    spend = targets[TARGET].reindex(features.index).fillna(0.0)
    model = BTYDReference()
    churned = (spend == 0).to_numpy()
    spend_bundle = SpendBundle(
        model=model,
        family="btyd",
        feature_columns=list(features.columns),
        horizon_days=HORIZON,
        as_of=train_cutoff,
        level_factor=1.0,
        intervals=BinnedRatioInterval.fit(spend, model.predict(features)),
    )
    churn_bundle = ChurnBundle(
        model=ChurnModel({"n_estimators": 20}).fit(
            features, churned, X_val=features, churned_val=churned
        ),
        feature_columns=list(features.columns),
        horizon_days=HORIZON,
        as_of=train_cutoff,
    )
    return score_customers(
        transactions, spend=spend_bundle, churn=churn_bundle, horizon_days=HORIZON, as_of=CUTOFF
    )


def test_scores_table_lists_the_scores_columns_in_order(tables: dict[str, pd.DataFrame]) -> None:
    scores = _score_frame(tables)
    documented = [r.name for r in _table("scores")]
    assert list(scores.columns[: len(SCORE_COLUMNS)]) == list(SCORE_COLUMNS)
    # `clv score` and the scoring flow append the version of the model that scored.
    # Profile columns the data do not support (no sustainability table here) are left out.
    from clv.training.scoring import PROFILE_COLUMNS

    absent = [c for c in documented if c not in scores.columns and c != "model_version"]
    assert set(absent) <= set(PROFILE_COLUMNS), absent
    assert [*scores.columns, "model_version"] == [c for c in documented if c not in absent]
    for path in ("clv/cli.py", "flows/scoring.py"):
        source = (ROOT / path).read_text(encoding="utf-8")
        assert 'scores["model_version"] =' in source, f"{path} no longer adds model_version"


def test_truth_table_lists_the_generators_truth_columns(data: SyntheticData) -> None:
    _assert_same(list(data.truth.column_names), _table("truth"), "generated truth")


def test_segmentation_tables_list_the_columns_the_store_writes() -> None:
    from clv.store import ASSIGNMENT_COLUMNS, metadata

    export = [r.name for r in _table("segment export")]
    assert export == ["customer_id", "segment", "segment_id", "version", *ASSIGNMENT_COLUMNS]
    for name in ("segment_versions", "segments", "rule_results", "scoring_runs"):
        documented = [r.name for r in _table(name)]
        assert documented == [c.name for c in metadata.tables[name].columns if c.name != "id"] or (
            documented == [c.name for c in metadata.tables[name].columns]
        ), name


@pytest.mark.parametrize(
    "name",
    [
        "campaigns",
        "campaign_plan",
        "outbox",
        "outbox_events",
        "campaign_results",
        "campaign_events",
        "campaign_analyses",
    ],
)
def test_campaign_tables_list_the_columns_the_store_writes(name: str) -> None:
    from clv.store import metadata

    documented = [r.name for r in _table(name)]
    assert documented == [c.name for c in metadata.tables[name].columns], name
    campaigns = _sections("##")["Campaigns"]
    assert f"### {name}\n" in campaigns, f"'### {name}' is not under '## Campaigns'"


def test_experiment_tables_list_the_columns_the_commands_write() -> None:
    from clv.experiments.assignment import assign
    from clv.experiments.metrics import METRIC_COLUMNS

    documented = [row.name for row in _table("experiment unit metrics")]
    assert documented == list(METRIC_COLUMNS)
    assigned = assign(["a", "b"], "key")
    assert [row.name for row in _table("experiment assignments")] == [
        "customer_id",
        assigned.name,
    ]


def test_the_simulated_response_table_lists_the_columns_simulate_writes(
    data: SyntheticData, tmp_path: Path
) -> None:
    from clv.campaigns.simulation import load_generated, simulate_campaign
    from clv.data.generator import write_synthetic

    write_synthetic(data, tmp_path)
    world = load_generated(tmp_path)
    ids = world.truth["customer_id"].iloc[:40]
    plan = pd.DataFrame(
        {
            "customer_id": ids,
            "group": ["holdout", "a"] * 20,
            "segment": "s",
            "channel": "email",
            "send_at": pd.Timestamp(data.config.end) + pd.Timedelta(days=3),
        }
    )
    result = simulate_campaign(plan, world, window_days=7)
    documented = [row.name for row in _table("simulated response")]
    assert documented == list(result.customers.columns)
