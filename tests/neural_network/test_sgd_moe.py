"""Tests for skmoe.SGDMoERegressor and its numba kernels."""

import re
import warnings
from math import factorial

import numpy as np
import pytest
from numpy.polynomial import hermite_e
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import NotFittedError

from skmoe import SGDMoERegressor
from skmoe.neural_network import _sgd_moe_numba as kernels
from skmoe.utils._numba_math import hermite_and_derivative
from skmoe.datasets import make_latent_cluster_regression


def _h(z, k):
    """Independent normalised Hermite polynomial (numpy's HermiteE)."""
    coef = np.zeros(k + 1)
    coef[k] = 1.0
    return hermite_e.hermeval(z, coef) / np.sqrt(factorial(k))


def _unit(rng, shape):
    A = rng.standard_normal(shape)
    return A / np.linalg.norm(A, axis=-1, keepdims=True)


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_hermite_kernel_values_and_derivative(k):
    for t in np.linspace(-3, 3, 13):
        h, dh = hermite_and_derivative(t, k)
        assert_allclose(h, _h(t, k), atol=1e-12)
        eps = 1e-6
        assert_allclose(dh, (_h(t + eps, k) - _h(t - eps, k)) / (2 * eps), rtol=1e-6, atol=1e-8)


def test_neuron_step_is_projected_gradient_of_correlation_loss():
    """One full-batch step equals normalize(w - lr (I - w w^T) grad), grad by finite differences."""
    rng = np.random.RandomState(0)
    n, d, k, lr = 50, 5, 3, 0.05
    X, y = rng.standard_normal((n, d)), rng.standard_normal(n)
    W = _unit(rng, (1, 2, d))
    signs = np.array([[1.0, -1.0]])
    W0 = W.copy()
    objective = kernels.neuron_sgd(X, y, np.arange(n), n, W, signs, np.zeros((1, d)), 1, k, lr,
                                   n, False, 0, 1)
    # The returned objective is the correlation loss before the step.
    assert_allclose(objective, -np.mean(y * (signs[0] * _h(X @ W0[0].T, k)).sum(axis=1)),
                    rtol=1e-12)
    for j in range(2):
        w = W0[0, j]

        def loss(v):
            return -np.mean(y * signs[0, j] * _h(X @ v, k))

        eps = 1e-6
        grad = np.array([(loss(w + eps * e) - loss(w - eps * e)) / (2 * eps) for e in np.eye(d)])
        step = w - lr * (grad - (grad @ w) * w)
        assert_allclose(W[0, j], step / np.linalg.norm(step), atol=1e-8)


