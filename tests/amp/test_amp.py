"""Tests of skmoe.amp: channels, state evolution, thresholds and GAMP."""

import re
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError

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
    weak_recovery_threshold,
)
from skmoe.amp._state_evolution import _sym_sqrt
from skmoe.datasets import make_sequence_multi_index

# --------------------------------------------------------------------------
# Analytic thresholds (linear stability, quadrature and Monte Carlo)
# --------------------------------------------------------------------------

ANALYTIC = [
    (AbsChannel(), 1 / 2),
    (OuterProductChannel(n_tokens=2), 1 / 6),
    (OuterProductChannel(n_tokens=3), 1 / 12),
    (SquareChannel(n_tokens=2), 1 / 4),
    (SquareChannel(n_tokens=3), 1 / 6),
    (SumSquareChannel(n_tokens=2), 1 / 2),
    (SumSquareChannel(n_tokens=3), 1 / 2),
]


@pytest.mark.parametrize("channel, expected", ANALYTIC, ids=lambda c: repr(c))
def test_analytic_thresholds(channel, expected):
    res = weak_recovery_threshold(channel)
    assert res.method == "quadrature"
    assert abs(res.threshold - expected) < 0.01
    assert res.threshold_std < 1e-6
    # Jensen lower bound for even channels, p = 1.
    L = channel.n_tokens
    assert res.threshold >= 1 / (L * (L + 1)) - 1e-9


@pytest.mark.parametrize("channel, expected", ANALYTIC[:4], ids=lambda c: repr(c))
def test_analytic_thresholds_monte_carlo(channel, expected):
    res = weak_recovery_threshold(channel, method="mc", n_samples=100_000)
    assert abs(res.threshold - expected) < 0.01
    assert abs(res.threshold - expected) < 5 * res.threshold_std + 1e-3


def test_linear_channel_has_no_threshold():
    assert weak_recovery_threshold(LinearChannel()).threshold == 0.0


# --------------------------------------------------------------------------
# Channel posteriors
# --------------------------------------------------------------------------


def _nishimori(channel, q, n=20000, seed=0):
    """E[m Z^T] = E[m m^T] and E[cov + m m^T] = E[Z Z^T] (summed over tokens)."""
    rng = np.random.default_rng(seed)
    L, p = channel.n_tokens, channel.n_directions
    Omega = rng.standard_normal((n, L, p)) @ _sym_sqrt(q)
    V = np.eye(p) - q
    Z = Omega + rng.standard_normal((n, L, p)) @ _sym_sqrt(V)
    y = channel.sample(Z, random_state=1)
    m, c, _ = channel.posterior(y, Omega, V)
    mz = np.einsum("nli,nlj->ij", m, Z) / n
    mm = np.einsum("nli,nlj->ij", m, m) / n
    second = np.einsum("nlilj->ij", c) / n + mm
    zz = np.einsum("nli,nlj->ij", Z, Z) / n
    return mz, mm, second, zz


# Every channel with a posterior: closed forms, quadratures and a user function.
POSTERIOR_CHANNELS = [
    AbsChannel(n_tokens=2, n_directions=2),
    SquareChannel(n_tokens=2),
    OuterProductChannel(n_tokens=3),
    SumSquareChannel(n_tokens=3),
    LinearChannel(n_tokens=2, n_directions=2, noise_std=0.5),
    DeepAttentionChannel(n_grid=40),
    DeepAttentionChannel(n_layers=1),
    GenericChannel(lambda Z: np.tanh(Z[:, :, 0]), (1,), noise_std=0.3, n_nodes=20),
]


@pytest.mark.parametrize("channel", POSTERIOR_CHANNELS, ids=repr)
def test_posterior_nishimori(channel):
    p = channel.n_directions
    q = 0.3 * np.eye(p) + (0.1 * (np.ones((p, p)) - np.eye(p)) if p > 1 else 0)
    n = 4000 if isinstance(channel, DeepAttentionChannel) else 20000
    mz, mm, second, zz = _nishimori(channel, q, n=n)
    scale = channel.n_tokens
    assert np.allclose(mz, mm, atol=0.06 * scale)
    assert np.allclose(second, zz, atol=0.06 * scale)


