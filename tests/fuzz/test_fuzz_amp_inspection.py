"""Fuzz SequenceMultiIndexAMP, the AMP channels' posteriors and DiagonalFisherEstimator.

The issue-15 defects (Fisher ``fit`` on inputs of magnitude >= 1e150 and
``noise_variance=1e-300``; channel posteriors with NaN ``V``/``y`` or with
row counts that disagree; ``GenericChannel`` with a negative trailing shape;
``y`` without its trailing shape, finding F3; GAMP divergence as a
FloatingPointError, finding F4) each have a reproducer test below.  The
posterior strategy itself draws finite, consistent arrays.
"""

import warnings

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neural_network import MLPClassifier, MLPRegressor

from _oracle import assert_finite_or_clear_error
from _strategies import bad_value, clean_data, regression_data
from skmoe import DiagonalFisherEstimator, SequenceMultiIndexAMP
from skmoe.amp import (AbsChannel, DeepAttentionChannel, GenericChannel, LinearChannel,
                       SquareChannel)

CHANNELS = {
    "linear": lambda: LinearChannel(),
    "abs": lambda: AbsChannel(),
    "square": lambda: SquareChannel(),
}
AMP = SequenceMultiIndexAMP(LinearChannel(), max_iter=5, random_state=0)


@given(data=regression_data(), channel=st.sampled_from(sorted(CHANNELS)),
       damping=st.sampled_from([0.3, 0.8, 1.0]))
def test_amp_fit_predict_on_fuzzed_data(data, channel, damping):
    X, y, info = data
    assume(info["scale"] < 1e10)  # new finding F4: GAMP divergence is a FloatingPointError
    est = clone(AMP).set_params(channel=CHANNELS[channel](), damping=damping)
    fitted, exc = assert_finite_or_clear_error(lambda: est.fit(X, y), X, y,
                                               description=f"fit {channel} {info}")
    if exc is None:
        for method, call in [("predict", lambda: fitted.predict(X)),
                             ("bayes", lambda: fitted.predict(X, method="bayes", n_draws=4)),
                             ("overlaps", lambda: fitted.overlaps(np.ones((X.shape[-1], 1))))]:
            assert_finite_or_clear_error(call, X, y, description=f"{method} {info}")


@given(param=st.sampled_from(sorted(AMP.get_params())), value=bad_value())
def test_amp_invalid_hyper_parameters(param, value):
    X, y = clean_data(30, 3)
    est = clone(AMP).set_params(**{param: value})
    assert_finite_or_clear_error(lambda: est.fit(X, y), X, y, description=f"{param}={value!r}")


@st.composite
def posterior_inputs(draw):
    n = draw(st.integers(0, 5))
    scale = draw(st.sampled_from([1e-3, 1.0, 10.0, 1e3]))
    seed = draw(st.integers(0, 100))
    rng = np.random.RandomState(seed)
    omega = rng.standard_normal((n, 1, 1)) * scale
    v = draw(st.sampled_from([1e-6, 0.1, 1.0, 10.0]))
    # y of shape (n,) + y_trailing_shape; a bare (n,) is new finding F3.
    y = rng.standard_normal((n, 1, 1)) * scale
    return y, omega, np.array([[v]])


@given(inputs=posterior_inputs(), channel=st.sampled_from(sorted(CHANNELS)))
def test_channel_posterior(inputs, channel):
    y, omega, V = inputs
    ch = CHANNELS[channel]()
    if channel != "linear":
        y = np.abs(y) if channel == "abs" else y ** 2
    assert_finite_or_clear_error(lambda: ch.posterior(y, omega, V), y, omega, V,
                                 description=f"{channel}.posterior")


# --------------------------------------------------------------------------- Fisher

def _fisher_models():
    X, y = clean_data(40, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "mlp_reg": MLPRegressor(hidden_layer_sizes=(3,), max_iter=20, random_state=0).fit(X, y),
            "mlp_clf": MLPClassifier(hidden_layer_sizes=(3,), activation="tanh", max_iter=20,
                                     random_state=0).fit(X, y > 0),
            "logistic": LogisticRegression().fit(X, y > 0),
            "linear": LinearRegression().fit(X, y),
        }


