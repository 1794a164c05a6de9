"""Tests for MixtureOfMLPsRegressor / MixtureOfMLPsClassifier and their kernels."""

import re
import warnings

import distributed
import numpy as np
import pandas as pd
import pytest
from joblib import parallel_config
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import ConvergenceWarning, NotFittedError

from skmoe import MixtureOfMLPsClassifier, MixtureOfMLPsRegressor
from skmoe.neural_network import _mlp_numba as _mlp
from skmoe.neural_network import _routing
from skmoe.neural_network._mlp_training import fold_scaling, n_validation_samples, train_expert
from skmoe.utils import expert_n_parameters, mlp_width_for_n_parameters

# --------------------------------------------------------------------------
# Independent NumPy reference of the documented parameter layout
# --------------------------------------------------------------------------


def _np_unpack(params, sizes, prelu):
    """Weights, biases and slopes from the flat layout, read sequentially."""
    pos = 0
    Ws, bs, slopes = [], [], []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        Ws.append(params[pos : pos + n_in * n_out].reshape(n_out, n_in))
        pos += n_in * n_out
        bs.append(params[pos : pos + n_out])
        pos += n_out
    for width in sizes[1:-1]:
        if prelu:
            slopes.append(params[pos : pos + width])
            pos += width
        else:
            slopes.append(np.zeros(width))
    assert pos == params.size
    return Ws, bs, slopes


def _np_forward(params, sizes, prelu, X):
    Ws, bs, slopes = _np_unpack(params, sizes, prelu)
    A = np.asarray(X, dtype=np.float64)
    for layer, (W, b) in enumerate(zip(Ws, bs)):
        Z = A @ W.T + b
        if layer < len(Ws) - 1:
            A = np.where(Z > 0, Z, slopes[layer] * Z)
        else:
            A = Z
    return A


def _np_loss(params, sizes, prelu, loss_kind, alpha, X, Y):
    out = _np_forward(params, sizes, prelu, X)
    n = X.shape[0]
    if loss_kind == 0:
        loss = 0.5 * ((out - Y) ** 2).sum() / n
    elif loss_kind == 1:
        z, y = out[:, 0], Y[:, 0]
        loss = np.mean(np.logaddexp(0.0, z) - y * z)
    else:
        logp = out - np.logaddexp.reduce(out, axis=1, keepdims=True)
        loss = -(Y * logp).sum() / n
    Ws = _np_unpack(params, sizes, prelu)[0]
    return loss + 0.5 * alpha * sum((W**2).sum() for W in Ws) / n


def _kernel_loss(params, sizes, prelu, loss_kind, alpha, X, Y, weights=None):
    w_off, b_off, s_off, u_off, _ = _mlp.layer_offsets(sizes, prelu)
    return _mlp.mean_loss(
        params,
        X,
        Y,
        np.ones(X.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64),
        np.asarray(sizes, dtype=np.int64),
        w_off,
        b_off,
        s_off,
        u_off,
        prelu,
        loss_kind,
        alpha,
    )


def _random_problem(loss_kind, prelu, seed=0, n=13):
    rng = np.random.RandomState(seed)
    n_out = {0: 2, 1: 1, 2: 3}[loss_kind]
    sizes = [3, 5, 4, n_out]
    n_params = _mlp.layer_offsets(sizes, prelu)[4]
    params = rng.standard_normal(n_params)
    if prelu:
        s_off = _mlp.layer_offsets(sizes, prelu)[2]
        params[s_off[0] : s_off[-1]] = rng.uniform(0.05, 0.9, s_off[-1] - s_off[0])
    X = rng.standard_normal((n, 3))
    if loss_kind == 0:
        Y = rng.standard_normal((n, n_out))
    elif loss_kind == 1:
        Y = rng.randint(0, 2, (n, 1)).astype(float)
    else:
        Y = np.eye(n_out)[rng.randint(0, n_out, n)]
    return params, sizes, X, Y


# --------------------------------------------------------------------------
# Kernels
# --------------------------------------------------------------------------


@pytest.mark.parametrize("loss_kind", [0, 1, 2])
@pytest.mark.parametrize("prelu", [True, False])
def test_loss_matches_numpy_reference(loss_kind, prelu):
    params, sizes, X, Y = _random_problem(loss_kind, prelu)
    loss, _ = _kernel_loss(params, sizes, prelu, loss_kind, 0.3, X, Y)
    assert_allclose(loss, _np_loss(params, sizes, prelu, loss_kind, 0.3, X, Y), rtol=1e-12)


@pytest.mark.parametrize("loss_kind", [0, 1, 2])
@pytest.mark.parametrize("prelu", [True, False])
def test_gradient_finite_differences(loss_kind, prelu):
    """Every parameter's gradient, PReLU slopes included, by central differences."""
    params, sizes, X, Y = _random_problem(loss_kind, prelu, seed=1)
    alpha = 0.2
    _, grad = _kernel_loss(params, sizes, prelu, loss_kind, alpha, X, Y)
    h = 1e-6
    numeric = np.empty_like(params)
    for j in range(params.size):
        step = np.zeros_like(params)
        step[j] = h
        up = _np_loss(params + step, sizes, prelu, loss_kind, alpha, X, Y)
        down = _np_loss(params - step, sizes, prelu, loss_kind, alpha, X, Y)
        numeric[j] = (up - down) / (2 * h)
    assert_allclose(grad, numeric, rtol=1e-5, atol=1e-7)
    if prelu:
        s_off = _mlp.layer_offsets(sizes, prelu)[2]
        slope_grad = grad[s_off[0] : s_off[-1]]
        # The slopes are really exercised (a unit positive on every row has a
        # zero slope gradient, which the finite differences confirm).
        assert np.mean(np.abs(slope_grad) > 1e-6) > 0.5


