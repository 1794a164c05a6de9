"""One convergence monitor for every iterative loop in skmoe.

Modelled on hmmlearn's ``ConvergenceMonitor``: the loop reports one scalar
objective per iteration, and the monitor owns the stopping rule, the verbose
progress lines, the recorded history and the ``ConvergenceWarning``.  GGMoE
EM and SQUAREM, MixtureOfMLPs expert training, the SGD-MoE stages, GAMP and
state evolution all use it, so they stop, print, record and warn alike.
"""

import os
import sys
import warnings
from numbers import Integral, Real
from time import perf_counter

import joblib
import numpy as np
import sklearn
from sklearn.exceptions import ConvergenceWarning

_PACKAGE_DIRS = tuple(
    os.path.dirname(module.__file__) + os.sep for module in (sklearn, joblib)
) + (os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep,)


def user_stacklevel():
    """``stacklevel`` that attributes a warning to the first caller outside skmoe.

    Frames of skmoe, scikit-learn (``_fit_context``, ``Parallel``) and joblib
    are skipped, so the warning points at the user's ``fit`` call whatever
    the depth of the loop that emits it.
    """
    frame = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIRS):
        frame = frame.f_back
        level += 1
    return level


#: Keys of every ``history_`` dict, in this order, before any extra columns.
HISTORY_KEYS = ("iteration", "objective", "change", "elapsed")

_RULES = ("change", "no_improvement")


