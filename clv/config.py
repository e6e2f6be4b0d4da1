"""Configuration files for ``clv train --config`` and ``clv monitor --config``.

A file is YAML whose keys are the settings of one command (:class:`TrainingFileConfig`,
:class:`MonitoringFileConfig`); flags given on the command line override it. A file is checked as a
whole before anything runs and every problem is reported with its line::

    config/training.yaml, line 4, n_trials: must be at least 1 (got 0)
    config/training.yaml, line 9: unknown setting 'seeds' (did you mean 'seed'?)

The shipped files, ``config/training.yaml`` and ``config/monitoring.yaml``, list every setting with
its default.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    field_validator,
)

__all__ = [
    "ConfigError",
    "MonitoringFileConfig",
    "SegmentationConfig",
    "TrainingFileConfig",
    "load_monitoring_config",
    "load_segmentation_config",
    "load_training_config",
]

_Model = TypeVar("_Model", bound=BaseModel)

#: Largest horizon whose end stays inside pandas' timestamps from any date up to 2100.
MAX_HORIZON_DAYS = (dt.date(2262, 4, 11) - dt.date(2100, 1, 1)).days


class ConfigError(ValueError):
    """A configuration file cannot be used; the message lists every problem with its line."""


class Columns(BaseModel):
    """The transactions file's own column names (``{contract name: file name}``)."""

    model_config = ConfigDict(extra="forbid")

    customer_id: str | None = None
    timestamp: str | None = None
    amount: str | None = None

    def mapping(self) -> dict[str, str] | None:
        """The mapping passed to :func:`clv.data.io.read_table` (``None`` when empty)."""
        given = {k: v for k, v in self.model_dump().items() if v}
        return given or None


class _Inputs(BaseModel):
    """Where the tables come from and how they are read (shared by every command's file)."""

    model_config = ConfigDict(extra="forbid")

    transactions: str | None = None
    customers: str | None = None
    sustainability: str | None = None
    as_of: str | None = None
    on_duplicate: Literal["warn", "error", "drop"] = "warn"
    future_tolerance_days: Annotated[float, Field(ge=0.0)] | None = None
    columns: Columns = Field(default_factory=Columns)

    @field_validator("as_of", mode="before")
    @classmethod
    def _date_text(cls, value: Any) -> Any:
        """YAML reads ``1997-12-31`` as a date: keep it as ISO text, parsed with the flags'."""
        if isinstance(value, dt.date):
            return value.isoformat()
        return value

    @field_validator("transactions", "customers", "sustainability")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must be a path or s3:// URI, not blank")
        return value


class TrainingFileConfig(_Inputs):
    """Every setting of ``clv train`` (the fields of :class:`clv.training.pipeline.TrainConfig`,
    plus the inputs).

    Attributes
    ----------
    transactions, customers, sustainability : str or None
        Input tables (local paths or ``s3://`` URIs); relative paths are the working directory's.
    as_of : str or None
        Training cut-off ``YYYY-MM-DD`` (the end of that day); ``None``: the last transaction's day.
    on_duplicate, future_tolerance_days, columns
        How the transactions are read (``--on-duplicate``, ``--future-tolerance-days``,
        ``--customer-id-col`` / ``--timestamp-col`` / ``--amount-col``).
    horizon_days, families, n_trials, n_windows, step_days, seed, coverage, max_tune_rows,
    max_fit_rows, max_extrapolated_share, ziln_members, ziln_sigma_cap, refit_final
        As in :class:`~clv.training.pipeline.TrainConfig` (flags ``--trials`` and ``--windows``
        set ``n_trials`` and ``n_windows``).
    """

    horizon_days: Annotated[StrictInt, Field(ge=1, le=MAX_HORIZON_DAYS)] | None = None
    families: list[str] = Field(
        default_factory=lambda: ["xgboost", "lightgbm", "keras_ziln"], min_length=1
    )
    n_trials: Annotated[StrictInt, Field(ge=1)] = 10
    n_windows: Annotated[StrictInt, Field(ge=2)] = 12
    step_days: Annotated[StrictInt, Field(ge=1)] = 30
    seed: StrictInt = 0
    coverage: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.8
    max_tune_rows: Annotated[StrictInt, Field(ge=1000)] | None = 50_000
    max_fit_rows: Annotated[StrictInt, Field(ge=1000)] | None = 250_000
    max_extrapolated_share: Annotated[float, Field(gt=0.0, le=1.0)] | None = Field(
        default_factory=lambda: _default_share()
    )
    ziln_members: Annotated[StrictInt, Field(ge=1)] = 3
    ziln_sigma_cap: Annotated[float, Field(gt=0.0)] | None = 1.5
    refit_final: StrictBool = True

    @field_validator("families")
    @classmethod
    def _known_families(cls, value: list[str]) -> list[str]:
        from clv.models.registry import SPEND_FAMILIES

        unknown = [f for f in value if f not in SPEND_FAMILIES]
        if unknown:
            raise ValueError(f"unknown families {unknown}; choose from {', '.join(SPEND_FAMILIES)}")
        if len(set(value)) != len(value):
            raise ValueError(f"a family is listed twice: {value}")
        return value