FISHER_MODELS = _fisher_models()


@given(data=regression_data(), model=st.sampled_from(sorted(FISHER_MODELS)),
       method=st.sampled_from(["both", "score", "hessian"]),
       n_label_samples=st.integers(1, 3))
def test_fisher_on_fuzzed_data(data, model, method, n_label_samples):
    X, y, info = data
    est = DiagonalFisherEstimator(FrozenEstimator(FISHER_MODELS[model]), method=method,
                                  n_label_samples=n_label_samples, random_state=0)
    assert_finite_or_clear_error(lambda: est.fit(X, y), X, y, description=f"{model} {info}")


@given(param=st.sampled_from(["method", "n_label_samples", "noise_variance", "batch_size",
                              "random_state", "estimator"]),
       value=bad_value(), model=st.sampled_from(sorted(FISHER_MODELS)))
def test_fisher_invalid_hyper_parameters(param, value, model):
    X, y = clean_data(20, 2)
    est = DiagonalFisherEstimator(FrozenEstimator(FISHER_MODELS[model]), random_state=0)
    est.set_params(**{param: value})
    assert_finite_or_clear_error(lambda: est.fit(X, y), X, y, description=f"{param}={value!r}")


# ------------------------------------------- issue-15 reproducers (fixed; regression tests)

@pytest.mark.parametrize("model", sorted(FISHER_MODELS))
def test_known_fisher_huge_x(model):
    X, _ = clean_data(20, 2)
    X = X * 1e150
    est = DiagonalFisherEstimator(FrozenEstimator(FISHER_MODELS[model]), random_state=0)
    assert_finite_or_clear_error(lambda: est.fit(X), X)


def test_known_fisher_tiny_noise_variance():
    X, _ = clean_data(20, 2)
    est = DiagonalFisherEstimator(FrozenEstimator(FISHER_MODELS["mlp_reg"]),
                                  noise_variance=1e-300, random_state=0)
    assert_finite_or_clear_error(lambda: est.fit(X), X)


def test_known_deep_attention_mismatched_rows():
    channel = DeepAttentionChannel(n_grid=8)
    rng = np.random.RandomState(0)
    Z = rng.standard_normal((3, 2, 2))
    y = channel.output(Z)
    omega = 0.5 * rng.standard_normal((5, 2, 2))
    V = np.eye(2)
    _, exc = assert_finite_or_clear_error(lambda: channel.posterior(y, omega, V), y, omega, V)
    assert exc is not None, "mismatched rows (3 targets, 5 omegas) were accepted"


@pytest.mark.parametrize("bad", ["V", "y"])
@pytest.mark.parametrize("channel", sorted(CHANNELS))
def test_known_posterior_accepts_nan(channel, bad):
    ch = CHANNELS[channel]()
    y, omega, V = np.ones((3, 1, 1)), np.zeros((3, 1, 1)), np.eye(1)
    if bad == "V":
        V = np.full((1, 1), np.nan)
    else:
        y[1] = np.nan
    _, exc = assert_finite_or_clear_error(lambda: ch.posterior(y, omega, V), y, omega, V)
    assert exc is not None, f"NaN {bad} accepted"


def test_known_generic_channel_negative_shape():
    _, exc = assert_finite_or_clear_error(
        lambda: GenericChannel(lambda Z: Z[:, 0, 0], y_trailing_shape=(-1,)))
    assert exc is not None, "y_trailing_shape=(-1,) accepted"


@pytest.mark.parametrize("channel", sorted(CHANNELS))
def test_new_posterior_y_without_trailing_shape(channel):
    y, omega, V = np.ones(2), np.zeros((2, 1, 1)), np.eye(1)
    assert_finite_or_clear_error(lambda: CHANNELS[channel]().posterior(y, omega, V), y, omega, V)


def test_new_amp_divergence_floating_point_error():
    X, y = np.array([[1.76405235e50]]), np.array([3.56812041e50])
    est = clone(AMP).set_params(channel=AbsChannel(), damping=0.3)
    assert_finite_or_clear_error(lambda: est.fit(X, y), X, y)
