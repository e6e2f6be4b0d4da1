"""Segmentation review report: files written, HTML content and escaping, CSV round trips, and
what a failure leaves behind.

The inputs are a small synthetic customer base (2,000 customers, seeded) split into four
segments, one of them named with HTML metacharacters so that escaping is visible.
"""

from __future__ import annotations

import base64
import html
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from clv.segmentation import report
from clv.segmentation.report import standardised_means, write_review_report

N_CUSTOMERS = 2_000
RAW_NAME = "<b>VIP & co</b>"
ESCAPED_NAME = "&lt;b&gt;VIP &amp; co&lt;/b&gt;"
SEGMENTS = [RAW_NAME, "Loyal", "At risk", "Hibernating"]
CREATED_AT = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
FAILED_MESSAGE = "holds 2.1% < 5% of customers & <i>below the floor</i>"
PNG_URI = "data:image/png;base64,"
CSV_FILES = ["assignments_summary.csv", "profiles.csv", "rules.csv"]


def _customers(
    segments: list[str], *, seed: int = 7, n: int = N_CUSTOMERS
) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    ids = pd.Index([f"c{i:05d}" for i in range(n)], name="customer_id")
    segment_of = rng.integers(0, len(segments), size=n)
    level = segment_of.astype(np.float64)  # later segments: lower value, higher churn
    inputs = pd.DataFrame(
        {
            "predicted_clv": rng.gamma(2.0, 200.0, size=n) / (1.0 + level),
            "churn_probability": np.clip(0.1 + 0.2 * level + rng.normal(0, 0.05, n), 0, 1),
            "eco_spend_share": rng.beta(2.0, 5.0, size=n),
            "r_score": rng.integers(1, 6, size=n),
            "f_score": rng.integers(1, 6, size=n),
            "m_score": rng.integers(1, 6, size=n),
        },
        index=ids,
    )
    labels = pd.Series(np.asarray(segments, dtype=object)[segment_of], index=ids, name="segment")
    return inputs, labels


def _profiles(inputs: pd.DataFrame, labels: pd.Series, order: list[str]) -> pd.DataFrame:
    grouped = inputs.groupby(labels)
    profiles = pd.DataFrame(
        {
            "customers": grouped.size(),
            "mean_clv": grouped["predicted_clv"].mean(),
            "median_clv": grouped["predicted_clv"].median(),
            "mean_churn": grouped["churn_probability"].mean(),
            "eco_share": grouped["eco_spend_share"].mean()
            if "eco_spend_share" in inputs
            else np.nan,
            "mean_r": grouped["r_score"].mean(),
            "mean_f": grouped["f_score"].mean(),
            "mean_m": grouped["m_score"].mean(),
        }
    ).reindex(order)
    profiles["share"] = profiles["customers"] / profiles["customers"].sum()
    clv_total = grouped["predicted_clv"].sum().reindex(order)
    profiles["clv_share"] = clv_total / clv_total.sum()
    profiles["rfm_mix"] = "R3 F2 M4"
    profiles.index.name = "segment"
    return profiles


def _rules(order: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "segment": [order[0], order[-1], None],
            "rule": ["min_share", "min_share", "max_segments"],
            "passed": [True, False, True],
            "value": [0.25, 0.021, float(len(order))],
            "threshold": [0.05, 0.05, 12.0],
            "message": ["", FAILED_MESSAGE, ""],
        }
    )


def _migration(order: list[str]) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    counts = rng.integers(0, 300, size=(len(order), len(order)))
    return pd.DataFrame(
        counts,
        index=pd.Index(order, name="previous"),
        columns=pd.Index(order, name="current"),
    )


