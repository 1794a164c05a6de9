"""Reproduce published studies end to end: ``python -m skmoe.reproduce``.

Available studies
-----------------
ggmoe-rates
    Per-parameter convergence rates of Gaussian-gated MoE estimates (Nguyen,
    Nguyen, Nguyen & Ho, AISTATS 2024) with SQUAREM-accelerated EM run to
    convergence, from the authors' near-truth start and from k-means
    restarts.  Writes to ``--output-dir``:

    - ``ggmoe_rates_fits.csv``: one row per fit (grid coordinates, Voronoi
      losses, per-parameter errors, EM passes, whether max_iter was hit);
    - ``ggmoe_rates_slopes.csv``: every log-log slope of the median error
      with its 95% bootstrap interval over repetitions, the predicted
      exponent, the number of fits and of fits that hit max_iter;
    - ``ggmoe_rates_table.txt``: the measured against the predicted
      exponents, one line per setting, K, start and parameter group;
    - ``ggmoe_rates_table.rst``: the same slopes as reStructuredText tables,
      one per K (the user guide includes the full grid's);
    - ``ggmoe_rates_loss.png``: the loss curves;
      ``ggmoe_rates_parameters_<start>.png``: per parameter group, the atom
      and merged-moment errors of the over-fitted cells and the errors of
      the singleton cells (K = 4).

    ``--quick`` runs settings 1 and 2, K = 3 and 4, n in {1000, 3000, 10000}
    with 4 repetitions (a few minutes on 2 cores).  The full grid runs all
    four settings, K = 3 and 4, 7 sizes from 10^3 to 10^6, 20 repetitions,
    both starts (hours on 2 cores: see the user guide); ``--n-repetitions R``
    shortens it, and ``--resume`` continues a run that was stopped.
    ``--starts``, ``--tol-total``, ``--max-iter`` and ``--n-init`` override
    the fit settings of every block, e.g. for a study of converged
    over-fitted fits:
    ``--n-components 4 --starts kmeans --tol-total 1e-9 --max-iter 20000``.
"""

import argparse
import csv
import os
import sys

import numpy as np

from .experiments import RateStudyResult, rate_study
from .experiments._rate_study import STARTS

#: Sizes of the full grid, log-spaced from 10^3 to 10^6.
FULL_SIZES = tuple(int(n) for n in np.round(np.geomspace(1e3, 1e6, 7)))

#: Blocks of the grids (run one after the other; the seeds depend only on
#: the grid coordinates, so a block's fits do not depend on the others).
QUICK_GRID = (
    {"models": (1, 2), "n_components": (3, 4), "sample_sizes": (1000, 3000, 10000),
     "n_repetitions": 4, "max_iter": 1000},
)
#: One block, so that a run stopped early (``rate_study`` goes repetition by
#: repetition) has balanced results over the whole grid.
FULL_GRID = (
    {"models": (1, 2, 3, 4), "n_components": (3, 4), "sample_sizes": FULL_SIZES},
)
_FULL_REPETITIONS = 20
_GROUPS = ("means", "covariances", "coef", "intercept", "noise_covariances")
_SYMBOLS = {"weights": "pi", "means": "mu", "covariances": "Sigma", "coef": "a",
            "intercept": "b", "noise_covariances": "nu"}


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


def _median_and_quartiles(values):
    """Median and interquartile half-ranges over repetitions (NaN-aware)."""
    q1, med, q3 = np.nanquantile(values, [0.25, 0.5, 0.75], axis=1)
    return med, np.vstack([med - q1, q3 - med])


