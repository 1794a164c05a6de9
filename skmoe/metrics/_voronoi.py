"""Voronoi losses of Nguyen, Nguyen, Nguyen & Ho (AISTATS 2024).

The losses compare a fitted mixing measure ``G = sum_i pi_i delta_{theta_i}``
with the true ``G* = sum_j pi*_j delta_{theta*_j}`` after assigning every
fitted atom to the *Voronoi cell* of its nearest true atom.  Cells holding
several fitted atoms (over-fitting) have their parameter errors raised to
powers ``rbar(|A_j|)`` that match the slower rates at which those atoms
converge, so that the loss itself is ``O(sqrt(log n / n))``.
"""

from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import StrOptions, validate_params

from sklearn.utils.validation import check_is_fitted

from ..mixture import GaussianGatedMoERegressor
from ..mixture._params import _PARAM_KEYS, check_moe_params, to_full_matrices

#: rbar(m) for cells of m fitted atoms (Ho & Nguyen 2016, Proposition 2.1):
#: singletons are measured linearly, 2 atoms with exponent 4, 3 with 6.
DEFAULT_RBAR = {1: 1, 2: 4, 3: 6}

_PARTS = ("means", "covariances", "coef", "intercept", "noise_covariances")


def _as_full_params(estimator_or_params):
    """Parameter dict with full gate covariances, from an estimator or a dict."""
    if isinstance(estimator_or_params, GaussianGatedMoERegressor):
        model = estimator_or_params
        check_is_fitted(model)
        # The fitted parameter record (host float64, with the covariance type
        # of the fit, not the current hyper-parameter).
        fitted = model._get_parameters()
        params = {key: fitted[key] for key in _PARAM_KEYS}
        params["covariances"] = to_full_matrices(
            fitted["covariances"], fitted["covariance_type"], *fitted["means"].shape
        )
        return check_moe_params(params)
    return check_moe_params(estimator_or_params)


def _check_fitted_and_true(estimator_or_params, true_params):
    """Validated full parameter dicts of the fitted and true mixing measures."""
    fitted = _as_full_params(estimator_or_params)
    true = check_moe_params(true_params)
    if fitted["means"].shape[1:] != true["means"].shape[1:] or (
        fitted["intercept"].shape[1:] != true["intercept"].shape[1:]
    ):
        raise ValueError(
            "Fitted and true parameters have different feature or output dimensions: "
            f"(n_features, n_outputs) = ({fitted['means'].shape[1]}, "
            f"{fitted['intercept'].shape[1]}) fitted and ({true['means'].shape[1]}, "
            f"{true['intercept'].shape[1]}) true."
        )
    return fitted, true


def _merge_duplicate_atoms(params):
    """The same mixing measure with atoms of identical parameters merged.

    ``sum_i pi_i delta_{theta_i}`` does not change when two atoms with equal
    ``theta`` are replaced by one with the summed weight, so the losses are
    computed on this canonical form (otherwise a true measure with repeated
    atoms splits ties arbitrarily and ``voronoi_loss(G, G) > 0``).  Atoms keep
    the order of their first occurrence.
    """
    n_atoms = len(params["weights"])
    atoms = np.hstack([params[key].reshape(n_atoms, -1) for key in _PARTS])
    _, first, inverse = np.unique(atoms, axis=0, return_index=True, return_inverse=True)
    if len(first) == n_atoms:
        return params
    order = np.argsort(first)  # unique atoms in order of first occurrence
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    merged = {key: params[key][first[order]] for key in _PARTS}
    merged["weights"] = np.bincount(
        rank[inverse.ravel()], weights=params["weights"], minlength=len(order)
    )
    return merged


def _atom_distances(fitted, true):
    """Per-part distances ``(n_fitted, n_true)`` between every pair of atoms.

    Euclidean norms for vectors, Frobenius norms for matrices.
    """
    out = {}
    for key in _PARTS:
        a = fitted[key].reshape(len(fitted[key]), -1)
        b = true[key].reshape(len(true[key]), -1)
        out[key] = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=-1)
    return out


