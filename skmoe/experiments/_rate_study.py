"""Per-parameter rate study of Gaussian-gated MoE estimates (issue 18).

The grid crosses paper settings, numbers of experts, starts, sample sizes and
repetitions; every fit is one row of scalars (losses, per-parameter errors
through Voronoi cells, EM diagnostics).  Slopes of ``log(error)`` on
``log(n)`` come with bootstrap intervals over repetitions and are set
against the exponents the theory predicts (:func:`predicted_exponent`).
"""

import csv
import io
import os
from dataclasses import dataclass, field
from numbers import Integral, Real
from time import perf_counter

import numpy as np
from joblib import delayed
from sklearn.utils._param_validation import Interval, StrOptions, validate_params

from ..metrics._voronoi import PARAMETER_GROUPS
from ..utils._validation import StrictIntInterval
from ._convergence_rates import _fit_once, _parallel

#: Starts of the study: the authors' noisy copy of the truth, and k-means
#: restarts on ``[X, y]`` that know nothing about the truth.
STARTS = ("near_truth", "kmeans")

#: The error columns of a fit, in report order.
ERROR_KEYS = (
    "D1",
    "D2",
    *(
        f"{group}_{kind}"
        for group in PARAMETER_GROUPS
        for kind in ("exact", "atoms", "merged")
        if not (group == "weights" and kind == "atoms")
    ),
)

_TYPE_II = (2, 4)
_RBAR = {2: 4, 3: 6}


def predicted_exponent(key, model, cell_size=2):
    """Exponent of ``n`` the theory predicts for an error column.

    From Nguyen, Nguyen, Nguyen & Ho (AISTATS 2024) read term by term (the
    losses are ``O(sqrt(log n / n))``, log factors ignored): singleton cells,
    the weights and the losses decay like ``n^-1/2``; in a cell of ``m``
    fitted atoms the atoms' means and intercepts like ``n^-1/(2 rbar(m))``,
    their covariances and noise variances like ``n^-1/rbar(m)``, and their
    slopes like ``n^-1/4`` (Type I) or ``n^-1/rtilde(m)`` in Type II cells
    with a zero true gate mean.  ``rbar(2) = 4, rbar(3) = 6`` are the values
    of the authors' code; ``rtilde = rbar`` there, so the two types predict
    the same slope rate for two-atom cells.  The ``"_merged"`` columns are
    predicted at ``n^-1/2``: this is a conjecture (moment matching cancels the
    atoms' first-order errors), not a statement of the paper.

    Parameters
    ----------
    key : str
        An error column of :data:`ERROR_KEYS`.
    model : {1, 2, 3, 4}
        Paper setting (2 and 4 are Type II).
    cell_size : int, default=2
        Fitted atoms in the over-fitted cell (2 or 3).

    Returns
    -------
    exponent : float
        Negative exponent (e.g. -0.125 for ``n^-1/8``).

    Raises
    ------
    ValueError
        If ``key`` is not an error column or ``cell_size`` is not 2 or 3.

    Examples
    --------
    >>> from skmoe.experiments import predicted_exponent
    >>> predicted_exponent("means_atoms", 1)
    -0.125
    """
    if key not in ERROR_KEYS:
        raise ValueError(f"key must be one of {ERROR_KEYS}, got {key!r}.")
    if cell_size not in _RBAR:
        raise ValueError(f"cell_size must be 2 or 3, got {cell_size!r}.")
    if not key.endswith("_atoms"):
        return -0.5
    rbar = _RBAR[cell_size]
    group = key[: -len("_atoms")]
    if group in ("means", "intercept"):
        return -1 / (2 * rbar)
    if group in ("covariances", "noise_covariances"):
        return -1 / rbar
    # coef: n^-1/4 in Type I; n^-1/rtilde in zero-mean Type II cells, with
    # rtilde = rbar in the authors' code.
    return -1 / rbar if model in _TYPE_II else -0.25


def _ols_slope(log_n, log_values):
    """OLS slope of ``log_values`` on ``log_n``."""
    x = log_n - log_n.mean()
    return float(x @ (log_values - log_values.mean()) / (x @ x))


