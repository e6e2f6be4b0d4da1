"""Campaign definitions: the YAML gate, the audience rule grammar, and the template sandbox."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from clv.campaigns import (
    AudienceRule,
    CampaignDefinition,
    CampaignError,
    load_campaign,
    render_preview,
)
from clv.campaigns.definition import PERSONALISATION_FIELDS, RULE_COLUMNS

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "campaign.yaml"

# A small valid campaign; each bad-input case edits one thing in it.
BASE = """\
name: winback
audience:
  rule: churn_probability > 0.5
budget: 100
channels:
  email:
    kind: email
    cost_per_message: 0.01
  sms:
    kind: sms
    cost_per_message: 0.05
variants:
  - name: a
    templates:
      email:
        subject: "Hi {{ first_name }}"
        body: "Hello {{ first_name }}"
      sms:
        body: "Hi {{ first_name }}"
  - name: b
    templates:
      email:
        subject: "Hey {{ first_name }}"
        body: "Hello again {{ first_name }}"
      sms:
        body: "Hey {{ first_name }}"
start: 2025-04-01T08:00:00Z
end: 2025-04-15T20:00:00Z
"""

CONTEXT = {
    "first_name": "Ann",
    "top_category": "shoes",
    "eco_preference": 0.8,
    "segment": "at-risk",
    "predicted_next_purchase": "2025-05-02",
    "predicted_clv": 340.0,
    "unsubscribe_url": "https://shop.example/u?c=1&t=2",
}


def _edit(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"the edit must match once: {old!r}"
    return text.replace(old, new)


def _line_of(text: str, line: str, occurrence: int = 1) -> int:
    """1-based number of the ``occurrence``-th line equal to ``line``."""
    numbers = [i for i, found in enumerate(text.splitlines(), start=1) if found == line]
    return numbers[occurrence - 1]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "campaign.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _definition(**changes: Any) -> CampaignDefinition:
    data = yaml.safe_load(BASE)
    data.update(changes)
    return CampaignDefinition.model_validate(data)


# --- the example and the defaults ---------------------------------------------------------------


def test_example_loads_and_its_templates_use_only_the_planner_fields() -> None:
    campaign = load_campaign(EXAMPLE, fields=PERSONALISATION_FIELDS)

    campaign.check_templates(PERSONALISATION_FIELDS)
    assert campaign.budget == 500
    assert campaign.holdout_share == pytest.approx(0.10)
    assert set(campaign.channels) == {"email", "sms"}
    assert [v.name for v in campaign.variants] == ["classic", "eco"]
    assert campaign.audience.compiled_rule is not None
    assert set(campaign.audience.compiled_rule.fields) == {"churn_probability", "predicted_clv"}
    for variant in ("classic", "eco"):
        email = render_preview(campaign, variant, "email", CONTEXT)
        sms = render_preview(campaign, variant, "sms", CONTEXT)
        assert "Ann" in email["subject"] and "Ann" in email["body"] and "Ann" in sms["body"]


def test_eco_variant_speaks_to_the_stated_eco_preference() -> None:
    campaign = load_campaign(EXAMPLE)

    keen = render_preview(campaign, "eco", "email", {**CONTEXT, "eco_preference": 0.9})
    indifferent = render_preview(campaign, "eco", "email", {**CONTEXT, "eco_preference": 0.1})

    assert "refill" in keen["body"] and "refill" not in indifferent["body"]


def test_defaults_fill_what_the_file_leaves_out(tmp_path: Path) -> None:
    campaign = load_campaign(_write(tmp_path, BASE))

    assert campaign.holdout_share == pytest.approx(0.10)
    assert campaign.attribution_window_days == 14
    assert (campaign.frequency_cap.max_messages, campaign.frequency_cap.per_days) == (1, 7)
    assert campaign.primary_metric == "revenue"
    assert (campaign.uplift_prior.rate, campaign.uplift_prior.sd) == (0.02, 0.02)
    assert campaign.margin == pytest.approx(0.3)
    assert (campaign.send_hours.earliest, campaign.send_hours.latest) == (8, 20)
    assert campaign.currency == "USD"
    assert [v.weight for v in campaign.variants] == [1.0, 1.0]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2025-04-01T08:00:00Z", dt.datetime(2025, 4, 1, 8, tzinfo=dt.UTC)),
        ("2025-04-01T10:00:00+02:00", dt.datetime(2025, 4, 1, 8, tzinfo=dt.UTC)),
        ("'2025-04-01 08:00'", dt.datetime(2025, 4, 1, 8, tzinfo=dt.UTC)),
        ("2025-04-01", dt.datetime(2025, 4, 1, tzinfo=dt.UTC)),
    ],
    ids=["utc", "other-zone", "naive-is-utc", "date-is-midnight-utc"],
)
def test_start_is_timezone_aware_utc(tmp_path: Path, given: str, expected: dt.datetime) -> None:
    text = _edit(BASE, "start: 2025-04-01T08:00:00Z", f"start: {given}")

    assert load_campaign(_write(tmp_path, text)).start == expected


# --- bad files: each problem named by field path and YAML line ---------------------------------

_VARIANT_B_SMS = '      sms:\n        body: "Hey {{ first_name }}"\n'

BAD = [
    pytest.param(
        ("budget: 100", "budget: -50"), "budget", ("budget: -50", 1), "more than 0", id="budget"
    ),
    pytest.param(
        ("    kind: sms", "    kind: fax"),
        "channels.sms.kind",
        ("    kind: fax", 1),
        "'email', 'sms' or 'in_app'",
        id="channel-kind",
    ),
    pytest.param(
        (_VARIANT_B_SMS, ""),
        "variants[1].templates.sms",
        ("    templates:", 2),
        "no template for channel 'sms'",
        id="variant-missing-channel-template",
    ),
    pytest.param(
        ('        subject: "Hey {{ first_name }}"\n', ""),
        "variants[1].templates.email.subject",
        ("      email:", 2),
        "email templates need a subject",
        id="email-without-subject",
    ),
    pytest.param(
        ('      sms:\n        body: "Hi', '      sms:\n        subject: "x"\n        body: "Hi'),
        "variants[0].templates.sms.subject",
        ('        subject: "x"', 1),
        "only email templates have a subject",
        id="sms-with-subject",
    ),
    pytest.param(
        ("end: 2025", "holdout_share: 1.5\nend: 2025"),
        "holdout_share",
        ("holdout_share: 1.5", 1),
        "at most 0.9",
        id="holdout-share",
    ),
    pytest.param(
        ("end: 2025-04-15T20:00:00Z", "end: 2025-03-15T20:00:00Z"),
        "end",
        ("end: 2025-03-15T20:00:00Z", 1),
        "must be after start",
        id="end-before-start",
    ),
    pytest.param(
        ("  - name: b", "  - name: holdout"),
        "variants[1].name",
        ("  - name: holdout", 1),
        "'holdout' is the name of the customers kept out",
        id="variant-named-holdout",
    ),
    pytest.param(
        ("  - name: b", "  - name: a"),
        "variants[1].name",
        ("  - name: a", 2),
        "used twice",
        id="duplicate-variant-names",
    ),
    pytest.param(
        ("budget: 100", "budget: 100\nowner: marketing"),
        "'owner'",
        ("owner: marketing", 1),
        "unknown field",
        id="unknown-top-level-key",
    ),
    pytest.param(
        ('        subject: "Hi {{ first_name }}"', '        subjet: "Hi {{ first_name }}"'),
        "variants[0].templates.email.subjet",
        ('        subjet: "Hi {{ first_name }}"', 1),
        "did you mean 'subject'?",
        id="misspelt-nested-key",
    ),
    pytest.param(
        ("  rule: churn_probability > 0.5", "  rule: churn_probability > 0.5 and foo > 1"),
        "audience.rule",
        ("  rule: churn_probability > 0.5 and foo > 1", 1),
        "unknown field 'foo' at column 29",
        id="rule-unknown-field",
    ),
    pytest.param(
        ("  rule: churn_probability > 0.5", "  segments: []"),
        "audience",
        ("audience:", 1),
        "give 'segments', a 'rule', or both",
        id="empty-audience",
    ),
    pytest.param(
        ("name: winback", "name: Win Back!"),
        "name",
        ("name: Win Back!", 1),
        "lowercase letters",
        id="name-not-a-slug",
    ),
    pytest.param(
        ("budget: 100", "budget: true"),
        "budget",
        ("budget: true", 1),
        "must be a number",
        id="budget-not-a-number",
    ),
    pytest.param(
        ("budget: 100", "budget: 100\nbudget: 200"),
        "'budget' is set twice",
        ("budget: 200", 1),
        "set twice",
        id="key-given-twice",
    ),
]


@pytest.mark.parametrize(("edit", "field", "line", "why"), BAD)
def test_bad_file_names_field_line_and_why(
    tmp_path: Path, edit: tuple[str, str], field: str, line: tuple[str, int], why: str
) -> None:
    text = _edit(BASE, *edit)
    path = _write(tmp_path, text)

    with pytest.raises(CampaignError) as caught:
        load_campaign(path)

    message = str(caught.value)
    assert str(path) in message
    assert field in message
    assert f"line {_line_of(text, *line)}" in message
    assert why in message


def test_every_problem_is_reported_in_line_order(tmp_path: Path) -> None:
    text = _edit(BASE, "budget: 100", "budget: -1\nholdout_share: 2\nmargin: 0")

    with pytest.raises(CampaignError) as caught:
        load_campaign(_write(tmp_path, text))

    fields = re.findall(r", line \d+, (\w+):", str(caught.value))
    assert fields == ["budget", "holdout_share", "margin"]


def test_yaml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    text = _edit(BASE, "budget: 100", "budget: 100: 5")

    with pytest.raises(CampaignError, match=r"line 4, column 12: not valid YAML"):
        load_campaign(_write(tmp_path, text))


def test_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"

    with pytest.raises(CampaignError, match="no such campaign file") as caught:
        load_campaign(missing)

    assert str(missing) in str(caught.value)


@pytest.mark.parametrize(
    ("text", "why"),
    [("", "the file is empty"), ("- a\n- b\n", "got a list")],
    ids=["empty", "a-list"],
)
def test_file_that_is_not_a_mapping_is_refused(tmp_path: Path, text: str, why: str) -> None:
    with pytest.raises(CampaignError, match=why):
        load_campaign(_write(tmp_path, text))


def test_template_problems_found_at_load_carry_their_line(tmp_path: Path) -> None:
    misspelt = '        body: "Hello again {{ frist_name }}"'
    text = _edit(BASE, '        body: "Hello again {{ first_name }}"', misspelt)

    with pytest.raises(CampaignError) as caught:
        load_campaign(_write(tmp_path, text), fields=PERSONALISATION_FIELDS)

    message = str(caught.value)
    assert f"line {_line_of(text, misspelt)}" in message
    assert "variants[1].templates.email.body" in message
    assert "did you mean 'first_name'?" in message


def test_segments_are_checked_against_the_active_version() -> None:
    campaign = _definition(audience={"segments": ["champions", "at-risk"]})

    campaign.check_segments(["champions", "at-risk", "new"])
    with pytest.raises(CampaignError, match=r"'at-rsk' \(did you mean 'at-risk'\?\)"):
        _definition(audience={"segments": ["at-rsk"]}).check_segments(["champions", "at-risk"])


# --- audience rules -------------------------------------------------------------------------------


@pytest.fixture
def scores() -> pd.DataFrame:
    """Seven customers, two with missing scores, on a non-default index."""
    return pd.DataFrame(
        {
            "churn_probability": [0.9, 0.2, 0.6, np.nan, 0.51, 0.7, 0.5],
            "predicted_clv": [250.0, 500.0, 150.0, 900.0, np.nan, 210.0, 201.0],
            "predicted_clv_lower": [200.0, 300.0, 100.0, 800.0, np.nan, 50.0, 150.0],
            "predicted_clv_upper": [300.0, 700.0, 200.0, 1000.0, np.nan, 400.0, 250.0],
            "region": ["north", "south", None, "east", "north", "west", "south"],
            "r_score": [1, 5, 2, 3, 1, 2, 4],
            "segment": ["at-risk", "champions", "at-risk", "loyal", "at-risk", "new", "loyal"],
        },
        index=pd.Index([f"c{i}" for i in range(7)], name="customer_id"),
    )


MASKS = [
    pytest.param(
        "churn_probability > 0.5 and predicted_clv > 200",
        lambda f: (f.churn_probability > 0.5) & (f.predicted_clv > 200),
        id="and",
    ),
    pytest.param(
        "churn_probability >= 0.9 or predicted_clv < 200",
        lambda f: (f.churn_probability >= 0.9) | (f.predicted_clv < 200),
        id="or",
    ),
    pytest.param(
        "0.5 < churn_probability <= 0.7",
        lambda f: (f.churn_probability > 0.5) & (f.churn_probability <= 0.7),
        id="chained",
    ),
    pytest.param(
        "region in ['north', 'south']", lambda f: f.region.isin(["north", "south"]), id="in"
    ),
    pytest.param("r_score in (1, 2)", lambda f: f.r_score.isin([1, 2]), id="in-tuple"),
    pytest.param("segment == 'at-risk'", lambda f: f.segment == "at-risk", id="text-equals"),
    pytest.param("predicted_clv * 0.3 > 50", lambda f: f.predicted_clv * 0.3 > 50, id="multiply"),
    pytest.param(
        "predicted_clv_upper - predicted_clv_lower < 100",
        lambda f: (f.predicted_clv_upper - f.predicted_clv_lower) < 100,
        id="subtract-fields",
    ),
    pytest.param(
        "(predicted_clv + 50) / 2 >= 150",
        lambda f: (f.predicted_clv + 50) / 2 >= 150,
        id="parentheses-and-divide",
    ),
    pytest.param(
        "-churn_probability < -0.55", lambda f: -f.churn_probability < -0.55, id="unary-minus"
    ),
    pytest.param(
        "(churn_probability > 0.5 or r_score == 5) and not segment == 'loyal'",
        lambda f: ((f.churn_probability > 0.5) | (f.r_score == 5)) & (f.segment != "loyal"),
        id="nested",
    ),
]


@pytest.mark.parametrize(("rule", "mask"), MASKS)
def test_rule_selects_what_pandas_selects(scores: pd.DataFrame, rule: str, mask: Any) -> None:
    selected = AudienceRule.parse(rule).evaluate(scores)

    assert selected.dtype == bool
    pd.testing.assert_series_equal(selected, mask(scores).astype(bool), check_names=False)


def test_rule_on_a_multi_line_yaml_block_is_one_expression(scores: pd.DataFrame) -> None:
    rule = AudienceRule("churn_probability > 0.5\n  and predicted_clv > 200\n")

    expected = (scores.churn_probability > 0.5) & (scores.predicted_clv > 200)
    assert rule.evaluate(scores).tolist() == expected.tolist()


@pytest.mark.parametrize(
    "rule",
    [
        "churn_probability > 0.5",
        "churn_probability != 0.5",  # numpy says NaN != 0.5 is True; unknown is not selected
        "not churn_probability <= 0.5",  # not unknown stays unknown
        "region not in ['north']",
        "not region in ['north']",
    ],
    ids=["compare", "not-equal", "not", "not-in", "not-of-in"],
)
def test_missing_values_are_never_selected(rule: str) -> None:
    frame = pd.DataFrame({"churn_probability": [np.nan, 0.9], "region": [None, "south"]})

    assert AudienceRule(rule).evaluate(frame).tolist() == [False, True]


def test_or_with_one_known_true_side_selects_despite_a_missing_value() -> None:
    frame = pd.DataFrame({"churn_probability": [np.nan], "predicted_clv": [500.0]})

    rule = AudienceRule("churn_probability > 0.5 or predicted_clv > 400")
    assert rule.evaluate(frame).tolist() == [True]


def test_division_by_zero_is_unknown_not_infinite() -> None:
    frame = pd.DataFrame({"predicted_clv": [100.0, 0.0], "churn_probability": [0.0, 0.0]})

    rule = AudienceRule("predicted_clv / churn_probability > 1")
    assert rule.evaluate(frame).tolist() == [False, False]


def test_rule_reports_the_fields_it_uses_in_order() -> None:
    rule = AudienceRule("predicted_clv > 1 and churn_probability > 0.1 or predicted_clv < 0")

    assert rule.fields == ("predicted_clv", "churn_probability")


def test_columns_replace_the_allowed_set_and_boolean_columns_are_conditions() -> None:
    columns = RULE_COLUMNS | {"marketing_opt_in"}
    frame = pd.DataFrame({"marketing_opt_in": [True, False, True], "predicted_clv": [10, 10, 0]})

    rule = AudienceRule.parse("marketing_opt_in and predicted_clv > 5", columns=columns)

    assert rule.evaluate(frame).tolist() == [True, False, False]
    with pytest.raises(CampaignError, match="unknown field 'predicted_clv'"):
        AudienceRule("predicted_clv > 1", columns={"churn_probability"})


def test_categorical_and_integer_columns_evaluate_like_their_values() -> None:
    frame = pd.DataFrame(
        {"segment": pd.Categorical(["a", "b", None]), "r_score": pd.array([1, None, 3], "Int64")}
    )

    assert AudienceRule("segment == 'a' or r_score >= 3").evaluate(frame).tolist() == [
        True,
        False,
        True,
    ]


@pytest.mark.parametrize(
    ("rule", "frame", "why"),
    [
        ("predicted_clv > 1", pd.DataFrame({"churn_probability": [0.1]}), "no column"),
        ("region > 0.5", pd.DataFrame({"region": ["north"]}), "cannot be evaluated"),
        ("predicted_clv", pd.DataFrame({"predicted_clv": [1.0]}), "not true/false"),
    ],
    ids=["missing-column", "type-mismatch", "number-as-condition"],
)
def test_rule_that_does_not_fit_the_table_is_refused(
    rule: str, frame: pd.DataFrame, why: str
) -> None:
    with pytest.raises(CampaignError, match=why):
        AudienceRule(rule).evaluate(frame)


def test_unknown_field_message_names_token_column_and_choices() -> None:
    with pytest.raises(CampaignError) as caught:
        AudienceRule.parse("churn_probability > 0.5 and foo > 1")

    assert str(caught.value).startswith(
        "rule 'churn_probability > 0.5 and foo > 1': unknown field 'foo' at column 29; fields: "
    )
    assert "predicted_clv" in str(caught.value)


def test_unknown_field_close_to_a_real_one_gets_a_suggestion() -> None:
    with pytest.raises(CampaignError, match=r"did you mean 'churn_probability'\?"):
        AudienceRule("churn_probabilty > 0.5")


REFUSED = [
    pytest.param("__import__('os').system('true')", "function call", id="call"),
    pytest.param("__import__('os')", "function call", id="import"),
    pytest.param("predicted_clv.real > 1", "attribute access", id="attribute"),
    pytest.param("segment[0] == 'a'", "subscript", id="subscript"),
    pytest.param("(lambda: 1)() > 0", "function call", id="lambda-called"),
    pytest.param("lambda: True", "lambda", id="lambda"),
    pytest.param("predicted_clv ** 2 > 1", "'**'", id="power"),
    pytest.param("predicted_clv % 2 == 0", "'%'", id="modulo"),
    pytest.param("churn_probability > 0.5 & predicted_clv > 1", "write 'and'", id="bitand"),
    pytest.param("predicted_clv is None", "write '=='", id="is"),
    pytest.param("region in segment", "list of constants", id="in-field"),
    pytest.param("region in [segment]", "not a constant", id="in-list-of-fields"),
    pytest.param("region == None", "constant None", id="none"),
    pytest.param("predicted_clv > 1 if True else False", "conditional", id="if-expression"),
    pytest.param("(x := 1) > 0", "assignment", id="walrus"),
    pytest.param("f'{region}' == 'a'", "f-string", id="f-string"),
    pytest.param("[r for r in ()] == []", "comprehension", id="comprehension"),
    pytest.param("predicted_clv + 1", "not a condition", id="value-as-rule"),
    pytest.param("(predicted_clv > 1) + 1 > 0", "condition used as a value", id="bool-arith"),
    pytest.param("True", "uses no field", id="no-field"),
    pytest.param("   ", "must not be empty", id="empty"),
]


@pytest.mark.parametrize(("rule", "why"), REFUSED)
def test_rule_refuses_anything_outside_the_grammar(rule: str, why: str) -> None:
    with pytest.raises(CampaignError, match=re.escape(why)) as caught:
        AudienceRule.parse(rule)

    if why not in ("uses no field", "must not be empty"):
        assert "column" in str(caught.value)


def test_refused_construct_is_named_with_its_column() -> None:
    with pytest.raises(CampaignError) as caught:
        AudienceRule("predicted_clv > 1 and __import__('os')")

    assert "\"__import__('os')\" at column 23" in str(caught.value)


@pytest.mark.parametrize(
    ("rule", "column", "near"),
    [
        ("churn_probability > ", 20, "the rule ends too soon"),
        ("churn_probability > and x", 21, "near 'and'"),
        ("churn_probability = 0.5", 19, "near '='; write '==' to compare"),
        ("churn_probability > 0.5 and (predicted_clv > 1", 29, "'(' was never closed"),
        ("  churn_probability > and x", 23, "near 'and'"),
    ],
    ids=["truncated", "missing-operand", "single-equals", "unclosed", "leading-blanks"],
)
def test_syntax_error_names_column_and_token(rule: str, column: int, near: str) -> None:
    with pytest.raises(CampaignError) as caught:
        AudienceRule(rule)

    message = str(caught.value)
    assert message.startswith(f"rule {rule!r}: ")
    assert f"at column {column}" in message
    assert near in message


# --- templates ------------------------------------------------------------------------------------


def _with_template(body: str, *, variant: int = 1, channel: str = "email") -> CampaignDefinition:
    data = yaml.safe_load(BASE)
    data["variants"][variant]["templates"][channel]["body"] = body
    return CampaignDefinition.model_validate(data)


def test_template_syntax_error_names_variant_channel_and_template_line() -> None:
    campaign = _with_template("Hello,\n{{ first_name }\nSee you soon")

    with pytest.raises(CampaignError) as caught:
        campaign.check_templates(PERSONALISATION_FIELDS)

    message = str(caught.value)
    assert "variants[1].templates.email.body" in message
    assert "variant 'b', channel 'email', body: template line 2: unexpected '}'" in message


def test_undefined_variable_is_refused_at_check_time_with_the_fields_available() -> None:
    campaign = _with_template("Hi {{ frist_name }}", channel="sms")

    with pytest.raises(CampaignError) as caught:
        campaign.check_templates(PERSONALISATION_FIELDS)

    message = str(caught.value)
    assert "variants[1].templates.sms.body" in message
    assert "variant 'b', channel 'sms', body: unknown field 'frist_name'" in message
    assert "did you mean 'first_name'?" in message
    assert "available: eco_preference, first_name" in message


def test_variables_the_template_sets_itself_are_not_personalisation_fields() -> None:
    campaign = _with_template("{% set n = 3 %}{% for i in range(n) %}{{ first_name }}{% endfor %}")

    campaign.check_templates(["first_name"])


def test_missing_field_at_render_time_renders_nothing() -> None:
    campaign = _definition()

    with pytest.raises(CampaignError) as caught:
        render_preview(campaign, "a", "email", {"top_category": "shoes"})

    message = str(caught.value)
    assert "variant 'a', channel 'email', subject" in message
    assert "'first_name' is undefined" in message
    assert "the context gives: top_category" in message


@pytest.mark.parametrize(
    "body",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ first_name.__class__ }}",
        "{{ first_name['__class__'] }}",
        "{{ first_name|attr('__class__') }}",
    ],
    ids=["mro", "class", "item", "attr-filter"],
)
def test_sandbox_blocks_underscore_access_at_check_and_render(body: str) -> None:
    campaign = _with_template(body, variant=0, channel="sms")

    with pytest.raises(CampaignError, match="may not reach underscore attributes"):
        campaign.check_templates(PERSONALISATION_FIELDS)
    # Rendering a template that skipped the check: Jinja's SecurityError, as a CampaignError.
    with pytest.raises(CampaignError, match="blocked by the template sandbox"):
        render_preview(campaign, "a", "sms", CONTEXT)


def test_email_body_is_escaped_html_and_sms_is_plain_text() -> None:
    campaign = _with_template("<p>Hi {{ first_name }}</p>", variant=0)
    context = {"first_name": "<b>Ann</b> & co"}

    email = render_preview(campaign, "a", "email", context)
    sms = render_preview(campaign, "a", "sms", context)

    assert email == {
        "subject": "Hi <b>Ann</b> & co",
        "body": "<p>Hi &lt;b&gt;Ann&lt;/b&gt; &amp; co</p>",
    }
    assert sms == {"body": "Hi <b>Ann</b> & co"}


def test_subject_that_renders_a_line_break_is_refused() -> None:
    with pytest.raises(CampaignError, match="line break"):
        render_preview(_definition(), "a", "email", {"first_name": "Ann\nBcc: x@example.com"})


@pytest.mark.parametrize(
    ("variant", "channel", "why"),
    [("c", "email", "no variant 'c'; variants: a, b"), ("a", "fax", "no channel 'fax'")],
    ids=["variant", "channel"],
)
def test_preview_of_unknown_variant_or_channel_is_refused(
    variant: str, channel: str, why: str
) -> None:
    with pytest.raises(CampaignError, match=why):
        render_preview(_definition(), variant, channel, CONTEXT)
