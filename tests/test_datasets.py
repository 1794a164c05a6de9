"""Tests for skmoe.datasets.make_gaussian_gated_moe."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from skmoe.datasets import make_gaussian_gated_moe


def test_shapes_and_reproducibility():
    X, y, labels, params = make_gaussian_gated_moe(
        50, 3, n_components=4, n_outputs=2, return_labels=True, return_params=True,
        random_state=0,
    )
    assert X.shape == (50, 3) and y.shape == (50, 2) and labels.shape == (50,)
    assert params["coef"].shape == (4, 2, 3)
    X2, y2 = make_gaussian_gated_moe(50, 3, n_components=4, n_outputs=2, random_state=0)
    assert_array_equal(X, X2)
    assert_array_equal(y, y2)


def test_samples_follow_the_given_parameters():
    """Per-component moments match the parameters (Monte Carlo, 200k rows)."""
    params = {
        "weights": np.array([0.2, 0.8]),
        "means": np.array([[-1.0, 2.0], [3.0, 0.0]]),
        "covariances": np.array([[[1.0, 0.3], [0.3, 0.5]], [[0.4, 0.0], [0.0, 2.0]]]),
        "coef": np.array([[[1.0, -2.0]], [[0.5, 0.5]]]),
        "intercept": np.array([[0.3], [-1.0]]),
        "noise_covariances": np.array([[[0.04]], [[0.25]]]),
    }
    n = 200_000
    X, y, labels = make_gaussian_gated_moe(n, params=params, return_labels=True, random_state=1)
    assert_allclose(np.bincount(labels) / n, params["weights"], atol=0.005)
    for k in range(2):
        xk, yk = X[labels == k], y[labels == k]
        assert_allclose(xk.mean(axis=0), params["means"][k], atol=0.02)
        assert_allclose(np.cov(xk.T), params["covariances"][k], atol=0.03)
        design = np.c_[xk, np.ones(len(xk))]
        beta = np.linalg.lstsq(design, yk, rcond=None)[0]
        assert_allclose(beta[:2], params["coef"][k, 0], atol=0.01)
        assert_allclose(beta[2], params["intercept"][k, 0], atol=0.02)
        assert_allclose(np.var(yk - design @ beta), params["noise_covariances"][k, 0, 0], rtol=0.03)


def test_shuffle_false_groups_rows_by_component():
    _, _, labels = make_gaussian_gated_moe(100, return_labels=True, shuffle=False, random_state=0)
    assert np.all(np.diff(labels) >= 0)


def test_invalid_parameters():
    with pytest.raises(ValueError, match="n_samples"):
        make_gaussian_gated_moe(0)
    with pytest.raises(ValueError, match="missing"):
        make_gaussian_gated_moe(10, params={"weights": [1.0]})


@pytest.mark.parametrize("noise", [1e200, 1e160])
def test_overflowing_noise_raises_a_clear_value_error(noise):
    # noise**2 overflowed with a raw OverflowError.
    with pytest.raises(ValueError, match="noise variance noise\\*\\*2 overflows"):
        make_gaussian_gated_moe(10, noise=noise, random_state=0)


def test_overflowing_samples_raise_a_clear_value_error():
    # Finite parameters whose samples A x overflow float64.
    params = {
        "weights": [1.0],
        "means": [[1e10]],
        "covariances": [[[1.0]]],
        "coef": [[[1e300]]],
        "intercept": [[0.0]],
        "noise_covariances": [[[1.0]]],
    }
    with pytest.raises(ValueError, match="sampled y is not finite.*rescale"):
        make_gaussian_gated_moe(10, params=params, random_state=0)


def test_large_but_representable_noise_still_samples():
    X, y = make_gaussian_gated_moe(50, noise=1e100, random_state=0)
    assert np.all(np.isfinite(y)) and np.std(y) > 1e98


# --------------------------------------------------------------------------
# make_latent_cluster_regression
# --------------------------------------------------------------------------


def test_hermite_basis_is_orthonormal_and_matches_numpy():
    """Gauss-Hermite quadrature (exact for these degrees) and numpy's HermiteE."""
    from math import factorial

    from numpy.polynomial import hermite_e

    from skmoe.utils._numba_math import hermite_and_derivative, hermite_basis

    nodes, weights = hermite_e.hermegauss(30)
    weights = weights / np.sqrt(2 * np.pi)
    H = hermite_basis(nodes, 8)
    assert_allclose((H * weights[:, None]).T @ H, np.eye(9), atol=1e-10)
    z = np.linspace(-3, 3, 7)
    for i in range(9):
        coef = np.zeros(i + 1)
        coef[i] = 1.0
        assert_allclose(hermite_basis(z, 8)[:, i], hermite_e.hermeval(z, coef) / np.sqrt(factorial(i)))
    # Any input shape (here 2-D and 0-D), and the same values as the scalar kernel.
    Z = np.linspace(-2.5, 2.5, 12).reshape(3, 4)
    H2 = hermite_basis(Z, 5)
    assert H2.shape == (3, 4, 6) and hermite_basis(0.5, 5).shape == (6,)
    for i in range(1, 6):
        scalar = np.array([hermite_and_derivative(t, i)[0] for t in Z.ravel()])
        assert_allclose(H2[..., i].ravel(), scalar, rtol=1e-14, atol=1e-14)