def test_router_step_is_gradient_of_mixture_correlation_loss():
    rng = np.random.RandomState(1)
    n, d, M, k, lr = 40, 4, 3, 3, 0.1
    X, y = rng.standard_normal((n, d)), rng.standard_normal(n)
    U, signs = _unit(rng, (M, d)), np.array([1.0, -1.0, 1.0])
    theta = 0.3 * rng.standard_normal((M, d))
    theta0 = theta.copy()
    objective = kernels.router_sgd(X, y, np.arange(n), n, U, signs, k, theta, lr, 0, 1)
    f = signs * _h(X @ U.T, k)

    def loss(th):
        s = X @ th.reshape(M, d).T
        p = np.exp(s - s.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        return -np.mean(y * (p * f).sum(axis=1))

    eps = 1e-6
    grad = np.array([
        (loss(theta0.ravel() + eps * e) - loss(theta0.ravel() - eps * e)) / (2 * eps)
        for e in np.eye(M * d)
    ])
    assert_allclose(theta.ravel(), theta0.ravel() - lr * grad, atol=1e-8)
    assert_allclose(objective, loss(theta0.ravel()), rtol=1e-12)


@pytest.mark.parametrize("batch_size", [1, 3])
def test_stage_run_in_intervals_equals_one_call(batch_size):
    """The monitor's recording intervals change neither the bits nor the mean loss."""
    rng = np.random.RandomState(4)
    n, d, M, J, k = 90, 5, 2, 3, 3
    X, y = rng.standard_normal((n, d)), rng.standard_normal(n)
    idx = rng.permutation(n).astype(np.int64)
    n_steps = n // batch_size
    router = rng.standard_normal((M, d))
    W0, signs = _unit(rng, (M, J, d)), np.where(rng.uniform(size=(M, J)) < 0.5, -1.0, 1.0)
    U = _unit(rng, (M, d))
    whole_W, whole_router = W0.copy(), np.zeros((M, d))
    whole = (
        kernels.neuron_sgd(X, y, idx, batch_size, whole_W, signs, router, 1, k, 0.05,
                           n_steps // 2, True, 0, n_steps),
        kernels.router_sgd(X, y, idx, batch_size, U, signs[:, 0], k, whole_router, 0.1, 0,
                           n_steps),
    )
    W, theta = W0.copy(), np.zeros((M, d))
    cuts = [0, 7, 8, 20, n_steps]
    parts = [
        [kernels.neuron_sgd(X, y, idx, batch_size, W, signs, router, 1, k, 0.05, n_steps // 2,
                            True, a, b) for a, b in zip(cuts[:-1], cuts[1:])],
        [kernels.router_sgd(X, y, idx, batch_size, U, signs[:, 0], k, theta, 0.1, a, b)
         for a, b in zip(cuts[:-1], cuts[1:])],
    ]
    assert_array_equal(W, whole_W)
    assert_array_equal(theta, whole_router)
    weights = np.diff(cuts)
    for part, total in zip(parts, whole):
        assert_allclose(np.average(part, weights=weights), total, rtol=1e-12)
    assert np.isnan(kernels.router_sgd(X, y, idx, batch_size, U, signs[:, 0], k, theta, 0.1,
                                       3, 3))


def test_routed_step_only_moves_routed_expert_and_orthogonalises():
    rng = np.random.RandomState(2)
    d = 6
    X = rng.standard_normal((1, d))
    router = np.zeros((2, d))
    router[1] = X[0]  # the single sample goes to expert 1
    W = _unit(rng, (2, 3, d))
    for m in range(2):
        kernels._gram_schmidt(W[m])
    W0 = W.copy()
    kernels.neuron_sgd(X, np.array([2.0]), np.array([0]), 1, W, np.ones((2, 3)), router, 1, 3,
                       0.1, 1, True, 0, 1)
    assert_array_equal(W[0], W0[0])
    assert not np.allclose(W[1], W0[1])
    assert_allclose(W[1] @ W[1].T, np.eye(3), atol=1e-12)


@pytest.mark.parametrize("top_k", [1, 2, 3])
def test_top_k_gates_rows_match_independent_softmax(top_k):
    """The one gating kernel (SGD stages, predict, ridge) vs argsort + softmax."""
    rng = np.random.RandomState(3)
    scores = rng.standard_normal((20, 4))
    scores[0, 1] = scores[0, 2] = scores[0].max() + 1.0  # a tie for the top
    gates = np.empty_like(scores)
    kernels.topk_gates_rows(scores, top_k, gates)
    assert_allclose(gates.sum(axis=1), 1.0)
    assert np.all((gates > 0).sum(axis=1) == top_k)
    for row, got in zip(scores, gates):
        # Selected experts are the top_k scores (ties: lowest index first);
        # weights are their softmax.
        order = np.argsort(-row, kind="stable")[:top_k]
        w = np.exp(row[order] - row[order].max())
        expected = np.zeros(4)
        expected[order] = w / w.sum()
        assert_allclose(got, expected, rtol=1e-14, atol=1e-15)
    if top_k == 1:
        assert gates[0, 1] == 1.0  # the tie goes to the lower index
    # One expert: the gate is always one.
    one = np.empty((20, 1))
    kernels.topk_gates_rows(scores[:, :1].copy(), 1, one)
    assert_array_equal(one, 1.0)


def test_moe_detects_clusters_where_single_network_fails():
    """C=2, k*=3, d=32, 2e5 samples: the acceptance criterion of the issue."""
    d = 32
    X, y, truth = make_latent_cluster_regression(200_000, d, return_truth=True, random_state=0)
    moe = SGDMoERegressor(2, random_state=0).fit(X, y)
    scores = moe.alignment(truth)
    assert scores["cluster"].min() >= 0.9
    assert scores["global"].min() >= 0.9
    assert scores["router_accuracy"] >= 0.95
    single = SGDMoERegressor(1, random_state=0).fit(X, y).alignment(truth)
    assert single["cluster"].min() >= 0.9  # it learns the local tasks ...
    assert single["global"].max() < 5 / np.sqrt(d)  # ... but not the global one:
    # it stays at the random level, the max of |w . w_g| over the 6 of its 8
    # orthogonal neurons that carry no signal, about sqrt(2 ln(2 * 8) / (d - 2))
    # = 0.43 (0.44 measured); 0.6 is far below the 0.9 bar of the mixture.
    assert single["global"].max() < 0.6
    # The router points along v_1 - v_2: its weights align with the cluster means.
    diff = moe.router_coef_[0] - moe.router_coef_[1]
    means = truth["cluster_means"]
    cos = diff @ (means[0] - means[1]) / (np.linalg.norm(diff) * np.sqrt(2))
    assert abs(cos) > 0.9


def test_predict_matches_independent_formula():
    rng = np.random.RandomState(4)
    X, y = rng.standard_normal((300, 5)), rng.standard_normal(300)
    for top_k in (1, 2):
        model = SGDMoERegressor(3, n_neurons=2, top_k=top_k, degree=4, random_state=0)
        model.fit(X, y)
        # Give the router a non-trivial state so that the gating matters.
        model.router_coef_ = rng.standard_normal(model.router_coef_.shape)
        scores = X @ model.router_coef_.T
        expected = np.zeros(len(X))
        for n, row in enumerate(scores):
            top = np.argsort(-row)[:top_k]
            w = np.exp(row[top] - row[top].max())
            w /= w.sum()
            for m, g in zip(top, w):
                t = model.expert_weights_[m] @ X[n]
                out = model.expert_intercept_[m] + sum(
                    model.expert_coef_[m, j, i - 1] * _h(t[j], i)
                    for j in range(2) for i in range(1, 5)
                )
                expected[n] += g * out
        assert_allclose(model.predict(X), expected, atol=1e-10)


def test_second_layer_is_routed_ridge_regression():
    """With top-1 routing, each expert's second layer is the ridge fit on its rows."""
    X, y = make_latent_cluster_regression(3000, 9, random_state=5)
    alpha = 1e-3
    model = SGDMoERegressor(2, n_neurons=3, alpha=alpha, random_state=0).fit(X, y)
    experts = model.route(X)
    assert len(np.unique(experts)) == 2
    for m in range(2):
        rows = experts == m
        Phi = np.column_stack(
            [np.ones(rows.sum())]
            + [_h(X[rows] @ w, i) for w in model.expert_weights_[m] for i in range(1, 4)]
        )
        penalty = alpha * len(X) * np.eye(Phi.shape[1])
        penalty[0, 0] = 0.0
        beta = np.linalg.solve(Phi.T @ Phi + penalty, Phi.T @ y[rows])
        assert_allclose(model.expert_intercept_[m], beta[0], rtol=1e-6, atol=1e-8)
        assert_allclose(model.expert_coef_[m].ravel(), beta[1:], rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("batch_size", [1, 2])
def test_reproducible_and_history_does_not_change_training(batch_size):
    X, y, truth = make_latent_cluster_regression(6000, 10, return_truth=True, random_state=0)
    # Step counts that the record intervals (max(1, n // 50) = 20, 10, 40
    # steps) do not divide: the last steps of every stage must still be
    # recorded.
    steps = (1010, 505, 2030)
    params = dict(n_steps=steps, batch_size=batch_size, random_state=3)
    a = SGDMoERegressor(**params).fit(X, y)
    b = SGDMoERegressor(**params).fit(X, y, truth=truth)
    for name in ("expert_weights_", "expert_coef_", "expert_intercept_", "router_coef_"):
        assert_array_equal(getattr(a, name), getattr(b, name))
    # Without a truth the history has the monitor's columns only, with the
    # same objectives.
    assert list(a.history_) == ["iteration", "objective", "change", "elapsed", "stage", "samples"]
    for key in a.history_:
        if key != "elapsed":
            assert_array_equal(a.history_[key], b.history_[key])
    hist = b.history_
    assert a.n_steps_ == steps and a.n_iter_ == sum(steps)
    assert_array_equal(np.unique(hist["stage"]), [1, 2, 3])
    assert np.all(np.diff(hist["samples"]) > 0)
    # Each stage's last record is taken after its last step.
    ends = np.cumsum(steps) * batch_size
    for stage, end in zip((1, 2, 3), ends):
        assert hist["samples"][hist["stage"] == stage][-1] == end
    # The last record is the final state.
    final = b.alignment(truth)
    assert_allclose(hist["cluster_alignment"][-1], final["cluster"])
    assert_allclose(hist["global_alignment"][-1], final["global"])
    assert hist["router_accuracy"][-1] == final["router_accuracy"]
    # Without a stage-3 step, the last record is still the final state.
    c = SGDMoERegressor(n_steps=(1010, 505, 0), random_state=3).fit(X, y, truth=truth)
    assert c.history_["stage"][-1] == 3 and c.history_["samples"][-1] == 1515
    final = c.alignment(truth)
    assert_allclose(c.history_["cluster_alignment"][-1], final["cluster"])
    assert_allclose(c.history_["global_alignment"][-1], final["global"])


def test_history_is_one_monitor_record_per_interval():
    X, y, truth = make_latent_cluster_regression(3000, 8, return_truth=True, random_state=0)
    steps = (1010, 49, 0)
    model = SGDMoERegressor(n_steps=steps, random_state=0).fit(X, y, truth=truth)
    hist = model.history_
    assert list(hist)[:4] == ["iteration", "objective", "change", "elapsed"]
    assert {len(column) for column in hist.values()} == {len(hist["stage"])}
    # ceil(n / max(1, n // 50)) records per stage; one for a stage without steps.
    for stage, n_records in zip((1, 2, 3), (51, 49, 1)):
        own = hist["stage"] == stage
        assert_array_equal(hist["iteration"][own], np.arange(1, n_records + 1))
        objective = hist["objective"][own]
        assert_array_equal(hist["change"][own][1:], np.diff(objective))
        assert np.isnan(hist["change"][own][0])
        assert np.all(np.diff(hist["elapsed"][own]) >= 0)
        if stage == 3:
            assert np.isnan(objective).all()
        else:
            assert np.isfinite(objective).all()
    assert hist["cluster_alignment"].shape == (101, 2)
    assert hist["global_alignment"].shape == (101, 2)
    assert hist["router_accuracy"].shape == (101,)


_STAGE_LINE = (
    r"\[SGDMoERegressor stage (?P<stage>\d)/4 \((?P<name>[a-z ]+)\)\] iter +(?P<iter>\d+)/"
    r"(?P<budget>\d+)  (?P<objective>correlation loss|training MSE) +(?P<value>-?\d\.\d{6}e[+-]\d+)"
    r"  change +(nan|-?\d\.\d{3}e[+-]\d+)  elapsed \d+\.\d\ds  ETA \d+\.\ds"
)


@pytest.mark.parametrize("verbose", [0, 1, 2])
def test_verbose_prints_the_monitor_line_format(capsys, verbose):
    X, y = make_latent_cluster_regression(2000, 8, random_state=0)
    steps = (200, 30, 120)
    model = SGDMoERegressor(n_steps=steps, verbose=verbose, random_state=0).fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    if not verbose:
        assert lines == []
        return
    progress = [re.fullmatch(_STAGE_LINE, line) for line in lines if " iter " in line]
    assert all(progress), lines
    closing = [line for line in lines if " iter " not in line]
    assert len(closing) == 4
    names = {"1": "neurons", "2": "router", "3": "routed experts", "4": "ridge"}
    for stage, n_records in zip("123", (50, 30, 60)):
        own = [m for m in progress if m["stage"] == stage]
        expected = range(1, n_records + 1) if verbose > 1 else [
            *range(10, n_records + 1, 10), *([n_records] if n_records % 10 else [])]
        assert [int(m["iter"]) for m in own] == list(expected)
        assert {(m["name"], m["budget"], m["objective"]) for m in own} == {
            (names[stage], str(n_records), "correlation loss")}
    (ridge,) = [m for m in progress if m["stage"] == "4"]
    assert (ridge["name"], ridge["iter"], ridge["objective"]) == ("ridge", "1", "training MSE")
    # The ridge stage reports the training mean squared error of the model.
    assert_allclose(float(ridge["value"]), np.mean((y - model.predict(X)) ** 2), rtol=1e-5)
    assert re.fullmatch(r"\[SGDMoERegressor stage 4/4 \(ridge\)\] finished after 1 "
                        r"iterations in \d+\.\d\ds", closing[-1])


_FITTED = ("expert_weights_", "expert_coef_", "expert_intercept_", "router_coef_",
           "learning_rates_", "n_steps_", "n_iter_", "history_", "n_features_in_")


def test_failed_fit_keeps_previous_state_or_leaves_unfitted():
    """The ridge stage fails (infinite penalty) after the SGD stages have run."""
    X, y, truth = make_latent_cluster_regression(1500, 8, return_truth=True, random_state=0)
    # A failed first fit leaves the estimator unfitted.
    fresh = SGDMoERegressor(n_neurons=2, alpha=1e308, random_state=0)
    with pytest.raises(ValueError, match="ridge regression failed"):
        fresh.fit(X, y)
    assert not [name for name in vars(fresh) if name.endswith("_")]
    with pytest.raises(NotFittedError):
        fresh.predict(X)
    # A failed refit (other parameters, other number of features) leaves the
    # previous fitted state, and so its predictions, unchanged.
    model = SGDMoERegressor(n_neurons=2, random_state=0).fit(X, y, truth=truth)
    before = {name: getattr(model, name) for name in _FITTED}
    before = {name: value.copy() if isinstance(value, np.ndarray) else value
              for name, value in before.items()}
    pred = model.predict(X)
    model.set_params(n_experts=3, alpha=1e308, random_state=1)
    with pytest.raises(ValueError, match="ridge regression failed"):
        model.fit(X[:, :7], y)
    for name, value in before.items():
        if isinstance(value, dict):
            assert value.keys() == model.history_.keys()
            for key in value:
                assert_array_equal(model.history_[key], value[key])
        else:
            assert_array_equal(getattr(model, name), value)
    assert_array_equal(model.predict(X), pred)


def test_single_network_router_is_inert_and_float32_preserved():
    X, y = make_latent_cluster_regression(2000, 8, random_state=0)
    model = SGDMoERegressor(1, random_state=0).fit(X.astype(np.float32), y)
    assert_array_equal(model.router_coef_, 0.0)
    assert model.predict(X.astype(np.float32)).dtype == np.float32
    assert_array_equal(model.route(X), 0)


def test_bad_input_is_rejected():
    X, y, truth = make_latent_cluster_regression(100, 6, return_truth=True, random_state=0)
    Xnan = X.copy()
    Xnan[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        SGDMoERegressor().fit(Xnan, y)
    with pytest.raises(ValueError, match="sum to at most 1"):
        SGDMoERegressor(stages=(0.5, 0.5, 0.5)).fit(X, y)
    with pytest.raises(ValueError, match="3 non-negative fractions"):
        SGDMoERegressor(stages=(0.5, 0.5)).fit(X, y)
    with pytest.raises(ValueError, match="top_k"):
        SGDMoERegressor(2, top_k=3).fit(X, y)
    with pytest.raises(ValueError, match="learning_rates"):
        SGDMoERegressor(learning_rates=(0.1, -1.0, 0.1)).fit(X, y)
    with pytest.raises(ValueError, match="n_steps"):
        SGDMoERegressor(n_steps=(1.5, 2, 3)).fit(X, y)
    for bad in ((True, 2, 3), (1, -2, 3), (1, 2), 5):
        with pytest.raises(ValueError, match="n_steps"):
            SGDMoERegressor(n_steps=bad).fit(X, y)
    with pytest.raises(ValueError, match="'n_neurons' parameter"):
        SGDMoERegressor(n_neurons=True).fit(X, y)
    with pytest.raises(ValueError, match="truth"):
        SGDMoERegressor().fit(X, y, truth={"labels": 1})
    model = SGDMoERegressor(random_state=0).fit(X, y)
    _, _, truth7 = make_latent_cluster_regression(10, 7, return_truth=True, random_state=0)
    with pytest.raises(ValueError, match="dimension"):
        model.alignment(truth7)
    with pytest.raises(ValueError, match="features"):
        model.predict(X[:, :5])


def test_fewer_samples_than_experts_is_rejected():
    X, y = make_latent_cluster_regression(10, 6, random_state=0)
    with pytest.raises(ValueError, match="n_samples >= n_experts but got n_experts = 2, n_samples = 1"):
        SGDMoERegressor().fit(X[:1], y[:1])
    with pytest.raises(ValueError, match="n_samples >= n_experts but got n_experts = 4, n_samples = 3"):
        SGDMoERegressor(4).fit(X[:3], y[:3])
    # As many samples as experts is accepted.
    SGDMoERegressor(2, random_state=0).fit(X[:2], y[:2])


def _bad_truths(truth):
    """``(key, bad value, message)`` for every checked entry of ``truth``."""
    nan_means = truth["cluster_means"].copy()
    nan_means[0, 0] = np.nan
    inf_global = truth["global_direction"].copy()
    inf_global[1] = np.inf
    return [
        ("separation", np.nan, "'separation' parameter of the truth dict"),
        ("separation", "3", "'separation' parameter of the truth dict"),
        ("separation", -1.0, "'separation' parameter of the truth dict"),
        ("separation", np.inf, "'separation' parameter of the truth dict"),
        ("cluster_means", nan_means, r"truth\['cluster_means'\] must be a finite real array"),
        ("cluster_means", truth["cluster_means"][:, :-1],
         r"truth\['cluster_means'\] must have shape \(n_clusters, n_features=6\)"),
        ("cluster_means", truth["cluster_means"][0], r"truth\['cluster_means'\] must have shape"),
        ("cluster_directions", "abc", r"truth\['cluster_directions'\] must be a finite real"),
        ("cluster_directions", truth["cluster_directions"][:1],
         r"truth\['cluster_directions'\] must have the shape of truth\['cluster_means'\]"),
        ("global_direction", inf_global, r"truth\['global_direction'\] must be a finite real"),
    ]


def test_bad_truth_is_rejected_naming_the_key():
    X, y, truth = make_latent_cluster_regression(100, 6, return_truth=True, random_state=0)
    model = SGDMoERegressor(random_state=0).fit(X, y)
    for key, value, match in _bad_truths(truth):
        bad = {**truth, key: value}
        with pytest.raises(ValueError, match=match):
            model.alignment(bad)
        with pytest.raises(ValueError, match=match):
            SGDMoERegressor(random_state=0).fit(X, y, truth=bad)
    # A truth with three clusters, whose means and directions agree, is valid.
    _, _, truth3 = make_latent_cluster_regression(
        10, 7, n_clusters=3, return_truth=True, random_state=0
    )
    X7, y7 = make_latent_cluster_regression(100, 7, random_state=0)
    scores = SGDMoERegressor(random_state=0).fit(X7, y7, truth=truth3).alignment(truth3)
    assert scores["cluster"].shape == (3,)


def test_set_params_after_fit_changes_no_prediction():
    """predict reads the top_k snapshotted at fit, not the live parameter."""
    X, y = make_latent_cluster_regression(2000, 8, n_clusters=3, random_state=0)
    model = SGDMoERegressor(3, n_neurons=2, top_k=1, random_state=0).fit(X, y)
    before, route = model.predict(X), model.route(X)
    model.set_params(top_k=3, n_experts=2, degree=1)
    assert_array_equal(model.predict(X), before)
    assert_array_equal(model.route(X), route)
    # top_k matters: a fit with top_k=3 predicts differently.
    other = SGDMoERegressor(3, n_neurons=2, top_k=3, random_state=0).fit(X, y)
    assert not np.allclose(other.predict(X), before)


def test_float32_in_float32_attributes_and_outputs():
    """A float32 fit stores the float64 fit of the same (upcast) data in float32."""
    X, y, truth = make_latent_cluster_regression(3000, 8, return_truth=True, random_state=0)
    X32 = X.astype(np.float32)
    m32 = SGDMoERegressor(top_k=2, random_state=0).fit(X32, y, truth=truth)
    m64 = SGDMoERegressor(top_k=2, random_state=0).fit(X32.astype(np.float64), y, truth=truth)
    for name in ("expert_weights_", "expert_coef_", "expert_intercept_", "router_coef_"):
        assert getattr(m32, name).dtype == np.float32, name
        assert getattr(m64, name).dtype == np.float64, name
        assert_array_equal(getattr(m32, name), getattr(m64, name).astype(np.float32), name)
    for key in ("objective", "samples", "cluster_alignment", "router_accuracy"):
        assert_array_equal(m32.history_[key], m64.history_[key])
    pred32, pred64 = m32.predict(X32), m64.predict(X32)
    assert pred32.dtype == pred64.dtype == np.float32
    assert_allclose(pred32, pred64, rtol=1e-4, atol=1e-4 * np.abs(pred64).max())
    assert m32.predict(X).dtype == np.float64


def test_router_is_deprecated():
    X, y = make_latent_cluster_regression(300, 6, random_state=0)
    assert SGDMoERegressor().router == "deprecated"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the default warns about nothing
        default = SGDMoERegressor(random_state=0).fit(X, y)
    with pytest.warns(FutureWarning, match="'router' of SGDMoERegressor was deprecated in "
                                           "version 0.1 and will be removed in 0.3") as record:
        explicit = SGDMoERegressor(router="linear", random_state=0).fit(X, y)
    assert record[0].filename == __file__  # attributed to the caller's fit
    # It has no effect.
    assert_array_equal(explicit.predict(X), default.predict(X))
    # The old value and "deprecated" are accepted, nothing else.
    with pytest.raises(ValueError, match="'router' parameter"):
        SGDMoERegressor(router="softmax").fit(X, y)


def _unfused_predict(model, X):
    """The reference formula in NumPy: all experts' Hermite features, gated."""
    scores = X.astype(np.float64) @ model.router_coef_.T.astype(np.float64)
    top_k = model._fitted_params["top_k"]
    gates = np.zeros_like(scores)
    top = np.argsort(-scores, axis=1, kind="stable")[:, :top_k]
    chosen = np.take_along_axis(scores, top, axis=1)
    w = np.exp(chosen - chosen[:, :1])
    np.put_along_axis(gates, top, w / w.sum(axis=1, keepdims=True), axis=1)
    degree = model.expert_coef_.shape[2]
    pred = np.zeros(len(X))
    for m in range(model.router_coef_.shape[0]):
        t = X.astype(np.float64) @ model.expert_weights_[m].T.astype(np.float64)
        features = np.stack([_h(t, i) for i in range(1, degree + 1)], axis=-1)
        expert = np.einsum("njp,jp->n", features, model.expert_coef_[m].astype(np.float64))
        pred += gates[:, m] * (expert + model.expert_intercept_[m])
    return pred


@pytest.mark.parametrize("top_k", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_predict_equals_unfused_formula_and_is_row_wise(top_k, dtype):
    """The fused kernel equals the unfused NumPy formula, and each row's
    output is bit-for-bit independent of the other rows (so of the block
    partition and of the thread count)."""
    rng = np.random.RandomState(1)
    X = rng.standard_normal((9000, 6)).astype(dtype)  # several row blocks
    y = rng.standard_normal(9000)
    model = SGDMoERegressor(3, n_neurons=3, top_k=top_k, degree=5, random_state=0).fit(X, y)
    model.router_coef_ = rng.standard_normal(model.router_coef_.shape).astype(dtype)
    pred = model.predict(X)
    assert pred.dtype == dtype
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    reference = _unfused_predict(model, X)
    assert_allclose(pred, reference, rtol=rtol, atol=rtol * np.abs(reference).max())
    rows = rng.permutation(9000)[:37]
    assert_array_equal(model.predict(X[rows]), pred[rows])
