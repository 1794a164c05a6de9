"""scikit-learn's common estimator checks for every skmoe estimator."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skmoe import GaussianGatedMoERegressor

ESTIMATORS = [GaussianGatedMoERegressor(random_state=0)]


def expected_failed_checks(estimator):
    """Checks known to fail, with the reason; none at present."""
    return {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
