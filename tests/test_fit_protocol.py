"""The fit protocol shared by every skmoe estimator.

- **Atomic fit**: a fit that raises (bad input, a ``KeyboardInterrupt`` in the
  middle of the iterations) leaves a fitted estimator bit-identical (every
  attribute, ``n_features_in_`` included) and an unfitted one unfitted.
- **Predict reads fitted state only**: ``set_params`` after ``fit`` changes
  neither the predictions nor the fitted attributes until the next ``fit``,
  and no kernel reads out of bounds (checked under ``NUMBA_BOUNDSCHECK=1`` in
  a subprocess).
- **One convergence monitor**: every iterative estimator records its
  iterations through :class:`skmoe.utils._monitor.ConvergenceMonitor`.
"""

import os
import pickle
import subprocess
import sys
import warnings
from dataclasses import dataclass, field

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.neural_network import MLPRegressor
from sklearn.utils.validation import check_is_fitted

from skmoe import (
    DiagonalFisherEstimator,
    GaussianGatedMoERegressor,
    MixtureOfMLPsClassifier,
    MixtureOfMLPsRegressor,
    SequenceMultiIndexAMP,
    SGDMoERegressor,
)
from skmoe.amp import AbsChannel, LinearChannel
from skmoe.utils._monitor import ConvergenceMonitor
from skmoe.utils._validation import StrictIntInterval

MONITOR_REPORT = "skmoe.utils._monitor.ConvergenceMonitor.report"


