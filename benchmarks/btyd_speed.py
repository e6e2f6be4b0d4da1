"""Benchmark: BG/NBD and Gamma-Gamma fitting and prediction speed against ``lifetimes``.

Goal (issue: BTYD baseline): >= 10x faster than ``lifetimes`` on the same data. Baseline measured in
the same run: ``lifetimes`` 0.11.3, the reference implementation (archived), which is never
installed into the project's environment. On first use this script builds a throwaway virtual
environment in the git-ignored ``benchmarks/.cache/lifetimes-venv`` from the same interpreter
(the wheel already downloaded by ``_data.lifetimes_wheel`` plus the pins in ``LIFETIMES_PINS``)
and reuses it afterwards.

Data sets: the CDNOW summary shipped in the wheel (2,357 customers, 39 weeks, weeks as the unit)
and customers simulated from BG/NBD + Gamma-Gamma with known parameters (days as the unit,
integer ages as ``lifetimes.utils.summary_data_from_transaction_data`` produces them). Each data
set is written once to a ``.npz`` in the cache, and both implementations read the same arrays.

Protocol: one fresh interpreter per (implementation, data set, operation). In it, the inputs are
loaded and the libraries imported (not timed), then the operation runs once (reported as the
first call: what a script that fits once pays) and then up to ``--repeats`` more times within a
time budget (the best of these is reported). Predictions use each implementation's own fitted
parameters. A child still running after ``--timeout`` seconds is stopped and reported as a
timeout. Parameters of both fits and their log-likelihoods (evaluated by one formula) are printed
side by side; raw results go to ``benchmarks/.cache/btyd_speed.json``.

Usage: python benchmarks/btyd_speed.py [--sizes 100000,1000000] [--repeats 5] [--timeout 600]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import venv
from datetime import date
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
CACHE = BENCH_DIR / ".cache"
LIFETIMES_VENV = CACHE / "lifetimes-venv"
RESULTS_PATH = CACHE / "btyd_speed.json"
# lifetimes 0.11.3 (2020) declares only lower bounds (numpy>=1.10, scipy>=1.0, pandas>=0.24,
# autograd>=1.2, dill>=0.2.6). It imports, fits and predicts correctly with the same numpy,
# SciPy and pandas as the project (CDNOW parameters as published), so the baseline gets today's
# libraries and the comparison is between the two implementations, not between library versions.
LIFETIMES_PINS = (
    "numpy==2.4.6",
    "scipy==1.17.1",
    "pandas==2.3.3",
    "autograd==1.9.1",
    "dill==0.4.1",
)
CDNOW_SUMMARY = "lifetimes/datasets/cdnow_customers_summary_with_transactions.csv"
CDNOW_HORIZON_WEEKS = 39.0
SIMULATED_HORIZON_DAYS = 90.0
# True parameters of the simulation: the CDNOW estimates (Fader, Hardie & Lee 2005) with alpha
# converted from weeks to days; Gamma-Gamma as lifetimes' CDNOW example.
SIM_BGNBD = {"r": 0.243, "alpha": 4.414 * 7.0, "a": 0.793, "b": 2.426}
SIM_GAMMA_GAMMA = {"p": 6.25, "q": 3.74, "v": 15.44}
SIM_MIN_AGE_DAYS, SIM_MAX_AGE_DAYS = 30, 730
OPERATIONS = ("bgnbd_fit", "gamma_gamma_fit", "expected_purchases", "probability_alive")
OPERATION_LABELS = {
    "bgnbd_fit": "BG/NBD fit",
    "gamma_gamma_fit": "Gamma-Gamma fit (repeat buyers)",
    "expected_purchases": "conditional expected purchases",
    "probability_alive": "P(alive)",
}


# --------------------------------------------------------------------------------------------------
# Children: one operation of one implementation, in a fresh interpreter. Only the standard library
# is imported at module level, because the lifetimes child runs in the throwaway environment.
# --------------------------------------------------------------------------------------------------


def _ours(operation: str, data: Any, params: dict[str, float] | None, horizon: float) -> Any:
    from clv.models import btyd

    f, r, age = data["frequency"], data["recency"], data["T"]
    repeat = f > 0
    if operation == "bgnbd_fit":
        return lambda: _params(btyd.fit_bgnbd(f, r, age))
    if operation == "gamma_gamma_fit":
        f_rep, m_rep = f[repeat], data["monetary_value"][repeat]
        return lambda: _params(btyd.fit_gamma_gamma(f_rep, m_rep))
    assert params is not None
    fitted = btyd.BGNBDParams(**params)
    if operation == "expected_purchases":
        return lambda: btyd.bgnbd_expected_purchases(fitted, f, r, age, horizon)
    return lambda: btyd.bgnbd_probability_alive(fitted, f, r, age)


def _params(fitted: Any) -> dict[str, float]:
    from dataclasses import asdict

    return {name: float(value) for name, value in asdict(fitted).items()}


def _lifetimes(operation: str, data: Any, params: dict[str, float] | None, horizon: float) -> Any:
    import warnings

    import pandas as pd
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    # lifetimes warns about its own use of pandas/numpy APIs on every call; timing is unaffected.
    warnings.simplefilter("ignore")
    f, r, age = data["frequency"], data["recency"], data["T"]
    repeat = f > 0
    if operation == "bgnbd_fit":

        def fit_bgnbd() -> dict[str, float]:
            fitter = BetaGeoFitter(penalizer_coef=0.0).fit(f, r, age)
            return {k: float(v) for k, v in fitter.params_.items()}

        return fit_bgnbd
    if operation == "gamma_gamma_fit":
        f_rep, m_rep = f[repeat], data["monetary_value"][repeat]

        def fit_gamma_gamma() -> dict[str, float]:
            fitter = GammaGammaFitter(penalizer_coef=0.0).fit(f_rep, m_rep)
            return {k: float(v) for k, v in fitter.params_.items()}

        return fit_gamma_gamma
    assert params is not None
    fitter = BetaGeoFitter(penalizer_coef=0.0)
    fitter.params_ = pd.Series(params)[["r", "alpha", "a", "b"]]
    if operation == "expected_purchases":
        return lambda: fitter.conditional_expected_number_of_purchases_up_to_time(
            horizon, f, r, age
        )
    return lambda: fitter.conditional_probability_alive(f, r, age)


def _child(args: argparse.Namespace) -> None:
    import numpy as np

    with np.load(args.data) as npz:
        data = {name: npz[name] for name in npz.files}
    params = json.loads(args.params) if args.params else None
    build = _ours if args.child == "ours" else _lifetimes
    call = build(args.operation, data, params, args.horizon)

    def emit(record: dict[str, Any]) -> None:
        # One JSON line per event, flushed, so that a timeout still leaves the first call.
        print(json.dumps(record), flush=True)

    start = time.perf_counter()
    result = call()
    first = time.perf_counter() - start
    emit({"event": "first", "seconds": first})
    times: list[float] = []
    budget_end = time.perf_counter() + args.budget
    while len(times) < args.repeats and time.perf_counter() < budget_end:
        start = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - start)
    record: dict[str, Any] = {"event": "done", "first_s": first, "repeats_s": times}
    if isinstance(result, dict):
        record["params"] = result
    else:
        np.save(args.out, np.asarray(result, dtype=np.float64))
    emit(record)


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------


def _cdnow_npz() -> Path:
    import io
    import zipfile

    import numpy as np
    import pandas as pd
    from _data import lifetimes_wheel  # benchmarks/ is on sys.path

    with zipfile.ZipFile(lifetimes_wheel(CACHE)) as archive:
        frame = pd.read_csv(io.BytesIO(archive.read(CDNOW_SUMMARY)))
    path = CACHE / "btyd-cdnow.npz"
    np.savez(
        path,
        frequency=frame["x"].to_numpy(np.float64),
        recency=frame["t_x"].to_numpy(np.float64),
        T=frame["T"].to_numpy(np.float64),
        monetary_value=frame["zbar"].to_numpy(np.float64),
    )
    return path


def simulate_customers(n: int, *, seed: int) -> dict[str, Any]:
    """``n`` customers' (frequency, recency, T, monetary value) drawn from BG/NBD + Gamma-Gamma.

    Vectorised: a customer with purchase rate ``lam`` and dropout probability ``p`` makes
    ``J ~ Geometric(p)`` repeat purchases before dropping out, and ``K ~ Poisson(lam T)`` arrivals
    fall in ``(0, T]``, so ``x = min(J, K)``; the ``x``-th of ``K`` uniform arrival times is
    ``T * Beta(x, K - x + 1)``. Ages are whole days (as in ``summary_data_from_transaction_data``),
    recency is rounded to the day. The mean of ``x`` Gamma(``p``, ``nu``) values is
    ``Gamma(p x, x nu)``.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    g = SIM_BGNBD
    lam = rng.gamma(g["r"], 1.0 / g["alpha"], n)
    p = rng.beta(g["a"], g["b"], n)
    age = rng.integers(SIM_MIN_AGE_DAYS, SIM_MAX_AGE_DAYS + 1, n).astype(np.float64)
    purchases_before_dropout = rng.geometric(p)
    arrivals = rng.poisson(lam * age)
    x = np.minimum(purchases_before_dropout, arrivals)
    buyers = x > 0
    recency = np.zeros(n)
    recency[buyers] = np.round(age[buyers] * rng.beta(x[buyers], arrivals[buyers] - x[buyers] + 1))
    gg = SIM_GAMMA_GAMMA
    nu = rng.gamma(gg["q"], 1.0 / gg["v"], n)
    monetary = np.zeros(n)
    monetary[buyers] = rng.gamma(gg["p"] * x[buyers], 1.0 / (x[buyers] * nu[buyers]))
    return {
        "frequency": x.astype(np.float64),
        "recency": recency,
        "T": age,
        "monetary_value": monetary,
    }


