"""The MLflow pyfunc wrapper of a clv model bundle, logged as a *model from code*.

MLflow executes this file by path: :func:`clv.tracking.register_bundle` logs it as the model's
code, MLflow copies it into the logged model and runs it again on load. It is never imported by the
``clv`` package, and nothing is pickled. The wrapped bundle is the folder logged under the
``bundle`` artifact key: native model files plus a ``manifest.json`` whose SHA-256 hashes are
verified before anything is loaded.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel, PythonModelContext

from clv.models.base import read_manifest

#: Artifact key (and folder name inside the logged model) of the bundle.
BUNDLE_ARTIFACT = "bundle"
#: The model name written in a bundle's manifest.
BUNDLE_MANIFEST_NAME = "clv-bundle"


class BundleModel(PythonModel):
    """Serve a clv bundle: verify its hashes on load, load the models lazily on first predict.

    Loading is lazy so that MLflow's own bookkeeping (logging, signature checks) never pays for
    importing TensorFlow and friends.
    """

    def __init__(self) -> None:
        self._bundle_dir: Path | None = None
        self._bundle: Any = None

    def load_context(self, context: PythonModelContext) -> None:
        """Verify every file of the bundle against its manifest."""
        bundle_dir = Path(context.artifacts[BUNDLE_ARTIFACT])
        read_manifest(bundle_dir, expected_model=BUNDLE_MANIFEST_NAME)
        self._bundle_dir = bundle_dir

    def predict(
        self,
        context: PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> Any:
        """Predict with the bundle's ``predict_frame`` (one row out per customer row in)."""
        if self._bundle is None:
            if self._bundle_dir is None:  # predict without load_context: MLflow never does this
                self.load_context(context)
            if self._bundle_dir is None:
                raise RuntimeError(
                    "this MLflow model has no bundle folder in its artifacts: log it again with "
                    "clv.tracking.register_bundle"
                )
            try:
                # Imported by name: the bundle loader belongs to the training package, which may be
                # missing from a serving image that was built without it.
                bundle_module = importlib.import_module("clv.training.bundle")
            except ImportError as err:
                raise RuntimeError(
                    "this MLflow model wraps a clv bundle, which needs clv.training.bundle to "
                    f"load; install the clv-platform package that trained it ({err})"
                ) from err
            self._bundle = bundle_module.load_bundle(self._bundle_dir)
        return self._bundle.predict_frame(model_input)


mlflow.models.set_model(BundleModel())
