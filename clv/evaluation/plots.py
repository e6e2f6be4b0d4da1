"""Evaluation charts written as PNG files: lift by decile, reliability diagram, decile totals.

Matplotlib is imported inside the functions, never when this module is imported, and only its
object-oriented API with the Agg canvas is used: no ``pyplot``, so no global figure registry and
no interactive backend. Every file is written atomically (a temporary file in the target folder,
then ``Path.replace``), so a reader never sees half a PNG and a failure leaves nothing behind.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from clv.evaluation.metrics import calibration_error, calibration_table, decile_table

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Resolution of the PNG files.
DPI = 110


def _new_figure(width: float = 8.0, height: float = 5.0) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save_png_atomically(figure: Figure, path: str | os.PathLike[str]) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        # O_EXCL: never write through someone else's file; mode 0o666 lets the umask decide.
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as handle:
            figure.savefig(handle, format="png", dpi=DPI)
        temporary.replace(target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return target


def _bin_word(n_bins: int) -> str:
    return "decile" if n_bins == 10 else f"bin (of {n_bins})"


def _check_models(models: Mapping[str, npt.ArrayLike], name: str) -> None:
    if not models:
        raise ValueError(f"{name} is empty: give at least one model's predictions by name")


def lift_plot(
    y_true: npt.ArrayLike,
    preds: Mapping[str, npt.ArrayLike],
    path: str | os.PathLike[str],
    n_bins: int = 10,
) -> Path:
    """Bar chart of the mean true value per predicted decile, one bar group per model.

    Parameters
    ----------
    y_true : array-like of shape (n,)
        True values.
    preds : mapping of str to array-like of shape (n,)
        Predictions per model name; each model is binned by its own predictions
        (see :func:`clv.evaluation.metrics.decile_table`).
    path : str or path-like
        Where to write the PNG; parent folders are created.
    n_bins : int, default 10
        Number of equal-count bins.

    Returns
    -------
    Path
        ``path``, written atomically.

    Raises
    ------
    ValueError
        When ``preds`` is empty or an input is invalid (the message names the model).
    """
    _check_models(preds, "preds")
    tables = {}
    for model, pred in preds.items():
        try:
            tables[model] = decile_table(y_true, pred, n_bins)
        except ValueError as err:
            raise ValueError(f"preds[{model!r}]: {err}") from err
    overall_mean = float(np.mean(np.asarray(y_true, dtype=np.float64)))

    figure = _new_figure()
    axes = figure.add_subplot()
    positions = np.arange(1, n_bins + 1)
    width = 0.8 / len(tables)
    for i, (model, table) in enumerate(tables.items()):
        offset = (i - (len(tables) - 1) / 2) * width
        axes.bar(positions + offset, table["mean_true"], width=width, label=model)
    axes.axhline(overall_mean, color="grey", linestyle="--", linewidth=1, label="overall mean")
    axes.set_xticks(positions)
    axes.set_xlabel(f"Bin of predicted value (1 = lowest, {n_bins} = highest; equal counts)")
    axes.set_ylabel("Mean true value per customer")
    axes.set_title(f"Lift: mean true value by predicted {_bin_word(n_bins)}")
    axes.legend()
    return _save_png_atomically(figure, path)


def calibration_plot(
    y_true_binary: npt.ArrayLike,
    probs: Mapping[str, npt.ArrayLike],
    path: str | os.PathLike[str],
    n_bins: int = 10,
) -> Path:
    """Reliability diagram: observed rate against mean predicted probability, with the diagonal.

    Parameters
    ----------
    y_true_binary : array-like of shape (n,)
        Outcomes, 0 or 1 (or booleans).
    probs : mapping of str to array-like of shape (n,)
        Predicted probabilities per model name; the legend shows each model's expected
        calibration error.
    path : str or path-like
        Where to write the PNG; parent folders are created.
    n_bins : int, default 10
        Number of equal-width probability bins; empty bins are not drawn.

    Returns
    -------
    Path
        ``path``, written atomically.

    Raises
    ------
    ValueError
        When ``probs`` is empty or an input is invalid (the message names the model).
    """
    _check_models(probs, "probs")
    curves = {}
    for model, prob in probs.items():
        try:
            table = calibration_table(y_true_binary, prob, n_bins)
            ece = calibration_error(y_true_binary, prob, n_bins)
        except ValueError as err:
            raise ValueError(f"probs[{model!r}]: {err}") from err
        curves[model] = (table[table["n"] > 0], ece)

    figure = _new_figure(6.0, 6.0)
    axes = figure.add_subplot()
    axes.plot(
        [0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfectly calibrated"
    )
    for model, (table, ece) in curves.items():
        axes.plot(
            table["mean_prob"], table["observed_rate"], marker="o", label=f"{model} (ECE {ece:.3f})"
        )
    axes.set_xlim(0.0, 1.0)
    axes.set_ylim(0.0, 1.0)
    axes.set_aspect("equal")
    axes.set_xlabel("Mean predicted probability")
    axes.set_ylabel("Observed frequency")
    axes.set_title("Reliability diagram")
    axes.legend(loc="upper left")
    return _save_png_atomically(figure, path)


def decile_sum_plot(
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike,
    path: str | os.PathLike[str],
    n_bins: int = 10,
) -> Path:
    """Bars of the sum of predictions beside the sum of true values, per predicted decile.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)
        True and predicted values.
    path : str or path-like
        Where to write the PNG; parent folders are created.
    n_bins : int, default 10
        Number of equal-count bins (see :func:`clv.evaluation.metrics.decile_table`).

    Returns
    -------
    Path
        ``path``, written atomically.

    Raises
    ------
    ValueError
        When an input is invalid.
    """
    table = decile_table(y_true, y_pred, n_bins)

    figure = _new_figure()
    axes = figure.add_subplot()
    positions = np.arange(1, n_bins + 1)
    axes.bar(positions - 0.2, table["sum_pred"], width=0.4, label="sum of predictions")
    axes.bar(positions + 0.2, table["sum_true"], width=0.4, label="sum of true values")
    axes.axhline(0.0, color="black", linewidth=0.5)
    axes.set_xticks(positions)
    axes.set_xlabel(f"Bin of predicted value (1 = lowest, {n_bins} = highest; equal counts)")
    axes.set_ylabel("Total value in bin")
    axes.set_title(f"Predicted vs true total by predicted {_bin_word(n_bins)}")
    axes.legend()
    return _save_png_atomically(figure, path)