def _simulated_npz(n: int, seed: int) -> Path:
    import numpy as np

    path = CACHE / f"btyd-simulated-{n}.npz"
    np.savez(path, **simulate_customers(n, seed=seed))
    return path


# --------------------------------------------------------------------------------------------------
# The lifetimes environment
# --------------------------------------------------------------------------------------------------


def _venv_python() -> Path:
    return LIFETIMES_VENV / "bin" / "python"


def _lifetimes_versions(python: Path) -> dict[str, str] | None:
    script = (
        "import json, importlib.metadata as m; print(json.dumps({n: m.version(n) for n in "
        "('lifetimes', 'numpy', 'scipy', 'pandas', 'autograd')}))"
    )
    done = subprocess.run([str(python), "-c", script], capture_output=True, text=True)
    return json.loads(done.stdout) if done.returncode == 0 else None


def ensure_lifetimes_venv() -> dict[str, str]:
    """Build the throwaway environment with lifetimes on first use; its package versions."""
    from _data import lifetimes_wheel

    python = _venv_python()
    if python.exists():
        versions = _lifetimes_versions(python)
        if versions is not None:
            return versions
    wheel = lifetimes_wheel(CACHE)
    print(f"building {LIFETIMES_VENV} (once) ...", file=sys.stderr)
    venv.EnvBuilder(with_pip=True, clear=True).create(LIFETIMES_VENV)
    install = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(
        [*install, "--only-binary=:all:", str(wheel), *LIFETIMES_PINS],
        check=True,
    )
    versions = _lifetimes_versions(python)
    if versions is None:
        raise RuntimeError(f"lifetimes does not import in {LIFETIMES_VENV}")
    return versions


