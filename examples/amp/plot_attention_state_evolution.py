"""
==========================================================
Learning a two-layer attention network: state evolution
==========================================================

A two-layer tied low-rank attention network with ``L = 2`` tokens and skip
strength 1 is a sequence multi-index model with ``p = 2`` directions (one
query/key per layer).  We compute, as functions of the sample ratio
``alpha = n / d``,

* the per-layer overlaps ``q_11`` (first layer) and ``q_22`` (layer nearest
  the output) of Bayes-optimal GAMP from state evolution, and its plug-in
  test error;
* GAMP runs at finite ``d`` on data from the same model (points).

The layer nearest the output is learned first: its weak-recovery threshold
(from linear stability) is below that of the first layer, which is learned
only once the second one is.  The Monte Carlo sizes and ``d`` are kept small
so that the example runs in a couple of minutes; the user guide lists the
values measured with larger ones.
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

channel = DeepAttentionChannel(n_layers=2, skip=1.0, n_tokens=2, n_grid=32)

# %%
# Weak-recovery thresholds at ``q = 0``, per layer
# ------------------------------------------------
thresholds = {
    k: weak_recovery_threshold(channel, directions=[k], n_samples=4000)
    for k in (0, 1)
}
for k, res in thresholds.items():
    print(f"layer {k + 1}: alpha_c(q=0) = {res.threshold:.3f} +- {res.threshold_std:.3f}")
print(f"Jensen lower bound 1/(L(L+1)) = {1 / 6:.3f}")

# %%
# State evolution against alpha
# -----------------------------
alphas = np.array([0.1, 0.2, 0.3, 0.5, 0.8, 1.2])
se = [
    state_evolution(channel, a, n_samples=1000, max_iter=60, tol=1e-3, n_inner=8)
    for a in alphas
]
q11 = np.array([r.q[0, 0] for r in se])
q22 = np.array([r.q[1, 1] for r in se])
err = np.array([r.test_error for r in se])

# %%
# GAMP at finite d
# ----------------
d = 200
gamp_alphas = [0.3, 0.8, 1.2]
gamp_overlaps = []
for a in gamp_alphas:
    X, y, W = make_sequence_multi_index(int(a * d), d, channel, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        amp = SequenceMultiIndexAMP(channel, max_iter=40, random_state=1).fit(X, y)
    M, _ = amp.overlaps(W)
    # Overlap relative to the realised |w*|^2 / d (1 + O(d^-1/2)), which is
    # what state evolution's q describes.
    gamp_overlaps.append(np.abs(np.diag(M)) / np.diag(W.T @ W / d))
gamp_overlaps = np.array(gamp_overlaps)

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
ax1.plot(alphas, q22, "o-", label="SE $q_{22}$ (layer nearest output)")
ax1.plot(alphas, q11, "s-", label="SE $q_{11}$ (first layer)")
ax1.plot(gamp_alphas, gamp_overlaps[:, 1], "kx", ms=9, label=f"GAMP $|M_{{22}}| d / |w^*_2|^2$, d={d}")
ax1.plot(gamp_alphas, gamp_overlaps[:, 0], "k+", ms=9, label=f"GAMP $|M_{{11}}| d / |w^*_1|^2$, d={d}")
ax1.axvline(thresholds[1].threshold, color="C0", ls=":", label=r"$\alpha_c$ layer 2")
ax1.set_xlabel(r"$\alpha = n/d$")
ax1.set_ylabel("overlap")
ax1.legend(fontsize=8)
ax2.plot(alphas, err, "o-")
ax2.set_xlabel(r"$\alpha = n/d$")
ax2.set_ylabel("plug-in test error")
ax2.set_title("zero-data error 0.388")
fig.tight_layout()
plt.show()
