"""Campaign definitions: who to contact, with what, through which channel, when, and for how much.

A campaign is a YAML file (``examples/campaign.yaml`` is a complete one) read by
:func:`load_campaign` into a :class:`CampaignDefinition`. The file is checked as a whole and every
problem is reported with its line and field path::

    winback.yaml, line 7, budget: must be more than 0 (got -50)
    winback.yaml, line 31, variants[1].templates.email.subject: email templates need a subject

Audience
    ``audience.segments`` names segments of the active segmentation version and ``audience.rule``
    is a condition on the score columns (``churn_probability > 0.5 and predicted_clv > 200``),
    parsed by :class:`AudienceRule` — a small whitelisted grammar, never ``eval``. Given both,
    a customer must be in one of the segments *and* match the rule.

Templates
    Each variant has one template per channel, rendered by Jinja2's sandbox with
    ``StrictUndefined``: a template that names a field the planner does not provide fails
    :meth:`CampaignDefinition.check_templates` before anything is sent, and a render never
    produces a half-filled message. Email bodies are HTML and autoescaped (a customer's name
    ``<b>`` stays text); email subjects and SMS / in-app bodies are plain text and are not escaped
    (escaping would show ``&amp;`` on a phone).
"""

from __future__ import annotations

import ast
import datetime as dt
import difflib
import functools
import operator
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from clv.campaigns.errors import CampaignError

# The YAML-location helpers of the configuration files: one way of pointing at a line.
from clv.config import _duplicate_keys, _key_node, _message, _node_at, _parse_yaml

if TYPE_CHECKING:
    import pandas as pd
    from jinja2.sandbox import SandboxedEnvironment

__all__ = [
    "HOLDOUT",
    "PERSONALISATION_FIELDS",
    "RULE_COLUMNS",
    "Audience",
    "AudienceRule",
    "CampaignDefinition",
    "CampaignError",
    "Channel",
    "FrequencyCap",
    "SendHours",
    "Template",
    "UpliftPrior",
    "Variant",
    "load_campaign",
    "render_preview",
]

#: The arm of customers kept out of the campaign; no variant may use the name.
HOLDOUT = "holdout"
#: Columns an audience rule may use by default (the scores, RFM scores and segment labels).
RULE_COLUMNS: frozenset[str] = frozenset(
    {
        "predicted_clv",
        "predicted_clv_lower",
        "predicted_clv_upper",
        "churn_probability",
        "eco_spend_share",
        "eco_engagement_score",
        "eco_preference",
        "r_score",
        "f_score",
        "m_score",
        "segment",
        "region",
        "rfm_segment",
    }
)
#: The personalisation fields the campaign planner provides to every template.
PERSONALISATION_FIELDS: tuple[str, ...] = (
    "first_name",
    "top_category",
    "eco_preference",
    "segment",
    "predicted_next_purchase",
    "predicted_clv",
    "unsubscribe_url",
)

_SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_CURRENCY = re.compile(r"[A-Z]{3}")
_MAX_RULE_CHARS = 5000

_Loc = tuple[int | str, ...]
_Problem = tuple[_Loc, str]

Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
"""A finite number; YAML ``true`` or ``"5"`` are refused rather than read as 1.0 or 5.0."""


def _slug(value: str, what: str) -> str:
    if not _SLUG.fullmatch(value):
        raise ValueError(
            f"{what} must be 1 to 64 lowercase letters, digits, '-' or '_', starting with a "
            f"letter or digit (got {value!r})"
        )
    return value


def _not_blank(value: str | None, what: str) -> str | None:
    if value is not None and not value.strip():
        raise ValueError(f"{what} must not be blank")
    return value


def _problems(problems: list[_Problem]) -> PydanticCustomError:
    """One validation error carrying several problems, each at a location below the field's."""
    summary = "; ".join(f"{_path(loc)}: {text}" if loc else text for loc, text in problems)
    return PydanticCustomError("campaign", "{summary}", {"summary": summary, "problems": problems})


# --- the definition --------------------------------------------------------------------------

_MODEL_CONFIG = ConfigDict(extra="forbid", frozen=True)


class Channel(BaseModel):
    """A way of reaching a customer.

    Attributes
    ----------
    kind : {"email", "sms", "in_app"}
        What the channel sends; email templates have a subject, the others only a body.
    cost_per_message : float
        What one message costs, in the campaign's currency (at least 0).
    """

    model_config = _MODEL_CONFIG

    kind: Literal["email", "sms", "in_app"]
    cost_per_message: Annotated[Number, Field(ge=0.0)]


