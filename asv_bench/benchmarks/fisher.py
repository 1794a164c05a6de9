"""Benchmarks for DiagonalFisherEstimator.

Reference problem: a 784-256-256-10 ``MLPClassifier`` (softmax output) with
random weights (sklearn's Glorot initialisation, obtained from one
``partial_fit`` step on random data), and a batch of 1024 rows of
``N(0, 1)`` inputs.  Every cost is reported as a ratio to one plain
forward+backward pass of the same network on the same batch (the practical
floor: cross-entropy gradient of every parameter with data labels, NumPy/BLAS,
the same float64 arithmetic and threads), measured in the same process and
interleaved with the measured call, so that the ratio is insensitive to load.

Each estimator is timed alone through the public ``fit`` (``method=...,
compute_variances=False``), and the full ``fit()`` with every variance and
bound.  Targets (issue 4): score estimator (I1) <= 3x a gradient pass, Hessian
estimator (I2) with sigmoid <= 6x, exact diagonal <= (C + 1)x = 11x.  The
comparison with BackPACK on the same problem is the script
``asv_bench/backpack_side_by_side.py`` (it needs torch).
"""

import time
import warnings

import numpy as np

from .common import Benchmark

FISHER_LAYERS = (784, 256, 256, 10)
FISHER_BATCH = 1024


def fisher_network(activation):
    """Fitted-looking MLPClassifier with the reference layer sizes."""
    from sklearn.neural_network import MLPClassifier

    rng = np.random.RandomState(0)
    X = rng.standard_normal((64, FISHER_LAYERS[0]))
    y = np.arange(64) % FISHER_LAYERS[-1]
    model = MLPClassifier(FISHER_LAYERS[1:-1], activation=activation, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.partial_fit(X, y, classes=np.arange(FISHER_LAYERS[-1]))
    return model


def fisher_batch():
    return np.random.RandomState(1).standard_normal((FISHER_BATCH, FISHER_LAYERS[0]))


def _activation_and_derivative(Z, activation):
    """``phi(Z)`` and ``phi'(Z)`` in plain NumPy (what sklearn's own MLP computes)."""
    if activation == "logistic":
        A = 1.0 / (1.0 + np.exp(-Z))
        return A, A * (1.0 - A)
    if activation == "tanh":
        A = np.tanh(Z)
        return A, 1.0 - A * A
    if activation == "relu":
        return np.maximum(Z, 0.0), (Z > 0).astype(Z.dtype)
    return Z, np.ones_like(Z)


def gradient_pass(net, X, labels):
    """One forward + backward pass: cross-entropy gradients of all parameters.

    Plain NumPy/BLAS with first derivatives only (no ``phi''``), as in
    scikit-learn's own ``MLPClassifier`` backpropagation: the practical floor.
    """
    acts, derivatives = [X], []
    for layer, (W, b) in enumerate(zip(net.coefs, net.intercepts)):
        Z = acts[-1] @ W + b
        if layer == len(net.coefs) - 1:
            break
        A, D = _activation_and_derivative(Z, net.activation)
        acts.append(A)
        derivatives.append(D)
    P = np.exp(Z - Z.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    P[np.arange(len(X)), labels] -= 1.0
    delta = P
    grads = []
    for layer in range(len(net.coefs) - 1, -1, -1):
        grads.append((acts[layer].T @ delta, delta.sum(axis=0)))
        if layer:
            delta = (delta @ net.coefs[layer].T) * derivatives[layer - 1]
    return grads


def _operations(activation):
    """The timed calls: a gradient pass and the public ``fit`` of each option."""
    from skmoe import DiagonalFisherEstimator
    from skmoe.inspection._fisher_statistics import _extract_network

    model = fisher_network(activation)
    net = _extract_network(model)
    X = fisher_batch()
    labels = np.arange(len(X)) % FISHER_LAYERS[-1]

    def fit(**params):
        estimator = DiagonalFisherEstimator(model, random_state=0, batch_size=FISHER_BATCH,
                                            **params)
        return lambda: estimator.fit(X)

    return {
        "gradient": lambda: gradient_pass(net, X, labels),
        # each estimator alone, as BackPACK's DiagGGNMC / DiagHessian / DiagGGNExact
        "score": fit(method="score", compute_variances=False),
        "hessian": fit(method="hessian", compute_variances=False),
        "exact": fit(method="exact", compute_variances=False),
        "full": fit(),
    }


def ratios(activation, repeat=5):
    """Best-of-``repeat`` time of each operation divided by the gradient pass."""
    ops = _operations(activation)
    for op in ops.values():  # JIT warm-up, never timed
        op()
    best = {name: np.inf for name in ops}
    for _ in range(repeat):
        for name, op in ops.items():
            start = time.perf_counter()
            op()
            best[name] = min(best[name], time.perf_counter() - start)
    out = {name: best[name] / best["gradient"] for name in ops}
    out["gradient_seconds"] = best["gradient"]
    return out


class FisherRatios(Benchmark):
    """Cost of each estimator relative to one forward+backward pass.

    All ratios are measured once, in ``setup_cache`` (one process, the
    operations interleaved); the ``track_`` methods only report them.
    """

    params = (["logistic", "relu"],)
    param_names = ["activation"]
    number = 1
    repeat = 1
    warmup_time = 0.0
    timeout = 600

    def setup_cache(self):
        return {activation: ratios(activation) for activation in self.params[0]}

    def track_score_ratio(self, measured, activation):
        return measured[activation]["score"]

    def track_hessian_ratio(self, measured, activation):
        return measured[activation]["hessian"]

    def track_exact_ratio(self, measured, activation):
        return measured[activation]["exact"]

    def track_full_fit_ratio(self, measured, activation):
        return measured[activation]["full"]

    track_score_ratio.unit = "ratio"
    track_hessian_ratio.unit = "ratio"
    track_exact_ratio.unit = "ratio"
    track_full_fit_ratio.unit = "ratio"


class FisherTime(Benchmark):
    """Absolute times on the reference problem (sigmoid network)."""

    number = 1
    repeat = (1, 5, 30.0)
    warmup_time = 0.0

    def setup(self):
        self.ops = _operations("logistic")
        for op in self.ops.values():
            op()

    def time_gradient_pass(self):
        self.ops["gradient"]()

    def time_score(self):
        self.ops["score"]()

    def time_exact(self):
        self.ops["exact"]()

    def time_full_fit(self):
        self.ops["full"]()
