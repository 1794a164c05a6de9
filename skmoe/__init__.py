"""skmoe: scikit-learn estimators for mixtures of experts.

The estimators live in one subpackage per family and are also importable
from the top level:

- :mod:`skmoe.mixture`: :class:`GaussianGatedMoERegressor` (closed-form EM);
- :mod:`skmoe.neural_network`: :class:`MixtureOfMLPsRegressor`,
  :class:`MixtureOfMLPsClassifier` and :class:`SGDMoERegressor`;
- :mod:`skmoe.inspection`: :class:`DiagonalFisherEstimator`;
- :mod:`skmoe.amp`: :class:`SequenceMultiIndexAMP`, channels and state evolution.

Dataset generators live in :mod:`skmoe.datasets`, losses in
:mod:`skmoe.metrics`, simulation studies in :mod:`skmoe.experiments` and
shared helpers in :mod:`skmoe.utils`.
"""

from .amp import SequenceMultiIndexAMP
from .inspection import DiagonalFisherEstimator
from .mixture import GaussianGatedMoERegressor
from .neural_network import MixtureOfMLPsClassifier, MixtureOfMLPsRegressor, SGDMoERegressor

__version__ = "0.1.0.dev0"

__all__ = [
    "DiagonalFisherEstimator",
    "GaussianGatedMoERegressor",
    "MixtureOfMLPsClassifier",
    "MixtureOfMLPsRegressor",
    "SequenceMultiIndexAMP",
    "SGDMoERegressor",
    "__version__",
]
