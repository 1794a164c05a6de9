"""Reliability of skmoe.amp on malformed, degenerate and extreme inputs (issue 15)."""

import warnings

import numpy as np
import pytest

from skmoe import SequenceMultiIndexAMP
from skmoe.amp import (
    AbsChannel,
    DeepAttentionChannel,
    GenericChannel,
    LinearChannel,
    OuterProductChannel,
    SquareChannel,
    SumSquareChannel,
    state_evolution,
    test_errors,
)
from skmoe.datasets import make_sequence_multi_index

CHANNELS = [
    AbsChannel(n_tokens=2),
    SquareChannel(n_tokens=2, n_directions=2),
    OuterProductChannel(n_tokens=2),
    SumSquareChannel(n_tokens=3),
    LinearChannel(n_tokens=2, n_directions=2),
    DeepAttentionChannel(n_grid=8),
    DeepAttentionChannel(n_layers=1, n_grid=8),
    GenericChannel(lambda Z: np.tanh(Z[:, :, 0]), (2,), n_tokens=2, n_nodes=4),
]


def _data(channel, n=5, seed=0):
    Z = np.random.default_rng(seed).standard_normal((n, channel.n_tokens,
                                                     channel.n_directions))
    return channel.sample(Z, random_state=seed), Z, np.eye(channel.n_directions)


@pytest.mark.parametrize("channel", CHANNELS, ids=repr)
def test_posterior_rejects_mismatched_sample_counts(channel):
    # Issue 15.1: y with fewer rows than omega made the numba kernel read
    # past the end of y (a garbage last row, different at every call).
    y, Z, V = _data(channel)
    with pytest.raises(ValueError, match="same number of samples"):
        channel.posterior(y[:4], Z, V)
    with pytest.raises(ValueError, match="same number of samples"):
        channel.posterior(y, Z[:4], V)


@pytest.mark.parametrize("channel", CHANNELS, ids=repr)
def test_posterior_rejects_bad_shapes(channel):
    y, Z, V = _data(channel)
    with pytest.raises(ValueError, match="V must have shape"):
        channel.posterior(y, Z, np.eye(channel.n_directions + 1))
    with pytest.raises(ValueError, match="omega must have shape"):
        channel.posterior(y, Z[:, :, None], V)
    with pytest.raises(ValueError, match="y of shape"):
        channel.posterior(y[..., None], Z, V)


@pytest.mark.parametrize("channel", CHANNELS, ids=repr)
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_posterior_rejects_non_finite_inputs(channel, bad):
    # Issue 15.6: NaN in y or V gave NaN moments silently.
    y, Z, V = _data(channel)
    y_bad = np.array(y, dtype=float)
    y_bad.flat[0] = bad
    with pytest.raises(ValueError, match="y contains NaN or infinity"):
        channel.posterior(y_bad, Z, V)
    Z_bad = Z.copy()
    Z_bad[0, 0, 0] = bad
    with pytest.raises(ValueError, match="omega contains NaN or infinity"):
        channel.posterior(y, Z_bad, V)
    V_bad = V.copy()
    V_bad[0, 0] = bad
    with pytest.raises(ValueError, match="V contains NaN or infinity"):
        channel.posterior(y, Z, V_bad)


@pytest.mark.parametrize("channel", CHANNELS, ids=repr)
def test_posterior_rejects_non_spd_or_asymmetric_V(channel):
    y, Z, V = _data(channel)
    with pytest.raises(ValueError, match="positive definite"):
        channel.posterior(y, Z, -V)
    with pytest.raises(ValueError, match="positive definite"):
        channel.posterior(y, Z, 0 * V)
    if channel.n_directions > 1:
        asym = V.copy()
        asym[0, 1] = 0.5
        with pytest.raises(ValueError, match="symmetric"):
            channel.posterior(y, Z, asym)


@pytest.mark.parametrize("channel", CHANNELS, ids=repr)
def test_posterior_rejects_complex_and_non_numeric_inputs(channel):
    y, Z, V = _data(channel)
    with pytest.raises(ValueError, match="complex"):
        channel.posterior(y, Z + 0j, V)
    with pytest.raises(ValueError, match="real numeric"):
        channel.posterior(np.full(np.shape(y), "a"), Z, V)


