"""
=============================================================
The three-layer attention staircase: state evolution and GAMP
=============================================================

A three-layer tied low-rank attention network with ``L = 2`` tokens and
skip strength 1 is a sequence multi-index model with ``p = 3`` directions,
one query/key per layer:

.. math::

    y = \\mathrm{softmax}(u u^\\top),\\qquad
    u = A(A(z_1) z_2)\\, A(z_1)\\, z_3,\\qquad
    A(z) = \\mathrm{softmax}(z z^\\top) + I.

Bayes-optimal learning proceeds as a staircase.  The layer nearest the
output (``z_3``) is learned first, once ``alpha`` passes its weak-recovery
threshold at ``q = 0``.  The two earlier layers stay at zero overlap until
the learned ``q_33(alpha)`` makes them unstable, and are then learned
together.  We compute

* the threshold of the last layer at ``q = 0`` (linear stability);
* the staircase threshold of layers 1 and 2: the ``alpha`` solving
  ``alpha = alpha_c(q_33^*(alpha))``, where ``alpha_c(q)`` is the threshold of
  layers 1 and 2 given the learned overlap ``q`` of layer 3 and
  ``q_33^*(alpha)`` is the state-evolution fixed point with layers 1 and 2
  held at zero (a bracketed root search on ``alpha``);
* the state-evolution overlaps against ``alpha``, and GAMP at finite ``d``
  on data from the model (points).

At finite ``d`` GAMP leaves the plateau of layers 1-2 only after a number of
iterations growing with ``log d``, so past the staircase threshold its
points lag behind state evolution within the iteration budget used here.

The three-layer posterior integrates over ``(z_1, z_2)`` in R^4 with
``n_points`` quasi-Monte Carlo points; the Monte Carlo sizes, ``n_points``
and ``d`` are kept small so that the example runs in about two minutes.
"""

# %%
import warnings

import matplotlib.pyplot as plt
import numpy as np

from skmoe.amp import (
    DeepAttentionChannel,
    SequenceMultiIndexAMP,
    state_evolution,
    weak_recovery_threshold,
)
from skmoe.datasets import make_sequence_multi_index

channel = DeepAttentionChannel(n_layers=3, skip=1.0, n_tokens=2, n_points=256)


def run_state_evolution(alpha, max_iter=30, tol=2e-3, **kwargs):
    with warnings.catch_warnings():
        # A fixed iteration budget: near a transition the iteration is slow.
        warnings.simplefilter("ignore")
        return state_evolution(channel, alpha, n_samples=800, max_iter=max_iter, tol=tol,
                               compute_test_errors=False, **kwargs)


# %%
# The last layer's threshold at ``q = 0``
# ---------------------------------------
last = weak_recovery_threshold(channel, directions=[2], n_samples=3000)
print(f"layer 3: alpha_c(q=0) = {last.threshold:.3f} +- {last.threshold_std:.3f}")
print(f"Jensen lower bound 1/(L(L+1)) = {1 / 6:.3f}")

# %%
# The staircase threshold of layers 1 and 2
# -----------------------------------------
# ``alpha_c(q_33^*(alpha))`` falls steeply with ``alpha`` (more data, a better
# learned last layer, easier earlier layers), so iterating ``alpha <-
# alpha_c`` oscillates.  Instead, bracket the root of ``log r(alpha)``, with
# ``r = alpha / alpha_c(q_33^*(alpha))``, and refine by regula falsi.


def staircase_ratio(alpha):
    learned = run_state_evolution(alpha, q_init=[0.0, 0.0, 0.5], directions=[2]).q
    early = weak_recovery_threshold(channel, directions=[0, 1], learned_overlap=learned,
                                    n_samples=2000)
    print(f"alpha = {alpha:.3f}: q_33* = {learned[2, 2]:.3f}, threshold of layers 1-2 = "
          f"{early.threshold:.3f} +- {early.threshold_std:.3f}")
    return np.log(alpha / early.threshold), early.threshold_std / early.threshold


def tightest_bracket(values):
    """The closest ``alpha`` below and above the root, with ``log r`` and its slope."""
    lo = max(a for a, (r, _) in values.items() if r < 0)
    hi = min(a for a, (r, _) in values.items() if r >= 0)
    return lo, hi, (values[hi][0] - values[lo][0]) / (hi - lo)


values = {0.6: staircase_ratio(0.6), 1.2: staircase_ratio(1.2)}
for _ in range(3):
    lo, hi, slope = tightest_bracket(values)
    guess = lo - values[lo][0] / slope
    values[guess] = staircase_ratio(guess)
lo, hi, slope = tightest_bracket(values)
staircase_alpha = lo - values[lo][0] / slope
# The Monte Carlo error of alpha_c (relative) moves the root by that much
# in log r, divided by the slope of log r.
staircase_std = max(values[lo][1], values[hi][1]) / slope
print(f"staircase threshold of layers 1-2: alpha = {staircase_alpha:.3f} "
      f"+- {staircase_std:.3f}")

# %%
# State evolution against alpha
# -----------------------------
alphas = np.array([0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0, 1.1, 1.3, 1.5])
# Just past the staircase threshold, layers 1-2 leave their plateau slowly:
# a small tol keeps the iteration going until they have.
se = [run_state_evolution(a, max_iter=150, tol=3e-4) for a in alphas]
q_diag = np.array([np.diag(r.q) for r in se])

# %%
# GAMP at finite d
# ----------------
d = 300
gamp_alphas = [0.5, 1.0, 1.5]
gamp_overlaps = []
for a in gamp_alphas:
    X, y, W = make_sequence_multi_index(int(a * d), d, channel, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        amp = SequenceMultiIndexAMP(channel, max_iter=60, random_state=1).fit(X, y)
    M, _ = amp.overlaps(W)
    # Overlap relative to the realised |w*|^2 / d, which is what state
    # evolution's q describes.
    gamp_overlaps.append(np.abs(np.diag(M)) / np.diag(W.T @ W / d))
gamp_overlaps = np.array(gamp_overlaps)

# %%
fig, ax = plt.subplots(figsize=(6.5, 4.2))
labels = ["layer 1", "layer 2", "layer 3 (nearest the output)"]
markers = ["s", "^", "o"]
for k in (2, 1, 0):
    ax.plot(alphas, q_diag[:, k], markers[k] + "-", color=f"C{k}",
            label=f"SE $q_{{{k + 1}{k + 1}}}$, " + labels[k])
    ax.plot(gamp_alphas, gamp_overlaps[:, k], "x", color=f"C{k}", ms=10, mew=2)
ax.plot([], [], "kx", ms=10, mew=2, label=f"GAMP, d={d}")
ax.axvline(last.threshold, color="C2", ls=":", label=r"$\alpha_c$ layer 3 ($q=0$)")
ax.axvline(staircase_alpha, color="C0", ls="--",
           label=r"staircase $\alpha_c$ layers 1-2")
ax.set_xlabel(r"$\alpha = n/d$")
ax.set_ylabel("overlap")
ax.set_title("Three-layer attention: the staircase")
ax.legend(fontsize=8, loc="center right")
fig.tight_layout()
plt.show()
