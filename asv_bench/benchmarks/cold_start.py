"""First-call (cold JIT) time of each estimator, in a fresh interpreter.

Each ``timeraw_*`` benchmark runs its code in a new Python process (asv's
convention for import and start-up costs) with ``NUMBA_CACHE_DIR`` pointed at
an empty temporary directory, so every numba kernel the call needs is compiled
from scratch: this is what a user sees on the first call after ``pip
install``.  ``track_warm_cache_*`` times the same call in a second fresh
process that reuses the compiled cache, i.e. every later session.

The problems are tiny, so the times are compilation (and import) only.
"""

import os
import subprocess
import sys
import tempfile
import textwrap

from .common import Benchmark

# One small call per estimator: the code a user runs first.
_CALLS = {
    "gaussian_gated": """
        from skmoe import GaussianGatedMoERegressor
        from skmoe.datasets import make_gaussian_gated_moe
        X, y = make_gaussian_gated_moe(500, 2, n_components=2, random_state=0)
        GaussianGatedMoERegressor(n_components=2, random_state=0).fit(X, y).predict(X)
    """,
    "mixture_of_mlps": """
        import numpy as np
        from skmoe import MixtureOfMLPsRegressor
        rng = np.random.default_rng(0)
        X = rng.normal(size=(300, 2)); y = np.sin(X[:, 0])
        MixtureOfMLPsRegressor(n_experts=2, hidden_layer_sizes=(4,), max_iter=5,
                               random_state=0).fit(X, y).predict(X)
    """,
    "sgd_moe": """
        from skmoe import SGDMoERegressor
        from skmoe.datasets import make_latent_cluster_regression
        X, y = make_latent_cluster_regression(300, 5, random_state=0)[:2]
        SGDMoERegressor(n_neurons=2, random_state=0).fit(X, y).predict(X)
    """,
    "fisher": """
        import numpy as np
        from sklearn.neural_network import MLPClassifier
        from skmoe import DiagonalFisherEstimator
        rng = np.random.default_rng(0)
        X = rng.normal(size=(200, 4)); y = (X[:, 0] > 0).astype(int)
        net = MLPClassifier((8,), max_iter=20, random_state=0).fit(X, y)
        DiagonalFisherEstimator(net, random_state=0).fit(X, y)
    """,
    "amp": """
        from skmoe import SequenceMultiIndexAMP
        from skmoe.amp import LinearChannel
        from skmoe.datasets import make_sequence_multi_index
        X, y = make_sequence_multi_index(200, 20, LinearChannel(), random_state=0)[:2]
        SequenceMultiIndexAMP(LinearChannel(), random_state=0).fit(X, y)
    """,
}


def _raw_code(name):
    return textwrap.dedent(
        """
        import warnings
        warnings.simplefilter("ignore")
        """
    ) + textwrap.dedent(_CALLS[name])


def _setup_code(cache_dir):
    # Runs before the timed statement, in the same fresh process: the cache
    # directory must be set before numba is imported.
    return f"import os; os.environ['NUMBA_CACHE_DIR'] = {cache_dir!r}"


class ColdStart(Benchmark):
    """``timeraw_``: compile-from-scratch first call, per estimator."""

    params = list(_CALLS)
    param_names = ["estimator"]
    number = 1
    repeat = 1
    timeout = 600

    def timeraw_first_call(self, name):
        cache_dir = tempfile.mkdtemp(prefix="skmoe-cold-")
        return _raw_code(name), _setup_code(cache_dir)


class WarmCache(Benchmark):
    """Seconds of the same first call in a fresh process with a filled cache."""

    params = list(_CALLS)
    param_names = ["estimator"]
    timeout = 900
    unit = "seconds"

    def setup(self, name):
        self.cache_dir = tempfile.mkdtemp(prefix="skmoe-warm-")
        self._run(name)  # fills the cache

    def _run(self, name):
        code = _setup_code(self.cache_dir) + "\nimport time; t = time.perf_counter()\n"
        code += _raw_code(name) + "\nprint(time.perf_counter() - t)\n"
        env = dict(os.environ, NUMBA_CACHE_DIR=self.cache_dir)
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
        )
        return float(out.stdout.strip().splitlines()[-1])

    def track_warm_cache_first_call(self, name):
        return self._run(name)
