"""Experiment tracking and the model registry: the only module that talks to MLflow.

Training runs, Optuna trials (nested runs), model bundles registered as pyfunc *models from code*,
the ``challenger`` / ``champion`` aliases and the promotion gate all live here, so the rest of the
platform codes against plain functions and dataclasses.

Where things go
---------------
``MLFLOW_TRACKING_URI`` wins when set (a tracking server, or any backend store URI). Otherwise a
SQLite store under ``CLV_HOME`` is used: ``{home}/mlflow/mlflow.db``, with artifacts in
``{home}/mlflow/artifacts``. MLflow's own default (``./mlruns`` and ``./mlflow.db`` in whatever
folder the process was started from) is never used.

MLflow is imported lazily, inside the functions: importing this module stays cheap.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clv.models.base import read_manifest
from clv.settings import get_settings

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.tracking import MlflowClient

    from clv.training.gates import Verdict

_log = logging.getLogger(__name__)

SPEND_MODEL = "clv-spend"
CHURN_MODEL = "clv-churn"
CHALLENGER = "challenger"
CHAMPION = "champion"
FINGERPRINT_TAG = "clv.fingerprint"

#: Version tags written by the trainer: ``metric.<name>`` is the version's own holdout score,
#: ``champion_metric.<name>`` the then-champion's score on that same holdout and
#: ``reference_metric.<ref>.<name>`` a reference's (BG/NBD + Gamma-Gamma, run rate, ...).
METRIC_TAG_PREFIX = "metric."
CHAMPION_METRIC_TAG_PREFIX = "champion_metric."
REFERENCE_METRIC_TAG_PREFIX = "reference_metric."
#: Which champion version the ``champion_metric.*`` tags were measured for.
CHAMPION_VERSION_TAG = "champion_version"
#: Where the ``champion_metric.*`` tags were measured: ``training`` or ``promote``.
CHAMPION_SCORED_TAG = "champion_scored"
#: SHA-256 of the training run's holdout rows (artifact ``holdout/holdout.parquet``).
HOLDOUT_SHA_TAG = "holdout.sha256"
HOLDOUT_ARTIFACT_DIR = "holdout"
HOLDOUT_FILE = "holdout.parquet"

#: Primary metric of each registered model and whether higher is better.
PRIMARY_METRICS: dict[str, tuple[str, bool]] = {
    SPEND_MODEL: ("holdout_normalized_gini", True),
    CHURN_MODEL: ("holdout_brier", False),
}
#: Metrics shown beside the primary one in ``clv promote``'s table (not gated).
SECONDARY_METRICS: dict[str, tuple[str, ...]] = {
    SPEND_MODEL: ("holdout_decile_mape", "holdout_abs_aggregate_error", "holdout_top20_lift"),
    CHURN_MODEL: ("holdout_auc", "holdout_calibration_error"),
}

#: The name of the bundle inside manifest.json, and its artifact key inside the pyfunc model.
BUNDLE_MANIFEST_NAME = "clv-bundle"
BUNDLE_ARTIFACT = "bundle"
#: The models-from-code file MLflow stores with each model (executed by MLflow, never pickled).
PYFUNC_CODE = Path(__file__).with_name("mlflow_pyfunc.py")

#: Client defaults unless set in the environment: MLflow's own (7 retries, 120 s timeout) keep a
#: client waiting about four minutes on a dead server.
_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
    # Progress bars for a handful of small files only clutter the command line's output.
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}
_SERVER_SCHEMES = ("http://", "https://")
_NOT_FOUND_CODES = frozenset({"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"})
_ALREADY_EXISTS_CODES = frozenset({"RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"})


class NoSuchModelError(LookupError):
    """The registered model, version or alias asked for does not exist."""


class PromotionRefused(ValueError):  # noqa: N818 (the name other modules code against)
    """The promotion gate refused a challenger: worse than the champion or a reference, or a
    comparison on its holdout could not be made."""


# --------------------------------------------------------------------------------------------------
# Where MLflow stores things


def _mlflow_home() -> Path:
    return get_settings().home.resolve() / "mlflow"


def tracking_uri() -> str:
    """The tracking (and registry) URI this process uses.

    Returns
    -------
    str
        ``MLFLOW_TRACKING_URI`` when set; otherwise ``sqlite:///{CLV_HOME}/mlflow/mlflow.db``
        (the folder is created).
    """
    configured = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if configured:
        return configured
    folder = _mlflow_home()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder}/mlflow.db"


def _is_server(uri: str) -> bool:
    return uri.startswith(_SERVER_SCHEMES) or uri.startswith("databricks")


def configure() -> str:
    """Point MLflow's tracking and registry at :func:`tracking_uri`.

    Also sets small HTTP retry and timeout defaults (unless the environment sets them), so a dead
    tracking server fails in seconds, not minutes.

    Returns
    -------
    str
        The URI now in use.
    """
    import mlflow

    for name, value in _HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    uri = tracking_uri()
    # mlflow.set_tracking_uri/set_registry_uri also export MLFLOW_TRACKING_URI/MLFLOW_REGISTRY_URI
    # for subprocesses. Put the environment back as it was: otherwise the derived default would
    # look like a user's choice afterwards and outlive a change of CLV_HOME.
    saved = {name: os.environ.get(name) for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    try:
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
    finally:
        for name, previous in saved.items():
            if previous is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = previous
    return uri


def _client() -> MlflowClient:
    from mlflow.tracking import MlflowClient

    uri = configure()
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _artifact_root() -> Path:
    return _mlflow_home() / "artifacts"


def _artifact_location(experiment: str, uri: str) -> str | None:
    """Artifact folder for a new experiment: the server decides, else under ``CLV_HOME``."""
    if _is_server(uri):
        return None
    folder = _artifact_root() / re.sub(r"[^A-Za-z0-9._-]+", "_", experiment)
    folder.mkdir(parents=True, exist_ok=True)
    return folder.as_uri()


def ui_hint() -> str:
    """One line telling a person how to open the MLflow UI for the current tracking URI.

    Returns
    -------
    str
        The server URL for an ``http(s)`` tracking URI, else an ``mlflow ui`` command line.
    """
    uri = tracking_uri()
    if _is_server(uri):
        return f"MLflow UI: {uri}"
    if uri.startswith("sqlite:") and not os.environ.get("MLFLOW_TRACKING_URI", "").strip():
        return (
            f"mlflow ui --backend-store-uri {uri} "
            f"--default-artifact-root {_artifact_root().as_uri()} --port 5000"
        )
    return f"mlflow ui --backend-store-uri {uri} --port 5000"


def _error_code(err: Exception) -> str:
    return str(getattr(err, "error_code", ""))


def _ensure_experiment(client: MlflowClient, name: str, uri: str) -> str:
    from mlflow.exceptions import MlflowException

    existing = client.get_experiment_by_name(name)
    if existing is not None:
        if existing.lifecycle_stage == "deleted":
            client.restore_experiment(existing.experiment_id)
        return str(existing.experiment_id)
    try:
        return str(client.create_experiment(name, artifact_location=_artifact_location(name, uri)))
    except MlflowException as err:  # created meanwhile by another process
        if _error_code(err) not in _ALREADY_EXISTS_CODES:
            raise
        created = client.get_experiment_by_name(name)
        if created is None:
            raise
        return str(created.experiment_id)


# --------------------------------------------------------------------------------------------------
# Runs


def _now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


def _batch(
    client: MlflowClient,
    run_id: str,
    *,
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, float] | None = None,
    tags: Mapping[str, Any] | None = None,
    step: int | None = None,
) -> None:
    from mlflow.entities import Metric, Param, RunTag

    now = _now_ms()
    client.log_batch(
        run_id,
        metrics=[Metric(k, float(v), now, step or 0) for k, v in (metrics or {}).items()],
        params=[Param(k, str(v)) for k, v in (params or {}).items()],
        tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()],
    )


@dataclass
class RunHandle:
    """An open MLflow run: log to it, and hang nested trial runs under it.

    Attributes
    ----------
    run_id, experiment_id : str
        MLflow ids.
    url : str
        The run's page for an ``http(s)`` tracking server, else its artifact URI.
    """

    run_id: str
    experiment_id: str
    url: str
    _client: MlflowClient = field(repr=False)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log parameters (values are stored as strings)."""
        _batch(self._client, self.run_id, params=params)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log metric values, optionally at a step (epoch, trial, fold)."""
        _batch(self._client, self.run_id, metrics=metrics, step=step)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set run tags (values are stored as strings)."""
        _batch(self._client, self.run_id, tags=tags)

    def log_artifact(self, path: Path | str, artifact_path: str | None = None) -> None:
        """Upload a local file (or folder, via ``log_artifacts`` semantics) to the run."""
        local = Path(path)
        if local.is_dir():
            self._client.log_artifacts(self.run_id, str(local), artifact_path)
        else:
            self._client.log_artifact(self.run_id, str(local), artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        """Store ``text`` as the artifact ``artifact_file`` (e.g. ``"reports/summary.md"``)."""
        self._client.log_text(self.run_id, text, artifact_file)

    def log_dict(self, obj: dict[str, Any], artifact_file: str) -> None:
        """Store a JSON (``.json``) or YAML (``.yaml``) document as an artifact."""
        self._client.log_dict(self.run_id, obj, artifact_file)

    def nested(
        self,
        run_name: str,
        params: Mapping[str, Any],
        metrics: Mapping[str, float],
        tags: Mapping[str, Any] | None = None,
    ) -> str:
        """Record a finished child run (one Optuna trial, one fold) under this run.

        Parameters
        ----------
        run_name : str
            Name shown in the UI, e.g. ``"trial-007"``.
        params, metrics, tags : mapping
            What the child run records.

        Returns
        -------
        str
            The child run's id. It carries the ``mlflow.parentRunId`` tag.
        """
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

        child = self._client.create_run(
            self.experiment_id,
            run_name=run_name,
            tags={
                **{k: str(v) for k, v in (tags or {}).items()},
                MLFLOW_PARENT_RUN_ID: self.run_id,
            },
        )
        child_id = str(child.info.run_id)
        try:
            _batch(self._client, child_id, params=params, metrics=metrics)
        except Exception:
            self._client.set_terminated(child_id, "FAILED")
            raise
        self._client.set_terminated(child_id, "FINISHED")
        return child_id


def _run_url(uri: str, experiment_id: str, run_id: str, artifact_uri: str | None) -> str:
    if uri.startswith(_SERVER_SCHEMES):
        return f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
    return artifact_uri or run_id


@contextmanager
def training_run(experiment: str, run_name: str, *, tags: Mapping[str, str]) -> Iterator[RunHandle]:
    """Open a parent run for one training job; it ends FINISHED, or FAILED on an exception.

    Parameters
    ----------
    experiment : str
        Experiment name; created when missing (with its artifacts under ``CLV_HOME`` for a local
        store).
    run_name : str
        Name shown in the UI.
    tags : mapping
        Run tags, e.g. the data fingerprint and git commit.

    Yields
    ------
    RunHandle
        Log params, metrics, artifacts and nested trial runs through it. The run is also MLflow's
        active run inside the block (nested under an already active run, if any).
    """
    import mlflow

    client = _client()
    uri = tracking_uri()
    experiment_id = _ensure_experiment(client, experiment, uri)
    with mlflow.start_run(
        experiment_id=experiment_id,
        run_name=run_name,
        tags={k: str(v) for k, v in tags.items()},
        nested=mlflow.active_run() is not None,
    ) as run:
        run_id = str(run.info.run_id)
        yield RunHandle(
            run_id=run_id,
            experiment_id=experiment_id,
            url=_run_url(uri, experiment_id, run_id, run.info.artifact_uri),
            _client=client,
        )


def attach_run(run_id: str) -> RunHandle:
    """A handle on an existing run, e.g. from a task that runs outside the ``training_run`` block.

    Logging through it does not reopen the run or change its status.

    Parameters
    ----------
    run_id : str
        The run, usually ``RunHandle.run_id`` of a :func:`training_run`.

    Returns
    -------
    RunHandle

    Raises
    ------
    LookupError
        When the run does not exist.
    """
    from mlflow.exceptions import MlflowException

    client = _client()
    try:
        run = client.get_run(run_id)
    except MlflowException as err:
        if _error_code(err) in _NOT_FOUND_CODES:
            raise LookupError(f"no MLflow run {run_id} at {tracking_uri()}") from err
        raise
    experiment_id = str(run.info.experiment_id)
    return RunHandle(
        run_id=run_id,
        experiment_id=experiment_id,
        url=_run_url(tracking_uri(), experiment_id, run_id, run.info.artifact_uri),
        _client=client,
    )


# --------------------------------------------------------------------------------------------------
# Registry


@dataclass(frozen=True)
class RegisteredVersion:
    """Result of :func:`register_bundle`: ``created`` is False when the fingerprint was known."""

    name: str
    version: int
    created: bool
    run_id: str | None


@dataclass(frozen=True)
class VersionInfo:
    """A registered model version, as the CLI and the promotion gate see it."""

    name: str
    version: int
    aliases: list[str]
    tags: dict[str, str]
    run_id: str | None
    created: datetime
    description: str


def _info(mv: ModelVersion, aliases: Mapping[str, Any]) -> VersionInfo:
    """``aliases`` is the registered model's alias -> version map (search results lack aliases)."""
    return VersionInfo(
        name=str(mv.name),
        version=int(mv.version),
        aliases=sorted(a for a, v in aliases.items() if int(v) == int(mv.version)),
        tags={str(k): str(v) for k, v in (mv.tags or {}).items()},
        run_id=mv.run_id or None,
        created=datetime.fromtimestamp((mv.creation_timestamp or 0) / 1000, tz=UTC),
        description=mv.description or "",
    )


def _quoted(value: str, what: str) -> str:
    if "'" in value or "\\" in value:
        raise ValueError(f"{what} {value!r} may not contain quotes or backslashes")
    return f"'{value}'"


def _search_versions(client: MlflowClient, filter_string: str) -> list[ModelVersion]:
    found: list[ModelVersion] = []
    page_token: str | None = None
    while True:
        page = client.search_model_versions(filter_string, page_token=page_token)
        found.extend(page)
        page_token = page.token
        if not page_token:
            return found


def _versions_with_fingerprint(
    client: MlflowClient, model_name: str, fingerprint: str
) -> list[ModelVersion]:
    """Versions of ``model_name`` tagged with ``fingerprint``, oldest first."""
    query = (
        f"name = {_quoted(model_name, 'model name')} "
        f"and tags.`{FINGERPRINT_TAG}` = {_quoted(fingerprint, 'fingerprint')}"
    )
    return sorted(_search_versions(client, query), key=lambda mv: int(mv.version))


def find_by_fingerprint(model_name: str, fingerprint: str) -> VersionInfo | None:
    """The version of ``model_name`` registered for ``fingerprint``, if any.

    Parameters
    ----------
    model_name : str
        Registered model name.
    fingerprint : str
        Value of the :data:`FINGERPRINT_TAG` version tag.

    Returns
    -------
    VersionInfo or None
        The oldest such version (there is one unless a registration is in flight), else None.
    """
    client = _client()
    known = _versions_with_fingerprint(client, model_name, fingerprint)
    if not known:
        return None
    return _info(known[0], _aliases(client, model_name) or {})


def _ensure_registered_model(client: MlflowClient, model_name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(model_name)
    except MlflowException as err:
        if _error_code(err) not in _ALREADY_EXISTS_CODES:
            raise


def _save_pyfunc_without_serving_check(
    *, validate_serving_input: bool = True, **kwargs: Any
) -> Any:
    """``mlflow.pyfunc.save_model`` as a ``Model.log`` flavor that takes ``validate_serving_input``.

    ``mlflow.pyfunc.log_model`` always validates the input example by loading the logged model and
    predicting with it in this process: a whole bundle load (TensorFlow included) per registration,
    and a logged warning when it fails. ``Model.log`` lets a flavor skip that check, which is all
    this adapter is for; the model is still saved by ``mlflow.pyfunc.save_model``.
    """
    import mlflow.pyfunc

    return mlflow.pyfunc.save_model(**kwargs)


def _log_bundle_model(
    run: RunHandle,
    bundle_dir: Path,
    *,
    fingerprint: str,
    input_example: pd.DataFrame,
    output_example: pd.DataFrame | np.ndarray,
) -> tuple[str, str]:
    """Log a verified bundle as a pyfunc model from code; return (model URI, logged model id)."""
    from types import SimpleNamespace

    from mlflow.models import Model, infer_signature

    import clv

    signature = infer_signature(input_example, output_example)
    info = Model.log(
        artifact_path=None,  # deprecated, yet a required argument of Model.log in 3.17
        name="model",
        flavor=SimpleNamespace(save_model=_save_pyfunc_without_serving_check),
        flavor_name="pyfunc.ModelFromCode",
        run_id=run.run_id,
        python_model=str(PYFUNC_CODE),
        artifacts={BUNDLE_ARTIFACT: str(bundle_dir)},
        signature=signature,
        input_example=input_example,
        # Explicit requirements: MLflow otherwise loads the model and records what it imports.
        pip_requirements=[f"clv-platform=={clv.__version__}"],
        tags={FINGERPRINT_TAG: fingerprint},
        validate_serving_input=False,
    )
    return str(info.model_uri), str(info.model_id)


def register_bundle(
    model_name: str,
    bundle_dir: Path,
    *,
    run: RunHandle,
    fingerprint: str,
    tags: Mapping[str, str],
    input_example: pd.DataFrame,
    output_example: pd.DataFrame | np.ndarray,
    description: str = "",
) -> RegisteredVersion:
    """Register a model bundle as a new version aliased ``challenger``, once per fingerprint.

    The bundle folder (native model files and a ``manifest.json`` named ``clv-bundle``) is verified,
    logged to ``run`` as a pyfunc *model from code* (``clv/mlflow_pyfunc.py``; nothing pickled)
    and registered with ``tags`` plus :data:`FINGERPRINT_TAG`.

    Parameters
    ----------
    model_name : str
        Registered model, e.g. :data:`SPEND_MODEL`; created when missing.
    bundle_dir : Path
        The bundle folder.
    run : RunHandle
        The training run the model is logged to.
    fingerprint : str
        Identifies what was trained (data, code, parameters). A version already carrying it is
        returned instead of registering again.
    tags : mapping
        Version tags, e.g. ``metric.holdout_normalized_gini``.
    input_example, output_example : DataFrame or ndarray
        A few rows in and their predictions out: the model signature is inferred from them.
    description : str
        Version description shown in the UI.

    Returns
    -------
    RegisteredVersion
        ``created`` is False when a version with this fingerprint already existed (nothing was
        logged), or when a concurrent registration of the same fingerprint won.

    Raises
    ------
    IntegrityError
        When the bundle does not match its manifest.
    """
    client = _client()
    known = _versions_with_fingerprint(client, model_name, fingerprint)
    if known:
        _log.info(
            "%s: fingerprint %s already registered as version %s",
            model_name,
            fingerprint,
            known[0].version,
        )
        return RegisteredVersion(model_name, int(known[0].version), False, known[0].run_id or None)

    _ensure_registered_model(client, model_name)
    with tempfile.TemporaryDirectory(prefix="clv-bundle-") as tmp:
        # MLflow names the artifact folder after the source folder: stage it as "bundle", and
        # verify the very bytes that are uploaded.
        staged = Path(tmp) / BUNDLE_ARTIFACT
        shutil.copytree(bundle_dir, staged)
        read_manifest(staged, expected_model=BUNDLE_MANIFEST_NAME)
        model_uri, model_id = _log_bundle_model(
            run,
            staged,
            fingerprint=fingerprint,
            input_example=input_example,
            output_example=output_example,
        )
    version = client.create_model_version(
        model_name,
        source=model_uri,
        run_id=run.run_id,
        tags={**{k: str(v) for k, v in tags.items()}, FINGERPRINT_TAG: fingerprint},
        description=description or None,
        model_id=model_id,
    )
    # Two trainers racing on one fingerprint both get here. Version numbers only grow and the tag
    # is written with the version, so the oldest tagged version is the one everybody keeps.
    oldest = _versions_with_fingerprint(client, model_name, fingerprint)[0]
    if oldest.version != version.version:
        client.delete_model_version(model_name, str(version.version))
        return RegisteredVersion(model_name, int(oldest.version), False, oldest.run_id or None)
    client.set_registered_model_alias(model_name, CHALLENGER, str(version.version))
    _log.info("registered %s version %s (alias %s)", model_name, version.version, CHALLENGER)
    return RegisteredVersion(model_name, int(version.version), True, run.run_id)


def _selector(alias: str | None, version: int | None, latest: bool) -> None:
    if (alias is not None) + (version is not None) + bool(latest) != 1:
        raise ValueError("give exactly one of alias=, version= or latest=True")


def get_version(
    model_name: str,
    *,
    alias: str | None = None,
    version: int | None = None,
    latest: bool = False,
) -> VersionInfo | None:
    """One version of a registered model, by alias, by number, or the newest.

    Parameters
    ----------
    model_name : str
        Registered model name.
    alias, version, latest
        Exactly one selector.

    Returns
    -------
    VersionInfo or None
        None when the model, version or alias does not exist.
    """
    from mlflow.exceptions import MlflowException

    _selector(alias, version, latest)
    if latest:
        versions = list_versions(model_name)
        return versions[0] if versions else None
    client = _client()
    aliases = _aliases(client, model_name)
    if aliases is None:
        return None
    if alias is not None:
        # Looked up in the alias map: a missing alias is INVALID_PARAMETER_VALUE, not "not found".
        if alias not in aliases:
            return None
        version = int(aliases[alias])
    try:
        mv = client.get_model_version(model_name, str(version))
    except MlflowException as err:
        if _error_code(err) in _NOT_FOUND_CODES:
            return None
        raise
    return _info(mv, aliases)


def _aliases(client: MlflowClient, model_name: str) -> dict[str, Any] | None:
    """The model's alias -> version map, or None when the registered model does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        registered = client.get_registered_model(model_name)
    except MlflowException as err:
        if _error_code(err) in _NOT_FOUND_CODES:
            return None
        raise
    return dict(registered.aliases or {})


def list_versions(model_name: str) -> list[VersionInfo]:
    """Every version of a registered model, newest first (empty when the model does not exist).

    Parameters
    ----------
    model_name : str
        Registered model name.

    Returns
    -------
    list of VersionInfo
    """
    client = _client()
    aliases = _aliases(client, model_name)
    if aliases is None:
        return []
    found = _search_versions(client, f"name = {_quoted(model_name, 'model name')}")
    return sorted((_info(mv, aliases) for mv in found), key=lambda info: info.version, reverse=True)


def _missing(model_name: str, alias: str | None, version: int | None) -> NoSuchModelError:
    if alias == CHAMPION:
        return NoSuchModelError(
            f"{model_name} has no {CHAMPION} yet: review a registered version and promote it with "
            f"`clv promote` (see `clv promote --help`)"
        )
    if alias is not None:
        return NoSuchModelError(f"{model_name} has no version with alias {alias!r}")
    return NoSuchModelError(f"{model_name} has no version {version}")


def download_bundle(
    model_name: str, *, alias: str | None = None, version: int | None = None, dst: Path
) -> Path:
    """Download a version's bundle folder and verify every file's SHA-256.

    Parameters
    ----------
    model_name : str
        Registered model name.
    alias, version
        Exactly one selector, e.g. ``alias="champion"``.
    dst : Path
        Folder to download into; the bundle lands in ``dst / "bundle"`` (replaced if present).

    Returns
    -------
    Path
        The verified bundle folder.

    Raises
    ------
    NoSuchModelError
        When the model, version or alias does not exist.
    IntegrityError
        When a downloaded file does not match the manifest (nothing is left in ``dst``).
    """
    import mlflow

    _selector(alias, version, False)
    info = get_version(model_name, alias=alias, version=version)
    if info is None:
        raise _missing(model_name, alias, version)
    client = _client()
    uri = tracking_uri()
    model_root = client.get_model_version_download_uri(model_name, str(info.version))
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".download-", dir=dst))
    try:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"{model_root.rstrip('/')}/artifacts/{BUNDLE_ARTIFACT}",
            dst_path=str(staging),
            tracking_uri=uri,
        )
        read_manifest(Path(local), expected_model=BUNDLE_MANIFEST_NAME)
        target = dst / BUNDLE_ARTIFACT
        if target.exists():
            shutil.rmtree(target)
        Path(local).replace(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _log.info("downloaded %s version %s to %s", model_name, info.version, target)
    return target


# --------------------------------------------------------------------------------------------------
# The holdout rows of a training run (so a champion can be scored on them at promote time)


def log_holdout(run: RunHandle, holdout: pd.DataFrame, folder: Path) -> dict[str, str]:
    """Log a run's holdout rows as a Parquet artifact whose SHA-256 is recorded.

    Parameters
    ----------
    run : RunHandle
        The training run.
    holdout : DataFrame
        The holdout feature rows: ``customer_id``, every feature, ``future_spend`` and
        ``future_purchases``.
    folder : Path
        Local folder the file is written to before upload.

    Returns
    -------
    dict of str to str
        Version tags that point at the file: :data:`HOLDOUT_SHA_TAG` (also set on the run).
    """
    from clv.models.base import sha256_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / HOLDOUT_FILE
    holdout.reset_index(drop=True).to_parquet(path, index=False)
    digest = sha256_file(path)
    run.log_artifact(path, HOLDOUT_ARTIFACT_DIR)
    run.set_tags({HOLDOUT_SHA_TAG: digest})
    return {HOLDOUT_SHA_TAG: digest}


def download_holdout(run_id: str, sha256: str, dst: Path) -> pd.DataFrame:
    """The holdout rows :func:`log_holdout` stored with a run, verified against ``sha256``.

    Raises
    ------
    LookupError
        When the run or its holdout file does not exist.
    IntegrityError
        When the downloaded file's SHA-256 differs from ``sha256``.
    """
    import mlflow
    import pandas as pd
    from mlflow.exceptions import MlflowException

    from clv.models.base import IntegrityError, sha256_file

    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    try:
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id,
            artifact_path=f"{HOLDOUT_ARTIFACT_DIR}/{HOLDOUT_FILE}",
            dst_path=str(dst),
            tracking_uri=configure(),
        )
    except (MlflowException, OSError) as err:
        raise LookupError(f"run {run_id} has no holdout rows to score on ({err})") from err
    found = sha256_file(Path(local))
    if found != sha256:
        raise IntegrityError(
            f"the holdout rows of run {run_id} do not match the SHA-256 recorded at training "
            f"({found[:12]}… vs {sha256[:12]}…): the artifact was changed; retrain to compare"
        )
    return pd.read_parquet(local)


# --------------------------------------------------------------------------------------------------
# Promotion


def primary_metric(model_name: str) -> tuple[str, bool]:
    """The metric that gates promotion of ``model_name``, and whether higher is better.

    Names that start with ``clv-spend-`` or ``clv-churn-`` (per-market or test registries) use the
    metric of their family.

    Raises
    ------
    ValueError
        For a model name of neither family.
    """
    return PRIMARY_METRICS[_family(model_name)]


def _family(model_name: str) -> str:
    for family in PRIMARY_METRICS:
        if model_name == family or model_name.startswith(f"{family}-"):
            return family
    raise ValueError(
        f"no promotion metric for {model_name!r}; known models: {', '.join(PRIMARY_METRICS)}"
    )


def references(model_name: str) -> tuple[tuple[str, str], ...]:
    """The references a challenger of ``model_name`` must beat: (report key, label) pairs."""
    from clv.training.gates import CHURN_REFERENCES, SPEND_REFERENCES

    return SPEND_REFERENCES if _family(model_name) == SPEND_MODEL else CHURN_REFERENCES


def reference_tags(metrics: Mapping[str, Mapping[str, float]]) -> dict[str, str]:
    """Version tags for the references' holdout metrics, ``reference_metric.<ref>.holdout_<k>``.

    Parameters
    ----------
    metrics : mapping
        Reference key (e.g. ``"bgnbd_gamma_gamma"``) → its holdout metrics, as the training
        report holds them.
    """
    return {
        f"{REFERENCE_METRIC_TAG_PREFIX}{name}.holdout_{key}": f"{float(value):.6g}"
        for name, values in metrics.items()
        for key, value in values.items()
    }


def _as_float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _fmt(value: float | None) -> str:
    return "—" if value is None or value != value else f"{value:.4f}"


def _metric_tags(tags: Mapping[str, str], prefix: str) -> dict[str, float | None]:
    return {k[len(prefix) :]: _as_float(v) for k, v in tags.items() if k.startswith(prefix)}


def _reference_scores(tags: Mapping[str, str], reference: str) -> dict[str, float | None]:
    """A reference's holdout metrics from a version's tags (with the older Gini-only tag)."""
    scores = _metric_tags(tags, f"{REFERENCE_METRIC_TAG_PREFIX}{reference}.")
    # Versions registered before the reference_metric.* tags carried only the Gini, as
    # metric.holdout_<reference>_normalized_gini (measured on the same holdout).
    legacy = _as_float(tags.get(f"{METRIC_TAG_PREFIX}holdout_{reference}_normalized_gini"))
    if legacy is not None:
        scores.setdefault("holdout_normalized_gini", legacy)
    return scores


@dataclass(frozen=True)
class Comparison:
    """A challenger against the champion and the references, on the challenger's holdout.

    Attributes
    ----------
    columns : list of str
        Header of the side-by-side table: metric, challenger, champion (if any), references.
    rows : list of tuple of str
        One row per metric (the primary first, then secondary ones), formatted.
    verdict : clv.training.gates.Verdict
        The gate's checks on the primary metric.
    champion_scored_now : bool
        True when the champion was scored on the challenger's holdout by this comparison.
    """

    model_name: str
    challenger: VersionInfo
    champion: VersionInfo | None
    primary_metric: str
    higher_is_better: bool
    challenger_value: float | None
    champion_value: float | None
    columns: list[str]
    rows: list[tuple[str, ...]]
    verdict: Verdict
    champion_scored_now: bool = False

    @property
    def passed(self) -> bool:
        """True when the challenger is at least as good as the champion and every reference."""
        return self.verdict.passed


def _score_champion_on_holdout(
    model_name: str, challenger: VersionInfo, champion: VersionInfo
) -> tuple[dict[str, float] | None, str]:
    """The champion's metrics on the challenger's holdout rows, or (None, why not)."""
    sha = challenger.tags.get(HOLDOUT_SHA_TAG)
    if not sha or challenger.run_id is None:
        return None, (
            f"v{challenger.version}'s training run logged no holdout rows to score "
            f"v{champion.version} on; retrain the challenger"
        )
    from clv.training.bundle import ChurnBundle, SpendBundle, load_bundle
    from clv.training.pipeline import evaluate_churn_holdout, evaluate_spend_holdout

    with tempfile.TemporaryDirectory(prefix="clv-promote-") as tmp:
        try:
            holdout = download_holdout(challenger.run_id, sha, Path(tmp) / "holdout")
        except LookupError as err:
            return None, str(err)
        bundle = load_bundle(
            download_bundle(model_name, version=champion.version, dst=Path(tmp) / "champion")
        )
    horizon = challenger.tags.get("horizon_days")
    if horizon is not None and str(bundle.horizon_days) != horizon:
        return None, (
            f"v{champion.version} predicts {bundle.horizon_days} days, the challenger's holdout "
            f"{horizon} days: not comparable"
        )
    missing = [c for c in bundle.feature_columns if c not in holdout.columns]
    if missing:
        return None, (
            f"v{champion.version} reads features the challenger's holdout lacks: "
            f"{', '.join(missing[:5])}{' …' if len(missing) > 5 else ''}"
        )
    if isinstance(bundle, SpendBundle) and _family(model_name) == SPEND_MODEL:
        return evaluate_spend_holdout(bundle, holdout), ""
    if isinstance(bundle, ChurnBundle) and _family(model_name) == CHURN_MODEL:
        return evaluate_churn_holdout(bundle, holdout), ""
    return None, f"v{champion.version} is not a {_family(model_name)} bundle"


def compare(model_name: str, version: int, *, score_champion: bool = True) -> Comparison:
    """Compare a version with the champion and the references on the version's own holdout.

    The challenger's scores are its ``metric.<name>`` tags, the references' its
    ``reference_metric.<ref>.<name>`` tags (fitted and scored in the same training run). The
    champion's score is the challenger's ``champion_metric.<name>`` tag when it was measured for
    the current champion (tag ``champion_version``). Otherwise the champion is scored now on the
    challenger's holdout rows (the run's Parquet artifact, SHA-256 checked), and the result is
    stored as those tags; metrics of different holdouts are never compared.

    Parameters
    ----------
    model_name : str
        Registered model name.
    version : int
        The challenger version.
    score_champion : bool
        Score the champion on the challenger's holdout when no such score is recorded (downloads
        both; may take a while for a large holdout). False leaves it missing.

    Returns
    -------
    Comparison

    Raises
    ------
    NoSuchModelError
        When the version does not exist.
    IntegrityError
        When the champion's bundle or the holdout rows do not match their recorded SHA-256.
    """
    from clv.training.gates import CHAMPION as CHAMPION_KEY
    from clv.training.gates import judge

    metric, higher_is_better = primary_metric(model_name)
    challenger = get_version(model_name, version=version)
    if challenger is None:
        raise _missing(model_name, None, version)
    champion = get_version(model_name, alias=CHAMPION)
    if champion is not None and champion.version == challenger.version:
        champion = None  # the champion is not its own opponent

    own = _metric_tags(challenger.tags, METRIC_TAG_PREFIX)
    theirs: dict[str, float | None] = {}
    reasons: dict[str, str] = {}
    scored_now = False
    if champion is not None:
        measured_for = challenger.tags.get(CHAMPION_VERSION_TAG)
        recorded = _metric_tags(challenger.tags, CHAMPION_METRIC_TAG_PREFIX)
        if recorded and measured_for == str(champion.version):
            theirs = recorded
        elif score_champion:
            scores, why = _score_champion_on_holdout(model_name, challenger, champion)
            if scores is not None:
                measured = {f"holdout_{k}": float(v) for k, v in scores.items()}
                scored_now = True
                _record_champion_scores(model_name, challenger.version, champion.version, measured)
                theirs = dict(measured)
            else:
                reasons[CHAMPION_KEY] = why
        else:
            reasons[CHAMPION_KEY] = "not scored on the challenger's holdout"

    refs = references(model_name)
    ref_scores = {key: _reference_scores(challenger.tags, key) for key, _ in refs}
    champion_label = f"champion v{champion.version}" if champion is not None else ""
    opponents: dict[str, float | None] = {}
    missing_reasons: dict[str, str] = {}
    if champion is not None:
        opponents[champion_label] = theirs.get(metric)
        if CHAMPION_KEY in reasons:
            missing_reasons[champion_label] = reasons[CHAMPION_KEY]
    for key, label in refs:
        opponents[label] = ref_scores[key].get(metric)
        if opponents[label] is None:
            missing_reasons[label] = "not recorded by the training run"
    verdict = judge(
        metric,
        higher_is_better=higher_is_better,
        challenger=own.get(metric),
        opponents=opponents,
        missing_reasons=missing_reasons,
    )

    columns = ["metric", f"v{challenger.version} (challenger)"]
    if champion is not None:
        columns.append(champion_label)
    columns += [label for _, label in refs]
    rows: list[tuple[str, ...]] = []
    for name in (metric, *SECONDARY_METRICS[_family(model_name)]):
        cells = [name, _fmt(own.get(name))]
        if champion is not None:
            cells.append(_fmt(theirs.get(name)))
        cells += [_fmt(ref_scores[key].get(name)) for key, _ in refs]
        rows.append(tuple(cells))
    return Comparison(
        model_name=model_name,
        challenger=challenger,
        champion=champion,
        primary_metric=metric,
        higher_is_better=higher_is_better,
        challenger_value=own.get(metric),
        champion_value=theirs.get(metric) if champion is not None else None,
        columns=columns,
        rows=rows,
        verdict=verdict,
        champion_scored_now=scored_now,
    )


def _record_champion_scores(
    model_name: str, version: int, champion_version: int, scores: Mapping[str, float]
) -> None:
    """Store the champion's scores on a challenger's holdout as that challenger's tags."""
    client = _client()
    for key, value in {
        **{f"{CHAMPION_METRIC_TAG_PREFIX}{k}": f"{v:.6g}" for k, v in scores.items()},
        CHAMPION_VERSION_TAG: str(champion_version),
        CHAMPION_SCORED_TAG: "promote",
    }.items():
        client.set_model_version_tag(model_name, str(version), key, value)