def test_attention_posterior_grid_convergence():
    rng = np.random.default_rng(0)
    ch = DeepAttentionChannel()
    Z = rng.standard_normal((5, 2, 2))
    y = ch.output(Z)
    V = np.array([[1.0, 0.3], [0.3, 0.8]])
    omega = 0.5 * rng.standard_normal((5, 2, 2))
    m, c, lz = ch.posterior(y, omega, V)
    m2, c2, lz2 = DeepAttentionChannel(n_grid=160, box=8.0).posterior(y, omega, V)
    assert np.allclose(m, m2, atol=1e-6)
    assert np.allclose(c, c2, atol=1e-6)
    assert np.allclose(lz, lz2, atol=1e-6)


def test_attention_inversion():
    rng = np.random.default_rng(0)
    ch = DeepAttentionChannel()
    Z = rng.standard_normal((50, 2, 2))
    z1, z2 = Z[:, :, 0], Z[:, :, 1]
    E = np.exp(z1[:, :, None] * z1[:, None, :])
    A = E / E.sum(2, keepdims=True) + np.eye(2)
    u = np.einsum("nij,nj->ni", A, z2)
    u_hat = ch.invert_last_softmax(ch.output(Z))
    err = np.minimum(np.abs(u_hat - u).max(1), np.abs(u_hat + u).max(1))
    assert err.max() < 1e-8


# --------------------------------------------------------------------------
# Two-layer attention
# --------------------------------------------------------------------------


def test_attention_zero_data_test_error():
    res = test_errors(DeepAttentionChannel(), 0.0, n_samples=200_000, n_inner=4)
    assert abs(res.plugin - 0.388) < 0.005
    assert res.plugin_std < 0.002
    # Layer nearest the output learned, layer 1 not: plateau 0.034-0.035.
    plateau = test_errors(DeepAttentionChannel(), [0.0, 1.0], n_samples=100_000, n_inner=4)
    assert abs(plateau.plugin - 0.0345) < 0.002


def test_attention_thresholds_and_order():
    ch = DeepAttentionChannel(n_grid=40)
    res = weak_recovery_threshold(ch, n_samples=10_000)
    # The unstable direction is the layer nearest the output (index 1).
    assert abs(res.eigenvector[1, 1]) > 0.99
    layer2 = weak_recovery_threshold(ch, directions=[1], n_samples=10_000)
    layer1 = weak_recovery_threshold(ch, directions=[0], n_samples=10_000)
    L = ch.n_tokens
    jensen = 1 / (L * (L + 1))
    assert layer2.threshold >= jensen
    assert layer1.threshold > layer2.threshold + 5 * (layer1.threshold_std
                                                      + layer2.threshold_std)
    assert 0.17 < layer2.threshold < 0.21


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # a fixed budget
def test_attention_state_evolution_staircase():
    ch = DeepAttentionChannel(n_grid=32)
    se = state_evolution(ch, 1.2, n_samples=1500, max_iter=60, compute_test_errors=False)
    h = se.history[:, [0, 1], [0, 1]]
    # The last layer (index 1) crosses 0.5 before the first layer does.
    t2 = np.argmax(h[:, 1] > 0.5)
    t1 = np.argmax(h[:, 0] > 0.5) if np.any(h[:, 0] > 0.5) else len(h)
    assert h[t2, 1] > 0.5
    assert t2 < t1


# --------------------------------------------------------------------------
# State evolution
# --------------------------------------------------------------------------


def test_state_evolution_linear_channel_closed_form():
    # Linear Gaussian, L = p = 1: q_hat = alpha / (noise^2 + 1 - q).
    s2, alpha = 0.25, 1.5
    se = state_evolution(LinearChannel(noise_std=0.5), alpha, n_samples=50_000, tol=1e-8,
                         max_iter=500, compute_test_errors=False)
    q = se.q[0, 0]
    qh = alpha / (s2 + 1 - q)
    assert abs(q - qh / (1 + qh)) < 0.01


def test_state_evolution_below_threshold_stays_uninformed():
    se = state_evolution(AbsChannel(), 0.4, n_samples=20_000, compute_test_errors=False,
                         max_iter=300)
    assert se.q[0, 0] < 0.02
    se = state_evolution(AbsChannel(), 0.8, n_samples=20_000, compute_test_errors=False,
                         max_iter=300)
    assert se.q[0, 0] > 0.1