def _plot_losses(result, slopes, path, plt):
    """``D1`` against ``n`` for every setting and K, both starts."""
    models = sorted({m for m, _, _ in result.cells})
    ks = sorted({k for _, k, _ in result.cells})
    fig, axes = plt.subplots(
        len(ks), len(models), figsize=(3.2 * len(models), 2.8 * len(ks)),
        squeeze=False, sharex=True, layout="constrained",
    )
    for model, k, start in result.cells:
        ax = axes[ks.index(k), models.index(model)]
        n, values = result.values(model, k, start, "D1")
        med, err = _median_and_quartiles(values)
        slope = slopes[model, k, start, "D1"]
        ax.errorbar(n, med, yerr=err, fmt="o-" if start == "near_truth" else "s--",
                    ms=3, capsize=2,
                    label=f"{start}: {slope['slope']:.2f} "
                          f"[{slope['ci_low']:.2f}, {slope['ci_high']:.2f}]")
        ax.set_xscale("log")
        ax.set_yscale("log")
        kind = "II" if model in (2, 4) else "I"
        ax.set_title(f"setting {model} (Type {kind}), K={k}", fontsize=9)
        ax.legend(fontsize=6, title="median D1 slope", title_fontsize=6)
    for ax in axes[-1]:
        ax.set_xlabel("n")
    for ax in axes[:, 0]:
        ax.set_ylabel("Voronoi loss D1")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_parameters(result, slopes, path, plt, start, n_components=4):
    """Atom, merged and singleton-cell errors of one start, per setting and group."""
    cells = [c for c in result.cells if c[1] == n_components and c[2] == start]
    if not cells:
        return False
    models = sorted({m for m, _, _ in cells})
    fig, axes = plt.subplots(
        len(models), len(_GROUPS), figsize=(2.6 * len(_GROUPS), 2.3 * len(models)),
        squeeze=False, sharex=True, layout="constrained",
    )
    for model, k, _ in cells:
        for col, group in enumerate(_GROUPS):
            ax = axes[models.index(model), col]
            for kind, fmt in (("atoms", "o-"), ("merged", "s-"), ("exact", "^:")):
                key = f"{group}_{kind}"
                n, values = result.values(model, k, start, key)
                if np.all(np.isnan(values)):
                    continue
                med, err = _median_and_quartiles(values)
                slope = slopes.get((model, k, start, key))
                label = kind
                if slope is not None:
                    label += f" {slope['slope']:.2f} (theory {slope['predicted']:.2f})"
                ax.errorbar(n, med, yerr=err, fmt=fmt, ms=3, capsize=1.5, label=label)
            ax.set_xscale("log")
            ax.set_yscale("log")
            kind = "II" if model in (2, 4) else "I"
            ax.set_title(f"setting {model} (Type {kind}): {_SYMBOLS[group]}", fontsize=8)
            ax.legend(fontsize=5.5)
    for ax in axes[-1]:
        ax.set_xlabel("n")
    fig.suptitle(f"K = {n_components}, {start} start: median error over repetitions "
                 "(bars: quartiles); atoms and merged moment of the over-fitted "
                 "cell, singleton cells (exact)", fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _slope_rows(result, n_boot=1000):
    """Median-error slopes with bootstrap intervals, keyed by grid cell."""
    return {
        (row["model"], row["n_components"], row["start"], row["quantity"]): row
        for row in result.slopes("median", n_boot=n_boot)
    }


def _write_csv(path, rows):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _table(slopes, elapsed):
    """Plain-text table of measured against predicted exponents."""
    lines = [
        f"{'set':>3} {'type':>4} {'K':>2} {'start':<10} {'quantity':<25} "
        f"{'slope':>6}  {'95% bootstrap CI':<17} {'theory':>6} {'fits':>5} {'max_iter':>8}"
    ]
    for (model, k, start, key), row in slopes.items():
        lines.append(
            f"{model:>3} {row['type']:>4} {k:>2} {start:<10} {key:<25} "
            f"{row['slope']:6.3f}  [{row['ci_low']:6.3f}, {row['ci_high']:6.3f}] "
            f"{row['predicted']:6.3f} {row['n_fits']:>5} {row['n_hit_max_iter']:>8}"
        )
    lines.append(f"\nrun time {elapsed:.0f} s")
    return "\n".join(lines)


_RST_SYMBOLS = {"means": r":math:`\mu`", "covariances": r":math:`\Sigma`",
                "coef": ":math:`a`", "intercept": ":math:`b`",
                "noise_covariances": r":math:`\nu`"}


def _rst_slope(row):
    """``slope [low, high]`` of a slopes row, or ``-`` where there is none."""
    if row is None:
        return "-"
    return f"{row['slope']:.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}]"


def _rst_tables(slopes):
    """reStructuredText list-tables of the median-error slopes, one per K.

    Rows are the settings and starts, then :math:`D_1` and the parameter
    groups; columns the singleton cells, the over-fitted atoms with their
    predicted exponent, and the merged moments.  Written by
    :func:`write_outputs` so that the user guide quotes the run verbatim.
    """
    cells = sorted({(m, k, start) for m, k, start, _ in slopes},
                   key=lambda c: (c[1], c[0], STARTS.index(c[2])))
    out = []
    for k in sorted({c[1] for c in cells}):
        out += [f".. list-table:: K = {k}: median-error slopes, 95% bootstrap intervals",
                "   :header-rows: 1", "",
                "   * - setting, start", "     - quantity",
                "     - singleton cells (theory -0.50)", "     - over-fitted atoms",
                "     - theory (atoms)", "     - merged moments (conj. -0.50)"]
        for model, _, start in (c for c in cells if c[1] == k):
            d1 = slopes[model, k, start, "D1"]
            out += [f"   * - {model} (Type {d1['type']}), {start}", "     - :math:`D_1`",
                    f"     - {_rst_slope(d1)}", "     -", "     - -0.50",
                    f"     - ({d1['n_fits']} fits, {d1['n_hit_max_iter']} at max_iter)"]
            for group in _GROUPS:
                atoms = slopes.get((model, k, start, f"{group}_atoms"))
                out += ["   * -", f"     - {_RST_SYMBOLS[group]}",
                        f"     - {_rst_slope(slopes.get((model, k, start, f'{group}_exact')))}",
                        f"     - {_rst_slope(atoms)}",
                        "     -" if atoms is None else f"     - {atoms['predicted']:.3f}",
                        f"     - {_rst_slope(slopes.get((model, k, start, f'{group}_merged')))}"]
        out.append("")
    return "\n".join(out)


def write_outputs(result, output_dir, n_boot=1000):
    """Write the CSV files, the table and the figures of a rate study.

    Parameters
    ----------
    result : RateStudyResult
    output_dir : str or path-like
    n_boot : int, default=1000
        Bootstrap resamples per slope.

    Returns
    -------
    paths : dict of str to str
        ``"fits"``, ``"slopes"``, ``"table"``, ``"rst_table"``,
        ``"loss_figure"`` and, for
        each start with over-fitted (K = 4) fits, ``"parameter_figure_<start>"``.
    """
    matplotlib = _require_matplotlib()
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(output_dir, exist_ok=True)
    paths = {name: os.path.join(output_dir, f"ggmoe_rates_{name}")
             for name in ("fits.csv", "slopes.csv", "table.txt", "table.rst", "loss.png")}
    _write_csv(paths["fits.csv"], result.rows)
    slopes = _slope_rows(result, n_boot=n_boot)
    _write_csv(paths["slopes.csv"], list(slopes.values()))
    with open(paths["table.txt"], "w") as f:
        f.write(_table(slopes, result.elapsed) + "\n")
    with open(paths["table.rst"], "w") as f:
        f.write(_rst_tables(slopes))
    _plot_losses(result, slopes, paths["loss.png"], plt)
    out = {"fits": paths["fits.csv"], "slopes": paths["slopes.csv"],
           "table": paths["table.txt"], "rst_table": paths["table.rst"],
           "loss_figure": paths["loss.png"]}
    for start in STARTS:
        path = os.path.join(output_dir, f"ggmoe_rates_parameters_{start}.png")
        if _plot_parameters(result, slopes, path, plt, start):
            out[f"parameter_figure_{start}"] = path
    return out


def read_fits(path):
    """Read a fits CSV back into a :class:`~skmoe.experiments.RateStudyResult`.

    Parameters
    ----------
    path : str or path-like
        A ``ggmoe_rates_fits.csv`` (or a ``csv_path`` of
        :func:`~skmoe.experiments.rate_study`).

    Returns
    -------
    result : RateStudyResult
        With ``elapsed`` the sum of the fit times.
    """
    return RateStudyResult.from_csv(path)


def ggmoe_rates(output_dir, quick=False, n_repetitions=None, n_jobs=None,
                random_state=0, grid=None, resume=False, verbose=1):
    """Run the ggmoe-rates study and write its tables and figures.

    Parameters
    ----------
    output_dir : str or path-like
        Folder for the outputs (see :func:`write_outputs`).
    quick : bool, default=False
        Reduced grid (a few minutes on 2 cores).
    n_repetitions : int, default=None
        Repetitions per size, overriding the grid's (20 for the full grid).
    n_jobs : int, default=None
        joblib jobs over fits.
    random_state : int, default=0
    grid : sequence of dict, default=None
        Blocks of :func:`~skmoe.experiments.rate_study` arguments, overriding
        ``quick``.
    resume : bool, default=False
        Rows are appended to ``ggmoe_rates_fits.csv`` in ``output_dir`` as
        fits complete; with ``resume=True`` the fits already there are not
        run again (see :func:`~skmoe.experiments.rate_study`), otherwise the
        file is started afresh.  The table's run time is that of this call.
    verbose : int, default=1

    Returns
    -------
    result : RateStudyResult
    paths : dict of str to str

    Raises
    ------
    ImportError
        If matplotlib (the ``plot`` extra) is missing; checked before any fit.
    """
    _require_matplotlib()
    if grid is None:
        grid = QUICK_GRID if quick else FULL_GRID
    os.makedirs(output_dir, exist_ok=True)
    csv_path = os.path.join(output_dir, "ggmoe_rates_fits.csv")
    if not resume and os.path.exists(csv_path):
        os.remove(csv_path)
    rows, elapsed = [], 0.0
    for block in grid:
        block = {"n_repetitions": _FULL_REPETITIONS, **block}
        if n_repetitions is not None:
            block["n_repetitions"] = n_repetitions
        part = rate_study(**block, n_jobs=n_jobs, random_state=random_state,
                          csv_path=csv_path, resume=resume, verbose=verbose)
        rows.extend(part.rows)
        elapsed += part.elapsed
    result = RateStudyResult(rows=rows, elapsed=elapsed)
    paths = write_outputs(result, output_dir)
    if verbose:
        with open(paths["table"]) as f:
            print(f.read())
        print("wrote " + ", ".join(paths.values()))
    return result, paths


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
                        help="joblib jobs over fits (default: 1)")
    parser.add_argument("--n-repetitions", type=int, default=None,
                        help="repetitions per sample size (default: 4 quick, 20 full)")
    parser.add_argument("--models", type=int, nargs="+", default=None,
                        help="paper settings to run (default: those of the grid)")
    parser.add_argument("--n-components", type=int, nargs="+", default=None,
                        help="numbers of experts to run (default: those of the grid)")
    parser.add_argument("--sample-sizes", type=int, nargs="+", default=None,
                        help="custom sample sizes: one block over the chosen settings "
                             "and numbers of experts")
    parser.add_argument("--resume", action="store_true",
                        help="keep the fits already in OUTPUT_DIR/ggmoe_rates_fits.csv "
                             "and run only the missing ones")
    parser.add_argument("--from-csv", default=None,
                        help="redo the tables and figures from a fits CSV, no fitting")
    parser.add_argument("--starts", nargs="+", choices=STARTS, default=None,
                        help="starts to run (default: both)")
    parser.add_argument("--tol-total", type=float, default=None,
                        help="EM tolerance on the total log-likelihood (default: 1e-5)")
    parser.add_argument("--max-iter", type=int, default=None,
                        help="EM passes per fit (default: 3000, 1000 quick)")
    parser.add_argument("--n-init", type=int, default=None,
                        help="k-means restarts (default: 3)")
    args = parser.parse_args(argv)
    try:
        _require_matplotlib()
    except ImportError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    if args.from_csv is not None:
        paths = write_outputs(read_fits(args.from_csv), args.output_dir)
        print("wrote " + ", ".join(paths.values()))
        return 0
    for name in ("n_repetitions", "max_iter", "n_init"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.tol_total is not None and not args.tol_total > 0:
        parser.error("--tol-total must be positive")
    grid = _select_grid(QUICK_GRID if args.quick else FULL_GRID, args.models,
                        args.n_components, args.sample_sizes)
    if not grid:
        parser.error("--models and --n-components select no block of the grid")
    overrides = {name: getattr(args, name) for name in ("tol_total", "max_iter", "n_init")
                 if getattr(args, name) is not None}
    if args.starts is not None:
        overrides["starts"] = tuple(dict.fromkeys(args.starts))
    grid = tuple({**block, **overrides} for block in grid)
    ggmoe_rates(args.output_dir, n_repetitions=args.n_repetitions, n_jobs=args.n_jobs,
                grid=grid, resume=args.resume)
    return 0


def _select_grid(grid, models=None, n_components=None, sample_sizes=None):
    """The blocks of ``grid`` restricted to ``models`` and ``n_components``.

    With ``sample_sizes``, a single block over the chosen settings (default
    all four) and numbers of experts (default 3 and 4) instead.
    """
    if sample_sizes is not None:
        return ({"models": tuple(models or (1, 2, 3, 4)),
                 "n_components": tuple(n_components or (3, 4)),
                 "sample_sizes": tuple(sample_sizes),
                 **({"n_repetitions": grid[0]["n_repetitions"]}
                    if "n_repetitions" in grid[0] else {})},)
    selected = []
    for block in grid:
        block = dict(block)
        for key, chosen in (("models", models), ("n_components", n_components)):
            if chosen is not None:
                block[key] = tuple(v for v in block[key] if v in chosen)
        if block["models"] and block["n_components"]:
            selected.append(block)
    return tuple(selected)


if __name__ == "__main__":
    sys.exit(main())