class Template(BaseModel):
    """One variant's message on one channel (Jinja2 text).

    Attributes
    ----------
    subject : str or None
        The email subject (required for email channels, refused for the others).
    body : str
        The message; HTML for email, plain text for SMS and in-app messages.
    """

    model_config = _MODEL_CONFIG

    subject: str | None = None
    body: str

    @field_validator("subject", "body")
    @classmethod
    def _filled(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _not_blank(value, info.field_name or "text")


class Variant(BaseModel):
    """One treatment arm.

    Attributes
    ----------
    name : str
        Unique within the campaign; lowercase letters, digits, ``-`` and ``_``; not ``holdout``.
    weight : float
        Relative share of the treated customers (more than 0; default 1).
    templates : dict of str to Template
        One template per channel of the campaign, keyed by channel name.
    """

    model_config = _MODEL_CONFIG

    name: str
    weight: Annotated[Number, Field(gt=0.0)] = 1.0
    templates: dict[str, Template]

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _slug(value, "a variant name")


class Audience(BaseModel):
    """Who may be contacted: segments of the active version and/or a rule on the scores.

    Attributes
    ----------
    segments : list of str
        Names of segments of the active segmentation version (checked against the store with
        :meth:`CampaignDefinition.check_segments`).
    rule : str or None
        A condition on the score columns, see :class:`AudienceRule`.
    """

    model_config = _MODEL_CONFIG

    segments: list[str] = Field(default_factory=list)
    rule: str | None = None

    @field_validator("segments")
    @classmethod
    def _segments(cls, value: list[str]) -> list[str]:
        problems: list[_Problem] = []
        seen: set[str] = set()
        for i, name in enumerate(value):
            if not name.strip():
                problems.append(((i,), "a segment name must not be blank"))
            elif name in seen:
                problems.append(((i,), f"segment {name!r} is listed twice"))
            seen.add(name)
        if problems:
            raise _problems(problems)
        return value

    @field_validator("rule")
    @classmethod
    def _rule(cls, value: str | None) -> str | None:
        if value is not None:
            AudienceRule(value)
        return value

    @model_validator(mode="after")
    def _something(self) -> Audience:
        if not self.segments and self.rule is None:
            raise ValueError("give 'segments', a 'rule', or both: who should the campaign reach?")
        return self

    @property
    def compiled_rule(self) -> AudienceRule | None:
        """The parsed :attr:`rule` (``None`` without one)."""
        return None if self.rule is None else AudienceRule(self.rule)


class FrequencyCap(BaseModel):
    """At most ``max_messages`` messages to one customer in any ``per_days`` days (all channels)."""

    model_config = _MODEL_CONFIG

    max_messages: Annotated[StrictInt, Field(ge=1)] = 1
    per_days: Annotated[StrictInt, Field(ge=1)] = 7


class UpliftPrior(BaseModel):
    """Prior relative uplift of a segment that no earlier campaign measured.

    Attributes
    ----------
    rate : float
        Prior mean of the relative uplift of the primary metric (0.02 = 2%; more than -1).
    sd : float
        Prior standard deviation (more than 0).
    """

    model_config = _MODEL_CONFIG

    rate: Annotated[Number, Field(gt=-1.0)] = 0.02
    sd: Annotated[Number, Field(gt=0.0)] = 0.02


class SendHours(BaseModel):
    """Hours of the customer's local day in which messages may go out (``earliest <= h < latest``).

    Attributes
    ----------
    earliest : int
        First hour (0 to 23; default 8).
    latest : int
        The hour sends stop (1 to 24, after ``earliest``; default 20).
    """

    model_config = _MODEL_CONFIG

    earliest: Annotated[StrictInt, Field(ge=0, le=23)] = 8
    latest: Annotated[StrictInt, Field(ge=1, le=24)] = 20

    @field_validator("latest")
    @classmethod
    def _after_earliest(cls, value: int, info: ValidationInfo) -> int:
        earliest = info.data.get("earliest")
        if earliest is not None and value <= earliest:
            raise ValueError(f"must be later than earliest ({earliest}), got {value}")
        return value


class CampaignDefinition(BaseModel):
    """A campaign as its YAML file states it; see :func:`load_campaign`.

    Attributes
    ----------
    name : str
        Lowercase letters, digits, ``-`` and ``_`` (it names the campaign's experiment).
    description : str or None
        Free text for people.
    audience : Audience
        Who may be contacted.
    budget : float
        Most the campaign may spend on messages, in ``currency`` (more than 0).
    currency : str
        ISO 4217 code of ``budget`` and the channels' costs (default ``USD``).
    channels : dict of str to Channel
        At least one, keyed by a name the templates use.
    variants : list of Variant
        At least one; every variant has a template for every channel.
    holdout_share : float
        Share of the audience kept out of the campaign to measure it (0 to 0.9; default 0.1).
    attribution_window_days : int
        Days after a message in which the customer's purchases count for it (default 14).
    frequency_cap : FrequencyCap
        Most messages one customer gets (default 1 in 7 days).
    start, end : datetime
        When sends may happen, as timezone-aware UTC (a naive time or a date is taken as UTC);
        ``end`` is after ``start``.
    primary_metric : {"revenue", "conversion", "retention", "eco_adoption"}
        What the campaign is judged on (default revenue).
    uplift_prior : UpliftPrior
        Prior relative uplift per segment when no earlier campaign measured it.
    margin : float
        Share of revenue that is margin, for ROI (more than 0, at most 1; default 0.3).
    send_hours : SendHours
        Local hours in which messages may go out (default 8 to 20).
    """

    model_config = _MODEL_CONFIG

    name: str
    description: str | None = None
    audience: Audience
    budget: Annotated[Number, Field(gt=0.0)]
    currency: str = "USD"
    channels: dict[str, Channel] = Field(min_length=1)
    variants: list[Variant] = Field(min_length=1)
    holdout_share: Annotated[Number, Field(ge=0.0, le=0.9)] = 0.10
    attribution_window_days: Annotated[StrictInt, Field(ge=1)] = 14
    frequency_cap: FrequencyCap = Field(default_factory=FrequencyCap)
    start: dt.datetime
    end: dt.datetime
    primary_metric: Literal["revenue", "conversion", "retention", "eco_adoption"] = "revenue"
    uplift_prior: UpliftPrior = Field(default_factory=UpliftPrior)
    margin: Annotated[Number, Field(gt=0.0, le=1.0)] = 0.3
    send_hours: SendHours = Field(default_factory=SendHours)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _slug(value, "a campaign name")

    @field_validator("description")
    @classmethod
    def _description(cls, value: str | None) -> str | None:
        return _not_blank(value, "a description")

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if not _CURRENCY.fullmatch(value):
            raise ValueError(f"must be a three-letter ISO 4217 code such as EUR (got {value!r})")
        return value

    @field_validator("channels")
    @classmethod
    def _channel_names(cls, value: dict[str, Channel]) -> dict[str, Channel]:
        problems: list[_Problem] = []
        for name in value:
            try:
                _slug(name, "a channel name")
            except ValueError as err:
                problems.append(((name,), str(err)))
        if problems:
            raise _problems(problems)
        return value

    @field_validator("variants")
    @classmethod
    def _variants(cls, value: list[Variant], info: ValidationInfo) -> list[Variant]:
        problems: list[_Problem] = []
        first: dict[str, int] = {}
        for i, variant in enumerate(value):
            if variant.name.lower() == HOLDOUT:
                problems.append(
                    (
                        (i, "name"),
                        f"{HOLDOUT!r} is the name of the customers kept out of the campaign; "
                        "choose another variant name",
                    )
                )
            elif variant.name in first:
                problems.append(
                    (
                        (i, "name"),
                        f"variant name {variant.name!r} is used twice "
                        f"(also variants[{first[variant.name]}])",
                    )
                )
            first.setdefault(variant.name, i)
        channels: dict[str, Channel] | None = info.data.get("channels")
        if channels is not None:  # otherwise the channels' own error is reported
            for i, variant in enumerate(value):
                problems += _template_coverage(i, variant, channels)
        if problems:
            raise _problems(problems)
        return value

    @field_validator("start", "end", mode="before")
    @classmethod
    def _instant(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise ValueError(f"must be a date-time such as 2025-04-01T08:00:00Z (got {value!r})")
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
        return value

    @field_validator("start", "end")
    @classmethod
    def _utc(cls, value: dt.datetime) -> dt.datetime:
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)

    @field_validator("end")
    @classmethod
    def _after_start(cls, value: dt.datetime, info: ValidationInfo) -> dt.datetime:
        start = info.data.get("start")
        if start is not None and value <= start:
            raise ValueError(f"must be after start ({start.isoformat()}), got {value.isoformat()}")
        return value

    # --- checks that need more than the file ---------------------------------------------

    def variant(self, name: str) -> Variant:
        """The variant called ``name``.

        Parameters
        ----------
        name : str
            A variant's name.

        Returns
        -------
        Variant
            The variant.

        Raises
        ------
        CampaignError
            When the campaign has no such variant (the message lists its variants).
        """
        for variant in self.variants:
            if variant.name == name:
                return variant
        names = ", ".join(v.name for v in self.variants)
        raise CampaignError(f"campaign {self.name!r} has no variant {name!r}; variants: {names}")

    def check_segments(self, available: Iterable[str]) -> None:
        """Check that every audience segment is a segment of the active version.

        Parameters
        ----------
        available : iterable of str
            The active version's segment names (``Store().segments(version)["name"]``).

        Raises
        ------
        CampaignError
            Naming each unknown segment, with the closest name when one is close.
        """
        known = list(available)
        problems = []
        for name in self.audience.segments:
            if name not in known:
                close = difflib.get_close_matches(name, known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                problems.append(f"{name!r}{hint}")
        if problems:
            raise CampaignError(
                f"campaign {self.name!r}: audience.segments names segments that are not in the "
                f"active segmentation version: {', '.join(problems)}; active segments: "
                f"{', '.join(known) or 'none (approve a segmentation version first)'}"
            )

    def check_templates(self, fields: Iterable[str]) -> None:
        """Compile every template and check that it uses only the given personalisation fields.

        Parameters
        ----------
        fields : iterable of str
            The fields the planner provides to every template (for example
            :data:`PERSONALISATION_FIELDS`).

        Raises
        ------
        CampaignError
            Listing every template that does not compile (with its line and Jinja's message),
            that uses a field not in ``fields`` (with the fields available) or that reaches for
            an underscore attribute, which the sandbox would refuse at send time.
        """
        problems = _template_problems(self, fields)
        if problems:
            lines = "\n".join(f"  {_path(loc)}: {text}" for loc, text in problems)
            raise CampaignError(f"campaign {self.name!r}: templates cannot be used:\n{lines}")


def _template_coverage(
    index: int, variant: Variant, channels: Mapping[str, Channel]
) -> list[_Problem]:
    problems: list[_Problem] = []
    listed = ", ".join(channels)
    for channel_name, channel in channels.items():
        template = variant.templates.get(channel_name)
        if template is None:
            problems.append(
                (
                    (index, "templates", channel_name),
                    f"variant {variant.name!r} has no template for channel {channel_name!r} "
                    f"(every variant needs one for each channel: {listed})",
                )
            )
        elif channel.kind == "email" and template.subject is None:
            problems.append(
                ((index, "templates", channel_name, "subject"), "email templates need a subject")
            )
        elif channel.kind != "email" and template.subject is not None:
            problems.append(
                (
                    (index, "templates", channel_name, "subject"),
                    f"only email templates have a subject; channel {channel_name!r} is "
                    f"{channel.kind}",
                )
            )
    for channel_name in variant.templates:
        if channel_name not in channels:
            problems.append(
                (
                    (index, "templates", channel_name),
                    f"no channel {channel_name!r} in the campaign; channels: {listed}",
                )
            )
    return problems


# --- loading -----------------------------------------------------------------------------------


def load_campaign(path: str | Path, *, fields: Iterable[str] | None = None) -> CampaignDefinition:
    """Read and check a campaign definition file.

    Parameters
    ----------
    path : str or Path
        A YAML file whose keys are :class:`CampaignDefinition`'s fields.
    fields : iterable of str, optional
        The personalisation fields the planner provides; when given, the templates are also
        checked (:meth:`CampaignDefinition.check_templates`) and their problems reported with
        their lines.

    Returns
    -------
    CampaignDefinition
        The campaign.

    Raises
    ------
    CampaignError
        When the file is missing, is not valid YAML (line and column) or does not describe a
        campaign: every problem on its own line, as ``<file>, line <n>, <field path>: <why>``.
    """
    path = Path(path)
    if not path.exists():
        raise CampaignError(f"no such campaign file: {path}")
    if path.is_dir():
        raise CampaignError(f"{path} is a folder, not a campaign file")
    root, data = _parse_yaml(path, CampaignError, column=True)
    if data is None:
        raise CampaignError(f"{path}: the file is empty; see examples/campaign.yaml for a campaign")
    if not isinstance(data, dict):
        raise CampaignError(
            f"{path}: expected 'field: value' lines at the top level, got a {type(data).__name__}"
        )
    problems: list[tuple[int, str]] = [
        (_line_in(message), message) for message in _duplicate_keys(path, root)
    ]
    definition: CampaignDefinition | None = None
    try:
        definition = CampaignDefinition.model_validate(data)
    except ValidationError as err:
        for error in err.errors():
            problems += _describe(path, root, error)
    if definition is not None and fields is not None and not problems:
        for loc, message in _template_problems(definition, fields):
            problems.append(_at(path, root, loc, message))
    if problems or definition is None:
        raise CampaignError("\n".join(message for _, message in sorted(problems)))
    return definition


def _line_in(message: str) -> int:
    found = re.search(r", line (\d+)", message)
    return int(found.group(1)) if found else 0


def _path(loc: _Loc) -> str:
    """``("variants", 1, "templates")`` → ``variants[1].templates``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _line(root: yaml.Node | None, loc: _Loc) -> int | None:
    """The 1-based line of the key at ``loc``, or of the nearest enclosing key that is there."""
    for end in range(len(loc), 0, -1):
        prefix = loc[:end]
        if isinstance(prefix[-1], str):
            key = _key_node(root, prefix)
            if key is not None:
                return int(key.start_mark.line) + 1
        else:
            node = _node_at(root, prefix)
            if node is not None:
                return int(node.start_mark.line) + 1
    return None


def _at(path: Path, root: yaml.Node | None, loc: _Loc, message: str) -> tuple[int, str]:
    line = _line(root, loc)
    where = f", line {line}" if line is not None else ""
    return line or 0, f"{path}{where}, {_path(loc)}: {message}"


def _describe(path: Path, root: yaml.Node | None, error: Any) -> list[tuple[int, str]]:
    loc: _Loc = tuple(error["loc"])
    kind = error["type"]
    if kind == "campaign":
        return [_at(path, root, loc + sub, text) for sub, text in error["ctx"]["problems"]]
    if kind == "extra_forbidden":
        known = _fields_at(CampaignDefinition, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f"; known fields: {', '.join(known)}"
        line = _line(root, loc)
        where = f", line {line}" if line is not None else ""
        return [(line or 0, f"{path}{where}: unknown field {_path(loc)!r}{hint}")]
    return [_at(path, root, loc, _why(error))]


def _why(error: Any) -> str:
    kind = error["type"]
    if kind == "missing":
        return "required field is missing"
    if kind == "too_short":
        return "needs at least one entry"
    if kind == "finite_number":
        return f"must be a finite number (got {error.get('input')!r})"
    if kind in ("datetime_type", "datetime_parsing", "datetime_from_date_parsing"):
        return f"must be a date-time such as 2025-04-01T08:00:00Z (got {error.get('input')!r})"
    if kind == "dict_type":
        return "must be a mapping of 'name: value' lines"
    return _message(error)


def _fields_at(model: type[BaseModel], loc: _Loc) -> list[str]:
    """The field names of the model at ``loc`` (through lists and dicts), or ``[]``."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            info = current.model_fields.get(str(part))
            if info is None:
                return []
            current = info.annotation
        elif get_origin(current) in (list, dict):
            current = get_args(current)[-1]
        else:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    """``X | None`` → ``X``."""
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) not in (list, dict) and len(args) == 1:
        return args[0]
    return annotation


# --- audience rules -----------------------------------------------------------------------------

_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
_ARITHMETIC: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
_OPERATOR_HINTS: dict[type[ast.AST], str] = {
    ast.BitAnd: "the operator '&' (write 'and')",
    ast.BitOr: "the operator '|' (write 'or')",
    ast.Invert: "the operator '~' (write 'not')",
    ast.Is: "'is' (write '==')",
    ast.IsNot: "'is not' (write '!=')",
    ast.Mod: "the operator '%'",
    ast.Pow: "the operator '**'",
    ast.FloorDiv: "the operator '//'",
    ast.BitXor: "the operator '^'",
    ast.LShift: "the operator '<<'",
    ast.RShift: "the operator '>>'",
    ast.MatMult: "the operator '@'",
}
_REFUSED: dict[type[ast.AST], str] = {
    ast.Call: "a function call",
    ast.Attribute: "attribute access",
    ast.Subscript: "a subscript",
    ast.Lambda: "a lambda",
    ast.IfExp: "a conditional expression",
    ast.NamedExpr: "an assignment",
    ast.JoinedStr: "an f-string",
    ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a comprehension",
    ast.Dict: "a dict",
    ast.Set: "a set (write a list: [a, b])",
    ast.Starred: "unpacking",
    ast.Slice: "a slice",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
}
_GRAMMAR = (
    "a rule compares fields with numbers or quoted text using <, <=, >, >=, ==, != "
    "(chains such as 0.2 < churn_probability <= 0.8 too), 'in [..]' / 'not in [..]', "
    "+ - * / and combines conditions with and, or, not"
)


class AudienceRule:
    """A condition on per-customer columns, parsed into a whitelisted expression tree.

    The rule is parsed with :mod:`ast` and only these are accepted: ``and`` / ``or`` / ``not``;
    comparisons ``<, <=, >, >=, ==, !=`` (chained too); ``in`` / ``not in`` a list or tuple of
    constants; ``+ - * /`` and unary minus between fields and constants; numbers, quoted text and
    ``True`` / ``False``; and names from ``columns``. Nothing is ever passed to ``eval``.

    A comparison on a missing value is *unknown*, and ``and`` / ``or`` / ``not`` follow
    three-valued (SQL) logic: ``unknown or True`` is true, ``not unknown`` stays unknown. A
    customer whose rule is unknown is not selected. Division by zero gives unknown too.

    Parameters
    ----------
    text : str
        The rule, e.g. ``churn_probability > 0.5 and predicted_clv > 200``.
    columns : iterable of str, optional
        The names the rule may use; default :data:`RULE_COLUMNS`. It replaces the default set:
        extend it with ``RULE_COLUMNS | {"marketing_opt_in"}``.

    Attributes
    ----------
    text : str
        The rule as given.
    columns : frozenset of str
        The names the rule may use.
    fields : tuple of str
        The names the rule uses, in order of first use.

    Raises
    ------
    CampaignError
        For a syntax error or a refused construct, naming the token and its column (counted
        from 1 in the rule's text; a line break counts as one character).
    """

    def __init__(self, text: str, *, columns: Iterable[str] | None = None) -> None:
        if not isinstance(text, str):
            raise CampaignError(f"a rule must be text, got {type(text).__name__}")
        self.text = text
        self.columns = frozenset(RULE_COLUMNS if columns is None else columns)
        # Newlines become spaces (a YAML block rule stays one expression, columns unchanged);
        # leading blanks are cut (ast would call them an indent) and added back to the columns.
        self._flat = re.sub(r"[\r\n]", " ", text)
        self._source = self._flat.lstrip()
        self._shift = len(self._flat) - len(self._source)
        if not self._flat.strip():
            raise CampaignError("a rule must not be empty")
        if len(text) > _MAX_RULE_CHARS:
            raise CampaignError(f"a rule may have at most {_MAX_RULE_CHARS} characters")
        try:
            tree = ast.parse(self._source, mode="eval")
        except SyntaxError as err:
            raise self._syntax_error(err) from None
        except (RecursionError, MemoryError, ValueError):
            raise self._error("too complex to parse") from None
        self._tree: ast.expr = tree.body
        self._fields: list[str] = []
        self._condition(self._tree)
        if not self._fields:
            raise self._error("uses no field; compare a field, e.g. churn_probability > 0.5")
        self.fields: tuple[str, ...] = tuple(self._fields)

    @classmethod
    def parse(cls, text: str, columns: Iterable[str] | None = None) -> AudienceRule:
        """Parse a rule (the same as the constructor).

        Parameters
        ----------
        text : str
            The rule.
        columns : iterable of str, optional
            The names the rule may use; default :data:`RULE_COLUMNS`.

        Returns
        -------
        AudienceRule
            The parsed rule.

        Raises
        ------
        CampaignError
            When the rule does not parse or uses something not allowed.
        """
        return cls(text, columns=columns)

    def __repr__(self) -> str:
        return f"AudienceRule({self.text!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AudienceRule):
            return NotImplemented
        return self.text == other.text and self.columns == other.columns

    def __hash__(self) -> int:
        return hash((self.text, self.columns))

    # --- parsing ---------------------------------------------------------------------------

    def _error(self, message: str) -> CampaignError:
        return CampaignError(f"rule {self._flat!r}: {message}")

    def _syntax_error(self, err: SyntaxError) -> CampaignError:
        offset = err.offset or 1
        if offset <= 1 and err.msg == "invalid syntax":
            # A rule that stops short ("churn_probability >") is blamed on its first token;
            # parenthesised, Python points at the closing parenthesis, i.e. the rule's end.
            try:
                ast.parse(f"({self._source})", mode="eval")
            except SyntaxError as wrapped:
                offset = (wrapped.offset or 2) - 1
        column = min(max(offset + self._shift, 1), len(self._flat.rstrip()) + 1)
        near = re.match(r"\S+", self._flat[column - 1 :])
        token = f"near {near.group(0)!r}" if near else "the rule ends too soon"
        if near and near.group(0).startswith("=") and not near.group(0).startswith("=="):
            token += "; write '==' to compare"
        return self._error(f"{err.msg} at column {column} ({token})")

    def _column(self, node: ast.AST) -> int:
        """1-based character column of ``node`` in the rule (ast offsets are UTF-8 bytes)."""
        offset = int(getattr(node, "col_offset", 1))
        before = self._source.encode("utf-8")[:offset].decode("utf-8", errors="ignore")
        return len(before) + 1 + self._shift

    def _refuse(self, node: ast.AST, what: str | None = None) -> CampaignError:
        if what is None:
            what = _REFUSED.get(type(node), f"'{type(node).__name__}'")
        token = ast.get_source_segment(self._source, node) or ""
        if len(token) > 40:
            token = token[:37] + "..."
        return self._error(
            f"{what} is not allowed ({token!r} at column {self._column(node)}); {_GRAMMAR}"
        )

    def _condition(self, node: ast.expr) -> None:
        if isinstance(node, ast.BoolOp):
            for value in node.values:
                self._condition(value)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            self._condition(node.operand)
        elif isinstance(node, ast.Compare):
            self._compare(node)
        elif isinstance(node, ast.Name):
            self._name(node)
        elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
            pass
        elif isinstance(node, ast.BinOp | ast.UnaryOp | ast.Constant):
            self._value(node)  # refuses a bad operator or constant with its own message
            token = ast.get_source_segment(self._source, node) or ""
            raise self._error(
                f"{token!r} at column {self._column(node)} is a value, not a condition; "
                f"compare it, e.g. {token} > 0"
            )
        else:
            raise self._refuse(node)

    def _compare(self, node: ast.Compare) -> None:
        self._value(node.left)
        for op, right in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.In | ast.NotIn):
                if len(node.ops) > 1:
                    raise self._refuse(node, "'in' inside a chain of comparisons")
                if not isinstance(right, ast.List | ast.Tuple):
                    raise self._refuse(right, "'in' with anything but a list of constants")
                for element in right.elts:
                    if _constant(element) is _NOT_CONSTANT:
                        raise self._refuse(element, "a list element that is not a constant")
            elif type(op) in _COMPARE:
                self._value(right)
            else:
                raise self._refuse(node, _OPERATOR_HINTS.get(type(op), "this comparison"))

    def _value(self, node: ast.expr) -> None:
        if isinstance(node, ast.BinOp):
            if type(node.op) not in _ARITHMETIC:
                raise self._refuse(node, _OPERATOR_HINTS.get(type(node.op), "this operator"))
            self._value(node.left)
            self._value(node.right)
        elif isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, ast.USub | ast.UAdd):
                raise self._refuse(node, _OPERATOR_HINTS.get(type(node.op), "'not' on a value"))
            self._value(node.operand)
        elif isinstance(node, ast.Name):
            self._name(node)
        elif isinstance(node, ast.Constant):
            if not isinstance(node.value, int | float | str):
                raise self._refuse(node, f"the constant {node.value!r}")
        elif isinstance(node, ast.Compare | ast.BoolOp):
            raise self._refuse(node, "a condition used as a value")
        else:
            raise self._refuse(node)

    def _name(self, node: ast.Name) -> None:
        if node.id not in self.columns:
            close = difflib.get_close_matches(node.id, sorted(self.columns), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise self._error(
                f"unknown field {node.id!r} at column {self._column(node)}{hint}; "
                f"fields: {', '.join(sorted(self.columns))}"
            )
        if node.id not in self._fields:
            self._fields.append(node.id)

    # --- evaluation ------------------------------------------------------------------------

    def evaluate(self, frame: pd.DataFrame) -> pd.Series:
        """Which rows match the rule, vectorised.

        Parameters
        ----------
        frame : DataFrame
            One row per customer with (at least) the columns in :attr:`fields`.

        Returns
        -------
        Series of bool
            On ``frame``'s index; ``False`` where the rule is false or unknown (missing values).

        Raises
        ------
        CampaignError
            When a column is missing, or a comparison does not fit its column's type
            (``region > 0.5``).
        """
        import pandas as pd

        missing = [name for name in self.fields if name not in frame.columns]
        if missing:
            raise self._error(
                f"the table has no column {', '.join(map(repr, missing))}; it has "
                f"{', '.join(map(str, frame.columns))}"
            )
        columns = {name: _nullable(frame[name]) for name in self.fields}
        try:
            result = self._eval_condition(self._tree, columns)
        except (TypeError, ZeroDivisionError) as err:
            raise self._error(f"cannot be evaluated on this table ({err})") from None
        if not isinstance(result, pd.Series):
            return pd.Series(bool(result), index=frame.index, dtype=bool)
        return result.fillna(False).astype(bool).set_axis(frame.index)

    def _eval_condition(self, node: ast.expr, columns: Mapping[str, pd.Series]) -> Any:
        import pandas as pd

        if isinstance(node, ast.BoolOp):
            combine = operator.and_ if isinstance(node.op, ast.And) else operator.or_
            return functools.reduce(
                combine, (self._eval_condition(v, columns) for v in node.values)
            )
        if isinstance(node, ast.UnaryOp):  # `not`: the parser allowed nothing else here
            operand = self._eval_condition(node.operand, columns)
            return ~operand if isinstance(operand, pd.Series) else not operand
        if isinstance(node, ast.Compare):
            return self._eval_compare(node, columns)
        if isinstance(node, ast.Name):
            series = columns[node.id]
            if str(series.dtype) != "boolean":
                raise self._error(
                    f"field {node.id!r} holds {series.dtype} values, not true/false; "
                    f"compare it, e.g. {node.id} > 0"
                )
            return series
        return _constant(node)

    def _eval_compare(self, node: ast.Compare, columns: Mapping[str, pd.Series]) -> Any:
        left = self._eval_value(node.left, columns)
        result: Any = None
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.In | ast.NotIn):
                assert isinstance(right_node, ast.List | ast.Tuple)
                options = [_constant(e) for e in right_node.elts]
                right: Any = None
                step = _isin(left, options)
                if isinstance(op, ast.NotIn):
                    step = ~step if hasattr(step, "dtype") else not step
            else:
                right = self._eval_value(right_node, columns)
                step = _unknown_if_missing(_COMPARE[type(op)](left, right), left, right)
            result = step if result is None else result & step
            left = right
        return result

    def _eval_value(self, node: ast.expr, columns: Mapping[str, pd.Series]) -> Any:
        if isinstance(node, ast.BinOp):
            left = self._eval_value(node.left, columns)
            right = self._eval_value(node.right, columns)
            return _finite(_ARITHMETIC[type(node.op)](left, right))
        if isinstance(node, ast.UnaryOp):
            operand = self._eval_value(node.operand, columns)
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.Name):
            return columns[node.id]
        return _constant(node)


