"""Issue 15: MoMLP and SGD-MoE never store or return NaN/inf silently.

Each reproducer of the issue is a test; inputs whose magnitude overflows
floating point give a clear ``ValueError`` (the one ``check_finite_output``
guard, with its rescaling hint), never NaN predictions.
"""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.exceptions import ConvergenceWarning

from skmoe import MixtureOfMLPsClassifier, MixtureOfMLPsRegressor
from skmoe.neural_network import _routing

NOT_FINITE = r"not finite \(NaN or infinity\).*rescale"


@pytest.fixture
def data():
    rng = np.random.RandomState(0)
    X = rng.uniform(size=(200, 2))
    return X, X.sum(axis=1)


def _momlp(**kwargs):
    params = dict(n_experts=2, hidden_layer_sizes=(4,), max_iter=5, random_state=0)
    params.update(kwargs)
    return MixtureOfMLPsRegressor(**params)


@pytest.fixture(autouse=True)
def _no_convergence_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


@pytest.mark.parametrize("scale", [1e154, 1e200, 1e300])
def test_momlp_huge_targets_raise_and_leave_fitted_state(data, scale):
    # Issue 15: |y| ~ 1e154 stored inf in expert_params_ and predicted NaN.
    X, y = data
    model = _momlp().fit(X, y)
    params, pred = model.expert_params_.copy(), model.predict(X)
    with pytest.raises(ValueError, match="targets is not finite.*rescale"):
        model.fit(X, y * scale)
    # Atomic fit: the previous fitted state is intact.
    assert_array_equal(model.expert_params_, params)
    assert_array_equal(model.predict(X), pred)


@pytest.mark.parametrize("routing", ["kmeans", "grid", "bisecting"])
def test_momlp_huge_inputs_raise_instead_of_ignoring_x(data, routing):
    # The input standard deviation overflowed to inf: the experts saw
    # constant (zero) inputs and silently predicted one constant.
    X, y = data
    with pytest.raises(ValueError, match="training inputs is not finite.*rescale"):
        _momlp(routing=routing).fit(X * 1e200, y)


def test_momlp_predict_overflow_raises(data):
    X, y = data
    model = _momlp().fit(X, y)
    # Representable answers are returned (a ReLU network is positively
    # homogeneous, so the outputs are of the order of the inputs).
    assert np.all(np.isfinite(model.predict(X * 1e150)))
    assert np.abs(model.predict(X * 1e150)).max() > 1e148
    # Weights so large that the outputs overflow.
    model.expert_params_ = model.expert_params_ * 1e300
    with pytest.raises(ValueError, match="predict output is not finite.*rescale"):
        model.predict(X * 1e10)


def test_momlp_classifier_predict_proba_overflow_raises(data):
    X, _ = data
    y = np.random.RandomState(1).randint(3, size=X.shape[0])
    clf = MixtureOfMLPsClassifier(
        n_experts=2, hidden_layer_sizes=(4,), max_iter=5, random_state=0
    ).fit(X, y)
    proba = clf.predict_proba(X * 1e150)
    assert np.all(np.isfinite(proba))
    assert_array_equal(proba.sum(axis=1), 1.0)
    # Infinite logits of several classes: softmax would give NaN.
    clf.expert_params_ = clf.expert_params_ * 1e300
    with pytest.raises(ValueError, match="predict_proba output is not finite"):
        clf.predict_proba(X * 1e10)
    with pytest.raises(ValueError, match="predict_proba output is not finite"):
        clf.predict(X * 1e10)


def test_momlp_constant_expert_overflow_raises(data):
    # The mean of a constant cell's targets overflowed to inf silently.
    X, y = data
    model = _momlp(small_cells="constant", min_samples_cell=1000)
    with pytest.warns(UserWarning, match="constant"):
        with pytest.raises(ValueError, match="expert_constants_.*not finite"):
            model.fit(X, np.full_like(y, 1.5e308))


def test_momlp_float32_storage_overflow_raises(data):
    # Trained in float64 (finite), stored in X's dtype float32: 1e100 does
    # not fit, and was stored as inf.
    X, y = data
    X32 = X.astype(np.float32)
    with pytest.raises(ValueError, match=r"expert_params_ \(in float32\) is not finite"):
        _momlp().fit(X32, y * 1e100)
    with pytest.warns(UserWarning, match="constant"):
        with pytest.raises(ValueError, match=r"expert_constants_ \(in float32\)"):
            _momlp(small_cells="constant", min_samples_cell=1000).fit(X32, y * 1e100)
    # float32 near its limit, but representable: finite float32 predictions.
    pred = _momlp().fit(X32, (y * 1e37).astype(np.float32)).predict(X32)
    assert pred.dtype == np.float32 and np.all(np.isfinite(pred))
    assert np.abs(pred).max() > 1e36


