"""Reproduce published studies end to end: ``python -m skmoe.reproduce``.

Available studies
-----------------
ggmoe-rates
    Convergence rates of Gaussian-gated MoE parameter estimates (Nguyen,
    Nguyen, Nguyen & Ho, AISTATS 2024) with EM run to convergence, for the
    four paper settings and K = 3 (exact), 4 and 5 (over-fitted).  Writes
    ``ggmoe_rates.png`` (log-log loss curves with fitted slopes),
    ``ggmoe_rates_slopes.csv`` (every slope with its 95% interval, the number
    of fits that hit max_iter, and the run time) and prints the table.
    ``--quick`` uses n in {300, 1000, 3000, 10000} with 10 repetitions;
    the default grid uses 8 sizes from 300 to 10^5 with 20 repetitions (about
    4 minutes with ``--n-jobs 2`` on 2 cores);
    ``--sample-sizes N1 N2 ... [--n-repetitions R]`` runs any other grid.
"""

import argparse
import csv
import os
import sys
from time import perf_counter

import numpy as np

from .experiments import convergence_rates
from .experiments._convergence_rates import _COMPONENT_KEYS

QUICK_GRID = {"sample_sizes": [300, 1000, 3000, 10000], "n_repetitions": 10}
FULL_GRID = {
    "sample_sizes": np.unique(np.geomspace(300, 100_000, 8).astype(int)).tolist(),
    "n_repetitions": 20,
}
_REPORTED = ("D1", "D2", *_COMPONENT_KEYS)


def _require_matplotlib():
    """``matplotlib``, or an ``ImportError`` naming the extra that provides it.

    Called before any work, so that a missing plotting dependency fails at once
    instead of after the whole study has run.
    """
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError(
            "The ggmoe-rates study writes a plot and needs matplotlib, which is not "
            "installed: pip install 'skmoe[plot]'."
        ) from exc
    return matplotlib