def promote(
    model_name: str, version: int, *, reviewer: str, reason: str, force: bool = False
) -> VersionInfo:
    """Move the ``champion`` alias to ``version`` if it passes the gate; record who and why.

    The gate (:func:`compare`, :func:`clv.training.gates.judge`): on the version's own holdout
    and primary metric, it must be at least as good as the champion (scored on that holdout)
    and as every reference (BG/NBD + Gamma-Gamma and the run rate for spend, BG/NBD's
    probability of no purchase for churn). A score that is missing fails the gate.

    Parameters
    ----------
    model_name : str
        Registered model name.
    version : int
        The version to promote.
    reviewer : str
        Who approved the promotion (tag ``promoted_by``).
    reason : str
        Why (tag ``promotion_reason``).
    force : bool
        Promote even when the gate refuses. The tag ``promotion_forced`` is ``"true"`` only when
        the gate was actually overridden; ``promotion_gate`` records what it said.

    Returns
    -------
    VersionInfo
        The new champion. Promoting the current champion changes nothing and returns it.

    Raises
    ------
    NoSuchModelError
        When the version does not exist.
    PromotionRefused
        When the gate refuses and ``force`` is False.
    """
    current = get_version(model_name, alias=CHAMPION)
    if current is not None and current.version == version:
        _log.info("%s version %s is already the %s; nothing changed", model_name, version, CHAMPION)
        return current
    comparison = compare(model_name, version)
    champion = comparison.champion
    if not comparison.passed and not force:
        raise PromotionRefused(
            f"{model_name} version {version} is not promoted: {comparison.verdict.message()}. "
            f"Keep the champion, or promote anyway with --force and a --reason."
        )
    client = _client()
    for key, value in {
        "promoted_by": reviewer,
        "promoted_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "promotion_reason": reason,
        "promotion_forced": "false" if comparison.passed else "true",  # the gate was overridden
        "promotion_gate": "passed" if comparison.passed else comparison.verdict.message(),
        "previous_champion": "" if champion is None else str(champion.version),
    }.items():
        client.set_model_version_tag(model_name, str(version), key, value[:5000])
    client.set_registered_model_alias(model_name, CHAMPION, str(version))
    _log.info(
        "promoted %s version %s to %s (previous: %s, forced: %s)",
        model_name,
        version,
        CHAMPION,
        champion.version if champion else "none",
        not comparison.passed,
    )
    promoted = get_version(model_name, version=version)
    if promoted is None:  # deleted between the alias move and this read
        raise _missing(model_name, None, version)
    return promoted
