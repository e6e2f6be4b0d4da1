"""The data contract rejects each kind of malformed input with a message a person can act on."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clv.data.validation import ContractError, load_validated, validate_file, validate_frame

HEADER = "customer_id,timestamp,amount\n"
GOOD_ROW = "001,2024-01-05,12.50\n"


@dataclass(frozen=True)
class Case:
    """A malformed input and the exact problem it must produce."""

    filename: str
    content: bytes
    expected: str
    kind: str = "transactions"


def _csv(text: str) -> bytes:
    return text.encode("utf-8")


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer)
    return buffer.getvalue()


_VALID_PARQUET = _parquet(
    pd.DataFrame(
        {
            "customer_id": ["001", "002"] * 50,
            "timestamp": pd.date_range("2024-01-01", periods=100, freq="D"),
            "amount": np.linspace(1, 100, 100),
        }
    )
)

CASES: dict[str, Case] = {
    "missing_required_column": Case(
        "t.csv",
        _csv("customer_id,timestamp\n001,2024-01-05\n"),
        "t.csv: required column 'amount' is missing (found 'customer_id', 'timestamp')",
    ),
    "misspelled_column_suggests_fix": Case(
        "t.csv",
        _csv("customer_id,timestamp,ammount\n001,2024-01-05,3\n"),
        "t.csv: required column 'amount' is missing (found 'customer_id', 'timestamp', "
        "'ammount'); did you mean 'ammount'?",
    ),
    "extra_column": Case(
        "t.csv",
        _csv("customer_id,timestamp,amount,discount\n001,2024-01-05,3,1\n"),
        "t.csv: column 'discount' is not in the transactions contract; allowed: customer_id, "
        "timestamp, amount, order_id, quantity, product_category, is_eco_product, channel, "
        "carbon_kg. Remove it, or pass --allow-extra-columns to drop it",
    ),
    "amount_not_a_number": Case(
        "t.csv",
        _csv(HEADER + GOOD_ROW + "002,2024-01-06,abc\n"),
        "t.csv line 3, column 'amount': 'abc' is not a number; write plain numbers like 12.50 "
        "(no currency symbols or thousands separators)",
    ),
    "amount_with_currency_symbol": Case(
        "t.csv",
        _csv(HEADER + "002,2024-01-06,$12.50\n"),
        "t.csv line 2, column 'amount': '$12.50' is not a number; write plain numbers like "
        "12.50 (no currency symbols or thousands separators)",
    ),
    "amount_nan": Case(
        "t.csv",
        _csv(HEADER + GOOD_ROW + "002,2024-01-06,NaN\n"),
        "t.csv line 3, column 'amount': 'NaN' is missing; this column is required on every row",
    ),
    "amount_infinite": Case(
        "t.csv",
        _csv(HEADER + "002,2024-01-06,-inf\n"),
        "t.csv line 2, column 'amount': '-inf' is infinite; use a finite number",
    ),
    "amount_huge": Case(
        "t.csv",
        _csv(HEADER + "002,2024-01-06,3e15\n"),
        "t.csv line 2, column 'amount': '3e15' is outside the allowed range [-1e+09, 1e+09]",
    ),
    "empty_customer_id": Case(
        "t.csv",
        _csv(HEADER + GOOD_ROW + ",2024-01-06,5\n"),
        "t.csv line 3, column 'customer_id': '' is missing; this column is required on every row",
    ),
    "whitespace_customer_id": Case(
        "t.csv",
        _csv(HEADER + "   ,2024-01-06,5\n"),
        "t.csv line 2, column 'customer_id': '   ' is missing; this column is required on "
        "every row",
    ),
    "customer_id_too_long": Case(
        "t.csv",
        _csv(HEADER + "x" * 300 + ",2024-01-06,5\n"),
        "t.csv line 2, column 'customer_id': '" + "x" * 77 + "...' is longer than 256 characters",
    ),
    "unparseable_date": Case(
        "t.csv",
        _csv(HEADER + "001,yesterday,5\n"),
        "t.csv line 2, column 'timestamp': 'yesterday' is not a valid date; use ISO 8601, "
        "e.g. 2024-03-01 or 2024-03-01T14:30:00+01:00",
    ),
    "impossible_calendar_date": Case(
        "t.csv",
        _csv(HEADER + GOOD_ROW + "001,2024-02-30,5\n"),
        "t.csv line 3, column 'timestamp': '2024-02-30' is not a valid date; use ISO 8601, "
        "e.g. 2024-03-01 or 2024-03-01T14:30:00+01:00",
    ),
    "date_far_in_the_past": Case(
        "t.csv",
        _csv(HEADER + "001,1850-06-01,5\n"),
        "t.csv line 2, column 'timestamp': '1850-06-01' is outside the plausible range "
        "1900-01-01 to 2100-01-01",
    ),
    "date_far_in_the_future": Case(
        "t.csv",
        _csv(HEADER + "001,9999-12-31,5\n"),
        "t.csv line 2, column 'timestamp': '9999-12-31' is outside the plausible range "
        "1900-01-01 to 2100-01-01",
    ),
    "mixed_timezones": Case(
        "t.csv",
        _csv(
            HEADER
            + "001,2024-01-05T10:00:00,1\n002,2024-01-05T11:00:00,2\n"
            + "003,2024-01-05T10:00:00+01:00,3\n"
        ),
        "t.csv line 4, column 'timestamp': '2024-01-05T10:00:00+01:00' has a UTC offset but "
        "line 2 has none; give every timestamp an offset or none (mixed time zones)",
    ),
    "missing_timestamp": Case(
        "t.csv",
        _csv(HEADER + "001,,5\n"),
        "t.csv line 2, column 'timestamp': '' is missing; this column is required on every row",
    ),
    "duplicate_order_line": Case(
        "t.csv",
        _csv(
            "customer_id,timestamp,amount,order_id\n"
            "001,2024-01-05,12.50,A1\n002,2024-01-06,3,A2\n001,2024-01-05,12.50,A1\n"
        ),
        "t.csv line 4: duplicates line 2 exactly; the same order line twice: remove the "
        "repeated row",
    ),
    "empty_file": Case(
        "t.csv",
        b"",
        "t.csv: the file is empty (0 bytes); expected a header line such as "
        "'customer_id,timestamp,amount' followed by data rows",
    ),
    "header_only": Case("t.csv", _csv(HEADER), "t.csv: has a header but no data rows"),
    "blank_first_line": Case(
        "t.csv",
        _csv("\n" + HEADER + GOOD_ROW),
        "t.csv line 1: the first line is empty; expected a header with the column names "
        "('customer_id,timestamp,amount', ...)",
    ),
    "blank_line_inside": Case(
        "t.csv",
        _csv(HEADER + GOOD_ROW + ",,\n" + "002,2024-01-06,3\n"),
        "t.csv line 3: is blank; remove empty lines",
    ),
    "semicolon_delimiter": Case(
        "t.csv",
        _csv("customer_id;timestamp;amount\n001;2024-01-05;12,50\n"),
        "t.csv line 1: the header looks semicolon-separated ('customer_id;timestamp;amount'); "
        "files must be comma-separated: save as CSV with ',' as the delimiter",
    ),
    "tab_delimiter": Case(
        "t.csv",
        _csv("customer_id\ttimestamp\tamount\n001\t2024-01-05\t12.5\n"),
        "t.csv line 1: the header looks tab-separated ('customer_id\\ttimestamp\\tamount'); "
        "files must be comma-separated: save as CSV with ',' as the delimiter",
    ),
    "non_utf8_bytes": Case(
        "t.csv",
        _csv(HEADER + GOOD_ROW) + "002,2024-01-06,3\nJos\xe9,2024-01-06,3\n".encode("latin-1"),
        "t.csv line 4: byte 0xe9 at character 4 is not valid UTF-8; re-save the file with "
        "UTF-8 encoding",
    ),
    "row_with_too_many_fields": Case(
        "t.csv",
        _csv(HEADER + GOOD_ROW + "002,2024-01-06,1,234.50\n"),
        "t.csv line 3: has 4 fields but the header has 3; check for an unquoted comma or a "
        "wrong delimiter",
    ),
    "duplicate_column_name": Case(
        "t.csv",
        _csv("customer_id,timestamp,amount,amount\n001,2024-01-05,1,2\n"),
        "t.csv line 1, column 'amount': the column name appears twice in the header; each "
        "column once",
    ),
    "quantity_not_whole": Case(
        "t.csv",
        _csv("customer_id,timestamp,amount,quantity\n001,2024-01-05,3,1.5\n"),
        "t.csv line 2, column 'quantity': '1.5' is not a whole number",
    ),
    "eco_flag_not_boolean": Case(
        "t.csv",
        _csv("customer_id,timestamp,amount,is_eco_product\n001,2024-01-05,3,maybe\n"),
        "t.csv line 2, column 'is_eco_product': 'maybe' is not a boolean; use true/false, "
        "yes/no or 1/0",
    ),
    "negative_carbon": Case(
        "t.csv",
        _csv("customer_id,timestamp,amount,carbon_kg\n001,2024-01-05,3,-2\n"),
        "t.csv line 2, column 'carbon_kg': '-2' is outside the allowed range [0, 1e+06]",
    ),
    "unsupported_file_type": Case(
        "t.xlsx",
        b"PK\x03\x04",
        "t.xlsx: unsupported file type '.xlsx'; use .csv, .csv.gz or .parquet",
    ),
    "truncated_parquet": Case(
        "t.parquet",
        _VALID_PARQUET[: len(_VALID_PARQUET) // 2],
        "t.parquet: is not a readable Parquet file (truncated or corrupt?): ",
    ),
    "parquet_amount_stored_as_text": Case(
        "t.parquet",
        _parquet(
            pd.DataFrame(
                {
                    "customer_id": ["1", "2"],
                    "timestamp": ["2024-01-01", "2024-01-02"],
                    "amount": ["3.5", "abc"],
                }
            )
        ),
        "t.parquet row 2, column 'amount': 'abc' is not a number; write plain numbers like "
        "12.50 (no currency symbols or thousands separators)",
    ),
    "parquet_nan_amount": Case(
        "t.parquet",
        _parquet(
            pd.DataFrame(
                {
                    "customer_id": ["1", "2", "3"],
                    "timestamp": pd.to_datetime(["2024-01-01"] * 3),
                    "amount": [1.0, 2.0, np.nan],
                }
            )
        ),
        "t.parquet row 3, column 'amount': 'NaN' is missing; this column is required on every row",
    ),
    "customers_duplicate_id": Case(
        "c.csv",
        _csv("customer_id,signup_date\nA1,2024-01-01\nA2,2024-01-02\nA1,2024-02-01\n"),
        "c.csv line 4, column 'customer_id': 'A1' repeats the customer_id of line 2; each "
        "customer must appear once",
        kind="customers",
    ),
    "customers_eco_preference_out_of_range": Case(
        "c.csv",
        _csv("customer_id,signup_date,eco_preference\nA1,2024-01-01,1.5\n"),
        "c.csv line 2, column 'eco_preference': '1.5' is outside the allowed range [0, 1]",
        kind="customers",
    ),
    "customers_missing_signup_date": Case(
        "c.csv",
        _csv("customer_id,region\nA1,north\n"),
        "c.csv: required column 'signup_date' is missing (found 'customer_id', 'region')",
        kind="customers",
    ),
    "sustainability_score_out_of_range": Case(
        "s.csv",
        _csv("customer_id,eco_engagement_score\nA1,150\n"),
        "s.csv line 2, column 'eco_engagement_score': '150' is outside the allowed range [0, 100]",
        kind="sustainability",
    ),
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_malformed_input_is_rejected_with_located_message(case: Case, tmp_path: Path) -> None:
    path = tmp_path / case.filename
    path.write_bytes(case.content)
    report = validate_file(path, case.kind)  # type: ignore[arg-type]
    messages = [str(p) for p in report.problems]
    assert not report.ok
    assert report.frame is None
    assert any(
        m.startswith(case.expected) if case.expected.endswith(": ") else m == case.expected
        for m in messages
    ), messages


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    report = validate_file(tmp_path / "nope.csv")
    assert [str(p) for p in report.problems] == [f"nope.csv: no such file: {tmp_path / 'nope.csv'}"]


def test_all_problems_are_counted_but_only_the_limit_is_listed(tmp_path: Path) -> None:
    path = tmp_path / "many.csv"
    path.write_text(HEADER + "".join(f"{i},2024-01-05,x{i}\n" for i in range(30)))
    report = validate_file(path, max_problems=5)
    assert report.total_problems == 30
    assert len(report.problems) == 5
    assert report.summary().endswith("... and 25 more (raise CLV_MAX_REPORTED_ERRORS to list more)")


def test_extra_columns_are_dropped_when_allowed(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("customer_id,timestamp,amount,discount\n001,2024-01-05,3,1\n")
    frame = load_validated(path, allow_extra_columns=True)
    assert list(frame.columns) == ["customer_id", "timestamp", "amount"]


def test_bare_three_column_csv_with_refunds_and_leading_zeros_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(HEADER + "00042,2024-01-05,12.50\n00042,2024-01-09,-12.50\n")
    frame = load_validated(path)
    assert frame["customer_id"].tolist() == ["00042", "00042"]
    assert frame["amount"].tolist() == [12.5, -12.5]
    assert frame["timestamp"].dtype == "datetime64[ns]"


def test_utc_offsets_are_converted_to_utc(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(HEADER + "1,2024-03-01T14:30:00+01:00,1\n2,2024-07-01T14:30:00Z,1\n")
    frame = load_validated(path)
    assert frame["timestamp"].tolist() == [
        pd.Timestamp("2024-03-01 13:30:00"),
        pd.Timestamp("2024-07-01 14:30:00"),
    ]


def test_compact_yyyymmdd_dates_like_cdnow_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(HEADER + "00001,19970101,29.33\n")
    assert load_validated(path)["timestamp"].iloc[0] == pd.Timestamp("1997-01-01")


def test_optional_columns_are_typed(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        "customer_id,timestamp,amount,quantity,is_eco_product,carbon_kg,channel\n"
        "1,2024-01-05,3,2,yes,0.5,web\n2,2024-01-06,4,,no,,\n"
    )
    frame = load_validated(path)
    assert str(frame["quantity"].dtype) == "Int64"
    assert frame["is_eco_product"].tolist() == [True, False]
    assert pd.isna(frame["carbon_kg"].iloc[1])
    assert frame["channel"].iloc[1] is None


def test_in_memory_frames_go_through_the_same_gate() -> None:
    frame = pd.DataFrame(
        {"customer_id": ["a", "b"], "timestamp": ["2024-01-01", "2024-01-02"], "amount": [1, "x"]}
    )
    with pytest.raises(ContractError) as err:
        validate_frame(frame, source="orders")
    assert "orders row 2, column 'amount': 'x' is not a number" in str(err.value)


_ids = st.text(alphabet="0123456789ABCDEFGHJK", min_size=1, max_size=12)
_amounts = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False).map(lambda x: round(x, 2))
_days = st.integers(min_value=0, max_value=5000)


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(st.tuples(_ids, _days, _amounts), min_size=1, max_size=30, unique=True))
def test_valid_rows_round_trip_through_csv_unchanged(rows: list[tuple[str, int, float]]) -> None:
    frame = pd.DataFrame(rows, columns=["customer_id", "day", "amount"])
    frame["timestamp"] = pd.Timestamp("2010-01-01") + pd.to_timedelta(frame.pop("day"), unit="D")
    text = frame[["customer_id", "timestamp", "amount"]].to_csv(index=False)
    parsed = validate_frame(pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False))
    assert parsed["customer_id"].tolist() == frame["customer_id"].tolist()
    assert parsed["timestamp"].tolist() == frame["timestamp"].tolist()
    np.testing.assert_allclose(parsed["amount"].to_numpy(), frame["amount"].to_numpy())


@settings(max_examples=40, deadline=None)
@given(n_rows=st.integers(min_value=1, max_value=40), data=st.data())
def test_a_bad_value_is_reported_at_its_own_line(n_rows: int, data: st.DataObject) -> None:
    bad_at = data.draw(st.integers(min_value=0, max_value=n_rows - 1))
    bad_value = data.draw(st.sampled_from(["abc", "1,5", "€3", "--2", "inf", "nan", ""]))
    lines = [f"c{i},2024-01-{1 + i % 28:02d},{i}.5" for i in range(n_rows)]
    lines[bad_at] = f'c{bad_at},2024-01-01,"{bad_value}"'
    report = validate_file_from_text(HEADER + "\n".join(lines) + "\n")
    assert report.total_problems == 1
    problem = report.problems[0]
    assert (problem.row, problem.column) == (bad_at + 2, "amount")


def validate_file_from_text(text: str):  # type: ignore[no-untyped-def]
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.csv"
        path.write_text(text)
        return validate_file(path)


_TEXT = st.lists(
    st.one_of(
        st.none(),
        st.text(
            alphabet=st.sampled_from(" \t\n\x1c\x1f\x85\u00a0\u3000naNAlLuUoOİKk/x-1"), max_size=6
        ),
        st.sampled_from(["na", " N/A ", "\x1cnull\x1d", "None", "nan", "", "   ", "İ", "\u212a"]),
    ),
    max_size=40,
)


@given(_TEXT)
@settings(max_examples=200, deadline=None)
def test_the_arrow_text_checks_agree_with_pythons_string_methods(values: list[str | None]) -> None:
    from clv.data.contract import _non_empty, _non_empty_python, _not_too_long
    from clv.data.validation import _missing_mask, _missing_mask_python

    column = pd.Series(values, dtype=object)

    np.testing.assert_array_equal(_missing_mask(column), _missing_mask_python(column))
    pd.testing.assert_series_equal(_non_empty(column), _non_empty_python(column), check_dtype=False)
    long = pd.Series([*values, "x" * 257], dtype=object)
    expected = long.isna() | (long.astype(str).str.len() <= 256)
    pd.testing.assert_series_equal(_not_too_long(long), expected, check_dtype=False)