def test_prelu_with_zero_slopes_is_relu():
    params_relu, sizes, X, Y = _random_problem(0, prelu=False, seed=2)
    n_slopes = sum(sizes[1:-1])
    params_prelu = np.concatenate([params_relu, np.zeros(n_slopes)])
    loss_r, grad_r = _kernel_loss(params_relu, sizes, False, 0, 0.1, X, Y)
    loss_p, grad_p = _kernel_loss(params_prelu, sizes, True, 0, 0.1, X, Y)
    assert loss_p == loss_r
    assert_array_equal(grad_p[: params_relu.size], grad_r)


def test_adam_step_matches_sklearn_adam():
    """Several Adam steps equal scikit-learn's AdamOptimizer (independent code)."""
    from sklearn.neural_network._stochastic_optimizers import AdamOptimizer

    rng = np.random.RandomState(0)
    params = rng.standard_normal(7)
    reference = [params.copy()]
    opt = AdamOptimizer(reference, learning_rate_init=0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-6)
    m = np.zeros(7)
    v = np.zeros(7)
    for t in range(1, 6):
        grad = rng.standard_normal(7)
        _mlp.adam_step(params, grad, m, v, t, 0.01, 0.8, 0.99, 1e-6)
        opt.update_params(reference, [grad.copy()])
        assert_allclose(params, reference[0], rtol=1e-13, atol=1e-15)


def test_adam_step_textbook_form():
    """One step from zero moments moves by lr * g / (|g| + eps / sqrt(1 - beta2))."""
    g = np.array([0.5, -2.0, 1e-3])
    p = np.zeros(3)
    _mlp.adam_step(p, g, np.zeros(3), np.zeros(3), 1, 0.1, 0.9, 0.999, 1e-8)
    m_hat = g  # (1 - b1) g / (1 - b1)
    v_hat = g**2
    assert_allclose(p, -0.1 * m_hat / (np.sqrt(v_hat) + 1e-8 / np.sqrt(1 - 0.999)), rtol=1e-12)


def test_fold_scaling_equals_scaled_network():
    rng = np.random.RandomState(3)
    sizes = [3, 6, 5, 2]
    params = rng.standard_normal(_mlp.layer_offsets(sizes, True)[4])
    x_mean, x_scale = rng.standard_normal(3), rng.uniform(0.5, 2.0, 3)
    y_mean, y_scale = rng.standard_normal(2), rng.uniform(0.5, 2.0, 2)
    X = rng.standard_normal((20, 3))
    expected = _np_forward(params, sizes, True, (X - x_mean) / x_scale) * y_scale + y_mean
    folded = fold_scaling(params, sizes, True, x_mean, x_scale, y_mean, y_scale)
    assert_allclose(_np_forward(folded, sizes, True, X), expected, rtol=1e-10, atol=1e-12)


def test_training_decreases_loss_and_keeps_slopes_in_range():
    rng = np.random.RandomState(0)
    X = rng.uniform(size=(300, 2))
    Y = (np.sin(4 * X[:, :1]) + X[:, 1:] ** 2)
    kwargs = dict(
        alpha=0.0,
        learning_rate_init=1e-2,
        batch_size=32,
        tol=0.0,
        n_iter_no_change=1000,
        early_stopping=False,
        validation_fraction=0.1,
        seed=0,
    )
    sizes = [2, 16, 1]
    losses = []
    for max_iter in (1, 50):
        params, monitor = train_expert(X, Y, (16,), True, 0, max_iter=max_iter, **kwargs)
        assert monitor.n_iter == max_iter and not monitor.converged
        losses.append(np.mean((_np_forward(params, sizes, True, X) - Y) ** 2))
        slopes = _np_unpack(params, sizes, True)[2][0]
        assert np.all((slopes >= 0) & (slopes <= _mlp.SLOPE_MAX))
    assert losses[1] < 0.1 * losses[0]


# --------------------------------------------------------------------------
# Routing
# --------------------------------------------------------------------------


@pytest.mark.parametrize("n_features, n_cells", [(2, 16), (2, 8), (3, 8), (1, 4)])
def test_grid_tree_routing_equals_flat_routing(n_features, n_cells):
    rng = np.random.RandomState(0)
    tree, prototypes = _routing.grid_tree(np.zeros(n_features), np.ones(n_features), n_cells)
    X = rng.uniform(-0.2, 1.2, size=(3000, n_features))
    # Points on cell boundaries and corners (exact dyadic values): ties.
    X[:500] = rng.randint(0, 9, size=(500, n_features)) / 8.0
    assert_array_equal(_routing.route_tree(X, tree), _routing.route_flat(X, prototypes))
    # The cell of a row is the grid box that contains it.
    assert np.unique(_routing.route_tree(X, tree)).size == n_cells


def test_grid_routing_estimator_equals_flat_routing_on_its_prototypes():
    rng = np.random.RandomState(0)
    X = rng.uniform(size=(400, 2))
    y = X.sum(axis=1)
    kw = dict(hidden_layer_sizes=(4,), max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        grid = MixtureOfMLPsRegressor(16, routing="grid", **kw).fit(X, y)
        flat = MixtureOfMLPsRegressor(routing=grid.prototypes_, **kw).fit(X, y)
    assert grid.routing_tree_ is not None and flat.routing_tree_ is None
    X_test = np.vstack([rng.uniform(size=(1000, 2)), rng.randint(0, 5, (200, 2)) / 4.0])
    X_test = X_test * (X.max(0) - X.min(0)) + X.min(0)
    assert_array_equal(grid.route(X_test), flat.route(X_test))


def test_flat_ties_go_to_smallest_index():
    prototypes = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0], [-1.0, 0.0]])
    X = np.array([[0.0, 0.0], [0.5, 0.0], [-0.5, 0.0], [0.0, 3.0]])
    assert_array_equal(_routing.route_flat(X, prototypes), [1, 0, 1, 1])


