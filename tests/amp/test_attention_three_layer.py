"""Three-layer tied-attention channel: posterior, zero-data error, thresholds."""

import numpy as np
import pytest

from skmoe.amp import (
    DeepAttentionChannel,
    SequenceMultiIndexAMP,
    state_evolution,
    test_errors,
    weak_recovery_threshold,
)
from skmoe.datasets import make_sequence_multi_index


def _attention(x, c):
    """``softmax_row(x x^T) + c I`` for a batch of 2-vectors, written out directly."""
    S = x[:, :, None] * x[:, None, :]
    E = np.exp(S - S.max(axis=2, keepdims=True))
    return E / E.sum(axis=2, keepdims=True) + c * np.eye(2)


def _network(Z, c=1.0):
    """The three-layer network ``y = softmax(u u^T)``, ``u = A(A(z_1) z_2) A(z_1) z_3``."""
    z1, z2, z3 = Z[:, :, 0], Z[:, :, 1], Z[:, :, 2]
    A1 = _attention(z1, c)
    A2 = _attention(np.einsum("nij,nj->ni", A1, z2), c)
    u = np.einsum("nij,njk,nk->ni", A2, A1, z3)
    return _attention(u, 0.0)


def _grid_reference(u, omega, V, c=1.0, n_grid=24, box=6.0):
    """Posterior moments and ``log Z_out`` by a dense tensor grid over ``(z_1, z_2)``.

    An independent implementation: the full 6-D Gaussian density of ``Z``
    (not the conditional factorisation of the kernel) at ``z_3 = +-M^{-1} u``,
    over ``|det M|``, on a uniform grid of ``n_grid**4`` points per branch.
    """
    sd = np.sqrt(np.diag(V))
    axes = [omega[l, k] + sd[k] * np.linspace(-box, box, n_grid)
            for l in range(2) for k in range(2)]
    cell = np.prod([a[1] - a[0] for a in axes])
    g = [a.ravel() for a in np.meshgrid(*axes, indexing="ij")]
    z1 = np.column_stack([g[0], g[2]])
    z2 = np.column_stack([g[1], g[3]])
    A1 = _attention(z1, c)
    M = _attention(np.einsum("nij,nj->ni", A1, z2), c) @ A1
    w = np.linalg.solve(M, np.broadcast_to(u, z1.shape)[..., None])[..., 0]
    Vinv = np.linalg.inv(V)
    points, log_w = [], []
    for sign in (1.0, -1.0):
        Z = np.stack([np.column_stack([z1[:, l], z2[:, l], sign * w[:, l]]) for l in range(2)], 1)
        E = Z - omega
        log_w.append(-0.5 * np.einsum("nli,ij,nlj->n", E, Vinv, E)
                     - np.log(np.abs(np.linalg.det(M))))
        points.append(Z.reshape(-1, 6))
    Z, log_w = np.concatenate(points), np.concatenate(log_w)
    top = log_w.max()
    wt = np.exp(log_w - top)
    total = wt.sum()
    wt /= total
    mean = wt @ Z
    cov = (Z * wt[:, None]).T @ Z - np.outer(mean, mean)
    log_z = top + np.log(total * cell) - np.linalg.slogdet(V)[1] - 3 * np.log(2 * np.pi)
    return mean.reshape(2, 3), cov.reshape(2, 3, 2, 3), log_z


def test_network_matches_output():
    # The reference network above is the channel's g (so the tests below
    # compare against the right model).
    Z = np.random.default_rng(0).standard_normal((200, 2, 3))
    np.testing.assert_allclose(_network(Z, 0.7), DeepAttentionChannel(3, skip=0.7).output(Z),
                               atol=1e-12)


