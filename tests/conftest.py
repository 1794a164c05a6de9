"""Shared fixtures.

The numba kernels are compiled (or loaded from the on-disk cache) once per
test session by ``_warm_numba_kernels``, so no individual test pays for JIT
compilation.
"""

import os

# scikit-learn's array-API checks skip silently unless this is set before
# SciPy is imported.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _warm_numba_kernels():
    from skmoe import GaussianGatedMoERegressor

    rng = np.random.RandomState(0)
    for dtype in (np.float64, np.float32):
        X = rng.standard_normal((20, 2)).astype(dtype)
        y = rng.standard_normal(20).astype(dtype)
        model = GaussianGatedMoERegressor(2, max_iter=2, tol=0, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X, y)
        model.predict(X, return_std=True)
        model.predict_gates(X)
        model.score_samples(X, y)

    # Sequence multi-index AMP: the two-layer attention posterior kernel.
    from skmoe.amp import DeepAttentionChannel

    channel = DeepAttentionChannel(n_grid=8)
    Z = rng.standard_normal((3, 2, 2))
    channel.posterior(channel.output(Z), 0.5 * Z, np.eye(2))
    _warm_fisher_kernels()
    _warm_sgd_moe_kernels()
    _warm_momlp_kernels()


def _warm_fisher_kernels():
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    from skmoe import DiagonalFisherEstimator

    rng = np.random.RandomState(0)
    X = rng.standard_normal((20, 2))
    y = rng.randint(0, 3, 20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlp = MLPClassifier((3, 3), activation="tanh", max_iter=2, random_state=0).fit(X, y)
    for model in (mlp, LogisticRegression().fit(X, y)):
        DiagonalFisherEstimator(model, random_state=0).fit(X)


def _warm_sgd_moe_kernels():
    from skmoe import SGDMoERegressor
    from skmoe.datasets import make_latent_cluster_regression

    X, y, truth = make_latent_cluster_regression(200, 6, return_truth=True, random_state=0)
    for dtype in (np.float64, np.float32):
        SGDMoERegressor(n_neurons=2, random_state=0).fit(X.astype(dtype), y, truth=truth)


def _warm_momlp_kernels():
    from skmoe import MixtureOfMLPsClassifier, MixtureOfMLPsRegressor

    rng = np.random.RandomState(0)
    for dtype in (np.float64, np.float32):
        X = rng.uniform(size=(40, 2)).astype(dtype)
        y = X.sum(axis=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for routing in ("kmeans", "grid"):
                for activation in ("prelu", "relu"):
                    MixtureOfMLPsRegressor(
                        2, routing=routing, activation=activation, hidden_layer_sizes=(3,),
                        max_iter=2, random_state=0
                    ).fit(X, y).predict(X)
            for classes in (2, 3):
                MixtureOfMLPsClassifier(
                    2, hidden_layer_sizes=(3,), max_iter=2, random_state=0
                ).fit(X, np.arange(40) % classes).predict_proba(X)
