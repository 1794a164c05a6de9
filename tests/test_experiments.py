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
    # The serial run is not compared with the workers here.  This process may
    # have JIT-compiled the kernels itself (cold cache); LLVM then vectorises
    # the reassociated reductions differently from the cached code, and slow
    # over-fitted EM, stopped by a tolerance, amplifies those last-bit
    # differences without bound: measured 3e-3 relative on a warm cache,
    # 6.5e-2 and then 0.72 (one element of nine, n=4800) from clean clones
    # on two machines.  So there is no tolerance that tests a property.  A
    # seeding bug is caught instead by the exact-fit comparison below and by
    # this: the repetitions' own losses differ.
    first_size = serial.values["D1"][0]
    assert not np.allclose(first_size[0], first_size[1:], rtol=0.15)
    # Exact-fit EM converges linearly and does not amplify rounding: there
    # the serial and worker runs agree to rounding even from a cold cache
    # (measured 1.8e-15 relative).
    exact_serial = convergence_rates(2, 3, **kwargs)
    exact_parallel = convergence_rates(2, 3, n_jobs=2, **kwargs)
    assert_allclose(exact_serial.values["D1"], exact_parallel.values["D1"], rtol=1e-12)
    assert serial.n_hit_max_iter == 0
    assert np.all(serial.values["n_iter"] > 1)  # real EM runs, not one step
    # The loss decreases with n (noise permitting over 16x more data).
    means = serial.values["D1"].mean(axis=1)
    assert means[-1] < means[0]
    slope, (low, high) = serial.mean_slopes["D1"]
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


# ------------------------------------------------------------- rate study

from skmoe.experiments import (  # noqa: E402
    ERROR_KEYS,
    RateStudyResult,
    bootstrap_slope,
    predicted_exponent,
    rate_study,
)


def test_bootstrap_slope_interval_covers_the_power_law():
    rng = np.random.default_rng(0)
    n = np.array([1e3, 1e4, 1e5, 1e6])
    values = np.outer(n**-0.25, np.ones(30)) * rng.lognormal(0, 0.3, (4, 30))
    for statistic in ("mean", "median"):
        slope, (low, high) = bootstrap_slope(n, values, statistic=statistic)
        assert low < -0.25 < high and low < slope < high
        assert high - low < 0.1
    # Exact power law with identical repetitions: a zero-width interval.
    slope, (low, high) = bootstrap_slope(n, np.outer(3 * n**-0.5, np.ones(5)))
    assert_allclose([slope, low, high], -0.5, atol=1e-12)


def test_bootstrap_slope_width_shrinks_with_repetitions():
    rng = np.random.default_rng(1)
    n = np.array([1e3, 1e4, 1e5])
    widths = []
    for n_rep in (5, 80):
        values = np.outer(n**-0.5, np.ones(n_rep)) * rng.lognormal(0, 0.5, (3, n_rep))
        _, (low, high) = bootstrap_slope(n, values, n_boot=400)
        widths.append(high - low)
    assert widths[1] < widths[0] / 2  # about sqrt(16) = 4 times narrower


def test_bootstrap_slope_skips_missing_values_and_rejects_bad_ones():
    n = np.array([100, 1000, 10000])
    values = np.outer(n**-0.5, np.ones(4))
    values[1, :2] = np.nan
    assert_allclose(bootstrap_slope(n, values)[0], -0.5)
    values[1] = np.nan
    assert_allclose(bootstrap_slope(n, values)[0], -0.5)  # two sizes remain
    values[2] = np.nan
    assert np.isnan(bootstrap_slope(n, values)[0])
    with pytest.raises(ValueError, match="positive"):
        bootstrap_slope(n, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="shape"):
        bootstrap_slope(n, np.ones((2, 2)))


@pytest.mark.parametrize(
    "key, model, cell_size, expected",
    [
        ("D1", 1, 2, -0.5),
        ("means_exact", 2, 2, -0.5),
        ("means_merged", 1, 2, -0.5),
        ("means_atoms", 1, 2, -1 / 8),
        ("intercept_atoms", 4, 3, -1 / 12),
        ("covariances_atoms", 3, 2, -1 / 4),
        ("noise_covariances_atoms", 1, 3, -1 / 6),
        ("coef_atoms", 1, 3, -1 / 4),  # Type I: n^-1/4 whatever the cell size
        ("coef_atoms", 2, 3, -1 / 6),  # Type II: n^-1/rtilde, rtilde(3) = 6
    ],
)
def test_predicted_exponent_table(key, model, cell_size, expected):
    assert_allclose(predicted_exponent(key, model, cell_size), expected)