def test_posterior_checks_the_channel_support():
    # A non-stochastic attention target gave log of a negative number (NaN).
    ch = DeepAttentionChannel(n_grid=8)
    y, Z, V = _data(ch)
    with pytest.raises(ValueError, match="row-stochastic"):
        ch.posterior(-y, Z, V)
    with pytest.raises(ValueError, match="non-negative"):
        SumSquareChannel().posterior(-np.ones((5, 1)), np.zeros((5, 2, 1)), np.eye(1))


@pytest.mark.parametrize("shape", [(-1,), (0,), (1.5,), (True,), "ab", None])
def test_generic_channel_rejects_bad_trailing_shapes(shape):
    # Issue 15.7: y_trailing_shape=(-1,) was accepted.
    with pytest.raises(ValueError, match="y_trailing_shape must be a tuple of positive"):
        GenericChannel(lambda Z: Z[:, 0, 0], shape)


def test_generic_channel_accepts_an_int_trailing_shape():
    assert GenericChannel(lambda Z: Z[:, 0, 0], 1).y_trailing_shape == (1,)
    assert GenericChannel(lambda Z: Z[:, 0, 0], (np.int64(2), 3)).y_trailing_shape == (2, 3)


def test_make_sequence_multi_index_rejects_a_channel_class():
    # Issue 15.5: the class instead of an instance gave an AttributeError.
    with pytest.raises(ValueError, match=r"pass|instance, e.g. SquareChannel\(\)"):
        make_sequence_multi_index(10, 5, SquareChannel)


def test_make_sequence_multi_index_rejects_non_finite_samples():
    ch = GenericChannel(lambda Z: np.full(Z.shape[0], np.nan), (1,))
    with pytest.raises(ValueError, match="sampled target y is not finite"):
        make_sequence_multi_index(10, 5, ch, random_state=0)


@pytest.mark.parametrize("n_layers", [1, 2])
@pytest.mark.parametrize("scale", [1.0, 27.0, 100.0, 1e3])
def test_attention_samples_are_valid_targets(n_layers, scale):
    # Issue 15.10: for |z| >~ 27 the softmax underflows to exact 0/1, which
    # check_y rejected; the posterior of such targets must stay finite.
    ch = DeepAttentionChannel(n_layers=n_layers, n_grid=8)
    rng = np.random.default_rng(1)
    Z = scale * rng.uniform(-1, 1, (30, 2, n_layers))
    Z[0] = scale  # the most saturated sample
    y = ch.sample(Z)
    assert np.all(np.isfinite(y))
    assert np.all((y >= 0) & (y <= 1))
    np.testing.assert_allclose(y.sum(axis=2), 1.0, atol=1e-12)
    np.testing.assert_array_equal(ch.check_y(y), y)
    mean, cov, logZ = ch.posterior(y, Z, np.eye(n_layers))
    assert np.all(np.isfinite(mean)) and np.all(np.isfinite(cov)) and np.all(np.isfinite(logZ))
    # The inversion recovers u up to sign where y is not saturated ...
    u = ch.invert_last_softmax(y)
    assert np.all(np.isfinite(u))
    if n_layers == 1 and scale == 1.0:
        z, u = Z[1:, :, 0], u[1:]  # row 0 has z_0 = z_1: y is uniform
        sign = np.sign(np.sum(u * z, axis=1))[:, None]
        np.testing.assert_allclose(sign * u, z, rtol=1e-6, atol=1e-8)


def test_attention_check_y_still_rejects_invalid_targets():
    ch = DeepAttentionChannel()
    y = ch.output(np.zeros((2, 2, 2)))
    for bad in (-y, 2 * y, y + 0.1):
        with pytest.raises(ValueError, match="row-stochastic"):
            ch.check_y(bad)


# --------------------------------------------------------------------------
# Von Mises-Fisher terms at large concentration (issue 15.2)
# --------------------------------------------------------------------------