# --------------------------------------------------------------------------------------------------
# Parent
# --------------------------------------------------------------------------------------------------


def _run_child(
    implementation: str,
    operation: str,
    data: Path,
    params: dict[str, float] | None,
    horizon: float,
    args: argparse.Namespace,
) -> dict[str, Any]:
    python = sys.executable if implementation == "ours" else str(_venv_python())
    out = CACHE / f"btyd-pred-{implementation}-{data.stem}-{operation}.npy"
    command = [
        python,
        str(Path(__file__).resolve()),
        "--child",
        implementation,
        "--operation",
        operation,
        "--data",
        str(data),
        "--horizon",
        str(horizon),
        "--repeats",
        str(args.repeats),
        "--budget",
        str(args.budget),
        "--out",
        str(out),
    ]
    if params is not None:
        command += ["--params", json.dumps(params)]
    env = {**os.environ, "PYTHONPATH": str(BENCH_DIR)}
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=args.timeout, env=env, cwd=BENCH_DIR
        )
    except subprocess.TimeoutExpired as expired:
        stdout = expired.stdout or b""
        lines = (stdout.decode() if isinstance(stdout, bytes) else stdout).splitlines()
        first = [json.loads(line) for line in lines if line.startswith("{")]
        return {
            "status": "timeout",
            "timeout_s": args.timeout,
            "first_s": first[0]["seconds"] if first else None,
        }
    records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    final = [r for r in records if r.get("event") == "done"]
    if done.returncode != 0 or not final:
        error = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"status": f"error: {error}"}
    result = {"status": "ok", **final[0]}
    if "params" not in result:
        result["predictions"] = str(out)
    return result


