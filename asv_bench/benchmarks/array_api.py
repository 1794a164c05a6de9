"""GPU through the array API: one EM iteration at n=2e6, d=16, K=16, and state evolution.

``GaussianGatedMoERegressor`` on CuPy arrays (``array_api_dispatch=True``,
float32 and float64) against the numba CPU path and scikit-learn's
``GaussianMixture('full')`` on ``[X, y]`` on the CPU, all from the same
starting point (``common.em_starting_point``) and measured in one process,
interleaved, as the marginal cost of one EM iteration
(``common.seconds_per_em_iteration``).  The whole measurement runs once in
``setup_cache``; the ``track_`` benchmarks report its ratios.

``GPUStateEvolution`` times state-evolution iterations at ``n_samples = 2e6``
(the Monte Carlo fields, the channel posterior, the reductions) with a CuPy
``q_init`` against the NumPy path, interleaved in one process.

Skipped (``NotImplementedError``) where CuPy or a CUDA GPU is missing.
"""

import time
import warnings

import numpy as np

from .common import (
    GPU_EM_N_COMPONENTS,
    GPU_EM_N_FEATURES,
    GPU_EM_N_SAMPLES,
    EM_RANDOM_STATE,
    ArrayAPIDispatchFit,
    em_starting_point,
    gaussian_gated_dataset,
    seconds_per_em_iteration,
    skmoe_em,
    sklearn_gmm_em,
    to_gaussian_mixture_init,
    warm_up_skmoe,
)


def _cupy_or_none():
    """CuPy if it imports and sees a CUDA device, else None."""
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise RuntimeError("no CUDA device")
    except Exception:
        return None
    return cupy


class _NeedsGPU:
    """Skip (asv's convention: ``NotImplementedError`` in ``setup``) without a GPU.

    ``setup_cache`` returns an empty dict where CuPy or a CUDA device is
    missing, so that it succeeds on every machine; ``setup`` then skips every
    benchmark of the class.  (Not None: asv passes no cache argument at all
    for a None cache.)
    """

    def setup(self, seconds):
        if not seconds:
            raise NotImplementedError("needs CuPy and a CUDA GPU")


class GPUEMIteration(_NeedsGPU):
    """Seconds per EM iteration and GPU speed-ups (``track_*``)."""

    timeout = 3600
    rounds = 1
    repeat = 1
    number = 1

    def setup_cache(self):
        cupy = _cupy_or_none()
        if cupy is None:
            return {}
        warm_up_skmoe()
        X, y = gaussian_gated_dataset(
            GPU_EM_N_SAMPLES, GPU_EM_N_FEATURES, GPU_EM_N_COMPONENTS, EM_RANDOM_STATE
        )
        init = em_starting_point(X, y, GPU_EM_N_COMPONENTS, EM_RANDOM_STATE)
        gmm_init = to_gaussian_mixture_init(init)
        candidates = {
            "numba_cpu": (lambda m: skmoe_em(init, m), (X, y)),
            "sklearn_gmm_cpu": (
                lambda m: sklearn_gmm_em(gmm_init, m), (np.column_stack([X, y]),)
            ),
        }
        for dtype in ("float64", "float32"):
            X_gpu = cupy.asarray(X.astype(dtype))
            y_gpu = cupy.asarray(y.astype(dtype))
            candidates[f"cupy_{dtype}"] = (
                lambda m: ArrayAPIDispatchFit(skmoe_em(init, m)), (X_gpu, y_gpu)
            )
            # Compile CuPy's kernels for this dtype outside the timing.
            ArrayAPIDispatchFit(skmoe_em(init, 1)).fit(X_gpu, y_gpu)
        seconds = seconds_per_em_iteration(candidates, n_iter=3, repeat=2)
        print({name: f"{value:.4f} s" for name, value in seconds.items()})
        return seconds

    def track_seconds_cupy_float32(self, seconds):
        return seconds["cupy_float32"]

    def track_seconds_cupy_float64(self, seconds):
        return seconds["cupy_float64"]

    def track_seconds_numba_cpu(self, seconds):
        return seconds["numba_cpu"]

    def track_seconds_sklearn_gmm_cpu(self, seconds):
        return seconds["sklearn_gmm_cpu"]

    def track_speedup_cupy_float64_vs_numba_cpu(self, seconds):
        return seconds["numba_cpu"] / seconds["cupy_float64"]

    def track_speedup_cupy_float64_vs_sklearn_cpu(self, seconds):
        return seconds["sklearn_gmm_cpu"] / seconds["cupy_float64"]

    def track_speedup_cupy_float32_vs_sklearn_cpu(self, seconds):
        return seconds["sklearn_gmm_cpu"] / seconds["cupy_float32"]

    track_seconds_cupy_float32.unit = "seconds"
    track_seconds_cupy_float64.unit = "seconds"
    track_seconds_numba_cpu.unit = "seconds"
    track_seconds_sklearn_gmm_cpu.unit = "seconds"
    track_speedup_cupy_float64_vs_numba_cpu.unit = "ratio"
    track_speedup_cupy_float64_vs_sklearn_cpu.unit = "ratio"
    track_speedup_cupy_float32_vs_sklearn_cpu.unit = "ratio"


