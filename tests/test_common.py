"""scikit-learn's common estimator checks for every skmoe estimator.

:class:`skmoe.SequenceMultiIndexAMP` is deliberately not listed in
``ESTIMATORS``: its ``X`` is 3-D, (n_samples, n_tokens, n_features), and its
``y`` has the shape fixed by the channel (e.g. (n_samples, 2, 2) attention
matrices, with values constrained to the channel's support).  Every one of
scikit-learn's estimator checks builds 2-D ``X`` and 1-D (or 2-D) ``y`` with
arbitrary real values, so each check would fail at input validation by
design (``X`` not 3-D, or ``y`` outside the channel) rather than exercise
anything; listing them all in ``expected_failed_checks`` would test nothing.
The API properties those checks cover (clone/get_params, NotFittedError
before fit, determinism under a fixed ``random_state``, no mutation in
``predict``, ``n_features_in_`` checks, clear ``ValueError`` on bad input)
are tested directly in ``tests/test_amp.py``.
"""

import numpy as np
from sklearn.base import clone
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LinearRegression
from sklearn.utils.estimator_checks import parametrize_with_checks

from skmoe import (
    DiagonalFisherEstimator,
    GaussianGatedMoERegressor,
    MixtureOfMLPsClassifier,
    MixtureOfMLPsRegressor,
    SGDMoERegressor,
)
from skmoe._fisher import _extract_network


class _FisherOnOwnModel(DiagonalFisherEstimator):
    """DiagonalFisherEstimator for the common checks.

    The real estimator analyses a model fitted beforehand, with a fixed input
    width, whereas the common checks call ``fit`` on inputs of many widths.
    This test-only subclass first fits a LinearRegression on ``(X, X @ w)``, then runs the unchanged
    ``DiagonalFisherEstimator.fit`` logic on it through the ``_network`` hook.
    The wrapped ``estimator`` is a FrozenEstimator, so that it survives the
    clones made by the checks (as users should do too).
    """

    def _network(self, X, y, net):
        target = X @ np.linspace(-1.0, 1.0, X.shape[1])
        return _extract_network(clone(LinearRegression()).fit(X, target))


ESTIMATORS = [
    GaussianGatedMoERegressor(random_state=0),
    _FisherOnOwnModel(
        FrozenEstimator(LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0])), random_state=0
    ),
    SGDMoERegressor(n_neurons=3, random_state=0),
    # Small experts and few epochs keep the checks fast.
    MixtureOfMLPsRegressor(
        n_experts=3,
        hidden_layer_sizes=(8,),
        learning_rate_init=1e-2,
        max_iter=50,
        min_samples_cell=5,
        random_state=0,
    ),
    MixtureOfMLPsClassifier(
        n_experts=3,
        hidden_layer_sizes=(8,),
        learning_rate_init=1e-2,
        max_iter=50,
        min_samples_cell=5,
        random_state=0,
    ),
]


def expected_failed_checks(estimator):
    """Checks known to fail, with the reason; none at present."""
    return {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
