"""Sequence multi-index models: channels, GAMP and state evolution.

A sequence multi-index model has inputs ``X`` of shape (n, L, d) (``L``
tokens in dimension ``d``), weights ``W`` of shape (d, p) shared by the
tokens, and targets ``y ~ P_out(. | X W / sqrt(d))``.  Deep tied low-rank
attention is one (:class:`DeepAttentionChannel`).  This subpackage provides
the channels, the Bayes-optimal GAMP estimator
(:class:`SequenceMultiIndexAMP`), its state evolution (single ratios and
warm-started curves) and the weak-recovery thresholds from linear
stability, including the staircase.
"""

from ._channels import (
    AbsChannel,
    DeepAttentionChannel,
    GenericChannel,
    LinearChannel,
    OuterProductChannel,
    SquareChannel,
    SumSquareChannel,
)
from ._gamp import SequenceMultiIndexAMP
from ._state_evolution import (
    staircase_thresholds,
    state_evolution,
    state_evolution_curve,
    test_errors,
    weak_recovery_threshold,
)

__all__ = [
    "AbsChannel",
    "DeepAttentionChannel",
    "GenericChannel",
    "LinearChannel",
    "OuterProductChannel",
    "SequenceMultiIndexAMP",
    "SquareChannel",
    "SumSquareChannel",
    "staircase_thresholds",
    "state_evolution",
    "state_evolution_curve",
    "test_errors",
    "weak_recovery_threshold",
]
