"""Benchmarks for SGDMoERegressor.

Reference problem: ``make_latent_cluster_regression`` with d=32, C=2, k*=3;
10^5 online SGD steps (batch size 1) of the whole staged fit of a
2-expert, 8-neuron mixture (stages 1-3, the numba kernels) versus
``MLPRegressor(hidden_layer_sizes=(16,), batch_size=1).partial_fit`` over the
same 10^5 rows (one pass of per-sample SGD, the peer with the same number of
hidden units).  Ratios are measured in the same process, interleaved.
"""

import time
import warnings

import numpy as np

from .common import Benchmark

SGD_N_FEATURES = 32
SGD_N_STEPS = 100_000


def _data():
    from skmoe.datasets import make_latent_cluster_regression

    return make_latent_cluster_regression(SGD_N_STEPS, SGD_N_FEATURES, random_state=0)


def _moe():
    from skmoe import SGDMoERegressor

    # Default stages (0.4, 0.1, 0.5) of 10^5 rows: 10^5 SGD steps.  The
    # timing also includes the stage-2 scoring and the stage-4 ridge pass.
    return SGDMoERegressor(2, n_neurons=8, random_state=0)


def _mlp():
    from sklearn.neural_network import MLPRegressor

    return MLPRegressor(hidden_layer_sizes=(16,), batch_size=1, solver="sgd",
                        learning_rate_init=1e-3, random_state=0)


def _best_of(func, repeat=3):
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - t0)
    return best


class SGDMoEFit(Benchmark):
    """Staged fit on 10^5 rows (10^5 SGD steps) and the MLP peer."""

    def setup(self):
        self.X, self.y = _data()
        # Warm the numba caches (compile once, never timed).
        _moe().fit(self.X[:500], self.y[:500])

    def time_sgd_moe_fit(self):
        _moe().fit(self.X, self.y)

    def time_mlp_partial_fit_one_pass(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _mlp().partial_fit(self.X, self.y)

    def track_ratio_mlp_over_sgd_moe(self):
        """How many times faster the staged fit is than one MLP SGD pass."""
        moe = _best_of(lambda: _moe().fit(self.X, self.y))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mlp = _best_of(lambda: _mlp().partial_fit(self.X, self.y), repeat=1)
        return mlp / moe

    track_ratio_mlp_over_sgd_moe.unit = "ratio"


#: Predict benchmark (issue 16): n = 5 * 10^6 rows, d = 32.
SGD_PREDICT_N = 5_000_000
#: Rows the model of ``time_predict`` is fitted on (predict's cost does not
#: depend on how well the model is trained).
SGD_PREDICT_N_FIT = 20_000


class SGDMoEPredict(Benchmark):
    """Fused routed ``predict`` on 5 * 10^6 rows, d = 32, against the fit.

    ``track_predict_over_fit`` times the whole staged fit and then predict on
    the same 5 * 10^6 rows, in the same process, and reports their ratio
    (target: at most 0.1).
    """

    timeout = 1800
    repeat = 1
    number = 1

    def setup(self):
        from skmoe.datasets import make_latent_cluster_regression

        self.X, self.y = make_latent_cluster_regression(
            SGD_PREDICT_N, SGD_N_FEATURES, random_state=0
        )
        self.model = _moe().fit(self.X[:SGD_PREDICT_N_FIT], self.y[:SGD_PREDICT_N_FIT])
        self.model.predict(self.X[:1000])  # compile or load the kernels

    def time_predict(self):
        self.model.predict(self.X)

    def track_predict_over_fit(self):
        """Predict time over fit time on the same 5 * 10^6 rows."""
        t0 = time.perf_counter()
        model = _moe().fit(self.X, self.y)
        fit = time.perf_counter() - t0
        t0 = time.perf_counter()
        model.predict(self.X)
        return (time.perf_counter() - t0) / fit

    track_predict_over_fit.unit = "ratio"
