"""Validation helpers shared by every estimator: strict scalar checks,
sample-count checks, the atomic fit context and the inference snapshot."""

import copy
import functools
import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted, validate_data

from ._array_api import namespace_or_numpy
from ._monitor import user_stacklevel


class StrictIntInterval(Interval):
    """``Interval(Integral, ...)`` that also rejects booleans.

    scikit-learn's ``Interval(Integral, ...)`` accepts ``True`` as 1; for a
    count such as ``n_experts`` that is almost certainly a mistake.
    """

    def __init__(self, left, right, *, closed):
        super().__init__(Integral, left, right, closed=closed)

    def is_satisfied_by(self, val):
        return not isinstance(val, (bool, np.bool_)) and super().is_satisfied_by(val)


def check_int(value, name, minimum=1):
    """``value`` as a Python int, or a ``ValueError`` naming ``name``.

    Booleans are rejected (``True`` is not a count).

    Parameters
    ----------
    value : object
        The value to check.
    name : str
        Its name, for the error message.
    minimum : int, default=1
        Smallest accepted value.

    Returns
    -------
    value : int
    """
    if not isinstance(value, Integral) or isinstance(value, (bool, np.bool_)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def check_real(value, name, minimum=0.0, strict=False):
    """``value`` as a finite Python float ``>= minimum`` (``>`` if ``strict``).

    Parameters
    ----------
    value : object
        The value to check.
    name : str
        Its name, for the error message.
    minimum : float, default=0.0
        Lower bound.
    strict : bool, default=False
        Whether the bound itself is excluded.

    Returns
    -------
    value : float
    """
    if not isinstance(value, Real) or isinstance(value, (bool, np.bool_)) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite real number, got {value!r}.")
    if value < minimum or (strict and value == minimum):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {minimum}, got {value!r}.")
    return float(value)


def check_min_samples(n_samples, n_components, component_name="n_components"):
    """Raise a ``ValueError`` unless there are at least as many samples as components.

    Parameters
    ----------
    n_samples : int
        Number of samples.
    n_components : int
        Number of components (experts, cells, ...).
    component_name : str, default="n_components"
        Name of the hyper-parameter, for the error message.
    """
    if n_samples < n_components:
        raise ValueError(
            f"Expected n_samples >= {component_name} but got {component_name} = "
            f"{n_components}, n_samples = {n_samples}."
        )


def fit_context(*, prefer_skip_nested_validation=True):
    """``sklearn.base._fit_context`` plus an atomic fit.

    The decorated method (``fit``, ``partial_fit``) validates the
    hyper-parameters as scikit-learn does.  If it raises anything at all
    (bad input, ``KeyboardInterrupt``, ``MemoryError``, divergence), the
    estimator's ``__dict__`` is restored to what it was before the call, so a
    previously fitted estimator keeps its fitted state, including
    ``n_features_in_`` and ``feature_names_in_``, and an unfitted one stays
    unfitted.

    The snapshot is shallow: fits must build new fitted arrays rather than
    modify the stored ones in place (every skmoe estimator does).

    Parameters
    ----------
    prefer_skip_nested_validation : bool, default=True
        Passed to scikit-learn's ``_fit_context``.

    Returns
    -------
    decorator : callable
    """

    def decorator(fit_method):
        validated = _fit_context(prefer_skip_nested_validation=prefer_skip_nested_validation)(
            fit_method
        )

        @functools.wraps(fit_method)
        def wrapper(estimator, *args, **kwargs):
            saved = dict(estimator.__dict__)
            try:
                return validated(estimator, *args, **kwargs)
            except BaseException:
                estimator.__dict__.clear()
                estimator.__dict__.update(saved)
                raise

        return wrapper

    return decorator


def snapshot_params(estimator, names):
    """Copies of the hyper-parameters that inference reads, taken at fit time.

    ``predict`` and friends read the returned dict (stored by the caller on a
    private fitted attribute) instead of the live hyper-parameters, so that
    ``set_params`` after ``fit`` cannot change predictions, nor make a kernel
    index past the fitted arrays, until the next ``fit``.

    Parameters
    ----------
    estimator : BaseEstimator
        The estimator being fitted.
    names : iterable of str
        Hyper-parameters to copy.

    Returns
    -------
    settings : dict
        ``{name: deep copy of the value}``.
    """
    return {name: copy.deepcopy(getattr(estimator, name)) for name in names}


def draw_seed(random_state):
    """One 31-bit seed for a compiled kernel or a NumPy generator.

    Every numba kernel that needs random numbers is seeded through this one
    function from the fit's single :func:`~sklearn.utils.check_random_state`
    instance, so a fit is reproducible from ``random_state`` alone.

    Parameters
    ----------
    random_state : numpy.random.RandomState
        The fit's random state.

    Returns
    -------
    seed : int
        In ``[0, 2**31 - 1)``.
    """
    return int(random_state.randint(np.iinfo(np.int32).max))


def warn_deprecated_param(estimator, name, reason, *, since="0.1", removal="0.3"):
    """The ``FutureWarning`` for a hyper-parameter that was set but is deprecated.

    Deprecated hyper-parameters default to ``"deprecated"``; ``fit`` calls
    this when the user set one, so one message says what changes and when.

    Parameters
    ----------
    estimator : BaseEstimator
        The estimator being fitted.
    name : str
        The deprecated hyper-parameter.
    reason : str
        Why it has no effect, as a sentence.
    since, removal : str
        Versions of the deprecation and of the removal.
    """
    if getattr(estimator, name) == "deprecated":
        return
    warnings.warn(
        f"The parameter {name!r} of {type(estimator).__name__} was deprecated in "
        f"version {since} and will be removed in {removal}. {reason} Leave it unset "
        "to silence this warning.",
        FutureWarning,
        stacklevel=user_stacklevel(),
    )


def check_fitted_input(estimator, X):
    """``X`` for an inference method: the estimator is fitted and ``X`` matches the fit.

    Raises ``NotFittedError`` before looking at ``X``, then validates it like
    the fit did (same number of features and feature names, finite, float64
    or float32, C-contiguous) without resetting anything.

    Parameters
    ----------
    estimator : BaseEstimator
        A fitted estimator.
    X : array-like of shape (n_samples, n_features)
        Inputs.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        Validated float64 or float32 array.
    """
    check_is_fitted(estimator)
    return validate_data(estimator, X, reset=False, dtype=[np.float64, np.float32], order="C")


#: The advice given with every non-finite result.
RESCALE_HINT = (
    "The inputs are probably too large in magnitude for floating point: "
    "rescale them (e.g. with sklearn.preprocessing.StandardScaler)."
)


def check_finite_output(values, what, *, hint=RESCALE_HINT):
    """Raise a ``ValueError`` unless every entry of ``values`` is finite.

    The one guard where results leave a kernel or an iteration: skmoe never
    returns or stores NaN or infinity silently.  Call it on outputs (and on
    fitted parameters before they are stored) whose non-finiteness means an
    overflow, not a legitimate value (``score_samples`` may legitimately be
    ``-inf``; it checks for NaN and ``+inf`` itself).

    Parameters
    ----------
    values : array-like
        NumPy or array-API array (or a scalar).
    what : str
        Names the quantity in the message, e.g. ``"predict output"``.
    hint : str, default=RESCALE_HINT
        What the user can do about it.

    Returns
    -------
    values : array-like
        ``values``, unchanged.
    """
    xp = namespace_or_numpy(values) if hasattr(values, "shape") else np
    finite = xp.all(xp.isfinite(values)) if hasattr(values, "shape") else np.isfinite(values)
    if not bool(finite):
        raise ValueError(f"The {what} is not finite (NaN or infinity). {hint}")
    return values
