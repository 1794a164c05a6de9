"""The data-pass contract of the Gaussian-gated MoE: what every backend implements.

Everything the estimator does with the *data* goes through four functions, the
*data passes*; everything else (initialisation, M-step, SQUAREM, parameter
checks) works on ``K`` small parameter matrices in NumPy on the host
(:mod:`skmoe.mixture._params`).  A *backend* is a module that defines the four
passes below with exactly these arguments.  :func:`get_backend` picks one per
public call from the input's namespace:

- :mod:`skmoe.mixture._passes_numba`: NumPy inputs, fused parallel numba
  kernels (deterministic block reduction);
- :mod:`skmoe.mixture._passes_xp`: any other array-API namespace under
  ``sklearn.set_config(array_api_dispatch=True)`` (CuPy, PyTorch,
  array-api-strict), vectorised over rows;
- :mod:`skmoe.mixture._passes_dask`: :class:`dask.array.Array` inputs; the
  numba passes mapped over row blocks, the sufficient statistics tree-summed
  to the client, per-sample results lazy Dask arrays.

``tests/mixture/test_passes.py`` checks that every registered backend has the
signatures below.

Kernel layout
-------------
The parameters reach the passes as the fields of :class:`KernelParams`;
component ``k`` is described by

* ``log_weights[k]``: log mixing weight;
* ``means[k]``, the upper-triangular gate precision Cholesky factor
  ``gate_prec_chol[k]`` (``P`` with ``P P^T = Sigma_k^{-1}``; "tied", "diag"
  and "spherical" gates are expanded to full matrices) and
  ``gate_log_det[k] = sum(log(diag(P)))``;
* ``y_centers[k] = A_k mu_k + b_k``, the expert's mean output at the gate
  centre, the expert slopes ``coef[k]`` of shape ``(n_outputs, n_features)``,
  and the noise precision Cholesky factor ``noise_prec_chol[k]`` with
  ``noise_log_det[k]``;
* for the predictive moments only: the intercepts ``intercept[k]`` and the
  noise variances ``noise_var[k]`` (diagonal of ``S_k``).

During EM the layout is rebuilt from each M-step (host NumPy float64, by
:func:`skmoe.mixture._params._kernel_params`); after ``fit`` it is stored once
on the estimator, in the namespace and on the device of the training data, and
``predict``, ``predict_gates`` and ``score_samples`` pass it on unchanged.

The four passes
---------------
Every pass takes ``X`` of shape ``(n_samples, n_features)`` (C-contiguous,
float32 or float64, in the backend's namespace) and the keyword-only ``xp``,
the namespace the caller resolved for ``X`` (None for NumPy), so that a
backend never looks it up again.  Parameter arrays are host NumPy float64
arrays or arrays already next to ``X``; a backend moves or casts them as it
needs.

``em_pass(X, Y, log_weights, means, gate_prec_chol, gate_log_det, y_centers,
coef, noise_prec_chol, noise_log_det, with_moments, *, sample_weight=None, xp=None)``
    The fused E-step and sufficient statistics of one EM iteration.  Returns
    ``(log_likelihood, s0, s1, s2)``: the Python float
    ``sum_n log p(x_n, y_n)`` and, if ``with_moments``, host NumPy float64
    ``s0 = sum_n r_nk`` of shape ``(K,)``, ``s1 = sum_n r_nk u_nk`` of shape
    ``(K, dim)`` and the symmetric ``s2 = sum_n r_nk u_nk u_nk^T`` of shape
    ``(K, dim, dim)``, with ``u_nk = (x_n - mu_k, y_n - y_centers[k])`` and
    ``dim = n_features + n_outputs`` (otherwise ``None`` or empty arrays).
    With ``sample_weight`` (non-negative, shape ``(n_samples,)``, host NumPy
    float64 or next to ``X``) every sum is weighted: ``sum_n w_n (...)``,
    with ``r_nk`` replaced by ``w_n r_nk``; a row of weight zero contributes
    exactly nothing, so it is the same as a dropped row.

``log_densities(X, Y, log_weights, means, gate_prec_chol, gate_log_det,
y_centers, coef, noise_prec_chol, noise_log_det, *, xp=None)``
    Per-sample ``log p(x, y)`` and ``log p(x)``, each of shape
    ``(n_samples,)``.  ``Y`` may have zero columns (with zero-output
    ``y_centers``, ``coef`` and ``noise_prec_chol``): both are then
    ``log p(x)``.

``gate_probabilities(X, log_weights, means, gate_prec_chol, gate_log_det, *,
xp=None)``
    Gate probabilities ``g_k(x_n)`` of shape ``(n_samples, K)``.

``predictive_moments(X, log_weights, means, gate_prec_chol, gate_log_det,
coef, intercept, noise_var, *, xp=None)``
    Mean and variance of ``p(y | x)`` per output, each of shape
    ``(n_samples, n_outputs)``.

Per-sample results live with ``X`` (the numba backend returns float64; the
estimator casts to ``X.dtype``).  Results must not depend on the number of
threads.
"""

from typing import NamedTuple

from ..utils._array_api import array_api_namespace
from ..utils._dask import is_dask_array
from . import _passes_dask, _passes_numba, _passes_xp

#: The functions every backend defines.
PASSES = ("em_pass", "log_densities", "gate_probabilities", "predictive_moments")

#: ``name -> module`` of the registered backends.
BACKENDS = {"numba": _passes_numba, "array_api": _passes_xp, "dask": _passes_dask}


class KernelParams(NamedTuple):
    """Parameters in the kernel layout: the arguments of the data passes.

    Fields are described in the module docstring (*Kernel layout*).
    """

    log_weights: object
    means: object
    gate_prec_chol: object
    gate_log_det: object
    y_centers: object
    coef: object
    noise_prec_chol: object
    noise_log_det: object
    intercept: object
    noise_var: object

    @property
    def densities(self):
        """The parameter arguments of ``em_pass`` and ``log_densities``."""
        return tuple(self[:8])

    @property
    def gates(self):
        """The parameter arguments of ``gate_probabilities``."""
        return tuple(self[:4])

    @property
    def predictive(self):
        """The parameter arguments of ``predictive_moments``."""
        return (*self[:4], self.coef, self.intercept, self.noise_var)


def input_namespace(X):
    """The namespace the passes take as ``xp`` for input ``X``.

    :func:`skmoe.utils._array_api.array_api_namespace`, except for Dask
    arrays, which get None: their blocks are NumPy arrays for the numba
    kernels, whatever ``array_api_dispatch`` says.
    """
    return None if is_dask_array(X) else array_api_namespace(X)


def get_backend(xp, X=None):
    """The backend module for input ``X`` of namespace ``xp``.

    The one place where a backend is chosen.

    Parameters
    ----------
    xp : module or None
        Namespace of the input, as returned by :func:`input_namespace`
        (None for NumPy, Dask arrays and array-likes, and always None without
        ``array_api_dispatch``).
    X : object, default=None
        The input itself; only its type is looked at (Dask or not).

    Returns
    -------
    backend : module
        :mod:`skmoe.mixture._passes_dask` for Dask arrays,
        :mod:`skmoe.mixture._passes_numba` for NumPy,
        :mod:`skmoe.mixture._passes_xp` otherwise.
    """
    if is_dask_array(X):
        return BACKENDS["dask"]
    return BACKENDS["numba" if xp is None else "array_api"]