def test_bisecting_tree_descent_and_leaves():
    rng = np.random.RandomState(0)
    X = rng.standard_normal((500, 3))
    tree, prototypes = _routing.bisecting_tree(X, 6, np.random.RandomState(0))
    assert prototypes.shape == (6, 3)
    cells = _routing.route_tree(X, tree)
    assert np.unique(cells).size == 6
    # Brute-force descent in NumPy.
    expected = []
    for x in X:
        node = 0
        while tree["children"][node, 0] >= 0:
            left, right = tree["children"][node]
            d = ((tree["centers"][[left, right]] - x) ** 2).sum(axis=1)
            node = left if d[0] <= d[1] else right
        expected.append(tree["leaf"][node])
    assert_array_equal(cells, expected)
    # Splitting the largest-inertia leaf of an isotropic sample keeps the tree
    # balanced: depth ceil(log2(6)) = 3 (any 6-leaf tree has depth >= 3; a
    # rule that kept splitting the newest leaf would reach depth 5).
    depth = _routing.tree_depths(tree)[tree["leaf"] >= 0]
    assert depth.max() <= np.ceil(np.log2(6))


# --------------------------------------------------------------------------
# Estimators
# --------------------------------------------------------------------------


def _lipschitz_target(X):
    return np.sin(2 * np.pi * X[:, 0]) * np.cos(2 * np.pi * X[:, 1]) + np.abs(X[:, 0] - X[:, 1])


@pytest.fixture(scope="module")
def lipschitz_data():
    rng = np.random.RandomState(0)
    X = rng.uniform(size=(4000, 2))
    return X, _lipschitz_target(X)


def _fit_quietly(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y)


