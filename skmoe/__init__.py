"""skmoe: scikit-learn estimators for mixtures of experts.

The public estimators are importable from the top-level package; dataset
generators live in :mod:`skmoe.datasets`.
"""

from ._fisher import DiagonalFisherEstimator
from ._gaussian_gated import GaussianGatedMoERegressor
from ._mixture_of_mlps import MixtureOfMLPsClassifier, MixtureOfMLPsRegressor
from ._sgd_moe import SGDMoERegressor
from .amp import SequenceMultiIndexAMP

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
