"""
=====================================================================
A mixture of experts detects latent clusters where one network cannot
=====================================================================

Data from two clusters, :math:`x \\mid c \\sim \\mathcal N(\\rho v_c, I_d)`,
with targets :math:`y = h_3(w_c^\\top x) + s_c\\, h_3(w_g^\\top x)` and
:math:`s = (+1, -1)`: each cluster has its own local direction :math:`w_c`
and shares a global direction :math:`w_g`, whose signal cancels when the
clusters are pooled.  Kawata et al. (ICML 2025) show that a single two-layer
network trained by SGD never finds :math:`w_g`, while a mixture of experts
with a router, trained in stages, does.

We train :class:`~skmoe.SGDMoERegressor` with two experts and, under the
same code and on the same 200,000 samples, the single network
(``n_experts=1``), and plot the overlaps recorded during training
(``fit(X, y, truth=truth)`` adds them to ``history_``).  See the
:ref:`user guide <sgd_moe>` for the stages.
"""

# %%
# Data and the two models
# -----------------------
import matplotlib.pyplot as plt
import numpy as np

from skmoe import SGDMoERegressor
from skmoe.datasets import make_latent_cluster_regression

d = 32
X, y, truth = make_latent_cluster_regression(200_000, d, return_truth=True, random_state=0)
moe = SGDMoERegressor(n_experts=2, random_state=0).fit(X, y, truth=truth)
single = SGDMoERegressor(n_experts=1, random_state=0).fit(X, y, truth=truth)

for name, model in (("mixture of experts", moe), ("single network", single)):
    scores = model.alignment(truth)
    print(
        f"{name:>18}: max|w.w_c| = {np.round(scores['cluster'], 3)}, "
        f"max|w.w_g| per expert = {np.round(scores['global'], 3)}, "
        f"router accuracy = {scores['router_accuracy']:.3f}"
    )
# Random level: the single network's 8 orthogonal neurons include 6 that
# carry no signal (2 hold the cluster directions); the largest of their
# overlaps with w_g is about sqrt(2 ln(2 * 8) / (d - 2)).
random_level = np.sqrt(2 * np.log(16) / (d - 2))
print(f"random level of max|w.w_g| = {random_level:.3f}")

# %%
# Overlaps during training
# ------------------------
# Stage 1 (pooled neurons) recovers both cluster directions; stage 2 trains
# the router; in stage 3 each expert sees one cluster, where the global task
# no longer cancels, and a neuron of each expert turns to :math:`w_g`.  The
# single network, trained by the same stages, stays at the level of its
# random initialisation along :math:`w_g`.
fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharex=True)
for model, style, label in ((moe, "-", "MoE"), (single, "--", "single network")):
    hist = model.history_
    samples = hist["samples"]
    for c in range(2):
        axes[0].plot(samples, hist["cluster_alignment"][:, c], style,
                     label=f"{label}, cluster {c}")
    axes[1].plot(samples, hist["global_alignment"].min(axis=1), style, label=label)
    axes[2].plot(samples, hist["router_accuracy"], style, label=label)
axes[1].axhline(random_level, color="grey", lw=0.8, label="random level")
for ax, title in zip(axes, (r"$\max_j |w_j \cdot w_c|$",
                            r"$\min_m \max_j |w_{m,j} \cdot w_g|$",
                            "router accuracy")):
    ax.set_title(title)
    ax.set_xlabel("samples seen")
    for boundary in moe.history_["samples"][np.flatnonzero(np.diff(moe.history_["stage"]))]:
        ax.axvline(boundary, color="k", lw=0.5, ls=":")
    ax.legend(fontsize=7)
fig.tight_layout()

# %%
# Test error
# ----------
# On fresh data from the same clusters, the mixture fits both the local and
# the global task; the single network can only fit the local ones.
rng = np.random.RandomState(1)
labels = rng.randint(2, size=20_000)
X_test = truth["separation"] * truth["cluster_means"][labels] + rng.standard_normal((20_000, d))


def h3(z):
    return (z**3 - 3 * z) / np.sqrt(6)


y_test = (h3(np.einsum("nd,nd->n", X_test, truth["cluster_directions"][labels]))
          + truth["global_signs"][labels] * h3(X_test @ truth["global_direction"]))
for name, model in (("mixture of experts", moe), ("single network", single)):
    mse = np.mean((model.predict(X_test) - y_test) ** 2)
    print(f"{name:>18}: test MSE = {mse:.3f} (Var y = {y_test.var():.3f})")
plt.show()