# --------------------------------------------------------------------------
# GAMP
# --------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_gamp_tracks_state_evolution_linear(alpha):
    ch = LinearChannel(n_tokens=2, noise_std=0.5)
    d = 500
    se = state_evolution(ch, alpha, n_samples=20_000, tol=1e-7, max_iter=300,
                         compute_test_errors=False)
    # The linear channel's SE map is exact (no Monte Carlo error), so the
    # comparison is against GAMP's finite-d spread: the squared cosine with
    # the truth (free of the O(d^-1/2) fluctuation of |w*|^2 / d that the raw
    # overlap M carries), averaged over seeds, within 3 standard errors.
    cos2 = []
    for seed in range(4):
        X, y, W = make_sequence_multi_index(int(alpha * d), d, ch, random_state=seed)
        amp = SequenceMultiIndexAMP(ch, random_state=1, tol=1e-10, max_iter=200).fit(X, y, W)
        M, Q = amp.overlaps(W)
        cos2.append(M[0, 0] ** 2 / (Q[0, 0] * (W[:, 0] @ W[:, 0] / d)))
        # Nishimori identity at convergence: M = Q up to finite-d noise.
        assert abs(M[0, 0] - Q[0, 0]) < 0.03
    spread = np.std(cos2, ddof=1) / np.sqrt(len(cos2))
    assert abs(np.mean(cos2) - se.q[0, 0]) < 3 * spread + 1e-3, (cos2, se.q[0, 0])