@pytest.mark.parametrize("case", ["identity", "correlated"])
def test_posterior_matches_dense_grid(case):
    rng = np.random.default_rng(1)
    ch = DeepAttentionChannel(n_layers=3)
    Z = rng.standard_normal((2, 2, 3))
    y = ch.output(Z)
    if case == "identity":
        V, omega = np.eye(3), np.zeros((2, 2, 3))
    else:
        V = np.array([[1.0, 0.3, 0.1], [0.3, 0.8, 0.2], [0.1, 0.2, 0.6]])
        omega = 0.5 * rng.standard_normal((2, 2, 3))
    mean, cov, log_z = ch.posterior(y, omega, V)
    u = ch.invert_last_softmax(y)
    for i in range(2):
        m_ref, c_ref, lz_ref = _grid_reference(u[i], omega[i], V)
        # The documented accuracy of the default 4096 Sobol' points.
        np.testing.assert_allclose(mean[i], m_ref, atol=5e-3)
        np.testing.assert_allclose(cov[i], c_ref, atol=1e-2)
        assert abs(log_z[i] - lz_ref) < 3e-3


def test_posterior_error_decreases_with_n_points():
    rng = np.random.default_rng(2)
    Z = rng.standard_normal((2, 2, 3))
    V = np.diag([1.0, 1.0, 0.3])
    omega = 0.5 * rng.standard_normal((2, 2, 3))
    y = DeepAttentionChannel(3).output(Z)
    u = DeepAttentionChannel(3).invert_last_softmax(y)
    refs = [_grid_reference(u[i], omega[i], V) for i in range(2)]
    errors = []
    for n_points in (256, 16384):
        _, cov, _ = DeepAttentionChannel(3, n_points=n_points).posterior(y, omega, V)
        errors.append(max(np.abs(cov[i] - refs[i][1]).max() for i in range(2)))
    assert errors[1] < errors[0] / 4


def test_posterior_nishimori():
    # Under the model (Z ~ N(Omega, V) per token, y = g(Z)), the posterior
    # mean m satisfies E[m m^T] = E[Z m^T] and the posterior second moment
    # averages to E[Z Z^T].
    rng = np.random.default_rng(3)
    ch = DeepAttentionChannel(n_layers=3, n_points=1024)
    n = 3000
    q = np.array([[0.3, 0.1, 0.0], [0.1, 0.3, 0.1], [0.0, 0.1, 0.5]])
    Omega = rng.standard_normal((n, 2, 3)) @ np.linalg.cholesky(q).T
    V = np.eye(3) - q
    Z = Omega + rng.standard_normal((n, 2, 3)) @ np.linalg.cholesky(V).T
    mean, cov, _ = ch.posterior(ch.output(Z), Omega, V)
    m, z = mean.reshape(n, 6), Z.reshape(n, 6)
    second = cov.reshape(n, 6, 6) + m[:, :, None] * m[:, None, :]
    np.testing.assert_allclose(m.T @ m / n, z.T @ m / n, atol=0.06)
    np.testing.assert_allclose(second.mean(axis=0), z.T @ z / n, atol=0.08)
    # Not trivially satisfied: the data carry information beyond Omega.
    assert np.trace(m.T @ m / n) > np.trace(Omega.reshape(n, 6).T @ Omega.reshape(n, 6) / n) + 0.3


def test_posterior_blocks_are_independent():
    # Each sample's posterior depends on its own (y, omega) only, whatever
    # the block/thread partition of the batch.
    rng = np.random.default_rng(4)
    ch = DeepAttentionChannel(n_layers=3, n_points=256)
    Z = rng.standard_normal((9, 2, 3))
    y, omega = ch.output(Z), 0.3 * rng.standard_normal((9, 2, 3))
    V = np.diag([0.9, 0.8, 0.7])
    batch = ch.posterior(y, omega, V)
    single = [ch.posterior(y[i:i + 1], omega[i:i + 1], V) for i in (0, 4, 8)]
    for k, i in enumerate((0, 4, 8)):
        for a, b in zip(batch, single[k]):
            np.testing.assert_array_equal(a[i], b[0])