def _mc_mean(values):
    """Monte Carlo mean and its standard error."""
    return values.mean(), values.std() / np.sqrt(values.size)


@pytest.mark.parametrize("n_clusters", [2, 3])
def test_latent_cluster_cancellation_identities(n_clusters):
    """E[y h_3(w_g x)] = 0 pooled, = s_c per cluster; E[y h_3(w_c x)] = 1/C (5 sigma)."""
    from skmoe.datasets import make_latent_cluster_regression
    from skmoe.utils._numba_math import hermite_basis

    X, y, truth = make_latent_cluster_regression(
        400_000, 20, n_clusters=n_clusters, return_truth=True, random_state=0
    )
    labels, signs = truth["labels"], truth["global_signs"]
    assert abs(signs.sum()) < 1e-12
    h_g = hermite_basis(X @ truth["global_direction"], 3)[:, 3]
    mean, se = _mc_mean(y * h_g)
    assert abs(mean) < 5 * se
    for c in range(n_clusters):
        mean, se = _mc_mean((y * h_g)[labels == c])
        assert abs(mean - signs[c]) < 5 * se
        h_c = hermite_basis(X @ truth["cluster_directions"][c], 3)[:, 3]
        mean, se = _mc_mean(y * h_c)
        assert abs(mean - 1 / n_clusters) < 5 * se


def test_latent_cluster_geometry():
    """Orthonormal directions; x | c has mean rho v_c and w^T x | c is standard normal."""
    from skmoe.datasets import make_latent_cluster_regression

    X, y, truth = make_latent_cluster_regression(
        100_000, 12, separation=2.5, noise=0.3, return_truth=True, random_state=1
    )
    frame = np.vstack(
        [truth["cluster_means"], truth["cluster_directions"], truth["global_direction"]]
    )
    assert_allclose(frame @ frame.T, np.eye(5), atol=1e-12)
    for c in range(2):
        Xc = X[truth["labels"] == c]
        assert_allclose(Xc.mean(axis=0), 2.5 * truth["cluster_means"][c], atol=0.03)
        for w in (*truth["cluster_directions"], truth["global_direction"]):
            t = Xc @ w
            assert abs(t.mean()) < 0.03 and abs(t.var() - 1) < 0.03
    # Var(y) = sum of squared Hermite coefficients (1 + 1) + noise^2.
    mean, se = _mc_mean(y**2)
    assert abs(mean - (2 + 0.09)) < 5 * se


def test_latent_cluster_higher_degree_links_and_errors():
    from skmoe.datasets import make_latent_cluster_regression

    _, _, truth = make_latent_cluster_regression(
        10, 8, degree=5, information_exponent=2, return_truth=True, random_state=0
    )
    beta, gamma = truth["cluster_link_coef"], truth["global_link_coef"]
    assert beta.shape == (2, 6) and gamma.shape == (6,)
    assert np.all(beta[:, :2] == 0) and np.all(beta[:, 2] == 1) and gamma[2] == 1
    X1, y1 = make_latent_cluster_regression(30, 8, random_state=3)
    X2, y2 = make_latent_cluster_regression(30, 8, random_state=3)
    assert_array_equal(X1, X2)
    assert_array_equal(y1, y2)
    with pytest.raises(ValueError, match="too small"):
        make_latent_cluster_regression(10, 4)
    with pytest.raises(ValueError, match="sum to zero"):
        make_latent_cluster_regression(10, 8, global_signs=[1.0, 0.5])
    with pytest.raises(ValueError, match="shape"):
        make_latent_cluster_regression(10, 8, global_signs=[1.0, -1.0, 0.0])
    with pytest.raises(ValueError, match="degree"):
        make_latent_cluster_regression(10, 8, degree=2)


def test_latent_cluster_huge_separation_raises_instead_of_nan():
    # Issue 15: separation=1e200 returned NaN targets (h_3 of 1e200 overflows).
    from skmoe.datasets import make_latent_cluster_regression

    with pytest.raises(ValueError, match=r"target y is not finite.*separation"):
        make_latent_cluster_regression(100, 5, separation=1e200, random_state=0)
    # With linear links the targets stay of the order of separation (finite).
    _, y1 = make_latent_cluster_regression(100, 5, separation=1e300, degree=1,
                                           information_exponent=1, random_state=0)
    assert np.all(np.isfinite(y1))
    with pytest.raises(ValueError, match="not finite"):
        make_latent_cluster_regression(100, 5, noise=1e308, random_state=0)
    # Large but representable: the data are returned, finite.
    X, y = make_latent_cluster_regression(100, 5, separation=1e50, random_state=0)
    assert np.all(np.isfinite(X)) and np.all(np.isfinite(y))
    assert np.abs(y).max() > 1e100
