"""Issue 15: a MoMLP fit whose joblib worker dies must not hang.

Under ``joblib.parallel_config(backend="multiprocessing")`` a dead worker
made ``multiprocessing.Pool`` wait forever (the fit hung for > 150 s), while
loky reports ``TerminatedWorkerError``.  Each scenario runs in a subprocess
with a timeout, so that these tests themselves can never hang.
"""

import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from joblib import parallel_config
from numpy.testing import assert_array_equal
from sklearn.exceptions import ConvergenceWarning

from skmoe import MixtureOfMLPsRegressor

# Training an expert kills the process it runs in, unless it is the main
# process (threads of the main process survive).
_SCRIPT = textwrap.dedent(
    """
    import os, sys, warnings
    import numpy as np
    from joblib import parallel_config
    from skmoe import MixtureOfMLPsRegressor
    from skmoe.neural_network import _mixture_of_mlps, _mlp_training

    MAIN = os.getpid()
    real = _mlp_training.train_expert

    def dying(*args, **kwargs):
        if os.getpid() != MAIN:
            os._exit(1)
        return real(*args, **kwargs)

    _mixture_of_mlps.train_expert = dying
    rng = np.random.RandomState(0)
    X = rng.uniform(size=(200, 2))
    y = X.sum(axis=1)
    warnings.simplefilter("ignore")
    model = MixtureOfMLPsRegressor(2, hidden_layer_sizes=(4,), max_iter=3, n_jobs=2,
                                   random_state=0)
    try:
        with parallel_config(backend=sys.argv[1]):
            model.fit(X, y)
    except Exception as exc:
        print("RAISED", type(exc).__name__)
    else:
        print("FITTED", model.n_experts_)
    """
)


def _run(backend):
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join([root, env.get("PYTHONPATH", "")])
    try:
        done = subprocess.run(
            [sys.executable, "-c", _SCRIPT, backend],
            capture_output=True, text=True, timeout=120, env=env,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"backend={backend!r}: the fit hung (killed after 120 s)")
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr


def test_multiprocessing_backend_does_not_hang_when_a_worker_dies():
    # The experts run in threads instead: the monkeypatched training never
    # runs in a child process, so the fit completes.
    assert _run("multiprocessing") == "FITTED 2"


def test_loky_backend_reports_a_dead_worker():
    assert _run("loky") == "RAISED TerminatedWorkerError"


def test_multiprocessing_backend_warns_and_gives_the_same_fit():
    rng = np.random.RandomState(0)
    X = rng.uniform(size=(300, 2))
    y = np.abs(X[:, 0] - 0.5) + X[:, 1]
    params = dict(n_experts=3, hidden_layer_sizes=(4,), max_iter=5, n_jobs=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reference = MixtureOfMLPsRegressor(**params).fit(X, y)
        with parallel_config(backend="multiprocessing"):
            with pytest.warns(UserWarning, match='"multiprocessing" is not used') as record:
                model = MixtureOfMLPsRegressor(**params).fit(X, y)
    # Attributed to the caller's fit line, not to skmoe or joblib internals.
    assert [w.filename for w in record if "multiprocessing" in str(w.message)] == [__file__]
    assert_array_equal(model.expert_params_, reference.expert_params_)
