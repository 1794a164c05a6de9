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

from sklearn.utils.estimator_checks import parametrize_with_checks

from skmoe import GaussianGatedMoERegressor

ESTIMATORS = [GaussianGatedMoERegressor(random_state=0)]


def expected_failed_checks(estimator):
    """Checks known to fail, with the reason; none at present."""
    return {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
