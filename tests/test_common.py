"""scikit-learn's common estimator checks for every skmoe estimator."""

import numpy as np
from sklearn.base import clone
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LinearRegression
from sklearn.utils.estimator_checks import parametrize_with_checks

from skmoe import DiagonalFisherEstimator, GaussianGatedMoERegressor
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
]


def expected_failed_checks(estimator):
    """Checks known to fail, with the reason; none at present."""
    return {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