def _best_ms(result: dict[str, Any]) -> float | None:
    if result.get("status") != "ok":
        return None
    times = result["repeats_s"] or [result["first_s"]]
    return 1000.0 * min(times)


def _max_rel_diff(ours: dict[str, float], theirs: dict[str, float]) -> float:
    return max(abs(ours[k] - theirs[k]) / abs(theirs[k]) for k in theirs)


def _prediction_diff(ours_path: str, theirs_path: str) -> dict[str, float]:
    import numpy as np

    ours, theirs = np.load(ours_path), np.load(theirs_path)
    finite = np.isfinite(ours) & np.isfinite(theirs)
    scale = np.maximum(np.abs(ours), np.abs(theirs))
    compared = finite & (scale > 0)
    rel = np.abs(ours - theirs)[compared] / scale[compared]
    return {
        "max_rel_diff": float(rel.max()) if rel.size else 0.0,
        "non_finite_ours": int((~np.isfinite(ours)).sum()),
        "non_finite_lifetimes": int((~np.isfinite(theirs)).sum()),
    }


def _log_likelihoods(data: Path, fits: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Total log-likelihood of each implementation's parameters, evaluated by one formula each."""
    import numpy as np
    from scipy.special import gammaln

    from clv.models.btyd import BGNBDParams, bgnbd_log_likelihood

    with np.load(data) as npz:
        f, r, age, m = npz["frequency"], npz["recency"], npz["T"], npz["monetary_value"]
    repeat = (f > 0) & (m > 0)
    x, mbar = f[repeat], m[repeat]
    out: dict[str, Any] = {}
    for implementation, fit in fits.items():
        bg = fit.get("bgnbd_fit", {}).get("params")
        gg = fit.get("gamma_gamma_fit", {}).get("params")
        entry: dict[str, float | None] = {"bgnbd": None, "gamma_gamma": None}
        if bg:
            entry["bgnbd"] = float(bgnbd_log_likelihood(BGNBDParams(**bg), f, r, age).sum())
        if gg:
            p, q, v = gg["p"], gg["q"], gg["v"]
            # Equation 1a of Fader & Hardie's note 025, the density of the mean spend.
            ll = (
                gammaln(p * x + q)
                - gammaln(p * x)
                - gammaln(q)
                + q * np.log(v)
                + (p * x - 1.0) * np.log(mbar)
                + p * x * np.log(x)
                - (p * x + q) * np.log(v + x * mbar)
            )
            entry["gamma_gamma"] = float(ll.sum())
        out[implementation] = entry
    return out


def _fmt_ms(value: float | None, result: dict[str, Any]) -> str:
    if value is not None:
        if value < 1:
            return f"{value:.2f}"
        return f"{value:,.1f}" if value < 1000 else f"{value:,.0f}"
    status = result.get("status", "")
    if status == "timeout":
        return f"timeout (> {result['timeout_s']:.0f} s)"
    return status.split(":")[0] if status else "–"


def _commit() -> str:
    from _data import git_revision

    return git_revision()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5, help="warm repeats after the first call")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds of warm repeats, max")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per child process")
    parser.add_argument("--child", choices=["ours", "lifetimes"])
    parser.add_argument("--operation", choices=OPERATIONS)
    parser.add_argument("--data")
    parser.add_argument("--params")
    parser.add_argument("--horizon", type=float)
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.child:
        _child(args)
        return

    sys.path.insert(0, str(BENCH_DIR))
    import numpy as np
    import pandas as pd
    import scipy

    CACHE.mkdir(parents=True, exist_ok=True)
    lifetimes_versions = ensure_lifetimes_venv()
    datasets: list[tuple[str, Path, float]] = [("CDNOW (weeks)", _cdnow_npz(), CDNOW_HORIZON_WEEKS)]
    for size in (int(s) for s in args.sizes.split(",") if s):
        datasets.append(
            (
                f"simulated (days), seed {args.seed}",
                _simulated_npz(size, args.seed),
                SIMULATED_HORIZON_DAYS,
            )
        )

    ours_versions = {"numpy": np.__version__, "scipy": scipy.__version__, "pandas": pd.__version__}
    header = (
        f"# btyd_speed — {date.today()} — {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, commit {_commit()}\n"
        f"# ours: numpy {ours_versions['numpy']}, scipy {ours_versions['scipy']}, "
        f"pandas {ours_versions['pandas']}; load average {os.getloadavg()[0]:.2f}; "
        f"lifetimes {lifetimes_versions['lifetimes']}: "
        + ", ".join(f"{k} {v}" for k, v in lifetimes_versions.items() if k != "lifetimes")
    )
    print(header, flush=True)

    report: dict[str, Any] = {
        "date": str(date.today()),
        "machine": {
            "processor": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
        },
        "commit": _commit(),
        "load_average_at_start": os.getloadavg(),
        "versions": {"ours": ours_versions, "lifetimes": lifetimes_versions},
        "protocol": {
            "repeats": args.repeats,
            "budget_s": args.budget,
            "timeout_s": args.timeout,
            "seed": args.seed,
            "simulation": {"bgnbd": SIM_BGNBD, "gamma_gamma": SIM_GAMMA_GAMMA},
        },
        "datasets": [],
    }
    rows: list[str] = []
    param_rows: list[str] = []
    for name, path, horizon in datasets:
        with np.load(path) as npz:
            frequency = npz["frequency"]
            rfm = np.stack([npz["frequency"], npz["recency"], npz["T"]], axis=1)
        n = int(frequency.size)
        distinct = len(np.unique(rfm, axis=0))
        results: dict[str, dict[str, Any]] = {"ours": {}, "lifetimes": {}}
        for implementation in ("ours", "lifetimes"):
            for operation in ("bgnbd_fit", "gamma_gamma_fit"):
                print(f"  {name} n={n:,}: {implementation} {operation} ...", file=sys.stderr)
                results[implementation][operation] = _run_child(
                    implementation, operation, path, None, horizon, args
                )
        ours_bg = results["ours"]["bgnbd_fit"].get("params")
        for implementation in ("ours", "lifetimes"):
            own = results[implementation]["bgnbd_fit"].get("params")
            params = own or ours_bg
            for operation in ("expected_purchases", "probability_alive"):
                print(f"  {name} n={n:,}: {implementation} {operation} ...", file=sys.stderr)
                result = _run_child(implementation, operation, path, params, horizon, args)
                result["params_from"] = implementation if own else "ours"
                results[implementation][operation] = result
        log_likelihoods = _log_likelihoods(path, results)
        for operation in OPERATIONS:
            ours_r, theirs_r = results["ours"][operation], results["lifetimes"][operation]
            ours_ms, theirs_ms = _best_ms(ours_r), _best_ms(theirs_r)
            speedup = f"{theirs_ms / ours_ms:,.1f}" if ours_ms and theirs_ms else "–"
            params_diff = predictions_diff = "–"
            if "params" in ours_r and "params" in theirs_r:
                diff = _max_rel_diff(ours_r["params"], theirs_r["params"])
                ours_r["params_max_rel_diff"] = diff
                params_diff = f"{diff:.1e}"
            if "predictions" in ours_r and "predictions" in theirs_r:
                pred = _prediction_diff(ours_r["predictions"], theirs_r["predictions"])
                ours_r["predictions_diff"] = pred
                predictions_diff = f"{pred['max_rel_diff']:.1e}"
                if pred["non_finite_lifetimes"] or pred["non_finite_ours"]:
                    predictions_diff += (
                        f" (non-finite: ours {pred['non_finite_ours']:,}, "
                        f"lifetimes {pred['non_finite_lifetimes']:,})"
                    )
            first = [
                1000.0 * r["first_s"] if r.get("first_s") is not None else None
                for r in (ours_r, theirs_r)
            ]
            rows.append(
                f"| {name} | {n:,} | {OPERATION_LABELS[operation]} | "
                f"{_fmt_ms(ours_ms, ours_r)} | {_fmt_ms(first[0], ours_r)} | "
                f"{_fmt_ms(theirs_ms, theirs_r)} | {_fmt_ms(first[1], theirs_r)} | {speedup} | "
                f"{params_diff} | {predictions_diff} |"
            )
        for model, fit_op, keys in (
            ("BG/NBD", "bgnbd_fit", ("r", "alpha", "a", "b")),
            ("Gamma-Gamma", "gamma_gamma_fit", ("p", "q", "v")),
        ):
            ll_key = "bgnbd" if fit_op == "bgnbd_fit" else "gamma_gamma"
            for implementation in ("ours", "lifetimes"):
                fitted = results[implementation][fit_op].get("params")
                values = ", ".join(f"{k} {fitted[k]:.6g}" for k in keys) if fitted else "–"
                ll = log_likelihoods[implementation][ll_key]
                param_rows.append(
                    f"| {name} | {n:,} | {model} | {implementation} | {values} | "
                    + (f"{ll:,.4f} |" if ll is not None else "– |")
                )
        report["datasets"].append(
            {
                "name": name,
                "customers": n,
                "distinct_rows": distinct,
                "repeat_buyers": int((frequency > 0).sum()),
                "horizon": horizon,
                "results": results,
                "log_likelihood": log_likelihoods,
            }
        )
        RESULTS_PATH.write_text(json.dumps(report, indent=2))

    print(
        "| data set | customers | operation | ours best (ms) | ours first (ms) | "
        "lifetimes best (ms) | lifetimes first (ms) | speed-up × (best) | "
        "params max rel. diff | predictions max rel. diff |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    print()
    print("| data set | customers | model | implementation | parameters | log-likelihood |")
    print("|---|---:|---|---|---|---:|")
    print("\n".join(param_rows))
    for entry in report["datasets"]:
        print(
            f"# {entry['name']}, {entry['customers']:,} customers: "
            f"{entry['distinct_rows']:,} distinct (frequency, recency, T) rows, "
            f"{entry['repeat_buyers']:,} repeat buyers, horizon {entry['horizon']:g}"
        )
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"# load average (1, 5, 15 min) at the end: {load}; raw results: {RESULTS_PATH}")


if __name__ == "__main__":
    main()