class GPUStateEvolution(_NeedsGPU):
    """Seconds per state-evolution iteration on the GPU and on the CPU, and their ratio.

    A run of ``n_iter`` iterations, divided by ``n_iter``: the host draws and
    their transfer and the final ``q_hat`` evaluation are included.
    """

    timeout = 1800
    rounds = 1
    repeat = 1
    number = 1
    n_samples = 2_000_000
    n_iter = 4

    def setup_cache(self):
        import sklearn
        from sklearn.exceptions import ConvergenceWarning

        from skmoe.amp import AbsChannel, state_evolution

        cupy = _cupy_or_none()
        if cupy is None:
            return {}
        channel = AbsChannel(n_tokens=2, n_directions=2)
        params = dict(max_iter=self.n_iter, tol=0.0, n_samples=self.n_samples,
                      compute_test_errors=False, random_state=0)
        q_init = 0.1 * np.eye(2)
        candidates = {"numpy_cpu": q_init}
        for dtype in ("float64", "float32"):
            candidates[f"cupy_{dtype}"] = cupy.asarray(q_init.astype(dtype))
        seconds = {name: [] for name in candidates}
        # tol=0 runs a fixed number of iterations, which warns (not converged).
        with sklearn.config_context(array_api_dispatch=True), warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            state_evolution(channel, 1.0, q_init=candidates["cupy_float32"], max_iter=1,
                            n_samples=1000, compute_test_errors=False)  # compile kernels
            for _ in range(2):
                for name, q0 in candidates.items():
                    start = time.perf_counter()
                    # Each iteration copies q_hat to the host: timings are synchronised.
                    state_evolution(channel, 1.0, q_init=q0, **params)
                    seconds[name].append((time.perf_counter() - start) / self.n_iter)
        seconds = {name: min(values) for name, values in seconds.items()}
        print({name: f"{value:.4f} s" for name, value in seconds.items()})
        return seconds

    def track_seconds_cupy_float64(self, seconds):
        return seconds["cupy_float64"]

    def track_seconds_cupy_float32(self, seconds):
        return seconds["cupy_float32"]

    def track_seconds_numpy_cpu(self, seconds):
        return seconds["numpy_cpu"]

    def track_speedup_cupy_float64_vs_numpy_cpu(self, seconds):
        return seconds["numpy_cpu"] / seconds["cupy_float64"]

    track_seconds_cupy_float64.unit = "seconds"
    track_seconds_cupy_float32.unit = "seconds"
    track_seconds_numpy_cpu.unit = "seconds"
    track_speedup_cupy_float64_vs_numpy_cpu.unit = "ratio"