@validate_params(
    {
        "estimator_or_params": [GaussianGatedMoERegressor, dict],
        "true_params": [dict],
    },
    prefer_skip_nested_validation=True,
)
def voronoi_cells(estimator_or_params, true_params):
    """Assign each fitted atom to the Voronoi cell of its nearest true atom.

    The distance between atoms is ``||dmu|| + ||dSigma||_F + ||dA||_F +
    ||db|| + ||dS||_F``, as in the authors' code.

    Parameters
    ----------
    estimator_or_params : GaussianGatedMoERegressor or dict
        Fitted estimator, or parameters as for
        :func:`skmoe.datasets.make_gaussian_gated_moe`.
    true_params : dict
        True parameters (full gate covariances).

    Returns
    -------
    cells : ndarray of shape (n_fitted_components,)
        Index of the true atom whose cell contains each fitted atom.

    Raises
    ------
    ValueError
        If the parameters are invalid or the fitted and true parameters have
        different feature or output dimensions.
    """
    fitted, true = _check_fitted_and_true(estimator_or_params, true_params)
    distances = _atom_distances(fitted, true)
    return np.argmin(sum(distances.values()), axis=1)


@validate_params(
    {
        "estimator_or_params": [GaussianGatedMoERegressor, dict],
        "true_params": [dict],
        "kind": [StrOptions({"D1", "D2"})],
        "rbar": [dict, None],
        "return_components": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def voronoi_loss(
    estimator_or_params, true_params, kind="D1", *, rbar=None, return_components=False
):
    """Voronoi loss between fitted and true Gaussian-gated MoE parameters.

    With fitted atoms ``i`` assigned to cells ``A_j`` by
    :func:`voronoi_cells`, and ``Delta`` the differences to the cell's true
    atom,

    .. math::

        D_1 = \\sum_j \\Big|\\sum_{i \\in A_j} \\pi_i - \\pi^*_j\\Big|
        + \\sum_{|A_j| = 1} \\sum_{i \\in A_j} \\pi_i \\big(\\|\\Delta\\mu\\|
            + \\|\\Delta\\Sigma\\| + \\|\\Delta a\\| + |\\Delta b|
            + |\\Delta\\nu|\\big)
        + \\sum_{|A_j| > 1} \\sum_{i \\in A_j} \\pi_i \\big(
            \\|\\Delta\\mu\\|^{\\bar r} + \\|\\Delta\\Sigma\\|^{\\bar r/2}
            + \\|\\Delta a\\|^2 + |\\Delta b|^{\\bar r}
            + |\\Delta\\nu|^{\\bar r/2}\\big),

    with ``rbar = rbar(|A_j|)`` (4 for two atoms, 6 for three).  ``D2``
    (Type II) is the same except that in over-fitted cells whose true gate
    mean is exactly zero the slope term is ``||Delta a||^{rbar/2}``.  Empty
    cells contribute ``pi*_j`` through the weight term.  For several outputs,
    ``b`` and ``nu`` use the Euclidean and Frobenius norms.  The loss is a
    function of the two mixing measures: atoms with identical parameters (in
    either) are first merged into one atom carrying their summed weight, so
    ``voronoi_loss(G, G) == 0`` even when ``G`` repeats an atom.

    Parameters
    ----------
    estimator_or_params : GaussianGatedMoERegressor or dict
        Fitted estimator, or a dict of parameters with full gate covariances
        (keys as for :func:`skmoe.datasets.make_gaussian_gated_moe`).
    true_params : dict
        True parameters, e.g. from :func:`skmoe.datasets.ggmoe_paper_setting`.
    kind : {"D1", "D2"}, default="D1"
        ``D1`` (the paper's bar-D, Type I) or ``D2`` (tilde-D, Type II).
    rbar : dict, default=None
        Exponent ``rbar(m)`` for a cell of ``m`` fitted atoms; defaults to
        ``{1: 1, 2: 4, 3: 6}``.  Keys are integers >= 1 and values finite
        positive numbers (booleans are rejected).  A cell of several atoms whose size is not in the
        table raises a ``ValueError`` (the exponent is not known in closed
        form).
    return_components : bool, default=False
        Also return a breakdown by parameter.

    Returns
    -------
    loss : float
        The Voronoi loss.
    components : dict
        Only if ``return_components``.  ``"weights"``: the weight term;
        for each of ``"means"``, ``"covariances"``, ``"coef"``,
        ``"intercept"``, ``"noise_covariances"``: the weighted mean error
        ``sum_i pi_i ||Delta theta_i||`` (no exponent, so that its decay in
        ``n`` is the parameter's own rate), split into ``"<name>"`` (all
        atoms), ``"<name>_exact"`` (atoms alone in their cell) and
        ``"<name>_overfit"`` (atoms sharing a cell; 0 if none); and
        ``"cell_sizes"``, the number of (distinct) fitted atoms per
        (distinct) true atom.

    Raises
    ------
    ValueError
        If the parameters are invalid, the fitted and true parameters have
        different feature or output dimensions, or ``rbar`` is invalid or
        lacks the size of a cell.

    Examples
    --------
    >>> from skmoe.datasets import ggmoe_paper_setting
    >>> from skmoe.metrics import voronoi_loss
    >>> truth = ggmoe_paper_setting(1)
    >>> voronoi_loss(truth, truth)
    0.0
    """
    fitted, true = _check_fitted_and_true(estimator_or_params, true_params)
    fitted, true = _merge_duplicate_atoms(fitted), _merge_duplicate_atoms(true)
    rbar = DEFAULT_RBAR if rbar is None else rbar
    if not all(
        isinstance(size, Integral)
        and not isinstance(size, (bool, np.bool_))
        and size >= 1
        and isinstance(exponent, Real)
        and not isinstance(exponent, (bool, np.bool_))
        and np.isfinite(exponent)
        and exponent > 0
        for size, exponent in rbar.items()
    ):
        raise ValueError(
            "rbar must map cell sizes (integers >= 1) to finite positive exponents, "
            f"got {rbar!r}."
        )
    distances = _atom_distances(fitted, true)
    cells = np.argmin(sum(distances.values()), axis=1)
    n_true = len(true["weights"])
    cell_sizes = np.bincount(cells, minlength=n_true)
    missing = sorted(set(cell_sizes[cell_sizes > 1].tolist()) - set(rbar))
    if missing:
        raise ValueError(
            f"A Voronoi cell holds {missing[0]} fitted atoms but rbar has no exponent "
            f"for it (given for cell sizes {sorted(rbar)}); pass "
            f"rbar={{..., {missing[0]}: value}}."
        )
    pi = fitted["weights"]
    weight_term = float(
        np.abs(np.bincount(cells, weights=pi, minlength=n_true) - true["weights"]).sum()
    )
    zero_mean = np.all(true["means"] == 0, axis=1)

    loss = weight_term
    atoms = np.arange(len(pi))
    own = {key: distances[key][atoms, cells] for key in _PARTS}
    for i, j in zip(atoms, cells):
        size = cell_sizes[j]
        if size == 1:
            loss += pi[i] * sum(own[key][i] for key in _PARTS)
            continue
        r = rbar[size]
        slope_power = r / 2 if (kind == "D2" and zero_mean[j]) else 2
        loss += pi[i] * (
            own["means"][i] ** r
            + own["covariances"][i] ** (r / 2)
            + own["coef"][i] ** slope_power
            + own["intercept"][i] ** r
            + own["noise_covariances"][i] ** (r / 2)
        )
    if not return_components:
        return float(loss)
    exact = cell_sizes[cells] == 1
    components = {"weights": weight_term, "cell_sizes": cell_sizes}
    for key in _PARTS:
        components[key] = float(pi @ own[key])
        components[key + "_exact"] = float(pi[exact] @ own[key][exact])
        components[key + "_overfit"] = float(pi[~exact] @ own[key][~exact])
    return float(loss), components


def _joint_moments(params):
    """Mean and covariance of each atom's joint Gaussian on ``z = (x, y)``.

    Atom ``i`` is ``N(x | mu, Sigma) N(y | A x + b, S)``, i.e. the Gaussian
    with mean ``(mu, A mu + b)`` and covariance
    ``[[Sigma, Sigma A^T], [A Sigma, S + A Sigma A^T]]``.
    """
    mu, cov, coef = params["means"], params["covariances"], params["coef"]
    y_mean = np.einsum("kod,kd->ko", coef, mu) + params["intercept"]
    cross = np.einsum("kde,koe->kdo", cov, coef)  # Sigma A^T
    y_cov = params["noise_covariances"] + np.einsum("kod,kde->koe", coef, cross)
    mean = np.concatenate([mu, y_mean], axis=1)
    top = np.concatenate([cov, cross], axis=2)
    bottom = np.concatenate([cross.transpose(0, 2, 1), y_cov], axis=2)
    return mean, np.concatenate([top, bottom], axis=1)


def merge_cell(params, atoms=None):
    """Moment-matched merge of several atoms into one.

    The atoms' weighted mixture of joint Gaussians on ``z = (x, y)`` is
    replaced by the single Gaussian with the same weight, mean and
    covariance, which is mapped back to gate and expert parameters.  The
    merged gate mean is the weight-averaged mean, the merged gate covariance
    ``sum_i w_i (Sigma_i + (mu_i - mu_bar)(mu_i - mu_bar)^T)`` and the merged
    expert the least-squares line of the merged joint Gaussian.

    These merged moments are what an over-fitted cell estimates at the
    parametric rate: the atoms' individual errors ``h`` cancel to first order
    in them (for instance ``sum_i w_i Delta mu_i`` and, through the coupling
    ``d/dSigma = 1/2 d^2/dmu^2`` of the Gaussian, the covariance), so their
    error is ``O(h^2)`` or better while each atom is off by ``O(h)``.

    Parameters
    ----------
    params : dict
        Parameters with full gate covariances (keys as for
        :func:`skmoe.datasets.make_gaussian_gated_moe`).
    atoms : array-like of int, default=None
        Indices of the atoms to merge; all of them when None.

    Returns
    -------
    merged : dict
        Parameters of one atom (leading dimension 1), with ``"weights"`` the
        summed weight.

    Raises
    ------
    ValueError
        If the parameters are invalid, ``atoms`` is empty or out of range, or
        the atoms' total weight is zero.

    Examples
    --------
    >>> from skmoe.datasets import ggmoe_paper_setting
    >>> from skmoe.metrics import merge_cell
    >>> truth = ggmoe_paper_setting(1)
    >>> merge_cell(truth, [2])["means"]
    array([[0.5]])
    """
    params = check_moe_params(params)
    n_atoms = len(params["weights"])
    idx = np.arange(n_atoms) if atoms is None else np.asarray(atoms)
    if (
        idx.ndim != 1
        or idx.size == 0
        or idx.dtype.kind not in "iu"
        or np.any(idx < 0)
        or np.any(idx >= n_atoms)
    ):
        raise ValueError(
            f"atoms must be a non-empty 1-D sequence of atom indices in [0, {n_atoms}), "
            f"got {atoms!r}."
        )
    weights = params["weights"][idx]
    total = weights.sum()
    if not total > 0:
        raise ValueError("Cannot merge atoms whose total weight is zero.")
    w = weights / total
    mean, cov = _joint_moments({key: params[key][idx] for key in _PARTS})
    merged_mean = w @ mean
    centred = mean - merged_mean
    merged_cov = np.einsum("k,kab->ab", w, cov) + np.einsum(
        "k,ka,kb->ab", w, centred, centred
    )
    d = params["means"].shape[1]
    sxx, sxy, syy = merged_cov[:d, :d], merged_cov[:d, d:], merged_cov[d:, d:]
    coef = np.linalg.solve(sxx, sxy).T  # (n_outputs, n_features)
    return {
        "weights": np.array([total]),
        "means": merged_mean[None, :d],
        "covariances": sxx[None],
        "coef": coef[None],
        "intercept": (merged_mean[d:] - coef @ merged_mean[:d])[None],
        "noise_covariances": (syy - coef @ sxy)[None],
    }


#: Parameter groups of :func:`voronoi_parameter_errors`, in report order.
PARAMETER_GROUPS = ("weights", *_PARTS)


@validate_params(
    {
        "estimator_or_params": [GaussianGatedMoERegressor, dict],
        "true_params": [dict],
    },
    prefer_skip_nested_validation=True,
)
def voronoi_parameter_errors(estimator_or_params, true_params):
    """Per-parameter errors of a fitted mixing measure, through Voronoi cells.

    Fitted atoms are assigned to the cells ``A_j`` of their nearest true
    atoms as in :func:`voronoi_cells`.  For each parameter group ``g``
    (``"means"``, ``"covariances"``, ``"coef"``, ``"intercept"``,
    ``"noise_covariances"``; Euclidean or Frobenius norm):

    - ``"<g>_exact"``: mean over the *singleton* cells (``|A_j| = 1``) of
      ``||theta_i - theta*_j||``, which converges at ``n^-1/2``;
    - ``"<g>_atoms"``: mean over the *over-fitted* cells (``|A_j| >= 2``) of
      the weight-averaged atom error ``sum_{i in A_j} pi_i ||theta_i -
      theta*_j|| / sum_{i in A_j} pi_i``, the slow rates of the theory
      (weighting keeps a nearly empty spurious atom from dominating);
    - ``"<g>_merged"``: mean over the over-fitted cells of
      ``||theta_bar_j - theta*_j||``, with ``theta_bar_j`` the cell's
      moment-matched merge (:func:`merge_cell`), which should converge at
      ``n^-1/2``.

    For the weights, ``"weights_exact"`` is the mean ``|pi_i - pi*_j|`` over
    singleton cells and ``"weights_merged"`` the mean ``|sum_{i in A_j} pi_i
    - pi*_j|`` over over-fitted cells.  A key is NaN when the fit has no cell
    of its kind.  Atoms with identical parameters are merged first, as in
    :func:`voronoi_loss`.

    Parameters
    ----------
    estimator_or_params : GaussianGatedMoERegressor or dict
        Fitted estimator, or a dict of parameters with full gate covariances.
    true_params : dict
        True parameters, e.g. from :func:`skmoe.datasets.ggmoe_paper_setting`.

    Returns
    -------
    errors : dict
        The keys above, plus ``"cell_sizes"`` (fitted atoms per true atom,
        an integer array), ``"n_overfit_cells"``, ``"n_empty_cells"`` and
        ``"overfit_minor_share"``: the smallest share ``pi_i / sum_{l in A_j}
        pi_l`` of an atom in its over-fitted cell (NaN without one).  A share
        near zero marks a cell that has collapsed onto one atom plus a
        nearly empty one; the slow atom rates describe cells whose atoms keep
        comparable weights.

    Raises
    ------
    ValueError
        If the parameters are invalid or the fitted and true parameters have
        different feature or output dimensions.

    Examples
    --------
    >>> from skmoe.datasets import ggmoe_paper_setting
    >>> from skmoe.metrics import voronoi_parameter_errors
    >>> truth = ggmoe_paper_setting(2)
    >>> errors = voronoi_parameter_errors(truth, truth)
    >>> errors["means_exact"], errors["n_overfit_cells"]
    (0.0, 0)
    """
    fitted, true = _check_fitted_and_true(estimator_or_params, true_params)
    fitted, true = _merge_duplicate_atoms(fitted), _merge_duplicate_atoms(true)
    distances = _atom_distances(fitted, true)
    cells = np.argmin(sum(distances.values()), axis=1)
    n_true = len(true["weights"])
    cell_sizes = np.bincount(cells, minlength=n_true)
    pi = fitted["weights"]
    atoms = np.arange(len(pi))

    exact, atom_err, merged = ({g: [] for g in PARAMETER_GROUPS} for _ in range(3))
    minor_shares = []
    for j in np.flatnonzero(cell_sizes):
        members = atoms[cells == j]
        if len(members) == 1:
            (i,) = members
            exact["weights"].append(abs(pi[i] - true["weights"][j]))
            for key in _PARTS:
                exact[key].append(distances[key][i, j])
            continue
        cell_weight = pi[members].sum()
        merged_atom = None
        if cell_weight > 0:
            minor_shares.append(float(pi[members].min() / cell_weight))
            merged_atom = merge_cell(fitted, members)
        merged["weights"].append(abs(cell_weight - true["weights"][j]))
        for key in _PARTS:
            own = distances[key][members, j]
            atom_err[key].append(
                own @ pi[members] / cell_weight if cell_weight > 0 else own.mean()
            )
            merged[key].append(
                np.nan
                if merged_atom is None
                else float(np.linalg.norm(merged_atom[key][0] - true[key][j]))
            )

    def _mean(values):
        return float(np.mean(values)) if values else np.nan

    errors = {}
    for key in PARAMETER_GROUPS:
        errors[key + "_exact"] = _mean(exact[key])
        if key != "weights":
            errors[key + "_atoms"] = _mean(atom_err[key])
        errors[key + "_merged"] = _mean(merged[key])
    errors["cell_sizes"] = cell_sizes
    errors["n_overfit_cells"] = int(np.sum(cell_sizes > 1))
    errors["n_empty_cells"] = int(np.sum(cell_sizes == 0))
    errors["overfit_minor_share"] = min(minor_shares) if minor_shares else np.nan
    return errors