@pytest.mark.parametrize("routing", ["kmeans", "grid", "bisecting"])
def test_momlp_routing_overflow_raises_instead_of_cell_zero(data, routing):
    # Squared distances of 1e200 overflow to inf for every prototype: the
    # kernels sent every such row to cell 0 without a word.
    X, y = data
    model = _momlp(n_experts=4, routing=routing).fit(X, y)
    far = np.array([[1e200, 1e200], [-1e200, 1e200]])
    for method in (model.route, model.predict):
        with pytest.raises(ValueError, match="squared distance.*not finite.*rescale"):
            method(far)
    # One finite distance suffices to route exactly (inf is never nearer).
    prototypes = np.array([[0.0, 0.0], [1e200, 1e200]])
    assert_array_equal(_routing.route_flat(far[:1], prototypes[::-1]), [0])
    assert_array_equal(_routing.route_flat(far[:1], prototypes), [1])
    with pytest.raises(ValueError, match="squared distance"):
        _routing.route_flat(far, prototypes[:1])
    assert_array_equal(model.route(X), model.route(X.copy()))


# --------------------------------------------------------------------------
# SGDMoERegressor
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sgd_data():
    from skmoe.datasets import make_latent_cluster_regression

    return make_latent_cluster_regression(2000, 8, random_state=0)


def test_sgd_moe_predict_huge_inputs_raises(sgd_data):
    # Issue 15: predict(X * 1e150) was all NaN (cubic Hermite features overflow).
    from skmoe import SGDMoERegressor

    X, y = sgd_data
    model = SGDMoERegressor(random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="predict output is not finite.*rescale"):
        model.predict(X * 1e150)
    big = model.predict(X * 1e50)  # representable: returned
    assert np.all(np.isfinite(big)) and np.abs(big).max() > 1e100
    # float32: the prediction overflows float32, not float64.
    model32 = SGDMoERegressor(random_state=0).fit(X.astype(np.float32), y)
    assert np.all(np.isfinite(model32.predict(X.astype(np.float32))))
    with pytest.raises(ValueError, match="predict output is not finite"):
        model32.predict((X * 1e13).astype(np.float32))


def test_sgd_moe_fit_huge_inputs_or_targets_raises_early(sgd_data):
    from skmoe import SGDMoERegressor

    X, y = sgd_data
    # Before: every SGD stage ran, then the ridge failed (or, for y, the SGD
    # stages trained on all-zero standardised targets after std overflowed).
    with pytest.raises(ValueError, match=r"training inputs to the power 3 \(the"):
        SGDMoERegressor(random_state=0).fit(X * 1e150, y)
    with pytest.raises(ValueError, match="power 5"):
        SGDMoERegressor(degree=5, random_state=0).fit(X * 1e40, y)
    with pytest.raises(ValueError, match="standard deviation of the targets is not finite"):
        SGDMoERegressor(random_state=0).fit(X, y * 1e200)
    model = SGDMoERegressor(random_state=0).fit(X, y)
    coef = model.expert_coef_.copy()
    with pytest.raises(ValueError, match="not finite"):
        model.fit(X * 1e150, y)
    assert_array_equal(model.expert_coef_, coef)  # atomic
    # Large but representable: a finite fit.
    pred = SGDMoERegressor(random_state=0).fit(X, y * 1e150).predict(X)
    assert np.all(np.isfinite(pred)) and np.abs(pred).max() > 1e148


def test_sgd_moe_n_neurons_bool_is_invalid_parameter(sgd_data):
    # Issue 15: n_neurons=True reached numpy's RNG and raised its TypeError.
    from sklearn.utils._param_validation import InvalidParameterError

    from skmoe import SGDMoERegressor

    X, y = sgd_data
    for name in ("n_neurons", "n_experts", "top_k", "batch_size", "information_exponent"):
        with pytest.raises(InvalidParameterError, match=name):
            SGDMoERegressor(**{name: True}).fit(X[:50], y[:50])