class ConvergenceMonitor:
    """Stopping rule, progress lines, history and warning of one iterative loop.

    Parameters
    ----------
    tol : float or None
        Tolerance of the stopping rule.  None runs the whole budget
        (``max_iter`` iterations) and the loop then counts as converged when
        it ends.
    max_iter : int
        Iteration budget.  With ``tol`` set it is an upper bound, with
        ``tol=None`` the exact number of iterations.
    rule : {"change", "no_improvement"}, default="change"
        ``"change"``: converged once ``|change| < tol`` for
        ``n_iter_no_change`` consecutive reports, where ``change`` is the
        objective's difference with the previous report unless the loop
        passes its own (e.g. a parameter distance).  ``"no_improvement"``
        (scikit-learn's MLP rule, for a loss to minimise): converged once the
        objective has not improved on the best value by ``tol`` for more than
        ``n_iter_no_change`` consecutive reports.
    n_iter_no_change : int, default=1
        Patience of the stopping rule.
    verbose : int, default=0
        0 is silent; otherwise one line every ``verbose_interval``
        iterations, and one line when the loop ends.
    verbose_interval : int, default=None
        Iterations between two progress lines.  None (estimators without a
        ``verbose_interval`` parameter) gives skmoe's one rule: every 10th
        iteration for ``verbose=1``, every iteration for ``verbose >= 2``.
    label : str, default="fit"
        Names the loop in progress lines and in the warning, e.g.
        ``"GaussianGatedMoERegressor EM (init 1/3)"``.
    objective_name : str, default="objective"
        Name of the reported quantity in progress lines.
    hint : str, default=""
        Appended to the warning: what the user can change.

    Attributes
    ----------
    n_iter : int
        Reports so far.
    converged : bool
        Whether the stopping rule fired (or, with ``tol=None``, whether the
        budget is used up).

    Examples
    --------
    >>> from skmoe.utils._monitor import ConvergenceMonitor
    >>> monitor = ConvergenceMonitor(tol=1e-3, max_iter=100)
    >>> for value in (1.0, 1.5, 1.6, 1.6005):
    ...     if monitor.report(value):
    ...         break
    >>> monitor.converged, monitor.n_iter
    (True, 4)
    >>> monitor.history["change"]
    array([  nan, 5.e-01, 1.e-01, 5.e-04])
    """

    def __init__(
        self,
        *,
        tol,
        max_iter,
        rule="change",
        n_iter_no_change=1,
        verbose=0,
        verbose_interval=None,
        label="fit",
        objective_name="objective",
        hint="",
    ):
        if tol is not None and (not isinstance(tol, Real) or not tol >= 0):
            raise ValueError(f"tol must be a non-negative real or None, got {tol!r}.")
        if not isinstance(max_iter, Integral) or max_iter < 0:
            raise ValueError(f"max_iter must be an integer >= 0, got {max_iter!r}.")
        if rule not in _RULES:
            raise ValueError(f"rule must be one of {_RULES}, got {rule!r}.")
        self.tol = tol
        self.max_iter = int(max_iter)
        self.rule = rule
        self.n_iter_no_change = int(n_iter_no_change)
        self.verbose = verbose
        if verbose_interval is None:
            verbose_interval = 10 if verbose == 1 else 1
        self.verbose_interval = int(verbose_interval)
        self.label = label
        self.objective_name = objective_name
        self.hint = hint
        self._start = perf_counter()
        self._rows = []
        self._extra = {}
        self._best = np.inf
        self._streak = 0
        self.n_iter = 0
        self.converged = False

    # ------------------------------------------------------------ reporting

    def report(self, objective, change=None, **extra):
        """Record one iteration; return whether the loop should stop.

        Parameters
        ----------
        objective : float
            The iteration's objective (log-likelihood, loss, overlap, ...).
        change : float, default=None
            The loop's own measure of progress; by default the difference of
            ``objective`` with the previous report (NaN for the first).
        **extra : float
            Further columns for the history (the same keys at every report).

        Returns
        -------
        stop : bool
            True once the stopping rule fired or the budget is used up.
        """
        objective = float(objective)
        if change is None:
            change = objective - self._rows[-1][1] if self._rows else np.nan
        change = float(change)
        self.n_iter += 1
        elapsed = perf_counter() - self._start
        self._rows.append((self.n_iter, objective, change, elapsed))
        for key, value in extra.items():
            self._extra.setdefault(key, []).append(value)
        self.converged = self._rule_fired(objective, change)
        at_budget = self.n_iter >= self.max_iter
        if self.tol is None and at_budget:
            self.converged = True
        if self.verbose and (
            self.n_iter % self.verbose_interval == 0 or self.converged or at_budget
        ):
            print(self._progress_line(objective, change, elapsed))
        return self.converged or at_budget

    def _rule_fired(self, objective, change):
        if self.tol is None:
            return False
        if self.rule == "change":
            self._streak = self._streak + 1 if abs(change) < self.tol else 0
            return self._streak >= self.n_iter_no_change
        # "no_improvement": scikit-learn's MLP rule on a loss.
        self._streak = self._streak + 1 if objective > self._best - self.tol else 0
        self._best = min(self._best, objective)
        return self._streak > self.n_iter_no_change

    def _progress_line(self, objective, change, elapsed):
        eta = elapsed / self.n_iter * (self.max_iter - self.n_iter)
        # The ETA is exact for a fixed budget and an upper bound otherwise.
        eta_text = f"ETA {eta:.1f}s" if self.tol is None else f"ETA <= {eta:.1f}s"
        return (
            f"[{self.label}] iter {self.n_iter:>5d}/{self.max_iter}  "
            f"{self.objective_name} {objective: .6e}  change {change: .3e}  "
            f"elapsed {elapsed:.2f}s  {eta_text}"
        )

    # --------------------------------------------------------------- ending

    def finish(self, warn=True):
        """End the loop: print the closing line and warn if it did not converge.

        Parameters
        ----------
        warn : bool, default=True
            Emit the ``ConvergenceWarning`` if the loop did not converge.  Pass
            False for one of several restarts, and warn for the kept one with
            :meth:`warn_if_not_converged`.

        Returns
        -------
        converged : bool
        """
        if self.verbose:
            if self.tol is None:
                state = "finished" if self.converged else "stopped"
            else:
                state = "converged" if self.converged else "did not converge"
            print(
                f"[{self.label}] {state} after {self.n_iter} iterations "
                f"in {perf_counter() - self._start:.2f}s"
            )
        if warn:
            self.warn_if_not_converged()
        return self.converged

    def warn_if_not_converged(self, *, label=None, hint=None):
        """Emit skmoe's one ``ConvergenceWarning`` text, unless converged or ``max_iter == 0``.

        Parameters
        ----------
        label, hint : str, default=None
            Override the monitor's ``label`` and ``hint`` for this warning,
            e.g. to summarise several loops (experts, restarts) in one.
        """
        if self.converged or self.max_iter == 0:
            return
        label = self.label if label is None else label
        hint = self.hint if hint is None else hint
        changes = [row[2] for row in self._rows if np.isfinite(row[2])]
        last = changes[-1] if changes else np.nan
        hint = f" {hint}" if hint else ""
        tol = "None" if self.tol is None else f"{self.tol:g}"
        warnings.warn(
            f"{label} did not converge: the stopping rule (tol={tol}) did "
            f"not fire within max_iter={self.max_iter} iterations (last change "
            f"{last:.3g}). Increase max_iter or tol.{hint}",
            ConvergenceWarning,
            stacklevel=user_stacklevel(),
        )

    @property
    def history(self):
        """The recorded iterations as a dict of equal-length arrays.

        Keys ``"iteration"`` (int), ``"objective"``, ``"change"`` and
        ``"elapsed"`` (seconds since the monitor was created), then any
        extra columns passed to :meth:`report`, stacked along axis 0.
        """
        columns = list(zip(*self._rows)) if self._rows else [()] * len(HISTORY_KEYS)
        history = {
            key: np.asarray(column, dtype=np.int64 if key == "iteration" else np.float64)
            for key, column in zip(HISTORY_KEYS, columns)
        }
        for key, values in self._extra.items():
            history[key] = np.asarray(values)
        return history


def concatenate_histories(monitors, **labels):
    """One ``history_`` from several loops run one after the other.

    Parameters
    ----------
    monitors : sequence of ConvergenceMonitor
        The loops, in order (stages, experts, ...), with the same extra
        columns.
    **labels : sequence
        Further columns with one value per monitor, repeated over that
        monitor's rows (e.g. ``expert=[0, 2, 3]``).

    Returns
    -------
    history : dict of ndarray
        Equal-length arrays: the monitors' rows, one loop after the other.
        With no monitor, the keys of :data:`HISTORY_KEYS` and ``labels``
        with empty arrays.
    """
    histories = [monitor.history for monitor in monitors]
    if not histories:
        empty = ConvergenceMonitor(tol=None, max_iter=0).history
        return {**empty, **{name: np.empty(0, dtype=np.int64) for name in labels}}
    history = {key: np.concatenate([h[key] for h in histories]) for key in histories[0]}
    for name, values in labels.items():
        lengths = [len(h["iteration"]) for h in histories]
        history[name] = np.repeat(np.asarray(values), lengths)
    return history