def _regression_data(n_samples=120, n_features=3, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.standard_normal((n_samples, n_features))
    y = np.where(X[:, 0] > 0, 2.0 * X[:, 1], -X[:, 2]) + 0.1 * rng.standard_normal(n_samples)
    return X, y


def _classification_data():
    X, y = _regression_data()
    return X, (y > 0).astype(int)


def _fisher_model():
    X, y = _regression_data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return MLPRegressor(hidden_layer_sizes=(4,), max_iter=50, random_state=0).fit(X, y)


@dataclass
class Case:
    """One estimator with data, its inference methods and hyper-parameter changes."""

    estimator: object
    data: callable
    # name -> callable(estimator, X, y) returning an array or a tuple of arrays
    methods: dict
    # hyper-parameter -> a different valid value
    alternatives: dict = field(default_factory=dict)
    # where a KeyboardInterrupt is injected mid-fit: (target, call number)
    interrupt: tuple = (MONITOR_REPORT, 2)
    # a set_params that makes a fit on 10 rows and 5 features fail validation
    failing_params: dict = field(default_factory=dict)
    iterative: bool = True


def _predict(est, X, y):
    return est.predict(X)


CASES = {
    "GaussianGatedMoERegressor": Case(
        GaussianGatedMoERegressor(n_components=2, max_iter=30, tol=0, random_state=0),
        _regression_data,
        {
            "predict": lambda est, X, y: est.predict(X, return_std=True),
            "predict_gates": lambda est, X, y: est.predict_gates(X),
            "score_samples": lambda est, X, y: est.score_samples(X, y),
            "score_samples_x": lambda est, X, y: est.score_samples(X),
            "bic": lambda est, X, y: est.bic(X, y),
        },
        {
            "covariance_type": "diag",
            "n_components": 3,
            "reg_covar": 1e-1,
            "init_params": "random",
            "acceleration": "squarem",
            "warm_start": True,
        },
        failing_params={"n_components": 50},
    ),
    "MixtureOfMLPsRegressor": Case(
        MixtureOfMLPsRegressor(
            n_experts=3, hidden_layer_sizes=(4,), activation="relu", max_iter=20,
            min_samples_cell=5, random_state=0,
        ),
        _regression_data,
        {"predict": _predict, "route": lambda est, X, y: est.route(X)},
        {
            "activation": "prelu",
            "hidden_layer_sizes": (6, 6),
            "n_experts": 5,
            "routing": "grid",
            "small_cells": "constant",
            "min_samples_cell": 50,
        },
        failing_params={"n_experts": 50},
    ),
    "MixtureOfMLPsClassifier": Case(
        MixtureOfMLPsClassifier(
            n_experts=3, hidden_layer_sizes=(4,), max_iter=20, min_samples_cell=5,
            random_state=0,
        ),
        _classification_data,
        {
            "predict": _predict,
            "predict_proba": lambda est, X, y: est.predict_proba(X),
            "route": lambda est, X, y: est.route(X),
        },
        {
            "activation": "relu",
            "hidden_layer_sizes": (6, 6),
            "n_experts": 5,
            "routing": "bisecting",
            "small_cells": "constant",
        },
        failing_params={"n_experts": 50},
    ),
    "SGDMoERegressor": Case(
        SGDMoERegressor(n_experts=2, n_neurons=3, random_state=0),
        _regression_data,
        {"predict": _predict, "route": lambda est, X, y: est.route(X)},
        {"top_k": 2, "n_experts": 3, "degree": 2, "alpha": 1.0, "information_exponent": 1},
        failing_params={"n_experts": 50},
    ),
    "SequenceMultiIndexAMP": Case(
        SequenceMultiIndexAMP(LinearChannel(), max_iter=20, random_state=0),
        _regression_data,
        {
            "predict": _predict,
            "predict_bayes": lambda est, X, y: est.predict(X, method="bayes", n_draws=4),
            "score": lambda est, X, y: est.score(X, y),
        },
        {"channel": AbsChannel(), "damping": 0.3, "init_scale": 0.5},
        failing_params={"channel": AbsChannel()},
    ),
    "DiagonalFisherEstimator": Case(
        DiagonalFisherEstimator(FrozenEstimator(_fisher_model()), random_state=0),
        _regression_data,
        {},
        {"method": "score", "n_label_samples": 3, "noise_variance": 2.0},
        interrupt=("skmoe.inspection._fisher.fisher_statistics", 1),
        iterative=False,
    ),
}

IDS = sorted(CASES)


def _fit(case):
    X, y = case.data()
    est = clone(case.estimator)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
    return est, X, y


def _outputs(case, est, X, y):
    return {name: method(est, X, y) for name, method in case.methods.items()}


def _assert_outputs_equal(before, after):
    assert before.keys() == after.keys()
    for name in before:
        b, a = before[name], after[name]
        if not isinstance(b, tuple):
            b, a = (b,), (a,)
        for b_i, a_i in zip(b, a):
            assert_array_equal(a_i, b_i, err_msg=name)


def _state(est):
    """Every attribute of ``est``, pickled (bit-identical comparison)."""
    return {key: pickle.dumps(value) for key, value in vars(est).items()}


def _assert_same_state(before, est):
    after = _state(est)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"attributes changed by a failed fit: {changed}"


def _raise_on_call(target, call, monkeypatch):
    """Make ``target`` raise KeyboardInterrupt on its ``call``-th call."""
    module_path, _, name = target.rpartition(".")
    owner_path, _, owner_name = module_path.rpartition(".")
    try:  # a method of a class: "package.module.Class.method"
        owner = getattr(__import__(owner_path, fromlist=[owner_name]), owner_name)
    except (ImportError, AttributeError, ValueError):
        owner = __import__(module_path, fromlist=[name])
    original = getattr(owner, name)
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, interrupted)
    return calls


@pytest.mark.parametrize("name", IDS)
def test_failed_fit_on_bad_input_leaves_fitted_state(name):
    case = CASES[name]
    est, X, y = _fit(case)
    state, outputs = _state(est), _outputs(case, est, X, y)
    X_nan = np.full((10, 5), np.nan)
    with pytest.raises(ValueError):
        est.fit(X_nan, y[:10])
    _assert_same_state(state, est)
    if case.failing_params:
        X5, y5 = _regression_data(10, 5, seed=1)
        if name == "MixtureOfMLPsClassifier":
            y5 = (y5 > 0).astype(int)
        est.set_params(**case.failing_params)
        with pytest.raises(ValueError):
            est.fit(X5, y5)
        est.set_params(**{k: case.estimator.get_params()[k] for k in case.failing_params})
        _assert_same_state(state, est)
    _assert_outputs_equal(outputs, _outputs(case, est, X, y))


