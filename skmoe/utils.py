"""Parameter accounting for MLP experts and same-budget baselines.

Mixtures of MLPs are compared with single networks *at the same number of
parameters* (Kratsios et al., TMLR 2025); these helpers give the counts and
the width of the matching scikit-learn :class:`~sklearn.neural_network.MLPRegressor`.
"""

from ._mixture_of_mlps import expert_n_parameters, mlp_width_for_n_parameters

__all__ = ["expert_n_parameters", "mlp_width_for_n_parameters"]
