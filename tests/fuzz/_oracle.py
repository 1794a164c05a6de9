"""The one oracle of the fuzz suite.

:func:`assert_finite_or_clear_error` runs a call on fuzzed inputs and accepts
exactly two outcomes:

- a **finite result**: every array (or float) in the returned value, and every
  fitted attribute of a returned estimator, is finite (``-inf`` only where the
  caller says a log-density may legitimately be ``-inf``);
- a **clear error**: a ``ValueError``, ``TypeError`` or ``NotFittedError``
  (scikit-learn's ``InvalidParameterError`` is a ``ValueError``) raised from
  skmoe or scikit-learn code.  ``numpy.linalg.LinAlgError`` (a ``ValueError``
  subclass), ``FloatingPointError``, ``OverflowError``, ``ZeroDivisionError``,
  ``IndexError``, ``KeyError``, ``AttributeError`` and numba errors are
  failures, and so is a ``ValueError`` whose raising frame (the last frame of
  the traceback) is inside NumPy, SciPy or numba.

Every input array is compared (bit for bit, NaN-aware) with a copy taken
before the call: no call may mutate its inputs.
"""

import copy
import math
import os
import warnings
from numbers import Number

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

import skmoe

_SKMOE_DIR = os.path.dirname(os.path.abspath(skmoe.__file__)) + os.sep
try:
    import sklearn

    _SKLEARN_DIR = os.path.dirname(os.path.abspath(sklearn.__file__)) + os.sep
except ImportError:  # pragma: no cover
    _SKLEARN_DIR = None

CLEAR_ERRORS = (ValueError, TypeError, NotFittedError)
# Subclasses of the clear errors that are never clear: a raw linear-algebra
# failure, or one of the other classes (NotFittedError is also an
# AttributeError, InvalidParameterError also a TypeError: both fine).
RAW_ERRORS = (np.linalg.LinAlgError, FloatingPointError, OverflowError, ZeroDivisionError,
              IndexError, KeyError)


class FuzzFailure(AssertionError):
    """The call neither returned a finite result nor raised a clear error."""


def raising_file(exc):
    """The file of the frame that raised ``exc`` (the last traceback frame)."""
    tb = exc.__traceback__
    if tb is None:
        return None
    while tb.tb_next is not None:
        tb = tb.tb_next
    return os.path.abspath(tb.tb_frame.f_code.co_filename)


def _is_library_frame(path):
    if path is None:
        return False
    return path.startswith(_SKMOE_DIR) or (_SKLEARN_DIR is not None and path.startswith(_SKLEARN_DIR))


def _is_numba_error(exc):
    return type(exc).__module__.startswith("numba")


def check_clear_error(exc, description=""):
    """Raise :class:`FuzzFailure` unless ``exc`` is a clear skmoe/sklearn error."""
    where = raising_file(exc)
    if isinstance(exc, RAW_ERRORS) or _is_numba_error(exc):
        raise FuzzFailure(
            f"{description}: raw {type(exc).__module__}.{type(exc).__name__} "
            f"raised in {where}: {exc}") from exc
    if isinstance(exc, AttributeError) and not isinstance(exc, NotFittedError):
        raise FuzzFailure(f"{description}: AttributeError raised in {where}: {exc}") from exc
    if not isinstance(exc, CLEAR_ERRORS):
        raise FuzzFailure(
            f"{description}: unexpected {type(exc).__name__} raised in {where}: {exc}") from exc
    if not _is_library_frame(where):
        raise FuzzFailure(
            f"{description}: {type(exc).__name__} raised outside skmoe/sklearn "
            f"(in {where}): {exc}") from exc
    if not str(exc).strip():
        raise FuzzFailure(f"{description}: {type(exc).__name__} with an empty message") from exc


def _snapshot(value):
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, (list, tuple, dict)):
        try:
            return copy.deepcopy(value)
        except Exception:  # pragma: no cover - unpicklable contents
            return None
    return None


