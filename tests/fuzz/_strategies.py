"""Hypothesis strategies shared by the fuzz modules: fuzzed arrays and hyper-parameters."""

import numpy as np
from hypothesis import strategies as st

# Magnitudes of the data.  The "safe" ones stay far from overflow of the
# squares (1e150 squared is 1e300); the "extreme" ones are where the issue-15
# defects lived (each has a reproducer test in its module), and the main
# properties draw them too.
SAFE_SCALES = [1.0, 1e-3, 1e3, 1e-150, 1e50, 1e150, 1e300]
EXTREME_SCALES = [1e150, 1e154, 1e200, 1e300]

KINDS = ["clean", "constant_column", "duplicated_rows", "constant_y", "nan", "inf", "tiny"]
DTYPES = ["float64", "float32", "int64", "bool", "object", "complex128"]


@st.composite
def regression_data(draw, *, min_rows=0, max_rows=24, max_features=4, scales=SAFE_SCALES,
                    kinds=KINDS, dtypes=DTYPES, bad_shapes=True, classification=False):
    """``(X, y, info)``: a small fuzzed regression (or classification) data set.

    ``info`` records what was drawn (for the failure messages and for the
    tests that know some combinations must fail).
    """
    with np.errstate(all="ignore"):
        return _regression_data(draw, min_rows, max_rows, max_features, scales, kinds, dtypes,
                                bad_shapes, classification)


def _regression_data(draw, min_rows, max_rows, max_features, scales, kinds, dtypes, bad_shapes,
                     classification):
    seed = draw(st.integers(0, 2**16))
    rng = np.random.RandomState(seed)
    n = draw(st.integers(min_rows, max_rows))
    d = draw(st.integers(1, max_features))
    kind = draw(st.sampled_from(kinds))
    scale = draw(st.sampled_from(scales))
    dtype = draw(st.sampled_from(dtypes))
    X = rng.standard_normal((n, d))
    y = np.where(X[:, 0] > 0, 2.0 * X[:, -1], -X[:, 0]) + 0.1 * rng.standard_normal(n)
    if kind == "constant_column" and n:
        X[:, rng.randint(d)] = 1.5
    elif kind == "duplicated_rows" and n:
        rows = np.arange(n) % max(1, n // 3)
        X, y = X[rows], y[rows]
    elif kind == "constant_y":
        y = np.full(n, 0.7)
    elif kind in ("nan", "inf") and n:
        bad = np.nan if kind == "nan" else draw(st.sampled_from([np.inf, -np.inf]))
        target = X if draw(st.booleans()) else y
        target.flat[rng.randint(target.size)] = bad
    elif kind == "tiny":
        X = X * 1e-300
    X = X * scale
    y = y * scale
    if classification:
        n_classes = draw(st.integers(1, 3))
        y = (np.arange(n) % n_classes) if draw(st.booleans()) else rng.randint(0, n_classes, n)
    if dtype == "float32":
        X = X.astype(np.float32)
    elif dtype == "int64":
        X = np.nan_to_num(X, nan=0.0, posinf=1e9, neginf=-1e9).clip(-1e9, 1e9).astype(np.int64)
    elif dtype == "bool":
        X = X > 0
    elif dtype == "object":
        X = X.astype(object)
    elif dtype == "complex128":
        X = X + 0.5j
    shape = "ok"
    if bad_shapes:
        shape = draw(st.sampled_from(["ok"] * 6 + ["y_short", "y_long", "X_3d", "y_2d", "X_1d"]))
        if shape == "y_short" and n:
            y = y[:-1]
        elif shape == "y_long":
            y = np.concatenate([y, y[:1] if n else [0.0]])
        elif shape == "X_3d":
            X = X.reshape(n, d, 1)
        elif shape == "y_2d":
            y = y.reshape(-1, 1)
        elif shape == "X_1d":
            X = X[:, 0]
    info = dict(n=n, d=d, kind=kind, scale=scale, dtype=dtype, shape=shape, seed=seed)
    return X, y, info


def clean_data(n=40, d=2, seed=0, classification=False):
    rng = np.random.RandomState(seed)
    X = rng.standard_normal((n, d))
    y = np.where(X[:, 0] > 0, 2.0 * X[:, -1], -X[:, 0]) + 0.1 * rng.standard_normal(n)
    if classification:
        y = (y > 0).astype(int)
    return X, y


# Values that are wrong for (almost) every hyper-parameter: wrong types,
# negatives, booleans for counts, NaN, infinities and absurd magnitudes.
BAD_VALUES = [
    -1, 0, -0.5, 1.5, True, False, np.nan, np.inf, -np.inf, 1e300, -1e300,
    "bogus", "", None, [1, 2], (), {}, np.float32(np.nan), np.int64(-3), object(), 1j,
]


def bad_value():
    return st.sampled_from(BAD_VALUES)


def finite_floats(min_value=-1e300, max_value=1e300):
    return st.floats(min_value, max_value, allow_nan=False, allow_infinity=False)


def any_floats():
    return st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                     st.sampled_from([0.0, -0.0, 1e-300, 1e300, 3e38, np.nan, np.inf, -np.inf]))
