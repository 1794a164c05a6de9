"""Direct tests of the numba kernels against plain NumPy/SciPy."""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import stats
from scipy.special import logsumexp

from skmoe.mixture._params import _kernel_params, compute_precision_cholesky
from skmoe.mixture import _passes_numba as kernels
from skmoe.utils._threading import block_partition


def _random_params(rng, K, d, p, diagonal_gates=False):
    covs = np.stack([np.cov(rng.standard_normal((d, 3 * d))) + 0.5 * np.eye(d) for _ in range(K)])
    if diagonal_gates:
        # Full matrices with zero off-diagonals: the kernels' diagonal path.
        covs = np.stack([np.diag(np.diag(c)) for c in covs])
    noise = np.stack([np.cov(rng.standard_normal((p, 3 * p + 2))) + 0.2 * np.eye(p) for _ in range(K)])
    params = {
        "weights": rng.dirichlet(np.ones(K)),
        "means": 2 * rng.standard_normal((K, d)),
        "covariances": covs,
        "coef": rng.standard_normal((K, p, d)),
        "intercept": rng.standard_normal((K, p)),
        "noise_covariances": noise,
        "covariance_type": "full",
    }
    params["precisions_cholesky"] = compute_precision_cholesky(covs, "full")
    return params


@pytest.mark.parametrize("diagonal_gates", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_samples", [7, 257, 5000])  # one chunk, chunk edge, many blocks
def test_em_pass_matches_numpy(dtype, n_samples, diagonal_gates):
    rng = np.random.default_rng(n_samples)
    K, d, p = 3, 4, 2
    params = _random_params(rng, K, d, p, diagonal_gates)
    X = rng.standard_normal((n_samples, d)).astype(dtype)
    Y = rng.standard_normal((n_samples, p)).astype(dtype)
    args = _kernel_params(params)
    ll, s0, s1, s2 = kernels.em_pass(X, Y, *args, True)

    Xd, Yd = X.astype(np.float64), Y.astype(np.float64)
    log_prob = np.column_stack(
        [
            np.log(params["weights"][k])
            + stats.multivariate_normal(params["means"][k], params["covariances"][k]).logpdf(Xd)
            + stats.multivariate_normal(np.zeros(p), params["noise_covariances"][k]).logpdf(
                Yd - Xd @ params["coef"][k].T - params["intercept"][k]
            ).reshape(-1)
            for k in range(K)
        ]
    )
    norm = logsumexp(log_prob, axis=1)
    resp = np.exp(log_prob - norm[:, None])
    rtol = 1e-10
    assert_allclose(ll, norm.sum(), rtol=rtol)
    assert_allclose(s0, resp.sum(axis=0), rtol=rtol)
    centers = np.hstack([params["means"], args[4]])
    for k in range(K):
        U = np.c_[Xd, Yd] - centers[k]
        assert_allclose(s1[k], resp[:, k] @ U, rtol=1e-9, atol=1e-9)
        assert_allclose(s2[k], (resp[:, k] * U.T) @ U, rtol=1e-9, atol=1e-9)
    ll_only, *_ = kernels.em_pass(X, Y, *args, False)
    assert_allclose(ll_only, ll, rtol=1e-13)

    log_joint, log_x = kernels.log_densities(X, Y, *args)
    assert_allclose(log_joint, norm, rtol=1e-10)
    gate_log = log_prob - np.column_stack(
        [
            stats.multivariate_normal(np.zeros(p), params["noise_covariances"][k]).logpdf(
                Yd - Xd @ params["coef"][k].T - params["intercept"][k]
            ).reshape(-1)
            for k in range(K)
        ]
    )
    assert_allclose(log_x, logsumexp(gate_log, axis=1), rtol=1e-10)
    assert_allclose(
        kernels.gate_probabilities(X, *args[:4]),
        np.exp(gate_log - logsumexp(gate_log, axis=1, keepdims=True)),
        rtol=1e-9,
        atol=1e-15,
    )


def test_zero_weight_component_gets_no_responsibility():
    rng = np.random.default_rng(0)
    params = _random_params(rng, 3, 2, 1)
    params["weights"] = np.array([0.5, 0.5, 0.0])
    X = rng.standard_normal((50, 2))
    Y = rng.standard_normal((50, 1))
    ll, s0, s1, s2 = kernels.em_pass(X, Y, *_kernel_params(params), True)
    assert np.isfinite(ll)
    assert s0[2] == 0.0 and np.all(s2[2] == 0.0)


def test_output_count_mismatch_is_rejected():
    rng = np.random.default_rng(0)
    args = _kernel_params(_random_params(rng, 2, 2, 1))
    with pytest.raises(ValueError, match="outputs"):
        kernels.em_pass(np.zeros((3, 2)), np.zeros((3, 2)), *args, True)


def test_block_partition_depends_only_on_n_samples():
    for n in (1, 2047, 4096, 10**5, 10**7):
        n_blocks, size = block_partition(n)
        assert 1 <= n_blocks <= 128
        assert (n_blocks - 1) * size < n <= n_blocks * size
