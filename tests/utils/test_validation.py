"""Shared validation helpers: atomic fit, inference snapshots, strict scalars."""

import pickle

import numpy as np
import pytest
from sklearn.base import BaseEstimator

from skmoe.utils._validation import (
    StrictIntInterval,
    check_int,
    check_min_samples,
    check_real,
    draw_seed,
    fit_context,
    snapshot_params,
)


class _Toy(BaseEstimator):
    _parameter_constraints = {"fail": [str, None], "n": [StrictIntInterval(1, None, closed="left"), list]}

    def __init__(self, fail=None, n=1):
        self.fail = fail
        self.n = n

    @fit_context(prefer_skip_nested_validation=True)
    def fit(self, X):
        self.n_features_in_ = np.shape(X)[1]
        self.coef_ = np.asarray(X, dtype=float).sum(axis=0)
        if self.fail == "value":
            raise ValueError("bad")
        if self.fail == "interrupt":
            raise KeyboardInterrupt
        self.settings_ = snapshot_params(self, ["n"])
        return self


@pytest.mark.parametrize("failure, error", [("value", ValueError), ("interrupt", KeyboardInterrupt)])
def test_fit_context_restores_the_previous_state(failure, error):
    toy = _Toy().fit([[1.0, 2.0]])
    before = pickle.dumps(toy.__dict__)
    toy.set_params(fail=failure)
    with pytest.raises(error):
        toy.fit([[1.0, 2.0, 3.0]])
    toy.set_params(fail=None)
    assert pickle.dumps(toy.__dict__) == before


def test_fit_context_leaves_an_unfitted_estimator_unfitted():
    toy = _Toy(fail="value")
    with pytest.raises(ValueError):
        toy.fit([[1.0]])
    assert not hasattr(toy, "coef_") and not hasattr(toy, "n_features_in_")


def test_fit_context_still_validates_parameters():
    with pytest.raises(ValueError, match="'n' parameter"):
        _Toy(n=0).fit([[1.0]])


def test_snapshot_is_a_deep_copy():
    toy = _Toy(n=3).fit([[1.0]])
    toy.set_params(n=5)
    assert toy.settings_ == {"n": 3}
    values = [1, 2]
    snap = snapshot_params(_Toy(fail=None, n=values), ["n"])
    values.append(3)
    assert snap["n"] == [1, 2]


def test_strict_int_interval_rejects_booleans():
    constraint = StrictIntInterval(1, None, closed="left")
    assert constraint.is_satisfied_by(1) and constraint.is_satisfied_by(np.int64(3))
    assert not constraint.is_satisfied_by(True)
    assert not constraint.is_satisfied_by(np.bool_(True))
    assert not constraint.is_satisfied_by(0)


def test_scalar_checks():
    assert check_int(np.int32(4), "k") == 4 and type(check_int(np.int32(4), "k")) is int
    for bad in (True, 0, 1.5, "2"):
        with pytest.raises(ValueError, match="k must be an integer >= 1"):
            check_int(bad, "k")
    assert check_real(2, "a") == 2.0
    for bad, strict in ((np.nan, False), (np.inf, False), (-1.0, False), (0.0, True), (True, False)):
        with pytest.raises(ValueError, match="a must be"):
            check_real(bad, "a", strict=strict)


def test_check_min_samples_names_the_parameter():
    check_min_samples(3, 3)
    with pytest.raises(ValueError, match="n_samples >= n_experts.*n_experts = 4, n_samples = 3"):
        check_min_samples(3, 4, "n_experts")


def test_draw_seed_is_reproducible_and_31_bit():
    seeds = [draw_seed(np.random.RandomState(0)) for _ in range(2)]
    assert seeds[0] == seeds[1] == np.random.RandomState(0).randint(2**31 - 1)
    assert 0 <= seeds[0] < 2**31 - 1


def test_check_finite_output_names_the_quantity_and_the_remedy():
    from skmoe.utils._validation import check_finite_output

    values = np.array([1.0, 2.0])
    assert check_finite_output(values, "x") is values
    assert check_finite_output(3.0, "x") == 3.0
    for bad in (np.array([1.0, np.nan]), np.array([[np.inf]]), -np.inf):
        with pytest.raises(ValueError, match="The predict output is not finite.*rescale"):
            check_finite_output(bad, "predict output")
