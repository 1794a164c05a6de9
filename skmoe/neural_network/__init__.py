"""Mixtures of neural-network experts.

:class:`MixtureOfMLPsRegressor` and :class:`MixtureOfMLPsClassifier` route
each input to one (P)ReLU MLP expert (Kratsios et al., TMLR 2025);
:class:`SGDMoERegressor` trains a router and two-layer experts by staged SGD
(Kawata et al., ICML 2025).
"""

from ._mixture_of_mlps import MixtureOfMLPsClassifier, MixtureOfMLPsRegressor
from ._sgd_moe import SGDMoERegressor

__all__ = ["MixtureOfMLPsClassifier", "MixtureOfMLPsRegressor", "SGDMoERegressor"]
