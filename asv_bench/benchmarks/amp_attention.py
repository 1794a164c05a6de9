"""Benchmarks for the tied-attention channel posterior and its state evolution.

Reference problems (``L = 2`` tokens, skip ``c = 1``):

* ``AttentionPosterior``: one batch of posterior evaluations as state
  evolution makes them, at an overlap between the transitions: two layers
  (default 64 x 64 grid, both sign branches) on ``POSTERIOR_N_SAMPLES``
  samples, and three layers (default 4096 Sobol' points) on
  ``POSTERIOR_N_SAMPLES // 2``.
* ``TwoLayerStateEvolution``: ``TWO_LAYER_SE_N_ITER`` state-evolution
  iterations (``tol=0``) of the two-layer channel at ``alpha = 1``.
* ``ThreeLayerStateEvolution``: a full state evolution of the three-layer
  channel at ``alpha = THREE_LAYER_ALPHA``, from ``q_init = 0.05``; the
  target is under 60 s.  ``track_q_standard_error`` reports the Monte
  Carlo standard error of the diagonal of ``q`` at the fixed point (the
  largest over layers; one map evaluation, see :func:`_q_standard_error`).
"""

import warnings

import numpy as np

POSTERIOR_N_SAMPLES = 2000
POSTERIOR_OVERLAP_2 = (0.2, 0.7)
POSTERIOR_OVERLAP_3 = (0.1, 0.1, 0.7)

TWO_LAYER_SE_ALPHA = 1.0
TWO_LAYER_SE_N_SAMPLES = 2000
TWO_LAYER_SE_N_ITER = 5

THREE_LAYER_ALPHA = 0.8
THREE_LAYER_N_POINTS = 1024
THREE_LAYER_N_SAMPLES = 4000
THREE_LAYER_MAX_ITER = 40
RANDOM_STATE = 0


def _se_batch(channel, overlap, n_samples, seed=RANDOM_STATE):
    """``(y, Omega, V)`` drawn as state evolution draws them at ``q = diag(overlap)``."""
    rng = np.random.default_rng(seed)
    q = np.diag(overlap)
    p = len(overlap)
    Omega = rng.standard_normal((n_samples, 2, p)) * np.sqrt(np.diag(q))
    Z = Omega + rng.standard_normal((n_samples, 2, p)) * np.sqrt(1 - np.diag(q))
    return channel.output(Z), Omega, np.eye(p) - q


def _state_evolution(channel, alpha, **kwargs):
    from skmoe.amp import state_evolution

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return state_evolution(channel, alpha, compute_test_errors=False,
                               random_state=RANDOM_STATE, **kwargs)


def _q_standard_error(channel, alpha, q, n_samples, seed=RANDOM_STATE + 1):
    """Monte Carlo standard error of ``diag(q)`` from one map evaluation at ``q``.

    ``q_hat = alpha * mean_i sum_l g_il g_il^T`` over ``n_samples`` fresh
    draws; its per-entry standard error, pushed through ``q = q_hat / (1 +
    q_hat)`` (diagonal), is the noise of one state-evolution step.
    """
    y, Omega, V = _se_batch(channel, np.diag(q), n_samples, seed)
    mean, _, _ = channel.posterior(y, Omega, V)
    g = (mean - Omega) @ np.linalg.inv(V)
    terms = alpha * np.einsum("nlk,nlk->nk", g, g)
    q_hat = terms.mean(axis=0)
    q_hat_se = terms.std(axis=0, ddof=1) / np.sqrt(n_samples)
    return float(np.max(q_hat_se / (1 + q_hat) ** 2))


class AttentionPosterior:
    """One state-evolution batch of the two- and three-layer posterior."""

    timeout = 600
    number = 1
    repeat = (1, 3, 60.0)
    warmup_time = 0.0

    def setup(self):
        from skmoe.amp import DeepAttentionChannel

        self.two = DeepAttentionChannel(n_layers=2)
        self.three = DeepAttentionChannel(n_layers=3)
        self.batch2 = _se_batch(self.two, POSTERIOR_OVERLAP_2, POSTERIOR_N_SAMPLES)
        self.batch3 = _se_batch(self.three, POSTERIOR_OVERLAP_3, POSTERIOR_N_SAMPLES // 2)
        # Compile (or load from numba's cache); never timed.
        for channel, (y, Omega, V) in ((self.two, self.batch2), (self.three, self.batch3)):
            channel.posterior(y[:4], Omega[:4], V)

    def time_two_layer_posterior(self):
        self.two.posterior(*self.batch2)

    def time_three_layer_posterior(self):
        self.three.posterior(*self.batch3)


class TwoLayerStateEvolution:
    """A fixed number of two-layer state-evolution iterations at ``alpha = 1``."""

    timeout = 600
    number = 1
    repeat = (1, 3, 120.0)
    warmup_time = 0.0

    def setup(self):
        from skmoe.amp import DeepAttentionChannel

        self.channel = DeepAttentionChannel(n_layers=2)
        _state_evolution(self.channel, TWO_LAYER_SE_ALPHA, n_samples=8, max_iter=1, tol=0.0)

    def time_state_evolution_fixed_iterations(self):
        _state_evolution(self.channel, TWO_LAYER_SE_ALPHA, n_samples=TWO_LAYER_SE_N_SAMPLES,
                         max_iter=TWO_LAYER_SE_N_ITER, tol=0.0)


class ThreeLayerStateEvolution:
    """Three-layer state evolution at one ``alpha`` (target: under 60 s).

    ``setup_cache`` runs the state evolution once; the tracks read its
    fixed point, and ``time_state_evolution`` times a second run.
    """

    timeout = 600
    number = 1
    repeat = (1, 1, 300.0)
    warmup_time = 0.0

    def _channel(self):
        from skmoe.amp import DeepAttentionChannel

        return DeepAttentionChannel(n_layers=3, n_points=THREE_LAYER_N_POINTS)

    def _run(self, channel):
        return _state_evolution(channel, THREE_LAYER_ALPHA, n_samples=THREE_LAYER_N_SAMPLES,
                                max_iter=THREE_LAYER_MAX_ITER, tol=1e-3)

    def setup_cache(self):
        se = self._run(self._channel())  # also compiles the kernel
        return {"q": se.q, "n_iter": se.n_iter}

    def setup(self, fixed_point):
        self.channel = self._channel()

    def time_state_evolution(self, fixed_point):
        self._run(self.channel)

    def track_q_standard_error(self, fixed_point):
        return _q_standard_error(self.channel, THREE_LAYER_ALPHA, fixed_point["q"],
                                 THREE_LAYER_N_SAMPLES)

    track_q_standard_error.unit = "overlap"

    def track_n_iterations(self, fixed_point):
        return fixed_point["n_iter"]

    track_n_iterations.unit = "iterations"