@validate_params(
    {
        "sample_sizes": ["array-like"],
        "values": ["array-like"],
        "statistic": [StrOptions({"mean", "median"})],
        "n_boot": [StrictIntInterval(1, None, closed="left")],
        "confidence": [Interval(Real, 0, 1, closed="neither")],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def bootstrap_slope(
    sample_sizes, values, *, statistic="mean", n_boot=1000, confidence=0.95,
    random_state=0,
):
    """Log-log slope of a per-size statistic, with a bootstrap interval.

    The slope is the OLS slope of ``log(statistic over repetitions)`` on
    ``log(n)``.  The interval is the percentile interval of the slopes
    obtained by resampling the repetitions of every sample size with
    replacement (sizes are independent, so they are resampled separately).
    NaN entries (e.g. a fit without an over-fitted cell) are left out.

    Parameters
    ----------
    sample_sizes : array-like of shape (n_sizes,)
    values : array-like of shape (n_sizes, n_repetitions)
        Positive errors; NaN where missing.
    statistic : {"mean", "median"}, default="mean"
        Summary over repetitions; the median is robust to the occasional
        spurious optimum of an over-fitted likelihood.
    n_boot : int, default=1000
    confidence : float, default=0.95
    random_state : int, RandomState instance or None, default=0

    Returns
    -------
    slope : float
        NaN when fewer than two sizes have a positive statistic.
    interval : tuple of float
        ``(low, high)``.

    Raises
    ------
    ValueError
        If the shapes disagree or a value is not positive.

    Examples
    --------
    >>> import numpy as np
    >>> from skmoe.experiments import bootstrap_slope
    >>> n = np.array([100, 1000, 10000])
    >>> slope, (low, high) = bootstrap_slope(n, np.outer(n**-0.5, [1.0, 1.1, 0.9]))
    >>> round(slope, 2), low < -0.5 < high
    (-0.5, True)
    """
    log_n = np.log(np.asarray(sample_sizes, dtype=float))
    values = np.asarray(values, dtype=float)
    if values.ndim != 2 or values.shape[0] != log_n.shape[0]:
        raise ValueError(
            "values must have shape (n_sizes, n_repetitions) with n_sizes = "
            f"len(sample_sizes) = {log_n.shape[0]}, got {values.shape}."
        )
    if np.any(values[~np.isnan(values)] <= 0):
        raise ValueError("values must be positive (NaN marks a missing value).")
    summary = np.nanmean if statistic == "mean" else np.nanmedian
    rows = [row[~np.isnan(row)] for row in values]
    keep = np.array([len(row) > 0 for row in rows])
    if keep.sum() < 2:
        return np.nan, (np.nan, np.nan)
    rows = [row for row, k in zip(rows, keep) if k]
    log_n = log_n[keep]
    slope = _ols_slope(log_n, np.log([summary(row) for row in rows]))
    rng = np.random.default_rng(
        random_state if not isinstance(random_state, np.random.RandomState)
        else random_state.randint(2**31)
    )
    # (n_sizes, n_boot) resampled statistics, one vectorised draw per size.
    stats = np.array([
        summary(row[rng.integers(0, len(row), (n_boot, len(row)))], axis=1)
        for row in rows
    ])
    x = log_n - log_n.mean()
    log_stats = np.log(stats)
    boot = x @ (log_stats - log_stats.mean(axis=0)) / (x @ x)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(boot, [alpha, 1 - alpha])
    return slope, (float(low), float(high))


@dataclass
class RateStudyResult:
    """Rows of a :func:`rate_study`, with slopes on demand.

    Attributes
    ----------
    rows : list of dict
        One dict of scalars per fit: the grid coordinates (``"model"``,
        ``"n_components"``, ``"start"``, ``"n_samples"``,
        ``"repetition"``), the columns of :data:`ERROR_KEYS`, ``"n_iter"``,
        ``"converged"`` (False for a fit that hit ``max_iter``),
        ``"log_likelihood"`` (total), ``"fit_time"``, ``"cell_sizes"``,
        ``"n_overfit_cells"``, ``"n_empty_cells"`` and
        ``"overfit_minor_share"`` (see
        :func:`~skmoe.metrics.voronoi_parameter_errors`; NaN in rows read
        from a file written before it existed).
    elapsed : float
        Wall-clock seconds of the study.
    """

    rows: list
    elapsed: float = 0.0
    cells: list = field(init=False)

    def __post_init__(self):
        self.cells = sorted(
            {(r["model"], r["n_components"], r["start"]) for r in self.rows},
            key=lambda c: (c[0], c[1], STARTS.index(c[2]) if c[2] in STARTS else 9),
        )

    @classmethod
    def from_csv(cls, path):
        """Read back the rows a study wrote to ``csv_path``.

        A last line without its newline (a study killed while writing it) is
        left out, so that no truncated number is read as a value.

        Parameters
        ----------
        path : str or path-like
            A ``csv_path`` of :func:`rate_study` (or the ``ggmoe_rates_fits.csv``
            of ``python -m skmoe.reproduce ggmoe-rates``).

        Returns
        -------
        result : RateStudyResult
            With ``elapsed`` the sum of the fit times.
        """
        with open(path, newline="") as f:
            lines = f.read().splitlines(keepends=True)
        if lines and not lines[-1].endswith("\n"):
            lines = lines[:-1]
        rows = [_typed_row(raw) for raw in csv.DictReader(lines)]
        return cls(rows=rows, elapsed=sum(r["fit_time"] for r in rows))

    def values(self, model, n_components, start, key):
        """Sample sizes and a ``(n_sizes, n_repetitions)`` array of one column.

        Missing fits are NaN.

        Returns
        -------
        sample_sizes : ndarray of shape (n_sizes,)
        values : ndarray of shape (n_sizes, n_repetitions)
        """
        rows = [
            r for r in self.rows
            if (r["model"], r["n_components"], r["start"]) == (model, n_components, start)
        ]
        sizes = np.unique([r["n_samples"] for r in rows])
        n_rep = 1 + max(r["repetition"] for r in rows)
        out = np.full((len(sizes), n_rep), np.nan)
        for r in rows:
            out[np.searchsorted(sizes, r["n_samples"]), r["repetition"]] = float(r[key])
        return sizes, out

    def slopes(self, statistic="median", n_boot=1000, random_state=0):
        """Every slope with its bootstrap interval and the predicted exponent.

        Parameters
        ----------
        statistic : {"mean", "median"}, default="median"
        n_boot : int, default=1000
        random_state : int, default=0

        Returns
        -------
        table : list of dict
            Keys ``model``, ``type``, ``n_components``, ``start``,
            ``quantity``, ``slope``, ``ci_low``, ``ci_high``, ``predicted``,
            ``n_fits``, ``n_hit_max_iter``, ``n_sizes``.
        """
        table = []
        for model, k, start in self.cells:
            _, converged = self.values(model, k, start, "converged")
            hit = int(np.nansum(converged == 0))
            n_fits = int(np.sum(~np.isnan(converged)))
            for key in ERROR_KEYS:
                sizes, values = self.values(model, k, start, key)
                if np.all(np.isnan(values)) or np.any(values[~np.isnan(values)] <= 0):
                    continue
                slope, (low, high) = bootstrap_slope(
                    sizes, values, statistic=statistic, n_boot=n_boot,
                    random_state=random_state,
                )
                table.append({
                    "model": model, "type": "II" if model in _TYPE_II else "I",
                    "n_components": k, "start": start, "quantity": key,
                    "slope": slope, "ci_low": low, "ci_high": high,
                    "predicted": predicted_exponent(key, model),
                    "n_fits": n_fits, "n_hit_max_iter": hit, "n_sizes": len(sizes),
                })
        return table


_INTEGER_COLUMNS = ("repetition", "model", "n_components", "n_samples", "n_iter",
                    "n_overfit_cells", "n_empty_cells")


def _typed_row(raw):
    """A CSV row of a study (all strings) with the types of :func:`rate_study` rows."""
    row = dict(raw)
    for key in _INTEGER_COLUMNS:
        row[key] = int(row[key])
    row["converged"] = row["converged"] == "True"
    for key in (*ERROR_KEYS, "log_likelihood", "fit_time"):
        row[key] = float(row[key])
    # Absent from files written before the column existed.
    row["overfit_minor_share"] = float(row.get("overfit_minor_share") or "nan")
    return row


def _grid_key(row):
    """Coordinates of a fit in the grid."""
    return (row["repetition"], row["model"], row["n_components"], row["start"],
            row["n_samples"])


def _data_seed(random_state, model, n_samples, repetition):
    """Seed of one data set: shared by every K and start of a repetition."""
    return int(
        np.random.SeedSequence([random_state, model, n_samples, repetition])
        .generate_state(1)[0]
    )


def _start_seed(random_state, model, n_samples, repetition, n_components, start):
    return np.random.SeedSequence(
        [random_state, model, n_samples, repetition, n_components, STARTS.index(start)]
    )


def _integers(values, name):
    """``values`` as a list of Python ints, or a ValueError naming ``name``."""
    values = list(np.ravel(np.asarray(values, dtype=object)))
    if not all(isinstance(v, Integral) and not isinstance(v, (bool, np.bool_))
               for v in values):
        raise ValueError(f"{name} must be a sequence of integers, got {values!r}.")
    return [int(v) for v in values]


def _drop_partial_line(path):
    """Cut a last line without its newline off a file, so that appends start clean."""
    with open(path, "rb+") as f:
        text = f.read()
        if text and not text.endswith(b"\n"):
            f.truncate(text.rfind(b"\n") + 1)


def _append_rows(path, rows):
    """Append rows to a CSV file, writing the header for a new file.

    The text is formatted first and written in one call, so that a study
    killed meanwhile leaves at most one line without its newline, which
    :meth:`RateStudyResult.from_csv` drops.
    """
    new = not os.path.exists(path) or os.path.getsize(path) == 0
    fieldnames = list(rows[0])
    if not new:
        # Keep an existing file's columns (one written by an older version
        # lacks the newer ones), so that every line matches its header.
        with open(path, newline="") as f:
            fieldnames = next(csv.reader(f))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fieldnames, lineterminator="\n",
                            extrasaction="ignore")
    if new:
        writer.writeheader()
    writer.writerows(rows)
    with open(path, "a", newline="") as f:
        f.write(buffer.getvalue())


@validate_params(
    {
        "models": ["array-like"],
        "n_components": ["array-like"],
        "sample_sizes": ["array-like"],
        "n_repetitions": [StrictIntInterval(1, None, closed="left")],
        "starts": ["array-like"],
        "tol_total": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [StrictIntInterval(1, None, closed="left")],
        "n_init": [StrictIntInterval(1, None, closed="left")],
        "n_jobs": [Integral, None],
        "random_state": [StrictIntInterval(0, None, closed="left")],
        "csv_path": [str, os.PathLike, None],
        "resume": ["boolean"],
        "verbose": ["verbose"],
    },
    prefer_skip_nested_validation=True,
)
def rate_study(
    models=(1, 2, 3, 4),
    n_components=(3, 4),
    sample_sizes=(1000, 10000),
    n_repetitions=20,
    *,
    starts=STARTS,
    tol_total=1e-5,
    max_iter=3000,
    n_init=3,
    n_jobs=None,
    random_state=0,
    csv_path=None,
    resume=False,
    verbose=0,
):
    """Fit the whole grid of a rate study, one row per fit.

    For every setting, number of experts, start, sample size and repetition,
    a data set is drawn from :func:`~skmoe.datasets.ggmoe_paper_setting`, a
    :class:`~skmoe.GaussianGatedMoERegressor` is fitted by SQUAREM-accelerated
    EM until the total log-likelihood changes by less than ``tol_total`` per
    step (or ``max_iter`` is hit, which the row records), and the losses and
    per-parameter errors (:func:`~skmoe.metrics.voronoi_parameter_errors`)
    are recorded.  Fits of one repetition share their data set across
    numbers of experts and starts.

    Fits run through joblib (``n_jobs``; a Dask cluster works through
    :func:`joblib.parallel_config`), repetition by repetition over the whole
    grid, so that a study stopped early has balanced partial results; with
    ``csv_path`` every row is appended to the file as soon as it arrives.

    Parameters
    ----------
    models : sequence of {1, 2, 3, 4}, default=(1, 2, 3, 4)
    n_components : sequence of int, default=(3, 4)
        Fitted numbers of experts (3 is the exact fit).
    sample_sizes : sequence of int, default=(1000, 10000)
    n_repetitions : int, default=20
    starts : sequence of {"near_truth", "kmeans"}, default=("near_truth", "kmeans")
        ``"near_truth"``: the authors' start
        (:func:`~skmoe.experiments.near_truth_start`); ``"kmeans"``:
        ``n_init`` k-means starts on ``[X, y]``, the best kept.
    tol_total : float, default=1e-5
        EM tolerance on the change of the *total* log-likelihood.
    max_iter : int, default=3000
        EM passes per fit (SQUAREM extrapolations included).
    n_init : int, default=3
        Restarts of the k-means start.
    n_jobs : int, default=None
    random_state : int, default=0
    csv_path : str or path-like, default=None
        If given, rows are appended to this CSV file as they complete.
    resume : bool, default=False
        Continue a study stopped early: the fits whose grid coordinates are
        already in ``csv_path`` are not run again, their rows are read back
        and returned with the new ones (in grid order).  Seeds depend only
        on the coordinates, so a resumed study gives the rows of an
        uninterrupted one, provided the other arguments are those of the
        first call (the file does not record them).  Requires
        ``csv_path``; a missing file starts a new study.
    verbose : int, default=0
        If positive, one line per completed repetition.

    Returns
    -------
    result : RateStudyResult

    Raises
    ------
    ValueError
        If a setting, number of experts, sample size or start is invalid,
        or ``resume`` is set without ``csv_path``.
    """
    models = _integers(models, "models")
    n_components = _integers(n_components, "n_components")
    sizes = _integers(sample_sizes, "sample_sizes")
    starts = list(starts)
    if not models or any(m not in (1, 2, 3, 4) for m in models):
        raise ValueError(f"models must be a non-empty subset of 1-4, got {models!r}.")
    if not n_components or any(k < 3 for k in n_components):
        raise ValueError(f"n_components must be integers >= 3, got {n_components!r}.")
    if len(set(sizes)) < 2 or min(sizes) < max(n_components):
        raise ValueError(
            "sample_sizes must hold at least two distinct sizes >= max(n_components), "
            f"got {list(sample_sizes)!r}."
        )
    if not starts or any(s not in STARTS for s in starts):
        raise ValueError(f"starts must be a non-empty subset of {STARTS}, got {starts!r}.")
    fit_params = {"tol_total": tol_total, "max_iter": max_iter, "acceleration": "squarem",
                  "n_init": n_init}
    if resume and csv_path is None:
        raise ValueError("resume=True needs the csv_path of the study to continue.")
    grid = [
        (rep, model, k, start, n)
        for rep in range(n_repetitions)
        for model in models
        for k in n_components
        for start in starts
        for n in sizes
    ]
    done = {}
    if resume and os.path.exists(csv_path) and os.path.getsize(csv_path) > 0:
        _drop_partial_line(csv_path)
        done = {_grid_key(r): r for r in RateStudyResult.from_csv(csv_path).rows}
    todo = [cell for cell in grid if cell not in done]
    tasks = [
        delayed(_fit_once)(
            model, k, n, start, fit_params,
            _data_seed(random_state, model, n, rep),
            _start_seed(random_state, model, n, rep, k, start),
        )
        for rep, model, k, start, n in todo
    ]
    tic = perf_counter()
    per_rep = len(grid) // n_repetitions
    for (rep, *_), row in zip(todo, _parallel(n_jobs)(tasks)):
        row = {"repetition": rep, **row}
        done[_grid_key(row)] = row
        if csv_path is not None:
            _append_rows(csv_path, [row])
        block = verbose and [done[c] for c in grid if c[0] == rep and c in done]
        if block and len(block) == per_rep:
            hit = sum(not r["converged"] for r in block)
            print(f"repetition {rep + 1}/{n_repetitions} done: {per_rep} fits, "
                  f"{hit} hit max_iter, elapsed {perf_counter() - tic:.0f} s", flush=True)
    rows = [done[cell] for cell in grid]
    return RateStudyResult(rows=rows, elapsed=perf_counter() - tic)