def _same(before, after):
    if isinstance(before, np.ndarray):
        if not isinstance(after, np.ndarray) or before.shape != after.shape \
                or before.dtype != after.dtype:
            return False
        if before.dtype.kind in "fc":
            return bool(np.array_equal(before, after, equal_nan=True))
        if before.dtype.kind == "O":
            return all(_same(b, a) or b is a for b, a in zip(before.ravel(), after.ravel()))
        return bool(np.array_equal(before, after))
    if isinstance(before, dict):
        return isinstance(after, dict) and before.keys() == after.keys() and all(
            _same(before[k], after[k]) for k in before)
    if isinstance(before, (list, tuple)):
        return isinstance(after, (list, tuple)) and len(before) == len(after) and all(
            _same(b, a) for b, a in zip(before, after))
    if isinstance(before, float) and isinstance(after, float):
        return before == after or (math.isnan(before) and math.isnan(after))
    try:
        return bool(before == after)
    except Exception:  # pragma: no cover
        return True


def assert_not_mutated(inputs, snapshots, description=""):
    for i, (value, snap) in enumerate(zip(inputs, snapshots)):
        if snap is not None and not _same(snap, value):
            raise FuzzFailure(f"{description}: input #{i} was mutated by the call")


def _nonfinite_paths(value, path, allow_neg_inf, out, depth=0):
    if depth > 6:
        return
    if isinstance(value, BaseEstimator):
        for key, attr in vars(value).items():
            if key.endswith("_") and not key.startswith("_") and key != "history_":
                _nonfinite_paths(attr, f"{path}.{key}", allow_neg_inf, out, depth + 1)
        return
    if isinstance(value, dict):
        for key, attr in value.items():
            _nonfinite_paths(attr, f"{path}[{key!r}]", allow_neg_inf, out, depth + 1)
        return
    if isinstance(value, (list, tuple)):
        for i, attr in enumerate(value):
            _nonfinite_paths(attr, f"{path}[{i}]", allow_neg_inf, out, depth + 1)
        return
    if isinstance(value, (bool, np.bool_)):
        return
    if isinstance(value, Number) or (isinstance(value, np.ndarray) and value.dtype.kind in "fc"):
        arr = np.asarray(value)
        if arr.dtype.kind not in "fc":
            return
        bad = ~np.isfinite(arr)
        if allow_neg_inf and arr.dtype.kind == "f":
            bad &= ~(np.isneginf(arr))
        if np.any(bad):
            out.append(f"{path} ({int(np.sum(bad))} of {arr.size} entries non-finite, "
                       f"e.g. {arr[bad].ravel()[:3]})")
        return
    if isinstance(value, np.ndarray) and value.dtype.kind == "O":
        for i, attr in enumerate(value.ravel()[:50]):
            _nonfinite_paths(attr, f"{path}.flat[{i}]", allow_neg_inf, out, depth + 1)
    elif hasattr(value, "__dataclass_fields__"):
        for key in value.__dataclass_fields__:
            _nonfinite_paths(getattr(value, key), f"{path}.{key}", allow_neg_inf, out, depth + 1)


def assert_finite(value, description="", *, allow_neg_inf=False):
    bad = []
    _nonfinite_paths(value, "result", allow_neg_inf, bad)
    if bad:
        raise FuzzFailure(f"{description}: silent non-finite output: " + "; ".join(bad[:5]))


def assert_finite_or_clear_error(call, *inputs, description="", allow_neg_inf=False):
    """Run ``call()``; require a finite result or a clear error; check ``inputs`` unchanged.

    Returns ``(result, None)`` on success and ``(None, exc)`` on a clear error.
    Warnings are ignored (they are never a failure of this oracle).
    """
    snapshots = [_snapshot(value) for value in inputs]
    description = description or getattr(call, "__name__", "call")
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            result = call()
    except Exception as exc:  # noqa: BLE001 - the oracle classifies every error
        check_clear_error(exc, description)
        assert_not_mutated(inputs, snapshots, description)
        return None, exc
    assert_not_mutated(inputs, snapshots, description)
    assert_finite(result, description, allow_neg_inf=allow_neg_inf)
    return result, None