def test_zero_data_test_error_matches_independent_monte_carlo():
    # With q = 0, the plug-in error is E||g(Z) - g(0)||^2, g(0) = 1/2 everywhere.
    res = test_errors(DeepAttentionChannel(n_layers=3), 0.0, n_samples=100_000, n_inner=2)
    Z = np.random.default_rng(5).standard_normal((100_000, 2, 3))
    err = np.sum((_network(Z) - 0.5) ** 2, axis=(1, 2))
    std = np.hypot(res.plugin_std, err.std() / np.sqrt(err.size))
    assert abs(res.plugin - err.mean()) < 4 * std
    assert err.mean() > 0.1  # not degenerate (about 0.58; 0.388 for two layers)


def test_threshold_is_last_layer_first():
    ch = DeepAttentionChannel(n_layers=3, n_points=256)
    res = weak_recovery_threshold(ch, n_samples=2000, random_state=0)
    # The unstable direction is the layer nearest the output (index 2).
    assert abs(res.eigenvector[2, 2]) > 0.99
    assert res.threshold > 1 / (2 * 3)  # the Jensen bound 1 / (L (L + 1))
    assert 0.18 < res.threshold < 0.25
    # Layers 1 and 2 alone are far more stable (the staircase).
    early = weak_recovery_threshold(ch, directions=[0, 1], n_samples=2000, random_state=0)
    assert early.threshold > res.threshold + 5 * (early.threshold_std + res.threshold_std)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # fixed budget
def test_state_evolution_and_gamp_accept_three_layers():
    ch = DeepAttentionChannel(n_layers=3, n_points=256)
    alpha = 0.6  # above the last layer's threshold (about 0.21), below the others'
    se = state_evolution(ch, alpha, n_samples=1000, max_iter=15, compute_test_errors=False)
    q = np.diag(se.q)
    assert q[2] > 0.4 and q[0] < 0.05 and q[1] < 0.05
    d = 200
    X, y, W = make_sequence_multi_index(int(alpha * d), d, ch, random_state=0)
    amp = SequenceMultiIndexAMP(ch, max_iter=25, random_state=0).fit(X, y)
    M, Q = amp.overlaps(W)
    cos2 = np.diag(M) ** 2 / np.maximum(np.diag(Q), 1e-12)
    # GAMP at finite d learns the last layer, as SE predicts.
    assert cos2[2] > 0.25
    assert cos2[2] > max(cos2[0], cos2[1])


def test_n_points_must_be_a_power_of_two():
    with pytest.raises(ValueError, match="power of two"):
        DeepAttentionChannel(n_layers=3, n_points=1000)
    with pytest.raises(ValueError, match="n_points must be an integer >= 64"):
        DeepAttentionChannel(n_layers=3, n_points=32)


@pytest.mark.parametrize("scale", [1.0, 27.0, 1e3])
def test_saturated_targets_give_finite_posteriors(scale):
    # For large |z| the softmax underflows to exact 0/1; such targets are
    # valid and their posterior must stay finite (issue 15).
    ch = DeepAttentionChannel(n_layers=3, n_points=256)
    Z = scale * np.random.default_rng(6).uniform(-1, 1, (20, 2, 3))
    y = ch.sample(Z)
    np.testing.assert_array_equal(ch.check_y(y), y)
    for V in (np.eye(3), np.diag([1.0, 1.0, 1e-4])):
        mean, cov, log_z = ch.posterior(y, Z, V)
        assert np.all(np.isfinite(mean)) and np.all(np.isfinite(cov))
        assert np.all(np.isfinite(log_z))


def test_bad_inputs_are_rejected_before_the_kernel():
    ch = DeepAttentionChannel(n_layers=3, n_points=64)
    y = ch.output(np.zeros((4, 2, 3)))
    with pytest.raises(ValueError, match="same number of samples"):
        ch.posterior(y, np.zeros((5, 2, 3)), np.eye(3))
    with pytest.raises(ValueError, match="omega must have shape"):
        ch.posterior(y, np.zeros((4, 2, 2)), np.eye(3))
    with pytest.raises(ValueError, match="positive definite"):
        ch.posterior(y, np.zeros((4, 2, 3)), np.diag([1.0, 1.0, 0.0]))