def _plot(results, path):
    matplotlib = _require_matplotlib()
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = sorted({r.model for r in results})
    ks = sorted({r.n_components for r in results})
    fig, axes = plt.subplots(
        len(models), len(ks), figsize=(3.6 * len(ks), 2.9 * len(models)),
        squeeze=False, sharex=True, layout="constrained",
    )
    for r in results:
        ax = axes[models.index(r.model), ks.index(r.n_components)]
        n = r.sample_sizes
        loss = r.values["D1"]
        mean, sd = loss.mean(axis=1), loss.std(axis=1)
        ax.errorbar(n, mean, yerr=2 * sd / np.sqrt(loss.shape[1]), fmt="o", ms=4,
                    capsize=2, label="mean D1 ± 2 s.e.")
        slope, (low, high) = r.mean_slopes["D1"]
        intercept = np.mean(np.log(mean) - slope * np.log(n))
        ax.plot(n, np.exp(intercept) * n**slope, "-",
                label=f"slope {slope:.2f} [{low:.2f}, {high:.2f}]")
        ax.set_xscale("log")
        ax.set_yscale("log")
        kind = "Type I" if r.model in (1, 3) else "Type II"
        ax.set_title(f"model {r.model} ({kind}), K={r.n_components}", fontsize=9)
        ax.legend(fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("n")
    for ax in axes[:, 0]:
        ax.set_ylabel("Voronoi loss D1")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def ggmoe_rates(output_dir, quick=False, models=(1, 2, 3, 4), n_components=(3, 4, 5),
                n_jobs=None, random_state=0, grid=None):
    """Run the ggmoe-rates study and write its plot and slope table.

    Parameters
    ----------
    output_dir : str
        Folder for ``ggmoe_rates.png`` and ``ggmoe_rates_slopes.csv``.
    quick : bool, default=False
        Reduced grid (about 2-5 minutes on 2 cores).
    models : sequence of int, default=(1, 2, 3, 4)
    n_components : sequence of int, default=(3, 4, 5)
    n_jobs : int, default=None
    random_state : int, default=0
    grid : dict, default=None
        ``sample_sizes`` and ``n_repetitions``, overriding ``quick``.

    Returns
    -------
    results : list of ConvergenceRateResult

    Raises
    ------
    ImportError
        If matplotlib (the ``plot`` extra) is missing; checked before any fit.
    """
    _require_matplotlib()
    if grid is None:
        grid = QUICK_GRID if quick else FULL_GRID
    os.makedirs(output_dir, exist_ok=True)
    start = perf_counter()
    results = []
    for model in models:
        for k in n_components:
            results.append(
                convergence_rates(model, k, n_jobs=n_jobs, random_state=random_state,
                                  verbose=1, **grid)
            )
    elapsed = perf_counter() - start
    table_path = os.path.join(output_dir, "ggmoe_rates_slopes.csv")
    with open(table_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["model", "n_components", "quantity", "slope", "ci_low", "ci_high",
                         "median_slope", "n_hit_max_iter", "n_fits"])
        for r in results:
            for key in _REPORTED:
                if key in r.mean_slopes:
                    slope, (low, high) = r.mean_slopes[key]
                    median = r.median_slopes.get(key, (float("nan"),))[0]
                    writer.writerow([r.model, r.n_components, key, f"{slope:.4f}",
                                     f"{low:.4f}", f"{high:.4f}", f"{median:.4f}",
                                     r.n_hit_max_iter, r.values["D1"].size])
    plot_path = os.path.join(output_dir, "ggmoe_rates.png")
    _plot(results, plot_path)

    print()
    print(f"{'model':>5} {'K':>2}  {'D1 slope':>8}  {'95% interval':<17} {'median':>6} "
          f"{'hit max_iter':>12}  slowest parameter (median slope)")
    for r in results:
        slope, (low, high) = r.mean_slopes["D1"]
        params = {k: v[0] for k, v in r.median_slopes.items()
                  if k not in ("D1", "D2", "weights")}
        slowest = max(params, key=params.get)
        median = r.median_slopes["D1"][0]
        print(f"{r.model:>5} {r.n_components:>2}  {slope:8.3f}  [{low:6.3f}, {high:6.3f}] "
              f"{median:6.3f}  "
              f"{r.n_hit_max_iter:>5}/{r.values['D1'].size:<6}  "
              f"{slowest} ({params[slowest]:.3f})")
    print(f"\nwrote {plot_path} and {table_path}; total time {elapsed:.0f} s")
    return results


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m skmoe.reproduce",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("study", choices=["ggmoe-rates"])
    parser.add_argument("--quick", action="store_true", help="reduced grid")
    parser.add_argument("--output-dir", default="skmoe_reproduce")
    parser.add_argument("--n-jobs", type=int, default=None,
                        help="joblib jobs over repetitions (default: 1)")
    parser.add_argument("--models", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--n-components", type=int, nargs="+", default=[3, 4, 5])
    parser.add_argument("--sample-sizes", type=int, nargs="+", default=None,
                        help="custom grid of sample sizes (overrides --quick)")
    parser.add_argument("--n-repetitions", type=int, default=None,
                        help="repetitions per sample size for --sample-sizes")
    args = parser.parse_args(argv)
    try:
        _require_matplotlib()
    except ImportError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    grid = None
    if args.sample_sizes is not None:
        default = QUICK_GRID if args.quick else FULL_GRID
        grid = {"sample_sizes": args.sample_sizes,
                "n_repetitions": args.n_repetitions or default["n_repetitions"]}
    elif args.n_repetitions is not None:
        parser.error("--n-repetitions needs --sample-sizes")
    ggmoe_rates(args.output_dir, quick=args.quick, models=args.models,
                n_components=args.n_components, n_jobs=args.n_jobs, grid=grid)
    return 0


if __name__ == "__main__":
    sys.exit(main())