_NOT_CONSTANT = object()


def _constant(node: ast.expr) -> Any:
    """The value of a constant or a negated number, or ``_NOT_CONSTANT``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float | str):
        return node.value
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub | ast.UAdd)
        and isinstance(node.operand, ast.Constant)
        and isinstance(node.operand.value, int | float)
        and not isinstance(node.operand.value, bool)
    ):
        value = node.operand.value
        return -value if isinstance(node.op, ast.USub) else value
    return _NOT_CONSTANT


def _nullable(series: pd.Series) -> pd.Series:
    """The column in a pandas nullable dtype, so that missing values propagate as ``NA``."""
    import pandas as pd

    if isinstance(series.dtype, pd.CategoricalDtype):
        series = series.astype(object)
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.astype("boolean")
    if pd.api.types.is_numeric_dtype(series.dtype):
        return series.astype("Float64")
    return series.convert_dtypes()


def _is_missing(value: Any) -> Any:
    import pandas as pd

    return value.isna() if isinstance(value, pd.Series) else False


def _unknown_if_missing(result: Any, left: Any, right: Any) -> Any:
    """A comparison with a missing operand is unknown (``NA``), whatever the dtype did."""
    import pandas as pd

    if not isinstance(result, pd.Series):
        return result
    result = result.astype("boolean")
    return result.mask(_is_missing(left) | _is_missing(right), pd.NA)


def _isin(left: Any, options: list[Any]) -> Any:
    import pandas as pd

    if not isinstance(left, pd.Series):
        return left in options
    return left.isin(options).astype("boolean").mask(left.isna(), pd.NA)


def _finite(value: Any) -> Any:
    """Arithmetic giving ±inf or NaN (a division by zero) is unknown."""
    import numpy as np
    import pandas as pd

    if isinstance(value, pd.Series) and pd.api.types.is_float_dtype(value.dtype):
        value = value.astype("Float64")
        numbers = value.to_numpy(dtype=float, na_value=np.nan)
        value[~np.isfinite(numbers)] = pd.NA
    return value


# --- templates ----------------------------------------------------------------------------------


@functools.cache
def _environment(html: bool) -> SandboxedEnvironment:
    """The sandbox: ``StrictUndefined`` everywhere; autoescape only for HTML (email bodies).

    Templates come from strings, which have no file name for ``select_autoescape`` to look at,
    so the choice is made per part: one environment for HTML, one for plain text.
    """
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(undefined=StrictUndefined, autoescape=html)


def _parts(template: Template, channel: Channel) -> Iterator[tuple[str, str, bool]]:
    """``(part, source, is_html)`` for a template's subject (email only) and body."""
    if channel.kind == "email" and template.subject is not None:
        yield "subject", template.subject, False
    yield "body", template.body, channel.kind == "email"