def test_gamp_attention_learns_last_layer_first():
    ch = DeepAttentionChannel(n_grid=32)
    d = 300
    X, y, W = make_sequence_multi_index(int(1.2 * d), d, ch, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        amp = SequenceMultiIndexAMP(ch, random_state=1, max_iter=40).fit(X, y, W_star=W)
    M = np.abs(amp.history_["M"][:, [0, 1], [0, 1]])
    t2 = np.argmax(M[:, 1] > 0.5)
    assert M[t2, 1] > 0.5
    assert M[t2, 0] < 0.5
    assert M[-1, 1] > 0.8
    # State evolution at alpha = 1.2 has q = (0.9993, 1.0): near-perfect
    # recovery of both layers.  At finite d the raw overlap M = w^T w* / d
    # carries the O(d^-1/2) fluctuation of |w*|^2 / d, so compare the cosine,
    # which tends to sqrt(q) under the Nishimori identity M = Q.
    M_end, Q_end = amp.overlaps(W)
    cosine = np.abs(np.diag(M_end)) / np.sqrt(np.diag(Q_end) * np.diag(W.T @ W / d))
    assert np.all(cosine > 0.99), cosine


def test_gamp_predict_shapes_and_determinism():
    ch = SquareChannel(n_tokens=2)
    X, y, W = make_sequence_multi_index(300, 100, ch, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        amp = SequenceMultiIndexAMP(ch, random_state=0, max_iter=20).fit(X, y)
    assert amp.coef_.shape == (100, 1)
    assert amp.posterior_covariance_.shape == (1, 1)
    assert "M" not in amp.history_
    assert amp.predict(X).shape == y.shape
    b1 = amp.predict(X, method="bayes")
    assert np.array_equal(b1, amp.predict(X, method="bayes"))
    assert amp.score(X, y) <= 0
    amp2 = clone(amp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        amp2.fit(X, y)
    assert np.array_equal(amp.coef_, amp2.coef_)


def test_gamp_bad_input():
    ch = DeepAttentionChannel()
    X, y, W = make_sequence_multi_index(20, 10, ch, random_state=0)
    amp = SequenceMultiIndexAMP(ch, max_iter=1)
    with pytest.raises(NotFittedError):
        amp.predict(X)
    with pytest.raises(ValueError, match="3-D"):
        amp.fit(X.reshape(20, -1), y)
    with pytest.raises(ValueError, match="tokens"):
        amp.fit(np.concatenate([X, X[:, :1]], axis=1), y)
    with pytest.raises(ValueError, match="expects y of shape"):
        amp.fit(X, y[:, 0])
    with pytest.raises(ValueError, match="samples"):
        amp.fit(X, y[:10])
    with pytest.raises(ValueError, match="row-stochastic"):
        amp.fit(X, -y)
    with pytest.raises(ValueError, match="n_directions"):
        SequenceMultiIndexAMP(ch, n_directions=3).fit(X, y)
    with pytest.raises(ValueError, match="non-negative"):
        SequenceMultiIndexAMP(AbsChannel(n_tokens=2)).fit(X, -np.ones((20, 2, 1)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        amp.fit(X, y)
    with pytest.raises(ValueError, match="features"):
        amp.predict(X[:, :, :5])
    for n_draws in (0, -1, 2.5, "a", True):
        with pytest.raises(ValueError, match="n_draws must be an integer"):
            amp.predict(X, method="bayes", n_draws=n_draws)
    with pytest.raises(ValueError, match="0 feature"):
        SequenceMultiIndexAMP(ch, max_iter=1).fit(X[:, :, :0], y)
    with pytest.raises(ValueError, match="W_star contains NaN"):
        amp.overlaps(np.full(W.shape, np.nan))
    with pytest.raises(ValueError, match="W_star contains NaN"):
        SequenceMultiIndexAMP(ch, max_iter=1).fit(X, y, W_star=np.full(W.shape, np.inf))
    with pytest.raises(ValueError, match="instance, e.g. LinearChannel()"):
        SequenceMultiIndexAMP(LinearChannel).fit(X, y)
    with pytest.raises(ValueError, match="Complex"):
        SequenceMultiIndexAMP(LinearChannel(n_tokens=2, n_directions=2)).fit(X, y + 1j)


@pytest.mark.parametrize("func", ["state_evolution", "test_errors", "weak_recovery_threshold"])
def test_overlap_and_direction_arguments_are_validated(func):
    """Non-finite overlaps and out-of-range directions: a ValueError, not NaN results."""
    channel = AbsChannel(n_directions=2)
    call = {
        "state_evolution": lambda **kw: state_evolution(channel, 1.0, n_samples=200, **kw),
        "test_errors": lambda **kw: test_errors(channel, n_samples=200, **kw),
        "weak_recovery_threshold": lambda **kw: weak_recovery_threshold(
            channel, n_samples=200, **kw),
    }[func]
    overlap = {"state_evolution": "q_init", "test_errors": "q",
               "weak_recovery_threshold": "learned_overlap"}[func]
    for bad in (np.nan, [0.1, np.inf], np.array([None, None])):
        with pytest.raises(ValueError, match=f"{overlap} (contains NaN|must be numeric)"):
            call(**{overlap: bad})
    if func != "test_errors":
        extra = {} if func == "state_evolution" else {"method": "mc"}
        for bad in ([5], [-1], [0.5], [[0, 1]], [], [0, 0]):
            with pytest.raises(ValueError, match="directions must be a non-empty 1-D list"):
                call(directions=bad, **extra)


def test_make_sequence_multi_index():
    ch = OuterProductChannel(n_tokens=3)
    X, y, W = make_sequence_multi_index(7, 11, ch, random_state=0)
    assert X.shape == (7, 3, 11) and y.shape == (7, 3, 3) and W.shape == (11, 1)
    Z = np.einsum("nld,dp->nlp", X, W) / np.sqrt(11)
    assert np.allclose(y, ch.output(Z))
    X2, y2, W2 = make_sequence_multi_index(7, 11, ch, random_state=0)
    assert np.array_equal(X, X2)
    with pytest.raises(ValueError, match="n_directions"):
        make_sequence_multi_index(7, 11, ch, n_directions=2)


# --------------------------------------------------------------- review fixes


def test_tensor_gauss_hermite_moments_and_order():
    import itertools

    from numpy.testing import assert_allclose

    from skmoe.amp._channels import tensor_gauss_hermite

    nodes, log_w = tensor_gauss_hermite(2, 6)
    w = np.exp(log_w)
    assert_allclose(w.sum(), 1.0, rtol=1e-12)
    # Exact for polynomials of degree < 12: E z^2 = 1, E z^4 = 3, E z1^2 z2^2 = 1.
    assert_allclose(w @ nodes[:, 0] ** 2, 1.0, rtol=1e-12)
    assert_allclose(w @ nodes[:, 1] ** 4, 3.0, rtol=1e-12)
    assert_allclose(w @ (nodes[:, 0] ** 2 * nodes[:, 1] ** 2), 1.0, rtol=1e-12)
    x = np.unique(nodes[:, 0])
    assert_allclose(nodes, np.array(list(itertools.product(x, repeat=2))))
    assert not nodes.flags.writeable  # cached: must not be modified by callers


def test_generic_channel_equality_sees_shape_and_parity():
    f = lambda Z: Z[:, 0, :]  # noqa: E731
    assert GenericChannel(f, (1,)) == GenericChannel(f, (1,))
    assert GenericChannel(f, (1,)) != GenericChannel(f, (2,))
    assert GenericChannel(f, (1,), even=True) != GenericChannel(f, (1,), even=False)


@pytest.mark.parametrize("channel", [DeepAttentionChannel(n_tokens=3),
                                     DeepAttentionChannel(n_layers=4)])
def test_unsupported_attention_posterior_fails_early(channel):
    assert not channel.supports_posterior
    X, y, _ = make_sequence_multi_index(20, 10, channel, random_state=0)  # sampling works
    with pytest.raises(ValueError, match="no posterior implementation"):
        SequenceMultiIndexAMP(channel).fit(X, y)
    with pytest.raises(ValueError, match="no posterior implementation"):
        state_evolution(channel, 1.0)
    with pytest.raises(ValueError, match="no posterior implementation"):
        weak_recovery_threshold(channel)


@pytest.mark.parametrize(
    "func, kwargs, match",
    [
        (state_evolution, {"alpha": 0.0}, "'alpha' parameter"),
        (state_evolution, {"alpha": 1.0, "damping": 1.5}, "'damping' parameter"),
        (state_evolution, {"alpha": 1.0, "max_iter": 0}, "'max_iter' parameter"),
        (weak_recovery_threshold, {"method": "newton"}, "'method' parameter"),
        (weak_recovery_threshold, {"n_batches": 1}, "'n_batches' parameter"),
    ],
)
def test_study_functions_validate_parameters(func, kwargs, match):
    with pytest.raises(ValueError, match=match):
        func(AbsChannel(), **kwargs)


def test_study_functions_reject_non_channels():
    with pytest.raises(ValueError, match="'channel' parameter"):
        state_evolution("abs", 1.0)


def test_gamp_single_token_channel_accepts_2d_X():
    """With one token, 2-D X is the classical multi-index model: same fit as X[:, None, :]."""
    ch = LinearChannel(noise_std=0.3)
    X, y, W = make_sequence_multi_index(200, 50, ch, random_state=0)
    params = dict(max_iter=30, tol=0.0, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        flat = SequenceMultiIndexAMP(ch, **params).fit(X[:, 0, :], y.ravel())
        full = SequenceMultiIndexAMP(ch, **params).fit(X, y)
    np.testing.assert_array_equal(flat.coef_, full.coef_)
    np.testing.assert_array_equal(flat.predict(X[:, 0, :]), full.predict(X))
    with pytest.raises(ValueError, match="3-D"):
        SequenceMultiIndexAMP(SquareChannel(n_tokens=2)).fit(X[:, 0, :], y.ravel())


def test_gamp_divergence_warning_names_the_cause():
    """Shifted X (not centred) makes GAMP diverge: the warning says why, not just 'slow'."""
    channel = LinearChannel(noise_std=0.3)
    X, y, _ = make_sequence_multi_index(200, 100, channel, random_state=0)
    with pytest.warns(ConvergenceWarning, match="diverged.*standardise X"):
        SequenceMultiIndexAMP(channel, max_iter=30, random_state=0).fit(X + 3.0, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SequenceMultiIndexAMP(channel, max_iter=30, random_state=0).fit(X, y)


@pytest.mark.parametrize("channel", POSTERIOR_CHANNELS, ids=repr)
@pytest.mark.parametrize("v", [1.0, 1e-3])
def test_log_partition_likelihood_ratio(channel, v):
    """exp(log Z(y; omega') - log Z(y; omega)) has mean 1 for y ~ P(. | omega, V).

    log Z_out is the density of y given (omega, V) up to a function of y
    alone, so the ratio at two prior means is a likelihood ratio; its mean
    under the second law is exactly one (an importance-sampling identity that
    no other test constrains, and that small-V cancellation would break).
    """
    rng = np.random.default_rng(0)
    L, p = channel.n_tokens, channel.n_directions
    n = 3000 if isinstance(channel, DeepAttentionChannel) else 20000
    V = v * (0.8 * np.eye(p) + 0.2 * np.ones((p, p)))
    root = _sym_sqrt(V)
    omega = rng.standard_normal((n, L, p))
    shifted = omega + 0.3 * rng.standard_normal((n, L, p)) @ root
    y = channel.sample(omega + rng.standard_normal((n, L, p)) @ root, random_state=1)
    ratio = np.exp(channel.posterior(y, shifted, V)[2] - channel.posterior(y, omega, V)[2])
    standard_error = ratio.std() / np.sqrt(n)
    assert standard_error < 0.05
    assert abs(ratio.mean() - 1.0) < 4 * standard_error + 1e-3, (ratio.mean(), standard_error)


# --------------------------------------------------------------------------
# One convergence monitor: history, progress lines and warning
# --------------------------------------------------------------------------


def test_gamp_history_is_one_row_per_iteration():
    """history_ is the monitor's dict of equal-length columns, one row per iteration,
    and its overlaps are those of the iterates (the last one those of coef_)."""
    ch = LinearChannel(n_tokens=2, n_directions=2, noise_std=0.5)
    X, y, W = make_sequence_multi_index(300, 80, ch, random_state=0)
    tol = 1e-6
    amp = SequenceMultiIndexAMP(ch, tol=tol, max_iter=100, random_state=0).fit(X, y, W_star=W)
    h = amp.history_
    assert list(h) == ["iteration", "objective", "change", "elapsed", "Q", "M"]
    assert {len(v) for v in h.values()} == {amp.n_iter_}
    np.testing.assert_array_equal(h["iteration"], np.arange(1, amp.n_iter_ + 1))
    assert h["Q"].shape == h["M"].shape == (amp.n_iter_, 2, 2)
    M, Q = amp.overlaps(W)
    np.testing.assert_allclose(h["Q"][-1], Q, rtol=1e-12)
    np.testing.assert_allclose(h["M"][-1], M, rtol=1e-12)
    np.testing.assert_allclose(h["objective"], np.trace(h["Q"], axis1=1, axis2=2) / 2)
    # The stopping rule fired at the first change below tol, not before or after.
    assert amp.converged_ and h["change"][-1] < tol
    assert np.all(h["change"][:-1] >= tol)
    assert np.all(np.diff(h["elapsed"]) >= 0)
    # Without the ground truth there is no "M" column (not a None entry).
    without = SequenceMultiIndexAMP(ch, tol=tol, max_iter=100, random_state=0).fit(X, y)
    assert list(without.history_) == ["iteration", "objective", "change", "elapsed", "Q"]
    np.testing.assert_array_equal(without.history_["change"], h["change"])


def test_gamp_verbose_lines_use_the_monitor_format(capsys):
    ch = LinearChannel(noise_std=0.3)
    X, y, _ = make_sequence_multi_index(200, 50, ch, random_state=0)
    with pytest.warns(ConvergenceWarning, match=(
            r"SequenceMultiIndexAMP GAMP did not converge: the stopping rule \(tol=0\) "
            r"did not fire within max_iter=3 iterations")):
        amp = SequenceMultiIndexAMP(ch, tol=0.0, max_iter=3, verbose=2, random_state=0).fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    pattern = (r"\[SequenceMultiIndexAMP GAMP\] iter +(\d+)/3  overlap +(\S+)  change +(\S+)  "
               r"elapsed \d+\.\d\ds  ETA <= \d+\.\ds")
    for k, line in enumerate(lines[:3]):
        match = re.fullmatch(pattern, line)
        assert match, line
        assert int(match.group(1)) == k + 1
        # The printed numbers are the recorded ones.
        assert float(match.group(2)) == pytest.approx(amp.history_["objective"][k], rel=1e-5)
        assert float(match.group(3)) == pytest.approx(amp.history_["change"][k], rel=1e-3)
    assert re.fullmatch(r"\[SequenceMultiIndexAMP GAMP\] did not converge after 3 "
                        r"iterations in \d+\.\d\ds", lines[3])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        SequenceMultiIndexAMP(ch, tol=0.0, max_iter=3, random_state=0).fit(X, y)
    assert capsys.readouterr().out == ""


def test_state_evolution_monitor_history_and_warning():
    channel = AbsChannel()
    params = dict(n_samples=2000, compute_test_errors=False)
    with pytest.warns(ConvergenceWarning, match=(
            r"state_evolution did not converge: the stopping rule \(tol=0\) did not fire "
            r"within max_iter=4 iterations")):
        se = state_evolution(channel, 2.0, tol=0.0, max_iter=4, **params)
    h = se.monitor_history
    assert list(h) == ["iteration", "objective", "change", "elapsed"]
    assert {len(v) for v in h.values()} == {se.n_iter} == {4}
    assert not se.converged
    # One monitor row per step of the q trajectory (which also holds q_init).
    steps = np.abs(np.diff(se.history, axis=0)).max(axis=(1, 2))
    np.testing.assert_array_equal(h["change"], steps)
    np.testing.assert_array_equal(h["objective"], se.history[1:, 0, 0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        converged = state_evolution(channel, 2.0, tol=1e-3, max_iter=200, **params)
    assert converged.converged and converged.monitor_history["change"][-1] < 1e-3
    assert np.all(converged.monitor_history["change"][:-1] >= 1e-3)


# --------------------------------------------------------------------------
# Fit protocol: atomic fit, fitted state only
# --------------------------------------------------------------------------


def _pickled_state(est):
    import pickle

    return {k: pickle.dumps(v) for k, v in vars(est).items()}


def _fitted_quietly(channel, n_samples, n_features, **params):
    """Data from ``channel`` and a GAMP fit on it, convergence warnings silenced."""
    X, y, W = make_sequence_multi_index(n_samples, n_features, channel, random_state=0)
    amp = SequenceMultiIndexAMP(channel, random_state=0, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        amp.fit(X, y)
    return amp, X, y


def test_gamp_failed_refit_leaves_the_fitted_state_unchanged():
    """y is validated after X resets n_features_in_: a failure there restores everything."""
    ch = AbsChannel(n_tokens=2)
    amp, X, y = _fitted_quietly(ch, 200, 50, max_iter=5, tol=0.0)
    state, prediction = _pickled_state(amp), amp.predict(X)
    X2, y2, _ = make_sequence_multi_index(100, 30, ch, random_state=1)
    with pytest.raises(ValueError, match="non-negative"):
        amp.fit(X2, -y2)
    assert _pickled_state(amp) == state
    assert amp.n_features_in_ == 50
    np.testing.assert_array_equal(amp.predict(X), prediction)
    fresh = SequenceMultiIndexAMP(ch)
    with pytest.raises(ValueError, match="non-negative"):
        fresh.fit(X2, -y2)
    assert not [k for k in vars(fresh) if k.endswith("_")]


def test_gamp_predicts_with_the_channel_it_was_fitted_with():
    """The channel is copied at fit: replacing or mutating it afterwards changes nothing."""
    ch = DeepAttentionChannel(n_grid=8)
    amp, X, y = _fitted_quietly(ch, 60, 20, max_iter=2, tol=0.0)
    outputs = (amp.predict(X), amp.predict(X, method="bayes", n_draws=3), amp.score(X, y))
    ch.skip = 3.0  # in place: the object the estimator was given
    for channel in (ch, DeepAttentionChannel(skip=0.0, n_grid=8), AbsChannel(n_tokens=2)):
        amp.set_params(channel=channel)
        after = (amp.predict(X), amp.predict(X, method="bayes", n_draws=3), amp.score(X, y))
        for before_i, after_i in zip(outputs, after):
            np.testing.assert_array_equal(after_i, before_i)
    # The test is sensitive: the mutated channel does predict differently.
    Z = np.random.RandomState(0).standard_normal((5, 2, 2))
    assert not np.allclose(ch.output(Z), DeepAttentionChannel().output(Z))


@pytest.mark.parametrize("channel", [AbsChannel(n_tokens=2), DeepAttentionChannel(n_grid=8)],
                         ids=repr)
def test_gamp_float32_policy(channel):
    """NumPy float32 X: computed in float64, fitted arrays and predictions in float32."""
    X, y, W = make_sequence_multi_index(120, 30, channel, random_state=0)
    X32 = X.astype(np.float32)
    params = dict(max_iter=4, tol=0.0, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        amp32 = SequenceMultiIndexAMP(channel, **params).fit(X32, y, W_star=W)
        amp64 = SequenceMultiIndexAMP(channel, **params).fit(X32.astype(np.float64), y,
                                                             W_star=W)
    for name in ("coef_", "posterior_covariance_"):
        assert getattr(amp32, name).dtype == np.float32
        np.testing.assert_array_equal(getattr(amp32, name),
                                      getattr(amp64, name).astype(np.float32))
    for method in ("plugin", "bayes"):
        y32 = amp32.predict(X32, method=method, n_draws=3)
        assert y32.dtype == np.float32
        np.testing.assert_allclose(y32, amp64.predict(X, method=method, n_draws=3),
                                   rtol=1e-4, atol=1e-5)
    # Outputs follow the dtype of the X they are computed for.
    assert amp32.predict(X).dtype == np.float64
    # The history and overlaps are float64 summaries of the same iterates.
    for key, column in amp32.history_.items():
        if key not in ("iteration", "elapsed"):
            assert column.dtype == np.float64
            np.testing.assert_array_equal(column, amp64.history_[key])
    assert amp32.overlaps(W)[0].dtype == np.float64
    assert isinstance(amp32.score(X32, y), float)


def test_gamp_prior_is_deprecated():
    """prior is never read: setting it warns (FutureWarning) and changes nothing."""
    ch = LinearChannel(noise_std=0.3)
    X, y, _ = make_sequence_multi_index(100, 30, ch, random_state=0)
    params = dict(max_iter=50, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        default = SequenceMultiIndexAMP(ch, **params).fit(X, y)
    assert default.get_params()["prior"] == "deprecated"
    with pytest.warns(FutureWarning, match="'prior' .* deprecated in version 0.1 .* removed in 0.3"):
        explicit = SequenceMultiIndexAMP(ch, prior="gaussian", **params).fit(X, y)
    np.testing.assert_array_equal(explicit.coef_, default.coef_)
    with pytest.raises(ValueError, match="'prior' parameter"):
        SequenceMultiIndexAMP(ch, prior="laplace").fit(X, y)


def test_channel_methods_inherit_the_base_docstrings():
    """Overrides carry BaseChannel's docstring in their own __doc__ (numpydoc reads
    __doc__, not the MRO), plus the subclass's note where it has one."""
    import numpydoc.validate

    from skmoe.amp._channels import _DOCUMENTED_METHODS, BaseChannel

    channels = [AbsChannel, SquareChannel, OuterProductChannel, SumSquareChannel,
                LinearChannel, DeepAttentionChannel, GenericChannel]
    for cls in channels:
        for name in _DOCUMENTED_METHODS:
            doc, base = getattr(cls, name).__doc__, getattr(BaseChannel, name).__doc__
            assert doc.split("\n\n")[0] == base.split("\n\n")[0], (cls, name)
            if "Parameters" in base:  # the sections, whole and once
                assert doc.count("Parameters\n") == 1
                assert base[base.index("Parameters"):] in doc, (cls, name)
            if name in vars(cls):
                result = numpydoc.validate.validate(f"skmoe.amp.{cls.__name__}.{name}")
                assert not [code for code, _ in result["errors"] if code in ("GL08", "PR01")]
    # A subclass's note is kept, before the sections.
    assert "log N(y; omega, V + noise_std**2 I)" in LinearChannel.posterior.__doc__
    doc = GenericChannel.posterior.__doc__
    assert doc.index("Gauss-Hermite") < doc.index("Parameters")


def test_study_functions_draw_their_seeds_through_draw_seed(monkeypatch):
    """The channel-noise and test-error seeds come from the one helper, in order."""
    from skmoe.amp import _state_evolution
    from skmoe.utils._validation import draw_seed

    seeds = []

    def recording(rng):
        seeds.append(draw_seed(rng))
        return seeds[-1]

    monkeypatch.setattr(_state_evolution, "draw_seed", recording)
    params = dict(n_samples=500, n_inner=4, max_iter=3, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = state_evolution(AbsChannel(), 1.0, **params)
        assert len(seeds) == 2  # channel noise, then the test errors
        again = state_evolution(AbsChannel(), 1.0, **params)
    assert seeds[2:] == seeds[:2] and first.test_error == again.test_error
    weak_recovery_threshold(AbsChannel(), method="mc", n_samples=400, n_batches=4)
    assert len(seeds) == 4 + 4  # one per Monte Carlo batch


def test_a_channel_must_implement_output_and_posterior():
    """BaseChannel is abstract: a subclass missing a method fails at construction,
    naming it, not later inside GAMP."""
    from skmoe.amp._channels import BaseChannel

    class OutputOnly(BaseChannel):
        def output(self, Z):
            return Z[:, 0, 0]

    with pytest.raises(TypeError, match="posterior"):
        OutputOnly()
    with pytest.raises(TypeError, match="output"):
        BaseChannel()