def _arguments(segments: list[str] = SEGMENTS, **overrides: Any) -> dict[str, Any]:
    inputs, labels = _customers(segments)
    arguments: dict[str, Any] = {
        "version": 7,
        "method": "kmeans",
        "status": "pending",
        "profiles": _profiles(inputs, labels, segments),
        "inputs": inputs,
        "labels": labels,
        "centroids": None,
        "migration": None,
        "rules": _rules(segments),
        "created_at": CREATED_AT,
    }
    arguments.update(overrides)
    return arguments


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# ---------------------------------------------------------------------------------------------
# What is written
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def without_migration(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A report written once for the tests that only read it: no migration table."""
    folder = tmp_path_factory.mktemp("report") / "segmentation" / "v7" / "review"
    return write_review_report(folder, **_arguments())


@pytest.fixture(scope="module")
def with_migration(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A report written once for the tests that only read it: compared with version 6."""
    folder = tmp_path_factory.mktemp("report")
    arguments = _arguments(migration=_migration(SEGMENTS), status="active")
    return write_review_report(folder, **arguments, compared_with=6)


def test_report_without_migration_writes_every_file_and_embeds_three_images(
    without_migration: Path,
) -> None:
    assert without_migration.name == "report.html"
    folder = without_migration.parent
    assert sorted(p.name for p in folder.iterdir()) == sorted([*CSV_FILES, "report.html"])
    page = without_migration.read_text(encoding="utf-8")
    assert page.count(PNG_URI) == 3
    assert "Segmentation version 7: kmeans, pending" in page
    assert "2025-03-14" in page
    assert "no active version to compare with" in page


def test_report_with_migration_embeds_four_images_and_writes_migration_csv(
    with_migration: Path,
) -> None:
    folder = with_migration.parent
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [*CSV_FILES, "migration.csv", "report.html"]
    )
    page = with_migration.read_text(encoding="utf-8")
    assert page.count(PNG_URI) == 4
    assert "compared with active version 6" in page
    migration = _migration(SEGMENTS)
    kept = int(np.trace(migration.to_numpy()))
    assert f"<strong>{kept:,}</strong> of {int(migration.to_numpy().sum()):,}" in page
    read = pd.read_csv(folder / "migration.csv", index_col="previous")
    assert read.to_numpy().tolist() == migration.to_numpy().tolist()
    assert list(read.columns) == SEGMENTS


def test_embedded_images_are_decodable_pngs(with_migration: Path) -> None:
    images = re.findall(
        r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', with_migration.read_text()
    )
    assert len(images) == 4
    for image in images:
        assert base64.b64decode(image).startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.parametrize("report_name", ["without_migration", "with_migration"])
def test_segment_names_and_messages_are_escaped_in_the_html_and_never_raw(
    report_name: str, request: pytest.FixtureRequest
) -> None:
    page = request.getfixturevalue(report_name).read_text(encoding="utf-8")

    assert RAW_NAME not in page
    assert "<i>" not in page
    assert html.escape(FAILED_MESSAGE) in page
    for name in ["Loyal", "At risk", "Hibernating"]:
        assert f"<th>{name}</th>" in page
    assert f"<th>{ESCAPED_NAME}</th>" in page


def test_failed_rule_messages_are_highlighted_in_the_summary(without_migration: Path) -> None:
    page = without_migration.read_text(encoding="utf-8")

    summary = page.split('<div class="failures">', 1)[1].split("</div>", 1)[0]
    assert "Hibernating" in summary
    assert html.escape(FAILED_MESSAGE) in summary
    assert 'class="good">2</strong> passed' in page
    assert 'class="bad">1</strong> failed' in page
    assert page.count('<tr class="failed">') == 1
    assert "all segments" in page  # the rule with no segment


def test_no_failures_box_when_every_rule_passes(tmp_path: Path) -> None:
    rules = _rules(SEGMENTS).assign(passed=True)
    page = write_review_report(tmp_path, **_arguments(rules=rules)).read_text()
    assert '<div class="failures">' not in page
    assert 'class="good">0</strong> failed' in page


def test_profile_table_shows_shares_as_percent_and_money_with_two_decimals(
    without_migration: Path,
) -> None:
    page = without_migration.read_text(encoding="utf-8")
    first = _arguments()["profiles"].iloc[0]
    assert f'<td class="num">{first["share"]:.1%}</td>' in page
    assert f'<td class="num">{first["mean_clv"]:,.2f}</td>' in page
    assert f'<td class="num">{first["median_clv"]:,.2f}</td>' in page
    assert f'<td class="num">{first["customers"]:,}</td>' in page


def test_html_is_self_contained(with_migration: Path) -> None:
    page = with_migration.read_text()
    assert "<script" not in page.lower()
    assert "http://" not in page and "https://" not in page
    assert "<link" not in page.lower()
    sources = re.findall(r'src="([^"]{0,40})', page)
    assert sources and all(s.startswith(PNG_URI) for s in sources)


def test_same_inputs_and_seed_give_the_same_bytes(tmp_path: Path, without_migration: Path) -> None:
    again = write_review_report(tmp_path, **_arguments())
    assert _files(again.parent) == _files(without_migration.parent)


# ---------------------------------------------------------------------------------------------
# CSV round trips
# ---------------------------------------------------------------------------------------------


def test_profiles_csv_round_trips_the_profile_numbers(tmp_path: Path) -> None:
    arguments = _arguments()
    write_review_report(tmp_path, **arguments)

    read = pd.read_csv(tmp_path / "profiles.csv", index_col="segment", float_precision="round_trip")
    pd.testing.assert_frame_equal(read, arguments["profiles"], check_exact=True)


