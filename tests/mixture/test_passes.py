"""The data-pass contract (skmoe.mixture._passes): every backend, one interface."""

import inspect

import array_api_strict as xps
import numpy as np
import pytest
import sklearn
from numpy.testing import assert_allclose

from skmoe.mixture import _passes, _passes_numba, _passes_xp
from skmoe.mixture._params import _kernel_params, compute_precision_cholesky
from skmoe.utils._array_api import array_api_namespace, to_numpy

# The documented argument names of each pass (module docstring of _passes).
DENSITY = ["log_weights", "means", "gate_prec_chol", "gate_log_det", "y_centers", "coef",
           "noise_prec_chol", "noise_log_det"]
CONTRACT = {
    "em_pass": ["X", "Y", *DENSITY, "with_moments", "sample_weight", "xp"],
    "log_densities": ["X", "Y", *DENSITY, "xp"],
    "gate_probabilities": ["X", *DENSITY[:4], "xp"],
    "predictive_moments": ["X", *DENSITY[:4], "coef", "intercept", "noise_var", "xp"],
}


@pytest.mark.parametrize("backend", sorted(_passes.BACKENDS))
@pytest.mark.parametrize("name", _passes.PASSES)
def test_every_backend_implements_the_contract(backend, name):
    signature = inspect.signature(getattr(_passes.BACKENDS[backend], name))
    assert list(signature.parameters) == CONTRACT[name]
    for keyword in ("sample_weight", "xp"):
        if keyword in signature.parameters:
            parameter = signature.parameters[keyword]
            assert parameter.kind is inspect.Parameter.KEYWORD_ONLY and parameter.default is None


def test_get_backend_dispatches_on_namespace():
    assert _passes.get_backend(None) is _passes_numba
    with sklearn.config_context(array_api_dispatch=True):
        xp = array_api_namespace(xps.asarray([1.0]))
    assert _passes.get_backend(xp) is _passes_xp


def test_kernel_params_views_name_the_pass_arguments():
    layout = _passes.KernelParams(*range(10))
    assert layout.densities == tuple(range(8))
    assert layout.gates == (0, 1, 2, 3)
    assert layout.predictive == (0, 1, 2, 3, 5, 8, 9)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_xp_backend_takes_host_or_resident_parameters_alike(dtype):
    """Parameters already on the device (the fitted layout) give the host results."""
    rng = np.random.RandomState(0)
    covariances = np.stack([np.eye(2) * s for s in (0.5, 2.0)])
    params = {
        "weights": np.array([0.3, 0.7]),
        "means": rng.standard_normal((2, 2)),
        "covariances": covariances,
        "coef": rng.standard_normal((2, 1, 2)),
        "intercept": rng.standard_normal((2, 1)),
        "noise_covariances": np.full((2, 1, 1), 0.5),
        "precisions_cholesky": compute_precision_cholesky(covariances, "full"),
        "covariance_type": "full",
    }
    host = _kernel_params(params)
    X = rng.standard_normal((50, 2)).astype(dtype)
    Y = rng.standard_normal((50, 1)).astype(dtype)
    where = xps.Device("device1")
    with sklearn.config_context(array_api_dispatch=True):
        X_xp, Y_xp = xps.asarray(X, device=where), xps.asarray(Y, device=where)
        xp = array_api_namespace(X_xp)
        resident = tuple(xps.asarray(a, dtype=X_xp.dtype, device=where) for a in host)
        for with_host, with_resident in [
            (_passes_xp.log_densities(X_xp, Y_xp, *host),
             _passes_xp.log_densities(X_xp, Y_xp, *resident, xp=xp)),
            ((_passes_xp.gate_probabilities(X_xp, *host[:4]),),
             (_passes_xp.gate_probabilities(X_xp, *resident[:4], xp=xp),)),
        ]:
            for a, b in zip(with_host, with_resident):
                assert b.device == where and b.dtype == X_xp.dtype
                np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
        # And both agree with the numba backend.
        assert_allclose(to_numpy(_passes_xp.log_densities(X_xp, Y_xp, *resident)[0]),
                        _passes_numba.log_densities(X, Y, *host)[0],
                        rtol=1e-4 if dtype == "float32" else 1e-10)