def _default_share() -> float:
    from clv.features.support import MAX_EXTRAPOLATED_SHARE

    return MAX_EXTRAPOLATED_SHARE


class MonitoringFileConfig(_Inputs):
    """Every setting of ``clv monitor``.

    Attributes
    ----------
    transactions, customers, sustainability, as_of, on_duplicate, future_tolerance_days, columns
        The current data and how it is read, as for training.
    threshold : float
        Share of drifted feature columns at which drift is declared (0.01 to 1).
    """

    threshold: Annotated[float, Field(ge=0.01, le=1.0)] = 0.3


class SegmentationConfig(BaseModel):
    """Every setting of a segmentation run (``clv segment run --config``, the segmentation flow).

    Attributes
    ----------
    method : {"both", "kmeans", "rfm"}
        ``rfm``: the named RFM segments are the segments. ``kmeans`` / ``both``: value segments
        (k-means on predicted CLV, churn, eco share and the RFM scores); ``both`` also keeps each
        customer's RFM segment beside the value segment.
    k_min, k_max : int
        Range of k tried; k is chosen by silhouette.
    min_share : float
        Smallest share of the sample a k-means cluster may hold for its k to be chosen.
    sample_size : int
        Customers k-means is fitted on (a seeded sample; every customer is assigned).
    seed : int
        Seed of the sample and of k-means.
    match_distance : float
        Largest standardised centroid distance at which a new cluster keeps an earlier version's
        name and id.
    min_segment_share, min_segment_customers, min_centroid_distance, max_top_customer_clv_share
        Thresholds of the business rules that must pass before a version can be activated
        without an override.
    auto_activate : bool
        Whether the segmentation flow activates a version on its own when every segment matched
        the active version's and the migration is at most ``max_auto_migration_share``.
    max_auto_migration_share : float
        Largest share of customers changing segment for an automatic activation.
    rfm_rules : str or None
        A YAML rule table replacing the shipped RFM segment rules.
    """

    model_config = ConfigDict(extra="forbid")

    method: Literal["both", "kmeans", "rfm"] = "both"
    k_min: Annotated[StrictInt, Field(ge=2, le=50)] = 3
    k_max: Annotated[StrictInt, Field(ge=2, le=50)] = 10
    min_share: Annotated[float, Field(gt=0.0, le=0.5)] = 0.02
    sample_size: Annotated[StrictInt, Field(ge=100, le=5_000_000)] = 50_000
    seed: StrictInt = 0
    match_distance: Annotated[float, Field(gt=0.0)] = 1.0
    min_segment_share: Annotated[float, Field(ge=0.0, le=0.5)] = 0.01
    min_segment_customers: Annotated[StrictInt, Field(ge=1)] = 30
    min_centroid_distance: Annotated[float, Field(ge=0.0)] = 0.25
    max_top_customer_clv_share: Annotated[float, Field(gt=0.0, le=1.0)] = 0.5
    auto_activate: StrictBool = True
    max_auto_migration_share: Annotated[float, Field(ge=0.0, le=1.0)] = 0.1
    rfm_rules: str | None = None

    @field_validator("k_max")
    @classmethod
    def _range(cls, value: int, info: Any) -> int:
        k_min = info.data.get("k_min")
        if k_min is not None and value < k_min:
            raise ValueError(f"must be at least k_min ({k_min}), got {value}")
        return value


def load_segmentation_config(path: str | Path) -> SegmentationConfig:
    """Read and check a segmentation configuration file (see :func:`load_training_config`).

    Parameters
    ----------
    path : str or Path
        YAML file whose keys are :class:`SegmentationConfig`'s fields.

    Returns
    -------
    SegmentationConfig
        The settings; ``model_fields_set`` holds the keys the file gave.
    """
    return _load(Path(path), SegmentationConfig)


def load_training_config(path: str | Path) -> TrainingFileConfig:
    """Read and check a training configuration file.

    Parameters
    ----------
    path : str or Path
        YAML file whose keys are :class:`TrainingFileConfig`'s fields.

    Returns
    -------
    TrainingFileConfig
        The settings; ``model_fields_set`` holds the keys the file gave.

    Raises
    ------
    ConfigError
        Listing every problem with its line (unknown keys, wrong types, values out of range).
    FileNotFoundError
        When there is no such file.
    """
    return _load(Path(path), TrainingFileConfig)


def load_monitoring_config(path: str | Path) -> MonitoringFileConfig:
    """Read and check a monitoring configuration file (see :func:`load_training_config`).

    Parameters
    ----------
    path : str or Path
        YAML file whose keys are :class:`MonitoringFileConfig`'s fields.

    Returns
    -------
    MonitoringFileConfig
        The settings; ``model_fields_set`` holds the keys the file gave.
    """
    return _load(Path(path), MonitoringFileConfig)