def test_rules_and_assignment_summary_csvs_match_the_inputs(tmp_path: Path) -> None:
    arguments = _arguments()
    write_review_report(tmp_path, **arguments)

    rules = pd.read_csv(tmp_path / "rules.csv", keep_default_na=False, na_values=[""])
    assert rules["passed"].tolist() == [True, False, True]
    assert rules["rule"].tolist() == arguments["rules"]["rule"].tolist()
    assert rules.loc[1, "message"] == FAILED_MESSAGE

    summary = pd.read_csv(tmp_path / "assignments_summary.csv")
    assert summary["segment"].tolist() == SEGMENTS
    counts = arguments["labels"].value_counts()
    assert summary["customers"].tolist() == [int(counts[s]) for s in SEGMENTS]
    assert summary["customers"].sum() == N_CUSTOMERS


# ---------------------------------------------------------------------------------------------
# Failures leave nothing behind
# ---------------------------------------------------------------------------------------------

PLOTS = ["_sizes_png", "_clv_distribution_png", "_snake_png", "_migration_png"]


def _raise(*args: object, **kwargs: object) -> bytes:
    raise RuntimeError("drawing failed")


@pytest.mark.parametrize("plot", PLOTS, ids=PLOTS)
def test_a_failure_while_drawing_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plot: str
) -> None:
    monkeypatch.setattr(report, plot, _raise)
    folder = tmp_path / "review"
    with pytest.raises(RuntimeError, match="drawing failed"):
        write_review_report(folder, **_arguments(migration=_migration(SEGMENTS)))
    assert not folder.exists()


def test_a_failure_while_drawing_leaves_an_earlier_report_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_review_report(tmp_path, **_arguments(migration=_migration(SEGMENTS)))
    before = _files(tmp_path)

    monkeypatch.setattr(report, "_snake_png", _raise)
    with pytest.raises(RuntimeError):
        write_review_report(tmp_path, **_arguments(version=8))
    assert _files(tmp_path) == before


def test_a_failure_while_writing_removes_its_temporary_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = report._write_temporary
    calls = []

    def fail_on_third(folder: Path, name: str, content: bytes) -> Path:
        calls.append(name)
        if len(calls) == 3:
            raise OSError("disk full")
        return real(folder, name, content)

    monkeypatch.setattr(report, "_write_temporary", fail_on_third)
    folder = tmp_path / "fresh"
    with pytest.raises(OSError, match="disk full"):
        write_review_report(folder, **_arguments())
    assert not folder.exists()

    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "notes.txt").write_text("keep me")
    calls.clear()
    with pytest.raises(OSError, match="disk full"):
        write_review_report(existing, **_arguments())
    assert [p.name for p in existing.iterdir()] == ["notes.txt"]


def test_rewriting_without_migration_removes_the_earlier_migration_csv(tmp_path: Path) -> None:
    write_review_report(tmp_path, **_arguments(migration=_migration(SEGMENTS)))
    assert (tmp_path / "migration.csv").exists()
    write_review_report(tmp_path, **_arguments(version=8))
    assert not (tmp_path / "migration.csv").exists()
    assert "version 8" in (tmp_path / "report.html").read_text()


def test_bad_inputs_raise_naming_the_problem_and_write_nothing(tmp_path: Path) -> None:
    arguments = _arguments()
    with pytest.raises(ValueError, match=r"rules lacks the column\(s\) \['message'\]"):
        write_review_report(
            tmp_path / "a", **{**arguments, "rules": arguments["rules"].iloc[:, :4]}
        )
    with pytest.raises(ValueError, match="profiles is empty"):
        write_review_report(tmp_path / "b", **{**arguments, "profiles": arguments["profiles"][:0]})
    with pytest.raises(ValueError, match="1 labelled customer"):
        write_review_report(tmp_path / "c", **{**arguments, "inputs": arguments["inputs"].iloc[1:]})
    labels = arguments["labels"].copy()
    labels.iloc[:2] = None
    with pytest.raises(ValueError, match="2 customer"):
        write_review_report(tmp_path / "d", **{**arguments, "labels": labels})
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# Edge cases: one segment, NaN eco share, given centroids
# ---------------------------------------------------------------------------------------------


def test_a_single_segment_report_is_written(tmp_path: Path) -> None:
    arguments = _arguments(["Everyone"])
    arguments["migration"] = _migration(["Everyone"])
    page = write_review_report(tmp_path, **arguments).read_text()
    assert page.count(PNG_URI) == 4
    assert '<td class="num">100.0%</td>' in page
    assert "<strong>2,000</strong> customers in <strong>1</strong> segments" in page