def _ho_nguyen_system(theta, n_atoms, order):
    """Residuals of the Ho & Nguyen (2016) system for ``n_atoms`` atoms, equations 1..order.

    Equation ``alpha`` is ``sum_j c_j^2 sum_{n1 + 2 n2 = alpha} a_j^n1 b_j^n2
    / (n1! n2!) = 0``.  ``theta`` holds log ``c^2`` (normalised to sum one)
    and ``(a, b)``; since ``(a, b) -> (t a, t^2 b)`` scales equation alpha by
    ``t^alpha``, ``(a, b)`` is rescaled to ``sum_j c_j^2 (a_j^2 + |b_j|) = 1``,
    which excludes the trivial solution and keeps the infimum away from the
    boundary where an atom's weight vanishes.
    """
    from math import factorial

    weights = np.exp(theta[:n_atoms] - theta[:n_atoms].max())
    weights /= weights.sum()
    a, b = theta[n_atoms : 2 * n_atoms], theta[2 * n_atoms :]
    scale = 1.0 / np.sqrt(weights @ (a**2 + np.abs(b)))
    a, b = scale * a, scale**2 * b
    return np.array(
        [
            sum(
                weights @ (a ** (alpha - 2 * n2) * b**n2)
                / (factorial(alpha - 2 * n2) * factorial(n2))
                for n2 in range(alpha // 2 + 1)
            )
            for alpha in range(1, order + 1)
        ]
    )


@pytest.mark.parametrize("n_atoms", [2, 3])
def test_rbar_is_the_solvability_index_of_the_ho_nguyen_system(n_atoms):
    # rbar(m) is the smallest r for which the system of m atoms and equations
    # 1..r has no non-trivial real solution (Ho & Nguyen 2016, the source the
    # authors' code cites for rbar = (4, 6)).  Numerically: the system up to
    # rbar - 1 is solved to rounding, up to rbar its least-squares minimum
    # over 12 random starts stays far from zero (measured: 1.4e-3 for m = 2,
    # 4.5e-6 for m = 3, an interior point with all weights >= 0.23).
    from scipy.optimize import least_squares

    from skmoe.experiments._rate_study import _RBAR

    rbar = _RBAR[n_atoms]
    rng = np.random.default_rng(0)

    def smallest_residual(order):
        best = np.inf
        for _ in range(12):
            fit = least_squares(
                _ho_nguyen_system, rng.standard_normal(3 * n_atoms), args=(n_atoms, order),
                xtol=1e-15, ftol=1e-15, gtol=1e-15, max_nfev=2000,
            )
            best = min(best, float(fit.fun @ fit.fun))
        return best

    assert smallest_residual(rbar - 1) < 1e-20
    assert smallest_residual(rbar) > 1e-7


def test_predicted_exponent_rejects_unknown_inputs():
    with pytest.raises(ValueError, match="key must be"):
        predicted_exponent("means", 1)
    with pytest.raises(ValueError, match="cell_size"):
        predicted_exponent("means_atoms", 1, 4)


def test_exact_fit_per_parameter_slopes_are_parametric():
    # K = k*: every parameter converges at n^-1/2; with 12 repetitions over
    # a 64x range of n the slope of the mean error is within 0.1 of it.
    result = rate_study(
        (4,), (3,), (1000, 4000, 16000, 64000), 12, starts=("near_truth",)
    )
    slopes = {row["quantity"]: row for row in result.slopes("mean", n_boot=200)}
    assert set(slopes) == {"D1", "D2"} | {k for k in ERROR_KEYS if k.endswith("_exact")}
    for key, row in slopes.items():
        assert -0.65 <= row["slope"] <= -0.40, (key, row["slope"])
        assert row["predicted"] == -0.5 and row["n_hit_max_iter"] == 0
    assert all(r["cell_sizes"] == "1-1-1" for r in result.rows)


def test_merged_moments_of_an_overfitted_cell_beat_the_atoms():
    # K = k* + 1 from the authors' start: the doubled cell's atoms are off by
    # about n^-1/8 in location, its moment-matched merge by about n^-1/2.
    # Medians over repetitions, robust to a cell that collapses onto one
    # atom (then both errors are equal) or a start that splits it widely.
    result = rate_study((3,), (4,), (2000, 8000), 4, starts=("near_truth",),
                        max_iter=1000)
    assert all(r["n_overfit_cells"] == 1 for r in result.rows)
    for key in ("means", "intercept"):
        _, atoms = result.values(3, 4, "near_truth", key + "_atoms")
        _, merged = result.values(3, 4, "near_truth", key + "_merged")
        assert np.all(np.median(merged, axis=1) < np.median(atoms, axis=1)), key
        # Not a tie: the merge is a different, smaller error on most fits.
        assert np.mean(merged < atoms) >= 0.75, key


def test_rate_study_rows_csv_and_common_random_numbers(tmp_path):
    path = tmp_path / "fits.csv"
    result = rate_study((1,), (3, 4), (200, 400), 2, max_iter=50, n_init=1,
                        csv_path=path)
    assert len(result.rows) == 2 * 2 * 2 * 2
    import csv

    with open(path) as f:
        written = list(csv.DictReader(f))
    assert len(written) == len(result.rows)
    assert_allclose([float(r["D1"]) for r in written], [r["D1"] for r in result.rows])
    # Fits of one repetition share their data set across K and starts: the
    # exact fits from both starts reach the same optimum.
    d1 = {(r["start"], r["n_samples"], r["repetition"]): r["D1"]
          for r in result.rows if r["n_components"] == 3}
    for n in (200, 400):
        for rep in (0, 1):
            assert_allclose(d1["near_truth", n, rep], d1["kmeans", n, rep], rtol=1e-3)
    # Different repetitions see different data.
    assert d1["near_truth", 200, 0] != d1["near_truth", 200, 1]
    sizes, values = result.values(1, 4, "kmeans", "n_iter")
    assert list(sizes) == [200, 400] and values.shape == (2, 2)


def test_resumed_rate_study_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    args = dict(models=(1,), n_components=(3, 4), sample_sizes=(200, 400),
                n_repetitions=2, max_iter=50, n_init=1)
    full = rate_study(**args)
    # A study stopped after 5 fits, the last line cut while being written.
    path = tmp_path / "fits.csv"
    rate_study(**{**args, "n_repetitions": 1}, csv_path=path)
    lines = open(path).read().splitlines(keepends=True)
    with open(path, "w") as f:
        f.writelines(lines[:5])
        f.write(lines[5][: len(lines[5]) // 2])
    assert len(RateStudyResult.from_csv(path).rows) == 4
    calls = []
    import skmoe.experiments._rate_study as module

    original = module._fit_once
    monkeypatch.setattr(module, "_fit_once", lambda *a: calls.append(a) or original(*a))
    resumed = rate_study(**args, csv_path=path, resume=True)
    # Only the missing fits ran (joblib's sequential backend calls in-process).
    assert len(calls) == len(full.rows) - 4
    assert [(r["repetition"], r["n_samples"], r["start"]) for r in resumed.rows] == [
        (r["repetition"], r["n_samples"], r["start"]) for r in full.rows]
    for a, b in zip(resumed.rows, full.rows):
        assert a["D1"] == pytest.approx(b["D1"], rel=1e-12)
        assert a["n_iter"] == b["n_iter"]
    # The file now holds every fit once and reads back to the same rows.
    again = RateStudyResult.from_csv(path)
    assert sorted(r["D1"] for r in again.rows) == pytest.approx(
        sorted(r["D1"] for r in full.rows), rel=1e-12)
    with pytest.raises(ValueError, match="resume=True needs the csv_path"):
        rate_study(**args, resume=True)


def test_resume_keeps_the_columns_of_an_older_file(tmp_path):
    # A file written before "overfit_minor_share" existed: resumed rows follow
    # its header, and every row reads back, the missing share as NaN.
    import csv

    args = dict(models=(1,), n_components=(4,), sample_sizes=(200, 300), max_iter=20,
                n_init=1, starts=("kmeans",))
    path = tmp_path / "fits.csv"
    rate_study(**args, n_repetitions=1, csv_path=path)
    with open(path) as f:
        old = [{k: v for k, v in row.items() if k != "overfit_minor_share"}
               for row in csv.DictReader(f)]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(old[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(old)
    resumed = rate_study(**args, n_repetitions=2, csv_path=path, resume=True)
    shares = {r["repetition"]: [] for r in resumed.rows}
    for r in resumed.rows:
        shares[r["repetition"]].append(r["overfit_minor_share"])
    assert np.all(np.isnan(shares[0]))
    assert all(0 < s <= 0.5 for s in shares[1])
    lines = open(path).read().splitlines()
    assert "overfit_minor_share" not in lines[0]
    assert len({line.count(",") for line in lines}) == 1
    assert len(RateStudyResult.from_csv(path).rows) == 4


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"models": (5,)}, "models"),
        ({"n_components": (2,)}, "n_components"),
        ({"sample_sizes": (300,)}, "sample_sizes"),
        ({"sample_sizes": (2, 300)}, "sample_sizes"),
        ({"starts": ("truth",)}, "starts"),
        ({"models": (1.5,)}, "models must be a sequence of integers"),
        ({"sample_sizes": (300.5, 600)}, "sample_sizes must be a sequence of integers"),
        ({"n_components": (True,)}, "n_components must be a sequence of integers"),
    ],
)
def test_rate_study_rejects_invalid_grids(kwargs, match):
    args = {"models": (1,), "n_components": (3,), "sample_sizes": (300, 600),
            "n_repetitions": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        rate_study(**args)