def test_sup_norm_error_falls_with_more_experts(lipschitz_data):
    """Fixed expert size (8 hidden units), dyadic grids of 1, 4, 16, 64 cells."""
    X, y = lipschitz_data
    g = np.linspace(0, 1, 101)
    G = np.array(np.meshgrid(g, g)).reshape(2, -1).T
    errors = []
    for n_experts in (1, 4, 16, 64):
        model = MixtureOfMLPsRegressor(
            n_experts,
            routing="grid",
            hidden_layer_sizes=(8,),
            learning_rate_init=1e-2,
            batch_size=32,
            max_iter=300,
            random_state=0,
        )
        _fit_quietly(model, X, y)
        errors.append(np.abs(model.predict(G) - _lipschitz_target(G)).max())
        # Active parameters do not grow with the number of experts (except routing).
        assert model.active_parameters_ == expert_n_parameters(2, (8,), 1, True) + 2 * 2 * int(
            np.log2(n_experts)
        )
    assert all(b < a for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 0.25 * errors[0], errors


def test_predict_uses_only_the_routed_expert(lipschitz_data):
    """Predictions equal a NumPy evaluation of each row's own expert only."""
    X, y = lipschitz_data
    model = _fit_quietly(
        MixtureOfMLPsRegressor(5, hidden_layer_sizes=(6, 5), max_iter=20, random_state=0),
        X[:1000],
        y[:1000],
    )
    X_test = np.random.RandomState(1).uniform(size=(300, 2))
    cells = np.argmin(((X_test[:, None, :] - model.prototypes_) ** 2).sum(-1), axis=1)
    assert_array_equal(model.route(X_test), model.expert_of_cell_[cells])
    expected = np.empty(300)
    for i, e in enumerate(model.expert_of_cell_[cells]):
        expected[i] = _np_forward(model.expert_params_[e], model.layer_sizes_, True, X_test[i])[0]
    assert_allclose(model.predict(X_test), expected, rtol=1e-10, atol=1e-12)

    # Poisoning one expert's weights changes exactly its own rows.
    e = 2
    model.expert_params_ = model.expert_params_.copy()
    model.expert_params_[e] = np.nan
    poisoned = np.isnan(model._raw_outputs(X_test)[0][:, 0])
    assert_array_equal(poisoned, model.route(X_test) == e)
    assert poisoned.any()
    # ... and predict reports the non-finite output instead of returning it.
    with pytest.raises(ValueError, match="predict output is not finite"):
        model.predict(X_test)
    assert np.all(np.isfinite(model.predict(X_test[~poisoned])))


def test_reproducible_whatever_n_jobs(lipschitz_data):
    X, y = lipschitz_data
    X, y = X[:800], y[:800]
    fits = []
    for n_jobs, backend in ((1, None), (2, "threading"), (2, "loky")):
        model = MixtureOfMLPsRegressor(
            4, hidden_layer_sizes=(8,), max_iter=15, n_jobs=n_jobs, random_state=0
        )
        if backend is None:
            _fit_quietly(model, X, y)
        else:
            with parallel_config(backend=backend):
                _fit_quietly(model, X, y)
        fits.append(model)
    for model in fits[1:]:
        assert_array_equal(model.expert_params_, fits[0].expert_params_)
        assert_array_equal(model.prototypes_, fits[0].prototypes_)
        assert_array_equal(model.predict(X), fits[0].predict(X))


def test_dask_backend_gives_the_same_fit(lipschitz_data):
    """Experts trained on a Dask cluster through joblib, and lazy Dask
    predictions computed on it, equal the local NumPy results."""
    import dask.array as da

    X, y = lipschitz_data
    X, y = X[:500], y[:500]
    kw = dict(hidden_layer_sizes=(4,), max_iter=5, random_state=0)
    reference = _fit_quietly(MixtureOfMLPsRegressor(4, **kw), X, y)
    # Two worker processes: the experts are pickled to other processes and
    # trained concurrently.
    with distributed.LocalCluster(
        processes=True, n_workers=2, threads_per_worker=1, dashboard_address=None
    ) as cluster, distributed.Client(cluster):
        with parallel_config(backend="dask"):
            model = _fit_quietly(MixtureOfMLPsRegressor(4, n_jobs=-1, **kw), X, y)
        lazy = reference.predict(da.from_array(X, chunks=(120, 2)))
        assert isinstance(lazy, da.Array)
        predicted = lazy.compute()  # the blocks run on the two worker processes
    assert_array_equal(model.expert_params_, reference.expert_params_)
    assert_array_equal(predicted, reference.predict(X))


def test_parameter_counts_and_vc_bound():
    rng = np.random.RandomState(0)
    X = rng.uniform(size=(400, 3))
    y = X.sum(axis=1)
    n, J, W = 3, 3, 7
    expert = (n + 1) * W + (J - 1) * (W**2 + W) + W + 1  # the paper's formula (ReLU)
    assert expert_n_parameters(n, (W,) * J, 1, False) == expert
    assert expert_n_parameters(n, (W,) * J, 1, True) == expert + J * W

    flat = _fit_quietly(
        MixtureOfMLPsRegressor(4, hidden_layer_sizes=(W,) * J, activation="relu", max_iter=2,
                               random_state=0),
        X,
        y,
    )
    assert flat.expert_is_mlp_.all()
    assert flat.active_parameters_ == expert + 4 * n
    assert flat.n_parameters_ == 4 * expert + 4 * n
    assert flat.vc_dimension_bound() == 4 * max(n * 4, J * W)

    grid = _fit_quietly(
        MixtureOfMLPsRegressor(8, routing="grid", hidden_layer_sizes=(W,) * J,
                               activation="relu", max_iter=2, random_state=0),
        X,
        y,
    )
    assert grid.active_parameters_ == expert + 2 * n * 3
    assert grid.n_parameters_ == 8 * expert + 14 * n  # 15 nodes, root centre unused
    assert grid.vc_dimension_bound() == 8 * max(n * 8, J * W)


@pytest.mark.parametrize(
    "args, match",
    [
        ((3, (-4,), 1, True), "hidden_layer_sizes must be a positive int or"),
        ((3, (), 1, True), "hidden_layer_sizes must be a positive int or"),
        ((3, (2.5,), 1, True), "hidden_layer_sizes must be a positive int or"),
        ((3, [[3, 3]], 1, True), "hidden_layer_sizes must be a positive int or"),
        ((3, 4, 1, True), "'hidden_layer_sizes' parameter of expert_n_parameters"),
        ((0, (4,), 1, True), "'n_features' parameter of expert_n_parameters"),
        (("3", (4,), 1, True), "'n_features' parameter of expert_n_parameters"),
        ((True, (4,), 1, True), "'n_features' parameter of expert_n_parameters"),
        ((3, (4,), 0, True), "'n_outputs' parameter of expert_n_parameters"),
        ((3, (4,), 1, "yes"), "'prelu' parameter of expert_n_parameters"),
    ],
)
def test_expert_n_parameters_rejects_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        expert_n_parameters(*args)


@pytest.mark.parametrize(
    "args, match",
    [
        ((-10, 3), "'n_parameters' parameter of mlp_width_for_n_parameters must be an int"),
        ((0, 3), "'n_parameters' parameter of mlp_width_for_n_parameters must be an int"),
        ((np.inf, 3), "'n_parameters' parameter of mlp_width_for_n_parameters must be an int"),
        ((1000.0, 3), "'n_parameters' parameter of mlp_width_for_n_parameters must be an int"),
        ((10**30, 3), r"'n_parameters' parameter .* range \[1, 9223372036854775807\]"),
        ((1000, 0), "'n_features' parameter of mlp_width_for_n_parameters"),
        ((1000, "3"), "'n_features' parameter of mlp_width_for_n_parameters"),
        ((1000, 3, 0), "'n_hidden_layers' parameter of mlp_width_for_n_parameters"),
        ((1000, 3, 2, True), "'n_outputs' parameter of mlp_width_for_n_parameters"),
    ],
)
def test_mlp_width_for_n_parameters_rejects_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        mlp_width_for_n_parameters(*args)


@pytest.mark.parametrize("n_hidden_layers", [1, 2, 3])
def test_mlp_width_for_n_parameters_at_the_largest_count(n_hidden_layers):
    # Exact integer arithmetic: the width is the nearest one even where float
    # square roots or int64 counts would lose it.
    n_parameters = int(np.iinfo(np.int64).max)
    width = mlp_width_for_n_parameters(n_parameters, 3, n_hidden_layers)
    gaps = [
        abs(expert_n_parameters(3, (w,) * n_hidden_layers, 1, False) - n_parameters)
        for w in (width - 1, width, width + 1)
    ]
    assert gaps[1] <= min(gaps[0], gaps[2])


@pytest.mark.parametrize(
    "n_parameters, n_features, n_layers, n_outputs",
    [(38_000, 2, 2, 1), (1000, 5, 1, 1), (5000, 3, 3, 2), (7, 2, 2, 1)],
)
def test_mlp_width_for_n_parameters_is_nearest(n_parameters, n_features, n_layers, n_outputs):
    width = mlp_width_for_n_parameters(n_parameters, n_features, n_layers, n_outputs)
    counts = np.array(
        [expert_n_parameters(n_features, (w,) * n_layers, n_outputs, False) for w in range(1, 600)]
    )
    assert width == 1 + int(np.argmin(np.abs(counts - n_parameters)))
    # An MLP of that width (weights and biases of each layer) has that count.
    fan = [n_features, *(width,) * n_layers, n_outputs]
    assert counts[width - 1] == sum(a * b + b for a, b in zip(fan[:-1], fan[1:]))


def test_small_cells_are_merged_with_a_warning():
    rng = np.random.RandomState(0)
    X = rng.uniform(size=(200, 2))
    X[:, 0] *= 0.49  # nothing in the right half: cells 2 and 3 of the 2x2 grid are empty
    X[0] = [1.0, 1.0]  # ...except one point in the upper-right cell
    y = X[:, 0] + X[:, 1]
    model = MixtureOfMLPsRegressor(4, routing="grid", hidden_layer_sizes=(4,), max_iter=3,
                                   random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.warns(UserWarning, match=r"2 cell\(s\).*merged.*2 -> 0 \(0\).*3 -> 1 \(1\)"):
            model.fit(X, y)
    assert_array_equal(model.expert_of_cell_, [0, 1, 0, 1])
    assert_array_equal(model.expert_is_mlp_, [True, True, False, False])
    assert model.expert_n_samples_.sum() == 200
    assert model.route(np.array([[0.9, 0.9]]))[0] == 1


def test_small_cells_constant_with_a_warning():
    rng = np.random.RandomState(0)
    X = rng.uniform(size=(200, 2))
    X[:, 0] *= 0.49
    X[:3] = [[0.9, 0.9], [0.95, 0.8], [1.0, 1.0]]
    y = X[:, 0] + X[:, 1]
    model = MixtureOfMLPsRegressor(4, routing="grid", hidden_layer_sizes=(4,), max_iter=3,
                                   small_cells="constant", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.warns(UserWarning, match=r"constant model.*2 \(0\), 3 \(3\)"):
            model.fit(X, y)
    assert_array_equal(model.expert_is_mlp_, [True, True, False, False])
    assert_allclose(model.predict(np.array([[0.99, 0.9]])), y[:3].mean())
    assert_allclose(model.predict(np.array([[0.99, 0.1]])), y.mean())  # empty cell


def test_convergence_warning_at_max_iter(lipschitz_data):
    X, y = lipschitz_data
    model = MixtureOfMLPsRegressor(2, hidden_layer_sizes=(4,), max_iter=2, tol=0.0,
                                   random_state=0)
    with pytest.warns(ConvergenceWarning) as record:
        model.fit(X[:300], y[:300])
    assert model.n_iter_ == 2
    # One warning per fit, in the monitor's text, naming every expert.
    messages = [str(w.message) for w in record if w.category is ConvergenceWarning]
    assert len(messages) == 1
    assert re.fullmatch(
        r"MixtureOfMLPsRegressor: 2 of 2 experts \(\[0, 1\]\) did not converge: the "
        r"stopping rule \(tol=0\) did not fire within max_iter=2 iterations \(last "
        r"change \S+\)\. Increase max_iter or tol\. The last change quoted is expert "
        r"0's\.",
        messages[0],
    ), messages[0]


_PROGRESS = (
    r"\[(?P<label>[^\]]+)\] iter +(?P<iter>\d+)/(?P<budget>\d+)  (?P<name>[a-z ]+?) +"
    r"-?\d\.\d{6}e[+-]\d+  change +(nan|-?\d\.\d{3}e[+-]\d+)  elapsed \d+\.\d\ds  "
    r"ETA <= \d+\.\ds"
)


@pytest.mark.parametrize("verbose, printed", [(0, []), (1, [10, 20, 25]), (2, list(range(1, 26)))])
def test_verbose_prints_one_monitor_line_format_per_expert(lipschitz_data, capsys, verbose,
                                                           printed):
    X, y = lipschitz_data
    model = MixtureOfMLPsRegressor(2, hidden_layer_sizes=(4,), max_iter=25, tol=0.0,
                                   n_iter_no_change=100, verbose=verbose, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X[:300], y[:300])
    lines = capsys.readouterr().out.splitlines()
    if not verbose:
        assert lines == []
        return
    for e in range(2):
        label = f"MixtureOfMLPsRegressor expert {e} (of 2)"
        own = [line for line in lines if line.startswith(f"[{label}]")]
        matches = [re.fullmatch(_PROGRESS, line) for line in own[:-1]]
        assert all(matches), own
        assert [int(m["iter"]) for m in matches] == printed
        assert {(m["label"], m["budget"], m["name"]) for m in matches} == {(label, "25", "loss")}
        assert re.fullmatch(rf"\[{re.escape(label)}\] did not converge after 25 iterations in "
                            r"\d+\.\d\ds", own[-1])
    assert len(lines) == 2 * (len(printed) + 1)


def test_early_stopping_keeps_the_best_validation_epoch(monkeypatch):
    """train_expert stops n_iter_no_change + 1 epochs after the best validation
    loss and returns that epoch's weights (recorded epoch by epoch, with the
    validation losses recomputed by the NumPy reference)."""
    rng = np.random.RandomState(0)
    n = 200
    X = rng.uniform(size=(n, 2))
    Y = np.sin(3 * X[:, :1]) + 0.5 * rng.standard_normal((n, 1))
    epochs, validation_sets = [], []
    real_epoch, real_loss = _mlp.train_epoch, _mlp.mean_loss

    def recording_epoch(params, *args):
        result = real_epoch(params, *args)
        epochs.append(params.copy())
        return result

    def recording_loss(params, X_val, Y_val, *args):
        validation_sets.append((X_val, Y_val))
        return real_loss(params, X_val, Y_val, *args)

    monkeypatch.setattr(_mlp, "train_epoch", recording_epoch)
    monkeypatch.setattr(_mlp, "mean_loss", recording_loss)
    max_iter, patience = 300, 4
    params, monitor = train_expert(
        X, Y, (16,), True, 0, alpha=0.0, learning_rate_init=0.05, batch_size=16,
        max_iter=max_iter, tol=0.0, n_iter_no_change=patience, early_stopping=True,
        validation_fraction=0.2, seed=0,
    )
    n_iter, converged = monitor.n_iter, monitor.converged
    assert converged and n_iter < max_iter
    assert len(epochs) == len(validation_sets) == n_iter
    X_val, Y_val = validation_sets[0]
    assert X_val.shape[0] == 40  # round(0.2 * 200)
    sizes = [2, 16, 1]
    val_losses = [_np_loss(w, sizes, True, 0, 0.0, X_val, Y_val) for w in epochs]
    best = int(np.argmin(val_losses))
    assert n_iter == best + 1 + patience + 1
    # Inputs and targets were standardised over the whole cell.
    scalings = (X.mean(axis=0), X.std(axis=0), Y.mean(axis=0), Y.std(axis=0))
    assert_allclose(params, fold_scaling(epochs[best], sizes, True, *scalings),
                    rtol=1e-12, atol=1e-14)
    assert not np.allclose(params, fold_scaling(epochs[-1], sizes, True, *scalings))


def test_validation_hold_out_rule():
    """Cells smaller than 2 / validation_fraction hold nothing out."""
    assert n_validation_samples(6, 0.1) == 0
    assert n_validation_samples(19, 0.1) == 0
    assert n_validation_samples(20, 0.1) == 2
    assert n_validation_samples(100, 0.25) == 25
    assert n_validation_samples(30, 0.9) == 27
    assert n_validation_samples(20, 0.95) == 0  # would train on one sample

    rng = np.random.RandomState(0)
    kw = dict(alpha=0.0, learning_rate_init=1e-2, batch_size=8, max_iter=5, tol=0.0,
              n_iter_no_change=100, validation_fraction=0.1, seed=3)
    for n, held_out in ((6, False), (19, False), (20, True)):
        X = rng.uniform(size=(n, 2))
        Y = X.sum(axis=1, keepdims=True)
        with_es = train_expert(X, Y, (4,), True, 0, early_stopping=True, **kw)[0]
        without = train_expert(X, Y, (4,), True, 0, early_stopping=False, **kw)[0]
        # Without a hold-out, early stopping trains exactly as without it.
        assert np.array_equal(with_es, without) != held_out, n


def test_float32_and_multioutput():
    rng = np.random.RandomState(0)
    X = rng.uniform(size=(300, 2)).astype(np.float32)
    Y = np.column_stack([X.sum(axis=1), X[:, 0] - X[:, 1]])
    model = _fit_quietly(
        MixtureOfMLPsRegressor(2, hidden_layer_sizes=(4,), max_iter=5, random_state=0), X, Y
    )
    pred = model.predict(X)
    assert pred.dtype == np.float32 and pred.shape == (300, 2)
    assert_allclose(pred, model.predict(X.astype(np.float64)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_classifier_probabilities_and_constant_cells(n_classes):
    rng = np.random.RandomState(0)
    X = rng.uniform(size=(600, 2))
    labels = np.array(["a", "b", "c"])[:n_classes]
    # Left half: a single class; right half: classes split by x2.
    other = 2 if n_classes == 3 else 0
    y_idx = np.where(X[:, 0] < 0.5, 0, np.where(X[:, 1] > 0.5, 1, other))
    y = labels[y_idx]
    clf = _fit_quietly(
        MixtureOfMLPsClassifier(2, routing="grid", hidden_layer_sizes=(8,), max_iter=200,
                                learning_rate_init=1e-2, random_state=0),
        X,
        y,
    )
    assert_array_equal(clf.classes_, labels)
    assert_array_equal(clf.expert_is_mlp_, [False, True])  # cell 0 holds one class
    proba = clf.predict_proba(X)
    assert proba.shape == (600, n_classes)
    assert_allclose(proba.sum(axis=1), 1.0)
    left = X[:, 0] < 0.5
    assert_array_equal(proba[left, 0], 1.0)
    assert_array_equal(clf.predict(X), labels[np.argmax(proba, axis=1)])
    assert clf.score(X, y) > 0.9


def test_classifier_mlp_probabilities_match_numpy():
    rng = np.random.RandomState(0)
    X = rng.standard_normal((400, 2))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)
    clf = _fit_quietly(
        MixtureOfMLPsClassifier(3, hidden_layer_sizes=(5,), max_iter=10, random_state=0), X, y
    )
    e = clf.route(X)
    logits = np.array([_np_forward(clf.expert_params_[k], clf.layer_sizes_, True, x)
                       for k, x in zip(e, X)])
    expected = np.exp(logits - np.logaddexp.reduce(logits, axis=1, keepdims=True))
    mlp = clf.expert_is_mlp_[e]
    assert mlp.any()
    assert_allclose(clf.predict_proba(X)[mlp], expected[mlp], rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(routing="grid", n_experts=6), "power of 2"),
        (dict(routing=np.zeros((3, 5))), "prototypes of shape"),
        (dict(routing=np.array([[0.0, np.nan]])), "NaN or infinity"),
        (dict(n_experts=50), "n_samples >= n_experts but got n_experts = 50, n_samples = 20"),
        (dict(hidden_layer_sizes=(4, 0)), "hidden_layer_sizes"),
        (dict(activation="tanh"), "activation"),
        (dict(small_cells="drop"), "small_cells"),
        # Booleans are not counts.
        (dict(max_iter=True), "'max_iter' parameter"),
        (dict(batch_size=True), "'batch_size' parameter"),
        (dict(n_iter_no_change=np.True_), "'n_iter_no_change' parameter"),
        (dict(min_samples_cell=True), "'min_samples_cell' parameter"),
    ],
)
def test_bad_parameters(params, match):
    X = np.random.RandomState(0).uniform(size=(20, 2))
    with pytest.raises(ValueError, match=match):
        MixtureOfMLPsRegressor(**params).fit(X, X[:, 0])


@pytest.mark.parametrize("Estimator", [MixtureOfMLPsRegressor, MixtureOfMLPsClassifier])
@pytest.mark.parametrize(
    "params, match",
    [
        (dict(hidden_layer_sizes=(2.5,)), "hidden_layer_sizes must be a positive int or"),
        (dict(hidden_layer_sizes=[[3, 3]]), "hidden_layer_sizes must be a positive int or"),
        (dict(hidden_layer_sizes=(3, True)), "hidden_layer_sizes must be a positive int or"),
        (dict(hidden_layer_sizes=()), "hidden_layer_sizes must be a positive int or"),
        (dict(hidden_layer_sizes=True), "'hidden_layer_sizes' parameter"),
        (dict(hidden_layer_sizes=0), "'hidden_layer_sizes' parameter"),
        (dict(n_experts=True), "'n_experts' parameter .* must be an int"),
        (dict(n_experts=2.0), "'n_experts' parameter .* must be an int"),
    ],
)
def test_bad_sizes_are_rejected_before_routing(Estimator, params, match):
    X = np.random.RandomState(0).uniform(size=(20, 2))
    y = (X[:, 0] > 0.5).astype(int)
    with pytest.raises(ValueError, match=match):
        Estimator(**params).fit(X, y)


@pytest.mark.parametrize("hidden_layer_sizes", [3, [3], (3,), np.array([3]), np.array(3), (np.int64(3),)])
def test_hidden_layer_sizes_int_or_sequence_of_ints(hidden_layer_sizes):
    X = np.random.RandomState(0).uniform(size=(40, 2))
    model = _fit_quietly(
        MixtureOfMLPsRegressor(np.int64(2), hidden_layer_sizes=hidden_layer_sizes, max_iter=2,
                               random_state=0),
        X,
        X[:, 0],
    )
    assert model.layer_sizes_ == (2, 3, 1)


def test_bad_input():
    rng = np.random.RandomState(0)
    X = rng.uniform(size=(50, 2))
    y = X[:, 0]
    model = MixtureOfMLPsRegressor(2, hidden_layer_sizes=(3,), max_iter=2, random_state=0)
    with pytest.raises(NotFittedError):
        model.predict(X)
    with pytest.raises(NotFittedError):
        model.route(X)
    X_nan = X.copy()
    X_nan[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.fit(X_nan, y)
    with pytest.raises(ValueError, match="inf"):
        model.fit(X, np.where(np.arange(50) == 4, np.inf, y))
    _fit_quietly(model, X, y)
    with pytest.raises(ValueError, match="features"):
        model.predict(X[:, :1])
    with pytest.raises(ValueError, match="NaN"):
        model.predict(X_nan)
    with pytest.raises(ValueError, match="sample"):
        MixtureOfMLPsRegressor(1).fit(X[:1], y[:1])
    with pytest.raises(ValueError, match="diverged"):
        _fit_quietly(
            MixtureOfMLPsRegressor(1, hidden_layer_sizes=(3,), learning_rate_init=1e200,
                                   max_iter=5, random_state=0),
            X,
            y,
        )


def test_bisecting_routing_estimator():
    rng = np.random.RandomState(0)
    X = rng.standard_normal((600, 3))
    y = np.abs(X).sum(axis=1)
    model = _fit_quietly(
        MixtureOfMLPsRegressor(5, routing="bisecting", hidden_layer_sizes=(4,), max_iter=3,
                               random_state=0),
        X,
        y,
    )
    tree = model.routing_tree_
    assert_array_equal(model.route(X), model.expert_of_cell_[_routing.route_tree(X, tree)])
    depth = _routing.tree_depths(tree).max()
    assert model.active_parameters_ == expert_n_parameters(3, (4,), 1, True) + 2 * 3 * depth
    assert model.n_parameters_ == 5 * expert_n_parameters(3, (4,), 1, True) + 8 * 3


def test_bisecting_routing_warns_when_it_builds_fewer_cells():
    X = np.repeat(np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), 4, axis=0)
    y = X.sum(axis=1)
    model = MixtureOfMLPsRegressor(8, routing="bisecting", hidden_layer_sizes=(2,), max_iter=2,
                                   min_samples_cell=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.warns(UserWarning, match=r"built 3 cells instead of n_experts=8"):
            model.fit(X, y)
    assert model.n_experts_ == 3
    # Enough distinct points: no such warning.
    X = np.random.RandomState(0).uniform(size=(100, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)  # a UserWarning subclass
        model.fit(X, X.sum(axis=1))
    assert model.n_experts_ == 8


def _diverging(estimator):
    return estimator.set_params(n_experts=2, learning_rate_init=1e200, max_iter=5)


@pytest.mark.parametrize("Estimator", [MixtureOfMLPsRegressor, MixtureOfMLPsClassifier])
@pytest.mark.parametrize("refit_features", [2, 3])
def test_failed_refit_keeps_the_previous_fit(Estimator, refit_features):
    rng = np.random.RandomState(0)
    X = pd.DataFrame(rng.uniform(size=(200, 2)), columns=["a", "b"])
    y = X["a"].to_numpy() + X["b"].to_numpy()
    if Estimator is MixtureOfMLPsClassifier:
        y = (y > 1).astype(int)
    model = _fit_quietly(Estimator(4, hidden_layer_sizes=(4,), max_iter=5, random_state=0), X, y)
    before = model.predict(X)
    attributes = {k: v for k, v in vars(model).items() if k.endswith("_")}

    X_new = rng.uniform(size=(150, refit_features))  # no feature names
    y_new = X_new.sum(axis=1)
    if Estimator is MixtureOfMLPsClassifier:
        y_new = np.where(y_new > 1, "yes", "no")
    with pytest.raises(ValueError, match="diverged"):
        _fit_quietly(_diverging(model), X_new, y_new)

    assert {k for k in vars(model) if k.endswith("_")} == set(attributes)
    for name, value in attributes.items():
        assert getattr(model, name) is value, name
    assert model.n_features_in_ == 2 and model.n_experts_ == 4
    assert_array_equal(model.feature_names_in_, ["a", "b"])
    assert_array_equal(model.predict(X), before)


@pytest.mark.parametrize("Estimator", [MixtureOfMLPsRegressor, MixtureOfMLPsClassifier])
def test_failed_first_fit_leaves_the_estimator_unfitted(Estimator):
    rng = np.random.RandomState(0)
    X = rng.uniform(size=(100, 2))
    y = (X.sum(axis=1) > 1).astype(int)
    model = _diverging(Estimator(hidden_layer_sizes=(4,), random_state=0))
    with pytest.raises(ValueError, match="diverged"):
        _fit_quietly(model, X, y)
    assert not any(k.endswith("_") for k in vars(model))
    with pytest.raises(NotFittedError):
        model.predict(X)
    with pytest.raises(NotFittedError):
        model.route(X)


@pytest.mark.parametrize("Estimator", [MixtureOfMLPsRegressor, MixtureOfMLPsClassifier])
def test_set_params_after_fit_changes_no_prediction(Estimator):
    """Inference reads the activation snapshotted at fit, not the live parameter.

    A relu fit stores no slopes: reading ``activation`` at predict time would
    make the kernel read slopes past ``expert_params_``.
    """
    rng = np.random.RandomState(0)
    X = rng.uniform(-1, 1, size=(300, 2))
    y = np.sin(3 * X[:, 0]) + X[:, 1]
    if Estimator is MixtureOfMLPsClassifier:
        y = np.digitize(y, [-0.5, 0.5])
    model = Estimator(3, hidden_layer_sizes=(4,), activation="relu", max_iter=20,
                      random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    method = model.predict if Estimator is MixtureOfMLPsRegressor else model.predict_proba
    before, route = method(X), model.route(X)
    model.set_params(activation="prelu", hidden_layer_sizes=(6, 6), n_experts=5,
                     routing="grid")
    assert_array_equal(method(X), before)
    assert_array_equal(model.route(X), route)
    # The fitted vectors have the relu layout (no slopes), which a kernel told
    # "prelu" would read past.
    assert model.expert_params_.shape[1] == _mlp.layer_offsets(model.layer_sizes_, False)[4]


@pytest.mark.parametrize("routing", ["grid", "bisecting", "kmeans"])
@pytest.mark.parametrize("Estimator", [MixtureOfMLPsRegressor, MixtureOfMLPsClassifier])
def test_float32_in_float32_attributes_and_outputs(Estimator, routing):
    """A float32 fit stores the float64 fit of the same (upcast) data in float32.

    Exactly so for the grid and bisecting routers (built in float64);
    scikit-learn's KMeans runs in float32 on float32 data, so there only the
    dtypes and the closeness of the prototypes are checked.
    """
    rng = np.random.RandomState(0)
    X32 = rng.uniform(-1, 1, size=(400, 2)).astype(np.float32)
    y = np.sin(3 * X32[:, 0].astype(np.float64)) + X32[:, 1]
    if Estimator is MixtureOfMLPsClassifier:
        y = np.digitize(y, [-0.5, 0.5])
    params = dict(n_experts=4, routing=routing, hidden_layer_sizes=(6,), max_iter=15,
                  small_cells="constant", min_samples_cell=60, random_state=0)
    m32 = _fit_quietly(Estimator(**params), X32, y)
    m64 = _fit_quietly(Estimator(**params), X32.astype(np.float64), y)
    for name in ("prototypes_", "expert_params_", "expert_constants_"):
        assert getattr(m32, name).dtype == np.float32, name
        assert getattr(m64, name).dtype == np.float64, name
        if routing != "kmeans":
            assert_array_equal(getattr(m32, name), getattr(m64, name).astype(np.float32), name)
    if m32.routing_tree_ is not None:
        assert m32.routing_tree_["centers"].dtype == np.float32
    method = "predict" if Estimator is MixtureOfMLPsRegressor else "predict_proba"
    out32, out64 = getattr(m32, method)(X32), getattr(m64, method)(X32)
    assert out32.dtype == np.float32 and out64.dtype == np.float32
    if routing == "kmeans":
        assert_allclose(m32.prototypes_, m64.prototypes_, rtol=1e-5, atol=1e-6)
    else:
        assert_array_equal(m32.route(X32), m64.route(X32))
        assert_allclose(out32, out64, rtol=1e-4, atol=1e-5)
    # A float32 model on float64 inputs predicts in float64.
    assert getattr(m32, method)(X32.astype(np.float64)).dtype == np.float64


def test_history_records_every_epoch_of_every_trained_expert(lipschitz_data):
    """history_ stacks the experts' monitors: per expert, epochs 1..experts_n_iter_[e],
    and the 'no_improvement' rule is visible in its objective column."""
    X, y = lipschitz_data
    model = MixtureOfMLPsRegressor(3, hidden_layer_sizes=(4,), max_iter=40, tol=1e-3,
                                   n_iter_no_change=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X[:300], y[:300])
    history = model.history_
    assert {len(v) for v in history.values()} == {len(history["expert"])}
    trained = np.flatnonzero(model.experts_n_iter_)
    assert_array_equal(np.unique(history["expert"]), trained)
    for e in trained:
        rows = history["expert"] == e
        assert_array_equal(history["iteration"][rows], np.arange(1, model.experts_n_iter_[e] + 1))
        losses = history["objective"][rows]
        np.testing.assert_allclose(history["change"][rows][1:], np.diff(losses))
        # scikit-learn's rule replayed on the recorded losses stops where training stopped.
        best, streak, stop = np.inf, 0, 40
        for epoch, loss in enumerate(losses, 1):
            streak = streak + 1 if loss > best - 1e-3 else 0
            best = min(best, loss)
            if streak > 3:
                stop = epoch
                break
        assert stop == model.experts_n_iter_[e]