@pytest.mark.parametrize("L", [2, 3, 4, 7, 20])
def test_von_mises_fisher_series_matches_the_exact_bessel_form(L):
    from scipy import special

    from skmoe.amp._channels import _VMF_SERIES_FROM, _von_mises_fisher_terms

    nu = 0.5 * L - 1
    k = np.geomspace(_VMF_SERIES_FROM * max(1, nu**2), 1e8, 300)
    A, A_over_k, radial, log_bessel = _von_mises_fisher_terms(k, L)
    A_exact = special.ive(nu + 1, k) / special.ive(nu, k)
    log_exact = np.log(special.ive(nu, k)) - nu * np.log(k)
    np.testing.assert_allclose(A, A_exact, rtol=1e-14)
    np.testing.assert_allclose(A_over_k, A_exact / k, rtol=1e-14)
    np.testing.assert_allclose(log_bessel, log_exact, rtol=1e-13)
    # The exact radial variance loses ~k^2 eps to cancellation; compare it
    # where it is still accurate, and its 1/k^2 asymptote everywhere.
    near = k < 2 * k[0]
    radial_exact = 1 - A_exact**2 - (L - 1) * A_exact / k
    np.testing.assert_allclose(radial[near], radial_exact[near], rtol=1e-8)
    assert np.all(radial > 0)
    np.testing.assert_allclose(radial * k**2, (L - 1) / 2, rtol=10 * L**2 / k[0])


@pytest.mark.parametrize("L", [2, 3])
def test_von_mises_fisher_terms_finite_where_scipy_is_nan(L):
    from skmoe.amp._channels import _von_mises_fisher_terms

    k = np.array([1e10, 1e12, 1e15, 1e100, 1e300])
    terms = _von_mises_fisher_terms(k, L)
    for t in terms:
        assert np.all(np.isfinite(t))
    A, A_over_k, radial, _ = terms
    np.testing.assert_allclose(A, 1.0, rtol=1e-9)
    np.testing.assert_allclose(A_over_k * k, 1.0, rtol=1e-9)
    assert np.all(radial >= 0)


def test_sum_square_posterior_finite_at_the_gamp_variance_floor():
    ch = SumSquareChannel(n_tokens=2)
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((50, 2, 1)) * 3
    y = ch.output(Z)
    mean, cov, logZ = ch.posterior(y, Z, np.array([[1e-9]]))
    assert np.all(np.isfinite(mean)) and np.all(np.isfinite(cov)) and np.all(np.isfinite(logZ))
    # With V -> 0 at omega = Z the posterior concentrates on Z.
    np.testing.assert_allclose(mean, Z, rtol=1e-6, atol=1e-8)
    assert np.all(np.abs(cov) < 1e-7)


def test_gamp_sum_square_on_its_own_data():
    # Issue 15.2: GAMP raised "GAMP diverged" on the model's own data.  Two
    # causes: ive(0, k) is NaN for k >~ 1e10 once V hits its floor, and at
    # alpha = 20 the first (undamped) step overshot to Q ~ 5 and oscillated.
    # At the default damping GAMP must now converge to the SE fixed point.
    from skmoe import SequenceMultiIndexAMP
    from skmoe.amp._gamp import _nishimori_bound

    ch = SumSquareChannel()
    n, d = 2000, 100
    X, y, W = make_sequence_multi_index(n, d, ch, random_state=0)
    se = state_evolution(ch, n / d, n_samples=5000, compute_test_errors=False)
    for seed in range(2):
        amp = SequenceMultiIndexAMP(ch, random_state=seed).fit(X, y, W_star=W)
        assert amp.converged_ and amp.n_iter_ < 50
        M, Q = amp.overlaps(W)
        cos2 = M[0, 0] ** 2 / (Q[0, 0] * (W.T @ W)[0, 0] / d)
        assert abs(cos2 - se.q[0, 0]) < 1e-3, (cos2, se.q)
        # No overshoot beyond the Nishimori bound Q + C <= |w*|^2 / d (+ slack).
        assert np.max(amp.history_["Q"]) < _nishimori_bound(1, d)
        assert all(np.all(np.isfinite(v)) for v in amp.history_.values())


class _NaNPosteriorChannel(LinearChannel):
    def posterior(self, y, omega, V):
        mean, cov, logZ = super().posterior(y, omega, V)
        return mean * np.nan, cov, logZ


class _HugePosteriorChannel(LinearChannel):
    def posterior(self, y, omega, V):
        mean, cov, logZ = super().posterior(y, omega, V)
        return mean * 1e200, cov, logZ


