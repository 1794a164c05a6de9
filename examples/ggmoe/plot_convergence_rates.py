"""
================================================================
Slow and fast parameters of an over-fitted Gaussian-gated MoE
================================================================

Nguyen, Nguyen, Nguyen & Ho (AISTATS 2024) show that when a Gaussian-gated
mixture of experts is fitted with one expert too many, the two fitted experts
that share a true expert (an *over-fitted Voronoi cell*) converge slowly:
their gate means and intercepts like :math:`n^{-1/8}`, their slopes,
covariances and noise variances like :math:`n^{-1/4}`.  Yet the *merged*
cell, the single Gaussian with the weight, mean and covariance of the two
atoms together, is estimated at the parametric rate :math:`n^{-1/2}`: the
atoms' errors cancel to first order in it.

This example fits paper setting 1 with four experts (one too many), EM run
to convergence with SQUAREM from the authors' near-truth start, on a small
grid, and compares the two errors.  The full study, with all four settings,
both starts and bootstrap intervals against the theory, is
``python -m skmoe.reproduce ggmoe-rates``.
"""

# %%
# Fit the grid
# ------------
#
# Every fit records, through :func:`skmoe.metrics.voronoi_parameter_errors`,
# the weighted error of the atoms of the over-fitted cell (``*_atoms``) and
# the error of their moment-matched merge (``*_merged``).
import matplotlib.pyplot as plt
import numpy as np

from skmoe.experiments import bootstrap_slope, rate_study

result = rate_study(
    models=(1,), n_components=(4,), sample_sizes=(1000, 3000, 10000, 30000),
    n_repetitions=12, starts=("near_truth",), max_iter=1000, random_state=0,
)
hit = sum(not r["converged"] for r in result.rows)
print(f"{len(result.rows)} fits in {result.elapsed:.0f} s, {hit} stopped at max_iter")

# %%
# Atoms against merged moments
# ----------------------------
#
# Points are medians over the repetitions, bars their 95% bootstrap
# intervals; the legend gives the log-log slope of the median with its 95%
# bootstrap interval over repetitions.  With twelve repetitions the intervals
# are wide: the figure shows a clear gap in rates, not precise exponents.
rng = np.random.default_rng(0)


def median_interval(values, n_boot=1000):
    """Median per size and its percentile bootstrap interval."""
    med = np.median(values, axis=1)
    idx = rng.integers(0, values.shape[1], (n_boot, values.shape[1]))
    boot = np.median(values[:, idx], axis=2)
    low, high = np.quantile(boot, [0.025, 0.975], axis=1)
    return med, np.vstack([med - low, high - med])


fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), layout="constrained")
for ax, group, symbol, theory in (
    (axes[0], "means", r"gate mean $\mu$", -1 / 8),
    (axes[1], "intercept", r"intercept $b$", -1 / 8),
):
    first = {}
    for kind, fmt in (("atoms", "o-"), ("merged", "s-")):
        n, values = result.values(1, 4, "near_truth", f"{group}_{kind}")
        med, err = median_interval(values)
        first[kind] = med[0]
        slope, (low, high) = bootstrap_slope(n, values, statistic="median")
        ax.errorbar(n, med, yerr=err, fmt=fmt, capsize=3,
                    label=f"{kind}: slope {slope:.2f} [{low:.2f}, {high:.2f}]")
    # Reference lines through the first point of each curve.
    for kind, exponent, style in (("atoms", theory, "k:"), ("merged", -0.5, "k--")):
        ref = first[kind] * (n / n[0]) ** exponent
        ax.plot(n, ref, style, lw=1, label=f"$n^{{{exponent:g}}}$")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("n")
    ax.set_title(f"{symbol}, over-fitted cell", fontsize=10)
    ax.legend(fontsize=7)
axes[0].set_ylabel("error (median over repetitions)")
plt.show()

# %%
# The atoms' errors decay far more slowly than the merged moments', which
# follow :math:`n^{-1/2}` (dashed).  On a grid this small the atoms' slope is
# not a precise estimate of :math:`-1/8` (dotted); in some repetitions the
# two atoms stay close together (the cell nearly collapses), and their
# errors then equal the merged one.  A few fits stop at ``max_iter=1000``
# (printed above): over-fitted EM is sublinear, and the cap keeps the example
# short; the reproduction command measures every exponent on a larger grid
# with a higher cap.
