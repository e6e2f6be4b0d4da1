"""Render a planned campaign's messages: one per contacted customer, fast enough for 1M rows.

The messages are the ones :func:`clv.campaigns.definition.render_preview` gives customer by
customer — the same sandbox (Jinja2's ``SandboxedEnvironment`` with ``StrictUndefined``,
autoescape for email bodies only), the same checks and the same error messages — but each
template is compiled once per (variant, channel) instead of once per message, and the
customers' fields and addresses are read as whole columns instead of one ``.loc`` per row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from clv.campaigns.definition import HOLDOUT, CampaignDefinition, _environment, _parts
from clv.campaigns.errors import CampaignError

if TYPE_CHECKING:
    from jinja2 import Template as JinjaTemplate

__all__ = ["ADDRESS_COLUMNS", "MESSAGE_COLUMNS", "render_messages"]

#: Channel kind → the contacts column holding the customer's address on it.
ADDRESS_COLUMNS: dict[str, str] = {"email": "email", "sms": "phone", "in_app": "app_user_id"}
#: Columns of :func:`render_messages`' result, in order.
MESSAGE_COLUMNS: tuple[str, ...] = ("customer_id", "channel", "recipient", "subject", "body")

# (part, compiled template, "campaign ..., variant ..., channel ..., part" for messages, the
# template's globals as one dict)
_Part = tuple[str, "JinjaTemplate", str, dict[str, Any]]


def render_messages(
    definition: CampaignDefinition,
    plan: pd.DataFrame,
    fields: pd.DataFrame,
    contacts: pd.DataFrame | None,
) -> pd.DataFrame:
    """One rendered message per contacted (non-holdout) customer of a plan.

    Parameters
    ----------
    definition : CampaignDefinition
        The campaign (its variants' templates and its channels' kinds).
    plan : DataFrame
        The plan rows (:attr:`clv.campaigns.planning.Plan.rows`): ``customer_id``, ``group``
        (``holdout`` or a variant) and ``channel``.
    fields : DataFrame
        The personalisation fields (:attr:`clv.campaigns.planning.Plan.fields`): one row per
        customer, ``customer_id`` and the fields the templates use.
    contacts : DataFrame or None
        ``customer_id`` and the address column of each channel kind used (``email``, ``phone``,
        ``app_user_id``); a customer listed twice gets their first row's address.

    Returns
    -------
    DataFrame
        :data:`MESSAGE_COLUMNS`, in the plan's order: ``subject`` is ``None`` except for email;
        the ``recipient`` is ``str()`` of the contacts' value.

    Raises
    ------
    CampaignError
        When a contacted customer's channel needs an address column the contacts lack (checked
        for every channel before anything is rendered), a group is not a variant, a template
        fails (as :func:`~clv.campaigns.definition.render_preview` says it: an unknown field,
        the sandbox, a line break in a subject), or — where the per-customer loop it replaces
        raised ``KeyError`` — a channel is not the campaign's or a contacted customer has no
        personalisation fields or no contacts row.
    """
    from jinja2 import TemplateError

    contacted = plan[plan["group"].to_numpy() != HOLDOUT]
    customer_ids: list[Any] = contacted["customer_id"].tolist()
    channels: list[Any] = contacted["channel"].tolist()
    groups = [str(g) for g in contacted["group"].tolist()]
    ids = [str(c) for c in customer_ids]
    kinds = {name: _kind(definition, name) for name in dict.fromkeys(str(c) for c in channels)}
    for name, kind in kinds.items():  # in the order of each channel's first message
        column = ADDRESS_COLUMNS[kind]
        if contacts is None or column not in contacts.columns:
            raise CampaignError(
                f"channel {name!r} ({kind}) needs the customers' {column}: pass "
                f"--contacts with a {column} column"
            )
    recipients = _recipients(ids, [str(c) for c in channels], kinds, contacts)
    contexts, given = _contexts(ids, fields)
    compiled: dict[tuple[str, str], list[_Part]] = {}
    subjects: list[str | None] = []
    bodies: list[str] = []
    for group, channel, context in zip(groups, channels, contexts, strict=True):
        key = (group, str(channel))
        parts = compiled.get(key)
        if parts is None:
            parts = compiled[key] = _compile(definition, *key, given)
        subject: str | None = None
        for part, template, where, flat_globals in parts:
            try:
                # What ``template.render(context)`` does, less its per-call merge of the
                # template's globals (a ChainMap walked for every message): merged here into
                # one plain dict, handed over as the context's parent as it is.
                text = template.environment.concat(
                    template.root_render_func(
                        template.new_context({**flat_globals, **context}, shared=True)
                    )
                )
            except (TemplateError, TypeError, ValueError, ArithmeticError) as err:
                raise _failure(err, where, given) from None
            if part == "subject":
                if "\n" in text or "\r" in text:
                    raise CampaignError(f"{where}: renders with a line break: {text!r}")
                subject = text.strip()
            else:
                bodies.append(text)
        subjects.append(subject)
    if not customer_ids:  # dict-of-empty-lists columns would be float; the rows' frame is object
        return pd.DataFrame([], columns=list(MESSAGE_COLUMNS))
    return pd.DataFrame(
        dict(
            zip(
                MESSAGE_COLUMNS,
                (customer_ids, channels, recipients, subjects, bodies),
                strict=True,
            )
        ),
        columns=list(MESSAGE_COLUMNS),
    )


def _kind(definition: CampaignDefinition, channel: str) -> str:
    found = definition.channels.get(channel)
    if found is None:
        raise CampaignError(
            f"campaign {definition.name!r} has no channel {channel!r}; channels: "
            f"{', '.join(definition.channels)}"
        )
    return found.kind


def _positions(index: pd.Index, ids: list[str], what: str) -> np.ndarray:
    """Row positions of ``ids`` in ``index``; a missing id is refused, naming the first."""
    positions = np.asarray(index.get_indexer(pd.Index(ids)), dtype=np.intp)
    missing = np.flatnonzero(positions < 0)
    if missing.size:
        raise CampaignError(
            f"customer {ids[int(missing[0])]!r} is contacted but has no row in the {what} "
            f"({missing.size:,} contacted customer(s) have none)"
        )
    return positions


def _recipients(
    ids: list[str],
    channels: list[str],
    kinds: dict[str, str],
    contacts: pd.DataFrame | None,
) -> list[str]:
    """``str()`` of each message's address: its channel kind's column of the contacts."""
    if not ids or contacts is None:
        return []
    book_ids = contacts["customer_id"].astype(str)
    first = ~book_ids.duplicated().to_numpy()
    index = pd.Index(book_ids.to_numpy()[first])
    positions = _positions(index, ids, "contacts")
    by_column: dict[str, np.ndarray] = {}
    for column in dict.fromkeys(ADDRESS_COLUMNS[k] for k in kinds.values()):
        # The column's own scalars (numpy's for a numeric column), as ``.at`` gives them.
        by_column[column] = contacts[column].to_numpy()[first][positions]
    if len(by_column) == 1:
        (values,) = by_column.values()
        return [str(v) for v in values]
    columns = [by_column[ADDRESS_COLUMNS[kinds[c]]] for c in channels]
    return [str(column[i]) for i, column in enumerate(columns)]


def _contexts(ids: list[str], fields: pd.DataFrame) -> tuple[list[dict[str, Any]], str]:
    """Each message's template context (its customer's fields, native Python values).

    The context is the customer's row without ``customer_id``, with the values
    ``Series.to_dict`` gives (numpy scalars boxed to Python ones); also the fields named for an
    error message.
    """
    context = fields.drop(columns="customer_id")
    context.columns = pd.Index([str(c) for c in context.columns])
    given = ", ".join(sorted(context.columns)) or "nothing"
    if not ids:
        return [], given
    field_ids = pd.Index(fields["customer_id"].astype(str).to_numpy())
    if not field_ids.is_unique:
        repeated = field_ids[field_ids.duplicated()][0]
        raise CampaignError(f"the personalisation fields list customer {repeated!r} twice")
    positions = _positions(field_ids, ids, "personalisation fields")
    in_order = len(positions) == len(context) and bool(
        np.array_equal(positions, np.arange(len(context)))
    )
    chosen = context if in_order else context.iloc[positions]
    return chosen.to_dict("records"), given  # type: ignore[return-value]


def _compile(definition: CampaignDefinition, variant: str, channel: str, given: str) -> list[_Part]:
    """The variant's templates on the channel, compiled once in the definition's sandbox."""
    from jinja2 import TemplateError

    chosen = definition.variant(variant)
    found = definition.channels[channel]
    parts: list[_Part] = []
    for part, source, html in _parts(chosen.templates[channel], found):
        where = f"campaign {definition.name!r}, variant {variant!r}, channel {channel!r}, {part}"
        try:
            template = _environment(html).from_string(source)
        except (TemplateError, TypeError, ValueError, ArithmeticError) as err:
            raise _failure(err, where, given) from None
        parts.append((part, template, where, dict(template.globals)))
    return parts


def _failure(err: Exception, where: str, given: str) -> CampaignError:
    """A failed render, worded as :func:`~clv.campaigns.definition.render_preview` words it."""
    from jinja2 import TemplateSyntaxError, UndefinedError
    from jinja2.sandbox import SecurityError

    if isinstance(err, SecurityError):
        return CampaignError(f"{where}: blocked by the template sandbox ({err})")
    if isinstance(err, UndefinedError):
        return CampaignError(f"{where}: {err.message}; the context gives: {given}")
    if isinstance(err, TemplateSyntaxError):
        return CampaignError(f"{where}: template line {err.lineno}: {err.message or err}")
    return CampaignError(f"{where}: cannot be rendered ({err})")