def test_gamp_blames_the_channel_for_a_non_finite_posterior():
    from skmoe import SequenceMultiIndexAMP

    ch = _NaNPosteriorChannel()
    X, y, _ = make_sequence_multi_index(50, 10, LinearChannel(), random_state=0)
    with pytest.raises(ValueError, match="output denoiser.*not finite.*posterior of the channel"):
        SequenceMultiIndexAMP(ch, random_state=0).fit(X, y)


def test_gamp_history_never_holds_non_finite_overlaps():
    # Issue 15.9: Q = W^T W / d overflowed to inf and was recorded in history_.
    from skmoe import SequenceMultiIndexAMP

    ch = _HugePosteriorChannel()
    X, y, _ = make_sequence_multi_index(50, 10, LinearChannel(), random_state=0)
    amp = SequenceMultiIndexAMP(ch, random_state=0)
    with pytest.raises(ValueError, match="diverged at iteration 1.*overflowed"):
        amp.fit(X, y)
    assert not hasattr(amp, "history_")


def test_weak_recovery_threshold_rejects_more_batches_than_samples():
    # Issue 15.8: n_batches=10**6 with n_samples=10 silently drew 10**6 samples.
    from skmoe.amp import weak_recovery_threshold

    with pytest.raises(ValueError, match="n_batches=1000000 exceeds n_samples=10"):
        weak_recovery_threshold(AbsChannel(), method="mc", n_batches=10**6, n_samples=10)
    res = weak_recovery_threshold(AbsChannel(), method="mc", n_batches=10, n_samples=10)
    assert res.method == "mc" and res.operator.shape == (1, 1)


@pytest.mark.filterwarnings("ignore")
def test_gamp_predict_raises_on_overflowing_outputs():
    from skmoe import SequenceMultiIndexAMP

    ch = SquareChannel(n_tokens=2)
    X, y, _ = make_sequence_multi_index(300, 20, ch, random_state=0)
    amp = SequenceMultiIndexAMP(ch, random_state=0, max_iter=5).fit(X, y)
    assert np.all(np.isfinite(amp.predict(X)))
    with pytest.raises(ValueError, match="predict output is not finite"):
        amp.predict(X * 1e200)
    with pytest.raises(ValueError, match="predict output is not finite"):
        amp.score(X * 1e200, y)


def test_gamp_float32_estimate_that_overflows_is_a_clear_error():
    """Found by the fuzz suite: a finite float64 estimate stored as float32 inf."""
    X = np.array([[1764.0524]], dtype=np.float32)
    y = np.array([3568.12041277])
    amp = SequenceMultiIndexAMP(SquareChannel(), damping=0.3, max_iter=20, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="GAMP estimate coef_ is not finite"):
            amp.fit(X, y)
    assert not hasattr(amp, "coef_")


def test_gamp_float32_prediction_that_overflows_is_a_clear_error():
    """Found by the fuzz suite: a finite float64 prediction returned as float32 inf."""
    ch = SquareChannel(n_tokens=2)
    X, y, _ = make_sequence_multi_index(300, 20, ch, random_state=0)
    X = X.astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        amp = SequenceMultiIndexAMP(ch, max_iter=5, random_state=0).fit(X, y)
    assert np.all(np.isfinite(amp.predict(X)))
    # Finite float32 inputs whose squared fields (~1e40) are finite in the
    # float64 computation but overflow the float32 result.
    with pytest.raises(ValueError, match="predict output is not finite"):
        amp.predict(X * np.float32(1e20))


def test_test_errors_of_an_overflowing_channel_is_a_clear_error():
    """test_errors returned NaN errors silently when the channel's output overflows."""
    channel = GenericChannel(lambda Z: np.exp(800.0 * Z[:, :, 0]), (1,), noise_std=0.3, n_nodes=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(ValueError, match="plug-in test error is not finite.*overflows"):
            test_errors(channel, np.array([[0.5]]), n_samples=200, n_inner=4)
    # A channel with finite outputs still gets finite errors.
    tame = GenericChannel(lambda Z: np.tanh(Z[:, :, 0]), (1,), noise_std=0.3, n_nodes=8)
    result = test_errors(tame, np.array([[0.5]]), n_samples=200, n_inner=4)
    assert np.isfinite([result.plugin, result.bayes]).all()