def test_nan_eco_share_is_shown_as_a_dash(tmp_path: Path) -> None:
    arguments = _arguments()
    arguments["profiles"].loc["Loyal", "eco_share"] = np.nan
    inputs = arguments["inputs"]
    inputs.loc[arguments["labels"] == "Loyal", "eco_spend_share"] = np.nan
    page = write_review_report(tmp_path, **arguments).read_text()
    loyal_row = page.split("<th>Loyal</th>", 1)[1].split("</tr>", 1)[0]
    assert "&mdash;" in loyal_row
    read = pd.read_csv(tmp_path / "profiles.csv", index_col="segment")
    assert np.isnan(read.loc["Loyal", "eco_share"])


def test_inputs_without_eco_spend_share_and_all_nan_eco_share_work(tmp_path: Path) -> None:
    arguments = _arguments()
    arguments["inputs"] = arguments["inputs"].drop(columns="eco_spend_share")
    arguments["profiles"]["eco_share"] = np.nan
    page = write_review_report(tmp_path, **arguments).read_text()
    assert page.count(PNG_URI) == 3


def test_given_centroids_are_drawn_and_may_use_other_segment_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    centroids = pd.DataFrame(
        rng.normal(size=(4, 3)), index=SEGMENTS[::-1], columns=["log_clv", "churn", "eco"]
    )
    page = write_review_report(tmp_path, **_arguments(centroids=centroids)).read_text()
    assert page.count(PNG_URI) == 3
    assert "Standardised centroid" in page


def test_change_column_is_a_signed_count_and_new_for_a_segment_the_compared_version_lacks(
    tmp_path: Path,
) -> None:
    arguments = _arguments()
    profiles = arguments["profiles"]
    profiles["customers_before"] = profiles["customers"] - 10.0
    profiles.loc["Hibernating", "customers_before"] = np.nan
    profiles["change"] = profiles["customers"] - profiles["customers_before"]
    page = write_review_report(tmp_path, **arguments).read_text()
    loyal_row = page.split("<th>Loyal</th>", 1)[1].split("</tr>", 1)[0]
    assert '<td class="num">+10</td>' in loyal_row
    new_row = page.split("<th>Hibernating</th>", 1)[1].split("</tr>", 1)[0]
    assert '<td class="num">new</td>' in new_row


# ---------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------


def test_standardised_means_place_higher_value_segments_above_zero() -> None:
    inputs, labels = _customers(SEGMENTS)
    means = standardised_means(inputs, labels)

    assert list(means.columns) == list(report.CENTROID_FEATURES)
    assert set(means.index) == set(SEGMENTS)
    # Segments were generated with CLV falling and churn rising along SEGMENTS.
    assert means.loc[SEGMENTS[0], "predicted_clv"] > 0 > means.loc[SEGMENTS[-1], "predicted_clv"]
    assert (
        means.loc[SEGMENTS[0], "churn_probability"]
        < 0
        < means.loc[SEGMENTS[-1], "churn_probability"]
    )
    # Weighted by segment size, the standardised means average to zero.
    sizes = labels.value_counts().reindex(means.index)
    weighted = (means.mul(sizes, axis=0).sum() / sizes.sum()).to_numpy()
    np.testing.assert_allclose(weighted, 0.0, atol=1e-12)


def test_standardised_means_give_zero_for_a_constant_feature_and_nan_for_an_all_nan_segment() -> (
    None
):
    inputs, labels = _customers(SEGMENTS)
    inputs["r_score"] = 3
    inputs.loc[labels == "Loyal", "eco_spend_share"] = np.nan
    means = standardised_means(inputs, labels)
    assert (means["r_score"] == 0.0).all()
    assert np.isnan(means.loc["Loyal", "eco_spend_share"])
    assert means["eco_spend_share"].drop("Loyal").notna().all()


def test_clv_box_plot_samples_at_most_the_cap_per_segment_reproducibly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(report, "MAX_BOX_SAMPLE", 100)
    inputs, labels = _customers(SEGMENTS)
    codes, names = report._segment_codes(labels)
    order = ["Loyal", "Gone"]  # "Gone" has no customers; the others follow the order
    first = report._clv_samples(inputs["predicted_clv"], codes, names, order, seed=1)
    again = report._clv_samples(inputs["predicted_clv"], codes, names, order, seed=1)

    assert list(first)[:2] == order
    assert set(first) == {*SEGMENTS, "Gone"}
    assert len(first["Gone"]) == 0
    assert all(len(sample) == 100 for name, sample in first.items() if name != "Gone")
    assert all(np.array_equal(first[name], again[name]) for name in first)


def test_importing_the_report_module_loads_no_plotting_library() -> None:
    code = (
        "import sys, clv.segmentation.report\n"
        "print(sorted(m for m in ('matplotlib',) if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