def _template_problems(definition: CampaignDefinition, fields: Iterable[str]) -> list[_Problem]:
    from jinja2 import TemplateSyntaxError, meta, nodes

    available = sorted(set(fields))
    problems: list[_Problem] = []
    for index, variant in enumerate(definition.variants):
        for channel_name, channel in definition.channels.items():
            template = variant.templates[channel_name]
            for part, source, html in _parts(template, channel):
                loc: _Loc = ("variants", index, "templates", channel_name, part)
                where = f"variant {variant.name!r}, channel {channel_name!r}, {part}"
                env = _environment(html)
                try:
                    parsed = env.parse(source)
                except TemplateSyntaxError as err:
                    problems.append(
                        (loc, f"{where}: template line {err.lineno}: {err.message or err}")
                    )
                    continue
                for name in sorted(meta.find_undeclared_variables(parsed)):
                    if name not in available:
                        close = difflib.get_close_matches(name, available, n=1)
                        hint = f" (did you mean {close[0]!r}?)" if close else ""
                        problems.append(
                            (
                                loc,
                                f"{where}: unknown field {name!r}{hint}; available: "
                                f"{', '.join(available) or 'none'}",
                            )
                        )
                for node in parsed.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter)):
                    attribute = _reached_attribute(node)
                    if attribute is not None and attribute.startswith("_"):
                        problems.append(
                            (
                                loc,
                                f"{where}: template line {node.lineno} uses {attribute!r}; "
                                "templates may not reach underscore attributes",
                            )
                        )
    return problems