@pytest.mark.parametrize("name", IDS)
def test_interrupted_fit_leaves_fitted_state(name, monkeypatch):
    case = CASES[name]
    est, X, y = _fit(case)
    state, outputs = _state(est), _outputs(case, est, X, y)
    X2, y2 = _regression_data(seed=3)
    if name == "MixtureOfMLPsClassifier":
        y2 = (y2 > 0).astype(int)
    calls = _raise_on_call(*case.interrupt, monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(KeyboardInterrupt):
            est.fit(X2, y2)
    assert len(calls) == case.interrupt[1]
    _assert_same_state(state, est)
    _assert_outputs_equal(outputs, _outputs(case, est, X, y))


@pytest.mark.parametrize("name", IDS)
def test_failed_first_fit_leaves_estimator_unfitted(name, monkeypatch):
    case = CASES[name]
    X, y = case.data()
    est = clone(case.estimator)
    state = _state(est)
    _raise_on_call(*case.interrupt, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        est.fit(X, y)
    _assert_same_state(state, est)
    with pytest.raises(NotFittedError):
        check_is_fitted(est)


def _set_params_cases():
    return [(name, param) for name in IDS for param in CASES[name].alternatives]


@pytest.mark.parametrize("name, param", _set_params_cases())
def test_set_params_after_fit_changes_nothing(name, param):
    case = CASES[name]
    est, X, y = _fit(case)
    fitted = {k: pickle.dumps(v) for k, v in vars(est).items() if k.endswith("_")}
    outputs = _outputs(case, est, X, y)
    est.set_params(**{param: case.alternatives[param]})
    _assert_outputs_equal(outputs, _outputs(case, est, X, y))
    assert fitted == {k: pickle.dumps(v) for k, v in vars(est).items() if k.endswith("_")}


def test_set_params_after_fit_is_bounds_safe():
    """The set_params test again, in a subprocess with ``NUMBA_BOUNDSCHECK=1``.

    A kernel that read a hyper-parameter instead of the fitted state could
    index past the fitted arrays (silently, without bounds checks).  The
    subprocess has its own numba cache, so bounds-checked compilations never
    mix with the normal ones.
    """
    env = dict(os.environ, NUMBA_BOUNDSCHECK="1")
    cache = os.environ.get("NUMBA_CACHE_DIR")
    if cache:
        env["NUMBA_CACHE_DIR"] = cache.rstrip("/") + "-boundscheck"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__,
         "-k", "test_set_params_after_fit_changes_nothing"],
        env=env, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


@pytest.mark.parametrize("name", [name for name in IDS if CASES[name].iterative])
def test_iterative_fit_reports_through_the_monitor(name, monkeypatch):
    case = CASES[name]
    calls = []
    original = ConvergenceMonitor.report

    def counting(self, *args, **kwargs):
        calls.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ConvergenceMonitor, "report", counting)
    est, X, y = _fit(case)
    assert calls, f"{name}.fit did not report through ConvergenceMonitor"
    history = getattr(est, "history_", None)
    if history is not None:
        lengths = {len(np.asarray(v)) for v in history.values()}
        assert len(lengths) == 1, "history_ columns have unequal lengths"
        assert {"iteration", "objective", "change", "elapsed"} <= set(history)


def _count_parameters():
    for name in IDS:
        constraints = type(CASES[name].estimator)._parameter_constraints
        for param, options in constraints.items():
            if any(isinstance(option, StrictIntInterval) for option in options):
                yield name, param


@pytest.mark.parametrize("name, param", list(_count_parameters()))
def test_boolean_counts_are_rejected(name, param):
    """``True`` is not a count: every integer hyper-parameter rejects booleans."""
    case = CASES[name]
    X, y = case.data()
    est = clone(case.estimator).set_params(**{param: True})
    with pytest.raises(ValueError, match=f"'{param}' parameter"):
        est.fit(X, y)


def test_every_integer_hyper_parameter_is_strict():
    """No estimator declares a plain ``Interval(Integral, ...)`` (which accepts ``True``)."""
    from numbers import Integral

    from sklearn.utils._param_validation import Interval

    loose = [
        (name, param)
        for name in IDS
        for param, options in type(CASES[name].estimator)._parameter_constraints.items()
        for option in options
        if isinstance(option, Interval) and option.type is Integral
        and not isinstance(option, StrictIntInterval)
    ]
    assert not loose
