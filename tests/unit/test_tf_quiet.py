"""TensorFlow's start-up notices stay off the terminal; its real errors and all else do not."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from clv.models import _tf_quiet

#: What ``make demo`` printed before: each would look like a failure to a newcomer.
NOISE = ("node_def_util.cc", "oneDNN custom operations", "absl::InitializeLog", "cpu_feature_guard")

FIT_TINY_ZILN = """
import numpy as np, pandas as pd
from clv.models.keras_ziln import KerasZILNModel
rng = np.random.default_rng(0)
X = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
y = pd.Series(np.where(rng.random(200) < 0.5, np.exp(rng.normal(size=200)), 0.0))
params = {"hidden_units": [4], "epochs": 2, "batch_size": 64, "seed": 1, "n_members": 1}
model = KerasZILNModel(params).fit(X, y, X_val=X, y_val=y)
print("predicted", float(model.predict(X).sum()))
"""


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**clean, **env},
        check=False,
    )


@pytest.mark.slow
def test_fitting_a_keras_ziln_model_prints_no_tensorflow_notices() -> None:
    done = _python(FIT_TINY_ZILN)
    assert done.returncode == 0, done.stderr
    assert "predicted" in done.stdout
    noisy = [line for line in done.stderr.splitlines() if any(n in line for n in NOISE)]
    assert noisy == []


def test_the_filter_drops_only_the_known_harmless_lines() -> None:
    done = _python(
        """
        import os, sys
        from clv.models._tf_quiet import filtered_stderr
        with filtered_stderr():
            os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are "
                        b"written to STDERR\\n")
            os.write(2, b"E0000 00:00:1.2 1 node_def_util.cc:682] NodeDef mentions attribute "
                        b"use_unbounded_threadpool which is not in the op definition\\n")
            os.write(2, b"E0000 00:00:1.3 1 op_kernel.cc:1830] OP_REQUIRES failed: real error\\n")
            print("python's own stderr", file=sys.stderr)
            os.write(2, b"no newline at the end")
        os.write(2, b"\\nafter the block\\n")
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        "E0000 00:00:1.3 1 op_kernel.cc:1830] OP_REQUIRES failed: real error",
        "python's own stderr",
        "no newline at the end",
        "after the block",
    ]


def test_nested_filters_restore_stderr_only_when_the_outer_block_ends() -> None:
    done = _python(
        """
        import os
        from clv.models._tf_quiet import filtered_stderr
        with filtered_stderr():
            with filtered_stderr():
                os.write(2, b"inner\\n")
            os.write(2, b"port.cc:153] oneDNN custom operations are on\\n")
            os.write(2, b"outer\\n")
        os.write(2, b"port.cc:153] oneDNN custom operations are on\\n")
        """
    )
    # After the outer block the filter is gone: the same notice then reaches the terminal.
    assert done.stderr.splitlines() == [
        "inner",
        "outer",
        "port.cc:153] oneDNN custom operations are on",
    ]


def test_the_users_own_log_level_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    _tf_quiet.quiet_environment()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL")
    _tf_quiet.quiet_environment()
    # 2, not 3: TensorFlow's errors stay visible.
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"