def _reached_attribute(node: Any) -> str | None:
    """The attribute name ``x.name``, ``x['name']`` or ``x|attr('name')`` reaches, if constant."""
    from jinja2 import nodes

    if isinstance(node, nodes.Getattr):
        return str(node.attr)
    if isinstance(node, nodes.Getitem):
        key = node.arg
    elif isinstance(node, nodes.Filter) and node.name == "attr" and node.args:
        key = node.args[0]
    else:
        return None
    return key.value if isinstance(key, nodes.Const) and isinstance(key.value, str) else None


def render_preview(
    definition: CampaignDefinition, variant: str, channel: str, context: Mapping[str, Any]
) -> dict[str, str]:
    """Render one variant's message on one channel for one customer's fields.

    Parameters
    ----------
    definition : CampaignDefinition
        The campaign.
    variant : str
        A variant's name.
    channel : str
        A channel's name.
    context : mapping of str to object
        The personalisation fields (``first_name``, ``unsubscribe_url``, ...).

    Returns
    -------
    dict of str to str
        ``{"subject": ..., "body": ...}`` for email, ``{"body": ...}`` for other channels.

    Raises
    ------
    CampaignError
        When the variant or channel does not exist, a field the template uses is not in
        ``context`` (nothing is half-rendered), the sandbox blocks an unsafe access, or the
        template cannot be rendered; an email subject that renders with a line break is refused
        too (it would break the message's headers).
    """
    from jinja2 import TemplateError, TemplateSyntaxError, UndefinedError
    from jinja2.sandbox import SecurityError

    chosen = definition.variant(variant)
    found = definition.channels.get(channel)
    if found is None:
        raise CampaignError(
            f"campaign {definition.name!r} has no channel {channel!r}; channels: "
            f"{', '.join(definition.channels)}"
        )
    if not isinstance(context, Mapping):
        raise CampaignError(
            f"the context must be a mapping of fields, got {type(context).__name__}"
        )
    given = dict(context)
    rendered: dict[str, str] = {}
    for part, source, html in _parts(chosen.templates[channel], found):
        where = f"campaign {definition.name!r}, variant {variant!r}, channel {channel!r}, {part}"
        try:
            text = _environment(html).from_string(source).render(given)
        except SecurityError as err:
            raise CampaignError(f"{where}: blocked by the template sandbox ({err})") from None
        except UndefinedError as err:
            gives = ", ".join(sorted(given)) or "nothing"
            raise CampaignError(f"{where}: {err.message}; the context gives: {gives}") from None
        except TemplateSyntaxError as err:
            raise CampaignError(
                f"{where}: template line {err.lineno}: {err.message or err}"
            ) from None
        except (TemplateError, TypeError, ValueError, ArithmeticError) as err:
            raise CampaignError(f"{where}: cannot be rendered ({err})") from None
        if part == "subject":
            if "\n" in text or "\r" in text:
                raise CampaignError(f"{where}: renders with a line break: {text!r}")
            text = text.strip()
        rendered[part] = text
    return rendered
