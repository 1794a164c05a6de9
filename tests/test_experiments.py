"""Tests for the convergence-rate study and the paper settings."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from skmoe.datasets import ggmoe_paper_setting
from skmoe.experiments import convergence_rates, near_truth_start
from skmoe.experiments._convergence_rates import loglog_slope


@pytest.mark.parametrize("model, zero_mean, d", [(1, False, 1), (2, True, 1), (3, False, 2), (4, True, 2)])
def test_paper_settings(model, zero_mean, d):
    truth = ggmoe_paper_setting(model)
    assert truth["means"].shape == (3, d)
    assert np.any(np.all(truth["means"] == 0, axis=1)) == zero_mean
    assert_allclose(truth["weights"], [0.3, 0.4, 0.3])
    assert_allclose(truth["coef"][:, 0, 0], [0.404540, -0.714286, 0.0])


def test_loglog_slope_recovers_exact_power_law():
    n = np.array([100, 300, 1000, 3000])
    slope, (low, high) = loglog_slope(n, 2.5 * n**-0.5)
    assert_allclose(slope, -0.5, rtol=1e-12)
    assert_allclose([low, high], [-0.5, -0.5], atol=1e-9)
    noisy = 2.5 * n**-0.5 * np.exp([0.1, -0.1, 0.05, 0.0])
    slope, (low, high) = loglog_slope(n, noisy)
    assert low < slope < high and low < -0.5 < high


def test_near_truth_start_covers_every_true_atom():
    truth = ggmoe_paper_setting(1)
    rng = np.random.default_rng(0)
    for _ in range(20):
        start = near_truth_start(truth, 5, 1000, rng)
        assert_allclose(start["weights"].sum(), 1.0)
        # each true mean is within 5 noise s.d. of some start mean
        gap = np.abs(truth["means"][:, 0][:, None] - start["means"][:, 0][None]).min(axis=1)
        assert np.all(gap < 5 * 0.005 * 1000**-0.083)
        assert np.all(np.linalg.eigvalsh(start["covariances"]) > 0)


def test_convergence_rates_deterministic_and_converged():
    kwargs = dict(sample_sizes=[300, 1200, 4800], n_repetitions=3, random_state=1)
    serial = convergence_rates(2, 4, **kwargs)
    parallel = convergence_rates(2, 4, n_jobs=2, **kwargs)
    parallel3 = convergence_rates(2, 4, n_jobs=3, **kwargs)
    # Seeds are per repetition, so n_jobs changes nothing: worker processes
    # all run the kernels loaded from numba's cache and agree to the last bit.
    assert_array_equal(parallel.values["D1"], parallel3.values["D1"])
    # This process may have JIT-compiled the kernels itself (cold cache);
    # LLVM then vectorises the reassociated reductions differently from the
    # cached code, and slow over-fitted EM amplifies the last-bit differences
    # (measured: up to 3e-3 relative).  A seeding bug would change the losses
    # by O(1) factors.
    assert_allclose(serial.values["D1"], parallel.values["D1"], rtol=1e-2)
    assert serial.n_hit_max_iter == 0
    assert np.all(serial.values["n_iter"] > 1)  # real EM runs, not one step
    # The loss decreases with n (noise permitting over 16x more data).
    means = serial.values["D1"].mean(axis=1)
    assert means[-1] < means[0]
    slope, (low, high) = serial.slopes["D1"]
    assert -1.0 < slope < -0.2
    assert "D1" in serial.table()


def test_convergence_rates_validates_sample_sizes():
    with pytest.raises(ValueError, match="sample_sizes"):
        convergence_rates(1, 4, sample_sizes=[2, 100])


def _without(params, key):
    return {k: v for k, v in params.items() if k != key}


def _with_nan(params):
    out = {key: np.array(value) for key, value in params.items()}
    out["means"][0, 0] = np.nan
    return out


@pytest.mark.parametrize(
    "true_params, kwargs, match",
    [
        (None, {"n_samples": 0}, "n_samples"),
        (None, {"n_samples": -1}, "n_samples"),
        (None, {"n_components": 4.5}, "n_components"),
        (None, {"n_components": 2}, "n_components >= 3"),
        ("missing", {}, r"missing \['coef'\]"),
        ("nan", {}, "'means' contains NaN"),
    ],
)
def test_near_truth_start_rejects_invalid_arguments(true_params, kwargs, match):
    truth = ggmoe_paper_setting(1)
    truth = {None: truth, "missing": _without(truth, "coef"), "nan": _with_nan(truth)}[true_params]
    args = {"n_components": 4, "n_samples": 100, "random_state": 0, **kwargs}
    with pytest.raises(ValueError, match=match):
        near_truth_start(truth, **args)


def test_near_truth_start_accepts_lists():
    truth = ggmoe_paper_setting(1)
    as_lists = {key: value.tolist() for key, value in truth.items()}
    assert_allclose(
        near_truth_start(as_lists, 4, 100, 0)["means"], near_truth_start(truth, 4, 100, 0)["means"]
    )


@pytest.mark.parametrize(
    "sample_sizes", [[], [200], [200, 200], [200.5, 400], [2, 200], [[200, 400]]]
)
def test_convergence_rates_rejects_invalid_sample_sizes(sample_sizes):
    with pytest.raises(ValueError, match="sample_sizes must be .* at least two distinct integers"):
        convergence_rates(1, 3, sample_sizes=sample_sizes, n_repetitions=1)


def test_near_truth_start_accepts_seeds_and_generators():
    truth = ggmoe_paper_setting(3)
    from_seed = near_truth_start(truth, 4, 500, 7)
    from_generator = near_truth_start(truth, 4, 500, np.random.default_rng(7))
    for key, value in from_seed.items():
        assert_array_equal(value, from_generator[key])
    assert not np.array_equal(from_seed["means"], near_truth_start(truth, 4, 500, 8)["means"])


@pytest.mark.parametrize("backend", ["multiprocessing", "threading"])
def test_convergence_rates_runs_under_any_joblib_backend(backend, capsys):
    # "multiprocessing" cannot return a generator: the run must still work and
    # give the serial results (same per-repetition seeds).
    import joblib

    kwargs = dict(sample_sizes=[60, 120], n_repetitions=2, random_state=3, max_iter=20)
    serial = convergence_rates(1, 3, **kwargs)
    with joblib.parallel_config(backend=backend):
        parallel = convergence_rates(1, 3, n_jobs=2, verbose=1, **kwargs)
    assert parallel.values["D1"].shape == (2, 2)
    assert_allclose(parallel.values["D1"], serial.values["D1"], rtol=1e-2)
    # One progress line per sample size, even when results come as a list.
    assert capsys.readouterr().out.count("mean D1") == 2
