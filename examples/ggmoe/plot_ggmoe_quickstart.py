"""
=================================================
Quick start: a Gaussian-gated mixture of experts
=================================================

This example fits :class:`~skmoe.GaussianGatedMoERegressor` to one-dimensional
data drawn from a known three-expert model, compares the fitted parameters with
the truth, and shows the three things the estimator gives beyond a point
prediction:

* the predictive mean with a ±2 standard-deviation band,
  from ``predict(X, return_std=True)``;
* the gates :math:`g_k(x)`, from ``predict_gates``, which say which expert is
  in charge where;
* the Bayesian information criterion (``bic``) for choosing the number of
  experts.

See the :ref:`user guide <ggmoe>` for the model and the EM algorithm.
"""

# %%
# Data from a known model
# -----------------------
#
# :func:`~skmoe.datasets.make_gaussian_gated_moe` samples ``(x, y)`` from the
# joint model :math:`\sum_k \pi_k \mathcal N(x \mid \mu_k, \Sigma_k)
# \mathcal N(y \mid a_k x + b_k, \nu_k)`.  We choose three experts with
# different slopes, centred at ``x = -3``, ``0`` and ``3``, so that the
# regression function is a smoothed zigzag.  Shapes follow the package
# convention: ``coef`` is ``(n_components, n_outputs, n_features)``.
import numpy as np

from skmoe.datasets import make_gaussian_gated_moe

true_params = {
    "weights": [0.3, 0.4, 0.3],
    "means": [[-3.0], [0.0], [3.0]],
    "covariances": [[[1.0]], [[0.8]], [[1.0]]],
    "coef": [[[1.5]], [[-1.0]], [[0.8]]],
    "intercept": [[4.0], [0.0], [-2.0]],
    "noise_covariances": [[[0.3**2]], [[0.2**2]], [[0.4**2]]],
}
X, y, labels = make_gaussian_gated_moe(
    n_samples=1000, params=true_params, return_labels=True, random_state=0
)
print(X.shape, y.shape)

# %%
# Fit the mixture of experts
# --------------------------
#
# The estimator is fitted by closed-form EM on the joint likelihood of
# ``(x, y)``; the default initialisation runs k-means on ``[X, y]``.
from skmoe import GaussianGatedMoERegressor

moe = GaussianGatedMoERegressor(n_components=3, random_state=0).fit(X, y)
print(f"converged: {moe.converged_} after {moe.n_iter_} EM iterations")
print(f"mean joint log-likelihood per sample: {moe.lower_bound_:.3f}")
print(f"R^2 of the predictive mean: {moe.score(X, y):.3f}")

# %%
# The components of a mixture are only defined up to a permutation, so we
# sort the fitted components by their gate mean before comparing them with
# the true ones.
order = np.argsort(moe.means_[:, 0])
fitted = {
    "weight": moe.weights_[order],
    "gate mean": moe.means_[order, 0],
    "gate variance": moe.covariances_[order, 0, 0],
    "slope": moe.coef_[order, 0, 0],
    "intercept": moe.intercept_[order, 0],
    "noise std": np.sqrt(moe.noise_covariances_[order, 0, 0]),
}
truth = {
    "weight": np.asarray(true_params["weights"]),
    "gate mean": np.ravel(true_params["means"]),
    "gate variance": np.ravel(true_params["covariances"]),
    "slope": np.ravel(true_params["coef"]),
    "intercept": np.ravel(true_params["intercept"]),
    "noise std": np.sqrt(np.ravel(true_params["noise_covariances"])),
}
print(f"{'':>14} | {'fitted':^20} | {'true':^20}")
for name in fitted:
    fit_str = " ".join(f"{v:6.2f}" for v in fitted[name])
    true_str = " ".join(f"{v:6.2f}" for v in truth[name])
    print(f"{name:>14} | {fit_str} | {true_str}")

# %%
# Predictions, uncertainty and gates
# ----------------------------------
#
# ``predict(X, return_std=True)`` returns the mean and the standard deviation
# of the predictive mixture :math:`p(y \mid x)`.  The band widens where the
# gates hesitate between experts that disagree: there :math:`p(y \mid x)` is
# bimodal and its mean falls between the two branches.  The lower panel shows
# the gates, which sum to one for every ``x``; the dashed lines are the
# experts :math:`a_k x + b_k`, drawn where their gate exceeds 2%.
import matplotlib.pyplot as plt

x_grid = np.linspace(X.min() - 0.5, X.max() + 0.5, 400)[:, np.newaxis]
y_mean, y_std = moe.predict(x_grid, return_std=True)
gates = moe.predict_gates(x_grid)
colors = ["tab:blue", "tab:orange", "tab:green"]

fig, (ax_fit, ax_gate) = plt.subplots(
    2, 1, figsize=(7, 6.5), sharex=True, height_ratios=[2, 1], layout="constrained"
)
ax_fit.scatter(X[:, 0], y, s=6, color="0.55", alpha=0.5, label="data")
ax_fit.fill_between(
    x_grid[:, 0],
    y_mean - 2 * y_std,
    y_mean + 2 * y_std,
    color="tab:red",
    alpha=0.15,
    label="mean ± 2 std",
)
ax_fit.plot(x_grid[:, 0], y_mean, color="tab:red", lw=2, label="predictive mean")
for rank, k in enumerate(order):
    # Draw each expert's line where its gate is not negligible.
    mask = gates[:, k] > 0.02
    expert = x_grid[:, 0] * moe.coef_[k, 0, 0] + moe.intercept_[k, 0]
    ax_fit.plot(
        x_grid[mask, 0],
        expert[mask],
        "--",
        color=colors[rank],
        lw=1.5,
        label=f"expert {rank}",
    )
    ax_gate.plot(x_grid[:, 0], gates[:, k], color=colors[rank], label=f"gate {rank}")
ax_fit.set_ylabel("y")
ax_fit.set_title("Fitted Gaussian-gated mixture of experts")
ax_fit.legend(loc="lower right", fontsize="small", ncols=2)
ax_gate.set_xlabel("x")
ax_gate.set_ylabel("gate probability")
ax_gate.set_ylim(-0.05, 1.05)
ax_gate.legend(loc="center right", fontsize="small")
plt.show()

# %%
# Choosing the number of experts with BIC
# ---------------------------------------
#
# In practice the number of experts is unknown.  We fit models with one to six
# experts and compute the Bayesian information criterion of the joint model,
# ``-2 log L + n_parameters log n`` (lower is better).  Models with too many
# experts converge slowly, because EM has to drive redundant components
# together; a looser ``tol`` keeps this example fast, and we silence the
# resulting convergence warnings.
import warnings

from sklearn.exceptions import ConvergenceWarning

n_components_range = range(1, 7)
bic = []
with warnings.catch_warnings():
    warnings.simplefilter("ignore", category=ConvergenceWarning)
    for n_components in n_components_range:
        model = GaussianGatedMoERegressor(
            n_components=n_components, n_init=2, tol=1e-4, max_iter=200, random_state=0
        ).fit(X, y)
        bic.append(model.bic(X, y))
best = n_components_range[int(np.argmin(bic))]
print("BIC:", np.round(bic, 1))
print(f"number of experts selected by BIC: {best}")

fig, ax = plt.subplots(figsize=(5, 3.5), layout="constrained")
ax.plot(list(n_components_range), bic, "o-", color="tab:purple")
ax.axvline(best, color="0.5", ls=":", label=f"minimum: {best} experts")
ax.set_xlabel("n_components")
ax.set_ylabel("BIC (lower is better)")
ax.set_title("Model selection")
ax.legend()
plt.show()
