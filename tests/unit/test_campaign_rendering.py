"""Rendering a plan's messages at once: the same messages and errors as one render per customer."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clv.campaigns.definition import HOLDOUT, CampaignDefinition, Template, load_campaign
from clv.campaigns.errors import CampaignError
from clv.campaigns.planning import Plan, plan_campaign
from clv.campaigns.rendering import MESSAGE_COLUMNS, render_messages
from clv.cli_campaign import _messages

EXAMPLE = Path(__file__).parents[2] / "examples" / "campaign.yaml"
START = pd.Timestamp("2025-04-01 08:00")


def _inputs(n: int = 400, seed: int = 5) -> dict[str, pd.DataFrame]:
    """Scores, customers, transactions and contacts for ``n`` customers, seeded."""
    rng = np.random.default_rng(seed)
    ids = [f"C{i:05d}" for i in range(n)]
    per_customer = rng.integers(0, 6, n)
    owners = np.repeat(ids, per_customer)
    minutes = rng.integers(0, 400 * 24 * 60, len(owners))
    return {
        "scores": pd.DataFrame(
            {
                "customer_id": ids,
                "predicted_clv": rng.gamma(1.5, 300, n),
                "churn_probability": rng.uniform(0, 1, n),
            }
        ),
        "customers": pd.DataFrame(
            {
                "customer_id": ids,
                "marketing_opt_in": rng.random(n) < 0.9,
                "region": rng.choice(["north", "south"], n),
                # Some missing: a template compares it (NaN >= 0.5 is false, as one render has it)
                "eco_preference": np.where(rng.random(n) < 0.1, np.nan, rng.random(n)),
            }
        ),
        "transactions": pd.DataFrame(
            {
                "customer_id": owners,
                "timestamp": START - pd.to_timedelta(minutes, unit="min"),
                "amount": rng.gamma(2.0, 20.0, len(owners)).round(2),
                "product_category": rng.choice(["garden", "kitchen", "books"], len(owners)),
            }
        ),
        "contacts": pd.DataFrame(
            {
                "customer_id": ids,
                "email": [f"{c.lower()}@example.org" for c in ids],
                "phone": [f"+4479460{i:05d}" for i in range(n)],
                # A name the HTML body must escape, and a non-ASCII one.
                "first_name": rng.choice(["Ann", "<b>Bo</b>", "Zoë", "Li & Wu"], n),
                # Who opted out of email is reached by SMS: both channels get messages.
                "opt_out_email": rng.random(n) < 0.3,
            }
        ),
    }


@pytest.fixture(scope="module")
def inputs() -> dict[str, pd.DataFrame]:
    return _inputs()


@pytest.fixture(scope="module")
def definition() -> CampaignDefinition:
    return load_campaign(EXAMPLE)


@pytest.fixture(scope="module")
def plan(inputs: dict[str, pd.DataFrame], definition: CampaignDefinition) -> Plan:
    return plan_campaign(
        definition,
        scores=inputs["scores"],
        customers=inputs["customers"],
        transactions=inputs["transactions"],
        contacts=inputs["contacts"],
    )


def test_the_messages_equal_one_render_per_customer(
    plan: Plan, definition: CampaignDefinition, inputs: dict[str, pd.DataFrame]
) -> None:
    contacts = inputs["contacts"]

    fast = render_messages(definition, plan.rows, plan.fields, contacts)
    slow = _messages(definition, plan.rows, plan.fields, contacts)

    # The plan must exercise both channels, both variants and the holdout to mean anything.
    assert set(plan.rows["group"]) == {HOLDOUT, "classic", "eco"}
    assert set(fast["channel"]) == {"email", "sms"}
    assert list(fast.columns) == list(MESSAGE_COLUMNS)
    pd.testing.assert_frame_equal(fast, slow)
    assert fast["subject"].isna().sum() == (fast["channel"] == "sms").sum()
    assert fast["body"].str.contains("&lt;b&gt;Bo&lt;/b&gt;").any()  # escaped in the HTML body


def test_the_messages_follow_the_plan_not_the_fields_order(
    plan: Plan, definition: CampaignDefinition, inputs: dict[str, pd.DataFrame]
) -> None:
    shuffled_fields = plan.fields.sample(frac=1.0, random_state=1)
    shuffled_contacts = inputs["contacts"].sample(frac=1.0, random_state=2)

    fast = render_messages(definition, plan.rows, shuffled_fields, shuffled_contacts)

    pd.testing.assert_frame_equal(
        fast, _messages(definition, plan.rows, shuffled_fields, shuffled_contacts)
    )


def test_a_plan_of_only_holdout_gives_no_messages(
    plan: Plan, definition: CampaignDefinition, inputs: dict[str, pd.DataFrame]
) -> None:
    held = plan.rows[plan.rows["group"] == HOLDOUT]

    fast = render_messages(definition, held, plan.fields, inputs["contacts"])

    assert fast.empty
    pd.testing.assert_frame_equal(
        fast, _messages(definition, held, plan.fields, inputs["contacts"])
    )


def _with_template(
    definition: CampaignDefinition, channel: str, template: Template
) -> CampaignDefinition:
    variants = [
        v.model_copy(update={"templates": {**v.templates, channel: template}})
        for v in definition.variants
    ]
    return definition.model_copy(update={"variants": variants})


def test_template_globals_and_assignments_render_as_one_render_does(
    plan: Plan, definition: CampaignDefinition, inputs: dict[str, pd.DataFrame]
) -> None:
    # The globals (range, namespace, ...) reach the compiled template; a {% set %} stays local.
    template = Template(
        body="{% set ns = namespace(n=0) %}{% for i in range(3) %}{% set ns.n = ns.n + i %}"
        "{% endfor %}{{ first_name }} {{ ns.n }} {{ '%.1f'|format(predicted_clv) }} "
        "{{ eco_preference is number }}"
    )
    changed = _with_template(definition, "sms", template)

    fast = render_messages(changed, plan.rows, plan.fields, inputs["contacts"])

    pd.testing.assert_frame_equal(
        fast, _messages(changed, plan.rows, plan.fields, inputs["contacts"])
    )
    assert fast.loc[fast["channel"] == "sms", "body"].str.contains(r" 3 \d+\.\d True$").all()


def test_a_field_the_template_uses_but_the_plan_lacks_fails_like_one_render(
    plan: Plan, definition: CampaignDefinition, inputs: dict[str, pd.DataFrame]
) -> None:
    broken = _with_template(definition, "sms", Template(body="Hi {{ nickname }}"))

    with pytest.raises(CampaignError) as fast:
        render_messages(broken, plan.rows, plan.fields, inputs["contacts"])
    with pytest.raises(CampaignError) as slow:
        _messages(broken, plan.rows, plan.fields, inputs["contacts"])

    assert "'nickname' is undefined; the context gives: eco_preference, first_name" in str(
        fast.value
    )
    assert str(fast.value) == str(slow.value)


def test_a_subject_with_a_line_break_is_refused(
    plan: Plan, definition: CampaignDefinition, inputs: dict[str, pd.DataFrame]
) -> None:
    broken = _with_template(
        definition, "email", Template(subject="Hi\n{{ first_name }}", body="<p>x</p>")
    )

    with pytest.raises(CampaignError, match="renders with a line break") as fast:
        render_messages(broken, plan.rows, plan.fields, inputs["contacts"])
    with pytest.raises(CampaignError) as slow:
        _messages(broken, plan.rows, plan.fields, inputs["contacts"])

    assert str(fast.value) == str(slow.value)


def test_the_sandbox_still_blocks_unsafe_access(
    plan: Plan, definition: CampaignDefinition, inputs: dict[str, pd.DataFrame]
) -> None:
    unsafe = _with_template(definition, "sms", Template(body="{{ first_name.__class__.__mro__ }}"))

    with pytest.raises(CampaignError) as fast:
        render_messages(unsafe, plan.rows, plan.fields, inputs["contacts"])
    with pytest.raises(CampaignError) as slow:
        _messages(unsafe, plan.rows, plan.fields, inputs["contacts"])

    assert str(fast.value) == str(slow.value)


def test_a_template_that_does_not_compile_fails_like_one_render(
    plan: Plan, definition: CampaignDefinition, inputs: dict[str, pd.DataFrame]
) -> None:
    broken = _with_template(definition, "sms", Template(body="Hi {{ first_name "))

    with pytest.raises(CampaignError, match="channel 'sms', body: template line 1") as fast:
        render_messages(broken, plan.rows, plan.fields, inputs["contacts"])
    with pytest.raises(CampaignError) as slow:
        _messages(broken, plan.rows, plan.fields, inputs["contacts"])

    assert str(fast.value) == str(slow.value)


@pytest.mark.parametrize(
    ("column", "message"),
    [
        ("phone", "channel 'sms' (sms) needs the customers' phone: pass --contacts with a phone"),
        ("email", "channel 'email' (email) needs the customers' email: pass --contacts with a"),
    ],
    ids=["no-phone", "no-email"],
)
def test_a_missing_address_column_fails_with_the_same_message(
    plan: Plan,
    definition: CampaignDefinition,
    inputs: dict[str, pd.DataFrame],
    column: str,
    message: str,
) -> None:
    contacts = inputs["contacts"].drop(columns=column)

    with pytest.raises(CampaignError, match=re.escape(message)) as fast:
        render_messages(definition, plan.rows, plan.fields, contacts)
    with pytest.raises(CampaignError) as slow:
        _messages(definition, plan.rows, plan.fields, contacts)

    assert str(fast.value) == str(slow.value)


def test_no_contacts_at_all_fails_with_the_same_message(
    plan: Plan, definition: CampaignDefinition
) -> None:
    with pytest.raises(CampaignError, match="needs the customers'") as fast:
        render_messages(definition, plan.rows, plan.fields, None)
    with pytest.raises(CampaignError) as slow:
        _messages(definition, plan.rows, plan.fields, None)

    assert str(fast.value) == str(slow.value)


def test_a_contacted_customer_without_fields_or_contacts_is_named(
    plan: Plan, definition: CampaignDefinition, inputs: dict[str, pd.DataFrame]
) -> None:
    contacted = plan.rows.loc[plan.rows["group"] != HOLDOUT, "customer_id"].iloc[0]
    fields = plan.fields[plan.fields["customer_id"] != contacted]
    contacts = inputs["contacts"][inputs["contacts"]["customer_id"] != contacted]

    with pytest.raises(CampaignError, match=f"customer '{contacted}' .* personalisation fields"):
        render_messages(definition, plan.rows, fields, inputs["contacts"])
    with pytest.raises(CampaignError, match=f"customer '{contacted}' .* no row in the contacts"):
        render_messages(definition, plan.rows, plan.fields, contacts)