def _load(path: Path, model: type[_Model]) -> _Model:
    if not path.exists():
        raise FileNotFoundError(f"no such configuration file: {path}")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not a configuration file")
    node, data = _parse_yaml(path, ConfigError)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected 'setting: value' lines at the top level, got a {type(data).__name__}"
        )
    problems = _duplicate_keys(path, node)
    try:
        config = model.model_validate(data)
    except ValidationError as err:
        problems += [_describe(path, node, error, model) for error in err.errors()]
        config = None
    if problems or config is None:
        raise ConfigError("\n".join(sorted(problems, key=_line_number)))
    return config


def _line_number(problem: str) -> int:
    found = re.search(r", line (\d+)", problem)
    return int(found.group(1)) if found else 0


def _parse_yaml(
    path: Path, error: type[Exception], *, column: bool = False
) -> tuple[yaml.Node | None, Any]:
    """A YAML file's node tree (for line numbers) and its data; ``error`` says what is wrong.

    Parameters
    ----------
    path : Path
        An existing file.
    error : type of Exception
        Raised, with the file and the line (and ``column``, when asked), for a file that is not
        UTF-8 text or not valid YAML.
    column : bool
        Whether the message also gives the column of a syntax error.

    Returns
    -------
    tuple
        The composed root node (``None`` for an empty file) and the loaded data.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise error(f"{path}: not a text file (UTF-8 YAML expected)") from None
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader), yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = ""
        if mark is not None:
            where = f", line {mark.line + 1}" + (f", column {mark.column + 1}" if column else "")
        problem = getattr(err, "problem", None) or str(err)
        raise error(f"{path}{where}: not valid YAML ({problem})") from None


def _duplicate_keys(path: Path, node: yaml.Node | None) -> list[str]:
    """YAML keeps the last of two equal keys silently: a file saying a setting twice is refused."""
    problems: list[str] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key, value in node.value:
            if key.value in seen:
                problems.append(
                    f"{path}, line {key.start_mark.line + 1}: '{key.value}' is set twice"
                )
            seen.add(key.value)
            problems += _duplicate_keys(path, value)
    return problems


def _node_at(node: yaml.Node | None, loc: tuple[int | str, ...]) -> yaml.Node | None:
    """The YAML node a pydantic error location points at (``None`` when not in the file)."""
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            node = node.value[part] if part < len(node.value) else None
        else:
            return node
    return node


def _key_node(node: yaml.Node | None, loc: tuple[int | str, ...]) -> yaml.Node | None:
    parent = _node_at(node, loc[:-1])
    if isinstance(parent, yaml.MappingNode):
        return next((k for k, _ in parent.value if k.value == str(loc[-1])), None)
    return None


def _describe(path: Path, root: yaml.Node | None, error: Any, model: type[BaseModel]) -> str:
    loc = tuple(error["loc"])
    field = ".".join(str(p) for p in loc)
    if error["type"] == "extra_forbidden":
        key = _key_node(root, loc)
        line = f", line {key.start_mark.line + 1}" if key is not None else ""
        known = list(_fields_at(model, loc[:-1]))
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = (
            f" (did you mean '{close[0]}'?)" if close else f"; known settings: {', '.join(known)}"
        )
        return f"{path}{line}: unknown setting '{field}'{hint}"
    node = _node_at(root, loc)
    line = f", line {node.start_mark.line + 1}" if node is not None else ""
    message = _message(error)
    return f"{path}{line}, {field}: {message}"


def _fields_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    current: Any = model
    for part in loc:
        is_model = isinstance(current, type) and issubclass(current, BaseModel)
        info = current.model_fields.get(str(part)) if is_model else None
        annotation = getattr(info, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        current = annotation
    return list(current.model_fields)


def _message(error: Any) -> str:
    """Pydantic's message, worded for a file (the bound or choices, and what was found)."""
    kind, ctx = error["type"], error.get("ctx") or {}
    got = error.get("input")
    shown = f" (got {got!r})" if not isinstance(got, dict | list) else ""
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        words = {
            "greater_than_equal": "at least",
            "greater_than": "more than",
            "less_than_equal": "at most",
            "less_than": "less than",
        }[kind]
        bound = next(iter(ctx.values()))
        return f"must be {words} {bound}{shown}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}{shown}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"must be a whole number{shown}"
    if kind in ("float_type", "float_parsing"):
        return f"must be a number{shown}"
    if kind in ("bool_type", "bool_parsing"):
        return f"must be true or false{shown}"
    if kind == "string_type":
        return f"must be text{shown}"
    if kind == "model_type":
        return f"must be a mapping of 'setting: value' lines{shown}"
    if kind == "list_type":
        return f"must be a list, e.g. [xgboost, lightgbm]{shown}"
    text = str(error["msg"]).removeprefix("Value error, ")
    return f"{text}{shown}" if kind not in ("value_error", "too_short") else text
