"""
=========================================================
Parameter-estimation rates in Gaussian-gated MoE (EM run)
=========================================================

Nguyen, Nguyen, Nguyen & Ho (AISTATS 2024) show that the maximum-likelihood
estimate of a Gaussian-gated mixture of experts converges at the parametric
rate :math:`n^{-1/2}` in the *Voronoi loss* :math:`D_1`, both when the
number of experts is right (exact fit) and when it is too large (over-fit),
while individual parameters of over-fitted cells converge more slowly.

The authors' published curves come from one EM step started near the truth
(their stopping test compared an array with itself).  Here EM is run to
convergence, accelerated by SQUAREM, on a small grid; the full study is
``python -m skmoe.reproduce ggmoe-rates``.
"""

# %%
# Run the study on a small grid
# -----------------------------
#
# Paper setting 1 (Type I, one input) with the true three experts, fitted with
# three experts (exact) and four (over-fitted), from the authors' near-truth
# initialisation.
import matplotlib.pyplot as plt

from skmoe.experiments import convergence_rates

grid = dict(sample_sizes=[300, 1000, 3000, 10000], n_repetitions=4, random_state=0)
results = {k: convergence_rates(1, k, **grid) for k in (3, 4)}
for k, res in results.items():
    slope, (low, high) = res.mean_slopes["D1"]
    print(f"K={k}: D1 slope {slope:.2f} [{low:.2f}, {high:.2f}], "
          f"fits that hit max_iter: {res.n_hit_max_iter}")

# %%
# Left: the Voronoi loss decays like :math:`n^{-1/2}` in both cases (the
# dashed line has slope -1/2).  Right: per-parameter errors in the
# over-fitted cell (the cell with two fitted atoms) decay more slowly than
# :math:`n^{-1/2}`; this is what the exponents :math:`\bar r` in the loss
# compensate for.
fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), layout="constrained")
for k, res in results.items():
    n = res.sample_sizes
    axes[0].loglog(n, res.values["D1"].mean(axis=1), "o-", label=f"K={k}")
ref = results[3].values["D1"].mean(axis=1)[0] * (n / n[0]) ** -0.5
axes[0].loglog(n, ref, "k--", lw=1, label="slope -1/2")
axes[0].set_xlabel("n")
axes[0].set_ylabel("mean Voronoi loss $D_1$")
axes[0].legend()

res = results[4]
for key in ("means_atoms", "intercept_atoms", "coef_atoms", "covariances_atoms"):
    slope = res.mean_slopes[key][0]
    axes[1].loglog(res.sample_sizes, res.values[key].mean(axis=1), "o-",
                   label=f"{key.replace('_atoms', '')} (slope {slope:.2f})")
axes[1].set_xlabel("n")
axes[1].set_ylabel("weighted error, over-fitted cell")
axes[1].legend(fontsize="small")
plt.show()
