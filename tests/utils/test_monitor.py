"""ConvergenceMonitor: stopping rules, history, verbose lines and the warning."""

import re
import warnings

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.exceptions import ConvergenceWarning

from skmoe.utils._monitor import HISTORY_KEYS, ConvergenceMonitor


def _run(monitor, values, **extra):
    for i, value in enumerate(values):
        if monitor.report(value, **{k: v[i] for k, v in extra.items()}):
            break
    return monitor


def test_change_rule_stops_at_first_small_change():
    # changes: nan, 1, 0.1, 0.01, 0.001 -> stops at the 5th report with tol 0.005
    values = [0.0, 1.0, 1.1, 1.11, 1.111, 1.1111]
    monitor = _run(ConvergenceMonitor(tol=5e-3, max_iter=100), values)
    assert monitor.converged and monitor.n_iter == 5
    assert_array_equal(monitor.history["objective"], values[:5])
    np.testing.assert_allclose(monitor.history["change"][1:], np.diff(values[:5]))
    assert np.isnan(monitor.history["change"][0])


def test_change_rule_uses_the_loops_own_change_and_patience():
    monitor = ConvergenceMonitor(tol=0.1, max_iter=100, n_iter_no_change=2)
    # objective constant (its difference would stop at once); the loop's own
    # change decides, and two consecutive small ones are needed.
    stops = [monitor.report(1.0, change=c) for c in (0.5, 0.05, 0.5, 0.05, 0.05)]
    assert stops == [False, False, False, False, True]
    assert monitor.converged


def test_no_improvement_rule_matches_sklearn_mlp():
    # sklearn's MLP: count epochs with loss > best - tol, stop when count > patience.
    losses = [5.0, 4.0, 3.95, 3.94, 3.96, 3.939, 3.0]
    tol, patience = 0.1, 2
    expected_stop, best, count = None, np.inf, 0
    for i, loss in enumerate(losses, 1):
        count = count + 1 if loss > best - tol else 0
        best = min(best, loss)
        if count > patience:
            expected_stop = i
            break
    monitor = _run(
        ConvergenceMonitor(tol=tol, max_iter=100, rule="no_improvement", n_iter_no_change=patience),
        losses,
    )
    assert monitor.converged and monitor.n_iter == expected_stop == 5


def test_fixed_budget_runs_every_iteration_and_counts_as_converged():
    monitor = ConvergenceMonitor(tol=None, max_iter=4)
    stops = [monitor.report(v) for v in (1.0, 1.0, 1.0, 1.0)]
    assert stops == [False, False, False, True]
    assert monitor.converged
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        monitor.finish()


def test_budget_exhausted_warns_once_with_the_one_text():
    monitor = _run(ConvergenceMonitor(tol=1e-9, max_iter=3, label="Thing EM", hint="Try X."),
                   [1.0, 2.0, 3.0, 4.0])
    assert monitor.n_iter == 3 and not monitor.converged
    with pytest.warns(ConvergenceWarning) as record:
        monitor.finish()
    assert len(record) == 1
    message = str(record[0].message)
    assert message.startswith("Thing EM did not converge")
    assert "max_iter=3" in message and "tol=1e-09" in message and message.endswith("Try X.")


def test_no_warning_when_max_iter_is_zero_or_not_requested():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ConvergenceMonitor(tol=1e-3, max_iter=0).finish()
        _run(ConvergenceMonitor(tol=0, max_iter=2), [1.0, 2.0]).finish(warn=False)


def test_history_is_a_dict_of_equal_length_arrays_with_extras():
    monitor = _run(ConvergenceMonitor(tol=None, max_iter=3), [1.0, 2.0, 3.0],
                   overlap=[np.eye(2) * i for i in range(3)])
    history = monitor.history
    assert list(history)[: len(HISTORY_KEYS)] == list(HISTORY_KEYS)
    assert {len(v) for v in history.values()} == {3}
    assert_array_equal(history["iteration"], [1, 2, 3])
    assert history["iteration"].dtype == np.int64
    assert history["overlap"].shape == (3, 2, 2)
    assert np.all(np.diff(history["elapsed"]) >= 0)
    empty = ConvergenceMonitor(tol=1.0, max_iter=3).history
    assert {len(v) for v in empty.values()} == {0}


LINE = re.compile(
    r"^\[(?P<label>[^\]]+)\] iter +(?P<it>\d+)/(?P<budget>\d+)  \S+ +\S+  change +\S+  "
    r"elapsed \d+\.\d\ds  ETA (<= )?\d+\.\ds$"
)


def test_verbose_lines_share_one_format(capsys):
    monitor = ConvergenceMonitor(tol=1e-12, max_iter=6, verbose=1, verbose_interval=2,
                                 label="L", objective_name="loss")
    _run(monitor, [6.0, 5.0, 4.0, 3.0, 2.0, 1.0])
    monitor.finish(warn=False)
    lines = capsys.readouterr().out.splitlines()
    # iterations 2, 4, 6 (the last is also the budget), then the closing line
    assert [int(LINE.match(line)["it"]) for line in lines[:-1]] == [2, 4, 6]
    assert all("ETA <= " in line for line in lines[:-1])
    assert lines[-1].startswith("[L] did not converge after 6 iterations")


def test_verbose_prints_the_converged_iteration_and_exact_eta_for_fixed_budget(capsys):
    _run(ConvergenceMonitor(tol=0.5, max_iter=10, verbose=1, verbose_interval=100),
         [1.0, 1.1])
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and LINE.match(out[0])["it"] == "2"
    monitor = _run(ConvergenceMonitor(tol=None, max_iter=2, verbose=2), [1.0, 1.0])
    monitor.finish()
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and all("ETA <=" not in line for line in out[:2])
    assert out[2].startswith("[fit] finished after 2 iterations")


@pytest.mark.parametrize("verbose, printed", [(1, [10, 20, 25]), (2, list(range(1, 26)))])
def test_default_interval_is_ten_for_verbose_1_and_one_above(capsys, verbose, printed):
    _run(ConvergenceMonitor(tol=None, max_iter=25, verbose=verbose), [1.0] * 25)
    lines = capsys.readouterr().out.splitlines()
    assert [int(LINE.match(line)["it"]) for line in lines] == printed


def test_warning_points_at_the_callers_file_and_quotes_the_last_finite_change():
    monitor = ConvergenceMonitor(tol=1e-9, max_iter=3)
    monitor.report(1.0)
    monitor.report(2.0)
    monitor.report(5.0, change=np.nan)  # e.g. an extrapolated SQUAREM point
    with pytest.warns(ConvergenceWarning, match=r"last change 1\)") as record:
        monitor.warn_if_not_converged()
    assert record[0].filename == __file__


def test_warning_label_and_hint_can_be_overridden_once():
    monitor = _run(ConvergenceMonitor(tol=0, max_iter=1, label="a", hint="b"), [1.0])
    with pytest.warns(ConvergenceWarning, match=r"^c did not converge.* d$"):
        monitor.warn_if_not_converged(label="c", hint="d")
    assert (monitor.label, monitor.hint) == ("a", "b")
    with pytest.warns(ConvergenceWarning, match=r"^a did not converge.* b$"):
        monitor.warn_if_not_converged()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"tol": -1.0, "max_iter": 1}, "tol"),
        ({"tol": 1.0, "max_iter": -1}, "max_iter"),
        ({"tol": 1.0, "max_iter": 1, "rule": "nope"}, "rule"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ConvergenceMonitor(**kwargs)
