"""Shared helpers: parameter accounting for MLP experts and same-budget baselines.

Mixtures of MLPs are compared with single networks *at the same number of
parameters* (Kratsios et al., TMLR 2025); these helpers give the counts and
the width of the matching scikit-learn :class:`~sklearn.neural_network.MLPRegressor`.

The private modules of this subpackage are skmoe's ground floor (they import
no estimator): the convergence monitor, validation and atomic-fit helpers,
array-API helpers, the deterministic block-parallel runner and shared numba
math.
"""

from ._parameter_counting import expert_n_parameters, mlp_width_for_n_parameters

__all__ = ["expert_n_parameters", "mlp_width_for_n_parameters"]
